// The decorator is called as Effect's sharding calls it: `refresh(...)` under a timeout of one interval, whose
// expiry marks every shard lost. A blocked event loop or storage slow to answer must not make it expire while the
// locks were confirmed recently; failing storage, and storage silent for longer, must.
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Ref } from "effect"
import { RunnerAddress, RunnerStorage, ShardId } from "effect/cluster"
import * as LockRefresh from "./lockRefresh.ts"

const intervalMs = 200
const timing = { intervalMs, expirationMs: 1000 }
const address = RunnerAddress.make("localhost", 1)
const shards = [ShardId.make("default", 1), ShardId.make("default", 2), ShardId.make("default", 3)]

/** Blocks the event loop, as a long synchronous stretch of work does. */
const blockLoop = (ms: number) => {
  const until = performance.now() + ms
  while (performance.now() < until) {}
}

interface Answer {
  readonly delayMs: number
  /** The shards the storage confirms, or a failure. */
  readonly held: ReadonlyArray<ShardId.ShardId> | "fail"
}

/**
 * A storage whose refresh answers after `delayMs`, the answer read in the loop's check phase (after the timers
 * phase), as a reply read from a socket is: so after a stall, timers due meanwhile fire first.
 */
const fakeStorage = (answer: Ref.Ref<Answer>) =>
  Effect.map(RunnerStorage.makeMemory, (memory) =>
    RunnerStorage.RunnerStorage.of({
      ...memory,
      refresh: () =>
        Effect.flatMap(Ref.get(answer), ({ delayMs, held }) =>
          Effect.sleep(Duration.millis(delayMs)).pipe(
            Effect.andThen(Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))),
            Effect.andThen(
              held === "fail"
                ? Effect.fail(new Error("storage refused") as never)
                : Effect.succeed(shards.filter((id) => held.includes(id)))
            )
          )
        )
    })
  )

/** Sharding's call: the refresh under a timeout of one interval, with the loop stalled `stallMs` right after. */
const shardingRefresh = (storage: RunnerStorage.RunnerStorage["Service"], stallMs = 0) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.forkChild(
      Effect.exit(storage.refresh(address, shards).pipe(Effect.timeout(Duration.millis(intervalMs)))),
      { startImmediately: true }
    )
    if (stallMs > 0) blockLoop(stallMs)
    return yield* Fiber.join(fiber)
  })

const setup = (initial: Answer) =>
  Effect.gen(function* () {
    const answer = yield* Ref.make(initial)
    const raw = yield* fakeStorage(answer)
    const storage = yield* LockRefresh.make(raw, timing)
    return { answer, raw, storage }
  })

describe("lag-tolerant shard-lock refresh", () => {
  it.live("keeps the shards when a stalled event loop, not storage, makes the refresh late", () =>
    Effect.gen(function* () {
      const { raw, storage } = yield* setup({ delayMs: 5, held: shards })
      // The scenario is real: the undecorated storage times out under the same stall.
      const bare = yield* shardingRefresh(raw, intervalMs * 1.5)
      assert.isTrue(Exit.isFailure(bare), "without the decorator a stalled loop times the refresh out")
      const covered = yield* shardingRefresh(storage, intervalMs * 1.5)
      assert.deepStrictEqual(covered, Exit.succeed(shards))
    }).pipe(Effect.scoped)
  )

  it.live("covers storage slow to answer while the last confirmation is recent", () =>
    Effect.gen(function* () {
      const { raw, storage } = yield* setup({ delayMs: intervalMs * 3, held: shards })
      const bare = yield* shardingRefresh(raw)
      assert.isTrue(Exit.isFailure(bare), "without the decorator a slow storage times the refresh out")
      const exit = yield* shardingRefresh(storage)
      assert.deepStrictEqual(exit, Exit.succeed(shards), "answered from the last confirmation")
    }).pipe(Effect.scoped)
  )

  it.live("covers a refresh called while the slow one still runs, then reports what that one found lost", () =>
    Effect.gen(function* () {
      const { answer, storage } = yield* setup({ delayMs: intervalMs * 3, held: [shards[0], shards[2]] })
      assert.deepStrictEqual(yield* shardingRefresh(storage), Exit.succeed(shards))
      yield* Ref.set(answer, { delayMs: 5, held: shards })
      assert.deepStrictEqual(yield* shardingRefresh(storage), Exit.succeed(shards), "still running: covered")
      yield* Effect.sleep(Duration.millis(intervalMs * 3))
      const next = yield* shardingRefresh(storage)
      assert.deepStrictEqual(next, Exit.succeed([shards[0], shards[2]]), "the loss is reported once it answered")
    }).pipe(Effect.scoped)
  )

  it.live("gives up on slow storage sooner than on lag: past the expiry less two intervals", () =>
    Effect.gen(function* () {
      // Ages are those at the guard (half an interval after the call, plus any stall).
      const { storage } = yield* setup({ delayMs: intervalMs * 3, held: shards })
      yield* Effect.sleep(Duration.millis(timing.expirationMs - intervalMs * 2.25))
      const slow = yield* shardingRefresh(storage)
      assert.isTrue(Exit.isFailure(slow), "slow storage 1.75 intervals short of expiry: not hidden")
      const { storage: fresh } = yield* setup({ delayMs: 5, held: shards })
      yield* Effect.sleep(Duration.millis(timing.expirationMs - intervalMs * 3))
      const lagged = yield* shardingRefresh(fresh, intervalMs * 1.5)
      assert.deepStrictEqual(lagged, Exit.succeed(shards), "lag 1.5 intervals short of expiry (older): covered")
    }).pipe(Effect.scoped)
  )

  it.live("reports at the next refresh the shards the background refresh found lost", () =>
    Effect.gen(function* () {
      const { answer, storage } = yield* setup({ delayMs: 5, held: [shards[0], shards[2]] })
      const covered = yield* shardingRefresh(storage, intervalMs * 1.5)
      assert.deepStrictEqual(covered, Exit.succeed(shards), "answered from the last confirmation")
      yield* Effect.sleep(Duration.millis(50))
      yield* Ref.set(answer, { delayMs: 5, held: shards })
      const next = yield* shardingRefresh(storage)
      assert.deepStrictEqual(next, Exit.succeed([shards[0], shards[2]]), "the loss is reported one refresh later")
    }).pipe(Effect.scoped)
  )

  it.live("fails the next refresh when the background refresh failed", () =>
    Effect.gen(function* () {
      const { answer, storage } = yield* setup({ delayMs: 5, held: "fail" })
      const covered = yield* shardingRefresh(storage, intervalMs * 1.5)
      assert.isTrue(Exit.isSuccess(covered))
      yield* Effect.sleep(Duration.millis(50))
      yield* Ref.set(answer, { delayMs: 5, held: shards })
      const next = yield* shardingRefresh(storage)
      assert.isTrue(Exit.isFailure(next), "the storage error surfaces")
    }).pipe(Effect.scoped)
  )

  it.live("gives no cover once the last confirmation is older than the expiry less an interval", () =>
    Effect.gen(function* () {
      const { storage } = yield* setup({ delayMs: 5, held: shards })
      yield* Effect.sleep(Duration.millis(timing.expirationMs))
      const exit = yield* shardingRefresh(storage, intervalMs * 1.5)
      assert.isTrue(Exit.isFailure(exit), "no cover without a recent confirmation")
    }).pipe(Effect.scoped)
  )

  it.live("an acquisition confirms: the first refresh after a long gap (a start, an outage) is covered", () =>
    Effect.gen(function* () {
      const { storage } = yield* setup({ delayMs: 5, held: shards })
      yield* Effect.sleep(Duration.millis(timing.expirationMs))
      assert.strictEqual((yield* storage.acquire(address, shards)).length, shards.length)
      const exit = yield* shardingRefresh(storage, intervalMs * 1.5)
      assert.deepStrictEqual(exit, Exit.succeed(shards), "covered from the acquisition")
    }).pipe(Effect.scoped)
  )
})

describe("shard release", () => {
  it.live("lets a mass release through a few at a time, and every release completes", () =>
    Effect.gen(function* () {
      let running = 0
      let most = 0
      let done = 0
      const memory = yield* RunnerStorage.makeMemory
      const storage = yield* LockRefresh.make(
        RunnerStorage.RunnerStorage.of({
          ...memory,
          release: () =>
            Effect.suspend(() => {
              running++
              most = Math.max(most, running)
              return Effect.sleep(Duration.millis(2)).pipe(
                Effect.ensuring(
                  Effect.sync(() => {
                    running--
                    done++
                  })
                )
              )
            })
        }),
        timing
      )
      // As Sharding drops its shards: one release fiber per shard, all at once.
      const ids = Array.from({ length: 150 }, (_, i) => ShardId.make("default", i + 1))
      yield* Effect.forEach(ids, (id) => storage.release(address, id), { concurrency: "unbounded", discard: true })
      assert.strictEqual(done, 150)
      assert.strictEqual(most, LockRefresh.releaseConcurrency)
    }).pipe(Effect.scoped)
  )
})
