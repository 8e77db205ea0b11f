// `tessera md tail` against the real Redis, and the order/book usage errors.
import { PassThrough } from "node:stream"
import { assert, describe, it } from "@effect/vitest"
import { main as clientMain } from "@tessera/client/cli"
import { Redis } from "ioredis"
import { redisUrl } from "../../test/harness.ts"
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
    io: { stdin: new PassThrough(), stdout, stderr, env: { REDIS_URL: redisUrl } },
    out: () => out,
    err: () => err
  }
}

describe("symbol-shard CLI", () => {
  it("md tail follows new trade and depth entries", async () => {
    const symbol = `ZZ${Date.now().toString(36).toUpperCase()}-TEST`
    const redis = new Redis(redisUrl)
    try {
      const t = io()
      const tail = main(["md", "tail", "--symbol", symbol, "--count", "2"], t.io)
      await new Promise((r) => setTimeout(r, 300))
      await redis.xadd(`md:${symbol}:trades`, "*", "tradeId", "1", "price", "10.5", "qty", "2")
      await redis.xadd(`md:${symbol}:depth`, "*", "seq", "1", "bids", "[]", "asks", '[["10.5","1"]]')
      assert.strictEqual(await tail, 0)
      const lines = t
        .out()
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l))
      assert.deepStrictEqual(
        lines.map((l) => [l.stream, l.price ?? l.asks]),
        [
          [`md:${symbol}:trades`, "10.5"],
          [`md:${symbol}:depth`, '[["10.5","1"]]']
        ]
      )
      await redis.del(`md:${symbol}:trades`, `md:${symbol}:depth`)
    } finally {
      redis.disconnect()
    }
  })

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
