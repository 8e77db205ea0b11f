// The runner-wide journal writer against the real PostgreSQL: batches of several shards sealed together leave in one
// statement, and one shard's failing batch never fails another's.
import { PgClient } from "@effect/sql-pg"
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as SqliteClient from "@tessera/platform/SqliteClient"
import { Cause, Deferred, Effect, Exit, Fiber, Layer, Option, Redacted } from "effect"
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

/** Claims each symbol for a new owner; answers the epochs in order. */
const claim = (...symbols: ReadonlyArray<string>) =>
  Effect.flatMap(Journal.make, (journal) => Effect.forEach(symbols, (symbol) => journal.claim(symbol)))

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
      assert.deepStrictEqual(yield* claim(...symbols), [1, 1, 1, 1])
      yield* Effect.forEach(symbols, (symbol, i) => writer.write(sealed(symbol, 1, 10 + i), 1), {
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
      yield* claim("EEE-USDT", "FFF-USDT", "GGG-USDT")
      yield* writer.write(sealed("EEE-USDT", 1, 1), 1)
      const before = writer.stats()
      // EEE-USDT#1 again under the current epoch: a constraint violation, not a fence.
      const exits = yield* Effect.forEach(
        [sealed("FFF-USDT", 1, 1), sealed("EEE-USDT", 1, 2), sealed("GGG-USDT", 1, 1)],
        (batch) => Effect.exit(writer.write(batch, 1)),
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
      yield* claim("HHH-USDT")
      const before = writer.stats()
      yield* Effect.forEach([sealed("HHH-USDT", 1, 1), sealed("HHH-USDT", 2, 2)], (batch) => writer.write(batch, 1), {
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

const orderRow = (symbol: string, orderId: number) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql<{
        status: string
        qty: string
      }>`SELECT status, qty FROM orders WHERE symbol = ${symbol} AND order_id = ${orderId}`
  )

/** `sealed`, with the order's row changed as a stale owner would change it. */
const overwriting = (symbol: string, seq: number, orderId: number): SealedBatch => {
  const base = sealed(symbol, seq, orderId)
  return { ...base, orders: [{ ...base.orders[0], qty: "999", status: "cancelled" }] }
}

const isStale = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) &&
  Cause.findErrorOption(exit.cause).pipe(Option.exists((e) => (e as { _tag?: string })._tag === "StaleOwner"))

describe("owner epochs fence the journal (PostgreSQL)", () => {
  it.live("a claim bumps the epoch; a write under the old epoch fails StaleOwner and writes nothing", () =>
    Effect.gen(function* () {
      const writer = yield* Journal.JournalWriter
      const [old] = yield* claim("FEN-USDT")
      yield* writer.write(sealed("FEN-USDT", 1, 1), old)
      const [current] = yield* claim("FEN-USDT")
      assert.strictEqual(current, old + 1)
      // The stale owner writes below and above the new owner's sequence, and rewrites an order: all refused.
      for (const batch of [overwriting("FEN-USDT", 2, 1), { ...overwriting("FEN-USDT", 3, 1), snapshot: "{}" }]) {
        const exit = yield* Effect.exit(writer.write(batch, old))
        assert.isTrue(isStale(exit), String(exit))
      }
      assert.deepStrictEqual(
        (yield* journalRows("FEN-USDT")).map((r) => Number(r.seq)),
        [1]
      )
      assert.deepStrictEqual(yield* orderRow("FEN-USDT", 1), [{ status: "open", qty: "1" }])
      const sql = yield* SqlClient.SqlClient
      assert.strictEqual((yield* sql`SELECT 1 FROM symbol_snapshots WHERE symbol = 'FEN-USDT'`).length, 0)
      // The new owner writes on.
      yield* writer.write(sealed("FEN-USDT", 2, 2), current)
      assert.deepStrictEqual(
        (yield* journalRows("FEN-USDT")).map((r) => Number(r.seq)),
        [1, 2]
      )
    }).pipe(Effect.provide(writerLayer))
  )

  it.live("in a merged statement only the stale shard's batch is refused; the others commit", () =>
    Effect.gen(function* () {
      const writer = yield* Journal.JournalWriter
      yield* claim("MA-USDT", "MB-USDT", "MC-USDT")
      yield* claim("MB-USDT") // MB moved: epoch 2
      const before = writer.stats()
      const exits = yield* Effect.forEach(
        ["MA-USDT", "MB-USDT", "MC-USDT"],
        (symbol) => Effect.exit(writer.write(sealed(symbol, 1, 1), 1)),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(
        exits.map((exit) => (Exit.isSuccess(exit) ? "ok" : isStale(exit) ? "stale" : "failed")),
        ["ok", "stale", "ok"]
      )
      assert.strictEqual(writer.stats().statements - before.statements, 1)
      assert.strictEqual((yield* journalRows("MA-USDT")).length, 1)
      assert.strictEqual((yield* journalRows("MB-USDT")).length, 0)
      assert.strictEqual((yield* orderRow("MB-USDT", 1)).length, 0)
      assert.strictEqual((yield* journalRows("MC-USDT")).length, 1)
    }).pipe(Effect.provide(writerLayer))
  )

  it.live(
    "a claim waits for a write in flight under the old epoch, which commits first and is read by the new owner",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const writer = yield* Journal.JournalWriter
        const [old] = yield* claim("WAIT-USDT")
        // A second connection holds the owner row's share lock, as the old owner's statement does while it runs.
        const release = yield* Deferred.make<void>()
        const held = yield* Deferred.make<void>()
        const holder = yield* Effect.forkChild(
          sql.withTransaction(
            Effect.gen(function* () {
              yield* sql`SELECT epoch FROM symbol_owners WHERE symbol = 'WAIT-USDT' FOR SHARE`
              yield* Deferred.succeed(held, undefined)
              yield* Deferred.await(release)
            })
          )
        )
        yield* Deferred.await(held)
        const claiming = yield* Effect.forkChild(claim("WAIT-USDT"))
        yield* Effect.sleep("200 millis")
        assert.isUndefined(claiming.pollUnsafe(), "the claim must wait for the share lock")
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(holder)
        assert.deepStrictEqual(yield* Fiber.join(claiming), [old + 1])
        assert.isTrue(isStale(yield* Effect.exit(writer.write(sealed("WAIT-USDT", 1, 1), old))))
      }).pipe(Effect.provide(writerLayer))
  )
})

/** A snapshot of `size` characters with multi-byte ones throughout (a piece boundary may fall between them). */
const bigSnapshot = (size: number) => {
  const unit = '{"o":[1,"acct","c-é€😀"]},'
  return `[${unit.repeat(Math.ceil(size / unit.length))}0]`
}

/** Writes a batch carrying `snapshot`, then reads the symbol's state back as a new activation does. */
const snapshotRoundTrip = (symbol: string, snapshot: string) =>
  Effect.gen(function* () {
    const writer = yield* Journal.JournalWriter
    const [epoch] = yield* claim(symbol)
    yield* writer.write({ ...sealed(symbol, 1, 1), snapshot }, epoch)
    const journal = yield* Journal.make
    return yield* journal.load(symbol)
  })

describe("snapshots larger than one Postgres message", () => {
  it.live("a 20 MiB snapshot is read back whole (the client takes 16 MiB in one message)", () =>
    Effect.gen(function* () {
      const snapshot = bigSnapshot(20 * 1024 * 1024)
      const stored = yield* snapshotRoundTrip("BIG-USDT", snapshot)
      assert.strictEqual(stored.snapshot?.seq, 1)
      assert.strictEqual(stored.snapshot?.json.length, snapshot.length)
      assert.isTrue(stored.snapshot?.json === snapshot, "the snapshot read back differs")
    }).pipe(Effect.provide(writerLayer))
  )

  it.live("embedded SQLite reads a snapshot of several pieces back whole", () =>
    Effect.gen(function* () {
      const snapshot = bigSnapshot(5 * 1024 * 1024)
      const stored = yield* snapshotRoundTrip("BIG-USDT", snapshot)
      assert.isTrue(stored.snapshot?.json === snapshot, "the snapshot read back differs")
    }).pipe(
      Effect.provide(
        Journal.layerWriter.pipe(
          Layer.provideMerge(Journal.layerMigrations),
          Layer.provideMerge(SqliteClient.layer({ filename: ":memory:" }))
        )
      )
    )
  )
})

describe("owner epochs fence the journal (embedded SQLite)", () => {
  it.live("a write under a superseded epoch fails StaleOwner and writes nothing", () =>
    Effect.gen(function* () {
      const writer = yield* Journal.JournalWriter
      const [old] = yield* claim("SQ-USDT")
      yield* writer.write(sealed("SQ-USDT", 1, 1), old)
      yield* claim("SQ-USDT")
      assert.isTrue(isStale(yield* Effect.exit(writer.write(overwriting("SQ-USDT", 2, 1), old))))
      assert.strictEqual((yield* journalRows("SQ-USDT")).length, 1)
      assert.deepStrictEqual(yield* orderRow("SQ-USDT", 1), [{ status: "open", qty: "1" }])
    }).pipe(
      Effect.provide(
        Journal.layerWriter.pipe(
          Layer.provideMerge(Journal.layerMigrations),
          Layer.provideMerge(SqliteClient.layer({ filename: ":memory:" }))
        )
      )
    )
  )
})
