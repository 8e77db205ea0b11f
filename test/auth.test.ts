// Gateway auth against a real runner process on Postgres and Redis: the query-string token only on the status
// routes, HSTS behind TLS, tokens scoped to accounts (typed Forbidden for another account's orders, single and
// PlaceMany), admin RPCs (symbol management, gatherer replicas, demote) only with an admin token, and a bad
// TESSERA_TOKENS is a clear startup error.
import { writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as TesseraClient from "@tessera/client/TesseraClient"
import { Effect, Exit } from "effect"
import { SeedApi } from "../actors/api.ts"
import { defaultSymbols } from "../actors/symbol-shard/journal.ts"
import { type Cluster, freshDatabase, rawRpc, redisUrl, rpcRequest, startCluster, startProcess } from "./harness.ts"

const adminToken = "admin-token-0123456789"
const aliceToken = "alice-token-0123456789"
const opsToken = "ops-token-0123456789ab"
const tokens = {
  [aliceToken]: { accounts: ["alice"], admin: false },
  [opsToken]: { accounts: "*", admin: true }
}
const symbol = defaultSymbols[0].symbol
let cluster: Cluster
let url: string

beforeAll(async () => {
  cluster = await startCluster(1, {
    label: "auth",
    env: { TESSERA_TOKEN: adminToken, TESSERA_TOKENS: JSON.stringify(tokens) }
  })
  url = cluster.runners[0].url
}, 90_000)
afterAll(() => cluster?.stop())

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const place = (account: string, clientOrderId: string) => ({
  entityId: symbol,
  payload: { account, clientOrderId, side: "buy" as const, price: "90", qty: "1" }
})
const failureOf = (exit: Exit.Exit<unknown, unknown>) => {
  if (!Exit.isFailure(exit)) return undefined
  const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
  return reason?._tag === "Fail" ? (reason.error as { _tag?: string; message?: string }) : undefined
}

describe("gateway auth (one runner process on real Postgres)", () => {
  it("refuses ?access_token on /rpc and /metrics, with or without a valid token in it", async () => {
    const query = `?access_token=${encodeURIComponent(adminToken)}`
    const rpc = await fetch(`${url}/rpc${query}`, {
      method: "POST",
      body: rpcRequest("1", "Probe.Where", { entityId: "q", payload: {} })
    })
    assert.strictEqual(rpc.status, 401)
    assert.strictEqual((await fetch(`${url}/metrics${query}`)).status, 401)
    // The header still works on /rpc.
    const { status, lines } = await rawRpc(
      url,
      rpcRequest("2", "Probe.Where", { entityId: "h", payload: {} }),
      bearer(adminToken)
    )
    assert.strictEqual(status, 200)
    assert.strictEqual(lines[0]?.exit?._tag, "Success")
  })

  it("accepts ?access_token on the status page's data routes, a wrong one refused", async () => {
    for (const path of ["/status", "/status/live"]) {
      assert.strictEqual((await fetch(`${url}${path}?access_token=${aliceToken}`)).status, 200, path)
      assert.strictEqual((await fetch(`${url}${path}?access_token=wrong-token-000000000`)).status, 401, path)
      assert.strictEqual((await fetch(`${url}${path}`)).status, 401, path)
    }
    assert.strictEqual((await fetch(`${url}/?access_token=${aliceToken}`)).status, 200)
  })

  it("sends HSTS only when the request came over TLS (X-Forwarded-Proto https, TESSERA_HSTS auto)", async () => {
    const viaTls = await fetch(`${url}/health`, { headers: { "x-forwarded-proto": "https" } })
    assert.strictEqual(viaTls.headers.get("strict-transport-security"), "max-age=31536000")
    const rpc = await rawRpc(url, rpcRequest("3", "Probe.Where", { entityId: "t", payload: {} }), {
      ...bearer(adminToken),
      "x-forwarded-proto": "https"
    })
    assert.strictEqual(rpc.status, 200)
    const plain = await fetch(`${url}/health`)
    assert.isNull(plain.headers.get("strict-transport-security"))
  })

  it("answers Forbidden for an order of an account the token does not hold; places its own", () =>
    Effect.gen(function* () {
      const alice = yield* TesseraClient.make(SeedApi, { url, token: aliceToken })
      const own = yield* alice["SymbolShard.Place"](place("alice", "a-1"))
      assert.strictEqual(own.clientOrderId, "a-1")
      const other = yield* Effect.exit(alice["SymbolShard.Place"](place("bob", "b-1")))
      const error = failureOf(other)
      assert.strictEqual(error?._tag, "Forbidden")
      assert.include(error?.message ?? "", '"bob"')
      const batch = yield* Effect.exit(
        alice["SymbolShard.PlaceBatch"]({
          entityId: symbol,
          payload: { orders: [place("alice", "a-2").payload, place("bob", "b-2").payload] }
        })
      )
      assert.strictEqual(failureOf(batch)?._tag, "Forbidden")
      // A cancel or move names only the order id: a scoped token may not make them, even for its own order.
      const cancel = yield* Effect.exit(
        alice["SymbolShard.Cancel"]({ entityId: symbol, payload: { orderId: own.orderId } })
      )
      assert.strictEqual(failureOf(cancel)?._tag, "Forbidden")
      const move = yield* Effect.exit(
        alice["SymbolShard.Move"]({ entityId: symbol, payload: { orderId: own.orderId, price: "91" } })
      )
      assert.strictEqual(failureOf(move)?._tag, "Forbidden")
      // What the refused requests did not do: bob's orders were never placed, alice's is still open at 90.
      const admin = yield* TesseraClient.make(SeedApi, { url, token: adminToken })
      const mine = yield* admin["SymbolShard.GetOrder"]({ entityId: symbol, payload: { orderId: own.orderId } })
      assert.strictEqual(mine.account, "alice")
      assert.strictEqual(mine.status, "open")
      assert.strictEqual(Number(mine.price), 90)
      const bobs = yield* admin["SymbolShard.Place"](place("bob", "b-1"))
      assert.deepStrictEqual(bobs.trades, [])
      assert.strictEqual(Number(bobs.orderId), Number(own.orderId) + 1, "no order was placed in between")
      // An order read answers a scoped token for its own account's order only.
      const read = yield* alice["SymbolShard.GetOrder"]({ entityId: symbol, payload: { orderId: own.orderId } })
      assert.strictEqual(read.account, "alice")
      const readBobs = yield* Effect.exit(
        alice["SymbolShard.GetOrder"]({ entityId: symbol, payload: { orderId: bobs.orderId } })
      )
      assert.strictEqual(failureOf(readBobs)?._tag, "Forbidden")
    }).pipe(Effect.scoped, Effect.runPromise))

  it("answers Forbidden for a PlaceMany holding another account's orders, over a WebSocket too", () =>
    Effect.gen(function* () {
      for (const transport of ["http", "websocket"] as const) {
        const alice = yield* TesseraClient.make(SeedApi, { url, token: aliceToken, transport })
        const refused = yield* Effect.exit(
          alice["Orders.PlaceMany"]({
            batches: [
              { symbol, orders: [place("alice", `m-${transport}-1`).payload] },
              { symbol: defaultSymbols[1].symbol, orders: [place("bob", `m-${transport}-2`).payload] }
            ]
          })
        )
        assert.strictEqual(failureOf(refused)?._tag, "Forbidden", transport)
        const placed = yield* alice["Orders.PlaceMany"]({
          batches: [{ symbol, orders: [place("alice", `m-${transport}-3`).payload] }]
        })
        assert.strictEqual(placed.results[0]._tag, "Placed", transport)
      }
    }).pipe(Effect.scoped, Effect.runPromise))

  it("needs an admin token for symbol management; a refused change changes nothing", () =>
    Effect.gen(function* () {
      const alice = yield* TesseraClient.make(SeedApi, { url, token: aliceToken })
      const ops = yield* TesseraClient.make(SeedApi, { url, token: opsToken })
      const before = yield* alice["Symbols.List"]()
      const refusals = {
        add: yield* Effect.exit(alice["Symbols.Add"]({ symbol: "AUTH-USDT", tick: "0.01", lot: "0.01" })),
        halt: yield* Effect.exit(alice["Symbols.Halt"]({ symbol })),
        resume: yield* Effect.exit(alice["Symbols.Resume"]({ symbol })),
        set: yield* Effect.exit(alice["Symbols.Set"]({ symbol, maxQty: "1" }))
      }
      for (const [name, exit] of Object.entries(refusals)) {
        const error = failureOf(exit)
        assert.strictEqual(error?._tag, "Forbidden", name)
        assert.include(error?.message ?? "", "an admin token is required", name)
      }
      assert.deepStrictEqual(yield* alice["Symbols.List"](), before, "no symbol added, halted or changed")
      // Not halted, and no lowered maxQty: alice still places a 2-lot order.
      const placed = yield* alice["SymbolShard.Place"]({
        entityId: symbol,
        payload: { ...place("alice", "adm-1").payload, qty: "2" }
      })
      assert.strictEqual(placed.clientOrderId, "adm-1")
      // The admin token may: a halt and a resume apply.
      assert.isTrue((yield* ops["Symbols.Halt"]({ symbol })).applied)
      assert.isTrue((yield* ops["Symbols.Resume"]({ symbol })).applied)
    }).pipe(Effect.scoped, Effect.runPromise))

  it("needs an admin token for admin RPCs (gatherer replicas, graph demote)", () =>
    Effect.gen(function* () {
      const alice = yield* TesseraClient.make(SeedApi, { url, token: aliceToken })
      const replicas = yield* Effect.exit(alice["Gather.SetReplicas"]({ replicas: 1 }))
      assert.strictEqual(failureOf(replicas)?._tag, "Forbidden")
      const demote = yield* Effect.exit(alice["ProxyPartition.Demote"]({ entityId: "0", payload: undefined }))
      assert.strictEqual(failureOf(demote)?._tag, "Forbidden")
      // Open RPCs stay open to every valid token.
      const depth = yield* alice["SymbolShard.Depth"]({ entityId: symbol, payload: {} })
      assert.strictEqual(depth.symbol, symbol)
      const ops = yield* TesseraClient.make(SeedApi, { url, token: opsToken })
      const set = yield* ops["Gather.SetReplicas"]({ replicas: 1 })
      assert.strictEqual(set.replicas, 1)
    }).pipe(Effect.scoped, Effect.runPromise))
})

describe("TESSERA_TOKENS at startup", () => {
  const startFails = async (value: string) => {
    const database = freshDatabase("auth_bad")
    try {
      await startProcess("bad-tokens", {
        env: { DATABASE_URL: database.url, REDIS_URL: redisUrl, TESSERA_TOKENS: value },
        timeoutMs: 30_000
      })
      return "started"
    } catch (error) {
      return String(error)
    } finally {
      database.drop()
    }
  }

  it("is a clear startup error when malformed, never quoting a token", async () => {
    const secret = "never-print-this-token"
    const weak = await startFails(JSON.stringify({ [secret]: { accounts: ["a"] }, short: { accounts: ["a"] } }))
    assert.include(weak, "TESSERA_TOKENS (inline JSON) token #2 must be at least 16 characters")
    assert.notInclude(weak, secret)
    assert.notInclude(weak, '"short"')
    const accounts = await startFails(JSON.stringify({ [secret]: { accounts: "alice" } }))
    assert.include(accounts, 'token #1: accounts must be "*" or a list of account ids')
    assert.notInclude(accounts, secret)
    const json = await startFails(`{"${secret}": `)
    assert.include(json, "TESSERA_TOKENS (inline JSON) is not valid JSON")
    assert.notInclude(json, secret)
    const missing = await startFails(join(tmpdir(), "tessera-no-such-tokens.json"))
    assert.include(missing, "TESSERA_TOKENS: cannot read file")
  }, 90_000)

  it("reads a file", async () => {
    const file = join(tmpdir(), `tessera-tokens-${process.pid}.json`)
    writeFileSync(file, JSON.stringify({ "file-token-0123456789": { accounts: ["carol"], admin: false } }))
    const database = freshDatabase("auth_file")
    const runner = await startProcess("file-tokens", {
      env: { DATABASE_URL: database.url, REDIS_URL: redisUrl, TESSERA_TOKENS: file }
    })
    try {
      const { status } = await rawRpc(
        runner.url,
        rpcRequest("1", "Probe.Where", { entityId: "f", payload: {} }),
        bearer("file-token-0123456789")
      )
      assert.strictEqual(status, 200)
      const refused = await rawRpc(
        runner.url,
        rpcRequest("2", "SymbolShard.Place", place("dave", "d-1")),
        bearer("file-token-0123456789")
      )
      assert.strictEqual(
        refused.lines[0]?.exit?.cause?.[0]?.error?._tag ?? refused.text.match(/"Forbidden"/)?.[0],
        "Forbidden"
      )
    } finally {
      runner.child.kill("SIGKILL")
      await runner.exited
      database.drop()
    }
  }, 90_000)
})
