/**
 * `orderbook_deltas`: one row per `(market, seq)`, unique, so a deduplicator replaying after failover cannot
 * write a delta twice. Portable SQL (Postgres in clusters, node:sqlite embedded).
 */

import type * as SqlMigrator from "@tessera/platform/SqlMigrator"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
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
  })
}

/** Rows per INSERT (SQLite binds 7 parameters per row; Postgres binds six arrays). */
export const insertChunk = 4000

/**
 * Inserts rows `[from, to)` of `columns` with one statement that skips rows already present: on Postgres one
 * INSERT ... SELECT FROM UNNEST of six array parameters (no per-row parameters to bind), elsewhere a multi-row
 * INSERT. `written_at` is the database clock as each row is inserted on Postgres (so sync lag includes the
 * insert), else `writtenAt` (ms); `table` is for benches of the same statement.
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
    // Numbers go as array literals: a JS array of numbers mixes integer and float parameter types.
    const numbers = (values: Array<number>) => `{${values.slice(from, to).join(",")}}`
    yield* sql.onDialectOrElse({
      pg: () =>
        sql`INSERT INTO ${sql(table)} (market, seq, ts, side, price, qty, written_at)
          SELECT m, s, t, d, p, q, (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint FROM UNNEST(${columns.market.slice(from, to)}::text[],
            ${numbers(columns.seq)}::bigint[], ${numbers(columns.ts)}::bigint[], ${numbers(columns.side)}::smallint[],
            ${numbers(columns.price)}::float8[], ${numbers(columns.qty)}::float8[]) AS u(m, s, t, d, p, q)
          ON CONFLICT (market, seq) DO NOTHING`,
      orElse: () => {
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
        return sql`INSERT INTO ${sql(table)} ${sql.insert(rows as unknown as readonly [Record<string, unknown>])} ON CONFLICT (market, seq) DO NOTHING`
      }
    })
  })

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
