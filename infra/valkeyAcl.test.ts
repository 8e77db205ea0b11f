/**
 * The Valkey access strings of `cache.ts`, applied with ACL SETUSER to the real Redis (127.0.0.1:6379): the
 * runner's user can run the commands the runtime sends on its key families and nothing dangerous or elsewhere; the
 * market-data user can only read `md:*`. (ElastiCache takes the same access-string grammar for its RBAC users.)
 */
import { randomBytes } from "node:crypto"
import { Redis } from "ioredis"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { marketDataAccess, runnerAccess } from "./cache.ts"

const host = "127.0.0.1"
const port = 6379
const suffix = `${process.pid}-${randomBytes(3).toString("hex")}`
const password = randomBytes(16).toString("hex")
const runnerUser = `acl-runner-${suffix}`
const marketDataUser = `acl-md-${suffix}`

const admin = new Redis({ host, port, lazyConnect: true })
let runner: Redis
let marketData: Redis

const refused = async (command: Promise<unknown>) => {
  const error = await command.then(
    () => undefined,
    (e: Error) => e
  )
  assert.isDefined(error, "expected a refusal")
  assert.match(error.message, /NOPERM/)
}

beforeAll(async () => {
  await admin.connect()
  await admin.call("ACL", "SETUSER", runnerUser, "reset", ...runnerAccess.split(" "), `>${password}`)
  await admin.call("ACL", "SETUSER", marketDataUser, "reset", ...marketDataAccess.split(" "), `>${password}`)
  // ioredis' ready check sends INFO: both users must pass it.
  runner = new Redis({ host, port, username: runnerUser, password, lazyConnect: true })
  marketData = new Redis({ host, port, username: marketDataUser, password, lazyConnect: true })
  await runner.connect()
  await marketData.connect()
})

afterAll(async () => {
  runner?.disconnect()
  marketData?.disconnect()
  const keys = [`md:ACL-${suffix}:trades`, `g:v:acl-${suffix}`, `g:e:acl-${suffix}`, `tessera:acl-${suffix}`]
  await admin.del(...keys)
  await admin.call("ACL", "DELUSER", runnerUser, marketDataUser)
  admin.disconnect()
})

describe("Valkey ACL users", () => {
  it("let the runner use its key families with the commands the runtime sends", async () => {
    const stream = `md:ACL-${suffix}:trades`
    const vertex = `g:v:acl-${suffix}`
    const edges = `g:e:acl-${suffix}`
    const probe = `tessera:acl-${suffix}`
    assert.isString(await runner.xadd(stream, "MAXLEN", "~", "1000", "*", "price", "1", "qty", "2"))
    assert.lengthOf((await runner.xread("COUNT", 10, "STREAMS", stream, "0")) ?? [], 1)
    await runner.hset(vertex, { name: "a" })
    assert.deepStrictEqual(await runner.hgetall(vertex), { name: "a" })
    await runner.sadd(edges, "b", "c")
    assert.strictEqual(await runner.scard(edges), 2)
    await runner.srem(edges, "c")
    assert.strictEqual(await runner.set(probe, "1", "PX", 60_000, "NX"), "OK")
    assert.strictEqual(await runner.pexpire(probe, 30_000), 1)
    assert.strictEqual(await runner.exists(probe, vertex), 2)
    assert.deepStrictEqual(await runner.mget(probe, vertex.replace("g:v:", "g:x:")), ["1", null])
    const pipelined = await runner.pipeline().get(probe).smembers(edges).exec()
    assert.deepStrictEqual(
      pipelined?.map(([error]) => error),
      [null, null]
    )
    const transaction = await runner.multi().incr(probe).unlink(probe).exec()
    assert.deepStrictEqual(
      transaction?.map(([error]) => error),
      [null, null]
    )
  })

  it("refuse the runner other keys and dangerous commands", async () => {
    await refused(runner.set(`other:${suffix}`, "1"))
    await refused(runner.get(`dedupx:${suffix}`))
    await refused(runner.flushall())
    await refused(runner.keys("*"))
    await refused(runner.call("CONFIG", "GET", "maxmemory"))
    await refused(runner.call("CLIENT", "KILL", "ID", "999999999"))
    await refused(runner.call("ACL", "LIST"))
    await refused(runner.publish("md:x", "1"))
  })

  it("let the market-data consumer read md:* streams and nothing else", async () => {
    const stream = `md:ACL-${suffix}:trades`
    await admin.xadd(stream, "*", "price", "3", "qty", "4")
    const read = await marketData.xread("COUNT", 10, "STREAMS", stream, "0")
    assert.isAtLeast(read?.[0][1].length ?? 0, 1)
    assert.isAtLeast(await marketData.xlen(stream), 1)
    assert.isAtLeast((await marketData.xrevrange(stream, "+", "-", "COUNT", 1)).length, 1)
    await refused(marketData.xadd(stream, "*", "price", "5"))
    await refused(marketData.del(stream))
    await refused(marketData.get(`g:v:acl-${suffix}`))
    await refused(marketData.hgetall(`g:v:acl-${suffix}`))
    await refused(marketData.set(`md:ACL-${suffix}:x`, "1"))
    await refused(marketData.keys("md:*"))
  })
})
