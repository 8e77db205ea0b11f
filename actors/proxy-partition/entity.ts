/**
 * The `ProxyPartition` entity (thin handlers over `Partition.ts`), the gateway-level fan-out RPCs (`GraphRpcs`:
 * BatchGet, KHop, Stats), and the cold-tier layer chosen from config.
 */
import { join } from "node:path"
import { NodeInfo } from "@tessera/platform/NodeInfo"
import * as ObjectStore from "@tessera/platform/ObjectStore"
import { Cmd, type Command, Valkey, ValkeyReplica } from "@tessera/platform/Valkey"
import { Context, Duration, Effect, Layer, Option, Semaphore } from "effect"
import { ClusterSchema, Entity, EntityProxyServer } from "effect/cluster"
import { SqlClient } from "effect/sql"
import { GraphConfig, type GraphConfigShape } from "./config.ts"
import {
  DEFAULT_KHOP_LIMIT,
  groupByPartition,
  labelProblem,
  MAX_BATCH,
  MAX_HOPS,
  MAX_KHOP_LIMIT,
  MAX_PROPERTIES_BYTES,
  parseEdgeMember,
  partitionKeys,
  partitionOf,
  partitionShardGroup,
  preferredZone,
  utf8Length,
  vertexIdProblem
} from "./core.ts"
import * as GraphMetrics from "./metrics.ts"
import { makePartition, readAllMeta, StaleOwner } from "./Partition.ts"
import {
  GraphRpcs,
  GraphStorageError,
  InvalidLabel,
  InvalidPartition,
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

/** How often a gateway adds its direct hot-tier reads to the partitions' read counters. */
const DIRECT_READS_FLUSH = Duration.seconds(1)

const checkId = (id: string, partition: number, partitions: number) => {
  const problem = vertexIdProblem(id)
  if (problem !== undefined) return new InvalidVertexId({ id, reason: problem })
  const expected = partitionOf(id, partitions)
  if (expected !== partition) return new WrongPartition({ id, partition, expected, partitions })
  return undefined
}

const checkIds = (ids: ReadonlyArray<string>, partition: number, partitions: number) => {
  if (ids.length > MAX_BATCH) return new TooManyIds({ count: ids.length, limit: MAX_BATCH })
  for (const id of ids) {
    const error = checkId(id, partition, partitions)
    if (error !== undefined) return error
  }
  return undefined
}

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
        Info: () => misplaced
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
        Info: () => invalid
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
    const standingDown = <A, E, R>(effect: Effect.Effect<A, E | StaleOwner, R>): Effect.Effect<A, E, R> =>
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

    return ProxyPartition.of(
      counted({
        PutVertex: ({ payload }) => {
          const bad = checkId(payload.id, partition, partitions)
          if (bad !== undefined) return Effect.fail(bad)
          const json = JSON.stringify(payload.properties)
          const bytes = utf8Length(json)
          if (bytes > MAX_PROPERTIES_BYTES) {
            return Effect.fail(new PropertiesTooLarge({ id: payload.id, bytes, limit: MAX_PROPERTIES_BYTES }))
          }
          return p.write(Effect.map(p.hot.put(payload.id, json), (created) => ({ created })))
        },
        GetVertex: ({ payload }) => {
          const bad = checkId(payload.id, partition, partitions)
          if (bad !== undefined) return Effect.fail(bad)
          return p.run(
            Effect.flatMap(p.hot.get(payload.id), (json) =>
              json === null
                ? Effect.fail(new VertexNotFound({ id: payload.id }))
                : Effect.succeed({ id: payload.id, properties: parseProperties(json) })
            )
          )
        },
        GetMany: ({ payload }) => {
          const bad = checkIds(payload.ids, partition, partitions)
          if (bad !== undefined) return Effect.fail(bad)
          return p.run(
            Effect.map(p.hot.getMany(payload.ids), (values) =>
              values.map((json) => (json === null ? null : parseProperties(json)))
            )
          )
        },
        DeleteVertex: ({ payload }) => {
          const bad = checkId(payload.id, partition, partitions)
          if (bad !== undefined) return Effect.fail(bad)
          return p.write(
            Effect.flatMap(p.hot.delete(payload.id), (deleted) =>
              deleted ? Effect.succeed({ deleted }) : Effect.fail(new VertexNotFound({ id: payload.id }))
            )
          )
        },
        AddEdge: ({ payload }) => {
          const bad =
            checkId(payload.src, partition, partitions) ??
            checkLabel(payload.label) ??
            (vertexIdProblem(payload.dst) === undefined
              ? undefined
              : new InvalidVertexId({ id: payload.dst, reason: vertexIdProblem(payload.dst) ?? "" }))
          if (bad !== undefined) return Effect.fail(bad)
          return p.write(
            Effect.gen(function* () {
              if (!(yield* p.hot.exists(payload.src))) return yield* new VertexNotFound({ id: payload.src })
              return { added: yield* p.hot.addEdge(payload.src, payload.label, payload.dst) }
            })
          )
        },
        RemoveEdge: ({ payload }) => {
          const bad = checkId(payload.src, partition, partitions) ?? checkLabel(payload.label)
          if (bad !== undefined) return Effect.fail(bad)
          return p.write(
            Effect.map(p.hot.removeEdge(payload.src, payload.label, payload.dst), (removed) => ({ removed }))
          )
        },
        Neighbors: ({ payload }) => {
          const bad = checkId(payload.id, partition, partitions) ?? checkLabel(payload.label)
          if (bad !== undefined) return Effect.fail(bad)
          return p.run(
            Effect.flatMap(p.hot.neighbors(payload.id, payload.label), (found) =>
              found === undefined ? Effect.fail(new VertexNotFound({ id: payload.id })) : Effect.succeed(found)
            )
          )
        },
        NeighborsMany: ({ payload }) => {
          const bad = checkIds(payload.ids, partition, partitions) ?? checkLabel(payload.label)
          if (bad !== undefined) return Effect.fail(bad)
          return p.run(p.hot.neighborsMany(payload.ids, payload.label))
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

    const neighborsMany = (partition: number, ids: ReadonlyArray<string>, label: string | undefined) =>
      Effect.mapError(makeClient(String(partition)).NeighborsMany({ ids, label }), toWire)

    return GraphRpcs.of(
      counted({
        "Graph.BatchGet": ({ ids }) =>
          Effect.gen(function* () {
            if (ids.length > MAX_BATCH) return yield* new TooManyIds({ count: ids.length, limit: MAX_BATCH })
            for (const id of ids) {
              const problem = vertexIdProblem(id)
              if (problem !== undefined) return yield* new InvalidVertexId({ id, reason: problem })
            }
            const out: Array<Properties | null> = new Array(ids.length).fill(null)
            // One MGET of every id (Valkey Cluster: split per slot by the Valkey layer, one slot per partition).
            const owners = new Int32Array(ids.length)
            const names = new Array<string>(ids.length)
            for (let i = 0; i < ids.length; i++) {
              const partition = partitionOf(ids[i], partitions)
              owners[i] = partition
              names[i] = keysOf[partition].vertex(ids[i])
            }
            const values = ids.length === 0 ? [] : yield* direct(reads.mget(...names))
            // Misses by partition: [missing ids, their positions].
            let missing: Map<number, [Array<string>, Array<number>]> | undefined
            let hitCount = 0
            for (let i = 0; i < ids.length; i++) {
              const value = values[i]
              if (value !== null) {
                out[i] = JSON.parse(value) as Properties
                directReads[owners[i]]++
                hitCount++
              } else {
                missing ??= new Map()
                const group = missing.get(owners[i])
                if (group === undefined) missing.set(owners[i], [[ids[i]], [i]])
                else {
                  group[0].push(ids[i])
                  group[1].push(i)
                }
              }
            }
            const asked: Array<[number, Array<string>, Array<number>]> = []
            if (missing !== undefined)
              for (const [partition, [missIds, positions]] of missing) asked.push([partition, missIds, positions])
            if (hitCount > 0) GraphMetrics.gatewayHits.inc(hitCount)
            if (hitCount < ids.length) GraphMetrics.gatewayMisses.inc(ids.length - hitCount)
            // Cold partitions, partitions being demoted, and ids not found: the owning entity answers (and promotes).
            yield* Effect.forEach(
              asked,
              ([partition, missIds, positions]) =>
                Effect.map(getMany(partition, missIds), (values) => {
                  for (let i = 0; i < values.length; i++) out[positions[i]] = values[i]
                }),
              { concurrency: "unbounded", discard: true }
            )
            return out
          }),
        "Graph.Neighbors": ({ id, label }) =>
          Effect.gen(function* () {
            const problem = vertexIdProblem(id)
            if (problem !== undefined) return yield* new InvalidVertexId({ id, reason: problem })
            const bad = checkLabel(label)
            if (bad !== undefined) return yield* bad
            const partition = partitionOf(id, partitions)
            const keys = keysOf[partition]
            const [exists, members] = yield* direct(
              reads.pipeline([Cmd.exists(keys.vertex(id)), Cmd.smembers(keys.out(id))])
            )
            if (exists === 1) {
              directReads[partition]++
              GraphMetrics.gatewayHits.inc()
              const found: Array<Neighbor> = []
              for (const member of members) {
                const edge = parseEdgeMember(member)
                if (label === undefined || edge.label === label) found.push(edge)
              }
              return found
            }
            GraphMetrics.gatewayMisses.inc()
            return yield* Effect.mapError(makeClient(String(partition)).Neighbors({ id, label }), (error) =>
              error._tag === "VertexNotFound" ? error : toWire(error)
            )
          }),
        "Graph.KHop": ({ id, k, label, limit }) =>
          Effect.gen(function* () {
            if (k < 1 || k > MAX_HOPS) return yield* new KHopTooDeep({ k, max: MAX_HOPS })
            const problem = vertexIdProblem(id)
            if (problem !== undefined) return yield* new InvalidVertexId({ id, reason: problem })
            const bad = checkLabel(label)
            if (bad !== undefined) return yield* bad
            const max = Math.max(1, Math.min(limit ?? DEFAULT_KHOP_LIMIT, MAX_KHOP_LIMIT))
            const start = partitionOf(id, partitions)
            const exists = yield* getMany(start, [id])
            if (exists[0] === null) return yield* new VertexNotFound({ id })
            const seen = new Set<string>([id])
            const found: Array<string> = []
            let frontier = [id]
            let truncated = false
            for (let hop = 0; hop < k && frontier.length > 0 && !truncated; hop++) {
              const next: Array<string> = []
              const groups = groupByPartition(frontier, partitions)
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
