import { assert, describe, it } from "@effect/vitest"
import { ShardCore, type SymbolConfig } from "./ShardCore.ts"

const config: SymbolConfig = { symbol: "T-USD", tick: "0.5", lot: "1" }

// A deterministic pseudo-random order flow: places (limit/market/IOC/FOK/postOnly), cancels and moves.
const drive = (core: ShardCore, n: number, seed: number) => {
  let s = seed
  const rand = () => {
    s = (s * 1103515245 + 12345) % 2147483648
    return s / 2147483648
  }
  const journal: Array<{ seq: number; commands: string }> = []
  for (let i = 0; i < n; i++) {
    const r = rand()
    if (r < 0.7) {
      const side = rand() < 0.5 ? "buy" : "sell"
      const price = String(90 + Math.floor(rand() * 40) / 2)
      core.place({
        account: `a${Math.floor(rand() * 5)}`,
        clientOrderId: `${seed}-${i}`,
        side,
        type: rand() < 0.1 ? "market" : "limit",
        price,
        qty: String(1 + Math.floor(rand() * 9)),
        tif: rand() < 0.1 ? "IOC" : rand() < 0.05 ? "FOK" : "GTC",
        postOnly: rand() < 0.05
      })
    } else if (r < 0.85) {
      core.cancel(String(1 + Math.floor(rand() * core.nextOrderId)))
    } else {
      core.move(String(1 + Math.floor(rand() * core.nextOrderId)), String(90 + Math.floor(rand() * 40) / 2), undefined)
    }
    if (i % 17 === 16) {
      const sealed = core.seal(false)
      journal.push({ seq: sealed.seq, commands: sealed.commands })
    }
  }
  const sealed = core.seal(false)
  journal.push({ seq: sealed.seq, commands: sealed.commands })
  return journal
}

describe("ShardCore", () => {
  it("snapshot + journal replay rebuilds the same book, ids and idempotency results", () => {
    const live = new ShardCore(config)
    const first = drive(live, 400, 7)
    const snapshot = JSON.stringify(live.snapshot())
    const second = drive(live, 600, 11)

    const fromScratch = new ShardCore(config)
    for (const row of [...first, ...second]) fromScratch.replay(row.seq, row.commands)
    const fromSnapshot = ShardCore.restore(config, snapshot)
    for (const row of second) fromSnapshot.replay(row.seq, row.commands)

    const expected = JSON.stringify(live.snapshot())
    assert.strictEqual(JSON.stringify(fromScratch.snapshot()), expected)
    assert.strictEqual(JSON.stringify(fromSnapshot.snapshot()), expected)
    assert.isAbove(live.book.tradeSeq, 10, "the flow trades")
    const account = ["a0", "a1", "a2", "a3", "a4"].find((a) => fromSnapshot.placed(a, "11-0") !== undefined)
    assert.isDefined(account)
    const again = fromSnapshot.place({ account: account!, clientOrderId: "11-0", side: "buy", price: "1", qty: "1" })
    assert.isTrue("ok" in again && again.batch === undefined, "a replayed key answers from memory, already durable")
    assert.deepStrictEqual("ok" in again ? again.ok : undefined, live.placed(account!, "11-0"))
  })

  it("collects order rows and trades for the pending batch", () => {
    const core = new ShardCore(config)
    core.place({ account: "m", clientOrderId: "1", side: "sell", price: "100", qty: "3" })
    core.place({ account: "t", clientOrderId: "1", side: "buy", price: "100.5", qty: "2" })
    const sealed = core.seal(true)
    assert.strictEqual(sealed.count, 2)
    assert.deepStrictEqual(
      sealed.orders.map((o) => [o.order_id, o.status, o.filled_qty]),
      [
        [1, "open", "2"],
        [2, "filled", "2"]
      ]
    )
    assert.deepStrictEqual(
      sealed.trades.map((t) => [t.trade_id, t.maker_order_id, t.taker_order_id, t.price, t.qty]),
      [[1, 1, 2, "100.0", "2"]]
    )
    assert.isString(sealed.snapshot)
  })
})
