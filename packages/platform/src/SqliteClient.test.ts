import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as SqlClient from "effect/sql/SqlClient"
import * as SqlError from "effect/sql/SqlError"
import { LruCache } from "./internal/lruCache.ts"
import * as SqliteClient from "./SqliteClient.ts"
import * as SqlMigrator from "./SqlMigrator.ts"

// Layers built with `excludeTestServices`: their `it.effect` tests run on the real clock.
const memory = SqliteClient.layer({ filename: ":memory:" })

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure")
  const error = exit.cause.reasons.find((reason) => reason._tag === "Fail")
  if (error === undefined || error._tag !== "Fail") throw new Error("expected a typed failure")
  return error.error
}

describe("SqliteClient", () => {
  it.layer(memory, { excludeTestServices: true })("in memory", (it) => {
    it.effect("creates, reads, updates and deletes rows", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        assert.strictEqual(sql.onDialectOrElse({ sqlite: () => "sqlite", orElse: () => "other" }), "sqlite")
        yield* sql`CREATE TABLE crud (id INTEGER PRIMARY KEY, name TEXT NOT NULL)`
        yield* sql`INSERT INTO crud ${sql.insert([
          { id: 1, name: "one" },
          { id: 2, name: "two" }
        ])}`
        const rows = yield* sql<{ id: number; name: string }>`SELECT id, name FROM crud ORDER BY id`
        assert.deepStrictEqual(
          rows.map((row) => ({ ...row })),
          [
            { id: 1, name: "one" },
            { id: 2, name: "two" }
          ]
        )
        yield* sql`UPDATE crud SET name = ${"uno"} WHERE id = ${1}`
        yield* sql`DELETE FROM crud WHERE id = ${2}`
        const after = yield* sql<{ id: number; name: string }>`SELECT id, name FROM crud`
        assert.deepStrictEqual(
          after.map((row) => ({ ...row })),
          [{ id: 1, name: "uno" }]
        )
        const returned = yield* sql<{ id: number }>`INSERT INTO crud (id, name) VALUES (3, 'three') RETURNING id`
        assert.strictEqual(returned[0].id, 3)
      })
    )

    it.effect("binds every parameter type", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE params (s TEXT, n REAL, i INTEGER, big INTEGER, absent TEXT, bytes BLOB, flag INTEGER)`
        const bytes = new Uint8Array([0, 1, 2, 254, 255])
        const big = 9007199254740993n // 2^53 + 1: not representable as a number
        yield* sql`INSERT INTO params VALUES (${"héllo 'quoted'"}, ${1.5}, ${-42}, ${big}, ${null}, ${bytes}, ${true})`
        yield* sql`INSERT INTO params (s, flag) VALUES (${"second"}, ${false})`
        // Dates bind as ISO-8601 text, undefined as null.
        yield* sql`INSERT INTO params (s, absent) VALUES (${new Date(0)}, ${undefined})`
        const [dated] = yield* sql<{
          absent: unknown
        }>`SELECT absent FROM params WHERE s = ${"1970-01-01T00:00:00.000Z"}`
        assert.strictEqual(dated.absent, null)
        const [row] = yield* sql<any>`SELECT * FROM params WHERE s = ${"héllo 'quoted'"}`.pipe(
          Effect.provideService(SqlClient.SafeIntegers, true)
        )
        assert.strictEqual(row.s, "héllo 'quoted'")
        assert.strictEqual(row.n, 1.5)
        assert.strictEqual(row.i, -42n)
        assert.strictEqual(row.big, big)
        assert.strictEqual(row.absent, null)
        assert.deepStrictEqual(Array.from(row.bytes as Uint8Array), Array.from(bytes))
        assert.strictEqual(row.flag, 1n)
        const [plain] = yield* sql<any>`SELECT i, flag FROM params WHERE s = ${"second"}`
        assert.strictEqual(plain.i, null)
        assert.strictEqual(plain.flag, 0)
        const flags = yield* sql<{ s: string }>`SELECT s FROM params WHERE flag = ${true}`
        assert.deepStrictEqual(
          flags.map((r) => r.s),
          ["héllo 'quoted'"]
        )
        const inList = yield* sql<{ s: string }>`SELECT s FROM params WHERE s IN ${sql.in(["second", "nope"])}`
        assert.deepStrictEqual(
          inList.map((r) => r.s),
          ["second"]
        )
      })
    )

    it.effect("commits and rolls back transactions, with savepoints for nested ones", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE tx (id INTEGER PRIMARY KEY)`
        const ids = Effect.map(sql<{ id: number }>`SELECT id FROM tx ORDER BY id`, (rows) => rows.map((r) => r.id))

        yield* sql.withTransaction(Effect.andThen(sql`INSERT INTO tx VALUES (1)`, sql`INSERT INTO tx VALUES (2)`))
        assert.deepStrictEqual(yield* ids, [1, 2])

        const failed = yield* sql
          .withTransaction(Effect.andThen(sql`INSERT INTO tx VALUES (3)`, Effect.fail("boom" as const)))
          .pipe(Effect.exit)
        assert.strictEqual(failureOf(failed), "boom")
        assert.deepStrictEqual(yield* ids, [1, 2])

        // The inner transaction rolls back to its savepoint; the outer one still commits.
        yield* sql.withTransaction(
          Effect.gen(function* () {
            yield* sql`INSERT INTO tx VALUES (4)`
            const inner = yield* sql
              .withTransaction(Effect.andThen(sql`INSERT INTO tx VALUES (5)`, Effect.fail("inner" as const)))
              .pipe(Effect.exit)
            assert.isTrue(Exit.isFailure(inner))
            yield* sql.withTransaction(sql`INSERT INTO tx VALUES (6)`)
          })
        )
        assert.deepStrictEqual(yield* ids, [1, 2, 4, 6])

        // A failing statement inside a transaction fails it with SqlError and rolls it all back.
        const broken = yield* sql
          .withTransaction(Effect.andThen(sql`INSERT INTO tx VALUES (7)`, sql`INSERT INTO tx VALUES (1)`))
          .pipe(Effect.exit)
        assert.isTrue(SqlError.isSqlError(failureOf(broken)))
        assert.deepStrictEqual(yield* ids, [1, 2, 4, 6])
      })
    )

    it.effect("does not interleave another fiber's statements into a transaction", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE serial (seq INTEGER PRIMARY KEY AUTOINCREMENT, who TEXT NOT NULL)`
        // Fiber A inserts, yields the thread for a while, inserts again, then fails: its transaction rolls back.
        // Fiber B inserts while A sleeps. If B's insert ran on the connection inside A's transaction, the rollback
        // would erase it too.
        const fiberA = yield* sql
          .withTransaction(
            Effect.gen(function* () {
              yield* sql`INSERT INTO serial (who) VALUES ('a1')`
              yield* Effect.sleep("50 millis")
              yield* sql`INSERT INTO serial (who) VALUES ('a2')`
              return yield* Effect.fail("abort" as const)
            })
          )
          .pipe(Effect.exit, Effect.forkChild)
        yield* Effect.sleep("10 millis")
        const fiberB = yield* Effect.forkChild(sql`INSERT INTO serial (who) VALUES ('b')`)
        const exitA = yield* Fiber.join(fiberA)
        yield* Fiber.join(fiberB)
        assert.strictEqual(failureOf(exitA), "abort")
        const rows = yield* sql<{ who: string }>`SELECT who FROM serial ORDER BY seq`
        assert.deepStrictEqual(
          rows.map((r) => r.who),
          ["b"]
        )

        // Two committing transactions: each one's rows stay contiguous.
        const writer = (who: string) =>
          sql.withTransaction(
            Effect.gen(function* () {
              for (let i = 0; i < 5; i++) {
                yield* sql`INSERT INTO serial (who) VALUES (${who})`
                yield* Effect.sleep("2 millis")
              }
            })
          )
        yield* Effect.all([writer("x"), writer("y")], { concurrency: 2 })
        const order = (yield* sql<{ who: string }>`SELECT who FROM serial WHERE who IN ('x', 'y') ORDER BY seq`)
          .map((r) => r.who)
          .join("")
        assert.isTrue(order === "xxxxxyyyyy" || order === "yyyyyxxxxx", order)
      })
    )

    it.effect("maps sqlite errors to SqlError reasons", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE uniq (k TEXT PRIMARY KEY, v TEXT UNIQUE, n INTEGER NOT NULL)`
        yield* sql`INSERT INTO uniq VALUES ('a', 'x', 1)`

        const syntax = failureOf(yield* Effect.exit(sql`SELEC 1`))
        assert.isTrue(SqlError.isSqlError(syntax))
        assert.strictEqual(syntax.reason._tag, "SqlSyntaxError")

        const unique = failureOf(yield* Effect.exit(sql`INSERT INTO uniq VALUES ('b', 'x', 1)`))
        assert.strictEqual(unique.reason._tag, "UniqueViolation")
        assert.strictEqual((unique.reason as SqlError.UniqueViolation).constraint, "uniq.v")

        const primary = failureOf(yield* Effect.exit(sql`INSERT INTO uniq VALUES ('a', 'y', 1)`))
        assert.strictEqual(primary.reason._tag, "UniqueViolation")

        const notNull = failureOf(yield* Effect.exit(sql`INSERT INTO uniq VALUES ('c', 'z', ${null})`))
        assert.strictEqual(notNull.reason._tag, "ConstraintError")

        const missing = failureOf(yield* Effect.exit(sql`SELECT * FROM no_such_table`))
        assert.strictEqual(missing.reason._tag, "SqlSyntaxError")

        const badParam = failureOf(yield* Effect.exit(sql.unsafe("SELECT ?", [{ an: "object" } as any])))
        assert.isTrue(SqlError.isSqlError(badParam))
      })
    )

    it.effect("returns raw results, value arrays, unprepared results and streams", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE many (id INTEGER PRIMARY KEY, label TEXT)`
        const raw: any = yield* sql`INSERT INTO many (label) VALUES ('first')`.raw
        assert.strictEqual(Number(raw.changes), 1)
        assert.strictEqual(Number(raw.lastInsertRowid), 1)
        const rawRows: any = yield* sql`SELECT label FROM many`.raw
        assert.deepStrictEqual(
          rawRows.map((r: any) => r.label),
          ["first"]
        )
        for (let i = 2; i <= 300; i++) yield* sql`INSERT INTO many (id, label) VALUES (${i}, ${`row ${i}`})`
        const values = yield* sql`SELECT id, label FROM many WHERE id <= 2 ORDER BY id`.values
        assert.deepStrictEqual(values, [
          [1, "first"],
          [2, "row 2"]
        ])
        const unprepared = yield* sql`SELECT count(*) AS n FROM many`.unprepared
        assert.strictEqual(unprepared[0].n, 300)
        const streamed = yield* sql<{ id: number }>`SELECT id FROM many ORDER BY id`.stream.pipe(
          Stream.map((row) => row.id),
          Stream.runCollect
        )
        assert.strictEqual(streamed.length, 300)
        assert.strictEqual(streamed[299], 300)
        const streamError = yield* sql`SELECT * FROM nowhere`.stream.pipe(Stream.runCollect, Effect.exit)
        assert.isTrue(SqlError.isSqlError(failureOf(streamError)))
      })
    )

    it.effect("runs migrations once", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const migrations: SqlMigrator.Migrations = {
          "1_accounts": Effect.asVoid(sql`CREATE TABLE accounts (id TEXT PRIMARY KEY, balance BIGINT NOT NULL)`),
          "2_seed": Effect.asVoid(sql`INSERT INTO accounts VALUES ('alice', 10)`)
        }
        const first = yield* SqlMigrator.migrate({ migrations, table: "unit_migrations" })
        assert.deepStrictEqual(first, [
          [1, "accounts"],
          [2, "seed"]
        ])
        const second = yield* SqlMigrator.migrate({ migrations, table: "unit_migrations" })
        assert.deepStrictEqual(second, [])
        const more = yield* SqlMigrator.migrate({
          migrations: { ...migrations, "3_bob": Effect.asVoid(sql`INSERT INTO accounts VALUES ('bob', 5)`) },
          table: "unit_migrations"
        })
        assert.deepStrictEqual(more, [[3, "bob"]])
        const [{ n }] = yield* sql<{ n: number }>`SELECT count(*) AS n FROM accounts`
        assert.strictEqual(n, 2)
        const bad = yield* Effect.exit(SqlMigrator.migrate({ migrations: { oops: Effect.void }, table: "x" }))
        assert.strictEqual((failureOf(bad) as any)._tag, "MigrationError")
        // A failing migration rolls back with the ones before it in the same run.
        const failing = yield* Effect.exit(
          SqlMigrator.migrate({
            migrations: {
              "1_a": Effect.asVoid(sql`CREATE TABLE mig_a (x INTEGER)`),
              "2_b": Effect.asVoid(sql`CREATE TABLE mig_a (x INTEGER)`)
            },
            table: "failing_migrations"
          })
        )
        assert.isTrue(Exit.isFailure(failing))
        const tables = yield* sql`SELECT name FROM sqlite_master WHERE name = 'mig_a'`
        assert.strictEqual(tables.length, 0)
      })
    )
  })

  it.layer(SqliteClient.layer({ filename: ":memory:", transformResultNames: (s) => s.toUpperCase() }), {
    excludeTestServices: true
  })("with transforms", (it) => {
    it.effect("renames result columns", () =>
      Effect.gen(function* () {
        const client = yield* SqliteClient.SqliteClient
        const rows = yield* client`SELECT 1 AS one`
        assert.deepStrictEqual({ ...rows[0] }, { ONE: 1 })
        const raw = yield* client`SELECT 1 AS one`.withoutTransform
        assert.deepStrictEqual({ ...raw[0] }, { one: 1 })
      })
    )
  })

  it.live("keeps data in a file across reopen, in WAL mode, creating the folder", () =>
    Effect.gen(function* () {
      const root = mkdtempSync(join(tmpdir(), "tessera-sqlite-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(root, { recursive: true, force: true })))
      const filename = join(root, "nested", "data", "tessera.db")
      const useDb = <A, E>(effect: Effect.Effect<A, E, SqliteClient.SqliteClient | SqlClient.SqlClient>) =>
        Effect.provide(effect, SqliteClient.layer({ filename }))

      const firstDatabase = yield* useDb(
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const [mode] = yield* sql<{ journal_mode: string }>`PRAGMA journal_mode`
          assert.strictEqual(mode.journal_mode, "wal")
          const [fk] = yield* sql<{ foreign_keys: number }>`PRAGMA foreign_keys`
          assert.strictEqual(fk.foreign_keys, 1)
          const [sync] = yield* sql<{ synchronous: number }>`PRAGMA synchronous`
          assert.strictEqual(sync.synchronous, 2) // FULL: an acknowledged commit survives power loss
          yield* sql`CREATE TABLE kept (k TEXT PRIMARY KEY, v BLOB)`
          yield* sql.withTransaction(sql`INSERT INTO kept VALUES ('a', ${new Uint8Array([7, 8])})`)
          return yield* (yield* SqliteClient.SqliteClient).withDatabase((database) => database)
        })
      )
      // Closing the layer's scope closed the database.
      assert.isFalse(firstDatabase.isOpen)
      const rows = yield* useDb(
        Effect.gen(function* () {
          const client = yield* SqliteClient.SqliteClient
          // The first scope closed the database: this client is a fresh connection on the same file.
          assert.strictEqual(client.config.filename, filename)
          return yield* client<{ k: string; v: Uint8Array }>`SELECT k, v FROM kept`
        })
      )
      assert.strictEqual(rows.length, 1)
      assert.strictEqual(rows[0].k, "a")
      assert.deepStrictEqual(Array.from(rows[0].v), [7, 8])
    })
  )

  it.live("fails to open a database it cannot create with a SqlError", () =>
    Effect.gen(function* () {
      const root = mkdtempSync(join(tmpdir(), "tessera-sqlite-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(root, { recursive: true, force: true })))
      // A regular file where the data folder should be.
      writeFileSync(join(root, "file"), "")
      const exit = yield* Effect.exit(
        Layer.build(SqliteClient.layer({ filename: join(root, "file", "tessera.db") })).pipe(Effect.scoped)
      )
      assert.isTrue(SqlError.isSqlError(failureOf(exit)))
    })
  )
})

describe("LruCache", () => {
  it("evicts the least recently used entry", () => {
    const cache = new LruCache<string, number>(2)
    cache.set("a", 1)
    cache.set("b", 2)
    assert.strictEqual(cache.get("a"), 1)
    assert.strictEqual(cache.set("c", 3), 2)
    assert.strictEqual(cache.get("b"), undefined)
    assert.strictEqual(cache.get("a"), 1)
    assert.strictEqual(cache.get("c"), 3)
    assert.strictEqual(cache.size, 2)
  })
})
