// The runner-wide journal writer against the real PostgreSQL: batches of several shards sealed together leave in one
// statement, and one shard's failing batch never fails another's.
import { PgClient } from "@effect/sql-pg"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { freshDatabase } from "../../test/harness.ts"
import * as Journal from "./journal.ts"
import type { PendingBatch, SealedBatch } from "./ShardCore.ts"

const database = freshDatabase("journal_writer")
afterAll(() => database.drop())

const writerLayer = Journal.layerWriter.pipe(
  Layer.provideMerge(Journal.layerMigrations),
  Layer.provideMerge(PgClient.layer({ url: Redacted.make(database.url) }))
)

const sealed = (symbol: string, seq: number, orderId: number): SealedBatch => ({
  symbol,
  seq,
  commands: JSON.stringify([["p", orderId, "acct", `c-${symbol}-${orderId}`, 0, 0, 0, 0, 100, 1]]),
  orders: [
    {
      symbol,
      order_id: orderId,
      account: "acct",
      client_order_id: `c-${symbol}-${orderId}`,
      side: "buy",
      type: "limit",
      tif: "GTC",
      post_only: 0,
      price: "1.00",
      qty: "1",
      filled_qty: "0",
      status: "open"
    }
  ],
  trades: [],
  count: 1,
  snapshot: undefined,
  batch: {} as PendingBatch
})

const journalRows = (symbol: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql<{
        seq: string
        commands: string
      }>`SELECT seq, commands FROM symbol_journal WHERE symbol = ${symbol} ORDER BY seq`
  )

describe("JournalWriter (PostgreSQL)", () => {
  it.live("writes the batches several shards seal in one turn as one statement", () =>
    Effect.gen(function* () {
      const writer = yield* Journal.JournalWriter
      const before = writer.stats()
      const symbols = ["AAA-USDT", "BBB-USDT", "CCC-USDT", "DDD-USDT"]
      yield* Effect.forEach(symbols, (symbol, i) => writer.write(sealed(symbol, 1, 10 + i)), {
        concurrency: "unbounded",
        discard: true
      })
      const after = writer.stats()
      assert.strictEqual(after.batches - before.batches, 4)
      assert.strictEqual(after.statements - before.statements, 1)
      const sql = yield* SqlClient.SqlClient
      for (const [i, symbol] of symbols.entries()) {
        const rows = yield* journalRows(symbol)
        assert.deepStrictEqual(
          rows.map((r) => Number(r.seq)),
          [1]
        )
        assert.strictEqual(rows[0].commands, sealed(symbol, 1, 10 + i).commands)
        const orders = yield* sql<{ order_id: string; status: string }>`
          SELECT order_id, status FROM orders WHERE symbol = ${symbol}`
        assert.deepStrictEqual(
          orders.map((o) => [Number(o.order_id), o.status]),
          [[10 + i, "open"]]
        )
      }
    }).pipe(Effect.provide(writerLayer))
  )

  it.live("a failing batch (a journal sequence already taken) fails alone; the others in its statement commit", () =>
    Effect.gen(function* () {
      const writer = yield* Journal.JournalWriter
      yield* writer.write(sealed("EEE-USDT", 1, 1))
      const before = writer.stats()
      // EEE-USDT#1 again: what a stale owner would write during a handover.
      const exits = yield* Effect.forEach(
        [sealed("FFF-USDT", 1, 1), sealed("EEE-USDT", 1, 2), sealed("GGG-USDT", 1, 1)],
        (batch) => Effect.exit(writer.write(batch)),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(
        exits.map((exit) => Exit.isSuccess(exit)),
        [true, false, true]
      )
      // One merged statement that failed, then one per batch.
      assert.strictEqual(writer.stats().statements - before.statements, 4)
      assert.deepStrictEqual((yield* journalRows("FFF-USDT")).length, 1)
      assert.deepStrictEqual((yield* journalRows("GGG-USDT")).length, 1)
      const eee = yield* journalRows("EEE-USDT")
      assert.strictEqual(eee.length, 1)
      assert.strictEqual(eee[0].commands, sealed("EEE-USDT", 1, 1).commands)
      const sql = yield* SqlClient.SqlClient
      const orphan = yield* sql`SELECT 1 FROM orders WHERE symbol = 'EEE-USDT' AND order_id = 2`
      assert.strictEqual(orphan.length, 0)
    }).pipe(Effect.provide(writerLayer))
  )

  it.live("two batches of one symbol never share a statement", () =>
    Effect.gen(function* () {
      const writer = yield* Journal.JournalWriter
      const before = writer.stats()
      yield* Effect.forEach([sealed("HHH-USDT", 1, 1), sealed("HHH-USDT", 2, 2)], (batch) => writer.write(batch), {
        concurrency: "unbounded",
        discard: true
      })
      assert.strictEqual(writer.stats().statements - before.statements, 2)
      assert.deepStrictEqual(
        (yield* journalRows("HHH-USDT")).map((r) => Number(r.seq)),
        [1, 2]
      )
    }).pipe(Effect.provide(writerLayer))
  )
})
