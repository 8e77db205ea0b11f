// The order/book usage errors (`tessera md tail` runs through a gateway: test/subscribe.test.ts).
import { PassThrough } from "node:stream"
import { assert, describe, it } from "@effect/vitest"
import { main as clientMain } from "@tessera/client/cli"
import { seedCli } from "../cli.ts"

const main = (argv: ReadonlyArray<string>, io: Parameters<typeof clientMain>[1]) => clientMain(argv, io, seedCli)

const io = () => {
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  let out = ""
  let err = ""
  stdout.on("data", (c) => {
    out += c
  })
  stderr.on("data", (c) => {
    err += c
  })
  return {
    io: { stdin: new PassThrough(), stdout, stderr, env: {} },
    out: () => out,
    err: () => err
  }
}

describe("symbol-shard CLI", () => {
  it("order and book report missing options as usage errors", async () => {
    const a = io()
    assert.strictEqual(await main(["order", "place", "--symbol", "BTC-USDT"], a.io), 2)
    assert.include(a.err(), "--account")
    const b = io()
    assert.strictEqual(await main(["book"], b.io), 2)
    assert.include(b.err(), "--symbol")
    const c = io()
    assert.strictEqual(await main(["order", "explode", "--symbol", "BTC-USDT"], c.io), 2)
  })
})
