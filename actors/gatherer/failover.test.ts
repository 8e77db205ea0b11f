import { assert, describe, it } from "@effect/vitest"
import * as TesseraClient from "@tessera/client/TesseraClient"
import { Effect } from "effect"
import { type Cluster, startCluster } from "../../test/harness.ts"
import { SeedApi } from "../api.ts"
import type { FleetStatus } from "./protocol.ts"
import { startVenue, type Venue } from "./venue.ts"

const fleet = (url: string) =>
  Effect.scoped(
    Effect.flatMap(TesseraClient.make(SeedApi, { url }), (client) =>
      client["Gather.Status"]().pipe(Effect.timeout("5 seconds"))
    )
  ).pipe(Effect.orElseSucceed((): FleetStatus | undefined => undefined))

/** Per market `n lo hi` from the table, via psql. */
const table = (cluster: Cluster) => {
  const text = cluster.database.query(
    "SELECT market, COUNT(*), MIN(seq), MAX(seq) FROM orderbook_deltas GROUP BY market ORDER BY market"
  )
  const rows = new Map<string, { n: number; lo: number; hi: number }>()
  for (const line of text.split("\n")) {
    if (line.length === 0) continue
    const [market, n, lo, hi] = line.split("|")
    rows.set(market, { n: Number(n), lo: Number(lo), hi: Number(hi) })
  }
  return rows
}

const missing = (venue: Venue, rows: ReturnType<typeof table>) => {
  const last = venue.lastSeqs()
  let count = 0
  for (let m = 0; m < venue.marketNames.length; m++) {
    const row = rows.get(venue.marketNames[m])
    count += row === undefined ? last[m] : last[m] - row.lo + 1 - row.n
  }
  return count
}

describe("deduplicator failover (two runner processes, real Postgres + Redis)", () => {
  it.live(
    "after kill -9 of a runner hosting deduplicators, every seq the venue sent is in orderbook_deltas once",
    () =>
      Effect.gen(function* () {
        const venue = yield* Effect.acquireRelease(
          Effect.promise(() => startVenue({ markets: 30, rate: 800, seed: 5 })),
          (v) => Effect.promise(() => v.close())
        )
        const cluster = yield* Effect.acquireRelease(
          Effect.promise(() =>
            startCluster(2, {
              label: "gatherfo",
              env: {
                TESSERA_VENUE_URL: `${venue.url}/?drop=0.01&dup=0.01&reorder=4`,
                TESSERA_GATHER_REPLICAS: "2",
                TESSERA_DEDUP_SHARDS: "8"
              }
            })
          ),
          (c) => Effect.promise(() => c.stop())
        )
        const [first, second] = cluster.runners
        const address = (r: typeof first) => `127.0.0.1:${r.runnerPort}`

        // Wait until all deduplicators write, spread over both runners.
        let status: FleetStatus | undefined
        const by = Date.now() + 40_000
        while (Date.now() < by) {
          status = yield* fleet(first.url)
          const runners = new Set(status?.deduplicators.map((d) => d.runner))
          if (
            status !== undefined &&
            status.deduplicators.length === 8 &&
            status.deduplicators.every((d) => d.written > 0) &&
            runners.size === 2
          ) {
            break
          }
          yield* Effect.sleep("500 millis")
        }
        assert.isDefined(status)
        assert.strictEqual(status!.deduplicators.length, 8, JSON.stringify(status))
        const victim = status!.deduplicators.some((d) => d.runner === address(second)) ? second : first
        const survivor = victim === second ? first : second
        const moved = status!.deduplicators.filter((d) => d.runner === address(victim)).length
        assert.isAbove(moved, 0)

        yield* Effect.promise(() => cluster.kill9(victim))
        // Keep the feed running through the failover, then stop it and let the survivor catch up.
        yield* Effect.sleep("8 seconds")
        venue.pause(true)
        let gap = Number.POSITIVE_INFINITY
        let rows = table(cluster)
        const caughtUpBy = Date.now() + 30_000
        while (Date.now() < caughtUpBy) {
          rows = table(cluster)
          gap = missing(venue, rows)
          if (gap === 0) break
          yield* Effect.sleep("500 millis")
        }
        assert.strictEqual(gap, 0, "every seq from the first written one to the venue's last is in the table")
        const last = venue.lastSeqs()
        for (let m = 0; m < venue.marketNames.length; m++) {
          const row = rows.get(venue.marketNames[m])!
          assert.strictEqual(row.hi, last[m])
          assert.strictEqual(row.n, row.hi - row.lo + 1, `m${m}: no hole, no extra row`)
        }
        // No row twice (the primary key says so; this checks the table really has it).
        const duplicates = cluster.database.query(
          "SELECT COUNT(*) FROM (SELECT market, seq FROM orderbook_deltas GROUP BY market, seq HAVING COUNT(*) > 1) d"
        )
        assert.strictEqual(duplicates, "0")

        const after = yield* fleet(survivor.url)
        assert.isDefined(after)
        assert.strictEqual(after!.deduplicators.length, 8)
        for (const d of after!.deduplicators) assert.strictEqual(d.runner, address(survivor))
        assert.strictEqual(
          after!.deduplicators.reduce((n, d) => n + d.skipped, 0),
          0
        )
      }).pipe(Effect.scoped),
    120_000
  )
})
