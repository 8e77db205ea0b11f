import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { dedupStatusesOf, gatherNode, scopedVenue } from "../../test/gatherNode.ts"
import { scopedDatabase } from "../../test/harness.ts"
import { Gatherer, gathererEntityId } from "./protocol.ts"
import { setFleetReplicas } from "./store.ts"
import type { Venue } from "./venue.ts"

const replicas = 3
const shards = 4

const nodeLayer = (databaseUrl: string, venueUrl: string, replicas = 3) =>
  gatherNode({ databaseUrl, venueUrl, gather: { gatherReplicas: replicas, dedupShards: shards } })

/** Per market: rows, distinct seqs and the seq range in the table. */
const tableByMarket = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ market: string; n: string; lo: string; hi: string }>`
    SELECT market, COUNT(*) AS n, MIN(seq) AS lo, MAX(seq) AS hi FROM orderbook_deltas GROUP BY market`
  return new Map(rows.map((r) => [r.market, { n: Number(r.n), lo: Number(r.lo), hi: Number(r.hi) }]))
})

/** Waits until every market's rows reach the venue's last seq without a hole, or the deadline passes. */
const caughtUp = (venue: Venue, deadlineMs: number) =>
  Effect.gen(function* () {
    const until = Date.now() + deadlineMs
    const last = venue.lastSeqs()
    let missing = Number.POSITIVE_INFINITY
    while (Date.now() < until) {
      const table = yield* tableByMarket
      missing = 0
      for (let m = 0; m < venue.marketNames.length; m++) {
        if (last[m] === 0) continue
        const row = table.get(venue.marketNames[m])
        missing += row === undefined ? last[m] : last[m] - row.lo + 1 - row.n
      }
      if (missing === 0) return table
      yield* Effect.sleep("200 millis")
    }
    return yield* Effect.die(new Error(`table did not catch up: ${missing} deltas missing`))
  })

const statuses = Effect.gen(function* () {
  const gatherer = yield* Gatherer.client
  const gatherers = yield* Effect.forEach(
    Array.from({ length: replicas }, (_, r) => gathererEntityId(r, 0)),
    (id) => gatherer(id).Status()
  )
  const dedups = yield* dedupStatusesOf(shards)
  return { gatherers, dedups }
})

describe("gatherers and deduplicators (real Postgres + Redis, in-process venue)", () => {
  it.live(
    "3 faulty replicas, a disconnect and venue garbage still give every seq exactly once in orderbook_deltas",
    () =>
      Effect.gen(function* () {
        const database = yield* scopedDatabase("gather")
        const venue = yield* scopedVenue({ markets: 40, rate: 1500, seed: 11 })
        // 5% drops, 5% duplicates, reordering and short stalls on every connection: gaps all replicas missed must be healed.
        const venueUrl = `${venue.url}/?drop=0.05&dup=0.05&reorder=6&stall=0.002&stallMs=150`
        yield* Effect.gen(function* () {
          yield* Effect.sleep("2500 millis")
          venue.disconnectAll()
          yield* Effect.sleep("1000 millis")
          const beforeGarbage = yield* statuses
          venue.sendRaw("this is not json")
          venue.sendRaw(
            JSON.stringify({
              type: "deltas",
              d: [
                ["no-such-market", 1, 1, 0, 1, 1],
                ["m1", -5, 1, 0, 1, 1],
                ["m2", 1.5, 1, 0, 1, 1]
              ]
            })
          )
          yield* Effect.sleep("1500 millis")
          const during = yield* statuses
          venue.pause(true)
          const table = yield* caughtUp(venue, 20_000)
          const after = yield* statuses

          // Every market the venue published is in the table once per seq (the primary key forbids twice).
          const last = venue.lastSeqs()
          let rows = 0
          for (let m = 0; m < venue.marketNames.length; m++) {
            const row = table.get(venue.marketNames[m])!
            assert.strictEqual(row.hi, last[m], `market m${m} reaches the venue's last seq`)
            assert.strictEqual(row.n, row.hi - row.lo + 1, `market m${m} has no hole`)
            rows += row.n
          }
          assert.isAbove(rows, 3000)

          const total = (key: "duplicates" | "healed" | "written" | "skipped") =>
            after.dedups.reduce((n, d) => n + d[key], 0)
          assert.isAbove(total("duplicates"), rows, "three replicas deliver most deltas more than once")
          assert.strictEqual(total("skipped"), 0)
          // All three connections dropped at once: what they missed meanwhile came from venue snapshots.
          assert.isAbove(total("healed"), 0)
          assert.isAbove(total("written"), 0)
          // Reconnected after the disconnect, and the garbage was counted without stopping any gatherer.
          for (const g of after.gatherers) {
            assert.isAtLeast(g.reconnects, 1, `${g.id} reconnected`)
            assert.isAtLeast(g.garbage, 4, `${g.id} counted the garbage`)
            assert.isTrue(g.connected, `${g.id} still connected`)
          }
          // Data kept flowing after the garbage on the reconnected connections.
          during.gatherers.forEach((g, i) => {
            assert.isAbove(g.received, beforeGarbage.gatherers[i].received)
          })
        }).pipe(Effect.provide(nodeLayer(database.url, venueUrl)))
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "replicas are added and removed at run time: a new replica connects, a removed one lets its lease lapse",
    () =>
      Effect.gen(function* () {
        const database = yield* scopedDatabase("gatherrep")
        const venue = yield* scopedVenue({ markets: 10, rate: 200, seed: 3 })
        yield* Effect.gen(function* () {
          const gatherer = yield* Gatherer.client
          const waitFor = (id: string, connected: boolean, withinMs: number) =>
            Effect.gen(function* () {
              const until = Date.now() + withinMs
              while (Date.now() < until) {
                const status = yield* gatherer(id).Status()
                if (status.connected === connected && (!connected || status.received > 0)) return status
                yield* Effect.sleep("250 millis")
              }
              return yield* Effect.die(new Error(`${id} not ${connected ? "connected" : "disconnected"} in time`))
            })
          yield* waitFor(gathererEntityId(0, 0), true, 10_000)
          assert.isFalse((yield* gatherer(gathererEntityId(1, 0)).Status()).connected)
          // Add a second replica (the seed's "add a 4th gatherer"), then take it away again.
          yield* setFleetReplicas(2)
          yield* waitFor(gathererEntityId(1, 0), true, 10_000)
          yield* setFleetReplicas(1)
          yield* waitFor(gathererEntityId(1, 0), false, 20_000)
          assert.isTrue((yield* gatherer(gathererEntityId(0, 0)).Status()).connected)
        }).pipe(Effect.provide(nodeLayer(database.url, venue.url, 1)))
      }).pipe(Effect.scoped),
    60_000
  )
})
