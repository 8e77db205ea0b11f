/**
 * Market-data publication: after a batch is durable, its trades go to `md:{symbol}:trades` (one entry per
 * trade) and the book's top levels to `md:{symbol}:depth` (one entry per batch that changed the book), in one
 * Valkey pipeline. Streams are capped with `MAXLEN ~`. Publication is at-most-once: a runner that dies between
 * commit and publish loses that batch's entries (the `trades` table is the record).
 */

import { Cmd, type Command, Valkey } from "@tessera/platform/Valkey"
import { Context, type Duration, Effect, Exit, Layer, Queue, type Scope } from "effect"
import type { Depth } from "./engine/OrderBook.ts"
import * as ShardMetrics from "./metrics.ts"
import { depthStream, tradesStream } from "./protocol.ts"
import type { TradeRow } from "./ShardCore.ts"

/** Entries kept per stream (approximately). */
export const streamMaxLen = 100_000

/** Levels per side in a depth entry. */
export const depthLevels = 20

/**
 * Flushed batches waiting for the runner's publisher, at most. A queue this long means Valkey has stopped keeping
 * up; newer batches are then dropped (and counted) rather than held, since publication is at-most-once anyway.
 */
export const publishQueueBound = 10_000

/** At most one warning about dropped batches per this interval (the metric counts every one). */
export const dropWarningInterval: Duration.Input = "10 seconds"

export interface MarketDataBatch {
  readonly symbol: string
  readonly seq: number
  readonly trades: ReadonlyArray<TradeRow>
  /** Top of book after the batch. */
  readonly depth: Depth
  readonly at: number
}

const xaddOptions = { maxLen: streamMaxLen, approximate: true } as const

export const commands = (md: MarketDataBatch): Array<Command> => {
  const out: Array<Command> = []
  const trades = tradesStream(md.symbol)
  const at = String(md.at)
  for (const t of md.trades) {
    out.push(
      Cmd.xadd(
        trades,
        {
          tradeId: String(t.trade_id),
          price: t.price,
          qty: t.qty,
          maker: String(t.maker_order_id),
          taker: String(t.taker_order_id),
          takerSide: t.taker_side,
          ts: at
        },
        xaddOptions
      )
    )
  }
  out.push(
    Cmd.xadd(
      depthStream(md.symbol),
      { seq: String(md.seq), bids: JSON.stringify(md.depth.bids), asks: JSON.stringify(md.depth.asks), ts: at },
      xaddOptions
    )
  )
  return out
}

export interface MarketDataPublisherShape {
  /**
   * Queues a durable batch's market data and returns at once (synchronous, no Effect: called on the flush path).
   * A batch that finds the queue full is dropped and counted.
   */
  readonly publishLater: (md: MarketDataBatch) => void
}

/**
 * One publisher per runner for all its shards: at most one pipeline in flight, and the batches flushed meanwhile,
 * by any shard, leave together in the next one (group publishing, no timer), in batch order per symbol.
 * Per-shard pipelines would cost the runner a Valkey round trip per flush; shared, several flushes share one write.
 */
export class MarketDataPublisher extends Context.Service<MarketDataPublisher, MarketDataPublisherShape>()(
  "tessera/symbol-shard/MarketDataPublisher"
) {}

/** Builds the publisher; its drain and its warning fibers live in the scope. */
export const make = (
  options: { readonly capacity?: number; readonly warnEvery?: Duration.Input } = {}
): Effect.Effect<MarketDataPublisherShape, never, Valkey | Scope.Scope> =>
  Effect.gen(function* () {
    const valkey = yield* Valkey
    const capacity = options.capacity ?? publishQueueBound
    const queue = yield* Queue.dropping<MarketDataBatch>(capacity)
    // A pending warning (one slot): drops while a warning is pending or the interval runs only add to `dropped`.
    const alarm = yield* Queue.dropping<void>(1)
    let dropped = 0

    const publishLater = (md: MarketDataBatch): void => {
      if (Queue.offerUnsafe(queue, md)) return
      ShardMetrics.marketDataDropped.inc()
      dropped++
      Queue.offerUnsafe(alarm, undefined)
    }

    const pipeline = (batches: ReadonlyArray<MarketDataBatch>) =>
      Effect.suspend(() => {
        const out: Array<Command> = []
        for (const md of batches) for (const command of commands(md)) out.push(command)
        return valkey.pipeline(out)
      })
    const publishAll = (batches: ReadonlyArray<MarketDataBatch>): Effect.Effect<void> =>
      Effect.flatMap(Effect.exit(pipeline(batches)), (exit) => {
        if (Exit.isSuccess(exit)) return Effect.void
        const symbols = [...new Set(batches.map((md) => md.symbol))].join(", ")
        return Effect.logWarning(`market data for ${symbols} not published`, exit.cause)
      })

    // takeAll waits for the first batch, then takes every batch queued meanwhile: the next pipeline carries them all.
    // A pipeline's failure (or defect) is logged by publishAll; the loop goes on. No yield between rounds (each
    // waits on the queue or on Valkey anyway): batches queued while a pipeline was in flight leave at once.
    yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Queue.takeAll(queue), publishAll), { disableYield: true }))
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.andThen(Queue.take(alarm), () => {
          const n = dropped
          dropped = 0
          return Effect.andThen(
            Effect.logWarning(
              `market data: ${n} batch(es) dropped, the publish queue is full (${capacity}); Valkey is not keeping up`
            ),
            Effect.sleep(options.warnEvery ?? dropWarningInterval)
          )
        })
      )
    )
    return { publishLater }
  })

/** The runner's publisher (one per runner: provided once to the SymbolShard entity layer). */
export const layer: Layer.Layer<MarketDataPublisher, never, Valkey> = Layer.effect(MarketDataPublisher, make())
