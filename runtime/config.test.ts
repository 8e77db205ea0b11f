import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Option, Redacted } from "effect"
import { defaults, fromEnv, standbyPortOf } from "./config.ts"

const load = (env: Record<string, string>) => Effect.runPromise(Effect.result(fromEnv(env)))

describe("config", () => {
  it("uses documented defaults with an empty environment", async () => {
    const result = await load({})
    assert.strictEqual(result._tag, "Success")
    if (result._tag !== "Success") return
    assert.deepStrictEqual(result.success, defaults)
    assert.isTrue(Duration.equals(result.success.shardLockExpiration, Duration.seconds(5)))
  })

  it("reads every variable", async () => {
    const result = await load({
      DATABASE_URL: "postgres://u:p@db:5432/x",
      REDIS_URL: "rediss://cache:6379",
      REDIS_CLUSTER: "true",
      TESSERA_PORT: "8080",
      TESSERA_RUNNER_PORT: "4000",
      TESSERA_TOKEN: "t",
      TESSERA_DATA: "/data",
      TESSERA_ZONE: "us-east-1a",
      TESSERA_SHARD_LOCK_EXPIRATION: "10 seconds",
      TESSERA_SHARD_LOCK_REFRESH: "2 seconds"
    })
    assert.strictEqual(result._tag, "Success")
    if (result._tag !== "Success") return
    const cfg = result.success
    assert.strictEqual(Redacted.value(Option.getOrThrow(cfg.databaseUrl)), "postgres://u:p@db:5432/x")
    assert.isTrue(cfg.redisCluster)
    assert.strictEqual(cfg.port, 8080)
    assert.strictEqual(cfg.runnerPort, 4000)
    assert.strictEqual(cfg.dataDir, "/data")
    assert.strictEqual(Option.getOrThrow(cfg.zone), "us-east-1a")
    assert.isTrue(Duration.equals(cfg.shardLockRefresh, Duration.seconds(2)))
    assert.notInclude(String(cfg.token), 't"', "the token is redacted when printed")
  })

  const rejects = (env: Record<string, string>, mentions: string) =>
    it(`rejects ${JSON.stringify(env)}`, async () => {
      const result = await load(env)
      assert.strictEqual(result._tag, "Failure")
      if (result._tag !== "Failure") return
      assert.include(result.failure.message, mentions)
    })

  rejects({ TESSERA_PORT: "abc" }, "TESSERA_PORT")
  rejects({ TESSERA_PORT: "70000" }, "TESSERA_PORT")
  rejects({ TESSERA_SHARDS: "0" }, "TESSERA_SHARDS")
  rejects({ DATABASE_URL: "mysql://x" }, "DATABASE_URL")
  rejects({ REDIS_URL: "not a url" }, "REDIS_URL")
  rejects({ REDIS_CLUSTER: "maybe" }, "REDIS_CLUSTER")
  rejects({ TESSERA_MESSAGE_POLL: "soon" }, "TESSERA_MESSAGE_POLL")
  rejects({ TESSERA_SHARD_LOCK_REFRESH: "9 seconds" }, "TESSERA_SHARD_LOCK_REFRESH")
  rejects({ TESSERA_STANDBY_PORT: "0" }, "TESSERA_STANDBY_PORT")

  it("reads the standby port", async () => {
    const result = await load({ TESSERA_RUNNER_PORT: "4000" })
    assert.strictEqual(result._tag, "Success")
    if (result._tag !== "Success") return
    assert.strictEqual(standbyPortOf(result.success), 4001, "default: the runner port + 1")
    const explicit = await load({ TESSERA_STANDBY_PORT: "5000" })
    assert.strictEqual(explicit._tag === "Success" ? standbyPortOf(explicit.success) : 0, 5000)
  })
})
