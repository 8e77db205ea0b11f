// The runner's market-data publisher: its queue policy (bounded, drops counted) and its group publishing, on the
// in-memory Valkey with a gate that holds pipelines back like a slow server.
import { assert, describe, it } from "@effect/vitest"
import * as ValkeyLayers from "@tessera/platform/Valkey"
import { type Command, Valkey } from "@tessera/platform/Valkey"
import { Context, Deferred, Effect, Layer } from "effect"
import * as MarketData from "./marketData.ts"
import * as ShardMetrics from "./metrics.ts"
import { tradesStream } from "./protocol.ts"

const batch = (symbol: string, seq: number): MarketData.MarketDataBatch => ({
  symbol,
  seq,
  trades: [
    {
      trade_id: seq,
      maker_order_id: 1,
      taker_order_id: 2,
      price: "1.00",
      qty: "1",
      taker_side: "buy"
    } as never
  ],
  depth: { bids: [], asks: [] } as never,
  at: 0
})

/** Memory Valkey whose pipelines wait for `gate`, counting how many were sent. */
const gated = (gate: Deferred.Deferred<void>, sent: { pipelines: number }) =>
  Layer.effect(
    Valkey,
    Effect.map(Valkey, (valkey) => ({
      ...valkey,
      pipeline: ((commands: ReadonlyArray<Command>) =>
        Effect.andThen(
          Effect.sync(() => sent.pipelines++),
          Effect.andThen(Deferred.await(gate), valkey.pipeline(commands))
        )) as unknown as typeof valkey.pipeline
    }))
  ).pipe(Layer.provideMerge(ValkeyLayers.layerMemory))

describe("MarketDataPublisher", () => {
  it.live(
    "publishes in order, merging batches queued while a pipeline is in flight; drops and counts past its bound",
    () =>
      Effect.gen(function* () {
        const gate = yield* Deferred.make<void>()
        const sent = { pipelines: 0 }
        const context = yield* Layer.build(gated(gate, sent))
        const valkey = Context.get(context, Valkey)
        const publisher = yield* MarketData.make({ capacity: 3, warnEvery: "1 millis" }).pipe(
          Effect.provideContext(context)
        )
        const droppedBefore = ShardMetrics.marketDataDropped.value

        publisher.publishLater(batch("AAA-USD", 1))
        yield* Effect.sleep("20 millis") // the drain takes seq 1 and waits on the gate
        for (let seq = 2; seq <= 6; seq++) publisher.publishLater(batch("AAA-USD", seq))
        assert.strictEqual(ShardMetrics.marketDataDropped.value - droppedBefore, 2, "seq 5 and 6 find the queue full")

        yield* Deferred.succeed(gate, undefined)
        let entries: ReadonlyArray<unknown> = []
        for (let i = 0; i < 100 && entries.length < 4; i++) {
          entries = yield* valkey.xrange(tradesStream("AAA-USD"))
          if (entries.length < 4) yield* Effect.sleep("10 millis")
        }
        const ids = entries.map((entry) => (entry as { fields: Record<string, string> }).fields.tradeId)
        assert.deepStrictEqual(ids, ["1", "2", "3", "4"], "in batch order, nothing past the bound")
        assert.strictEqual(sent.pipelines, 2, "seq 2-4 left together in one pipeline")
      }).pipe(Effect.scoped)
  )
})
