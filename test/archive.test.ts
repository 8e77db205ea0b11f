/**
 * Data lifecycle on the real PostgreSQL: rows of the seed modules' retained tables are written, aged (their time
 * column set back), archived to a folder store and deleted by the retention job, then restored and compared row by
 * row; a crash between upload and delete, and one part way through the deletes; the `tessera archive` CLI (usage
 * errors, list, restore); and a runner process whose retention singleton archives on its own schedule.
 */
import { createRequire } from "node:module"
import { PassThrough } from "node:stream"
import { assert, describe, it } from "@effect/vitest"
import { main } from "@tessera/client/cli"
import type { Module } from "@tessera/contracts"
import * as ObjectStore from "@tessera/platform/ObjectStore"
import * as SqlMigrator from "@tessera/platform/SqlMigrator"
import { archiveCommand } from "@tessera/runtime/archiveCli"
import * as Config from "@tessera/runtime/config"
import * as Retention from "@tessera/runtime/retention"
import { layerSql } from "@tessera/runtime/storage"
import { Duration, Effect, Layer, Option, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { seedModules } from "../actors/index.ts"
import { freshDatabase, startProcess, tempDataDir } from "./harness.ts"
import { parse, value } from "./promText.ts"

const day = 86_400_000
const all = seedModules.flatMap((module) => module.retention ?? [])
const retentionOf = (name: string) => all.find((r) => r.name === name)!
const jobs: ReadonlyArray<Retention.Job> = all.map((retention) => ({ retention, age: Duration.days(1) }))

type Row = Record<string, unknown>

/** A row as the archive holds it: BIGINT columns (bigint from the driver) as decimal strings. */
const asArchived = (row: Row): Row =>
  Object.fromEntries(Object.entries(row).map(([column, v]) => [column, typeof v === "bigint" ? v.toString() : v]))

/** A fresh database with the seed modules' tables, and a folder archive store, for one test. */
const setup = Effect.acquireRelease(
  Effect.sync(() => ({ db: freshDatabase("archive"), data: tempDataDir() })),
  ({ db, data }) =>
    Effect.sync(() => {
      db.drop()
      data.remove()
    })
)

const layersOf = (
  url: string,
  archive: string,
  store?: (base: ObjectStore.ObjectStoreShape) => ObjectStore.ObjectStoreShape
) =>
  Layer.merge(
    layerSql,
    store === undefined
      ? Retention.layerArchiveStore
      : Layer.succeed(Retention.ArchiveStore)(store(ObjectStore.makeLocal({ root: archive })))
  ).pipe(Layer.provide(Config.layer({ databaseUrl: Option.some(Redacted.make(url)), archive: Option.some(archive) })))

const migrate = Effect.forEach(
  seedModules.flatMap((module: Module.Any) => (module.migrations === undefined ? [] : [module.migrations])),
  (migrations) => SqlMigrator.migrate(migrations),
  { discard: true }
)

const tables = ["trades", "orders", "symbol_journal", "orderbook_deltas"] as const
const keyOf: Record<(typeof tables)[number], string> = {
  trades: "symbol, trade_id",
  orders: "symbol, order_id",
  symbol_journal: "symbol, seq",
  orderbook_deltas: "market, seq"
}

const dump = (table: (typeof tables)[number]) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<Row>`SELECT * FROM ${sql.literal(table)} ORDER BY ${sql.literal(keyOf[table])}`
  )

const dumpAll = Effect.all({
  trades: dump("trades"),
  orders: dump("orders"),
  symbol_journal: dump("symbol_journal"),
  orderbook_deltas: dump("orderbook_deltas")
})

/**
 * Rows of every retained table, through the tables' own insert paths (the trigger stamps `created_at`), some of
 * them aged three days. Answers the key sets the job may archive.
 */
const writeRows = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const before = Date.now()
  yield* sql`INSERT INTO trades (symbol, trade_id, maker_order_id, taker_order_id, taker_side, price, qty)
    SELECT 'BTC-USDT', g, g, g + 100000, 'buy', '100.25', '0.5' FROM generate_series(1, 1200) g`
  yield* sql`INSERT INTO trades SELECT r.* FROM json_populate_recordset(NULL::trades, ${JSON.stringify([
    {
      symbol: "ETH-USDT",
      trade_id: 1,
      maker_order_id: 1,
      taker_order_id: 2,
      taker_side: "sell",
      price: "3000",
      qty: "1"
    }
  ])}::json) r`
  const statuses = ["filled", "canceled", "expired", "killed", "open"]
  for (let i = 1; i <= 20; i++) {
    yield* sql`INSERT INTO orders ${sql.insert({
      symbol: "BTC-USDT",
      order_id: i,
      account: `a${i % 3}`,
      client_order_id: `c${i}`,
      side: i % 2 === 0 ? "buy" : "sell",
      type: "limit",
      tif: "GTC",
      post_only: 0,
      price: `${100 + i}.00`,
      qty: "2",
      filled_qty: i % 5 === 0 ? "0" : "2",
      status: statuses[i % 5]
    })}`
  }
  for (let seq = 1; seq <= 10; seq++) {
    yield* sql`INSERT INTO symbol_journal (symbol, seq, commands) VALUES ('BTC-USDT', ${seq}, ${`[{"seq":${seq}}]`})`
  }
  yield* sql`INSERT INTO symbol_snapshots (symbol, seq, snapshot) VALUES ('BTC-USDT', 6, '{}')`
  const old = before - 3 * day
  yield* sql`INSERT INTO orderbook_deltas (market, seq, ts, side, price, qty, written_at)
    SELECT m, g, ${old} + g, g % 2, 100 + g * 0.125, g * 0.001, ${old} + g
    FROM (VALUES ('m1', 50), ('m2', 5)) AS v(m, n), generate_series(1, v.n) g`
  const stamped = yield* sql<{ n: string }>`SELECT count(*) AS n FROM trades
    WHERE created_at BETWEEN ${before - 60_000} AND ${Date.now() + 60_000}`
  assert.strictEqual(Number(stamped[0].n), 1201, "the trigger stamps created_at on both insert paths")
  // Aged: BTC trades 1..1100, orders 1..15 (finished and open), every journal row; deltas were written old.
  yield* sql`UPDATE trades SET created_at = created_at - ${3 * day} + trade_id WHERE symbol = 'BTC-USDT' AND trade_id <= 1100`
  yield* sql`UPDATE orders SET created_at = created_at - ${3 * day} WHERE order_id <= 15`
  yield* sql`UPDATE symbol_journal SET created_at = created_at - ${3 * day}`
  return {
    trades: (row: Row) => row.symbol === "BTC-USDT" && Number(row.trade_id) <= 1100,
    orders: (row: Row) => Number(row.order_id) <= 15 && row.status !== "open",
    // Covered by the newest snapshot (seq 6); the rows after it are what a shard recovers from.
    symbol_journal: (row: Row) => Number(row.seq) <= 6,
    // A market's newest delta stays.
    orderbook_deltas: (row: Row) => (row.market === "m1" ? Number(row.seq) < 50 : Number(row.seq) < 5)
  } satisfies Record<(typeof tables)[number], (row: Row) => boolean>
})

const restoreAll = Effect.forEach(all, (retention) => Retention.restore(retention, 0, Date.now() + day))

const run = (options: Partial<{ batchRows: number; maxBatches: number }> = {}) =>
  Retention.runOnce(jobs, { now: Date.now(), batchRows: 1000, maxBatches: 10, ...options })

type Archived = Layer.Success<ReturnType<typeof layersOf>>

/**
 * A test's body on its own migrated database and folder archive (dropped and removed after it), with SQL and the
 * archive store provided.
 */
const withArchive = <A, E>(
  body: (env: { readonly db: ReturnType<typeof freshDatabase>; readonly dir: string }) => Effect.Effect<A, E, Archived>
) =>
  Effect.gen(function* () {
    const { db, data } = yield* setup
    return yield* Effect.andThen(migrate, body({ db, dir: data.dir })).pipe(Effect.provide(layersOf(db.url, data.dir)))
  }).pipe(Effect.scoped)

const sortRows = (rows: ReadonlyArray<Row>, key: ReadonlyArray<string>) =>
  [...rows].sort((a, b) => {
    for (const column of key) {
      const x = String(a[column])
      const y = String(b[column])
      if (x !== y) return x.length - y.length || (x < y ? -1 : 1)
    }
    return 0
  })

describe("retention and archive", () => {
  it.live(
    "archives aged rows of every retained table, deletes exactly them, and restores them row by row",
    () =>
      withArchive(() =>
        Effect.gen(function* () {
          const archivable = yield* writeRows
          const before = yield* dumpAll

          const results = yield* run()
          const expected = Object.fromEntries(tables.map((t) => [t, before[t].filter(archivable[t])]))
          const byName = Object.fromEntries(results.map((r) => [r.name, r]))
          assert.deepStrictEqual(
            Object.fromEntries(all.map((r) => [r.name, [byName[r.name].archived, byName[r.name].deleted]])),
            {
              trades: [1100, 1100],
              orders: [12, 12],
              journal: [6, 6],
              orderbook_deltas: [53, 53]
            }
          )

          // The archive: objects by key, each manifest matching its data, together exactly the archived rows.
          const entries = yield* Retention.list()
          assert.deepStrictEqual(
            entries.map((e) => [e.name, e.rows]),
            [
              ["journal", 6],
              ["orderbook_deltas", 53],
              ["orders", 12],
              ["trades", 1000],
              ["trades", 100]
            ]
          )
          for (const retention of all) {
            const archived: Array<Row> = []
            for (const entry of entries.filter((e) => e.name === retention.name)) {
              const object = yield* Retention.readObject(retention, entry.manifest)
              assert.strictEqual(object.manifest.format, "tessera-archive/1")
              assert.strictEqual(object.manifest.table, retention.table)
              assert.strictEqual(object.manifest.rows, object.rows.length)
              assert.strictEqual(object.manifest.fromTime, entry.fromTime)
              assert.isAtMost(object.manifest.fromTime, object.manifest.toTime)
              archived.push(...object.rows)
            }
            assert.deepStrictEqual(
              sortRows(archived, retention.key),
              sortRows(expected[retention.table].map(asArchived), retention.key),
              `${retention.name}: archived rows`
            )
          }

          // Deleted exactly those: everything else is untouched.
          const after = yield* dumpAll
          for (const table of tables) {
            assert.deepStrictEqual(
              after[table],
              before[table].filter((row) => !archivable[table](row)),
              `${table}: what stays`
            )
          }

          // Restore, then once more: the tables are as written, the second restore inserts nothing.
          const restored = yield* restoreAll
          assert.deepStrictEqual(
            restored.map((r) => [r.table, r.rows, r.inserted]),
            [
              ["trades", 1100, 1100],
              ["orders", 12, 12],
              ["symbol_journal", 6, 6],
              ["orderbook_deltas", 53, 53]
            ]
          )
          const back = yield* dumpAll
          for (const table of tables) assert.deepStrictEqual(back[table], before[table], `${table}: restored`)
          const again = yield* restoreAll
          assert.deepStrictEqual(
            again.map((r) => r.inserted),
            [0, 0, 0, 0]
          )

          // A restore of a sub-range re-inserts only rows of that range.
          yield* run()
          const trades = retentionOf("trades")
          const from = Number(expected.trades[100].created_at)
          const to = Number(expected.trades[200].created_at)
          const partial = yield* Retention.restore(trades, from, to)
          assert.strictEqual(partial.inserted, 100)
          assert.deepStrictEqual(
            (yield* dump("trades")).filter((row) => row.symbol === "BTC-USDT").map((row) => Number(row.trade_id)),
            [...Array.from({ length: 100 }, (_, i) => 101 + i), ...Array.from({ length: 100 }, (_, i) => 1101 + i)]
          )
          // Archiving the same rows again writes the same objects (the keys come from the batch).
          assert.deepStrictEqual(
            (yield* Retention.list()).map((e) => e.manifest),
            entries.map((e) => e.manifest)
          )
        })
      ),
    120_000
  )

  it.live(
    "a crash between upload and delete neither loses rows nor leaves a second archive; one mid-delete restores once",
    () =>
      withArchive(({ db, dir }) => {
        const crashAfterManifest = (base: ObjectStore.ObjectStoreShape): ObjectStore.ObjectStoreShape => ({
          ...base,
          put: (key, bytes) =>
            key.endsWith(".manifest.json")
              ? Effect.andThen(base.put(key, bytes), Effect.die("crash after the upload"))
              : base.put(key, bytes)
        })
        const trades = retentionOf("trades")
        const tradesOnly = [{ retention: trades, age: Duration.days(1) }]
        const runTrades = Retention.runOnce(tradesOnly, { now: Date.now(), batchRows: 1000, maxBatches: 10 })
        return Effect.gen(function* () {
          yield* writeRows
          const before = yield* dump("trades")
          const [crashed] = yield* runTrades.pipe(Effect.provide(layersOf(db.url, dir, crashAfterManifest)))
          assert.deepStrictEqual([crashed.archived, crashed.deleted], [0, 0])
          assert.deepStrictEqual(yield* dump("trades"), before, "nothing deleted")
          const uploaded = (yield* Retention.list("trades")).map((e) => e.manifest)
          assert.strictEqual(uploaded.length, 1, "the first batch was uploaded")

          const [resumed] = yield* runTrades
          assert.deepStrictEqual([resumed.archived, resumed.deleted], [1100, 1100])
          const listed = (yield* Retention.list("trades")).map((e) => e.manifest)
          assert.strictEqual(listed.length, 2)
          assert.include(listed, uploaded[0], "the crashed batch was rewritten under its own key, not archived anew")

          // Part way through the deletes: the first batch archived, half its rows deleted, then the crash.
          yield* Retention.restore(trades, 0, Date.now() + day)
          const store = yield* Retention.ArchiveStore
          const cutoff = Date.now() - day
          const batch = yield* Retention.selectBatch(trades, cutoff, 1000)
          yield* Retention.upload(store, trades, batch)
          assert.strictEqual(yield* Retention.deleteRows(trades, batch.slice(0, 500), cutoff), 500)
          const [rest] = yield* runTrades
          assert.deepStrictEqual([rest.archived, rest.deleted], [600, 600])
          assert.strictEqual((yield* Retention.list("trades")).length, 3, "the rest of the batch is a second object")
          const restored = yield* Retention.restore(trades, 0, Date.now() + day)
          assert.deepStrictEqual([restored.rows, restored.inserted], [1000 + 100 + 600, 1100])
          assert.deepStrictEqual(yield* dump("trades"), before, "every row back, once")
        })
      }),
    120_000
  )

  it.live(
    "refuses an archive object that does not match its manifest, inserting nothing of it",
    () =>
      withArchive(() =>
        Effect.gen(function* () {
          yield* writeRows
          yield* run()
          const store = yield* Retention.ArchiveStore
          const [entry] = yield* Retention.list("orders")
          const manifest = JSON.parse(new TextDecoder().decode((yield* store.get(entry.manifest))!))
          const original = (yield* store.get(manifest.data))!
          yield* store.put(manifest.data, original.slice(0, original.length - 1))
          const error = yield* Effect.flip(Retention.restore(retentionOf("orders"), 0, Date.now() + day))
          assert.strictEqual(error._tag, "ArchiveError")
          assert.include(error.message, "SHA-256")
          assert.strictEqual((yield* dump("orders")).length, 8, "nothing restored")
          // A manifest read under another table's declaration is refused too.
          const wrong = yield* Effect.flip(Retention.readObject(retentionOf("trades"), entry.manifest))
          assert.include(wrong.message, "not trades")
        })
      ),
    120_000
  )

  it.live("retention settings: unknown names and bad declarations stop the node", () =>
    Effect.gen(function* () {
      const unknown = yield* Effect.flip(Retention.jobsOf(seedModules, [{ name: "candles", age: Duration.days(1) }]))
      assert.include(unknown.message, "candles, which no module declares (")
      assert.include(unknown.message, "journal")
      const bad = yield* Effect.flip(
        Retention.declared([
          { ...seedModules[0], retention: [{ name: "x", table: "x; DROP TABLE orders", timeColumn: "t", key: ["k"] }] }
        ])
      )
      assert.include(bad.message, "is not an identifier")
      for (const [text, mentions] of [
        ["trades=5 minutes", "1 hour or more"],
        ["trades=90", "is not a duration"],
        ["trades=1 day,trades=2 days", "listed twice"],
        ["Trades=1 day", "name=duration"]
      ] as const) {
        const exit = yield* Effect.exit(Config.fromEnv({ TESSERA_RETENTION: text }))
        assert.include(JSON.stringify(exit), mentions, text)
      }
      // A cluster needs an archive every runner reaches: the singleton moves between them.
      const built = Retention.layer(seedModules) as unknown as Layer.Layer<never, Retention.RetentionError>
      const local = yield* Effect.flip(
        Layer.build(built).pipe(
          Effect.provide(
            Config.layer({
              databaseUrl: Option.some(Redacted.make("postgres://127.0.0.1/none")),
              retention: [{ name: "trades", age: Duration.days(1) }]
            })
          ),
          Effect.scoped
        )
      )
      assert.include(local.message, "needs TESSERA_ARCHIVE")
      const ok = yield* Config.fromEnv({ TESSERA_RETENTION: "orderbook_deltas=7 days, journal=30 days" })
      assert.deepStrictEqual(
        ok.retention.map((s) => [s.name, Duration.toMillis(s.age)]),
        [
          ["orderbook_deltas", 7 * day],
          ["journal", 30 * day]
        ]
      )
    })
  )
})

const cli = async (args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  let out = ""
  let err = ""
  const stdout = new PassThrough().on("data", (chunk: Buffer) => {
    out += chunk
  })
  const stderr = new PassThrough().on("data", (chunk: Buffer) => {
    err += chunk
  })
  const code = await main(args, { stdin: new PassThrough(), stdout, stderr, env }, [archiveCommand(seedModules)])
  return { code, out, err }
}

describe("tessera archive", () => {
  it("answers bad arguments with a usage error and exit 2", async () => {
    for (const [args, mentions] of [
      [["archive"], "missing subcommand: list or restore"],
      [["archive", "frob"], 'unknown subcommand "frob"'],
      [["archive", "restore", "--table", "trades", "--to", "2026-01-01"], "restore needs --from"],
      [["archive", "restore", "--from", "0", "--to", "1"], "restore needs --table"],
      [["archive", "restore", "--table", "candles", "--from", "0", "--to", "1"], "not an archived table (trades"],
      [["archive", "list", "--from", "yesterday"], '--from "yesterday": expected an ISO 8601'],
      [
        ["archive", "restore", "--table", "trades", "--from", "2026-02-01", "--to", "2026-01-01"],
        "--from must be before"
      ],
      [["archive", "list", "--tabel", "trades"], "Unknown option '--tabel'"]
    ] as const) {
      const result = await cli(args)
      assert.strictEqual(result.code, 2, args.join(" "))
      assert.include(result.err, mentions)
      assert.include(result.err, "usage: tessera archive list")
      assert.strictEqual(result.out, "")
    }
    const help = await cli(["archive", "--help"])
    assert.strictEqual(help.code, 0)
    assert.include(help.out, "--table T")
  })

  it.live(
    "lists and restores through the command with the node's environment",
    () =>
      withArchive(({ db, dir }) =>
        Effect.gen(function* () {
          yield* writeRows
          yield* run()
          const env = { DATABASE_URL: db.url, TESSERA_ARCHIVE: dir }
          const listed = yield* Effect.promise(() => cli(["archive", "list", "--table", "orders"], env))
          assert.strictEqual(listed.code, 0, listed.err)
          const entries = JSON.parse(listed.out) as Array<{ table: string; from: string; rows: number }>
          assert.deepStrictEqual(
            entries.map((e) => [e.table, e.rows]),
            [["orders", 12]]
          )
          const until = new Date(Date.now() + day).toISOString()
          const restored = yield* Effect.promise(() =>
            cli(["archive", "restore", "--table", "orders", "--from", "2000-01-01", "--to", until], env)
          )
          assert.strictEqual(restored.code, 0, restored.err)
          assert.deepStrictEqual(JSON.parse(restored.out), { table: "orders", objects: 1, rows: 12, inserted: 12 })
          assert.strictEqual(db.query("SELECT count(*) FROM orders"), "20")
          const none = yield* Effect.promise(() =>
            cli(["archive", "list", "--table", "trades", "--to", "2000-01-01"], env)
          )
          assert.deepStrictEqual(JSON.parse(none.out), [])
        })
      ),
    120_000
  )
})

interface S3rverInstance {
  run: () => Promise<{ port: number }>
  close: () => Promise<void>
}
const S3rver = createRequire(import.meta.url)("s3rver") as new (options: Record<string, unknown>) => S3rverInstance

describe("ObjectStore.list", () => {
  const contract = (store: ObjectStore.ObjectStoreShape) =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* store.list("archive/"), [])
      for (const key of ["archive/b/2.json", "archive/a/1.json", "archive/b/1.json", "other/x.json"]) {
        yield* store.put(key, new TextEncoder().encode(key))
      }
      assert.deepStrictEqual(yield* store.list("archive/"), [
        "archive/a/1.json",
        "archive/b/1.json",
        "archive/b/2.json"
      ])
      assert.deepStrictEqual(yield* store.list("archive/b/"), ["archive/b/1.json", "archive/b/2.json"])
      yield* store.delete("archive/b/1.json")
      assert.deepStrictEqual(yield* store.list("archive/b/"), ["archive/b/2.json"])
    })

  it.live("a folder lists its keys, not directories or temporary files", () =>
    Effect.gen(function* () {
      const data = tempDataDir()
      yield* Effect.addFinalizer(() => Effect.sync(data.remove))
      const store = ObjectStore.makeLocal({ root: data.dir })
      yield* contract(store)
      yield* Effect.promise(() =>
        ObjectStore.writeAtomically(`${data.dir}/archive/b/3.json`, new Uint8Array([1]), true)
      )
      assert.deepStrictEqual(yield* store.list("archive/b/"), ["archive/b/2.json"])
    }).pipe(Effect.scoped)
  )

  it.live(
    "S3 lists the keys under the store's prefix",
    () =>
      Effect.gen(function* () {
        const data = tempDataDir()
        const server = new S3rver({ port: 0, address: "127.0.0.1", silent: true, directory: data.dir })
        const { port } = yield* Effect.promise(() => server.run())
        yield* Effect.addFinalizer(() => Effect.promise(() => server.close().finally(data.remove)))
        const store = yield* ObjectStore.makeS3({
          bucket: "tessera-archive",
          prefix: "test",
          endpoint: `http://127.0.0.1:${port}`,
          credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
          createBucket: true
        })
        yield* contract(store)
      }).pipe(Effect.scoped),
    120_000
  )
})

describe("the retention singleton in a runner", () => {
  it.live(
    "archives aged rows on its schedule and counts them in /metrics",
    () =>
      Effect.gen(function* () {
        const { db, data } = yield* setup
        const runner = yield* Effect.acquireRelease(
          Effect.promise(() =>
            startProcess("retention-runner", {
              env: {
                DATABASE_URL: db.url,
                TESSERA_DATA: data.dir,
                TESSERA_ARCHIVE: `${data.dir}/archive`,
                TESSERA_RETENTION: "trades=1 day",
                TESSERA_RETENTION_INTERVAL: "1 second"
              }
            })
          ),
          (r) => Effect.sync(() => r.child.kill("SIGKILL"))
        )
        db.query(`INSERT INTO trades (symbol, trade_id, maker_order_id, taker_order_id, taker_side, price, qty)
          SELECT 'SOL-USDT', g, g, g + 1, 'buy', '20', '1' FROM generate_series(1, 40) g`)
        db.query(`UPDATE trades SET created_at = created_at - ${2 * day} WHERE trade_id <= 30`)
        // Polls until the job has run (the test's own timeout bounds it).
        while (db.query("SELECT count(*) FROM trades") !== "10") yield* Effect.sleep("200 millis")
        assert.strictEqual(db.query("SELECT min(trade_id) FROM trades"), "31")
        const samples = parse(yield* Effect.promise(() => fetch(`${runner.url}/metrics`).then((r) => r.text())))
        assert.strictEqual(value(samples, "tessera_retention_rows_archived_total", { table: "trades" }), 30)
        assert.strictEqual(value(samples, "tessera_retention_rows_deleted_total", { table: "trades" }), 30)
        const entries = yield* Retention.list("trades").pipe(
          Effect.provide(Layer.succeed(Retention.ArchiveStore)(ObjectStore.makeLocal({ root: `${data.dir}/archive` })))
        )
        assert.deepStrictEqual(
          entries.map((e) => e.rows),
          [30]
        )
      }).pipe(Effect.scoped),
    120_000
  )
})
