/**
 * The one-way dependency rule (.dependency-cruiser.cjs) on a planted tree: a temporary folder laid out like the
 * repository, with workspace symlinks in node_modules/@tessera, one violation of every rule, and imports that the
 * rules allow. depcruise runs there with the repository's config, as `npm run lint` runs it here.
 */
import { execFile } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const depcruise = path.join(root, "node_modules", "dependency-cruiser", "bin", "dependency-cruiser.mjs")
const config = path.join(root, ".dependency-cruiser.cjs")

const files: Record<string, string> = {
  // workspace packages: exports "./*" as in the repository
  "packages/contracts/package.json": `{"name":"@tessera/contracts","type":"module","exports":{"./*":"./src/*.ts"}}`,
  "packages/client/package.json": `{"name":"@tessera/client","type":"module","exports":{"./*":"./src/*.ts"}}`,
  "packages/platform/package.json": `{"name":"@tessera/platform","type":"module","exports":{"./*":"./src/*.ts"}}`,
  "packages/testing/package.json": `{"name":"@tessera/testing","type":"module","exports":{"./*":"./src/*.ts"}}`,
  "runtime/package.json": `{"name":"@tessera/runtime","type":"module","exports":{"./*":"./*.ts"}}`,
  "node_modules/effect/package.json": `{"name":"effect","type":"module","exports":{".":"./index.js"}}`,
  "node_modules/effect/index.js": "export const Effect = {}\n",
  "node_modules/ioredis/package.json": `{"name":"ioredis","type":"module","exports":{".":"./index.js"}}`,
  "node_modules/ioredis/index.js": "export const Redis = {}\n",

  // allowed
  "packages/contracts/src/Contract.ts": `import { readFileSync } from "node:fs"\nimport { Effect } from "effect"\nexport const c = [readFileSync, Effect]\n`,
  "packages/platform/src/Valkey.ts": `import { Redis } from "ioredis"\nimport { c } from "@tessera/contracts/Contract"\nexport const v = [Redis, c]\n`,
  "packages/platform/src/Valkey.test.ts": `import "../../../test/helper.ts"\n`,
  "packages/client/src/TesseraClient.ts": `import { c } from "@tessera/contracts/Contract"\nexport const t = c\n`,
  "packages/testing/src/TesseraTest.ts": `import { v } from "@tessera/platform/Valkey"\nexport const tt = v\n`,
  "packages/testing/src/TesseraTest.test.ts": `import "../../../actors/probe/entity.ts"\n`,
  "runtime/config.ts": `import { v } from "@tessera/platform/Valkey"\nexport const config = v\n`,
  "actors/probe/entity.ts": `import { v } from "@tessera/platform/Valkey"\nexport const e = v\n`,
  "actors/probe/entity.test.ts": `import "@tessera/runtime/config"\nimport "../../test/helper.ts"\n`,
  "test/helper.ts": `import "../actors/probe/entity.ts"\n`,
  "app/main.ts": `import "../actors/probe/entity.ts"\nimport "@tessera/runtime/config"\n`,
  "bench/main.ts": `import "../test/helper.ts"\nimport "./tps.ts"\n`,
  "bench/tps.ts": "export const tps = 1\n",

  // one violation of each rule
  "runtime/cycleA.ts": `import "./cycleB.ts"\n`,
  "runtime/cycleB.ts": `import "./cycleA.ts"\n`,
  "packages/contracts/src/Bad.ts": `import { Redis } from "ioredis"\nexport const b = Redis\n`,
  "packages/platform/src/Bad.ts": `import "@tessera/client/TesseraClient"\n`,
  "packages/client/src/Bad.ts": `import "@tessera/runtime/config"\n`,
  "packages/client/src/BadActor.ts": `import "../../../actors/probe/entity.ts"\n`,
  "packages/testing/src/Bad.ts": `import "ioredis"\n`,
  "runtime/Bad.ts": `import "../actors/probe/entity.ts"\n`,
  "runtime/Bad.test.ts": `import "../actors/probe/entity.ts"\n`,
  "actors/probe/Bad.ts": `import "@tessera/runtime/config"\n`,
  "actors/probe/BadHelper.ts": `import "../../test/helper.ts"\n`,
  "test/Bad.ts": `import "../app/main.ts"\n`,
  "test/BadBench.ts": `import "../bench/tps.ts"\n`,
  "actors/probe/Unresolved.ts": `import "./missing.ts"\n`
}

const expected = [
  "actors-not-on-host: actors/probe/Bad.ts -> runtime/config.ts",
  "client-only-contracts: packages/client/src/Bad.ts -> runtime/config.ts",
  "client-only-contracts: packages/client/src/BadActor.ts -> actors/probe/entity.ts",
  "contracts-only-effect: packages/contracts/src/Bad.ts -> node_modules/ioredis/index.js",
  "no-circular: runtime/cycleA.ts -> runtime/cycleB.ts",
  "no-test-code-in-source: actors/probe/BadHelper.ts -> test/helper.ts",
  "not-to-unresolvable: actors/probe/Unresolved.ts -> ./missing.ts",
  "nothing-imports-app: test/Bad.ts -> app/main.ts",
  "nothing-imports-bench: test/BadBench.ts -> bench/tps.ts",
  "packages-not-on-actors: packages/client/src/BadActor.ts -> actors/probe/entity.ts",
  "packages-not-upward: packages/client/src/Bad.ts -> runtime/config.ts",
  "platform-not-upward: packages/platform/src/Bad.ts -> packages/client/src/TesseraClient.ts",
  "runtime-names-no-actor: runtime/Bad.test.ts -> actors/probe/entity.ts",
  "runtime-names-no-actor: runtime/Bad.ts -> actors/probe/entity.ts",
  "testing-only-contracts-platform: packages/testing/src/Bad.ts -> node_modules/ioredis/index.js"
]

let dir = ""

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), "tessera-depcruise-"))
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true })
    writeFileSync(path.join(dir, file), text)
  }
  // the workspace symlinks npm makes
  mkdirSync(path.join(dir, "node_modules", "@tessera"))
  for (const [name, target] of [
    ["contracts", "../../packages/contracts"],
    ["platform", "../../packages/platform"],
    ["client", "../../packages/client"],
    ["testing", "../../packages/testing"],
    ["runtime", "../../runtime"]
  ]) {
    symlinkSync(target, path.join(dir, "node_modules", "@tessera", name), "dir")
  }
})

afterAll(() => {
  if (dir !== "") rmSync(dir, { recursive: true, force: true })
})

interface Violation {
  readonly rule: { readonly name: string }
  readonly from: string
  readonly to: string
}

describe("the dependency rule (.dependency-cruiser.cjs)", () => {
  it("catches one violation of each rule in a planted tree, bare @tessera/* imports included, and only those", async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [depcruise, "--config", config, "--output-type", "json", "packages", "runtime", "actors", "app", "bench", "test"],
      { cwd: dir, maxBuffer: 16 * 1024 * 1024 }
    ).catch((error: { stdout?: string; stderr?: string }) => {
      // depcruise exits non-zero when it finds violations; anything else (no JSON on stdout) is a failure
      if (!error.stdout?.startsWith("{")) throw new Error(`depcruise failed: ${error.stderr ?? String(error)}`)
      return { stdout: error.stdout }
    })
    const result = JSON.parse(stdout) as { summary: { violations: ReadonlyArray<Violation> } }
    const found = [...new Set(result.summary.violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`))].sort()
    assert.deepStrictEqual(found, expected)
  })
})
