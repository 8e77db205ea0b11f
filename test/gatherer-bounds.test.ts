// Bounds between the venue, the gatherers and the deduplicators while PostgreSQL is black-holed (a TCP proxy that
// holds every byte, the sockets open): a gatherer's sends to a deduplicator that does not answer time out, are
// counted and go again, within a bounded backlog; a deduplicator that cannot write sheds past
// TESSERA_DEDUP_MAX_PENDING instead of growing. After PostgreSQL answers again, orderbook_deltas holds every seq the
// venue published, once. Real PostgreSQL and Redis, one in-process node.
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Schedule } from "effect"
import { SqlClient } from "effect/sql"
import type { GatherConfigShape } from "../actors/gatherer/config.ts"
import { metrics } from "../actors/gatherer/entity.ts"
import { Gatherer, gathererEntityId } from "../actors/gatherer/protocol.ts"
import type { Venue } from "../actors/gatherer/venue.ts"
import { dedupStatusesOf, gatherNode, scopedVenue } from "./gatherNode.ts"
import { pausableProxy, redisUrl, scopedDatabase } from "./harness.ts"

const shards = 2
/** A Redis database of its own: its markets' md:book streams are named like other tests'. */
const redis = `${redisUrl}/14`

const nodeLayer = (databaseUrl: string, venueUrl: string, options: Partial<GatherConfigShape>) =>
  gatherNode({
    databaseUrl,
    venueUrl,
    redisUrl: redis,
    shardsPerGroup: 8,
    gather: { gatherReplicas: 1, dedupShards: shards, ...options }
  })

/** A fresh database, a venue and a black-hole proxy in front of PostgreSQL, for the test's scope. */
const fixture = (label: string, markets: number, rate: number) =>
  Effect.gen(function* () {
    const database = yield* scopedDatabase(label)
    // Quiet until the gatherer subscribed (`flowing`): what it publishes before, no gatherer could see.
    const venue = yield* scopedVenue({ markets, rate: 0, seed: 5 })
    const proxy = yield* Effect.acquireRelease(
      Effect.promise(() => pausableProxy({ host: "127.0.0.1", port: 5432 })),
      (p) => Effect.promise(() => p.close())
    )
    const flowing = Effect.gen(function* () {
      const gatherer = yield* Gatherer.client
      yield* Effect.repeat(gatherer(gathererEntityId(0, 0)).Status(), {
        until: (status) => status.connected,
        schedule: Schedule.spaced("100 millis")
      })
      // The subscribe op follows the open.
      yield* Effect.sleep("300 millis")
      venue.setRate(rate)
    })
    return {
      venue,
      proxy,
      flowing,
      url: database.url.replace("127.0.0.1:5432", `127.0.0.1:${proxy.port}`)
    }
  })

const sumOf = (family: { series(): ReadonlyArray<readonly [unknown, { readonly value: number }]> }) =>
  family.series().reduce((n, [, s]) => n + s.value, 0)

const timeouts = () =>
  metrics.sendFailures
    .series()
    .filter(([labels]) => labels.reason === "timeout")
    .reduce((n, [, s]) => n + s.value, 0)

/** Polls `check` every 100 ms until it holds, else dies naming `what`. */
const waitUntil = (what: string, check: () => boolean, withinMs: number) =>
  Effect.gen(function* () {
    const until = Date.now() + withinMs
    while (!check()) {
      if (Date.now() > until) return yield* Effect.die(new Error(`timed out waiting for ${what}`))
      yield* Effect.sleep("100 millis")
    }
  })

/** Every seq the venue published, from each market's first row, is in the table: the count still missing. */
const missing = (venue: Venue) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ market: string; n: string; lo: string }>`
      SELECT market, COUNT(*) AS n, MIN(seq) AS lo FROM orderbook_deltas GROUP BY market`
    const table = new Map(rows.map((r) => [r.market, { n: Number(r.n), lo: Number(r.lo) }]))
    const last = venue.lastSeqs()
    let count = 0
    for (let m = 0; m < venue.marketNames.length; m++) {
      const row = table.get(venue.marketNames[m])
      count += row === undefined ? last[m] : last[m] - row.lo + 1 - row.n
    }
    return count
  })

const caughtUp = (venue: Venue, withinMs: number) =>
  Effect.gen(function* () {
    const until = Date.now() + withinMs
    let left = yield* missing(venue)
    while (left > 0 && Date.now() < until) {
      yield* Effect.sleep("200 millis")
      left = yield* missing(venue)
    }
    return left
  })

const dedupStatuses = dedupStatusesOf(shards)

const rowCount = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(sql<{ n: string }>`SELECT COUNT(*) AS n FROM orderbook_deltas`, (rows) => Number(rows[0].n))
)

/** Waits until this test's fleet wrote `n` rows (the metrics are the process's, summed over earlier tests too). */
const rowsAtLeast = (n: number) =>
  Effect.gen(function* () {
    const until = Date.now() + 20_000
    while ((yield* rowCount) < n) {
      if (Date.now() > until) return yield* Effect.die(new Error(`fewer than ${n} rows written`))
      yield* Effect.sleep("100 millis")
    }
  })

describe("gatherer and deduplicator bounds while PostgreSQL is black-holed", () => {
  it.live(
    "sends to a deduplicator that does not answer time out and go again: nothing lost, with no snapshot to heal",
    () =>
      Effect.gen(function* () {
        // Many markets at a low rate: copies of markets a deduplicator has not seen yet keep coming, and each such
        // Ingest reads the table first, so it hangs while PostgreSQL is black-holed.
        const { venue, proxy, url, flowing } = yield* fixture("gsend", 4000, 800)
        // Every snapshot fails: a copy the resends lost could not be healed and would show as missing.
        venue.setSnapshotFault("503")
        yield* Effect.gen(function* () {
          yield* flowing
          yield* rowsAtLeast(200)
          const timeoutsBefore = timeouts()
          const droppedBefore = sumOf(metrics.backlogDropped)
          proxy.pause()
          yield* waitUntil("two send timeouts", () => timeouts() >= timeoutsBefore + 2, 10_000)
          // The venue read loop kept taking copies; they wait in the bounded backlog.
          const backlog = sumOf(metrics.backlog)
          assert.isAbove(backlog, 0)
          yield* Effect.sleep("1 second")
          proxy.resume()
          venue.pause(true)
          const left1 = yield* caughtUp(venue, 20_000)
          assert.strictEqual(left1, 0, "every published seq reached the table")
          assert.strictEqual(sumOf(metrics.backlogDropped), droppedBefore, "nothing dropped under the bound")
          const statuses = yield* dedupStatuses
          assert.strictEqual(
            statuses.reduce((n, d) => n + d.healed, 0),
            0,
            "no snapshot healed anything"
          )
        }).pipe(
          Effect.provide(nodeLayer(url, venue.url, { gatherSendTimeout: Duration.millis(300), gatherBacklog: 50_000 }))
        )
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "a gatherer holds at most TESSERA_GATHER_BACKLOG copies per deduplicator; the dropped ones are healed after",
    () =>
      Effect.gen(function* () {
        const { venue, proxy, url, flowing } = yield* fixture("gbacklog", 4000, 800)
        const backlogMax = 100
        yield* Effect.gen(function* () {
          yield* flowing
          yield* rowsAtLeast(200)
          const droppedBefore = sumOf(metrics.backlogDropped)
          proxy.pause()
          let highest = 0
          const until = Date.now() + 3000
          while (Date.now() < until) {
            highest = Math.max(highest, sumOf(metrics.backlog))
            yield* Effect.sleep("50 millis")
          }
          assert.isAbove(sumOf(metrics.backlogDropped), droppedBefore, "copies past the bound were dropped and counted")
          // The bound, plus each market's newest dropped copy (sent so the deduplicator sees the hole).
          assert.isAtMost(
            highest,
            shards * backlogMax + venue.marketNames.length,
            "the backlog stayed within its bound"
          )
          proxy.resume()
          venue.pause(true)
          assert.strictEqual(yield* caughtUp(venue, 30_000), 0, "the dropped copies were healed from snapshots")
        }).pipe(
          Effect.provide(
            nodeLayer(url, venue.url, { gatherSendTimeout: Duration.millis(300), gatherBacklog: backlogMax })
          )
        )
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "TESSERA_DEDUP_MAX_PENDING: a deduplicator that cannot write sheds, holds bounded memory, then heals by snapshot",
    () =>
      Effect.gen(function* () {
        // Few markets at a high rate: every market is known before the black-hole, so Ingests still answer.
        const { venue, proxy, url, flowing } = yield* fixture("gpending", 8, 2000)
        const maxPending = 1000
        const sendBatch = 200
        yield* Effect.gen(function* () {
          yield* flowing
          yield* rowsAtLeast(500)
          const shedBefore = sumOf(metrics.shed)
          proxy.pause()
          yield* waitUntil("copies shed", () => sumOf(metrics.shed) > shedBefore, 10_000)
          const publishedAtShed = venue.stats().published
          let highest = 0
          const until = Date.now() + 2000
          while (Date.now() < until) {
            for (const d of yield* dedupStatuses) highest = Math.max(highest, d.pendingWrites)
            yield* Effect.sleep("100 millis")
          }
          assert.isAbove(venue.stats().published - publishedAtShed, 2000, "the venue went on publishing")
          // The buffer being written and the one filling, each within the bound plus one batch.
          assert.isAtMost(highest, 2 * (maxPending + sendBatch), "pending stayed bounded")
          assert.isAbove(sumOf(metrics.shed) - shedBefore, 2000, "copies past the bound were shed and counted")
          proxy.resume()
          venue.pause(true)
          assert.strictEqual(yield* caughtUp(venue, 30_000), 0, "the shed deltas were healed from snapshots")
          const statuses = yield* dedupStatuses
          assert.isAbove(
            statuses.reduce((n, d) => n + d.healed, 0),
            0,
            "healed from snapshots"
          )
          const sql = yield* SqlClient.SqlClient
          const [{ n }] = yield* sql<{ n: string }>`
            SELECT COUNT(*) - COUNT(DISTINCT (market, seq)) AS n FROM orderbook_deltas`
          assert.strictEqual(Number(n), 0)
          assert.isAbove(yield* rowCount, 2000)
        }).pipe(
          Effect.provide(
            nodeLayer(url, venue.url, {
              dedupMaxPending: maxPending,
              gatherSendBatch: sendBatch,
              gatherSendTimeout: Duration.millis(500)
            })
          )
        )
      }).pipe(Effect.scoped),
    60_000
  )
})
