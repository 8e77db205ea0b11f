// Open-loop order load for the tps and failover benches: orders are scheduled at a fixed arrival rate, coalesced
// per symbol into PlaceBatch messages (at most `maxInFlight` per symbol; the rest wait for the next send), and
// latency is measured from each order's scheduled time, so a slow system cannot slow the load (no coordinated
// omission). A failed or timed-out batch is retried with the same client order ids until acknowledged.
import { Effect, Exit } from "effect"
import type { PlaceOrder } from "../actors/symbol-shard/protocol.ts"
import type * as TesseraClient from "../packages/client/src/TesseraClient.ts"

export interface LoadResult {
  readonly offered: number
  readonly acked: number
  readonly seconds: number
  readonly latenciesMs: Float64Array
  readonly ackedIds: Array<string>
  readonly lastAckAt: Map<string, number>
}

interface Pending {
  readonly order: PlaceOrder
  readonly scheduledAt: number
}

let seed = 12345
const rand = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed / 2147483648
}

/** A mix that keeps books bounded: resting limit orders near the mid and marketable IOC orders. */
export const makeOrder = (account: string, clientOrderId: string): PlaceOrder => {
  const buy = rand() < 0.5
  const offset = Math.floor(rand() * 20) + 1
  if (rand() < 0.5) {
    return {
      account,
      clientOrderId,
      side: buy ? "buy" : "sell",
      price: String(buy ? 100 - offset : 100 + offset),
      qty: "1"
    }
  }
  return {
    account,
    clientOrderId,
    side: buy ? "buy" : "sell",
    price: String(buy ? 100 + offset : 100 - offset),
    qty: "1",
    tif: "IOC"
  }
}

export const percentile = (sorted: Float64Array, p: number): number =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]

/**
 * Offers `rate` orders/s for `seconds` over `symbols` (symbol i through `clients[route[i]]`, by default
 * `clients[i % clients.length]`), then waits
 * (up to `drainSeconds`) for outstanding batches.
 */
export const runLoad = async (options: {
  readonly clients: ReadonlyArray<TesseraClient.Client>
  readonly symbols: ReadonlyArray<string>
  readonly rate: number
  readonly seconds: number
  readonly tag: string
  readonly maxInFlight?: number
  readonly drainSeconds?: number
  readonly timeoutMs?: number
  readonly keepIds?: boolean
  /** Called with the symbol index, the wall-clock time of each acknowledged batch and when it was first sent. */
  readonly onAck?: (symbol: number, at: number, sentAt: number) => void
  /** The client index for each symbol (default: symbol i through `clients[i % clients.length]`). */
  readonly route?: ReadonlyArray<number>
}): Promise<LoadResult> => {
  const { clients, symbols, rate, seconds, tag } = options
  const maxInFlight = options.maxInFlight ?? 4
  const queues: Array<Array<Pending>> = symbols.map(() => [])
  const inFlight = new Int32Array(symbols.length)
  const latencies: Array<number> = []
  const ackedIds: Array<string> = []
  const lastAckAt = new Map<string, number>()
  const total = Math.floor(rate * seconds)
  let scheduled = 0
  let acked = 0
  let outstanding = 0
  const start = performance.now()

  const send = (s: number) => {
    const batch = queues[s].splice(0, 2000)
    inFlight[s]++
    outstanding++
    const sentAt = Date.now()
    const attempt = (): void => {
      const call = clients[options.route?.[s] ?? s % clients.length]
        ["SymbolShard.PlaceBatch"]({
          entityId: symbols[s],
          payload: { orders: batch.map((p) => p.order) }
        })
        .pipe(Effect.timeout(`${options.timeoutMs ?? 5000} millis`))
      void Effect.runPromiseExit(call).then((exit) => {
        if (Exit.isFailure(exit)) {
          setTimeout(attempt, 20)
          return
        }
        const now = performance.now()
        const results = exit.value.results
        for (let i = 0; i < results.length; i++) {
          if (results[i].orderId === undefined) continue
          acked++
          latencies.push(now - batch[i].scheduledAt)
          if (options.keepIds) ackedIds.push(`${symbols[s]} ${results[i].orderId}`)
        }
        lastAckAt.set(symbols[s], Date.now())
        options.onAck?.(s, Date.now(), sentAt)
        inFlight[s]--
        outstanding--
        if (queues[s].length > 0 && inFlight[s] < maxInFlight) send(s)
      })
    }
    attempt()
  }

  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now()
      const due = Math.min(total, Math.floor(((now - start) / 1000) * rate))
      while (scheduled < due) {
        const s = scheduled % symbols.length
        const scheduledAt = start + (scheduled / rate) * 1000
        queues[s].push({ order: makeOrder(`acct-${scheduled % 97}`, `${tag}-${scheduled}`), scheduledAt })
        scheduled++
      }
      for (let s = 0; s < symbols.length; s++) {
        if (queues[s].length > 0 && inFlight[s] < maxInFlight) send(s)
      }
      if (scheduled >= total) resolve()
      else setTimeout(tick, 1)
    }
    tick()
  })
  const drainBy = performance.now() + (options.drainSeconds ?? 30) * 1000
  while ((outstanding > 0 || queues.some((q) => q.length > 0)) && performance.now() < drainBy) {
    for (let s = 0; s < symbols.length; s++) {
      if (queues[s].length > 0 && inFlight[s] < maxInFlight) send(s)
    }
    await new Promise((r) => setTimeout(r, 2))
  }
  const elapsed = (performance.now() - start) / 1000
  const sorted = Float64Array.from(latencies).sort()
  return { offered: total, acked, seconds: elapsed, latenciesMs: sorted, ackedIds, lastAckAt }
}
