import { assert, describe, it } from "@effect/vitest"
import { type Outcome, placeKey, ShardCore, type ShardLimits, type SymbolConfig } from "./ShardCore.ts"

const config: SymbolConfig = { symbol: "T-USD", tick: "0.5", lot: "1" }
// Small enough that a few hundred commands forget keys and finished orders.
const tight: ShardLimits = { recentKeys: 20, finishedOrders: 15, forgottenFilterBits: 1 << 16 }

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
      core.cancel(String(1 + Math.floor(rand() * core.nextOrderId)), rand() < 0.5 ? `rq${seed}-${i}` : undefined)
    } else {
      const requestId = rand() < 0.5 ? `rq${seed}-${i}` : undefined
      core.move(
        String(1 + Math.floor(rand() * core.nextOrderId)),
        String(90 + Math.floor(rand() * 40) / 2),
        undefined,
        requestId
      )
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

const placedIds = (core: ShardCore) => core.nextOrderId - 1
const okOf = <A>(outcome: Outcome<A>): A => {
  if (!("ok" in outcome)) throw new Error(`rejected: ${outcome.rejected}`)
  return outcome.ok
}

describe("ShardCore", () => {
  it("with tight limits, snapshot + journal replay rebuilds the same trimmed state (keys, finished, filter)", () => {
    const live = new ShardCore(config, tight)
    const first = drive(live, 400, 3)
    const snapshot = JSON.stringify(live.snapshot())
    const second = drive(live, 600, 5)
    const fromScratch = new ShardCore(config, tight)
    for (const row of [...first, ...second]) fromScratch.replay(row.seq, row.commands)
    const fromSnapshot = ShardCore.restore(config, snapshot, tight)
    for (const row of second) fromSnapshot.replay(row.seq, row.commands)

    const expected = JSON.stringify(live.snapshot())
    assert.strictEqual(JSON.stringify(fromScratch.snapshot()), expected)
    assert.strictEqual(JSON.stringify(fromSnapshot.snapshot()), expected)
    const kept = live.remembered
    // Bounded: the limit plus at most one batch (17 commands) not yet trimmed.
    assert.isAtMost(kept.places, tight.recentKeys + 17)
    assert.isAtMost(kept.requests, tight.recentKeys + 17)
    assert.isAtMost(kept.finished, tight.finishedOrders + 17 * 2)
    assert.isAbove(kept.forgotten, 500, "most keys were forgotten")
    assert.isAbove(placedIds(live), 600)
  })

  it("never trims entries of the batch being sealed (they are not durable yet)", () => {
    const core = new ShardCore(config, { recentKeys: 2, finishedOrders: 1, forgottenFilterBits: 4096 })
    for (let i = 0; i < 10; i++) {
      core.place({ account: "a", clientOrderId: `k${i}`, side: "buy", type: "market", qty: "1" })
    }
    core.seal(false)
    assert.deepStrictEqual(core.remembered, { places: 10, requests: 0, finished: 10, forgotten: 0 })
    for (let i = 10; i < 15; i++)
      core.place({ account: "a", clientOrderId: `k${i}`, side: "buy", price: "1", qty: "1" })
    core.seal(false)
    // The second seal trims only the first batch's entries: all 10 keys (the 5 new ones stay), 9 finished orders.
    assert.deepStrictEqual(core.remembered, { places: 5, requests: 0, finished: 1, forgotten: 10 })
    assert.isDefined(core.placed("a", "k10"))
    assert.isUndefined(core.placed("a", "k9"))
  })

  it("a forgotten place key is placed only when the orders table has no row for it, else key_expired", () => {
    const core = new ShardCore(config, { recentKeys: 1, finishedOrders: 1, forgottenFilterBits: 4096 })
    core.place({ account: "a", clientOrderId: "old", side: "sell", price: "100", qty: "1" })
    core.seal(false)
    core.place({ account: "a", clientOrderId: "new1", side: "sell", price: "100", qty: "1" })
    core.place({ account: "a", clientOrderId: "new2", side: "sell", price: "100", qty: "1" })
    core.seal(false)
    assert.isUndefined(core.placed("a", "old"), "forgotten")
    assert.strictEqual(core.needsCheck("a", "old"), placeKey("a", "old"))
    assert.isUndefined(core.needsCheck("a", "new2"), "remembered keys need no check")
    const retry = { account: "a", clientOrderId: "old", side: "sell", price: "100", qty: "1" } as const
    const before = core.nextOrderId
    assert.deepStrictEqual(core.place(retry), { rejected: "key_expired" }, "unchecked: refused")
    assert.deepStrictEqual(core.place(retry, new Map([[placeKey("a", "old"), true]])), { rejected: "key_expired" })
    assert.strictEqual(core.nextOrderId, before, "nothing placed")
    assert.strictEqual(core.pendingCount, 0, "nothing journaled")
    const fresh = core.place(retry, new Map([[placeKey("a", "old"), false]]))
    assert.isTrue("ok" in fresh, "a filter false positive is placed once the table says the key is unused")
  })

  it("Cancel and Move with a request id answer a retry with the first result and apply nothing twice", () => {
    const core = new ShardCore(config)
    const makerId = okOf(
      core.place({ account: "m", clientOrderId: "1", side: "sell", price: "100", qty: "10" })
    ).orderId
    const otherId = okOf(core.place({ account: "m", clientOrderId: "2", side: "sell", price: "105", qty: "1" })).orderId
    const moved = okOf(core.move(makerId, undefined, "6", "mv-1"))
    assert.strictEqual(moved.openQty, "6")
    const first = core.seal(false)
    ShardCore.markDurable(first.batch)
    // A taker fills 4: a second application of "qty 6" would put the open quantity back to 6.
    core.place({ account: "t", clientOrderId: "1", side: "buy", price: "100", qty: "4" })
    const commands = core.pendingCount
    assert.deepStrictEqual(core.move(makerId, undefined, "6", "mv-1"), { ok: moved, batch: undefined })
    assert.strictEqual(core.order(makerId)?.openQty, "2", "not applied twice")
    assert.strictEqual(core.pendingCount, commands, "nothing journaled")
    assert.strictEqual(okOf(core.move(makerId, undefined, "6")).openQty, "6", "without a request id: applies as before")

    const cancel = core.cancel(otherId, "cx-1")
    const canceled = okOf(cancel)
    assert.strictEqual(canceled.status, "canceled")
    const retried = core.cancel(otherId, "cx-1")
    assert.deepStrictEqual(retried, cancel, "a retry before the batch is durable waits for the same batch")
    assert.isTrue("ok" in retried && "ok" in cancel && retried.batch === cancel.batch && cancel.batch === core.pending)
    assert.deepStrictEqual(core.cancel(otherId), { rejected: "unknown_order" }, "without a request id: as before")
    assert.deepStrictEqual(core.cancel(otherId, "cx-2"), { rejected: "unknown_order" }, "a new request id: as before")
    const second = core.seal(true)
    ShardCore.markDurable(second.batch)

    // Restored from the snapshot, and rebuilt from the journal alone: the same answers, nothing applied.
    const replayed = new ShardCore(config)
    replayed.replay(first.seq, first.commands)
    replayed.replay(second.seq, second.commands)
    for (const rebuilt of [ShardCore.restore(config, JSON.stringify(second.state)), replayed]) {
      assert.deepStrictEqual(rebuilt.cancel(otherId, "cx-1"), { ok: canceled, batch: undefined })
      assert.deepStrictEqual(rebuilt.move(makerId, undefined, "6", "mv-1"), { ok: moved, batch: undefined })
      assert.strictEqual(rebuilt.pendingCount, 0)
      assert.strictEqual(JSON.stringify(rebuilt.snapshot()), JSON.stringify(core.snapshot()))
    }
  })

  it("a forgotten request id is refused while its order is open", () => {
    const core = new ShardCore(config, { recentKeys: 1, finishedOrders: 1, forgottenFilterBits: 4096 })
    core.place({ account: "m", clientOrderId: "1", side: "sell", price: "100", qty: "10" })
    core.move("1", undefined, "8", "r1")
    core.seal(false)
    core.move("1", undefined, "7", "r2")
    core.move("1", undefined, "6", "r3")
    core.seal(false)
    assert.deepStrictEqual(core.move("1", undefined, "8", "r1"), { rejected: "key_expired" })
    const canceled = core.cancel("1", "r1")
    assert.isTrue(
      "ok" in canceled && canceled.ok.status === "canceled",
      "the same id on the other operation is its own key"
    )
    assert.deepStrictEqual(core.move("1", undefined, "8", "r1"), { rejected: "unknown_order" }, "closed: as before")
  })

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
    assert.isDefined(sealed.state)
    assert.isUndefined(sealed.snapshot, "the snapshot is not written in the batch's transaction")
  })

  it("the state sealed with a batch stays as of that batch while later commands change the book", () => {
    const core = new ShardCore(config)
    drive(core, 300, 7)
    const sealed = core.seal(true)
    const atSeal = JSON.stringify(core.snapshot())
    ShardCore.markDurable(sealed.batch)
    drive(core, 300, 8)
    ShardCore.markDurable(core.seal(false).batch)
    assert.notStrictEqual(JSON.stringify(core.snapshot()), atSeal, "the later commands changed the shard")
    assert.strictEqual(JSON.stringify(sealed.state), atSeal)
  })
})
