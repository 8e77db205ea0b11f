/**
 * Market-data subscriptions (`MarketData.Subscribe`): the gateway streams the Valkey streams that modules declare
 * (`Module.marketData`) to clients.
 *
 * Fan-out: one read loop per stream key per runner (a fiber doing blocking XREAD on that key alone, so it is safe on
 * a Valkey cluster), started by the key's first subscriber and stopped after its last. Every subscriber of the key
 * gets the same event objects, so a thousand subscribers to one symbol cost one read and one decode per entry.
 *
 * Resuming: a subscriber joins a key's loop at its current position (the last id the loop has delivered), so from
 * then on it gets every entry after that id. With `from`, the entries between `from` and the join point are read
 * with XRANGE first; the live entries that arrive meanwhile wait in its buffer. An entry at or below the last id
 * sent on that stream is never sent again, so a resumed client sees no repeat and no hole (within what the stream
 * still holds: streams are capped with MAXLEN).
 *
 * Backpressure: each subscriber has a bounded buffer. A subscriber whose buffer is full when an entry arrives is
 * dropped at once (typed `SlowConsumer`) and its buffer released; the loop never waits for it.
 */
import { MarketData, Module } from "@tessera/contracts"
import * as Metrics from "@tessera/platform/Metrics"
import { type StreamEntry, type StreamRead, Valkey } from "@tessera/platform/Valkey"
import {
  Cause,
  Context,
  Deferred,
  type Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Option,
  Queue,
  Schedule,
  Scope,
  Stream
} from "effect"
import * as Hosted from "./hosted.ts"

const readLoops = Metrics.gauge(
  "tessera_md_read_loops",
  "Market-data read loops running (one per subscribed stream key on this runner)"
)
const readLoopsStarted = Metrics.counter("tessera_md_read_loops_started_total", "Market-data read loops started")
const subscriptions = Metrics.gauge(
  "tessera_md_subscriptions",
  "MarketData.Subscribe streams open on this runner (counted once all their streams are live)"
)
const buffered = Metrics.gauge(
  "tessera_md_buffered_events",
  "Market-data events waiting in subscriber buffers (each buffer bounded; a full one cuts its subscriber off)"
)
const entriesRead = Metrics.counter("tessera_md_entries_read_total", "Stream entries read by the read loops")
const delivered = Metrics.counter("tessera_md_delivered_total", "Events handed to subscribers (live and catch-up)")
const slowConsumers = Metrics.counter(
  "tessera_md_slow_consumers_total",
  "Subscribers cut off with SlowConsumer because their buffer was full"
)
const readErrors = Metrics.counter("tessera_md_read_errors_total", "Failed XREAD / XREVRANGE of the read loops")

export interface HubOptions {
  /** Events buffered per subscriber, at most; one more cuts it off with `SlowConsumer`. */
  readonly subscriberBuffer: number
  /** Subscriptions open on the runner, at most (more are refused with `MarketDataUnavailable`). */
  readonly maxSubscriptions: number
  /** BLOCK of each read loop's XREAD, in milliseconds. */
  readonly blockMs: number
  /** Entries per XREAD and per catch-up XRANGE. */
  readonly readCount: number
  /** How long a subscription waits for a new loop's first read of its stream before refusing. */
  readonly joinTimeout: Duration.Input
}

export const defaults: HubOptions = {
  subscriberBuffer: 4096,
  maxSubscriptions: 10_000,
  blockMs: 5000,
  readCount: 512,
  joinTimeout: "10 seconds"
}

/** Canonical stream ids (`<ms>-<seq>`, no leading zeros), as Valkey writes them and clients send back. */
const idPattern = /^(0|[1-9][0-9]{0,19})-(0|[1-9][0-9]{0,19})$/

/** Compares two canonical stream ids numerically, without BigInt: a longer number is a larger one. */
export const compareIds = (a: string, b: string): number => {
  const da = a.indexOf("-")
  const db = b.indexOf("-")
  if (da !== db) return da - db
  const ms = a.slice(0, da) < b.slice(0, db) ? -1 : a.slice(0, da) > b.slice(0, db) ? 1 : 0
  if (ms !== 0) return ms
  const sa = a.length - da
  const sb = b.length - db
  if (sa !== sb) return sa - sb
  const ta = a.slice(da + 1)
  const tb = b.slice(db + 1)
  return ta < tb ? -1 : ta > tb ? 1 : 0
}

interface Resolved {
  readonly key: string
  readonly kind: MarketData.Kind
  readonly source: string
  /** The last id the client already has, if it resumes this stream. */
  readonly from: string | undefined
}

type Listener = (event: MarketData.Event) => void

interface KeyLoop {
  readonly stream: Resolved
  readonly listeners: Set<Listener>
  /** The last id delivered (undefined until the loop has read the stream's top). */
  lastId: string | undefined
  readonly ready: Deferred.Deferred<string>
  /** Set when its last listener left: the loop ends (interrupted, or after the batch it is delivering). */
  stopped: boolean
  /** True while the loop hands a batch to its listeners (a loop cannot interrupt itself from a listener). */
  delivering: boolean
  fiber: Fiber.Fiber<void> | undefined
}

export interface HubStats {
  /** Read loops running (one per subscribed stream key). */
  readonly loops: number
  readonly subscriptions: number
  /** Events waiting in subscriber buffers. */
  readonly buffered: number
}

export interface HubShape {
  /** The events of `request`'s streams as they are published (after the catch-up from `from`). */
  readonly subscribe: (
    request: MarketData.SubscribeRequest
  ) => Stream.Stream<MarketData.Event, MarketData.SubscribeError>
  readonly stats: () => HubStats
}

export class Hub extends Context.Service<Hub, HubShape>()("tessera/runtime/subscriptions/Hub") {}

const invalid = (message: string) => new MarketData.InvalidSubscription({ message })

const unknownSource = (field: MarketData.Source["field"], id: string, reason: string) =>
  field === "symbols"
    ? new MarketData.UnknownSymbol({ symbol: id, message: `symbol ${JSON.stringify(id)} refused: ${reason}` })
    : new MarketData.UnknownMarket({ market: id, message: `market ${JSON.stringify(id)} refused: ${reason}` })

const eventOf = (stream: Resolved, entry: StreamEntry): MarketData.Event => ({
  stream: stream.key,
  id: entry.id,
  kind: stream.kind,
  source: stream.source,
  fields: entry.fields
})

/** Builds the hub on the node's Valkey, for the sources `sources` (by request field). */
export const make = (sources: ReadonlyArray<MarketData.Source>, options: Partial<HubOptions> = {}) =>
  Effect.gen(function* () {
    const merged = { ...defaults, ...options }
    // A read's entries are handed over at once: a buffer smaller than a read would cut off a subscriber keeping up.
    const settings = { ...merged, readCount: Math.min(merged.readCount, merged.subscriberBuffer) }
    const valkey = yield* Valkey
    const hubScope = yield* Effect.scope
    const byField = new Map(sources.map((source) => [source.field, source]))
    const loops = new Map<string, KeyLoop>()
    let open = 0
    let running = 0
    let waiting = 0
    const addBuffered = (n: number) => {
      waiting += n
      buffered.inc(n)
    }

    const unavailable = (message: string) => new MarketData.MarketDataUnavailable({ message })

    /** The streams a request names, checked; fails with the first problem and changes nothing. */
    const resolve = (request: MarketData.SubscribeRequest) =>
      Effect.gen(function* () {
        const named: Array<readonly [MarketData.Source["field"], string]> = []
        for (const field of ["symbols", "markets"] as const) {
          for (const id of request[field] ?? []) named.push([field, id])
        }
        if (named.length === 0) return yield* invalid("name at least one symbol or market")
        if (named.length > MarketData.maxSources) {
          return yield* invalid(`${named.length} symbols and markets exceed the limit of ${MarketData.maxSources}`)
        }
        const seen = new Set<string>()
        const streams: Array<Resolved> = []
        const from = request.from ?? {}
        for (const [field, id] of named) {
          if (seen.has(`${field}/${id}`)) return yield* invalid(`${JSON.stringify(id)} is named twice in ${field}`)
          seen.add(`${field}/${id}`)
          const source = byField.get(field)
          if (source === undefined) return yield* unknownSource(field, id, `this node serves no ${field}`)
          if (id.length === 0 || id.length > 256) return yield* unknownSource(field, id, "ids are 1-256 characters")
          const reason = yield* source.check(id)
          if (reason !== undefined) return yield* unknownSource(field, id, reason)
          for (const { key, kind } of source.streams(id)) streams.push({ key, kind, source: id, from: from[key] })
        }
        for (const [key, id] of Object.entries(from)) {
          if (!streams.some((stream) => stream.key === key)) {
            return yield* invalid(`from names ${JSON.stringify(key.slice(0, 300))}, not a stream of this subscription`)
          }
          if (!idPattern.test(id)) {
            return yield* invalid(`from ${JSON.stringify(key)}: ${JSON.stringify(id.slice(0, 64))} is not a stream id`)
          }
        }
        return streams
      })

    const readTop = (key: string) =>
      Effect.map(valkey.xrevrange(key, "+", "-", 1), (entries) => (entries.length === 0 ? "0-0" : entries[0].id))

    /** Retries a read loop's Valkey call until it succeeds: a loop outlives an outage and resumes where it was. */
    const persist = <A, E>(key: string, effect: Effect.Effect<A, E>) =>
      effect.pipe(
        Effect.tapError((error) =>
          Effect.sync(() => readErrors.inc()).pipe(
            Effect.andThen(Effect.logWarning(`market-data read loop ${key}: ${String(error)}; retrying`))
          )
        ),
        Effect.retry(Schedule.spaced("1 second")),
        // Retried forever: the loop never fails.
        Effect.orDie
      )

    const runLoop = (loop: KeyLoop): Effect.Effect<void> =>
      Effect.gen(function* () {
        const { key } = loop.stream
        const top = yield* persist(key, readTop(key))
        let last = top
        loop.lastId = top
        Deferred.doneUnsafe(loop.ready, Exit.succeed(top))
        while (!loop.stopped) {
          const reads: ReadonlyArray<StreamRead> = yield* persist(
            key,
            valkey.xread([[key, last]], { block: settings.blockMs, count: settings.readCount })
          )
          loop.delivering = true
          for (const read of reads) {
            entriesRead.inc(read.entries.length)
            for (const entry of read.entries) {
              last = entry.id
              loop.lastId = last
              const event = eventOf(loop.stream, entry)
              for (const listener of loop.listeners) listener(event)
            }
          }
          loop.delivering = false
        }
      }).pipe(
        Effect.ensuring(
          Effect.sync(() => {
            readLoops.dec()
            running--
            if (loops.get(loop.stream.key) === loop) loops.delete(loop.stream.key)
          })
        )
      )

    /** Adds `listener` to the key's loop (starting one) and answers the loop with its join point. */
    const join = (stream: Resolved, listener: Listener) =>
      Effect.gen(function* () {
        let loop = loops.get(stream.key)
        if (loop === undefined || loop.stopped) {
          const fresh: KeyLoop = {
            stream,
            listeners: new Set([listener]),
            lastId: undefined,
            ready: Deferred.makeUnsafe<string>(),
            stopped: false,
            delivering: false,
            fiber: undefined
          }
          loops.set(stream.key, fresh)
          readLoops.inc()
          running++
          readLoopsStarted.inc()
          fresh.fiber = yield* Effect.forkIn(runLoop(fresh), hubScope)
          loop = fresh
        } else {
          loop.listeners.add(listener)
        }
        const joined = loop
        const point =
          joined.lastId !== undefined
            ? joined.lastId
            : yield* Deferred.await(joined.ready).pipe(
                Effect.timeoutOrElse({
                  duration: settings.joinTimeout,
                  orElse: () => Effect.fail(unavailable(`could not read ${stream.key} from Valkey in time`))
                })
              )
        return [joined, point] as const
      })

    /** Takes `listener` off `loop`; the last one to leave stops it. Synchronous: also called while it delivers. */
    const leaveUnsafe = (loop: KeyLoop, listener: Listener): Fiber.Fiber<void> | undefined => {
      if (!loop.listeners.delete(listener) || loop.listeners.size > 0 || loop.stopped) return undefined
      loop.stopped = true
      if (loops.get(loop.stream.key) === loop) loops.delete(loop.stream.key)
      return loop.fiber
    }

    /** XRANGE of `(after, upTo]` in chunks, as events. */
    const catchUp = (
      stream: Resolved,
      after: string,
      upTo: string
    ): Stream.Stream<MarketData.Event, MarketData.SubscribeError> =>
      Stream.paginate(after, (cursor: string) =>
        valkey.xrange(stream.key, `(${cursor}`, upTo, settings.readCount).pipe(
          Effect.mapError((error) => unavailable(`reading ${stream.key}: ${error.message}`)),
          Effect.map((entries) => {
            const events = entries.map((entry) => eventOf(stream, entry))
            const last = entries.at(-1)?.id
            const more = entries.length === settings.readCount && last !== undefined && compareIds(last, upTo) < 0
            return [events, more ? Option.some(last) : Option.none()] as const
          })
        )
      )

    const subscribe = (request: MarketData.SubscribeRequest) =>
      Stream.unwrap(
        Effect.gen(function* () {
          const streams = yield* resolve(request)
          if (open >= settings.maxSubscriptions) {
            return yield* unavailable(`this runner serves ${settings.maxSubscriptions} subscriptions, its limit`)
          }
          const scope = yield* Effect.scope
          const queue = yield* Queue.bounded<MarketData.Event, MarketData.SlowConsumer>(settings.subscriberBuffer)
          let held = 0
          let cut = false
          const joined: Array<KeyLoop> = []
          const cutOff = () => {
            cut = true
            slowConsumers.inc()
            addBuffered(-held)
            held = 0
            for (const loop of joined) {
              const fiber = leaveUnsafe(loop, listener)
              if (fiber !== undefined && !loop.delivering) fiber.interruptUnsafe()
            }
            // The waiting events are dropped, not sent: the client gets the error as soon as it reads again.
            while (Queue.takeUnsafe(queue) !== undefined) {}
            Queue.failCauseUnsafe(
              queue,
              Cause.fail(
                new MarketData.SlowConsumer({
                  bound: settings.subscriberBuffer,
                  message: `more than ${settings.subscriberBuffer} events were waiting for this subscriber: cut off; resume with from`
                })
              )
            )
          }
          const listener: Listener = (event) => {
            if (cut) return
            if (Queue.offerUnsafe(queue, event)) {
              held++
              addBuffered(1)
            } else cutOff()
          }
          open++
          // Counted on /metrics once every stream has joined its loop: from then on nothing published is missed.
          let live = false
          yield* Scope.addFinalizer(
            scope,
            Effect.gen(function* () {
              open--
              if (live) subscriptions.dec()
              if (!cut) addBuffered(-held)
              held = 0
              cut = true
              for (const loop of joined) {
                const fiber = leaveUnsafe(loop, listener)
                if (fiber !== undefined) yield* Fiber.interrupt(fiber)
              }
            })
          )
          // The floor of each stream: the last id this subscription has sent (or its client had).
          const floors = new Map<string, string>()
          const catchUps: Array<Stream.Stream<MarketData.Event, MarketData.SubscribeError>> = []
          const positions: Array<MarketData.Event> = []
          for (const stream of streams) {
            const [loop, point] = yield* join(stream, listener)
            joined.push(loop)
            if (stream.from === undefined) {
              positions.push({ stream: stream.key, id: point, kind: "position", source: stream.source, fields: {} })
            }
            if (stream.from !== undefined && compareIds(stream.from, point) < 0) {
              catchUps.push(catchUp(stream, stream.from, point))
            }
            floors.set(
              stream.key,
              stream.from !== undefined && compareIds(stream.from, point) > 0 ? stream.from : point
            )
          }
          live = true
          subscriptions.inc()
          const fromNow = Stream.fromQueue(queue).pipe(
            Stream.mapArray((events) => {
              if (!cut) {
                held -= events.length
                addBuffered(-events.length)
              }
              return events
            }),
            Stream.filter((event) => {
              const floor = floors.get(event.stream)
              if (floor !== undefined && compareIds(event.id, floor) <= 0) return false
              floors.set(event.stream, event.id)
              return true
            })
          )
          return catchUps
            .reduceRight((rest, first) => Stream.concat(first, rest), fromNow)
            .pipe(
              Stream.prepend(positions),
              Stream.mapArray((events) => {
                delivered.inc(events.length)
                return events
              })
            )
        })
      )

    return Hub.of({ subscribe, stats: () => ({ loops: running, subscriptions: open, buffered: waiting }) })
  })

/** The hub as a service, for the sources `modules` declare (each built with its module's config slice). */
export const layerHub = (modules: ReadonlyArray<Module.Any>, options: Partial<HubOptions> = {}) =>
  Layer.effect(Hub)(
    Effect.gen(function* () {
      const declared = yield* Effect.forEach(modules, (module) =>
        module.marketData === undefined
          ? Effect.succeed<ReadonlyArray<MarketData.Source>>([])
          : Hosted.effectWithConfig(module, module.marketData)
      )
      return yield* make(declared.flat(), options)
    })
  )

const layerRpcHandlers = MarketData.MarketDataRpcs.toLayer(
  Effect.gen(function* () {
    const hub = yield* Hub
    return MarketData.MarketDataRpcs.of({ "MarketData.Subscribe": (request) => hub.subscribe(request) })
  })
)

/**
 * The gateway's market-data module: `MarketData.Subscribe` over the streams `modules` declare. A subscription lasts
 * as long as its client, so it holds no admission weight (it would crowd out requests); the hub bounds
 * subscriptions itself.
 */
export const module = (modules: ReadonlyArray<Module.Any>, options: Partial<HubOptions> = {}) =>
  Module.make({
    contract: MarketData.MarketDataContract,
    layer: Layer.empty,
    handlers: layerRpcHandlers.pipe(Layer.provide(layerHub(modules, options))),
    admissionWeights: { [MarketData.Subscribe._tag]: () => 0 }
  })
