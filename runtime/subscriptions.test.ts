import { assert, describe, it } from "@effect/vitest"
import type { MarketData } from "@tessera/contracts"
import { layerMemory, Valkey } from "@tessera/platform/Valkey"
import { Deferred, Effect, Exit, Fiber, Queue, type Scope, Stream } from "effect"
import * as Subscriptions from "./subscriptions.ts"

const symbols = new Set(["AAA-USD", "BBB-USD"])
const source: MarketData.Source = {
  field: "symbols",
  check: (symbol) => Effect.succeed(symbols.has(symbol) ? undefined : `no symbol ${symbol}`),
  streams: (symbol) => [
    { key: `t:${symbol}:trades`, kind: "trade" },
    { key: `t:${symbol}:depth`, kind: "depth" }
  ]
}

const withHub = <A, E>(
  body: (hub: Subscriptions.HubShape, valkey: Valkey["Service"]) => Effect.Effect<A, E, Scope.Scope>,
  options: Partial<Subscriptions.HubOptions> = {}
) =>
  Effect.gen(function* () {
    const valkey = yield* Valkey
    const hub = yield* Subscriptions.make([source], { blockMs: 200, ...options })
    return yield* body(hub, valkey)
  }).pipe(Effect.scoped, Effect.provide(layerMemory))

const publish = (valkey: Valkey["Service"], key: string, from: number, to: number) =>
  Effect.forEach(
    Array.from({ length: to - from + 1 }, (_, i) => from + i),
    (n) => valkey.xadd(key, { n: String(n) }, { id: `${n}-0` }),
    { discard: true }
  )

/** Runs a subscription in the background, its events in a queue (the stream's end or failure ends it). */
const collect = (hub: Subscriptions.HubShape, request: MarketData.SubscribeRequest) =>
  Effect.gen(function* () {
    const events = yield* Queue.unbounded<MarketData.Event, unknown>()
    const fiber = yield* hub.subscribe(request).pipe(
      Stream.runForEach((event) => Queue.offer(events, event)),
      Effect.exit,
      Effect.tap((exit) => (Exit.isFailure(exit) ? Queue.failCause(events, exit.cause) : Queue.end(events))),
      Effect.forkScoped
    )
    return { events, fiber }
  })

const takeN = (queue: Queue.Dequeue<MarketData.Event, unknown>, n: number) =>
  Effect.forEach(Array.from({ length: n }), () => Queue.take(queue))

describe("market-data hub", () => {
  it.live("starts a stream live with its position, then delivers each entry once, in order", () =>
    withHub((hub, valkey) =>
      Effect.gen(function* () {
        yield* publish(valkey, "t:AAA-USD:trades", 1, 2)
        const { events } = yield* collect(hub, { symbols: ["AAA-USD"] })
        const positions = yield* takeN(events, 2)
        assert.deepStrictEqual(
          positions.map((e) => [e.stream, e.kind, e.id]),
          [
            ["t:AAA-USD:trades", "position", "2-0"],
            ["t:AAA-USD:depth", "position", "0-0"]
          ]
        )
        yield* publish(valkey, "t:AAA-USD:trades", 3, 6)
        const live = yield* takeN(events, 4)
        assert.deepStrictEqual(
          live.map((e) => [e.kind, e.id, e.fields.n, e.source]),
          [3, 4, 5, 6].map((n) => ["trade", `${n}-0`, String(n), "AAA-USD"])
        )
      })
    )
  )

  it.live("resumes after `from` with the entries it missed, then live: no hole, no repeat", () =>
    withHub(
      (hub, valkey) =>
        Effect.gen(function* () {
          yield* publish(valkey, "t:AAA-USD:trades", 1, 10)
          // A loop already runs for the key (another subscriber), so the resumed one joins it mid-stream.
          const other = yield* collect(hub, { symbols: ["AAA-USD"] })
          yield* takeN(other.events, 2)
          const { events } = yield* collect(hub, {
            symbols: ["AAA-USD"],
            from: { "t:AAA-USD:trades": "4-0", "t:AAA-USD:depth": "0-0" }
          })
          // catch-up chunks of 3 (readCount): 5..10
          const caught = yield* takeN(events, 6)
          assert.deepStrictEqual(
            caught.map((e) => e.id),
            [5, 6, 7, 8, 9, 10].map((n) => `${n}-0`)
          )
          yield* publish(valkey, "t:AAA-USD:trades", 11, 12)
          yield* valkey.xadd("t:AAA-USD:depth", { n: "1" }, { id: "1-0" })
          const live = yield* takeN(events, 3)
          assert.deepStrictEqual(live.map((e) => e.id).sort(), ["1-0", "11-0", "12-0"])
          assert.strictEqual(Queue.sizeUnsafe(events), 0)
        }),
      { readCount: 3 }
    )
  )

  it.live("a client ahead of the stream gets only entries after its id", () =>
    withHub((hub, valkey) =>
      Effect.gen(function* () {
        yield* publish(valkey, "t:BBB-USD:trades", 1, 3)
        const { events } = yield* collect(hub, { symbols: ["BBB-USD"], from: { "t:BBB-USD:trades": "5-0" } })
        // The depth stream's position comes once both streams have joined their loops (the trades one at 3-0).
        const [position] = yield* takeN(events, 1)
        assert.deepStrictEqual([position.stream, position.kind], ["t:BBB-USD:depth", "position"])
        yield* publish(valkey, "t:BBB-USD:trades", 4, 7)
        const live = yield* takeN(events, 2)
        assert.deepStrictEqual(
          live.map((e) => e.id),
          ["6-0", "7-0"]
        )
      })
    )
  )

  it.live("many subscribers to one symbol share one read loop per stream, stopped after the last leaves", () =>
    withHub((hub, valkey) =>
      Effect.gen(function* () {
        const subscribers = yield* Effect.forEach(Array.from({ length: 200 }), () =>
          collect(hub, { symbols: ["AAA-USD"] })
        )
        for (const { events } of subscribers) yield* takeN(events, 2)
        assert.deepStrictEqual(hub.stats(), { loops: 2, subscriptions: 200, buffered: 0 })
        yield* publish(valkey, "t:AAA-USD:trades", 1, 1)
        for (const { events } of subscribers) {
          const [event] = yield* takeN(events, 1)
          assert.strictEqual(event.id, "1-0")
        }
        yield* Effect.forEach(subscribers, ({ fiber }) => Fiber.interrupt(fiber), { discard: true })
        assert.deepStrictEqual(hub.stats(), { loops: 0, subscriptions: 0, buffered: 0 })
      })
    )
  )

  it.live("cuts a slow consumer off with SlowConsumer and releases its buffer; others keep receiving", () =>
    withHub(
      (hub, valkey) =>
        Effect.gen(function* () {
          const stuck = yield* Deferred.make<void>()
          const slow = yield* hub.subscribe({ symbols: ["AAA-USD"] }).pipe(
            // Stops reading at its first event and never takes another.
            Stream.runForEach(() => Deferred.await(stuck)),
            Effect.exit,
            Effect.forkScoped
          )
          const fast = yield* collect(hub, { symbols: ["AAA-USD"] })
          yield* takeN(fast.events, 2)
          // Rounds of 4 that the fast subscriber takes before the next: only the slow one falls behind.
          for (let round = 0; round < 5; round++) {
            yield* publish(valkey, "t:AAA-USD:trades", round * 4 + 1, round * 4 + 4)
            const received = yield* takeN(fast.events, 4)
            assert.strictEqual(received.at(-1)?.id, `${round * 4 + 4}-0`)
          }
          yield* Deferred.succeed(stuck, undefined)
          const exit = yield* Fiber.join(slow)
          assert.isTrue(Exit.isFailure(exit))
          const error = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
          assert.strictEqual(error?._tag, "Fail")
          assert.strictEqual((error as { error: { _tag: string } }).error._tag, "SlowConsumer")
          // Only the fast subscriber is left, nothing of the slow one is held.
          assert.deepStrictEqual(hub.stats(), { loops: 2, subscriptions: 1, buffered: 0 })
        }),
      { subscriberBuffer: 8 }
    )
  )

  it.live("refuses unknown symbols, empty and malformed requests with typed errors", () =>
    withHub((hub) =>
      Effect.gen(function* () {
        const failure = (request: MarketData.SubscribeRequest) =>
          hub.subscribe(request).pipe(Stream.runDrain, Effect.flip)
        const unknown = yield* failure({ symbols: ["AAA-USD", "ZZZ-USD"] })
        assert.strictEqual(unknown._tag, "UnknownSymbol")
        assert.strictEqual((yield* failure({}))._tag, "InvalidSubscription")
        assert.strictEqual((yield* failure({ symbols: ["AAA-USD", "AAA-USD"] }))._tag, "InvalidSubscription")
        assert.strictEqual((yield* failure({ markets: ["m1"] }))._tag, "UnknownMarket")
        const badFrom = yield* failure({ symbols: ["AAA-USD"], from: { "t:AAA-USD:trades": "12" } })
        assert.strictEqual(badFrom._tag, "InvalidSubscription")
        const foreign = yield* failure({ symbols: ["AAA-USD"], from: { "t:BBB-USD:trades": "1-0" } })
        assert.strictEqual(foreign._tag, "InvalidSubscription")
        // Nothing was started for the refused requests.
        assert.deepStrictEqual(hub.stats(), { loops: 0, subscriptions: 0, buffered: 0 })
      })
    )
  )
})
