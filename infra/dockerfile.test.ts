/**
 * The runner image without a Docker engine: the Dockerfile's structure, what its build context holds, and the
 * ECS metadata preload its entry point runs (against a real HTTP server standing in for the endpoint).
 */
import { spawn } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "vitest"
import { fromTaskMetadata } from "../docker/ecs-metadata.ts"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

interface Instruction {
  readonly op: string
  readonly args: string
}
interface Stage {
  readonly base: string
  readonly name: string
  readonly instructions: ReadonlyArray<Instruction>
}

/** Instructions with continuation lines joined, grouped by `FROM`; ARGs before the first FROM substituted. */
const parse = (text: string): ReadonlyArray<Stage> => {
  const lines = text
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))
  const args = new Map<string, string>()
  const stages: Array<{ base: string; name: string; instructions: Array<Instruction> }> = []
  for (const line of lines) {
    const [, op, rest] = /^(\S+)\s+(.*)$/.exec(line) ?? []
    const instruction = { op: op.toUpperCase(), args: rest }
    if (instruction.op === "ARG" && stages.length === 0) {
      const [key, value = ""] = rest.split("=")
      args.set(key, value)
    } else if (instruction.op === "FROM") {
      const [, image, name] = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest) ?? []
      const base = image.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a, b) => args.get(a ?? b) ?? "")
      stages.push({ base, name: name ?? "", instructions: [] })
    } else {
      stages.at(-1)?.instructions.push(instruction)
    }
  }
  return stages
}

const stages = parse(readFileSync(path.join(root, "Dockerfile"), "utf8"))
const final = stages.at(-1)!
const runs = (stage: Stage) => stage.instructions.filter((i) => i.op === "RUN").map((i) => i.args)
const execForm = (args: string): ReadonlyArray<string> => JSON.parse(args.replace(/^CMD\s+/, ""))

describe("Dockerfile", () => {
  it("is multi-stage on node:24-slim: dependencies in one stage, the runner in another", () => {
    assert.isAtLeast(stages.length, 2)
    assert.isTrue(stages.every((s) => s.base === "node:24-slim"))
    assert.sameMembers(
      stages.map((s) => s.name),
      ["deps", "runner"]
    )
    assert.strictEqual(final.name, "runner")
  })

  it("installs production dependencies only, from the lock file, in the build stage", () => {
    const deps = stages.find((s) => s.name === "deps")!
    const install = runs(deps).join(" && ")
    assert.match(install, /npm ci\b[^&]*--omit=dev/)
    assert.notMatch(install, /npm (install|i)\b/)
    assert.lengthOf(
      runs(final).filter((r) => /\bnpm\b/.test(r)),
      0,
      "the final stage runs no npm"
    )
    const copies = final.instructions.filter((i) => i.op === "COPY").map((i) => i.args)
    assert.include(copies, "--from=deps /app/node_modules node_modules/")
    assert.isFalse(
      copies.some((c) => /^\.\s/.test(c) || c.startsWith("node_modules")),
      "no copy of the whole context"
    )
  })

  it("runs as a non-root user, checks /health, and starts app/runner.ts", () => {
    const ops = final.instructions.map((i) => i.op)
    const user = final.instructions.filter((i) => i.op === "USER").at(-1)
    assert.isDefined(user)
    assert.notMatch(user.args, /^(root|0)(:|$)/)
    assert.isBelow(ops.lastIndexOf("USER"), ops.lastIndexOf("CMD"))
    const healthcheck = final.instructions.find((i) => i.op === "HEALTHCHECK")
    assert.isDefined(healthcheck)
    assert.include(healthcheck.args, "/health")
    const cmd = execForm(final.instructions.find((i) => i.op === "CMD")!.args)
    assert.strictEqual(cmd[0], "node")
    assert.strictEqual(cmd.at(-1), "app/runner.ts")
    assert.include(final.instructions.find((i) => i.op === "EXPOSE")?.args.split(/\s+/) ?? [], "7400")
  })

  it("trusts the Amazon RDS certificate authorities for Aurora's TLS", () => {
    const bundle = final.instructions.find((i) => i.op === "ADD" && i.args.includes("truststore.pki.rds.amazonaws.com"))
    assert.isDefined(bundle)
    const file = bundle.args.split(/\s+/).at(-1)
    assert.isTrue(
      final.instructions.some((i) => i.op === "ENV" && i.args.includes(`NODE_EXTRA_CA_CERTS=${file}`)),
      "NODE_EXTRA_CA_CERTS points at the bundle"
    )
  })

  it("copies only paths that exist and that .dockerignore lets through", () => {
    const ignore = readFileSync(path.join(root, ".dockerignore"), "utf8")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "" && !l.startsWith("#"))
    for (const must of [".git", "**/node_modules", ".env", ".sst", ".tessera", "**/*.test.ts"]) {
      assert.include(ignore, must)
    }
    const sources = stages
      .flatMap((s) => s.instructions)
      .filter((i) => i.op === "COPY" && !i.args.startsWith("--from"))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1))
    for (const source of sources) {
      assert.isTrue(existsSync(path.join(root, source)), `${source} exists`)
      const top = source.replace(/\/$/, "").split("/")[0]
      assert.notInclude(ignore, top, `${source} is not ignored`)
    }
    assert.isTrue(existsSync(path.join(root, "app", "runner.ts")))
  })
})

describe("docker/ecs-metadata.ts", () => {
  const task = {
    AvailabilityZone: "us-east-1b",
    Containers: [{ Networks: [{ NetworkMode: "awsvpc", IPv4Addresses: ["10.0.70.12"] }] }]
  }

  it("reads the task's address and zone", () => {
    assert.deepStrictEqual(fromTaskMetadata(task), { host: "10.0.70.12", zone: "us-east-1b" })
    assert.deepStrictEqual(fromTaskMetadata({}), { host: undefined, zone: undefined })
  })

  const preload = (env: Record<string, string>) =>
    new Promise<{ code: number | null; stdout: string }>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        [
          "--import",
          "./docker/ecs-metadata.ts",
          "-e",
          "console.log(JSON.stringify([process.env.TESSERA_RUNNER_HOST, process.env.TESSERA_ZONE]))"
        ],
        { cwd: root, env: { PATH: process.env.PATH ?? "", ...env } }
      )
      let stdout = ""
      child.stdout.on("data", (chunk) => (stdout += chunk))
      child.on("error", reject)
      child.on("close", (code) => resolve({ code, stdout }))
    })

  it("fills TESSERA_RUNNER_HOST and TESSERA_ZONE from the endpoint before the runner starts", async () => {
    const server = createServer((req, res) => {
      res.writeHead(req.url === "/v4/abc/task" ? 200 : 404, { "content-type": "application/json" })
      res.end(JSON.stringify(task))
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    const { port } = server.address() as AddressInfo
    try {
      const filled = await preload({ ECS_CONTAINER_METADATA_URI_V4: `http://127.0.0.1:${port}/v4/abc` })
      assert.strictEqual(filled.code, 0)
      assert.deepStrictEqual(JSON.parse(filled.stdout), ["10.0.70.12", "us-east-1b"])
      const explicit = await preload({
        ECS_CONTAINER_METADATA_URI_V4: `http://127.0.0.1:${port}/v4/abc`,
        TESSERA_RUNNER_HOST: "runner-1.internal"
      })
      assert.deepStrictEqual(JSON.parse(explicit.stdout), ["runner-1.internal", "us-east-1b"])
      const broken = await preload({ ECS_CONTAINER_METADATA_URI_V4: `http://127.0.0.1:${port}/v4/missing` })
      assert.strictEqual(broken.code, 1)
    } finally {
      server.close()
    }
    const outside = await preload({})
    assert.strictEqual(outside.code, 0)
    assert.deepStrictEqual(JSON.parse(outside.stdout), [null, null])
  })
})
