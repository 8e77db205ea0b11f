/**
 * Cluster composition: Effect's sharding over SQL message and runner storage, either as one runner of a
 * multi-node cluster (socket transport between runners) or as a single embedded node.
 *
 * Transport security (`TESSERA_CLUSTER_SECRET`): the runner transport is TLS 1.3 with a key derived from the shared
 * secret, so a connection without it fails the handshake before a byte reaches the RPC server. A runner also checks
 * at startup that its live peers accept its transport, and stops with a clear error if not.
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
import { createHash, randomBytes } from "node:crypto"
import * as Tls from "node:tls"
import { NodeClusterSocket, NodeCrypto, NodeSocket, NodeSocketServer } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import type { Module } from "@tessera/contracts"
import { invalid } from "@tessera/platform/ConfigKit"
import { Duration, Effect, Layer, Option, Redacted } from "effect"
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
import { RpcClient, RpcSerialization } from "effect/rpc"
import { Socket } from "effect/socket"
import type { SqlClient } from "effect/sql"
import { standbyPortOf, TesseraConfig, type TesseraConfigShape } from "./config.ts"
import * as Hosted from "./hosted.ts"
import * as LockRefresh from "./lockRefresh.ts"
import { pgPoolConfig } from "./storage.ts"

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

/** effect/cluster's message storage; its tables created here unless `tessera-migrate` owns the schema. */
const messageStorageOf = (config: TesseraConfigShape) =>
  (config.migrate ? SqlMessageStorage.layer : SqlMessageStorage.layerStorage({})).pipe(
    Layer.provide(NodeCrypto.layerDigest)
  )

/** Connections of the runner storage's own Postgres pool: the reserved shard-lock session and two for the rest. */
const lockPoolConnections = 3

/**
 * effect/cluster's runner storage (registrations, shard locks), its tables the same way. With Postgres it has a
 * small pool of its own: on the actors' pool, the storage probe that ends "lock storage unhealthy" and the
 * re-reservation of a lock session that failed queue behind actor traffic, so a runner whose pool is saturated (a
 * restart replaying journals, a backlog after a storage stall) stays unhealthy and keeps dropping its shards.
 */
export const runnerStorageOf = (config: TesseraConfigShape) => {
  const storage = config.migrate ? Layer.orDie(SqlRunnerStorage.layer) : SqlRunnerStorage.layerStorage({})
  return Option.match(config.databaseUrl, {
    onNone: () => storage,
    onSome: (url) =>
      Layer.provide(storage, PgClient.layer(pgPoolConfig({ url, maxConnections: lockPoolConnections }, config)))
  })
}

/**
 * A TLS 1.3 pre-shared key derived from a cluster secret, and the identity that names it in the handshake (so a
 * runner can accept two secrets while they rotate). Derived, so the secret itself never crosses the wire.
 */
export interface ClusterKey {
  readonly identity: string
  readonly psk: Buffer
}

export const clusterKey = (secret: Redacted.Redacted<string>): ClusterKey => {
  const value = Redacted.value(secret)
  return {
    identity: `tessera-${createHash("sha256").update("tessera cluster identity\0").update(value).digest("hex").slice(0, 16)}`,
    psk: createHash("sha256").update("tessera cluster psk\0").update(value).digest()
  }
}

/** This runner's transport keys: the one it connects with and every one it accepts. None without a secret. */
export interface ClusterKeys {
  readonly own: ClusterKey
  readonly accepted: ReadonlyArray<ClusterKey>
}

export const clusterKeysOf = (config: TesseraConfigShape): ClusterKeys | undefined => {
  if (Option.isNone(config.clusterSecret)) return undefined
  const own = clusterKey(config.clusterSecret.value)
  return { own, accepted: [own, ...Option.toArray(Option.map(config.clusterSecretAccepted, clusterKey))] }
}

// TLS 1.3 only: its PSK handshake uses (EC)DHE, so recorded traffic stays secret if a key leaks later.
const pskTls = { minVersion: "TLSv1.3", ciphers: "PSK" } as const

/** Client TLS options with `key`: no certificates, the peer proves it holds the key by finishing the handshake. */
export const clientTlsOptions = (key: ClusterKey): Tls.ConnectionOptions => ({
  ...pskTls,
  pskCallback: () => ({ psk: key.psk, identity: key.identity }),
  checkServerIdentity: () => undefined
})

/** Server TLS options accepting `keys`: a client naming another identity, or failing the key's proof, is dropped. */
export const serverTlsOptions = (keys: ClusterKeys): Tls.TlsOptions => ({
  ...pskTls,
  pskCallback: (_socket, identity) => keys.accepted.find((key) => key.identity === identity)?.psk ?? null
})

/** The cluster transport's client side over TLS with `key` (Effect's `layerClientProtocol`, on `tls.connect`). */
export const layerClientProtocolTls = (key: ClusterKey) =>
  Layer.effect(Runners.RpcClientProtocol)(
    Effect.gen(function* () {
      const serialization = yield* RpcSerialization.RpcSerialization
      const tls = clientTlsOptions(key)
      return {
        codecFor: serialization.codecFor,
        make: Effect.fnUntraced(function* (address: RunnerAddress.RunnerAddress) {
          // The same bounds as Effect's plain socket client: 1 s to connect (here also to finish the handshake).
          const socket = yield* NodeSocket.makeTls({
            ...tls,
            openTimeout: 1000,
            timeout: 5500,
            host: address.host,
            port: address.port
          })
          return yield* RpcClient.makeProtocolSocket().pipe(
            Effect.provideService(Socket.Socket, socket),
            Effect.provideService(RpcSerialization.RpcSerialization, serialization)
          )
        }, Effect.orDie)
      }
    })
  )

/** The cluster transport's server side over TLS accepting `keys`, on the sharding config's listen address. */
const layerSocketServerTls = (keys: ClusterKeys, options: Partial<ShardingConfig.ShardingConfig["Service"]>) => {
  const address = Option.orElse(
    options.runnerListenAddress ?? Option.none(),
    () => options.runnerAddress ?? Option.none()
  )
  if (Option.isNone(address)) return Layer.effectDiscard(Effect.die("the cluster transport needs a listen address"))
  return NodeSocketServer.layerTls({ ...serverTlsOptions(keys), host: address.value.host, port: address.value.port })
}

/** What a runner's transport handshake with a peer showed. */
export type PeerProbe = "compatible" | "other-secret" | "plaintext" | "unreachable"

/**
 * Opens a TLS handshake with a peer's transport (with `key`, or a random one when this runner has no secret) and
 * reads how it ends: finished (same key), a TLS alert (the peer runs TLS with another secret), the connection
 * dropped at once (the peer runs plain TCP), or nothing (unreachable or too slow to say).
 */
export const probePeer = (address: { readonly host: string; readonly port: number }, key: ClusterKey | undefined) =>
  Effect.callback<PeerProbe>((resume) => {
    const probeKey = key ?? { identity: "tessera-probe", psk: randomBytes(32) }
    let connected = false
    let socket: Tls.TLSSocket
    try {
      socket = Tls.connect({ ...clientTlsOptions(probeKey), host: address.host, port: address.port })
    } catch {
      // A TLS stack without PSK (Deno's node:tls): this runner can run no secured transport, the probe says nothing.
      resume(Effect.succeed("unreachable"))
      return
    }
    const done = (outcome: PeerProbe) => {
      clearTimeout(timer)
      socket.destroy()
      resume(Effect.succeed(outcome))
    }
    const timer = setTimeout(() => done("unreachable"), 2000)
    socket.once("connect", () => {
      connected = true
    })
    socket.once("secureConnect", () => done("compatible"))
    socket.once("error", (error: NodeJS.ErrnoException) => {
      // Only a TLS alert is the peer's word; other TLS errors are bytes that are no TLS (a plain-TCP peer's reply).
      if (error.code?.includes("_ALERT_")) done("other-secret")
      else done(connected ? "plaintext" : "unreachable")
    })
    socket.once("close", () => done(connected ? "plaintext" : "unreachable"))
    return Effect.sync(() => {
      clearTimeout(timer)
      socket.destroy()
    })
  })

/**
 * Before this runner registers, its transport handshakes with every live peer: a runner whose secret (or lack of
 * one) its peers refuse stops at startup with a clear error instead of joining. Joined, it would take shards no peer
 * can reach, and could mark every peer unhealthy from the health-check singleton.
 */
const layerPeerCheck = (config: TesseraConfigShape, self: string) =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      const storage = yield* RunnerStorage.RunnerStorage
      const keys = clusterKeysOf(config)
      const peers = (yield* Effect.orDie(storage.getRunners))
        .filter(([runner, healthy]) => healthy && `${runner.address.host}:${runner.address.port}` !== self)
        .map(([runner]) => runner.address)
      const outcomes = yield* Effect.forEach(peers, (peer) => probePeer(peer, keys?.own), { concurrency: 8 })
      const refusing = peers.filter((_, i) =>
        keys === undefined
          ? outcomes[i] === "other-secret" || outcomes[i] === "compatible"
          : outcomes[i] === "other-secret" || outcomes[i] === "plaintext"
      )
      if (refusing.length === 0) return
      const names = refusing.map((peer) => `${peer.host}:${peer.port}`).join(", ")
      return yield* Effect.fail(
        invalid(
          keys === undefined
            ? `runners ${names} require a cluster secret: set TESSERA_CLUSTER_SECRET (this runner has none)`
            : `runners ${names} refused this runner's transport: their TESSERA_CLUSTER_SECRET differs (or they run without one); a runner joins only with its peers' secret`
        )
      )
    })
  )

/**
 * One runner of a multi-node cluster: socket transport between runners, ping health checks, shard locks and
 * persisted messages in SQL (Postgres when several runners share it).
 */
const socketRunner = (config: TesseraConfigShape, options: Partial<ShardingConfig.ShardingConfig["Service"]>) => {
  const keys = clusterKeysOf(config)
  // With a cluster secret the transport is TLS with a pre-shared key, so a connection without it is dropped in the
  // handshake: it never reaches the RPC server, and a runner without it cannot reach a peer.
  const clientProtocol = keys === undefined ? NodeClusterSocket.layerClientProtocol : layerClientProtocolTls(keys.own)
  const socketServer = keys === undefined ? NodeClusterSocket.layerSocketServer : layerSocketServerTls(keys, options)
  const health = RunnerHealth.layerPing.pipe(Layer.provide(Runners.layerRpc), Layer.provide(clientProtocol))
  const self = Option.match(options.runnerAddress ?? Option.none(), {
    onNone: () => "",
    onSome: (address) => `${address.host}:${address.port}`
  })
  return SocketRunner.layer.pipe(
    Layer.provide([socketServer, clientProtocol]),
    Layer.provide(layerPeerCheck(config, self)),
    Layer.provide(health),
    Layer.provideMerge(messageStorageOf(config)),
    // Refreshes made late by a busy event loop keep the shards; late storage still marks the locks unhealthy.
    Layer.provide(LockRefresh.layer(runnerStorageOf(config))),
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
      return socketRunner(config, shardingConfig(config, "runner", yield* zoneGroupsOf(modules, config)))
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
      return Layer.fresh(
        entities.pipe(Layer.provide(socketRunner(config, standbyShardingConfig(config, zoneGroups))))
      ).pipe(Layer.merge(Layer.effectDiscard(Effect.logInfo(`standby runner ${address} serves ${groups.join(", ")}`))))
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
        Layer.provideMerge(messageStorageOf(config)),
        Layer.provide([RunnerStorage.layerMemory, RunnerHealth.layerNoop]),
        Layer.provide(ShardingConfig.layer(shardingConfig(config, "single", zoneGroups)))
      )
    })
  )
