/**
 * Multi-process harness: starts Tessera runner processes on loopback against the real Postgres (a fresh
 * database per cluster) and Redis, waits until each serves, can kill -9 one, and always cleans up.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import * as TesseraClient from "@tessera/client/TesseraClient"
import { defaults as runtimeDefaults } from "@tessera/runtime/config"
import { Duration, Effect, Exit, type Scope } from "effect"
import { SeedApi } from "../actors/api.ts"
import { defaults as shardDefaults } from "../actors/symbol-shard/config.ts"
import { parse } from "./promText.ts"

export const repoRoot = resolve(import.meta.dirname, "..")
export const nodeBin = process.execPath
export const pgAdminUrl = process.env.TESSERA_TEST_PG ?? "postgres://postgres@127.0.0.1:5432/postgres"
export const redisUrl = process.env.TESSERA_TEST_REDIS ?? "redis://127.0.0.1:6379"

/**
 * The overload bounds as a deployment has them: runner processes here get them relaxed (see startProcess), so a
 * bench measuring overload, or a test of these bounds, passes this in its env.
 */
export const productionBounds: Readonly<Record<string, string>> = {
  TESSERA_ADMISSION_TARGET_MS: String(runtimeDefaults.admissionTargetMs),
  TESSERA_SHARD_MAX_QUEUE_DELAY: `${Duration.toMillis(shardDefaults.maxQueueDelay)} millis`
}

/** Binds `port` on loopback and releases it: the port, or undefined when something holds it. */
const tryPort = (port: number): Promise<number | undefined> =>
  new Promise((resolvePort) => {
    const server = createServer()
    server.unref()
    server.once("error", () => resolvePort(undefined))
    server.listen(port, "127.0.0.1", () => {
      const address = server.address()
      const bound = typeof address === "object" && address !== null ? address.port : undefined
      server.close(() => resolvePort(bound))
    })
  })

/**
 * A free TCP port on loopback (bound then released), drawn below Linux's ephemeral range (32768+): a port from
 * `listen(0)` comes from that range, where the outgoing connections of parallel test files (to Postgres, Redis,
 * runners) take ports too, and one took a released port before its runner bound it (EADDRINUSE).
 */
export const freePort = async (): Promise<number> => {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await tryPort(20_000 + Math.floor(Math.random() * 12_768))
    if (port !== undefined) return port
  }
  const any = await tryPort(0)
  if (any === undefined) throw new Error("no free loopback port")
  return any
}

// Audits read every stored order key: past the default 1 MiB of output psql's run fails with ENOBUFS.
const psql = (url: string, sql: string) =>
  execFileSync("psql", [url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql], {
    stdio: ["ignore", "pipe", "pipe"],
    maxBuffer: 512 * 1024 * 1024
  })
    .toString()
    .trim()

/** Creates a fresh, uniquely named database and returns its URL and a dropper. */
export const freshDatabase = (label = "t") => {
  const name = `tessera_${label}_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`
  psql(pgAdminUrl, `CREATE DATABASE ${name}`)
  const url = pgAdminUrl.replace(/\/[^/]*$/, `/${name}`)
  return {
    name,
    url,
    query: (sql: string) => psql(url, sql),
    drop: () => {
      try {
        psql(pgAdminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      } catch {
        // best effort: a leftover test database is harmless
      }
    }
  }
}

/** A fresh database for the scope, dropped when it closes. */
export const scopedDatabase = (label?: string) =>
  Effect.acquireRelease(
    Effect.sync(() => freshDatabase(label)),
    (db) => Effect.sync(() => db.drop())
  )

export interface RunnerProcess {
  readonly name: string
  readonly child: ChildProcess
  readonly url: string
  readonly gatewayPort: number
  readonly runnerPort: number
  readonly output: () => string
  readonly exited: Promise<number | null>
}

const live = new Set<ChildProcess>()
const killAll = () => {
  for (const child of live) child.kill("SIGKILL")
}
process.once("exit", killAll)

export interface StartOptions {
  readonly entry?: "runner" | "main"
  /** An entry file to run instead of `app/<entry>.ts` (e.g. an example's main.ts), absolute or from the repo root. */
  readonly entryPath?: string
  readonly env?: Record<string, string>
  readonly timeoutMs?: number
  /** Working directory of the process (default the repo root). */
  readonly cwd?: string
  /** Command to run instead of node (e.g. deno); gets the entry path as its last argument. */
  readonly command?: { readonly bin: string; readonly args: ReadonlyArray<string> }
}

/** Spawns one node/runner and resolves once it prints `tessera ready <url>`. */
export const startProcess = async (name: string, options: StartOptions = {}): Promise<RunnerProcess> => {
  // A port taken between freePort and the runner's bind (another test file's process) is retried on new ports,
  // unless the caller chose the ports.
  const pinned = options.env?.TESSERA_PORT !== undefined || options.env?.TESSERA_RUNNER_PORT !== undefined
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(name, options)
    } catch (error) {
      if (pinned || attempt >= 3 || !String(error).includes("EADDRINUSE")) throw error
    }
  }
}

const startOnce = async (name: string, options: StartOptions): Promise<RunnerProcess> => {
  const gatewayPort = await freePort()
  const runnerPort = await freePort()
  const entry =
    options.entryPath !== undefined
      ? resolve(repoRoot, options.entryPath)
      : join(repoRoot, "app", `${options.entry ?? "runner"}.ts`)
  const bin = options.command?.bin ?? nodeBin
  const args = [...(options.command?.args ?? []), entry]
  const child = spawn(bin, args, {
    cwd: options.cwd ?? repoRoot,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "/tmp",
      ...(process.env.TESSERA_CHILD_NODE_OPTIONS ? { NODE_OPTIONS: process.env.TESSERA_CHILD_NODE_OPTIONS } : {}),
      TESSERA_HOST: "127.0.0.1",
      TESSERA_RUNNER_HOST: "127.0.0.1",
      TESSERA_PORT: String(gatewayPort),
      TESSERA_RUNNER_PORT: String(runnerPort),
      // Tests send bursts without retrying Overloaded; on a loaded CI box the latency-adapted admission limit would
      // shrink under them. A test of admission sets its own bounds.
      TESSERA_ADMISSION_TARGET_MS: "10000",
      // Likewise a slow write on a loaded box would refuse their places Overloaded: off unless a test sets it.
      TESSERA_SHARD_MAX_QUEUE_DELAY: "0 millis",
      ...options.env
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  live.add(child)
  let output = ""
  const exited = new Promise<number | null>((resolveExit) =>
    child.once("exit", (code, signal) => {
      live.delete(child)
      resolveExit(code ?? (signal ? -1 : null))
    })
  )
  const url = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${name} did not become ready in time:\n${output}`)),
      options.timeoutMs ?? 60_000
    )
    const onData = (chunk: Buffer) => {
      output += chunk.toString()
      const match = /tessera ready (\S+)/.exec(output)
      if (match) {
        clearTimeout(timer)
        resolveUrl(match[1])
      }
    }
    child.stdout!.on("data", onData)
    child.stderr!.on("data", (chunk: Buffer) => {
      output += chunk.toString()
    })
    void exited.then((code) => {
      clearTimeout(timer)
      reject(new Error(`${name} exited with ${code} before it was ready:\n${output}`))
    })
  })
  return { name, child, url, gatewayPort, runnerPort, output: () => output, exited }
}

/** `startProcess` for the scope: the process is killed with -9, and awaited, when the scope closes. */
export const scopedProcess = (name: string, options?: StartOptions) =>
  Effect.acquireRelease(
    Effect.promise(() => startProcess(name, options)),
    (runner) =>
      Effect.promise(async () => {
        runner.child.kill("SIGKILL")
        await runner.exited
      })
  )

export interface Cluster {
  readonly runners: Array<RunnerProcess>
  readonly database: ReturnType<typeof freshDatabase>
  readonly kill9: (runner: RunnerProcess) => Promise<void>
  readonly stop: () => Promise<void>
}

/** Starts `count` runners sharing one fresh Postgres database (and the real Redis). */
export const startCluster = async (
  count: number,
  options: {
    readonly env?: Record<string, string>
    readonly label?: string
    /** Command each runner runs under instead of node (see `StartOptions.command`). */
    readonly command?: StartOptions["command"]
    /** The database URL runner `i` connects with (e.g. through a proxy); default the fresh database's own. */
    readonly databaseUrl?: (i: number, url: string) => string
  } = {}
): Promise<Cluster> => {
  const database = freshDatabase(options.label)
  const runners: Array<RunnerProcess> = []
  const stop = async () => {
    for (const runner of runners) runner.child.kill("SIGKILL")
    await Promise.all(runners.map((runner) => runner.exited))
    database.drop()
  }
  try {
    for (let i = 0; i < count; i++) {
      runners.push(
        await startProcess(`runner-${i}`, {
          env: {
            DATABASE_URL: options.databaseUrl?.(i, database.url) ?? database.url,
            REDIS_URL: redisUrl,
            ...options.env
          },
          command: options.command
        })
      )
    }
  } catch (error) {
    await stop()
    throw error
  }
  return {
    runners,
    database,
    kill9: async (runner) => {
      runner.child.kill("SIGKILL")
      await runner.exited
    },
    stop
  }
}

/** Asks each Probe entity through the gateway at `url` which runner hosts it ("unanswered" after 2 s). */
/** Runs `f` with a client of the gateway at `url` (every seed actor's RPCs), closed when `f` ends. */
export const withClient = <A, E>(
  url: string,
  f: (client: TesseraClient.Client<SeedApi>) => Effect.Effect<A, E, Scope.Scope>
) => Effect.scoped(Effect.flatMap(TesseraClient.make(SeedApi, { url }), f))

export const whereAll = (url: string, entityIds: ReadonlyArray<string>) =>
  withClient(url, (client) =>
    Effect.forEach(
      entityIds,
      (entityId) =>
        client["Probe.Where"]({ entityId, payload: {} }).pipe(
          Effect.map((reply) => reply.runner),
          Effect.timeout("2 seconds"),
          Effect.orElseSucceed(() => "unanswered")
        ),
      { concurrency: 8 }
    )
  )

/** A temporary data folder for embedded nodes. */
export const tempDataDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "tessera-"))
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) }
}

/** Sends one raw ndjson RPC request to a gateway and returns the HTTP status and parsed response lines. */
export const rawRpc = async (url: string, body: string, headers: Record<string, string> = {}) => {
  const response = await fetch(`${url}/rpc`, { method: "POST", body, headers })
  const text = await response.text()
  const lines = text
    .split("\n")
    .filter((line) => line.length > 0)
    .map((line) => {
      try {
        return JSON.parse(line)
      } catch {
        return line
      }
    })
  return { status: response.status, lines, text }
}

/** Runs the `tessera` CLI in process (no environment); its exit code, stdout and stderr. */
export const runCli = async (args: ReadonlyArray<string>) => {
  const { PassThrough } = await import("node:stream")
  const { main } = await import("@tessera/client/cli")
  const { seedCli } = await import("../actors/cli.ts")
  let out = ""
  let err = ""
  const stdout = new PassThrough().on("data", (chunk: Buffer) => {
    out += chunk
  })
  const stderr = new PassThrough().on("data", (chunk: Buffer) => {
    err += chunk
  })
  const code = await main(args, { stdin: new PassThrough(), stdout, stderr, env: {} }, seedCli)
  return { code, out, err }
}

export const rpcRequest = (id: string, tag: string, payload: unknown) =>
  `${JSON.stringify({ _tag: "Request", id, tag, payload, headers: [] })}\n`

/**
 * A TCP proxy in front of a server (e.g. Postgres) whose traffic can be frozen: while paused, bytes are held
 * (connections stay open, queries hang) — the "storage hangs" fault that timeouts must handle.
 */
export const pausableProxy = async (target: { readonly host: string; readonly port: number }) => {
  const { createConnection, createServer: createTcpServer } = await import("node:net")
  let paused = false
  const flushers = new Set<() => void>()
  const sockets = new Set<import("node:net").Socket>()
  const server = createTcpServer((client) => {
    const upstream = createConnection(target)
    sockets.add(client)
    sockets.add(upstream)
    const held: Array<[import("node:net").Socket, Buffer]> = []
    const forward = (to: import("node:net").Socket) => (chunk: Buffer) => {
      if (paused) held.push([to, chunk])
      else to.write(chunk)
    }
    const flush = () => {
      for (const [to, chunk] of held.splice(0)) to.write(chunk)
    }
    flushers.add(flush)
    client.on("data", forward(upstream))
    upstream.on("data", forward(client))
    const close = () => {
      flushers.delete(flush)
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on("close", close)
    upstream.on("close", close)
    client.on("error", close)
    upstream.on("error", close)
  })
  await new Promise<void>((resolveListen) => server.listen(0, "127.0.0.1", resolveListen))
  const address = server.address()
  const port = typeof address === "object" && address !== null ? address.port : 0
  return {
    port,
    pause: () => {
      paused = true
    },
    resume: () => {
      paused = false
      for (const flush of flushers) flush()
    },
    /** Closes every connection through the proxy (both sides), as a network partition that resets them does. */
    cut: () => {
      for (const socket of sockets) socket.destroy()
    },
    close: () =>
      new Promise<void>((resolveClose) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolveClose())
      })
  }
}

/** Deletes every key under `prefix:` in the shared test Redis (tests write under their own prefixes). */
export const deleteRedisKeys = async (prefix: string) => {
  const { Redis } = await import("ioredis")
  const redis = new Redis(redisUrl)
  try {
    let cursor = "0"
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000)
      if (keys.length > 0) await redis.unlink(...keys)
      cursor = next
    } while (cursor !== "0")
  } finally {
    redis.disconnect()
  }
}

/** Local ports of a process's connections to PostgreSQL (`ss` shows the owning pid), to cut them. */
export const postgresPortsOf = (pid: number): Array<number> =>
  execFileSync("ss", ["-tnpH", "state", "established", "dst", "127.0.0.1:5432"], { encoding: "utf8" })
    .split("\n")
    .filter((line) => line.includes(`pid=${pid},`))
    .map((line) => Number(line.trim().split(/\s+/)[2].split(":").pop()))

/** A runner's refused stale-owner writes of symbol shards, read from its `/metrics` (2 s deadline). */
export const staleWrites = async (url: string): Promise<number> => {
  const samples = parse(await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(2000) })).text())
  return samples
    .filter((s) => s.name === "tessera_symbol_stale_owner_writes_total")
    .reduce((sum, s) => sum + s.value, 0)
}

/** A runner's admission state from its `/metrics`: weight in flight now and its adaptive limit (2 s deadline). */
export const admissionOf = async (url: string) => {
  const samples = parse(await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(2000) })).text())
  const value = (name: string) => samples.find((s) => s.name === name)?.value ?? null
  return { in_flight: value("tessera_gateway_admitted_weight"), limit: value("tessera_gateway_admission_limit") }
}

/**
 * One runner process whose PostgreSQL traffic goes through a pausable proxy (black-hole storage with `pg.pause()`),
 * on a fresh database, all released with the scope.
 */
export const runnerBehindPausablePg = (label: string, env: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const db = yield* scopedDatabase(label)
    const pg = yield* Effect.acquireRelease(
      Effect.promise(() => pausableProxy({ host: "127.0.0.1", port: 5432 })),
      (p) => Effect.promise(() => p.close())
    )
    const runner = yield* scopedProcess(label, {
      env: {
        DATABASE_URL: db.url.replace("127.0.0.1:5432", `127.0.0.1:${pg.port}`),
        REDIS_URL: redisUrl,
        ...env
      }
    })
    return { db, pg, runner }
  })

/** The `_tag` of an exit's typed failure, "success", or "defect" (no typed failure). */
export const tagOf = (exit: Exit.Exit<unknown, unknown>): string => {
  if (Exit.isSuccess(exit)) return "success"
  const failure = exit.cause.reasons.find((r) => r._tag === "Fail")
  return failure?._tag === "Fail" ? String((failure.error as { _tag?: unknown })._tag) : "defect"
}
