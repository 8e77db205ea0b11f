// Sick dependencies: a runner whose PostgreSQL, then whose Valkey, stops answering (a TCP proxy that holds every
// byte while the sockets stay open, as a black-holed network does). Requests must settle within their timeout
// (typed errors or a client-side timeout, never a hang), the runner must not wedge (/health answers; /ready is 503
// "storage unreachable" while PostgreSQL is gone and 200 again after), service resumes within 10 s of the proxy
// forwarding again, and every acknowledged order is in the database.
import { assert, describe, it } from "@effect/vitest"
import * as TesseraClient from "@tessera/client/TesseraClient"
import { Cause, Effect, Exit, Fiber } from "effect"
import { SeedApi } from "../actors/api.ts"
import { defaultSymbols } from "../actors/symbol-shard/journal.ts"
import type { PlaceOrder } from "../actors/symbol-shard/protocol.ts"
import { freshDatabase, pausableProxy, redisUrl, startProcess } from "./harness.ts"

const symbols = defaultSymbols.slice(0, 4).map((s) => s.symbol)
const order = (clientOrderId: string, i: number): PlaceOrder => ({
  account: `bh-${i % 3}`,
  clientOrderId,
  side: i % 2 === 0 ? "buy" : "sell",
  price: String(100 + ((i * 7) % 11) - 5),
  qty: String(1 + (i % 3))
})
/** Client-side bound of one request: anything slower counts as a timeout. */
const requestTimeoutMs = 3000
/** The spec: service is back this soon after the dependency answers again. */
const resumeWithinMs = 10_000

interface Outcome {
  readonly startedAt: number
  readonly settledAt: number
  /** `interrupted`: the runner stood the entity down (its shard locks could not be confirmed) mid-request. */
  readonly kind: "acked" | "typed" | "timeout" | "interrupted" | "defect"
  readonly tag?: string
}

const probe = async (url: string) => {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(1000) })
    return { status: response.status, body: (await response.json()) as { status?: string } }
  } catch {
    return { status: 0, body: {} }
  }
}

const proxyOf = (port: number) =>
  Effect.acquireRelease(
    Effect.promise(() => pausableProxy({ host: "127.0.0.1", port })),
    (p) => Effect.promise(() => p.close())
  )

/** Polls `check` every 100 ms until it holds; the time it first held, or undefined after `withinMs`. */
const waitFor = (check: Effect.Effect<boolean>, withinMs: number) =>
  Effect.gen(function* () {
    const deadline = Date.now() + withinMs
    while (Date.now() < deadline) {
      if (yield* check) return Date.now()
      yield* Effect.sleep("100 millis")
    }
    return undefined
  })

describe("black-holed dependencies (runner process, real Postgres + Redis behind pausable proxies)", () => {
  it.live(
    "requests fail fast, /ready follows storage, service resumes within 10 s, nothing acked is lost",
    () =>
      Effect.gen(function* () {
        const db = freshDatabase("blackhole")
        yield* Effect.addFinalizer(() => Effect.sync(() => db.drop()))
        const pg = yield* proxyOf(5432)
        const valkey = yield* proxyOf(Number(new URL(redisUrl).port || 6379))
        const runner = yield* Effect.acquireRelease(
          Effect.promise(() =>
            startProcess("blackhole", {
              env: {
                DATABASE_URL: db.url.replace("127.0.0.1:5432", `127.0.0.1:${pg.port}`),
                REDIS_URL: `redis://127.0.0.1:${valkey.port}`
              }
            })
          ),
          (r) =>
            Effect.promise(async () => {
              r.child.kill("SIGKILL")
              await r.exited
            })
        )
        const client = yield* TesseraClient.make(SeedApi, { url: runner.url })
        const ready = Effect.promise(() => probe(`${runner.url}/ready`))
        const health = Effect.promise(() => probe(`${runner.url}/health`))
        assert.isDefined(
          yield* waitFor(
            Effect.map(ready, (r) => r.status === 200),
            30_000
          ),
          "ready before the faults"
        )

        // Steady order load; a failed batch is dropped (its keys never reused), so only acks are audited.
        const acked: Array<string> = []
        const outcomes: Array<Outcome> = []
        let stop = false
        let next = 0
        const load = Effect.forEach(
          symbols,
          (entityId) =>
            Effect.gen(function* () {
              while (!stop) {
                const n = next++
                const orders = Array.from({ length: 5 }, (_, i) => order(`k${n}-${i}`, n * 5 + i))
                const startedAt = Date.now()
                const exit = yield* Effect.exit(
                  client["SymbolShard.PlaceBatch"]({ entityId, payload: { orders } }).pipe(
                    Effect.timeout(requestTimeoutMs)
                  )
                )
                const settledAt = Date.now()
                if (Exit.isSuccess(exit)) {
                  for (const r of exit.value.results)
                    if (r.orderId !== undefined) acked.push(`${entityId} ${r.orderId}`)
                  outcomes.push({ startedAt, settledAt, kind: "acked" })
                } else {
                  const failure = exit.cause.reasons.find((r) => r._tag === "Fail")
                  const tag = failure?._tag === "Fail" ? (failure.error as { _tag?: string })._tag : undefined
                  outcomes.push({
                    startedAt,
                    settledAt,
                    kind:
                      tag === "TimeoutError"
                        ? "timeout"
                        : tag !== undefined
                          ? "typed"
                          : Cause.hasInterruptsOnly(exit.cause)
                            ? "interrupted"
                            : "defect",
                    tag
                  })
                  yield* Effect.sleep("100 millis")
                }
                yield* Effect.sleep("20 millis")
              }
            }),
          { concurrency: "unbounded", discard: true }
        )
        const loadFiber = yield* Effect.forkChild(load)
        const ackedAfter = (t: number) =>
          Effect.sync(() => outcomes.some((o) => o.kind === "acked" && o.startedAt >= t))
        assert.isDefined(yield* waitFor(ackedAfter(Date.now()), 15_000), "orders acked before the faults")
        yield* Effect.sleep("2 seconds")

        // --- PostgreSQL black-holed -------------------------------------------------------------------------
        const pgPausedAt = Date.now()
        pg.pause()
        const notReadyAt = yield* waitFor(
          Effect.map(ready, (r) => r.status === 503 && r.body.status === "storage unreachable"),
          10_000
        )
        assert.isDefined(notReadyAt, "/ready goes 503 storage unreachable while PostgreSQL is black-holed")
        const healthDuringPg: Array<number> = []
        while (Date.now() - pgPausedAt < 9000) {
          healthDuringPg.push((yield* health).status)
          assert.strictEqual((yield* ready).status, 503, "/ready stays 503 while PostgreSQL is black-holed")
          yield* Effect.sleep("250 millis")
        }
        const pgResumedAt = Date.now()
        pg.resume()
        const pgServingAt = yield* waitFor(ackedAfter(pgResumedAt), resumeWithinMs)
        const pgReadyAt = yield* waitFor(
          Effect.map(ready, (r) => r.status === 200),
          resumeWithinMs
        )
        assert.isDefined(pgServingAt, "orders are acked again within 10 s of PostgreSQL answering")
        assert.isDefined(pgReadyAt, "/ready is 200 again within 10 s of PostgreSQL answering")
        assert.deepStrictEqual(
          healthDuringPg.filter((s) => s !== 200),
          [],
          "/health answered throughout"
        )
        const duringPg = outcomes.filter((o) => o.startedAt >= pgPausedAt && o.startedAt < pgResumedAt)

        // --- Valkey black-holed -----------------------------------------------------------------------------
        const batchGet = Effect.gen(function* () {
          const startedAt = Date.now()
          const exit = yield* Effect.exit(
            client["Graph.BatchGet"]({ ids: ["bh-v1", "bh-v2"] }).pipe(Effect.timeout(requestTimeoutMs + 2000))
          )
          return { exit, ms: Date.now() - startedAt }
        })
        assert.isTrue(Exit.isSuccess((yield* batchGet).exit), "graph reads work before the Valkey fault")
        const valkeyPausedAt = Date.now()
        valkey.pause()
        const graphDuringValkey: Array<{ readonly tag: string; readonly ms: number }> = []
        const healthDuringValkey: Array<number> = []
        while (Date.now() - valkeyPausedAt < 7000) {
          const { exit, ms } = yield* batchGet
          const tag = Exit.isSuccess(exit)
            ? "success"
            : ((exit.cause.reasons.find((r) => r._tag === "Fail") as { error?: { _tag?: string } } | undefined)?.error
                ?._tag ?? "defect")
          graphDuringValkey.push({ tag, ms })
          healthDuringValkey.push((yield* health).status)
        }
        const valkeyResumedAt = Date.now()
        valkey.resume()
        const valkeyServingAt = yield* waitFor(
          Effect.map(batchGet, (r) => Exit.isSuccess(r.exit)),
          resumeWithinMs
        )
        assert.isDefined(valkeyServingAt, "graph reads answer again within 10 s of Valkey answering")
        const ordersDuringValkey = outcomes.filter(
          (o) => o.startedAt >= valkeyPausedAt && o.startedAt < valkeyResumedAt
        )
        yield* Effect.sleep("1 second")
        stop = true
        yield* Fiber.join(loadFiber).pipe(Effect.timeout("20 seconds"))

        // Fail fast: every request settled within its own bound (plus scheduling slack), typed or timed out.
        const slowest = (list: ReadonlyArray<Outcome>) => Math.max(0, ...list.map((o) => o.settledAt - o.startedAt))
        assert.isAtMost(slowest(duringPg), requestTimeoutMs + 1000, "order requests settle within their timeout")
        assert.deepStrictEqual(
          duringPg.filter((o) => o.kind === "defect"),
          [],
          "failures are typed errors, client timeouts or the entity standing down, never a defect"
        )
        assert.isAbove(
          graphDuringValkey.filter((g) => g.tag === "GraphStorageError").length,
          0,
          "graph reads fail with GraphStorageError while Valkey is black-holed"
        )
        assert.deepStrictEqual(
          graphDuringValkey.filter((g) => g.tag !== "GraphStorageError" && g.tag !== "TimeoutError"),
          [],
          "graph reads only fail typed (or time out) while Valkey is black-holed"
        )
        assert.deepStrictEqual(
          healthDuringValkey.filter((s) => s !== 200),
          [],
          "/health answered throughout"
        )

        // Nothing acked is lost.
        assert.isAbove(acked.length, 50)
        const stored = new Set<string>()
        for (const symbol of symbols) {
          for (const id of db.query(`SELECT order_id FROM orders WHERE symbol = '${symbol}'`).split("\n"))
            stored.add(`${symbol} ${id}`)
        }
        assert.deepStrictEqual(
          acked.filter((key) => !stored.has(key)),
          [],
          "every acknowledged order is in the database"
        )

        const count = (list: ReadonlyArray<Outcome>, kind: Outcome["kind"]) =>
          list.filter((o) => o.kind === kind).length
        const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`
        console.log(
          [
            `black-hole PostgreSQL: /ready false after ${seconds((notReadyAt ?? 0) - pgPausedAt)};`,
            `requests during it: ${duringPg.length} (${count(duringPg, "acked")} acked, ${count(duringPg, "typed")} typed errors [${[...new Set(duringPg.flatMap((o) => (o.kind === "typed" && o.tag !== undefined ? [o.tag] : [])))].join(", ")}], ${count(duringPg, "timeout")} client timeouts, ${count(duringPg, "interrupted")} interrupted as the entity stood down), slowest ${seconds(slowest(duringPg))};`,
            `orders acked again ${seconds((pgServingAt ?? 0) - pgResumedAt)} and /ready 200 ${seconds((pgReadyAt ?? 0) - pgResumedAt)} after it answers again`
          ].join(" ")
        )
        console.log(
          [
            `black-hole Valkey: ${graphDuringValkey.length} graph reads (${graphDuringValkey.filter((g) => g.tag === "GraphStorageError").length} GraphStorageError, slowest ${seconds(Math.max(...graphDuringValkey.map((g) => g.ms)))});`,
            `orders meanwhile: ${count(ordersDuringValkey, "acked")} acked of ${ordersDuringValkey.length};`,
            `graph reads answer again ${seconds((valkeyServingAt ?? 0) - valkeyResumedAt)} after it answers again;`,
            `${acked.length} acked orders audited, none lost`
          ].join(" ")
        )
      }).pipe(Effect.scoped),
    90_000
  )
})
