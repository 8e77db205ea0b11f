// The actors' own Prometheus series after real traffic through a node's gateway (real Postgres + Redis):
// SymbolShard orders, trades, group-commit flushes, book depth and journal replay after a restart; the graph
// proxy's requests by op, hot-tier hits and misses, demotion, promotion and partition gauges.
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as TesseraClient from "@tessera/client/TesseraClient"
import { Effect, type Scope } from "effect"
import { SeedApi } from "../actors/api.ts"
import { graphClient } from "../actors/proxy-partition/client.ts"
import {
  deleteRedisKeys,
  freshDatabase,
  type RunnerProcess,
  rawRpc,
  redisUrl,
  rpcRequest,
  startProcess,
  tempDataDir
} from "./harness.ts"
import { parse, type Sample, value } from "./promText.ts"

const db = freshDatabase("actor_metrics")
const cold = tempDataDir()
const prefix = `am${Date.now().toString(36)}`
const partitions = 8
const started: Array<RunnerProcess> = []

const start = async (name: string) => {
  const node = await startProcess(name, {
    env: {
      DATABASE_URL: db.url,
      REDIS_URL: redisUrl,
      TESSERA_GRAPH_PREFIX: prefix,
      TESSERA_GRAPH_COLD: cold.dir,
      TESSERA_GRAPH_PARTITIONS: String(partitions)
    }
  })
  started.push(node)
  return node
}

afterAll(async () => {
  for (const node of started) node.child.kill("SIGKILL")
  await Promise.all(started.map((node) => node.exited))
  db.drop()
  cold.remove()
  // The runners wrote under this test's own key prefix in the shared Redis: remove it.
  await deleteRedisKeys(prefix)
})

const scrape = async (node: RunnerProcess): Promise<Array<Sample>> => {
  const response = await fetch(`${node.url}/metrics`)
  assert.strictEqual(response.status, 200)
  return parse(await response.text())
}

const call = async (node: RunnerProcess, tag: string, entityId: string, payload: unknown) => {
  const { lines } = await rawRpc(node.url, rpcRequest("1", tag, { entityId, payload }))
  return lines[0]?.exit as { _tag: string; value?: any; cause?: unknown }
}

// LTC-USDT: tick 0.01, lot 0.001 (the market-data test uses DOGE-USDT).
const symbol = "LTC-USDT"
const on = { symbol }
const order = (id: string, side: "buy" | "sell", price: string, qty: string) => ({
  account: "metrics",
  clientOrderId: id,
  side,
  price,
  qty
})

describe("actor metrics on /metrics after traffic (real Postgres + Redis)", () => {
  it("SymbolShard: orders by outcome, trades, flush batches and latency, book depth, replay on activation", async () => {
    const first = await start("actor-metrics-a")
    const batch = await call(first, "SymbolShard.PlaceBatch", symbol, {
      orders: [
        order("b1", "buy", "99", "1"),
        order("b2", "buy", "100", "2"),
        order("s1", "sell", "100", "1"), // trades 1 with b2
        order("s2", "sell", "101", "1"),
        order("bad-price", "buy", "100.001", "1")
      ]
    })
    assert.strictEqual(batch._tag, "Success", JSON.stringify(batch))
    assert.deepStrictEqual(
      batch.value.results.map((r: { rejected?: string }) => r.rejected ?? "ok"),
      ["ok", "ok", "ok", "ok", "invalid_price"]
    )
    assert.strictEqual((await call(first, "SymbolShard.Place", symbol, order("b3", "buy", "98", "1")))._tag, "Success")
    const rejected = await call(first, "SymbolShard.Place", symbol, order("bad-qty", "buy", "98", "0.0001"))
    assert.strictEqual(rejected._tag, "Failure")

    const samples = await scrape(first)
    assert.strictEqual(value(samples, "tessera_orders_total", { ...on, outcome: "accepted" }), 5)
    assert.strictEqual(value(samples, "tessera_orders_total", { ...on, outcome: "rejected" }), 2)
    assert.strictEqual(value(samples, "tessera_trades_total", on), 1)
    // Every accepted place is one journal command; acknowledgements wait for their flush, so all are counted.
    const flushes = value(samples, "tessera_symbol_flush_batch_commands_count")
    assert.isAtLeast(flushes, 1)
    assert.isAtMost(flushes, 5)
    assert.strictEqual(value(samples, "tessera_symbol_flush_batch_commands_sum"), 5)
    assert.strictEqual(value(samples, "tessera_symbol_flush_seconds_count"), flushes)
    const flushSeconds = value(samples, "tessera_symbol_flush_seconds_sum")
    assert.isTrue(flushSeconds > 0 && flushSeconds < 60, `flush seconds ${flushSeconds}`)
    assert.strictEqual(value(samples, "tessera_symbol_flush_failures_total", on), 0)
    // Resting: buy 99, buy 100 (1 left), buy 98, sell 101.
    assert.strictEqual(value(samples, "tessera_book_resting_orders", on), 4)
    assert.strictEqual(value(samples, "tessera_book_levels", { ...on, side: "buy" }), 3)
    assert.strictEqual(value(samples, "tessera_book_levels", { ...on, side: "sell" }), 1)
    assert.strictEqual(value(samples, "tessera_symbol_activations_total", on), 1)
    assert.strictEqual(value(samples, "tessera_symbol_replay_batches_total", on), 0)
    assert.strictEqual(value(samples, "tessera_symbol_replay_seconds_count"), 1)

    // A new runner on the same database replays every flushed batch when the symbol is asked for again.
    first.child.kill("SIGKILL")
    await first.exited
    const second = await start("actor-metrics-b")
    const depth = await call(second, "SymbolShard.Depth", symbol, { depth: 10 })
    assert.strictEqual(depth._tag, "Success", JSON.stringify(depth))
    const after = await scrape(second)
    assert.strictEqual(value(after, "tessera_symbol_activations_total", on), 1)
    assert.strictEqual(value(after, "tessera_symbol_replay_batches_total", on), flushes)
    assert.strictEqual(value(after, "tessera_book_resting_orders", on), 4)
    assert.strictEqual(value(after, "tessera_orders_total", { ...on, outcome: "accepted" }), 0)
  }, 120_000)

  it("graph proxy: requests by op, hot-tier hits and misses, demotion and promotion, partition gauges", async () => {
    const node = started.at(-1) ?? (await start("actor-metrics-g"))
    const withGraph = <A, E>(body: (g: ReturnType<typeof graphClient>) => Effect.Effect<A, E, Scope.Scope>) =>
      Effect.scoped(
        Effect.flatMap(TesseraClient.make(SeedApi, { url: node.url }), (client) =>
          body(graphClient(client, partitions))
        )
      ).pipe(Effect.runPromise)
    const before = await scrape(node)
    const count = (samples: ReadonlyArray<Sample>, name: string, labels: Record<string, string> = {}) => {
      try {
        return value(samples, name, labels)
      } catch {
        return 0
      }
    }
    const delta = (after: ReadonlyArray<Sample>, name: string, labels: Record<string, string> = {}) =>
      count(after, name, labels) - count(before, name, labels)

    const partition = await withGraph((g) =>
      Effect.gen(function* () {
        for (let i = 0; i < 6; i++) yield* g.put(`v${i}`, { i })
        yield* g.get("v0")
        // v0 and v1 are hot: the gateway reads them directly; "absent" is a miss the partition answers.
        const got = yield* g.batchGet(["v0", "v1", "absent"])
        assert.deepStrictEqual(got, [{ i: 0 }, { i: 1 }, null])
        const p = g.partitionOf("v0")
        const demoted = yield* g.demote(p)
        assert.isAbove(demoted.version, 0)
        // Cold now: the gateway misses, the partition promotes itself and answers.
        assert.deepStrictEqual(yield* g.batchGet(["v0"]), [{ i: 0 }])
        return p
      })
    )

    const samples = await scrape(node)
    assert.strictEqual(delta(samples, "tessera_graph_requests_total", { op: "PutVertex" }), 6)
    assert.strictEqual(delta(samples, "tessera_graph_requests_total", { op: "GetVertex" }), 1)
    assert.strictEqual(delta(samples, "tessera_graph_requests_total", { op: "Demote" }), 1)
    assert.strictEqual(delta(samples, "tessera_graph_requests_total", { op: "Graph.BatchGet" }), 2)
    assert.strictEqual(delta(samples, "tessera_graph_requests_total", { op: "GetMany" }), 2)
    assert.strictEqual(delta(samples, "tessera_graph_hot_hits_total", { path: "gateway" }), 2)
    assert.strictEqual(delta(samples, "tessera_graph_hot_misses_total", { path: "gateway" }), 2)
    // The entity served puts, the get and the first GetMany hot; the last GetMany found the partition cold.
    assert.strictEqual(delta(samples, "tessera_graph_hot_hits_total", { path: "entity" }), 8)
    assert.strictEqual(delta(samples, "tessera_graph_hot_misses_total", { path: "entity" }), 1)
    assert.strictEqual(delta(samples, "tessera_graph_demotions_total"), 1)
    assert.strictEqual(delta(samples, "tessera_graph_promotions_total"), 1)
    assert.strictEqual(delta(samples, "tessera_graph_demotion_seconds_count"), 1)
    assert.strictEqual(delta(samples, "tessera_graph_promotion_seconds_count"), 1)
    assert.isTrue(delta(samples, "tessera_graph_promotion_seconds_sum") > 0)
    assert.strictEqual(value(samples, "tessera_graph_partition_hot", { partition: String(partition) }), 1)
    assert.isAtLeast(value(samples, "tessera_graph_partition_temperature", { partition: String(partition) }), 0)
  }, 120_000)
})
