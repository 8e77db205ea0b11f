// The gateway's deadline on entity-proxy requests (TESSERA_REQUEST_TIMEOUT_MS), on a runner process whose PostgreSQL
// is black-holed (a TCP proxy that holds every byte): a symbol shard that cannot activate never answers, and
// sharding would retry the send for good. The request is answered with a typed RequestTimeout at the deadline, its
// admission weight is given back, and once PostgreSQL answers a retry with the same keys places each order once.
import { assert, describe, it } from "@effect/vitest"
import * as TesseraClient from "@tessera/client/TesseraClient"
import { Cause, Effect, Exit } from "effect"
import { SeedApi } from "../actors/api.ts"
import type { PlaceOrder } from "../actors/symbol-shard/protocol.ts"
import { admissionOf, freshDatabase, pausableProxy, redisUrl, startProcess } from "./harness.ts"

const orders: Array<PlaceOrder> = Array.from({ length: 3 }, (_, i) => ({
  account: "rt-1",
  clientOrderId: `rt-${i}`,
  side: "buy",
  price: "100",
  qty: "1"
}))

describe("entity-proxy request deadline (real Postgres + Redis)", () => {
  it.live(
    "answers RequestTimeout while the entity cannot answer, gives the weight back, and a retry places once",
    () =>
      Effect.gen(function* () {
        const db = yield* Effect.acquireRelease(
          Effect.sync(() => freshDatabase("reqtimeout")),
          (d) => Effect.sync(() => d.drop())
        )
        const proxy = yield* Effect.acquireRelease(
          Effect.promise(() => pausableProxy({ host: "127.0.0.1", port: 5432 })),
          (p) => Effect.promise(() => p.close())
        )
        const runner = yield* Effect.acquireRelease(
          Effect.promise(() =>
            startProcess("reqtimeout", {
              env: {
                DATABASE_URL: db.url.replace("127.0.0.1:5432", `127.0.0.1:${proxy.port}`),
                REDIS_URL: redisUrl,
                TESSERA_REQUEST_TIMEOUT_MS: "1500"
              }
            })
          ),
          (r) =>
            Effect.promise(async () => {
              r.child.kill("SIGKILL")
              await r.exited
            })
        )
        const client = yield* TesseraClient.make(SeedApi, { url: runner.url })
        const place = client["SymbolShard.PlaceBatch"]({ entityId: "SOL-USDT", payload: { orders } }).pipe(
          Effect.timeout("20 seconds")
        )

        // The shard is not active yet: activating it reads PostgreSQL, which no longer answers.
        proxy.pause()
        const exit = yield* Effect.exit(place)
        assert.isTrue(Exit.isFailure(exit), "not placed while PostgreSQL is black-holed")
        if (Exit.isFailure(exit)) {
          const error = Cause.findErrorOption(exit.cause)
          assert.strictEqual(error._tag, "Some")
          if (error._tag === "Some") {
            const value = error.value as { readonly _tag?: string; readonly timeoutMs?: number }
            assert.strictEqual(value._tag, "RequestTimeout", `a typed RequestTimeout, not ${String(value._tag)}`)
            assert.strictEqual(value.timeoutMs, 1500)
          }
        }
        const admission = yield* Effect.promise(() => admissionOf(runner.url))
        assert.strictEqual(admission.in_flight, 0, "the timed-out request holds no admission weight")

        proxy.resume()
        const placed = yield* place.pipe(Effect.retry({ times: 20 }))
        assert.strictEqual(placed.results.length, 3)
        const again = yield* place
        assert.deepStrictEqual(
          again.results.map((r) => r.orderId),
          placed.results.map((r) => r.orderId),
          "a retry with the same keys answers the first results"
        )
        assert.strictEqual(Number(db.query("SELECT count(*) FROM orders WHERE account = 'rt-1'")), 3)
      }).pipe(Effect.scoped),
    120_000
  )
})
