/**
 * Venue faults healed and bounded (issue 17 part 2), on real Postgres + Redis with the venue simulator in process:
 * a sequence reset is resnapshotted, failing snapshots are retried and flagged until the venue recovers, garbage and
 * 1 MiB frames are counted without stopping the feed, and venue text in logs cannot forge a line.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Layer, Logger } from "effect"
import { SqlClient } from "effect/sql"
import { dedupStatusesOf, gatherNode, scopedVenue } from "../../test/gatherNode.ts"
import { scopedDatabase } from "../../test/harness.ts"
import { metrics } from "./entity.ts"
import { epochSpan } from "./feed.ts"
import { Gatherer, gathererEntityId } from "./protocol.ts"
import type { Venue } from "./venue.ts"

const shards = 2

const nodeLayer = (databaseUrl: string, venueUrl: string, replicas: number) =>
  gatherNode({
    databaseUrl,
    venueUrl,
    gather: {
      gatherReplicas: replicas,
      dedupShards: shards,
      snapshotTimeout: Duration.millis(500),
      snapshotMaxBytes: 1024 * 1024
    }
  })

/** Per market and epoch: rows and the stored seq range. */
const tableByMarket = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ market: string; epoch: string; n: string; lo: string; hi: string }>`
    SELECT market, seq >> 40 AS epoch, COUNT(*) AS n, MIN(seq) AS lo, MAX(seq) AS hi
    FROM orderbook_deltas GROUP BY market, seq >> 40`
  return new Map(
    rows.map((r) => [`${r.market}@${Number(r.epoch)}`, { n: Number(r.n), lo: Number(r.lo), hi: Number(r.hi) }])
  )
})

/** Waits until each market's current epoch is in the table up to the venue's last seq, without a hole. */
const caughtUp = (venue: Venue, deadlineMs: number) =>
  Effect.gen(function* () {
    const until = Date.now() + deadlineMs
    const last = venue.lastSeqs()
    const epochs = venue.epochs()
    let missing = Number.POSITIVE_INFINITY
    while (Date.now() < until) {
      const table = yield* tableByMarket
      missing = 0
      for (let m = 0; m < venue.marketNames.length; m++) {
        if (last[m] === 0) continue
        const row = table.get(`${venue.marketNames[m]}@${epochs[m]}`)
        const base = epochs[m] * epochSpan
        missing += row === undefined ? last[m] : base + last[m] - row.lo + 1 - row.n
      }
      if (missing === 0) return table
      yield* Effect.sleep("200 millis")
    }
    return yield* Effect.die(new Error(`table did not catch up: ${missing} deltas missing`))
  })

const dedupStatuses = dedupStatusesOf(shards)

const waitUntil = <A, E, R>(what: string, withinMs: number, probe: Effect.Effect<A, E, R>, done: (a: A) => boolean) =>
  Effect.gen(function* () {
    const until = Date.now() + withinMs
    while (Date.now() < until) {
      const value = yield* probe
      if (done(value)) return value
      yield* Effect.sleep("100 millis")
    }
    return yield* Effect.die(new Error(`timed out waiting for ${what}`))
  })

const failuresBy = (reason: string) =>
  metrics.snapshotFailures
    .series()
    .filter(([labels]) => labels.reason === reason)
    .reduce((n, [, s]) => n + s.value, 0)

const unhealedGauge = () => metrics.unhealed.series().reduce((n, [, s]) => n + s.value, 0)

const withVenue = (name: string, markets: number, rate: number, tagEpochs = true) =>
  Effect.gen(function* () {
    const database = yield* scopedDatabase(name)
    const venue = yield* scopedVenue({ markets, rate, seed: 23, tagEpochs })
    return { database, venue }
  })

describe("venue faults (real Postgres + Redis, in-process venue)", () => {
  /** `tagEpochs` false: the venue's deltas carry no epoch, only its `reset` marker announces the new one. */
  const resetScenario = (tagEpochs: boolean) =>
    Effect.gen(function* () {
      const { database, venue } = yield* withVenue("gatherreset", 12, 1200, tagEpochs)
      yield* Effect.gen(function* () {
        yield* Effect.sleep("2000 millis")
        const before = Float64Array.from(venue.lastSeqs())
        venue.resetMarkets([0, 1, 2, 3, 4, 5])
        yield* Effect.sleep("2000 millis")
        venue.pause(true)
        const table = yield* caughtUp(venue, 20_000)
        for (let m = 0; m < 6; m++) {
          // The old epoch ended where the venue reset it; the new one starts at stored seq 2^40 + 1.
          const old = table.get(`m${m}@0`)!
          assert.isAtLeast(old.hi, before[m], `m${m} old epoch kept`)
          assert.strictEqual(old.n, old.hi - old.lo + 1, `m${m} old epoch has no hole`)
          const fresh = table.get(`m${m}@1`)!
          assert.strictEqual(fresh.lo, epochSpan + 1, `m${m} new epoch from its first seq`)
          assert.strictEqual(fresh.hi, epochSpan + venue.lastSeqs()[m])
        }
        const statuses = yield* dedupStatuses
        assert.strictEqual(
          statuses.reduce((n, d) => n + d.skipped, 0),
          0,
          "a reset is not counted as skipped deltas"
        )
        assert.isAtLeast(
          metrics.sequenceResets.series().reduce((n, [, s]) => n + s.value, 0),
          6
        )
        const gatherer = yield* Gatherer.client
        assert.isAtLeast((yield* gatherer(gathererEntityId(0, 0)).Status()).resets, 6, "markers counted")
      }).pipe(Effect.provide(nodeLayer(database.url, venue.url, 2)))
    }).pipe(Effect.scoped)

  it.live(
    "a venue sequence reset is detected and resnapshotted: the new epoch is stored whole after the old one",
    () => resetScenario(true),
    60_000
  )

  it.live(
    "a reset announced only by the venue's marker (untagged deltas) is followed: the new epoch is stored whole",
    () => resetScenario(false),
    60_000
  )

  it.live(
    "failing snapshots (503, hung, oversize, firstSeq 1e15) are retried, flagged unhealed, and healed once the venue recovers",
    () =>
      Effect.gen(function* () {
        const { database, venue } = yield* withVenue("gathersnap", 20, 800)
        // One replica dropping 10%: every hole needs a snapshot.
        yield* Effect.gen(function* () {
          yield* Effect.sleep("1000 millis")
          for (const [fault, reason] of [
            ["503", "http"],
            ["timeout", "timeout"],
            ["oversize", "oversize"],
            ["invalid", "invalid"]
          ] as const) {
            const failedBefore = failuresBy(reason)
            venue.setSnapshotFault(fault)
            yield* waitUntil(
              `${reason} failures`,
              15_000,
              Effect.sync(() => failuresBy(reason)),
              (n) => n > failedBefore
            )
          }
          const flagged = yield* waitUntil("a flagged market", 15_000, dedupStatuses, (all) =>
            all.some((d) => d.unhealedCount > 0)
          )
          const listed = flagged.flatMap((d) => d.unhealed)
          assert.isAbove(listed.length, 0)
          assert.isAtLeast(listed[0].failures, 3)
          assert.isAbove(unhealedGauge(), 0, "the gauge shows the flagged markets")
          // Still retried: the venue recovers and every hole is healed.
          venue.setSnapshotFault("none")
          venue.pause(true)
          // A market's very last delta, if dropped, leaves no later copy to reveal the hole: with one lossy replica
          // a few markets may end one short, so the check is "no hole below the last row" plus a small tail.
          const tailOf = (rows: Map<string, { n: number; lo: number; hi: number }>) => {
            let tail = 0
            for (let m = 0; m < venue.marketNames.length; m++) {
              const row = rows.get(`m${m}@0`)
              if (row === undefined || row.n !== row.hi - row.lo + 1) return Number.POSITIVE_INFINITY
              tail += venue.lastSeqs()[m] - row.hi
            }
            return tail
          }
          const table = yield* waitUntil("every hole healed", 40_000, tableByMarket, (rows) => tailOf(rows) <= 4)
          assert.isAtMost(tailOf(table), 4, "no hole, at most a few undetectable trailing drops")
          const after = yield* waitUntil("no flagged market", 15_000, dedupStatuses, (all) =>
            all.every((d) => d.unhealedCount === 0)
          )
          assert.strictEqual(
            after.reduce((n, d) => n + d.skipped, 0),
            0
          )
          assert.isAbove(
            after.reduce((n, d) => n + d.snapshotFailures, 0),
            4
          )
          assert.strictEqual(unhealedGauge(), 0)
        }).pipe(Effect.provide(nodeLayer(database.url, `${venue.url}/?drop=0.1`, 1)))
      }).pipe(Effect.scoped),
    90_000
  )

  it.live(
    "garbage frames are counted per frame, a 1 MiB frame is refused by the frame cap, and logs stay one line each",
    () =>
      Effect.gen(function* () {
        const { database, venue } = yield* withVenue("gathergarbage", 8, 600)
        const lines: Array<string> = []
        const capture = Logger.make(({ message }) => {
          lines.push(Array.isArray(message) ? message.map(String).join(" ") : String(message))
        })
        yield* Effect.gen(function* () {
          yield* Effect.sleep("1500 millis")
          venue.sendRaw("not json\n2026-12-07T06:00:00.000Z ERROR (#1): forged line")
          venue.sendRaw(
            JSON.stringify({
              type: "deltas",
              d: [
                ["m0", 1e15, 1, 0, 1, 1],
                ["evil\nERROR x", 1, 1, 0, 1, 1]
              ]
            })
          )
          venue.sendRaw(`{"type":"deltas","pad":"${"x".repeat(1024 * 1024)}","d":[]}`)
          yield* Effect.sleep("2500 millis")
          venue.pause(true)
          const table = yield* caughtUp(venue, 20_000)
          for (let m = 0; m < venue.marketNames.length; m++) {
            const row = table.get(`m${m}@0`)!
            assert.strictEqual(row.n, row.hi - row.lo + 1, `m${m} has no hole`)
          }
          const gatherer = yield* Gatherer.client
          const status = yield* gatherer(gathererEntityId(0, 0)).Status()
          assert.strictEqual(status.garbageFrames, 2, "two garbage frames")
          assert.strictEqual(status.garbage, 3, "one bad frame, two bad deltas")
          assert.strictEqual(status.oversizeFrames, 1)
          assert.isAtLeast(status.reconnects, 1, "reconnected after the oversize frame closed the socket")
          assert.isTrue(status.connected)
          const garbageLines = lines.filter((line) => line.includes("garbage"))
          assert.isAbove(garbageLines.length, 0, "garbage was logged")
          for (const line of lines) assert.notInclude(line, "\n", `one line: ${line.slice(0, 120)}`)
          assert.isTrue(lines.some((line) => line.includes("frames over")))
        }).pipe(Effect.provide(nodeLayer(database.url, venue.url, 1).pipe(Layer.provide(Logger.layer([capture])))))
      }).pipe(Effect.scoped),
    60_000
  )
})
