// Market-data audit for the chaos bench: the deltas the venue published that `orderbook_deltas` lacks, and each
// stream (`md:book:{market}`, `md:{symbol}:trades`) against its table by entry id (`<seq>-0`, `<trade_id>-0`):
// entries missing from the stream, and entries the stream holds twice or that no row backs.
import { execFileSync } from "node:child_process"
import type { Redis } from "ioredis"

/** One row per line, `|`-separated; psql's default output buffer is too small for whole tables. */
const rows = (databaseUrl: string, sql: string): Array<Array<string>> =>
  execFileSync("psql", [databaseUrl, "-v", "ON_ERROR_STOP=1", "-qAtc", sql], { maxBuffer: 512 * 1024 * 1024 })
    .toString()
    .split("\n")
    .filter((line) => line.length > 0)
    .map((line) => line.split("|"))

export interface MarketDataAudit {
  /** Seqs the venue published (from each market's first stored seq to its last) missing from the table. */
  readonly missing_deltas: number
  /** Table entries (deltas and trades) absent from their stream. */
  readonly stream_holes: number
  /** Stream entries no table row backs, or held twice. */
  readonly stream_extra: number
  readonly deltas: number
  readonly trades: number
}

/** Ids of a stream's entries, in stream order. */
const streamIds = async (redis: Redis, key: string): Promise<Array<string>> => {
  const ids: Array<string> = []
  let from = "-"
  for (;;) {
    const page = await redis.xrange(key, from, "+", "COUNT", 10_000)
    for (const [id] of page) ids.push(id)
    if (page.length < 10_000) return ids
    from = `(${page[page.length - 1][0]}`
  }
}

const compare = (table: ReadonlyArray<string>, stream: ReadonlyArray<string>) => {
  const inStream = new Set(stream)
  const inTable = new Set(table)
  let holes = 0
  for (const id of table) if (!inStream.has(id)) holes++
  let extra = stream.length - inStream.size
  for (const id of inStream) if (!inTable.has(id)) extra++
  return { holes, extra }
}

/** Audits once; `lastSeqs[m]` is the venue's last published seq of `markets[m]`. */
export const auditMarketData = async (
  databaseUrl: string,
  redis: Redis,
  markets: ReadonlyArray<string>,
  lastSeqs: Float64Array,
  symbols: ReadonlyArray<string>
): Promise<MarketDataAudit> => {
  let missing = 0
  let holes = 0
  let extra = 0
  let deltas = 0
  let trades = 0
  const byMarket = new Map<string, Array<string>>()
  for (const [market, seq] of rows(databaseUrl, "SELECT market, seq FROM orderbook_deltas ORDER BY market, seq")) {
    const ids = byMarket.get(market)
    if (ids === undefined) byMarket.set(market, [`${seq}-0`])
    else ids.push(`${seq}-0`)
  }
  for (let m = 0; m < markets.length; m++) {
    const table = byMarket.get(markets[m]) ?? []
    deltas += table.length
    const first = table.length === 0 ? 1 : Number(table[0].slice(0, -2))
    missing += Math.max(0, lastSeqs[m] - first + 1 - table.length)
    const c = compare(table, await streamIds(redis, `md:book:${markets[m]}`))
    holes += c.holes
    extra += c.extra
  }
  const bySymbol = new Map<string, Array<string>>()
  for (const [symbol, id] of rows(databaseUrl, "SELECT symbol, trade_id FROM trades ORDER BY symbol, trade_id")) {
    const ids = bySymbol.get(symbol)
    if (ids === undefined) bySymbol.set(symbol, [`${id}-0`])
    else ids.push(`${id}-0`)
  }
  for (const symbol of symbols) {
    const table = bySymbol.get(symbol) ?? []
    trades += table.length
    const c = compare(table, await streamIds(redis, `md:${symbol}:trades`))
    holes += c.holes
    extra += c.extra
  }
  return { missing_deltas: missing, stream_holes: holes, stream_extra: extra, deltas, trades }
}

/** Audits until everything is caught up (all three counts 0) or `withinMs` passes; the last audit and its time. */
export const settleMarketData = async (
  audit: () => Promise<MarketDataAudit>,
  withinMs: number
): Promise<MarketDataAudit & { readonly settled_s: number }> => {
  const start = Date.now()
  for (;;) {
    const result = await audit()
    const done = result.missing_deltas === 0 && result.stream_holes === 0 && result.stream_extra === 0
    if (done || Date.now() - start > withinMs)
      return { ...result, settled_s: +((Date.now() - start) / 1000).toFixed(1) }
    await new Promise((r) => setTimeout(r, 1000))
  }
}
