import { execFile } from "node:child_process"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { promisify } from "node:util"
import { assert, describe, it } from "@effect/vitest"
import { nodeBin, repoRoot, type StartOptions, startProcess, tempDataDir } from "./harness.ts"

const run = promisify(execFile)
const tesseraBin = join(repoRoot, "app/tessera.ts")
const denoBin = join(repoRoot, "node_modules/.bin/deno")

const smoke = async (name: string, command?: StartOptions["command"]) => {
  const data = tempDataDir()
  const node = await startProcess(name, { entry: "main", command, env: { TESSERA_DATA: data.dir } })
  try {
    const health = await fetch(`${node.url}/health`)
    assert.strictEqual(health.status, 200)
    const { stdout } = await run(nodeBin, [tesseraBin, "status", "--url", node.url])
    const status = JSON.parse(stdout)
    assert.strictEqual(status.mode, "single")
    assert.strictEqual(status.runners.length, 1)
    assert.strictEqual(status.runners[0].shards, status.shardsPerGroup)
    const probe = JSON.parse((await run(nodeBin, [tesseraBin, "probe", "p1", "--url", node.url])).stdout)
    assert.strictEqual(probe[0].entityId, "p1")
    assert.isTrue(existsSync(join(data.dir, "tessera.db")), "embedded database file under TESSERA_DATA")

    const stoppedAt = Date.now()
    node.child.kill("SIGINT")
    const code = await node.exited
    assert.strictEqual(code, 0, node.output())
    assert.isBelow(Date.now() - stoppedAt, 10_000, "stops within 10 s of SIGINT")
  } finally {
    node.child.kill("SIGKILL")
    data.remove()
  }
}

describe("embedded single node (no outside services)", () => {
  it("npm start's entry serves /health, tessera status shows one runner, SIGINT exits 0", () => smoke("node"), 60_000)

  it("runs the same under Deno 2", () => smoke("deno", { bin: denoBin, args: ["run", "-A"] }), 90_000)

  it("refuses a bad configuration with a clear error", async () => {
    const data = tempDataDir()
    try {
      const error = await startProcess("bad", {
        entry: "main",
        env: { TESSERA_DATA: data.dir, TESSERA_SHARD_LOCK_EXPIRATION: "soon" }
      }).then(
        () => undefined,
        (e: Error) => e
      )
      assert.isDefined(error)
      assert.include(error!.message, "TESSERA_SHARD_LOCK_EXPIRATION")
    } finally {
      data.remove()
    }
  })
})
