/**
 * An embedded, file-backed `SqlClient` over `node:sqlite` (built into Node >= 22.5 and Deno 2).
 *
 * Tessera's single-node default keeps cluster storage (`SqlMessageStorage`, `SqlRunnerStorage`) and actor tables in
 * one SQLite file under `TESSERA_DATA`. Chosen over PGlite by measurement (DESIGN.md §6). The published Effect
 * drivers for embedded databases do not import against effect 4.1, so this is our own adapter built with
 * `SqlClient.make`.
 *
 * One `DatabaseSync` connection serves the whole process. `node:sqlite` runs statements synchronously, so single
 * statements never interleave; a transaction leases the connection through a semaphore until it ends, so other
 * fibers' statements wait instead of landing inside it. A fiber inside a transaction that forks work which queries
 * through the client without the transaction's context would wait for itself: keep transactional work on the
 * transaction's fiber (or pass the context along).
 *
 * Each call runs ONE statement: like PostgreSQL's prepared statements, SQLite's prepare compiles the first statement
 * of a string and ignores the rest, so write migrations as one `sql` call per statement.
 *
 * Two processes cannot share one file for a cluster (SQLITE_BUSY under load, see DESIGN.md §6): multi-runner
 * clusters use PostgreSQL.
 */
import { mkdirSync } from "node:fs"
import { dirname } from "node:path"
import { DatabaseSync, type StatementSync } from "node:sqlite"
import * as Arr from "effect/Array"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Reactivity from "effect/reactivity/Reactivity"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import * as Client from "effect/sql/SqlClient"
import type { Connection } from "effect/sql/SqlConnection"
import {
  AuthenticationError,
  AuthorizationError,
  ConnectionError,
  ConstraintError,
  LockTimeoutError,
  SqlError,
  type SqlErrorReason,
  SqlSyntaxError,
  UniqueViolation,
  UnknownError
} from "effect/sql/SqlError"
import * as Statement from "effect/sql/Statement"
import { LruCache } from "./internal/lruCache.ts"

/**
 * Settings for the embedded client. Only `filename` is required.
 */
export interface SqliteClientConfig {
  /** Path of the database file (its folder is created if missing), or `":memory:"` for a private in-memory DB. */
  readonly filename: string
  /** Open read-only (no pragmas that write, no folder creation). Default `false`. */
  readonly readonly?: boolean | undefined
  /**
   * How long a statement waits for a lock held by another connection (another process on the same file, or a
   * backup tool) before failing with `LockTimeoutError`. Default 5 seconds.
   */
  readonly busyTimeout?: Duration.Input | undefined
  /**
   * `PRAGMA synchronous`. Default `"FULL"`: the WAL is fsynced on every commit, so an acknowledged commit survives
   * power loss or an OS crash, not only a crash of the process (one fsync per transaction). `"NORMAL"` skips that
   * fsync: never corrupt, but the last commits since the previous checkpoint can roll back on power loss.
   */
  readonly synchronous?: "OFF" | "NORMAL" | "FULL" | "EXTRA" | undefined
  /** How many prepared statements to keep, keyed by SQL text (least recently used evicted). Default 256. */
  readonly preparedStatementCacheSize?: number | undefined
  /** Extra tracing attributes on every statement span. */
  readonly spanAttributes?: Record<string, unknown> | undefined
  /** Renames result columns (e.g. snake_case to camelCase). */
  readonly transformResultNames?: ((str: string) => string) | undefined
  /** Renames identifiers in queries (e.g. camelCase to snake_case). */
  readonly transformQueryNames?: ((str: string) => string) | undefined
}

/**
 * The embedded client: a `SqlClient` (dialect `"sqlite"`, driver `"sqlite-node"`) plus its settings.
 */
export interface SqliteClient extends Client.SqlClient {
  readonly config: SqliteClientConfig
  /**
   * Runs `f` with the raw `DatabaseSync` while holding the connection (no other fiber's statements run meanwhile).
   * For maintenance such as `VACUUM INTO` or checkpoints; errors thrown by `f` become `SqlError`.
   */
  readonly withDatabase: <A>(f: (database: DatabaseSync) => A) => Effect.Effect<A, SqlError>
}

/** Service tag of the embedded client. Its layers provide `SqlClient.SqlClient` as well. */
export const SqliteClient = Context.Service<SqliteClient>("tessera/runtime/SqliteClient")

const defaultBusyTimeout = Duration.seconds(5)
const defaultCacheSize = 256
const streamChunkSize = 128

/** Whether `filename` names a file on disk (as opposed to an in-memory database). */
const isOnDisk = (filename: string): boolean =>
  filename !== ":memory:" && filename !== "" && !filename.startsWith("file::memory:")

/**
 * Maps an error thrown by `node:sqlite` to a `SqlError`. `node:sqlite` reports the extended result code in
 * `errcode` (its `code` is the generic `"ERR_SQLITE_ERROR"`), which effect's own classifier does not read.
 */
export const toSqlError = (cause: unknown, operation: string): SqlError => {
  const error = cause as { readonly errcode?: unknown; readonly message?: unknown } | null | undefined
  const errcode = typeof error?.errcode === "number" ? error.errcode : undefined
  const message = typeof error?.message === "string" ? error.message : String(cause)
  const props = { cause, message, operation }
  let reason: SqlErrorReason
  switch (errcode === undefined ? -1 : errcode & 0xff) {
    case 19: {
      // SQLITE_CONSTRAINT_UNIQUE (2067) and SQLITE_CONSTRAINT_PRIMARYKEY (1555) are both key conflicts.
      if (errcode === 2067 || errcode === 1555) {
        const at = message.indexOf("constraint failed:")
        const constraint = at === -1 ? "unknown" : message.slice(at + 18).trim() || "unknown"
        reason = new UniqueViolation({ ...props, constraint })
      } else {
        reason = new ConstraintError(props)
      }
      break
    }
    case 5: // SQLITE_BUSY
    case 6: // SQLITE_LOCKED
      reason = new LockTimeoutError(props)
      break
    case 14: // SQLITE_CANTOPEN
      reason = new ConnectionError(props)
      break
    case 23: // SQLITE_AUTH
      reason = new AuthenticationError(props)
      break
    case 3: // SQLITE_PERM
      reason = new AuthorizationError(props)
      break
    case 1: // SQLITE_ERROR: syntax errors and unknown tables/columns
      reason = /syntax error|incomplete input|no such (table|column)/.test(message)
        ? new SqlSyntaxError(props)
        : new UnknownError(props)
      break
    default:
      reason = new UnknownError(props)
  }
  return new SqlError({ reason })
}

/**
 * `node:sqlite` binds null, numbers, bigints, strings and byte arrays. Deno rejects booleans (Node binds them as
 * 0/1), so booleans become 0/1 here; `undefined` becomes null and dates ISO-8601 text. Allocates only when a value
 * needs converting.
 */
const bindable = (params: ReadonlyArray<unknown>): Array<any> => {
  let out: Array<any> | undefined
  for (let i = 0; i < params.length; i++) {
    const value = params[i]
    let converted: unknown = value
    switch (typeof value) {
      case "boolean":
        converted = value ? 1 : 0
        break
      case "undefined":
        converted = null
        break
      case "object":
        if (value instanceof Date) converted = value.toISOString()
        break
    }
    if (converted !== value && out === undefined) out = params.slice(0, i) as Array<any>
    if (out !== undefined) out.push(converted)
  }
  return out ?? (params as Array<any>)
}

type Mode = "rows" | "values" | "raw"

/**
 * Opens the database and builds the client. The database closes when the scope closes.
 */
export const make = (
  config: SqliteClientConfig
): Effect.Effect<SqliteClient, SqlError, Scope.Scope | Reactivity.Reactivity> =>
  Effect.gen(function* () {
    const database = yield* Effect.acquireRelease(
      Effect.try({
        try: () => open(config),
        catch: (cause) => toSqlError(cause, "open")
      }),
      (database) =>
        Effect.sync(() => {
          if (!database.isOpen) return
          try {
            if (!config.readonly) database.exec("PRAGMA optimize")
          } catch {
            // best effort: the database closes either way
          }
          database.close()
        })
    )

    const cache = new LruCache<string, StatementSync>(config.preparedStatementCacheSize ?? defaultCacheSize)
    const prepare = (sql: string): StatementSync => {
      let statement = cache.get(sql)
      if (statement === undefined) {
        statement = database.prepare(sql)
        cache.set(sql, statement)
      }
      return statement
    }

    const run = (
      sql: string,
      params: ReadonlyArray<unknown>,
      mode: Mode,
      prepared: boolean,
      operation: string
    ): Effect.Effect<any, SqlError> =>
      Effect.withFiber<any, SqlError>((fiber) => {
        try {
          const statement = prepared ? prepare(sql) : database.prepare(sql)
          statement.setReadBigInts(fiber.getRef(Client.SafeIntegers))
          statement.setReturnArrays(mode === "values")
          const values = bindable(params)
          if (mode === "raw" && statement.columns().length === 0) {
            return Effect.succeed(statement.run(...values))
          }
          return Effect.succeed(statement.all(...values))
        } catch (cause) {
          return Effect.fail(toSqlError(cause, operation))
        }
      })

    const stream = (sql: string, params: ReadonlyArray<unknown>): Stream.Stream<any, SqlError> =>
      Stream.fromPull(
        Effect.withFiber<Effect.Effect<Arr.NonEmptyReadonlyArray<unknown>, SqlError | Cause.Done>, SqlError>(
          (fiber) => {
            // Not from the cache: an iterator holds its statement until it is exhausted.
            let iterator: Iterator<unknown>
            try {
              const statement = database.prepare(sql)
              statement.setReadBigInts(fiber.getRef(Client.SafeIntegers))
              iterator = statement.iterate(...bindable(params))
            } catch (cause) {
              return Effect.fail(toSqlError(cause, "stream"))
            }
            let done = false
            const pull = Effect.suspend(
              (): Effect.Effect<Arr.NonEmptyReadonlyArray<unknown>, SqlError | Cause.Done> => {
                if (done) return Cause.done()
                const batch: Array<unknown> = []
                try {
                  while (batch.length < streamChunkSize) {
                    const next = iterator.next()
                    if (next.done) {
                      done = true
                      break
                    }
                    batch.push(next.value)
                  }
                } catch (cause) {
                  done = true
                  return Effect.fail(toSqlError(cause, "stream"))
                }
                return Arr.isArrayNonEmpty(batch) ? Effect.succeed(batch) : Cause.done()
              }
            )
            return Effect.succeed(pull)
          }
        )
      )

    const connection: Connection = {
      execute: (sql, params, transformRows) => {
        const rows = run(sql, params, "rows", true, "execute")
        return transformRows ? Effect.map(rows, transformRows) : rows
      },
      executeRaw: (sql, params) => run(sql, params, "raw", true, "executeRaw"),
      executeValues: (sql, params) => run(sql, params, "values", true, "executeValues"),
      executeValuesUnprepared: (sql, params) => run(sql, params, "values", false, "executeValuesUnprepared"),
      executeUnprepared: (sql, params, transformRows) => {
        const rows = run(sql, params, "rows", false, "executeUnprepared")
        return transformRows ? Effect.map(rows, transformRows) : rows
      },
      executeStream: (sql, params, transformRows) => {
        const rows = stream(sql, params)
        return transformRows ? Stream.mapArray(rows, (chunk) => transformRows(chunk) as any) : rows
      }
    }

    const semaphore = Semaphore.makeUnsafe(1)
    const acquirers = Client.makeSqliteAcquirers({
      connection: Effect.succeed(connection),
      semaphore,
      isTransaction: () => database.isTransaction
    })

    const compiler = Statement.makeCompilerSqlite(config.transformQueryNames)
    const transformRows = config.transformResultNames
      ? Statement.defaultTransforms(config.transformResultNames).array
      : undefined

    const client = yield* Client.make({
      driver: "sqlite-node",
      compiler,
      transformRows,
      acquirer: acquirers.acquirer,
      borrower: acquirers.borrower,
      transactionAcquirer: acquirers.transactionAcquirer,
      onCommitFailure: acquirers.onCommitFailure,
      isTransaction: acquirers.isTransaction,
      // SQLite prepares BEGIN/COMMIT/SAVEPOINT like any statement: cache them instead of parsing them per transaction.
      prepareTransactionControls: true,
      releaseSavepoint: (name) => `RELEASE SAVEPOINT ${name}`,
      spanAttributes: [
        ...(config.spanAttributes ? Object.entries(config.spanAttributes) : []),
        ["db.system.name", "sqlite"],
        ["db.namespace", config.filename]
      ]
    })

    const withDatabase = <A>(f: (database: DatabaseSync) => A): Effect.Effect<A, SqlError> =>
      acquirers.borrower(() =>
        Effect.try({
          try: () => f(database),
          catch: (cause) => toSqlError(cause, "withDatabase")
        })
      )

    return Object.assign(client, { config, withDatabase }) as SqliteClient
  })

const open = (config: SqliteClientConfig): DatabaseSync => {
  const readOnly = config.readonly === true
  if (isOnDisk(config.filename) && !readOnly && !config.filename.startsWith("file:")) {
    mkdirSync(dirname(config.filename), { recursive: true })
  }
  const busyTimeout = Duration.toMillis(Duration.fromInputUnsafe(config.busyTimeout ?? defaultBusyTimeout))
  const database = new DatabaseSync(config.filename, {
    readOnly,
    enableForeignKeyConstraints: true,
    timeout: Math.round(busyTimeout)
  })
  try {
    database.exec(`PRAGMA busy_timeout = ${Math.round(busyTimeout)}`)
    database.exec("PRAGMA foreign_keys = ON")
    if (!readOnly) {
      // WAL: readers never block the writer and a commit appends instead of rewriting pages.
      if (isOnDisk(config.filename)) database.exec("PRAGMA journal_mode = WAL")
      database.exec(`PRAGMA synchronous = ${config.synchronous ?? "FULL"}`)
    }
  } catch (cause) {
    database.close()
    throw cause
  }
  return database
}

/**
 * Provides `SqliteClient` and `SqlClient.SqlClient` from an acquisition effect (with its own `Reactivity`).
 */
export const layerFrom = <E, R>(
  acquire: Effect.Effect<SqliteClient, E, R>
): Layer.Layer<SqliteClient | Client.SqlClient, E, Exclude<R, Scope.Scope | Reactivity.Reactivity>> =>
  Layer.effectContext(
    Effect.map(acquire, (client) => Context.make(SqliteClient, client).pipe(Context.add(Client.SqlClient, client)))
  ).pipe(Layer.provide(Reactivity.layer)) as any

/** The embedded client as a layer. */
export const layer = (config: SqliteClientConfig): Layer.Layer<SqliteClient | Client.SqlClient, SqlError> =>
  layerFrom(make(config))

/** The embedded client from wrapped `Config` values, e.g. `{ filename: Config.string("TESSERA_DB") }`. */
export const layerConfig = (
  config: Config.Wrap<SqliteClientConfig>
): Layer.Layer<SqliteClient | Client.SqlClient, Config.ConfigError | SqlError> =>
  layerFrom(Effect.flatMap(Config.unwrap(config), make))
