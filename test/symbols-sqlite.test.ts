/**
 * Symbols at run time on the embedded default (node:sqlite under TESSERA_DATA, no Postgres, no Redis): the
 * `symbols` table's run-time columns (migration 3) exist there, add/halt/resume/set work through the gateway, bad
 * values change nothing, and every change survives a restart on the same data folder.
 */

import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { assert, describe, it } from "@effect/vitest"
import * as TesseraClient from "@tessera/client/TesseraClient"
import { Effect } from "effect"
import { SeedApi } from "../actors/api.ts"
import type { PlaceOrder } from "../actors/symbol-shard/protocol.ts"
import { type RunnerProcess, startProcess, tagOf, tempDataDir } from "./harness.ts"

const withClient = <A, E>(url: string, f: (client: TesseraClient.Client<SeedApi>) => Effect.Effect<A, E>) =>
  Effect.scoped(Effect.flatMap(TesseraClient.make(SeedApi, { url }), f))

const buy = (clientOrderId: string, qty = "1"): PlaceOrder => ({
  account: "sym-sqlite",
  clientOrderId,
  side: "buy",
  price: "100.00",
  qty
})

/** Rows of the embedded database file, read while the node is stopped. */
const rows = (dir: string, sql: string) => {
  const db = new DatabaseSync(join(dir, "tessera.db"), { readOnly: true })
  try {
    return db.prepare(sql).all() as Array<Record<string, unknown>>
  } finally {
    db.close()
  }
}

const stop = async (node: RunnerProcess) => {
  node.child.kill("SIGINT")
  await node.exited
}

describe("symbols at run time on the embedded SQLite", () => {
  it.live(
    "add, halt, resume and set work on SQLite, refuse bad values without a change, and survive a restart",
    () =>
      Effect.gen(function* () {
        const data = yield* Effect.acquireRelease(Effect.sync(tempDataDir), (d) => Effect.sync(() => d.remove()))
        const start = (name: string) =>
          Effect.acquireRelease(
            Effect.promise(() => startProcess(name, { entry: "main", env: { TESSERA_DATA: data.dir } })),
            (node) => Effect.sync(() => node.child.kill("SIGKILL"))
          )
        const first = yield* start("sqlite-symbols-a")
        yield* withClient(first.url, (client) =>
          Effect.gen(function* () {
            const before = (yield* client["Symbols.List"]()).symbols
            assert.include(
              before.map((s) => s.symbol),
              "BTC-USDT",
              "the seed symbols are the embedded default's demo data"
            )
            assert.isTrue(
              before.every((s) => s.halted === false),
              "migration 3's halted column on SQLite"
            )

            // Halt: places refused with Halted and not stored, cancels allowed; resume.
            const placed = yield* client["SymbolShard.PlaceBatch"]({
              entityId: "ETH-USDT",
              payload: { orders: [buy("h1")] }
            })
            const orderId = placed.results[0].orderId
            assert.isDefined(orderId)
            assert.isTrue((yield* client["Symbols.Halt"]({ symbol: "ETH-USDT" })).symbol.halted)
            const refused = yield* Effect.exit(
              client["SymbolShard.PlaceBatch"]({ entityId: "ETH-USDT", payload: { orders: [buy("h2")] } })
            )
            assert.strictEqual(tagOf(refused), "Halted")
            const cancelled = yield* client["SymbolShard.Cancel"]({
              entityId: "ETH-USDT",
              payload: { orderId: orderId! }
            })
            assert.strictEqual(cancelled.status, "canceled", "cancels run while halted")
            yield* client["Symbols.Resume"]({ symbol: "ETH-USDT" })
            const again = yield* client["SymbolShard.PlaceBatch"]({
              entityId: "ETH-USDT",
              payload: { orders: [buy("h3")] }
            })
            assert.isDefined(again.results[0].orderId, "places are accepted again after resume")

            // Add: bad and duplicate configs refused, nothing changed; the new symbol trades at once with its limits.
            const bad = yield* Effect.exit(client["Symbols.Add"]({ symbol: "BAD-USDT", tick: "-1", lot: "0.001" }))
            assert.strictEqual(tagOf(bad), "InvalidSymbolConfig")
            const duplicate = yield* Effect.exit(
              client["Symbols.Add"]({ symbol: "BTC-USDT", tick: "0.01", lot: "0.001" })
            )
            assert.strictEqual(tagOf(duplicate), "InvalidSymbolConfig")
            assert.deepStrictEqual(
              (yield* client["Symbols.List"]()).symbols.map((s) => s.symbol).sort(),
              before.map((s) => s.symbol).sort(),
              "refused adds changed nothing"
            )
            yield* client["Symbols.Add"]({ symbol: "NEW-USDT", tick: "0.01", lot: "0.001", maxQty: "5" })
            const fresh = yield* client["SymbolShard.PlaceBatch"]({
              entityId: "NEW-USDT",
              payload: { orders: [buy("n1"), buy("n2", "10")] }
            })
            assert.isDefined(fresh.results[0].orderId, "the new symbol trades without a restart")
            assert.isDefined(fresh.results[1].rejected, "its max quantity applies")

            // Set: the running shard applies a new limit; bad limits refused and nothing changed.
            const sol = (key: string, qty: string) =>
              client["SymbolShard.PlaceBatch"]({ entityId: "SOL-USDT", payload: { orders: [buy(key, qty)] } })
            assert.isDefined((yield* sol("s1", "3")).results[0].orderId)
            yield* client["Symbols.Set"]({ symbol: "SOL-USDT", maxQty: "2" })
            assert.isDefined((yield* sol("s2", "3")).results[0].rejected, "the running shard applies the new limit")
            const badLimits = yield* Effect.exit(
              client["Symbols.Set"]({ symbol: "SOL-USDT", minQty: "9", maxQty: "2" })
            )
            assert.strictEqual(tagOf(badLimits), "InvalidSymbolConfig")
            const missing = yield* Effect.exit(client["Symbols.Halt"]({ symbol: "NOPE-USDT" }))
            assert.strictEqual(tagOf(missing), "UnknownSymbol")
            // Halted at the restart below.
            yield* client["Symbols.Halt"]({ symbol: "XRP-USDT" })
          })
        )
        yield* Effect.promise(() => stop(first))

        const stored = rows(
          data.dir,
          "SELECT symbol, halted, max_qty FROM symbols WHERE symbol IN ('NEW-USDT', 'SOL-USDT', 'XRP-USDT', 'ETH-USDT') ORDER BY symbol"
        )
        assert.deepStrictEqual(
          stored.map((r) => [r.symbol, Number(r.halted)]),
          [
            ["ETH-USDT", 0],
            ["NEW-USDT", 0],
            ["SOL-USDT", 0],
            ["XRP-USDT", 1]
          ],
          "the changes are rows of the SQLite file"
        )
        assert.deepStrictEqual(
          rows(data.dir, "SELECT client_order_id FROM orders WHERE account = 'sym-sqlite' ORDER BY 1").map(
            (r) => r.client_order_id
          ),
          ["h1", "h3", "n1", "s1"],
          "refused places stored nothing"
        )

        const second = yield* start("sqlite-symbols-b")
        yield* withClient(second.url, (client) =>
          Effect.gen(function* () {
            const listed = (yield* client["Symbols.List"]()).symbols
            assert.isTrue(listed.find((s) => s.symbol === "XRP-USDT")?.halted, "still halted after a restart")
            assert.strictEqual(Number(listed.find((s) => s.symbol === "SOL-USDT")?.maxQty), 2)
            const refused = yield* Effect.exit(
              client["SymbolShard.PlaceBatch"]({ entityId: "XRP-USDT", payload: { orders: [buy("x1")] } })
            )
            assert.strictEqual(tagOf(refused), "Halted")
            const added = yield* client["SymbolShard.PlaceBatch"]({
              entityId: "NEW-USDT",
              payload: { orders: [buy("n3")] }
            })
            assert.isDefined(added.results[0].orderId, "the added symbol trades after a restart")
          })
        )
      }).pipe(Effect.scoped),
    120_000
  )
})
