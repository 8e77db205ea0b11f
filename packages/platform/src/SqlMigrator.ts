/**
 * Migrations for Tessera's own tables, run against whichever `SqlClient` is provided: the embedded `SqliteClient` or
 * `@effect/sql-pg`'s `PgClient`. The same records serve both, so keep their SQL portable (one statement per `sql`
 * call; `TEXT`, `INTEGER`/`BIGINT`, `BLOB`-vs-`BYTEA` and the like through `sql.onDialectOrElse`).
 *
 * Built on `effect/sql/Migrator`: applied ids are recorded in a table (default `tessera_migrations`), pending ones run
 * in one transaction, in id order; on PostgreSQL the table is locked so concurrent runners migrate once.
 *
 * @example
 * const migrations: SqlMigrator.Migrations = {
 *   "1_orders": Effect.gen(function*() {
 *     const sql = yield* SqlClient.SqlClient
 *     yield* sql`CREATE TABLE orders (symbol TEXT NOT NULL, order_id BIGINT NOT NULL, PRIMARY KEY (symbol, order_id))`
 *   })
 * }
 * const Storage = SqlMigrator.layer({ migrations }).pipe(Layer.provideMerge(SqliteClient.layer({ filename })))
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Migrator from "effect/sql/Migrator"
import type * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"

/** Migration effects keyed `"<id>_<name>"`, e.g. `"1_orders"`; ids are positive integers, applied in order. */
export type Migrations = Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>>

export interface MigrateOptions {
  readonly migrations: Migrations
  /** Table that records applied migrations. Default `"tessera_migrations"`. */
  readonly table?: string | undefined
}

export type MigrationError = Migrator.MigrationError

const run = Migrator.make({})

const keyPattern = /^\d+_.+$/

/**
 * Applies the pending migrations and returns the `[id, name]` pairs it ran (empty when up to date).
 * A key that does not look like `<id>_<name>` is an error rather than silently skipped.
 */
export const migrate = (
  options: MigrateOptions
): Effect.Effect<
  ReadonlyArray<readonly [id: number, name: string]>,
  Migrator.MigrationError | SqlError,
  SqlClient.SqlClient
> =>
  Effect.suspend(() => {
    const badKeys = Object.keys(options.migrations).filter((key) => !keyPattern.test(key))
    if (badKeys.length > 0) {
      return Effect.fail(
        new Migrator.MigrationError({
          kind: "BadState",
          message: `Migration keys must look like "<id>_<name>": ${badKeys.join(", ")}`
        })
      )
    }
    return run({
      loader: Migrator.fromRecord(options.migrations),
      table: options.table ?? "tessera_migrations"
    })
  })

/** Runs `migrate` when the layer is built; provides nothing. */
export const layer = (
  options: MigrateOptions
): Layer.Layer<never, Migrator.MigrationError | SqlError, SqlClient.SqlClient> => Layer.effectDiscard(migrate(options))
