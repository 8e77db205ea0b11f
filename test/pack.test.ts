// The packages as a user gets them: `npm run pack`'s tarballs installed into a fresh project outside the repo
// (with effect from the registry or the npm cache), the counter example copied there and compiled with tsc against
// the installed .d.ts, hosted by @tessera/runtime in a child process, messaged by @tessera/client over HTTP and
// WebSocket and by the installed `tessera` CLI, and tested in memory with @tessera/testing.
import { execFile } from "node:child_process"
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { nodeBin, type RunnerProcess, repoRoot, startProcess } from "./harness.ts"

const run = promisify(execFile)
const packages = ["contracts", "platform", "client", "testing", "runtime"] as const
const counterFiles = ["protocol.ts", "entity.ts", "module.ts", "main.ts", "client.ts"]
const typesNodeVersion = JSON.parse(
  readFileSync(join(repoRoot, "node_modules", "@types", "node", "package.json"), "utf8")
).version as string

const work = mkdtempSync(join(tmpdir(), "tessera-pack-"))
const project = join(work, "app")
let node: RunnerProcess | undefined

afterAll(async () => {
  node?.child.kill("SIGKILL")
  await node?.exited
  if (process.env.TESSERA_KEEP_PACK === undefined) rmSync(work, { recursive: true, force: true })
})

const inProject = (file: string, args: ReadonlyArray<string> = [], env: Record<string, string> = {}) =>
  run(nodeBin, [file, ...args], {
    cwd: project,
    timeout: 30_000,
    env: { PATH: process.env.PATH ?? "", HOME: work, ...env }
  })

const files: Record<string, string> = {
  "tsconfig.json": JSON.stringify(
    {
      compilerOptions: {
        target: "ES2024",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        types: ["node"],
        strict: true,
        allowImportingTsExtensions: true,
        verbatimModuleSyntax: true,
        erasableSyntaxOnly: true,
        // The built .d.ts must check too, not only resolve.
        skipLibCheck: false,
        noEmit: true
      },
      include: ["*.ts", "counter"]
    },
    null,
    2
  ),
  // The host of the brief: one embedded node with the counter module.
  "serve.ts": `import * as Node from "@tessera/runtime/node"
import { CounterModule } from "./counter/module.ts"

Node.launch(Node.make("single", [CounterModule]))
`,
  "call.ts": `import * as TesseraClient from "@tessera/client/TesseraClient"
import { Contract } from "@tessera/contracts"
import { Effect } from "effect"
import { CounterContract } from "./counter/protocol.ts"

const api = Contract.api(CounterContract)
const url = process.argv[2]
const program = Effect.gen(function* () {
  const http = yield* TesseraClient.make(api, { url })
  const ws = yield* TesseraClient.make(api, { url, transport: "websocket" })
  const status = yield* http.Status()
  const viaHttp = yield* http["Counter.Increment"]({ entityId: "packed", payload: { by: 2 } })
  const viaWs = yield* ws["Counter.Increment"]({ entityId: "packed", payload: { by: 3 } })
  const got = yield* ws["Counter.Get"]({ entityId: "packed", payload: undefined })
  const refused = yield* Effect.flip(http["Counter.Get"]({ entityId: "NOT OK", payload: undefined }))
  return { modules: status.modules.map((module) => module.name), viaHttp, viaWs, got, refused: refused._tag }
}).pipe(Effect.scoped)

console.log(JSON.stringify(await Effect.runPromise(program)))
`,
  "check.ts": `import { TesseraTest } from "@tessera/testing"
import { Effect } from "effect"
import { CounterModule } from "./counter/module.ts"
import { Counter } from "./counter/protocol.ts"

const program = Effect.gen(function* () {
  const counter = yield* Counter.client
  yield* counter("t-1").Increment({ by: 4 })
  return { t1: yield* counter("t-1").Increment({ by: 1 }), t2: yield* counter("t-2").Get() }
})

console.log(JSON.stringify(await Effect.runPromise(Effect.provide(program, TesseraTest.layerModule(CounterModule)))))
`
}

describe("npm run pack: the packages installed from tarballs into a project outside the repo", () => {
  it("compile, host, serve, answer the CLI and test a user's actor", async () => {
    const timings: Array<string> = []
    let last = Date.now()
    const lap = (label: string) => {
      const now = Date.now()
      timings.push(`${label} ${((now - last) / 1000).toFixed(1)} s`)
      last = now
    }

    const packed = await run(nodeBin, [join(repoRoot, "scripts", "pack.ts"), "--out", join(work, "tarballs")], {
      cwd: repoRoot,
      timeout: 90_000
    })
    const tarballs = packed.stdout.trim().split("\n")
    assert.strictEqual(tarballs.length, packages.length, packed.stderr)
    lap("pack")

    mkdirSync(join(project, "counter"), { recursive: true })
    const tarballOf = (name: string) => tarballs.find((path) => path.endsWith(`/tessera-${name}-0.1.0.tgz`))!
    writeFileSync(
      join(project, "package.json"),
      JSON.stringify(
        {
          name: "counter-app",
          private: true,
          type: "module",
          dependencies: {
            ...Object.fromEntries(packages.map((name) => [`@tessera/${name}`, `file:${tarballOf(name)}`])),
            effect: "4.1.0"
          },
          devDependencies: { "@types/node": typesNodeVersion }
        },
        null,
        2
      )
    )
    for (const [name, text] of Object.entries(files)) writeFileSync(join(project, name), text)
    for (const file of counterFiles) {
      copyFileSync(join(repoRoot, "examples", "counter", file), join(project, "counter", file))
    }
    await run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"], {
      cwd: project,
      timeout: 150_000
    })
    lap("npm install")
    // Every @tessera package came from its tarball, none from a registry package of the same name.
    const lock = JSON.parse(readFileSync(join(project, "package-lock.json"), "utf8"))
    for (const name of packages) {
      const entry = lock.packages[`node_modules/@tessera/${name}`]
      assert.match(entry?.resolved ?? "", /^file:/, `@tessera/${name} resolved from ${entry?.resolved}`)
    }

    await run(join(repoRoot, "node_modules", ".bin", "tsc"), ["-p", join(project, "tsconfig.json")], {
      cwd: project,
      timeout: 60_000
    }).catch((error: { stdout?: string }) => assert.fail(`tsc in the user's project:\n${error.stdout}`))
    lap("tsc")

    const tested = JSON.parse((await inProject("check.ts")).stdout)
    assert.deepStrictEqual(tested, { t1: 5, t2: 0 })
    lap("@tessera/testing")

    node = await startProcess("packed", {
      entryPath: join(project, "serve.ts"),
      cwd: project,
      env: { TESSERA_DATA: join(project, ".tessera") }
    })
    lap("node ready")
    const called = JSON.parse((await inProject("call.ts", [node.url])).stdout)
    assert.deepStrictEqual(called, { modules: ["counter"], viaHttp: 2, viaWs: 5, got: 5, refused: "InvalidEntityId" })
    const example = await inProject("counter/client.ts", ["packed", "10"], { TESSERA_URL: node.url })
    assert.strictEqual(example.stdout.trim(), "packed = 15")
    const cli = await inProject(join("node_modules", ".bin", "tessera"), ["status", "--url", node.url])
    assert.strictEqual(JSON.parse(cli.stdout).modules[0].name, "counter")
    lap("client and CLI")

    node.child.kill("SIGINT")
    assert.strictEqual(await node.exited, 0, node.output())
    console.log(`pack test: ${timings.join(", ")}`)
  }, 240_000)
})
