/**
 * `sst.config.ts`, `infra/` and `docker/` typecheck against `@pulumi/aws` v7, `@pulumi/random` and the SST
 * globals in `sst-globals.d.ts` (the root tsconfig excludes them).
 */
import { spawnSync } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { assert, it } from "vitest"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

it("typechecks sst.config.ts and infra/ with infra/tsconfig.json", () => {
  const bin = path.join(root, "node_modules", ".bin")
  const result = spawnSync(path.join(bin, "tsc"), ["-p", "infra/tsconfig.json", "--noEmit", "--pretty", "false"], {
    cwd: root,
    encoding: "utf8",
    env: { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH ?? ""}` }
  })
  assert.isUndefined(result.error)
  assert.strictEqual(`${result.stdout}${result.stderr}`.trim(), "")
  assert.strictEqual(result.status, 0)
})

it("keeps sst.config.ts a few dozen lines", async () => {
  const { readFile } = await import("node:fs/promises")
  const lines = (await readFile(path.join(root, "sst.config.ts"), "utf8")).trimEnd().split("\n")
  assert.isAtMost(lines.length, 40)
})
