// SymbolShard across runner processes on the real Postgres and Redis: durable acknowledgements, restore after a
// full restart, failover after kill -9 with every acknowledged order present and no trade twice, market data,
// and bad input through the gateway.
import { assert, describe, it } from "@effect/vitest"
import type * as TesseraClient from "@tessera/client/TesseraClient"
import { Effect, Exit, Fiber } from "effect"
import { Redis } from "ioredis"
import type { SeedApi } from "../actors/api.ts"
import {
  type RunnerProcess,
  rawRpc,
  redisUrl,
  rpcRequest,
  runCli,
  scopedDatabase,
  startProcess,
  withClient
} from "./harness.ts"
import { crossingOrder, missingOrders, orderLoad, symbols, tradeCounts } from "./orders.ts"

const startRunners = async (n: number, databaseUrl: string, label: string) => {
  const runners: Array<RunnerProcess> = []
  for (let i = 0; i < n; i++) {
    runners.push(await startProcess(`${label}-${i}`, { env: { DATABASE_URL: databaseUrl, REDIS_URL: redisUrl } }))
  }
  return runners
}
const killAll = async (runners: ReadonlyArray<RunnerProcess>) => {
  for (const r of runners) r.child.kill("SIGKILL")
  await Promise.all(runners.map((r) => r.exited))
}

// Volatile messages caught in a shard handover (a runner joining or leaving) are not answered: clients time out
// and retry, which is safe because places are idempotent.
const retrying = <A, E>(call: Effect.Effect<A, E>) =>
  call.pipe(Effect.timeout("3 seconds"), Effect.retry({ times: 20 }))

const books = (client: TesseraClient.Client<SeedApi>) =>
  Effect.forEach(symbols, (entityId) => retrying(client["SymbolShard.Depth"]({ entityId, payload: { depth: 1000 } })), {
    concurrency: 8
  })

describe("SymbolShard on a multi-process cluster (real Postgres + Redis)", () => {
  it.live(
    "acknowledged orders are rows at once, and a fully restarted cluster restores every book exactly",
    () =>
      Effect.gen(function* () {
        const db = yield* scopedDatabase("shard_restart")
        const first = yield* Effect.promise(() => startRunners(2, db.url, "restart-a"))
        const before = yield* withClient(first[0].url, (client) =>
          Effect.gen(function* () {
            for (let round = 0; round < 5; round++) {
              yield* Effect.forEach(
                symbols,
                (entityId) =>
                  client["SymbolShard.PlaceBatch"]({
                    entityId,
                    payload: {
                      orders: Array.from({ length: 40 }, (_, i) =>
                        crossingOrder(`acct-${i % 4}`, `r${round}-${i}`, round * 40 + i)
                      )
                    }
                  }),
                { concurrency: 8 }
              )
            }
            const single = yield* retrying(
              client["SymbolShard.Place"]({
                entityId: "BTC-USDT",
                payload: { account: "solo", clientOrderId: "one", side: "buy", price: "1.00", qty: "1" }
              })
            )
            const row = db.query(
              `SELECT status || ' ' || qty FROM orders WHERE symbol = 'BTC-USDT' AND order_id = ${single.orderId}`
            )
            assert.strictEqual(row, "open 1.0000", "the row is in Postgres as soon as the place is acknowledged")
            return yield* books(client)
          })
        )
        assert.isTrue(
          before.some((b) => b.bids.length > 0 && b.asks.length > 0),
          "the books hold resting orders on both sides"
        )
        yield* Effect.promise(() => killAll(first))

        const second = yield* Effect.promise(() => startRunners(2, db.url, "restart-b"))
        yield* Effect.addFinalizer(() => Effect.promise(() => killAll(second)))
        const after = yield* withClient(second[1].url, books)
        assert.deepStrictEqual(after, before, "every book is restored exactly")
        const trades = tradeCounts(db)
        assert.isAbove(trades.rows, 0)
        assert.strictEqual(trades.rows, trades.distinct)

        // The CLI: a cancel with --request-id is safe to repeat (the first answer again); without one, a second
        // cancel of the same order is an error.
        const cli = (args: ReadonlyArray<string>) => runCli([...args, "--url", second[0].url])
        const placed = yield* Effect.promise(() =>
          cli(
            ["order", "place", "--symbol", "ETH-USDT", "--account", "cli", "--client-id", "c1", "--side", "buy"].concat(
              ["--price", "2.00", "--qty", "1"]
            )
          )
        )
        assert.strictEqual(placed.code, 0, placed.err)
        const id = String(JSON.parse(placed.out).orderId)
        const cancel = ["order", "cancel", "--symbol", "ETH-USDT", "--id", id]
        const cancelled = yield* Effect.promise(() => cli([...cancel, "--request-id", "r1"]))
        const again = yield* Effect.promise(() => cli([...cancel, "--request-id", "r1"]))
        assert.strictEqual(cancelled.code, 0, cancelled.err)
        assert.strictEqual(again.code, 0, again.err)
        assert.deepStrictEqual(JSON.parse(again.out), JSON.parse(cancelled.out))
        assert.strictEqual(JSON.parse(cancelled.out).status, "canceled")
        const bare = yield* Effect.promise(() => cli(cancel))
        assert.notStrictEqual(bare.code, 0)
        assert.include(bare.err, "UnknownOrder")
      }).pipe(Effect.scoped),
    180_000
  )

  it.live(
    "after kill -9 of a runner every acknowledged order is in the database, no trade twice, symbols answer again",
    () =>
      Effect.gen(function* () {
        const db = yield* scopedDatabase("shard_failover")
        const runners = yield* Effect.promise(() => startRunners(2, db.url, "failover"))
        yield* Effect.addFinalizer(() => Effect.promise(() => killAll(runners)))
        const [survivor, victim] = runners
        // Steady load through the survivor's gateway, retrying each batch (same keys) until it is acknowledged.
        const load = orderLoad({
          batch: (n) => Array.from({ length: 10 }, (_, i) => crossingOrder(`f-${i % 3}`, `k${n}-${i}`, n * 10 + i)),
          pause: "20 millis",
          concurrency: 8,
          untilAcknowledged: true
        })
        const fiber = yield* Effect.forkChild(withClient(survivor.url, load.run))
        yield* Effect.sleep("3 seconds")
        yield* Effect.promise(() => killAll([victim]))
        yield* Effect.sleep("8 seconds")
        load.stop()
        yield* Fiber.join(fiber).pipe(Effect.timeout("20 seconds"))

        assert.isAbove(load.acked.length, 100)
        assert.deepStrictEqual(missingOrders(db, load.acked), [], "every acknowledged order is in the database")
        const trades = tradeCounts(db)
        assert.strictEqual(trades.rows, trades.distinct, "no trade twice")
        const depths = yield* withClient(survivor.url, books)
        assert.strictEqual(depths.length, symbols.length, "every symbol answers from the survivor")
      }).pipe(Effect.scoped),
    180_000
  )

  it.live(
    "retries of Cancel/Move answer the first result, forgotten keys are refused, pruned journals restore exactly",
    () =>
      Effect.gen(function* () {
        const db = yield* scopedDatabase("shard_retention")
        // Tiny limits: keys and finished orders are forgotten, and snapshots (with pruning) happen within the test.
        const env = {
          DATABASE_URL: db.url,
          REDIS_URL: redisUrl,
          TESSERA_SHARD_RECENT_KEYS: "10",
          TESSERA_SHARD_FINISHED_ORDERS: "5",
          TESSERA_SHARD_KEY_FILTER_BITS: "65536",
          TESSERA_SHARD_SNAPSHOT_EVERY: "30"
        }
        const entityId = "BTC-USDT"
        const failure = (exit: Exit.Exit<unknown, unknown>) => {
          if (Exit.isSuccess(exit)) return "success"
          const fail = exit.cause.reasons.find((r) => r._tag === "Fail") as {
            error?: { _tag?: string; reason?: string }
          }
          return fail?.error?.reason ?? fail?.error?._tag ?? "defect"
        }
        const first = yield* Effect.promise(() => startProcess("retention-a", { env }))
        const phase1 = yield* withClient(first.url, (client) =>
          Effect.gen(function* () {
            const early = yield* client["SymbolShard.Place"]({
              entityId,
              payload: { account: "x", clientOrderId: "early", side: "buy", price: "50.00", qty: "1" }
            })
            const maker = yield* client["SymbolShard.Place"]({
              entityId,
              payload: { account: "x", clientOrderId: "maker", side: "sell", price: "500.00", qty: "5" }
            })
            const moved = yield* client["SymbolShard.Move"]({
              entityId,
              payload: { orderId: maker.orderId, qty: "3", requestId: "mv-1" }
            })
            const movedAgain = yield* client["SymbolShard.Move"]({
              entityId,
              payload: { orderId: maker.orderId, qty: "3", requestId: "mv-1" }
            })
            assert.deepStrictEqual(movedAgain, moved, "a retried Move returns the first result")
            // A taker fills 1 of the 3: a second application of the move would reopen 3.
            yield* client["SymbolShard.Place"]({
              entityId,
              payload: { account: "y", clientOrderId: "taker", side: "buy", price: "500.00", qty: "1" }
            })
            const movedThird = yield* client["SymbolShard.Move"]({
              entityId,
              payload: { orderId: maker.orderId, qty: "3", requestId: "mv-1" }
            })
            assert.deepStrictEqual(movedThird, moved)
            assert.strictEqual(
              (yield* client["SymbolShard.GetOrder"]({ entityId, payload: { orderId: maker.orderId } })).openQty,
              "2.0000"
            )
            const canceled = yield* client["SymbolShard.Cancel"]({
              entityId,
              payload: { orderId: early.orderId, requestId: "cx-1" }
            })
            const canceledAgain = yield* client["SymbolShard.Cancel"]({
              entityId,
              payload: { orderId: early.orderId, requestId: "cx-1" }
            })
            assert.deepStrictEqual(canceledAgain, canceled, "a retried Cancel returns the first result")
            assert.strictEqual(
              failure(
                yield* Effect.exit(client["SymbolShard.Cancel"]({ entityId, payload: { orderId: early.orderId } }))
              ),
              "UnknownOrder",
              "without a request id a second Cancel is UnknownOrder, as before"
            )

            // More request ids than the shard remembers (each move keeps the open quantity).
            for (let i = 2; i <= 13; i++) {
              yield* client["SymbolShard.Move"]({
                entityId,
                payload: { orderId: maker.orderId, qty: "2", requestId: `mv-${i}` }
              })
            }
            // Enough flow to forget those keys and take several snapshots.
            let last: ReadonlyArray<unknown> = []
            for (let round = 0; round < 8; round++) {
              const orders = Array.from({ length: 20 }, (_, i) =>
                crossingOrder(`acct-${i % 4}`, `r${round}-${i}`, round * 20 + i)
              )
              last = (yield* client["SymbolShard.PlaceBatch"]({ entityId, payload: { orders } })).results
            }
            return {
              early,
              maker,
              canceled,
              last,
              depth: yield* client["SymbolShard.Depth"]({ entityId, payload: { depth: 1000 } })
            }
          })
        )
        // Snapshots are stored in the background after their batch: wait until the rows stop changing.
        const snapshotRows = () =>
          db.query(`SELECT string_agg(seq::text, ',' ORDER BY seq) FROM symbol_snapshots WHERE symbol = '${entityId}'`)
        let seen = snapshotRows()
        for (let waited = 0; waited < 10_000; waited += 500) {
          yield* Effect.sleep("500 millis")
          const now = snapshotRows()
          if (now === seen) break
          seen = now
        }
        const snapshots = seen.split(",").map(Number)
        assert.strictEqual(snapshots.length, 2, "the newest snapshot and the previous one are kept")
        const journal = db
          .query(`SELECT MIN(seq) || ' ' || MAX(seq) FROM symbol_journal WHERE symbol = '${entityId}'`)
          .split(" ")
          .map(Number)
        assert.strictEqual(journal[0], snapshots[0] + 1, "journal rows up to the previous snapshot are deleted")
        // The newest snapshot may be of the last batch (taken in the background after it).
        assert.isAtLeast(journal[1], snapshots[1], "rows up to the newest snapshot remain")

        // Answers that must hold before and after a restart (kill -9, then a new runner restores from the tables).
        const check = (url: string) =>
          withClient(url, (client) =>
            Effect.gen(function* () {
              const again = yield* Effect.exit(
                client["SymbolShard.Place"]({
                  entityId,
                  payload: { account: "x", clientOrderId: "early", side: "buy", price: "50.00", qty: "1" }
                })
              )
              assert.strictEqual(failure(again), "key_expired", "a forgotten, used place key is refused")
              const moveAgain = yield* Effect.exit(
                client["SymbolShard.Move"]({
                  entityId,
                  payload: { orderId: phase1.maker.orderId, qty: "3", requestId: "mv-1" }
                })
              )
              assert.strictEqual(
                failure(moveAgain),
                "key_expired",
                "a forgotten request id on an open order is refused"
              )
              const finished = yield* client["SymbolShard.GetOrder"]({
                entityId,
                payload: { orderId: phase1.early.orderId }
              })
              assert.deepStrictEqual(
                [finished.status, finished.filledQty],
                ["canceled", "0.0000"],
                "read from the orders table"
              )
              const lastOrders = Array.from({ length: 20 }, (_, i) =>
                crossingOrder(`acct-${i % 4}`, `r7-${i}`, 140 + i)
              )
              const retried = yield* client["SymbolShard.PlaceBatch"]({ entityId, payload: { orders: lastOrders } })
              assert.deepStrictEqual(
                retried.results.slice(10),
                phase1.last.slice(10),
                "recent keys answer the first result"
              )
              return yield* client["SymbolShard.Depth"]({ entityId, payload: { depth: 1000 } })
            })
          )
        assert.deepStrictEqual(yield* check(first.url), phase1.depth, "nothing was applied by the retries")
        const rows = db.query(`SELECT COUNT(*) FROM orders WHERE symbol = '${entityId}'`)
        yield* Effect.promise(() => killAll([first]))

        const second = yield* Effect.promise(() => startProcess("retention-b", { env }))
        yield* Effect.addFinalizer(() => Effect.promise(() => killAll([second])))
        assert.deepStrictEqual(
          yield* retrying(check(second.url)),
          phase1.depth,
          "the book is restored exactly after pruning"
        )
        assert.strictEqual(
          db.query(`SELECT COUNT(*) FROM orders WHERE symbol = '${entityId}'`),
          rows,
          "no order placed twice"
        )
      }).pipe(Effect.scoped),
    120_000
  )

  it.live(
    "publishes trades and depth to Valkey streams and answers bad input with typed errors",
    () =>
      Effect.gen(function* () {
        const db = yield* scopedDatabase("shard_md")
        const runners = yield* Effect.promise(() => startRunners(1, db.url, "md"))
        yield* Effect.addFinalizer(() => Effect.promise(() => killAll(runners)))
        const url = runners[0].url
        const redis = new Redis(redisUrl)
        yield* Effect.addFinalizer(() => Effect.promise(() => redis.quit()))
        // Entry ids come from this database's trade ids and journal seqs: the shard's activation resets a stream left
        // by another test's database (ids beyond its tables), so this test reads the streams whole.

        const tag = `md${Date.now()}`
        const result = yield* withClient(url, (client) =>
          Effect.gen(function* () {
            yield* client["SymbolShard.Place"]({
              entityId: "DOGE-USDT",
              payload: { account: tag, clientOrderId: "m", side: "sell", price: "0.12345", qty: "500" }
            })
            return yield* client["SymbolShard.Place"]({
              entityId: "DOGE-USDT",
              payload: { account: tag, clientOrderId: "t", side: "buy", price: "0.12345", qty: "200" }
            })
          })
        )
        assert.strictEqual(result.status, "filled")
        // Other test files may publish DOGE-USDT trades to the same stream (order ids restart per database), so
        // wait for this trade itself: same taker, maker, price and quantity.
        const isOurs = (f: Record<string, string>) =>
          f.taker === result.orderId &&
          f.maker === result.trades[0].makerOrderId &&
          f.price === "0.12345" &&
          f.qty === "200"
        let ours: Record<string, string> | undefined
        for (let i = 0; i < 100 && ours === undefined; i++) {
          const entries = yield* Effect.promise(() => redis.xrange("md:DOGE-USDT:trades", "-", "+"))
          ours = entries
            .map(([, f]) => Object.fromEntries(f.flatMap((v, i) => (i % 2 === 0 ? [[v, f[i + 1]]] : []))))
            .find(isOurs)
          if (ours === undefined) yield* Effect.sleep("50 millis")
        }
        assert.isDefined(ours, "the trade is on md:DOGE-USDT:trades")
        assert.deepInclude(ours, {
          price: "0.12345",
          qty: "200",
          takerSide: "buy",
          maker: result.trades[0].makerOrderId
        })
        const depth = yield* Effect.promise(() => redis.xrange("md:DOGE-USDT:depth", "-", "+"))
        assert.isAbove(depth.length, 0, "depth updates are on md:DOGE-USDT:depth")
        assert.isTrue(
          depth.some(([, f]) => f.join(" ").includes('["0.12345","300"]')),
          "a depth update shows the 300 left at 0.12345"
        )

        const call = (id: string, tagName: string, payload: unknown) => rawRpc(url, rpcRequest(id, tagName, payload))
        const unknown = yield* Effect.promise(() =>
          call("1", "SymbolShard.Place", {
            entityId: "NOPE-USDT",
            payload: { account: "a", clientOrderId: "c", side: "buy", price: "1", qty: "1" }
          })
        )
        // Refused at the gateway, before a SymbolShard entity for it could start.
        assert.strictEqual(unknown.lines[0].exit.cause[0]?.error?._tag ?? "", "InvalidEntityId", unknown.text)
        const offTick = yield* Effect.promise(() =>
          call("2", "SymbolShard.Place", {
            entityId: "BTC-USDT",
            payload: { account: "a", clientOrderId: "c", side: "buy", price: "100.001", qty: "1" }
          })
        )
        assert.include(offTick.text, "InvalidOrder")
        assert.include(offTick.text, "invalid_price")
        const garbage = yield* Effect.promise(() =>
          call("3", "SymbolShard.Place", { entityId: "BTC-USDT", payload: { side: "up", qty: -1 } })
        )
        assert.strictEqual(garbage.lines[0].exit._tag, "Failure")
        const notJson = yield* Effect.promise(() => rawRpc(url, "{nope\n"))
        assert.strictEqual(notJson.lines[0]._tag, "Defect")
        const stillThere = yield* withClient(url, (client) =>
          client["SymbolShard.Depth"]({ entityId: "DOGE-USDT", payload: { depth: 1 } })
        )
        assert.deepStrictEqual(stillThere.asks, [["0.12345", "300"]])
      }).pipe(Effect.scoped),
    120_000
  )
})
