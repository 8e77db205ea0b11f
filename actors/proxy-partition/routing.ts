/**
 * Zone-local serving of the graph: the routing table a client fetches with `Graph.Routing` (the zone of each
 * partition's data, and the gateways of each zone), how a client picks a gateway from it, and how gateways announce
 * themselves. Gateways register their URL and zone in Valkey (`<prefix>:gateways`, a hash of url -> entry with an
 * expiry) every few seconds, so a table lists the gateways alive in the last `GATEWAY_TTL`.
 */
import type { ValkeyService } from "@tessera/platform/Valkey"
import { Duration, Effect, type Scope } from "effect"
import { type PlacementRule, vertexPartition as placedPartition, preferredZone } from "./core.ts"

/** How often a gateway renews its entry, and how long an entry lives without renewal. */
export const GATEWAY_RENEW = Duration.seconds(5)
export const GATEWAY_TTL = Duration.seconds(15)
/** How often a client refreshes its table when nothing goes wrong (a miss refreshes it at once). */
export const ROUTING_REFRESH = Duration.seconds(30)

/**
 * The partition of a vertex, as clients and gateways compute it: `vertexPartition` of core.ts, the id's placement key
 * (hash tag by default) when it has one, else the whole id. A vertex a rebalance moved is still addressed here.
 */
export const vertexPartition = (id: string, partitions: number, rule?: PlacementRule): number =>
  placedPartition(id, partitions, rule)

export interface GatewayEntry {
  /** Base URL clients reach the gateway at (`TESSERA_GATEWAY_URL`). */
  readonly url: string
  /** The gateway's zone (`TESSERA_ZONE`), null when it has none. */
  readonly zone: string | null
  /** Whether it reads from a Valkey replica in its own zone now (fresh, `TESSERA_VALKEY_REPLICA_URL`). */
  readonly replica: boolean
}

export interface RoutingTable {
  readonly partitions: number
  /** Zone of each partition's data and owner (`TESSERA_GRAPH_ZONES`: p -> zones[p mod n]); null: no preference. */
  readonly zones: ReadonlyArray<string | null>
  readonly gateways: ReadonlyArray<GatewayEntry>
  /** How often clients should refresh the table. */
  readonly refreshMillis: number
}

/** The zone of each partition, from `TESSERA_GRAPH_ZONES`. */
export const partitionZones = (partitions: number, zones: ReadonlyArray<string>): Array<string | null> =>
  Array.from({ length: partitions }, (_, p) => preferredZone(p, zones) ?? null)

/**
 * The zone a request reading `ids` is best served in: the zone holding most of them (a tie goes to `ownZone` when
 * it is among the tied, else to the zone seen first). Undefined when none of them has a zone.
 */
export const zoneOfIds = (
  table: Pick<RoutingTable, "partitions" | "zones">,
  ids: ReadonlyArray<string>,
  ownZone?: string | undefined
): string | undefined => {
  if (ids.length === 1) return table.zones[vertexPartition(ids[0], table.partitions)] ?? undefined
  const counts = new Map<string, number>()
  for (const id of ids) {
    const zone = table.zones[vertexPartition(id, table.partitions)]
    if (zone !== null && zone !== undefined) counts.set(zone, (counts.get(zone) ?? 0) + 1)
  }
  let best: string | undefined
  let bestCount = 0
  for (const [zone, count] of counts) {
    if (count > bestCount || (count === bestCount && zone === ownZone)) {
      best = zone
      bestCount = count
    }
  }
  return best
}

/**
 * The zone a request goes to: a read to the caller's own zone when `localReplicaReads` and a gateway there reads from
 * a fresh replica (every partition's data is then in the zone, at most the replica's lag old), anything else to the
 * zone of its vertices (`zoneOfIds`).
 */
export const zoneForRequest = (
  table: Pick<RoutingTable, "partitions" | "zones" | "gateways">,
  ids: ReadonlyArray<string>,
  options: { readonly ownZone?: string | undefined; readonly read: boolean; readonly localReplicaReads?: boolean }
): string | undefined => {
  if (options.read && options.localReplicaReads === true && options.ownZone !== undefined) {
    for (const gateway of table.gateways)
      if (gateway.zone === options.ownZone && gateway.replica) return options.ownZone
  }
  return zoneOfIds(table, ids, options.ownZone)
}

/**
 * A gateway of `zone` for a request (`spread` picks among several, e.g. a counter), or undefined when the table
 * knows none there.
 */
export const gatewayIn = (
  table: Pick<RoutingTable, "gateways">,
  zone: string | undefined,
  spread = 0
): GatewayEntry | undefined => {
  if (zone === undefined) return undefined
  const inZone = table.gateways.filter((g) => g.zone === zone)
  return inZone.length === 0 ? undefined : inZone[Math.abs(spread) % inZone.length]
}

/** The Valkey hash of gateway entries. */
export const gatewaysKey = (keyPrefix: string): string => `${keyPrefix}:gateways`

interface StoredEntry {
  readonly zone: string | null
  readonly replica: boolean
  readonly expires: number
}

/** The live entries of a `gatewaysKey` hash at `now`, sorted by URL (malformed or expired ones left out). */
export const liveGateways = (stored: Readonly<Record<string, string>>, now: number): Array<GatewayEntry> => {
  const out: Array<GatewayEntry> = []
  for (const url of Object.keys(stored).sort()) {
    let entry: StoredEntry
    try {
      entry = JSON.parse(stored[url]) as StoredEntry
    } catch {
      continue
    }
    if (typeof entry?.expires !== "number" || entry.expires <= now) continue
    out.push({ url, zone: typeof entry.zone === "string" ? entry.zone : null, replica: entry.replica === true })
  }
  return out
}

/**
 * Keeps this gateway's entry in `gatewaysKey` while the scope is open (renewed every `GATEWAY_RENEW`, removed when
 * it closes); a failed renewal is retried at the next one. `replica` is read at each renewal.
 */
export const announceGateway = (options: {
  readonly valkey: ValkeyService
  readonly keyPrefix: string
  readonly url: string
  readonly zone: string | undefined
  readonly replica: () => boolean
}): Effect.Effect<void, never, Scope.Scope> => {
  const key = gatewaysKey(options.keyPrefix)
  const renew = Effect.suspend(() =>
    options.valkey.hset(key, {
      [options.url]: JSON.stringify({
        zone: options.zone ?? null,
        replica: options.replica(),
        expires: Date.now() + Duration.toMillis(GATEWAY_TTL)
      } satisfies StoredEntry)
    })
  ).pipe(Effect.timeout(GATEWAY_RENEW), Effect.ignore)
  return Effect.gen(function* () {
    yield* renew
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(GATEWAY_RENEW), renew)))
    yield* Effect.addFinalizer(() =>
      options.valkey.hdel(key, options.url).pipe(Effect.timeout(Duration.seconds(2)), Effect.ignore)
    )
  })
}

/** Reads the table: the partitions' zones and the gateways alive now. */
export const readRoutingTable = (options: {
  readonly valkey: ValkeyService
  readonly keyPrefix: string
  readonly partitions: number
  readonly zones: ReadonlyArray<string>
}) =>
  Effect.map(
    options.valkey.hgetall(gatewaysKey(options.keyPrefix)),
    (stored): RoutingTable => ({
      partitions: options.partitions,
      zones: partitionZones(options.partitions, options.zones),
      gateways: liveGateways(stored, Date.now()),
      refreshMillis: Duration.toMillis(ROUTING_REFRESH)
    })
  )
