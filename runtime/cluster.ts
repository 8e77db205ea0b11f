/**
 * Cluster composition: Effect's sharding over SQL message and runner storage, either as one runner of a
 * multi-node cluster (socket transport between runners) or as a single embedded node.
 *
 * Zone placement (a module's zone groups, e.g. the graph's `TESSERA_GRAPH_ZONES`). Effect's cluster assigns each shard group's shards over
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
import type { Module } from "@tessera/contracts"
import { invalid } from "@tessera/platform/ConfigKit"
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
import type { SqlClient } from "effect/sql"
import { standbyPortOf, TesseraConfig, type TesseraConfigShape } from "./config.ts"
import * as Hosted from "./hosted.ts"
import * as LockRefresh from "./lockRefresh.ts"

/** Weight of every main runner when zones are configured (equal on all, so `default` stays evenly spread). */
export const ZONED_RUNNER_WEIGHT = 10
/** Weight of a standby identity: the smallest Effect's hash ring accepts. */
export const STANDBY_WEIGHT = 0.1

/** The zone groups of this runner's own zone (`TESSERA_ZONE`). */
const ownZoneGroups = (config: TesseraConfigShape, zoneGroups: ReadonlyArray<Module.ZoneGroup>): Array<string> =>
  Option.match(config.zone, {
    onNone: () => [],
    onSome: (zone) => zoneGroups.filter((group) => group.zone === zone).map((group) => group.group)
  })

/** The zone groups this runner's standby serves: every zone group but its own zone's (none without zones). */
export const standbyShardGroups = (
  config: TesseraConfigShape,
  zoneGroups: ReadonlyArray<Module.ZoneGroup>
): Array<string> => {
  const own = ownZoneGroups(config, zoneGroups)
  return zoneGroups.map((group) => group.group).filter((group) => !own.includes(group))
}

/**
 * Sharding settings derived from Tessera's config and the modules' zone groups; the timing fields are tuned for
 * fast failover.
 */
export const shardingConfig = (
  config: TesseraConfigShape,
  mode: "runner" | "single",
  zoneGroups: ReadonlyArray<Module.ZoneGroup> = []
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
  // Lock numbers are indexes over the sorted available groups: equal zone groups (TESSERA_GRAPH_ZONES) everywhere.
  availableShardGroups: ["default", ...zoneGroups.map((group) => group.group)],
  assignedShardGroups:
    mode === "single"
      ? ["default", ...zoneGroups.map((group) => group.group)]
      : ["default", ...ownZoneGroups(config, zoneGroups)],
  runnerShardWeight: zoneGroups.length > 0 ? ZONED_RUNNER_WEIGHT : 1
})

/** The standby identity's sharding: other zones' graph groups only, at `STANDBY_WEIGHT`, on its own port. */
export const standbyShardingConfig = (
  config: TesseraConfigShape,
  zoneGroups: ReadonlyArray<Module.ZoneGroup>
): Partial<ShardingConfig.ShardingConfig["Service"]> => ({
  ...shardingConfig(config, "runner", zoneGroups),
  runnerAddress: Option.some(RunnerAddress.make(config.runnerHost, standbyPortOf(config))),
  runnerListenAddress: Option.some(RunnerAddress.make("0.0.0.0", standbyPortOf(config))),
  assignedShardGroups: standbyShardGroups(config, zoneGroups),
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
    // Refreshes made late by a busy event loop keep the shards; late storage still marks the locks unhealthy.
    Layer.provide(LockRefresh.layer(Layer.orDie(SqlRunnerStorage.layer))),
    Layer.provide(ShardingConfig.layer(options)),
    Layer.provide(RpcSerialization.layerSchemaBinary())
  )
}

/** The modules' zone groups, checked against the host's ports (the standby needs one of its own). */
const zoneGroupsOf = (modules: ReadonlyArray<Module.Any>, config: TesseraConfigShape) =>
  Effect.flatMap(Hosted.zoneGroups(modules), (zoneGroups) =>
    zoneGroups.length > 0 && [config.runnerPort, config.port].includes(standbyPortOf(config))
      ? Effect.fail(
          invalid(
            `TESSERA_STANDBY_PORT (${standbyPortOf(config)}) must differ from TESSERA_RUNNER_PORT and TESSERA_PORT`
          )
        )
      : Effect.succeed(zoneGroups)
  )

export const layerRunner = (
  modules: ReadonlyArray<Module.Any>
): Layer.Layer<ClusterServices, unknown, SqlClient.SqlClient | TesseraConfig> =>
  Layer.unwrap(
    Effect.gen(function* () {
      const config = yield* TesseraConfig
      return socketRunner(shardingConfig(config, "runner", yield* zoneGroupsOf(modules, config)))
    })
  )

/**
 * This runner's standby identity hosting `entities` (the graph partition entity): a second Effect runner on
 * `TESSERA_STANDBY_PORT` serving the other zones' graph groups at `STANDBY_WEIGHT`. Built fresh (its own transport,
 * sharding, storage and entity instances; only SQL, Valkey and config are shared). Nothing without zones.
 */
export const layerStandby = <E, R>(modules: ReadonlyArray<Module.Any>, entities: Layer.Layer<never, E, R>) =>
  Layer.unwrap(
    Effect.gen(function* () {
      const config = yield* TesseraConfig
      const zoneGroups = yield* zoneGroupsOf(modules, config)
      const groups = standbyShardGroups(config, zoneGroups)
      if (groups.length === 0) return Layer.empty
      const address = `${config.runnerHost}:${standbyPortOf(config)}`
      return Layer.fresh(entities.pipe(Layer.provide(socketRunner(standbyShardingConfig(config, zoneGroups))))).pipe(
        Layer.merge(Layer.effectDiscard(Effect.logInfo(`standby runner ${address} serves ${groups.join(", ")}`)))
      )
    })
  )

/**
 * A single embedded node: no transport, every shard local, messages persisted in SQL (the embedded file
 * database by default), shard locks in memory since no other runner can contend for them.
 */
export const layerSingle = (
  modules: ReadonlyArray<Module.Any>
): Layer.Layer<ClusterServices, unknown, SqlClient.SqlClient | TesseraConfig> =>
  Layer.unwrap(
    Effect.gen(function* () {
      const config = yield* TesseraConfig
      const zoneGroups = yield* Hosted.zoneGroups(modules)
      return Sharding.layer.pipe(
        Layer.provideMerge(Runners.layerNoop),
        Layer.provideMerge(SqlMessageStorage.layer.pipe(Layer.provide(NodeCrypto.layerDigest))),
        Layer.provide([RunnerStorage.layerMemory, RunnerHealth.layerNoop]),
        Layer.provide(ShardingConfig.layer(shardingConfig(config, "single", zoneGroups)))
      )
    })
  )
