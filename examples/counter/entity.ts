/**
 * The Counter entity: its value lives in the `counters` table, so it survives passivation, restarts and a move to
 * another runner. The SQL is portable (SQLite for the embedded node, Postgres for a cluster).
 */
import { Effect } from "effect"
import { Entity } from "effect/cluster"
import { SqlClient } from "effect/sql"
import { Counter } from "./protocol.ts"

export const migrations = {
  "1_counters": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE IF NOT EXISTS counters (id TEXT PRIMARY KEY, value INTEGER NOT NULL)`
  })
}

export const CounterEntityLayer = Counter.toLayer(
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const { entityId } = yield* Entity.CurrentAddress
    return Counter.of({
      // One statement, so the increment is atomic even if two owners overlap during a handover.
      Increment: ({ payload }) =>
        sql<{ value: number }>`INSERT INTO counters (id, value) VALUES (${entityId}, ${payload.by})
          ON CONFLICT (id) DO UPDATE SET value = counters.value + excluded.value
          RETURNING value`.pipe(
          Effect.map((rows) => Number(rows[0].value)),
          // Storage failures are defects here: the caller sees the RPC fail, nothing is half-applied.
          Effect.orDie
        ),
      Get: () =>
        sql<{ value: number }>`SELECT value FROM counters WHERE id = ${entityId}`.pipe(
          Effect.map((rows) => (rows.length === 0 ? 0 : Number(rows[0].value))),
          Effect.orDie
        )
    })
  })
)
