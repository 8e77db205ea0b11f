// The runner storage (shard locks, registrations) against the real Postgres while the actors' pool is saturated,
// as it is on a runner that restarts under load and replays its journals: the storage probe must still answer,
// and a lock session the server ended must be re-reserved and its shards taken again, each within its deadline.

import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Option, Redacted, Schedule } from "effect"
import { RunnerAddress, RunnerStorage, ShardId, ShardingConfig } from "effect/cluster"
import { SqlClient } from "effect/sql"
import { runnerStorageOf } from "../runtime/cluster.ts"
import { defaults } from "../runtime/config.ts"
import * as LockRefresh from "../runtime/lockRefresh.ts"
import { pgPoolConfig } from "../runtime/storage.ts"
import { freshDatabase } from "./harness.ts"

/** Connections of the actors' pool in this test, all of them taken by the slow statements. */
const actorPool = 2
/** How long the slow statements hold them: well past every deadline below, under the statement timeout. */
const busySeconds = 8

/** Blocks the event loop, as a long synchronous stretch of work (a journal replay) does. */
const blockLoop = (ms: number) => {
  const until = performance.now() + ms
  while (performance.now() < until) {}
}

describe("runner storage on a saturated actor pool", () => {
  it.live(
    "answers the storage probe and re-acquires after its lock session ends, while every actor connection is busy",
    () =>
      Effect.acquireUseRelease(
        Effect.sync(() => freshDatabase("lockpool")),
        (database) => {
          const url = Redacted.make(database.url)
          const actors = PgClient.layer(pgPoolConfig({ url, maxConnections: actorPool }))
          const storage = runnerStorageOf({ ...defaults, databaseUrl: Option.some(url), migrate: true }).pipe(
            Layer.provide(
              ShardingConfig.layer({ shardLockExpiration: "5 seconds", shardLockRefreshInterval: "1 second" })
            )
          )
          return Effect.gen(function* () {
            const runners = yield* RunnerStorage.RunnerStorage
            const sql = yield* SqlClient.SqlClient
            const address = RunnerAddress.make("127.0.0.1", 1)
            const shards = [1, 2, 3].map((i) => ShardId.make("default", i))
            assert.strictEqual((yield* runners.acquire(address, shards)).length, 3)

            const busy = yield* Effect.forkChild(
              Effect.forEach(
                Array.from({ length: actorPool }),
                () => sql`SELECT pg_sleep(${busySeconds})`.pipe(Effect.ignore),
                { concurrency: "unbounded", discard: true }
              )
            )
            // Until the slow statements run (on a pool shared with the lock storage one of them would wait).
            yield* Effect.sync(() =>
              Number(database.query("SELECT COUNT(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'"))
            ).pipe(Effect.repeat({ until: (count) => count > 0, schedule: Schedule.spaced("50 millis") }))
            yield* Effect.sleep("300 millis")

            // The probe sharding runs while lock storage is unhealthy (an empty refresh), under its 1 s deadline.
            const probe = yield* Effect.exit(runners.refresh(address, []))
            assert.isTrue(Exit.isSuccess(probe), "the storage probe answers")

            // The server ends the lock session (as idle_session_timeout or a restart of the backend would).
            database.query(
              "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()"
            )
            yield* Effect.exit(runners.refresh(address, shards))
            // Its locks went with it; the next acquisitions run on a re-reserved session.
            const again = yield* runners
              .acquire(address, shards)
              .pipe(Effect.retry({ times: 10, schedule: Schedule.spaced("100 millis") }), Effect.exit)
            assert.deepStrictEqual(
              Exit.map(again, (held) => held.length),
              Exit.succeed(3),
              "the shards are taken again"
            )
            // The slow statements still hold every actor connection: nothing above waited for them.
            assert.isUndefined(busy.pollUnsafe(), "the actor pool was busy throughout")
            yield* Fiber.interrupt(busy)
            yield* runners.releaseAll(address)
          }).pipe(Effect.provide(Layer.provideMerge(storage, actors)))
        },
        (database) => Effect.sync(() => database.drop())
      ),
    { timeout: 60_000 }
  )

  it.live("a release caught in a loop stall just past the refresh interval keeps the runner's other locks", () =>
    Effect.acquireUseRelease(
      Effect.sync(() => freshDatabase("lockstall")),
      (database) => {
        const url = Redacted.make(database.url)
        // As the runner composes it: the lag-tolerant decorator over the SQL storage, refresh 1 s, expiry 5 s.
        const storage = LockRefresh.layer(
          runnerStorageOf({ ...defaults, databaseUrl: Option.some(url), migrate: true })
        ).pipe(
          Layer.provide(
            ShardingConfig.layer({ shardLockExpiration: "5 seconds", shardLockRefreshInterval: "1 second" })
          ),
          Layer.provide(PgClient.layer(pgPoolConfig({ url, maxConnections: actorPool })))
        )
        return Effect.gen(function* () {
          const runners = yield* RunnerStorage.RunnerStorage
          const address = RunnerAddress.make("127.0.0.1", 1)
          const shards = [1, 2, 3].map((i) => ShardId.make("default", i))
          assert.strictEqual((yield* runners.acquire(address, shards)).length, 3)
          // A hand-off releases shard 1 while the loop stalls past the refresh interval, under a third of the expiry.
          const release = yield* Effect.forkChild(Effect.exit(runners.release(address, shards[0])), {
            startImmediately: true
          })
          blockLoop(1250)
          const released = yield* Fiber.join(release)
          assert.isTrue(Exit.isSuccess(released), "the release completes")
          const held = yield* runners.refresh(address, [shards[1], shards[2]])
          assert.strictEqual(held.length, 2, "shards 2 and 3 are still held")
          assert.strictEqual(
            database.query(
              "SELECT COUNT(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()"
            ),
            "2",
            "the server holds their locks"
          )
          yield* runners.releaseAll(address)
        }).pipe(Effect.provide(storage))
      },
      (database) => Effect.sync(() => database.drop())
    )
  )

  it.live(
    "storage slow to answer past the refresh interval keeps the locks: every refresh Sharding makes is answered",
    () =>
      Effect.acquireUseRelease(
        Effect.sync(() => freshDatabase("lockslow")),
        (database) => {
          const url = Redacted.make(database.url)
          const sharding = ShardingConfig.layer({
            shardLockExpiration: "5 seconds",
            shardLockRefreshInterval: "1 second"
          })
          const pool = PgClient.layer(pgPoolConfig({ url, maxConnections: actorPool }))
          const raw = runnerStorageOf({ ...defaults, databaseUrl: Option.some(url), migrate: true })
          const decorated = LockRefresh.layer(raw).pipe(Layer.provide(sharding), Layer.provide(pool))
          const bare = raw.pipe(Layer.provide(sharding), Layer.provide(pool))
          // As Sharding calls it: every interval, under a timeout of one interval.
          const refreshes = (runners: RunnerStorage.RunnerStorage["Service"], address: RunnerAddress.RunnerAddress) =>
            Effect.forEach(
              Array.from({ length: 5 }),
              () =>
                Effect.exit(runners.refresh(address, shards).pipe(Effect.timeout("1 second"))).pipe(
                  Effect.tap(() => Effect.sleep("1 second"))
                ),
              { concurrency: 1 }
            )
          const shards = [1, 2, 3].map((i) => ShardId.make("default", i))
          const slowStorage = Effect.sync(() =>
            // Every refresh updates the runners' heartbeat first: 1.2 s each, past the interval, under the
            // storage's own deadline (a third of the expiry).
            database.query(`CREATE FUNCTION slow_heartbeat() RETURNS trigger LANGUAGE plpgsql AS
                $$ BEGIN PERFORM pg_sleep(1.2); RETURN NULL; END $$;
              CREATE TRIGGER slow_heartbeat BEFORE UPDATE ON cluster_runners
                FOR EACH STATEMENT EXECUTE FUNCTION slow_heartbeat();`)
          )
          const heldOnServer = () =>
            database.query(
              "SELECT COUNT(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()"
            )
          return Effect.gen(function* () {
            const undecorated = yield* Effect.gen(function* () {
              const runners = yield* RunnerStorage.RunnerStorage
              const address = RunnerAddress.make("127.0.0.1", 2)
              assert.strictEqual((yield* runners.acquire(address, shards)).length, 3)
              yield* slowStorage
              const exits = yield* refreshes(runners, address)
              yield* runners.releaseAll(address)
              return exits
            }).pipe(Effect.provide(bare), Effect.scoped)
            // The scenario is real: without the decorator Sharding's timeout fires (and would drop every shard).
            assert.isTrue(undecorated.some(Exit.isFailure), "the undecorated storage times out")
            database.query("DROP TRIGGER slow_heartbeat ON cluster_runners; DROP FUNCTION slow_heartbeat()")

            yield* Effect.gen(function* () {
              const runners = yield* RunnerStorage.RunnerStorage
              const address = RunnerAddress.make("127.0.0.1", 1)
              assert.strictEqual((yield* runners.acquire(address, shards)).length, 3)
              yield* slowStorage
              const exits = yield* refreshes(runners, address)
              assert.deepStrictEqual(
                exits.map((exit) => Exit.map(exit, (held) => held.length)),
                exits.map(() => Exit.succeed(3)),
                "every refresh answers with the three shards"
              )
              assert.strictEqual(heldOnServer(), "3", "the server still holds their locks")
            }).pipe(Effect.provide(decorated), Effect.scoped)
          })
        },
        (database) => Effect.sync(() => database.drop())
      ),
    { timeout: 60_000 }
  )
})
