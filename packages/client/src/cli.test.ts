import { PassThrough } from "node:stream"
import { assert, describe, it } from "@effect/vitest"
import { main } from "./cli.ts"

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
  it("prints help listing the commands", async () => {
    const c = capture()
    assert.strictEqual(await main(["--help"], c.io), 0)
    assert.include(c.out(), "status")
    assert.include(c.out(), "replay")
  })

  it("rejects unknown commands and options with exit 2 and usage on stderr", async () => {
    const a = capture()
    assert.strictEqual(await main(["frobnicate"], a.io), 2)
    assert.include(a.err(), 'unknown command "frobnicate"')
    const b = capture()
    assert.strictEqual(await main(["status", "--bogus"], b.io), 2)
    assert.include(b.err(), "--bogus")
    const c = capture()
    assert.strictEqual(await main(["probe"], c.io), 2)
    assert.include(c.err(), "at least one entity id")
  })

  it("reports an unreachable gateway on stderr with exit 1 and nothing on stdout", async () => {
    const c = capture()
    assert.strictEqual(await main(["status", "--url", "http://127.0.0.1:9"], c.io), 1)
    assert.include(c.err(), "cannot reach the gateway at http://127.0.0.1:9")
    assert.strictEqual(c.out(), "")
  })
})
