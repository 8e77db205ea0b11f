/**
 * A deduplicator's publication of written deltas to `md:book:{market}`: one entry per delta, id `<seq>-0`, field
 * `d` = `[[seq,ts,side,price,qty]]` (the array shape consumers read), `MAXLEN ~ bookStreamMaxLen`.
 *
 * Exactly once, in order, across failover: only rows already in `orderbook_deltas` are published, and an XADD of an
 * id already there is refused by the server, so a repeat changes nothing. A market is "behind" when its stream may
 * lack durable rows: first seen by this activation (the previous owner may have died between insert and publish),
 * a batch that found the buffer full, a failed pipeline. Its live rows are then skipped (they are in the table) and
 * the publisher republishes from the table everything after the stream's last id up to what is written, then goes
 * live again. One fiber publishes, so a market's entries leave in seq order.
 */

import * as Metrics from "@tessera/platform/Metrics"
import { Cmd, type Command, type ValkeyService } from "@tessera/platform/Valkey"
import { Duration, Effect, Exit, Queue, type Scope } from "effect"
import type { SqlClient, SqlError } from "effect/sql"
import type { DeltaColumns } from "./dedup.ts"
import { bookStream } from "./protocol.ts"
import { type DeltaRow, deltasBetween, lastWrittenSeqs } from "./store.ts"

/** Entries kept per market stream (approximately); also how far back a republish of an empty stream goes. */
export const bookStreamMaxLen = 1000

/** Rows waiting to be published, at most; a batch past it is dropped and its markets republished from the table. */
export const publishBufferBound = 200_000

/** Rows per republish round (one SELECT and one pipeline). */
const republishChunk = 2000

const republished = Metrics.counter(
  "tessera_dedup_republished_total",
  "md:book entries republished from orderbook_deltas (new owner, dropped batch or failed pipeline)",
  ["dedup"]
)
const resets = Metrics.counter(
  "tessera_dedup_stream_resets_total",
  "md:book streams deleted because they held ids beyond orderbook_deltas (another database's history)",
  ["dedup"]
)
const publishDropped = Metrics.counter(
  "tessera_dedup_publish_dropped_total",
  "Written deltas not queued for md:book because the publish buffer was full (republished from the table later)",
  ["dedup"]
)

/** What the republish reads from `orderbook_deltas`. */
export interface BookTables {
  readonly lastSeq: (market: string) => Effect.Effect<number, SqlError.SqlError, SqlClient.SqlClient>
  readonly between: (
    market: string,
    after: number,
    upTo: number,
    limit: number,
    newest: boolean
  ) => Effect.Effect<ReadonlyArray<DeltaRow>, SqlError.SqlError, SqlClient.SqlClient>
}

/** The tables of `store.ts`. */
export const sqlTables: BookTables = {
  lastSeq: (market) => Effect.map(lastWrittenSeqs([market]), (last) => last.get(market) ?? 0),
  between: deltasBetween
}

interface MarketStream {
  /** Highest seq known to be in the stream (valid while not behind). */
  top: number
  /** Highest seq written to the table by this activation, or found there. */
  written: number
  behind: boolean
}

const entry = (market: string, seq: number, ts: number, side: number, price: number, qty: number): Command =>
  Cmd.xadd(
    bookStream(market),
    { d: `[[${seq},${ts},${side},${price},${qty}]]` },
    { id: `${seq}-0`, maxLen: bookStreamMaxLen, approximate: true }
  )

const idSeq = (id: string | undefined): number => (id === undefined ? 0 : Number(id.slice(0, id.indexOf("-"))))

export interface BookPublisher {
  /** A market this activation starts, after `lastWritten` in the table: republished before its live rows. */
  readonly start: (market: string, lastWritten: number | undefined) => void
  /** Rows just written to the table (ascending seq per market); copied, `rows` may be reused at once. */
  readonly written: (rows: DeltaColumns) => void
  /** Markets whose stream may still lack written rows. */
  readonly behindCount: () => number
}

export const make = (options: {
  readonly dedup: string
  readonly valkey: ValkeyService
  readonly tables: BookTables
  readonly bufferBound?: number
}): Effect.Effect<BookPublisher, never, SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function* () {
    const { valkey, tables } = options
    const label = { dedup: options.dedup }
    const bound = options.bufferBound ?? publishBufferBound
    const markets = new Map<string, MarketStream>()
    const behind = new Set<string>()
    /** Rows waiting, as parallel arrays (market, seq, then the command). */
    let waitingMarket: Array<string> = []
    let waitingSeq: Array<number> = []
    let waitingCommand: Array<Command> = []
    const wake = yield* Queue.sliding<void>(1)

    const markBehind = (market: string, state: MarketStream) => {
      state.behind = true
      behind.add(market)
    }

    const start = (market: string, lastWritten: number | undefined) => {
      if (markets.has(market)) return
      markets.set(market, { top: 0, written: lastWritten ?? 0, behind: true })
      behind.add(market)
      Queue.offerUnsafe(wake, undefined)
    }

    const written = (rows: DeltaColumns) => {
      let dropped = 0
      for (let i = 0; i < rows.seq.length; i++) {
        const market = rows.market[i]
        let state = markets.get(market)
        if (state === undefined) {
          state = { top: 0, written: 0, behind: true }
          markets.set(market, state)
          behind.add(market)
        }
        const seq = rows.seq[i]
        if (seq > state.written) state.written = seq
        if (state.behind) continue
        if (waitingSeq.length >= bound) {
          dropped++
          markBehind(market, state)
          continue
        }
        waitingMarket.push(market)
        waitingSeq.push(seq)
        waitingCommand.push(entry(market, seq, rows.ts[i], rows.side[i], rows.price[i], rows.qty[i]))
      }
      if (dropped > 0) publishDropped.labels(label).inc(dropped)
      Queue.offerUnsafe(wake, undefined)
    }

    /** Brings one behind market's stream up to what is written, then clears `behind` (publisher fiber only). */
    const resync = (market: string, state: MarketStream) =>
      Effect.gen(function* () {
        const key = bookStream(market)
        // Top first, table second: an entry was in the table before it was published, so a top above the table's
        // last seq is another history (another database on the same Valkey), not a newer owner of this one.
        const last = yield* valkey.xrevrange(key, "+", "-", 1)
        let top = idSeq(last[0]?.id)
        const tableLast = yield* tables.lastSeq(market)
        if (tableLast > state.written) state.written = tableLast
        if (top > state.written) {
          yield* valkey.del(key)
          resets.labels(label).inc()
          yield* Effect.logWarning(`${key} held ids beyond orderbook_deltas (up to ${state.written}); reset`)
          top = 0
        }
        let empty = top === 0
        while (top < state.written) {
          const rows = yield* tables.between(
            market,
            top,
            state.written,
            empty ? bookStreamMaxLen : republishChunk,
            empty
          )
          if (rows.length === 0) break
          empty = false
          yield* valkey.pipeline(rows.map((r) => entry(market, r.seq, r.ts, r.side, r.price, r.qty)))
          republished.labels(label).inc(rows.length)
          top = rows[rows.length - 1].seq
        }
        // No yield since the last check of `written`: rows written from here on are published live.
        state.top = top
        state.behind = false
        behind.delete(market)
      })

    const live = Effect.suspend(() => {
      if (waitingSeq.length === 0) return Effect.void
      const rowMarkets = waitingMarket
      const rowSeqs = waitingSeq
      const rowCommands = waitingCommand
      waitingMarket = []
      waitingSeq = []
      waitingCommand = []
      const out: Array<Command> = []
      const sent: Array<string> = []
      for (let i = 0; i < rowSeqs.length; i++) {
        const state = markets.get(rowMarkets[i])!
        // Behind since it was queued, or already republished by a resync.
        if (state.behind || rowSeqs[i] <= state.top) continue
        state.top = rowSeqs[i]
        out.push(rowCommands[i])
        sent.push(rowMarkets[i])
      }
      if (out.length === 0) return Effect.void
      return Effect.flatMap(Effect.exit(valkey.pipeline(out)), (exit) => {
        if (Exit.isSuccess(exit)) return Effect.void
        // Some entries may be missing: resync these markets from the table (ids keep the others harmless).
        for (const market of sent) markBehind(market, markets.get(market)!)
        return Effect.logWarning(
          `md:book publish of ${out.length} deltas failed; republishing from the table`,
          exit.cause
        )
      })
    })

    let backoffMs = 100
    const round = Effect.gen(function* () {
      // Markets are independent: a new owner's first round resyncs many of them, a few at a time.
      let failure: Exit.Exit<void, unknown> | undefined
      yield* Effect.forEach(
        Array.from(behind),
        (market) =>
          Effect.map(Effect.exit(resync(market, markets.get(market)!)), (exit) => {
            if (Exit.isFailure(exit)) failure ??= exit
          }),
        { concurrency: 16, discard: true }
      )
      if (failure !== undefined && Exit.isFailure(failure)) {
        yield* Effect.logWarning(`md:book republish failed for ${behind.size} market(s); retrying`, failure.cause)
      }
      yield* live
      if (behind.size === 0) {
        backoffMs = 100
        return
      }
      // Valkey or the database is failing: the next round after a growing, jittered pause.
      yield* Effect.sleep(Duration.millis(backoffMs * (0.5 + Math.random())))
      backoffMs = Math.min(backoffMs * 2, 5000)
      Queue.offerUnsafe(wake, undefined)
    })

    yield* Effect.forkScoped(
      Effect.forever(Effect.andThen(Queue.take(wake), Effect.catchCause(round, Effect.logWarning)), {
        disableYield: true
      })
    )
    return { start, written, behindCount: () => behind.size }
  })
