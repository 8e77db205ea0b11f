import { existsSync, readdirSync } from "node:fs"
import { join } from "node:path"
import { PgClient } from "@effect/sql-pg"
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as ObjectStore from "@tessera/platform/ObjectStore"
import * as SqliteClient from "@tessera/platform/SqliteClient"
import * as SqlMigrator from "@tessera/platform/SqlMigrator"
import { layerIoredis, Valkey } from "@tessera/platform/Valkey"
import { Cause, Deferred, Effect, Exit, Fiber, Layer, Option, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { freshDatabase, tempDataDir } from "../../test/harness.ts"
import { decodeSnapshot, partitionKeys, snapshotKey } from "./core.ts"
import * as GraphMetrics from "./metrics.ts"
import {
  claimPartition,
  type MetaRow,
  makePartition,
  migrations,
  migrationsTable,
  readMeta,
  touchMeta,
  writeMeta
} from "./Partition.ts"

const redisUrl = process.env.TESSERA_TEST_REDIS ?? "redis://127.0.0.1:6379"

const database = freshDatabase("graph_fence")
afterAll(() => database.drop())

/**
 * Real Redis under a unique prefix, the graph tables (a fresh SQLite file, or the test's PostgreSQL database), a
 * local cold-tier folder.
 */
const fixture = (dialect: "sqlite" | "pg" = "sqlite") => {
  const data = tempDataDir()
  const prefix = `test:pp:${Date.now().toString(36)}:${Math.random().toString(36).slice(2, 8)}:`
  const layer = Layer.mergeAll(
    layerIoredis({ url: redisUrl, keyPrefix: prefix }),
    SqlMigrator.layer({ migrations, table: migrationsTable }).pipe(
      Layer.provideMerge(
        dialect === "pg"
          ? PgClient.layer({ url: Redacted.make(database.url) })
          : SqliteClient.layer({ filename: join(data.dir, "t.db") })
      )
    ),
    ObjectStore.layerLocal({ root: join(data.dir, "cold") })
  )
  return { data, layer, coldDir: join(data.dir, "cold") }
}

const open = (partition: number, zones?: { readonly preferredZone?: string; readonly runnerZone?: string }) =>
  Effect.gen(function* () {
    const valkey = yield* Valkey
    const sql = yield* SqlClient.SqlClient
    const cold = yield* ObjectStore.ObjectStore
    return yield* makePartition({ partition, keyPrefix: "g", valkey, sql, cold, ...zones })
  })

const withFixture = <A, E>(
  body: (f: ReturnType<typeof fixture>) => Effect.Effect<A, E, Valkey | SqlClient.SqlClient | ObjectStore.ObjectStore>,
  dialect: "sqlite" | "pg" = "sqlite"
) => {
  const f = fixture(dialect)
  return body(f).pipe(
    Effect.tap(() =>
      Effect.flatMap(Valkey, (v) =>
        Effect.flatMap(v.keys("*"), (keys) => (keys.length === 0 ? Effect.void : Effect.asVoid(v.del(...keys))))
      )
    ),
    Effect.provide(f.layer),
    Effect.ensuring(Effect.sync(f.data.remove))
  )
}

describe("ProxyPartition hot tier (real Redis)", () => {
  it.live("writes, reads, edges, neighbours and deletes", () =>
    withFixture(() =>
      Effect.gen(function* () {
        const p = yield* open(5)
        assert.isTrue(yield* p.write(p.hot.put("alice", '{"age":30}')))
        assert.isFalse(yield* p.write(p.hot.put("alice", '{"age":31}')))
        yield* p.write(p.hot.put("bob", "{}"))
        assert.strictEqual(yield* p.run(p.hot.get("alice")), '{"age":31}')
        assert.isNull(yield* p.run(p.hot.get("nobody")))
        assert.deepStrictEqual(yield* p.run(p.hot.getMany(["bob", "nobody", "alice"])), ["{}", null, '{"age":31}'])
        assert.isTrue(yield* p.hot.addEdge("alice", "knows", "bob"))
        assert.isFalse(yield* p.hot.addEdge("alice", "knows", "bob"))
        yield* p.hot.addEdge("alice", "likes", "x|y")
        const all = yield* p.run(p.hot.neighbors("alice", undefined))
        assert.deepStrictEqual(all?.map((n) => `${n.label}>${n.id}`).sort(), ["knows>bob", "likes>x|y"])
        assert.deepStrictEqual(yield* p.hot.neighbors("alice", "likes"), [{ label: "likes", id: "x|y" }])
        assert.isUndefined(yield* p.hot.neighbors("nobody", undefined))
        assert.deepStrictEqual(yield* p.hot.neighborsMany(["alice", "bob"], "knows"), [["bob"], []])
        assert.isTrue(yield* p.hot.removeEdge("alice", "knows", "bob"))
        assert.strictEqual(yield* p.hot.count, 2)
        assert.isTrue(yield* p.hot.delete("alice"))
        assert.isFalse(yield* p.hot.delete("alice"))
        assert.isUndefined(yield* p.hot.neighbors("alice", undefined))
        assert.strictEqual(yield* p.hot.count, 1)
      })
    )
  )
})

describe("ProxyPartition tiers (local cold tier)", () => {
  it.live("demotes to a snapshot, evicts Valkey, and promotes on the next request", () =>
    withFixture((f) =>
      Effect.gen(function* () {
        const valkey = yield* Valkey
        const sql = yield* SqlClient.SqlClient
        const p = yield* open(9)
        // More vertices than one snapshot pipeline reads (SNAPSHOT_CHUNK): the last ones come back too.
        for (let i = 0; i < 600; i++) yield* p.write(p.hot.put(`v${i}`, JSON.stringify({ i })))
        yield* p.hot.addEdge("v1", "knows", "v2")
        yield* p.hot.addEdge("v599", "knows", "v0")
        const demoted = yield* p.demote
        assert.strictEqual(demoted.version, 1)
        assert.strictEqual(demoted.vertices, 600)
        assert.deepStrictEqual(
          yield* valkey.keys("g:{9}:*"),
          ["g:{9}:owner"],
          "evicted from Valkey (the owner fence stays)"
        )
        const row = yield* readMeta(sql, 9)
        assert.strictEqual(row?.tier, "cold")
        assert.strictEqual(row?.location, snapshotKey(9, 1, p.epoch))
        assert.isTrue(existsSync(join(f.coldDir, snapshotKey(9, 1, p.epoch))))

        // A new incarnation (the entity restarted elsewhere) sees the cold pointer and promotes on first use.
        const again = yield* open(9)
        assert.strictEqual(again.meta().tier, "cold")
        assert.strictEqual(yield* again.run(again.hot.get("v7")), '{"i":7}')
        assert.strictEqual(again.meta().tier, "hot")
        assert.strictEqual((yield* readMeta(sql, 9))?.tier, "hot")
        assert.deepStrictEqual(yield* again.hot.neighbors("v1", undefined), [{ label: "knows", id: "v2" }])
        assert.deepStrictEqual(yield* again.hot.neighbors("v599", undefined), [{ label: "knows", id: "v0" }])
        assert.strictEqual(yield* again.run(again.hot.get("v598")), '{"i":598}')
        assert.strictEqual(yield* again.hot.count, 600)

        // A second demotion writes version 2 and removes version 1.
        yield* again.write(again.hot.put("v600", "{}"))
        assert.strictEqual((yield* again.demote).version, 2)
        assert.isFalse(existsSync(join(f.coldDir, snapshotKey(9, 1, p.epoch))))
        assert.strictEqual(yield* again.run(again.hot.get("v600")), "{}")
      })
    )
  )

  it.live("a crash between the snapshot write and the pointer swap loses nothing", () =>
    withFixture((f) =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const p = yield* open(3)
        yield* p.write(p.hot.put("a", '{"v":1}'))
        yield* p.demote // version 1 in the cold tier
        yield* p.write(p.hot.put("a", '{"v":2}')) // promoted, then updated

        // Step one of demotion only (snapshot object v2 written), then the "crash": no pointer swap, no eviction.
        const written = yield* p.writeSnapshot
        assert.strictEqual(written.version, 2)
        const row = yield* readMeta(sql, 3)
        assert.strictEqual(row?.tier, "hot", "pointer still says hot")
        assert.strictEqual(row?.location, snapshotKey(3, 1, p.epoch), "previous snapshot still referenced")

        // The restarted partition serves the latest acknowledged write from the hot tier...
        const restarted = yield* open(3)
        assert.strictEqual(yield* restarted.run(restarted.hot.get("a")), '{"v":2}')
        // ...and the next complete demotion writes v2 under its own epoch (the orphan is never pointed to) and
        // round-trips the data.
        const demoted = yield* restarted.demote
        assert.strictEqual(demoted.version, 2)
        assert.strictEqual((yield* readMeta(sql, 3))?.location, snapshotKey(3, 2, restarted.epoch))
        assert.strictEqual(yield* restarted.run(restarted.hot.get("a")), '{"v":2}')

        // A crash in the middle of a local write (temporary file written, never renamed) keeps the old object.
        const key = snapshotKey(3, 2, restarted.epoch)
        const before = readdirSync(join(f.coldDir, "graph/partitions/3"))
        yield* Effect.promise(() =>
          ObjectStore.writeAtomically(join(f.coldDir, key), new TextEncoder().encode("garbage"), true)
        )
        const cold = yield* ObjectStore.ObjectStore
        const bytes = yield* cold.get(key)
        assert.isNotNull(bytes)
        assert.strictEqual(decodeSnapshot(bytes!).vertices[0][1], '{"v":2}')
        assert.strictEqual(readdirSync(join(f.coldDir, "graph/partitions/3")).length, before.length + 1)
      })
    )
  )

  it.live("a missing snapshot fails the request with a storage error, not a defect", () =>
    withFixture(() =>
      Effect.gen(function* () {
        const cold = yield* ObjectStore.ObjectStore
        const p = yield* open(4)
        yield* p.write(p.hot.put("a", "{}"))
        yield* p.demote
        yield* cold.delete(snapshotKey(4, 1, p.epoch))
        const again = yield* open(4)
        const exit = yield* Effect.exit(again.run(again.hot.get("a")))
        assert.isTrue(Exit.isFailure(exit))
        assert.include(JSON.stringify(exit), "GraphStorageError")
      })
    )
  )
})

describe("ProxyPartition zone accounting (real Redis)", () => {
  it.live("stores the preferred zone in the metadata row and follows a configuration change", () =>
    withFixture(() =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* open(6, { preferredZone: "us-east-1a", runnerZone: "us-east-1a" })
        assert.strictEqual((yield* readMeta(sql, 6))?.zone, "us-east-1a")
        yield* open(7)
        assert.isNull((yield* readMeta(sql, 7))?.zone ?? null, "no zones configured: no preference")
        // TESSERA_GRAPH_ZONES changed: the next incarnation rewrites the hint, keeping the rest of the row.
        const p = yield* open(6, { preferredZone: "us-east-1b" })
        yield* p.write(p.hot.put("a", "{}"))
        yield* p.demote
        const moved = yield* open(6, { preferredZone: "us-east-1c" })
        const row = yield* readMeta(sql, 6)
        assert.strictEqual(row?.zone, "us-east-1c")
        assert.strictEqual(row?.tier, "cold")
        assert.strictEqual(moved.meta().zone, "us-east-1c")
      })
    )
  )

  it.live("counts requests served in and outside the preferred zone, with gateways' cross-zone reads", () =>
    withFixture(() =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const valkey = yield* Valkey
        const keys = partitionKeys("g", 12)
        // Hosted in zone b, prefers zone a: every entity request crosses zones.
        const away = yield* open(12, { preferredZone: "a", runnerZone: "b" })
        yield* away.write(away.hot.put("x", "{}"))
        for (let i = 0; i < 4; i++) yield* away.run(away.hot.get("x"))
        // Gateways read 10 vertices directly, 3 of them from another zone (as the gateway flush records them).
        yield* valkey.incrby(keys.reads, 10)
        yield* valkey.incrby(keys.crossZoneReads, 3)
        yield* away.report
        let row = yield* readMeta(sql, 12)
        assert.strictEqual(row?.crossZone, 5 + 3)
        assert.strictEqual(row?.sameZone, 7)
        assert.isNull(yield* valkey.get(keys.crossZoneReads), "the owner took the counts")

        // The partition moves to a zone-a runner: its requests now count as same zone, added to the totals.
        const home = yield* open(12, { preferredZone: "a", runnerZone: "a" })
        for (let i = 0; i < 6; i++) yield* home.run(home.hot.get("x"))
        yield* home.report
        row = yield* readMeta(sql, 12)
        assert.strictEqual(row?.sameZone, 7 + 6)
        assert.strictEqual(row?.crossZone, 8)
        assert.strictEqual(home.meta().sameZone, 13)

        // Without a preferred zone nothing is counted.
        const plain = yield* open(13)
        yield* plain.write(plain.hot.put("y", "{}"))
        yield* plain.report
        const none = yield* readMeta(sql, 13)
        assert.strictEqual((none?.sameZone ?? -1) + (none?.crossZone ?? -1), 0)
      })
    )
  )
})

const isStale = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) &&
  Cause.findErrorOption(exit.cause).pipe(Option.exists((e) => (e as { _tag?: string })._tag === "StaleOwner"))

/** Every way a stale activation could touch the metadata, the cold tier or the hot tier is refused. */
const staleOwnerTouchesNothing = (p: number, dialect: "sqlite" | "pg") =>
  withFixture(
    (f) =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const valkey = yield* Valkey
        // The counters are the process's: the refusals are counted from here.
        const counted = [p, p + 1, p + 2].map(
          (q) => GraphMetrics.staleOwnerWrites.labels({ partition: String(q) }).value
        )
        const staleWrites = (partition: number) =>
          GraphMetrics.staleOwnerWrites.labels({ partition: String(partition) }).value - counted[partition - p]

        // A demotion (snapshot object, pointer swap, eviction) by an owner that lost the partition.
        const old = yield* open(p)
        yield* old.write(old.hot.put("a", '{"v":1}'))
        const current = yield* open(p)
        assert.strictEqual(current.epoch, old.epoch + 1)
        assert.isTrue(isStale(yield* Effect.exit(old.demote)))
        const row = yield* readMeta(sql, p)
        assert.deepStrictEqual([row?.tier, row?.location, row?.version], ["hot", null, 0], "metadata unchanged")
        assert.strictEqual(yield* current.run(current.hot.get("a")), '{"v":1}', "keys not evicted")
        const dir = join(f.coldDir, `graph/partitions/${p}`)
        assert.deepStrictEqual(existsSync(dir) ? readdirSync(dir) : [], [], "the refused snapshot object is removed")
        assert.strictEqual(staleWrites(p), 1)
        // From then on it refuses everything, touching nothing (and counting nothing: no write was attempted).
        assert.isTrue(isStale(yield* Effect.exit(old.run(old.hot.get("a")))))
        assert.isTrue(isStale(yield* Effect.exit(old.report)))
        assert.strictEqual(staleWrites(p), 1)
        // The current owner demotes as usual.
        assert.strictEqual((yield* current.demote).version, 1)
        assert.strictEqual((yield* readMeta(sql, p))?.location, snapshotKey(p, 1, current.epoch))

        // A report (last access, temperature, zone traffic) by a stale owner changes nothing.
        const oldReporter = yield* open(p + 1, { preferredZone: "a", runnerZone: "a" })
        yield* oldReporter.write(oldReporter.hot.put("b", "{}"))
        const untouched = yield* readMeta(sql, p + 1)
        yield* open(p + 1, { preferredZone: "a", runnerZone: "a" })
        assert.isTrue(isStale(yield* Effect.exit(oldReporter.report)))
        assert.deepStrictEqual(yield* readMeta(sql, p + 1), untouched)
        assert.strictEqual(staleWrites(p + 1), 1)

        // A promotion by a stale owner restores nothing into the hot tier and leaves the pointer cold.
        const cold = yield* open(p + 2)
        yield* cold.write(cold.hot.put("c", "{}"))
        yield* cold.demote
        yield* open(p + 2)
        assert.isTrue(isStale(yield* Effect.exit(cold.run(cold.hot.get("c")))))
        assert.strictEqual((yield* readMeta(sql, p + 2))?.tier, "cold")
        assert.deepStrictEqual(
          yield* valkey.keys(`g:{${p + 2}}:*`),
          [`g:{${p + 2}}:owner`],
          "nothing restored by the stale owner (only the owner fence is there)"
        )
        assert.strictEqual(staleWrites(p + 2), 1)

        // A stale owner's snapshot of the same version never replaces the one the current owner points to.
        const slow = yield* open(p + 3)
        yield* slow.write(slow.hot.put("d", '{"v":1}'))
        const owner = yield* open(p + 3)
        yield* owner.write(owner.hot.put("d", '{"v":2}'))
        assert.strictEqual((yield* owner.demote).version, 1)
        assert.isTrue(isStale(yield* Effect.exit(slow.demote)))
        assert.strictEqual(yield* owner.run(owner.hot.get("d")), '{"v":2}', "promoted from the owner's own snapshot")
      }),
    dialect
  )

describe("owner epochs fence the partition metadata (PostgreSQL)", () => {
  it.live("a stale owner's demotion, report and promotion fail StaleOwner and change nothing", () =>
    staleOwnerTouchesNothing(40, "pg")
  )

  it.live("a claim waits for a metadata write in flight under the old epoch, which commits first", () =>
    withFixture(
      () =>
        Effect.gen(function* () {
          const release = yield* Deferred.make<void>()
          // A failed assertion ends the blocking session first, so the queries waiting on it return.
          yield* claimDuringWrite(release).pipe(Effect.ensuring(Deferred.succeed(release, undefined)))
        }),
      "pg"
    )
  )
})

describe("owner epochs fence the partition metadata (embedded SQLite)", () => {
  it.live("a stale owner's demotion, report and promotion fail StaleOwner and change nothing", () =>
    staleOwnerTouchesNothing(40, "sqlite")
  )
})

const metaRow = (partition: number, version: number): MetaRow => ({
  partition,
  tier: "hot",
  location: null,
  version,
  lastAccess: version,
  temperature: 0,
  zone: null,
  sameZone: 0,
  crossZone: 0
})

/** The old owner's pointer swap is held in flight by another session's row lock; a claim then waits for it. */
const claimDuringWrite = (release: Deferred.Deferred<void>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const partition = 60
    const old = yield* claimPartition(sql, partition)
    yield* writeMeta(sql, metaRow(partition, 1), old)
    const held = yield* Deferred.make<void>()
    const blocker = yield* Effect.forkChild(
      sql.withTransaction(
        Effect.gen(function* () {
          yield* sql`SELECT partition FROM graph_partitions WHERE partition = ${partition} FOR UPDATE`
          yield* Deferred.succeed(held, undefined)
          yield* Deferred.await(release)
        })
      )
    )
    yield* Deferred.await(held)
    const writing = yield* Effect.forkChild(Effect.exit(writeMeta(sql, metaRow(partition, 2), old)))
    yield* Effect.sleep("200 millis")
    assert.isUndefined(writing.pollUnsafe(), "the write must be in flight")
    const claiming = yield* Effect.forkChild(claimPartition(sql, partition))
    yield* Effect.sleep("200 millis")
    assert.isUndefined(claiming.pollUnsafe(), "the claim must wait for the in-flight write's share lock")
    yield* Deferred.succeed(release, undefined)
    yield* Fiber.join(blocker)
    assert.isTrue(Exit.isSuccess(yield* Fiber.join(writing)), "the in-flight write commits under its epoch")
    assert.strictEqual(yield* Fiber.join(claiming), old + 1)
    assert.strictEqual((yield* readMeta(sql, partition))?.version, 2)
    // After the claim, both kinds of metadata write by the old owner are refused.
    assert.isTrue(isStale(yield* Effect.exit(writeMeta(sql, metaRow(partition, 3), old))))
    assert.isTrue(isStale(yield* Effect.exit(touchMeta(sql, partition, old, 99, 1))))
    const row = yield* readMeta(sql, partition)
    assert.deepStrictEqual([row?.version, row?.lastAccess], [2, 2])
  })
