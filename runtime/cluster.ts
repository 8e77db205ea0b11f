/**
 * Cluster composition: Effect's sharding over SQL message and runner storage, either as one runner of a
 * multi-node cluster (socket transport between runners) or as a single embedded node.
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
import { TesseraConfig, type TesseraConfigShape } from "./config.ts"

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
  simulateRemoteSerialization: false
})

type ClusterServices = Sharding.Sharding | Runners.Runners | MessageStorage.MessageStorage

/**
 * One runner of a multi-node cluster: socket transport between runners, ping health checks, shard locks and
 * persisted messages in SQL (Postgres when several runners share it).
 */
export const layerRunner: Layer.Layer<
  ClusterServices,
  SocketServer.SocketServerError,
  SqlClient.SqlClient | TesseraConfig
> = Layer.unwrap(
  Effect.map(TesseraConfig, (config: TesseraConfigShape) => {
    const health = RunnerHealth.layerPing.pipe(
      Layer.provide(Runners.layerRpc),
      Layer.provide(NodeClusterSocket.layerClientProtocol)
    )
    return SocketRunner.layer.pipe(
      Layer.provide([NodeClusterSocket.layerSocketServer, NodeClusterSocket.layerClientProtocol]),
      Layer.provide(health),
      Layer.provideMerge(SqlMessageStorage.layer.pipe(Layer.provide(NodeCrypto.layerDigest))),
      Layer.provide(Layer.orDie(SqlRunnerStorage.layer)),
      Layer.provide(ShardingConfig.layer(shardingConfig(config, "runner"))),
      Layer.provide(RpcSerialization.layerSchemaBinary())
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
