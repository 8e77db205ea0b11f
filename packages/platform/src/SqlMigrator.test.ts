import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as SqlClient from "effect/sql/SqlClient"
import * as SqliteClient from "./SqliteClient.ts"
import * as SqlMigrator from "./SqlMigrator.ts"

/** One set of records for both dialects: portable SQL, with the byte column type chosen per dialect. */
const migrations: SqlMigrator.Migrations = {
  "1_journal": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const bytes = sql.onDialectOrElse({ pg: () => sql.literal("BYTEA"), orElse: () => sql.literal("BLOB") })
    yield* sql`CREATE TABLE journal (
      symbol TEXT NOT NULL,
      seq BIGINT NOT NULL,
      payload ${bytes} NOT NULL,
      PRIMARY KEY (symbol, seq)
    )`
  }),
  "2_journal_index": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE INDEX journal_by_seq ON journal (seq)`
  })
}

const exercise: Effect.Effect<void, unknown, SqlClient.SqlClient> = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  assert.deepStrictEqual(yield* SqlMigrator.migrate({ migrations }), [
    [1, "journal"],
    [2, "journal_index"]
  ])
  assert.deepStrictEqual(yield* SqlMigrator.migrate({ migrations }), [])
  yield* sql`INSERT INTO journal ${sql.insert({ symbol: "BTC-USDT", seq: 1, payload: new Uint8Array([1, 2, 3]) })}`
  const rows = yield* sql<{ seq: number | bigint; payload: Uint8Array }>`SELECT seq, payload FROM journal`
  assert.strictEqual(Number(rows[0].seq), 1)
  assert.deepStrictEqual(Array.from(rows[0].payload), [1, 2, 3])
  const recorded = yield* sql<{ migration_id: number }>`SELECT migration_id FROM tessera_migrations ORDER BY 1`
  assert.deepStrictEqual(
    recorded.map((row) => Number(row.migration_id)),
    [1, 2]
  )
})

const pgConfig = { host: "127.0.0.1", port: 5432, username: "postgres", database: "test" } as const

describe("SqlMigrator", () => {
  it.live("applies the same records on the embedded client", () =>
    exercise.pipe(Effect.provide(SqliteClient.layer({ filename: ":memory:" })))
  )

  it.live("applies the same records on PostgreSQL (fresh schema)", () =>
    Effect.gen(function* () {
      const schema = `tessera_migr_${process.pid}_${Date.now().toString(36)}`
      const admin = PgClient.layer(pgConfig)
      const inAdmin = <A, E>(f: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>) =>
        Effect.gen(function* () {
          return yield* f(yield* SqlClient.SqlClient)
        }).pipe(Effect.provide(admin))
      yield* inAdmin((sql) => sql`CREATE SCHEMA ${sql(schema)}`)
      yield* Effect.addFinalizer(() =>
        inAdmin((sql) => sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`).pipe(Effect.orDie)
      )
      yield* exercise.pipe(
        Effect.provide(Layer.fresh(PgClient.layer({ ...pgConfig, startupParameters: { search_path: schema } })))
      )
    })
  )
})
