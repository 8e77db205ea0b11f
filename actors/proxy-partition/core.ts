/**
 * The pure core of graph-proxy partitions: which partition a vertex id belongs to (placement keys included), the
 * Valkey key layout of a partition, input limits, the snapshot format and the community method of rebalancing. No Effect imports: the client, the gateway and the
 * runtime all call the same `partitionOf`.
 */
import { prng } from "@tessera/platform/Random"

/** Default number of partitions (`TESSERA_GRAPH_PARTITIONS`). */
export const DEFAULT_PARTITIONS = 64
/** Longest vertex id, in UTF-16 code units. */
export const MAX_VERTEX_ID_LENGTH = 256
/** Longest edge label. */
export const MAX_LABEL_LENGTH = 64
/** Largest properties object, as UTF-8 JSON bytes. */
export const MAX_PROPERTIES_BYTES = 16 * 1024
/** Deepest nesting of a property value that `isJsonObject` follows (deeper values, and cycles, are refused). */
export const MAX_PROPERTIES_DEPTH = 64

const isJsonValue = (u: unknown, depth: number): boolean => {
  switch (typeof u) {
    case "string":
    case "boolean":
      return true
    case "number":
      return Number.isFinite(u)
    case "object": {
      if (u === null) return true
      if (depth >= MAX_PROPERTIES_DEPTH) return false
      if (Array.isArray(u)) {
        for (let i = 0; i < u.length; i++) if (!isJsonValue(u[i], depth + 1)) return false
        return true
      }
      const proto = Object.getPrototypeOf(u)
      if (proto !== Object.prototype && proto !== null) return false
      for (const key in u) if (!isJsonValue((u as Record<string, unknown>)[key], depth + 1)) return false
      return true
    }
    default:
      return false
  }
}

/**
 * A vertex's properties: a plain object of JSON values (strings, finite numbers, booleans, null, arrays and
 * plain objects, at most `MAX_PROPERTIES_DEPTH` deep; no cycles, dates, functions or class instances). One
 * synchronous walk, no allocation: the schema check on every property map that crosses the wire.
 */
export const isJsonObject = (u: unknown): u is { readonly [key: string]: unknown } =>
  typeof u === "object" && u !== null && !Array.isArray(u) && isJsonValue(u, 0)
/** Most ids in one BatchGet / GetMany / NeighborsMany. */
export const MAX_BATCH = 1000
/** Deepest KHop. */
export const MAX_HOPS = 3
/** Default and largest KHop result size. */
export const DEFAULT_KHOP_LIMIT = 1000
export const MAX_KHOP_LIMIT = 10_000

/**
 * FNV-1a (32 bit) over the UTF-8 bytes of `vertexId`, then modulo `partitions`. Stable across processes,
 * runtimes and versions: changing it would move every vertex.
 */
export const partitionOf = (vertexId: string, partitions: number): number => {
  let hash = 0x811c9dc5
  const n = vertexId.length
  for (let i = 0; i < n; i++) {
    let code = vertexId.charCodeAt(i)
    if (code < 0x80) {
      hash = Math.imul(hash ^ code, 0x01000193)
      continue
    }
    if (code < 0x800) {
      hash = Math.imul(hash ^ (0xc0 | (code >> 6)), 0x01000193)
      hash = Math.imul(hash ^ (0x80 | (code & 0x3f)), 0x01000193)
      continue
    }
    if (code >= 0xd800 && code < 0xdc00 && i + 1 < n) {
      const low = vertexId.charCodeAt(i + 1)
      if (low >= 0xdc00 && low < 0xe000) {
        code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00)
        i++
        hash = Math.imul(hash ^ (0xf0 | (code >> 18)), 0x01000193)
        hash = Math.imul(hash ^ (0x80 | ((code >> 12) & 0x3f)), 0x01000193)
        hash = Math.imul(hash ^ (0x80 | ((code >> 6) & 0x3f)), 0x01000193)
        hash = Math.imul(hash ^ (0x80 | (code & 0x3f)), 0x01000193)
        continue
      }
    }
    // Lone surrogates are encoded as U+FFFD, as TextEncoder does.
    if (code >= 0xd800 && code < 0xe000) code = 0xfffd
    hash = Math.imul(hash ^ (0xe0 | (code >> 12)), 0x01000193)
    hash = Math.imul(hash ^ (0x80 | ((code >> 6) & 0x3f)), 0x01000193)
    hash = Math.imul(hash ^ (0x80 | (code & 0x3f)), 0x01000193)
  }
  return (hash >>> 0) % partitions
}

/**
 * Placement keys (hints), as Redis hash tags decide slots: a vertex whose id carries a placement key lives in
 * `partitionOf(key)` instead of `partitionOf(id)`, so vertices that share a key (a community, a tenant) share a
 * partition. The key is derived from the id by the deployment's rule (`TESSERA_GRAPH_PLACEMENT`, the same on every
 * runner and client), never sent beside it: edges, Neighbors and KHop carry bare ids, and a key that only a put knew
 * would need a directory lookup on every hop. Derived from the id, every reader computes the partition alone and a
 * read stays one hop (gateway -> Valkey).
 *
 * Grammar of a key: 1 to `MAX_PLACEMENT_KEY_LENGTH` characters, each an ASCII letter, digit or one of `. _ - : / @ + =`
 * (ASCII only, so clients in any language hash the same bytes; no spaces, braces or control characters). An id whose
 * rule yields a key outside it is refused with `InvalidPlacementKey`.
 */
export const MAX_PLACEMENT_KEY_LENGTH = 64

/** Why a placement key is refused, or `undefined` when it is fine. */
export const placementKeyProblem = (key: string): string | undefined => {
  if (key.length === 0) return "is empty"
  if (key.length > MAX_PLACEMENT_KEY_LENGTH) return `is longer than ${MAX_PLACEMENT_KEY_LENGTH} characters`
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i)
    const ok =
      (c >= 0x30 && c <= 0x39) ||
      (c >= 0x41 && c <= 0x5a) ||
      (c >= 0x61 && c <= 0x7a) ||
      c === 0x2e ||
      c === 0x5f ||
      c === 0x2d ||
      c === 0x3a ||
      c === 0x2f ||
      c === 0x40 ||
      c === 0x2b ||
      c === 0x3d
    if (!ok) return `has character ${JSON.stringify(key[i])} at ${i} (allowed: A-Z a-z 0-9 . _ - : / @ + =)`
  }
  return undefined
}

/** A deployment's placement rule: the placement key of a vertex id, or `undefined` when it has none. */
export type PlacementRule = (id: string) => string | undefined

/**
 * Redis hash tags: the text between the first `{` and the first `}` after it, when not empty (`{acme}alice` ->
 * `acme`); no tag (`alice`, `{}x`, `{x`) -> no key. The default rule.
 */
export const hashTagRule: PlacementRule = (id) => {
  const open = id.indexOf("{")
  if (open < 0) return undefined
  const close = id.indexOf("}", open + 1)
  return close <= open + 1 ? undefined : id.slice(open + 1, close)
}

/** No placement keys: every vertex hashes by its whole id (placement before hints). */
export const noPlacementRule: PlacementRule = () => undefined

/** The id up to the first `separator`, when the id has one after a non-empty prefix (`acme/alice` -> `acme`). */
export const prefixRule =
  (separator: string): PlacementRule =>
  (id) => {
    const at = id.indexOf(separator)
    return at <= 0 ? undefined : id.slice(0, at)
  }

/**
 * `TESSERA_GRAPH_PLACEMENT`: `tag` (hash tags, default), `none`, or `prefix:<separator>` (one or more characters).
 * `undefined` for anything else.
 */
export const parsePlacementRule = (text: string): PlacementRule | undefined => {
  if (text === "tag") return hashTagRule
  if (text === "none") return noPlacementRule
  if (text.startsWith("prefix:") && text.length > "prefix:".length) return prefixRule(text.slice("prefix:".length))
  return undefined
}

/** Why the id's placement key is refused (`undefined`: no key, or a good one). */
export const placementProblem = (id: string, rule: PlacementRule = hashTagRule): string | undefined => {
  const key = rule(id)
  return key === undefined ? undefined : placementKeyProblem(key)
}

/**
 * The partition a vertex is placed in: `partitionOf(key)` when the rule gives its id a placement key, else
 * `partitionOf(id)`. The one function clients, gateways, benches and partitions route by; a vertex moved by a
 * rebalance is still addressed here (its home partition forwards to where it lives).
 */
export const vertexPartition = (id: string, partitions: number, rule: PlacementRule = hashTagRule): number => {
  const key = rule(id)
  return partitionOf(key ?? id, partitions)
}

/**
 * A vertex moved off its home partition by a rebalance: its home's vertex key holds `@<partition>` instead of its
 * properties (which always start with `{`), so a gateway's MGET finds the forward in the same reply.
 */
export const forwardMarker = (partition: number): string => `@${partition}`

/** The partition a forward marker names, or `undefined` for properties (and anything else). */
export const parseForwardMarker = (value: string): number | undefined => {
  if (value.charCodeAt(0) !== 0x40) return undefined
  const p = Number(value.slice(1))
  return Number.isInteger(p) && p >= 0 ? p : undefined
}

/**
 * Placement hints. With zones configured (`TESSERA_GRAPH_ZONES=a,b,c`), partition p prefers `zones[p mod n]`, and
 * its entity lives in that zone's shard group (`graph-<zone>`). Without zones, no preference and the `default`
 * group. Every runner and gateway must compute the same group for an entity id, so this is a pure function of the
 * configuration (`TESSERA_GRAPH_ZONES` and `TESSERA_GRAPH_PARTITIONS` equal on every runner).
 */
export const preferredZone = (partition: number, zones: ReadonlyArray<string>): string | undefined =>
  zones.length === 0 || partition < 0 ? undefined : zones[partition % zones.length]

/** The shard group of a zone's partitions. Sorts after `default`, so adding zones never renumbers its locks. */
export const zoneShardGroup = (zone: string): string => `graph-${zone}`

/** Shard group of the `ProxyPartition` entity with this id (ids that are not partition numbers: `default`). */
export const partitionShardGroup = (entityId: string, partitions: number, zones: ReadonlyArray<string>): string => {
  if (zones.length === 0 || !/^\d+$/.test(entityId)) return "default"
  const partition = Number(entityId)
  return partition < partitions ? zoneShardGroup(zones[partition % zones.length]) : "default"
}

/** Groups ids by their placement partition (`vertexPartition`), keeping each id's position in the input (`positions[k]` for `ids[k]`). */
export const groupByPartition = (
  ids: ReadonlyArray<string>,
  partitions: number,
  rule: PlacementRule = hashTagRule
): Map<number, { ids: Array<string>; positions: Array<number> }> => {
  const groups = new Map<number, { ids: Array<string>; positions: Array<number> }>()
  for (let i = 0; i < ids.length; i++) {
    const p = vertexPartition(ids[i], partitions, rule)
    let group = groups.get(p)
    if (group === undefined) {
      group = { ids: [], positions: [] }
      groups.set(p, group)
    }
    group.ids.push(ids[i])
    group.positions.push(i)
  }
  return groups
}

/** Why a vertex id is refused, or `undefined` when it is fine. */
export const vertexIdProblem = (id: string): string | undefined => {
  if (id.length === 0) return "empty"
  if (id.length > MAX_VERTEX_ID_LENGTH) return `longer than ${MAX_VERTEX_ID_LENGTH} characters`
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i)
    if (c < 0x20 || c === 0x7f) return "contains a control character"
  }
  return undefined
}

/** Why an edge label is refused (labels are stored as `label|dst`, so no `|`). */
export const labelProblem = (label: string): string | undefined => {
  if (label.length === 0) return "empty"
  if (label.length > MAX_LABEL_LENGTH) return `longer than ${MAX_LABEL_LENGTH} characters`
  if (label.includes("|")) return "contains '|'"
  for (let i = 0; i < label.length; i++) {
    const c = label.charCodeAt(i)
    if (c < 0x20 || c === 0x7f) return "contains a control character"
  }
  return undefined
}

/** UTF-8 length of a string without allocating. */
export const utf8Length = (s: string): number => {
  let bytes = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x80) bytes += 1
    else if (c < 0x800) bytes += 2
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length) {
      const low = s.charCodeAt(i + 1)
      if (low >= 0xdc00 && low < 0xe000) {
        bytes += 4
        i++
      } else bytes += 3
    } else bytes += 3
  }
  return bytes
}

/**
 * Valkey keys of one partition. The `{p}` hash tag keeps a partition's keys in one Valkey Cluster slot.
 * - `<prefix>:{p}:v:<id>`: the vertex's properties (a JSON string), or a forward marker (`forwardMarker`) when p is
 *   the vertex's home and a rebalance moved it to another partition
 * - `<prefix>:{p}:o:<id>`: its out-edges, a set of `label|dst`
 * - `<prefix>:{p}:ids`: every vertex id of the partition (for snapshots and eviction)
 * - `<prefix>:{p}:reads`: gateway direct-read counter
 * - `<prefix>:{p}:xreads`: the part of `reads` served by gateways outside the partition's preferred zone
 * - `<prefix>:{p}:live`: set while the partition is hot in this Valkey; its absence on a hot partition means Valkey
 *   lost the keys (a wipe or failover to an empty node), and the owner restores its last snapshot
 */
export interface PartitionKeys {
  readonly vertex: (id: string) => string
  readonly out: (id: string) => string
  readonly ids: string
  /** Reads served directly by gateways since the owner last looked (access accounting). */
  readonly reads: string
  /** Of those, the reads served by gateways in another zone than the partition's preferred one. */
  readonly crossZoneReads: string
  /** Present while the hot tier holds the partition (written after a restore, deleted by eviction). */
  readonly live: string
  /** The owner epoch of the partition's current activation: its hot-tier writes are fenced by it (Partition.ts). */
  readonly owner: string
}

export const partitionKeys = (prefix: string, partition: number): PartitionKeys => {
  const base = `${prefix}:{${partition}}:`
  return {
    vertex: (id) => `${base}v:${id}`,
    out: (id) => `${base}o:${id}`,
    ids: `${base}ids`,
    reads: `${base}reads`,
    crossZoneReads: `${base}xreads`,
    live: `${base}live`,
    owner: `${base}owner`
  }
}

export const edgeMember = (label: string, dst: string): string => `${label}|${dst}`

/** Splits `label|dst` (labels never contain `|`, ids may). */
export const parseEdgeMember = (member: string): { label: string; id: string } => {
  const bar = member.indexOf("|")
  return { label: member.slice(0, bar), id: member.slice(bar + 1) }
}

/** A partition snapshot as stored in the cold tier. `vertices`: `[id, propertiesJson, edgeMembers]`. */
export interface Snapshot {
  readonly format: 1
  readonly partition: number
  readonly version: number
  readonly vertices: Array<[id: string, properties: string, edges: Array<string>]>
}

export const encodeSnapshot = (snapshot: Snapshot): Uint8Array => new TextEncoder().encode(JSON.stringify(snapshot))

/**
 * The text of `encodeSnapshot`, in pieces of `size` vertices (joined, the same JSON), so that a hot partition's
 * checkpoint can let the event loop go between them instead of encoding the whole partition at once.
 */
export function* snapshotJson(snapshot: Snapshot, size: number): Generator<string> {
  yield `{"format":${snapshot.format},"partition":${snapshot.partition},"version":${snapshot.version},"vertices":[`
  for (let i = 0; i < snapshot.vertices.length; i += size) {
    const part = JSON.stringify(snapshot.vertices.slice(i, i + size))
    yield i === 0 ? part.slice(1, -1) : `,${part.slice(1, -1)}`
  }
  yield "]}"
}

export const decodeSnapshot = (bytes: Uint8Array): Snapshot => {
  const parsed = JSON.parse(new TextDecoder().decode(bytes)) as Snapshot
  if (parsed === null || parsed.format !== 1 || !Array.isArray(parsed.vertices)) {
    throw new Error("not a partition snapshot (format 1)")
  }
  return parsed
}

/**
 * Object-store key of a snapshot: versions never overwrite each other, and the owner epoch keeps a stale owner's
 * snapshot from replacing the one of the same version the current owner wrote.
 */
export const snapshotKey = (partition: number, version: number, epoch: number): string =>
  `graph/partitions/${partition}/snapshot-${String(version).padStart(10, "0")}-e${epoch}.json`

/**
 * Temperature: requests per second, an exponentially weighted moving average updated once per window.
 * `alpha` weighs the newest window.
 */
export const nextTemperature = (previous: number, requests: number, windowMs: number, alpha = 0.5): number =>
  windowMs <= 0 ? previous : alpha * ((requests * 1000) / windowMs) + (1 - alpha) * previous

/** Defaults of `labelPropagation` (and `tessera graph rebalance`). */
export const DEFAULT_LP_ITERATIONS = 20
export const DEFAULT_LP_SEED = 1

/**
 * Communities by label propagation (Raghavan, Albert, Kumara 2007) over an undirected graph given as adjacency
 * lists of vertex indexes (an edge listed twice weighs twice). Every vertex starts with its own label; each
 * iteration visits the vertices in an order shuffled by a PRNG seeded with `seed` and gives each the label most
 * frequent among its neighbours (asynchronous updates). Ties: a vertex keeps its label when it is among the most
 * frequent, else takes one of them drawn from the same PRNG (a fixed choice such as the smallest label floods one
 * label across the bridges between communities). Stops after an iteration that changes nothing, or after `iterations`.
 * Deterministic for a graph, a seed and an iteration bound. `labels[v]` is the index of a vertex of v's community.
 */
export const labelPropagation = (
  adjacency: ReadonlyArray<ReadonlyArray<number>>,
  options: { readonly iterations: number; readonly seed: number }
): { readonly labels: Int32Array; readonly iterations: number; readonly converged: boolean } => {
  const n = adjacency.length
  const labels = Int32Array.from({ length: n }, (_, i) => i)
  const order = Int32Array.from({ length: n }, (_, i) => i)
  const random = prng(options.seed)
  const counts = new Map<number, number>()
  const tied: Array<number> = []
  let iteration = 0
  while (iteration < options.iterations) {
    iteration++
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1))
      const t = order[i]
      order[i] = order[j]
      order[j] = t
    }
    let changed = 0
    for (let k = 0; k < n; k++) {
      const v = order[k]
      const neighbours = adjacency[v]
      if (neighbours.length === 0) continue
      counts.clear()
      for (const u of neighbours) counts.set(labels[u], (counts.get(labels[u]) ?? 0) + 1)
      let bestCount = 0
      for (const count of counts.values()) if (count > bestCount) bestCount = count
      if ((counts.get(labels[v]) ?? 0) === bestCount) continue
      tied.length = 0
      for (const [label, count] of counts) if (count === bestCount) tied.push(label)
      labels[v] = tied.length === 1 ? tied[0] : tied[Math.floor(random() * tied.length)]
      changed++
    }
    if (changed === 0) return { labels, iterations: iteration, converged: true }
  }
  return { labels, iterations: iteration, converged: false }
}
