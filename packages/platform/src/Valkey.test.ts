import { Buffer } from "node:buffer"
import { assert, describe, it, layer, type Vitest } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Schedule, Scope } from "effect"
import { TestClock } from "effect/testing"
import { Redis } from "ioredis"
import { pausableProxy } from "../../../test/harness.ts"
import { type RedisCluster, startRedisCluster } from "../../../test/redisCluster.ts"
import { MemoryStore } from "./internal/valkeyMemoryStore.ts"
import { keySlot } from "./internal/valkeySlot.ts"
import { Cmd, layerIoredis, layerMemory, parseRedisUrl, Valkey, ValkeyError } from "./Valkey.ts"

const REDIS_URL = "redis://127.0.0.1:6379"
const runPrefix = `tessera-test:valkey:${process.pid}:${Date.now()}:`

/** Deletes every key of this run when the layer closes (before the connection does). */
const cleanup = Layer.effectDiscard(
  Effect.addFinalizer(() =>
    Effect.gen(function* () {
      const valkey = yield* Valkey
      const keys = yield* valkey.keys("*")
      for (let i = 0; i < keys.length; i += 500) yield* valkey.del(...keys.slice(i, i + 500))
    }).pipe(Effect.orDie)
  )
)

const expectError = <A>(effect: Effect.Effect<A, ValkeyError>) =>
  Effect.flatMap(Effect.exit(effect), (exit) => {
    if (Exit.isSuccess(exit)) return Effect.die(new Error(`expected a ValkeyError, got ${JSON.stringify(exit.value)}`))
    return Effect.flip(effect)
  })

const sorted = (values: ReadonlyArray<string>) => [...values].sort()

/** The same tests against every implementation: they must behave alike. */
const conformance = (it: Vitest.MethodsNonLive<Valkey>) => {
  it.effect("strings: set, get, mget, del, exists, incr", () =>
    Effect.gen(function* () {
      const v = yield* Valkey
      assert.isTrue(yield* v.set("s:a", "alpha"))
      assert.strictEqual(yield* v.get("s:a"), "alpha")
      assert.isNull(yield* v.get("s:missing"))
      assert.deepStrictEqual(yield* v.mget("s:a", "s:missing"), ["alpha", null])
      assert.strictEqual(yield* v.exists("s:a", "s:missing", "s:a"), 2)
      assert.strictEqual(yield* v.incr("s:n"), 1)
      assert.strictEqual(yield* v.incrby("s:n", 41), 42)
      assert.strictEqual(yield* v.incrby("s:n", -2), 40)
      assert.strictEqual(yield* v.get("s:n"), "40")
      const notInteger = yield* expectError(v.incr("s:a"))
      assert.strictEqual(notInteger.reason, "Reply")
      assert.strictEqual(notInteger.command, "INCR")
      assert.strictEqual(yield* v.del("s:a", "s:n", "s:missing"), 2)
      assert.strictEqual(yield* v.exists("s:a"), 0)
      const noKeys = yield* expectError(v.del())
      assert.strictEqual(noKeys.reason, "Reply")
    })
  )

  it.effect("strings: NX and XX", () =>
    Effect.gen(function* () {
      const v = yield* Valkey
      assert.isTrue(yield* v.set("nx:a", "first", { nx: true }))
      assert.isFalse(yield* v.set("nx:a", "second", { nx: true }))
      assert.strictEqual(yield* v.get("nx:a"), "first")
      assert.isFalse(yield* v.set("nx:b", "x", { xx: true }))
      assert.isNull(yield* v.get("nx:b"))
      assert.isTrue(yield* v.set("nx:a", "third", { xx: true }))
      assert.strictEqual(yield* v.get("nx:a"), "third")
    })
  )

  it.effect("TTL: PX expiry, pttl, expire, pexpire, SET clears the TTL, INCR keeps it", () =>
    Effect.gen(function* () {
      const v = yield* Valkey
      assert.isTrue(yield* v.set("ttl:a", "x", { px: 150 }))
      const left = yield* v.pttl("ttl:a")
      assert.isTrue(left > 0 && left <= 150, `pttl ${left}`)
      assert.strictEqual(yield* v.pttl("ttl:missing"), -2)
      yield* Effect.sleep(300)
      assert.isNull(yield* v.get("ttl:a"))
      assert.strictEqual(yield* v.exists("ttl:a"), 0)
      assert.strictEqual(yield* v.pttl("ttl:a"), -2)
      // a window key: NX with a TTL can be taken again after it expires
      assert.isTrue(yield* v.set("ttl:w", "1", { px: 100, nx: true }))
      assert.isFalse(yield* v.set("ttl:w", "1", { px: 100, nx: true }))
      yield* Effect.sleep(250)
      assert.isTrue(yield* v.set("ttl:w", "1", { px: 100, nx: true }))

      assert.isFalse(yield* v.expire("ttl:missing", 10))
      assert.strictEqual((yield* expectError(v.expire("ttl:missing", 1.5))).reason, "Reply")
      yield* v.set("ttl:b", "x")
      assert.strictEqual(yield* v.pttl("ttl:b"), -1)
      assert.isTrue(yield* v.expire("ttl:b", 100))
      const b = yield* v.pttl("ttl:b")
      assert.isTrue(b > 90_000 && b <= 100_000, `pttl ${b}`)
      yield* v.set("ttl:b", "y")
      assert.strictEqual(yield* v.pttl("ttl:b"), -1)

      yield* v.incr("ttl:c")
      assert.isTrue(yield* v.pexpire("ttl:c", 200))
      assert.strictEqual(yield* v.incr("ttl:c"), 2)
      assert.isTrue((yield* v.pttl("ttl:c")) > 0)
      yield* Effect.sleep(350)
      assert.isNull(yield* v.get("ttl:c"))

      yield* v.hset("ttl:h", { f: "1" })
      assert.isTrue(yield* v.pexpire("ttl:h", 0))
      assert.strictEqual(yield* v.exists("ttl:h"), 0)
    })
  )

  it.effect("bytes round-trip through the Buffer variants", () =>
    Effect.gen(function* () {
      const v = yield* Valkey
      const bytes = new Uint8Array([0xff, 0x00, 0x80, 0x41])
      yield* v.set("bin:a", bytes)
      const back = yield* v.getBuffer("bin:a")
      assert.isTrue(back !== null && Buffer.from(bytes).equals(back))
      assert.deepStrictEqual(
        (yield* v.mgetBuffer("bin:a", "bin:missing")).map((b) => b?.toString("hex") ?? null),
        ["ff008041", null]
      )
      yield* v.hset("bin:h", { raw: Buffer.from([1, 2, 3]), text: "héllo" })
      assert.strictEqual((yield* v.hgetBuffer("bin:h", "raw"))?.toString("hex"), "010203")
      assert.strictEqual(yield* v.hget("bin:h", "text"), "héllo")
      assert.deepStrictEqual(
        (yield* v.hmgetBuffer("bin:h", "raw", "none")).map((b) => b?.toString("hex") ?? null),
        ["010203", null]
      )
      const all = yield* v.hgetallBuffer("bin:h")
      assert.deepStrictEqual(sorted(Object.keys(all)), ["raw", "text"])
      assert.strictEqual(all.text.toString("utf8"), "héllo")
    })
  )

  it.effect("hashes: hset many, hget, hmget, hgetall, hdel, hlen", () =>
    Effect.gen(function* () {
      const v = yield* Valkey
      assert.strictEqual(yield* v.hset("h:v1", { name: "alice", age: "30", city: "paris" }), 3)
      assert.strictEqual(yield* v.hset("h:v1", { age: "31", team: "blue" }), 1)
      assert.strictEqual(yield* v.hget("h:v1", "age"), "31")
      assert.isNull(yield* v.hget("h:v1", "missing"))
      assert.isNull(yield* v.hget("h:none", "x"))
      assert.deepStrictEqual(yield* v.hmget("h:v1", "name", "missing", "team"), ["alice", null, "blue"])
      assert.deepStrictEqual(yield* v.hgetall("h:v1"), { name: "alice", age: "31", city: "paris", team: "blue" })
      assert.deepStrictEqual(yield* v.hgetall("h:none"), {})
      assert.strictEqual(yield* v.hlen("h:v1"), 4)
      assert.strictEqual(yield* v.hdel("h:v1", "age", "missing"), 1)
      assert.strictEqual(yield* v.hlen("h:v1"), 3)
      assert.strictEqual(yield* v.hdel("h:v1", "name", "city", "team"), 3)
      assert.strictEqual(yield* v.exists("h:v1"), 0)
      assert.strictEqual(yield* v.hlen("h:v1"), 0)
    })
  )

  it.effect("sets: sadd, srem, smembers, sismember, scard", () =>
    Effect.gen(function* () {
      const v = yield* Valkey
      assert.strictEqual(yield* v.sadd("set:a", "x", "y", "x", "z"), 3)
      assert.strictEqual(yield* v.sadd("set:a", "z", "w"), 1)
      assert.deepStrictEqual(sorted(yield* v.smembers("set:a")), ["w", "x", "y", "z"])
      assert.isTrue(yield* v.sismember("set:a", "y"))
      assert.isFalse(yield* v.sismember("set:a", "q"))
      assert.isFalse(yield* v.sismember("set:none", "q"))
      assert.strictEqual(yield* v.scard("set:a"), 4)
      assert.strictEqual(yield* v.srem("set:a", "x", "q"), 1)
      assert.deepStrictEqual(sorted(yield* v.smembers("set:a")), ["w", "y", "z"])
      assert.strictEqual(yield* v.srem("set:a", "w", "y", "z"), 3)
      assert.strictEqual(yield* v.exists("set:a"), 0)
      assert.deepStrictEqual(yield* v.smembers("set:a"), [])
      assert.strictEqual(yield* v.scard("set:a"), 0)
    })
  )

  it.effect("streams: explicit ids, ranges, counts, exclusive bounds", () =>
    Effect.gen(function* () {
      const v = yield* Valkey
      assert.strictEqual(yield* v.xadd("st:a", { p: "1" }, { id: "1-1" }), "1-1")
      assert.strictEqual(yield* v.xadd("st:a", { p: "2" }, { id: "1-2" }), "1-2")
      assert.strictEqual(yield* v.xadd("st:a", { p: "3", q: "x" }, { id: "2" }), "2-0")
      assert.strictEqual(yield* v.xadd("st:a", { p: "4" }, { id: "2-*" }), "2-1")
      assert.strictEqual(yield* v.xadd("st:a", { p: "5" }, { id: "5-*" }), "5-0")
      const older = yield* expectError(v.xadd("st:a", { p: "x" }, { id: "1-5" }))
      assert.strictEqual(older.reason, "Reply")
      assert.strictEqual(older.command, "XADD")
      assert.strictEqual((yield* expectError(v.xadd("st:b", { p: "x" }, { id: "0-0" }))).reason, "Reply")
      assert.strictEqual((yield* expectError(v.xadd("st:b", { p: "x" }, { id: "abc" }))).reason, "Reply")
      assert.strictEqual(yield* v.xlen("st:a"), 5)
      assert.strictEqual(yield* v.xlen("st:none"), 0)

      const all = yield* v.xrange("st:a")
      assert.deepStrictEqual(
        all.map((e) => e.id),
        ["1-1", "1-2", "2-0", "2-1", "5-0"]
      )
      assert.deepStrictEqual(all[2], { id: "2-0", fields: { p: "3", q: "x" } })
      assert.deepStrictEqual(
        (yield* v.xrange("st:a", "-", "+", 2)).map((e) => e.id),
        ["1-1", "1-2"]
      )
      assert.deepStrictEqual(
        (yield* v.xrange("st:a", "(1-1", "2")).map((e) => e.id),
        ["1-2", "2-0", "2-1"]
      )
      assert.deepStrictEqual(
        (yield* v.xrange("st:a", "1", "1")).map((e) => e.id),
        ["1-1", "1-2"]
      )
      assert.deepStrictEqual(
        (yield* v.xrange("st:a", "2-1", "(5-0")).map((e) => e.id),
        ["2-1"]
      )
      assert.deepStrictEqual(
        (yield* v.xrevrange("st:a", "+", "-", 2)).map((e) => e.id),
        ["5-0", "2-1"]
      )
      assert.deepStrictEqual(
        (yield* v.xrevrange("st:a", "2", "1-2")).map((e) => e.id),
        ["2-1", "2-0", "1-2"]
      )
      assert.deepStrictEqual(yield* v.xrange("st:none"), [])
      assert.deepStrictEqual(yield* v.xrange("st:a", "5-1", "+"), [])
    })
  )

  it.effect("streams: generated ids are ms-seq and strictly increasing", () =>
    Effect.gen(function* () {
      const v = yield* Valkey
      const before = Date.now()
      const ids: Array<string> = []
      for (let i = 0; i < 50; i++) ids.push(yield* v.xadd("st:auto", { i: String(i) }))
      const parsed = ids.map((id) => id.split("-").map(Number))
      for (let i = 0; i < parsed.length; i++) {
        assert.strictEqual(parsed[i].length, 2)
        assert.isTrue(parsed[i][0] >= before - 5_000, `ms of ${ids[i]}`)
        if (i > 0) {
          const [ms0, seq0] = parsed[i - 1]
          const [ms1, seq1] = parsed[i]
          assert.isTrue(ms1 > ms0 || (ms1 === ms0 && seq1 > seq0), `${ids[i - 1]} < ${ids[i]}`)
        }
      }
      assert.deepStrictEqual(
        (yield* v.xrange("st:auto")).map((e) => e.id),
        ids
      )
    })
  )

  it.effect("streams: MAXLEN trimming, exact and approximate", () =>
    Effect.gen(function* () {
      const v = yield* Valkey
      const ids: Array<string> = []
      for (let i = 1; i <= 20; i++) {
        ids.push(yield* v.xadd("st:trim", { i: String(i) }, { id: `${i}-0`, maxLen: 5, approximate: false }))
      }
      assert.strictEqual(yield* v.xlen("st:trim"), 5)
      assert.deepStrictEqual(
        (yield* v.xrange("st:trim")).map((e) => e.fields.i),
        ["16", "17", "18", "19", "20"]
      )
      // The id sequence survives trimming: an id below the last one is still refused.
      assert.strictEqual((yield* expectError(v.xadd("st:trim", { i: "x" }, { id: "3-0" }))).reason, "Reply")

      yield* v.pipeline(Array.from({ length: 300 }, (_, i) => Cmd.xadd("st:approx", { i: String(i) }, { maxLen: 10 })))
      const length = yield* v.xlen("st:approx")
      assert.isTrue(length >= 10 && length < 300, `approximate length ${length}`)
      const last = yield* v.xrevrange("st:approx", "+", "-", 1)
      assert.strictEqual(last[0].fields.i, "299")
    })
  )

  it.effect("streams: XREAD without BLOCK over several keys, COUNT, $", () =>
    Effect.gen(function* () {
      const v = yield* Valkey
      yield* v.xadd("rd:a", { n: "1" }, { id: "1-0" })
      yield* v.xadd("rd:a", { n: "2" }, { id: "2-0" })
      yield* v.xadd("rd:a", { n: "3" }, { id: "3-0" })
      yield* v.xadd("rd:b", { n: "9" }, { id: "9-0" })
      const read = yield* v.xread(
        [
          ["rd:a", "1-0"],
          ["rd:b", "0"],
          ["rd:none", "0"]
        ],
        { count: 1 }
      )
      assert.deepStrictEqual(read, [
        { key: "rd:a", entries: [{ id: "2-0", fields: { n: "2" } }] },
        { key: "rd:b", entries: [{ id: "9-0", fields: { n: "9" } }] }
      ])
      const rest = yield* v.xread([["rd:a", "1-0"]])
      assert.deepStrictEqual(
        rest[0].entries.map((e) => e.id),
        ["2-0", "3-0"]
      )
      assert.deepStrictEqual(yield* v.xread([["rd:a", "$"]]), [])
      assert.deepStrictEqual(yield* v.xread([["rd:a", "3-0"]]), [])
    })
  )

  it.effect("streams: a blocked XREAD wakes on a later XADD and does not stall other commands", () =>
    Effect.gen(function* () {
      const v = yield* Valkey
      yield* v.xadd("blk:a", { n: "old" })
      const reader = yield* Effect.forkChild(
        v.xread(
          [
            ["blk:a", "$"],
            ["blk:b", "$"]
          ],
          { block: 5000 }
        )
      )
      yield* Effect.sleep(100)
      // Answered while the read blocks; were they on the same connection, this would wait out the 5 s BLOCK and
      // the read would then time out empty, failing the assertions below.
      yield* v.set("blk:flag", "1")
      assert.strictEqual(yield* v.get("blk:flag"), "1")
      const id = yield* v.xadd("blk:b", { n: "new" })
      const read = yield* Fiber.join(reader)
      assert.deepStrictEqual(read, [{ key: "blk:b", entries: [{ id, fields: { n: "new" } }] }])
    })
  )

  it.effect("streams: XREAD BLOCK times out empty; BLOCK 0 waits until an entry arrives", () =>
    Effect.gen(function* () {
      const v = yield* Valkey
      assert.deepStrictEqual(yield* v.xread([["blk0:none", "$"]], { block: 150 }), [])
      assert.strictEqual((yield* expectError(v.xread([["blk0:none", "$"]], { block: -1 }))).reason, "Reply")
      const forever = yield* Effect.forkChild(v.xread([["blk0:a", "$"]], { block: 0 }))
      yield* Effect.sleep(100)
      const id = yield* v.xadd("blk0:a", { n: "1" })
      const read = yield* Fiber.join(forever)
      assert.deepStrictEqual(
        read[0].entries.map((e) => e.id),
        [id]
      )
    })
  )

  it.effect("streams: interrupting a blocked XREAD leaves the service usable", () =>
    Effect.gen(function* () {
      const v = yield* Valkey
      const readers = yield* Effect.forEach([1, 2, 3], () => Effect.forkChild(v.xread([["int:a", "$"]], { block: 0 })))
      yield* Effect.sleep(100)
      yield* Effect.forEach(readers, Fiber.interrupt)
      const again = yield* Effect.forkChild(v.xread([["int:a", "$"]], { block: 5000 }))
      yield* Effect.sleep(100)
      const id = yield* v.xadd("int:a", { n: "1" })
      assert.deepStrictEqual(
        (yield* Fiber.join(again))[0].entries.map((e) => e.id),
        [id]
      )
    })
  )

  it.effect("pipeline: one call, results in order and typed", () =>
    Effect.gen(function* () {
      const v = yield* Valkey
      const [set, get, hset, hgetall, incr, xadd, xlen, sadd, smembers, pexpire, pttl] = yield* v.pipeline([
        Cmd.set("p:a", "1"),
        Cmd.get("p:a"),
        Cmd.hset("p:h", { a: "1", b: "2" }),
        Cmd.hgetall("p:h"),
        Cmd.incr("p:n"),
        Cmd.xadd("p:s", { f: "v" }, { id: "7-7" }),
        Cmd.xlen("p:s"),
        Cmd.sadd("p:set", "m1", "m2"),
        Cmd.smembers("p:set"),
        Cmd.pexpire("p:a", 10_000),
        Cmd.pttl("p:a")
      ])
      assert.isTrue(set)
      assert.strictEqual(get, "1")
      assert.strictEqual(hset, 2)
      assert.deepStrictEqual(hgetall, { a: "1", b: "2" })
      assert.strictEqual(incr, 1)
      assert.strictEqual(xadd, "7-7")
      assert.strictEqual(xlen, 1)
      assert.strictEqual(sadd, 2)
      assert.deepStrictEqual(sorted(smembers), ["m1", "m2"])
      assert.isTrue(pexpire)
      assert.isTrue(pttl > 0 && pttl <= 10_000)
      assert.deepStrictEqual(yield* v.pipeline([]), [])

      // A batch of writes (a partition flush), then a batch of reads.
      const writes = Array.from({ length: 200 }, (_, i) => Cmd.hset(`p:v:${i}`, { id: String(i), deg: String(i % 7) }))
      const added = yield* v.pipeline(writes)
      assert.strictEqual(added.length, 200)
      assert.isTrue(added.every((n) => n === 2))
      const reads = yield* v.pipeline(Array.from({ length: 200 }, (_, i) => Cmd.hget(`p:v:${i}`, "deg")))
      assert.deepStrictEqual(
        reads,
        Array.from({ length: 200 }, (_, i) => String(i % 7))
      )
    })
  )

  it.effect("pipeline: a failing command fails the call with its index; the others still ran", () =>
    Effect.gen(function* () {
      const v = yield* Valkey
      yield* v.xadd("pe:stream", { f: "v" })
      const error = yield* expectError(
        v.pipeline([Cmd.set("pe:a", "1"), Cmd.hget("pe:stream", "f"), Cmd.set("pe:b", "2")])
      )
      assert.strictEqual(error._tag, "ValkeyError")
      assert.strictEqual(error.reason, "WrongType")
      assert.strictEqual(error.command, "HGET")
      assert.strictEqual(error.index, 1)
      assert.deepStrictEqual(yield* v.mget("pe:a", "pe:b"), ["1", "2"])
    })
  )

  it.effect("pipeline: concurrent calls (sent together) each get their own replies and their own failure", () =>
    Effect.gen(function* () {
      const v = yield* Valkey
      yield* v.xadd("pc:stream", { f: "v" })
      yield* v.set("pc:x", "x")
      const calls = Array.from({ length: 50 }, (_, i) =>
        i % 10 === 3
          ? Effect.flip(v.pipeline([Cmd.incr(`pc:n:${i}`), Cmd.hget("pc:stream", "f")]))
          : v.pipeline([Cmd.incr(`pc:n:${i}`), Cmd.incrby(`pc:n:${i}`, i), Cmd.get("pc:x")])
      )
      const results = yield* Effect.all(calls, { concurrency: "unbounded" })
      for (let i = 0; i < results.length; i++) {
        const result = results[i]
        if (i % 10 === 3) {
          assert.deepInclude(result, { _tag: "ValkeyError", reason: "WrongType", command: "HGET", index: 1 })
        } else {
          assert.deepStrictEqual(result, [1, 1 + i, "x"])
        }
      }
      // The failing calls' other commands ran too.
      assert.strictEqual(yield* v.get("pc:n:3"), "1")
    })
  )
  it.effect("wrong type: typed ValkeyError on every kind of access", () =>
    Effect.gen(function* () {
      const v = yield* Valkey
      yield* v.xadd("wt:stream", { f: "v" })
      yield* v.hset("wt:hash", { f: "v" })
      yield* v.set("wt:string", "v")
      const hget = yield* expectError(v.hget("wt:stream", "f"))
      assert.strictEqual(hget.reason, "WrongType")
      assert.strictEqual(hget.command, "HGET")
      assert.strictEqual((yield* expectError(v.get("wt:hash"))).reason, "WrongType")
      assert.strictEqual((yield* expectError(v.sadd("wt:hash", "m"))).reason, "WrongType")
      assert.strictEqual((yield* expectError(v.xadd("wt:string", { f: "v" }))).reason, "WrongType")
      assert.strictEqual((yield* expectError(v.xrange("wt:hash"))).reason, "WrongType")
      assert.strictEqual((yield* expectError(v.incr("wt:hash"))).reason, "WrongType")
      const xread = yield* expectError(v.xread([["wt:string", "0"]]))
      assert.strictEqual(xread.reason, "WrongType")
      assert.strictEqual(xread.command, "XREAD")
      // MGET answers null for keys that are not strings
      assert.deepStrictEqual(yield* v.mget("wt:hash", "wt:string"), [null, "v"])
    })
  )

  it.effect("keys by glob pattern", () =>
    Effect.gen(function* () {
      const v = yield* Valkey
      yield* v.pipeline([
        Cmd.set("scan:a:1", "x"),
        Cmd.set("scan:a:2", "x"),
        Cmd.set("scan:b:1", "x"),
        Cmd.hset("scan:a:h", { f: "v" }),
        Cmd.set("scan:gone", "x", { px: 1 })
      ])
      yield* Effect.sleep(20)
      assert.deepStrictEqual(sorted(yield* v.keys("scan:a:*")), ["scan:a:1", "scan:a:2", "scan:a:h"])
      assert.deepStrictEqual(sorted(yield* v.keys("scan:?:1")), ["scan:a:1", "scan:b:1"])
      assert.deepStrictEqual(sorted(yield* v.keys("scan:[ab]:[^2h]")), ["scan:a:1", "scan:b:1"])
      assert.deepStrictEqual(yield* v.keys("scan:gone"), [])
      assert.deepStrictEqual(yield* v.keys("scan:none:*"), [])
    })
  )
}

/** A local three-node Redis Cluster for the cluster-mode tests (started for the suite, removed after). */
class TestRedisCluster extends Context.Service<TestRedisCluster, RedisCluster>()("test/TestRedisCluster") {}

const testRedisCluster = Layer.effect(
  TestRedisCluster,
  Effect.acquireRelease(Effect.tryPromise({ try: () => startRedisCluster(), catch: (error) => error }), (cluster) =>
    Effect.promise(() => cluster.stop())
  ).pipe(Effect.orDie)
)

const layerCluster = Layer.provideMerge(
  Layer.unwrap(
    Effect.map(TestRedisCluster, (cluster) =>
      layerIoredis({ url: cluster.url, cluster: true, seeds: cluster.nodes.slice(1), keyPrefix: runPrefix })
    )
  ),
  testRedisCluster
)

/** Keys of this run's prefix in distinct slots served by distinct nodes (one per node), from `base`. */
const keysOnEveryNode = (cluster: RedisCluster, base: string) =>
  Effect.promise(async () => {
    const redis = new Redis(cluster.ports[0], "127.0.0.1")
    try {
      const ranges = (await redis.call("cluster", "slots")) as Array<[number, number, [string, number]]>
      const nodeOf = (slot: number) => ranges.find(([from, to]) => slot >= from && slot <= to)?.[2][1]
      const byNode = new Map<number | undefined, string>()
      for (let i = 0; byNode.size < cluster.ports.length; i++) {
        const key = `${base}${i}`
        const node = nodeOf(keySlot(runPrefix + key))
        if (!byNode.has(node)) byNode.set(node, key)
      }
      return Array.from(byNode.values())
    } finally {
      redis.disconnect()
    }
  })

describe("Valkey", () => {
  layer(layerMemory, { excludeTestServices: true })("layerMemory", (it) => conformance(it))

  layer(layerCluster, { excludeTestServices: true, timeout: 120_000 })("layerIoredis (real Redis Cluster)", (it) => {
    conformance(it)

    it.effect("key slots match the server's CLUSTER KEYSLOT", () =>
      Effect.gen(function* () {
        const cluster = yield* TestRedisCluster
        const keys = [
          "a",
          "md:{BTC-USD}:trades",
          "md:{BTC-USD}:book",
          "g:{17}:v:42",
          "{}x",
          "x{}y{z}",
          "{a}{b}",
          "héllo:{ü}",
          "ключ",
          `${runPrefix}md:{ETH-USD}:trades`,
          ""
        ]
        const redis = new Redis(cluster.ports[0], "127.0.0.1")
        const server = yield* Effect.promise(() =>
          Promise.all(keys.map((key) => redis.call("cluster", "keyslot", key) as Promise<number>))
        ).pipe(Effect.ensuring(Effect.sync(() => redis.disconnect())))
        assert.deepStrictEqual(keys.map(keySlot), server)
        assert.strictEqual(keySlot("md:{BTC-USD}:trades"), keySlot("md:{BTC-USD}:book"))
      })
    )

    it.effect("MGET, DEL and EXISTS over keys on every node answer in the caller's order", () =>
      Effect.gen(function* () {
        const v = yield* Valkey
        const [a, b, c] = yield* keysOnEveryNode(yield* TestRedisCluster, "xs:")
        yield* v.set(a, "A")
        yield* v.set(c, "C")
        yield* v.set("xs:{t}:1", "T1")
        yield* v.set("xs:{t}:2", "T2")
        assert.deepStrictEqual(yield* v.mget(c, b, a, "xs:{t}:2", a, "xs:{t}:1"), ["C", null, "A", "T2", "A", "T1"])
        assert.deepStrictEqual(
          (yield* v.mgetBuffer(b, a, c)).map((x) => x?.toString("utf8") ?? null),
          [null, "A", "C"]
        )
        assert.strictEqual(yield* v.exists(a, b, c, a, "xs:{t}:1"), 4)
        assert.strictEqual(yield* v.del(a, b, c, "xs:{t}:1", "xs:{t}:2"), 4)
        assert.deepStrictEqual(yield* v.mget(a, c, "xs:{t}:1"), [null, null, null])
      })
    )

    it.effect("a pipeline over every node: results in order, split commands merged, a failure keeps its index", () =>
      Effect.gen(function* () {
        const v = yield* Valkey
        const [a, b, c] = yield* keysOnEveryNode(yield* TestRedisCluster, "xp:")
        yield* v.xadd(`${b}:stream`, { f: "v" })
        const ok = yield* v.pipeline([
          Cmd.set(a, "1"),
          Cmd.set(b, "2"),
          Cmd.incr(c),
          Cmd.mget(c, a, "xp:none", b),
          Cmd.get(a),
          Cmd.set(a, "again"),
          Cmd.get(a),
          Cmd.exists(a, b, c, "xp:none"),
          Cmd.hset("xp:{h}:1", { f: "1" }),
          Cmd.hgetall("xp:{h}:1")
        ])
        assert.deepStrictEqual(ok, [true, true, 1, ["1", "1", null, "2"], "1", true, "again", 3, 1, { f: "1" }])
        const error = yield* Effect.flip(
          v.pipeline([Cmd.set(a, "x"), Cmd.del(a, c), Cmd.hget(`${b}:stream`, "f"), Cmd.set(c, "y"), Cmd.get(b)])
        )
        assert.deepInclude(error, { _tag: "ValkeyError", reason: "WrongType", command: "HGET", index: 2 })
        // The other commands ran, in order on each key.
        assert.deepStrictEqual(yield* v.mget(a, c, b), [null, "y", "2"])
      })
    )

    it.effect("concurrent pipelines over several slots (sent together) each get their own replies and failure", () =>
      Effect.gen(function* () {
        const v = yield* Valkey
        const [a, b, c] = yield* keysOnEveryNode(yield* TestRedisCluster, "xc:")
        yield* v.xadd(`${c}:stream`, { f: "v" })
        const calls = Array.from({ length: 60 }, (_, i) =>
          i % 7 === 2
            ? Effect.flip(v.pipeline([Cmd.incr(`${a}:${i}`), Cmd.incr(`${b}:${i}`), Cmd.hget(`${c}:stream`, "f")]))
            : v.pipeline([
                Cmd.set(`${a}:${i}`, `a${i}`),
                Cmd.incrby(`${b}:${i}`, i),
                Cmd.get(`${a}:${i}`),
                Cmd.mget(`${b}:${i}`, `${a}:${i}`, `${c}:${i}`),
                Cmd.del(`${a}:${i}`, `${c}:${i}`)
              ])
        )
        const results = yield* Effect.all(calls, { concurrency: "unbounded" })
        for (let i = 0; i < results.length; i++) {
          if (i % 7 === 2) {
            assert.deepInclude(results[i], { _tag: "ValkeyError", reason: "WrongType", command: "HGET", index: 2 })
          } else {
            assert.deepStrictEqual(results[i], [true, i, `a${i}`, [String(i), `a${i}`, null], 1])
          }
        }
        assert.deepStrictEqual(yield* v.mget(`${a}:2`, `${b}:2`), ["1", "1"])
      })
    )

    it.effect("XREAD over streams on every node: in the caller's order; BLOCK wakes on any of them", () =>
      Effect.gen(function* () {
        const v = yield* Valkey
        const [a, b, c] = yield* keysOnEveryNode(yield* TestRedisCluster, "xr:")
        yield* v.xadd(c, { n: "c1" }, { id: "1-0" })
        yield* v.xadd(a, { n: "a1" }, { id: "1-0" })
        yield* v.xadd(a, { n: "a2" }, { id: "2-0" })
        const read = yield* v.xread(
          [
            [c, "0"],
            [b, "0"],
            [a, "1-0"]
          ],
          { count: 5 }
        )
        assert.deepStrictEqual(read, [
          { key: c, entries: [{ id: "1-0", fields: { n: "c1" } }] },
          { key: a, entries: [{ id: "2-0", fields: { n: "a2" } }] }
        ])
        const reader = yield* Effect.forkChild(
          v.xread(
            [
              [a, "$"],
              [b, "$"],
              [c, "$"]
            ],
            { block: 0 }
          )
        )
        yield* Effect.sleep(100)
        const id = yield* v.xadd(b, { n: "b1" })
        assert.deepStrictEqual(yield* Fiber.join(reader), [{ key: b, entries: [{ id, fields: { n: "b1" } }] }])
        assert.deepStrictEqual(
          yield* v.xread(
            [
              [a, "$"],
              [c, "$"]
            ],
            { block: 100 }
          ),
          []
        )
      })
    )

    it.effect("keys() scans every primary", () =>
      Effect.gen(function* () {
        const v = yield* Valkey
        const cluster = yield* TestRedisCluster
        const spread = yield* keysOnEveryNode(cluster, "xk:")
        yield* v.pipeline(spread.map((key) => Cmd.set(key, "1")))
        assert.deepStrictEqual(sorted(yield* v.keys("xk:*")), sorted(spread))
      })
    )
  })

  layer(Layer.provideMerge(cleanup, layerIoredis({ url: REDIS_URL, keyPrefix: runPrefix })), {
    excludeTestServices: true
  })("layerIoredis (real Redis)", (it) => {
    conformance(it)

    it.effect("the key prefix isolates this run", () =>
      Effect.gen(function* () {
        const v = yield* Valkey
        yield* v.set("prefix:probe", "1")
        assert.deepStrictEqual(yield* v.keys("prefix:*"), ["prefix:probe"])
      }).pipe(
        Effect.andThen(
          Effect.gen(function* () {
            const other = yield* Valkey
            assert.isNull(yield* other.get("prefix:probe"))
          }).pipe(Effect.provide(layerIoredis({ url: REDIS_URL, keyPrefix: `${runPrefix}other:` })))
        )
      )
    )
  })

  // Single node: commands and pipelines are written through one shared write target per turn (no ioredis
  // Pipeline). A burst issued on a fresh layer waits in ioredis's offline queue and is written command by command
  // once connected; later bursts leave joined. Either way every caller must get its own replies, in order.
  describe("layerIoredis single-node writes", () => {
    const burst = (v: Valkey["Service"], round: number): Effect.Effect<Array<ReadonlyArray<unknown>>, unknown> =>
      Effect.all(
        Array.from({ length: 240 }, (_, i) => {
          const key = `burst:${round}:${i}`
          switch (i % 6) {
            case 0:
              return Effect.map(v.incrby(key, i), (n) => [n])
            case 1:
              return v.pipeline([Cmd.set(key, `v${i}`), Cmd.get(key), Cmd.incr(`${key}:n`)])
            case 2:
              return Effect.map(v.set(key, Buffer.from([i & 0xff, 0, 0xff])), () => [`bytes ${i}`])
            case 3:
              // A failing single command: its own typed error, no index (it is not a pipeline).
              return Effect.map(Effect.flip(v.hget(`burst:${round}:${i - 3}`, "f")), (e) => [
                e.reason,
                e.command,
                e.index
              ])
            case 4:
              // A failing pipeline: its index; the commands before it ran.
              return Effect.map(
                Effect.flip(v.pipeline([Cmd.incr(key), Cmd.hget(`burst:${round}:${i - 4}`, "f")])),
                (e) => [e.reason, e.command, e.index]
              )
            default:
              return Effect.map(v.mget(`burst:${round}:${i - 5}`, `burst:${round}:${i - 4}`, `${key}:none`), (r) => r)
          }
        }),
        { concurrency: "unbounded" }
      )
    const expected = (): Array<ReadonlyArray<unknown>> =>
      Array.from({ length: 240 }, (_, i) => {
        switch (i % 6) {
          case 0:
            return [i]
          case 1:
            return [true, `v${i}`, 1]
          case 2:
            return [`bytes ${i}`]
          case 3:
            return ["WrongType", "HGET", undefined]
          case 4:
            return ["WrongType", "HGET", 1]
          default:
            // Issued after the INCRBY and the SET of this round (same connection, in order).
            return [String(i - 5), `v${i - 4}`, null]
        }
      })

    it.live(
      "XREAD without BLOCK (written at once, after the queued pipelines) sees the entries of pipelines issued before it",
      () =>
        Effect.gen(function* () {
          const v = yield* Valkey
          yield* v.set("xr:warm", "1") // connected: the joined write path, not the offline queue
          // Issued together, like the bursts above: each read right after the pipeline that fills its stream.
          const results = yield* Effect.all(
            Array.from({ length: 40 }, (_, i) =>
              i % 2 === 0
                ? v.pipeline([
                    Cmd.xadd(`xr:s${i}`, { f: "1" }, { id: "1-1" }),
                    Cmd.xadd(`xr:s${i}`, { f: "2" }, { id: "1-2" })
                  ])
                : v.xread([[`xr:s${i - 1}`, "0"]])
            ),
            { concurrency: "unbounded" }
          )
          for (let i = 1; i < results.length; i += 2) {
            const read = results[i] as ReadonlyArray<{ readonly entries: ReadonlyArray<{ readonly id: string }> }>
            assert.deepStrictEqual(
              read.flatMap((r) => r.entries.map((e) => e.id)),
              ["1-1", "1-2"]
            )
          }
        }).pipe(
          Effect.provide(Layer.provideMerge(cleanup, layerIoredis({ url: REDIS_URL, keyPrefix: `${runPrefix}xr:` }))),
          Effect.scoped
        )
    )

    for (const autoPipelining of [true, false]) {
      it.live(
        `bursts before and after the connection is up get their own replies (autoPipelining ${autoPipelining})`,
        () =>
          Effect.gen(function* () {
            const v = yield* Valkey
            // Round 0 is issued before the (lazy) connection exists: the offline queue.
            const first = yield* burst(v, 0)
            assert.deepStrictEqual(first, expected())
            const second = yield* burst(v, 1)
            assert.deepStrictEqual(second, expected())
            // Bytes round-trip on the same path.
            assert.deepStrictEqual([...((yield* v.getBuffer("burst:1:2")) ?? [])], [2, 0, 0xff])
            assert.strictEqual(yield* v.get("burst:1:4"), "1")
          }).pipe(
            Effect.provide(
              Layer.provideMerge(
                cleanup,
                layerIoredis({ url: REDIS_URL, keyPrefix: `${runPrefix}w${autoPipelining}:`, autoPipelining })
              )
            ),
            Effect.scoped
          )
      )
    }
  })

  describe("layerIoredis failures", () => {
    it.live("a closed port gives a Connection error, within the retry bound", () =>
      Effect.gen(function* () {
        const v = yield* Valkey
        const get = yield* Effect.flip(v.get("x"))
        assert.strictEqual(get.reason, "Connection")
        assert.include(get.message, "ECONNREFUSED")
        const pipeline = yield* Effect.flip(v.pipeline([Cmd.set("x", "1"), Cmd.get("x")]))
        assert.strictEqual(pipeline.reason, "Connection")
        const read = yield* Effect.flip(v.xread([["x", "$"]], { block: 100 }))
        assert.strictEqual(read.reason, "Connection")
      }).pipe(
        Effect.provide(layerIoredis({ url: "redis://127.0.0.1:1", keyPrefix: runPrefix })),
        // A hang would fail here instead of running into the test timeout.
        Effect.timeout("20 seconds")
      )
    )

    it.live(
      "a server that stops answering (black-holed behind a paused proxy) fails commands at the default 2 s timeout; it recovers",
      () =>
        Effect.gen(function* () {
          const proxy = yield* Effect.acquireRelease(
            Effect.promise(() => pausableProxy({ host: "127.0.0.1", port: 6379 })),
            (p) => Effect.promise(() => p.close())
          )
          const v = yield* Layer.build(
            Layer.provideMerge(
              cleanup,
              layerIoredis({ url: `redis://127.0.0.1:${proxy.port}`, keyPrefix: `${runPrefix}bh:` })
            )
          ).pipe(Effect.map(Context.get(Valkey)))
          assert.isTrue(yield* v.set("k", "before"))
          // A blocked read outlives the command timeout: it has its own bound.
          assert.deepStrictEqual(yield* v.xread([["s", "$"]], { block: 2500 }), [])

          proxy.pause()
          const started = Date.now()
          const [get, pipeline] = yield* Effect.all(
            [Effect.flip(v.get("k")), Effect.flip(v.pipeline([Cmd.set("k", "during"), Cmd.get("k")]))],
            { concurrency: 2 }
          )
          const waited = Date.now() - started
          for (const error of [get, pipeline]) {
            assert.instanceOf(error, ValkeyError)
            assert.strictEqual(error.reason, "Connection")
            assert.include(error.message, "timed out")
          }
          assert.isBelow(waited, 4000, "failed at the command timeout, not at some later socket error")

          proxy.resume()
          // The held bytes flow again; late replies of the timed-out commands are dropped, new ones line up.
          const after = yield* v
            .get("k")
            .pipe(Effect.retry({ times: 20, schedule: Schedule.spaced("100 millis") }), Effect.timeout("5 seconds"))
          assert.oneOf(after, ["before", "during"])
          assert.isTrue(yield* v.set("k", "after"))
          assert.strictEqual(yield* v.get("k"), "after")
        }).pipe(Effect.scoped, Effect.timeout("20 seconds"))
    )

    it.live("wrong credentials give a typed error that does not carry the password", () =>
      Effect.gen(function* () {
        const v = yield* Valkey
        const error = yield* Effect.flip(v.get("x"))
        assert.strictEqual(error.reason, "Reply")
        assert.include(error.message, "WRONGPASS")
        assert.notInclude(JSON.stringify(error), "s3cret-pw")
      }).pipe(
        Effect.provide(layerIoredis({ url: "redis://nobody:s3cret-pw@127.0.0.1:6379", keyPrefix: runPrefix })),
        Effect.timeout("20 seconds")
      )
    )

    it.live("cluster mode: no reachable seed gives a Connection error, within the retry bound", () =>
      Effect.gen(function* () {
        const v = yield* Valkey
        const get = yield* Effect.flip(v.get("x"))
        assert.strictEqual(get.reason, "Connection")
        // ioredis keeps the socket error of a failed slot-map refresh to itself; the seed that failed is named.
        assert.include(get.message, "None of the cluster nodes is available")
        assert.match(get.message, /127\.0\.0\.1:[12]: /)
        const pipeline = yield* Effect.flip(v.pipeline([Cmd.set("x", "1"), Cmd.get("y")]))
        assert.strictEqual(pipeline.reason, "Connection")
        const read = yield* Effect.flip(v.xread([["x", "$"]], { block: 100 }))
        assert.strictEqual(read.reason, "Connection")
      }).pipe(
        Effect.provide(layerIoredis({ url: "redis://127.0.0.1:1", cluster: true, seeds: ["127.0.0.1:2"] })),
        Effect.timeout("20 seconds")
      )
    )

    it.live("cluster options are checked when the layer is built", () =>
      Effect.gen(function* () {
        const build = (options: Parameters<typeof layerIoredis>[0]) => Effect.flip(Layer.build(layerIoredis(options)))
        const seedsAlone = yield* build({ url: REDIS_URL, seeds: ["127.0.0.1:7000"] })
        assert.instanceOf(seedsAlone, ValkeyError)
        assert.strictEqual(seedsAlone.reason, "InvalidUrl")
        assert.include(seedsAlone.message, "cluster mode")
        assert.strictEqual((yield* build({ url: `${REDIS_URL}/2`, cluster: true })).reason, "InvalidUrl")
        const badSeed = yield* build({ url: REDIS_URL, cluster: true, seeds: ["nohost"] })
        assert.strictEqual(badSeed.reason, "InvalidUrl")
        assert.include(badSeed.message, "nohost")
      })
    )

    it.live("a malformed URL fails the layer with InvalidUrl", () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(Layer.build(layerIoredis({ url: "http://example.com" })))
        assert.strictEqual(error.reason, "InvalidUrl")
        assert.strictEqual((yield* Effect.flip(Layer.build(layerIoredis({ url: "redis://h/x" })))).reason, "InvalidUrl")
      })
    )
  })

  describe("layerMemory with the test clock", () => {
    it.effect("TTLs follow TestClock", () =>
      Effect.gen(function* () {
        const v = yield* Valkey
        yield* v.set("k", "v", { px: 1000 })
        yield* TestClock.adjust(999)
        assert.strictEqual(yield* v.get("k"), "v")
        assert.strictEqual(yield* v.pttl("k"), 1)
        yield* TestClock.adjust(1)
        assert.isNull(yield* v.get("k"))
      }).pipe(Effect.provide(layerMemory))
    )

    it.effect("XREAD BLOCK waits on TestClock time", () =>
      Effect.gen(function* () {
        const v = yield* Valkey
        const reader = yield* Effect.forkChild(v.xread([["s", "$"]], { block: 1000 }))
        yield* TestClock.adjust(1000)
        assert.deepStrictEqual(yield* Fiber.join(reader), [])
      }).pipe(Effect.provide(layerMemory))
    )
  })

  describe("layerMemory lifecycle", () => {
    it.live("the sweep timer is unref'd and stops when the scope closes", () =>
      Effect.gen(function* () {
        // Observe the timer through the globals the layer calls (restored right after the build).
        const started: Array<ReturnType<typeof setInterval>> = []
        const cleared: Array<unknown> = []
        const { setInterval: realSet, clearInterval: realClear } = globalThis
        const scope = yield* Scope.make()
        globalThis.setInterval = ((f: () => void, ms: number) => {
          const handle = realSet(f, ms)
          started.push(handle)
          return handle
        }) as typeof setInterval
        globalThis.clearInterval = ((handle: ReturnType<typeof setInterval>) => {
          cleared.push(handle)
          realClear(handle)
        }) as typeof clearInterval
        try {
          yield* Layer.buildWithScope(layerMemory, scope)
          assert.strictEqual(started.length, 1)
          assert.isFalse(started[0].hasRef())
          yield* Scope.close(scope, Exit.void)
          assert.deepStrictEqual(cleared, [started[0]])
        } finally {
          globalThis.setInterval = realSet
          globalThis.clearInterval = realClear
        }
      })
    )
  })
})

describe("MemoryStore", () => {
  it("sweep deletes expired keys nobody reads", () => {
    let now = 1_000
    const store = new MemoryStore(() => now)
    store.exec(Cmd.set("a", "1", { px: 10 }))
    store.exec(Cmd.set("b", "1"))
    store.exec(Cmd.hset("c", { f: "v" }))
    store.exec(Cmd.pexpire("c", 20))
    assert.strictEqual(store.size, 3)
    now += 15
    store.sweep()
    assert.strictEqual(store.size, 2)
    now += 10
    store.sweep()
    assert.strictEqual(store.size, 1)
  })

  it("trimming keeps ranges right across compaction", () => {
    const store = new MemoryStore(() => 1)
    for (let i = 1; i <= 5000; i++) store.exec(Cmd.xadd("s", { i: String(i) }, { id: `${i}-0`, maxLen: 100 }))
    assert.strictEqual(store.exec(Cmd.xlen("s")), 100)
    const range = store.exec(Cmd.xrange("s", "4950", "+"))
    assert.deepStrictEqual(
      range.map((e) => e.id),
      Array.from({ length: 51 }, (_, i) => `${4950 + i}-0`)
    )
    assert.deepStrictEqual(
      store.exec(Cmd.xrevrange("s", "+", "-", 2)).map((e) => e.id),
      ["5000-0", "4999-0"]
    )
  })
})

describe("parseRedisUrl", () => {
  it("reads host, port, auth, db and TLS", () => {
    assert.deepStrictEqual(parseRedisUrl("redis://127.0.0.1:6379"), {
      host: "127.0.0.1",
      port: 6379,
      username: undefined,
      password: undefined,
      db: 0,
      tls: false
    })
    assert.deepStrictEqual(parseRedisUrl("rediss://user:p%40ss@cache.example.com/2"), {
      host: "cache.example.com",
      port: 6379,
      username: "user",
      password: "p@ss",
      db: 2,
      tls: true
    })
    assert.deepStrictEqual(parseRedisUrl("redis://:secret@[::1]:6380"), {
      host: "::1",
      port: 6380,
      username: undefined,
      password: "secret",
      db: 0,
      tls: false
    })
    assert.throws(() => parseRedisUrl("localhost:6379"))
    assert.throws(() => parseRedisUrl("redis://host/abc"))
  })
})
