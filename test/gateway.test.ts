import { get as httpGet } from "node:http"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as TesseraClient from "@tessera/client/TesseraClient"
import { Effect } from "effect"
import { SeedApi } from "../actors/api.ts"
import { type Cluster, rawRpc, rpcRequest, startCluster } from "./harness.ts"

const token = "s3cret-token"
let cluster: Cluster
let url: string

beforeAll(async () => {
  cluster = await startCluster(1, { label: "gateway", env: { TESSERA_TOKEN: token } })
  url = cluster.runners[0].url
}, 90_000)
afterAll(() => cluster?.stop())

const auth = { authorization: `Bearer ${token}` }

const stillServes = async () => {
  const health = await fetch(`${url}/health`)
  assert.strictEqual(health.status, 200)
  const { lines } = await rawRpc(url, rpcRequest("99", "Probe.Where", { entityId: "alive", payload: {} }), auth)
  assert.strictEqual(lines[0]?.exit?._tag, "Success")
}

describe("gateway (one runner process on real Postgres)", () => {
  it("serves /health and /ready without a token", async () => {
    assert.strictEqual((await fetch(`${url}/health`)).status, 200)
    const ready = await fetch(`${url}/ready`)
    assert.strictEqual(ready.status, 200)
    assert.strictEqual((await ready.json()).status, "ready")
  })

  it("answers 401 without the bearer token, and with a wrong one", async () => {
    const none = await rawRpc(url, rpcRequest("1", "Probe.Where", { entityId: "a", payload: {} }))
    assert.strictEqual(none.status, 401)
    const wrong = await rawRpc(url, rpcRequest("1", "Probe.Where", { entityId: "a", payload: {} }), {
      authorization: "Bearer nope"
    })
    assert.strictEqual(wrong.status, 401)
    assert.strictEqual((await fetch(`${url}/status`)).status, 401)
  })

  it("serves the typed client with the token", () =>
    Effect.gen(function* () {
      const client = yield* TesseraClient.make(SeedApi, { url, token })
      const status = yield* client.Status()
      assert.strictEqual(status.runners.length, 1)
      assert.isTrue(status.runners[0].shards > 0)
      const where = yield* client["Probe.Where"]({ entityId: "typed", payload: { note: "hi" } })
      assert.strictEqual(where.entityId, "typed")
    }).pipe(Effect.scoped, Effect.runPromise))

  it("serves the typed client over one WebSocket, token in the Authorization header; refuses the socket without it", async () => {
    const replies = await Effect.gen(function* () {
      const client = yield* TesseraClient.make(SeedApi, { url, token, transport: "websocket" })
      return yield* Effect.forEach(
        ["w1", "w2", "w3", "w1"],
        (entityId) => client["Probe.Where"]({ entityId, payload: {} }),
        { concurrency: "unbounded" }
      )
    }).pipe(Effect.scoped, Effect.runPromise)
    assert.deepStrictEqual(
      replies.map((reply) => reply.entityId),
      ["w1", "w2", "w3", "w1"]
    )
    const refused = await new Promise<number>((resolveStatus, reject) => {
      const request = httpGet(`${url}/rpc`, {
        headers: {
          connection: "Upgrade",
          upgrade: "websocket",
          "sec-websocket-version": "13",
          "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ=="
        }
      })
      request.on("response", (response) => resolveStatus(response.statusCode ?? 0))
      request.on("upgrade", () => resolveStatus(101))
      request.on("error", reject)
    })
    assert.strictEqual(refused, 401)
  })

  it("answers invalid JSON with a decode error and keeps serving", async () => {
    const { status, lines } = await rawRpc(url, "{not json\n", auth)
    assert.strictEqual(status, 200)
    assert.strictEqual(lines[0]._tag, "Defect")
    assert.include(JSON.stringify(lines[0]), "NdjsonDecodeError")
    await stillServes()
  })

  it("answers wrong payload types and unknown RPCs with errors and keeps serving", async () => {
    const wrongType = await rawRpc(url, rpcRequest("2", "Probe.Where", { entityId: 42, payload: {} }), auth)
    assert.strictEqual(wrongType.lines[0].exit._tag, "Failure")
    assert.include(JSON.stringify(wrongType.lines[0]), "Expected string")
    const tooLong = await rawRpc(
      url,
      rpcRequest("3", "Probe.Where", { entityId: "x", payload: { note: "n".repeat(1000) } }),
      auth
    )
    assert.strictEqual(tooLong.lines[0].exit._tag, "Failure")
    const unknown = await rawRpc(url, rpcRequest("4", "Nope.Nothing", {}), auth)
    assert.strictEqual(unknown.lines[0].exit._tag, "Failure")
    assert.strictEqual(unknown.lines[0].exit.cause[0]?.error?._tag, "UnknownRpc", unknown.text)
    await stillServes()
  })

  it("rejects a 10 MB body with 413, declared or chunked, and keeps serving", async () => {
    const big = "a".repeat(10 * 1024 * 1024)
    const declared = await rawRpc(url, big, auth)
    assert.strictEqual(declared.status, 413)
    assert.strictEqual(JSON.parse(declared.text).error, "PayloadTooLarge")
    const stream = new ReadableStream({
      start(controller) {
        for (let i = 0; i < 10; i++) controller.enqueue(new TextEncoder().encode("b".repeat(1024 * 1024)))
        controller.close()
      }
    })
    const chunked = await fetch(`${url}/rpc`, {
      method: "POST",
      body: stream,
      headers: auth,
      duplex: "half"
    } as RequestInit)
    assert.include([400, 413], chunked.status)
    await stillServes()
  })
})
