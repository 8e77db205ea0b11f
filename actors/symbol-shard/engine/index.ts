export * as Decimal from "./Decimal.ts"
export * as Events from "./events.ts"
export * as OrderBook from "./OrderBook.ts"
