/**
 * A rebalance across two runner processes (real Postgres + Redis) when one runner is killed -9 in the middle of it:
 * the moves in flight are settled by the partitions' next activations on the survivor, and after a second run every
 * vertex reads back whole, is held by exactly one partition, and each community lives in one partition.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as TesseraClient from "@tessera/client/TesseraClient"
import { Effect, Exit, type Scope } from "effect"
import { Redis } from "ioredis"
import { type Cluster, deleteRedisKeys, redisUrl, startCluster, tempDataDir } from "../../test/harness.ts"
import { SeedApi } from "../api.ts"
import { graphClient } from "./client.ts"
import { partitionKeys } from "./core.ts"

const partitions = 8
const prefix = `grf${Date.now().toString(36)}`
const cold = tempDataDir()
let cluster: Cluster
const redis = new Redis(redisUrl)

beforeAll(async () => {
  cluster = await startCluster(2, {
    label: "graph_rebalance_failover",
    env: { TESSERA_GRAPH_PREFIX: prefix, TESSERA_GRAPH_COLD: cold.dir, TESSERA_GRAPH_PARTITIONS: String(partitions) }
  })
}, 90_000)
afterAll(async () => {
  await cluster?.stop()
  cold.remove()
  await deleteRedisKeys(prefix)
  redis.disconnect()
})

const withClient = <A, E>(
  url: string,
  body: (
    client: TesseraClient.Client<typeof SeedApi>,
    g: ReturnType<typeof graphClient>
  ) => Effect.Effect<A, E, Scope.Scope>
) =>
  Effect.scoped(
    Effect.flatMap(TesseraClient.make(SeedApi, { url }), (client) => body(client, graphClient(client, partitions)))
  ).pipe(Effect.runPromise)

/** The partitions whose ids set holds each id. */
const holdersOf = async (ids: ReadonlyArray<string>) => {
  const out = new Map<string, Array<number>>()
  for (let p = 0; p < partitions; p++) {
    for (const id of await redis.smembers(partitionKeys(prefix, p).ids)) out.set(id, [...(out.get(id) ?? []), p])
  }
  return ids.map((id) => out.get(id) ?? [])
}

describe("graph rebalance with a runner killed -9 mid-run (two runner processes)", () => {
  it("settles the moves in flight: every vertex whole and held once, communities co-located after a second run", async () => {
    // Six cliques of ten untagged vertices.
    const communities = 6
    const size = 10
    const idOf = (c: number, i: number) => `f${c}-v${i}`
    const ids = Array.from({ length: communities * size }, (_, k) => idOf(Math.floor(k / size), k % size))
    const [survivor, victim] = cluster.runners
    await withClient(survivor.url, (_, g) =>
      Effect.gen(function* () {
        yield* Effect.forEach(ids, (id) => g.put(id, { id }), { concurrency: 8, discard: true })
        yield* Effect.forEach(
          ids,
          (src, k) =>
            Effect.forEach(
              Array.from({ length: size - 1 }, (_, d) => d + 1),
              (d) => g.addEdge(src, "in", idOf(Math.floor(k / size), ((k % size) + d) % size)),
              { discard: true }
            ),
          { concurrency: 8, discard: true }
        )
      })
    )

    const holdersBefore = (await holdersOf(ids)).map((h) => h[0])
    // The first run, with the victim killed once some vertices moved.
    const first = withClient(survivor.url, (client) => Effect.exit(client["Graph.Rebalance"]({ seed: 11 })))
    const started = Date.now()
    let moved = 0
    while (Date.now() - started < 30_000) {
      moved = (await holdersOf(ids)).filter((h, k) => h.length > 0 && h[0] !== holdersBefore[k]).length
      if (moved >= 5) break
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    assert.isAtLeast(moved, 5, "the first run moved vertices before the kill")
    await cluster.kill9(victim)
    await first

    // Every vertex answers (the survivor takes the victim's partitions over), then a second run finishes the job.
    const deadline = Date.now() + 60_000
    let done: { moved: number } | undefined
    while (done === undefined && Date.now() < deadline) {
      const exit = await withClient(survivor.url, (client) =>
        Effect.exit(Effect.timeout(client["Graph.Rebalance"]({ seed: 11 }), "40 seconds"))
      )
      if (Exit.isSuccess(exit)) done = exit.value
      else await new Promise((resolve) => setTimeout(resolve, 1000))
    }
    assert.isDefined(done, "a second run completes on the survivor")

    await withClient(survivor.url, (_, g) =>
      Effect.gen(function* () {
        assert.deepStrictEqual(
          yield* g.batchGet(ids),
          ids.map((id) => ({ id }))
        )
        for (const id of ids) {
          assert.deepStrictEqual((yield* g.get(id)).properties, { id })
          assert.strictEqual((yield* g.neighbors(id, "in")).length, size - 1, id)
        }
      })
    )
    const holders = await holdersOf(ids)
    for (let k = 0; k < ids.length; k++) assert.strictEqual(holders[k].length, 1, `${ids[k]} held by ${holders[k]}`)
    for (let c = 0; c < communities; c++) {
      const where = new Set(holders.slice(c * size, (c + 1) * size).map((h) => h[0]))
      assert.strictEqual(where.size, 1, `community ${c} in partitions ${[...where]}`)
    }
  }, 180_000)
})
