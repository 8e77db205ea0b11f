// A paused owner (SIGSTOP) whose shard moves while it sleeps: its database sessions are cut while it is stopped (as
// a partition or a database failover would), so its shard locks lapse and the survivor takes its symbols under new
// owner epochs. Resumed (SIGCONT) with commands it had applied in memory and not yet written, it must write
// nothing: every acknowledged order is in the database, no trade twice, and the stale owner stands down.
import { assert, describe, it } from "@effect/vitest"
import * as TesseraClient from "@tessera/client/TesseraClient"
import { Effect, Exit, Fiber } from "effect"
import { SeedApi } from "../actors/api.ts"
import { defaultSymbols } from "../actors/symbol-shard/journal.ts"
import type { PlaceOrder } from "../actors/symbol-shard/protocol.ts"
import { freshDatabase, postgresPortsOf, type RunnerProcess, redisUrl, staleWrites, startProcess } from "./harness.ts"

const symbols = defaultSymbols.map((s) => s.symbol)
const order = (account: string, clientOrderId: string, i: number): PlaceOrder => ({
  account,
  clientOrderId,
  side: i % 2 === 0 ? "buy" : "sell",
  price: String(100 + ((i * 7) % 11) - 5),
  qty: String(1 + (i % 3))
})

describe("fenced ownership (two runner processes, real Postgres + Redis)", () => {
  it.live(
    "a stale owner resumed after its shards moved writes nothing; no acknowledged order is lost",
    () =>
      Effect.gen(function* () {
        const db = freshDatabase("fencing")
        yield* Effect.addFinalizer(() => Effect.sync(() => db.drop()))
        const runners: Array<RunnerProcess> = []
        yield* Effect.addFinalizer(() =>
          Effect.promise(async () => {
            for (const r of runners) {
              r.child.kill("SIGCONT")
              r.child.kill("SIGKILL")
            }
            await Promise.all(runners.map((r) => r.exited))
          })
        )
        for (const name of ["fence-survivor", "fence-victim"]) {
          runners.push(
            yield* Effect.promise(() => startProcess(name, { env: { DATABASE_URL: db.url, REDIS_URL: redisUrl } }))
          )
        }
        const [survivor, victim] = runners
        const acked: Array<string> = []
        let stop = false
        let next = 0
        // Steady load through the survivor's gateway; each batch retried with the same keys until acknowledged.
        const load = Effect.scoped(
          Effect.flatMap(TesseraClient.make(SeedApi, { url: survivor.url }), (client) =>
            Effect.forEach(
              symbols,
              (entityId) =>
                Effect.gen(function* () {
                  while (!stop) {
                    const n = next++
                    const orders = Array.from({ length: 10 }, (_, i) => order(`s-${i % 3}`, `k${n}-${i}`, n * 10 + i))
                    for (;;) {
                      const exit = yield* Effect.exit(
                        client["SymbolShard.PlaceBatch"]({ entityId, payload: { orders } }).pipe(
                          Effect.timeout("3 seconds")
                        )
                      )
                      if (Exit.isSuccess(exit)) {
                        for (const r of exit.value.results)
                          if (r.orderId !== undefined) acked.push(`${entityId} ${r.orderId}`)
                        break
                      }
                      yield* Effect.sleep("50 millis")
                    }
                    yield* Effect.sleep("20 millis")
                  }
                }),
              { concurrency: 8, discard: true }
            )
          )
        )
        const fiber = yield* Effect.forkChild(load)
        yield* Effect.sleep("4 seconds")
        const epochsBefore = db.query("SELECT symbol || ' ' || epoch FROM symbol_owners ORDER BY symbol")

        victim.child.kill("SIGSTOP")
        const ports = postgresPortsOf(victim.child.pid!)
        assert.isAbove(ports.length, 0, "the victim has PostgreSQL connections to cut")
        db.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE client_port IN (${ports.join(",")})`)
        // The survivor sees the victim's locks gone and takes its symbols (claiming new epochs).
        yield* Effect.sleep("15 seconds")
        const epochsMoved = db.query("SELECT symbol || ' ' || epoch FROM symbol_owners ORDER BY symbol")
        victim.child.kill("SIGCONT")
        yield* Effect.sleep("6 seconds")
        stop = true
        yield* Fiber.join(fiber).pipe(Effect.timeout("30 seconds"))

        assert.notStrictEqual(epochsMoved, epochsBefore, "some symbol moved to the survivor under a new epoch")
        assert.isAbove(acked.length, 100)
        const stored = new Set<string>()
        for (const symbol of symbols) {
          for (const id of db.query(`SELECT order_id FROM orders WHERE symbol = '${symbol}'`).split("\n"))
            stored.add(`${symbol} ${id}`)
        }
        const lost = acked.filter((key) => !stored.has(key))
        assert.deepStrictEqual(lost, [], "every acknowledged order is in the database")
        const trades = Number(db.query("SELECT COUNT(*) FROM trades"))
        const distinct = Number(db.query("SELECT COUNT(*) FROM (SELECT DISTINCT symbol, trade_id FROM trades) t"))
        assert.strictEqual(trades, distinct, "no trade twice")
        // Each journal is one unbroken sequence: a stale owner's batch would leave a gap or a fork behind it.
        const broken = db.query(
          `SELECT symbol FROM (SELECT symbol, seq, LAG(seq) OVER (PARTITION BY symbol ORDER BY seq) AS prev
             FROM symbol_journal) j WHERE prev IS NOT NULL AND seq <> prev + 1`
        )
        assert.strictEqual(broken, "", "journals without gaps")
        const refused = yield* Effect.promise(() => staleWrites(victim.url))
        console.log(
          `fencing: ${acked.length} orders acked, ${refused} stale-owner writes refused on the resumed runner`
        )
        assert.isAbove(refused, 0, "the resumed owner tried to write under its old epoch and was refused")
      }).pipe(Effect.scoped),
    180_000
  )
})
