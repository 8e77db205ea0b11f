/**
 * Shard-lock refresh that tells "my lock is gone" from "I am slow".
 *
 * Effect's sharding refreshes its shard locks every `interval` under a timeout of the same length, and a timeout
 * marks lock storage unhealthy: every shard is dropped at once (its entities stopped, `pg_advisory_unlock_all`) and
 * peers take them over after health checks, so the shards replay their journals on a box that was only busy. On a
 * saturated event loop that happens without any storage problem: after a synchronous stretch longer than the
 * interval, the timeout's timer fires before the reply sitting in the socket is read.
 *
 * This decorator of `RunnerStorage` starts the real refresh and a guard timer of half the interval. If the real
 * refresh has not answered when the guard fires, it answers with the shards the caller holds and lets the real
 * refresh finish in the background: counted as late when the guard itself fired late by more than half its length
 * (the loop was blocked), as slow otherwise (storage). The background outcome is applied at the next refresh:
 * shards it found lost are reported lost then, and its error fails that refresh (storage unhealthy), so a loss is
 * reported at most one interval later; a refresh called while it still runs is covered the same way. Slow storage
 * is covered because under load Postgres answered refreshes in more than an interval while the lock session still
 * held every lock, and Sharding dropped all of the runner's shards onto peers as loaded as it. A lost session fails
 * its refresh at once rather than slowly, so it is not hidden. Cover is given only while the last confirmation is
 * younger than the lock expiry less one interval (lag) or two (slow storage: a black-holed database is given up
 * before the lock session's idle timeout, the expiry, can free its locks for a peer), and never to the empty
 * refresh (the storage probe while locks are unhealthy). An acquisition that took shards confirms too: it ran on
 * the lock session, whose advisory locks live as long as it does. Without that, the first refreshes after a start
 * or after locks were unhealthy (when shards replay their journals and the loop is busiest) had only a
 * confirmation from before the outage, got no cover, and dropped every shard again.
 *
 * Releases are also let through a few at a time. Sharding releases each shard on its own fiber, and a runner that
 * drops its shards (lock storage unhealthy, a hand-off) releases them all at once: with 300 shards, a hundred and
 * more releases of two round trips each queue on the one reserved lock connection, each under a deadline of one
 * refresh interval. The queue outlasts the deadline, every release times out (and rebuilds the connection), is
 * retried 50 ms later and queues again: seen in the chaos bench as shards that never came back after a Postgres
 * stall. A few at a time, each meets its deadline and the queue drains.
 *
 * With Postgres advisory locks (the cluster's default) a lock lives as long as its session, so a refresh answered
 * from the last confirmation cannot claim a lock the session lost without the next refresh reporting it; the
 * owner epochs of the stateful actors (symbol_owners and the like) fence whatever a stale activation writes meanwhile.
 */
import { counter, gauge } from "@tessera/platform/Metrics"
import { Duration, Effect, Exit, Fiber, Layer, Option, Semaphore } from "effect"
import { RunnerStorage, type ShardId, ShardingConfig } from "effect/cluster"

const lateRefreshes = counter(
  "tessera_shard_lock_refresh_late_total",
  "Shard-lock refreshes answered from the last confirmed refresh because the event loop, not storage, made them late"
)
const slowRefreshes = counter(
  "tessera_shard_lock_refresh_slow_total",
  "Shard-lock refreshes answered from the last confirmed refresh because storage was slow to answer"
)
const refreshLag = gauge(
  "tessera_shard_lock_refresh_lag_seconds",
  "How late the last shard-lock refresh's guard timer fired (event-loop lag seen by the refresh)"
)

export interface Timing {
  /** The caller's refresh interval (its timeout). */
  readonly intervalMs: number
  /** The lock expiry: cover ends once the last confirmed refresh is this old, less one interval. */
  readonly expirationMs: number
}

/** Shard releases running at once, at most (see the module comment). */
export const releaseConcurrency = 4

/** Decorates `storage` (see the module comment). The background refreshes run in the current scope. */
export const make = (storage: RunnerStorage.RunnerStorage["Service"], timing: Timing) =>
  Effect.gen(function* () {
    const scope = yield* Effect.scope
    const releases = yield* Semaphore.make(releaseConcurrency)
    const release: RunnerStorage.RunnerStorage["Service"]["release"] = (address, shardId) =>
      releases.withPermits(1)(storage.release(address, shardId))
    const guardMs = Math.max(1, Math.floor(timing.intervalMs / 2))
    // The real refresh still running after a covered answer, and when a refresh last confirmed the locks.
    let background: Fiber.Fiber<Array<ShardId.ShardId>, unknown> | undefined
    let confirmedAt = performance.now()
    // Lag is covered while the last confirmation is younger than the expiry less one interval; slow storage one
    // interval less, so a black-holed storage is given up before its lock session's idle timeout frees the locks.
    const covered = (slow: boolean) =>
      performance.now() - confirmedAt < timing.expirationMs - (slow ? 2 : 1) * timing.intervalMs
    const acquire: RunnerStorage.RunnerStorage["Service"]["acquire"] = (address, shardIds) =>
      Effect.suspend(() => {
        const start = performance.now()
        return Effect.map(storage.acquire(address, shardIds), (acquired) => {
          if (acquired.length > 0) confirmedAt = Math.max(confirmedAt, start)
          return acquired
        })
      })

    /** The outcome of a background refresh that finished since the last call, applied to `ids`. */
    const settleBackground = (ids: ReadonlyArray<ShardId.ShardId>) => {
      const fiber = background
      if (fiber === undefined) return undefined
      const exit = fiber.pollUnsafe()
      if (exit === undefined) return undefined
      background = undefined
      if (Exit.isFailure(exit)) return Effect.failCause(exit.cause)
      confirmedAt = performance.now()
      const held = exit.value
      // Report what the real refresh found lost; shards acquired since it started are the caller's to judge.
      const lost = ids.filter((id) => !held.includes(id))
      return lost.length === 0 ? undefined : Effect.succeed(ids.filter((id) => !lost.includes(id)))
    }

    const refresh: RunnerStorage.RunnerStorage["Service"]["refresh"] = (address, shardIds) =>
      Effect.suspend(() => {
        const ids = Array.from(shardIds)
        if (ids.length === 0) return storage.refresh(address, ids)
        const settled = settleBackground(ids)
        if (settled !== undefined) return settled as Effect.Effect<Array<ShardId.ShardId>, never>
        if (background !== undefined) {
          // The previous real refresh has not finished yet: still covered while the last confirmation is recent,
          // else wait for it (under the caller's timeout) rather than pile another one up.
          if (covered(true)) {
            slowRefreshes.inc()
            return Effect.succeed(ids)
          }
          return Effect.flatMap(Fiber.await(background), () => refresh(address, ids))
        }
        return Effect.gen(function* () {
          const fiber = yield* Effect.forkIn(storage.refresh(address, ids), scope, { startImmediately: true })
          const start = performance.now()
          const first = yield* Effect.raceFirst(
            Effect.map(Fiber.await(fiber), Option.some),
            Effect.as(Effect.sleep(Duration.millis(guardMs)), Option.none())
          )
          if (Option.isSome(first)) {
            if (Exit.isSuccess(first.value)) confirmedAt = performance.now()
            return yield* first.value
          }
          const now = performance.now()
          const lateBy = now - start - guardMs
          refreshLag.set(Math.max(0, lateBy) / 1000)
          const lagged = lateBy > guardMs / 2
          if (covered(!lagged)) {
            // The loop made it late (lag past half the guard), or storage is slow: the lock session still holds
            // its advisory locks either way, and a lost session fails the refresh at once, not slowly.
            if (lagged) lateRefreshes.inc()
            else slowRefreshes.inc()
            background = fiber
            return ids
          }
          // No recent confirmation: the caller's timeout decides.
          const exit = yield* Fiber.await(fiber)
          if (Exit.isSuccess(exit)) confirmedAt = performance.now()
          return yield* exit
        })
      })

    return RunnerStorage.RunnerStorage.of({ ...storage, acquire, refresh, release })
  })

/**
 * `RunnerStorage` from `inner`, with lag-tolerant refresh timed by the sharding config. `inner` sees the refresh
 * interval at its largest lease-safe value (a third of the expiry), which is the deadline Effect's SQL storage puts
 * on every lock operation. A lock operation past that deadline replaces the lock session, and the old session
 * takes every advisory lock of the runner with it: at the refresh interval, a loop stall of just over it during a
 * hand-off timed out the releases in flight together, the rebuilt session had lost all the runner's shards, and
 * ops queued behind the rebuild timed out in turn. Sharding's own refresh timeout stays the interval (above).
 */
export const layer = <E, R>(inner: Layer.Layer<RunnerStorage.RunnerStorage, E, R>) =>
  Layer.unwrap(
    Effect.gen(function* () {
      const config = yield* ShardingConfig.ShardingConfig
      const expirationMs = Duration.toMillis(Duration.fromInputUnsafe(config.shardLockExpiration))
      const intervalMs = Math.min(
        Duration.toMillis(Duration.fromInputUnsafe(config.shardLockRefreshInterval)),
        expirationMs / 3
      )
      const storageConfig = ShardingConfig.ShardingConfig.of({
        ...config,
        shardLockRefreshInterval: Duration.millis(Math.floor(expirationMs / 3))
      })
      return Layer.effect(RunnerStorage.RunnerStorage)(
        Effect.gen(function* () {
          return yield* make(yield* RunnerStorage.RunnerStorage, { intervalMs, expirationMs })
        })
      ).pipe(Layer.provide(inner), Layer.provide(Layer.succeed(ShardingConfig.ShardingConfig)(storageConfig)))
    })
  )
