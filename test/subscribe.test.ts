// Market-data subscriptions through a runner's gateway (real Postgres, real Redis, a real runner process):
// delivery in order, resume without hole or repeat (explicit `from` and the client's own reconnect), slow consumers
// cut off with bounded memory, one read loop per stream key, typed refusals, `tessera md tail`, Redis Cluster.
import { randomBytes } from "node:crypto"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { TesseraClient } from "@tessera/client"
import { Contract, type MarketData } from "@tessera/contracts"
import { Effect, Exit, Fiber, Stream } from "effect"
import { Cluster, Redis } from "ioredis"
import { WebSocket } from "ws"
import { SymbolShardContract } from "../actors/symbol-shard/protocol.ts"
import {
  freshDatabase,
  pausableProxy,
  type RunnerProcess,
  redisUrl,
  rpcRequest,
  runCli,
  startProcess
} from "./harness.ts"
import { parse, value } from "./promText.ts"
import { startRedisCluster } from "./redisCluster.ts"

// Symbols of this run's own (added through the gateway): other runs of this file, in other checkouts, share the Redis.
const run = randomBytes(3).toString("hex").toUpperCase()
const S = {
  orders: `SA${run}-USDT`,
  resume: `SB${run}-USDT`,
  slow: `SC${run}-USDT`,
  many: `SD${run}-USDT`,
  tail: `SE${run}-USDT`
}

let database: ReturnType<typeof freshDatabase>
let runner: RunnerProcess
let redis: Redis

beforeAll(async () => {
  redis = new Redis(redisUrl)
  database = freshDatabase("subscribe")
  runner = await startProcess("subscribe", { env: { DATABASE_URL: database.url, REDIS_URL: redisUrl } })
  const api = Contract.api(SymbolShardContract)
  await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const client = yield* TesseraClient.make(api, { url: runner.url })
        for (const symbol of Object.values(S)) {
          yield* client["Symbols.Add"]({ symbol, tick: "0.01", lot: "0.0001", minQty: "0.0001", maxQty: "1000" })
        }
      })
    )
  )
}, 120_000)

afterAll(async () => {
  runner?.child.kill("SIGKILL")
  await runner?.exited
  database?.drop()
  await redis?.del(...Object.values(S).flatMap((symbol) => [`md:${symbol}:trades`, `md:${symbol}:depth`]))
  redis?.disconnect()
})

const metric = async (url: string, name: string) => {
  const text = await (await fetch(`${url}/metrics`)).text()
  return value(parse(text), name)
}

/** Polls until `check` holds (a readiness wait, not a timed assertion: the test fails only on what it checks). */
const until = async (what: string, check: () => Promise<boolean> | boolean, limitMs = 30_000) => {
  const deadline = Date.now() + limitMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

const publish = async (client: Redis | Cluster, key: string, from: number, to: number) => {
  const pipeline = client.pipeline()
  for (let n = from; n <= to; n++) pipeline.xadd(key, `${n}-0`, "n", String(n), "ts", String(Date.now()))
  await pipeline.exec()
}

/** Runs `client.subscribe` in the background, collecting its events. */
const collect = (url: string, request: MarketData.SubscribeRequest) => {
  const events: Array<MarketData.Event> = []
  const fiber = Effect.runFork(
    TesseraClient.subscribe({ url }, request).pipe(
      Stream.runForEach((event) => Effect.sync(() => events.push(event))),
      Effect.exit
    )
  )
  return {
    events,
    exit: () => Effect.runPromise(Fiber.join(fiber)),
    stop: () => Effect.runPromise(Fiber.interrupt(fiber))
  }
}

const subscriptionsOpen = (url: string, n: number) => async () => (await metric(url, "tessera_md_subscriptions")) === n

describe("MarketData.Subscribe through a runner's gateway", () => {
  it("delivers the trades and depth of orders placed through the gateway, in order", async () => {
    const sub = collect(runner.url, { symbols: [S.orders] })
    await until("the subscription", subscriptionsOpen(runner.url, 1))
    const api = Contract.api(SymbolShardContract)
    await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const client = yield* TesseraClient.make(api, { url: runner.url })
          const place = (clientOrderId: string, side: "buy" | "sell", qty: string) =>
            client["SymbolShard.Place"]({
              entityId: S.orders,
              payload: { account: "a1", clientOrderId, side, type: "limit", price: "100.00", qty }
            })
          yield* place("s1", "sell", "3")
          for (let i = 1; i <= 3; i++) yield* place(`b${i}`, "buy", "1")
        })
      )
    )
    await until("three trades", () => sub.events.filter((e) => e.kind === "trade").length >= 3)
    const trades = sub.events.filter((e) => e.kind === "trade")
    assert.deepStrictEqual(
      trades.map((e) => [e.stream, e.source, e.fields.price, e.fields.qty]),
      Array.from({ length: 3 }, () => [`md:${S.orders}:trades`, S.orders, "100.00", "1.0000"])
    )
    const tradeIds = trades.map((e) => Number(e.id.split("-")[0]))
    assert.deepStrictEqual(tradeIds, [tradeIds[0], tradeIds[0] + 1, tradeIds[0] + 2])
    await until("the depth after the last trade", () =>
      sub.events.some((e) => e.kind === "depth" && e.fields.asks === "[]")
    )
    // Nothing the client sees twice.
    const ids = sub.events.map((e) => `${e.stream}/${e.id}`)
    assert.strictEqual(new Set(ids).size, ids.length)
    await sub.stop()
    await until("the subscription to close", subscriptionsOpen(runner.url, 0))
  }, 60_000)

  it("resumes from an id with no hole and no repeat, and the client does so itself after a dropped connection", async () => {
    const key = `md:${S.resume}:trades`
    await publish(redis, key, 1, 5)
    // Explicit resume: after 3-0, the entries 4 and 5 it missed, then live ones.
    const resumed = collect(runner.url, { symbols: [S.resume], from: { [key]: "3-0" } })
    await until("the catch-up", () => resumed.events.length >= 2)
    await publish(redis, key, 6, 7)
    await until("live entries", () => resumed.events.length >= 4)
    assert.deepStrictEqual(
      resumed.events.map((e) => e.id),
      ["4-0", "5-0", "6-0", "7-0"]
    )
    await resumed.stop()

    // The client's own reconnect: through a proxy whose connections are cut while entries are published.
    const port = Number(new URL(runner.url).port)
    const proxy = await pausableProxy({ host: "127.0.0.1", port })
    try {
      const viaProxy = collect(`http://127.0.0.1:${proxy.port}`, { symbols: [S.resume] })
      await until("the subscription", subscriptionsOpen(runner.url, 1))
      await publish(redis, key, 8, 10)
      await until("8..10", () => viaProxy.events.length >= 3)
      proxy.cut()
      await publish(redis, key, 11, 20)
      await until("11..20 after the reconnect", () => viaProxy.events.length >= 13)
      proxy.cut()
      await publish(redis, key, 21, 22)
      await until("21..22 after a second reconnect", () => viaProxy.events.length >= 15)
      assert.deepStrictEqual(
        viaProxy.events.map((e) => e.id),
        Array.from({ length: 15 }, (_, i) => `${i + 8}-0`)
      )
      await viaProxy.stop()
    } finally {
      await proxy.close()
    }
    await until("the subscriptions to close", subscriptionsOpen(runner.url, 0))
  }, 60_000)

  it("cuts off a subscriber that stops reading with SlowConsumer; the runner buffers nothing more for it", async () => {
    const key = `md:${S.slow}:trades`
    const socket = new WebSocket(`${runner.url.replace("http", "ws")}/rpc`)
    const messages: Array<any> = []
    socket.on("message", (data) => {
      for (const line of String(data).split("\n")) if (line.length > 0) messages.push(JSON.parse(line))
    })
    await new Promise((resolve, reject) => socket.once("open", resolve).once("error", reject))
    try {
      // A client that never acknowledges a chunk: the server sends one and waits, its buffer fills.
      socket.send(rpcRequest("1", "MarketData.Subscribe", { symbols: [S.slow] }))
      await until("the first chunk", () => messages.some((m) => m._tag === "Chunk"))
      const slowBefore = await metric(runner.url, "tessera_md_slow_consumers_total")
      await publish(redis, key, 1, 10_000)
      await until("the cut-off", async () => (await metric(runner.url, "tessera_md_slow_consumers_total")) > slowBefore)
      // Dropped from the stream's read loop (its only subscriber: the loop stopped) and its buffer released; the
      // RPC stays open until the client reads its error.
      await until("the loop to stop", async () => (await metric(runner.url, "tessera_md_read_loops")) === 0)
      assert.strictEqual(await metric(runner.url, "tessera_md_buffered_events"), 0)
      // More entries find no subscriber to buffer them for.
      await publish(redis, key, 10_001, 20_000)
      await until("the entries read", async () => (await redis.xlen(key)) === 20_000)
      assert.strictEqual(await metric(runner.url, "tessera_md_buffered_events"), 0)
      // Once it reads again it gets the typed error (after the one chunk it had not acknowledged).
      socket.send(`${JSON.stringify({ _tag: "Ack", requestId: "1" })}\n`)
      await until("the exit", () => messages.some((m) => m._tag === "Exit"))
      const exit = messages.find((m) => m._tag === "Exit")
      assert.strictEqual(exit.exit._tag, "Failure")
      assert.strictEqual(exit.exit.cause[0].error._tag, "SlowConsumer")
      await until("the subscription to close", subscriptionsOpen(runner.url, 0))
    } finally {
      socket.close()
    }
  }, 60_000)

  it("many subscribers to one symbol cost one read loop per stream key on the runner", async () => {
    const loopsBefore = await metric(runner.url, "tessera_md_read_loops_started_total")
    const subs = Array.from({ length: 60 }, () => collect(runner.url, { symbols: [S.many] }))
    await until("60 subscriptions", subscriptionsOpen(runner.url, 60))
    assert.strictEqual(await metric(runner.url, "tessera_md_read_loops"), 2)
    assert.strictEqual((await metric(runner.url, "tessera_md_read_loops_started_total")) - loopsBefore, 2)
    await publish(redis, `md:${S.many}:trades`, 1, 3)
    await until("every subscriber's entries", () => subs.every((s) => s.events.length >= 3))
    for (const s of subs) {
      assert.deepStrictEqual(
        s.events.map((e) => e.id),
        ["1-0", "2-0", "3-0"]
      )
    }
    await Promise.all(subs.map((s) => s.stop()))
    await until("the loops to stop", async () => (await metric(runner.url, "tessera_md_read_loops")) === 0)
  }, 60_000)

  it("refuses unknown or malformed symbols and markets with typed errors, without retrying", async () => {
    const failure = async (request: MarketData.SubscribeRequest) => {
      const exit = await collect(runner.url, request).exit()
      assert.isTrue(Exit.isFailure(exit))
      return Exit.isFailure(exit) ? (exit.cause.reasons[0] as any).error : undefined
    }
    const unknown = await failure({ symbols: ["NOPE-USDT"] })
    assert.strictEqual(unknown._tag, "UnknownSymbol")
    assert.strictEqual(unknown.symbol, "NOPE-USDT")
    assert.strictEqual((await failure({ symbols: ["not a symbol"] }))._tag, "UnknownSymbol")
    assert.strictEqual((await failure({ markets: ["m999999"] }))._tag, "UnknownMarket")
    assert.strictEqual((await failure({}))._tag, "InvalidSubscription")
    assert.strictEqual(await metric(runner.url, "tessera_md_read_loops"), 0)
  }, 60_000)

  it("tessera md tail follows a symbol through the gateway", async () => {
    const tail = runCli(["md", "tail", "--symbol", S.tail, "--url", runner.url, "--count", "2"])
    await until("the subscription", subscriptionsOpen(runner.url, 1))
    await publish(redis, `md:${S.tail}:trades`, 1, 2)
    const { code, out, err } = await tail
    assert.strictEqual(code, 0, err)
    const lines = out
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line))
    assert.deepStrictEqual(
      lines.map((l) => [l.stream, l.id, l.kind, l.source, l.n]),
      [
        [`md:${S.tail}:trades`, "1-0", "trade", S.tail, "1"],
        [`md:${S.tail}:trades`, "2-0", "trade", S.tail, "2"]
      ]
    )
  }, 60_000)
})

describe("MarketData.Subscribe on a Redis Cluster", () => {
  it("reads streams of several slots and resumes, per key", async () => {
    const redisCluster = await startRedisCluster()
    const db = freshDatabase("subscribe_cluster")
    const cluster = new Cluster([redisCluster.url])
    let node: RunnerProcess | undefined
    try {
      node = await startProcess("subscribe-cluster", {
        env: { DATABASE_URL: db.url, REDIS_URL: redisCluster.url, REDIS_CLUSTER: "true" }
      })
      const keys = ["md:BTC-USDT:trades", "md:LTC-USDT:trades", "md:BNB-USDT:depth"]
      const sub = collect(node.url, { symbols: ["BTC-USDT", "LTC-USDT", "BNB-USDT"] })
      await until("the subscription", subscriptionsOpen(node.url, 1))
      for (const key of keys) await publish(cluster, key, 1, 2)
      await until("six entries", () => sub.events.length >= 6)
      await sub.stop()
      for (const key of keys) await publish(cluster, key, 3, 4)
      const resumed = collect(node.url, {
        symbols: ["BTC-USDT", "LTC-USDT", "BNB-USDT"],
        from: Object.fromEntries(keys.map((key) => [key, "2-0"]))
      })
      await until("the catch-up", () => resumed.events.length >= 6)
      await resumed.stop()
      for (const key of keys) {
        assert.deepStrictEqual(
          [...sub.events, ...resumed.events].filter((e) => e.stream === key).map((e) => e.id),
          ["1-0", "2-0", "3-0", "4-0"]
        )
      }
    } finally {
      node?.child.kill("SIGKILL")
      await node?.exited
      cluster.disconnect()
      db.drop()
      await redisCluster.stop()
    }
  }, 120_000)
})
