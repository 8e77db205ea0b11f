/**
 * Market-data publication: after a batch is durable, its trades go to `md:{symbol}:trades` (one entry per trade, id
 * `<trade_id>-0`) and the book's top levels to `md:{symbol}:depth` (one entry per batch, id `<journal seq>-0`), in
 * one Valkey pipeline. Streams are capped with `MAXLEN ~`.
 *
 * Exactly once, in order, across failover: ids come from the durable sequence, so an XADD of an entry already there
 * is refused by the server (id <= top) and changes nothing. A symbol whose stream may be behind its tables (a new
 * owner, a batch dropped because the queue was full, a failed pipeline) is "behind": its live batches are skipped
 * (they are in the `trades` table) and the publisher republishes from the table everything after the stream's last
 * id up to what is durable, then resumes live publishing. Depth is state, not events: a resync publishes the latest
 * depth under the latest durable seq (intermediate depth entries are coalesced).
 *
 * A symbol that no activation wakes after a failover (its owner died, or was interrupted, between commit and
 * publish, and no request came since) is healed by a repair on every runner: a trades stream that stays behind its
 * table for a whole repair interval, with no activation of the symbol here, gets the missing tail from the table.
 * Republishing durable rows in id order from the stream's last id can never open a hole, so the repair may run
 * beside an owner on another runner (their repeats are refused by id).
 */

import * as Metrics from "@tessera/platform/Metrics"
import { Cmd, type Command, Valkey } from "@tessera/platform/Valkey"
import { Context, Duration, Effect, Exit, Layer, Queue, Schedule, type Scope } from "effect"
import { SqlClient, type SqlError } from "effect/sql"
import type { Depth } from "./engine/OrderBook.ts"
import * as ShardMetrics from "./metrics.ts"
import { depthStream, tradesStream } from "./protocol.ts"
import type { TradeRow } from "./ShardCore.ts"

/** Entries kept per stream (approximately); also how far back a resync of an empty stream goes. */
export const streamMaxLen = 100_000

/** Levels per side in a depth entry. */
export const depthLevels = 20

/**
 * Flushed batches waiting for the runner's publisher, at most. A batch that finds the queue full is not held: its
 * symbol is marked behind and its trades are republished from the `trades` table once Valkey keeps up again.
 */
export const publishQueueBound = 10_000

/** Trades per republish round (one SELECT and one pipeline). */
export const republishChunk = 2_000

/** At most one warning about dropped batches per this interval (the metric counts every one). */
export const dropWarningInterval: Duration.Input = "10 seconds"

/** How long an activation waits for its resync before it serves anyway (the publisher keeps retrying). */
export const activationSyncTimeout: Duration.Input = "5 seconds"

/** How often the runner looks for trades streams left behind their table with no activation of the symbol here. */
const repairInterval: Duration.Input = "5 seconds"

const republished = Metrics.counter(
  "tessera_market_data_republished_total",
  "Trade and depth entries republished from the tables (new owner, dropped batch or failed pipeline)"
)
const repaired = Metrics.counter(
  "tessera_market_data_repaired_total",
  "Trade entries republished by the runner's repair for symbols no activation here had healed"
)
const streamResets = Metrics.counter(
  "tessera_market_data_stream_resets_total",
  "Symbol streams deleted because they held ids beyond the tables (another database's history)"
)

export interface MarketDataBatch {
  readonly symbol: string
  readonly seq: number
  readonly trades: ReadonlyArray<TradeRow>
  /** Top of book after the batch. */
  readonly depth: Depth
  readonly at: number
}

const xaddOptions = (id: number) => ({ id: `${id}-0`, maxLen: streamMaxLen, approximate: true }) as const

const tradeCommand = (symbol: string, t: TradeRow, at: string): Command =>
  Cmd.xadd(
    tradesStream(symbol),
    {
      tradeId: String(t.trade_id),
      price: t.price,
      qty: t.qty,
      maker: String(t.maker_order_id),
      taker: String(t.taker_order_id),
      takerSide: t.taker_side,
      ts: at
    },
    xaddOptions(t.trade_id)
  )

const depthCommand = (symbol: string, seq: number, depth: Depth, at: string): Command =>
  Cmd.xadd(
    depthStream(symbol),
    { seq: String(seq), bids: JSON.stringify(depth.bids), asks: JSON.stringify(depth.asks), ts: at },
    xaddOptions(seq)
  )

/** Every command of a batch (trades, then its depth), with explicit ids. */
export const commands = (md: MarketDataBatch): Array<Command> => {
  const out: Array<Command> = []
  const at = String(md.at)
  for (const t of md.trades) out.push(tradeCommand(md.symbol, t, at))
  out.push(depthCommand(md.symbol, md.seq, md.depth, at))
  return out
}

/** The sequence part of a stream id we wrote (`<n>-0`); 0 for none. */
export const idSeq = (id: string | undefined): number => (id === undefined ? 0 : Number(id.slice(0, id.indexOf("-"))))

export interface MarketDataPublisherShape {
  /**
   * Queues a durable batch's market data and returns at once (synchronous, no Effect: called on the flush path).
   * A batch that finds the queue full is dropped, counted, and republished later from the tables.
   */
  readonly publishLater: (md: MarketDataBatch) => void
  /**
   * A new owner of `symbol` (its state restored to journal `seq`): makes its streams hold every durable trade, and
   * the depth at `seq`, before it serves. Waits at most `activationSyncTimeout`; past it the publisher keeps trying.
   */
  readonly activate: (symbol: string, seq: number, depth: Depth) => Effect.Effect<void>
  /** The shard left this runner: forget its state (batches still queued are published as they are). */
  readonly release: (symbol: string) => void
}

/**
 * One publisher per runner for all its shards: at most one pipeline in flight, and the batches flushed meanwhile,
 * by any shard, leave together in the next one (group publishing, no timer), in batch order per symbol.
 * Per-shard pipelines would cost the runner a Valkey round trip per flush; shared, several flushes share one write.
 */
export class MarketDataPublisher extends Context.Service<MarketDataPublisher, MarketDataPublisherShape>()(
  "tessera/symbol-shard/MarketDataPublisher"
) {}

interface SymbolStreams {
  /** Highest trade id / depth seq known to be in the streams (valid while not behind). */
  tradeTop: number
  depthTop: number
  /** Highest trade id / journal seq handed to `publishLater` (durable by then). */
  durableTrade: number
  durableSeq: number
  depth: Depth
  behind: boolean
  /** Activations waiting for the symbol's resync. */
  waiting: Array<() => void>
}

/** The durable side of a resync: what the `trades` and `symbol_journal` tables hold. */
export interface MarketDataTables {
  readonly lastTradeId: (symbol: string) => Effect.Effect<number, SqlError.SqlError>
  readonly lastSeq: (symbol: string) => Effect.Effect<number, SqlError.SqlError>
  /** Every symbol of the `symbols` table with its last trade id (0: none). */
  readonly lastTradeIds: Effect.Effect<
    ReadonlyArray<{ readonly symbol: string; readonly id: number }>,
    SqlError.SqlError
  >
  /** Trades with `after < trade_id <= upTo`, ascending, at most `limit`. */
  readonly tradesBetween: (
    symbol: string,
    after: number,
    upTo: number,
    limit: number
  ) => Effect.Effect<ReadonlyArray<TradeRow>, SqlError.SqlError>
}

export const sqlTables: Effect.Effect<MarketDataTables, never, SqlClient.SqlClient> = Effect.map(
  SqlClient.SqlClient,
  (sql) => ({
    lastTradeId: (symbol) =>
      Effect.map(
        sql<{ id: number | string | null }>`SELECT MAX(trade_id) AS id FROM trades WHERE symbol = ${symbol}`,
        (rows) => Number(rows[0]?.id ?? 0)
      ),
    lastSeq: (symbol) =>
      Effect.map(
        sql<{ seq: number | string | null }>`SELECT MAX(seq) AS seq FROM symbol_journal WHERE symbol = ${symbol}`,
        (rows) => Number(rows[0]?.seq ?? 0)
      ),
    // One index probe per symbol (the trades key starts with the symbol), not a scan of the table.
    lastTradeIds: Effect.map(
      sql<{ symbol: string; id: number | string | null }>`
        SELECT s.symbol, (SELECT MAX(t.trade_id) FROM trades t WHERE t.symbol = s.symbol) AS id FROM symbols s`,
      (rows) => rows.map((r) => ({ symbol: r.symbol, id: Number(r.id ?? 0) }))
    ),
    tradesBetween: (symbol, after, upTo, limit) =>
      Effect.map(
        sql<TradeRow & { trade_id: number | string; maker_order_id: number | string; taker_order_id: number | string }>`
          SELECT symbol, trade_id, maker_order_id, taker_order_id, taker_side, price, qty FROM trades
          WHERE symbol = ${symbol} AND trade_id > ${after} AND trade_id <= ${upTo} ORDER BY trade_id LIMIT ${limit}`,
        (rows) =>
          rows.map((r) => ({
            ...r,
            trade_id: Number(r.trade_id),
            maker_order_id: Number(r.maker_order_id),
            taker_order_id: Number(r.taker_order_id)
          }))
      )
  })
)

type Work = MarketDataBatch | undefined

/** Builds the publisher; its drain and its warning fibers live in the scope. */
export const make = (
  tables: MarketDataTables,
  options: {
    readonly capacity?: number
    readonly warnEvery?: Duration.Input
    readonly repairEvery?: Duration.Input
  } = {}
): Effect.Effect<MarketDataPublisherShape, never, Valkey | Scope.Scope> =>
  Effect.gen(function* () {
    const valkey = yield* Valkey
    const capacity = options.capacity ?? publishQueueBound
    // `undefined` wakes the drain for a resync (the queue is non-empty when such an offer is dropped anyway).
    const queue = yield* Queue.dropping<Work>(capacity)
    // A pending warning (one slot): drops while a warning is pending or the interval runs only add to `dropped`.
    const alarm = yield* Queue.dropping<void>(1)
    let dropped = 0
    const streams = new Map<string, SymbolStreams>()
    /** Symbols whose streams may be behind their tables: resynced before any more live batch of theirs. */
    const behind = new Set<string>()
    /**
     * Released symbols whose streams may lack an entry (behind at release, or a publish failed after it): their
     * queued batches are not published, since one after a hole would hide it from the next owner's resync.
     */
    const unsure = new Set<string>()

    const markBehind = (symbol: string, state: SymbolStreams) => {
      state.behind = true
      behind.add(symbol)
    }

    const publishLater = (md: MarketDataBatch): void => {
      const state = streams.get(md.symbol)
      if (state !== undefined) {
        const last = md.trades.length === 0 ? 0 : md.trades[md.trades.length - 1].trade_id
        if (last > state.durableTrade) state.durableTrade = last
        if (md.seq > state.durableSeq) {
          state.durableSeq = md.seq
          state.depth = md.depth
        }
        // Behind: the resync reads this batch from the table.
        if (state.behind) return
      }
      if (Queue.offerUnsafe(queue, md)) return
      ShardMetrics.marketDataDropped.inc()
      dropped++
      Queue.offerUnsafe(alarm, undefined)
      if (state !== undefined) markBehind(md.symbol, state)
      else unsure.add(md.symbol)
    }

    /**
     * Publishes the trades with `after < trade_id <= upTo()` from the table, in id order, chunk by chunk (`upTo` is
     * read again after every chunk: it may grow meanwhile); `after` is the stream's last id, so nothing it adds can
     * lie beyond a missing entry. Returns the last id published.
     */
    const republishTrades = (symbol: string, after: number, upTo: () => number) =>
      Effect.gen(function* () {
        let at = after
        const ts = String(Date.now())
        while (at < upTo()) {
          const rows = yield* tables.tradesBetween(symbol, at, upTo(), republishChunk)
          if (rows.length === 0) break
          yield* valkey.pipeline(rows.map((t) => tradeCommand(symbol, t, ts)))
          at = rows[rows.length - 1].trade_id
        }
        return at
      })

    /** Republishes `symbol` from its tables up to what is durable, then clears `behind` (drain fiber only). */
    const resync = (symbol: string, state: SymbolStreams) =>
      Effect.gen(function* () {
        const trades = tradesStream(symbol)
        const depthKey = depthStream(symbol)
        // Tops first, tables second: an entry in a stream was durable before it was published, so a top above the
        // table's last id is another history (another database on the same Valkey), not a newer owner of this one.
        const [tradeTop, depthTop] = yield* valkey.pipeline([
          Cmd.xrevrange(trades, "+", "-", 1),
          Cmd.xrevrange(depthKey, "+", "-", 1)
        ])
        let tradeAt = idSeq(tradeTop[0]?.id)
        let depthAt = idSeq(depthTop[0]?.id)
        const tableTrade = yield* tables.lastTradeId(symbol)
        const tableSeq = yield* tables.lastSeq(symbol)
        if (tableTrade > state.durableTrade) state.durableTrade = tableTrade
        // The depth held is the one at `durableSeq`: a later seq in the table (another owner's) is no reason to
        // publish it under that seq, only proof that a depth top up to it is this database's.
        const seqTop = Math.max(state.durableSeq, tableSeq)
        const foreign: Array<string> = []
        if (tradeAt > state.durableTrade) foreign.push(trades)
        if (depthAt > seqTop) foreign.push(depthKey)
        if (foreign.length > 0) {
          yield* valkey.del(...foreign)
          streamResets.inc(foreign.length)
          yield* Effect.logWarning(`market data: ${foreign.join(", ")} held ids beyond the tables; reset`)
          if (tradeAt > state.durableTrade) tradeAt = 0
          if (depthAt > seqTop) depthAt = 0
        }
        // Trade ids are dense per symbol: an empty stream gets the newest `streamMaxLen` back, not all history.
        if (tradeAt === 0) tradeAt = Math.max(0, state.durableTrade - streamMaxLen)
        // Batches handed over meanwhile are skipped (behind) and only raise `durableTrade`: the depth's write yields
        // too, so the trades are looked at again after it, until nothing was added while waiting.
        for (;;) {
          const from = tradeAt
          tradeAt = yield* republishTrades(symbol, tradeAt, () => state.durableTrade)
          republished.inc(tradeAt - from)
          if (depthAt < state.durableSeq) {
            const seq = state.durableSeq
            yield* valkey.pipeline([depthCommand(symbol, seq, state.depth, String(Date.now()))])
            republished.inc()
            depthAt = seq
          }
          if (tradeAt >= state.durableTrade) break
          if (tradeAt === from) {
            // The table lacks trades handed over as durable: stay behind (a later round retries), since a live
            // batch published past them would leave a hole for good.
            return yield* Effect.logWarning(`market data: trades of ${symbol} after ${tradeAt} not in the table yet`)
          }
        }
        // No yield since the last check of `durableTrade`: a batch handed over from here on is published live.
        state.tradeTop = tradeAt
        state.depthTop = depthAt
        state.behind = false
        behind.delete(symbol)
        const waiting = state.waiting
        state.waiting = []
        for (const resume of waiting) resume()
      })

    const live = (batches: ReadonlyArray<Work>) => {
      const out: Array<Command> = []
      /** Symbols in this pipeline (a released shard's last batches go out untracked). */
      const symbols: Array<string> = []
      for (const md of batches) {
        if (md === undefined) continue
        const state = streams.get(md.symbol)
        if (state === undefined) {
          // Released shard: its ids make a repeat harmless (the new owner may have published them already), unless
          // its stream may have a hole: then the next owner's resync publishes them.
          if (unsure.has(md.symbol)) continue
          for (const command of commands(md)) out.push(command)
          symbols.push(md.symbol)
        } else {
          if (state.behind) continue
          const at = String(md.at)
          for (const t of md.trades) {
            if (t.trade_id > state.tradeTop) out.push(tradeCommand(md.symbol, t, at))
          }
          if (md.seq > state.depthTop) out.push(depthCommand(md.symbol, md.seq, md.depth, at))
          const last = md.trades.length === 0 ? 0 : md.trades[md.trades.length - 1].trade_id
          if (last > state.tradeTop) state.tradeTop = last
          if (md.seq > state.depthTop) state.depthTop = md.seq
          symbols.push(md.symbol)
        }
      }
      if (out.length === 0) return Effect.void
      return Effect.flatMap(Effect.exit(valkey.pipeline(out)), (exit) => {
        if (Exit.isSuccess(exit) || symbols.length === 0) return Effect.void
        // Some entries may be missing: resync these symbols from their tables (ids keep the others harmless).
        for (const symbol of symbols) {
          const state = streams.get(symbol)
          if (state !== undefined) markBehind(symbol, state)
          else unsure.add(symbol)
        }
        return Effect.logWarning(`market data for ${[...new Set(symbols)].join(", ")} not published`, exit.cause)
      })
    }

    let backoffMs = 100
    const round = (batches: ReadonlyArray<Work>) =>
      Effect.gen(function* () {
        for (const symbol of Array.from(behind)) {
          const state = streams.get(symbol)
          if (state === undefined) {
            behind.delete(symbol)
            continue
          }
          const exit = yield* Effect.exit(resync(symbol, state))
          if (Exit.isFailure(exit)) yield* Effect.logWarning(`market data: resync of ${symbol} failed`, exit.cause)
        }
        yield* live(batches)
        if (behind.size === 0) {
          backoffMs = 100
          return
        }
        // Valkey or the database is failing: retry the resyncs after a growing pause, live batches queue meanwhile.
        yield* Effect.sleep(Duration.millis(backoffMs * (0.5 + Math.random())))
        backoffMs = Math.min(backoffMs * 2, 5_000)
        Queue.offerUnsafe(queue, undefined)
      })

    const activate = (symbol: string, seq: number, depth: Depth): Effect.Effect<void> =>
      Effect.suspend(() => {
        const state: SymbolStreams = {
          tradeTop: 0,
          depthTop: 0,
          durableTrade: 0,
          durableSeq: seq,
          depth,
          behind: true,
          waiting: []
        }
        // The resync below starts from the stream's last id: whatever a release left unsure is republished.
        unsure.delete(symbol)
        streams.set(symbol, state)
        behind.add(symbol)
        const done = Effect.callback<void>((resume) => {
          state.waiting.push(() => resume(Effect.void))
        })
        Queue.offerUnsafe(queue, undefined)
        return Effect.asVoid(Effect.timeoutOption(done, activationSyncTimeout))
      })

    const release = (symbol: string) => {
      if (streams.get(symbol)?.behind === true) unsure.add(symbol)
      streams.delete(symbol)
      behind.delete(symbol)
    }

    /**
     * Symbols whose trades stream was found behind its table with no activation here, and the table's last trade id
     * then. Still behind that id one interval later: no owner is healing it (none woken since a failover, or it died
     * between commit and publish), so the repair republishes the tail.
     */
    const lagging = new Map<string, number>()
    const repair = Effect.gen(function* () {
      const lasts = yield* tables.lastTradeIds
      const idle = lasts.filter((last) => last.id > 0 && !streams.has(last.symbol))
      const idleNames = new Set(idle.map((last) => last.symbol))
      for (const symbol of lagging.keys()) if (!idleNames.has(symbol)) lagging.delete(symbol)
      if (idle.length === 0) return
      const tops = yield* valkey.pipeline(idle.map((last) => Cmd.xrevrange(tradesStream(last.symbol), "+", "-", 1)))
      for (let i = 0; i < idle.length; i++) {
        const { symbol, id } = idle[i]
        const top = idSeq((tops[i] as ReadonlyArray<{ readonly id: string }>)[0]?.id)
        const seen = lagging.get(symbol)
        if (top >= id) lagging.delete(symbol)
        // First seen behind, or it moved past what it lacked then: its owner may be publishing; look again later.
        else if (seen === undefined || top >= seen) lagging.set(symbol, id)
        // Activated here since the tables were read: its own resync heals it.
        else if (!streams.has(symbol)) {
          const from = top === 0 ? Math.max(0, id - streamMaxLen) : top
          const to = yield* republishTrades(symbol, from, () => id)
          repaired.inc(to - from)
          lagging.delete(symbol)
          yield* Effect.logInfo(`market data: ${tradesStream(symbol)} repaired from the table (${from + 1}..${to})`)
        }
      }
    })

    // takeAll waits for the first batch, then takes every batch queued meanwhile: the next pipeline carries them all.
    // Failures are logged (and their symbols resynced); the loop goes on. No yield between rounds (each waits on the
    // queue or on Valkey anyway): batches queued while a pipeline was in flight leave at once.
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.flatMap(Queue.takeAll(queue), (batches) => Effect.catchCause(round(batches), Effect.logWarning)),
        { disableYield: true }
      )
    )
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.andThen(Queue.take(alarm), () => {
          const n = dropped
          dropped = 0
          return Effect.andThen(
            Effect.logWarning(
              `market data: ${n} batch(es) not queued, the publish queue is full (${capacity}); republished from the tables once Valkey keeps up`
            ),
            Effect.sleep(options.warnEvery ?? dropWarningInterval)
          )
        })
      )
    )
    // Every runner repairs: a repeat of an entry is refused by id, so two repairs (or a repair and an owner) only
    // cost a refused pipeline, retried at the next look.
    yield* Effect.forkScoped(
      Effect.repeat(
        Effect.catchCause(repair, (cause) => Effect.logDebug("market data: stream repair failed; retrying", cause)),
        Schedule.jittered(Schedule.spaced(options.repairEvery ?? repairInterval))
      )
    )
    return { publishLater, activate, release }
  })

/** The runner's publisher (one per runner: provided once to the SymbolShard entity layer). */
export const layer: Layer.Layer<MarketDataPublisher, never, Valkey | SqlClient.SqlClient> = Layer.effect(
  MarketDataPublisher,
  Effect.flatMap(sqlTables, (tables) => make(tables))
)
