/**
 * Client-side adaptive throttling, the back-off half of admission control (as in Google's SRE book, "Handling
 * Overload"). The client counts, over the last `windowMs`, the requests it meant to send and those the gateway
 * accepted (answered with anything but `Overloaded`). While the gateway accepts everything nothing changes; once it
 * refuses, the client refuses a share of new requests itself, with probability
 * `max(0, (requests - k * accepts) / (requests + 1))`, so about `k` times what the gateway accepts still reaches it.
 * Requests refused here count as requests, so the share keeps up with a gateway that refuses more; it falls back to
 * zero as accepts return. `k` above 1 leaves headroom to notice the gateway recovering.
 *
 * Past saturation the refused requests then cost the gateway nothing: no bytes to read, no payload to parse, no
 * reply, which on a saturated runner is the CPU its admitted work needs.
 */

export interface ThrottleOptions {
  /** Requests sent per request accepted before the client refuses any itself (default 2). */
  readonly k?: number
  /** The window the counts cover, in milliseconds (default 1000): the client sends everything again within two. */
  readonly windowMs?: number
}

/** Buckets the window is counted in. */
const buckets = 10

export interface Throttle {
  /** Whether to send a request at `now` (ms, any monotonic clock); counts it either way. */
  readonly admit: (now: number) => boolean
  /** The gateway accepted a request at `now`. */
  readonly accepted: (now: number) => void
  /** The share of requests the client refuses now, 0-1. */
  readonly rejectShare: (now: number) => number
}

/** A throttle; `random` draws the refusals (default `Math.random`). */
export const make = (options: ThrottleOptions = {}, random: () => number = Math.random): Throttle => {
  const k = options.k ?? 2
  const bucketMs = (options.windowMs ?? 1000) / buckets
  const requests = new Float64Array(buckets)
  const accepts = new Float64Array(buckets)
  let requestSum = 0
  let acceptSum = 0
  // The bucket index of the latest count (time / bucketMs, floored).
  let current = 0
  const advance = (now: number) => {
    const bucket = Math.floor(now / bucketMs)
    if (bucket <= current) return
    // Buckets older than the window are emptied, at most all of them.
    for (let b = Math.max(current + 1, bucket - buckets + 1); b <= bucket; b++) {
      const i = b % buckets
      requestSum -= requests[i]
      acceptSum -= accepts[i]
      requests[i] = 0
      accepts[i] = 0
    }
    current = bucket
  }
  const rejectShare = (now: number) => {
    advance(now)
    return Math.max(0, (requestSum - k * acceptSum) / (requestSum + 1))
  }
  return {
    admit: (now) => {
      const share = rejectShare(now)
      requests[current % buckets]++
      requestSum++
      return share === 0 || random() >= share
    },
    accepted: (now) => {
      advance(now)
      accepts[current % buckets]++
      acceptSum++
    },
    rejectShare
  }
}
