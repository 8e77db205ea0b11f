// The runner's market-data publisher: explicit ids from the durable sequence, group publishing, and the republish
// from the tables (new owner, queue full, failed pipeline), on the in-memory Valkey with a gate that holds pipelines
// back like a slow server and tables held in memory.
import { assert, describe, it } from "@effect/vitest"
import * as ValkeyLayers from "@tessera/platform/Valkey"
import { type Command, Valkey, type ValkeyService } from "@tessera/platform/Valkey"
import { Context, Deferred, type Duration, Effect, Fiber, Layer } from "effect"
import * as MarketData from "./marketData.ts"
import * as ShardMetrics from "./metrics.ts"
import { depthStream, tradesStream } from "./protocol.ts"
import type { TradeRow } from "./ShardCore.ts"

const trade = (symbol: string, id: number): TradeRow => ({
  symbol,
  trade_id: id,
  maker_order_id: 1,
  taker_order_id: 2,
  price: "1.00",
  qty: "1",
  taker_side: "buy"
})

const noDepth = { bids: [], asks: [] } as never

/** A batch with one trade whose id is its seq. */
const batch = (symbol: string, seq: number): MarketData.MarketDataBatch => ({
  symbol,
  seq,
  trades: [trade(symbol, seq)],
  depth: noDepth,
  at: 0
})

/** The durable side in memory: what a shard wrote to `trades` and `symbol_journal`. */
const memoryTables = () => {
  const trades = new Map<string, Array<TradeRow>>()
  const seqs = new Map<string, number>()
  const tables: MarketData.MarketDataTables = {
    lastTradeId: (symbol) => Effect.sync(() => trades.get(symbol)?.at(-1)?.trade_id ?? 0),
    lastSeq: (symbol) => Effect.sync(() => seqs.get(symbol) ?? 0),
    lastTradeIds: Effect.sync(() =>
      Array.from(trades, ([symbol, list]) => ({ symbol, id: list.at(-1)?.trade_id ?? 0 }))
    ),
    tradesBetween: (symbol, after, upTo, limit) =>
      Effect.sync(() =>
        (trades.get(symbol) ?? []).filter((t) => t.trade_id > after && t.trade_id <= upTo).slice(0, limit)
      )
  }
  /** Makes batch `seq` durable (one trade, id = seq). */
  const write = (symbol: string, seq: number) => {
    const list = trades.get(symbol) ?? []
    list.push(trade(symbol, seq))
    trades.set(symbol, list)
    seqs.set(symbol, seq)
  }
  return { tables, write }
}

interface Sent {
  pipelines: number
  failing: number
  /** Pipelines wait for it while set (only those `holdWhen` picks, if set). */
  hold: Deferred.Deferred<void> | undefined
  holdWhen: ((commands: ReadonlyArray<Command>) => boolean) | undefined
}

/** Memory Valkey whose pipelines wait for `gate` (and fail while `failing` says so), counting pipelines sent. */
const gated = (gate: Deferred.Deferred<void>, sent: Sent) =>
  Layer.effect(
    Valkey,
    Effect.map(
      Valkey,
      (valkey): ValkeyService => ({
        ...valkey,
        pipeline: ((commands: ReadonlyArray<Command>) =>
          Effect.andThen(
            Effect.sync(() => sent.pipelines++),
            Effect.andThen(
              Effect.andThen(
                Deferred.await(gate),
                Effect.suspend(() =>
                  sent.hold === undefined || (sent.holdWhen !== undefined && !sent.holdWhen(commands))
                    ? Effect.void
                    : Deferred.await(sent.hold)
                )
              ),
              Effect.suspend(() => {
                if (sent.failing > 0) {
                  sent.failing--
                  return Effect.fail(
                    new ValkeyLayers.ValkeyError({ command: "PIPELINE", reason: "Connection", message: "down" })
                  )
                }
                return valkey.pipeline(commands)
              })
            )
          )) as unknown as ValkeyService["pipeline"]
      })
    )
  ).pipe(Layer.provideMerge(ValkeyLayers.layerMemory))

const setup = (options: { capacity?: number; failing?: number; open?: boolean; repairEvery?: Duration.Input } = {}) =>
  Effect.gen(function* () {
    const gate = yield* Deferred.make<void>()
    if (options.open !== false) yield* Deferred.succeed(gate, undefined)
    const sent: Sent = { pipelines: 0, failing: options.failing ?? 0, hold: undefined, holdWhen: undefined }
    const context = yield* Layer.build(gated(gate, sent))
    const valkey = Context.get(context, Valkey)
    const memory = memoryTables()
    const publisher = yield* MarketData.make(memory.tables, {
      capacity: options.capacity,
      warnEvery: "1 millis",
      repairEvery: options.repairEvery ?? "1 hour"
    }).pipe(Effect.provideContext(context))
    return { gate, sent, valkey, publisher, ...memory }
  })

/** Trade ids and entry ids of the trades stream, once it holds `n` entries (or after a second). */
const tradeIds = (valkey: ValkeyService, symbol: string, n: number) =>
  Effect.gen(function* () {
    let entries: ReadonlyArray<{ id: string; fields: Record<string, string> }> = []
    for (let i = 0; i < 100; i++) {
      entries = yield* valkey.xrange(tradesStream(symbol))
      if (entries.length >= n) break
      yield* Effect.sleep("10 millis")
    }
    for (const entry of entries) assert.strictEqual(entry.id, `${entry.fields.tradeId}-0`, "id = <trade id>-0")
    return entries.map((entry) => Number(entry.fields.tradeId))
  })

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

describe("MarketDataPublisher", () => {
  it.live("publishes in order with ids from the sequence, merging batches queued while a pipeline is in flight", () =>
    Effect.gen(function* () {
      const { gate, sent, valkey, publisher } = yield* setup({ open: false })
      publisher.publishLater(batch("AAA-USD", 1))
      yield* Effect.sleep("20 millis") // the drain takes seq 1 and waits on the gate
      for (let seq = 2; seq <= 4; seq++) publisher.publishLater(batch("AAA-USD", seq))
      yield* Deferred.succeed(gate, undefined)
      assert.deepStrictEqual(yield* tradeIds(valkey, "AAA-USD", 4), [1, 2, 3, 4])
      assert.strictEqual(sent.pipelines, 2, "seq 2-4 left together in one pipeline")
      const depth = yield* valkey.xrange(depthStream("AAA-USD"))
      assert.deepStrictEqual(
        depth.map((e) => e.id),
        ["1-0", "2-0", "3-0", "4-0"],
        "depth id = <journal seq>-0"
      )
    }).pipe(Effect.scoped)
  )

  it.live("a new owner republishes what the stream lacks before serving, and a repeat adds nothing", () =>
    Effect.gen(function* () {
      const { valkey, publisher, write } = yield* setup()
      // The old owner published trades 1-3 and died after making 4-7 durable.
      for (let seq = 1; seq <= 7; seq++) write("BBB-USD", seq)
      yield* valkey.pipeline(range(1, 3).flatMap((seq) => MarketData.commands(batch("BBB-USD", seq))))
      yield* publisher.activate("BBB-USD", 7, noDepth)
      assert.deepStrictEqual(yield* tradeIds(valkey, "BBB-USD", 7), range(1, 7), "republished before activate returns")
      const depth = yield* valkey.xrevrange(depthStream("BBB-USD"), "+", "-", 1)
      assert.strictEqual(depth[0]?.id, "7-0", "the depth at the restored seq")
      // A repeat of entries already there is harmless: refused by id, nothing else changes.
      const again = yield* Effect.exit(valkey.pipeline(MarketData.commands(batch("BBB-USD", 5))))
      assert.strictEqual(again._tag, "Failure")
      write("BBB-USD", 8)
      publisher.publishLater(batch("BBB-USD", 8))
      assert.deepStrictEqual(yield* tradeIds(valkey, "BBB-USD", 8), range(1, 8))
      // A second activation (the shard back on this runner) finds nothing to add.
      yield* publisher.activate("BBB-USD", 8, noDepth)
      assert.deepStrictEqual(yield* tradeIds(valkey, "BBB-USD", 8), range(1, 8))
    }).pipe(Effect.scoped)
  )

  it.live("a batch dropped at the queue bound is republished from the table, in order, once Valkey keeps up", () =>
    Effect.gen(function* () {
      const { sent, valkey, publisher, write } = yield* setup({ capacity: 3 })
      const droppedBefore = ShardMetrics.marketDataDropped.value
      yield* publisher.activate("CCC-USD", 0, noDepth)
      const hold = yield* Deferred.make<void>()
      sent.hold = hold
      write("CCC-USD", 1)
      publisher.publishLater(batch("CCC-USD", 1))
      yield* Effect.sleep("20 millis") // the drain takes seq 1 and waits on Valkey
      for (let seq = 2; seq <= 9; seq++) {
        write("CCC-USD", seq)
        publisher.publishLater(batch("CCC-USD", seq))
      }
      assert.strictEqual(ShardMetrics.marketDataDropped.value - droppedBefore, 1, "seq 5 found the queue (3) full")
      sent.hold = undefined
      yield* Deferred.succeed(hold, undefined)
      assert.deepStrictEqual(yield* tradeIds(valkey, "CCC-USD", 9), range(1, 9), "no hole, no repeat")
      write("CCC-USD", 10)
      publisher.publishLater(batch("CCC-USD", 10))
      assert.deepStrictEqual(yield* tradeIds(valkey, "CCC-USD", 10), range(1, 10), "live again after the resync")
    }).pipe(Effect.scoped)
  )

  it.live("a failed pipeline is healed from the table", () =>
    Effect.gen(function* () {
      const { sent, valkey, publisher, write } = yield* setup()
      yield* publisher.activate("DDD-USD", 0, noDepth)
      sent.failing = 1
      for (let seq = 1; seq <= 3; seq++) {
        write("DDD-USD", seq)
        publisher.publishLater(batch("DDD-USD", seq))
      }
      assert.deepStrictEqual(yield* tradeIds(valkey, "DDD-USD", 3), range(1, 3))
    }).pipe(Effect.scoped)
  )

  it.live(
    "a shard released while its publish fails leaves no hole: its later queued batches wait for the next owner",
    () =>
      Effect.gen(function* () {
        const { sent, valkey, publisher, write } = yield* setup()
        yield* publisher.activate("FFF-USD", 0, noDepth)
        // Batch 1's pipeline is held in flight, then fails; batch 2 is queued behind it; the shard is released meanwhile.
        sent.hold = yield* Deferred.make<void>()
        sent.failing = 1
        write("FFF-USD", 1)
        publisher.publishLater(batch("FFF-USD", 1))
        yield* Effect.sleep("20 millis")
        write("FFF-USD", 2)
        publisher.publishLater(batch("FFF-USD", 2))
        publisher.release("FFF-USD")
        yield* Deferred.succeed(sent.hold, undefined)
        sent.hold = undefined
        yield* Effect.sleep("50 millis")
        assert.deepStrictEqual(yield* valkey.xrange(tradesStream("FFF-USD")), [], "nothing after the hole is published")
        // The next owner republishes from the table.
        yield* publisher.activate("FFF-USD", 2, noDepth)
        assert.deepStrictEqual(yield* tradeIds(valkey, "FFF-USD", 2), [1, 2])
      }).pipe(Effect.scoped)
  )

  it.live("a stream with ids beyond the tables (another database's history) is reset and rebuilt from them", () =>
    Effect.gen(function* () {
      const { valkey, publisher, write } = yield* setup()
      yield* valkey.xadd(tradesStream("EEE-USD"), { tradeId: "50" }, { id: "50-0" })
      yield* valkey.xadd(depthStream("EEE-USD"), { seq: "50" }, { id: "50-0" })
      for (let seq = 1; seq <= 2; seq++) write("EEE-USD", seq)
      yield* publisher.activate("EEE-USD", 2, noDepth)
      assert.deepStrictEqual(yield* tradeIds(valkey, "EEE-USD", 2), [1, 2])
      const depth = yield* valkey.xrange(depthStream("EEE-USD"))
      assert.deepStrictEqual(
        depth.map((e) => e.id),
        ["2-0"]
      )
    }).pipe(Effect.scoped)
  )
  it.live("trades handed over while a resync writes the depth are published before live batches go on", () =>
    Effect.gen(function* () {
      const { sent, valkey, publisher, write } = yield* setup()
      for (let seq = 1; seq <= 3; seq++) write("GGG-USD", seq)
      // The resync's depth write is held: the shard serves meanwhile (the activation's wait timed out) and hands
      // over batches 4-5, which a behind symbol skips; then batch 6 comes live.
      sent.hold = yield* Deferred.make<void>()
      sent.holdWhen = (commands) => commands.some((c) => c._tag === "xadd" && c.key === depthStream("GGG-USD"))
      const activation = yield* Effect.forkChild(publisher.activate("GGG-USD", 3, noDepth))
      yield* Effect.sleep("20 millis")
      for (let seq = 4; seq <= 5; seq++) {
        write("GGG-USD", seq)
        publisher.publishLater(batch("GGG-USD", seq))
      }
      const held = sent.hold
      sent.hold = undefined
      yield* Deferred.succeed(held, undefined)
      yield* Fiber.join(activation)
      write("GGG-USD", 6)
      publisher.publishLater(batch("GGG-USD", 6))
      assert.deepStrictEqual(yield* tradeIds(valkey, "GGG-USD", 6), range(1, 6), "no hole at 4-5")
    }).pipe(Effect.scoped)
  )

  it.live("a symbol no activation wakes is repaired from the table once its stream stayed behind an interval", () =>
    Effect.gen(function* () {
      const { valkey, publisher, write } = yield* setup({ repairEvery: "30 millis" })
      // The owner on another runner published 1-2 and died with 3-5 durable; nothing activates it here.
      for (let seq = 1; seq <= 5; seq++) write("HHH-USD", seq)
      yield* valkey.pipeline(range(1, 2).flatMap((seq) => MarketData.commands(batch("HHH-USD", seq))))
      assert.deepStrictEqual(yield* tradeIds(valkey, "HHH-USD", 5), range(1, 5), "the tail republished, in order")
      // A symbol active here is its own publisher's: the repair leaves it alone.
      yield* publisher.activate("III-USD", 0, noDepth)
      write("III-USD", 1)
      yield* Effect.sleep("150 millis")
      assert.deepStrictEqual(yield* valkey.xrange(tradesStream("III-USD")), [], "not repaired while active here")
    }).pipe(Effect.scoped)
  )
})
