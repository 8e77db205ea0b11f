import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { assert, describe, it } from "vitest"

const root = resolve(import.meta.dirname, "../../..")
const deno = join(root, "node_modules", ".bin", "deno")

describe("SqliteClient under Deno", () => {
  it("runs statements, transactions, streams and a persisted cluster message", () => {
    const dir = mkdtempSync(join(tmpdir(), "tessera-deno-sqlite-"))
    try {
      const result = spawnSync(
        deno,
        ["run", "-A", "packages/platform/src/internal/sqliteSmoke.ts", join(dir, "data", "tessera.db")],
        { cwd: root, encoding: "utf8", timeout: 60_000 }
      )
      assert.strictEqual(result.status, 0, result.stderr)
      const lines = result.stdout.trim().split("\n")
      assert.deepStrictEqual(JSON.parse(lines[lines.length - 1]), {
        rolledBack: "rollback",
        flag: "1",
        big: "1152921504606846976",
        bytes: [1, 2],
        label: null,
        streamed: 1,
        syntax: "SqlSyntaxError",
        echoed: "hi",
        storedMessages: 1
      })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
