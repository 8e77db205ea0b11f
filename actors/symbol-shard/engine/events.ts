// The thin layer between the engine's event buffer and the outside: JSON lines in the replay
// format of DESIGN.md §3.1, or plain objects for callers that want them.
import type { Depth, OrderBook } from "./OrderBook.ts"
import { DONE_NAMES, REJECT_NAMES } from "./OrderBook.ts"

/** One event of the replay format, as a plain object. */
export type BookEvent =
  | { readonly ev: "accepted"; readonly id: string }
  | { readonly ev: "rejected"; readonly id: string; readonly reason: (typeof REJECT_NAMES)[number] }
  | {
      readonly ev: "trade"
      readonly maker: string
      readonly taker: string
      readonly price: string
      readonly qty: string
      /** Trade sequence number in this book (not printed by replay). */
      readonly tradeId: number
    }
  | { readonly ev: "done"; readonly id: string; readonly reason: (typeof DONE_NAMES)[number] }
  | { readonly ev: "moved"; readonly id: string }

/** The last command's events as plain objects. */
export const readEvents = (book: OrderBook): Array<BookEvent> => {
  const out: Array<BookEvent> = []
  const n = book.eventCount
  for (let i = 0; i < n; i++) {
    const order = book.eventOrder[i]
    switch (book.eventKind[i]) {
      case 1:
        out.push({ ev: "accepted", id: book.orderId(order) })
        break
      case 2:
        out.push({ ev: "rejected", id: book.rejectedId, reason: REJECT_NAMES[book.eventReason[i]] })
        break
      case 3:
        out.push({
          ev: "trade",
          maker: book.orderId(order),
          taker: book.orderId(book.eventTaker[i]),
          price: book.priceUnit.format(book.eventPrice[i]),
          qty: book.qtyUnit.format(book.eventQty[i]),
          tradeId: book.eventTradeId[i]
        })
        break
      case 4:
        out.push({ ev: "done", id: book.orderId(order), reason: DONE_NAMES[book.eventReason[i]] })
        break
      case 5:
        out.push({ ev: "moved", id: book.orderId(order) })
        break
    }
  }
  return out
}

/** The last command's events as JSON lines (each ending in "\n"), exactly as `tessera replay` prints them. */
export const eventLines = (book: OrderBook): string => {
  let s = ""
  const n = book.eventCount
  const kinds = book.eventKind
  const orders = book.eventOrder
  for (let i = 0; i < n; i++) {
    switch (kinds[i]) {
      case 1:
        s += `{"ev":"accepted","id":${jsonString(book.orderId(orders[i]))}}\n`
        break
      case 2:
        s += `{"ev":"rejected","id":${jsonString(book.rejectedId)},"reason":"${REJECT_NAMES[book.eventReason[i]]}"}\n`
        break
      case 3:
        s +=
          `{"ev":"trade","maker":${jsonString(book.orderId(orders[i]))},` +
          `"taker":${jsonString(book.orderId(book.eventTaker[i]))},` +
          `"price":"${book.priceUnit.format(book.eventPrice[i])}","qty":"${book.qtyUnit.format(book.eventQty[i])}"}\n`
        break
      case 4:
        s += `{"ev":"done","id":${jsonString(book.orderId(orders[i]))},"reason":"${DONE_NAMES[book.eventReason[i]]}"}\n`
        break
      case 5:
        s += `{"ev":"moved","id":${jsonString(book.orderId(orders[i]))}}\n`
        break
    }
  }
  return s
}

/** A `book` event line for a depth. */
export const bookLine = (depth: Depth): string => {
  let s = '{"ev":"book","bids":['
  for (let i = 0; i < depth.bids.length; i++) {
    const [p, q] = depth.bids[i]
    s += `${i === 0 ? "" : ","}["${p}","${q}"]`
  }
  s += '],"asks":['
  for (let i = 0; i < depth.asks.length; i++) {
    const [p, q] = depth.asks[i]
    s += `${i === 0 ? "" : ","}["${p}","${q}"]`
  }
  return s + "]}\n"
}

/** JSON string literal; skips JSON.stringify for the common plain-ASCII id. */
export const jsonString = (s: string): string => {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return JSON.stringify(s)
  }
  return `"${s}"`
}
