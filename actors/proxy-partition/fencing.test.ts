// A partition activation whose owner epoch was claimed by another (as after its shard moved while it paused) has its
// metadata write refused, counts it and stands down; the activation the entity manager builds next does the work.
// Its hot-tier (Valkey) writes are fenced the same way: once a newer activation raised the partition's fence, every
// write of the stale one changes no key (real Redis through the Lua script, and the memory Valkey).
import { PgClient } from "@effect/sql-pg"
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as ObjectStore from "@tessera/platform/ObjectStore"
import * as SqlMigrator from "@tessera/platform/SqlMigrator"
import * as Valkey from "@tessera/platform/Valkey"
import { Cause, Effect, Exit, Layer, Option, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { freshDatabase, tempDataDir } from "../../test/harness.ts"
import { partitionKeys, partitionOf, snapshotKey } from "./core.ts"
import * as GraphMetrics from "./metrics.ts"
import { claimPartition, makePartition, migrations, migrationsTable, readMeta } from "./Partition.ts"
import { ProxyPartition } from "./protocol.ts"
import { inProcessRunner } from "./testkit.ts"

const database = freshDatabase("graph_entity_fence")
afterAll(() => database.drop())

const partitions = 8

// The in-process cluster: its entity manager ends an activation whose handler dies and builds a new one.
const testLayer = (dir: string) =>
  inProcessRunner({
    databaseUrl: database.url,
    dataDir: dir,
    valkey: Valkey.layerMemory,
    graph: { graphPartitions: partitions }
  })

const epochOf = (partition: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ epoch: number | string }>`SELECT epoch FROM graph_partition_owners WHERE partition = ${partition}`,
      (rows) => Number(rows[0]?.epoch)
    )
  )

describe("a stale partition activation (real PostgreSQL)", () => {
  it.live("has its pointer swap refused, counts it and stands down; the next activation demotes", () => {
    const data = tempDataDir()
    return Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const partition = 5
      const client = (yield* ProxyPartition.client)(String(partition))
      const staleWrites = GraphMetrics.staleOwnerWrites.labels({ partition: String(partition) })
      const before = staleWrites.value
      let id = "v0"
      for (let i = 0; partitionOf(id, partitions) !== partition; i++) id = `v${i}`

      yield* client.PutVertex({ id, properties: { n: 1 } })
      assert.strictEqual(yield* epochOf(partition), 1)
      // Another activation takes the partition over: this one's demotion is refused at the pointer swap, it stands
      // down, and the entity manager serves the request again with a new activation (a third claim).
      yield* claimPartition(sql, partition)
      const demoted = yield* client.Demote()
      assert.strictEqual(staleWrites.value, before + 1, "the refused write is counted")
      assert.strictEqual(yield* epochOf(partition), 3, "rebuilt: a third claim")
      assert.strictEqual(demoted.version, 1)
      const row = yield* readMeta(sql, partition)
      assert.strictEqual(row?.tier, "cold")
      assert.strictEqual(row?.location, snapshotKey(partition, 1, 3), "written by the new activation")
      assert.deepStrictEqual((yield* client.GetVertex({ id })).properties, { n: 1 })
    }).pipe(Effect.provide(testLayer(data.dir)), Effect.ensuring(Effect.sync(data.remove)))
  })
})

const isStale = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) &&
  Cause.findErrorOption(exit.cause).pipe(Option.exists((e) => (e as { _tag?: string })._tag === "StaleOwner"))

describe("a stale partition activation's hot-tier writes", () => {
  it.live("are refused once a newer activation raised the fence, counted, and change no key; it stands down", () => {
    const data = tempDataDir()
    return Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const client = (yield* ProxyPartition.client)(String(6))
      const valkey = yield* Valkey.Valkey
      const keys = partitionKeys("g", 6)
      const staleWrites = GraphMetrics.staleOwnerWrites.labels({ partition: "6" })
      let id = "w0"
      for (let i = 0; partitionOf(id, partitions) !== 6; i++) id = `w${i}`
      yield* client.PutVertex({ id, properties: { n: 1 } })
      const before = staleWrites.value
      const epoch = yield* epochOf(6)
      // Another activation takes the partition over (SQL claim, then the hot tier's fence), as a new owner does.
      const newer = yield* claimPartition(sql, 6)
      assert.isTrue(yield* valkey.claimFence(keys.owner, newer))
      // The old activation's write is refused at the fence: counted, it stands down, and the activation the entity
      // manager builds next serves the request again (a third claim, above the fence).
      yield* client.PutVertex({ id, properties: { n: 2 } })
      assert.strictEqual(staleWrites.value, before + 1, "the refused hot-tier write is counted")
      assert.isAbove(yield* epochOf(6), newer, "rebuilt: a newer claim")
      assert.isAbove(newer, epoch)
      assert.deepStrictEqual((yield* client.GetVertex({ id })).properties, { n: 2 }, "written by the new activation")
    }).pipe(Effect.provide(testLayer(data.dir)), Effect.ensuring(Effect.sync(data.remove)))
  })

  const stalePartitionWritesNothing = (partition: number) =>
    Effect.gen(function* () {
      const valkey = yield* Valkey.Valkey
      const sql = yield* SqlClient.SqlClient
      const cold = yield* ObjectStore.ObjectStore
      const keys = partitionKeys("g", partition)
      const open = makePartition({ partition, keyPrefix: "g", valkey, sql, cold })
      const staleWrites = GraphMetrics.staleOwnerWrites.labels({ partition: String(partition) })

      const stale = yield* open
      yield* stale.write(stale.hot.put("a", '{"v":1}'))
      yield* stale.write(stale.hot.addEdge("a", "knows", "b"))
      const before = staleWrites.value
      const current = yield* open
      assert.isAbove(current.epoch, stale.epoch)
      // Every kind of hot-tier write the stale activation could make: each refused, counted, nothing changed.
      const attempts = [
        stale.hot.put("a", '{"v":"stale"}'),
        stale.hot.put("z", "{}"),
        stale.hot.delete("a"),
        stale.hot.addEdge("a", "x", "c"),
        stale.hot.removeEdge("a", "knows", "b"),
        stale.hot.adopt("y", "{}", []),
        stale.hot.release("a"),
        stale.hot.forwardTo([["a", 3]]),
        stale.hot.markLive,
        stale.hot.evict()
      ]
      for (const attempt of attempts) assert.isTrue(isStale(yield* Effect.exit(attempt)), "refused StaleOwner")
      assert.strictEqual(staleWrites.value, before + attempts.length, "each refusal counted")
      assert.strictEqual(yield* valkey.get(keys.vertex("a")), '{"v":1}', "the vertex keeps its value")
      assert.deepStrictEqual(yield* valkey.smembers(keys.out("a")), ["knows|b"], "its edges are untouched")
      assert.deepStrictEqual(yield* valkey.mget(keys.vertex("z"), keys.vertex("y")), [null, null], "nothing created")
      assert.deepStrictEqual((yield* valkey.smembers(keys.ids)).sort(), ["a"])
      // It stands down: later requests are refused before anything runs.
      assert.isTrue(isStale(yield* Effect.exit(stale.run(stale.hot.get("a")))))
      // An older epoch can neither claim the fence back nor write under it.
      assert.isFalse(yield* valkey.claimFence(keys.owner, stale.epoch))
      assert.isUndefined(yield* valkey.fenced({ key: keys.owner, epoch: stale.epoch }, [Valkey.Cmd.del(keys.ids)]))
      // The current owner writes as usual, results as a pipeline gives them.
      assert.isFalse(yield* current.write(current.hot.put("a", '{"v":2}')), "not created: it existed")
      assert.isTrue(yield* current.write(current.hot.addEdge("a", "knows", "c")))
      assert.strictEqual(yield* valkey.get(keys.vertex("a")), '{"v":2}')
      assert.deepStrictEqual(
        yield* valkey.fenced({ key: keys.owner, epoch: current.epoch }, [
          Valkey.Cmd.get(keys.vertex("a")),
          Valkey.Cmd.get(keys.vertex("none")),
          Valkey.Cmd.set(keys.vertex("n"), "{}", { nx: true }),
          Valkey.Cmd.set(keys.vertex("n"), "{}", { nx: true }),
          Valkey.Cmd.scard(keys.ids)
        ]),
        ['{"v":2}', null, true, false, 1]
      )
    })

  const sqlLayer = SqlMigrator.layer({ migrations, table: migrationsTable }).pipe(
    Layer.provideMerge(PgClient.layer({ url: Redacted.make(database.url) }))
  )
  it.live("real Redis (the fence as a Lua script)", () => {
    const prefix = `test:fence:${Date.now().toString(36)}:${Math.random().toString(36).slice(2, 8)}:`
    return stalePartitionWritesNothing(7).pipe(
      Effect.tap(() =>
        Effect.flatMap(Valkey.Valkey, (valkey) =>
          Effect.flatMap(valkey.keys("*"), (found) => (found.length > 0 ? valkey.del(...found) : Effect.void))
        )
      ),
      Effect.provide(
        Layer.mergeAll(
          Valkey.layerIoredis({ url: process.env.TESSERA_TEST_REDIS ?? "redis://127.0.0.1:6379", keyPrefix: prefix }),
          sqlLayer,
          ObjectStore.layerMemory
        )
      )
    )
  })
  it.live("the memory Valkey", () =>
    stalePartitionWritesNothing(4).pipe(
      Effect.provide(Layer.mergeAll(Valkey.layerMemory, sqlLayer, ObjectStore.layerMemory))
    )
  )
})
