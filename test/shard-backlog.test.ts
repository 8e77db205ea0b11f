// The symbol shard's backlog bound (TESSERA_SHARD_MAX_QUEUE_DELAY): a runner whose PostgreSQL stops answering
// (a pausable TCP proxy) while one journal write is in flight. Orders sent once that write is older than the bound
// are answered Overloaded at once, through PlaceBatch and through PlaceMany, and nothing of them is applied: once
// PostgreSQL answers, the order of the write in flight is acked, the refused keys are not in `orders`, and retried
// with the same keys they are placed as new orders (not found placed before).
import { assert, describe, it } from "@effect/vitest"
import * as TesseraClient from "@tessera/client/TesseraClient"
import { Effect, Exit, Fiber } from "effect"
import { SeedApi } from "../actors/api.ts"
import type { PlaceOrder } from "../actors/symbol-shard/protocol.ts"
import { runnerBehindPausablePg, tagOf } from "./harness.ts"

const symbol = "ADA-USDT"
const order = (clientOrderId: string, price: string): PlaceOrder => ({
  account: "backlog",
  clientOrderId,
  side: "buy",
  price,
  qty: "1"
})

describe("symbol shard backlog bound (runner process, real Postgres behind a pausable proxy)", () => {
  it.live(
    "places behind a stalled journal write are refused Overloaded, nothing applied; the write in flight still acks",
    () =>
      Effect.gen(function* () {
        const { db, pg, runner } = yield* runnerBehindPausablePg("backlog", {
          TESSERA_SHARD_MAX_QUEUE_DELAY: "200 millis",
          // The stall outlasts the bound but not the write deadline: the shard is behind, not re-reading.
          TESSERA_JOURNAL_WRITE_TIMEOUT: "20 seconds",
          TESSERA_PLACE_DEADLINE: "20 seconds",
          TESSERA_SHARD_LOCK_REFRESH: "30 seconds",
          TESSERA_SHARD_LOCK_EXPIRATION: "90 seconds"
        })
        const client = yield* TesseraClient.make(SeedApi, { url: runner.url })
        const placeBatch = (orders: ReadonlyArray<PlaceOrder>) =>
          client["SymbolShard.PlaceBatch"]({ entityId: symbol, payload: { orders } })
        const placeMany = (orders: ReadonlyArray<PlaceOrder>) =>
          client["Orders.PlaceMany"]({ batches: [{ symbol, orders }] })

        // Healthy: acked, so the shard is resident and its state read before the stall.
        const first = yield* placeBatch([order("healthy", "0.30")])
        assert.isDefined(first.results[0].orderId)

        pg.pause()
        // This order joins a write that cannot finish while PostgreSQL is held: applied, not yet acked.
        const inFlight = yield* Effect.forkChild(placeBatch([order("in-flight", "0.31")]))
        yield* Effect.sleep("600 millis")

        const refusedBatch = yield* Effect.exit(placeBatch([order("refused-batch", "0.32")]))
        assert.strictEqual(tagOf(refusedBatch), "Overloaded", "PlaceBatch behind a stalled write")
        if (Exit.isFailure(refusedBatch)) {
          const error = refusedBatch.cause.reasons.find((r) => r._tag === "Fail")
          const overloaded = (error?._tag === "Fail" ? error.error : undefined) as
            | { readonly retryAfterMs: number; readonly message: string }
            | undefined
          assert.strictEqual(overloaded?.retryAfterMs, 200, "the retry hint is the bound")
          assert.include(overloaded?.message, "nothing was placed")
        }
        const many = yield* placeMany([order("refused-many", "0.33")])
        const entry = many.results[0]
        assert.strictEqual(entry._tag, "Failed", "PlaceMany entry behind a stalled write")
        if (entry._tag === "Failed") assert.strictEqual(entry.error._tag, "Overloaded")
        // Cancels are not refused by the bound (they wait on the journal as before): not sent here.
        assert.strictEqual(inFlight.pollUnsafe(), undefined, "the write in flight is still waiting on PostgreSQL")

        pg.resume()
        const acked = yield* Fiber.await(inFlight)
        assert.isTrue(Exit.isSuccess(acked), `the order of the write in flight is acked after the stall: ${acked}`)

        // Nothing of the refused orders was applied: their keys are not stored, and retried they are new orders.
        const stored = () =>
          db
            .query(`SELECT client_order_id FROM orders WHERE symbol = '${symbol}' ORDER BY order_id`)
            .split("\n")
            .filter((line) => line !== "")
        assert.deepStrictEqual(stored(), ["healthy", "in-flight"])
        const retried = yield* placeBatch([order("refused-batch", "0.32"), order("refused-many", "0.33")])
        const ids = retried.results.map((r) => Number(r.orderId))
        assert.isTrue(
          ids.every((id) => id > Number(first.results[0].orderId) + 1),
          `retried keys get new order ids after the acked ones (${ids})`
        )
        assert.deepStrictEqual(stored(), ["healthy", "in-flight", "refused-batch", "refused-many"])
      }).pipe(Effect.scoped),
    60_000
  )
})
