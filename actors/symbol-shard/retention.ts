/**
 * What the host's retention job may archive and delete of the shard's tables (runtime/retention.ts), and the
 * `created_at` column it ages them by.
 *
 * `orders` and `trades` are written as `SELECT r.* FROM json_populate_recordset(...)`, which names every column and
 * so would write NULL over a column default: a trigger stamps `created_at` (epoch ms) on insert instead, so the
 * write path needs no change. Rows present before this migration get the migration's time.
 */
import type { Module } from "@tessera/contracts"
import type { SqlMigrator } from "@tessera/platform"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

const stamped = ["orders", "trades", "symbol_journal"] as const

export const retentionMigrations: SqlMigrator.Migrations = {
  "4_retention_times": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const now = Date.now()
    for (const table of stamped) {
      yield* sql.onDialectOrElse({
        // A constant default fills the existing rows without rewriting the table; dropped, new rows get NULL.
        pg: () =>
          Effect.andThen(
            sql.unsafe(`ALTER TABLE ${table} ADD COLUMN created_at BIGINT DEFAULT ${now}`),
            sql.unsafe(`ALTER TABLE ${table} ALTER COLUMN created_at DROP DEFAULT`)
          ),
        orElse: () =>
          Effect.andThen(
            sql.unsafe(`ALTER TABLE ${table} ADD COLUMN created_at BIGINT`),
            sql.unsafe(`UPDATE ${table} SET created_at = ${now}`)
          )
      })
      yield* sql.unsafe(`CREATE INDEX IF NOT EXISTS ${table}_created_at ON ${table} (created_at)`)
    }
    yield* sql.onDialectOrElse({
      pg: () =>
        Effect.gen(function* () {
          yield* sql.unsafe(`CREATE OR REPLACE FUNCTION tessera_stamp_created_at() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
              IF NEW.created_at IS NULL THEN
                NEW.created_at := (extract(epoch from now()) * 1000)::bigint;
              END IF;
              RETURN NEW;
            END $$`)
          for (const table of stamped) {
            yield* sql.unsafe(`CREATE TRIGGER ${table}_created_at BEFORE INSERT ON ${table}
              FOR EACH ROW EXECUTE FUNCTION tessera_stamp_created_at()`)
          }
        }),
      orElse: () =>
        Effect.forEach(
          stamped,
          (table) =>
            sql.unsafe(`CREATE TRIGGER IF NOT EXISTS ${table}_created_at AFTER INSERT ON ${table}
              FOR EACH ROW WHEN NEW.created_at IS NULL
              BEGIN
                UPDATE ${table} SET created_at = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
                WHERE rowid = NEW.rowid;
              END`),
          { discard: true }
        )
    })
  })
}

/**
 * Trades by age; orders once finished (an order's age counts from its placement); journal rows a newer snapshot
 * already covers, the audit trail the journal's own retention leaves behind (it keeps the rows since the older of
 * its two snapshots; a shard recovers from the newest snapshot and the rows after it, which are never touched).
 */
export const retention: ReadonlyArray<Module.Retention> = [
  { name: "trades", table: "trades", timeColumn: "created_at", key: ["symbol", "trade_id"] },
  {
    name: "orders",
    table: "orders",
    timeColumn: "created_at",
    key: ["symbol", "order_id"],
    where: "status <> 'open'"
  },
  {
    name: "journal",
    table: "symbol_journal",
    timeColumn: "created_at",
    key: ["symbol", "seq"],
    where: "seq <= (SELECT MAX(s.seq) FROM symbol_snapshots s WHERE s.symbol = symbol_journal.symbol)"
  }
]
