/**
 * `orderbook_deltas`: one row per `(market, seq)`, unique, so a deduplicator replaying after failover cannot
 * write a delta twice. Portable SQL (Postgres in clusters, node:sqlite embedded).
 *
 * Fencing: each activation of a deduplicator claims the next owner epoch of its id (`dedup_owners`) before it
 * reads where its markets stopped, and every insert is conditional on that epoch, checked under a share lock on
 * the owner row in the same statement (SQLite: the same transaction; its transactions run one at a time). A claim
 * waits for an insert in flight under the old epoch; an insert after it writes nothing and fails `StaleOwner`, so a
 * deduplicator that paused past its shard lock cannot write rows the new owner has not accounted for.
 */

import type * as SqlMigrator from "@tessera/platform/SqlMigrator"
import { Data, Effect } from "effect"
import { SqlClient, type SqlError } from "effect/sql"
import type { DeltaColumns } from "./dedup.ts"

export const migrations: SqlMigrator.Migrations = {
  "1_orderbook_deltas": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    // (market, seq) is the primary key: the index deduplicators resume from and the conflict target.
    yield* sql`CREATE TABLE IF NOT EXISTS orderbook_deltas (
      market TEXT NOT NULL,
      seq BIGINT NOT NULL,
      ts BIGINT NOT NULL,
      side SMALLINT NOT NULL,
      price DOUBLE PRECISION NOT NULL,
      qty DOUBLE PRECISION NOT NULL,
      written_at BIGINT NOT NULL,
      PRIMARY KEY (market, seq)
    )`
  }),
  "2_gatherer_fleet": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    // The replica count set at run time (`tessera gather replicas N`); no row: the configured count.
    yield* sql`CREATE TABLE IF NOT EXISTS gatherer_fleet (id INTEGER PRIMARY KEY, replicas INTEGER NOT NULL)`
  }),
  "3_dedup_owner_epoch": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    // One row per deduplicator id, bumped by every activation (the fence of its writes).
    yield* sql`CREATE TABLE IF NOT EXISTS dedup_owners (dedup TEXT PRIMARY KEY, epoch BIGINT NOT NULL)`
  }),
  "4_dedup_counters": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    // A deduplicator's counters (JSON) as of its last write, so they survive a move to another runner.
    yield* sql`CREATE TABLE IF NOT EXISTS dedup_counters (dedup TEXT PRIMARY KEY, counters TEXT NOT NULL)`
  })
}

/** The counters a deduplicator persisted with its last write (`{}` when none). */
export const loadCounters = (
  dedup: string
): Effect.Effect<Record<string, number>, SqlError.SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(sql<{ counters: string }>`SELECT counters FROM dedup_counters WHERE dedup = ${dedup}`, (rows) => {
      if (rows.length === 0) return {}
      const parsed: unknown = JSON.parse(rows[0].counters)
      const out: Record<string, number> = {}
      if (typeof parsed === "object" && parsed !== null) {
        for (const [key, value] of Object.entries(parsed)) if (typeof value === "number") out[key] = value
      }
      return out
    })
  )

/** Saves the counters under `owner`'s epoch (nothing when it is stale). Between writes: writeDeltas carries them. */
export const saveCounters = (owner: DedupOwner, counters: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`INSERT INTO dedup_counters (dedup, counters)
      SELECT dedup, ${counters} FROM dedup_owners WHERE dedup = ${owner.dedup} AND epoch = ${owner.epoch}
      ON CONFLICT (dedup) DO UPDATE SET counters = excluded.counters`.pipe(Effect.asVoid)
  )

/** One row of `orderbook_deltas` as the stream republish reads it. */
export interface DeltaRow {
  readonly seq: number
  readonly ts: number
  readonly side: number
  readonly price: number
  readonly qty: number
}

const deltaRows = (rows: ReadonlyArray<Record<string, number | string>>): Array<DeltaRow> =>
  rows.map((r) => ({
    seq: Number(r.seq),
    ts: Number(r.ts),
    side: Number(r.side),
    price: Number(r.price),
    qty: Number(r.qty)
  }))

/**
 * Rows of `market` with `after < seq <= upTo`, ascending, at most `limit`; `newest`: the last `limit` of them
 * (still ascending), for a stream that lost everything and keeps only its newest entries anyway.
 */
export const deltasBetween = (market: string, after: number, upTo: number, limit: number, newest = false) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    newest
      ? Effect.map(
          sql<Record<string, number | string>>`SELECT seq, ts, side, price, qty FROM orderbook_deltas
            WHERE market = ${market} AND seq > ${after} AND seq <= ${upTo} ORDER BY seq DESC LIMIT ${limit}`,
          (rows) => deltaRows(rows).reverse()
        )
      : Effect.map(
          sql<Record<string, number | string>>`SELECT seq, ts, side, price, qty FROM orderbook_deltas
            WHERE market = ${market} AND seq > ${after} AND seq <= ${upTo} ORDER BY seq LIMIT ${limit}`,
          deltaRows
        )
  )

/** A deduplicator activation's claim: its id and the owner epoch its writes are conditional on. */
export interface DedupOwner {
  readonly dedup: string
  readonly epoch: number
}

/**
 * A write under an owner epoch that is no longer current: another activation of the deduplicator claimed it since.
 * Nothing of the write was applied; the activation that got it must stand down.
 */
export class StaleOwner extends Data.TaggedError("StaleOwner")<{
  readonly dedup: string
  readonly epoch: number
  readonly message: string
}> {}

const staleOwner = (owner: DedupOwner) =>
  new StaleOwner({
    dedup: owner.dedup,
    epoch: owner.epoch,
    message: `deduplicator ${owner.dedup}: owner epoch ${owner.epoch} is no longer current (it moved); the write was refused`
  })

/** Claims a deduplicator for a new activation: the next owner epoch, which fences out every earlier one. */
export const claimOwner = (dedup: string): Effect.Effect<DedupOwner, SqlError.SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ epoch: number | string }>`INSERT INTO dedup_owners (dedup, epoch) VALUES (${dedup}, 1)
        ON CONFLICT (dedup) DO UPDATE SET epoch = dedup_owners.epoch + 1 RETURNING epoch`,
      (rows) => ({ dedup, epoch: Number(rows[0].epoch) })
    )
  )

/** Rows per INSERT (SQLite binds 7 parameters per row; Postgres binds six arrays). */
export const insertChunk = 4000

// Numbers go as array literals: a JS array of numbers mixes integer and float parameter types.
const numbers = (values: Array<number>, from: number, to: number) => `{${values.slice(from, to).join(",")}}`

const rowsOf = (columns: DeltaColumns, from: number, to: number, writtenAt: number) => {
  const rows: Array<Record<string, unknown>> = new Array(to - from)
  for (let i = from; i < to; i++) {
    rows[i - from] = {
      market: columns.market[i],
      seq: columns.seq[i],
      ts: columns.ts[i],
      side: columns.side[i],
      price: columns.price[i],
      qty: columns.qty[i],
      written_at: writtenAt
    }
  }
  return rows as unknown as readonly [Record<string, unknown>]
}

/**
 * Inserts rows `[from, to)` of `columns` with one statement that skips rows already present, without a fence: the
 * raw statement's cost for benches (`table`). Deduplicators write through `writeDeltas`.
 */
export const insertDeltas = (
  columns: DeltaColumns,
  from: number,
  to: number,
  writtenAt: number,
  table = "orderbook_deltas"
) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql.onDialectOrElse({
      pg: () =>
        sql`INSERT INTO ${sql(table)} (market, seq, ts, side, price, qty, written_at)
          SELECT m, s, t, d, p, q, (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint FROM UNNEST(${columns.market.slice(from, to)}::text[],
            ${numbers(columns.seq, from, to)}::bigint[], ${numbers(columns.ts, from, to)}::bigint[], ${numbers(columns.side, from, to)}::smallint[],
            ${numbers(columns.price, from, to)}::float8[], ${numbers(columns.qty, from, to)}::float8[]) AS u(m, s, t, d, p, q)
          ON CONFLICT (market, seq) DO NOTHING`,
      orElse: () =>
        sql`INSERT INTO ${sql(table)} ${sql.insert(rowsOf(columns, from, to, writtenAt))} ON CONFLICT (market, seq) DO NOTHING`
    })
  })

/**
 * Inserts rows `[from, to)` of `columns` under `owner`'s epoch, skipping rows already present; fails `StaleOwner`,
 * writing nothing, if the epoch is no longer current. On Postgres one statement: `f` share-locks the owner row if
 * the epoch is current and the INSERT ... SELECT FROM UNNEST of six array parameters joins it, so a stale insert
 * inserts nothing and returns no row; `written_at` is the database clock as each row is inserted (sync lag includes
 * the insert). `counters` (JSON) replace the deduplicator's saved counters in the same statement, also fenced. Elsewhere the check and a multi-row INSERT in one transaction, `written_at` = `writtenAt` (ms).
 */
export const writeDeltas = (
  owner: DedupOwner,
  columns: DeltaColumns,
  from: number,
  to: number,
  writtenAt: number,
  counters = "{}"
): Effect.Effect<void, SqlError.SqlError | StaleOwner, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.onDialectOrElse({
      pg: () =>
        Effect.flatMap(
          sql<{ dedup: string }>`WITH f AS (SELECT dedup FROM dedup_owners
              WHERE dedup = ${owner.dedup} AND epoch = ${owner.epoch} FOR SHARE),
            i AS (INSERT INTO orderbook_deltas (market, seq, ts, side, price, qty, written_at)
              SELECT m, s, t, d, p, q, (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint FROM UNNEST(${columns.market.slice(from, to)}::text[],
                ${numbers(columns.seq, from, to)}::bigint[], ${numbers(columns.ts, from, to)}::bigint[], ${numbers(columns.side, from, to)}::smallint[],
                ${numbers(columns.price, from, to)}::float8[], ${numbers(columns.qty, from, to)}::float8[]) AS u(m, s, t, d, p, q), f
              ON CONFLICT (market, seq) DO NOTHING),
            c AS (INSERT INTO dedup_counters (dedup, counters) SELECT dedup, ${counters} FROM f
              ON CONFLICT (dedup) DO UPDATE SET counters = excluded.counters)
            SELECT dedup FROM f`,
          (rows) => (rows.length === 1 ? Effect.void : Effect.fail(staleOwner(owner)))
        ),
      orElse: () =>
        sql.withTransaction(
          Effect.gen(function* () {
            const current =
              yield* sql`SELECT epoch FROM dedup_owners WHERE dedup = ${owner.dedup} AND epoch = ${owner.epoch}`
            if (current.length === 0) return yield* Effect.fail(staleOwner(owner))
            yield* sql`INSERT INTO orderbook_deltas ${sql.insert(rowsOf(columns, from, to, writtenAt))} ON CONFLICT (market, seq) DO NOTHING`
            yield* sql`INSERT INTO dedup_counters (dedup, counters) VALUES (${owner.dedup}, ${counters})
              ON CONFLICT (dedup) DO UPDATE SET counters = excluded.counters`
          })
        )
    })
  )

/** The last written seq of each of `markets` that has rows. */
export const lastWrittenSeqs = (markets: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ market: string; seq: number | string }>`
      SELECT market, MAX(seq) AS seq FROM orderbook_deltas WHERE ${sql.in("market", markets)} GROUP BY market`
    const last = new Map<string, number>()
    for (const row of rows) last.set(row.market, Number(row.seq))
    return last
  })

/**
 * Every market with rows, ascending: a skip scan of the primary key (one index probe per market, not a scan of
 * every row), portable to SQLite.
 */
export const writtenMarkets = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ market: string | null }>`WITH RECURSIVE m(market) AS (
      SELECT MIN(market) FROM orderbook_deltas
      UNION ALL SELECT (SELECT MIN(market) FROM orderbook_deltas WHERE market > m.market) FROM m WHERE m.market IS NOT NULL
    ) SELECT market FROM m WHERE market IS NOT NULL`
  return rows.map((r) => r.market as string)
})

/** The replica count set at run time, if any. */
export const fleetReplicas = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ replicas: number | string }>`SELECT replicas FROM gatherer_fleet WHERE id = 1`
  return rows.length === 0 ? undefined : Number(rows[0].replicas)
})

export const setFleetReplicas = (replicas: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`INSERT INTO gatherer_fleet (id, replicas) VALUES (1, ${replicas})
      ON CONFLICT (id) DO UPDATE SET replicas = excluded.replicas`
  })
