/**
 * SQL storage: Postgres (`@effect/sql-pg`) when `DATABASE_URL` is set, otherwise the embedded node:sqlite
 * file under `TESSERA_DATA`. Cluster storage and actor tables use the same client; actor SQL stays portable.
 */
import { join } from "node:path"
import { PgClient } from "@effect/sql-pg"
import * as SqliteClient from "@tessera/platform/SqliteClient"
import * as Valkey from "@tessera/platform/Valkey"
import { Effect, Layer, Option, Redacted } from "effect"
import type { SqlClient, SqlError } from "effect/sql"
import { TesseraConfig, type TesseraConfigShape } from "./config.ts"

/** File name of the embedded database inside the data folder. */
export const embeddedDatabaseFile = "tessera.db"

export const layerSql: Layer.Layer<SqlClient.SqlClient, SqlError.SqlError, TesseraConfig> = Layer.unwrap(
  Effect.map(TesseraConfig, (config: TesseraConfigShape) =>
    Option.match(config.databaseUrl, {
      onNone: () => SqliteClient.layer({ filename: join(config.dataDir, embeddedDatabaseFile) }),
      onSome: (url) => PgClient.layer({ url })
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
      cluster: config.redisCluster
    })
  )
)
