// A symbol shard's snapshot is stored apart from its journal: a runner whose PostgreSQL takes 6 s over every
// snapshot insert (a trigger) while journal writes have a 1 s deadline. Every place is acknowledged, the shard never
// re-reads its state, the snapshot is stored once its write finishes, and a restarted runner restores the same book.
// Written with the batch, the snapshot held that batch past its deadline: the places were answered ShardUnavailable.
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { PlaceOrder } from "../actors/symbol-shard/protocol.ts"
import { redisUrl, scopedDatabase, scopedProcess, withClient } from "./harness.ts"

const symbol = "SOL-USDT"
const resting = (i: number): PlaceOrder => ({
  account: "snap",
  clientOrderId: `rest-${i}`,
  side: "buy",
  price: (1 + (i % 50) / 100).toFixed(2),
  qty: "1"
})

describe("symbol shard snapshots off the journal path (runner process, real Postgres)", () => {
  it.live(
    "a slow snapshot write holds no acknowledgement and restarts nothing; the stored snapshot restores the book",
    () =>
      Effect.gen(function* () {
        const db = yield* scopedDatabase("shard_snapshot")
        const env = {
          DATABASE_URL: db.url,
          REDIS_URL: redisUrl,
          TESSERA_SHARD_SNAPSHOT_EVERY: "20",
          TESSERA_JOURNAL_WRITE_TIMEOUT: "1 second"
        }
        const orders = Array.from({ length: 60 }, (_, i) => resting(i))
        const first = yield* scopedProcess("snapshot-a", { env })
        db.query(`CREATE FUNCTION slow_snapshot() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(6); RETURN NEW; END $$
          LANGUAGE plpgsql;
          CREATE TRIGGER slow_snapshot BEFORE INSERT ON symbol_snapshots FOR EACH ROW EXECUTE FUNCTION slow_snapshot()`)
        const depth = yield* withClient(first.url, (client) =>
          Effect.gen(function* () {
            // Batches of 5, one after another: a snapshot falls due every 4th batch while the previous one is written.
            for (let i = 0; i < orders.length; i += 5) {
              const placed = yield* client["SymbolShard.PlaceBatch"]({
                entityId: symbol,
                payload: { orders: orders.slice(i, i + 5) }
              })
              for (const result of placed.results)
                assert.isDefined(result.orderId, `batch at ${i}: ${JSON.stringify(result)}`)
            }
            return yield* client["SymbolShard.Depth"]({ entityId: symbol, payload: { depth: 100 } })
          })
        )
        assert.strictEqual(
          first.output().includes("re-reading its state"),
          false,
          "the shard re-read its state: a write passed its deadline"
        )
        // The snapshot write in flight finishes (6 s), then the next one falls due with the next flush.
        let stored = 0
        for (let waited = 0; stored === 0 && waited < 20_000; waited += 250) {
          yield* Effect.sleep("250 millis")
          stored = Number(db.query(`SELECT count(*) FROM symbol_snapshots WHERE symbol = '${symbol}'`))
        }
        assert.isAtLeast(stored, 1, "a snapshot is stored")
        const snapshotSeq = Number(db.query(`SELECT max(seq) FROM symbol_snapshots WHERE symbol = '${symbol}'`))
        const journalSeq = Number(db.query(`SELECT max(seq) FROM symbol_journal WHERE symbol = '${symbol}'`))
        assert.isAtMost(snapshotSeq, journalSeq, "a snapshot is of a durable batch")

        // A new runner on the same database restores from that snapshot and the journal after it.
        first.child.kill("SIGKILL")
        yield* Effect.promise(() => first.exited)
        const second = yield* scopedProcess("snapshot-b", { env })
        const restored = yield* withClient(second.url, (client) =>
          client["SymbolShard.Depth"]({ entityId: symbol, payload: { depth: 100 } })
        )
        assert.deepStrictEqual(restored, depth)
      }),
    60_000
  )
})
