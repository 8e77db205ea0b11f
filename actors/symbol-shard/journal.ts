/**
 * The shard's storage: symbol configs, the group-commit journal, the `orders` and `trades` tables and book
 * snapshots. Portable SQL (PostgreSQL and the embedded SQLite): multi-row INSERTs, `ON CONFLICT` upserts.
 *
 * One journal row per flushed batch: `(symbol, seq)` is its primary key, so two writers for one symbol (a
 * stale owner during a handover) cannot both commit the same sequence number: the second transaction fails
 * and its requests are never acknowledged.
 *
 * Retention: a batch carrying a snapshot deletes the snapshots before the previous one and the journal rows up to
 * the previous snapshot, so the tables keep two snapshots and the journal since the older one: one snapshot's
 * worth of commands for audit, and a way back should the newest snapshot be unusable.
 */

import * as SqlMigrator from "@tessera/platform/SqlMigrator"
import { Context, Effect, Exit, Layer, Queue } from "effect"
import { SqlClient, type SqlError } from "effect/sql"
import * as ShardMetrics from "./metrics.ts"
import { placeKey, type SealedBatch, type SymbolConfig } from "./ShardCore.ts"

/** The default symbols seeded by the migrations: 8 spot pairs. */
export const defaultSymbols: ReadonlyArray<SymbolConfig> = [
  { symbol: "BTC-USDT", tick: "0.01", lot: "0.0001", minQty: "0.0001", maxQty: "1000" },
  { symbol: "ETH-USDT", tick: "0.01", lot: "0.001", minQty: "0.001", maxQty: "10000" },
  { symbol: "SOL-USDT", tick: "0.001", lot: "0.01", minQty: "0.01", maxQty: "100000" },
  { symbol: "DOGE-USDT", tick: "0.00001", lot: "1", minQty: "1", maxQty: "100000000" },
  { symbol: "XRP-USDT", tick: "0.0001", lot: "0.1", minQty: "0.1", maxQty: "10000000" },
  { symbol: "ADA-USDT", tick: "0.0001", lot: "0.1", minQty: "0.1", maxQty: "10000000" },
  { symbol: "BNB-USDT", tick: "0.01", lot: "0.001", minQty: "0.001", maxQty: "10000" },
  { symbol: "LTC-USDT", tick: "0.01", lot: "0.001", minQty: "0.001", maxQty: "100000" }
]

export const migrations: SqlMigrator.Migrations = {
  "1_symbol_shard": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE IF NOT EXISTS symbols (
      symbol TEXT PRIMARY KEY,
      tick TEXT NOT NULL,
      lot TEXT NOT NULL,
      min_qty TEXT,
      max_qty TEXT
    )`
    yield* sql`CREATE TABLE IF NOT EXISTS symbol_journal (
      symbol TEXT NOT NULL,
      seq BIGINT NOT NULL,
      commands TEXT NOT NULL,
      PRIMARY KEY (symbol, seq)
    )`
    yield* sql`CREATE TABLE IF NOT EXISTS symbol_snapshots (
      symbol TEXT NOT NULL,
      seq BIGINT NOT NULL,
      snapshot TEXT NOT NULL,
      PRIMARY KEY (symbol, seq)
    )`
    yield* sql`CREATE TABLE IF NOT EXISTS orders (
      symbol TEXT NOT NULL,
      order_id BIGINT NOT NULL,
      account TEXT NOT NULL,
      client_order_id TEXT NOT NULL,
      side TEXT NOT NULL,
      type TEXT NOT NULL,
      tif TEXT NOT NULL,
      post_only INTEGER NOT NULL,
      price TEXT,
      qty TEXT NOT NULL,
      filled_qty TEXT NOT NULL,
      status TEXT NOT NULL,
      PRIMARY KEY (symbol, order_id)
    )`
    yield* sql`CREATE UNIQUE INDEX IF NOT EXISTS orders_client_key ON orders (symbol, account, client_order_id)`
    yield* sql`CREATE TABLE IF NOT EXISTS trades (
      symbol TEXT NOT NULL,
      trade_id BIGINT NOT NULL,
      maker_order_id BIGINT NOT NULL,
      taker_order_id BIGINT NOT NULL,
      taker_side TEXT NOT NULL,
      price TEXT NOT NULL,
      qty TEXT NOT NULL,
      PRIMARY KEY (symbol, trade_id)
    )`
    const rows = defaultSymbols.map((s) => ({
      symbol: s.symbol,
      tick: s.tick,
      lot: s.lot,
      min_qty: s.minQty ?? null,
      max_qty: s.maxQty ?? null
    }))
    yield* sql`INSERT INTO symbols ${sql.insert(rows as never)} ON CONFLICT (symbol) DO NOTHING`
  })
}

/** Runs the shard's migrations (own table, so other actors' migration ids never collide). */
export const layerMigrations = SqlMigrator.layer({ migrations, table: "symbol_shard_migrations" })

// Rows per INSERT statement: keeps bound parameters under SQLite's 32766 and Postgres' 65535.
const CHUNK = 2000

const chunks = <A>(rows: ReadonlyArray<A>): Array<ReadonlyArray<A>> => {
  if (rows.length <= CHUNK) return [rows]
  const out: Array<ReadonlyArray<A>> = []
  for (let i = 0; i < rows.length; i += CHUNK) out.push(rows.slice(i, i + CHUNK))
  return out
}

export interface StoredState {
  readonly snapshot: { readonly seq: number; readonly json: string } | undefined
  readonly journal: ReadonlyArray<{ readonly seq: number; readonly commands: string }>
}

export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient

  const loadSymbol = (symbol: string): Effect.Effect<SymbolConfig | undefined, SqlError.SqlError> =>
    Effect.map(
      sql<{
        symbol: string
        tick: string
        lot: string
        min_qty: string | null
        max_qty: string | null
      }>`SELECT symbol, tick, lot, min_qty, max_qty FROM symbols WHERE symbol = ${symbol}`,
      (rows) =>
        rows.length === 0
          ? undefined
          : {
              symbol: rows[0].symbol,
              tick: rows[0].tick,
              lot: rows[0].lot,
              minQty: rows[0].min_qty ?? undefined,
              maxQty: rows[0].max_qty ?? undefined
            }
    )

  const load = (symbol: string): Effect.Effect<StoredState, SqlError.SqlError> =>
    Effect.gen(function* () {
      const snaps = yield* sql<{ seq: number | string; snapshot: string }>`
        SELECT seq, snapshot FROM symbol_snapshots WHERE symbol = ${symbol} ORDER BY seq DESC LIMIT 1`
      const snapshot = snaps.length === 0 ? undefined : { seq: Number(snaps[0].seq), json: snaps[0].snapshot }
      const after = snapshot?.seq ?? 0
      const rows = yield* sql<{ seq: number | string; commands: string }>`
        SELECT seq, commands FROM symbol_journal WHERE symbol = ${symbol} AND seq > ${after} ORDER BY seq`
      return { snapshot, journal: rows.map((r) => ({ seq: Number(r.seq), commands: r.commands })) }
    })

  /**
   * PostgreSQL: the journal row, the order upserts and the trades as ONE statement of data-modifying CTEs (atomic,
   * one round trip instead of BEGIN + 3 statements + COMMIT). The rows travel as two JSON parameters expanded by
   * `json_populate_recordset`, so the SQL text never changes with the batch size: prepared once per connection,
   * no parse and plan per flush, no parameter limit. Measured against the transaction (1 runner, same run):
   * flush p50 5.7 vs 9.8 ms at 5K orders/s offered, 27-29K vs 23K acked/s at 30K offered.
   */
  const writeOneStatement = (batch: SealedBatch): Effect.Effect<void, SqlError.SqlError> =>
    Effect.asVoid(
      sql`WITH j AS (INSERT INTO symbol_journal (symbol, seq, commands) VALUES (${batch.symbol}, ${batch.seq}, ${batch.commands})),
        o AS (INSERT INTO orders SELECT * FROM json_populate_recordset(NULL::orders, ${JSON.stringify(batch.orders)}::json)
          ON CONFLICT (symbol, order_id) DO UPDATE SET price = excluded.price, qty = excluded.qty,
          filled_qty = excluded.filled_qty, status = excluded.status),
        t AS (INSERT INTO trades SELECT * FROM json_populate_recordset(NULL::trades, ${JSON.stringify(batch.trades)}::json))
        SELECT 1`
    )

  /** Writes one sealed batch atomically: journal row, order upserts, new trades, optional snapshot. */
  const write = (batch: SealedBatch): Effect.Effect<void, SqlError.SqlError> =>
    batch.snapshot === undefined
      ? sql.onDialectOrElse({ pg: () => writeOneStatement(batch), orElse: () => writeTransaction(batch) })
      : writeTransaction(batch)

  /** The portable form: one transaction of multi-row INSERTs (SQLite, and batches carrying a snapshot). */
  const writeTransaction = (batch: SealedBatch): Effect.Effect<void, SqlError.SqlError> =>
    sql.withTransaction(
      Effect.gen(function* () {
        yield* sql`INSERT INTO symbol_journal (symbol, seq, commands) VALUES (${batch.symbol}, ${batch.seq}, ${batch.commands})`
        if (batch.orders.length > 0) {
          for (const rows of chunks(batch.orders)) {
            yield* sql`INSERT INTO orders ${sql.insert(rows as never)}
              ON CONFLICT (symbol, order_id) DO UPDATE SET price = excluded.price, qty = excluded.qty,
              filled_qty = excluded.filled_qty, status = excluded.status`
          }
        }
        if (batch.trades.length > 0) {
          for (const rows of chunks(batch.trades)) yield* sql`INSERT INTO trades ${sql.insert(rows as never)}`
        }
        if (batch.snapshot !== undefined) {
          yield* sql`INSERT INTO symbol_snapshots (symbol, seq, snapshot) VALUES (${batch.symbol}, ${batch.seq}, ${batch.snapshot})`
          const previous = yield* sql<{ seq: number | string | null }>`
            SELECT MAX(seq) AS seq FROM symbol_snapshots WHERE symbol = ${batch.symbol} AND seq < ${batch.seq}`
          const keepFrom = previous[0]?.seq
          if (keepFrom !== null && keepFrom !== undefined) {
            yield* sql`DELETE FROM symbol_snapshots WHERE symbol = ${batch.symbol} AND seq < ${keepFrom}`
            yield* sql`DELETE FROM symbol_journal WHERE symbol = ${batch.symbol} AND seq <= ${keepFrom}`
          }
        }
      })
    )

  /**
   * Which `(account, clientOrderId)` keys have an order row: the check of keys the shard may have forgotten (rare:
   * only keys its filter of forgotten keys may hold). Answers `placeKey`-style keys (`account NUL clientOrderId`).
   */
  const usedKeys = (
    symbol: string,
    keys: ReadonlyArray<readonly [account: string, clientOrderId: string]>
  ): Effect.Effect<ReadonlySet<string>, SqlError.SqlError> =>
    Effect.map(
      sql<{ account: string; client_order_id: string }>`
        SELECT account, client_order_id FROM orders
        WHERE symbol = ${symbol} AND client_order_id IN ${sql.in(keys.map((k) => k[1]))}`,
      (rows) => {
        const wanted = new Set(keys.map(([account, id]) => placeKey(account, id)))
        const used = new Set<string>()
        for (const r of rows) {
          const key = placeKey(r.account, r.client_order_id)
          if (wanted.has(key)) used.add(key)
        }
        return used
      }
    )

  /** A finished order's stored state (GetOrder of an order the shard no longer holds in memory). */
  const loadOrder = (
    symbol: string,
    orderId: number
  ): Effect.Effect<{ status: string; filled_qty: string } | undefined, SqlError.SqlError> =>
    Effect.map(
      sql<{ status: string; filled_qty: string }>`
        SELECT status, filled_qty FROM orders WHERE symbol = ${symbol} AND order_id = ${orderId}`,
      (rows) => rows[0]
    )

  /**
   * PostgreSQL: several shards' batches (distinct symbols, none carrying a snapshot) as ONE statement, shaped like
   * `writeOneStatement` with the journal rows as a third JSON parameter. Atomic: all of them or none.
   */
  const writeMany = (batches: ReadonlyArray<SealedBatch>): Effect.Effect<void, SqlError.SqlError> => {
    const journal: Array<{ symbol: string; seq: number; commands: string }> = []
    const orders: Array<SealedBatch["orders"][number]> = []
    const trades: Array<SealedBatch["trades"][number]> = []
    for (const batch of batches) {
      journal.push({ symbol: batch.symbol, seq: batch.seq, commands: batch.commands })
      for (const row of batch.orders) orders.push(row)
      for (const row of batch.trades) trades.push(row)
    }
    return Effect.asVoid(
      sql`WITH j AS (INSERT INTO symbol_journal SELECT * FROM json_populate_recordset(NULL::symbol_journal, ${JSON.stringify(journal)}::json)),
        o AS (INSERT INTO orders SELECT * FROM json_populate_recordset(NULL::orders, ${JSON.stringify(orders)}::json)
          ON CONFLICT (symbol, order_id) DO UPDATE SET price = excluded.price, qty = excluded.qty,
          filled_qty = excluded.filled_qty, status = excluded.status),
        t AS (INSERT INTO trades SELECT * FROM json_populate_recordset(NULL::trades, ${JSON.stringify(trades)}::json))
        SELECT 1`
    )
  }

  return { loadSymbol, load, write, writeMany, usedKeys, loadOrder } as const
})

export interface JournalWriterShape {
  /** Makes one sealed batch durable (with every other shard's batch written in the same statement, if any). */
  readonly write: (batch: SealedBatch) => Effect.Effect<void, SqlError.SqlError>
  /** Statements written and batches they carried, since the writer started. */
  readonly stats: () => { readonly statements: number; readonly batches: number }
}

/**
 * The runner's group commit across shards: one writer for every SymbolShard of a runner.
 *
 * Each shard already commits its own commands in batches (one flush in flight per shard); on PostgreSQL this writer
 * also merges the batches of different shards into one statement (`writeMany`): the batches sealed in one
 * event-loop turn, and those sealed while a statement is in flight, leave together in the next one. One statement in
 * flight per runner. On this machine a statement costs the runner a socket write and read (~0.1-0.2 ms each of CPU
 * under nested virtualisation) and PostgreSQL a commit, whatever its size, so N shards flushing together cost one.
 *
 * A merged statement that fails is retried batch by batch (one statement each), so that one shard's failure (a
 * stale owner's duplicate journal sequence during a handover) never fails another shard's batch; nothing of a
 * failed statement was written, so the retries cannot apply anything twice. Batches carrying a snapshot, and every
 * batch on SQLite (the embedded node has a single connection and a single runner), are written on their own as
 * before. Two batches of one symbol never share a statement (a shard has one flush in flight; the check keeps it so).
 */
export class JournalWriter extends Context.Service<JournalWriter, JournalWriterShape>()(
  "tessera/symbol-shard/JournalWriter"
) {}

/**
 * Batches waiting for the writer, at most. Each shard has one flush in flight, so the queue holds at most one batch
 * per shard of the runner; the bound only guards against a bug (a write that finds the queue full dies: its shard
 * restarts) instead of letting the queue grow.
 */
export const writerQueueBound = 65_536

interface Waiting {
  readonly batch: SealedBatch
  readonly resume: (effect: Effect.Effect<void, SqlError.SqlError>) => void
}

export const layerWriter = Layer.effect(
  JournalWriter,
  Effect.gen(function* () {
    const journal = yield* make
    const sql = yield* SqlClient.SqlClient
    let statements = 0
    let batches = 0
    const stats = () => ({ statements, batches })
    const counted = (n: number) => {
      statements++
      batches += n
      ShardMetrics.journalStatements.inc()
      ShardMetrics.journalStatementBatches.observe(n)
    }
    const single = (batch: SealedBatch) =>
      Effect.suspend(() => {
        counted(1)
        return journal.write(batch)
      })
    if (!sql.onDialectOrElse({ pg: () => true, orElse: () => false })) {
      return JournalWriter.of({ write: single, stats })
    }

    const queue = yield* Queue.bounded<Waiting>(writerQueueBound)
    /** Batches of a symbol already taken in the round that took them: they lead the next round (drain fiber only). */
    let later: Array<Waiting> = []

    const settle = (taken: ReadonlyArray<Waiting>, exit: Exit.Exit<void, SqlError.SqlError>) => {
      // An Exit is an Effect: each waiting write resumes with the statement's own outcome.
      for (const waiting of taken) waiting.resume(exit)
    }

    // Every waiting batch: those held back by the last round first, then all the queue holds (waiting for one if
    // there is none): the batches sealed since the last statement left, in this event-loop turn or while it ran.
    const next: Effect.Effect<ReadonlyArray<Waiting>> = Effect.suspend(() => {
      if (later.length === 0) return Queue.takeAll(queue)
      const first = later
      later = []
      return Effect.map(Queue.clear(queue), (more) => (more.length === 0 ? first : first.concat(more)))
    })

    /** One per symbol (a later batch of a symbol already taken waits for the next round). */
    const onePerSymbol = (all: ReadonlyArray<Waiting>): ReadonlyArray<Waiting> => {
      if (all.length === 1) return all
      const symbols = new Set<string>()
      const now: Array<Waiting> = []
      for (const waiting of all) {
        if (symbols.has(waiting.batch.symbol)) later.push(waiting)
        else {
          symbols.add(waiting.batch.symbol)
          now.push(waiting)
        }
      }
      return now
    }

    const round = (taken: ReadonlyArray<Waiting>): Effect.Effect<void> => {
      counted(taken.length)
      const run =
        taken.length === 1
          ? Effect.exit(journal.write(taken[0].batch))
          : Effect.flatMap(
              Effect.exit(journal.writeMany(taken.map((waiting) => waiting.batch))),
              (exit): Effect.Effect<Exit.Exit<void, SqlError.SqlError> | undefined> =>
                Exit.isSuccess(exit)
                  ? Effect.succeed(exit)
                  : // Isolate the failure: each batch again on its own, each answered with its own outcome.
                    Effect.as(
                      Effect.forEach(
                        taken,
                        (waiting) => Effect.map(Effect.exit(single(waiting.batch)), (own) => settle([waiting], own)),
                        { concurrency: 4, discard: true }
                      ),
                      undefined
                    )
            )
      return Effect.asVoid(
        Effect.exit(
          Effect.onExit(run, (exit) =>
            Effect.sync(() => {
              if (Exit.isFailure(exit)) settle(taken, Exit.failCause(exit.cause))
              else if (exit.value !== undefined) settle(taken, exit.value)
            })
          )
        )
      )
    }

    // Runs after the drain fiber is interrupted (finalizers run in reverse): whatever still waits is answered, and
    // the queue refuses later writes, so no shard waits on a writer that stopped.
    yield* Effect.addFinalizer(() =>
      Effect.flatMap(Queue.clear(queue), (rest) =>
        Effect.sync(() => {
          Queue.shutdownUnsafe(queue)
          settle(later.concat(rest), Exit.interrupt())
          later = []
        })
      )
    )
    // `run` answers every batch it took, whatever its outcome (a defect or the interruption included), so the loop
    // never stops on a failure. No yield between rounds (each waits on the queue or the database anyway): batches
    // sealed while a statement was in flight leave at once, as one statement.
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.flatMap(next, (all) => round(onePerSymbol(all))),
        { disableYield: true }
      )
    )

    const refused = Effect.die(new Error("journal writer: queue full or closed; the shard restarts"))
    const write = (batch: SealedBatch): Effect.Effect<void, SqlError.SqlError> =>
      batch.snapshot !== undefined
        ? single(batch)
        : Effect.callback<void, SqlError.SqlError>((resume) => {
            // The drain fiber wakes on a scheduled task, so the batches other shards seal in this event-loop turn
            // join the same statement.
            if (!Queue.offerUnsafe(queue, { batch, resume })) resume(refused)
          })

    return JournalWriter.of({ write, stats })
  })
)
