/**
 * A real Redis Cluster for tests: three `redis-server` primaries on free local ports (slots split by
 * `redis-cli --cluster create`), in a temporary folder removed on `stop`. Needs the Debian `redis-server` package
 * (`.ci/run` installs it); without it, `startRedisCluster` fails saying so.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { mkdtemp, rm } from "node:fs/promises"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"

const run = promisify(execFile)

export interface RedisCluster {
  /** `redis://127.0.0.1:<first node>`: a seed; the client learns the others from it. */
  readonly url: string
  /** Every node as `host:port`. */
  readonly nodes: ReadonlyArray<string>
  readonly ports: ReadonlyArray<number>
  /** Kills the servers and removes their folder. */
  readonly stop: () => Promise<void>
}

const isFree = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const server = createServer()
    server.once("error", () => resolve(false))
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)))
  })

/** Ports p with p and its cluster bus port p + 10000 free. */
const freePorts = async (count: number): Promise<Array<number>> => {
  const ports: Array<number> = []
  while (ports.length < count) {
    const port = 20_000 + Math.floor(Math.random() * 10_000)
    if (ports.includes(port) || ports.includes(port + 10_000) || ports.includes(port - 10_000)) continue
    if ((await isFree(port)) && (await isFree(port + 10_000))) ports.push(port)
  }
  return ports
}

const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis))

const cli = (port: number, ...args: Array<string>) =>
  run("redis-cli", ["-h", "127.0.0.1", "-p", String(port), ...args]).then(({ stdout }) => stdout)

/** Polls until `check` holds, failing with `what` after `millis` (a broken setup, not a slow one). */
const until = async (what: string, millis: number, check: () => Promise<boolean>): Promise<void> => {
  const deadline = Date.now() + millis
  for (;;) {
    if (await check().catch(() => false)) return
    if (Date.now() > deadline) throw new Error(`Redis Cluster test setup: ${what}`)
    await sleep(100)
  }
}

const exited = (child: ChildProcess): Promise<void> =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once("exit", () => resolve()))

export const startRedisCluster = async (size = 3): Promise<RedisCluster> => {
  const dir = await mkdtemp(join(tmpdir(), "tessera-redis-cluster-"))
  const children: Array<ChildProcess> = []
  const stop = async () => {
    for (const child of children) child.kill("SIGKILL")
    await Promise.all(children.map(exited))
    await rm(dir, { recursive: true, force: true })
  }
  try {
    const ports = await freePorts(size)
    for (const port of ports) {
      const child = spawn(
        "redis-server",
        [
          "--port",
          String(port),
          "--bind",
          "127.0.0.1",
          "--cluster-enabled",
          "yes",
          "--cluster-config-file",
          join(dir, `nodes-${port}.conf`),
          "--dir",
          dir,
          "--save",
          "",
          "--appendonly",
          "no",
          "--daemonize",
          "no"
        ],
        { stdio: "ignore" }
      )
      children.push(child)
      const failed = await new Promise<Error | undefined>((resolve) => {
        child.once("error", resolve)
        child.once("spawn", () => resolve(undefined))
      })
      if (failed !== undefined) {
        throw new Error(
          (failed as NodeJS.ErrnoException).code === "ENOENT"
            ? "redis-server is not installed (Debian package redis-server; .ci/run installs it)"
            : `redis-server did not start: ${failed.message}`
        )
      }
    }
    for (const port of ports) {
      await until(`redis-server on port ${port} did not answer PING`, 20_000, async () =>
        (await cli(port, "ping")).includes("PONG")
      )
    }
    const nodes = ports.map((port) => `127.0.0.1:${port}`)
    await run("redis-cli", ["--cluster", "create", ...nodes, "--cluster-replicas", "0", "--cluster-yes"])
    for (const port of ports) {
      await until(`node ${port} did not reach cluster_state:ok`, 30_000, async () =>
        (await cli(port, "cluster", "info")).includes("cluster_state:ok")
      )
    }
    return { url: `redis://${nodes[0]}`, nodes, ports, stop }
  } catch (error) {
    await stop()
    throw error
  }
}
