// Hot-tier durability: hot partitions that changed are snapshotted every TESSERA_GRAPH_SNAPSHOT_INTERVAL, so after a
// Valkey wipe a restarted partition (or a running one, at its next check) reads back everything older than that.
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as Valkey from "@tessera/platform/Valkey"
import { Duration, Effect, Exit } from "effect"
import { SqlClient } from "effect/sql"
import { freshDatabase, tempDataDir } from "../../test/harness.ts"
import { partitionOf } from "./core.ts"
import * as GraphMetrics from "./metrics.ts"
import { readMeta } from "./Partition.ts"
import { ProxyPartition } from "./protocol.ts"
import { inProcessRunner } from "./testkit.ts"

const redisUrl = process.env.TESSERA_TEST_REDIS ?? "redis://127.0.0.1:6379"
const database = freshDatabase("graph_durable")
afterAll(() => database.drop())

const partitions = 8
const interval = Duration.millis(250)

const redis = (prefix: string) => Valkey.layerIoredis({ url: redisUrl, keyPrefix: prefix })

/** One runner's worth of the graph module: the in-process cluster, real PostgreSQL and Redis, a local cold tier. */
const runnerLayer = (dir: string, prefix: string, snapshotInterval: Duration.Duration) =>
  inProcessRunner({
    databaseUrl: database.url,
    dataDir: dir,
    valkey: redis(prefix),
    graph: { graphPartitions: partitions, graphSnapshotInterval: snapshotInterval }
  })

const wipe = (prefix: string) =>
  Effect.gen(function* () {
    const valkey = yield* Valkey.Valkey
    const keys = yield* valkey.keys("*")
    if (keys.length > 0) yield* valkey.del(...keys)
  }).pipe(Effect.provide(redis(prefix)))

/** Polls `check` until it holds (a bounded number of tries, no timing asserted). */
const eventually = <E, R>(what: string, check: Effect.Effect<boolean, E, R>) =>
  Effect.gen(function* () {
    for (let i = 0; i < 200; i++) {
      if (yield* check) return
      yield* Effect.sleep(Duration.millis(100))
    }
    assert.fail(`never: ${what}`)
  })

const client = Effect.map(ProxyPartition.client, (make) => (id: string) => make(String(partitionOf(id, partitions))))

const versions = (ids: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const out = new Map<number, { version: number; location: string | null }>()
    for (const p of new Set(ids.map((id) => partitionOf(id, partitions)))) {
      const row = yield* readMeta(sql, p)
      out.set(p, { version: row?.version ?? -1, location: row?.location ?? null })
    }
    return out
  })

const older = Array.from({ length: 40 }, (_, i) => `a${i}`)

describe("graph hot-tier durability (real PostgreSQL + Redis)", () => {
  it.live(
    "snapshots changed hot partitions each interval; a Valkey wipe loses nothing older than it",
    () => {
      const data = tempDataDir()
      const prefix = `test:durable:${Date.now().toString(36)}:${Math.random().toString(36).slice(2, 8)}:`
      const restoresBefore = GraphMetrics.wipeRestores.value
      return Effect.gen(function* () {
        // First run: write, wait for the checkpoints, write more, stop.
        yield* Effect.gen(function* () {
          const at = yield* client
          for (const [i, id] of older.entries()) yield* at(id).PutVertex({ id, properties: { i } })
          for (let i = 0; i + 1 < older.length; i++) {
            yield* at(older[i]).AddEdge({ src: older[i], label: "next", dst: older[i + 1] })
          }
          yield* eventually(
            "every partition written to has a checkpoint",
            Effect.map(versions(older), (rows) => [...rows.values()].every((row) => row.location !== null))
          )
          // A partition already in its snapshot is not snapshotted again: versions stay put over several intervals.
          yield* eventually(
            "a checkpoint after the last edge",
            Effect.gen(function* () {
              const before = yield* versions(older)
              yield* Effect.sleep(Duration.times(interval, 4))
              const after = yield* versions(older)
              return [...before].every(([p, row]) => after.get(p)?.version === row.version)
            })
          )
          const settled = yield* versions(older)
          yield* Effect.sleep(Duration.times(interval, 4))
          assert.deepStrictEqual(yield* versions(older), settled, "clean partitions are not snapshotted again")
          yield* at("late").PutVertex({ id: "late", properties: { late: true } })
        }).pipe(Effect.provide(runnerLayer(data.dir, prefix, interval)))

        yield* wipe(prefix)

        // Restarted on an empty Valkey: every vertex and edge older than the interval is back.
        yield* Effect.gen(function* () {
          const at = yield* client
          for (const [i, id] of older.entries()) {
            assert.deepStrictEqual((yield* at(id).GetVertex({ id })).properties, { i }, id)
          }
          for (let i = 0; i + 1 < older.length; i++) {
            assert.deepStrictEqual(yield* at(older[i]).Neighbors({ id: older[i] }), [
              { label: "next", id: older[i + 1] }
            ])
          }
          assert.isAtLeast(GraphMetrics.wipeRestores.value - restoresBefore, 1, "restores counted")

          // A wipe under a running partition: its next check restores the last checkpoint.
          const id = "b0"
          yield* at(id).PutVertex({ id, properties: { b: 0 } })
          const p = partitionOf(id, partitions)
          const before = (yield* versions([id])).get(p)?.version ?? 0
          yield* eventually(
            "a checkpoint holding b0",
            Effect.map(versions([id]), (rows) => (rows.get(p)?.version ?? 0) > before)
          )
          yield* wipe(prefix)
          yield* eventually(
            "b0 restored under the running partition",
            Effect.map(Effect.exit(at(id).GetVertex({ id })), Exit.isSuccess)
          )
          assert.deepStrictEqual((yield* at(id).GetVertex({ id })).properties, { b: 0 })
        }).pipe(Effect.provide(runnerLayer(data.dir, prefix, interval)))
      }).pipe(Effect.ensuring(Effect.ignore(wipe(prefix))), Effect.ensuring(Effect.sync(data.remove)))
    },
    60_000
  )
})
