// Market-data audit for the chaos bench: the deltas the venue published that `orderbook_deltas` lacks, and each
// stream (`md:book:{market}`, `md:{symbol}:trades`) against its table by entry id (`<seq>-0`, `<trade_id>-0`):
// entries missing from the stream, and entries the stream holds twice or that no row backs. A stream is capped with
// `MAXLEN ~ n` (it keeps at least n entries): rows before the first entry of a stream that holds n are trimmed.
import { execFileSync } from "node:child_process"
import type { Redis } from "ioredis"
import { bookStreamMaxLen } from "../actors/gatherer/bookPublisher.ts"
import { streamMaxLen } from "../actors/symbol-shard/marketData.ts"

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
  /** Of those: after the market's last stored seq (no later copy reached a deduplicator to show the gap). */
  readonly missing_tail: number
  /** Table entries (deltas and trades) absent from their stream, retention aside. */
  readonly stream_holes: number
  /** Of those: before the stream's first entry (stream shorter than its cap), between its first and last entry
   * (permanent: an XADD at or below the last id is refused), after its last entry (not republished yet). */
  readonly holes_head: number
  readonly holes_inside: number
  readonly holes_tail: number
  /** Table entries before the first entry of a stream at its cap: trimmed by `MAXLEN ~`, not holes. */
  readonly stream_trimmed: number
  /** The streams with the most holes (at most 8): key, holes (head/inside/tail), first hole, stream length. */
  readonly hole_streams: ReadonlyArray<string>
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

const seqOf = (id: string): number => Number(id.slice(0, id.indexOf("-")))

interface Comparison {
  head: number
  inside: number
  tail: number
  trimmed: number
  extra: number
  firstHole: string | undefined
}

/** `table` ascending; a stream of at least `maxLen` entries may have lost the rows before its first to trimming. */
const compare = (table: ReadonlyArray<string>, stream: ReadonlyArray<string>, maxLen: number): Comparison => {
  const inStream = new Set(stream)
  const inTable = new Set(table)
  const first = stream.length === 0 ? Number.POSITIVE_INFINITY : seqOf(stream[0])
  const last = stream.length === 0 ? 0 : seqOf(stream[stream.length - 1])
  const c: Comparison = { head: 0, inside: 0, tail: 0, trimmed: 0, extra: 0, firstHole: undefined }
  for (const id of table) {
    if (inStream.has(id)) continue
    const seq = seqOf(id)
    if (seq < first && stream.length >= maxLen) {
      c.trimmed++
      continue
    }
    c.firstHole ??= id
    if (seq < first) c.head++
    else if (seq < last) c.inside++
    else c.tail++
  }
  c.extra = stream.length - inStream.size
  for (const id of inStream) if (!inTable.has(id)) c.extra++
  return c
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
  let missingTail = 0
  let head = 0
  let inside = 0
  let tail = 0
  let trimmed = 0
  let extra = 0
  let deltas = 0
  let trades = 0
  const holed: Array<{ readonly holes: number; readonly line: string }> = []
  const add = (key: string, c: Comparison, length: number) => {
    head += c.head
    inside += c.inside
    tail += c.tail
    trimmed += c.trimmed
    extra += c.extra
    const holes = c.head + c.inside + c.tail
    if (holes > 0)
      holed.push({
        holes,
        line: `${key} ${holes} (${c.head}/${c.inside}/${c.tail}) first ${c.firstHole} of ${length} entries`
      })
  }
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
    missingTail += Math.max(0, lastSeqs[m] - (table.length === 0 ? 0 : Number(table[table.length - 1].slice(0, -2))))
    const key = `md:book:${markets[m]}`
    const stream = await streamIds(redis, key)
    add(key, compare(table, stream, bookStreamMaxLen), stream.length)
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
    const key = `md:${symbol}:trades`
    const stream = await streamIds(redis, key)
    add(key, compare(table, stream, streamMaxLen), stream.length)
  }
  holed.sort((a, b) => b.holes - a.holes)
  return {
    missing_deltas: missing,
    missing_tail: missingTail,
    stream_holes: head + inside + tail,
    holes_head: head,
    holes_inside: inside,
    holes_tail: tail,
    stream_trimmed: trimmed,
    stream_extra: extra,
    hole_streams: holed.slice(0, 8).map((h) => h.line),
    deltas,
    trades
  }
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
