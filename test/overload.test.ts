/**
 * Overload through a real runner process (Postgres + Redis): admission control answers what passes its bound with a
 * typed `Overloaded` and places none of it, while what it admitted is placed; `Orders.PlaceMany` answers an entry
 * whose shard misses the deadline `ShardUnavailable` without waiting for it, and the orders are placed once.
 */

import { connect, type Socket } from "node:net"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as TesseraClient from "@tessera/client/TesseraClient"
import { Contract } from "@tessera/contracts"
import { Effect, Exit, type Scope } from "effect"
import { SeedApi } from "../actors/api.ts"
import { type Cluster, startCluster, withClient } from "./harness.ts"
import { restingBuys } from "./orders.ts"
import { parse } from "./promText.ts"

let cluster: Cluster

beforeAll(async () => {
  cluster = await startCluster(1, {
    label: "overload",
    env: {
      TESSERA_MAX_IN_FLIGHT: "40",
      TESSERA_MAX_IN_FLIGHT_PER_CONNECTION: "40",
      TESSERA_OVERLOAD_RETRY_AFTER_MS: "75",
      TESSERA_PLACE_DEADLINE: "1 millis",
      TESSERA_MAX_CONNECTIONS: "40"
    }
  })
}, 90_000)
afterAll(() => cluster?.stop())

const runWithClient = <A, E>(body: (client: TesseraClient.Client<SeedApi>) => Effect.Effect<A, E, Scope.Scope>) =>
  Effect.runPromise(withClient(cluster.runners[0].url, body))

const rowCount = (account: string) =>
  Number(cluster.database.query(`SELECT count(*) FROM orders WHERE account = '${account}'`))

/** Opens a TCP connection to the gateway; resolves whether the server closed it within `ms`. */
const openSocket = (url: string, ms: number) =>
  new Promise<{ readonly socket: Socket; readonly closed: boolean }>((resolve) => {
    const { hostname, port } = new URL(url)
    const socket = connect(Number(port), hostname)
    const timer = setTimeout(() => resolve({ socket, closed: false }), ms)
    socket.once("close", () => {
      clearTimeout(timer)
      resolve({ socket, closed: true })
    })
    socket.on("error", () => {})
  })

describe("overload on a runner (real Postgres + Redis)", () => {
  it("refuses requests past the in-flight bound with a typed Overloaded and places none of their orders", () =>
    runWithClient((client) =>
      Effect.gen(function* () {
        // Warm the shard first, so the burst meets a live entity.
        yield* client["SymbolShard.PlaceBatch"]({
          entityId: "ETH-USDT",
          payload: { orders: restingBuys("ov-w", "w", 1) }
        })
        // 30 requests of 10 orders each at once against a bound of 40 orders.
        const exits = yield* Effect.forEach(
          Array.from({ length: 30 }, (_, i) => i),
          (i) =>
            Effect.exit(
              client["SymbolShard.PlaceBatch"]({
                entityId: "ETH-USDT",
                payload: { orders: restingBuys("ov-a", `r${i}`, 10) }
              })
            ),
          { concurrency: "unbounded" }
        )
        const refused = exits.flatMap((exit) =>
          Exit.isFailure(exit) &&
          exit.cause.reasons.some((r) => r._tag === "Fail" && r.error instanceof Contract.Overloaded)
            ? [exit]
            : []
        )
        const placed = exits.filter(Exit.isSuccess)
        assert.isAbove(refused.length, 0, "some requests are refused")
        assert.isAbove(placed.length, 0, "some requests are admitted")
        const other = exits.filter((exit) => Exit.isFailure(exit) && !refused.includes(exit))
        assert.deepStrictEqual(other.map(String), [], "every request is either placed or Overloaded")
        const error = refused[0].cause.reasons.find((r) => r._tag === "Fail")
        if (error?._tag === "Fail") {
          const overloaded = error.error as Contract.Overloaded
          assert.strictEqual(overloaded.retryAfterMs, 75)
          assert.match(overloaded.message, /in-flight bound/)
        }
        assert.strictEqual(rowCount("ov-a"), placed.length * 10, "exactly the admitted requests' orders are stored")
        // Once the burst has drained, the runner admits again.
        const after = yield* client["SymbolShard.PlaceBatch"]({
          entityId: "ETH-USDT",
          payload: { orders: restingBuys("ov-b", "after", 10) }
        })
        assert.strictEqual(after.results.length, 10)
      })
    ))

  it("answers an entry whose shard misses the PlaceMany deadline ShardUnavailable, and a retry places its orders once", () =>
    runWithClient((client) =>
      Effect.gen(function* () {
        // A shard not yet active (its activation reads the journal) cannot answer within 1 ms.
        const orders = restingBuys("ov-d", "late", 3)
        const { results } = yield* client["Orders.PlaceMany"]({ batches: [{ symbol: "ADA-USDT", orders }] })
        assert.strictEqual(results[0]._tag, "Failed")
        if (results[0]._tag === "Failed") assert.match(results[0].error.message, /did not answer within 1 ms/)
        // Whether or not the late entry landed, a retry with the same keys places each order exactly once.
        const retry = yield* client["SymbolShard.PlaceBatch"]({ entityId: "ADA-USDT", payload: { orders } })
        assert.deepStrictEqual(
          retry.results.map((r) => r.clientOrderId),
          orders.map((o) => o.clientOrderId)
        )
        yield* client["SymbolShard.PlaceBatch"]({ entityId: "ADA-USDT", payload: { orders } })
        assert.strictEqual(rowCount("ov-d"), 3, "no order placed twice")
      })
    ))
  it("a client with back-off holds back a share of its requests once refused: they never reach the gateway", async () => {
    const url = cluster.runners[0].url
    const refusedAtGateway = async () =>
      parse(await (await fetch(`${url}/metrics`)).text())
        .filter((sample) => sample.name === "tessera_gateway_overloaded_total")
        .reduce((n, sample) => n + sample.value, 0)
    const before = await refusedAtGateway()
    const exits = await Effect.runPromise(
      Effect.scoped(
        Effect.flatMap(TesseraClient.make(SeedApi, { url, throttle: { k: 1.5, windowMs: 60_000 } }), (client) =>
          // Waves of 30 requests of 10 orders at once against a bound of 40 orders: most of each wave is refused.
          Effect.forEach(
            Array.from({ length: 6 }, (_, wave) => wave),
            (wave) =>
              Effect.forEach(
                Array.from({ length: 30 }, (_, i) => i),
                (i) =>
                  Effect.exit(
                    client["SymbolShard.PlaceBatch"]({
                      entityId: "ETH-USDT",
                      payload: { orders: restingBuys("ov-t", `w${wave}-${i}`, 10) }
                    })
                  ),
                { concurrency: "unbounded" }
              ),
            { concurrency: 1 }
          )
        )
      )
    ).then((waves) => waves.flat())
    const messages = exits.flatMap((exit) =>
      Exit.isFailure(exit)
        ? exit.cause.reasons.flatMap((r) =>
            r._tag === "Fail" && r.error instanceof Contract.Overloaded ? [r.error.message] : []
          )
        : []
    )
    const held = messages.filter((m) => m.includes("client's back-off")).length
    const refused = messages.length - held
    const placed = exits.filter(Exit.isSuccess).length
    assert.isAbove(held, 0, "the client held requests back itself")
    assert.isAbove(refused, 0, "the gateway refused some first")
    assert.strictEqual(placed + messages.length, exits.length, "every request is placed or Overloaded")
    assert.strictEqual(await refusedAtGateway(), before + refused, "held requests never reached the gateway")
    assert.strictEqual(rowCount("ov-t"), placed * 10, "exactly the placed requests' orders are stored")
  })

  it("closes connections past TESSERA_MAX_CONNECTIONS on arrival and serves again once they go", async () => {
    const url = cluster.runners[0].url
    const sockets: Array<Socket> = []
    let refused = false
    for (let i = 0; i < 60 && !refused; i++) {
      const { socket, closed } = await openSocket(url, 150)
      sockets.push(socket)
      refused = closed
    }
    assert.isTrue(refused, "a connection past the cap is closed by the gateway")
    assert.isAtMost(sockets.length, 41, "the cap (40) is what stops them")
    for (const socket of sockets) socket.destroy()
    await new Promise((resolve) => setTimeout(resolve, 200))
    const health = await fetch(`${url}/health`)
    assert.strictEqual(health.status, 200)
  })
})
