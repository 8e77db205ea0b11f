import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Option, Redacted } from "effect"
import { defaults, fromEnv, standbyPortOf, variables } from "./config.ts"
import { pgPoolConfig } from "./storage.ts"

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
  rejects({ TESSERA_PG_CONNECT_TIMEOUT: "0 millis" }, "TESSERA_PG_CONNECT_TIMEOUT")
  rejects({ TESSERA_PG_KEEPALIVE: "500 millis" }, "TESSERA_PG_KEEPALIVE")
  rejects({ TESSERA_PG_STATEMENT_TIMEOUT: "whenever" }, "TESSERA_PG_STATEMENT_TIMEOUT")
  rejects({ TESSERA_PG_STATEMENT_TIMEOUT: "1.5 millis" }, "TESSERA_PG_STATEMENT_TIMEOUT")
  rejects({ TESSERA_PG_IDLE_IN_TRANSACTION_TIMEOUT: "-1 seconds" }, "TESSERA_PG_IDLE_IN_TRANSACTION_TIMEOUT")
  rejects({ TESSERA_REDIS_COMMAND_TIMEOUT: "0 seconds" }, "TESSERA_REDIS_COMMAND_TIMEOUT")
  rejects({ TESSERA_DRAIN_TIMEOUT: "500 millis" }, "TESSERA_DRAIN_TIMEOUT")
  rejects({ TESSERA_DRAIN_GRACE: "soon" }, "TESSERA_DRAIN_GRACE")
  rejects({ TESSERA_MIGRATE: "maybe" }, "TESSERA_MIGRATE")
  rejects({ TESSERA_APP_DB_ROLE: "app; DROP TABLE orders" }, "TESSERA_APP_DB_ROLE")

  it("reads the dependency timeouts; 0 disables the server-side ones", async () => {
    assert.isTrue(Duration.equals(defaults.pgConnectTimeout, Duration.seconds(5)))
    assert.isTrue(Duration.equals(defaults.pgKeepAlive, Duration.seconds(10)))
    assert.isTrue(Duration.equals(defaults.pgStatementTimeout, Duration.seconds(10)))
    assert.isTrue(Duration.equals(defaults.pgIdleInTransactionTimeout, Duration.seconds(10)))
    assert.isTrue(Duration.equals(defaults.redisCommandTimeout, Duration.seconds(2)))
    const result = await load({
      TESSERA_PG_CONNECT_TIMEOUT: "2 seconds",
      TESSERA_PG_KEEPALIVE: "30 seconds",
      TESSERA_PG_STATEMENT_TIMEOUT: "0 millis",
      TESSERA_PG_IDLE_IN_TRANSACTION_TIMEOUT: "1 minute",
      TESSERA_REDIS_COMMAND_TIMEOUT: "750 millis"
    })
    assert.strictEqual(result._tag, "Success")
    if (result._tag !== "Success") return
    const cfg = result.success
    assert.strictEqual(Duration.toMillis(cfg.pgConnectTimeout), 2000)
    assert.strictEqual(Duration.toMillis(cfg.pgKeepAlive), 30_000)
    assert.strictEqual(Duration.toMillis(cfg.pgStatementTimeout), 0)
    assert.strictEqual(Duration.toMillis(cfg.pgIdleInTransactionTimeout), 60_000)
    assert.strictEqual(Duration.toMillis(cfg.redisCommandTimeout), 750)
    const pool = pgPoolConfig({ url: Redacted.make("postgres://db/x"), startupParameters: { search_path: "s" } }, cfg)
    assert.deepStrictEqual(pool.startupParameters, {
      statement_timeout: "0",
      idle_in_transaction_session_timeout: "60000",
      search_path: "s"
    })
    assert.strictEqual(pool.connectTimeout, cfg.pgConnectTimeout)
    assert.strictEqual(pool.keepAlive, cfg.pgKeepAlive)
  })

  it("lists every variable it reads", () => {
    const listed = new Set(variables.map(([name]) => name))
    for (const name of [
      "TESSERA_PG_CONNECT_TIMEOUT",
      "TESSERA_PG_KEEPALIVE",
      "TESSERA_PG_STATEMENT_TIMEOUT",
      "TESSERA_PG_IDLE_IN_TRANSACTION_TIMEOUT",
      "TESSERA_REDIS_COMMAND_TIMEOUT"
    ]) {
      assert.isTrue(listed.has(name), name)
    }
  })

  it("reads the standby port", async () => {
    const result = await load({ TESSERA_RUNNER_PORT: "4000" })
    assert.strictEqual(result._tag, "Success")
    if (result._tag !== "Success") return
    assert.strictEqual(standbyPortOf(result.success), 4001, "default: the runner port + 1")
    const explicit = await load({ TESSERA_STANDBY_PORT: "5000" })
    assert.strictEqual(explicit._tag === "Success" ? standbyPortOf(explicit.success) : 0, 5000)
  })

  it("reads TESSERA_HSTS as the stack sets it (1), and the auth and cluster secret variables", async () => {
    const hstsOf = async (value: string) => {
      const result = await load({ TESSERA_HSTS: value })
      return result._tag === "Success" ? result.success.hsts : `error: ${String(result.failure)}`
    }
    assert.strictEqual(await hstsOf("1"), "on")
    assert.strictEqual(await hstsOf("off"), "off")
    assert.strictEqual(await hstsOf("auto"), "auto")
    assert.include(await hstsOf("sometimes"), "TESSERA_HSTS must be auto, on (1, true) or off (0, false)")
    const short = await load({ TESSERA_CLUSTER_SECRET: "too-short" })
    assert.strictEqual(short._tag, "Failure")
    assert.include(String(short._tag === "Failure" ? short.failure : ""), "TESSERA_CLUSTER_SECRET must be at least 16")
    assert.notInclude(String(short._tag === "Failure" ? short.failure : ""), "too-short")
    const acceptedAlone = await load({ TESSERA_CLUSTER_SECRET_ACCEPTED: "0123456789abcdef0123" })
    assert.include(
      String(acceptedAlone._tag === "Failure" ? acceptedAlone.failure : ""),
      "TESSERA_CLUSTER_SECRET_ACCEPTED needs TESSERA_CLUSTER_SECRET"
    )
    const listed = new Set(variables.map(([name]) => name))
    for (const name of [
      "TESSERA_TOKENS",
      "TESSERA_HSTS",
      "TESSERA_CLUSTER_SECRET",
      "TESSERA_CLUSTER_SECRET_ACCEPTED"
    ]) {
      assert.isTrue(listed.has(name), name)
    }
  })
})
