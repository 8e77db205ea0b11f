// The Postgres pool's timeouts against the real server: the session settings arrive, a statement past the timeout
// fails typed, and the cluster's advisory-lock session (idle between short statements) keeps its locks.
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Layer, Option, Redacted } from "effect"
import { RunnerAddress, RunnerStorage, ShardId, ShardingConfig, SqlRunnerStorage } from "effect/cluster"
import { SqlClient } from "effect/sql"
import { freshDatabase } from "../test/harness.ts"
import * as TesseraConfig from "./config.ts"
import { layerSql } from "./storage.ts"

const withDatabase = <A, E, R>(f: (url: string) => Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => freshDatabase("pgpool")),
    (database) => f(database.url),
    (database) => Effect.sync(() => database.drop())
  )

const sqlLayer = (url: string, options: Partial<TesseraConfig.TesseraConfigShape> = {}) =>
  Layer.provide(layerSql, TesseraConfig.layer({ databaseUrl: Option.some(Redacted.make(url)), ...options }))

describe("layerSql (Postgres)", () => {
  it.live("sends the statement and idle-in-transaction timeouts in every session", () =>
    withDatabase((url) =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const [row] = yield* sql<{ statement: string; idle: string }>`SELECT
          current_setting('statement_timeout') AS statement,
          current_setting('idle_in_transaction_session_timeout') AS idle`
        assert.deepStrictEqual(row, { statement: "10s", idle: "10s" })
      }).pipe(Effect.provide(sqlLayer(url)))
    )
  )

  it.live("a statement past the statement timeout fails with a SqlError", () =>
    withDatabase((url) =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const error = yield* Effect.flip(sql`SELECT pg_sleep(5)`)
        assert.strictEqual(error._tag, "SqlError")
        assert.strictEqual(error.reason._tag, "StatementTimeoutError")
        // The pool stays usable after the cancelled statement.
        assert.deepStrictEqual(yield* sql<{ one: number }>`SELECT 1 AS one`, [{ one: 1 }])
      }).pipe(
        Effect.provide(sqlLayer(url, { pgStatementTimeout: Duration.millis(300) })),
        // Without the timeout pg_sleep(5) would run 5 s: fail well before that.
        Effect.timeout("3 seconds")
      )
    )
  )

  it.live("the cluster's shard-lock session keeps its advisory locks across refreshes under a short timeout", () =>
    withDatabase((url) =>
      Effect.gen(function* () {
        const storage = yield* RunnerStorage.RunnerStorage
        const address = RunnerAddress.make("127.0.0.1", 1)
        const shards = [1, 2, 3].map((i) => ShardId.make("default", i))
        assert.strictEqual((yield* storage.acquire(address, shards)).length, 3)
        // Longer than the statement timeout between lock operations: the session idles, nothing is cancelled.
        for (let round = 0; round < 3; round++) {
          yield* Effect.sleep("400 millis")
          assert.strictEqual((yield* storage.refresh(address, shards)).length, 3, `refresh ${round}`)
        }
        yield* storage.releaseAll(address)
      }).pipe(
        Effect.provide(
          SqlRunnerStorage.layer.pipe(
            Layer.provide(
              ShardingConfig.layer({ shardLockExpiration: "5 seconds", shardLockRefreshInterval: "1 second" })
            ),
            Layer.provide(sqlLayer(url, { pgStatementTimeout: Duration.millis(300) }))
          )
        )
      )
    )
  )
})
