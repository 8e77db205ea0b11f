// The runner's repair of trades streams no activation heals, against the real PostgreSQL tables and Redis (keys
// under a prefix of this run's own): a symbol whose owner died between commit and publish, and that no request
// wakes, gets the missing tail from `trades` after one repair interval; a symbol active on this runner is left to its
// own resync.
import { PgClient } from "@effect/sql-pg"
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as Valkey from "@tessera/platform/Valkey"
import { Effect, Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { deleteRedisKeys, freshDatabase, redisUrl } from "../../test/harness.ts"
import * as Journal from "./journal.ts"
import * as MarketData from "./marketData.ts"
import { tradesStream } from "./protocol.ts"
import type { TradeRow } from "./ShardCore.ts"

const database = freshDatabase("md_repair")
const prefix = `t-md-repair-${Date.now().toString(36)}`
afterAll(async () => {
  database.drop()
  await deleteRedisKeys(prefix)
})

const layer = Layer.mergeAll(
  Journal.layerMigrations.pipe(Layer.provideMerge(PgClient.layer({ url: Redacted.make(database.url) }))),
  Valkey.layerIoredis({ url: redisUrl, keyPrefix: `${prefix}:` })
)

const trade = (symbol: string, id: number): TradeRow => ({
  symbol,
  trade_id: id,
  maker_order_id: 2 * id,
  taker_order_id: 2 * id + 1,
  price: "100.00",
  qty: "1",
  taker_side: "buy"
})

/** Commits trades `from..to` of `symbol` to the `trades` table, as a shard's journal write would. */
const commit = (symbol: string, from: number, to: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => {
    const rows = Array.from({ length: to - from + 1 }, (_, i) => trade(symbol, from + i))
    return sql`INSERT INTO trades ${sql.insert(rows as never)}`
  })

/** Trade ids in the stream, once it holds `n` entries (or after 5 s). */
const streamIds = (symbol: string, n: number) =>
  Effect.gen(function* () {
    const valkey = yield* Valkey.Valkey
    let ids: Array<number> = []
    for (let i = 0; i < 250; i++) {
      const entries = yield* valkey.xrange(tradesStream(symbol))
      ids = entries.map((e) => Number(e.id.slice(0, e.id.indexOf("-"))))
      if (ids.length >= n) break
      yield* Effect.sleep("20 millis")
    }
    return ids
  })

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

describe("market data repair (PostgreSQL + Redis)", () => {
  it.live("an idle symbol's trades stream gets its durable tail; an active one is left to its own publisher", () =>
    Effect.gen(function* () {
      const valkey = yield* Valkey.Valkey
      const tables = yield* MarketData.sqlTables
      // BTC-USDT: the dead owner published 1-3 and committed 4-9. ETH-USDT: active here, its tail left alone.
      yield* commit("BTC-USDT", 1, 9)
      yield* valkey.pipeline(
        range(1, 3).flatMap((id) =>
          MarketData.commands({ symbol: "BTC-USDT", seq: id, trades: [trade("BTC-USDT", id)], depth: none, at: 0 })
        )
      )
      const publisher = yield* MarketData.make(tables, { repairEvery: "50 millis" })
      yield* publisher.activate("ETH-USDT", 0, none)
      yield* commit("ETH-USDT", 1, 2)
      assert.deepStrictEqual(yield* streamIds("BTC-USDT", 9), range(1, 9), "the tail republished, in order")
      const entries = yield* valkey.xrange(tradesStream("BTC-USDT"))
      assert.deepStrictEqual(entries[8]?.fields.maker, "18", "the payload is the table's row")
      yield* Effect.sleep("300 millis")
      assert.deepStrictEqual(yield* valkey.xrange(tradesStream("ETH-USDT")), [], "active here: not repaired")
    }).pipe(Effect.scoped, Effect.provide(layer))
  )
})

const none = { bids: [], asks: [] } as never
