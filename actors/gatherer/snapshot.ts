/**
 * Venue snapshot fetch: `GET /snapshot?market=&from=&epoch=` with a deadline, a body size cap and Schema
 * validation, so a slow, huge or lying venue answer is a typed `SnapshotError` (retried by the deduplicator with
 * backoff), never a stalled market or a poisoned window (a `firstSeq` of 1e15 is refused here).
 */
import { Data, Duration, Effect, Schema } from "effect"
import { type DeltaColumns, emptyColumns, pushDelta } from "./dedup.ts"
import { epochSpan, escapeVenue, maxEpoch, storedSeq } from "./feed.ts"

export type SnapshotFailure = "timeout" | "http" | "oversize" | "invalid" | "network"

export class SnapshotError extends Data.TaggedError("SnapshotError")<{
  readonly market: string
  readonly reason: SnapshotFailure
  /** Venue data in it is escaped and truncated (it goes to logs and `tessera gather status`). */
  readonly message: string
}> {}

const VenueSeq = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: epochSpan - 1 }))

const SnapshotBody = Schema.Struct({
  market: Schema.String,
  epoch: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: maxEpoch }))),
  firstSeq: VenueSeq,
  // firstSeq - 1 when nothing is retained from `from` on.
  lastSeq: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: epochSpan - 1 })),
  d: Schema.Array(
    Schema.Tuple([
      Schema.String,
      VenueSeq,
      Schema.Finite,
      Schema.Literals([0, 1]),
      Schema.Finite,
      Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))
    ])
  )
})

const decodeBody = Schema.decodeUnknownEffect(SnapshotBody)

export interface Snapshot {
  readonly market: string
  readonly epoch: number
  /** Stored seq (`epoch * 2^40 + venue seq`) of the first delta. */
  readonly firstSeq: number
  /** The deltas, stored seqs ascending and contiguous from `firstSeq`. */
  readonly deltas: DeltaColumns
}

export interface SnapshotLimits {
  readonly timeout: Duration.Duration
  readonly maxBytes: number
}

const fail = (market: string, reason: SnapshotFailure, message: string) =>
  new SnapshotError({ market, reason, message: `snapshot ${escapeVenue(market, 60)}: ${message}` })

/** Reads at most `maxBytes` of the body; past that the request is aborted. */
const readCapped = async (response: Response, maxBytes: number, abort: () => void): Promise<string | undefined> => {
  const declared = Number(response.headers.get("content-length") ?? "0")
  if (declared > maxBytes) {
    abort()
    return undefined
  }
  if (response.body === null) return ""
  const reader = response.body.getReader()
  const chunks: Array<Uint8Array> = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > maxBytes) {
      abort()
      return undefined
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks).toString("utf8")
}

/**
 * Fetches everything the venue retains for `market` from stored seq `fromSeq` on. A snapshot of a later epoch (the
 * venue reset the market) starts at that epoch's first retained seq.
 */
export const fetchSnapshot = (
  base: string,
  market: string,
  fromSeq: number,
  limits: SnapshotLimits
): Effect.Effect<Snapshot, SnapshotError> => {
  const epoch = Math.floor(fromSeq / epochSpan)
  const from = fromSeq % epochSpan
  const url = `${base}/snapshot?market=${encodeURIComponent(market)}&from=${from}&epoch=${epoch}`
  return Effect.tryPromise({
    try: async (signal) => {
      const controller = new AbortController()
      const onAbort = () => controller.abort()
      signal.addEventListener("abort", onAbort, { once: true })
      try {
        const response = await fetch(url, { signal: controller.signal })
        if (!response.ok) {
          await response.body?.cancel()
          throw fail(market, "http", `HTTP ${response.status}`)
        }
        const text = await readCapped(response, limits.maxBytes, onAbort)
        if (text === undefined) throw fail(market, "oversize", `body over ${limits.maxBytes} bytes`)
        return text
      } finally {
        signal.removeEventListener("abort", onAbort)
      }
    },
    catch: (cause) =>
      cause instanceof SnapshotError ? cause : fail(market, "network", escapeVenue((cause as Error)?.message ?? cause))
  }).pipe(
    Effect.timeoutOrElse({
      duration: limits.timeout,
      orElse: () => Effect.fail(fail(market, "timeout", `no answer within ${Duration.format(limits.timeout)}`))
    }),
    Effect.flatMap((text) => {
      let json: unknown
      try {
        json = JSON.parse(text)
      } catch {
        return Effect.fail(fail(market, "invalid", `not JSON: ${escapeVenue(text, 80)}`))
      }
      return decodeBody(json).pipe(
        Effect.mapError((error) => fail(market, "invalid", escapeVenue(error.message))),
        Effect.flatMap((body) => {
          const bodyEpoch = body.epoch ?? 0
          if (body.market !== market) {
            return Effect.fail(fail(market, "invalid", `answered for market ${escapeVenue(body.market, 60)}`))
          }
          if (bodyEpoch < epoch) return Effect.fail(fail(market, "invalid", `epoch ${bodyEpoch} before ${epoch}`))
          // Contiguous from firstSeq to lastSeq, all of this market: what the window relies on.
          if (body.d.length !== body.lastSeq - body.firstSeq + 1) {
            return Effect.fail(
              fail(market, "invalid", `${body.d.length} deltas for seqs ${body.firstSeq}..${body.lastSeq}`)
            )
          }
          const deltas = emptyColumns()
          for (let i = 0; i < body.d.length; i++) {
            const d = body.d[i]
            if (d[0] !== market || d[1] !== body.firstSeq + i) {
              return Effect.fail(fail(market, "invalid", `delta ${i} is not ${market}/${body.firstSeq + i}`))
            }
            pushDelta(deltas, market, storedSeq(bodyEpoch, d[1]), d[2], d[3], d[4], d[5])
          }
          return Effect.succeed({ market, epoch: bodyEpoch, firstSeq: storedSeq(bodyEpoch, body.firstSeq), deltas })
        })
      )
    })
  )
}
