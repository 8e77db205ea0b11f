/**
 * SQL storage: Postgres (`@effect/sql-pg`) when `DATABASE_URL` is set, otherwise the embedded node:sqlite
 * file under `TESSERA_DATA`. Cluster storage and actor tables use the same client; actor SQL stays portable.
 */
import { randomUUID } from "node:crypto"
import { join } from "node:path"
import { PgClient } from "@effect/sql-pg"
import * as SqliteClient from "@tessera/platform/SqliteClient"
import * as Valkey from "@tessera/platform/Valkey"
import { Duration, Effect, Layer, Option, Redacted } from "effect"
import type { SqlClient, SqlError } from "effect/sql"
import { defaults, TesseraConfig, type TesseraConfigShape } from "./config.ts"

/** File name of the embedded database inside the data folder. */
export const embeddedDatabaseFile = "tessera.db"

/** The Postgres settings that bound how long a sick server can hold a caller (see `TesseraConfigShape`). */
export type PgTimeouts = Pick<
  TesseraConfigShape,
  "pgConnectTimeout" | "pgKeepAlive" | "pgStatementTimeout" | "pgIdleInTransactionTimeout"
>

/**
 * Every Tessera Postgres pool's options (runners, benches, tools): `connection` (url or host fields, its own
 * `startupParameters` such as a `search_path`) plus the connect timeout, TCP keepalive, and the server-side
 * statement and idle-in-transaction timeouts sent in each session's startup packet.
 */
export const pgPoolConfig = (
  connection: PgClient.PgPoolConfig,
  timeouts: PgTimeouts = defaults
): PgClient.PgPoolConfig => ({
  ...connection,
  connectTimeout: timeouts.pgConnectTimeout,
  keepAlive: timeouts.pgKeepAlive,
  startupParameters: {
    statement_timeout: String(Duration.toMillis(timeouts.pgStatementTimeout)),
    idle_in_transaction_session_timeout: String(Duration.toMillis(timeouts.pgIdleInTransactionTimeout)),
    ...connection.startupParameters
  }
})

export const layerSql: Layer.Layer<SqlClient.SqlClient, SqlError.SqlError, TesseraConfig> = Layer.unwrap(
  Effect.map(TesseraConfig, (config: TesseraConfigShape) =>
    Option.match(config.databaseUrl, {
      onNone: () => SqliteClient.layer({ filename: join(config.dataDir, embeddedDatabaseFile) }),
      onSome: (url) => PgClient.layer(pgPoolConfig({ url }, config))
    })
  )
)

/**
 * Valkey: ioredis when `REDIS_URL` is set (a cluster client with `REDIS_CLUSTER`), otherwise the in-memory layer
 * with the same interface.
 */
export const layerValkey: Layer.Layer<Valkey.Valkey, Valkey.ValkeyError, TesseraConfig> = Layer.unwrap(
  Effect.map(TesseraConfig, (config: TesseraConfigShape) =>
    Valkey.layer({
      url: Option.getOrUndefined(Option.map(config.redisUrl, Redacted.value)),
      cluster: config.redisCluster,
      commandTimeout: Duration.toMillis(config.redisCommandTimeout)
    })
  )
)

/**
 * Stale-tolerant reads (`Valkey.ValkeyReplica`): the zone's replica at `TESSERA_VALKEY_REPLICA_URL` while its lag is at
 * most `TESSERA_VALKEY_REPLICA_MAX_LAG` (checked every quarter of it), else the primary; none set: the primary.
 */
export const layerValkeyReplica: Layer.Layer<Valkey.ValkeyReplica, Valkey.ValkeyError, TesseraConfig | Valkey.Valkey> =
  Layer.unwrap(
    Effect.map(TesseraConfig, (config: TesseraConfigShape) => {
      const maxLagMillis = Duration.toMillis(config.redisReplicaMaxLag)
      return Valkey.layerReplica({
        url: Option.getOrUndefined(Option.map(config.redisReplicaUrl, Redacted.value)),
        cluster: config.redisCluster,
        commandTimeout: Duration.toMillis(config.redisCommandTimeout),
        // One clock key per process: each node measures the lag of its own replica.
        clockKey: `tessera:replica-clock:${randomUUID()}`,
        maxLagMillis,
        checkMillis: Math.max(100, Math.round(maxLagMillis / 4))
      })
    })
  )
