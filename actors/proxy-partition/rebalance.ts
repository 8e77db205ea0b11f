/**
 * `Graph.Rebalance`: communities from the stored edges, and online moves of vertices to their community's partition.
 *
 * 1. Every partition lists the vertices it holds with their out-neighbours (`Edges`, one partition at a time per
 *    `READ_CONCURRENCY`); edges are taken undirected, edges to unknown vertices are dropped.
 * 2. Label propagation (`labelPropagation`, core.ts) computes communities: visiting order and ties drawn from a PRNG
 *    seeded by `seed`, at most `iterations` rounds.
 * 3. A community's partition is the one holding most of its vertices with a placement key (they stay where their key
 *    puts them), else most of its members; ties go to the lower partition number. Capacity: a partition ends with at
 *    most `MAX_LOAD` times the mean vertices per partition (at least one community's worth); communities are placed
 *    largest first, one that does not fit its partition goes to the partition with room holding most of it, and one
 *    that fits nowhere stays where it is.
 * 4. Each vertex without a placement key that is not in its community's partition is moved by its home partition
 *    (`Move`), one at a time, so no two moves ever wait on each other. Reads and writes go on meanwhile.
 *
 * A vertex listed by two partitions (a move ran meanwhile) is left where it is. Vertices written after step 1 stay
 * where they were placed until the next run.
 */
import { Duration, Effect } from "effect"
import {
  DEFAULT_LP_ITERATIONS,
  DEFAULT_LP_SEED,
  labelPropagation,
  type PlacementRule,
  vertexPartition
} from "./core.ts"
import { GraphStorageError, InvalidRebalance, type ProxyPartition, TooManyIds } from "./protocol.ts"

/** Most vertices one rebalance holds in memory. */
const MAX_REBALANCE_VERTICES = 1_000_000
/** A partition's bound after a rebalance, as a multiple of the mean vertices per partition. */
const MAX_LOAD = 2
const MAX_ITERATIONS = 100
const READ_CONCURRENCY = 4
/** Bound on one partition's listing and on one move (a move makes a few calls of its own, each bounded). */
const CALL_TIMEOUT = Duration.seconds(60)

type PartitionClient = Effect.Success<typeof ProxyPartition.client>

const failed = (what: string) => (error: { readonly _tag: string; readonly message?: string }) =>
  error instanceof GraphStorageError
    ? error
    : new GraphStorageError({ message: `${what}: ${error._tag}${error.message ? ` (${error.message})` : ""}` })

export const rebalance = (
  client: PartitionClient,
  config: { readonly partitions: number; readonly rule: PlacementRule },
  options: {
    readonly iterations?: number | undefined
    readonly seed?: number | undefined
    readonly dryRun?: boolean | undefined
  }
) =>
  Effect.gen(function* () {
    const iterations = options.iterations ?? DEFAULT_LP_ITERATIONS
    if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_ITERATIONS) {
      return yield* new InvalidRebalance({ reason: `iterations must be 1 to ${MAX_ITERATIONS}, got ${iterations}` })
    }
    const seed = options.seed ?? DEFAULT_LP_SEED
    if (!Number.isSafeInteger(seed)) return yield* new InvalidRebalance({ reason: `seed must be an integer` })
    const { partitions, rule } = config

    // 1. The stored graph, partition by partition.
    const listed = {
      ids: [] as Array<string>,
      holder: [] as Array<number>,
      outs: [] as Array<ReadonlyArray<string>>,
      index: new Map<string, number>(),
      twice: new Set<number>()
    }
    yield* Effect.forEach(
      Array.from({ length: partitions }, (_, p) => p),
      (p) =>
        client(String(p))
          .Edges()
          .pipe(
            Effect.timeout(CALL_TIMEOUT),
            Effect.mapError(failed(`partition ${p} could not list its edges`)),
            Effect.flatMap((answer) => {
              for (const [id, neighbours] of answer) {
                const known = listed.index.get(id)
                if (known !== undefined) {
                  listed.twice.add(known)
                  continue
                }
                listed.index.set(id, listed.ids.length)
                listed.ids.push(id)
                listed.holder.push(p)
                listed.outs.push(neighbours)
              }
              return listed.ids.length > MAX_REBALANCE_VERTICES
                ? Effect.fail(new TooManyIds({ count: listed.ids.length, limit: MAX_REBALANCE_VERTICES }))
                : Effect.void
            })
          ),
      { concurrency: READ_CONCURRENCY, discard: true }
    )
    // In id order, with sorted neighbour lists: the partitions answer in any order and Valkey sets list members in
    // any order, and the communities must depend on the graph and the seed alone.
    const order = listed.ids.map((_, v) => v).sort((x, y) => (listed.ids[x] < listed.ids[y] ? -1 : 1))
    const rank = new Int32Array(order.length)
    for (let k = 0; k < order.length; k++) rank[order[k]] = k
    const ids = order.map((v) => listed.ids[v])
    const holder = order.map((v) => listed.holder[v])
    const outs = order.map((v) => [...listed.outs[v]].sort())
    const listedTwice = new Set([...listed.twice].map((v) => rank[v]))
    const index = new Map<string, number>()
    for (let v = 0; v < ids.length; v++) index.set(ids[v], v)
    const n = ids.length
    const adjacency: Array<Array<number>> = Array.from({ length: n }, () => [])
    let edges = 0
    for (let v = 0; v < n; v++) {
      for (const dst of outs[v]) {
        const u = index.get(dst)
        if (u === undefined || u === v) continue
        adjacency[v].push(u)
        adjacency[u].push(v)
        edges++
      }
    }

    // 2. Communities.
    const result = labelPropagation(adjacency, { iterations, seed })
    const labels = result.labels

    // 3. Each community's partition: by its keyed members if it has any, else by all of them.
    const keyed = ids.map((id) => rule(id) !== undefined)
    const votes = new Map<number, { keyed: Map<number, number>; all: Map<number, number> }>()
    for (let v = 0; v < n; v++) {
      let vote = votes.get(labels[v])
      if (vote === undefined) {
        vote = { keyed: new Map(), all: new Map() }
        votes.set(labels[v], vote)
      }
      vote.all.set(holder[v], (vote.all.get(holder[v]) ?? 0) + 1)
      if (keyed[v]) vote.keyed.set(holder[v], (vote.keyed.get(holder[v]) ?? 0) + 1)
    }
    const plurality = (counts: Map<number, number>) => {
      let best = -1
      let bestCount = 0
      for (const [p, count] of counts) {
        if (count > bestCount || (count === bestCount && p < best)) {
          best = p
          bestCount = count
        }
      }
      return best
    }
    // Vertices that stay put load their partitions first; then communities, largest first, within the bound.
    const fixed = (v: number) => keyed[v] || listedTwice.has(v)
    const load = new Array<number>(partitions).fill(0)
    const movable = new Map<number, number>()
    for (let v = 0; v < n; v++) {
      if (fixed(v)) load[holder[v]]++
      else movable.set(labels[v], (movable.get(labels[v]) ?? 0) + 1)
    }
    const bound = Math.max(Math.ceil((MAX_LOAD * n) / partitions), 1)
    const target = new Map<number, number>()
    for (const [label, size] of [...movable].sort((a, b) => b[1] - a[1] || a[0] - b[0])) {
      const vote = votes.get(label)
      if (vote === undefined) continue
      let choice = plurality(vote.keyed.size > 0 ? vote.keyed : vote.all)
      if (load[choice] + size > bound) {
        const roomy = new Map([...vote.all].filter(([p]) => load[p] + size <= bound))
        choice = roomy.size > 0 ? plurality(roomy) : -1
        if (choice < 0) {
          for (let p = 0; p < partitions && choice < 0; p++) if (load[p] + size <= bound) choice = p
        }
      }
      // Fits nowhere: its members stay where they are.
      if (choice < 0) {
        for (let v = 0; v < n; v++) if (labels[v] === label && !fixed(v)) load[holder[v]]++
        continue
      }
      target.set(label, choice)
      load[choice] += size
    }
    const placed = Int32Array.from({ length: n }, (_, v) =>
      fixed(v) ? holder[v] : (target.get(labels[v]) ?? holder[v])
    )
    let localBefore = 0
    let localAfter = 0
    for (let v = 0; v < n; v++) {
      for (const dst of outs[v]) {
        const u = index.get(dst)
        if (u === undefined || u === v) continue
        if (holder[u] === holder[v]) localBefore++
        if (placed[u] === placed[v]) localAfter++
      }
    }

    // 4. The moves, one at a time, each sent to the vertex's home.
    let moved = 0
    let skipped = 0
    if (options.dryRun !== true) {
      for (let v = 0; v < n; v++) {
        if (placed[v] === holder[v]) continue
        const home = vertexPartition(ids[v], partitions, rule)
        const answer = yield* client(String(home))
          .Move({ id: ids[v], to: placed[v] })
          .pipe(
            Effect.timeout(CALL_TIMEOUT),
            Effect.map((r) => (r.moved ? ("moved" as const) : ("stayed" as const))),
            Effect.catchTag("VertexNotFound", () => Effect.succeed("gone" as const)),
            Effect.mapError(failed(`moving ${JSON.stringify(ids[v])} to partition ${placed[v]}`)),
            // A move that failed midway restarts its home partition, which settles it; this run stops here.
            Effect.catchDefect((defect) =>
              Effect.fail(
                new GraphStorageError({
                  message: `moving ${JSON.stringify(ids[v])} to partition ${placed[v]} failed: ${String(defect)}`
                })
              )
            )
          )
        if (answer === "moved") moved++
        else if (answer === "gone") skipped++
      }
    }
    return {
      vertices: n,
      edges,
      communities: votes.size,
      iterations: result.iterations,
      converged: result.converged,
      localEdgesBefore: localBefore,
      localEdgesAfter: localAfter,
      moved,
      skipped
    }
  })
