/**
 * `appRoleStatements` on the real PostgreSQL (127.0.0.1:5432): in a scratch database an owner role (CREATEROLE, no
 * superuser, as Aurora's master) creates tables, applies the statements, and the application role can then read and write every table (also one the
 * owner creates afterwards) and use its sequences, but cannot create, alter, drop or truncate anything.
 */
import { randomBytes } from "node:crypto"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { appRoleStatements } from "../runtime/appRole.ts"

const admin = process.env.TESSERA_TEST_PG ?? "postgres://postgres@127.0.0.1:5432/postgres"
const suffix = `${process.pid}_${randomBytes(3).toString("hex")}`
const database = `infra_roles_${suffix}`
const owner = `infra_owner_${suffix}`
const app = `infra_app_${suffix}`
const password = `p'w${randomBytes(8).toString("hex")}`
const urlFor = (user: string, db: string) => {
  const url = new URL(admin)
  url.username = user
  url.password = encodeURIComponent(password)
  url.pathname = `/${db}`
  return url.toString()
}

/** Runs statements one by one on a fresh connection as `url`; resolves with each one's error message or "ok". */
const run = (url: string, statements: ReadonlyArray<string>): Promise<ReadonlyArray<string>> =>
  Effect.runPromise(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const out: Array<string> = []
      for (const statement of statements) {
        out.push(
          yield* sql.unsafe(statement).pipe(
            Effect.as("ok"),
            Effect.catch((error) =>
              Effect.succeed(`${error.reason?._tag ?? ""} ${String(error.cause ?? error.message)}`)
            )
          )
        )
      }
      return out
    }).pipe(Effect.provide(Layer.fresh(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 }))))
  )

beforeAll(async () => {
  await run(admin, [
    `CREATE ROLE ${owner} LOGIN CREATEROLE PASSWORD '${password.replaceAll("'", "''")}'`,
    `CREATE DATABASE ${database} OWNER ${owner}`
  ])
  // What migrations do as the owner, then the role statements as the owner too (CREATEROLE, as Aurora's master).
  await run(urlFor(owner, database), ["CREATE TABLE orders (id bigserial PRIMARY KEY, qty int NOT NULL)"])
  const applied = await run(urlFor(owner, database), appRoleStatements(owner, password, app))
  assert.deepStrictEqual(
    applied,
    applied.map(() => "ok")
  )
  await run(urlFor(owner, database), ["CREATE TABLE trades (id bigserial PRIMARY KEY, price int NOT NULL)"])
})

afterAll(async () => {
  await run(admin, [
    `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`,
    `DROP ROLE IF EXISTS ${app}`,
    `DROP ROLE IF EXISTS ${owner}`
  ])
})

describe("the application role", () => {
  it("reads and writes every table, including one created after the grants, and uses their sequences", async () => {
    const results = await run(urlFor(app, database), [
      "INSERT INTO orders (qty) VALUES (5)",
      "UPDATE orders SET qty = 6",
      "SELECT * FROM orders",
      "INSERT INTO trades (price) VALUES (100)",
      "SELECT nextval('trades_id_seq')",
      "DELETE FROM orders",
      "SELECT pg_try_advisory_lock(42)"
    ])
    assert.deepStrictEqual(
      results,
      results.map(() => "ok")
    )
  })

  it("creates, alters, drops and truncates nothing", async () => {
    const results = await run(urlFor(app, database), [
      "CREATE TABLE intruder (id int)",
      "CREATE TABLE IF NOT EXISTS orders (id int)",
      "ALTER TABLE orders ADD COLUMN x int",
      "CREATE INDEX IF NOT EXISTS orders_qty ON orders (qty)",
      "DROP TABLE trades",
      "TRUNCATE orders",
      "CREATE ROLE sneaky"
    ])
    for (const [i, result] of results.entries()) {
      assert.match(result, /AuthorizationError|permission denied|must be owner/, `statement ${i}: ${result}`)
    }
  })

  it("is idempotent: applying the statements again (a password rotation) succeeds", async () => {
    const again = await run(urlFor(owner, database), appRoleStatements(owner, password, app))
    assert.deepStrictEqual(
      again,
      again.map(() => "ok")
    )
  })
})
