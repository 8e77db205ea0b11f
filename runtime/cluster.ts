/**
 * Cluster composition: Effect's sharding over SQL message and runner storage, either as one runner of a
 * multi-node cluster (socket transport between runners) or as a single embedded node.
 *
 * Zone placement of graph partitions (`TESSERA_GRAPH_ZONES`). Effect's cluster assigns each shard group's shards over
 * a hash ring of the runners serving that group, balanced by one weight per runner; a runner's groups and weight
 * are fixed while it is registered (a change of groups is not picked up until it leaves and rejoins). So it offers
 * hard pinning (a group served only by one zone's runners, which leaves that zone's partitions unserved once the zone
 * has no live runner) but no per-group preference. Tessera builds the preference from two identities per runner
 * process, both ordinary Effect runners with their own shard locks:
 * - the main runner (`TESSERA_RUNNER_PORT`) serves `default` and its own zone's group `graph-<zone>`, at weight
 *   `ZONED_RUNNER_WEIGHT`;
 * - the standby runner (`TESSERA_STANDBY_PORT`) serves only the other zones' graph groups, at `STANDBY_WEIGHT`.
 * In `graph-a`'s ring a zone-a runner then outweighs every standby 100 to 1, so it gets nearly all of zone a's
 * partitions (a standby's share is capped at floor(shards * 0.1 / total weight)); when zone a has no live runner,
 * the standbys are the ring and take them all. Failover stays the engine's own (locks, health checks), nothing is
 * patched, and an entity never runs twice: each partition lives in exactly one shard group.
 */
import { NodeClusterSocket, NodeCrypto } from "@effect/platform-node"
import { Duration, Effect, Layer, Option } from "effect"
import {
  type MessageStorage,
  RunnerAddress,
  RunnerHealth,
  RunnerStorage,
  Runners,
  Sharding,
  ShardingConfig,
  SocketRunner,
  SqlMessageStorage,
  SqlRunnerStorage
} from "effect/cluster"
import { RpcSerialization } from "effect/rpc"
import type { SocketServer } from "effect/socket"
import type { SqlClient } from "effect/sql"
import { zoneShardGroup } from "../actors/proxy-partition/core.ts"
import { standbyPortOf, TesseraConfig, type TesseraConfigShape } from "./config.ts"

/** Weight of every main runner when zones are configured (equal on all, so `default` stays evenly spread). */
export const ZONED_RUNNER_WEIGHT = 10
/** Weight of a standby identity: the smallest Effect's hash ring accepts. */
export const STANDBY_WEIGHT = 0.1

/** This runner's own zone group, when its `TESSERA_ZONE` is one of `TESSERA_GRAPH_ZONES`. */
const ownZoneGroups = (config: TesseraConfigShape): Array<string> =>
  Option.isSome(config.zone) && config.graphZones.includes(config.zone.value) ? [zoneShardGroup(config.zone.value)] : []

/** The graph zone groups this runner's standby serves: every zone but its own (none without zones). */
export const standbyShardGroups = (config: TesseraConfigShape): Array<string> => {
  const own = ownZoneGroups(config)
  return config.graphZones.map(zoneShardGroup).filter((group) => !own.includes(group))
}

/** Sharding settings derived from Tessera's config; the timing fields are tuned for fast failover. */
export const shardingConfig = (
  config: TesseraConfigShape,
  mode: "runner" | "single"
): Partial<ShardingConfig.ShardingConfig["Service"]> => ({
  runnerAddress: Option.some(RunnerAddress.make(mode === "single" ? "embedded" : config.runnerHost, config.runnerPort)),
  runnerListenAddress:
    mode === "runner" ? Option.some(RunnerAddress.make("0.0.0.0", config.runnerPort)) : Option.none(),
  shardsPerGroup: config.shardsPerGroup,
  shardLockExpiration: config.shardLockExpiration,
  shardLockRefreshInterval: config.shardLockRefresh,
  refreshAssignmentsInterval: config.assignmentRefresh,
  runnerHealthCheckInterval: config.healthCheck,
  entityMessagePollInterval: config.messagePoll,
  entityMaxIdleTime: config.entityMaxIdle,
  // Entities must stop well inside the lock expiry, or a survivor could start them while they still run.
  entityTerminationTimeout: Duration.min(Duration.seconds(15), config.shardLockExpiration),
  // Same-process messages skip the serialisation round trip: the gateway decodes input once at the edge.
  simulateRemoteSerialization: false,
  // Lock numbers are indexes over the sorted available groups: equal TESSERA_GRAPH_ZONES on every runner.
  availableShardGroups: ["default", ...config.graphZones.map(zoneShardGroup)],
  assignedShardGroups:
    mode === "single" ? ["default", ...config.graphZones.map(zoneShardGroup)] : ["default", ...ownZoneGroups(config)],
  runnerShardWeight: config.graphZones.length > 0 ? ZONED_RUNNER_WEIGHT : 1
})

/** The standby identity's sharding: other zones' graph groups only, at `STANDBY_WEIGHT`, on its own port. */
export const standbyShardingConfig = (
  config: TesseraConfigShape
): Partial<ShardingConfig.ShardingConfig["Service"]> => ({
  ...shardingConfig(config, "runner"),
  runnerAddress: Option.some(RunnerAddress.make(config.runnerHost, standbyPortOf(config))),
  runnerListenAddress: Option.some(RunnerAddress.make("0.0.0.0", standbyPortOf(config))),
  assignedShardGroups: standbyShardGroups(config),
  runnerShardWeight: STANDBY_WEIGHT
})

type ClusterServices = Sharding.Sharding | Runners.Runners | MessageStorage.MessageStorage

/**
 * One runner of a multi-node cluster: socket transport between runners, ping health checks, shard locks and
 * persisted messages in SQL (Postgres when several runners share it).
 */
const socketRunner = (options: Partial<ShardingConfig.ShardingConfig["Service"]>) => {
  const health = RunnerHealth.layerPing.pipe(
    Layer.provide(Runners.layerRpc),
    Layer.provide(NodeClusterSocket.layerClientProtocol)
  )
  return SocketRunner.layer.pipe(
    Layer.provide([NodeClusterSocket.layerSocketServer, NodeClusterSocket.layerClientProtocol]),
    Layer.provide(health),
    Layer.provideMerge(SqlMessageStorage.layer.pipe(Layer.provide(NodeCrypto.layerDigest))),
    Layer.provide(Layer.orDie(SqlRunnerStorage.layer)),
    Layer.provide(ShardingConfig.layer(options)),
    Layer.provide(RpcSerialization.layerSchemaBinary())
  )
}

export const layerRunner: Layer.Layer<
  ClusterServices,
  SocketServer.SocketServerError,
  SqlClient.SqlClient | TesseraConfig
> = Layer.unwrap(
  Effect.map(TesseraConfig, (config: TesseraConfigShape) => socketRunner(shardingConfig(config, "runner")))
)

/**
 * This runner's standby identity hosting `entities` (the graph partition entity): a second Effect runner on
 * `TESSERA_STANDBY_PORT` serving the other zones' graph groups at `STANDBY_WEIGHT`. Built fresh (its own transport,
 * sharding, storage and entity instances; only SQL, Valkey and config are shared). Nothing without zones.
 */
export const layerStandby = <E, R>(entities: Layer.Layer<never, E, R>) =>
  Layer.unwrap(
    Effect.map(TesseraConfig, (config: TesseraConfigShape) => {
      const groups = standbyShardGroups(config)
      if (groups.length === 0) return Layer.empty
      const address = `${config.runnerHost}:${standbyPortOf(config)}`
      return Layer.fresh(entities.pipe(Layer.provide(socketRunner(standbyShardingConfig(config))))).pipe(
        Layer.merge(Layer.effectDiscard(Effect.logInfo(`standby runner ${address} serves ${groups.join(", ")}`)))
      )
    })
  )

/**
 * A single embedded node: no transport, every shard local, messages persisted in SQL (the embedded file
 * database by default), shard locks in memory since no other runner can contend for them.
 */
export const layerSingle: Layer.Layer<ClusterServices, never, SqlClient.SqlClient | TesseraConfig> = Layer.unwrap(
  Effect.map(TesseraConfig, (config: TesseraConfigShape) =>
    Sharding.layer.pipe(
      Layer.provideMerge(Runners.layerNoop),
      Layer.provideMerge(SqlMessageStorage.layer.pipe(Layer.provide(NodeCrypto.layerDigest))),
      Layer.provide([RunnerStorage.layerMemory, RunnerHealth.layerNoop]),
      Layer.provide(ShardingConfig.layer(shardingConfig(config, "single")))
    )
  )
)
