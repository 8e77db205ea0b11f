/**
 * effect/cluster's SQL storage (SqlMessageStorage + SqlRunnerStorage, sqlite dialect) on the embedded client, and the
 * same scenario on the real PostgreSQL through @effect/sql-pg for comparison: a persisted message is stored and
 * delivered, and a message left unfinished when the node stops is delivered again after a restart on the same data.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import {
  ClusterSchema,
  Entity,
  RunnerHealth,
  Runners,
  Sharding,
  ShardingConfig,
  SingleRunner,
  SqlMessageStorage,
  SqlRunnerStorage
} from "effect/cluster"
import * as Digest from "effect/crypto/Digest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import { Rpc } from "effect/rpc"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import * as SqliteClient from "./SqliteClient.ts"

const Record = Rpc.make("Record", {
  payload: { value: Schema.String },
  success: Schema.String,
  primaryKey: ({ value }) => value
})
  .annotate(ClusterSchema.Persisted, true)
  // Stopping the node interrupts a blocked handler at once; the message stays unprocessed for the next start.
  .annotate(ClusterSchema.InterruptOnTermination, true)

const Ledger = Entity.make("Ledger", [Record])

/** Handlers push what they receive to `received`; values in `block` start and then never finish. */
const ledgerLayer = (received: Queue.Queue<string>, block: ReadonlySet<string>) =>
  Ledger.toLayer(
    Effect.succeed(
      Ledger.of({
        Record: ({ payload }) =>
          Effect.gen(function* () {
            yield* Queue.offer(received, payload.value)
            if (block.has(payload.value)) return yield* Effect.never
            return `ok:${payload.value}`
          })
      })
    )
  )

const shardingConfig: Partial<ShardingConfig.ShardingConfig["Service"]> = {
  shardsPerGroup: 8,
  entityMessagePollInterval: "200 millis",
  refreshAssignmentsInterval: "200 millis",
  entityTerminationTimeout: "1 second"
}

/**
 * One in-process runner on SQL storage. Without a prefix it is `SingleRunner.layer` as is; with one, the same
 * wiring with prefixed tables (and advisory-lock namespace), so parallel test files on one PostgreSQL do not meet.
 */
const runnerLayer = (prefix: string | undefined) =>
  prefix === undefined
    ? SingleRunner.layer({ shardingConfig, runnerStorage: "sql" })
    : Sharding.layer.pipe(
        Layer.provideMerge(Runners.layerNoop),
        Layer.provideMerge(SqlMessageStorage.layerWith({ prefix })),
        Layer.provide([Layer.orDie(SqlRunnerStorage.layerWith({ prefix })), RunnerHealth.layerNoop]),
        Layer.provide(ShardingConfig.layer(shardingConfig))
      )

const nodeLayer = <E>(
  sqlLayer: Layer.Layer<SqlClient.SqlClient, E>,
  prefix: string | undefined,
  received: Queue.Queue<string>,
  block: ReadonlySet<string>
) =>
  ledgerLayer(received, block).pipe(
    Layer.provideMerge(runnerLayer(prefix)),
    Layer.provide(Digest.layerWebCrypto),
    Layer.provideMerge(sqlLayer)
  )

const takeWithin = (received: Queue.Queue<string>) =>
  Queue.take(received).pipe(Effect.timeout("20 seconds"), Effect.orDie)

/** The scenario, against any SQL layer that opens the same data each time it is built. */
const persistAndRestart = <E>(sqlLayer: Layer.Layer<SqlClient.SqlClient, E>, prefix: string | undefined) =>
  Effect.gen(function* () {
    const table = `${prefix ?? "cluster"}_messages`

    // First start: one message answered, one left in progress when the node stops.
    const first = yield* Queue.unbounded<string>()
    yield* Effect.gen(function* () {
      const ledger = (yield* Ledger.client)("ledger-1")
      assert.strictEqual(yield* ledger.Record({ value: "hello" }), "ok:hello")
      assert.strictEqual(yield* takeWithin(first), "hello")
      yield* ledger.Record({ value: "later" }, { discard: true })
      assert.strictEqual(yield* takeWithin(first), "later")

      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<{ tag: string; processed: unknown }>`
        SELECT tag, processed FROM ${sql(table)} WHERE entity_id = ${"ledger-1"} ORDER BY id`
      assert.deepStrictEqual(
        rows.map((row) => [row.tag, Boolean(Number(row.processed))]),
        [
          ["Record", true],
          ["Record", false]
        ]
      )
    }).pipe(Effect.provide(nodeLayer(sqlLayer, prefix, first, new Set(["later"]))))

    // Second start on the same data: the unfinished message is delivered again, the answered one is not.
    const second = yield* Queue.unbounded<string>()
    yield* Effect.gen(function* () {
      assert.strictEqual(yield* takeWithin(second), "later")
      const sql = yield* SqlClient.SqlClient
      // Its reply is stored and the message marked processed.
      const settled = Effect.gen(function* () {
        const [row] = yield* sql<{ n: number | bigint }>`
          SELECT count(*) AS n FROM ${sql(table)} WHERE entity_id = ${"ledger-1"} AND processed = ${true}`
        return Number(row.n)
      })
      let processed = yield* settled
      for (let i = 0; i < 100 && processed < 2; i++) {
        yield* Effect.sleep("100 millis")
        processed = yield* settled
      }
      assert.strictEqual(processed, 2)
      // A duplicate of an answered request (same primary key) is answered from storage, not redelivered.
      const ledger = (yield* Ledger.client)("ledger-1")
      assert.strictEqual(yield* ledger.Record({ value: "hello" }), "ok:hello")
      assert.strictEqual(yield* Queue.size(second), 0)
    }).pipe(Effect.provide(nodeLayer(sqlLayer, prefix, second, new Set())))
  })

describe("cluster storage on SQL", () => {
  it.live(
    "embedded sqlite: persisted messages are stored, delivered, and survive a restart",
    () =>
      Effect.gen(function* () {
        const root = mkdtempSync(join(tmpdir(), "tessera-cluster-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(root, { recursive: true, force: true })))
        yield* persistAndRestart(SqliteClient.layer({ filename: join(root, "data", "tessera.db") }), undefined)
      }),
    60_000
  )

  it.live(
    "postgres (@effect/sql-pg): the same scenario in a fresh schema",
    () =>
      Effect.gen(function* () {
        const schema = `tessera_sqlcmp_${process.pid}_${Date.now().toString(36)}`
        const admin = PgClient.layer({ host: "127.0.0.1", port: 5432, username: "postgres", database: "test" })
        yield* Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          yield* sql`CREATE SCHEMA ${sql(schema)}`
        }).pipe(Effect.provide(admin))
        yield* Effect.addFinalizer(() =>
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            yield* sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`
          }).pipe(Effect.provide(admin), Effect.orDie)
        )
        const pg = PgClient.layer({
          host: "127.0.0.1",
          port: 5432,
          username: "postgres",
          database: "test",
          startupParameters: { search_path: schema }
        })
        yield* persistAndRestart(pg, schema)
      }),
    60_000
  )
})
