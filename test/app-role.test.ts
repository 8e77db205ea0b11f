// Least privilege in PostgreSQL: `tessera-migrate` (app/migrate.ts) applies the schema as the owner role and creates
// the application role; a runner started as that role with TESSERA_MIGRATE=false serves orders (cluster storage,
// shard locks, journals), while the same role cannot create, alter, drop or truncate anything, and a runner that
// still tries to migrate as it stops at startup.
import { execFileSync, spawnSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import * as TesseraClient from "@tessera/client/TesseraClient"
import { Effect } from "effect"
import { Redis } from "ioredis"
import { SeedApi } from "../actors/api.ts"
import { freshDatabase, nodeBin, pgAdminUrl, redisUrl, repoRoot, startProcess } from "./harness.ts"

const redisDb = 12
const suffix = randomBytes(4).toString("hex")
const owner = `approle_owner_${suffix}`
const app = `approle_app_${suffix}`
const password = randomBytes(12).toString("hex")

const urlAs = (user: string, databaseUrl: string) => {
  const url = new URL(databaseUrl)
  url.username = user
  url.password = password
  return url.toString()
}

/** psql as `url`: the statement's output, or the error it printed. */
const psqlAs = (url: string, statement: string) => {
  const result = spawnSync("psql", [url, "-v", "ON_ERROR_STOP=1", "-qAtc", statement], { encoding: "utf8" })
  return result.status === 0 ? `ok ${result.stdout.trim()}` : result.stderr.trim()
}

/** Runs `tessera-migrate` with `env`; its exit code and output. */
const migrate = (env: Record<string, string>) => {
  const result = spawnSync(nodeBin, [join(repoRoot, "app", "migrate.ts")], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
    encoding: "utf8",
    timeout: 60_000
  })
  return { code: result.status, output: `${result.stdout}${result.stderr}` }
}

describe("the application role (real PostgreSQL + Redis, runner processes)", () => {
  it.live(
    "tessera-migrate applies the schema as the owner; a runner as the app role serves orders and the role runs no DDL",
    () =>
      Effect.gen(function* () {
        const db = freshDatabase("approle")
        execFileSync("psql", [pgAdminUrl, "-qc", `CREATE ROLE ${owner} LOGIN CREATEROLE PASSWORD '${password}'`])
        execFileSync("psql", [pgAdminUrl, "-qc", `ALTER DATABASE ${db.name} OWNER TO ${owner}`])
        const redis = new Redis(`${redisUrl}/${redisDb}`)
        yield* Effect.promise(() => redis.flushdb())
        yield* Effect.addFinalizer(() =>
          Effect.promise(async () => {
            await redis.flushdb()
            redis.disconnect()
            db.drop()
            for (const role of [app, owner]) spawnSync("psql", [pgAdminUrl, "-qc", `DROP ROLE IF EXISTS ${role}`])
          })
        )
        const ownerUrl = urlAs(owner, db.url)
        const appUrl = urlAs(app, db.url)
        const migrateEnv = { DATABASE_URL: ownerUrl, TESSERA_APP_DB_ROLE: app, TESSERA_APP_DB_PASSWORD: password }

        const first = migrate(migrateEnv)
        assert.strictEqual(first.code, 0, first.output)
        // Idempotent: every deploy runs it again.
        const again = migrate(migrateEnv)
        assert.strictEqual(again.code, 0, again.output)
        assert.strictEqual(
          psqlAs(ownerUrl, "SELECT tableowner FROM pg_tables WHERE tablename = 'orders'"),
          `ok ${owner}`,
          "the owner holds the tables"
        )

        const runnerEnv = { DATABASE_URL: appUrl, REDIS_URL: `${redisUrl}/${redisDb}`, TESSERA_MIGRATE: "false" }
        const runner = yield* Effect.acquireRelease(
          Effect.promise(() => startProcess("approle-runner", { env: runnerEnv })),
          (r) =>
            Effect.promise(async () => {
              r.child.kill("SIGKILL")
              await r.exited
            })
        )
        const client = yield* TesseraClient.make(SeedApi, { url: runner.url })
        const placed = yield* client["SymbolShard.PlaceBatch"]({
          entityId: "BTC-USDT",
          payload: {
            orders: [
              { account: "a1", clientOrderId: "c1", side: "buy", price: "100", qty: "2" },
              { account: "a2", clientOrderId: "c2", side: "sell", price: "100", qty: "1" }
            ]
          }
        }).pipe(Effect.timeout("30 seconds"))
        assert.isTrue(
          placed.results.every((result) => result.orderId !== undefined),
          JSON.stringify(placed.results)
        )
        assert.strictEqual(psqlAs(ownerUrl, "SELECT COUNT(*) FROM trades WHERE symbol = 'BTC-USDT'"), "ok 1")
        assert.strictEqual(
          psqlAs(ownerUrl, `SELECT COUNT(*) FROM cluster_runners WHERE address LIKE '%:${runner.runnerPort}'`),
          "ok 1",
          "the app role registered the runner"
        )

        for (const statement of [
          "CREATE TABLE intruder (id int)",
          "CREATE TABLE IF NOT EXISTS orders (id int)",
          "ALTER TABLE orders ADD COLUMN x int",
          "CREATE INDEX IF NOT EXISTS orders_x ON orders (qty)",
          "DROP TABLE trades",
          "TRUNCATE orders"
        ]) {
          assert.match(psqlAs(appUrl, statement), /permission denied|must be owner/, statement)
        }

        // A runner that still applies its schema at startup cannot, as the app role: it stops instead of serving.
        const refused = yield* Effect.promise(() =>
          startProcess("approle-migrating", {
            env: { ...runnerEnv, TESSERA_MIGRATE: "true" },
            timeoutMs: 60_000
          }).then(
            async (r) => {
              r.child.kill("SIGKILL")
              await r.exited
              return "started"
            },
            (error: Error) => error.message
          )
        )
        assert.match(refused, /exited with 1 before it was ready[\s\S]*permission denied/)
      }).pipe(Effect.scoped),
    180_000
  )
})
