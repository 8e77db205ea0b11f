import { assert, describe, it } from "@effect/vitest"
import { readEvents } from "./events.ts"
import { type BookConfig, OrderBook, type PlaceCommand, RejectReason } from "./OrderBook.ts"

const newBook = (config: Partial<BookConfig> = {}) => new OrderBook({ tick: "0.01", lot: "1", ...config })

/** The last command's events as replay-format objects (trade ids dropped). */
const events = (book: OrderBook): Array<Record<string, string>> =>
  readEvents(book).map((e) =>
    e.ev === "trade"
      ? { ev: e.ev, maker: e.maker, taker: e.taker, price: e.price, qty: e.qty }
      : ({ ...e } as Record<string, string>)
  )

type Place = Omit<PlaceCommand, "id" | "side" | "qty">
const place = (
  book: OrderBook,
  id: string,
  side: "buy" | "sell",
  price: string | undefined,
  qty: string,
  more: Place = {}
) => {
  book.place({ id, side, price, qty, ...more })
  return events(book)
}
const buy = (book: OrderBook, id: string, price: string, qty: string, more: Place = {}) =>
  place(book, id, "buy", price, qty, more)
const sell = (book: OrderBook, id: string, price: string, qty: string, more: Place = {}) =>
  place(book, id, "sell", price, qty, more)
const cancel = (book: OrderBook, id: string) => {
  book.cancel(id)
  return events(book)
}
const move = (book: OrderBook, id: string, price: string | undefined, qty?: string) => {
  book.move(id, price, qty)
  return events(book)
}
const accepted = (id: string) => ({ ev: "accepted", id })
const rejected = (id: string, reason: string) => ({ ev: "rejected", id, reason })
const trade = (maker: string, taker: string, price: string, qty: string) => ({ ev: "trade", maker, taker, price, qty })
const done = (id: string, reason: string) => ({ ev: "done", id, reason })
const moved = (id: string) => ({ ev: "moved", id })

describe("OrderBook: limit orders", () => {
  it("rests a non-crossing GTC limit order", () => {
    const book = newBook()
    assert.deepStrictEqual(buy(book, "b1", "100.00", "5"), [accepted("b1")])
    assert.deepStrictEqual(sell(book, "s1", "101", "2", { tif: "GTC" }), [accepted("s1")])
    assert.deepStrictEqual(book.depth(), { bids: [["100.00", "5"]], asks: [["101.00", "2"]] })
    assert.strictEqual(book.restingCount, 2)
  })

  it("trades at the maker's price, best price first, then time priority within a level", () => {
    const book = newBook()
    sell(book, "s1", "101.00", "2")
    sell(book, "s2", "100.50", "1")
    sell(book, "s3", "101.00", "4")
    // A buy at 102 pays 100.50 then 101.00 (s1 before s3), and rests nothing.
    assert.deepStrictEqual(buy(book, "b1", "102.00", "5"), [
      accepted("b1"),
      trade("s2", "b1", "100.50", "1"),
      done("s2", "filled"),
      trade("s1", "b1", "101.00", "2"),
      done("s1", "filled"),
      trade("s3", "b1", "101.00", "2"),
      done("b1", "filled")
    ])
    assert.deepStrictEqual(book.depth(), { bids: [], asks: [["101.00", "2"]] })
  })

  it("rests the remainder of a partly filled GTC order at its limit", () => {
    const book = newBook()
    sell(book, "s1", "100.00", "3")
    assert.deepStrictEqual(buy(book, "b1", "100.00", "5"), [
      accepted("b1"),
      trade("s1", "b1", "100.00", "3"),
      done("s1", "filled")
    ])
    assert.deepStrictEqual(book.depth(), { bids: [["100.00", "2"]], asks: [] })
    assert.deepStrictEqual(book.status("b1"), {
      id: "b1",
      status: "open",
      openQty: "2",
      filledQty: "3",
      side: "buy",
      price: "100.00",
      account: ""
    })
  })

  it("sells into bids highest first", () => {
    const book = newBook()
    buy(book, "b1", "99.00", "1")
    buy(book, "b2", "99.50", "1")
    assert.deepStrictEqual(sell(book, "s1", "99.00", "2"), [
      accepted("s1"),
      trade("b2", "s1", "99.50", "1"),
      done("b2", "filled"),
      trade("b1", "s1", "99.00", "1"),
      done("b1", "filled"),
      done("s1", "filled")
    ])
  })

  it("does not trade past the limit price", () => {
    const book = newBook()
    sell(book, "s1", "101.00", "1")
    assert.deepStrictEqual(buy(book, "b1", "100.99", "1"), [accepted("b1")])
    assert.deepStrictEqual(book.depth(), { bids: [["100.99", "1"]], asks: [["101.00", "1"]] })
  })
})

describe("OrderBook: market orders and time in force", () => {
  it("market order sweeps levels and expires its remainder", () => {
    const book = newBook()
    buy(book, "b1", "100.00", "2")
    buy(book, "b2", "99.00", "2")
    assert.deepStrictEqual(place(book, "m1", "sell", undefined, "5", { type: "market" }), [
      accepted("m1"),
      trade("b1", "m1", "100.00", "2"),
      done("b1", "filled"),
      trade("b2", "m1", "99.00", "2"),
      done("b2", "filled"),
      done("m1", "expired")
    ])
    assert.deepStrictEqual(book.depth(), { bids: [], asks: [] })
  })

  it("market order on an empty side expires; it never rests, even with GTC", () => {
    const book = newBook()
    assert.deepStrictEqual(place(book, "m1", "buy", "100.00", "1", { type: "market", tif: "GTC" }), [
      accepted("m1"),
      done("m1", "expired")
    ])
    assert.strictEqual(book.restingCount, 0)
    assert.strictEqual(book.status("m1")?.status, "expired")
  })

  it("market order filled in full reports filled", () => {
    const book = newBook()
    sell(book, "s1", "100.00", "4")
    assert.deepStrictEqual(place(book, "m1", "buy", undefined, "3", { type: "market" }), [
      accepted("m1"),
      trade("s1", "m1", "100.00", "3"),
      done("m1", "filled")
    ])
  })

  it("IOC trades what it can and expires the rest", () => {
    const book = newBook()
    sell(book, "s1", "100.00", "2")
    sell(book, "s2", "101.00", "2")
    assert.deepStrictEqual(buy(book, "i1", "100.00", "5", { tif: "IOC" }), [
      accepted("i1"),
      trade("s1", "i1", "100.00", "2"),
      done("s1", "filled"),
      done("i1", "expired")
    ])
    assert.deepStrictEqual(buy(book, "i2", "100.50", "1", { tif: "IOC" }), [accepted("i2"), done("i2", "expired")])
    assert.deepStrictEqual(book.depth(), { bids: [], asks: [["101.00", "2"]] })
  })

  it("FOK fills in full or is killed without trading", () => {
    const book = newBook()
    sell(book, "s1", "100.00", "2")
    sell(book, "s2", "101.00", "2")
    // 5 wanted, 4 available within the limit: killed, book unchanged.
    assert.deepStrictEqual(buy(book, "f1", "101.00", "5", { tif: "FOK" }), [accepted("f1"), done("f1", "killed")])
    // 4 available but only 2 within 100.00: killed.
    assert.deepStrictEqual(buy(book, "f2", "100.00", "3", { tif: "FOK" }), [accepted("f2"), done("f2", "killed")])
    assert.deepStrictEqual(book.depth(), {
      bids: [],
      asks: [
        ["100.00", "2"],
        ["101.00", "2"]
      ]
    })
    assert.deepStrictEqual(buy(book, "f3", "101.00", "4", { tif: "FOK" }), [
      accepted("f3"),
      trade("s1", "f3", "100.00", "2"),
      done("s1", "filled"),
      trade("s2", "f3", "101.00", "2"),
      done("s2", "filled"),
      done("f3", "filled")
    ])
    assert.strictEqual(book.status("f1")?.status, "killed")
  })

  it("market FOK is killed when the side cannot fill it", () => {
    const book = newBook()
    buy(book, "b1", "100.00", "1")
    assert.deepStrictEqual(place(book, "m1", "sell", undefined, "2", { type: "market", tif: "FOK" }), [
      accepted("m1"),
      done("m1", "killed")
    ])
  })
})

describe("OrderBook: post-only", () => {
  it("rejects a post-only order that would cross, and changes nothing", () => {
    const book = newBook()
    sell(book, "s1", "101.00", "1")
    const before = JSON.stringify(book.snapshot())
    assert.deepStrictEqual(buy(book, "p1", "101.00", "1", { postOnly: true }), [rejected("p1", "would_cross")])
    assert.strictEqual(
      book.place({ id: "p1", side: "buy", price: "102", qty: "1", postOnly: true }),
      RejectReason.would_cross
    )
    assert.strictEqual(JSON.stringify(book.snapshot()), before)
    assert.strictEqual(book.status("p1"), undefined)
  })

  it("rests a post-only order that does not cross", () => {
    const book = newBook()
    sell(book, "s1", "101.00", "1")
    assert.deepStrictEqual(buy(book, "p1", "100.99", "1", { postOnly: true }), [accepted("p1")])
  })
})

describe("OrderBook: cancel", () => {
  it("cancels a resting order", () => {
    const book = newBook()
    buy(book, "b1", "100.00", "5")
    buy(book, "b2", "100.00", "1")
    assert.deepStrictEqual(cancel(book, "b1"), [done("b1", "canceled")])
    assert.deepStrictEqual(book.depth(), { bids: [["100.00", "1"]], asks: [] })
    assert.deepStrictEqual(book.status("b1"), { id: "b1", status: "canceled", openQty: "0", filledQty: "0" })
  })

  it("rejects unknown, filled and already canceled orders with unknown_order", () => {
    const book = newBook()
    assert.deepStrictEqual(cancel(book, "nope"), [rejected("nope", "unknown_order")])
    buy(book, "b1", "100.00", "1")
    sell(book, "s1", "100.00", "1")
    assert.deepStrictEqual(cancel(book, "b1"), [rejected("b1", "unknown_order")])
    buy(book, "b2", "100.00", "1")
    cancel(book, "b2")
    assert.deepStrictEqual(cancel(book, "b2"), [rejected("b2", "unknown_order")])
  })

  it("drops a level when its last order leaves and keeps the others in order", () => {
    const book = newBook()
    for (let i = 0; i < 10; i++) buy(book, `b${i}`, `${100 - i}.00`, "1")
    cancel(book, "b0")
    cancel(book, "b5")
    cancel(book, "b9")
    assert.deepStrictEqual(
      book.depth().bids.map(([p]) => p),
      ["99.00", "98.00", "97.00", "96.00", "94.00", "93.00", "92.00"]
    )
    assert.strictEqual(book.levelCount(0), 7)
    assert.deepStrictEqual(book.depth(3).bids.length, 3)
    // Re-using a price whose level emptied below the top.
    buy(book, "b10", "95.00", "2")
    assert.deepStrictEqual(book.depth(5).bids[4], ["95.00", "2"])
  })
})

describe("OrderBook: validation", () => {
  it("rejects prices that are not positive multiples of the tick", () => {
    const book = newBook()
    for (const price of ["100.001", "0", "-1", "abc", "1e3"]) {
      assert.deepStrictEqual(buy(book, "b1", price, "1"), [rejected("b1", "invalid_price")], price)
    }
    assert.deepStrictEqual(buy(book, "b1", undefined as unknown as string, "1"), [rejected("b1", "invalid_price")])
    assert.strictEqual(book.status("b1"), undefined)
  })

  it("rejects quantities off the lot, below min or above max", () => {
    const book = newBook({ lot: "0.5", minQty: "1", maxQty: "10" })
    for (const qty of ["0.25", "0.5", "10.5", "0", "-1", "x"]) {
      assert.deepStrictEqual(buy(book, "b1", "100", qty), [rejected("b1", "invalid_qty")], qty)
    }
    assert.deepStrictEqual(buy(book, "b1", "100", "1.5"), [accepted("b1")])
    assert.deepStrictEqual(book.depth(), { bids: [["100.00", "1.5"]], asks: [] })
    assert.deepStrictEqual(buy(book, "b2", "100", "10"), [accepted("b2")])
  })

  it("rejects duplicate ids, live or finished, for the book's lifetime", () => {
    const book = newBook()
    buy(book, "b1", "100.00", "1")
    assert.deepStrictEqual(sell(book, "b1", "105.00", "1"), [rejected("b1", "duplicate_id")])
    sell(book, "s1", "100.00", "1")
    assert.deepStrictEqual(buy(book, "b1", "90.00", "1"), [rejected("b1", "duplicate_id")])
    assert.deepStrictEqual(buy(book, "s1", "90.00", "1"), [rejected("s1", "duplicate_id")])
    place(book, "m1", "buy", undefined, "1", { type: "market" })
    assert.deepStrictEqual(buy(book, "m1", "90.00", "1"), [rejected("m1", "duplicate_id")])
  })

  it("a rejected command changes nothing, not even the id", () => {
    const book = newBook()
    buy(book, "b1", "100.00", "3")
    const before = JSON.stringify(book.snapshot())
    buy(book, "x", "100.001", "1")
    sell(book, "y", "100.00", "0")
    cancel(book, "zz")
    move(book, "b1", "100.005")
    move(book, "b1", "101.00", "0")
    move(book, "zz", "101.00")
    assert.strictEqual(JSON.stringify(book.snapshot()), before)
    assert.deepStrictEqual(buy(book, "x", "99.00", "1"), [accepted("x")])
  })

  it("checks reasons in a fixed order: price, quantity, id, cross", () => {
    const book = newBook()
    sell(book, "s1", "100.00", "1")
    assert.deepStrictEqual(buy(book, "s1", "1.001", "0"), [rejected("s1", "invalid_price")])
    assert.deepStrictEqual(buy(book, "s1", "1.00", "0"), [rejected("s1", "invalid_qty")])
    assert.deepStrictEqual(buy(book, "s1", "100.00", "1", { postOnly: true }), [rejected("s1", "duplicate_id")])
  })

  it("refuses a bad configuration", () => {
    assert.throws(() => newBook({ tick: "0" }))
    assert.throws(() => newBook({ lot: "abc" }))
    assert.throws(() => newBook({ minQty: "0.5" }))
    assert.throws(() => newBook({ minQty: "5", maxQty: "2" }))
  })
})

describe("OrderBook: move", () => {
  it("a new price loses time priority", () => {
    const book = newBook()
    buy(book, "a", "100.00", "1")
    buy(book, "b", "100.00", "1")
    assert.deepStrictEqual(move(book, "a", "99.00"), [moved("a")])
    assert.deepStrictEqual(move(book, "a", "100.00"), [moved("a")])
    assert.deepStrictEqual(sell(book, "s", "100.00", "1"), [
      accepted("s"),
      trade("b", "s", "100.00", "1"),
      done("b", "filled"),
      done("s", "filled")
    ])
  })

  it("a smaller quantity at the same price keeps priority", () => {
    const book = newBook()
    buy(book, "a", "100.00", "5")
    buy(book, "b", "100.00", "5")
    assert.deepStrictEqual(move(book, "a", "100.00", "2"), [moved("a")])
    assert.deepStrictEqual(book.depth(), { bids: [["100.00", "7"]], asks: [] })
    assert.deepStrictEqual(sell(book, "s", "100.00", "1"), [
      accepted("s"),
      trade("a", "s", "100.00", "1"),
      done("s", "filled")
    ])
    assert.strictEqual(book.status("a")?.openQty, "1")
    assert.strictEqual(book.status("a")?.filledQty, "1")
  })

  it("a larger quantity at the same price goes to the back of the level", () => {
    const book = newBook()
    buy(book, "a", "100.00", "1")
    buy(book, "b", "100.00", "1")
    buy(book, "c", "100.00", "1")
    assert.deepStrictEqual(move(book, "a", "100", "3"), [moved("a")])
    assert.deepStrictEqual(book.depth(), { bids: [["100.00", "5"]], asks: [] })
    const fills = sell(book, "s", "100.00", "3").filter((e) => e.ev === "trade")
    assert.deepStrictEqual(
      fills.map((e) => (e as { maker: string }).maker),
      ["b", "c", "a"]
    )
  })

  it("the same price and quantity is a no-op that keeps priority", () => {
    const book = newBook()
    buy(book, "a", "100.00", "1")
    buy(book, "b", "100.00", "1")
    assert.deepStrictEqual(move(book, "a", "100.00", "1"), [moved("a")])
    assert.deepStrictEqual(move(book, "a", undefined, "1"), [moved("a")])
    assert.deepStrictEqual(sell(book, "s", "100.00", "1")[1], trade("a", "s", "100.00", "1"))
  })

  it("a move through the spread trades at once, as a taker", () => {
    const book = newBook()
    sell(book, "s1", "101.00", "2")
    sell(book, "s2", "102.00", "2")
    buy(book, "b", "100.00", "3")
    assert.deepStrictEqual(move(book, "b", "102.00"), [
      moved("b"),
      trade("s1", "b", "101.00", "2"),
      done("s1", "filled"),
      trade("s2", "b", "102.00", "1"),
      done("b", "filled")
    ])
    assert.deepStrictEqual(book.depth(), { bids: [], asks: [["102.00", "1"]] })
    assert.deepStrictEqual(move(book, "s2", "99.00", "1"), [moved("s2")])
    buy(book, "b2", "98.00", "1")
    // The moved order's own `done filled` comes last, after the maker's.
    assert.deepStrictEqual(move(book, "b2", "99.00"), [
      moved("b2"),
      trade("s2", "b2", "99.00", "1"),
      done("s2", "filled"),
      done("b2", "filled")
    ])
  })

  it("a move that partly crosses rests the remainder at the new price", () => {
    const book = newBook()
    sell(book, "s1", "101.00", "1")
    buy(book, "b", "100.00", "2")
    assert.deepStrictEqual(move(book, "b", "101.00", "4"), [
      moved("b"),
      trade("s1", "b", "101.00", "1"),
      done("s1", "filled")
    ])
    assert.deepStrictEqual(book.depth(), { bids: [["101.00", "3"]], asks: [] })
    assert.deepStrictEqual(book.status("b")?.filledQty, "1")
  })

  it("rejects unknown and finished orders, bad prices and quantities, and post-only crosses", () => {
    const book = newBook()
    assert.deepStrictEqual(move(book, "zz", "100.00"), [rejected("zz", "unknown_order")])
    buy(book, "b", "100.00", "1", { postOnly: true })
    sell(book, "s", "101.00", "1")
    assert.deepStrictEqual(move(book, "b", "100.001"), [rejected("b", "invalid_price")])
    assert.deepStrictEqual(move(book, "b", "100.00", "1.5"), [rejected("b", "invalid_qty")])
    assert.deepStrictEqual(move(book, "b", "101.00"), [rejected("b", "would_cross")])
    assert.deepStrictEqual(book.depth(), { bids: [["100.00", "1"]], asks: [["101.00", "1"]] })
    cancel(book, "b")
    assert.deepStrictEqual(move(book, "b", "99.00"), [rejected("b", "unknown_order")])
  })
})

describe("OrderBook: queries, snapshot, raw interface", () => {
  it("status tracks open and filled quantities and the final state", () => {
    const book = newBook({ lot: "0.001" })
    book.place({ id: "b", account: "acct-7", side: "buy", price: "100", qty: "2.5" })
    sell(book, "s", "100", "1")
    assert.deepStrictEqual(book.status("b"), {
      id: "b",
      status: "open",
      openQty: "1.500",
      filledQty: "1.000",
      side: "buy",
      price: "100.00",
      account: "acct-7"
    })
    sell(book, "s2", "99", "2")
    assert.deepStrictEqual(book.status("b"), { id: "b", status: "filled", openQty: "0.000", filledQty: "2.500" })
    assert.deepStrictEqual(book.status("s2")?.openQty, "0.500")
    assert.strictEqual(book.status("never"), undefined)
  })

  it("event buffer names slots, prices in ticks and trade ids", () => {
    const book = newBook()
    book.placeRaw("s", "acct", 1, 0, 0, false, 10000, 3)
    assert.strictEqual(book.placeRaw("b", "acct2", 0, 0, 0, false, 10100, 2), 0)
    assert.strictEqual(book.eventCount, 3)
    assert.strictEqual(book.eventKind[1], 3)
    assert.strictEqual(book.orderId(book.eventOrder[1]), "s")
    assert.strictEqual(book.orderId(book.eventTaker[1]), "b")
    assert.strictEqual(book.orderAccount(book.eventTaker[1]), "acct2")
    assert.strictEqual(book.eventPrice[1], 10000)
    assert.strictEqual(book.eventQty[1], 2)
    assert.strictEqual(book.eventTradeId[1], 1)
    assert.strictEqual(book.tradeSeq, 1)
    assert.strictEqual(book.moveRaw("s", 0, 9), 0)
    assert.strictEqual(book.placeRaw("x", "", 0, 0, 0, false, 1.5, 1), RejectReason.invalid_price)
    assert.strictEqual(book.rejectedId, "x")
    const prices = new Float64Array(4)
    const qtys = new Float64Array(4)
    assert.strictEqual(book.depthInto(1, 4, prices, qtys), 1)
    assert.deepStrictEqual([prices[0], qtys[0]], [10000, 9])
    assert.strictEqual(book.bestPrice(1), 10000)
    assert.strictEqual(book.bestPrice(0), 0)
  })

  it("a long sweep grows the event buffer", () => {
    const book = newBook()
    for (let i = 0; i < 500; i++) sell(book, `s${i}`, `${100 + (i % 50)}.00`, "1")
    const evs = place(book, "m", "buy", undefined, "1000", { type: "market" })
    assert.strictEqual(evs.length, 1 + 500 * 2 + 1)
    assert.deepStrictEqual(evs[evs.length - 1], done("m", "expired"))
    // Price priority, then time: the first trades are the four orders at 100.00 in arrival order.
    assert.deepStrictEqual(
      evs
        .slice(1, 9)
        .filter((e) => e.ev === "trade")
        .map((e) => (e as { maker: string }).maker),
      ["s0", "s50", "s100", "s150"]
    )
  })

  it("snapshot / restore round-trips queues, used ids and the trade counter", () => {
    const book = newBook({ tick: "0.5", lot: "0.1", minQty: "0.2", maxQty: "100" })
    book.place({ id: "a", account: "x", side: "buy", price: "10", qty: "1" })
    book.place({ id: "b", account: "y", side: "buy", price: "10", qty: "2", postOnly: true })
    book.place({ id: "c", side: "buy", price: "9.5", qty: "0.3" })
    book.place({ id: "d", side: "sell", price: "11", qty: "5" })
    book.place({ id: "e", side: "sell", price: "10", qty: "0.5" })
    book.cancel("c")
    const snap = JSON.parse(JSON.stringify(book.snapshot()))
    const copy = OrderBook.restore(snap)
    assert.deepStrictEqual(copy.snapshot(), book.snapshot())
    assert.deepStrictEqual(copy.depth(), book.depth())
    assert.deepStrictEqual(copy.status("a"), book.status("a"))
    assert.strictEqual(copy.tradeSeq, 1)
    // Used ids survive, FIFO survives (a then b), post-only survives.
    copy.place({ id: "c", side: "buy", price: "1", qty: "1" })
    assert.deepStrictEqual(events(copy), [rejected("c", "duplicate_id")])
    copy.move("b", "11")
    assert.deepStrictEqual(events(copy), [rejected("b", "would_cross")])
    copy.place({ id: "f", side: "sell", price: "10", qty: "1" })
    assert.deepStrictEqual(events(copy), [
      accepted("f"),
      trade("a", "f", "10.0", "0.5"),
      done("a", "filled"),
      trade("b", "f", "10.0", "0.5"),
      done("f", "filled")
    ])
    assert.strictEqual(copy.eventTradeId[3], 3)
  })
})
