/**
 * The SymbolShard's Prometheus series (served at `/metrics` by every runner's gateway).
 *
 * Hot-path discipline: a shard keeps its labelled series (`ShardSeries`) for its lifetime, handlers add plain
 * integers once per request (a PlaceBatch adds its accepted and rejected counts once), and everything about the
 * book and the journal is updated once per group-commit flush.
 */
import * as Metrics from "@tessera/platform/Metrics"
import type { OrderBook } from "./engine/OrderBook.ts"

export const orders = Metrics.counter(
  "tessera_orders_total",
  "Orders placed on a symbol shard, by outcome (accepted, rejected, overloaded: refused while its journal was behind)",
  ["symbol", "outcome"]
)
export const trades = Metrics.counter("tessera_trades_total", "Trades made durable by a symbol shard", ["symbol"])
export const flushCommands = Metrics.histogram(
  "tessera_symbol_flush_batch_commands",
  "Commands per group-commit flush of a symbol shard (batch size)",
  { buckets: Metrics.sizeBuckets }
)
export const flushSeconds = Metrics.histogram(
  "tessera_symbol_flush_seconds",
  "Group-commit flush latency of a symbol shard (journal, orders, trades written)"
)
export const journalStatements = Metrics.counter(
  "tessera_symbol_journal_statements_total",
  "Statements the runner's journal writer sent (each carries one or more shards' flushed batches)"
)
export const journalStatementBatches = Metrics.histogram(
  "tessera_symbol_journal_statement_batches",
  "Shard batches per journal statement (the runner-wide merge of group commits)",
  { buckets: Metrics.sizeBuckets }
)
export const flushFailures = Metrics.counter(
  "tessera_symbol_flush_failures_total",
  "Group-commit flushes that failed (the shard restarts)",
  ["symbol"]
)
export const staleOwnerWrites = Metrics.counter(
  "tessera_symbol_stale_owner_writes_total",
  "Flushes refused because the shard's owner epoch was stale (another activation claimed the symbol)",
  ["symbol"]
)
export const marketDataDropped = Metrics.counter(
  "tessera_market_data_dropped_total",
  "Flushed batches whose market data was not published: the runner's publish queue was full"
)
export const restingOrders = Metrics.gauge(
  "tessera_book_resting_orders",
  "Orders resting in a symbol's book (at the last flush)",
  ["symbol"]
)
export const bookLevels = Metrics.gauge("tessera_book_levels", "Price levels per side of a symbol's book", [
  "symbol",
  "side"
])
export const replays = Metrics.counter(
  "tessera_symbol_activations_total",
  "Symbol shard activations (book restored from snapshot and journal)",
  ["symbol"]
)
export const replayBatches = Metrics.counter(
  "tessera_symbol_replay_batches_total",
  "Journal rows (flushed batches) replayed on activation",
  ["symbol"]
)
export const replaySeconds = Metrics.histogram(
  "tessera_symbol_replay_seconds",
  "Time to restore a symbol shard on activation (load snapshot and journal, replay)"
)

/** One shard's labelled series, taken once when the shard starts. */
export const snapshotFailures = Metrics.counter(
  "tessera_symbol_snapshot_failures_total",
  "Shard snapshots not stored (failed or past their deadline); the next flush takes one again",
  ["symbol"]
)
export class ShardSeries {
  readonly accepted: Metrics.Scalar
  readonly rejected: Metrics.Scalar
  readonly overloaded: Metrics.Scalar
  readonly trades: Metrics.Scalar
  readonly failures: Metrics.Scalar
  readonly staleOwner: Metrics.Scalar
  readonly snapshotFailures: Metrics.Scalar
  readonly resting: Metrics.Scalar
  readonly bids: Metrics.Scalar
  readonly asks: Metrics.Scalar
  readonly activations: Metrics.Scalar
  readonly replayed: Metrics.Scalar
  constructor(symbol: string) {
    this.accepted = orders.labels({ symbol, outcome: "accepted" })
    this.rejected = orders.labels({ symbol, outcome: "rejected" })
    this.overloaded = orders.labels({ symbol, outcome: "overloaded" })
    this.trades = trades.labels({ symbol })
    this.failures = flushFailures.labels({ symbol })
    this.staleOwner = staleOwnerWrites.labels({ symbol })
    this.snapshotFailures = snapshotFailures.labels({ symbol })
    this.resting = restingOrders.labels({ symbol })
    this.bids = bookLevels.labels({ symbol, side: "buy" })
    this.asks = bookLevels.labels({ symbol, side: "sell" })
    this.activations = replays.labels({ symbol })
    this.replayed = replayBatches.labels({ symbol })
  }

  /** The book's size: O(1) reads of the engine's counters. */
  book(book: OrderBook): void {
    this.resting.set(book.restingCount)
    this.bids.set(book.levelCount(0))
    this.asks.set(book.levelCount(1))
  }

  /** An activation that replayed `batches` journal rows in `seconds` (snapshot and journal load included). */
  restored(batches: number, seconds: number, book: OrderBook): void {
    replaySeconds.observe(seconds)
    this.activations.inc()
    if (batches > 0) this.replayed.inc(batches)
    this.book(book)
  }

  /** The shard left this runner: its book gauges read 0 here. */
  released(): void {
    this.resting.set(0)
    this.bids.set(0)
    this.asks.set(0)
  }

  /** A durable flush of `commands` commands with `tradeCount` trades that took `seconds`. */
  flushed(commands: number, tradeCount: number, seconds: number, book: OrderBook): void {
    flushCommands.observe(commands)
    flushSeconds.observe(seconds)
    if (tradeCount > 0) this.trades.inc(tradeCount)
    this.book(book)
  }
}
