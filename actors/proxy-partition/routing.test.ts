/**
 * Zone-local serving: the routing table's rules (unit), then two runner processes (real Postgres + Redis) in zones a
 * and b with `TESSERA_GRAPH_ZONES=a,b`: `Graph.Routing` lists each partition's zone and both gateways with their
 * zones, a zone router sends each request to the gateway of its vertices' zone, and after a kill -9 of one gateway
 * its requests still answer (through the bootstrap gateway) while the router refreshes its table.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as TesseraClient from "@tessera/client/TesseraClient"
import { Effect } from "effect"
import { graphRunners } from "../../test/graphRunners.ts"
import type { RunnerProcess } from "../../test/harness.ts"
import { parse } from "../../test/promText.ts"
import { graphApi, makeZoneRouter } from "./client.ts"
import { gatewayIn, liveGateways, vertexPartition, zoneForRequest, zoneOfIds } from "./routing.ts"

describe("routing table rules", () => {
  const table = { partitions: 4, zones: ["a", "b", "a", "b"] }
  const idIn = (partition: number, tag: string) => {
    for (let i = 0; ; i++) if (vertexPartition(`${tag}${i}`, 4) === partition) return `${tag}${i}`
  }

  it("sends a batch to the zone holding most of its ids, ties to the caller's zone", () => {
    const a1 = idIn(0, "x")
    const a2 = idIn(2, "y")
    const b1 = idIn(1, "z")
    assert.strictEqual(zoneOfIds(table, [a1, b1, a2]), "a")
    assert.strictEqual(zoneOfIds(table, [b1]), "b")
    assert.strictEqual(zoneOfIds(table, [a1, b1], "b"), "b")
    assert.strictEqual(zoneOfIds(table, [a1, b1], "a"), "a")
    assert.isUndefined(zoneOfIds({ partitions: 4, zones: [null, null, null, null] }, [a1, b1]))
  })

  it("sends reads to the caller's zone when a gateway there reads from a fresh replica, writes to their vertices' zone", () => {
    const a1 = idIn(0, "x")
    const withReplica = {
      ...table,
      gateways: [
        { url: "http://a", zone: "a", replica: false },
        { url: "http://b", zone: "b", replica: true }
      ]
    }
    assert.strictEqual(zoneForRequest(withReplica, [a1], { ownZone: "b", read: true, localReplicaReads: true }), "b")
    assert.strictEqual(zoneForRequest(withReplica, [a1], { ownZone: "b", read: false, localReplicaReads: true }), "a")
    assert.strictEqual(zoneForRequest(withReplica, [a1], { ownZone: "b", read: true }), "a")
    // Zone a's gateway has no replica: a zone-a caller's reads of zone b go to zone b.
    assert.strictEqual(
      zoneForRequest(withReplica, [idIn(1, "z")], { ownZone: "a", read: true, localReplicaReads: true }),
      "b"
    )
  })

  it("picks gateways of the zone, none when the zone has none", () => {
    const gateways = [
      { url: "http://a1", zone: "a", replica: false },
      { url: "http://b1", zone: "b", replica: false },
      { url: "http://a2", zone: "a", replica: true }
    ]
    assert.strictEqual(gatewayIn({ gateways }, "a", 0)?.url, "http://a1")
    assert.strictEqual(gatewayIn({ gateways }, "a", 1)?.url, "http://a2")
    assert.strictEqual(gatewayIn({ gateways }, "b", 7)?.url, "http://b1")
    assert.isUndefined(gatewayIn({ gateways }, "c", 0))
    assert.isUndefined(gatewayIn({ gateways }, undefined, 0))
  })

  it("lists live gateway entries only", () => {
    const stored = {
      "http://b": JSON.stringify({ zone: "b", replica: true, expires: 2000 }),
      "http://a": JSON.stringify({ zone: "a", replica: false, expires: 2000 }),
      "http://old": JSON.stringify({ zone: "a", replica: false, expires: 999 }),
      "http://junk": "{not json"
    }
    assert.deepStrictEqual(liveGateways(stored, 1000), [
      { url: "http://a", zone: "a", replica: false },
      { url: "http://b", zone: "b", replica: true }
    ])
  })
})

const partitions = 16
const graph = graphRunners({ database: "routing", prefix: "gr", partitions })
let a: RunnerProcess
let b: RunnerProcess

const start = (name: string, zone: string) => graph.start(name, { TESSERA_ZONE: zone, TESSERA_GRAPH_ZONES: "a,b" })

beforeAll(async () => {
  a = await start("routing-a", "a")
  b = await start("routing-b", "b")
}, 120_000)
afterAll(() => graph.stop())

/** `tessera_graph_requests_total{op="Graph.BatchGet"}` of a runner. */
const batchGets = async (node: RunnerProcess) => {
  const samples = parse(await (await fetch(`${node.url}/metrics`)).text())
  return samples.find((s) => s.name === "tessera_graph_requests_total" && s.labels.op === "Graph.BatchGet")?.value ?? 0
}

const idsOfZone = (zone: "a" | "b", count: number) => {
  const ids: Array<string> = []
  for (let i = 0; ids.length < count; i++) {
    if ((vertexPartition(`r${i}`, partitions) % 2 === 0 ? "a" : "b") === zone) ids.push(`r${i}`)
  }
  return ids
}

describe("zone routing (two runners, zones a and b)", () => {
  it(
    "answers the table and routes each request to the gateway of its vertices' zone, then survives losing one",
    () =>
      Effect.gen(function* () {
        const bootstrap = yield* TesseraClient.make(graphApi, { url: a.url })
        // Both gateways announce themselves within a renewal period.
        let table = yield* bootstrap["Graph.Routing"]()
        const deadline = Date.now() + 20_000
        while (table.gateways.length < 2 && Date.now() < deadline) {
          yield* Effect.sleep("250 millis")
          table = yield* bootstrap["Graph.Routing"]()
        }
        assert.strictEqual(table.partitions, partitions)
        assert.deepStrictEqual(
          [...table.zones],
          Array.from({ length: partitions }, (_, p) => (p % 2 === 0 ? "a" : "b"))
        )
        assert.deepStrictEqual(
          [...table.gateways].sort((x, y) => x.url.localeCompare(y.url)),
          [
            { url: a.url, zone: "a", replica: false },
            { url: b.url, zone: "b", replica: false }
          ].sort((x, y) => x.url.localeCompare(y.url))
        )

        const router = yield* makeZoneRouter({
          bootstrap,
          connect: (url) => TesseraClient.make(graphApi, { url }),
          zone: "b",
          partitions
        })
        const inA = idsOfZone("a", 6)
        const inB = idsOfZone("b", 6)
        for (const id of [...inA, ...inB]) yield* router.graph.put(id, { id })
        assert.strictEqual((yield* router.gatewayFor(inA))?.url, a.url)
        assert.strictEqual((yield* router.gatewayFor(inB))?.url, b.url)
        // A batch mostly of zone a goes to zone a's gateway.
        assert.strictEqual((yield* router.gatewayFor([...inA.slice(0, 3), inB[0]]))?.url, a.url)

        const a0 = yield* Effect.promise(() => batchGets(a))
        const b0 = yield* Effect.promise(() => batchGets(b))
        for (let i = 0; i < 7; i++)
          assert.deepStrictEqual(
            yield* router.graph.batchGet(inA),
            inA.map((id) => ({ id }))
          )
        for (let i = 0; i < 10; i++)
          assert.deepStrictEqual(
            yield* router.graph.batchGet(inB),
            inB.map((id) => ({ id }))
          )
        assert.strictEqual((yield* Effect.promise(() => batchGets(a))) - a0, 7, "zone a's reads on gateway a")
        assert.strictEqual((yield* Effect.promise(() => batchGets(b))) - b0, 10, "zone b's reads on gateway b")

        // Gateway b dies: its zone's requests still answer (the bootstrap gateway serves them), and the failure
        // refreshes the table at once.
        const refreshed = router.refreshes()
        b.child.kill("SIGKILL")
        yield* Effect.promise(() => b.exited)
        for (let i = 0; i < 3; i++)
          assert.deepStrictEqual(
            yield* router.graph.batchGet(inB),
            inB.map((id) => ({ id }))
          )
        const refreshDeadline = Date.now() + 5_000
        while (router.refreshes() === refreshed && Date.now() < refreshDeadline) yield* Effect.sleep("50 millis")
        assert.isAbove(router.refreshes(), refreshed, "a miss refreshes the table")
        // Its entry expires (no renewal): the table stops listing it, and zone b's requests go to the bootstrap.
        const expiry = Date.now() + 30_000
        while (router.table()?.gateways.some((g) => g.zone === "b") && Date.now() < expiry) {
          yield* router.refresh
          yield* Effect.sleep("500 millis")
        }
        assert.deepStrictEqual(
          router.table()?.gateways.map((g) => g.url),
          [a.url]
        )
        assert.isUndefined(yield* router.gatewayFor(inB))
      }).pipe(Effect.scoped, Effect.runPromise),
    120_000
  )
})
