// Random command streams against the engine: invariants after every command, agreement with a
// naive reference book (arrays, sort by price then arrival), snapshot/restore mid-stream, and
// determinism.
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { DecimalUnit } from "./Decimal.ts"
import { eventLines, readEvents } from "./events.ts"
import { OrderBook } from "./OrderBook.ts"

type Cmd =
  | {
      readonly op: "place"
      readonly id: string
      readonly side: "buy" | "sell"
      readonly type: "limit" | "market"
      readonly price: string
      readonly qty: string
      readonly tif: "GTC" | "IOC" | "FOK"
      readonly postOnly: boolean
    }
  | { readonly op: "cancel"; readonly id: string }
  | { readonly op: "move"; readonly id: string; readonly price: string | undefined; readonly qty: string | undefined }

const CONFIG = { tick: "0.05", lot: "0.5", minQty: "0.5", maxQty: "20" }
const tick = new DecimalUnit(CONFIG.tick)
const lot = new DecimalUnit(CONFIG.lot)

const idArb = fc.integer({ min: 0, max: 29 }).map((i) => `o${i}`)
const pricesIn = (min: number, max: number) =>
  fc.oneof(
    { weight: 30, arbitrary: fc.integer({ min, max }).map((t) => tick.format(t)) },
    { weight: 1, arbitrary: fc.constantFrom("100.01", "0", "-1", "x", "100.0500") }
  )
const priceArb = pricesIn(1994, 2006)
const qtyArb = fc.oneof(
  { weight: 30, arbitrary: fc.integer({ min: 1, max: 16 }).map((l) => lot.format(l)) },
  { weight: 1, arbitrary: fc.constantFrom("0", "0.25", "20.5", "40") }
)
const commands = (priceArb: fc.Arbitrary<string>): fc.Arbitrary<Cmd> =>
  fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        op: fc.constant("place" as const),
        id: idArb,
        side: fc.constantFrom("buy" as const, "sell" as const),
        type: fc.oneof(
          { weight: 6, arbitrary: fc.constant("limit" as const) },
          { weight: 1, arbitrary: fc.constant("market" as const) }
        ),
        price: priceArb,
        qty: qtyArb,
        tif: fc.oneof(
          { weight: 4, arbitrary: fc.constant("GTC" as const) },
          { weight: 1, arbitrary: fc.constant("IOC" as const) },
          { weight: 1, arbitrary: fc.constant("FOK" as const) }
        ),
        postOnly: fc.oneof({ weight: 5, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) })
      })
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("cancel" as const), id: idArb }) },
    {
      weight: 3,
      arbitrary: fc.record({
        op: fc.constant("move" as const),
        id: idArb,
        price: fc.option(priceArb, { nil: undefined, freq: 3 }),
        qty: fc.option(qtyArb, { nil: undefined })
      })
    }
  )
// size "max": lengths spread up to maxLength (the default size keeps arrays to about ten elements).
const streamArb = fc.array(commands(priceArb), { minLength: 1, maxLength: 300, size: "max" })
// Prices over 400 ticks against a 64-tick price window: exercises the search and re-centre paths.
const wideStreamArb = fc.array(commands(pricesIn(1800, 2200)), { minLength: 1, maxLength: 300, size: "max" })

const apply = (book: OrderBook, c: Cmd): number => {
  switch (c.op) {
    case "place":
      return book.place(c)
    case "cancel":
      return book.cancel(c.id)
    case "move":
      return c.price === undefined && c.qty === undefined
        ? book.move(c.id, undefined, "")
        : book.move(c.id, c.price, c.qty)
  }
}

// ---- the reference: obviously correct, slow -------------------------------------------------------

interface RefOrder {
  id: string
  side: 0 | 1
  price: number
  open: number
  filled: number
  seq: number
  postOnly: boolean
}
type RefEvent = Record<string, string>

class RefBook {
  resting: Array<RefOrder> = []
  used = new Set<string>()
  seq = 0

  run(c: Cmd): Array<RefEvent> {
    const ev: Array<RefEvent> = []
    const reject = (reason: string) => [{ ev: "rejected", id: c.id, reason }]
    if (c.op === "cancel") {
      const o = this.resting.find((x) => x.id === c.id)
      if (o === undefined) return reject("unknown_order")
      this.resting = this.resting.filter((x) => x !== o)
      return [{ ev: "done", id: o.id, reason: "canceled" }]
    }
    if (c.op === "place") {
      const price = c.type === "market" ? 0 : tick.toUnits(c.price)
      const qty = lot.toUnits(c.qty)
      if (price === -1) return reject("invalid_price")
      if (qty === -1 || qty < 1 || qty > 40) return reject("invalid_qty")
      if (this.used.has(c.id)) return reject("duplicate_id")
      const side = c.side === "buy" ? 0 : 1
      const limit = c.type === "market" ? (side === 0 ? Number.POSITIVE_INFINITY : 0) : price
      if (c.postOnly && this.book(1 - side, limit).length > 0) return reject("would_cross")
      this.used.add(c.id)
      ev.push({ ev: "accepted", id: c.id })
      const o: RefOrder = { id: c.id, side, price, open: qty, filled: 0, seq: 0, postOnly: c.postOnly }
      const available = this.book(1 - side, limit).reduce((a, m) => a + m.open, 0)
      if (c.tif === "FOK" && available < qty) {
        ev.push({ ev: "done", id: c.id, reason: "killed" })
        return ev
      }
      this.take(o, limit, ev)
      if (o.open === 0) ev.push({ ev: "done", id: o.id, reason: "filled" })
      else if (c.type === "limit" && c.tif === "GTC") this.rest(o)
      else ev.push({ ev: "done", id: o.id, reason: "expired" })
      return ev
    }
    const price = c.price === undefined ? 0 : tick.toUnits(c.price)
    const qty = c.qty === undefined ? 0 : lot.toUnits(c.qty)
    if (price === -1) return reject("invalid_price")
    if (qty === -1 || qty > 40 || (c.price === undefined && c.qty === undefined)) return reject("invalid_qty")
    const o = this.resting.find((x) => x.id === c.id)
    if (o === undefined) return reject("unknown_order")
    const newPrice = price === 0 ? o.price : price
    const newQty = qty === 0 ? o.open : qty
    if (newPrice === o.price) {
      if (newQty > o.open) o.seq = ++this.seq
      o.open = newQty
      return [{ ev: "moved", id: o.id }]
    }
    if (o.postOnly && this.book(1 - o.side, newPrice).length > 0) return reject("would_cross")
    ev.push({ ev: "moved", id: o.id })
    this.resting = this.resting.filter((x) => x !== o)
    o.price = newPrice
    o.open = newQty
    this.take(o, newPrice, ev)
    if (o.open === 0) ev.push({ ev: "done", id: o.id, reason: "filled" })
    else this.rest(o)
    return ev
  }

  /** Resting orders of `side` that an order at `limit` on the other side would trade with, in priority order. */
  book(side: number, limit: number): Array<RefOrder> {
    return this.resting
      .filter((m) => m.side === side && (side === 1 ? m.price <= limit : m.price >= limit))
      .sort((a, b) => (side === 1 ? a.price - b.price : b.price - a.price) || a.seq - b.seq)
  }

  take(o: RefOrder, limit: number, ev: Array<RefEvent>): void {
    for (const m of this.book(1 - o.side, limit)) {
      if (o.open === 0) break
      const q = Math.min(m.open, o.open)
      m.open -= q
      m.filled += q
      o.open -= q
      o.filled += q
      ev.push({ ev: "trade", maker: m.id, taker: o.id, price: tick.format(m.price), qty: lot.format(q) })
      if (m.open === 0) {
        ev.push({ ev: "done", id: m.id, reason: "filled" })
        this.resting = this.resting.filter((x) => x !== m)
      }
    }
  }

  rest(o: RefOrder): void {
    o.seq = ++this.seq
    this.resting.push(o)
  }

  depth(side: number): Array<[string, string]> {
    const levels = new Map<number, number>()
    for (const o of this.book(side, side === 0 ? 0 : Number.POSITIVE_INFINITY)) {
      levels.set(o.price, (levels.get(o.price) ?? 0) + o.open)
    }
    return [...levels].map(([p, q]) => [tick.format(p), lot.format(q)])
  }
}

const plain = (book: OrderBook) =>
  readEvents(book).map((e) => {
    if (e.ev !== "trade") return { ...e }
    const { tradeId: _, ...rest } = e
    return rest
  })

describe("OrderBook properties", () => {
  const matchesReference = (cmds: ReadonlyArray<Cmd>, priceWindow?: number) => {
    const book = new OrderBook(CONFIG, 16, priceWindow)
    const ref = new RefBook()
    for (const c of cmds) {
      apply(book, c)
      assert.deepStrictEqual(plain(book), ref.run(c), JSON.stringify(c))
      assert.deepStrictEqual(book.depth(), { bids: ref.depth(0), asks: ref.depth(1) })
    }
  }

  it("matches the reference book on wide prices with a small price window", () => {
    fc.assert(
      fc.property(wideStreamArb, (cmds) => matchesReference(cmds, 64)),
      { numRuns: 150 }
    )
  })

  it("matches the reference book event for event (price-time priority, FIFO within a level, maker price) and its depth", () => {
    fc.assert(
      fc.property(streamArb, (cmds) => {
        const book = new OrderBook(CONFIG)
        const ref = new RefBook()
        for (const c of cmds) {
          apply(book, c)
          assert.deepStrictEqual(plain(book), ref.run(c), JSON.stringify(c))
          assert.deepStrictEqual(book.depth(), { bids: ref.depth(0), asks: ref.depth(1) })
        }
      }),
      { numRuns: 300 }
    )
  })

  it("never crosses, conserves quantity, and FOK is all or nothing", () => {
    fc.assert(
      fc.property(streamArb, (cmds) => {
        const book = new OrderBook(CONFIG)
        // Per order: quantity put in (placed, adjusted by moves) and where it went.
        const input = new Map<string, number>()
        const filled = new Map<string, number>()
        const left = new Map<string, number>()
        const add = (m: Map<string, number>, id: string, q: number) => m.set(id, (m.get(id) ?? 0) + q)
        for (const c of cmds) {
          const openBefore = c.op === "move" ? book.status(c.id) : undefined
          const rc = apply(book, c)
          const evs = readEvents(book)
          if (rc === 0 && c.op === "place") input.set(c.id, lot.toUnits(c.qty))
          if (rc === 0 && c.op === "move" && c.qty !== undefined && openBefore !== undefined) {
            add(input, c.id, lot.toUnits(c.qty) - lot.toUnits(openBefore.openQty))
          }
          for (let i = 0; i < book.eventCount; i++) {
            const e = evs[i]
            if (e.ev === "trade") {
              add(filled, e.maker, lot.toUnits(e.qty))
              add(filled, e.taker, lot.toUnits(e.qty))
            } else if (e.ev === "done") {
              add(left, e.id, book.eventQty[i])
            }
          }
          if (c.op === "place" && c.tif === "FOK" && rc === 0) {
            const trades = evs.filter((e) => e.ev === "trade")
            const last = evs[evs.length - 1]
            if (last.ev === "done" && last.reason === "killed") assert.strictEqual(trades.length, 0)
            else assert.deepStrictEqual(last, { ev: "done", id: c.id, reason: "filled" })
          }
          const bid = book.bestPrice(0)
          const ask = book.bestPrice(1)
          if (bid !== 0 && ask !== 0) assert.isBelow(bid, ask)
        }
        for (const [id, q] of input) {
          const st = book.status(id)!
          const open = st.status === "open" ? lot.toUnits(st.openQty) : 0
          assert.strictEqual(q, (filled.get(id) ?? 0) + open + (left.get(id) ?? 0), id)
          assert.strictEqual(lot.format(filled.get(id) ?? 0), st.filledQty, id)
        }
      }),
      { numRuns: 300 }
    )
  })

  it("snapshot / restore mid-stream gives identical later events", () => {
    fc.assert(
      fc.property(streamArb, streamArb, (before, after) => {
        const book = new OrderBook(CONFIG)
        for (const c of before) apply(book, c)
        const copy = OrderBook.restore(JSON.parse(JSON.stringify(book.snapshot())))
        assert.deepStrictEqual(copy.snapshot(), book.snapshot())
        for (const c of [...before, ...after]) {
          assert.strictEqual(apply(copy, c), apply(book, c))
          assert.strictEqual(eventLines(copy), eventLines(book))
          assert.deepStrictEqual(
            copy.eventTradeId.subarray(0, copy.eventCount),
            book.eventTradeId.subarray(0, book.eventCount)
          )
        }
        assert.deepStrictEqual(copy.snapshot(), book.snapshot())
      }),
      { numRuns: 200 }
    )
  })

  it("is deterministic: the same stream gives the same events", () => {
    fc.assert(
      fc.property(streamArb, (cmds) => {
        const run = () => {
          const book = new OrderBook(CONFIG)
          let out = ""
          for (const c of cmds) {
            apply(book, c)
            out += eventLines(book)
          }
          return out + JSON.stringify(book.snapshot())
        }
        assert.strictEqual(run(), run())
      }),
      { numRuns: 100 }
    )
  })

  it("survives many orders, levels and empty levels without losing order (compaction, growth)", () => {
    const book = new OrderBook({ tick: "1", lot: "1" })
    // Spread 6,000 bids over 6,000 prices, cancel most of them from the middle, then sweep.
    for (let i = 0; i < 6000; i++) book.placeRaw(`b${i}`, "", 0, 0, 0, false, 10000 - i, 1)
    for (let i = 1; i < 6000; i++) if (i % 7 !== 0) book.cancel(`b${i}`)
    const expected: Array<number> = [10000]
    for (let i = 7; i < 6000; i += 7) expected.push(10000 - i)
    const prices = new Float64Array(10000)
    const qtys = new Float64Array(10000)
    const n = book.depthInto(0, 10000, prices, qtys)
    assert.deepStrictEqual(Array.from(prices.subarray(0, n)), expected)
    book.placeRaw("m", "", 1, 1, 1, false, 0, 100000)
    assert.strictEqual(book.tradeSeq, expected.length)
    assert.strictEqual(book.levelCount(0), 0)
    assert.strictEqual(book.restingCount, 0)
  })
})
