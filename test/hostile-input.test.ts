// Hostile input at the edge. Pure: the protocol schemas against arbitrary strings and JSON (the id and key grammar,
// the place key without collisions). Then one runner process on real Postgres, fuzzed over POST /rpc and over
// WebSocket: every reply is a valid result, a typed error or the payload's schema refusal, a NUL-bearing key is
// refused while the symbol keeps acknowledging, an oversized frame closes its socket with 1009, a client trickling
// its headers is cut off, and the runner keeps serving throughout.
import { connect } from "node:net"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Cause, Exit, Schema } from "effect"
import fc from "fast-check"
import WebSocket from "ws"
import { SeedApi } from "../actors/api.ts"
import { Ingest } from "../actors/gatherer/protocol.ts"
import { Where } from "../actors/probe/protocol.ts"
import { AddEdge, PutVertex } from "../actors/proxy-partition/protocol.ts"
import { PlaceOrder } from "../actors/symbol-shard/protocol.ts"
import { placeKey } from "../actors/symbol-shard/ShardCore.ts"
import { type Cluster, rawRpc, rpcRequest, startCluster } from "./harness.ts"

const maxBodyBytes = 64 * 1024

/** Strings built from code units that stress the grammar, among ordinary ones. */
const hostileString = fc.string({
  unit: fc.oneof(
    fc.integer({ min: 0, max: 0x1f }).map((c) => String.fromCharCode(c)),
    fc.constantFrom("\u007f", "\u0085", "\ud800", "\udfff", "😀", "é"),
    fc.constantFrom("a", "b", "7", "-", ":", "|", " "),
    fc.integer({ min: 0x20, max: 0xffff }).map((c) => String.fromCharCode(c))
  ),
  maxLength: 70
})
const isControl = (char: string) => {
  const code = char.charCodeAt(0)
  return code < 0x20 || (code >= 0x7f && code <= 0x9f)
}
/** The grammar, written independently of `Ids.problem`. */
const inGrammar = (text: string, min: number, max: number) =>
  text.length >= min && text.length <= max && ![...text].some(isControl) && text.isWellFormed()
const decodes = (schema: Schema.Top, value: unknown) =>
  Exit.isSuccess(Schema.decodeUnknownExit(schema as Schema.Codec<unknown, unknown>)(value))

const order = (account: string, clientOrderId: string) => ({
  account,
  clientOrderId,
  side: "buy",
  price: "100",
  qty: "1"
})

describe("protocol schemas against hostile strings (pure)", () => {
  it("refuse ids and keys outside the grammar in every protocol, and accept the rest", () => {
    fc.assert(
      fc.property(hostileString, hostileString, (a, b) => {
        const keys = inGrammar(a, 1, 64) && inGrammar(b, 1, 64)
        assert.strictEqual(decodes(PlaceOrder, order(a, b)), keys, JSON.stringify([a, b]))
        const ids = inGrammar(a, 1, 256) && inGrammar(b, 1, 256)
        assert.strictEqual(decodes(AddEdge.payloadSchema, { src: a, label: "knows", dst: b }), ids)
        assert.strictEqual(decodes(AddEdge.payloadSchema, { src: "u", label: a, dst: "v" }), inGrammar(a, 1, 64))
        assert.strictEqual(decodes(PutVertex.payloadSchema, { id: "u", properties: { [a]: 1, [b]: "x" } }), keys)
        const batch = { market: [a, b], seq: [1, 2], ts: [0, 0], side: [0, 1], price: [1, 1], qty: [1, 1] }
        assert.strictEqual(decodes(Ingest.payloadSchema, { batch }), ids)
        assert.strictEqual(decodes(Where.payloadSchema, { note: a }), inGrammar(a, 0, 256))
      }),
      { numRuns: 3000 }
    )
  })

  it("compose place keys without collisions: two decoded (account, clientOrderId) pairs share a key only if equal", () => {
    // A small alphabet with U+0000, the place key's separator, so that colliding pairs come up often.
    const part = fc.string({ unit: fc.constantFrom("a", "b", "\u0000"), minLength: 1, maxLength: 4 })
    fc.assert(
      fc.property(part, part, part, part, (a1, c1, a2, c2) => {
        const decode = Schema.decodeUnknownExit(PlaceOrder)
        const first = decode(order(a1, c1))
        const second = decode(order(a2, c2))
        if (Exit.isFailure(first) || Exit.isFailure(second)) return
        const same =
          first.value.account === second.value.account && first.value.clientOrderId === second.value.clientOrderId
        assert.strictEqual(placeKey(first.value.account, first.value.clientOrderId) === placeKey(a2, c2), same)
      }),
      { numRuns: 3000 }
    )
  })

  it("answer arbitrary JSON with a decoded value or a schema error for every RPC, never a defect", () => {
    const schemas = [...SeedApi.requests.values()].map((rpc) => Schema.decodeUnknownExit(rpc.payloadSchema as never))
    fc.assert(
      fc.property(fc.jsonValue(), fc.nat(schemas.length - 1), (payload, i) => {
        const exit = schemas[i](payload) as Exit.Exit<unknown, unknown>
        assert.isFalse(Exit.isFailure(exit) && Cause.hasDies(exit.cause))
      }),
      { numRuns: 3000 }
    )
  })
})

// ---- a running runner ----------------------------------------------------------------------------------------

let cluster: Cluster
let url: string

beforeAll(async () => {
  cluster = await startCluster(1, {
    label: "hostile",
    env: { TESSERA_MAX_BODY_BYTES: String(maxBodyBytes), TESSERA_HTTP_HEADERS_TIMEOUT: "1 second" }
  })
  url = cluster.runners[0].url
}, 90_000)
afterAll(() => cluster?.stop())

/** A valid entity id per entity type, so that some fuzzed payloads get past the id guard. */
const entityIdOf: Record<string, string> = {
  SymbolShard: "BTC-USDT",
  ProxyPartition: "7",
  Gatherer: "0/0",
  Deduplicator: "d0",
  Probe: "fuzz"
}
// Gather.SetReplicas with a valid payload would resize the fleet: not something to fuzz into a shared runner.
const tags = [...SeedApi.requests.keys()].filter((tag) => tag !== "Gather.SetReplicas")

const hostileJson = fc.oneof(fc.jsonValue(), hostileString)
const fuzzRequest = fc.record({
  tag: fc.oneof(fc.constantFrom(...tags), hostileString),
  payload: fc.oneof(
    hostileJson,
    fc.record({
      entityId: fc.oneof(fc.constantFrom(...Object.values(entityIdOf)), hostileString),
      payload: fc.oneof(
        hostileJson,
        fc.record({
          account: hostileString,
          clientOrderId: hostileString,
          side: fc.constant("buy"),
          qty: fc.constant("1")
        }),
        fc.dictionary(hostileString, hostileJson, { maxKeys: 4 })
      )
    })
  )
})

/** What a reply may be: a result, a typed error, or the payload's schema refusal (the RPC server's Die with the issue). */
const checkReply = (line: any, context: string) => {
  assert.strictEqual(line?._tag, "Exit", `${context}: ${JSON.stringify(line).slice(0, 400)}`)
  const exit = line.exit
  if (exit._tag === "Success") return "success"
  const reason = exit.cause?.[0]
  if (reason?._tag === "Fail") {
    assert.isString(reason.error?._tag, `${context}: untyped error ${JSON.stringify(line).slice(0, 400)}`)
    return "typed"
  }
  assert.strictEqual(reason?._tag, "Die", `${context}: ${JSON.stringify(line).slice(0, 400)}`)
  assert.isString(
    reason.defect,
    `${context}: a defect that is not a schema issue: ${JSON.stringify(line).slice(0, 400)}`
  )
  assert.match(reason.defect, /^(Expected |Missing key|Unexpected key|has |is )|\n {2}at \[/, context)
  return "refused"
}

const stillServes = async () => {
  assert.strictEqual((await fetch(`${url}/health`)).status, 200)
  const { lines } = await rawRpc(url, rpcRequest("alive", "Probe.Where", { entityId: "alive", payload: {} }))
  assert.strictEqual(lines[0]?.exit?._tag, "Success", JSON.stringify(lines[0]))
  assert.strictEqual(cluster.runners[0].child.exitCode, null, "the runner is still running")
}

const wsUrl = () => `${url.replace(/^http/, "ws")}/rpc`
const openSocket = async () => {
  const socket = new WebSocket(wsUrl())
  await new Promise((resolve, reject) => {
    socket.once("open", resolve)
    socket.once("error", reject)
  })
  return socket
}

describe("hostile input against a running runner (real Postgres)", () => {
  it("answers fuzzed ndjson over POST /rpc with results, typed errors or schema refusals, and keeps serving", async () => {
    const requests = fc.sample(fuzzRequest, { numRuns: 400, seed: 16 })
    const kinds: Record<string, number> = {}
    for (let start = 0; start < requests.length; start += 50) {
      const batch = requests.slice(start, start + 50)
      const body = batch.map((r, i) => rpcRequest(String(start + i), r.tag, r.payload)).join("")
      const reply = await rawRpc(url, body)
      assert.strictEqual(reply.status, 200, reply.text.slice(0, 300))
      const answered = new Set<string>()
      for (const line of reply.lines) {
        const sent = requests[Number(line.requestId)]
        const kind = checkReply(line, JSON.stringify(sent).slice(0, 200))
        kinds[kind] = (kinds[kind] ?? 0) + 1
        answered.add(line.requestId)
      }
      assert.strictEqual(answered.size, batch.length, "every request is answered")
    }
    assert.isAbove(kinds.refused ?? 0, 0)
    assert.isAbove(kinds.typed ?? 0, 0)
    await stillServes()
  }, 120_000)

  it("answers a body of thousands of tiny malformed lines and a valid request in it", async () => {
    // Replies that come at once filled the RPC server's 16-reply buffer before the response started: a deadlock.
    const body = `${"0\n".repeat(5000)}${rpcRequest("1", "Probe.Where", { entityId: 1, payload: {} }).repeat(100)}${rpcRequest("ok", "Probe.Where", { entityId: "tiny", payload: {} })}`
    const reply = await rawRpc(url, body)
    assert.strictEqual(reply.status, 200)
    assert.strictEqual(reply.lines.filter((line: any) => line._tag === "Defect").length, 5000)
    const ok = reply.lines.find((line: any) => line.requestId === "ok")
    assert.strictEqual(checkReply(ok, "ok"), "success")
    await stillServes()
  }, 30_000)

  it("refuses a NUL in an account or client order id, and the symbol keeps acknowledging", async () => {
    const nul = [
      rpcRequest("1", "SymbolShard.Place", { entityId: "BTC-USDT", payload: order("acct\u0000", "c1") }),
      rpcRequest("2", "SymbolShard.Place", { entityId: "BTC-USDT", payload: order("acct", "\u0000c1") }),
      rpcRequest("3", "Orders.PlaceMany", {
        batches: [{ symbol: "BTC-USDT", orders: [order("acct", "c2"), order("a\u0000cct", "c2")] }]
      })
    ].join("")
    const refused = await rawRpc(url, nul)
    assert.strictEqual(refused.lines.length, 3, refused.text)
    for (const line of refused.lines) {
      assert.strictEqual(checkReply(line, "NUL key"), "refused", JSON.stringify(line))
      assert.include(line.exit.cause[0].defect, "U+0000")
    }
    // Nothing of the refused PlaceMany was placed: its valid order is placed now, for the first time.
    const placed = await rawRpc(
      url,
      rpcRequest("4", "SymbolShard.Place", { entityId: "BTC-USDT", payload: order("acct", "c2") })
    )
    assert.strictEqual(placed.lines[0]?.exit?._tag, "Success", placed.text)
    assert.deepStrictEqual(placed.lines[0].exit.value.trades, [])
    const again = await rawRpc(
      url,
      rpcRequest("5", "SymbolShard.GetOrder", {
        entityId: "BTC-USDT",
        payload: { orderId: placed.lines[0].exit.value.orderId }
      })
    )
    assert.strictEqual(again.lines[0]?.exit?.value?.account, "acct", again.text)
    await stillServes()
  })

  it("answers fuzzed frames over one WebSocket, and the socket and runner keep serving", async () => {
    const socket = await openSocket()
    const replies = new Map<string, unknown>()
    let defects = 0
    socket.on("message", (data) => {
      for (const text of String(data).split("\n")) {
        if (text.length === 0) continue
        const message = JSON.parse(text)
        if (message._tag === "Exit") replies.set(message.requestId, message)
        else if (message._tag === "Defect") defects++
      }
    })
    const requests = fc.sample(fuzzRequest, { numRuns: 150, seed: 1016 })
    const garbage = fc.sample(
      fc.oneof(
        fc.jsonValue().map((v) => JSON.stringify(v)),
        hostileString
      ),
      {
        numRuns: 20,
        seed: 2016
      }
    )
    requests.forEach((r, i) => {
      socket.send(rpcRequest(String(i), r.tag, r.payload))
      // A garbage frame is a whole line of its own: a partial line would join the next frame under ndjson framing.
      if (i < garbage.length) socket.send(`${garbage[i].replaceAll("\n", " ")}\n`)
    })
    socket.send(rpcRequest("last", "Probe.Where", { entityId: "ws-alive", payload: {} }))
    const deadline = Date.now() + 30_000
    while (!replies.has("last") || replies.size < requests.length + 1) {
      assert.isBelow(Date.now(), deadline, `answered ${replies.size} of ${requests.length + 1}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    requests.forEach((r, i) => {
      checkReply(replies.get(String(i)), JSON.stringify(r).slice(0, 200))
    })
    assert.strictEqual(checkReply(replies.get("last"), "last"), "success")
    assert.isAbove(defects, 0, "garbage lines are answered with a Defect, not silence")
    assert.strictEqual(socket.readyState, WebSocket.OPEN)
    socket.close()
    await stillServes()
  }, 60_000)

  it("closes a WebSocket whose frame exceeds the body limit with 1009, and keeps serving", async () => {
    const socket = await openSocket()
    const closed = new Promise<number>((resolve) => socket.once("close", (code) => resolve(code)))
    socket.send(rpcRequest("big", "Probe.Where", { entityId: "big", payload: { note: "x".repeat(maxBodyBytes) } }))
    assert.strictEqual(await closed, 1009)
    const fresh = await openSocket()
    const reply = new Promise<string>((resolve) => fresh.once("message", (data) => resolve(String(data))))
    fresh.send(rpcRequest("1", "Probe.Where", { entityId: "after-big", payload: {} }))
    assert.strictEqual(checkReply(JSON.parse(await reply), "after a big frame"), "success")
    fresh.close()
    await stillServes()
  })

  it("cuts off a client that trickles its request headers (TESSERA_HTTP_HEADERS_TIMEOUT 1 s)", async () => {
    const { hostname, port } = new URL(url)
    const socket = connect(Number(port), hostname)
    let received = ""
    socket.on("data", (chunk) => {
      received += chunk
    })
    const started = Date.now()
    const closed = new Promise<number>((resolve) => socket.once("close", () => resolve(Date.now() - started)))
    socket.write("GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    // One header byte every 100 ms: the connection is never idle, but the headers never end.
    const trickle = setInterval(() => socket.write("a"), 100)
    const outcome = await Promise.race([
      closed,
      new Promise<string>((resolve) => setTimeout(() => resolve("open"), 6000))
    ])
    clearInterval(trickle)
    socket.destroy()
    assert.isNumber(outcome, "the slow client was not disconnected within 6 s")
    assert.isAtMost(outcome as number, 4000)
    assert.match(received, /^HTTP\/1\.1 408/)
    await stillServes()
  }, 15_000)
})
