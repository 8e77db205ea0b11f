/**
 * Data lifecycle: the host's retention job and the archive it writes.
 *
 * Modules declare their retained tables (`Module.retention`); an operator turns retention on per table
 * (`TESSERA_RETENTION=trades=365 days,...`). One cluster singleton then runs every `TESSERA_RETENTION_INTERVAL`:
 * for each table it selects the oldest rows past the table's age (at most `TESSERA_RETENTION_BATCH_ROWS`, in time
 * then key order), writes them to the archive store as one gzip JSON-lines object plus a manifest, and only then
 * deletes exactly those rows, a few hundred per statement, so the tables' writers never wait behind a long delete.
 * At most `TESSERA_RETENTION_MAX_BATCHES` objects per table per run bound the work a run does.
 *
 * Crash safety: an object's key is derived from its batch (time range, first and last key, row count) and the
 * manifest is written after the data, so a crash between upload and delete leaves rows in the table and an archive
 * the next run rewrites under the same key. A crash part way through the deletes leaves the rest of the batch, which
 * the next run archives again under another key: rows can be in two objects, never in none, and restore inserts
 * with `ON CONFLICT DO NOTHING`, so a row restored twice is one row.
 *
 * Layout (format `tessera-archive/1`), under `archive/<name>/`:
 *   `<from>-<to>-<rows>-<hash>.jsonl.gz`      one JSON object per row, columns as the database returned them
 *   `<from>-<to>-<rows>-<hash>.manifest.json` table, time column, key, columns, rows, time range, first and last
 *                                              key, the data object's key, byte length and SHA-256
 * `from` and `to` are the batch's first and last time (epoch milliseconds, 13 digits), so keys sort by time and a
 * listing tells ranges without reading manifests.
 */
import { createHash } from "node:crypto"
import { join } from "node:path"
import { promisify } from "node:util"
import { gunzip, gzip } from "node:zlib"
import type { Module } from "@tessera/contracts"
import { counter } from "@tessera/platform/Metrics"
import * as ObjectStore from "@tessera/platform/ObjectStore"
import { Context, Data, Duration, Effect, Layer, Option, Schema } from "effect"
import { Singleton } from "effect/cluster"
import { SqlClient } from "effect/sql"
import { TesseraConfig, type TesseraConfigShape } from "./config.ts"

export const archiveFormat = "tessera-archive/1"

const rowsArchived = counter(
  "tessera_retention_rows_archived_total",
  "Rows written to the archive store by the retention job, by retention name",
  ["table"]
)
const rowsDeleted = counter(
  "tessera_retention_rows_deleted_total",
  "Rows deleted by the retention job after their archive was written, by retention name",
  ["table"]
)
const runFailures = counter(
  "tessera_retention_failures_total",
  "Retention runs of a table that failed (nothing of the failed batch was deleted), by retention name",
  ["table"]
)

/** Wrong retention settings or declarations: the node refuses to start. */
export class RetentionError extends Data.TaggedError("RetentionError")<{ readonly message: string }> {}

/** An archive object that is not what its manifest says: restore stops before inserting anything of it. */
export class ArchiveError extends Data.TaggedError("ArchiveError")<{
  readonly key: string
  readonly message: string
}> {}

export class Manifest extends Schema.Class<Manifest>("tessera/Archive/Manifest")({
  format: Schema.Literal(archiveFormat),
  name: Schema.String,
  table: Schema.String,
  timeColumn: Schema.String,
  key: Schema.Array(Schema.String),
  columns: Schema.Array(Schema.String),
  rows: Schema.Number,
  fromTime: Schema.Number,
  toTime: Schema.Number,
  firstKey: Schema.Array(Schema.Unknown),
  lastKey: Schema.Array(Schema.Unknown),
  data: Schema.String,
  bytes: Schema.Number,
  sha256: Schema.String,
  archivedAt: Schema.String
}) {}

const decodeManifest = Schema.decodeUnknownEffect(Schema.fromJsonString(Manifest))

/** The archive store (`TESSERA_ARCHIVE`), its own service so it never stands in for a module's object store. */
export class ArchiveStore extends Context.Service<ArchiveStore, ObjectStore.ObjectStoreShape>()(
  "tessera/runtime/ArchiveStore"
) {}

/** `s3://bucket/prefix` or a folder; none: `archive` under the data folder. */
export const layerArchiveStore: Layer.Layer<ArchiveStore, ObjectStore.ObjectStoreError, TesseraConfig> = Layer.effect(
  ArchiveStore
)(
  Effect.gen(function* () {
    const config = yield* TesseraConfig
    const target = Option.getOrElse(config.archive, () => join(config.dataDir, "archive"))
    const s3 = ObjectStore.parseS3Url(target)
    if (s3 === undefined) return ObjectStore.makeLocal({ root: target })
    return yield* ObjectStore.makeS3({
      bucket: s3.bucket,
      prefix: s3.prefix,
      endpoint: Option.getOrUndefined(config.s3Endpoint)
    })
  })
)

// ---------------------------------------------------------------------------------------------------------------
// Declarations and settings
// ---------------------------------------------------------------------------------------------------------------

const identifier = /^[a-z_][a-z0-9_]{0,62}$/

/** A declared table with the age it is kept for. */
export interface Job {
  readonly retention: Module.Retention
  readonly age: Duration.Duration
}

/** Every retention the modules declare, checked: identifiers only, names unique. */
export const declared = (
  modules: ReadonlyArray<Module.Any>
): Effect.Effect<ReadonlyArray<Module.Retention>, RetentionError> =>
  Effect.suspend(() => {
    const all = modules.flatMap((module) => module.retention ?? [])
    const names = new Set<string>()
    for (const r of all) {
      const bad = [r.name, r.table, r.timeColumn, ...r.key].find((id) => !identifier.test(id))
      if (bad !== undefined)
        return Effect.fail(new RetentionError({ message: `retention ${r.name}: ${bad} is not an identifier` }))
      if (r.key.length === 0) return Effect.fail(new RetentionError({ message: `retention ${r.name} declares no key` }))
      if (names.has(r.name)) return Effect.fail(new RetentionError({ message: `two retentions are named ${r.name}` }))
      names.add(r.name)
    }
    return Effect.succeed(all)
  })

/** The declarations `TESSERA_RETENTION` turns on; a name no module declares is an error naming the known ones. */
export const jobsOf = (
  modules: ReadonlyArray<Module.Any>,
  settings: TesseraConfigShape["retention"]
): Effect.Effect<ReadonlyArray<Job>, RetentionError> =>
  Effect.flatMap(declared(modules), (all) => {
    const jobs: Array<Job> = []
    for (const setting of settings) {
      const retention = all.find((r) => r.name === setting.name)
      if (retention === undefined) {
        return Effect.fail(
          new RetentionError({
            message: `TESSERA_RETENTION names ${setting.name}, which no module declares (${all.map((r) => r.name).join(", ") || "none"})`
          })
        )
      }
      jobs.push({ retention, age: setting.age })
    }
    return Effect.succeed(jobs)
  })

// ---------------------------------------------------------------------------------------------------------------
// Archiving one batch
// ---------------------------------------------------------------------------------------------------------------

type Row = Record<string, unknown>

// JSON has no bigint; a driver returning one gets its decimal string, which both databases read back exactly.
const toJson = (value: unknown) => JSON.stringify(value, (_, v) => (typeof v === "bigint" ? v.toString() : v))

const gzipAsync = promisify(gzip)
const gunzipAsync = promisify(gunzip)

// An archive store call that hangs (a black-holed S3 endpoint) fails the run instead of holding the job forever.
const storeTimeout = Duration.seconds(60)
const bounded = <A, E>(call: Effect.Effect<A, E>) => Effect.timeout(call, storeTimeout)

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")

const pad = (ms: number) => String(Math.max(0, Math.trunc(ms))).padStart(13, "0")

/** `archive/<name>/` */
const prefixOf = (name: string) => `archive/${name}/`

/** The object keys of a batch: the same rows always give the same keys. */
const keysOf = (retention: Module.Retention, rows: ReadonlyArray<Row>) => {
  const keyOf = (row: Row) => retention.key.map((column) => row[column])
  const first = rows[0]
  const last = rows[rows.length - 1]
  const fromTime = Number(first[retention.timeColumn])
  const toTime = Number(last[retention.timeColumn])
  const hash = sha256(new TextEncoder().encode(toJson([keyOf(first), keyOf(last), rows.length]))).slice(0, 16)
  const base = `${prefixOf(retention.name)}${pad(fromTime)}-${pad(toTime)}-${rows.length}-${hash}`
  return {
    data: `${base}.jsonl.gz`,
    manifest: `${base}.manifest.json`,
    fromTime,
    toTime,
    firstKey: keyOf(first),
    lastKey: keyOf(last)
  }
}

/** Writes the batch's data object, then its manifest (a manifest names only data that is whole). */
export const upload = (store: ObjectStore.ObjectStoreShape, retention: Module.Retention, rows: ReadonlyArray<Row>) =>
  Effect.gen(function* () {
    const keys = keysOf(retention, rows)
    const text = `${rows.map(toJson).join("\n")}\n`
    const bytes = new Uint8Array(yield* Effect.promise(() => gzipAsync(text)))
    yield* bounded(store.put(keys.data, bytes))
    const manifest: Manifest = {
      format: archiveFormat,
      name: retention.name,
      table: retention.table,
      timeColumn: retention.timeColumn,
      key: retention.key,
      columns: Object.keys(rows[0]),
      rows: rows.length,
      fromTime: keys.fromTime,
      toTime: keys.toTime,
      firstKey: keys.firstKey,
      lastKey: keys.lastKey,
      data: keys.data,
      bytes: bytes.length,
      sha256: sha256(bytes),
      archivedAt: new Date().toISOString()
    }
    yield* bounded(store.put(keys.manifest, new TextEncoder().encode(`${toJson(manifest)}\n`)))
    return keys
  })

// Rows per DELETE statement: short statements, so a writer never waits long behind one.
const deleteChunk = 500

const condition = (retention: Module.Retention) => (retention.where === undefined ? "" : ` AND (${retention.where})`)

/** The oldest rows of the table past `cutoff` (epoch ms), at most `limit`, in time then key order. */
export const selectBatch = (retention: Module.Retention, cutoff: number, limit: number) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql<Row>`SELECT * FROM ${sql.literal(retention.table)}
      WHERE ${sql.literal(retention.timeColumn)} < ${cutoff}${sql.literal(condition(retention))}
      ORDER BY ${sql.literal([retention.timeColumn, ...retention.key].join(", "))} LIMIT ${limit}`
  )

/** Deletes exactly `rows` (by key, still past `cutoff`), in their order; answers how many went. */
export const deleteRows = (retention: Module.Retention, rows: ReadonlyArray<Row>, cutoff: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const columns = sql.literal(retention.key.join(", "))
    let deleted = 0
    for (let i = 0; i < rows.length; i += deleteChunk) {
      const tuples = sql.csv(
        rows
          .slice(i, i + deleteChunk)
          .map((row) => sql`(${sql.csv(retention.key.map((column) => sql`${row[column]}`))})`)
      )
      // SQLite compares row values only against a subquery; PostgreSQL types the bare list from the key columns.
      const keyMatch = sql.onDialectOrElse({
        pg: () => sql`(${columns}) IN (${tuples})`,
        orElse: () => sql`(${columns}) IN (VALUES ${tuples})`
      })
      const gone = yield* sql<Row>`DELETE FROM ${sql.literal(retention.table)}
        WHERE ${keyMatch} AND ${sql.literal(retention.timeColumn)} < ${cutoff}${sql.literal(condition(retention))}
        RETURNING ${sql.literal(retention.key[0])}`
      deleted += gone.length
    }
    return deleted
  })

/** What one run did to one table. */
export interface RunResult {
  readonly name: string
  readonly objects: ReadonlyArray<string>
  readonly archived: number
  readonly deleted: number
}

/** Archives then deletes up to `maxBatches` batches of `job`'s table older than `now - age`. */
export const runJob = (
  job: Job,
  options: { readonly now: number; readonly batchRows: number; readonly maxBatches: number }
) =>
  Effect.gen(function* () {
    const store = yield* ArchiveStore
    const cutoff = options.now - Duration.toMillis(job.age)
    const series = {
      archived: rowsArchived.labels({ table: job.retention.name }),
      deleted: rowsDeleted.labels({ table: job.retention.name })
    }
    const objects: Array<string> = []
    let archived = 0
    let deleted = 0
    for (let batch = 0; batch < options.maxBatches; batch++) {
      const rows = yield* selectBatch(job.retention, cutoff, options.batchRows)
      if (rows.length === 0) break
      const keys = yield* upload(store, job.retention, rows)
      objects.push(keys.manifest)
      archived += rows.length
      series.archived.inc(rows.length)
      const gone = yield* deleteRows(job.retention, rows, cutoff)
      deleted += gone
      series.deleted.inc(gone)
      if (rows.length < options.batchRows) break
    }
    return { name: job.retention.name, objects, archived, deleted } satisfies RunResult
  })

/** One run over every job; a table that fails is logged and counted, the others still run. */
export const runOnce = (
  jobs: ReadonlyArray<Job>,
  options: { readonly now: number; readonly batchRows: number; readonly maxBatches: number }
) =>
  Effect.forEach(jobs, (job) =>
    runJob(job, options).pipe(
      Effect.catchCause((cause) =>
        Effect.as(
          Effect.andThen(
            Effect.sync(() => runFailures.labels({ table: job.retention.name }).inc()),
            Effect.logWarning(`retention of ${job.retention.name} failed; its batch stays in the table`, cause)
          ),
          { name: job.retention.name, objects: [], archived: 0, deleted: 0 } satisfies RunResult
        )
      )
    )
  )

/**
 * The retention singleton of a node hosting `modules`: nothing unless `TESSERA_RETENTION` turns a table on; a name no
 * module declares stops the node at startup.
 */
export const layer = (modules: ReadonlyArray<Module.Any>) =>
  Layer.unwrap(
    Effect.gen(function* () {
      const config = yield* TesseraConfig
      const jobs = yield* jobsOf(modules, config.retention)
      if (jobs.length === 0) return Layer.empty
      // The singleton moves between runners: a default folder would scatter the archive over their local disks.
      if (Option.isSome(config.databaseUrl) && Option.isNone(config.archive)) {
        return yield* new RetentionError({
          message:
            "TESSERA_RETENTION with DATABASE_URL needs TESSERA_ARCHIVE (s3://bucket/prefix, or a folder every runner shares)"
        })
      }
      const options = { batchRows: config.retentionBatchRows, maxBatches: config.retentionMaxBatches }
      const run = Effect.suspend(() => runOnce(jobs, { ...options, now: Date.now() }))
      return Singleton.make(
        "TesseraRetention",
        Effect.andThen(
          Effect.logInfo(`retention: ${jobs.map((j) => `${j.retention.name} ${Duration.format(j.age)}`).join(", ")}`),
          // The first run waits an interval too: by then this node's migrations (the time columns) have run.
          Effect.forever(Effect.andThen(Effect.sleep(config.retentionInterval), run))
        )
      ).pipe(Layer.provide(layerArchiveStore))
    })
  )

// ---------------------------------------------------------------------------------------------------------------
// Reading the archive back
// ---------------------------------------------------------------------------------------------------------------

/** One archived object as its key tells it. */
export interface Entry {
  readonly name: string
  readonly fromTime: number
  readonly toTime: number
  readonly rows: number
  readonly manifest: string
}

const entryPattern = /^archive\/([a-z_][a-z0-9_]*)\/(\d{13})-(\d{13})-(\d+)-[0-9a-f]{16}\.manifest\.json$/

/** The archived objects of `name` (every table when undefined), in time order, read from their keys alone. */
export const list = (name?: string) =>
  Effect.gen(function* () {
    const store = yield* ArchiveStore
    const keys = yield* bounded(store.list(name === undefined ? "archive/" : prefixOf(name)))
    const entries: Array<Entry> = []
    for (const key of keys) {
      const match = entryPattern.exec(key)
      if (match === null) continue
      entries.push({
        name: match[1],
        fromTime: Number(match[2]),
        toTime: Number(match[3]),
        rows: Number(match[4]),
        manifest: key
      })
    }
    return entries.sort(
      (a, b) => a.name.localeCompare(b.name) || a.fromTime - b.fromTime || a.manifest.localeCompare(b.manifest)
    )
  })

/** The manifest and rows of one archived object, checked against each other and against the declaration. */
export const readObject = (retention: Module.Retention, manifestKey: string) =>
  Effect.gen(function* () {
    const store = yield* ArchiveStore
    const fail = (message: string) => Effect.fail(new ArchiveError({ key: manifestKey, message }))
    const manifestBytes = yield* bounded(store.get(manifestKey))
    if (manifestBytes === null) return yield* fail("the manifest is gone")
    const manifest = yield* decodeManifest(new TextDecoder().decode(manifestBytes)).pipe(
      Effect.mapError(
        (error) => new ArchiveError({ key: manifestKey, message: `not a ${archiveFormat} manifest: ${error.message}` })
      )
    )
    if (manifest.table !== retention.table || manifest.timeColumn !== retention.timeColumn) {
      return yield* fail(`the manifest describes ${manifest.table}.${manifest.timeColumn}, not ${retention.table}`)
    }
    const bad = manifest.columns.find((column) => !identifier.test(column))
    if (bad !== undefined) return yield* fail(`column ${JSON.stringify(bad)} is not an identifier`)
    const data = yield* bounded(store.get(manifest.data))
    if (data === null) return yield* fail(`its data object ${manifest.data} is gone`)
    if (data.length !== manifest.bytes || sha256(data) !== manifest.sha256) {
      return yield* fail(`its data object ${manifest.data} does not match the manifest's length and SHA-256`)
    }
    const text = new TextDecoder().decode(yield* Effect.promise(() => gunzipAsync(data)))
    const rows: Array<Row> = []
    for (const line of text.split("\n")) if (line.length > 0) rows.push(JSON.parse(line) as Row)
    if (rows.length !== manifest.rows)
      return yield* fail(`holds ${rows.length} rows, the manifest says ${manifest.rows}`)
    const columns = new Set(manifest.columns)
    if (rows.some((row) => Object.keys(row).some((column) => !columns.has(column)))) {
      return yield* fail("a row has a column the manifest does not list")
    }
    return { manifest, rows }
  })

// Rows per restore INSERT: keeps bound parameters well under SQLite's and PostgreSQL's limits.
const insertChunk = 500

/** What a restore did. */
export interface RestoreResult {
  readonly table: string
  readonly objects: number
  /** Rows in the archives within the range. */
  readonly rows: number
  /** Rows inserted; the others were in the table already. */
  readonly inserted: number
}

/**
 * Re-inserts the archived rows of `retention` whose time is in `[from, to)` (epoch ms), every object checked before
 * any of its rows is written. Idempotent: rows already in the table are skipped (`ON CONFLICT DO NOTHING`).
 */
export const restore = (retention: Module.Retention, from: number, to: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const entries = (yield* list(retention.name)).filter((entry) => entry.toTime >= from && entry.fromTime < to)
    let rows = 0
    let inserted = 0
    for (const entry of entries) {
      const object = yield* readObject(retention, entry.manifest)
      const wanted = object.rows.filter((row) => {
        const time = Number(row[retention.timeColumn])
        return time >= from && time < to
      })
      rows += wanted.length
      for (let i = 0; i < wanted.length; i += insertChunk) {
        const chunk = wanted.slice(i, i + insertChunk)
        const written = yield* sql<Row>`INSERT INTO ${sql.literal(retention.table)} ${sql.insert(chunk as never)}
          ON CONFLICT DO NOTHING RETURNING ${sql.literal(retention.key[0])}`
        inserted += written.length
      }
    }
    return { table: retention.table, objects: entries.length, rows, inserted } satisfies RestoreResult
  })
