// The symbol shard's journal-write deadline: a runner whose PostgreSQL is black-holed under order load (a TCP proxy
// that holds every byte while the sockets stay open). Every order sent meanwhile is answered by the shard with the
// typed ShardUnavailable (the write that went unanswered, then the shard refusing while it re-reads its state), never
// acked and never left waiting; once PostgreSQL answers again orders are acked, the refused ones retried with the
// same keys are answered once, and every acked order is in the database.
//
// The runner's shard locks are given a long refresh here so that the outage does not take its shards away: what is
// tested is the shard's own deadline, not the runner dropping its shards (test/blackhole.test.ts covers that).
import { assert, describe, it } from "@effect/vitest"
import * as TesseraClient from "@tessera/client/TesseraClient"
import { Effect, Exit } from "effect"
import { SeedApi } from "../actors/api.ts"
import type { PlaceOrder } from "../actors/symbol-shard/protocol.ts"
import { runnerBehindPausablePg } from "./harness.ts"

const symbols = ["BNB-USDT", "LTC-USDT"]
const order = (clientOrderId: string, i: number): PlaceOrder => ({
  account: `jd-${i % 3}`,
  clientOrderId,
  side: i % 2 === 0 ? "buy" : "sell",
  price: String(100 + ((i * 7) % 11) - 5),
  qty: "1"
})
/** A client-side bound, far above the shard's deadline: an order still unanswered by then waited on storage. */
const clientBoundMs = 5000

type Answer =
  | { readonly kind: "acked"; readonly orderIds: ReadonlyArray<string> }
  | { readonly kind: "failed"; readonly tag: string }

describe("journal-write deadline (runner process, real Postgres behind a pausable proxy)", () => {
  it.live(
    "orders during a PostgreSQL black-hole are answered ShardUnavailable, never acked; after it, acked and none lost",
    () =>
      Effect.gen(function* () {
        const { db, pg, runner } = yield* runnerBehindPausablePg("jdeadline", {
          TESSERA_JOURNAL_WRITE_TIMEOUT: "300 millis",
          TESSERA_SHARD_LOCK_REFRESH: "30 seconds",
          TESSERA_SHARD_LOCK_EXPIRATION: "90 seconds"
        })
        const client = yield* TesseraClient.make(SeedApi, { url: runner.url })
        const place = (entityId: string, orders: ReadonlyArray<PlaceOrder>) =>
          Effect.map(
            Effect.exit(
              client["SymbolShard.PlaceBatch"]({ entityId, payload: { orders } }).pipe(Effect.timeout(clientBoundMs))
            ),
            (exit): Answer => {
              if (Exit.isSuccess(exit)) {
                return { kind: "acked", orderIds: exit.value.results.flatMap((r) => r.orderId ?? []) }
              }
              const failure = exit.cause.reasons.find((r) => r._tag === "Fail")
              const tag = failure?._tag === "Fail" ? (failure.error as { _tag?: string })._tag : undefined
              return { kind: "failed", tag: tag ?? "defect or interruption" }
            }
          )
        const acked = new Map<string, string>()
        const record = (entityId: string, orders: ReadonlyArray<PlaceOrder>, answer: Answer) => {
          if (answer.kind !== "acked") return
          answer.orderIds.forEach((id, i) => {
            acked.set(`${entityId} ${orders[i].account} ${orders[i].clientOrderId}`, id)
          })
        }

        // Healthy: every order acked.
        let n = 0
        for (let round = 0; round < 3; round++) {
          for (const symbol of symbols) {
            const orders = [order(`before-${n}`, n++), order(`before-${n}`, n++)]
            const answer = yield* place(symbol, orders)
            assert.strictEqual(answer.kind, "acked", `healthy order on ${symbol}: ${JSON.stringify(answer)}`)
            record(symbol, orders, answer)
          }
        }

        // Black-holed: each symbol's orders, one request after another, for a few seconds.
        pg.pause()
        const during: Array<{ readonly symbol: string; readonly orders: ReadonlyArray<PlaceOrder>; answer: Answer }> =
          []
        const pausedAt = Date.now()
        yield* Effect.forEach(
          symbols,
          (symbol) =>
            Effect.gen(function* () {
              while (Date.now() - pausedAt < 3000) {
                const orders = [order(`during-${n}`, n++), order(`during-${n}`, n++)]
                during.push({ symbol, orders, answer: yield* place(symbol, orders) })
                yield* Effect.sleep("50 millis")
              }
            }),
          { concurrency: "unbounded", discard: true }
        )
        const tags = during.map((d) => (d.answer.kind === "acked" ? "acked" : d.answer.tag))
        assert.deepStrictEqual(
          tags.filter((tag) => tag !== "ShardUnavailable"),
          [],
          `every order sent while PostgreSQL is black-holed is answered ShardUnavailable (got ${JSON.stringify(tags)})`
        )
        for (const symbol of symbols) {
          assert.isAtLeast(
            during.filter((d) => d.symbol === symbol).length,
            3,
            `${symbol} kept answering while storage was gone`
          )
        }

        // PostgreSQL answers again: orders are acked once the shards have re-read their state.
        pg.resume()
        for (const symbol of symbols) {
          let answer: Answer = { kind: "failed", tag: "none yet" }
          const resumedAt = Date.now()
          while (answer.kind !== "acked" && Date.now() - resumedAt < 15_000) {
            const orders = [order(`after-${n}`, n++)]
            answer = yield* place(symbol, orders)
            record(symbol, orders, answer)
            if (answer.kind !== "acked") {
              assert.strictEqual(answer.tag, "ShardUnavailable", `${symbol} recovering`)
              yield* Effect.sleep("100 millis")
            }
          }
          assert.strictEqual(answer.kind, "acked", `${symbol} acks orders again after PostgreSQL answers`)
        }

        // The refused orders, retried with the same keys: each answered (placed now, or found placed before) once.
        for (const { symbol, orders } of during) {
          const answer = yield* place(symbol, orders)
          assert.strictEqual(answer.kind, "acked", `retry of a refused order on ${symbol}: ${JSON.stringify(answer)}`)
          record(symbol, orders, answer)
        }

        // Audit: every acked order is stored under the id it was acked with, each key once.
        const rows = db
          .query(
            `SELECT symbol, account, client_order_id, order_id FROM orders WHERE symbol IN ('BNB-USDT', 'LTC-USDT')`
          )
          .split("\n")
          .filter((line) => line !== "")
        const stored = new Map<string, string>()
        for (const line of rows) {
          const [symbol, account, clientOrderId, orderId] = line.split("|")
          stored.set(`${symbol} ${account} ${clientOrderId}`, orderId)
        }
        assert.strictEqual(stored.size, rows.length, "each key stored once")
        assert.strictEqual(acked.size, 6 * 2 + during.length * 2 + symbols.length, "every order acked in the end")
        const missing = [...acked].filter(([key, id]) => stored.get(key) !== id)
        assert.deepStrictEqual(missing, [], "every acked order is in the database under its acked id")
        console.log(
          `journal deadline: ${during.length} requests while PostgreSQL was black-holed, all ShardUnavailable; ` +
            `${acked.size} acked orders audited, none lost`
        )
      }).pipe(Effect.scoped),
    90_000
  )
})
