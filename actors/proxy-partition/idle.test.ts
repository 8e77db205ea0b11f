/**
 * Idle auto-demotion end to end on a runner process (real Postgres + Redis, local cold tier) with
 * `TESSERA_GRAPH_IDLE=4s` (partitions report and check every 2 s): a partition nobody touches is snapshotted to the
 * cold tier and evicted from Valkey by itself, and the next read promotes it; a partition read only through the
 * gateway's direct hot-tier path (Graph.BatchGet) stays hot while it is being read.
 */
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as TesseraClient from "@tessera/client/TesseraClient"
import { Effect, type Scope } from "effect"
import { Redis } from "ioredis"
import { graphRunners } from "../../test/graphRunners.ts"
import { type RunnerProcess, redisUrl } from "../../test/harness.ts"
import { SeedApi } from "../api.ts"
import { type GraphClient, graphClient } from "./client.ts"
import { decodeSnapshot, partitionOf } from "./core.ts"
import type { PartitionMeta } from "./protocol.ts"

const partitions = 8
const idleMs = 4000
const graph = graphRunners({ database: "graph_idle", prefix: "gi", partitions })
const { cold, prefix } = graph
let node: RunnerProcess

beforeAll(async () => {
  node = await graph.start("graph-idle", { TESSERA_GRAPH_IDLE: `${idleMs} millis` })
}, 90_000)
afterAll(() => graph.stop())

const withGraph = <A, E>(body: (g: GraphClient) => Effect.Effect<A, E, Scope.Scope>) =>
  Effect.scoped(
    Effect.flatMap(TesseraClient.make(SeedApi, { url: node.url }), (client) => body(graphClient(client, partitions)))
  )

/** `count` vertex ids that hash to `partition`. */
const idsOf = (partition: number, count: number, tag: string) => {
  const ids: Array<string> = []
  for (let i = 0; ids.length < count; i++)
    if (partitionOf(`${tag}${i}`, partitions) === partition) ids.push(`${tag}${i}`)
  return ids
}

const rowOf = (g: GraphClient, partition: number) =>
  Effect.map(g.stats(), (stats): PartitionMeta | undefined => stats.rows.find((r) => r.partition === partition))

/** The partition's vertex, edge and id-set keys in Valkey (counters like `reads` are not partition data). */
const dataKeys = async (partition: number) => {
  const redis = new Redis(redisUrl)
  try {
    const found: Array<string> = []
    let cursor = "0"
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:{${partition}}:*`, "COUNT", 1000)
      for (const key of keys) if (/:(v:|o:|ids$)/.test(key.slice(prefix.length))) found.push(key)
      cursor = next
    } while (cursor !== "0")
    return found
  } finally {
    redis.disconnect()
  }
}

describe("graph partition idle demotion (TESSERA_GRAPH_IDLE=4s)", () => {
  it("demotes an idle partition by itself, evicts its keys, keeps the snapshot, and promotes on the next read", async () => {
    const p = 3
    const ids = idsOf(p, 25, "idle")
    await withGraph((g) =>
      Effect.gen(function* () {
        for (const [i, id] of ids.entries()) yield* g.put(id, { i })
        yield* g.addEdge(ids[0], "next", ids[1])
      })
    ).pipe(Effect.runPromise)
    assert.isAbove((await dataKeys(p)).length, 25, "written to the hot tier")

    // Nobody touches it now: within idle + a report interval or two it must be cold (bounded wait, no sleep).
    const row = await withGraph((g) =>
      Effect.gen(function* () {
        const deadline = Date.now() + 30_000
        let last = yield* rowOf(g, p)
        while (last?.tier !== "cold" && Date.now() < deadline) {
          yield* Effect.sleep("250 millis")
          last = yield* rowOf(g, p)
        }
        return last
      })
    ).pipe(Effect.runPromise)
    assert.strictEqual(row?.tier, "cold", "demoted without a Demote request")
    assert.deepStrictEqual(await dataKeys(p), [], "its keys left Valkey")
    assert.isNotNull(row?.location ?? null)
    const snapshot = decodeSnapshot(readFileSync(join(cold.dir, row!.location!)))
    assert.strictEqual(snapshot.partition, p)
    assert.strictEqual(snapshot.vertices.length, ids.length, "every vertex is in the cold-tier snapshot")

    // A read promotes it and returns the data.
    await withGraph((g) =>
      Effect.gen(function* () {
        assert.deepStrictEqual((yield* g.get(ids[7])).properties, { i: 7 })
        assert.deepStrictEqual(yield* g.neighbors(ids[0]), [{ label: "next", id: ids[1] }])
        assert.strictEqual((yield* rowOf(g, p))?.tier, "hot")
      })
    ).pipe(Effect.runPromise)
    assert.isAbove((await dataKeys(p)).length, 25, "restored to the hot tier")
  }, 60_000)

  it("keeps a partition hot while gateways read it directly, while an untouched one is demoted", async () => {
    const read = 5
    const untouched = 6
    const readIds = idsOf(read, 10, "busy")
    const quietIds = idsOf(untouched, 10, "quiet")
    await withGraph((g) =>
      Effect.gen(function* () {
        for (const id of [...readIds, ...quietIds]) yield* g.put(id, { id })
        // Three idle periods of Graph.BatchGet only (no entity request), checking the tiers as we go.
        const until = Date.now() + 3 * idleMs
        let quietDemoted = false
        while (Date.now() < until) {
          const values = yield* g.batchGet(readIds)
          assert.deepStrictEqual(
            values,
            readIds.map((id) => ({ id })),
            "served straight from the hot tier"
          )
          const stats = yield* g.stats()
          assert.strictEqual(stats.rows.find((r) => r.partition === read)?.tier, "hot", "the read partition")
          if (stats.rows.find((r) => r.partition === untouched)?.tier === "cold") quietDemoted = true
          yield* Effect.sleep("200 millis")
        }
        assert.isTrue(quietDemoted, "demotion was running meanwhile: the untouched partition went cold")
        assert.strictEqual((yield* rowOf(g, read))?.tier, "hot")
        assert.strictEqual((yield* dataKeysEffect(read)).length, readIds.length + 1, "vertices and id set in Valkey")
      })
    ).pipe(Effect.runPromise)
  }, 60_000)
})

const dataKeysEffect = (partition: number) => Effect.promise(() => dataKeys(partition))
