/**
 * Gatherer replicas spread over zones, on three runner processes (real Postgres + Redis): `TESSERA_GATHER_ZONES=a,b,c`
 * and one runner per zone. Replica r of every connection runs in zone `zones[r mod 3]` (its runner, or briefly
 * another runner's standby), so no runner's main identity holds two replicas of one connection; after a kill -9 of
 * the zone-a runner its replicas run on the other runners' standby identities.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as TesseraClient from "@tessera/client/TesseraClient"
import { Effect } from "effect"
import { freePort, freshDatabase, type RunnerProcess, redisUrl, startProcess } from "../../test/harness.ts"
import { SeedApi } from "../api.ts"
import { type FleetStatus, parseGathererId } from "./protocol.ts"
import { startVenue, type Venue } from "./venue.ts"

const zones = ["a", "b", "c"]
const connections = 4
const db = freshDatabase("gzones")
// A database of its own: these runners' book streams must not mix with other tests' markets.
const redis = `${redisUrl}/11`
let venue: Venue
const runners: Array<{ node: RunnerProcess; standby: number; zone: string }> = []

beforeAll(async () => {
  venue = await startVenue({ markets: 8, rate: 50, seed: 3 })
  for (const zone of zones) {
    const standby = await freePort()
    const node = await startProcess(`gzone-${zone}`, {
      env: {
        DATABASE_URL: db.url,
        REDIS_URL: redis,
        TESSERA_ZONE: zone,
        TESSERA_GATHER_ZONES: zones.join(","),
        TESSERA_STANDBY_PORT: String(standby),
        TESSERA_VENUE_URL: venue.url,
        TESSERA_GATHER_REPLICAS: String(zones.length),
        TESSERA_GATHER_CONNECTIONS: String(connections),
        TESSERA_DEDUP_SHARDS: "2"
      }
    })
    runners.push({ node, standby, zone })
  }
}, 180_000)
afterAll(async () => {
  for (const runner of runners) runner.node.child.kill("SIGKILL")
  await Promise.all(runners.map((runner) => runner.node.exited))
  db.drop()
  await venue?.close()
})

const fleet = (url: string) =>
  Effect.scoped(
    Effect.flatMap(TesseraClient.make(SeedApi, { url }), (client) =>
      client["Gather.Status"]().pipe(Effect.timeout("5 seconds"))
    )
  ).pipe(Effect.orElseSucceed((): FleetStatus | undefined => undefined))

/** The zone and identity of a runner address `host:port` (undefined: not one of ours). */
const hostOf = (address: string) => {
  for (const runner of runners) {
    if (address === `127.0.0.1:${runner.node.runnerPort}`) return { zone: runner.zone, standby: false }
    if (address === `127.0.0.1:${runner.standby}`) return { zone: runner.zone, standby: true }
  }
  return undefined
}

/** Gatherers on the main identity of their replica's zone. */
const placedInZone = (status: FleetStatus) =>
  status.gatherers.filter((g) => {
    const host = hostOf(g.runner)
    const replica = parseGathererId(g.id)?.replica ?? -1
    return host !== undefined && !host.standby && host.zone === zones[replica % zones.length]
  }).length

describe("gatherer zone placement (three runners, zones a, b and c)", () => {
  it.live(
    "runs replica r of every connection in zone r: never two replicas of a connection on one runner",
    () =>
      Effect.gen(function* () {
        const total = zones.length * connections
        // Runners joined one after another: wait (bounded) until every gatherer is connected and rebalanced.
        let status: FleetStatus | undefined
        const deadline = Date.now() + 90_000
        while (Date.now() < deadline) {
          status = yield* fleet(runners[0].node.url)
          if (
            status !== undefined &&
            status.gatherers.length === total &&
            status.gatherers.every((g) => g.connected) &&
            placedInZone(status) >= total - 2
          ) {
            break
          }
          yield* Effect.sleep("500 millis")
        }
        assert.isDefined(status)
        const final = status!
        assert.deepStrictEqual([...final.zones], zones)
        assert.strictEqual(final.gatherers.length, total, JSON.stringify(final.unreachable))
        for (const g of final.gatherers) {
          const host = hostOf(g.runner)
          const replica = parseGathererId(g.id)!.replica
          assert.isDefined(host, `gatherer ${g.id} on ${g.runner}`)
          // A standby holds a zone group's shards only in small part (its weight), never a main of another zone.
          assert.isTrue(
            host!.standby || host!.zone === zones[replica % zones.length],
            `gatherer ${g.id} runs on the main runner of zone ${host!.zone}`
          )
          assert.isTrue(g.connected, `gatherer ${g.id} connected`)
        }
        // A standby's share of a zone group is a couple of its shards: nearly all gatherers sit on their zone's runner.
        assert.isAtLeast(placedInZone(final), total - 2, JSON.stringify(final.gatherers.map((g) => [g.id, g.runner])))
        for (let c = 0; c < connections; c++) {
          const mains = final.gatherers
            .filter((g) => parseGathererId(g.id)?.connection === c && hostOf(g.runner)?.standby === false)
            .map((g) => g.runner)
          assert.strictEqual(new Set(mains).size, mains.length, `connection ${c}: replicas on distinct runners`)
        }
        // The gateway's Gatherer proxy addresses the zone group too (the default group's would be refused).
        const proxied = yield* Effect.scoped(
          Effect.flatMap(TesseraClient.make(SeedApi, { url: runners[2].node.url }), (client) =>
            client["Gatherer.Status"]({ entityId: "1/0", payload: undefined })
          )
        )
        assert.strictEqual(proxied.id, "1/0")
        assert.strictEqual(proxied.runner, final.gatherers.find((g) => g.id === "1/0")?.runner)
      }),
    150_000
  )

  it.live(
    "after a kill -9 of the zone-a runner, zone a's replicas run on the other runners' standbys",
    () =>
      Effect.gen(function* () {
        const [a, b, c] = runners
        a.node.child.kill("SIGKILL")
        yield* Effect.promise(() => a.node.exited)
        const standbys = [b, c].map((runner) => `127.0.0.1:${runner.standby}`)
        const onStandby = (status: FleetStatus | undefined) =>
          status?.gatherers.filter((g) => parseGathererId(g.id)?.replica === 0 && standbys.includes(g.runner)) ?? []
        let status: FleetStatus | undefined
        const deadline = Date.now() + 90_000
        while (Date.now() < deadline) {
          status = yield* fleet(b.node.url)
          if (onStandby(status).length === connections && onStandby(status).every((g) => g.connected)) break
          yield* Effect.sleep("500 millis")
        }
        const moved = onStandby(status)
        assert.strictEqual(moved.length, connections, JSON.stringify(status?.gatherers.map((g) => [g.id, g.runner])))
        assert.isTrue(
          moved.every((g) => g.connected),
          "the moved replicas reconnect to the venue"
        )
      }),
    120_000
  )
})
