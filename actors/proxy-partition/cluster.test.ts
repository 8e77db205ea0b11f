/**
 * The graph proxy through the gateway of two runner processes (real Postgres + Redis, local cold tier shared
 * by both): routing, typed errors for bad input, fan-out RPCs, demotion/promotion, and kill -9 failover with
 * no acknowledged write lost.
 */

import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as TesseraClient from "@tessera/client/TesseraClient"
import { Effect, Exit, type Scope } from "effect"
import {
  type Cluster,
  deleteRedisKeys,
  rawRpc,
  rpcRequest,
  runCli,
  startCluster,
  tempDataDir
} from "../../test/harness.ts"
import { SeedApi } from "../api.ts"
import { graphClient } from "./client.ts"
import { MAX_PROPERTIES_BYTES, partitionOf } from "./core.ts"

const prefix = `gt${Date.now().toString(36)}`
const cold = tempDataDir()
let cluster: Cluster

beforeAll(async () => {
  cluster = await startCluster(2, {
    label: "graph",
    env: { TESSERA_GRAPH_PREFIX: prefix, TESSERA_GRAPH_COLD: cold.dir, TESSERA_GRAPH_PARTITIONS: "64" }
  })
}, 90_000)
afterAll(async () => {
  await cluster?.stop()
  cold.remove()
  // The runners wrote under this test's own key prefix in the shared Redis: remove it.
  await deleteRedisKeys(prefix)
})

const withGraph = <A, E>(url: string, body: (g: ReturnType<typeof graphClient>) => Effect.Effect<A, E, Scope.Scope>) =>
  Effect.scoped(Effect.flatMap(TesseraClient.make(SeedApi, { url }), (client) => body(graphClient(client, 64)))).pipe(
    Effect.runPromise
  )

const errorTag = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.map(Effect.exit(effect), (exit) => {
    if (Exit.isSuccess(exit)) return "Success"
    const reason = (exit.cause as unknown as { reasons?: Array<{ error?: { _tag?: string }; defect?: unknown }> })
      .reasons?.[0]
    // A typed error, or the schema failure a payload outside its grammar dies with before it is sent.
    return String(
      reason?.error?._tag ?? (reason?.defect instanceof Error ? reason.defect.message : JSON.stringify(exit.cause))
    )
  })

describe("graph proxy on two runners (real Postgres + Redis)", () => {
  it(
    "routes by the shared hash, answers typed errors for bad input, fans out BatchGet and KHop",
    () =>
      withGraph(cluster.runners[0].url, (g) =>
        Effect.gen(function* () {
          for (let i = 0; i < 40; i++) assert.isTrue((yield* g.put(`u${i}`, { i, name: `user ${i}` })).created)
          for (let i = 0; i < 39; i++) yield* g.addEdge(`u${i}`, "next", `u${i + 1}`)
          yield* g.addEdge("u0", "likes", "u20")

          const got = yield* g.get("u7")
          assert.deepStrictEqual(got.properties, { i: 7, name: "user 7" })
          assert.deepStrictEqual(yield* g.neighbors("u0", "likes"), [{ label: "likes", id: "u20" }])
          assert.strictEqual((yield* g.neighbors("u0")).length, 2)
          // The gateway's direct hot-tier read agrees with the entity.
          assert.deepStrictEqual(
            [...(yield* g.neighbors("u0"))].sort((x, y) => x.id.localeCompare(y.id)),
            [...(yield* g.entityNeighbors("u0"))].sort((x, y) => x.id.localeCompare(y.id))
          )

          const batch = yield* g.batchGet(["u3", "missing", "u39", "u3"])
          assert.deepStrictEqual(batch, [
            { i: 3, name: "user 3" },
            null,
            { i: 39, name: "user 39" },
            { i: 3, name: "user 3" }
          ])

          const hop2 = yield* g.khop("u0", 2, { label: "next" })
          assert.deepStrictEqual([...hop2.vertices], ["u1", "u2"])
          const hop3 = yield* g.khop("u0", 3)
          assert.deepStrictEqual([...hop3.vertices].sort(), ["u1", "u2", "u20", "u21", "u22", "u3"].sort())
          const limited = yield* g.khop("u0", 3, { limit: 2 })
          assert.strictEqual(limited.vertices.length, 2)
          assert.isTrue(limited.truncated)

          // The partitions live on both runners.
          const hosts = new Set<string>()
          for (const p of new Set(Array.from({ length: 40 }, (_, i) => partitionOf(`u${i}`, 64)))) {
            hosts.add((yield* g.info(p)).runner)
          }
          assert.isAtLeast(hosts.size, 1)

          // Bad input gets typed errors, and the runner keeps serving.
          assert.strictEqual(yield* errorTag(g.get("nobody")), "VertexNotFound")
          assert.strictEqual(yield* errorTag(g.delete("nobody")), "VertexNotFound")
          assert.strictEqual(yield* errorTag(g.addEdge("nobody", "x", "u1")), "VertexNotFound")
          assert.strictEqual(yield* errorTag(g.neighbors("nobody")), "VertexNotFound")
          assert.strictEqual(
            yield* errorTag(g.put("big", { blob: "x".repeat(MAX_PROPERTIES_BYTES + 1) })),
            "PropertiesTooLarge"
          )
          // Outside the id grammar (empty, a control character): refused by the schema before anything is sent.
          assert.strictEqual(yield* errorTag(g.put("", {})), "Schema validation failed")
          assert.strictEqual(yield* errorTag(g.put("a\nb", {})), "Schema validation failed")
          assert.strictEqual(yield* errorTag(g.addEdge("u1", "a|b", "u2")), "InvalidLabel")
          assert.strictEqual(yield* errorTag(g.khop("u0", 4)), "KHopTooDeep")
          assert.strictEqual(yield* errorTag(g.khop("u0", 0)), "KHopTooDeep")
          assert.strictEqual(yield* errorTag(g.khop("nobody", 2)), "VertexNotFound")
          assert.strictEqual(yield* errorTag(g.batchGet(Array.from({ length: 1001 }, (_, i) => `b${i}`))), "TooManyIds")
          const wrong = graphClient(yield* TesseraClient.make(SeedApi, { url: cluster.runners[0].url }), 7)
          const misrouted = Array.from({ length: 20 }, (_, i) => `u${i}`).find(
            (id) => partitionOf(id, 7) !== partitionOf(id, 64)
          )!
          assert.strictEqual(yield* errorTag(wrong.get(misrouted)), "WrongPartition")
          // Out of range: refused at the gateway by the module's id check, before any partition entity starts.
          assert.strictEqual(yield* errorTag(g.info(64)), "InvalidEntityId")
          assert.deepStrictEqual((yield* g.get("u1")).properties, { i: 1, name: "user 1" })

          // Properties that are not a JSON object are refused at the wire, and nothing is written.
          for (const [n, properties] of [
            [1, [1, 2]],
            [2, "text"],
            [3, null],
            [4, 7]
          ] as const) {
            const id = `wire-bad-${n}`
            const entityId = String(partitionOf(id, 64))
            const reply = yield* Effect.promise(() =>
              rawRpc(
                cluster.runners[0].url,
                rpcRequest(String(n), "ProxyPartition.PutVertex", { entityId, payload: { id, properties } })
              )
            )
            assert.strictEqual(reply.status, 200)
            const exit = reply.lines.find((line) => line?._tag === "Exit")
            assert.strictEqual(exit?.exit?._tag, "Failure", JSON.stringify(reply.lines))
            assert.include(JSON.stringify(exit.exit.cause), "JSON object")
            assert.strictEqual(yield* errorTag(g.get(id)), "VertexNotFound")
          }
        })
      ),
    60_000
  )

  it(
    "demotes a partition to the cold tier and promotes it on the next request",
    () =>
      withGraph(cluster.runners[1].url, (g) =>
        Effect.gen(function* () {
          const p = partitionOf("u5", 64)
          const demoted = yield* g.demote(p)
          assert.isAtLeast(demoted.vertices, 1)
          const stats = yield* g.stats()
          assert.strictEqual(stats.rows.find((r) => r.partition === p)?.tier, "cold")
          assert.isNotNull(stats.rows.find((r) => r.partition === p)?.location ?? null)
          // BatchGet finds no vertex keys in Valkey, asks the entity, which promotes the partition.
          assert.deepStrictEqual(yield* g.batchGet(["u5", "nobody"]), [{ i: 5, name: "user 5" }, null])
          assert.strictEqual((yield* g.stats()).rows.find((r) => r.partition === p)?.tier, "hot")
          assert.deepStrictEqual((yield* g.get("u5")).properties, { i: 5, name: "user 5" })
          // Again with Graph.Neighbors as the first request after a demotion.
          yield* g.demote(p)
          assert.deepStrictEqual(yield* g.neighbors("u5", "next"), [{ label: "next", id: "u6" }])
          assert.strictEqual((yield* g.info(p)).tier, "hot")
          assert.strictEqual((yield* g.stats()).rows.find((r) => r.partition === p)?.tier, "hot")
        })
      ),
    60_000
  )

  it("serves the tessera graph CLI", async () => {
    const run = async (...argv: Array<string>) => {
      const { code, out, err } = await runCli(["graph", ...argv, "--url", cluster.runners[0].url])
      return { code, out: code === 0 ? JSON.parse(out) : undefined, err }
    }
    assert.deepStrictEqual((await run("put", "cli-a", "--props", '{"x":1}')).out, { created: true })
    await run("put", "cli-b")
    assert.deepStrictEqual((await run("edge", "cli-a", "knows", "cli-b")).out, { added: true })
    assert.deepStrictEqual((await run("neighbors", "cli-a")).out, [{ label: "knows", id: "cli-b" }])
    assert.deepStrictEqual((await run("get", "cli-a")).out, { id: "cli-a", properties: { x: 1 } })
    assert.deepStrictEqual((await run("get", "cli-a", "cli-none")).out, [
      { id: "cli-a", properties: { x: 1 } },
      { id: "cli-none", properties: null }
    ])
    assert.deepStrictEqual((await run("khop", "cli-a", "--k", "2")).out, { vertices: ["cli-b"], truncated: false })
    assert.strictEqual((await run("stats")).out.partitions, 64)
    const deep = await run("khop", "cli-a", "--k", "4")
    assert.strictEqual(deep.code, 1)
    assert.include(deep.err, "KHopTooDeep")
    assert.strictEqual((await run("put", "x", "--props", "[1]")).code, 2)
    assert.strictEqual((await run("frobnicate")).code, 2)
  }, 30_000)

  it("rebalances from the CLI across both runners: moves online, reads find every vertex after", async () => {
    const run = async (...argv: Array<string>) => {
      const { code, out, err } = await runCli(["graph", ...argv, "--url", cluster.runners[0].url])
      return { code, out: code === 0 ? JSON.parse(out) : undefined, err }
    }
    // Two rings of untagged vertices, spread over both runners' partitions by the hash.
    const ring = (name: string) => Array.from({ length: 8 }, (_, i) => `ring-${name}-${i}`)
    await withGraph(cluster.runners[0].url, (g) =>
      Effect.gen(function* () {
        for (const ids of [ring("a"), ring("b")]) {
          for (const [i, id] of ids.entries()) yield* g.put(id, { i })
          for (const [i, id] of ids.entries()) {
            yield* g.addEdge(id, "next", ids[(i + 1) % ids.length])
            yield* g.addEdge(id, "skip", ids[(i + 2) % ids.length])
          }
        }
      })
    )
    // Placement keys through the CLI's client: a tagged id lives in its key's partition; a bad key is refused.
    assert.deepStrictEqual((await run("put", "{cli}tagged", "--props", '{"t":1}')).out, { created: true })
    assert.deepStrictEqual((await run("get", "{cli}tagged")).out, { id: "{cli}tagged", properties: { t: 1 } })
    assert.strictEqual(
      (await run("info", String(partitionOf("cli", 64)))).out.vertices >= 1,
      true,
      "the key's partition holds it"
    )
    const badKey = await run("put", "{bad key}x")
    assert.strictEqual(badKey.code, 1)
    assert.include(badKey.err, "InvalidPlacementKey")
    const dry = await run("rebalance", "--dry-run", "--seed", "3")
    assert.strictEqual(dry.out.moved, 0)
    assert.isAtLeast(dry.out.vertices, 16)
    const bad = await run("rebalance", "--iterations", "0")
    assert.strictEqual(bad.code, 1)
    assert.include(bad.err, "InvalidRebalance")
    const done = await run("rebalance", "--seed", "3")
    assert.isAbove(done.out.moved, 0)
    assert.isAbove(done.out.localEdgesAfter, done.out.localEdgesBefore)
    await withGraph(cluster.runners[1].url, (g) =>
      Effect.gen(function* () {
        for (const ids of [ring("a"), ring("b")]) {
          assert.deepStrictEqual(
            yield* g.batchGet(ids),
            ids.map((_, i) => ({ i }))
          )
          for (const [i, id] of ids.entries()) {
            assert.deepStrictEqual((yield* g.get(id)).properties, { i })
            const neighbors = [...(yield* g.neighbors(id))].sort((x, y) => x.label.localeCompare(y.label))
            assert.deepStrictEqual(neighbors, [
              { label: "next", id: ids[(i + 1) % ids.length] },
              { label: "skip", id: ids[(i + 2) % ids.length] }
            ])
          }
          // KHop walks the moved vertices through their homes.
          const khop = yield* g.khop(ids[0], 3, { label: "next" })
          assert.deepStrictEqual([...khop.vertices], ids.slice(1, 4))
        }
      })
    )
  }, 90_000)

  it("loses no acknowledged write when a runner is killed -9 mid-stream", async () => {
    const [survivor, victim] = cluster.runners
    const acknowledged = new Map<string, number>()
    const ids = Array.from({ length: 300 }, (_, i) => `w${i}`)
    let killed = false
    await withGraph(survivor.url, (g) =>
      Effect.gen(function* () {
        // Wait until partitions are spread over both runners, so the kill moves some.
        const victimAddress = `127.0.0.1:${victim.runnerPort}`
        const deadline = Date.now() + 30_000
        let onVictim = 0
        while (Date.now() < deadline && onVictim === 0) {
          for (let p = 0; p < 64; p += 4) {
            const info = yield* Effect.orElseSucceed(Effect.timeout(g.info(p), "2 seconds"), () => undefined)
            if (info?.runner === victimAddress) onVictim++
          }
          if (onVictim === 0) yield* Effect.sleep("500 millis")
        }
        assert.isAbove(onVictim, 0, "some partitions live on the victim")

        yield* Effect.forEach(
          ids,
          (id, n) =>
            Effect.gen(function* () {
              if (n === 100 && !killed) {
                killed = true
                yield* Effect.promise(() => cluster.kill9(victim))
              }
              const until = Date.now() + 40_000
              while (Date.now() < until) {
                const exit = yield* Effect.exit(Effect.timeout(g.put(id, { n }), "3 seconds"))
                if (Exit.isSuccess(exit)) {
                  acknowledged.set(id, n)
                  return
                }
                yield* Effect.sleep("200 millis")
              }
            }),
          { concurrency: 8, discard: true }
        )
        assert.isTrue(killed)
        assert.strictEqual(acknowledged.size, ids.length, "every write was eventually acknowledged by the survivor")
        // Every acknowledged write reads back from the survivor, including the partitions that moved.
        const values = yield* g.batchGet(ids)
        for (let k = 0; k < ids.length; k++)
          assert.deepStrictEqual(values[k], { n: acknowledged.get(ids[k]) ?? -1 }, ids[k])
        // And the writes made before the failover too.
        const early = yield* g.batchGet(Array.from({ length: 40 }, (_, i) => `u${i}`))
        assert.isTrue(early.every((v) => v !== null))
      })
    )
  }, 120_000)
})
