/**
 * Symbols managed at run time through a real runner process (Postgres + Redis): list, add, halt, resume and set
 * through the gateway's `Symbols.*` RPCs; a halted symbol refuses places and allows cancels; a change reaches the
 * running shard without a restart; bad values are refused with typed errors and change nothing.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as TesseraClient from "@tessera/client/TesseraClient"
import { Effect, type Scope } from "effect"
import { SeedApi } from "../actors/api.ts"
import type { PlaceOrder } from "../actors/symbol-shard/protocol.ts"
import { type Cluster, startCluster, tagOf } from "./harness.ts"

let cluster: Cluster

beforeAll(async () => {
  cluster = await startCluster(1, { label: "symbols_admin" })
}, 90_000)
afterAll(() => cluster?.stop())

const withClient = <A, E>(body: (client: TesseraClient.Client<SeedApi>) => Effect.Effect<A, E, Scope.Scope>) =>
  Effect.runPromise(Effect.scoped(Effect.flatMap(TesseraClient.make(SeedApi, { url: cluster.runners[0].url }), body)))

const buy = (clientOrderId: string, qty = "1"): PlaceOrder => ({
  account: "sym-admin",
  clientOrderId,
  side: "buy",
  price: "100.00",
  qty
})

describe("symbols at run time (real Postgres + Redis)", () => {
  it("halts and resumes a running symbol: places refused with Halted, cancels allowed", () =>
    withClient((client) =>
      Effect.gen(function* () {
        const place = (key: string) =>
          Effect.exit(client["SymbolShard.PlaceBatch"]({ entityId: "ETH-USDT", payload: { orders: [buy(key)] } }))
        const first = yield* client["SymbolShard.PlaceBatch"]({
          entityId: "ETH-USDT",
          payload: { orders: [buy("h1")] }
        })
        const orderId = first.results[0].orderId
        assert.isDefined(orderId)
        const halted = yield* client["Symbols.Halt"]({ symbol: "ETH-USDT" })
        assert.isTrue(halted.symbol.halted)
        assert.strictEqual(tagOf(yield* place("h2")), "Halted", "a halted symbol refuses places")
        const cancelled = yield* client["SymbolShard.Cancel"]({ entityId: "ETH-USDT", payload: { orderId: orderId! } })
        assert.strictEqual(cancelled.status, "canceled", "cancels run while halted")
        const listed = yield* client["Symbols.List"]()
        assert.isTrue(listed.symbols.find((s) => s.symbol === "ETH-USDT")?.halted)
        yield* client["Symbols.Resume"]({ symbol: "ETH-USDT" })
        assert.strictEqual(tagOf(yield* place("h3")), "success", "places are accepted again after resume")
        const rows = cluster.database.query("SELECT client_order_id FROM orders WHERE account = 'sym-admin' ORDER BY 1")
        assert.deepStrictEqual(rows.split("\n"), ["h1", "h3"], "nothing of the refused place was stored")
      })
    ))

  it("adds a symbol that trades at once, and refuses bad or duplicate configs without changing anything", () =>
    withClient((client) =>
      Effect.gen(function* () {
        const before = (yield* client["Symbols.List"]()).symbols.map((s) => s.symbol).sort()
        assert.include(before, "BTC-USDT")
        assert.notInclude(before, "NEW-USDT")
        const unknown = yield* Effect.exit(
          client["SymbolShard.PlaceBatch"]({ entityId: "NEW-USDT", payload: { orders: [buy("n0")] } })
        )
        assert.strictEqual(tagOf(unknown), "InvalidEntityId", "not configured yet: refused at the gateway")
        const unknownMany = yield* client["Orders.PlaceMany"]({
          batches: [{ symbol: "NEW-USDT", orders: [buy("n0")] }]
        })
        assert.strictEqual(
          unknownMany.results[0]._tag === "Failed" && unknownMany.results[0].error._tag,
          "UnknownSymbol"
        )

        const bad = yield* Effect.exit(client["Symbols.Add"]({ symbol: "BAD-USDT", tick: "-1", lot: "0.001" }))
        assert.strictEqual(tagOf(bad), "InvalidSymbolConfig")
        const duplicate = yield* Effect.exit(client["Symbols.Add"]({ symbol: "BTC-USDT", tick: "0.01", lot: "0.001" }))
        assert.strictEqual(tagOf(duplicate), "InvalidSymbolConfig", "an existing symbol is not overwritten")
        assert.deepStrictEqual(
          (yield* client["Symbols.List"]()).symbols.map((s) => s.symbol).sort(),
          before,
          "refused adds changed nothing"
        )

        const added = yield* client["Symbols.Add"]({ symbol: "NEW-USDT", tick: "0.01", lot: "0.001", maxQty: "5" })
        assert.strictEqual(added.symbol.symbol, "NEW-USDT")
        const placed = yield* client["SymbolShard.PlaceBatch"]({
          entityId: "NEW-USDT",
          payload: { orders: [buy("n1"), buy("n2", "10")] }
        })
        assert.isDefined(placed.results[0].orderId, "the new symbol trades without a restart")
        assert.isDefined(placed.results[1].rejected, "its max quantity applies")
      })
    ))

  it("changes the limits of a running shard without a restart, and refuses unknown symbols and bad limits", () =>
    withClient((client) =>
      Effect.gen(function* () {
        const place = (key: string, qty: string) =>
          client["SymbolShard.PlaceBatch"]({ entityId: "SOL-USDT", payload: { orders: [buy(key, qty)] } })
        assert.isDefined((yield* place("s1", "3")).results[0].orderId, "3 is within the seed limits")
        yield* client["Symbols.Set"]({ symbol: "SOL-USDT", maxQty: "2" })
        assert.isDefined((yield* place("s2", "3")).results[0].rejected, "the running shard applies the new limit")
        assert.isDefined((yield* place("s3", "1")).results[0].orderId)
        const badLimits = yield* Effect.exit(client["Symbols.Set"]({ symbol: "SOL-USDT", minQty: "9", maxQty: "2" }))
        assert.strictEqual(tagOf(badLimits), "InvalidSymbolConfig")
        const sol = (yield* client["Symbols.List"]()).symbols.find((s) => s.symbol === "SOL-USDT")
        assert.strictEqual(Number(sol?.maxQty), 2, "a refused set changed nothing")
        const missing = yield* Effect.exit(client["Symbols.Halt"]({ symbol: "NOPE-USDT" }))
        assert.strictEqual(tagOf(missing), "UnknownSymbol")
      })
    ))
})
