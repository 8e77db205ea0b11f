// The deduplicator's md:book publisher against the embedded SQLite tables and the in-memory Valkey (the same XADD
// id rules as the server): what is in the table reaches the stream once, in order, whatever happened before.
import { assert, describe, it } from "@effect/vitest"
import * as SqliteClient from "@tessera/platform/SqliteClient"
import * as SqlMigrator from "@tessera/platform/SqlMigrator"
import { Cmd, makeMemory, ValkeyError, type ValkeyService } from "@tessera/platform/Valkey"
import { Effect, Layer, type Scope } from "effect"
import type { SqlClient } from "effect/sql"
import * as BookPublisher from "./bookPublisher.ts"
import { type DeltaColumns, emptyColumns, pushDelta } from "./dedup.ts"
import { bookStream } from "./protocol.ts"
import { claimOwner, migrations, writeDeltas } from "./store.ts"

const tables = () =>
  SqlMigrator.layer({ migrations, table: "gatherer_migrations" }).pipe(
    Layer.provideMerge(SqliteClient.layer({ filename: ":memory:" }))
  )

const deltas = (market: string, from: number, to: number): DeltaColumns => {
  const columns = emptyColumns()
  for (let seq = from; seq <= to; seq++) pushDelta(columns, market, seq, 1000 + seq, seq % 2, 100 + seq / 100, seq)
  return columns
}

const entry = (seq: number) => ({
  id: `${seq}-0`,
  fields: { d: `[[${seq},${1000 + seq},${seq % 2},${100 + seq / 100},${seq}]]` }
})
const entries = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => entry(from + i))

/** Rows in the table as a deduplicator writes them (fenced by a claimed epoch). */
const insert = (columns: DeltaColumns) =>
  Effect.flatMap(claimOwner("d0"), (owner) => writeDeltas(owner, columns, 0, columns.seq.length, Date.now()))

/** A Valkey whose pipelines fail while `down` is set (a connection lost mid-run). */
const flaky = (valkey: ValkeyService) => {
  const state = { down: false, failed: 0 }
  const service: ValkeyService = {
    ...valkey,
    pipeline: ((commands) =>
      Effect.suspend(() => {
        if (!state.down) return valkey.pipeline(commands)
        state.failed++
        return Effect.fail(new ValkeyError({ command: "PIPELINE", reason: "Connection", message: "down" }))
      })) as ValkeyService["pipeline"],
    xrevrange: (...args) =>
      Effect.suspend(() =>
        state.down
          ? Effect.fail(new ValkeyError({ command: "XREVRANGE", reason: "Connection", message: "down" }))
          : valkey.xrevrange(...args)
      )
  }
  return { service, state }
}

/** Waits (real clock) until the publisher has nothing behind and the stream holds `expected`. */
const settled = (
  valkey: ValkeyService,
  book: BookPublisher.BookPublisher,
  market: string,
  expected: ReturnType<typeof entries>
) =>
  Effect.gen(function* () {
    const until = Date.now() + 10_000
    let stream = yield* valkey.xrange(bookStream(market))
    while (Date.now() < until) {
      stream = yield* valkey.xrange(bookStream(market))
      if (book.behindCount() === 0 && stream.length === expected.length) break
      yield* Effect.sleep("20 millis")
    }
    assert.strictEqual(book.behindCount(), 0, "nothing left behind")
    assert.deepStrictEqual(stream, expected)
  })

const publisher = (valkey: ValkeyService, bufferBound?: number) =>
  BookPublisher.make({ dedup: "d0", valkey, tables: BookPublisher.sqlTables, bufferBound })

const run = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient | Scope.Scope>) =>
  effect.pipe(Effect.scoped, Effect.provide(tables()))

describe("BookPublisher", () => {
  it.live("an idle market: a new owner republishes what the table holds beyond the stream, with no new row", () =>
    run(
      Effect.gen(function* () {
        const valkey = yield* makeMemory
        yield* insert(deltas("m", 1, 9))
        // The previous owner published 1-5, then died before publishing 6-9.
        yield* valkey.pipeline(entries(1, 5).map((e) => Cmd.xadd(bookStream("m"), e.fields, { id: e.id })))
        const book = yield* publisher(valkey)
        book.start("m", 9)
        yield* settled(valkey, book, "m", entries(1, 9))
      })
    )
  )

  it.live("live rows follow the republished ones in order; a repeat of written rows adds nothing", () =>
    run(
      Effect.gen(function* () {
        const valkey = yield* makeMemory
        yield* insert(deltas("m", 1, 3))
        const book = yield* publisher(valkey)
        book.start("m", 3)
        yield* settled(valkey, book, "m", entries(1, 3))
        const more = deltas("m", 4, 8)
        yield* insert(more)
        book.written(more)
        book.written(more)
        yield* settled(valkey, book, "m", entries(1, 8))
      })
    )
  )

  it.live("a market first seen in written rows (no start) is republished from the table before going live", () =>
    run(
      Effect.gen(function* () {
        const valkey = yield* makeMemory
        yield* insert(deltas("m", 1, 6))
        const book = yield* publisher(valkey)
        // Only rows 5-6 are handed over: 1-4 were written by an owner that died before publishing them.
        book.written(deltas("m", 5, 6))
        yield* settled(valkey, book, "m", entries(1, 6))
      })
    )
  )

  it.live("failed pipelines leave no hole: the market is republished from the table once Valkey is back", () =>
    run(
      Effect.gen(function* () {
        const memory = yield* makeMemory
        const { service, state } = flaky(memory)
        yield* insert(deltas("m", 1, 2))
        const book = yield* publisher(service)
        book.start("m", 2)
        yield* settled(memory, book, "m", entries(1, 2))
        state.down = true
        for (const [from, to] of [
          [3, 5],
          [6, 9]
        ]) {
          const rows = deltas("m", from, to)
          yield* insert(rows)
          book.written(rows)
          yield* Effect.sleep("50 millis")
        }
        assert.isAbove(state.failed, 0, "the pipelines failed")
        assert.isAbove(book.behindCount(), 0, "the market is behind")
        state.down = false
        const last = deltas("m", 10, 11)
        yield* insert(last)
        book.written(last)
        yield* settled(memory, book, "m", entries(1, 11))
      })
    )
  )

  it.live("rows past the buffer bound are not queued: the market is republished from the table instead", () =>
    run(
      Effect.gen(function* () {
        const valkey = yield* makeMemory
        yield* insert(deltas("m", 1, 1))
        const book = yield* publisher(valkey, 3)
        book.start("m", 1)
        yield* settled(valkey, book, "m", entries(1, 1))
        const rows = deltas("m", 2, 20)
        yield* insert(rows)
        book.written(rows)
        yield* settled(valkey, book, "m", entries(1, 20))
      })
    )
  )

  it.live("a stream with ids beyond the table (another database's history) is reset and rebuilt from the table", () =>
    run(
      Effect.gen(function* () {
        const valkey = yield* makeMemory
        yield* insert(deltas("m", 1, 4))
        yield* valkey.xadd(bookStream("m"), { d: "[[99,0,0,0,0]]" }, { id: "99-0" })
        const book = yield* publisher(valkey)
        book.start("m", 4)
        yield* settled(valkey, book, "m", entries(1, 4))
      })
    )
  )

  it.live("an empty stream gets the newest rows back, not all history", () =>
    run(
      Effect.gen(function* () {
        const valkey = yield* makeMemory
        const total = BookPublisher.bookStreamMaxLen + 500
        yield* insert(deltas("m", 1, total))
        const book = yield* publisher(valkey)
        book.start("m", total)
        yield* settled(valkey, book, "m", entries(total - BookPublisher.bookStreamMaxLen + 1, total))
      })
    )
  )
})
