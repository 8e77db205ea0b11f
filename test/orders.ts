/**
 * Orders for tests of the symbol shards through a gateway: order shapes valid on every default symbol, a steady
 * load whose acknowledgements are kept, and what the tables say about them afterwards.
 */
import type * as TesseraClient from "@tessera/client/TesseraClient"
import { type Duration, Effect, Exit } from "effect"
import type { SeedApi } from "../actors/api.ts"
import { defaultSymbols } from "../actors/symbol-shard/journal.ts"
import type { PlaceOrder } from "../actors/symbol-shard/protocol.ts"

export const symbols = defaultSymbols.map((s) => s.symbol)

/** Limit prices on a 1.00 grid around 100 fit every default symbol's tick, 1 to 3 every lot; buys and sells cross. */
export const crossingOrder = (account: string, clientOrderId: string, i: number): PlaceOrder => ({
  account,
  clientOrderId,
  side: i % 2 === 0 ? "buy" : "sell",
  price: String(100 + ((i * 7) % 11) - 5),
  qty: String(1 + (i % 3))
})

/** Resting buys far below any ask, valid on every default symbol's tick and lot. */
export const restingBuys = (account: string, prefix: string, count: number): Array<PlaceOrder> =>
  Array.from({ length: count }, (_, i) => ({
    account,
    clientOrderId: `${prefix}-${i}`,
    side: "buy" as const,
    price: "100.00",
    qty: "1"
  }))

export interface OrderLoadOptions {
  /** Batch `n` of a symbol (its keys must be unique per batch: a retry sends the same batch). */
  readonly batch: (n: number) => ReadonlyArray<PlaceOrder>
  /** Between one symbol's batches. */
  readonly pause: Duration.Input
  readonly concurrency: number | "unbounded"
  /** Retry a batch until it is acknowledged even after `stop()`; otherwise its retries end at `stop()` too. */
  readonly untilAcknowledged: boolean
}

/**
 * A steady load on every default symbol: `run(client)` places batch after batch per symbol, each retried with the
 * same keys (so placed at most once) every 50 ms after a failure or a 3 s timeout, until `stop()`. `acked` holds the
 * `symbol orderId` of every order acknowledged.
 */
export const orderLoad = (options: OrderLoadOptions) => {
  const acked: Array<string> = []
  let stopped = false
  let next = 0
  const run = (client: TesseraClient.Client<SeedApi>) =>
    Effect.forEach(
      symbols,
      (entityId) =>
        Effect.gen(function* () {
          while (!stopped) {
            const orders = options.batch(next++)
            while (options.untilAcknowledged || !stopped) {
              const exit = yield* Effect.exit(
                client["SymbolShard.PlaceBatch"]({ entityId, payload: { orders } }).pipe(Effect.timeout("3 seconds"))
              )
              if (Exit.isSuccess(exit)) {
                for (const r of exit.value.results) if (r.orderId !== undefined) acked.push(`${entityId} ${r.orderId}`)
                break
              }
              yield* Effect.sleep("50 millis")
            }
            yield* Effect.sleep(options.pause)
          }
        }),
      { concurrency: options.concurrency, discard: true }
    )
  return {
    acked,
    run,
    stop: () => {
      stopped = true
    }
  }
}

interface Queryable {
  readonly query: (sql: string) => string
}

/** The acknowledged `symbol orderId`s with no row in the orders table. */
export const missingOrders = (db: Queryable, acked: ReadonlyArray<string>): Array<string> => {
  const stored = new Set(db.query("SELECT symbol || ' ' || order_id FROM orders").split("\n"))
  return acked.filter((key) => !stored.has(key))
}

/** Trade rows and distinct (symbol, trade_id) among them: equal when no trade is stored twice. */
export const tradeCounts = (db: Queryable) => ({
  rows: Number(db.query("SELECT COUNT(*) FROM trades")),
  distinct: Number(db.query("SELECT COUNT(*) FROM (SELECT DISTINCT symbol, trade_id FROM trades) t"))
})
