/**
 * Replica reads (`ValkeyReplica`) on real servers: a primary and a replica (`redis-server --replicaof`) started on
 * free ports for this file. Reads go to the replica while its measured lag is within bound, to the primary once the
 * replica stops following it (the staleness bound), and to the primary when the replica fails.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { Redis } from "ioredis"
import { freePort } from "../../../test/harness.ts"
import { layerIoredis, layerReplica, Valkey, ValkeyReplica } from "./Valkey.ts"

const dir = mkdtempSync(join(tmpdir(), "tessera-replica-"))
const servers: Array<ChildProcess> = []
let primaryPort = 0
let replicaPort = 0

const startServer = async (port: number, extra: ReadonlyArray<string>) => {
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, ...extra],
    { stdio: "ignore" }
  )
  servers.push(child)
  const redis = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 50 })
  redis.on("error", () => undefined)
  const deadline = Date.now() + 10_000
  for (;;) {
    try {
      await redis.connect().catch(() => undefined)
      if ((await redis.ping()) === "PONG") break
    } catch {
      if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not start`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  return { child, redis }
}

let primary: Redis
let replica: Redis
let replicaChild: ChildProcess

beforeAll(async () => {
  primaryPort = await freePort()
  replicaPort = await freePort()
  primary = (await startServer(primaryPort, [])).redis
  const started = await startServer(replicaPort, ["--replicaof", "127.0.0.1", String(primaryPort)])
  replica = started.redis
  replicaChild = started.child
  // Wait for the initial sync.
  const deadline = Date.now() + 15_000
  while (!(await replica.info("replication")).includes("master_link_status:up")) {
    if (Date.now() > deadline) throw new Error("the replica did not sync")
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}, 30_000)

afterAll(() => {
  primary?.disconnect()
  replica?.disconnect()
  for (const child of servers) child.kill("SIGKILL")
  rmSync(dir, { recursive: true, force: true })
})

const layer = (checkMillis: number) =>
  layerReplica({
    url: `redis://127.0.0.1:${replicaPort}`,
    clockKey: "replica-clock:test",
    maxLagMillis: 300,
    checkMillis,
    maxRetriesPerRequest: 1,
    commandTimeout: 500
  }).pipe(Layer.provideMerge(layerIoredis({ url: `redis://127.0.0.1:${primaryPort}` })))

const run = <A, E>(effect: Effect.Effect<A, E, Valkey | ValkeyReplica>, checkMillis = 100) =>
  Effect.runPromise(Effect.scoped(Effect.provide(effect, layer(checkMillis))) as Effect.Effect<A, E>)

const waitFor = (check: () => boolean, millis: number) =>
  Effect.gen(function* () {
    const deadline = Date.now() + millis
    while (!check() && Date.now() < deadline) yield* Effect.sleep("50 millis")
  })

describe("ValkeyReplica (a real primary and replica)", () => {
  it("reads from the replica while it follows the primary", async () => {
    await run(
      Effect.gen(function* () {
        const valkey = yield* Valkey
        const reads = yield* ValkeyReplica
        yield* valkey.set("k1", "v1")
        yield* waitFor(() => reads.stats().fresh, 5_000)
        assert.isTrue(reads.stats().fresh, JSON.stringify(reads.stats()))
        assert.isAtMost(reads.stats().lagMillis ?? Number.POSITIVE_INFINITY, 300)
        // Replication is asynchronous: the value arrives within the bound.
        let seen: string | null = null
        const deadline = Date.now() + 2_000
        while (seen !== "v1" && Date.now() < deadline) seen = yield* reads.read((v) => v.get("k1"))
        assert.strictEqual(seen, "v1")
        assert.isAbove(reads.stats().replicaReads, 0)
        assert.strictEqual(reads.stats().fallbacks, 0)
      })
    )
  }, 30_000)

  it("stops reading from a replica that no longer follows the primary (staleness bound)", async () => {
    await run(
      Effect.gen(function* () {
        const valkey = yield* Valkey
        const reads = yield* ValkeyReplica
        yield* waitFor(() => reads.stats().fresh, 5_000)
        assert.isTrue(reads.stats().fresh)
        // The replica detaches: it keeps serving its old data, and sees no more writes.
        yield* Effect.promise(() => replica.replicaof("NO", "ONE"))
        yield* valkey.set("k3", "new")
        // Within maxLag + one check, reads go to the primary and see the write.
        yield* Effect.sleep("600 millis")
        assert.isFalse(reads.stats().fresh, JSON.stringify(reads.stats()))
        const before = reads.stats().primaryReads
        assert.strictEqual(yield* reads.read((v) => v.get("k3")), "new")
        assert.strictEqual(reads.stats().primaryReads, before + 1)
        // The detached replica itself would have answered stale.
        assert.isNull(yield* Effect.promise(() => replica.get("k3")))
        // Following again, it serves reads again.
        yield* Effect.promise(() => replica.replicaof("127.0.0.1", String(primaryPort)))
        yield* waitFor(() => reads.stats().fresh, 15_000)
        assert.isTrue(reads.stats().fresh, JSON.stringify(reads.stats()))
      })
    )
  }, 40_000)

  it("falls back to the primary when the replica fails", async () => {
    await run(
      Effect.gen(function* () {
        const valkey = yield* Valkey
        const reads = yield* ValkeyReplica
        yield* valkey.set("k4", "v4")
        // Checks are a minute apart here: only the failed read can tell the replica is gone.
        assert.isTrue(reads.stats().fresh, "fresh at the first check")
        yield* waitFor(() => false, 300)
        replicaChild.kill("SIGKILL")
        yield* Effect.promise(() => new Promise((resolve) => replicaChild.once("exit", resolve)))
        // Every read still answers, from the primary.
        for (let i = 0; i < 5; i++) assert.strictEqual(yield* reads.read((v) => v.get("k4")), "v4")
        assert.strictEqual(reads.stats().fallbacks, 1, "the first read failed over; the rest went to the primary")
        assert.strictEqual(reads.stats().primaryReads, 5)
        assert.isFalse(reads.stats().fresh)
      }),
      60_000
    )
  }, 30_000)
})
