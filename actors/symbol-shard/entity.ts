/**
 * The SymbolShard entity: the book for one symbol, with group commit.
 *
 * Handlers apply a command to the in-memory book at once (messages are taken in arrival order; the engine is
 * synchronous) and then wait for the batch the command joined to become durable. One flusher per shard writes a
 * batch while the next one fills, so batches grow with load (group commit) and an idle shard flushes a lone order
 * immediately. If a write fails the in-memory book is ahead of the database: every waiting request dies, and the
 * entity is rebuilt (snapshot + journal replay), so nothing unacknowledged ever looks acknowledged.
 *
 * Reads (GetOrder, Depth) see the in-memory book, which may include commands whose batch is still being written;
 * GetOrder of a finished order the shard no longer holds in memory reads the `orders` table.
 *
 * A place whose key the shard may have forgotten (ShardCore: bounded memory) waits for one indexed `orders` read
 * before it is applied; every other command is applied synchronously on arrival.
 */

import { Cause, Deferred, Effect, Exit, Layer, Option } from "effect"
import { Entity } from "effect/cluster"
import { SymbolShardConfig } from "./config.ts"
import * as Journal from "./journal.ts"
import * as MarketData from "./marketData.ts"
import * as ShardMetrics from "./metrics.ts"
import {
  type BatchItem,
  Halted,
  InvalidOrder,
  type OrderView,
  type PlaceOrder,
  SymbolShard,
  UnknownOrder,
  UnknownSymbol
} from "./protocol.ts"
import { type KeyVerdicts, type PendingBatch, placeKey, ShardCore, type ShardLimits } from "./ShardCore.ts"

/** A one-waiter wake-up: `wait` resumes when `notify` is called or `ready()` already holds. */
class Signal {
  private resume: (() => void) | undefined = undefined
  private readonly ready: () => boolean
  constructor(ready: () => boolean) {
    this.ready = ready
  }
  notify(): void {
    const resume = this.resume
    if (resume !== undefined) {
      this.resume = undefined
      resume()
    }
  }
  readonly wait = Effect.callback<void>((resume) => {
    if (this.ready()) resume(Effect.void)
    else this.resume = () => resume(Effect.void)
  })
}

const tokenOf = (batch: PendingBatch): Deferred.Deferred<void> => {
  if (batch.token === undefined) batch.token = Deferred.makeUnsafe<void>()
  return batch.token as Deferred.Deferred<void>
}

const unknownSymbol = (symbol: string) =>
  Effect.fail(new UnknownSymbol({ symbol, message: `no symbol ${JSON.stringify(symbol)} is configured` }))

const unknownHandlers = (symbol: string) =>
  SymbolShard.of({
    Place: () => unknownSymbol(symbol),
    PlaceBatch: () => unknownSymbol(symbol),
    Cancel: () => unknownSymbol(symbol),
    Move: () => unknownSymbol(symbol),
    GetOrder: () => unknownSymbol(symbol),
    Depth: () => unknownSymbol(symbol),
    Reconfigure: () => unknownSymbol(symbol)
  })

const rejection = (reason: InvalidOrder["reason"], what: string) => {
  if (reason === "unknown_order") return new UnknownOrder({ orderId: what, message: `no open order ${what}` })
  if (reason === "key_expired") {
    return new InvalidOrder({
      reason,
      message: `${what}: the idempotency key may be one the shard has forgotten (used long ago); nothing was applied`
    })
  }
  return new InvalidOrder({ reason, message: `${what}: ${reason.replace("_", " ")}` })
}

const build = Effect.gen(function* () {
  const address = yield* Entity.CurrentAddress
  const symbol = address.entityId
  const journal = yield* Journal.make
  const writer = yield* Journal.JournalWriter
  const publisher = yield* MarketData.MarketDataPublisher
  const settings = yield* SymbolShardConfig
  const limits: ShardLimits = {
    recentKeys: settings.shardRecentKeys,
    finishedOrders: settings.shardFinishedOrders,
    forgottenFilterBits: settings.shardKeyFilterBits
  }
  const snapshotEvery = settings.shardSnapshotEvery
  const config = yield* Effect.orDie(journal.loadSymbol(symbol))
  if (config === undefined) return unknownHandlers(symbol)
  // The run-time part of the symbol's row (symbols.ts admin RPCs): re-read on Reconfigure and on a timer.
  let halted = config.halted
  let version = config.version

  const restoreStart = performance.now()
  // Claimed before the state is read: writes of an earlier owner either committed first (and are read here) or fail.
  const epoch = yield* Effect.orDie(journal.claim(symbol))
  const stored = yield* Effect.orDie(journal.load(symbol))
  const core =
    stored.snapshot === undefined
      ? new ShardCore(config, limits)
      : ShardCore.restore(config, stored.snapshot.json, limits)
  for (const row of stored.journal) core.replay(row.seq, row.commands)
  // A snapshot holds the limits of its day: the table's current ones apply to new commands.
  core.setQtyLimits(config.minQty, config.maxQty)
  const metrics = new ShardMetrics.ShardSeries(symbol)
  metrics.restored(stored.journal.length, (performance.now() - restoreStart) / 1000, core.book)
  // Runs last on passivation or handover: this runner no longer holds the book (dashboards take the max).
  yield* Effect.addFinalizer(() => Effect.sync(() => metrics.released()))
  // Before serving: the streams get every durable trade the previous owner did not publish (a kill between commit
  // and publish), republished from the tables after their last ids. Released after the last flush (finalizers run
  // in reverse).
  yield* publisher.activate(symbol, core.seq, core.book.depth(MarketData.depthLevels))
  yield* Effect.addFinalizer(() => Effect.sync(() => publisher.release(symbol)))

  let broken: Cause.Cause<unknown> | undefined
  let flushing = false
  const work = new Signal(() => core.pendingCount > 0)

  // Market data leaves after the commit, in batch order, off the acknowledgement path (the runner's publisher).
  const flushOnce = Effect.suspend(() => {
    flushing = true
    const sealed = core.seal(core.sinceSnapshot + core.pendingCount >= snapshotEvery)
    const depth = core.book.depth(MarketData.depthLevels)
    const token = tokenOf(sealed.batch)
    const started = performance.now()
    return Effect.flatMap(Effect.exit(writer.write(sealed, epoch)), (exit) => {
      flushing = false
      if (Exit.isFailure(exit)) {
        broken = exit.cause
        metrics.failures.inc()
        // A stale owner stands down: its waiting requests die unacknowledged (nothing of them was written) and the
        // activation ends; the shard's new owner holds the durable state.
        const stale = Cause.findErrorOption(exit.cause).pipe(Option.filter((e) => e._tag === "StaleOwner"))
        if (Option.isSome(stale)) metrics.staleOwner.inc()
        const defect = Effect.die(
          new Error(
            Option.isSome(stale)
              ? `${stale.value.message}; this activation stands down`
              : `journal write for ${symbol}#${sealed.seq} failed; shard restarts`
          )
        )
        Deferred.doneUnsafe(token, defect)
        Deferred.doneUnsafe(tokenOf(core.pending), defect)
        return Effect.andThen(
          Option.isSome(stale)
            ? Effect.logWarning(stale.value.message)
            : Effect.logError(`journal write for ${symbol} failed`, exit.cause),
          defect
        )
      }
      metrics.flushed(sealed.count, sealed.trades.length, (performance.now() - started) / 1000, core.book)
      ShardCore.markDurable(sealed.batch)
      Deferred.doneUnsafe(token, Effect.void)
      publisher.publishLater({ symbol, seq: sealed.seq, trades: sealed.trades, depth, at: Date.now() })
      return Effect.void
    })
  })

  yield* Effect.forkScoped(Effect.forever(Effect.andThen(work.wait, flushOnce)))
  // On passivation or handover, let the last batch reach the database before the shard is released.
  yield* Effect.addFinalizer(() =>
    Effect.gen(function* () {
      const deadline = Date.now() + 5_000
      while ((flushing || core.pendingCount > 0) && broken === undefined && Date.now() < deadline) {
        yield* Effect.sleep("2 millis")
      }
    })
  )

  /** Applies the symbol's current row; a row the engine refuses (edited by hand) keeps the limits in force. */
  const reconfigure = Effect.flatMap(journal.loadSymbol(symbol), (row) => {
    if (row === undefined || row.version === version) return Effect.succeed({ version })
    halted = row.halted
    version = row.version
    try {
      core.setQtyLimits(row.minQty, row.maxQty)
    } catch (error) {
      return Effect.as(Effect.logWarning(`${symbol}: limits in symbols refused: ${(error as Error).message}`), {
        version
      })
    }
    return Effect.as(Effect.logInfo(`${symbol}: symbol config version ${version} applied (halted: ${halted})`), {
      version
    })
  })
  // A fallback should an admin's notice be lost (runner gone mid-call): one indexed read every 5 s per shard.
  yield* Effect.forkScoped(Effect.forever(Effect.ignore(Effect.delay(reconfigure, "5 seconds"))))
  const haltedError = () =>
    Effect.fail(new Halted({ symbol, message: `trading in ${symbol} is halted; cancels are still accepted` }))

  const durable = <A>(value: A, batch: PendingBatch | undefined): Effect.Effect<A> => {
    if (batch === undefined) return Effect.succeed(value)
    work.notify()
    return Effect.as(Deferred.await(tokenOf(batch)), value)
  }
  const whenHealthy = <A, E>(f: () => Effect.Effect<A, E>): Effect.Effect<A, E> =>
    Effect.suspend(() => (broken === undefined ? f() : Effect.die(new Error(`shard ${symbol} is restarting`))))

  /** Keys of `orders` to look up in `orders` before placing (see ShardCore.needsCheck), undefined if none. */
  const unchecked = (
    orders: ReadonlyArray<PlaceOrder>,
    verdicts: KeyVerdicts | undefined
  ): Array<readonly [string, string]> | undefined => {
    let missing: Array<readonly [string, string]> | undefined
    for (let i = 0; i < orders.length; i++) {
      const key = core.needsCheck(orders[i].account, orders[i].clientOrderId)
      if (key !== undefined && verdicts?.has(key) !== true)
        (missing ??= []).push([orders[i].account, orders[i].clientOrderId])
    }
    return missing
  }
  /** Looks the keys up, then again for keys forgotten while the read ran, then applies `f` synchronously. */
  const checked = <A, E>(
    orders: ReadonlyArray<PlaceOrder>,
    verdicts: Map<string, boolean> | undefined,
    f: (verdicts: KeyVerdicts | undefined) => Effect.Effect<A, E>
  ): Effect.Effect<A, E> =>
    whenHealthy(() => {
      const missing = unchecked(orders, verdicts)
      if (missing === undefined) return f(verdicts)
      return Effect.flatMap(Effect.orDie(journal.usedKeys(symbol, missing)), (used) => {
        const next = verdicts ?? new Map<string, boolean>()
        for (const [account, clientOrderId] of missing) {
          const key = placeKey(account, clientOrderId)
          next.set(key, used.has(key))
        }
        return checked(orders, next, f)
      })
    })

  const placeOne = (payload: PlaceOrder, verdicts: KeyVerdicts | undefined) => {
    const out = core.place(payload, verdicts)
    if ("rejected" in out) {
      metrics.rejected.inc()
      return Effect.fail(rejection(out.rejected, payload.clientOrderId) as InvalidOrder)
    }
    metrics.accepted.inc()
    return durable(out.ok, out.batch)
  }

  const placeAll = (orders: ReadonlyArray<PlaceOrder>, verdicts: KeyVerdicts | undefined) => {
    const results: Array<BatchItem> = []
    let wait: PendingBatch | undefined
    let rejected = 0
    for (let i = 0; i < orders.length; i++) {
      const out = core.place(orders[i], verdicts)
      if ("rejected" in out) {
        rejected++
        results.push({ clientOrderId: orders[i].clientOrderId, rejected: out.rejected })
      } else {
        results.push(out.ok)
        // Batches become durable in order, so waiting for the newest one covers the others.
        if (out.batch !== undefined && (wait === undefined || out.batch === core.pending)) wait = out.batch
      }
    }
    if (rejected > 0) metrics.rejected.inc(rejected)
    if (rejected < orders.length) metrics.accepted.inc(orders.length - rejected)
    return durable({ results }, wait)
  }

  const noOrder = (orderId: string) => Effect.fail(new UnknownOrder({ orderId, message: `no order ${orderId}` }))

  return SymbolShard.of({
    Place: ({ payload }) =>
      halted ? haltedError() : checked([payload], undefined, (verdicts) => placeOne(payload, verdicts)),
    PlaceBatch: ({ payload }) =>
      halted ? haltedError() : checked(payload.orders, undefined, (verdicts) => placeAll(payload.orders, verdicts)),
    Cancel: ({ payload }) =>
      whenHealthy(() => {
        const out = core.cancel(payload.orderId, payload.requestId)
        if ("rejected" in out) return Effect.fail(rejection(out.rejected, payload.orderId))
        return durable(out.ok, out.batch)
      }),
    // A move may trade at once, so a halt refuses it as it refuses places.
    Move: ({ payload }) =>
      whenHealthy(() => {
        if (halted) return haltedError() as Effect.Effect<never, Halted | InvalidOrder | UnknownOrder>
        const out = core.move(payload.orderId, payload.price, payload.qty, payload.requestId)
        if ("rejected" in out) return Effect.fail(rejection(out.rejected, payload.orderId))
        return durable(out.ok, out.batch)
      }),
    GetOrder: ({ payload }) =>
      Effect.suspend(() => {
        const view = core.order(payload.orderId)
        if (view !== undefined) return Effect.succeed(view)
        // Every id below the counter was accepted; one no longer in memory finished long ago and has its row.
        const id = Number(payload.orderId)
        if (!(id >= 1 && id < core.nextOrderId)) return noOrder(payload.orderId)
        return Effect.flatMap(Effect.orDie(journal.loadOrder(symbol, id)), (row) =>
          row === undefined
            ? noOrder(payload.orderId)
            : Effect.succeed({
                orderId: payload.orderId,
                status: row.status as OrderView["status"],
                filledQty: row.filled_qty,
                openQty: core.book.qtyUnit.format(0)
              })
        )
      }),
    Depth: ({ payload }) =>
      Effect.sync(() => {
        const depth = core.book.depth(payload.depth ?? 20)
        return { symbol, bids: depth.bids, asks: depth.asks }
      }),
    Reconfigure: () => Effect.orDie(reconfigure)
  })
})

/**
 * The SymbolShard entity, with one journal writer and one market-data publisher for all the runner's shards (its
 * tables are the module's migrations, run by the host first). Handlers run concurrently: group commit needs it.
 */
export const SymbolShardEntityLayer = SymbolShard.toLayer(build, { concurrency: "unbounded" }).pipe(
  Layer.provide(Layer.mergeAll(Journal.layerWriter, MarketData.layer))
)
