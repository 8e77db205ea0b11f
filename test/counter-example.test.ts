// The counter example (examples/counter) as a user runs it: its 5-line main.ts started as a process, messaged over
// HTTP and WebSocket by a client typed by its contract alone, its state kept across restarts (embedded SQLite and
// Postgres), and the same entry under Deno.
import { join } from "node:path"
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as TesseraClient from "@tessera/client/TesseraClient"
import { Contract } from "@tessera/contracts"
import { Effect } from "effect"
import { CounterContract } from "../examples/counter/protocol.ts"
import { freshDatabase, type RunnerProcess, repoRoot, type StartOptions, startProcess, tempDataDir } from "./harness.ts"
import { parse, value } from "./promText.ts"

const api = Contract.api(CounterContract)
const entryPath = "examples/counter/main.ts"
const deno = { bin: join(repoRoot, "node_modules", ".bin", "deno"), args: ["run", "-A"] }
const started: Array<RunnerProcess> = []
const cleanups: Array<() => void> = []

afterAll(async () => {
  for (const node of started) node.child.kill("SIGKILL")
  await Promise.all(started.map((node) => node.exited))
  for (const cleanup of cleanups) cleanup()
})

const start = async (name: string, env: Record<string, string>, command?: StartOptions["command"]) => {
  const node = await startProcess(name, { entryPath, env, command, timeoutMs: 90_000 })
  started.push(node)
  return node
}

/** SIGINT, as a user's Ctrl-C: the node drains and exits 0. */
const stop = async (node: RunnerProcess) => {
  node.child.kill("SIGINT")
  assert.strictEqual(await node.exited, 0, node.output())
}

const withClient = <A, E>(
  url: string,
  transport: "http" | "websocket",
  f: (client: TesseraClient.Client<typeof api>) => Effect.Effect<A, E>
) => Effect.runPromise(Effect.scoped(Effect.flatMap(TesseraClient.make(api, { url, transport }), f)))

const increment = (url: string, transport: "http" | "websocket", entityId: string, by: number) =>
  withClient(url, transport, (client) => client["Counter.Increment"]({ entityId, payload: { by } }))

const get = (url: string, entityId: string) =>
  withClient(url, "http", (client) => client["Counter.Get"]({ entityId, payload: undefined }))

describe("examples/counter as a process", () => {
  it("serves the counter over HTTP and WebSocket, reports it, refuses bad ids, keeps the count across a restart", async () => {
    const data = tempDataDir()
    cleanups.push(data.remove)
    const env = { TESSERA_DATA: data.dir }
    const first = await start("counter", env)

    const status = await withClient(first.url, "http", (client) => client.Status())
    assert.strictEqual(status.mode, "single")
    assert.deepInclude(status.modules, { name: "counter", entityTypes: ["Counter"], rpcs: [] })

    assert.strictEqual(await increment(first.url, "http", "c-1", 2), 2)
    assert.strictEqual(await increment(first.url, "websocket", "c-1", 3), 5)
    assert.strictEqual(await increment(first.url, "websocket", "c-2", -4), -4)
    assert.strictEqual(await get(first.url, "c-1"), 5)

    const refused = await withClient(first.url, "http", (client) =>
      Effect.flip(client["Counter.Increment"]({ entityId: "Not_A_Counter", payload: { by: 1 } }))
    )
    assert.strictEqual(refused._tag, "InvalidEntityId")
    assert.strictEqual((refused as Contract.InvalidEntityId).entityType, "Counter")

    const samples = parse(await (await fetch(`${first.url}/metrics`)).text())
    assert.strictEqual(value(samples, "effect_cluster_entities", { type: "Counter" }), 2)
    const live = (await (await fetch(`${first.url}/status/live`)).json()) as {
      entities: Array<{ type: string; count: number }>
    }
    assert.deepInclude(live.entities, { type: "Counter", count: 2 })

    await stop(first)
    const second = await start("counter-again", env)
    assert.strictEqual(await get(second.url, "c-1"), 5, "the count is read back from the counters table")
    assert.strictEqual(await increment(second.url, "websocket", "c-2", 1), -3)
    await stop(second)
  }, 90_000)

  it("keeps the count on Postgres too (DATABASE_URL: the same SQL, a cluster runner)", async () => {
    const db = freshDatabase("counter")
    cleanups.push(db.drop)
    const env = { DATABASE_URL: db.url }
    const first = await start("counter-pg", env)
    const status = await withClient(first.url, "http", (client) => client.Status())
    assert.strictEqual(status.mode, "runner")
    assert.strictEqual(await increment(first.url, "http", "pg-1", 7), 7)
    assert.strictEqual(await increment(first.url, "websocket", "pg-1", 1), 8)
    await stop(first)
    const second = await start("counter-pg-again", env)
    assert.strictEqual(await get(second.url, "pg-1"), 8)
    await stop(second)
    assert.strictEqual(db.query("SELECT value FROM counters WHERE id = 'pg-1'"), "8")
  }, 90_000)

  it("runs the same entry under Deno 2", async () => {
    const data = tempDataDir()
    cleanups.push(data.remove)
    const node = await start("counter-deno", { TESSERA_DATA: data.dir }, deno)
    assert.strictEqual(await increment(node.url, "http", "d-1", 4), 4)
    assert.strictEqual(await increment(node.url, "websocket", "d-1", 1), 5)
    assert.strictEqual(await get(node.url, "d-1"), 5)
    await stop(node)
  }, 120_000)
})
