/** What the host's retention job may archive and delete of `orderbook_deltas` (runtime/retention.ts). */
import type { Module } from "@tessera/contracts"
import type { SqlMigrator } from "@tessera/platform"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export const retentionMigrations: SqlMigrator.Migrations = {
  "5_deltas_written_at": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    // The retention job selects old rows in `written_at` order.
    yield* sql`CREATE INDEX IF NOT EXISTS orderbook_deltas_written_at ON orderbook_deltas (written_at)`
  })
}

/** Deltas by the time they were written; a market's newest delta stays, deduplicators resume from it. */
export const retention: ReadonlyArray<Module.Retention> = [
  {
    name: "orderbook_deltas",
    table: "orderbook_deltas",
    timeColumn: "written_at",
    key: ["market", "seq"],
    where: "seq < (SELECT MAX(d.seq) FROM orderbook_deltas d WHERE d.market = orderbook_deltas.market)"
  }
]
