/**
 * The shard's storage: symbol configs, the group-commit journal, the `orders` and `trades` tables and book
 * snapshots. Portable SQL (PostgreSQL and the embedded SQLite): multi-row INSERTs, `ON CONFLICT` upserts.
 *
 * One journal row per flushed batch: `(symbol, seq)` is its primary key, so two writers for one symbol cannot both
 * commit the same sequence number.
 *
 * Fencing: each activation of a shard claims the next owner epoch of its symbol (`symbol_owners`) before it reads
 * its state, and every write is conditional on that epoch still being current, checked under a share lock on the
 * owner row in the same statement or transaction. A claim waits for writes in flight under the old epoch (they
 * commit first and the new owner reads them); a write after a claim writes nothing and fails with `StaleOwner`.
 * So an owner that paused past its lock (GC, VM steal, partition) cannot insert below the new owner's journal or
 * overwrite its `orders` rows, even after retention deleted the rows whose keys would have collided.
 *
 * Retention: storing a snapshot (`writeSnapshot`, after its batch is durable) deletes the snapshots before the
 * previous one and the journal rows up to the previous snapshot, so the tables keep two snapshots and the journal
 * since the older one: one snapshot's worth of commands for audit, and a way back should the newest be unusable.
 */

import * as SqlMigrator from "@tessera/platform/SqlMigrator"
import { Context, Data, Effect, Exit, Layer, Queue } from "effect"
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

export const migrations: Record<string, SqlMigrator.Migrations[string]> = {
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

/** The owner epochs (fencing): one row per symbol, bumped by every activation of its shard. */
migrations["2_owner_epoch"] = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE IF NOT EXISTS symbol_owners (
    symbol TEXT PRIMARY KEY,
    epoch BIGINT NOT NULL
  )`
})

/**
 * Symbols managed at run time: a halt flag and a version bumped by every change (a running shard re-reads its row
 * when told, and on a timer should the notice be lost). The seeded symbols of migration 1 stay as demo data.
 */
migrations["3_symbol_admin"] = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE symbols ADD COLUMN halted INTEGER NOT NULL DEFAULT 0`
  yield* sql`ALTER TABLE symbols ADD COLUMN version BIGINT NOT NULL DEFAULT 1`
})

/**
 * A write under an owner epoch that is no longer current: another activation of the shard claimed the symbol since.
 * Nothing of the write was applied; the activation that got it must stand down.
 */
export class StaleOwner extends Data.TaggedError("StaleOwner")<{
  readonly symbol: string
  readonly epoch: number
  readonly message: string
}> {}

const staleOwner = (symbol: string, epoch: number) =>
  new StaleOwner({
    symbol,
    epoch,
    message: `${symbol}: owner epoch ${epoch} is no longer current (the shard moved); the write was refused`
  })

export type WriteError = SqlError.SqlError | StaleOwner

/** Runs the shard's migrations (own table, so other actors' migration ids never collide). */
export const layerMigrations = SqlMigrator.layer({ migrations, table: "symbol_shard_migrations" })

// Rows per INSERT statement: keeps bound parameters under SQLite's 32766 and Postgres' 65535.
const CHUNK = 2000

/** Characters of a snapshot read per query: at most 4 bytes each in UTF-8, well under the client's 16 MiB message. */
const SNAPSHOT_PIECE = 2 * 1024 * 1024

const chunks = <A>(rows: ReadonlyArray<A>): Array<ReadonlyArray<A>> => {
  if (rows.length <= CHUNK) return [rows]
  const out: Array<ReadonlyArray<A>> = []
  for (let i = 0; i < rows.length; i += CHUNK) out.push(rows.slice(i, i + CHUNK))
  return out
}

/** A symbol's row of `symbols`: its config, the halt flag and the version of the last change. */
export interface StoredSymbol extends SymbolConfig {
  readonly halted: boolean
  readonly version: number
}

export interface StoredState {
  readonly snapshot: { readonly seq: number; readonly json: string } | undefined
  readonly journal: ReadonlyArray<{ readonly seq: number; readonly commands: string }>
}

export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient

  const loadSymbol = (symbol: string): Effect.Effect<StoredSymbol | undefined, SqlError.SqlError> =>
    Effect.map(
      sql<{
        symbol: string
        tick: string
        lot: string
        min_qty: string | null
        max_qty: string | null
        halted: number | string | boolean
        version: number | string
      }>`SELECT symbol, tick, lot, min_qty, max_qty, halted, version FROM symbols WHERE symbol = ${symbol}`,
      (rows) =>
        rows.length === 0
          ? undefined
          : {
              symbol: rows[0].symbol,
              tick: rows[0].tick,
              lot: rows[0].lot,
              minQty: rows[0].min_qty ?? undefined,
              maxQty: rows[0].max_qty ?? undefined,
              halted: Number(rows[0].halted) === 1 || rows[0].halted === true,
              version: Number(rows[0].version)
            }
    )

  /** Claims the symbol for a new activation: the next owner epoch, which fences out every earlier one. */
  const claim = (symbol: string): Effect.Effect<number, SqlError.SqlError> =>
    Effect.map(
      sql<{ epoch: number | string }>`INSERT INTO symbol_owners (symbol, epoch) VALUES (${symbol}, 1)
        ON CONFLICT (symbol) DO UPDATE SET epoch = symbol_owners.epoch + 1 RETURNING epoch`,
      (rows) => Number(rows[0].epoch)
    )

  /**
   * Claims the next owner epoch only while `epoch` is still the current one: an activation re-reading its state after a
   * write whose outcome it does not know (the new epoch fences that write out). Fails `StaleOwner`, claiming nothing,
   * when another activation claimed the symbol since: this one must stand down, not take the symbol back.
   */
  const reclaim = (symbol: string, epoch: number): Effect.Effect<number, WriteError> =>
    Effect.flatMap(
      sql<{ epoch: number | string }>`UPDATE symbol_owners SET epoch = epoch + 1
        WHERE symbol = ${symbol} AND epoch = ${epoch} RETURNING epoch`,
      (rows) => (rows.length === 1 ? Effect.succeed(Number(rows[0].epoch)) : Effect.fail(staleOwner(symbol, epoch)))
    )

  /**
   * The newest snapshot, read in pieces of `SNAPSHOT_PIECE` characters: a book of a few hundred thousand resting
   * orders snapshots to more than the Postgres client takes in one message (16 MiB), and read whole it failed every
   * activation of its shard, for good.
   */
  const loadSnapshot = (symbol: string) =>
    Effect.gen(function* () {
      const newest = yield* sql<{ seq: number | string; size: number | string }>`
        SELECT seq, length(snapshot) AS size FROM symbol_snapshots WHERE symbol = ${symbol} ORDER BY seq DESC LIMIT 1`
      if (newest.length === 0) return undefined
      const seq = Number(newest[0].seq)
      const size = Number(newest[0].size)
      const pieces: Array<string> = []
      for (let from = 1; from <= size; from += SNAPSHOT_PIECE) {
        const rows = yield* sql<{ piece: string }>`
          SELECT substr(snapshot, ${from}, ${SNAPSHOT_PIECE}) AS piece FROM symbol_snapshots
          WHERE symbol = ${symbol} AND seq = ${seq}`
        // Only this activation's writes (it holds the epoch) could delete the row: missing means a bug, not a race.
        if (rows.length === 0) return yield* Effect.die(new Error(`${symbol}: snapshot ${seq} vanished while read`))
        pieces.push(rows[0].piece)
      }
      return { seq, json: pieces.join("") }
    })

  const load = (symbol: string): Effect.Effect<StoredState, SqlError.SqlError> =>
    Effect.gen(function* () {
      const snapshot = yield* loadSnapshot(symbol)
      const after = snapshot?.seq ?? 0
      const rows = yield* sql<{ seq: number | string; commands: string }>`
        SELECT seq, commands FROM symbol_journal WHERE symbol = ${symbol} AND seq > ${after} ORDER BY seq`
      return { snapshot, journal: rows.map((r) => ({ seq: Number(r.seq), commands: r.commands })) }
    })

  /**
   * PostgreSQL: the fence, the journal row, the order upserts and the trades as ONE statement of CTEs (atomic, one
   * round trip instead of BEGIN + 4 statements + COMMIT). `f` share-locks the owner row if the epoch is current; every
   * insert joins it, so a stale write inserts nothing and returns no row. The rows travel as JSON parameters expanded
   * by `json_populate_recordset`, so the SQL text never changes with the batch size: prepared once per connection,
   * no parse and plan per flush, no parameter limit. Measured against the transaction (1 runner, same run): flush
   * p50 5.7 vs 9.8 ms at 5K orders/s offered, 27-29K vs 23K acked/s at 30K offered.
   */
  const writeOneStatement = (batch: SealedBatch, epoch: number): Effect.Effect<void, WriteError> =>
    Effect.flatMap(
      sql<{
        symbol: string
      }>`WITH f AS (SELECT symbol FROM symbol_owners WHERE symbol = ${batch.symbol} AND epoch = ${epoch} FOR SHARE),
        j AS (INSERT INTO symbol_journal (symbol, seq, commands) SELECT ${batch.symbol}, ${batch.seq}, ${batch.commands} FROM f),
        o AS (INSERT INTO orders SELECT r.* FROM json_populate_recordset(NULL::orders, ${JSON.stringify(batch.orders)}::json) r, f
          ON CONFLICT (symbol, order_id) DO UPDATE SET price = excluded.price, qty = excluded.qty,
          filled_qty = excluded.filled_qty, status = excluded.status),
        t AS (INSERT INTO trades SELECT r.* FROM json_populate_recordset(NULL::trades, ${JSON.stringify(batch.trades)}::json) r, f)
        SELECT symbol FROM f`,
      (rows) => (rows.length === 1 ? Effect.void : Effect.fail(staleOwner(batch.symbol, epoch)))
    )

  /** Writes one sealed batch atomically under `epoch`: journal row, order upserts, new trades, optional snapshot. */
  const write = (batch: SealedBatch, epoch: number): Effect.Effect<void, WriteError> =>
    batch.snapshot === undefined
      ? sql.onDialectOrElse({
          pg: () => writeOneStatement(batch, epoch),
          orElse: () => writeTransaction(batch, epoch)
        })
      : writeTransaction(batch, epoch)

  // PostgreSQL share-locks the owner row until commit; SQLite has one connection whose transactions run one at a time.
  const fence = (symbol: string, epoch: number) =>
    sql.onDialectOrElse({
      pg: () => sql`SELECT epoch FROM symbol_owners WHERE symbol = ${symbol} AND epoch = ${epoch} FOR SHARE`,
      orElse: () => sql`SELECT epoch FROM symbol_owners WHERE symbol = ${symbol} AND epoch = ${epoch}`
    })

  /** The portable form: one transaction of multi-row INSERTs (SQLite, and batches carrying a snapshot). */
  const writeTransaction = (batch: SealedBatch, epoch: number): Effect.Effect<void, WriteError> =>
    sql.withTransaction(
      Effect.gen(function* () {
        const current = yield* fence(batch.symbol, epoch)
        if (current.length === 0) return yield* Effect.fail(staleOwner(batch.symbol, epoch))
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
        if (batch.snapshot !== undefined) yield* insertSnapshot(batch.symbol, batch.seq, batch.snapshot)
      })
    )

  /** The snapshot row, then retention: the snapshots before the previous one, the journal up to the previous one. */
  const insertSnapshot = (symbol: string, seq: number, json: string) =>
    Effect.gen(function* () {
      yield* sql`INSERT INTO symbol_snapshots (symbol, seq, snapshot) VALUES (${symbol}, ${seq}, ${json})`
      const previous = yield* sql<{ seq: number | string | null }>`
        SELECT MAX(seq) AS seq FROM symbol_snapshots WHERE symbol = ${symbol} AND seq < ${seq}`
      const keepFrom = previous[0]?.seq
      if (keepFrom !== null && keepFrom !== undefined) {
        yield* sql`DELETE FROM symbol_snapshots WHERE symbol = ${symbol} AND seq < ${keepFrom}`
        yield* sql`DELETE FROM symbol_journal WHERE symbol = ${symbol} AND seq <= ${keepFrom}`
      }
    })

  /**
   * Stores the shard's snapshot at `seq` (whose batch is durable) under `epoch`, apart from the journal: its write of
   * tens of MB then never holds the batches after it. Fails `StaleOwner`, writing nothing, if the epoch is not current.
   */
  const writeSnapshot = (symbol: string, seq: number, json: string, epoch: number): Effect.Effect<void, WriteError> =>
    sql.withTransaction(
      Effect.gen(function* () {
        const current = yield* fence(symbol, epoch)
        if (current.length === 0) return yield* Effect.fail(staleOwner(symbol, epoch))
        yield* insertSnapshot(symbol, seq, json)
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
   * `writeOneStatement`, with the journal rows and their epochs as a third JSON parameter. Atomic: the batches whose
   * epoch is current are all written or none is; the stale ones are written in no case. Answers the symbols written.
   */
  const writeMany = (batches: ReadonlyArray<Fenced>): Effect.Effect<ReadonlySet<string>, SqlError.SqlError> => {
    const journal: Array<{ symbol: string; seq: number; commands: string; epoch: number }> = []
    const orders: Array<SealedBatch["orders"][number]> = []
    const trades: Array<SealedBatch["trades"][number]> = []
    for (const { batch, epoch } of batches) {
      journal.push({ symbol: batch.symbol, seq: batch.seq, commands: batch.commands, epoch })
      for (const row of batch.orders) orders.push(row)
      for (const row of batch.trades) trades.push(row)
    }
    return Effect.map(
      sql<{ symbol: string }>`WITH x AS (SELECT * FROM json_to_recordset(${JSON.stringify(journal)}::json)
          AS x(symbol text, seq bigint, commands text, epoch bigint)),
        f AS (SELECT o.symbol FROM symbol_owners o JOIN x ON o.symbol = x.symbol AND o.epoch = x.epoch FOR SHARE OF o),
        j AS (INSERT INTO symbol_journal (symbol, seq, commands) SELECT x.symbol, x.seq, x.commands FROM x JOIN f ON f.symbol = x.symbol),
        o AS (INSERT INTO orders SELECT r.* FROM json_populate_recordset(NULL::orders, ${JSON.stringify(orders)}::json) r
          JOIN f ON f.symbol = r.symbol
          ON CONFLICT (symbol, order_id) DO UPDATE SET price = excluded.price, qty = excluded.qty,
          filled_qty = excluded.filled_qty, status = excluded.status),
        t AS (INSERT INTO trades SELECT r.* FROM json_populate_recordset(NULL::trades, ${JSON.stringify(trades)}::json) r
          JOIN f ON f.symbol = r.symbol)
        SELECT symbol FROM f`,
      (rows) => new Set(rows.map((row) => row.symbol))
    )
  }

  return { loadSymbol, claim, reclaim, load, write, writeMany, writeSnapshot, usedKeys, loadOrder } as const
})

/** A sealed batch with the owner epoch it is written under. */
export interface Fenced {
  readonly batch: SealedBatch
  readonly epoch: number
}

export interface JournalWriterShape {
  /**
   * Makes one sealed batch durable under the owner epoch (with other shards' batches in the same statement, if any);
   * fails with `StaleOwner`, writing nothing, if the epoch is no longer current.
   */
  readonly write: (batch: SealedBatch, epoch: number) => Effect.Effect<void, WriteError>
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
 * A batch whose owner epoch is stale is left out of the statement and answered `StaleOwner`; the others are written.
 * A merged statement that fails is retried batch by batch (one statement each), so that one shard's failure never
 * fails another shard's batch; nothing of a failed statement was written, so the retries cannot apply anything twice. Batches carrying a snapshot, and every
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

interface Waiting extends Fenced {
  readonly resume: (effect: Effect.Effect<void, WriteError>) => void
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
    const single = (batch: SealedBatch, epoch: number) =>
      Effect.suspend(() => {
        counted(1)
        return journal.write(batch, epoch)
      })
    if (!sql.onDialectOrElse({ pg: () => true, orElse: () => false })) {
      return JournalWriter.of({ write: single, stats })
    }

    const queue = yield* Queue.bounded<Waiting>(writerQueueBound)
    /** Batches of a symbol already taken in the round that took them: they lead the next round (drain fiber only). */
    let later: Array<Waiting> = []

    const settle = (taken: ReadonlyArray<Waiting>, exit: Exit.Exit<void, WriteError>) => {
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
          ? Effect.exit(journal.write(taken[0].batch, taken[0].epoch))
          : Effect.flatMap(
              Effect.exit(journal.writeMany(taken)),
              (exit): Effect.Effect<Exit.Exit<void, WriteError> | undefined> => {
                if (Exit.isSuccess(exit)) {
                  // Each batch answered on its own: written, or refused because its owner epoch is stale.
                  for (const waiting of taken) {
                    settle(
                      [waiting],
                      exit.value.has(waiting.batch.symbol)
                        ? Exit.void
                        : Exit.fail(staleOwner(waiting.batch.symbol, waiting.epoch))
                    )
                  }
                  return Effect.succeed(undefined)
                }
                // Isolate the failure: each batch again on its own, each answered with its own outcome.
                return Effect.as(
                  Effect.forEach(
                    taken,
                    (waiting) =>
                      Effect.map(Effect.exit(single(waiting.batch, waiting.epoch)), (own) => settle([waiting], own)),
                    { concurrency: 4, discard: true }
                  ),
                  undefined
                )
              }
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
    const write = (batch: SealedBatch, epoch: number): Effect.Effect<void, WriteError> =>
      batch.snapshot !== undefined
        ? single(batch, epoch)
        : Effect.callback<void, WriteError>((resume) => {
            // The drain fiber wakes on a scheduled task, so the batches other shards seal in this event-loop turn
            // join the same statement.
            if (!Queue.offerUnsafe(queue, { batch, epoch, resume })) resume(refused)
          })

    return JournalWriter.of({ write, stats })
  })
)
