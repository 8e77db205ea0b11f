// `npm run bench -- proxy --zones 3 [--json] [--vertices N] [--communities C] [--degree D] [--in-community F]
//   [--seconds S] [--concurrency K] [--batch B] [--no-replicas]`
//
// Zone locality of the graph proxy (issue 19, part 3): how much of the traffic crosses availability zones, with and
// without placement hints and zone-local serving, on runner processes of this machine tagged with zones.
//
// 1. Starts its own Valkey primary and (unless --no-replicas) one replica per zone (`redis-server --replicaof`), and
//    `--zones` runners (default 3) with TESSERA_ZONE=a|b|c, TESSERA_GRAPH_ZONES=a,b,c (partition p's data and owner
//    live in zone p mod 3) and TESSERA_VALKEY_REPLICA_URL set to their zone's replica.
// 2. Generates a stochastic block model: N vertices (default 30,000) in C communities (default 48, vertex i in
//    community i mod C), D out-edges each (default 8), each edge inside its community with probability F (default
//    0.9), else to a uniform vertex of another community. Loads it twice into the partitions' key layout: with
//    placement hints (ids `{k<c>}v<i>`, so a community shares the partition of its key) and without (`v<i>`, hashed).
// 3. Clients, one group per zone, each with K requests in flight (default 8) over WebSockets to every gateway. A
//    community's home zone is its key's partition's zone; each zone's clients work on the communities homed there.
//    A request works on a community: the client's own with probability F (90% of reads stay within a community),
//    else a uniform other one; the mix is the proxy bench's: 45% Graph.BatchGet of B ids (default 8), 45%
//    Graph.Neighbors, 10% PutVertex, each on vertices of that community.
// 4. Phases of S seconds (default 10), each after a warm-up:
//    - baseline: no hints, every request to the client's own zone's gateway (today's deployment);
//    - hints + zone routing: each request to a gateway of the zone holding its vertices (`Graph.Routing`);
//    - hints + zone routing + zone replicas: reads to the client's own zone when its gateway reads from a fresh replica;
//    - no hints + zone routing + zone replicas: what replicas give without hints.
// 5. A request crossed zones when the client's zone differs from the gateway's, or when the gateway read or wrote data
//    of another zone: a direct read (BatchGet id, Neighbors) of a partition homed elsewhere unless the phase reads
//    from the zone's replica, and every PutVertex to an owner elsewhere. Bytes: the request and answer lines between
//    client and gateway, plus per id read the key and value bytes, per Neighbors the answer's, per put the request's,
//    counted as crossed on the hops that cross. (Replication to the replicas is write traffic and is not counted.)
//    Beside each no-replica phase, the gateways' own count of direct reads outside the partition's preferred zone
//    (tessera_graph_cross_zone_requests_total{path="gateway"}) checks the bench's model of the data hop.
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parseArgs } from "node:util"
import { prng } from "@tessera/platform/Random"
import { Redis } from "ioredis"
import { edgeMember, partitionKeys, preferredZone, vertexPartition } from "../actors/proxy-partition/core.ts"
import { gatewayIn, type RoutingTable, zoneForRequest } from "../actors/proxy-partition/routing.ts"
import { freePort, freshDatabase, type RunnerProcess, startProcess, tempDataDir } from "../test/harness.ts"
import { rawTransport, type Transport, type WireBytes } from "./proxyLoad.ts"

const PARTITIONS = 64

const rng = prng

export interface BlockModel {
  /** Community of each vertex (vertex i is in community i mod communities). */
  readonly community: Int32Array
  /** Vertices of each community. */
  readonly members: ReadonlyArray<ReadonlyArray<number>>
  /** Out-edges: `targets[i * degree + j]` is vertex i's j-th out-neighbour. */
  readonly targets: Int32Array
  readonly degree: number
}

/**
 * A stochastic block model: vertex i in community i mod `communities`, `degree` out-edges each, inside its community
 * with probability `inCommunity` (to a uniform other member), else to a uniform vertex of a uniform other community.
 */
export const stochasticBlockModel = (options: {
  readonly vertices: number
  readonly communities: number
  readonly degree: number
  readonly inCommunity: number
  readonly seed: number
}): BlockModel => {
  const { vertices, communities, degree } = options
  const random = rng(options.seed)
  const community = Int32Array.from({ length: vertices }, (_, i) => i % communities)
  const members: Array<Array<number>> = Array.from({ length: communities }, () => [])
  for (let i = 0; i < vertices; i++) members[community[i]].push(i)
  const targets = new Int32Array(vertices * degree)
  for (let i = 0; i < vertices; i++) {
    const own = community[i]
    for (let j = 0; j < degree; j++) {
      let c = own
      if (communities > 1 && random() >= options.inCommunity) {
        c = Math.floor(random() * (communities - 1))
        if (c >= own) c++
      }
      const pool = members[c]
      let dst = pool[Math.floor(random() * pool.length)]
      if (dst === i && pool.length > 1) dst = pool[(pool.indexOf(i) + 1) % pool.length]
      targets[i * degree + j] = dst
    }
  }
  return { community, members, targets, degree }
}

/** One data transfer behind a request: between its gateway and the zone holding the data. */
export interface DataHop {
  readonly zone: string | null
  readonly bytes: number
  /** A direct read, which a gateway with a replica in its own zone serves there. */
  readonly replicable: boolean
}

/** Running totals of a phase. */
export interface Locality {
  requests: number
  crossedRequests: number
  bytes: number
  crossedBytes: number
  /** Direct reads (replicable hops) and those of a partition homed outside the gateway's zone. */
  directReads: number
  directReadsElsewhere: number
}

export const makeLocality = (): Locality => ({
  requests: 0,
  crossedRequests: 0,
  bytes: 0,
  crossedBytes: 0,
  directReads: 0,
  directReadsElsewhere: 0
})

/**
 * Adds one request: `wire` bytes between the client (in `clientZone`) and its gateway (in `gatewayZone`), and the
 * gateway's data hops. A hop crosses when its data's zone is not the gateway's, unless it is a direct read and the
 * gateway reads from a replica in its own zone (`replicaReads`). The request crossed when any hop did.
 */
export const recordRequest = (
  locality: Locality,
  request: {
    readonly clientZone: string
    readonly gatewayZone: string
    readonly wire: number
    readonly hops: ReadonlyArray<DataHop>
    readonly replicaReads: boolean
  }
): void => {
  let crossed = request.clientZone !== request.gatewayZone
  locality.requests++
  locality.bytes += request.wire
  if (crossed) locality.crossedBytes += request.wire
  for (const hop of request.hops) {
    locality.bytes += hop.bytes
    const elsewhere = hop.zone !== null && hop.zone !== request.gatewayZone
    if (hop.replicable) {
      locality.directReads++
      if (elsewhere) locality.directReadsElsewhere++
    }
    if (elsewhere && !(hop.replicable && request.replicaReads)) {
      crossed = true
      locality.crossedBytes += hop.bytes
    }
  }
  if (crossed) locality.crossedRequests++
}

export const summarizeLocality = (locality: Locality) => ({
  requests: locality.requests,
  requestShare: locality.requests === 0 ? 0 : locality.crossedRequests / locality.requests,
  byteShare: locality.bytes === 0 ? 0 : locality.crossedBytes / locality.bytes,
  directReadShareElsewhere: locality.directReads === 0 ? 0 : locality.directReadsElsewhere / locality.directReads
})

const log = (line: string) => process.stderr.write(`${line}\n`)
const round = (x: number, digits = 3) => Number(x.toFixed(digits))
const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis))

interface Server {
  readonly child: ChildProcess
  readonly port: number
  readonly redis: Redis
}

const startRedis = async (dir: string, extra: ReadonlyArray<string>): Promise<Server> => {
  const port = await freePort()
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, ...extra],
    { stdio: "ignore" }
  )
  const redis = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 100 })
  redis.on("error", () => undefined)
  const deadline = Date.now() + 15_000
  for (;;) {
    try {
      await redis.connect().catch(() => undefined)
      if ((await redis.ping()) === "PONG") return { child, port, redis }
    } catch {
      if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not start (is redis-server installed?)`)
      await sleep(100)
    }
  }
}

/** The `{path="gateway"}` same/cross-zone direct-read counters of a runner. */
const gatewayZoneCounters = async (node: RunnerProcess) => {
  const text = await (await fetch(`${node.url}/metrics`)).text()
  const read = (name: string) => {
    const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes('path="gateway"'))
    return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1))
  }
  return {
    same: read("tessera_graph_same_zone_requests_total"),
    cross: read("tessera_graph_cross_zone_requests_total")
  }
}

type Phase =
  | "baseline"
  | "hints + zone routing"
  | "hints + zone routing + zone replicas"
  | "no hints + zone routing + zone replicas"

export const run = async (args: ReadonlyArray<string>): Promise<void> => {
  const { values } = parseArgs({
    args: [...args],
    options: {
      json: { type: "boolean" },
      zones: { type: "string" },
      vertices: { type: "string" },
      communities: { type: "string" },
      degree: { type: "string" },
      "in-community": { type: "string" },
      seconds: { type: "string" },
      concurrency: { type: "string" },
      batch: { type: "string" },
      "no-replicas": { type: "boolean" }
    },
    strict: true
  })
  const zoneCount = Number(values.zones ?? 3)
  if (!Number.isInteger(zoneCount) || zoneCount < 2 || zoneCount > 6) throw new Error("--zones takes 2 to 6")
  const zones = ["a", "b", "c", "d", "e", "f"].slice(0, zoneCount)
  const vertices = Number(values.vertices ?? 30_000)
  const communities = Number(values.communities ?? 48)
  const degree = Number(values.degree ?? 8)
  const inCommunity = Number(values["in-community"] ?? 0.9)
  const seconds = Number(values.seconds ?? 10)
  const concurrency = Number(values.concurrency ?? 8)
  const batch = Number(values.batch ?? 8)
  const replicas = values["no-replicas"] !== true
  if (!(inCommunity >= 0 && inCommunity <= 1)) throw new Error("--in-community takes a share in [0, 1]")
  if (communities < zoneCount) throw new Error("--communities must be at least --zones")

  const dir = mkdtempSync(join(tmpdir(), "tessera-zones-"))
  const servers: Array<Server> = []
  const runners: Array<RunnerProcess> = []
  const database = freshDatabase("bench_zones")
  const cold = tempDataDir()
  const transports: Array<Transport> = []
  try {
    const primary = await startRedis(dir, [])
    servers.push(primary)
    const replicaOf = new Map<string, Server>()
    if (replicas) {
      for (const zone of zones) {
        const replica = await startRedis(dir, ["--replicaof", "127.0.0.1", String(primary.port)])
        servers.push(replica)
        replicaOf.set(zone, replica)
      }
    }
    const prefix = "g"
    const keys = Array.from({ length: PARTITIONS }, (_, p) => partitionKeys(prefix, p))
    const model = stochasticBlockModel({ vertices, communities, degree, inCommunity, seed: 42 })
    const hinted = Array.from({ length: vertices }, (_, i) => `{k${model.community[i]}}v${i}`)
    const plain = Array.from({ length: vertices }, (_, i) => `v${i}`)
    const started = performance.now()
    for (const ids of [hinted, plain]) {
      let pipeline = primary.redis.pipeline()
      for (let i = 0; i < vertices; i++) {
        const k = keys[vertexPartition(ids[i], PARTITIONS)]
        pipeline.set(k.vertex(ids[i]), `{"n":${i},"c":${model.community[i]},"name":"vertex ${i}"}`)
        pipeline.sadd(k.ids, ids[i])
        for (let j = 0; j < degree; j++)
          pipeline.sadd(k.out(ids[i]), edgeMember("knows", ids[model.targets[i * degree + j]]))
        if ((i & 1023) === 1023) {
          await pipeline.exec()
          pipeline = primary.redis.pipeline()
        }
      }
      await pipeline.exec()
    }
    if (replicas) await primary.redis.wait(zoneCount, 30_000)
    log(
      `loaded ${vertices} vertices x2 (hinted, plain), ${vertices * degree} edges each, in ${round((performance.now() - started) / 1000, 1)} s`
    )

    for (const zone of zones) {
      runners.push(
        await startProcess(`zone-${zone}`, {
          env: {
            DATABASE_URL: database.url,
            REDIS_URL: `redis://127.0.0.1:${primary.port}`,
            ...(replicas ? { TESSERA_VALKEY_REPLICA_URL: `redis://127.0.0.1:${replicaOf.get(zone)?.port}` } : {}),
            TESSERA_ZONE: zone,
            TESSERA_GRAPH_ZONES: zones.join(","),
            TESSERA_STANDBY_PORT: String(await freePort()),
            TESSERA_GRAPH_PREFIX: prefix,
            TESSERA_GRAPH_COLD: cold.dir,
            TESSERA_GRAPH_PARTITIONS: String(PARTITIONS)
          }
        })
      )
      log(`runner in zone ${zone}: ${runners.at(-1)?.url}`)
    }

    // The routing table, once every gateway has announced itself (with a fresh replica when there are replicas).
    let table: RoutingTable | undefined
    const deadline = Date.now() + 60_000
    for (;;) {
      const answer = await fetch(`${runners[0].url}/rpc`, {
        method: "POST",
        headers: { "content-type": "application/ndjson" },
        body: `${JSON.stringify({ _tag: "Request", id: "1", tag: "Graph.Routing", payload: null, headers: [] })}\n`
      })
      const line = (await answer.text()).split("\n").find((l) => l.includes('"Exit"'))
      const exit = line === undefined ? undefined : (JSON.parse(line) as { exit?: { value?: RoutingTable } }).exit
      table = exit?.value
      const ready =
        table !== undefined &&
        table.gateways.length === zoneCount &&
        (!replicas || table.gateways.every((g) => g.replica))
      if (ready) break
      if (Date.now() > deadline) throw new Error(`the routing table never listed every gateway: ${line}`)
      await sleep(500)
    }
    const routing = table as RoutingTable
    const gatewayOfZone = new Map(zones.map((zone) => [zone, gatewayIn(routing, zone)?.url ?? ""]))
    // One WebSocket from each zone's clients to each gateway.
    const socket = new Map<string, Transport>()
    for (const clientZone of zones) {
      for (const gateway of routing.gateways) {
        const t = await rawTransport(`${gateway.url.replace(/^http/, "ws")}/rpc`)
        transports.push(t)
        socket.set(`${clientZone}|${gateway.zone}`, t)
      }
    }

    const homeZone = (c: number) => preferredZone(vertexPartition(`{k${c}}x`, PARTITIONS), zones) as string
    const owned = new Map(zones.map((zone) => [zone, [] as Array<number>]))
    for (let c = 0; c < communities; c++) owned.get(homeZone(c))?.push(c)
    const zoneOfId = (id: string) => routing.zones[vertexPartition(id, PARTITIONS)] ?? null

    const runPhase = async (phase: Phase, phaseSeconds: number, measure: boolean) => {
      const ids = phase.startsWith("hints") ? hinted : plain
      const routed = phase !== "baseline"
      const replicaReads = phase.endsWith("zone replicas")
      const locality = makeLocality()
      const random = rng(phase.length * 7919 + (measure ? 1 : 2))
      let failures = 0
      let firstFailure: string | undefined
      const end = performance.now() + phaseSeconds * 1000
      const worker = (clientZone: string) =>
        new Promise<void>((resolve) => {
          const mine = owned.get(clientZone) ?? []
          const next = () => {
            if (performance.now() >= end || mine.length === 0) return resolve()
            const own = mine[Math.floor(random() * mine.length)]
            let c = own
            if (random() >= inCommunity) {
              c = Math.floor(random() * (communities - 1))
              if (c >= own) c++
            }
            const pool = model.members[c]
            const pick = () => ids[pool[Math.floor(random() * pool.length)]]
            const roll = random()
            const read = roll < 0.9
            const requestIds = roll < 0.45 ? Array.from({ length: batch }, pick) : [pick()]
            const zone = routed
              ? (zoneForRequest(routing, requestIds, { ownZone: clientZone, read, localReplicaReads: replicaReads }) ??
                clientZone)
              : clientZone
            const gatewayZone = gatewayOfZone.get(zone) === "" ? clientZone : zone
            const transport = socket.get(`${clientZone}|${gatewayZone}`) as Transport
            const done = (hops: (value: unknown, bytes: WireBytes) => ReadonlyArray<DataHop>) => ({
              ok: (value: unknown, bytes?: WireBytes) => {
                const wire = bytes ?? { sent: 0, received: 0 }
                if (measure)
                  recordRequest(locality, {
                    clientZone,
                    gatewayZone,
                    wire: wire.sent + wire.received,
                    hops: hops(value, wire),
                    replicaReads
                  })
                next()
              },
              failed: (reason: string) => {
                failures++
                firstFailure ??= reason
                next()
              }
            })
            if (roll < 0.45) {
              const { ok, failed } = done((value) =>
                requestIds.map((id, i) => ({
                  zone: zoneOfId(id),
                  bytes: id.length + 10 + JSON.stringify((value as ReadonlyArray<unknown>)[i] ?? null).length,
                  replicable: true
                }))
              )
              transport.call("Graph.BatchGet", { ids: requestIds }, ok, failed)
            } else if (read) {
              const { ok, failed } = done((_value, wire) => [
                { zone: zoneOfId(requestIds[0]), bytes: wire.received, replicable: true }
              ])
              transport.call("Graph.Neighbors", { id: requestIds[0] }, ok, failed)
            } else {
              const id = requestIds[0]
              const { ok, failed } = done((_value, wire) => [
                { zone: zoneOfId(id), bytes: wire.sent, replicable: false }
              ])
              transport.call(
                "ProxyPartition.PutVertex",
                {
                  entityId: String(vertexPartition(id, PARTITIONS)),
                  payload: { id, properties: { n: 0, name: id, updated: Date.now() } }
                },
                ok,
                failed
              )
            }
          }
          next()
        })
      const before = measure ? await Promise.all(runners.map(gatewayZoneCounters)) : []
      await Promise.all(zones.flatMap((zone) => Array.from({ length: concurrency }, () => worker(zone))))
      if (!measure) return undefined
      // Gateways add their direct reads to the counters once a second.
      await sleep(1500)
      const after = await Promise.all(runners.map(gatewayZoneCounters))
      let same = 0
      let cross = 0
      for (let r = 0; r < runners.length; r++) {
        same += after[r].same - before[r].same
        cross += after[r].cross - before[r].cross
      }
      const summary = summarizeLocality(locality)
      log(
        `${phase}: ${summary.requests} requests, ${round(100 * summary.requestShare, 1)}% crossed zones, ${round(100 * summary.byteShare, 1)}% of bytes`
      )
      return {
        ...summary,
        failures,
        firstFailure,
        serverDirectReadShareElsewhere: same + cross === 0 ? 0 : cross / (same + cross)
      }
    }

    const phases: Array<Phase> = replicas
      ? [
          "baseline",
          "hints + zone routing",
          "hints + zone routing + zone replicas",
          "no hints + zone routing + zone replicas"
        ]
      : ["baseline", "hints + zone routing"]
    const results: Array<[Phase, NonNullable<Awaited<ReturnType<typeof runPhase>>>]> = []
    for (const phase of phases) {
      await runPhase(phase, 3, false)
      const result = await runPhase(phase, seconds, true)
      if (result !== undefined) results.push([phase, result])
    }
    const of = (phase: Phase) => results.find(([p]) => p === phase)?.[1]
    const best = of("hints + zone routing + zone replicas") ?? of("hints + zone routing")
    const baseline = of("baseline")
    const json = {
      bench: "proxy-zones",
      zones: zoneCount,
      vertices,
      communities,
      degree,
      in_community: inCommunity,
      batch,
      seconds,
      replicas,
      cross_zone_requests: best === undefined ? null : round(best.requestShare, 4),
      cross_zone_bytes: best === undefined ? null : round(best.byteShare, 4),
      cross_zone_requests_without_hints: baseline === undefined ? null : round(baseline.requestShare, 4),
      cross_zone_bytes_without_hints: baseline === undefined ? null : round(baseline.byteShare, 4),
      phases: Object.fromEntries(
        results.map(([phase, r]) => [
          phase,
          {
            requests: r.requests,
            failures: r.failures,
            cross_zone_requests: round(r.requestShare, 4),
            cross_zone_bytes: round(r.byteShare, 4),
            direct_reads_elsewhere: round(r.directReadShareElsewhere, 4),
            gateway_counted_direct_reads_elsewhere: round(r.serverDirectReadShareElsewhere, 4)
          }
        ])
      )
    }
    const rows: Array<[string, string]> = [
      [
        "graph",
        `stochastic block model: ${vertices} vertices, ${communities} communities, ${degree} out-edges each, ${round(100 * inCommunity, 1)}% inside the community`
      ],
      [
        "cluster",
        `${zoneCount} runners (zones ${zones.join(", ")}), ${PARTITIONS} partitions (p -> zone p mod ${zoneCount}), ${replicas ? "a Valkey replica per zone" : "no replicas"}`
      ],
      [
        "mix",
        `45% Graph.BatchGet(${batch}) / 45% Graph.Neighbors / 10% PutVertex, ${round(100 * inCommunity, 1)}% of requests on the client's own community; ${concurrency} in flight per zone, ${seconds} s a phase`
      ],
      ...results.map(
        ([phase, r]) =>
          [
            phase,
            `${round(100 * r.requestShare, 2)}% of requests and ${round(100 * r.byteShare, 2)}% of bytes crossed zones (${r.requests} requests, failures ${r.failures}); direct reads of another zone's partitions ${round(100 * r.directReadShareElsewhere, 1)}% (gateways counted ${round(100 * r.serverDirectReadShareElsewhere, 1)}%)`
          ] as [string, string]
      )
    ]
    for (const [name, value] of rows) process.stdout.write(`${name.padEnd(40)} ${value}\n`)
    for (const [phase, r] of results)
      if (r.firstFailure !== undefined) log(`${phase}: first failure: ${r.firstFailure}`)
    if (values.json === true) process.stdout.write(`${JSON.stringify(json)}\n`)
  } finally {
    for (const t of transports) t.close()
    for (const runner of runners) runner.child.kill("SIGTERM")
    await Promise.all(
      runners.map(
        (runner) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => runner.child.kill("SIGKILL"), 5000)
            void runner.exited.then(() => {
              clearTimeout(timer)
              resolve()
            })
          })
      )
    )
    for (const server of servers) {
      server.redis.disconnect()
      server.child.kill("SIGKILL")
    }
    database.drop()
    cold.remove()
    rmSync(dir, { recursive: true, force: true })
  }
}
