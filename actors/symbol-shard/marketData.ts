/**
 * Market-data publication: after a batch is durable, its trades go to `md:{symbol}:trades` (one entry per
 * trade) and the book's top levels to `md:{symbol}:depth` (one entry per batch that changed the book), in one
 * Valkey pipeline. Streams are capped with `MAXLEN ~`. Publication is at-most-once: a runner that dies between
 * commit and publish loses that batch's entries (the `trades` table is the record).
 */
import { Effect } from "effect"
import { Cmd, type Command, type ValkeyError, type ValkeyService } from "../../runtime/Valkey.ts"
import type { Depth } from "./engine/OrderBook.ts"
import { depthStream, tradesStream } from "./protocol.ts"
import type { TradeRow } from "./ShardCore.ts"

/** Entries kept per stream (approximately). */
export const streamMaxLen = 100_000

/** Levels per side in a depth entry. */
export const depthLevels = 20

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

export const publish = (valkey: ValkeyService, md: MarketDataBatch): Effect.Effect<void, ValkeyError> =>
  Effect.asVoid(valkey.pipeline(commands(md)))
