/**
 * `Orders.PlaceMany` through the gateway of two runner processes (real Postgres + Redis): per-symbol answers,
 * durability, unknown symbols beside good ones, idempotent retries, the request limits, and garbage payloads.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import type * as TesseraClient from "@tessera/client/TesseraClient"
import { Cause, Effect, Schema, type Scope } from "effect"
import { ClusterError, EntityAddress, EntityId, EntityType, ShardId } from "effect/cluster"
import { type Cluster, rawRpc, rpcRequest, startCluster, withClient } from "../../test/harness.ts"
import { restingBuys } from "../../test/orders.ts"
import type { SeedApi } from "../api.ts"
import { failedEntry } from "./gateway.ts"
import {
  InvalidManyRequest,
  ManyEntry,
  maxBatch,
  maxManySymbols,
  ShardUnavailable,
  type SymbolBatch,
  UnknownSymbol
} from "./protocol.ts"

let cluster: Cluster

beforeAll(async () => {
  cluster = await startCluster(2, { label: "placemany" })
}, 90_000)
afterAll(() => cluster?.stop())

const runWithClient = <A, E>(body: (client: TesseraClient.Client<SeedApi>) => Effect.Effect<A, E, Scope.Scope>) =>
  Effect.runPromise(withClient(cluster.runners[0].url, body))

/** `symbol:clientOrderId:orderId` of every row of the account, sorted. */
const rowsOf = (account: string): Array<string> => {
  const out = cluster.database.query(
    `SELECT symbol || ':' || client_order_id || ':' || order_id FROM orders WHERE account = '${account}' ORDER BY 1`
  )
  return out === "" ? [] : out.split("\n")
}

const placedKeys = (entries: ReadonlyArray<ManyEntry>): Array<string> =>
  entries
    .flatMap((entry) =>
      entry._tag === "Placed" ? entry.results.map((r) => `${entry.symbol}:${r.clientOrderId}:${r.orderId}`) : []
    )
    .sort()

describe("Orders.PlaceMany on two runners (real Postgres + Redis)", () => {
  it("answers each symbol's batch in request order, with order ids of durable orders", () =>
    runWithClient((client) =>
      Effect.gen(function* () {
        const batches: Array<SymbolBatch> = [
          { symbol: "BTC-USDT", orders: restingBuys("pm-a", "btc", 3) },
          { symbol: "ETH-USDT", orders: restingBuys("pm-a", "eth", 2) },
          { symbol: "SOL-USDT", orders: restingBuys("pm-a", "sol", 1) }
        ]
        const { results } = yield* client["Orders.PlaceMany"]({ batches })
        assert.deepStrictEqual(
          results.map((e) => [e._tag, e.symbol]),
          [
            ["Placed", "BTC-USDT"],
            ["Placed", "ETH-USDT"],
            ["Placed", "SOL-USDT"]
          ]
        )
        for (let i = 0; i < batches.length; i++) {
          const entry = results[i]
          assert.strictEqual(entry._tag, "Placed")
          if (entry._tag !== "Placed") continue
          assert.deepStrictEqual(
            entry.results.map((r) => [r.clientOrderId, r.status, r.rejected]),
            batches[i].orders.map((o) => [o.clientOrderId, "open", undefined])
          )
          for (const r of entry.results) assert.match(r.orderId ?? "", /^\d+$/)
        }
        const keys = placedKeys(results)
        assert.strictEqual(keys.length, 6)
        assert.deepStrictEqual(rowsOf("pm-a"), keys, "every acknowledged order is a row of the orders table")

        assert.deepStrictEqual(yield* client["Orders.PlaceMany"]({ batches: [] }), { results: [] })
      })
    ))

  it("answers UnknownSymbol for an unconfigured symbol while the other entries are placed", () =>
    runWithClient((client) =>
      Effect.gen(function* () {
        const { results } = yield* client["Orders.PlaceMany"]({
          batches: [
            { symbol: "ETH-USDT", orders: restingBuys("pm-b", "eth", 2) },
            { symbol: "NOPE-USDT", orders: restingBuys("pm-b", "nope", 2) },
            { symbol: "SOL-USDT", orders: restingBuys("pm-b", "sol", 1) }
          ]
        })
        assert.deepStrictEqual(
          results.map((e) => e._tag),
          ["Placed", "Failed", "Placed"]
        )
        const failed = results[1]
        assert.strictEqual(failed._tag, "Failed")
        if (failed._tag === "Failed") {
          assert.instanceOf(failed.error, UnknownSymbol)
          assert.strictEqual(failed.symbol, "NOPE-USDT")
          assert.strictEqual(failed.error.symbol, "NOPE-USDT")
        }
        assert.deepStrictEqual(rowsOf("pm-b"), placedKeys(results))
        assert.strictEqual(rowsOf("pm-b").length, 3)
      })
    ))

  it("answers a retried request with the first order ids and places nothing again", () =>
    runWithClient((client) =>
      Effect.gen(function* () {
        const batches: Array<SymbolBatch> = [
          { symbol: "DOGE-USDT", orders: restingBuys("pm-c", "doge", 3) },
          { symbol: "XRP-USDT", orders: restingBuys("pm-c", "xrp", 2) }
        ]
        const first = yield* client["Orders.PlaceMany"]({ batches })
        const rows = rowsOf("pm-c")
        assert.strictEqual(rows.length, 5)
        const again = yield* client["Orders.PlaceMany"]({ batches })
        assert.deepStrictEqual(again, first)
        // One entry retried alone, in another request shape, is answered from the shard's memory too.
        const alone = yield* client["Orders.PlaceMany"]({ batches: [batches[1]] })
        assert.deepStrictEqual(alone.results, [first.results[1]])
        assert.deepStrictEqual(rowsOf("pm-c"), rows, "no new rows")
      })
    ))

  it("refuses requests over the limits with InvalidManyRequest and places nothing", () =>
    runWithClient((client) =>
      Effect.gen(function* () {
        const refusal = (batches: ReadonlyArray<SymbolBatch>) => Effect.flip(client["Orders.PlaceMany"]({ batches }))
        const duplicate = yield* refusal([
          { symbol: "BTC-USDT", orders: restingBuys("pm-d", "dup1", 1) },
          { symbol: "ETH-USDT", orders: restingBuys("pm-d", "dup2", 1) },
          { symbol: "BTC-USDT", orders: restingBuys("pm-d", "dup3", 1) }
        ])
        assert.instanceOf(duplicate, InvalidManyRequest)
        assert.include((duplicate as InvalidManyRequest).message, "BTC-USDT")

        const tooManySymbols = yield* refusal(
          Array.from({ length: maxManySymbols + 1 }, (_, i) => ({
            symbol: i === 0 ? "BTC-USDT" : `X${i}-USDT`,
            orders: restingBuys("pm-d", `many${i}`, 1)
          }))
        )
        assert.instanceOf(tooManySymbols, InvalidManyRequest)
        assert.include((tooManySymbols as InvalidManyRequest).message, String(maxManySymbols))

        const half = Math.floor(maxBatch / 2)
        const tooManyOrders = yield* refusal([
          { symbol: "BTC-USDT", orders: restingBuys("pm-d", "big1", half + 1) },
          { symbol: "ETH-USDT", orders: restingBuys("pm-d", "big2", maxBatch - half) }
        ])
        assert.instanceOf(tooManyOrders, InvalidManyRequest)
        assert.include((tooManyOrders as InvalidManyRequest).message, String(maxBatch))

        const oneTooBig = yield* refusal([{ symbol: "BTC-USDT", orders: restingBuys("pm-d", "huge", maxBatch + 1) }])
        assert.instanceOf(oneTooBig, InvalidManyRequest)

        assert.deepStrictEqual(rowsOf("pm-d"), [], "a refused request places nothing")
      })
    ))

  it("answers garbage payloads with errors and keeps serving", async () => {
    const url = cluster.runners[0].url
    const garbage: Array<unknown> = [
      { batches: "nope" },
      {},
      { batches: [{ symbol: 7, orders: [{ side: "up" }] }] },
      { batches: [{ symbol: "BTC-USDT", orders: [{ account: "pm-e", clientOrderId: "g", side: "buy", qty: 5 }] }] }
    ]
    for (let i = 0; i < garbage.length; i++) {
      const { status, lines } = await rawRpc(url, rpcRequest(String(i + 1), "Orders.PlaceMany", garbage[i]))
      assert.strictEqual(status, 200)
      assert.strictEqual(lines[0]?.exit?._tag, "Failure", JSON.stringify(lines))
      // The RPC server's decode error names the offending field.
      assert.include(JSON.stringify(lines[0]), "batches")
    }
    await runWithClient((client) =>
      Effect.gen(function* () {
        const { results } = yield* client["Orders.PlaceMany"]({
          batches: [{ symbol: "BTC-USDT", orders: restingBuys("pm-e", "after", 1) }]
        })
        assert.strictEqual(results[0]._tag, "Placed")
      })
    )
    assert.deepStrictEqual(
      rowsOf("pm-e").map((row) => row.split(":").slice(0, 2).join(":")),
      ["BTC-USDT:after-0"]
    )
  })

  it("maps an entry's failure: UnknownSymbol kept, cluster errors and defects as ShardUnavailable", () => {
    const unknown = new UnknownSymbol({ symbol: "NOPE-USDT", message: "no symbol" })
    assert.deepStrictEqual(failedEntry("NOPE-USDT", Cause.fail(unknown)), {
      _tag: "Failed",
      symbol: "NOPE-USDT",
      error: unknown
    })
    const address = EntityAddress.make({
      shardId: ShardId.make("default", 1),
      entityType: EntityType.make("SymbolShard"),
      entityId: EntityId.make("BTC-USDT")
    })
    const cases: Array<[Cause.Cause<unknown>, string]> = [
      [Cause.fail(new ClusterError.MailboxFull({ address })), "MailboxFull"],
      [Cause.die(new Error("shard BTC-USDT is restarting")), "shard BTC-USDT is restarting"],
      [Cause.interrupt(1), "interrupted"]
    ]
    for (const [cause, expected] of cases) {
      const entry = failedEntry("BTC-USDT", cause)
      assert.strictEqual(entry._tag, "Failed")
      if (entry._tag !== "Failed") continue
      assert.instanceOf(entry.error, ShardUnavailable)
      assert.strictEqual(entry.error.symbol, "BTC-USDT")
      assert.include(entry.error.message, expected)
      // Every answer encodes to JSON and back (what the gateway sends).
      const json = Schema.encodeUnknownSync(Schema.toCodecJson(ManyEntry))(entry)
      assert.deepStrictEqual(Schema.decodeUnknownSync(Schema.toCodecJson(ManyEntry))(json), entry)
    }
  })
})
