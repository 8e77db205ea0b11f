// Open-loop order load for the tps and failover benches: orders are scheduled at a fixed arrival rate, coalesced
// per symbol into PlaceBatch messages (at most `maxInFlight` per symbol; the rest wait for the next send), and
// latency is measured from each order's scheduled time, so a slow system cannot slow the load (no coordinated
// omission). A failed or timed-out batch is retried with the same client order ids until acknowledged.

import type * as TesseraClient from "@tessera/client/TesseraClient"
import type { Throttle } from "@tessera/client/Throttle"
import { Cause, Effect, Exit, Option } from "effect"
import type { SeedApi } from "../actors/api.ts"
import type { PlaceOrder } from "../actors/symbol-shard/protocol.ts"
import { failureTag, type WireClient } from "./wireClient.ts"

/** A PlaceMany entry as the wire carries it (JSON, undecoded). */
interface WireEntry {
  readonly _tag: string
  readonly results?: ReadonlyArray<{ readonly orderId?: unknown }>
  readonly error?: { readonly _tag?: string; readonly message?: string }
}

/**
 * A failed entry's tag for the figures; `ShardUnavailable` split by its cause: `:deadline` (PlaceMany's entry
 * deadline), `:recovering` (the shard re-reading its state after a journal write went unanswered).
 */
const entryTag = (error: { readonly _tag?: string; readonly message?: string } | undefined): string => {
  const tag = error?._tag ?? "other"
  if (tag !== "ShardUnavailable" || error?.message === undefined) return tag
  if (error.message.includes("did not answer within")) return "ShardUnavailable:deadline"
  if (error.message.includes("is unavailable")) return "ShardUnavailable:recovering"
  return tag
}

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

/**
 * The open-loop schedule both loads share: every millisecond, the orders due by now (order n of the run is due
 * `n / rate` seconds after the start, on symbol `n mod symbols`) join their symbol's queue and `pump` sends what it
 * may; after the last one, `pump` keeps going until nothing is queued or outstanding, for at most `drainSeconds`.
 * Returns the seconds from start to end.
 */
const drive = async (options: {
  readonly symbols: ReadonlyArray<string>
  readonly rate: number
  readonly seconds: number
  readonly tag: string
  readonly drainSeconds?: number
  readonly queues: ReadonlyArray<Array<Pending>>
  readonly pump: () => void
  readonly outstanding: () => number
}): Promise<number> => {
  const { symbols, rate, tag, queues, pump } = options
  const total = Math.floor(rate * options.seconds)
  const start = performance.now()
  let scheduled = 0
  await new Promise<void>((resolve) => {
    const tick = () => {
      // Order n is due at n / rate: by `elapsed`, orders 0 .. floor(elapsed * rate) are.
      const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate) + 1)
      while (scheduled < due) {
        const scheduledAt = start + (scheduled / rate) * 1000
        queues[scheduled % symbols.length].push({
          order: makeOrder(`acct-${scheduled % 97}`, `${tag}-${scheduled}`),
          scheduledAt
        })
        scheduled++
      }
      pump()
      if (scheduled >= total) resolve()
      else setTimeout(tick, 1)
    }
    tick()
  })
  const drainBy = performance.now() + (options.drainSeconds ?? 30) * 1000
  while ((options.outstanding() > 0 || queues.some((q) => q.length > 0)) && performance.now() < drainBy) {
    pump()
    await new Promise((r) => setTimeout(r, 2))
  }
  return (performance.now() - start) / 1000
}

export const percentile = (sorted: Float64Array, p: number): number =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]

/** What both order loads take. */
interface LoadOptions {
  readonly clients: ReadonlyArray<TesseraClient.Client<SeedApi>>
  readonly symbols: ReadonlyArray<string>
  readonly rate: number
  readonly seconds: number
  /** Prefix of the client order ids of this load. */
  readonly tag: string
  readonly maxInFlight?: number
  readonly drainSeconds?: number
  readonly timeoutMs?: number
  /** The client index for each symbol (default: symbol i through `clients[i % clients.length]`). */
  readonly route?: ReadonlyArray<number>
}

/** The symbol indexes each client sends (`route`, default symbol i through client i mod n). */
const symbolsByClient = (options: LoadOptions): Array<Array<number>> => {
  const { clients, symbols, route } = options
  const clientOf = symbols.map((_, s) => route?.[s] ?? s % clients.length)
  return clients.map((_, c) => symbols.flatMap((_, s) => (clientOf[s] === c ? [s] : [])))
}

/**
 * Offers `rate` orders/s for `seconds` over `symbols` (symbol i through `clients[route[i]]`, by default
 * `clients[i % clients.length]`), then waits
 * (up to `drainSeconds`) for outstanding batches.
 */
export const runLoad = async (
  options: LoadOptions & {
    readonly keepIds?: boolean
    /** Called with the symbol index, the wall-clock time of each acknowledged batch and when it was first sent. */
    readonly onAck?: (symbol: number, at: number, sentAt: number) => void
  }
): Promise<LoadResult> => {
  const { clients, symbols, rate, seconds } = options
  const maxInFlight = options.maxInFlight ?? 4
  const queues: Array<Array<Pending>> = symbols.map(() => [])
  const inFlight = new Int32Array(symbols.length)
  const latencies: Array<number> = []
  const ackedIds: Array<string> = []
  const lastAckAt = new Map<string, number>()
  let acked = 0
  let outstanding = 0
  // Set when the run returns: a request still out then is dropped when it fails, not retried forever.
  let finished = false

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
          if (finished) {
            outstanding--
            return
          }
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

  const pump = () => {
    for (let s = 0; s < symbols.length; s++) {
      if (queues[s].length > 0 && inFlight[s] < maxInFlight) send(s)
    }
  }
  const elapsed = await drive({ ...options, queues, pump, outstanding: () => outstanding })
  finished = true
  const sorted = Float64Array.from(latencies).sort()
  return { offered: Math.floor(rate * seconds), acked, seconds: elapsed, latenciesMs: sorted, ackedIds, lastAckAt }
}

/**
 * The same open-loop load sent with `Orders.PlaceMany`: the symbols are grouped by client (`route`, as in
 * `runLoad`), and each request carries every queued order of the client's symbols (one entry per symbol). A client
 * sends whenever it has nothing in flight; a further request (up to `maxInFlight`, default 2) only once `eagerBacklog`
 * (default 64) orders wait: one request at a time keeps the message count low at moderate rates, a second one keeps
 * the runner busy while a large request is being made durable under heavy load. A failed entry, or a whole failed request, puts its orders back at the head of
 * their queues: they are sent again with the same client order ids (the shards answer retries with the first
 * results). Latency is measured from each order's scheduled time.
 */
export const runLoadMany = async (
  options: LoadOptions & {
    readonly eagerBacklog?: number
    /** Called with the time (`performance.now()`) each request was answered and when it was sent. */
    readonly onAck?: (client: number, at: number, sentAt: number) => void
  }
): Promise<LoadResult> => {
  const { clients, symbols, rate, seconds } = options
  const maxInFlight = options.maxInFlight ?? 2
  const eagerBacklog = options.eagerBacklog ?? 64
  const groups = symbolsByClient(options)
  const queues: Array<Array<Pending>> = symbols.map(() => [])
  const inFlight = new Int32Array(clients.length)
  const latencies: Array<number> = []
  let acked = 0
  let outstanding = 0
  // Set when the run returns: nothing is sent after it (a request failing later is not retried).
  let finished = false

  const backlog = (c: number) => {
    let n = 0
    for (const s of groups[c]) n += queues[s].length
    return n
  }
  /** Whether client `c` should send now (see above). */
  const ready = (c: number) => {
    if (inFlight[c] >= maxInFlight) return false
    const waiting = backlog(c)
    return inFlight[c] === 0 ? waiting > 0 : waiting >= eagerBacklog
  }
  const send = (c: number) => {
    if (finished) return
    const taken: Array<{ readonly s: number; readonly batch: Array<Pending> }> = []
    let room = 5000
    for (const s of groups[c]) {
      if (queues[s].length === 0 || room === 0) continue
      const batch = queues[s].splice(0, room)
      room -= batch.length
      taken.push({ s, batch })
    }
    inFlight[c]++
    outstanding++
    const sentAt = performance.now()
    const requeue = (s: number, batch: Array<Pending>) => {
      queues[s].unshift(...batch)
    }
    const call = clients[c]
      ["Orders.PlaceMany"]({
        batches: taken.map(({ s, batch }) => ({ symbol: symbols[s], orders: batch.map((p) => p.order) }))
      })
      .pipe(Effect.timeout(`${options.timeoutMs ?? 5000} millis`))
    void Effect.runPromiseExit(call).then((exit) => {
      inFlight[c]--
      outstanding--
      if (Exit.isFailure(exit)) {
        for (const { s, batch } of taken) requeue(s, batch)
        setTimeout(() => {
          if (ready(c)) send(c)
        }, 20)
        return
      }
      const now = performance.now()
      const entries = exit.value.results
      for (let i = 0; i < taken.length; i++) {
        const entry = entries[i]
        const { s, batch } = taken[i]
        if (entry === undefined || entry._tag !== "Placed") {
          requeue(s, batch)
          continue
        }
        const results = entry.results
        for (let j = 0; j < results.length; j++) {
          if (results[j].orderId === undefined) continue
          acked++
          latencies.push(now - batch[j].scheduledAt)
        }
      }
      options.onAck?.(c, performance.now(), sentAt)
      if (ready(c)) send(c)
    })
  }

  const pump = () => {
    for (let c = 0; c < clients.length; c++) if (ready(c)) send(c)
  }
  const elapsed = await drive({ ...options, queues, pump, outstanding: () => outstanding })
  finished = true
  const sorted = Float64Array.from(latencies).sort()
  return {
    offered: Math.floor(rate * seconds),
    acked,
    seconds: elapsed,
    latenciesMs: sorted,
    ackedIds: [],
    lastAckAt: new Map()
  }
}

/** What an open-loop run against admission control counts besides acknowledgements. */
export interface OpenLoadResult extends LoadResult {
  /** Orders refused with `Overloaded` (not retried: the open loop's next orders are the new demand). */
  readonly overloaded: number
  /** Latency from the scheduled time to the `Overloaded` answer, sorted. */
  readonly overloadedMs: Float64Array
  /** Orders answered with another failure (a failed entry, a transport error or a timeout), by tag. */
  readonly failed: Readonly<Record<string, number>>
  /** Of the `overloaded` orders, those the client's back-off held without sending (with `throttles`). */
  readonly held: number
}

/**
 * Open loop with no client-side queue: every `tickMs` each client sends one `Orders.PlaceMany` with all the orders
 * that fell due on its symbols since its last send (entries rotated so no symbol is always last), however many of
 * its requests are still out (at most `maxInFlight`, default 512, as a guard for the generator itself). The
 * gateways' admission control decides: an `Overloaded` answer is counted with its latency and not retried, so past
 * saturation the figures show what the runners accept and how fast they refuse the rest.
 */
export const runLoadOpen = async (
  options: LoadOptions & {
    readonly tickMs?: number
    /** Send through these raw ndjson clients (one per gateway, as `clients`) instead of the TesseraClients. */
    readonly wire?: ReadonlyArray<WireClient>
    /** With `wire`: each gateway's client back-off (TesseraClient's `throttle`), consulted before each send. */
    readonly throttles?: ReadonlyArray<Throttle>
  }
): Promise<OpenLoadResult> => {
  const { clients, symbols, rate, seconds } = options
  const tickMs = options.tickMs ?? 5
  const maxInFlight = options.maxInFlight ?? 512
  const groups = symbolsByClient(options)
  const queues: Array<Array<Pending>> = symbols.map(() => [])
  const inFlight = new Int32Array(clients.length)
  const lastSend = new Float64Array(clients.length)
  const rotation = new Int32Array(clients.length)
  const latencies: Array<number> = []
  const refusals: Array<number> = []
  const failed: Record<string, number> = {}
  let acked = 0
  let overloaded = 0
  let held = 0
  let outstanding = 0
  const fail = (tag: string, n: number) => {
    failed[tag] = (failed[tag] ?? 0) + n
  }
  const tagOf = (cause: Cause.Cause<unknown>): string => {
    const error = Cause.findErrorOption(cause)
    if (Option.isNone(error)) return Cause.hasInterrupts(cause) ? "interrupted" : "defect"
    const tag = (error.value as { readonly _tag?: unknown })._tag
    return typeof tag === "string" ? tag : "other"
  }

  const send = (c: number) => {
    const group = groups[c]
    const taken: Array<{ readonly s: number; readonly batch: Array<Pending> }> = []
    const start = rotation[c]++ % Math.max(1, group.length)
    // At most 5000 orders in all (the PlaceMany limit); a symbol left out goes first next time.
    let room = 5000
    for (let k = 0; k < group.length && room > 0; k++) {
      const s = group[(start + k) % group.length]
      if (queues[s].length === 0) continue
      const batch = queues[s].splice(0, room)
      room -= batch.length
      taken.push({ s, batch })
    }
    if (taken.length === 0) return
    const throttle = options.throttles?.[c]
    if (throttle !== undefined && !throttle.admit(performance.now())) {
      // Held back by the client: answered Overloaded here, at once.
      const now = performance.now()
      for (const { batch } of taken) {
        overloaded += batch.length
        held += batch.length
        for (const p of batch) refusals.push(now - p.scheduledAt)
      }
      return
    }
    inFlight[c]++
    outstanding++
    if (options.wire !== undefined) {
      const payload = JSON.stringify({
        batches: taken.map(({ s, batch }) => ({ symbol: symbols[s], orders: batch.map((p) => p.order) }))
      })
      void options.wire[c].call("Orders.PlaceMany", payload, options.timeoutMs ?? 5000).then((exit) => {
        inFlight[c]--
        outstanding--
        const now = performance.now()
        const tag = exit._tag === "Success" ? "none" : failureTag(exit)
        if (exit._tag !== "Success") {
          if (tag !== "Overloaded") throttle?.accepted(now)
          for (const { batch } of taken) {
            if (tag === "Overloaded") {
              overloaded += batch.length
              for (const p of batch) refusals.push(now - p.scheduledAt)
            } else fail(tag, batch.length)
          }
          return
        }
        const entries = (exit.value as { readonly results: ReadonlyArray<WireEntry> }).results
        // A request whose every entry a shard refused Overloaded counts as refused for the back-off.
        let accepted = false
        for (let i = 0; i < taken.length; i++) {
          const entry = entries[i]
          const { batch } = taken[i]
          if (entry === undefined || entry._tag !== "Placed") {
            const why = entry === undefined ? "missing" : entryTag(entry.error)
            if (why === "Overloaded") {
              overloaded += batch.length
              for (const p of batch) refusals.push(now - p.scheduledAt)
            } else {
              accepted = true
              fail(why, batch.length)
            }
            continue
          }
          accepted = true
          const results = entry.results ?? []
          for (let j = 0; j < results.length; j++) {
            if (results[j].orderId === undefined) continue
            acked++
            latencies.push(now - batch[j].scheduledAt)
          }
        }
        if (accepted) throttle?.accepted(now)
      })
      return
    }
    const call = clients[c]
      ["Orders.PlaceMany"]({
        batches: taken.map(({ s, batch }) => ({ symbol: symbols[s], orders: batch.map((p) => p.order) }))
      })
      .pipe(Effect.timeout(`${options.timeoutMs ?? 5000} millis`))
    void Effect.runPromiseExit(call).then((exit) => {
      inFlight[c]--
      outstanding--
      const now = performance.now()
      if (Exit.isFailure(exit)) {
        const tag = tagOf(exit.cause)
        for (const { batch } of taken) {
          if (tag === "Overloaded") {
            overloaded += batch.length
            for (const p of batch) refusals.push(now - p.scheduledAt)
          } else fail(tag, batch.length)
        }
        return
      }
      const entries = exit.value.results
      for (let i = 0; i < taken.length; i++) {
        const entry = entries[i]
        const { batch } = taken[i]
        if (entry === undefined || entry._tag !== "Placed") {
          const why = entry === undefined ? "missing" : entryTag(entry.error)
          if (why === "Overloaded") {
            overloaded += batch.length
            for (const p of batch) refusals.push(now - p.scheduledAt)
          } else fail(why, batch.length)
          continue
        }
        const results = entry.results
        for (let j = 0; j < results.length; j++) {
          if (results[j].orderId === undefined) continue
          acked++
          latencies.push(now - batch[j].scheduledAt)
        }
      }
    })
  }

  const pump = () => {
    const now = performance.now()
    for (let c = 0; c < clients.length; c++) {
      if (now - lastSend[c] < tickMs) continue
      if (inFlight[c] >= maxInFlight) {
        // The generator's own guard: what is due waits for the next tick rather than piling requests up.
        continue
      }
      lastSend[c] = now
      send(c)
    }
  }
  const elapsed = await drive({ ...options, queues, pump, outstanding: () => outstanding })
  return {
    offered: Math.floor(rate * seconds),
    acked,
    seconds: elapsed,
    latenciesMs: Float64Array.from(latencies).sort(),
    ackedIds: [],
    lastAckAt: new Map(),
    overloaded,
    overloadedMs: Float64Array.from(refusals).sort(),
    failed,
    held
  }
}
