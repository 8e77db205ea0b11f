import { Redis } from "ioredis"
import { afterAll, afterEach, describe, expect, it, vi } from "vitest"
import { WebSocketServer } from "ws"
import { partitionKeys } from "../actors/proxy-partition/core.ts"
import { redisUrl } from "../test/harness.ts"
import {
  type DirectRedis,
  directTransport,
  interleave,
  type Mix,
  makeStats,
  openLoop,
  rawTransport,
  startEcho,
  summarize,
  type Transport
} from "./proxyLoad.ts"

const mix = (roll: number): Mix => ({
  batchGetShare: 0.45,
  neighborsShare: 0.45,
  random: () => roll,
  pick: () => "v1",
  entityOf: () => "0",
  batch: 2
})

/** One request over `transport`: its success value, or its failure reason. */
const call = (transport: Transport, tag: string, payload: unknown) =>
  new Promise<{ ok: boolean; value: unknown }>((resolve) =>
    transport.call(
      tag,
      payload,
      (value) => resolve({ ok: true, value }),
      (reason) => resolve({ ok: false, value: reason })
    )
  )

describe("openLoop", () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it("sends request n at n / rate (not one interval late), and times it from there", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] })
    const sentAt: Array<number> = []
    const transport: Transport = {
      call: (_tag, _payload, onSuccess) => {
        sentAt.push(performance.now())
        // Answered 3 ms after it was sent.
        setTimeout(() => onSuccess([1, 2]), 3)
      },
      close: () => {}
    }
    const stats = makeStats()
    const start = performance.now()
    const done = openLoop([transport], mix(0.1), 100, 0.1, () => stats)
    await vi.advanceTimersByTimeAsync(200)
    expect(await done).toEqual({ outstanding: 0 })
    expect(sentAt).toHaveLength(10)
    // 100/s: request n is due 10n ms after the start; the 1 ms tick sends it within a millisecond.
    sentAt.forEach((at, n) => {
      expect(at - start - 10 * n).toBeGreaterThanOrEqual(0)
      expect(at - start - 10 * n).toBeLessThanOrEqual(1)
    })
    const summary = summarize(stats, 0.1)
    expect(stats.samples).toBe(10)
    expect(stats.reads).toBe(20) // BatchGet of 2 ids each
    expect(summary.p99).toBeGreaterThanOrEqual(3)
    expect(summary.p99).toBeLessThanOrEqual(4)
  })

  it("a request still unanswered after the drain time is reported, not waited for", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] })
    let calls = 0
    const transport: Transport = {
      call: (_tag, _payload, onSuccess) => {
        // The third request is never answered.
        if (calls++ !== 2) setTimeout(() => onSuccess(null), 1)
      },
      close: () => {}
    }
    const stats = makeStats()
    const done = openLoop([transport], mix(0.5), 100, 0.05, () => stats, 2)
    await vi.advanceTimersByTimeAsync(3000)
    expect(await done).toEqual({ outstanding: 1 })
    expect(stats.samples).toBe(4)
  })
})

describe("interleave", () => {
  it("runs one slice per side a round, the order rotated each round, one slice at a time", async () => {
    const order: Array<string> = []
    let running = 0
    await interleave(3, 3, async (side, round) => {
      running++
      expect(running).toBe(1)
      await new Promise((resolve) => setTimeout(resolve, 1))
      order.push(`${round}:${side}`)
      running--
    })
    expect(order).toEqual(["0:0", "0:1", "0:2", "1:1", "1:2", "1:0", "2:2", "2:0", "2:1"])
  })
})

describe("rawTransport", () => {
  const servers: Array<WebSocketServer> = []
  afterAll(() => {
    for (const server of servers) server.close()
  })

  /** A server that answers each request with `reply(request)` lines, split and joined across frames as given. */
  const serve = async (
    answer: (requests: Array<{ id: string; tag: string }>, send: (text: string) => void) => void
  ) => {
    const server = new WebSocketServer({ port: 0, host: "127.0.0.1" })
    servers.push(server)
    await new Promise<void>((resolve) => server.once("listening", () => resolve()))
    const received: Array<{ id: string; tag: string }> = []
    server.on("connection", (socket) => {
      socket.on("message", (data) => {
        for (const line of data.toString().split("\n")) if (line.length > 0) received.push(JSON.parse(line))
        answer(received, (text) => socket.send(text))
      })
    })
    const address = server.address() as { port: number }
    return { url: `ws://127.0.0.1:${address.port}`, received, server }
  }

  it("matches answers to requests across joined and split frames; a failure exit fails its request only", async () => {
    const { url, received } = await serve((requests, send) => {
      if (requests.length < 3) return
      const [a, b, c] = requests
      const exit = (id: string, exit: unknown) => JSON.stringify({ _tag: "Exit", requestId: id, exit })
      // c and a in one frame, b split over two frames.
      send(`${exit(c.id, { _tag: "Success", value: "C" })}\n${exit(a.id, { _tag: "Success", value: ["A"] })}\n`)
      const bLine = `${exit(b.id, { _tag: "Failure", cause: [{ _tag: "Fail", error: { _tag: "TooManyIds" } }] })}\n`
      send(bLine.slice(0, 20))
      send(bLine.slice(20))
    })
    const transport = await rawTransport(url)
    const answers = Promise.all([
      call(transport, "Graph.BatchGet", { ids: ["x"] }),
      call(transport, "Graph.Neighbors", { id: "y" }),
      call(transport, "Graph.KHop", { id: "z", k: 1 })
    ])
    expect(await answers).toEqual([
      { ok: true, value: ["A"] },
      { ok: false, value: JSON.stringify([{ _tag: "Fail", error: { _tag: "TooManyIds" } }]) },
      { ok: true, value: "C" }
    ])
    expect(received.map((r) => r.tag)).toEqual(["Graph.BatchGet", "Graph.Neighbors", "Graph.KHop"])
    expect(new Set(received.map((r) => r.id)).size).toBe(3)
    transport.close()
  })

  it("a closed socket fails what is in flight, and what is sent after", async () => {
    const { url, server } = await serve(() => {
      for (const client of server.clients) client.terminate()
    })
    const transport = await rawTransport(url)
    expect(await call(transport, "Graph.Neighbors", { id: "y" })).toEqual({ ok: false, value: "socket closed" })
    expect(await call(transport, "Graph.Neighbors", { id: "y" })).toEqual({ ok: false, value: "socket closed" })
  })

  it("refuses to start against a port with no server", async () => {
    const { server, url } = await serve(() => {})
    await new Promise<void>((resolve) => server.close(() => resolve()))
    await expect(rawTransport(url)).rejects.toThrow(/cannot open a WebSocket/)
  })
})

describe("directTransport (real Redis)", () => {
  const prefix = `tessera-test:proxyload:${process.pid}:${Date.now()}`
  const redis = new Redis(redisUrl)
  afterAll(async () => {
    const keys = await redis.keys(`${prefix}:*`)
    if (keys.length > 0) await redis.del(...keys)
    redis.disconnect()
  })

  it("sends the gateway's commands: MGET for BatchGet, GET + SMEMBERS for Neighbors, SET + SADD for PutVertex", async () => {
    const keys = partitionKeys(prefix, 3)
    const transport = directTransport(redis as unknown as DirectRedis, () => keys)
    const send = (tag: string, payload: unknown) =>
      new Promise<unknown>((resolve, reject) => transport.call(tag, payload, resolve, reject))
    await send("ProxyPartition.PutVertex", { entityId: "3", payload: { id: "a", properties: { n: 1 } } })
    expect(await redis.get(keys.vertex("a"))).toBe('{"n":1}')
    expect(await redis.smembers(keys.ids)).toEqual(["a"])
    await redis.sadd(keys.out("a"), "follows:b")
    expect(await send("Graph.BatchGet", { ids: ["a", "missing"] })).toEqual([{ n: 1 }, null])
    expect(await send("Graph.Neighbors", { id: "a" })).toEqual([
      [null, '{"n":1}'],
      [null, ["follows:b"]]
    ])
    await expect(send("Graph.KHop", { id: "a", k: 1 })).rejects.toMatch(/no Graph.KHop/)
  })
})

describe("the echo server (bench/echoServer.ts)", () => {
  it("answers the mix's RPCs over the gateway's wire protocol, and a request it does not know with a failure", async () => {
    const echo = await startEcho()
    try {
      const transport = await rawTransport(`ws://127.0.0.1:${echo.port}/rpc`)
      expect(await call(transport, "Graph.BatchGet", { ids: ["a", "b"] })).toEqual({
        ok: true,
        value: [
          { n: 0, name: "a", score: 7 },
          { n: 1, name: "b", score: 7 }
        ]
      })
      expect((await call(transport, "Graph.Neighbors", { id: "a" })).value).toHaveLength(2)
      expect(
        await call(transport, "ProxyPartition.PutVertex", { entityId: "3", payload: { id: "a", properties: {} } })
      ).toEqual({
        ok: true,
        value: { created: false }
      })
      const unknown = await call(transport, "Graph.KHop", { id: "a", k: 1 })
      expect(unknown.ok).toBe(false)
      transport.close()
    } finally {
      echo.child.kill("SIGKILL")
    }
  })
})
