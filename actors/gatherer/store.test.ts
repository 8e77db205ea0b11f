// Owner epochs fence the deduplicators' inserts into orderbook_deltas, against the real PostgreSQL and the embedded
// SQLite: a stale owner writes nothing, and a claim waits for an insert in flight under the old epoch.
import { PgClient } from "@effect/sql-pg"
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as SqliteClient from "@tessera/platform/SqliteClient"
import * as SqlMigrator from "@tessera/platform/SqlMigrator"
import { Cause, Deferred, Effect, Exit, Fiber, Layer, Option, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { freshDatabase } from "../../test/harness.ts"
import { type DeltaColumns, emptyColumns, pushDelta } from "./dedup.ts"
import { claimOwner, migrations, writeDeltas } from "./store.ts"

const database = freshDatabase("dedup_store")
afterAll(() => database.drop())

const migrated = <E, R>(client: Layer.Layer<SqlClient.SqlClient, E, R>) =>
  SqlMigrator.layer({ migrations, table: "gatherer_migrations" }).pipe(Layer.provideMerge(client))

const pgLayer = migrated(PgClient.layer({ url: Redacted.make(database.url) }))
const sqliteLayer = migrated(SqliteClient.layer({ filename: ":memory:" }))

const deltas = (market: string, ...seqs: ReadonlyArray<number>): DeltaColumns => {
  const columns = emptyColumns()
  for (const seq of seqs) pushDelta(columns, market, seq, 1000 + seq, seq % 2, 100 + seq, seq)
  return columns
}

const write = (owner: { dedup: string; epoch: number }, columns: DeltaColumns) =>
  writeDeltas(owner, columns, 0, columns.seq.length, Date.now())

const seqsOf = (market: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{
        seq: number | string
        qty: number
      }>`SELECT seq, qty FROM orderbook_deltas WHERE market = ${market} ORDER BY seq`,
      (rows) => rows.map((row) => Number(row.seq))
    )
  )

const isStale = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) &&
  Cause.findErrorOption(exit.cause).pipe(Option.exists((e) => (e as { _tag?: string })._tag === "StaleOwner"))

/** The common case on both dialects: a claim fences the previous owner, whose inserts are refused whole. */
const staleOwnerWritesNothing = (dedup: string, market: string) =>
  Effect.gen(function* () {
    const old = yield* claimOwner(dedup)
    yield* write(old, deltas(market, 1, 2))
    const current = yield* claimOwner(dedup)
    assert.strictEqual(current.epoch, old.epoch + 1)
    // New seqs and a seq already present: the statement is refused as a whole.
    const exit = yield* Effect.exit(write(old, deltas(market, 2, 3, 4)))
    assert.isTrue(isStale(exit), String(exit))
    assert.deepStrictEqual(yield* seqsOf(market), [1, 2])
    // The new owner writes on.
    yield* write(current, deltas(market, 3))
    assert.deepStrictEqual(yield* seqsOf(market), [1, 2, 3])
  })

/** The old owner's insert is held in flight by a conflicting uncommitted row; a claim then waits for it. */
const claimDuringInsert = (release: Deferred.Deferred<void>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const old = yield* claimOwner("d3")
    // Another session holds an uncommitted row the old owner's insert conflicts with: the insert stays in flight,
    // holding the share lock on the owner row, until that session ends.
    const held = yield* Deferred.make<void>()
    const blocker = yield* Effect.forkChild(
      sql.withTransaction(
        Effect.gen(function* () {
          yield* sql`INSERT INTO orderbook_deltas (market, seq, ts, side, price, qty, written_at)
              VALUES ('PG-W', 1, 1, 0, 1, 1, 1)`
          yield* Deferred.succeed(held, undefined)
          yield* Deferred.await(release)
        })
      )
    )
    yield* Deferred.await(held)
    const writing = yield* Effect.forkChild(Effect.exit(write(old, deltas("PG-W", 1, 2))))
    yield* Effect.sleep("200 millis")
    assert.isUndefined(writing.pollUnsafe(), "the insert must be in flight")
    const claiming = yield* Effect.forkChild(claimOwner("d3"))
    yield* Effect.sleep("200 millis")
    assert.isUndefined(claiming.pollUnsafe(), "the claim must wait for the in-flight insert's share lock")
    yield* Deferred.succeed(release, undefined)
    yield* Fiber.join(blocker)
    assert.isTrue(Exit.isSuccess(yield* Fiber.join(writing)), "the in-flight insert commits under its epoch")
    assert.strictEqual((yield* Fiber.join(claiming)).epoch, old.epoch + 1)
    assert.deepStrictEqual(yield* seqsOf("PG-W"), [1, 2])
    // After the claim, the old owner is fenced out.
    assert.isTrue(isStale(yield* Effect.exit(write(old, deltas("PG-W", 3)))))
    assert.deepStrictEqual(yield* seqsOf("PG-W"), [1, 2])
  })

describe("deduplicator owner epochs (PostgreSQL)", () => {
  it.live("a write under a superseded epoch fails StaleOwner and writes nothing", () =>
    staleOwnerWritesNothing("d0", "PG-A").pipe(Effect.provide(pgLayer))
  )

  it.live("epochs are per deduplicator: claiming one leaves the others' writes alone", () =>
    Effect.gen(function* () {
      const one = yield* claimOwner("d1")
      const two = yield* claimOwner("d2")
      yield* claimOwner("d2")
      yield* write(one, deltas("PG-B", 1))
      assert.isTrue(isStale(yield* Effect.exit(write(two, deltas("PG-C", 1)))))
      assert.deepStrictEqual(yield* seqsOf("PG-B"), [1])
      assert.deepStrictEqual(yield* seqsOf("PG-C"), [])
    }).pipe(Effect.provide(pgLayer))
  )

  it.live("a claim waits for an insert in flight under the old epoch, which commits first", () =>
    Effect.gen(function* () {
      const release = yield* Deferred.make<void>()
      yield* claimDuringInsert(release).pipe(
        // A failed assertion ends the blocking session first, so the queries waiting on it return and the test ends.
        Effect.ensuring(Deferred.succeed(release, undefined))
      )
    }).pipe(Effect.provide(pgLayer))
  )
})

describe("deduplicator owner epochs (embedded SQLite)", () => {
  it.live("a write under a superseded epoch fails StaleOwner and writes nothing", () =>
    staleOwnerWritesNothing("d0", "SQ-A").pipe(Effect.provide(sqliteLayer))
  )
})
