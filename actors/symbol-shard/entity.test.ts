// SymbolShard in the in-process cluster of @tessera/testing (embedded SQLite in memory, memory Valkey).
import { assert, layer } from "@effect/vitest"
import { Valkey } from "@tessera/platform/Valkey"
import { TesseraTest } from "@tessera/testing"
import { Effect, Exit } from "effect"
import { SqlClient } from "effect/sql"
import * as ShardConfig from "./config.ts"
import { SymbolShardModule } from "./module.ts"
import { SymbolShard, tradesStream } from "./protocol.ts"

const failureTag = (exit: Exit.Exit<unknown, unknown>): string | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const error = exit.cause.reasons.find((r) => r._tag === "Fail") as { error?: { _tag?: string; reason?: string } }
  return error?.error?.reason ?? error?.error?._tag ?? "defect"
}

layer(TesseraTest.layerModule(SymbolShardModule), { excludeTestServices: true })("SymbolShard (in process)", (it) => {
  it.effect("places, matches, acknowledges only durable orders and answers retries with the first result", () =>
    Effect.gen(function* () {
      const shard = (yield* SymbolShard.client)("ETH-USDT")
      const sql = yield* SqlClient.SqlClient
      const ask = yield* shard.Place({
        account: "a1",
        clientOrderId: "c1",
        side: "sell",
        price: "2000.00",
        qty: "1.5"
      })
      assert.strictEqual(ask.status, "open")
      const rows = yield* sql<{ status: string; qty: string }>`
        SELECT status, qty FROM orders WHERE symbol = 'ETH-USDT' AND order_id = ${Number(ask.orderId)}`
      assert.deepStrictEqual(rows, [{ status: "open", qty: "1.500" }], "the row exists once the place is acked")

      const bid = yield* shard.Place({ account: "a2", clientOrderId: "c1", side: "buy", price: "2001", qty: "1" })
      assert.strictEqual(bid.status, "filled")
      assert.deepStrictEqual(
        bid.trades.map((t) => [t.makerOrderId, t.price, t.qty]),
        [[ask.orderId, "2000.00", "1.000"]]
      )
      const retry = yield* shard.Place({ account: "a2", clientOrderId: "c1", side: "buy", price: "2001", qty: "1" })
      assert.deepStrictEqual(retry, bid, "a retried place returns the first result")
      const trades = yield* sql<{ n: number }>`SELECT COUNT(*) AS n FROM trades WHERE symbol = 'ETH-USDT'`
      assert.strictEqual(Number(trades[0].n), 1)

      const maker = yield* shard.GetOrder({ orderId: ask.orderId })
      assert.strictEqual(maker.openQty, "0.500")
      assert.strictEqual(maker.filledQty, "1.000")
      const depth = yield* shard.Depth({ depth: 5 })
      assert.deepStrictEqual(depth.asks, [["2000.00", "0.500"]])
      assert.deepStrictEqual(depth.bids, [])

      const moved = yield* shard.Move({ orderId: ask.orderId, price: "2100.00" })
      assert.strictEqual(moved.status, "open")
      const canceled = yield* shard.Cancel({ orderId: ask.orderId })
      assert.strictEqual(canceled.status, "canceled")
      const finalRow = yield* sql<{ status: string; price: string; filled_qty: string }>`
        SELECT status, price, filled_qty FROM orders WHERE symbol = 'ETH-USDT' AND order_id = ${Number(ask.orderId)}`
      assert.deepStrictEqual(finalRow, [{ status: "canceled", price: "2100.00", filled_qty: "1.000" }])
      assert.strictEqual(failureTag(yield* Effect.exit(shard.Cancel({ orderId: ask.orderId }))), "UnknownOrder")

      const stream = yield* (yield* Valkey).xrange(tradesStream("ETH-USDT"))
      assert.deepStrictEqual(
        stream.map((e) => [e.fields.price, e.fields.qty, e.fields.takerSide]),
        [["2000.00", "1.000", "buy"]]
      )
    })
  )

  it.effect("rejects bad input with typed errors", () =>
    Effect.gen(function* () {
      const client = yield* SymbolShard.client
      const unknown = yield* Effect.exit(
        client("NOPE-USDT").Place({ account: "a", clientOrderId: "x", side: "buy", price: "1", qty: "1" })
      )
      assert.strictEqual(failureTag(unknown), "UnknownSymbol")
      const btc = client("BTC-USDT")
      const offTick = yield* Effect.exit(
        btc.Place({ account: "a", clientOrderId: "x", side: "buy", price: "100.001", qty: "1" })
      )
      assert.strictEqual(failureTag(offTick), "invalid_price")
      const offLot = yield* Effect.exit(
        btc.Place({ account: "a", clientOrderId: "y", side: "buy", price: "100", qty: "0.00001" })
      )
      assert.strictEqual(failureTag(offLot), "invalid_qty")
      yield* btc.Place({ account: "a", clientOrderId: "z", side: "sell", price: "100", qty: "1" })
      const cross = yield* Effect.exit(
        btc.Place({ account: "a", clientOrderId: "w", side: "buy", price: "100", qty: "1", postOnly: true })
      )
      assert.strictEqual(failureTag(cross), "would_cross")
    })
  )

  it.effect("PlaceBatch answers each order, rejected ones in place", () =>
    Effect.gen(function* () {
      const sol = (yield* SymbolShard.client)("SOL-USDT")
      const { results } = yield* sol.PlaceBatch({
        orders: [
          { account: "b", clientOrderId: "1", side: "sell", price: "150.000", qty: "2" },
          { account: "b", clientOrderId: "2", side: "buy", price: "150.0001", qty: "1" },
          { account: "b", clientOrderId: "3", side: "buy", type: "market", qty: "1.5" },
          { account: "b", clientOrderId: "1", side: "sell", price: "150.000", qty: "2" }
        ]
      })
      assert.strictEqual(results.length, 4)
      assert.deepStrictEqual(results[1], { clientOrderId: "2", rejected: "invalid_price" })
      assert.strictEqual((results[2] as { status: string }).status, "filled")
      assert.deepStrictEqual(results[3], results[0], "a repeated key inside a batch returns the first result")
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<{ n: number }>`SELECT COUNT(*) AS n FROM orders WHERE symbol = 'SOL-USDT'`
      assert.strictEqual(Number(rows[0].n), 2)
    })
  )
})

// A 1024-bit filter of forgotten keys saturates within a few hundred places: nearly every fresh key then looks
// possibly forgotten, and must still be placed once the `orders` table shows it unused.
layer(
  TesseraTest.layerModule(SymbolShardModule, {
    config: ShardConfig.layer({ shardRecentKeys: 1, shardFinishedOrders: 1, shardKeyFilterBits: 1024 })
  }),
  { excludeTestServices: true }
)("SymbolShard with a saturated filter of forgotten keys", (it) => {
  it.effect("places fresh keys the filter may hold, refuses used ones, and never places a key twice", () =>
    Effect.gen(function* () {
      const shard = (yield* SymbolShard.client)("XRP-USDT")
      const sql = yield* SqlClient.SqlClient
      for (let i = 0; i < 60; i++) {
        const { results } = yield* shard.PlaceBatch({
          orders: Array.from({ length: 10 }, (_, j) => ({
            account: `a${j % 3}`,
            clientOrderId: `k${i}-${j}`,
            side: j % 2 === 0 ? ("buy" as const) : ("sell" as const),
            type: "market" as const,
            qty: "1"
          }))
        })
        assert.deepStrictEqual(
          results.filter((r) => r.rejected !== undefined),
          [],
          `batch ${i}: every fresh key is placed`
        )
      }
      const placed = yield* sql<{ n: number }>`SELECT COUNT(*) AS n FROM orders WHERE symbol = 'XRP-USDT'`
      assert.strictEqual(Number(placed[0].n), 600)
      for (const key of ["k0-0", "k30-4"]) {
        const again = yield* Effect.exit(
          shard.Place({
            account: key === "k0-0" ? "a0" : "a1",
            clientOrderId: key,
            side: "buy",
            type: "market",
            qty: "1"
          })
        )
        assert.strictEqual(failureTag(again), "key_expired")
      }
      const after = yield* sql<{ n: number }>`SELECT COUNT(*) AS n FROM orders WHERE symbol = 'XRP-USDT'`
      assert.strictEqual(Number(after[0].n), 600, "nothing placed twice")
    })
  )
})
