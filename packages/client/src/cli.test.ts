import { PassThrough } from "node:stream"
import { assert, describe, it } from "@effect/vitest"
import { type Command, main, UsageError } from "./cli.ts"

/** A module's command, as a module contributes it. */
const echo: Command = {
  name: "echo",
  summary: "prints its arguments",
  usage: "tessera echo WORD...",
  run: async (argv, io) => {
    if (argv.length === 0) throw new UsageError("echo needs a word")
    io.stdout.write(`${argv.join(" ")}\n`)
    return 0
  }
}

const capture = () => {
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  let out = ""
  let err = ""
  stdout.on("data", (c) => (out += c))
  stderr.on("data", (c) => (err += c))
  return { io: { stdin: new PassThrough(), stdout, stderr, env: {} }, out: () => out, err: () => err }
}

describe("tessera CLI", () => {
  it("prints help listing the core commands and the modules' commands", async () => {
    const c = capture()
    assert.strictEqual(await main(["--help"], c.io, [echo]), 0)
    assert.include(c.out(), "status")
    assert.include(c.out(), "prints its arguments")
    const d = capture()
    assert.strictEqual(await main(["echo", "--help"], d.io, [echo]), 0)
    assert.include(d.out(), "tessera echo WORD...")
  })

  it("runs a module's command, and refuses two commands of one name", async () => {
    const c = capture()
    assert.strictEqual(await main(["echo", "a", "b"], c.io, [echo]), 0)
    assert.strictEqual(c.out(), "a b\n")
    const twice = await main(["echo"], capture().io, [echo, echo]).then(
      () => "resolved",
      (error: Error) => error.message
    )
    assert.include(twice, "two tessera commands are named echo")
  })

  it("rejects unknown commands and options with exit 2 and usage on stderr", async () => {
    const a = capture()
    assert.strictEqual(await main(["frobnicate"], a.io), 2)
    assert.include(a.err(), 'unknown command "frobnicate"')
    const b = capture()
    assert.strictEqual(await main(["status", "--bogus"], b.io), 2)
    assert.include(b.err(), "--bogus")
    const c = capture()
    assert.strictEqual(await main(["echo"], c.io, [echo]), 2)
    assert.include(c.err(), "echo needs a word")
    assert.include(c.err(), "usage: tessera echo WORD...")
  })

  it("reports an unreachable gateway on stderr with exit 1 and nothing on stdout", async () => {
    const c = capture()
    assert.strictEqual(await main(["status", "--url", "http://127.0.0.1:9"], c.io), 1)
    assert.include(c.err(), "cannot reach the gateway at http://127.0.0.1:9")
    assert.strictEqual(c.out(), "")
  })
})
