/**
 * The SymbolShard entity: the book for one symbol, with group commit.
 *
 * Handlers apply a command to the in-memory book at once (messages are taken in arrival order; the engine is
 * synchronous) and then wait for the batch the command joined to become durable. One flusher per shard writes a
 * batch while the next one fills, so batches grow with load (group commit) and an idle shard flushes a lone order
 * immediately. If a write fails or does not answer within `TESSERA_JOURNAL_WRITE_TIMEOUT`, the in-memory book may be
 * ahead of the database: every waiting request is answered `ShardUnavailable` (never acked; retry with the same
 * keys), and the shard refuses requests the same way while it re-reads its state under a new owner epoch (snapshot +
 * journal replay), so nothing unacknowledged ever looks acknowledged and a black-holed database holds no request.
 * A write refused as stale (another activation owns the symbol) ends the activation instead.
 *
 * Places are refused `Overloaded` (nothing applied) while the journal is behind by more than
 * `TESSERA_SHARD_MAX_QUEUE_DELAY`: the shard's backlog, which admission at the gateway cannot see once a caller has
 * timed out, stays bounded in time, so an accepted order never waits behind seconds of older ones.
 *
 * Reads (GetOrder, Depth) see the in-memory book, which may include commands whose batch is still being written;
 * GetOrder of a finished order the shard no longer holds in memory reads the `orders` table.
 *
 * A place whose key the shard may have forgotten (ShardCore: bounded memory) waits for one indexed `orders` read
 * before it is applied; every other command is applied synchronously on arrival.
 */

import { Control } from "@tessera/contracts"
import { Cause, Deferred, Duration, Effect, Exit, Fiber, Layer, Option } from "effect"
import { Entity } from "effect/cluster"
import { SymbolShardConfig } from "./config.ts"
import * as Journal from "./journal.ts"
import { jsonPieces } from "./jsonPieces.ts"
import * as MarketData from "./marketData.ts"
import * as ShardMetrics from "./metrics.ts"
import {
  type BatchItem,
  Halted,
  InvalidOrder,
  type OrderView,
  type PlaceOrder,
  type PlaceResult,
  ShardUnavailable,
  SymbolShard,
  UnknownOrder,
  UnknownSymbol
} from "./protocol.ts"
import {
  type KeyVerdicts,
  type PendingBatch,
  placeKey,
  ShardCore,
  type ShardLimits,
  type ShardSnapshot
} from "./ShardCore.ts"

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

const tokenOf = (batch: PendingBatch): Deferred.Deferred<void, ShardUnavailable> => {
  if (batch.token === undefined) batch.token = Deferred.makeUnsafe<void, ShardUnavailable>()
  return batch.token as Deferred.Deferred<void, ShardUnavailable>
}

/**
 * Deadlines (`TESSERA_JOURNAL_WRITE_TIMEOUT` each) given to a snapshot's write: it holds no request, so the bound only
 * decides when a stuck one stops blocking the next.
 */
const SNAPSHOT_WRITE_DEADLINES = 30

/** A snapshot's JSON, encoded a piece at a time with a turn of the event loop between pieces (see `jsonPieces`). */
const encodeSnapshot = (state: ShardSnapshot): Effect.Effect<string> =>
  Effect.gen(function* () {
    const parts: Array<string> = []
    for (const piece of jsonPieces(state)) {
      parts.push(piece)
      yield* Effect.yieldNow
    }
    return parts.join("")
  })

/** A storage call of the shard that did not answer within its deadline (the database is unreachable or stalled). */
class StorageTimeout {
  readonly _tag = "StorageTimeout"
  readonly message: string
  constructor(what: string, ms: number) {
    this.message = `${what} did not answer within ${ms} ms`
  }
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

const describeError = (error: unknown): string =>
  typeof error === "object" && error !== null && "message" in error && typeof error.message === "string"
    ? error.message
    : String(error)

const describeCause = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.findErrorOption(cause)
  return Option.isSome(failure) ? describeError(failure.value) : describeError(Cause.squash(cause))
}

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

  const deadline = settings.journalWriteTimeout
  const deadlineMs = Duration.toMillis(deadline)
  const activation = yield* Effect.scope
  /**
   * A storage call bounded by the shard's deadline: past it, a `StorageTimeout`. The call runs on in a fiber of the
   * activation (the driver's cancel of a query waits on the network too) and may still complete.
   */
  const bounded = <A, E>(what: string, effect: Effect.Effect<A, E>, times = 1): Effect.Effect<A, E | StorageTimeout> =>
    Effect.flatMap(Effect.forkIn(effect, activation, { startImmediately: true }), (fiber) =>
      Effect.timeoutOrElse(Fiber.join(fiber), {
        duration: Duration.times(deadline, times),
        orElse: () => Effect.fail(new StorageTimeout(what, deadlineMs * times))
      })
    )

  /**
   * Claims the symbol (claimed before the state is read: writes of an earlier owner either committed first and are
   * read here, or fail) and rebuilds the book from the snapshot and the journal since. `from`: re-reading under this
   * epoch, which must still be current (else `StaleOwner`: another activation took the symbol since).
   */
  const restore = (row: Journal.StoredSymbol, from: number | undefined) =>
    Effect.gen(function* () {
      const started = performance.now()
      const claimed = yield* from === undefined
        ? journal.claim(symbol)
        : bounded("owner claim", journal.reclaim(symbol, from))
      // The journal read may be long (up to a snapshot's worth of commands), so it gets a few deadlines.
      const stored = yield* from === undefined ? journal.load(symbol) : bounded("state read", journal.load(symbol), 5)
      const restored =
        stored.snapshot === undefined
          ? new ShardCore(row, limits)
          : ShardCore.restore(row, stored.snapshot.json, limits)
      for (const entry of stored.journal) restored.replay(entry.seq, entry.commands)
      // A snapshot holds the limits of its day: the table's current ones apply to new commands.
      restored.setQtyLimits(row.minQty, row.maxQty)
      return {
        epoch: claimed,
        core: restored,
        batches: stored.journal.length,
        seconds: (performance.now() - started) / 1000
      }
    })

  const first = yield* Effect.orDie(restore(config, undefined))
  let epoch = first.epoch
  let core = first.core
  const metrics = new ShardMetrics.ShardSeries(symbol)
  metrics.restored(first.batches, first.seconds, core.book)
  // Runs last on passivation or handover: this runner no longer holds the book (dashboards take the max).
  yield* Effect.addFinalizer(() => Effect.sync(() => metrics.released()))
  // Before serving: the streams get every durable trade the previous owner did not publish (a kill between commit
  // and publish), republished from the tables after their last ids. Released after the last flush (finalizers run
  // in reverse).
  yield* publisher.activate(symbol, core.seq, core.book.depth(MarketData.depthLevels))
  yield* Effect.addFinalizer(() => Effect.sync(() => publisher.release(symbol)))

  let broken: Cause.Cause<unknown> | undefined
  /**
   * Set while the shard re-reads its durable state after a failed or timed-out journal write (its book may be ahead
   * of the database): requests are answered `ShardUnavailable` meanwhile. The reason, for the answers.
   */
  let recovering: string | undefined
  let flushing = false
  // When the write in flight was started, and when the first command of the pending batch came (0: none).
  let writeStartedAt = 0
  let pendingSince = 0
  const maxQueueDelayMs = Duration.toMillis(settings.maxQueueDelay)
  const retryAfterMs = Math.max(10, Math.ceil(maxQueueDelayMs))
  /** How long the journal's oldest unwritten work has waited, in milliseconds. */
  const backlogMs = (now: number): number =>
    flushing ? now - writeStartedAt : core.pendingCount > 0 && pendingSince > 0 ? now - pendingSince : 0
  /** The refusal of `count` orders while the journal is behind, or undefined if it is not. */
  const behind = (count: number): Control.Overloaded | undefined => {
    if (!(maxQueueDelayMs > 0)) return undefined
    const waited = backlogMs(performance.now())
    if (waited <= maxQueueDelayMs) return undefined
    metrics.overloaded.inc(count)
    return new Control.Overloaded({
      message: `shard ${symbol} is behind: its journal write has waited ${Math.round(waited)} ms (bound ${maxQueueDelayMs} ms); nothing was placed: retry after ${retryAfterMs} ms`,
      retryAfterMs
    })
  }
  const work = new Signal(() => core.pendingCount > 0)
  const unavailable = (reason: string) =>
    new ShardUnavailable({
      symbol,
      message: `shard ${symbol} is unavailable (${reason}); it re-reads its state: retry with the same keys`
    })

  /**
   * Rebuilds the book in place from storage, retried with backoff until it succeeds: the same as a new activation
   * (a new owner epoch fences out the write whose outcome is unknown), without the entity manager, whose rebuild
   * would hold every request until storage answers. Only while this activation's epoch is current: if another
   * activation claimed the symbol meanwhile (this runner lost it, as after a pause), this one stands down instead.
   */
  const recover: Effect.Effect<void> = Effect.gen(function* () {
    let pause = 50
    while (true) {
      const exit = yield* Effect.exit(
        Effect.flatMap(bounded("symbol read", journal.loadSymbol(symbol)), (row) =>
          Effect.map(restore(row ?? config, epoch), (restored) => ({ ...restored, row: row ?? config }))
        )
      )
      const stale = Exit.isFailure(exit)
        ? Cause.findErrorOption(exit.cause).pipe(Option.filter((e) => e._tag === "StaleOwner"))
        : Option.none()
      if (Exit.isFailure(exit) && Option.isSome(stale)) {
        broken = exit.cause
        metrics.staleOwner.inc()
        yield* Effect.logWarning(`${stale.value.message}; this activation stands down`)
        return yield* Effect.die(new Error(`${stale.value.message}; this activation stands down`))
      }
      if (Exit.isSuccess(exit)) {
        const { value } = exit
        epoch = value.epoch
        core = value.core
        halted = value.row.halted
        version = value.row.version
        metrics.restored(value.batches, value.seconds, core.book)
        // The streams get the trades of a batch whose commit went unanswered (republished from the tables).
        publisher.release(symbol)
        yield* publisher.activate(symbol, core.seq, core.book.depth(MarketData.depthLevels))
        recovering = undefined
        yield* Effect.logInfo(`${symbol}: state re-read at seq ${core.seq} (owner epoch ${epoch}); serving again`)
        return
      }
      recovering = `storage unreachable: ${describeCause(exit.cause)}`
      yield* Effect.sleep(Duration.millis(pause))
      pause = Math.min(pause * 2, 1000)
    }
  })

  // Market data leaves after the commit, in batch order, off the acknowledgement path (the runner's publisher).
  const flushOnce = Effect.suspend(() => {
    flushing = true
    writeStartedAt = performance.now()
    pendingSince = 0
    const sealed = core.seal(!snapshotting && core.sinceSnapshot + core.pendingCount >= snapshotEvery)
    const depth = core.book.depth(MarketData.depthLevels)
    const token = tokenOf(sealed.batch)
    const started = performance.now()
    // The snapshot is stored apart, once its batch is durable: it is the whole book (tens of MB for a few hundred
    // thousand resting orders), and written with the batch it held the shard's acks past their deadline.
    const snapshot = sealed.state
    const written = epoch
    const write = bounded(`journal write #${sealed.seq}`, writer.write(sealed, epoch))
    return Effect.flatMap(Effect.exit(write), (exit) => {
      flushing = false
      if (Exit.isFailure(exit)) {
        metrics.failures.inc()
        const stale = Cause.findErrorOption(exit.cause).pipe(Option.filter((e) => e._tag === "StaleOwner"))
        if (Option.isSome(stale) || !Cause.hasFails(exit.cause)) {
          // A stale owner stands down: its waiting requests die unacknowledged (nothing of them was written) and the
          // activation ends; the shard's new owner holds the durable state. A defect restarts the entity.
          broken = exit.cause
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
        // Storage failed or did not answer in time: the batch may yet commit, so its requests and those of the
        // batch behind it are answered ShardUnavailable (retry with the same keys), never acked, and the book is
        // re-read before the shard serves again.
        recovering = describeCause(exit.cause)
        const refused = Effect.fail(unavailable(recovering))
        Deferred.doneUnsafe(token, refused)
        Deferred.doneUnsafe(tokenOf(core.pending), refused)
        return Effect.andThen(
          Effect.logWarning(`${symbol}: journal write #${sealed.seq} failed (${recovering}); re-reading its state`),
          recover
        )
      }
      metrics.flushed(sealed.count, sealed.trades.length, (performance.now() - started) / 1000, core.book)
      ShardCore.markDurable(sealed.batch)
      Deferred.doneUnsafe(token, Effect.void)
      publisher.publishLater({ symbol, seq: sealed.seq, trades: sealed.trades, depth, at: Date.now() })
      return snapshot === undefined ? Effect.void : storeSnapshot(sealed.seq, snapshot, written)
    })
  })

  let snapshotting = false
  /**
   * Writes the snapshot at `seq` in the background, one at a time. A failed one is taken again at the next flush;
   * until one is stored, activations replay the journal from the previous snapshot, which retention keeps.
   */
  const storeSnapshot = (seq: number, state: ShardSnapshot, under: number) => {
    snapshotting = true
    const attempt = Effect.flatMap(encodeSnapshot(state), (json) =>
      bounded(`snapshot #${seq}`, journal.writeSnapshot(symbol, seq, json, under), SNAPSHOT_WRITE_DEADLINES)
    )
    return Effect.asVoid(
      Effect.forkIn(
        Effect.onExit(attempt, (exit) =>
          Effect.suspend(() => {
            snapshotting = false
            if (Exit.isSuccess(exit)) return Effect.void
            metrics.snapshotFailures.inc()
            core.sinceSnapshot = Math.max(core.sinceSnapshot, snapshotEvery)
            return Effect.logWarning(`${symbol}: snapshot #${seq} not stored (${describeCause(exit.cause)}); retried`)
          })
        ),
        activation
      )
    )
  }

  yield* Effect.forkScoped(Effect.forever(Effect.andThen(work.wait, flushOnce)))
  // On passivation or handover, let the last batch reach the database before the shard is released.
  yield* Effect.addFinalizer(() =>
    Effect.gen(function* () {
      const until = Date.now() + 5_000
      while (
        (flushing || core.pendingCount > 0) &&
        broken === undefined &&
        recovering === undefined &&
        Date.now() < until
      ) {
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
  yield* Effect.forkScoped(
    Effect.forever(Effect.ignore(Effect.delay(bounded("symbol read", reconfigure), "5 seconds")))
  )
  const haltedError = () =>
    Effect.fail(new Halted({ symbol, message: `trading in ${symbol} is halted; cancels are still accepted` }))

  const durable = <A>(value: A, batch: PendingBatch | undefined): Effect.Effect<A, ShardUnavailable> => {
    if (batch === undefined) return Effect.succeed(value)
    if (pendingSince === 0) pendingSince = performance.now()
    work.notify()
    return Effect.as(Deferred.await(tokenOf(batch)), value)
  }
  const whenHealthy = <A, E>(f: () => Effect.Effect<A, E>): Effect.Effect<A, E | ShardUnavailable> =>
    Effect.suspend((): Effect.Effect<A, E | ShardUnavailable> => {
      if (broken !== undefined) return Effect.die(new Error(`shard ${symbol} is restarting`))
      if (recovering !== undefined) return Effect.fail(unavailable(recovering))
      return f()
    })
  /** A read on the request path: storage trouble past the deadline is `ShardUnavailable`, not a wait. */
  const read = <A>(what: string, effect: Effect.Effect<A, unknown>): Effect.Effect<A, ShardUnavailable> =>
    Effect.mapError(bounded(what, effect), (error) => unavailable(describeError(error)))

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
  ): Effect.Effect<A, E | ShardUnavailable> =>
    whenHealthy(() => {
      const missing = unchecked(orders, verdicts)
      if (missing === undefined) return f(verdicts)
      return Effect.flatMap(read("idempotency key check", journal.usedKeys(symbol, missing)), (used) => {
        const next = verdicts ?? new Map<string, boolean>()
        for (const [account, clientOrderId] of missing) {
          const key = placeKey(account, clientOrderId)
          next.set(key, used.has(key))
        }
        return checked(orders, next, f)
      })
    })

  const placeOne = (
    payload: PlaceOrder,
    verdicts: KeyVerdicts | undefined
  ): Effect.Effect<PlaceResult, InvalidOrder | ShardUnavailable> => {
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
    Place: ({ payload }) => {
      if (halted) return haltedError()
      const refused = behind(1)
      return refused !== undefined
        ? Effect.fail(refused)
        : checked([payload], undefined, (verdicts) => placeOne(payload, verdicts))
    },
    PlaceBatch: ({ payload }) => {
      if (halted) return haltedError()
      const refused = behind(payload.orders.length)
      return refused !== undefined
        ? Effect.fail(refused)
        : checked(payload.orders, undefined, (verdicts) => placeAll(payload.orders, verdicts))
    },
    Cancel: ({ payload }) =>
      whenHealthy((): Effect.Effect<OrderView, InvalidOrder | UnknownOrder | ShardUnavailable> => {
        const out = core.cancel(payload.orderId, payload.requestId)
        if ("rejected" in out) return Effect.fail(rejection(out.rejected, payload.orderId))
        return durable(out.ok, out.batch)
      }),
    // A move may trade at once, so a halt refuses it as it refuses places.
    Move: ({ payload }) =>
      whenHealthy(() => {
        if (halted)
          return haltedError() as Effect.Effect<never, Halted | InvalidOrder | UnknownOrder | ShardUnavailable>
        const out = core.move(payload.orderId, payload.price, payload.qty, payload.requestId)
        if ("rejected" in out) return Effect.fail(rejection(out.rejected, payload.orderId))
        return durable(out.ok, out.batch)
      }),
    // Not from a book that may be ahead of the database while the shard re-reads it.
    GetOrder: ({ payload }) =>
      whenHealthy(() => {
        const view = core.order(payload.orderId)
        if (view !== undefined) return Effect.succeed(view)
        // Every id below the counter was accepted; one no longer in memory finished long ago and has its row.
        const id = Number(payload.orderId)
        if (!(id >= 1 && id < core.nextOrderId)) return noOrder(payload.orderId)
        return Effect.flatMap(read("order read", journal.loadOrder(symbol, id)), (row) =>
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
