/**
 * The `ProxyPartition` entity (thin handlers over `Partition.ts`), the gateway-level fan-out RPCs (`GraphRpcs`:
 * BatchGet, KHop, Stats), and the cold-tier layer chosen from config.
 */
import { join } from "node:path"
import { NodeInfo } from "@tessera/platform/NodeInfo"
import * as ObjectStore from "@tessera/platform/ObjectStore"
import { Cmd, type Command, Valkey, ValkeyReplica } from "@tessera/platform/Valkey"
import { Context, Duration, Effect, Layer, Option, Schedule, Semaphore } from "effect"
import { ClusterSchema, Entity, EntityProxyServer } from "effect/cluster"
import { SqlClient } from "effect/sql"
import { GraphConfig, type GraphConfigShape } from "./config.ts"
import {
  DEFAULT_KHOP_LIMIT,
  edgeMember,
  groupByPartition,
  labelProblem,
  MAX_BATCH,
  MAX_HOPS,
  MAX_KHOP_LIMIT,
  MAX_PROPERTIES_BYTES,
  type PlacementRule,
  parseEdgeMember,
  parseForwardMarker,
  partitionKeys,
  partitionShardGroup,
  placementProblem,
  preferredZone,
  utf8Length,
  vertexIdProblem,
  vertexPartition
} from "./core.ts"
import * as GraphMetrics from "./metrics.ts"
import { makePartition, readAllMeta, StaleOwner } from "./Partition.ts"
import {
  GraphRpcs,
  GraphStorageError,
  InvalidLabel,
  InvalidPartition,
  InvalidPlacementKey,
  InvalidRebalance,
  InvalidVertexId,
  KHopTooDeep,
  type Neighbor,
  type Properties,
  PropertiesTooLarge,
  ProxyPartition,
  TooManyIds,
  VertexNotFound,
  WrongPartition
} from "./protocol.ts"
import { rebalance } from "./rebalance.ts"
import { announceGateway, readRoutingTable } from "./routing.ts"

/**
 * How often an active partition writes last access / temperature / zone traffic and checks for idleness: every 5 s,
 * or twice per idle period when `TESSERA_GRAPH_IDLE` is shorter than 10 s.
 */
export const reportInterval = (idle: Duration.Duration): Duration.Duration =>
  Duration.min(Duration.seconds(5), Duration.divideUnsafe(idle, 2))

/**
 * `ProxyPartition` placed by zone: with `TESSERA_GRAPH_ZONES`, partition p lives in the shard group of its preferred
 * zone (`graph-<zone>`), which a runner of that zone serves at full weight and every other runner's standby identity
 * at a small one (runtime/cluster.ts). Every in-cluster client must address partitions through it: a client of the
 * bare `ProxyPartition` would address the `default` group (the entity refuses such requests). Registration needs no
 * annotation (a runner hosts whatever shards it holds).
 */
export const zonedProxyPartition = (config: Pick<GraphConfigShape, "graphZones" | "graphPartitions">) => {
  if (config.graphZones.length === 0) return ProxyPartition
  const zones = [...config.graphZones]
  const partitions = config.graphPartitions
  // Called when a layer builds, not per request: no cache needed.
  return ProxyPartition.annotate(ClusterSchema.ShardGroup, (entityId) =>
    partitionShardGroup(entityId, partitions, zones)
  )
}

/** The gateway's `ProxyPartition.*` proxy RPCs, addressed through `zonedProxyPartition`. */
export const layerProxyRpcHandlers = Layer.unwrap(
  Effect.map(GraphConfig, (config: GraphConfigShape) => EntityProxyServer.layerRpcHandlers(zonedProxyPartition(config)))
)

/**
 * One periodic hot-tier snapshot at a time per runner: with many dirty partitions a snapshot interval costs their
 * snapshots one after another, never all at once.
 */
export class SnapshotBudget extends Context.Service<SnapshotBudget, Semaphore.Semaphore>()(
  "tessera/graph/SnapshotBudget"
) {}
export const layerSnapshotBudget: Layer.Layer<SnapshotBudget> = Layer.effect(SnapshotBudget, Semaphore.make(1))

/** Lifetime of the rebalance lease without renewal (a gateway that dies mid-run frees it after this). */
const REBALANCE_LEASE = Duration.seconds(30)

/** How often a gateway adds its direct hot-tier reads to the partitions' read counters. */
const DIRECT_READS_FLUSH = Duration.seconds(1)

/** Where this partition stands for vertex ids: its number, the cluster's count and rule, the guests it holds. */
interface Placement {
  readonly partition: number
  readonly partitions: number
  readonly rule: PlacementRule
  readonly guests: ReadonlySet<string>
}

/** A vertex of this partition: homed here (`vertexPartition`), or a guest a rebalance moved here. */
const checkId = (id: string, at: Placement) => {
  const problem = vertexIdProblem(id)
  if (problem !== undefined) return new InvalidVertexId({ id, reason: problem })
  const expected = vertexPartition(id, at.partitions, at.rule)
  if (expected !== at.partition && !at.guests.has(id)) {
    return new WrongPartition({ id, partition: at.partition, expected, partitions: at.partitions })
  }
  return undefined
}

const checkIds = (ids: ReadonlyArray<string>, at: Placement) => {
  if (ids.length > MAX_BATCH) return new TooManyIds({ count: ids.length, limit: MAX_BATCH })
  for (const id of ids) {
    const error = checkId(id, at)
    if (error !== undefined) return error
  }
  return undefined
}

/** A vertex that may be created (a put, an edge's ends): its placement key, if any, must be in the grammar. */
const checkPlacement = (id: string, rule: PlacementRule) => {
  const problem = placementProblem(id, rule)
  return problem === undefined ? undefined : new InvalidPlacementKey({ id, key: rule(id) ?? "", reason: problem })
}

/** Bound on a call from one partition to another (a moved vertex's holder, a rebalance copy). */
const PEER_TIMEOUT = Duration.seconds(10)

/** Errors of a vertex's holder that its home passes on as they are; anything else is a storage error. */
const passedOn = new Set(["VertexNotFound", "PropertiesTooLarge", "InvalidLabel", "InvalidPlacementKey", "TooManyIds"])
type PassedOn = VertexNotFound | PropertiesTooLarge | InvalidLabel | InvalidPlacementKey | TooManyIds

/** A call to partition `peer`, bounded; its errors as the calling partition answers them. */
const viaPeer = <A, E extends { readonly _tag: string }, R>(
  peer: number,
  call: Effect.Effect<A, E, R>
): Effect.Effect<A, Extract<E, PassedOn> | GraphStorageError, R> =>
  call.pipe(
    Effect.timeout(PEER_TIMEOUT),
    Effect.mapError((error: { readonly _tag: string }) =>
      passedOn.has(error._tag)
        ? (error as Extract<E, PassedOn>)
        : error instanceof GraphStorageError
          ? error
          : new GraphStorageError({ message: `partition ${peer} failed: ${error._tag}` })
    )
  )

const checkLabel = (label: string | undefined) => {
  if (label === undefined) return undefined
  const problem = labelProblem(label)
  return problem === undefined ? undefined : new InvalidLabel({ label, reason: problem })
}

const parseProperties = (json: string): Properties => JSON.parse(json) as Properties

/** Counts every call of each handler in `tessera_graph_requests_total{op}` (op: the RPC tag). */
const counted = <H extends Record<string, (...args: Array<any>) => unknown>>(handlers: H): H => {
  const out: Record<string, unknown> = {}
  for (const [op, handler] of Object.entries(handlers)) {
    const calls = GraphMetrics.requests.labels({ op })
    out[op] = (...args: Array<any>) => {
      calls.inc()
      return handler(...args)
    }
  }
  return out as H
}

export const ProxyPartitionEntityLayer = ProxyPartition.toLayer(
  Effect.gen(function* () {
    const config = yield* GraphConfig
    const node = yield* NodeInfo
    const valkey = yield* Valkey
    const sql = yield* SqlClient.SqlClient
    const cold = yield* ObjectStore.ObjectStore
    const snapshotBudget = yield* SnapshotBudget
    const address = yield* Entity.CurrentAddress
    const runner = yield* Entity.CurrentRunnerAddress
    const runnerName = `${runner.host}:${runner.port}`
    const partitions = config.graphPartitions
    const partition = /^\d+$/.test(address.entityId) ? Number(address.entityId) : -1
    const zones = config.graphZones
    const expectedGroup = partitionShardGroup(address.entityId, partitions, zones)

    // A partition addressed in another shard group than its zone's could run twice (once per group): refuse.
    if (address.shardId.group !== expectedGroup) {
      const misplaced = Effect.fail(
        new GraphStorageError({
          message: `partition ${address.entityId} was addressed in shard group ${address.shardId.group}, expected ${expectedGroup}: TESSERA_GRAPH_ZONES or TESSERA_GRAPH_PARTITIONS differ between runners`
        })
      )
      return ProxyPartition.of({
        PutVertex: () => misplaced,
        GetVertex: () => misplaced,
        GetMany: () => misplaced,
        DeleteVertex: () => misplaced,
        AddEdge: () => misplaced,
        RemoveEdge: () => misplaced,
        Neighbors: () => misplaced,
        NeighborsMany: () => misplaced,
        Demote: () => misplaced,
        Info: () => misplaced,
        Move: () => misplaced,
        Adopt: () => misplaced,
        Release: () => misplaced,
        Edges: () => misplaced
      })
    }

    if (partition < 0 || partition >= partitions) {
      const invalid = Effect.fail(new InvalidPartition({ entityId: address.entityId, partitions }))
      return ProxyPartition.of({
        PutVertex: () => invalid,
        GetVertex: () => invalid,
        GetMany: () => invalid,
        DeleteVertex: () => invalid,
        AddEdge: () => invalid,
        RemoveEdge: () => invalid,
        Neighbors: () => invalid,
        NeighborsMany: () => invalid,
        Demote: () => invalid,
        Info: () => invalid,
        Move: () => invalid,
        Adopt: () => invalid,
        Release: () => invalid,
        Edges: () => invalid
      })
    }

    // Without its metadata the partition cannot serve: the entity fails to start and the next request retries.
    const zone = preferredZone(partition, zones)
    const runnerZone = Option.getOrUndefined(node.zone)
    const partitionState = yield* Effect.orDie(
      makePartition({
        partition,
        keyPrefix: config.graphKeyPrefix,
        valkey,
        sql,
        cold,
        preferredZone: zone,
        runnerZone
      })
    )
    // A stale owner stands down: the request that found out dies, so the entity manager ends this activation (a new
    // one claims the next epoch); the partition's current owner holds the metadata.
    const standDown = (error: StaleOwner) =>
      Effect.andThen(
        Effect.logWarning(`${error.message}; this activation stands down`),
        Effect.die(new Error(`${error.message}; this activation stands down`))
      )
    const standingDown = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, Exclude<E, StaleOwner>, R> =>
      Effect.catch(effect, (error) =>
        error instanceof StaleOwner ? standDown(error) : Effect.fail(error as Exclude<E, StaleOwner>)
      )
    const p = {
      ...partitionState,
      run: <A, E, R>(effect: Effect.Effect<A, E, R>) => standingDown(partitionState.run(effect)),
      write: <A, E, R>(effect: Effect.Effect<A, E, R>) => standingDown(partitionState.write(effect)),
      demote: standingDown(partitionState.demote)
    }
    const idleMillis = Duration.toMillis(config.graphIdle)
    yield* Effect.forkScoped(
      Effect.gen(function* () {
        // A hot partition whose keys Valkey lost is restored from its last snapshot before anything else.
        yield* Effect.catchTag(partitionState.recover, "GraphStorageError", (error) =>
          Effect.logWarning(`graph partition ${partition}: hot-tier check failed: ${error.message}`)
        )
        yield* Effect.catchTag(partitionState.report, "GraphStorageError", () => Effect.void)
        if (p.meta().tier === "hot" && p.idleMillis() >= idleMillis) {
          yield* Effect.catchTag(partitionState.demote, "GraphStorageError", () => Effect.void)
        }
      }).pipe(
        Effect.delay(reportInterval(config.graphIdle)),
        Effect.forever,
        // Stale: nothing more to report; the next request ends the activation.
        Effect.catchTag("StaleOwner", (error) => Effect.logWarning(`${error.message}; reports stop`))
      )
    )
    const snapshotInterval = config.graphSnapshotInterval
    if (!Duration.isZero(snapshotInterval)) {
      // Partitions of a runner start their intervals at staggered offsets, so their checkpoints spread out.
      const offset = Duration.times(snapshotInterval, (partition + 1) / partitions)
      yield* Effect.forkScoped(
        snapshotBudget
          .withPermits(1)(partitionState.checkpoint)
          .pipe(
            Effect.catchTag("GraphStorageError", (error) =>
              Effect.logWarning(
                `graph partition ${partition}: checkpoint failed (retried next interval): ${error.message}`
              )
            ),
            Effect.andThen(Effect.sleep(snapshotInterval)),
            Effect.forever,
            Effect.delay(offset),
            Effect.catchTag("StaleOwner", (error) => Effect.logWarning(`${error.message}; checkpoints stop`))
          )
      )
    }
    yield* Effect.addFinalizer(() => Effect.andThen(Effect.ignore(p.report), Effect.sync(p.released)))

    const rule = config.graphPlacement
    const at: Placement = { partition, partitions, rule, guests: p.guests }
    const peers = yield* zonedProxyPartition(config).client
    const peer = (holder: number) => peers(String(holder))
    const homedHere = (id: string) => vertexPartition(id, partitions, rule) === partition
    /**
     * Routes a request on one vertex: a guest is served here; a vertex homed here is served here unless a rebalance
     * moved it, then by its holder. The move lock is held throughout, so no move of it runs in between.
     */
    const route = <A, E, R, E2, R2>(
      id: string,
      local: Effect.Effect<A, E, R>,
      moved: (holder: number) => Effect.Effect<A, E2, R2>
    ): Effect.Effect<A, E | E2 | GraphStorageError, R | R2> =>
      p.guests.has(id)
        ? local
        : p.homed(
            Effect.suspend(() => {
              const holder = p.forwards.get(id)
              // Through `run`: a cold home is promoted, so its marker serves the next gateway read directly.
              return holder === undefined
                ? (local as Effect.Effect<A, E | E2 | GraphStorageError, R | R2>)
                : p.run(moved(holder))
            })
          )
    /**
     * Several vertices of this partition: those served here go to `local` together; moved ones to their holders,
     * grouped; answers back in input order.
     */
    const routeMany = <A, E, R, E2, R2>(
      ids: ReadonlyArray<string>,
      local: (ids: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<A>, E, R>,
      moved: (holder: number, ids: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<A>, E2, R2>
    ): Effect.Effect<Array<A>, E | E2 | GraphStorageError, R | R2> => {
      const serve = (which: ReadonlyArray<string>, positions: ReadonlyArray<number>, out: Array<A>) => {
        const here: Array<string> = []
        const herePositions: Array<number> = []
        const away = new Map<number, [Array<string>, Array<number>]>()
        for (let i = 0; i < which.length; i++) {
          const holder = p.guests.has(which[i]) ? undefined : p.forwards.get(which[i])
          if (holder === undefined) {
            here.push(which[i])
            herePositions.push(positions[i])
          } else {
            const group = away.get(holder)
            if (group === undefined) away.set(holder, [[which[i]], [positions[i]]])
            else {
              group[0].push(which[i])
              group[1].push(positions[i])
            }
          }
        }
        const fill = (positions: ReadonlyArray<number>) => (values: ReadonlyArray<A>) => {
          for (let i = 0; i < values.length; i++) out[positions[i]] = values[i]
        }
        return Effect.all(
          [
            here.length === 0 ? Effect.void : Effect.map(local(here), fill(herePositions)),
            Effect.forEach(away, ([holder, [group, at]]) => Effect.map(p.run(moved(holder, group)), fill(at)), {
              concurrency: "unbounded",
              discard: true
            })
          ],
          { concurrency: "unbounded", discard: true }
        )
      }
      return Effect.suspend(() => {
        const out = new Array<A>(ids.length)
        const positions = ids.map((_, i) => i)
        // Guests and vertices homed here never share a request in practice (homes forward guests alone).
        if (ids.every((id) => p.guests.has(id))) return Effect.as(serve(ids, positions, out), out)
        return Effect.as(p.homed(serve(ids, positions, out)), out)
      })
    }
    const recordMove = (move: { readonly id: string; readonly holder: number; readonly stale: number | null }) =>
      standingDown(p.recordMove(move))
    const forgetMove = (id: string) => standingDown(p.forgetMove(id))

    const switched = (id: string, from: number, to: number, json: string, members: ReadonlyArray<string>) =>
      Effect.gen(function* () {
        yield* recordMove({ id, holder: from, stale: to })
        if (to === partition) {
          // The home's key turns from the marker into the properties: gateways read here from now on.
          yield* standingDown(p.hot.adopt(id, json, members))
        } else {
          const edges = members.map(parseEdgeMember)
          yield* viaPeer(to, peer(to).Adopt({ id, properties: parseProperties(json), edges }))
        }
        yield* recordMove({ id, holder: to, stale: from })
        if (to === partition) p.forwards.delete(id)
        else {
          p.forwards.set(id, to)
          yield* standingDown(p.hot.forwardTo([[id, to]]))
        }
        if (from !== partition) yield* viaPeer(from, peer(from).Release({ id }))
        if (to === partition) yield* forgetMove(id)
        else yield* recordMove({ id, holder: to, stale: null })
        GraphMetrics.moves.inc()
        return { moved: true, from, to }
      })

    /**
     * Moves a vertex homed here to partition `to`, online. Its requests wait on the move lock meanwhile; reads through
     * gateways keep finding one complete copy: the old one until the home's marker (or key) switches, the new one
     * after, and the old copy goes last. Each step is recorded first in the fenced row, so a stale owner changes
     * nothing and an interrupted move is settled by the next activation (`settle`).
     */
    const move = (id: string, to: number) =>
      p.moving(
        p.write(
          // Once begun, a move runs to its end (or its first failure): a caller gone away must not leave it half done.
          Effect.uninterruptible(
            Effect.gen(function* () {
              // An unfinished move of this vertex first: this move rewrites its row, which names a copy to drop.
              yield* settleMove(id)
              const from = p.forwards.get(id) ?? partition
              if (from === to) return { moved: false, from, to }
              let json: string
              let members: Array<string>
              if (from === partition) {
                const found = yield* p.hot.get(id)
                if (found === null || parseForwardMarker(found) !== undefined) return yield* new VertexNotFound({ id })
                json = found
                members = ((yield* p.hot.neighbors(id, undefined)) ?? []).map((n) => edgeMember(n.label, n.id))
              } else {
                const vertex = yield* viaPeer(from, peer(from).GetVertex({ id }))
                json = JSON.stringify(vertex.properties)
                const neighbors = yield* viaPeer(from, peer(from).Neighbors({ id })).pipe(
                  Effect.catchTag("InvalidLabel", (error) =>
                    Effect.fail(new GraphStorageError({ message: error.reason }))
                  )
                )
                members = neighbors.map((n) => edgeMember(n.label, n.id))
              }
              // From here on a failure leaves the move half done: the activation restarts, and the next one
              // rebuilds the markers from the rows and drops the copy the row names (`settle`).
              return yield* Effect.catch(switched(id, from, to, json, members), (error) =>
                Effect.die(
                  new Error(
                    `graph partition ${partition}: moving ${id} to ${to} failed midway (${error._tag}); restarting to settle it`
                  )
                )
              )
            })
          )
        )
      )
    /**
     * Settles the move of `id` this home left unfinished (a crash, a timeout), if any: drops the copy the row names,
     * then settles the row. Runs under the move lock, so the row read at activation is still the vertex's latest: a
     * move or delete of the id settles it first, and a settle after one (the row since rewritten) would release the
     * copy the move just made and point the row back at the old holder.
     */
    const settleMove = (id: string) =>
      Effect.gen(function* () {
        const row = p.unfinished.get(id)
        if (row === undefined) return
        if (row.stale !== null && row.stale !== row.holder && row.stale !== partition) {
          yield* viaPeer(row.stale, peer(row.stale).Release({ id: row.id }))
        }
        if (row.holder === partition) yield* forgetMove(row.id)
        else yield* recordMove({ id: row.id, holder: row.holder, stale: null })
        p.unfinished.delete(id)
      })
    const settle = Effect.suspend(() =>
      Effect.forEach([...p.unfinished.keys()], (id) => p.moving(settleMove(id)), { discard: true })
    )
    if (p.unfinished.size > 0) {
      yield* Effect.forkScoped(
        settle.pipe(
          Effect.retry({ schedule: Schedule.spaced(Duration.seconds(1)), times: 30 }),
          Effect.catchCause((cause) =>
            Effect.logWarning(`graph partition ${partition}: unfinished moves not settled: ${cause}`)
          )
        )
      )
    }

    const putLocal = (id: string, json: string) => p.write(Effect.map(p.hot.put(id, json), (created) => ({ created })))
    const getLocal = (id: string) =>
      p.run(
        Effect.flatMap(p.hot.get(id), (json) =>
          json === null || parseForwardMarker(json) !== undefined
            ? Effect.fail(new VertexNotFound({ id }))
            : Effect.succeed({ id, properties: parseProperties(json) })
        )
      )

    return ProxyPartition.of(
      counted({
        PutVertex: ({ payload }) => {
          const bad = checkId(payload.id, at) ?? checkPlacement(payload.id, rule)
          if (bad !== undefined) return Effect.fail(bad)
          const json = JSON.stringify(payload.properties)
          const bytes = utf8Length(json)
          if (bytes > MAX_PROPERTIES_BYTES) {
            return Effect.fail(new PropertiesTooLarge({ id: payload.id, bytes, limit: MAX_PROPERTIES_BYTES }))
          }
          return route(payload.id, putLocal(payload.id, json), (holder) =>
            viaPeer(holder, peer(holder).PutVertex(payload))
          )
        },
        GetVertex: ({ payload }) => {
          const bad = checkId(payload.id, at)
          if (bad !== undefined) return Effect.fail(bad)
          return route(payload.id, getLocal(payload.id), (holder) => viaPeer(holder, peer(holder).GetVertex(payload)))
        },
        GetMany: ({ payload }) => {
          const bad = checkIds(payload.ids, at)
          if (bad !== undefined) return Effect.fail(bad)
          return routeMany(
            payload.ids,
            (ids) =>
              p.run(
                Effect.map(p.hot.getMany(ids), (values) =>
                  values.map((json) =>
                    json === null || parseForwardMarker(json) !== undefined ? null : parseProperties(json)
                  )
                )
              ),
            (holder, ids) => viaPeer(holder, peer(holder).GetMany({ ids }))
          )
        },
        DeleteVertex: ({ payload }) => {
          const bad = checkId(payload.id, at)
          if (bad !== undefined) return Effect.fail(bad)
          const deleteLocal = p.write(
            Effect.flatMap(p.hot.delete(payload.id), (deleted) =>
              deleted ? Effect.succeed({ deleted }) : Effect.fail(new VertexNotFound({ id: payload.id }))
            )
          )
          return route(
            payload.id,
            Effect.tap(deleteLocal, () =>
              Effect.sync(() => {
                p.guests.delete(payload.id)
              })
            ),
            (holder) =>
              // Gone from its holder, then home again with nothing: a later put creates it here.
              Effect.gen(function* () {
                // The row rewritten below must not forget a copy an unfinished move left (nor be settled back after).
                yield* settleMove(payload.id)
                const result = yield* viaPeer(holder, peer(holder).DeleteVertex(payload))
                yield* recordMove({ id: payload.id, holder: partition, stale: holder })
                p.forwards.delete(payload.id)
                yield* standingDown(p.hot.release(payload.id))
                yield* forgetMove(payload.id)
                return result
              })
          )
        },
        AddEdge: ({ payload }) => {
          const bad =
            checkId(payload.src, at) ??
            checkLabel(payload.label) ??
            (vertexIdProblem(payload.dst) === undefined
              ? undefined
              : new InvalidVertexId({ id: payload.dst, reason: vertexIdProblem(payload.dst) ?? "" })) ??
            checkPlacement(payload.dst, rule)
          if (bad !== undefined) return Effect.fail(bad)
          return route(
            payload.src,
            p.write(
              Effect.gen(function* () {
                if (!(yield* p.hot.exists(payload.src))) return yield* new VertexNotFound({ id: payload.src })
                return { added: yield* p.hot.addEdge(payload.src, payload.label, payload.dst) }
              })
            ),
            (holder) => viaPeer(holder, peer(holder).AddEdge(payload))
          )
        },
        RemoveEdge: ({ payload }) => {
          const bad = checkId(payload.src, at) ?? checkLabel(payload.label)
          if (bad !== undefined) return Effect.fail(bad)
          return route(
            payload.src,
            p.write(Effect.map(p.hot.removeEdge(payload.src, payload.label, payload.dst), (removed) => ({ removed }))),
            (holder) => viaPeer(holder, peer(holder).RemoveEdge(payload))
          )
        },
        Neighbors: ({ payload }) => {
          const bad = checkId(payload.id, at) ?? checkLabel(payload.label)
          if (bad !== undefined) return Effect.fail(bad)
          return route(
            payload.id,
            p.run(
              Effect.flatMap(p.hot.neighbors(payload.id, payload.label), (found) =>
                found === undefined ? Effect.fail(new VertexNotFound({ id: payload.id })) : Effect.succeed(found)
              )
            ),
            (holder) => viaPeer(holder, peer(holder).Neighbors(payload))
          )
        },
        NeighborsMany: ({ payload }) => {
          const bad = checkIds(payload.ids, at) ?? checkLabel(payload.label)
          if (bad !== undefined) return Effect.fail(bad)
          return routeMany(
            payload.ids,
            (ids) => p.run(p.hot.neighborsMany(ids, payload.label)),
            (holder, ids) => viaPeer(holder, peer(holder).NeighborsMany({ ids, label: payload.label }))
          )
        },
        Demote: () => p.demote,
        Info: () =>
          p.run(
            Effect.map(p.hot.count, (vertices) => ({
              partition,
              tier: p.meta().tier,
              vertices,
              version: p.meta().version,
              runner: runnerName,
              zone: runnerZone ?? null,
              preferredZone: zone ?? null
            }))
          ),
        Move: ({ payload }) => {
          const bad =
            vertexIdProblem(payload.id) === undefined
              ? homedHere(payload.id)
                ? undefined
                : new WrongPartition({
                    id: payload.id,
                    partition,
                    expected: vertexPartition(payload.id, partitions, rule),
                    partitions
                  })
              : new InvalidVertexId({ id: payload.id, reason: vertexIdProblem(payload.id) ?? "" })
          if (bad !== undefined) return Effect.fail(bad)
          if (!Number.isInteger(payload.to) || payload.to < 0 || payload.to >= partitions) {
            return Effect.fail(new InvalidPartition({ entityId: String(payload.to), partitions }))
          }
          return move(payload.id, payload.to)
        },
        Adopt: ({ payload }) => {
          const problem = vertexIdProblem(payload.id)
          if (problem !== undefined) return Effect.fail(new InvalidVertexId({ id: payload.id, reason: problem }))
          // The home keeps its own vertices (a move home writes them there itself).
          if (homedHere(payload.id)) {
            return Effect.fail(new WrongPartition({ id: payload.id, partition, expected: partition, partitions }))
          }
          const members = payload.edges.map((edge) => edgeMember(edge.label, edge.id))
          return Effect.andThen(
            Effect.sync(() => {
              p.guests.add(payload.id)
            }),
            p.write(Effect.as(p.hot.adopt(payload.id, JSON.stringify(payload.properties), members), { adopted: true }))
          )
        },
        Release: ({ payload }) => {
          const problem = vertexIdProblem(payload.id)
          if (problem !== undefined) return Effect.fail(new InvalidVertexId({ id: payload.id, reason: problem }))
          if (homedHere(payload.id)) {
            return Effect.fail(new WrongPartition({ id: payload.id, partition, expected: partition, partitions }))
          }
          return Effect.tap(p.write(Effect.map(p.hot.release(payload.id), (released) => ({ released }))), () =>
            Effect.sync(() => {
              p.guests.delete(payload.id)
            })
          )
        },
        Edges: () =>
          p.run(
            Effect.gen(function* () {
              const ids = yield* p.hot.ids
              const out: Array<readonly [string, ReadonlyArray<string>]> = []
              for (let i = 0; i < ids.length; i += MAX_BATCH) {
                const chunk = ids.slice(i, i + MAX_BATCH)
                const lists = yield* p.hot.neighborsMany(chunk, undefined)
                for (let k = 0; k < chunk.length; k++) out.push([chunk[k], lists[k]] as const)
              }
              return out
            })
          )
      })
    )
  }),
  { concurrency: "unbounded" }
)

/** The cold tier from config: S3 for `TESSERA_GRAPH_COLD=s3://...`, otherwise a local folder. */
export const layerColdTier: Layer.Layer<ObjectStore.ObjectStore, ObjectStore.ObjectStoreError, GraphConfig | NodeInfo> =
  Layer.unwrap(
    Effect.gen(function* () {
      const config = yield* GraphConfig
      const node = yield* NodeInfo
      const target = Option.getOrElse(config.graphCold, () => join(node.dataDir, "graph-cold"))
      const s3 = ObjectStore.parseS3Url(target)
      if (s3 === undefined) return ObjectStore.layerLocal({ root: target })
      return ObjectStore.layerS3({
        bucket: s3.bucket,
        prefix: s3.prefix,
        endpoint: Option.getOrUndefined(config.s3Endpoint)
      })
    })
  )

/** The entity with its cold tier (its tables are the module's migrations, run by the host first). */
export const layer = ProxyPartitionEntityLayer.pipe(Layer.provide(Layer.merge(layerColdTier, layerSnapshotBudget)))

/** Gateway handlers of `GraphRpcs`: fan out over partitions and gather. */
export const layerGraphRpcs = GraphRpcs.toLayer(
  Effect.gen(function* () {
    const config = yield* GraphConfig
    const node = yield* NodeInfo
    const sql = yield* SqlClient.SqlClient
    const valkey = yield* Valkey
    const makeClient = yield* zonedProxyPartition(config).client
    const partitions = config.graphPartitions
    const rule = config.graphPlacement
    const keysOf = Array.from({ length: partitions }, (_, p) => partitionKeys(config.graphKeyPrefix, p))
    const direct = Effect.mapError((e: { readonly message: string }) => new GraphStorageError({ message: e.message }))
    // Direct reads tolerate the replica's bounded staleness: a miss there is asked of the owner (primary).
    const replica = yield* Effect.serviceOption(ValkeyReplica)
    const reads = Option.match(replica, {
      onNone: () => valkey,
      onSome: (r) => ({
        mget: (...keys: ReadonlyArray<string>) => r.read((v) => v.mget(...keys)),
        pipeline: <const Cs extends ReadonlyArray<Command>>(commands: Cs) => r.read((v) => v.pipeline(commands))
      })
    })
    const gatewayUrl = Option.getOrUndefined(node.gatewayUrl)
    if (gatewayUrl !== undefined) {
      yield* announceGateway({
        valkey,
        keyPrefix: config.graphKeyPrefix,
        url: gatewayUrl,
        zone: Option.getOrUndefined(node.zone),
        replica: () => Option.match(replica, { onNone: () => false, onSome: (r) => r.stats().fresh })
      })
    }
    // Reads served here straight from the hot tier, per partition, added to the partitions' `reads` counters
    // once a second (the owners take them for temperature and idleness) instead of one INCRBY per request.
    const directReads = new Float64Array(partitions)
    // Zone accounting of those reads, by this gateway's zone: 0 no preferred zone, 1 same zone, 2 another zone.
    const runnerZone = Option.getOrUndefined(node.zone)
    const zoneOf = Uint8Array.from({ length: partitions }, (_, p) => {
      const zone = preferredZone(p, config.graphZones)
      return zone === undefined ? 0 : zone === runnerZone ? 1 : 2
    })
    const flushDirectReads = Effect.suspend(() => {
      const commands: Array<Command> = []
      for (let p = 0; p < partitions; p++) {
        if (directReads[p] === 0) continue
        commands.push(Cmd.incrby(keysOf[p].reads, directReads[p]))
        if (zoneOf[p] === 1) GraphMetrics.gatewaySameZone.inc(directReads[p])
        else if (zoneOf[p] === 2) {
          GraphMetrics.gatewayCrossZone.inc(directReads[p])
          commands.push(Cmd.incrby(keysOf[p].crossZoneReads, directReads[p]))
        }
        directReads[p] = 0
      }
      return commands.length === 0 ? Effect.void : Effect.ignore(valkey.pipeline(commands))
    })
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(DIRECT_READS_FLUSH), flushDirectReads)))
    yield* Effect.addFinalizer(() => flushDirectReads)
    // Cluster failures (mailbox full, runner unavailable, ...) reach clients as a retryable storage error.
    const wireTags = new Set(["InvalidVertexId", "TooManyIds", "WrongPartition", "InvalidPartition", "InvalidLabel"])
    const toWire = <E extends { readonly _tag: string }>(error: E) =>
      wireTags.has(error._tag) || error instanceof GraphStorageError
        ? (error as unknown as
            | InvalidVertexId
            | TooManyIds
            | GraphStorageError
            | WrongPartition
            | InvalidPartition
            | InvalidLabel)
        : new GraphStorageError({ message: `partition unreachable: ${error._tag}` })

    const getMany = (partition: number, ids: ReadonlyArray<string>) =>
      Effect.mapError(makeClient(String(partition)).GetMany({ ids }), toWire)

    // One rebalance at a time in the cluster: two would run moves at once, and two moves between the same pair of
    // partitions could wait on each other until their calls time out. A Valkey lease, renewed while the run lasts.
    const leaseKey = `${config.graphKeyPrefix}:rebalance`
    const leaseMillis = Duration.toMillis(REBALANCE_LEASE)
    const withRebalanceLease = <A, E, R>(run: Effect.Effect<A, E, R>) =>
      Effect.scoped(
        Effect.gen(function* () {
          const token = `${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`
          const won = yield* direct(valkey.set(leaseKey, token, { nx: true, px: leaseMillis }))
          if (!won) {
            return yield* new InvalidRebalance({ reason: "another rebalance is running (one at a time per cluster)" })
          }
          yield* Effect.addFinalizer(() =>
            Effect.ignore(
              Effect.flatMap(valkey.get(leaseKey), (held) => (held === token ? valkey.del(leaseKey) : Effect.void))
            )
          )
          yield* Effect.forkScoped(
            Effect.forever(
              Effect.andThen(
                Effect.sleep(Duration.divideUnsafe(REBALANCE_LEASE, 3)),
                Effect.ignore(
                  Effect.flatMap(valkey.get(leaseKey), (held) =>
                    held === token ? valkey.pexpire(leaseKey, leaseMillis) : Effect.void
                  )
                )
              )
            )
          )
          return yield* run
        })
      )

    const neighborsMany = (partition: number, ids: ReadonlyArray<string>, label: string | undefined) =>
      Effect.mapError(makeClient(String(partition)).NeighborsMany({ ids, label }), toWire)

    /**
     * The part of a BatchGet past its first MGET: ids forwarded by a rebalance are read from their holders in a
     * second MGET, and what is still missing (cold partitions, partitions being demoted, unknown ids) is asked of
     * the owning entities (which promote cold partitions). `out` holds the hits so far, `null` elsewhere.
     */
    const batchGetRest = (
      ids: ReadonlyArray<string>,
      owners: Int32Array,
      values: ReadonlyArray<string | null>,
      out: Array<Properties | null>,
      hits: number
    ) =>
      Effect.gen(function* () {
        let hitCount = hits
        // Misses by home partition: [missing ids, their positions].
        const missing = new Map<number, [Array<string>, Array<number>]>()
        const miss = (i: number) => {
          const group = missing.get(owners[i])
          if (group === undefined) missing.set(owners[i], [[ids[i]], [i]])
          else {
            group[0].push(ids[i])
            group[1].push(i)
          }
        }
        // Vertices a rebalance moved: positions and holders.
        const moved: Array<number> = []
        const holders: Array<number> = []
        for (let i = 0; i < ids.length; i++) {
          const value = values[i]
          if (value === null) miss(i)
          else if (value.charCodeAt(0) === 0x40) {
            const holder = parseForwardMarker(value)
            if (holder === undefined || holder >= partitions) miss(i)
            else {
              moved.push(i)
              holders.push(holder)
            }
          }
        }
        if (moved.length > 0) {
          const movedValues = yield* direct(reads.mget(...moved.map((i, k) => keysOf[holders[k]].vertex(ids[i]))))
          for (let k = 0; k < moved.length; k++) {
            const value = movedValues[k]
            // Gone from the holder (moved on, or cold): the home answers, through the move lock.
            if (value === null || value.charCodeAt(0) === 0x40) miss(moved[k])
            else {
              out[moved[k]] = JSON.parse(value) as Properties
              directReads[holders[k]]++
              hitCount++
            }
          }
        }
        if (hitCount > 0) GraphMetrics.gatewayHits.inc(hitCount)
        if (hitCount < ids.length) GraphMetrics.gatewayMisses.inc(ids.length - hitCount)
        yield* Effect.forEach(
          missing,
          ([partition, [missIds, positions]]) =>
            Effect.map(getMany(partition, missIds), (found) => {
              for (let i = 0; i < found.length; i++) out[positions[i]] = found[i]
            }),
          { concurrency: "unbounded", discard: true }
        )
        return out
      })

    const edgesOf = (members: ReadonlyArray<string>, label: string | undefined) => {
      const found: Array<Neighbor> = []
      for (const member of members) {
        const edge = parseEdgeMember(member)
        if (label === undefined || edge.label === label) found.push(edge)
      }
      return found
    }
    // Not hot here (cold, demoted, unknown, or forwarded to a holder that lost it): the owner answers.
    const neighborsFromOwner = (home: number, id: string, label: string | undefined) => {
      GraphMetrics.gatewayMisses.inc()
      return Effect.mapError(makeClient(String(home)).Neighbors({ id, label }), (error) =>
        error._tag === "VertexNotFound" ? error : toWire(error)
      )
    }

    return GraphRpcs.of(
      counted({
        // The common case, every id hot and in place, is one MGET and a synchronous pass over its reply: no
        // generator, no fan-out effect. Moved and missing ids take `batchGetRest`.
        "Graph.BatchGet": ({ ids }) => {
          if (ids.length > MAX_BATCH) return Effect.fail(new TooManyIds({ count: ids.length, limit: MAX_BATCH }))
          for (let i = 0; i < ids.length; i++) {
            const problem = vertexIdProblem(ids[i])
            if (problem !== undefined) return Effect.fail(new InvalidVertexId({ id: ids[i], reason: problem }))
          }
          if (ids.length === 0) return Effect.succeed([])
          // One MGET of every id (Valkey Cluster: split per slot by the Valkey layer, one slot per partition).
          const owners = new Int32Array(ids.length)
          const names = new Array<string>(ids.length)
          for (let i = 0; i < ids.length; i++) {
            const partition = vertexPartition(ids[i], partitions, rule)
            owners[i] = partition
            names[i] = keysOf[partition].vertex(ids[i])
          }
          return Effect.flatMap(direct(reads.mget(...names)), (values) => {
            const out = new Array<Properties | null>(ids.length)
            let hitCount = 0
            let rest = false
            for (let i = 0; i < ids.length; i++) {
              const value = values[i]
              if (value !== null && value.charCodeAt(0) !== 0x40) {
                out[i] = JSON.parse(value) as Properties
                directReads[owners[i]]++
                hitCount++
              } else {
                out[i] = null
                rest = true
              }
            }
            if (!rest) {
              GraphMetrics.gatewayHits.inc(hitCount)
              return Effect.succeed(out)
            }
            return batchGetRest(ids, owners, values, out, hitCount)
          })
        },
        "Graph.Neighbors": ({ id, label }) => {
          const problem = vertexIdProblem(id)
          if (problem !== undefined) return Effect.fail(new InvalidVertexId({ id, reason: problem }))
          const bad = checkLabel(label)
          if (bad !== undefined) return Effect.fail(bad)
          const home = vertexPartition(id, partitions, rule)
          // GET, not EXISTS: a vertex a rebalance moved has a forward marker here, followed once.
          return Effect.flatMap(
            direct(reads.pipeline([Cmd.get(keysOf[home].vertex(id)), Cmd.smembers(keysOf[home].out(id))])),
            ([value, members]) => {
              if (value !== null && value.charCodeAt(0) !== 0x40) {
                directReads[home]++
                GraphMetrics.gatewayHits.inc()
                return Effect.succeed(edgesOf(members, label))
              }
              const holder = value === null ? undefined : parseForwardMarker(value)
              if (holder === undefined || holder >= partitions) return neighborsFromOwner(home, id, label)
              return Effect.flatMap(
                direct(reads.pipeline([Cmd.get(keysOf[holder].vertex(id)), Cmd.smembers(keysOf[holder].out(id))])),
                ([moved, movedMembers]) => {
                  if (moved === null || parseForwardMarker(moved) !== undefined)
                    return neighborsFromOwner(home, id, label)
                  directReads[holder]++
                  GraphMetrics.gatewayHits.inc()
                  return Effect.succeed(edgesOf(movedMembers, label))
                }
              )
            }
          )
        },
        "Graph.KHop": ({ id, k, label, limit }) =>
          Effect.gen(function* () {
            if (k < 1 || k > MAX_HOPS) return yield* new KHopTooDeep({ k, max: MAX_HOPS })
            const problem = vertexIdProblem(id)
            if (problem !== undefined) return yield* new InvalidVertexId({ id, reason: problem })
            const bad = checkLabel(label)
            if (bad !== undefined) return yield* bad
            const max = Math.max(1, Math.min(limit ?? DEFAULT_KHOP_LIMIT, MAX_KHOP_LIMIT))
            const start = vertexPartition(id, partitions, rule)
            const exists = yield* getMany(start, [id])
            if (exists[0] === null) return yield* new VertexNotFound({ id })
            const seen = new Set<string>([id])
            const found: Array<string> = []
            let frontier = [id]
            let truncated = false
            for (let hop = 0; hop < k && frontier.length > 0 && !truncated; hop++) {
              const next: Array<string> = []
              const groups = groupByPartition(frontier, partitions, rule)
              const lists: Array<ReadonlyArray<ReadonlyArray<string>>> = []
              yield* Effect.forEach(
                groups,
                ([partition, group]) =>
                  Effect.gen(function* () {
                    for (let i = 0; i < group.ids.length; i += MAX_BATCH) {
                      lists.push(yield* neighborsMany(partition, group.ids.slice(i, i + MAX_BATCH), label))
                    }
                  }),
                { concurrency: "unbounded", discard: true }
              )
              outer: for (const list of lists) {
                for (const neighbors of list) {
                  for (const neighbor of neighbors) {
                    if (seen.has(neighbor) || vertexIdProblem(neighbor) !== undefined) continue
                    if (found.length >= max) {
                      truncated = true
                      break outer
                    }
                    seen.add(neighbor)
                    found.push(neighbor)
                    next.push(neighbor)
                  }
                }
              }
              frontier = next
            }
            return { vertices: found, truncated }
          }),
        "Graph.Routing": () =>
          direct(
            readRoutingTable({
              valkey,
              keyPrefix: config.graphKeyPrefix,
              partitions,
              zones: config.graphZones
            })
          ),
        "Graph.Rebalance": (options) => {
          const run = rebalance(makeClient, { partitions, rule }, options).pipe(
            Effect.mapError((error) =>
              error instanceof InvalidRebalance || error instanceof TooManyIds || error instanceof GraphStorageError
                ? error
                : new GraphStorageError({ message: `rebalance failed: ${(error as { _tag: string })._tag}` })
            )
          )
          return options.dryRun === true ? run : withRebalanceLease(run)
        },
        "Graph.Stats": () =>
          Effect.map(
            Effect.mapError(readAllMeta(sql), (e) => new GraphStorageError({ message: e.message })),
            (rows) => ({
              partitions,
              hot: rows.filter((r) => r.tier === "hot").length,
              cold: rows.filter((r) => r.tier === "cold").length,
              zones: config.graphZones,
              sameZone: rows.reduce((sum, r) => sum + r.sameZone, 0),
              crossZone: rows.reduce((sum, r) => sum + r.crossZone, 0),
              rows
            })
          )
      })
    )
  })
)
