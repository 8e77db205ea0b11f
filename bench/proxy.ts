// `npm run bench -- proxy [--json] [--vertices N] [--edges M] [--seconds S] [--concurrency C] [--connections K]
//   [--batch B]`
//
// Graph-proxy reads and writes through the gateway of one runner process (real Postgres + Redis), against the
// raw GET rate of the same Redis at the same concurrency, plus the promotion time of a cold 10K-vertex partition.
//
// 1. Starts a runner (fresh Postgres database, the real Redis under a unique key prefix, a temporary cold tier).
// 2. Loads a generated power-law graph straight into Valkey in the partitions' key layout (bulk pipelines; the
//    entities find it hot), and 10K vertices into one partition that the read mix never touches.
// 3. Runs a read-heavy mix over one WebSocket RPC connection with C requests in flight: 45% Graph.BatchGet of
//    B ids, 45% Graph.Neighbors, 10% PutVertex (entity). Gateway reads of hot partitions go straight to Valkey. reads/s counts vertices read (B per BatchGet, 1 per Neighbors);
//    p50/p99 are per-request latencies of every request, reads and writes.
// 4. Raw Redis GET/s: `redis-benchmark -t get -c C` (or ioredis with C GETs in flight when it is missing).
// 5. Demotes the 10K-vertex partition (Demote RPC) and times the next GetVertex, which promotes it.
import { execFileSync } from "node:child_process"
import { parseArgs } from "node:util"
import { Effect, Layer } from "effect"
import { RpcClient, RpcSerialization } from "effect/rpc"
import { Socket } from "effect/socket"
import { Redis } from "ioredis"
import { edgeMember, partitionKeys, partitionOf } from "../actors/proxy-partition/core.ts"
import { TesseraApi } from "../packages/client/src/Api.ts"
import { freshDatabase, redisUrl, startProcess, tempDataDir } from "../test/harness.ts"
import { progress } from "./progress.ts"

const PARTITIONS = 64
const COLD_VERTICES = 10_000

/** Deterministic PRNG (mulberry32). */
const rng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const percentile = (sorted: Float64Array, q: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]

const round = (x: number, digits = 3) => Number(x.toFixed(digits))

const log = (line: string) => process.stderr.write(`${line}\n`)

/** Loads the graph in the key layout of `core.ts`; returns the ids (none of them in `coldPartition`). */
const loadGraph = async (
  redis: Redis,
  prefix: string,
  vertices: number,
  edges: number,
  coldPartition: number
): Promise<Array<string>> => {
  const random = rng(42)
  const ids: Array<string> = []
  for (let i = 0; ids.length < vertices; i++) {
    const id = `v${i}`
    if (partitionOf(id, PARTITIONS) !== coldPartition) ids.push(id)
  }
  const keys = Array.from({ length: PARTITIONS }, (_, p) => partitionKeys(prefix, p))
  // Progress on stderr: vertices then edges written (updated every 4096 items).
  const bar = progress("graph load", { total: ids.length + edges, unit: "items" })
  let pipeline = redis.pipeline()
  let queued = 0
  const flush = async (force = false) => {
    if (queued === 0 || (!force && queued < 10_000)) return
    await pipeline.exec()
    pipeline = redis.pipeline()
    queued = 0
  }
  for (let i = 0; i < ids.length; i++) {
    const k = keys[partitionOf(ids[i], PARTITIONS)]
    pipeline.set(k.vertex(ids[i]), `{"n":${i},"name":"vertex ${i}","score":${(i * 7) % 1000}}`)
    pipeline.sadd(k.ids, ids[i])
    queued += 2
    await flush()
    if ((i & 4095) === 4095) bar.set(i + 1)
  }
  // Power-law degrees: sources and destinations drawn with a heavy head (a few hubs, a long tail).
  const labels = ["follows", "likes", "knows"]
  for (let e = 0; e < edges; e++) {
    const src = ids[Math.floor(ids.length * random() ** 3)]
    const dst = ids[Math.floor(ids.length * random() ** 2)]
    pipeline.sadd(keys[partitionOf(src, PARTITIONS)].out(src), edgeMember(labels[e % 3], dst))
    queued++
    await flush()
    if ((e & 4095) === 4095) bar.set(ids.length + e + 1)
  }
  await flush(true)
  bar.set(ids.length + edges)
  bar.done()
  return ids
}

const loadColdPartition = async (redis: Redis, prefix: string, partition: number): Promise<Array<string>> => {
  const k = partitionKeys(prefix, partition)
  const ids: Array<string> = []
  for (let i = 0; ids.length < COLD_VERTICES; i++) {
    const id = `c${i}`
    if (partitionOf(id, PARTITIONS) === partition) ids.push(id)
  }
  const pipeline = redis.pipeline()
  for (let i = 0; i < ids.length; i++) {
    pipeline.set(k.vertex(ids[i]), `{"n":${i},"cold":true}`)
    if (i > 0) pipeline.sadd(k.out(ids[i]), edgeMember("next", ids[i - 1]))
  }
  pipeline.sadd(k.ids, ...ids)
  await pipeline.exec()
  return ids
}

const rawGetRate = async (concurrency: number): Promise<{ perSecond: number; tool: string }> => {
  const url = new URL(redisUrl)
  try {
    const csv = execFileSync(
      "redis-benchmark",
      ["-h", url.hostname, "-p", url.port || "6379", "-c", String(concurrency), "-n", "300000", "-t", "get", "--csv"],
      { stdio: ["ignore", "pipe", "ignore"], timeout: 120_000 }
    ).toString()
    const line = csv.split("\n").find((l) => l.startsWith('"GET"'))
    if (line !== undefined) return { perSecond: Number(JSON.parse(`[${line}]`)[1]), tool: "redis-benchmark" }
  } catch {
    // fall back to ioredis below
  }
  const redis = new Redis(redisUrl, { enableAutoPipelining: false })
  await redis.set("bench:proxy:get", "x".repeat(3))
  const total = 300_000
  let done = 0
  const started = performance.now()
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (done < total) {
        done++
        await redis.get("bench:proxy:get")
      }
    })
  )
  const perSecond = total / ((performance.now() - started) / 1000)
  redis.disconnect()
  return { perSecond, tool: "ioredis (one connection, C in flight)" }
}

const deletePrefix = async (redis: Redis, prefix: string) => {
  let cursor = "0"
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 5000)
    if (keys.length > 0) await redis.unlink(...keys)
    cursor = next
  } while (cursor !== "0")
}

export const run = async (args: ReadonlyArray<string>): Promise<void> => {
  const { values } = parseArgs({
    args: [...args],
    options: {
      json: { type: "boolean" },
      vertices: { type: "string" },
      edges: { type: "string" },
      seconds: { type: "string" },
      concurrency: { type: "string" },
      connections: { type: "string" },
      batch: { type: "string" }
    },
    strict: true
  })
  const vertices = Number(values.vertices ?? 200_000)
  const edges = Number(values.edges ?? 1_000_000)
  const seconds = Number(values.seconds ?? 15)
  const concurrency = Number(values.concurrency ?? 64)
  const connections = Math.max(1, Number(values.connections ?? 1))
  const batch = Number(values.batch ?? 32)

  const prefix = `bench-proxy-${Date.now().toString(36)}`
  const database = freshDatabase("bench_proxy")
  const cold = tempDataDir()
  const redis = new Redis(redisUrl)
  let node: Awaited<ReturnType<typeof startProcess>> | undefined
  try {
    const coldPartition = 0
    let started = performance.now()
    const ids = await loadGraph(redis, prefix, vertices, edges, coldPartition)
    const coldIds = await loadColdPartition(redis, prefix, coldPartition)
    log(
      `loaded ${vertices} vertices, ${edges} edges (+${COLD_VERTICES} in partition ${coldPartition}) in ${round((performance.now() - started) / 1000, 1)} s`
    )

    node = await startProcess("proxy-bench", {
      env: {
        DATABASE_URL: database.url,
        REDIS_URL: redisUrl,
        TESSERA_GRAPH_PREFIX: prefix,
        TESSERA_GRAPH_COLD: cold.dir,
        TESSERA_GRAPH_PARTITIONS: String(PARTITIONS),
        // e.g. BENCH_NODE_OPTIONS=--cpu-prof to profile the runner (written on its clean stop)
        ...(process.env.BENCH_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_NODE_OPTIONS } : {})
      }
    })
    const wsUrl = `${node.url.replace(/^http/, "ws")}/rpc`

    const result = await Effect.gen(function* () {
      const protocol = () =>
        RpcClient.layerProtocolSocket().pipe(
          Layer.provide(Socket.layerWebSocket(wsUrl)),
          Layer.provide(Socket.layerWebSocketConstructorGlobal),
          Layer.provide(RpcSerialization.layerNdjson)
        )
      // One WebSocket per connection (each its own protocol layer); workers take them round-robin.
      const clients = yield* Effect.forEach(Array.from({ length: connections }), () =>
        Effect.flatMap(Layer.build(protocol()), (services) => Effect.provide(RpcClient.make(TesseraApi), services))
      )
      const client = clients[0]
      const random = rng(7)
      const pick = () => ids[Math.floor(random() * ids.length)]
      const entity = (id: string) => String(partitionOf(id, PARTITIONS))

      const latencies = new Float64Array(5_000_000)
      let samples = 0
      let reads = 0
      let writes = 0
      let failures = 0
      let measuring = false
      let deadline = 0

      const one = (client: (typeof clients)[number]) =>
        Effect.suspend(() => {
          const roll = random()
          const t0 = performance.now()
          let call: Effect.Effect<number, unknown>
          if (roll < 0.45) {
            const batchIds = Array.from({ length: batch }, pick)
            call = Effect.map(client["Graph.BatchGet"]({ ids: batchIds }), (found) => found.length)
          } else if (roll < 0.9) {
            const id = pick()
            call = Effect.as(client["Graph.Neighbors"]({ id }), 1)
          } else {
            const id = pick()
            call = Effect.as(
              client["ProxyPartition.PutVertex"]({
                entityId: entity(id),
                payload: { id, properties: { n: 0, name: id, updated: Date.now() } }
              }),
              -1
            )
          }
          return Effect.match(call, {
            onFailure: () => {
              if (measuring) failures++
            },
            onSuccess: (n) => {
              if (!measuring) return
              if (samples < latencies.length) latencies[samples++] = performance.now() - t0
              if (n < 0) writes++
              else reads += n
            }
          })
        })
      const worker = (w: number) => {
        const c = clients[w % clients.length]
        return Effect.whileLoop({ while: () => performance.now() < deadline, body: () => one(c), step: () => {} })
      }

      // Warm-up (activates every partition, JIT), then the measured window.
      deadline = performance.now() + 3000
      yield* Effect.all(
        Array.from({ length: concurrency }, (_, w) => worker(w)),
        { concurrency: "unbounded" }
      )
      measuring = true
      const t0 = performance.now()
      deadline = t0 + seconds * 1000
      yield* Effect.all(
        Array.from({ length: concurrency }, (_, w) => worker(w)),
        { concurrency: "unbounded" }
      )
      const elapsed = (performance.now() - t0) / 1000
      measuring = false
      const sorted = latencies.slice(0, samples).sort()

      // Cold partition: demote it, then the next request promotes it.
      const partition = String(coldPartition)
      yield* client["ProxyPartition.GetVertex"]({ entityId: partition, payload: { id: coldIds[0] } })
      const demoted = yield* client["ProxyPartition.Demote"]({ entityId: partition, payload: undefined })
      const p0 = performance.now()
      const promoted = yield* client["ProxyPartition.GetVertex"]({ entityId: partition, payload: { id: coldIds[77] } })
      const promoteMs = performance.now() - p0
      const w0 = performance.now()
      yield* client["ProxyPartition.GetVertex"]({ entityId: partition, payload: { id: coldIds[78] } })
      const warmMs = performance.now() - w0
      const info = yield* client["ProxyPartition.Info"]({ entityId: partition, payload: undefined })
      if (info.vertices !== COLD_VERTICES || promoted.properties.n !== 77) {
        throw new Error(`promotion restored ${info.vertices} vertices`)
      }
      return {
        requestsPerSecond: samples / elapsed,
        readsPerSecond: reads / elapsed,
        writesPerSecond: writes / elapsed,
        failures,
        p50: percentile(sorted, 0.5),
        p99: percentile(sorted, 0.99),
        p999: percentile(sorted, 0.999),
        demoteMs: demoted.millis,
        promoteMs,
        warmMs
      }
    }).pipe(Effect.scoped, Effect.runPromise)

    started = performance.now()
    const raw = await rawGetRate(concurrency)
    log(`raw GET measured with ${raw.tool} in ${round((performance.now() - started) / 1000, 1)} s`)

    const summary = {
      bench: "proxy",
      reads_per_s: Math.round(result.readsPerSecond),
      p50_ms: round(result.p50),
      p99_ms: round(result.p99),
      redis_get_per_s: Math.round(raw.perSecond),
      promote_ms: round(result.promoteMs, 1),
      requests_per_s: Math.round(result.requestsPerSecond),
      writes_per_s: Math.round(result.writesPerSecond),
      p999_ms: round(result.p999),
      failures: result.failures,
      demote_ms: round(result.demoteMs, 1),
      warm_get_ms: round(result.warmMs, 2),
      vertices,
      edges,
      concurrency,
      connections,
      batch,
      seconds,
      redis_get_tool: raw.tool
    }
    const rows: Array<[string, string]> = [
      ["graph", `${vertices} vertices, ${edges} edges (power law), ${PARTITIONS} partitions, 1 runner`],
      [
        "mix",
        `45% Graph.BatchGet(${batch}) / 45% Graph.Neighbors / 10% PutVertex, ${concurrency} in flight over ${connections} WebSocket(s), ${seconds} s`
      ],
      ["reads/s (vertices)", `${summary.reads_per_s}`],
      ["requests/s", `${summary.requests_per_s} (writes/s ${summary.writes_per_s}, failures ${summary.failures})`],
      ["latency p50/p99/p99.9", `${summary.p50_ms} / ${summary.p99_ms} / ${summary.p999_ms} ms`],
      ["raw Redis GET/s", `${summary.redis_get_per_s} (${raw.tool}, -c ${concurrency})`],
      ["reads / raw GET", `${round(result.readsPerSecond / raw.perSecond, 2)}x`],
      ["demote 10K partition", `${summary.demote_ms} ms`],
      ["promote 10K partition", `${summary.promote_ms} ms (first GetVertex; a warm one: ${summary.warm_get_ms} ms)`]
    ]
    for (const [name, value] of rows) process.stdout.write(`${name.padEnd(24)} ${value}\n`)
    if (values.json === true) process.stdout.write(`${JSON.stringify(summary)}\n`)
  } finally {
    if (node !== undefined) {
      const stopping = node
      stopping.child.kill("SIGTERM")
      const timer = setTimeout(() => stopping.child.kill("SIGKILL"), 5000)
      await stopping.exited
      clearTimeout(timer)
    }
    await deletePrefix(redis, prefix).catch(() => undefined)
    redis.disconnect()
    database.drop()
    cold.remove()
  }
}
