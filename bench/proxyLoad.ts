// The proxy bench's load generator: the read-heavy mix over one or more RPC connections, as a closed loop
// (capacity) or on a fixed schedule (latency at a load), with plain callbacks.
//
// Two transports carry the same requests:
// - `raw` (the default): the gateway's NDJSON RPC wire protocol over a WebSocket, one JSON line per request and
//   a map from request id to callback. The generator shares the two cores with the runner and Redis, so its own
//   cost per request, and the event-loop stalls that cost causes, must stay small beside what it measures.
// - `effect`: `RpcClient.make(TesseraApi)`, the client users write against (a fiber, schema encoding and decoding
//   per request). Slower on the generator's side; it shows what such a client adds.

import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

/** Bytes of one request and of its answer on the wire (the raw transport's JSON lines). */
export interface WireBytes {
  readonly sent: number
  readonly received: number
}

/** What the load needs of a connection: send one request, get its success value or a failure. */
export interface Transport {
  readonly call: (
    tag: string,
    payload: unknown,
    onSuccess: (value: unknown, bytes?: WireBytes) => void,
    onFailure: (reason: string) => void
  ) => void
  readonly close: () => void
}

interface Waiting {
  readonly onSuccess: (value: unknown, bytes?: WireBytes) => void
  readonly sent: number
  readonly onFailure: (reason: string) => void
}

/**
 * A lean client of the gateway's RPC endpoint: requests as `{"_tag":"Request",...}` lines, answers matched by
 * `requestId` from the `Exit` lines (a `Defect` or a closed socket fails everything in flight).
 */
export const rawTransport = async (url: string): Promise<Transport> => {
  const ws = new WebSocket(url)
  ws.binaryType = "arraybuffer"
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener("open", () => resolve(), { once: true })
    ws.addEventListener("error", () => reject(new Error(`cannot open a WebSocket to ${url}`)), { once: true })
  })
  const waiting = new Map<string, Waiting>()
  const decoder = new TextDecoder()
  let nextId = 0
  let partial = ""
  const failAll = (reason: string) => {
    for (const entry of waiting.values()) entry.onFailure(reason)
    waiting.clear()
  }
  const handle = (line: string) => {
    const message = JSON.parse(line) as {
      readonly _tag: string
      readonly requestId?: string
      readonly exit?: { readonly _tag: string; readonly value?: unknown; readonly cause?: unknown }
      readonly defect?: unknown
    }
    if (message._tag === "Exit" && message.requestId !== undefined && message.exit !== undefined) {
      const entry = waiting.get(message.requestId)
      if (entry === undefined) return
      waiting.delete(message.requestId)
      if (message.exit._tag === "Success")
        entry.onSuccess(message.exit.value, { sent: entry.sent, received: line.length + 1 })
      else entry.onFailure(JSON.stringify(message.exit.cause))
    } else if (message._tag === "Defect") failAll(`defect: ${JSON.stringify(message.defect)}`)
  }
  ws.addEventListener("message", (event) => {
    const text = typeof event.data === "string" ? event.data : decoder.decode(event.data as ArrayBuffer)
    let start = 0
    let end = text.indexOf("\n")
    if (end === -1) {
      partial += text
      return
    }
    if (partial.length > 0) {
      handle(partial + text.slice(0, end))
      partial = ""
      start = end + 1
      end = text.indexOf("\n", start)
    }
    while (end !== -1) {
      if (end > start) handle(text.slice(start, end))
      start = end + 1
      end = text.indexOf("\n", start)
    }
    if (start < text.length) partial = text.slice(start)
  })
  ws.addEventListener("close", () => failAll("socket closed"))
  return {
    call: (tag, payload, onSuccess, onFailure) => {
      if (ws.readyState !== WebSocket.OPEN) return onFailure("socket closed")
      const id = String(nextId++)
      const line = `{"_tag":"Request","id":"${id}","tag":"${tag}","payload":${JSON.stringify(payload)},"headers":[]}\n`
      waiting.set(id, { onSuccess, onFailure, sent: line.length })
      ws.send(line)
    },
    close: () => ws.close()
  }
}

/** The few Redis calls the direct transport needs (ioredis's `Redis`). */
export interface DirectRedis {
  readonly mget: (...keys: Array<string>) => Promise<Array<string | null>>
  readonly pipeline: () => DirectPipeline
}

interface DirectPipeline {
  get(key: string): DirectPipeline
  smembers(key: string): DirectPipeline
  set(key: string, value: string): DirectPipeline
  sadd(key: string, member: string): DirectPipeline
  exec(): Promise<Array<[Error | null, unknown]> | null>
}

/**
 * The floor: the same requests sent by the generator straight to Redis with the commands the gateway and the
 * partition issue for them (BatchGet: one MGET and a JSON.parse per value; Neighbors: GET + SMEMBERS;
 * PutVertex: SET + SADD), through `redis` (an ioredis client, as in the runner). No gateway, no RPC, no entity:
 * what the machine gives any client of this Redis at the same schedule, measured in the same run.
 */
export const directTransport = (
  redis: DirectRedis,
  keysOf: (id: string) => {
    readonly vertex: (id: string) => string
    readonly out: (id: string) => string
    readonly ids: string
  }
): Transport => {
  const settle = (
    promise: Promise<unknown>,
    onSuccess: (value: unknown) => void,
    onFailure: (reason: string) => void
  ) => promise.then(onSuccess, (error: unknown) => onFailure(String(error)))
  return {
    call: (tag, payload, onSuccess, onFailure) => {
      if (tag === "Graph.BatchGet") {
        const ids = (payload as { readonly ids: ReadonlyArray<string> }).ids
        const names = new Array<string>(ids.length)
        for (let i = 0; i < ids.length; i++) names[i] = keysOf(ids[i]).vertex(ids[i])
        settle(
          redis.mget(...names).then((values) => values.map((v) => (v === null ? null : JSON.parse(v)))),
          onSuccess,
          onFailure
        )
      } else if (tag === "Graph.Neighbors") {
        const id = (payload as { readonly id: string }).id
        const keys = keysOf(id)
        settle(redis.pipeline().get(keys.vertex(id)).smembers(keys.out(id)).exec(), onSuccess, onFailure)
      } else if (tag === "ProxyPartition.PutVertex") {
        const { id, properties } = (
          payload as { readonly payload: { readonly id: string; readonly properties: unknown } }
        ).payload
        const keys = keysOf(id)
        settle(
          redis.pipeline().set(keys.vertex(id), JSON.stringify(properties)).sadd(keys.ids, id).exec(),
          onSuccess,
          onFailure
        )
      } else onFailure(`the direct transport has no ${tag}`)
    },
    close: () => {}
  }
}

/** Latencies and counts of one measured phase. */
export interface PhaseStats {
  /** Latency of every request from its intended start (open loop: its scheduled time). */
  readonly all: Float64Array
  samples: number
  /** Latency of every request from the moment the generator sent it (the generator's own lag left out). */
  readonly sent: Float64Array
  readonly readLatencies: Float64Array
  readSamples: number
  readonly writeLatencies: Float64Array
  writeSamples: number
  /** Latency of each Graph.BatchGet alone (the read path measured against the echo server's). */
  readonly batchLatencies: Float64Array
  batchSamples: number
  reads: number
  writes: number
  failures: number
  firstFailure: string | undefined
}

export const makeStats = (): PhaseStats => ({
  all: new Float64Array(2_000_000),
  samples: 0,
  sent: new Float64Array(2_000_000),
  readLatencies: new Float64Array(2_000_000),
  readSamples: 0,
  writeLatencies: new Float64Array(500_000),
  writeSamples: 0,
  batchLatencies: new Float64Array(1_000_000),
  batchSamples: 0,
  reads: 0,
  writes: 0,
  failures: 0,
  firstFailure: undefined
})

const percentile = (sorted: Float64Array, q: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]

export const summarize = (stats: PhaseStats, elapsedSeconds: number) => {
  const sorted = stats.all.slice(0, stats.samples).sort()
  const sortedSent = stats.sent.slice(0, stats.samples).sort()
  const sortedReads = stats.readLatencies.slice(0, stats.readSamples).sort()
  const sortedWrites = stats.writeLatencies.slice(0, stats.writeSamples).sort()
  const sortedBatches = stats.batchLatencies.slice(0, stats.batchSamples).sort()
  return {
    requestsPerSecond: stats.samples / elapsedSeconds,
    readsPerSecond: stats.reads / elapsedSeconds,
    writesPerSecond: stats.writes / elapsedSeconds,
    failures: stats.failures,
    firstFailure: stats.firstFailure,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    p999: percentile(sorted, 0.999),
    sentP50: percentile(sortedSent, 0.5),
    sentP99: percentile(sortedSent, 0.99),
    readP50: percentile(sortedReads, 0.5),
    readP99: percentile(sortedReads, 0.99),
    writeP50: percentile(sortedWrites, 0.5),
    writeP99: percentile(sortedWrites, 0.99),
    batchP50: percentile(sortedBatches, 0.5),
    batchP99: percentile(sortedBatches, 0.99)
  }
}

export interface Mix {
  /** A uniform number in [0, 1). */
  readonly random: () => number
  /** A vertex id of the loaded graph. */
  readonly pick: () => string
  /** The partition entity id of a vertex. */
  readonly entityOf: (id: string) => string
  /** Ids per BatchGet. */
  readonly batch: number
  /** Shares of Graph.BatchGet and Graph.Neighbors; the rest is PutVertex (default 0.45 and 0.45). */
  readonly batchGetShare: number
  readonly neighborsShare: number
}

/** Vertices read per request on average: what turns a reads/s target into a request rate. */
export const readsPerRequest = (mix: Mix): number => mix.batchGetShare * mix.batch + mix.neighborsShare

/**
 * Sends one request of the mix (by default 45% Graph.BatchGet of `batch` ids, 45% Graph.Neighbors, 10% PutVertex) and
 * records it into `stats()` (read when it completes, so a phase change drops late answers); `after` runs once it
 * has completed either way.
 */
export const issue = (
  transport: Transport,
  mix: Mix,
  intended: number,
  stats: () => PhaseStats | undefined,
  after: () => void
): void => {
  const roll = mix.random()
  const sentAt = performance.now()
  const record = (reads: number, batch = false) => {
    const s = stats()
    if (s !== undefined) {
      const now = performance.now()
      const ms = now - intended
      if (s.samples < s.all.length) {
        s.sent[s.samples] = now - sentAt
        s.all[s.samples++] = ms
      }
      if (reads < 0) {
        s.writes++
        if (s.writeSamples < s.writeLatencies.length) s.writeLatencies[s.writeSamples++] = ms
      } else {
        s.reads += reads
        if (s.readSamples < s.readLatencies.length) s.readLatencies[s.readSamples++] = ms
        if (batch && s.batchSamples < s.batchLatencies.length) s.batchLatencies[s.batchSamples++] = ms
      }
    }
    after()
  }
  const failed = (reason: string) => {
    const s = stats()
    if (s !== undefined) {
      s.failures++
      s.firstFailure ??= reason
    }
    after()
  }
  if (roll < mix.batchGetShare) {
    const ids = new Array<string>(mix.batch)
    for (let i = 0; i < ids.length; i++) ids[i] = mix.pick()
    transport.call("Graph.BatchGet", { ids }, (found) => record((found as ReadonlyArray<unknown>).length, true), failed)
  } else if (roll < mix.batchGetShare + mix.neighborsShare) {
    transport.call("Graph.Neighbors", { id: mix.pick() }, () => record(1), failed)
  } else {
    const id = mix.pick()
    transport.call(
      "ProxyPartition.PutVertex",
      { entityId: mix.entityOf(id), payload: { id, properties: { n: 0, name: id, updated: Date.now() } } },
      () => record(-1),
      failed
    )
  }
}

/** `concurrency` requests in flight over `transports` (round-robin) until `seconds` have passed. */
export const closedLoop = (
  transports: ReadonlyArray<Transport>,
  mix: Mix,
  concurrency: number,
  seconds: number,
  stats: () => PhaseStats | undefined
): Promise<void> =>
  new Promise((resolve) => {
    const deadline = performance.now() + seconds * 1000
    let running = concurrency
    const worker = (transport: Transport) => {
      const next = () => {
        if (performance.now() >= deadline) {
          if (--running === 0) resolve()
          return
        }
        issue(transport, mix, performance.now(), stats, next)
      }
      return next
    }
    for (let w = 0; w < concurrency; w++) worker(transports[w % transports.length])()
  })

/**
 * Requests start on a fixed schedule, `requestRate` a second for `seconds`, whatever the answers do; each latency
 * counts from its scheduled start, so a stall delays every request behind it (no coordinated omission). The
 * schedule is driven by a 1 ms timer; requests still in flight at the end get up to `drainSeconds`.
 */
export const openLoop = (
  transports: ReadonlyArray<Transport>,
  mix: Mix,
  requestRate: number,
  seconds: number,
  stats: () => PhaseStats | undefined,
  drainSeconds = 30
): Promise<{ readonly outstanding: number }> =>
  new Promise((resolve) => {
    const total = Math.floor(requestRate * seconds)
    const t0 = performance.now()
    let scheduled = 0
    let outstanding = 0
    let finished = false
    const finish = () => {
      if (finished) return
      finished = true
      clearTimeout(drainTimer)
      resolve({ outstanding })
    }
    let drainTimer: ReturnType<typeof setTimeout> | undefined
    const done = () => {
      outstanding--
      if (scheduled >= total && outstanding === 0) finish()
    }
    const tick = () => {
      // Request n is due at n / requestRate: by now, requests 0 .. floor(elapsed * requestRate) are.
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * requestRate) + 1)
      while (scheduled < due) {
        const at = t0 + (scheduled / requestRate) * 1000
        outstanding++
        issue(transports[scheduled % transports.length], mix, at, stats, done)
        scheduled++
      }
      if (scheduled < total) setTimeout(tick, 1)
      else if (outstanding === 0) finish()
      else drainTimer = setTimeout(finish, drainSeconds * 1000)
    }
    tick()
  })

/**
 * `rounds` rounds of one slice per side, the order rotated each round (a b, b a, ...), so the sides sample the same
 * stretch of the run: a box whose load drifts moves them alike, not the one measured last.
 */
export const interleave = async (
  sides: number,
  rounds: number,
  slice: (side: number, round: number) => Promise<void>
): Promise<void> => {
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < sides; k++) await slice((round + k) % sides, round)
  }
}

/** Starts bench/echoServer.ts; resolves with its port once it listens. */
export const startEcho = (): Promise<{ readonly child: ChildProcess; readonly port: number }> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fileURLToPath(new URL("./echoServer.ts", import.meta.url))], {
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`the echo server did not start within 20 s:\n${output}`))
    }, 20_000)
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk
      const ready = /echo ready (\d+)/.exec(output)
      if (ready !== null) {
        clearTimeout(timer)
        resolve({ child, port: Number(ready[1]) })
      }
    })
    child.stderr.on("data", (chunk: Buffer) => {
      output += chunk
    })
    child.once("exit", (code) => {
      clearTimeout(timer)
      reject(new Error(`the echo server exited with ${code}:\n${output}`))
    })
  })
