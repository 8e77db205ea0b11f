// A deduplicator activation whose owner epoch was claimed by another (as after its shard moved while it paused)
// writes nothing more, counts the refused insert and stands down; its next activation claims anew and writes on.
import { PgClient } from "@effect/sql-pg"
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as SqlMigrator from "@tessera/platform/SqlMigrator"
import * as Valkey from "@tessera/platform/Valkey"
import { Duration, Effect, Layer, Redacted } from "effect"
import { ShardingConfig, TestRunner } from "effect/cluster"
import { SqlClient } from "effect/sql"
import { freshDatabase } from "../../test/harness.ts"
import { layer as gatherConfig } from "./config.ts"
import { type DeltaColumns, emptyColumns, pushDelta } from "./dedup.ts"
import { DeduplicatorLayer, metrics } from "./entity.ts"
import { Deduplicator } from "./protocol.ts"
import { claimOwner, migrations } from "./store.ts"

const database = freshDatabase("dedup_fence")
afterAll(() => database.drop())

// The in-process cluster: its entity manager ends an activation whose handler dies and builds a new one.
const testLayer = DeduplicatorLayer.pipe(
  Layer.provideMerge(
    Layer.mergeAll(
      TestRunner.layer,
      ShardingConfig.layer(),
      SqlMigrator.layer({ migrations, table: "gatherer_migrations" }).pipe(
        Layer.provideMerge(PgClient.layer({ url: Redacted.make(database.url) }))
      ),
      Valkey.layerMemory,
      gatherConfig({})
    )
  )
)

const batchOf = (market: string, ...seqs: ReadonlyArray<number>): DeltaColumns => {
  const columns = emptyColumns()
  for (const seq of seqs) pushDelta(columns, market, seq, Date.now(), 0, 100 + seq, 1)
  return columns
}

const seqsOf = (market: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ seq: number | string }>`SELECT seq FROM orderbook_deltas WHERE market = ${market} ORDER BY seq`,
      (rows) => rows.map((row) => Number(row.seq))
    )
  )

const epochOf = (dedup: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(sql<{ epoch: number | string }>`SELECT epoch FROM dedup_owners WHERE dedup = ${dedup}`, (rows) =>
      Number(rows[0]?.epoch)
    )
  )

/** Polls `check` every 20 ms until it holds or `ms` pass; answers whether it held. */
const eventually = <E, R>(ms: number, check: Effect.Effect<boolean, E, R>) =>
  Effect.gen(function* () {
    const until = Date.now() + ms
    while (Date.now() < until) {
      if (yield* check) return true
      yield* Effect.sleep(Duration.millis(20))
    }
    return yield* check
  })

describe("a stale deduplicator activation (real PostgreSQL)", () => {
  it.live(
    "writes nothing after another owner claims it, counts the refusal and stands down; a new activation writes on",
    () =>
      Effect.gen(function* () {
        const dedup = (yield* Deduplicator.client)("d5")
        const staleWrites = metrics.staleOwner.labels({ dedup: "d5" })
        const before = staleWrites.value

        assert.strictEqual((yield* dedup.Ingest({ batch: batchOf("FX-A", 1, 2) })).accepted, 2)
        assert.isTrue(
          yield* eventually(
            2000,
            Effect.map(seqsOf("FX-A"), (seqs) => seqs.length === 2)
          )
        )

        // Another activation takes the deduplicator over: this one's next insert is refused.
        yield* claimOwner("d5")
        assert.strictEqual((yield* dedup.Ingest({ batch: batchOf("FX-A", 3, 4) })).accepted, 2)
        assert.isTrue(
          yield* eventually(
            2000,
            Effect.sync(() => staleWrites.value === before + 1)
          ),
          "the refused insert is counted"
        )
        assert.deepStrictEqual(yield* seqsOf("FX-A"), [1, 2], "the stale owner wrote nothing")

        // It stands down: its next request dies in it, the entity manager builds a new activation, which claims the
        // next epoch and serves the request again.
        assert.strictEqual((yield* dedup.Ingest({ batch: batchOf("FX-A", 5) })).accepted, 1)
        assert.strictEqual(yield* epochOf("d5"), 3, "rebuilt: a third claim")
        // The refused deltas come again (from a gatherer replica or a venue snapshot) and the new owner writes them.
        yield* dedup.Ingest({ batch: batchOf("FX-A", 3, 4, 5) })
        assert.isTrue(
          yield* eventually(
            2000,
            Effect.map(seqsOf("FX-A"), (seqs) => seqs.length === 5)
          )
        )
        assert.deepStrictEqual(yield* seqsOf("FX-A"), [1, 2, 3, 4, 5])
        assert.strictEqual(staleWrites.value, before + 1)
      }).pipe(Effect.provide(testLayer))
  )
})
