/**
 * The symbol shard's config slice, read through Effect `Config` (the host decides the provider: the environment by
 * default). Bounds on what a shard keeps in memory, and how often it snapshots.
 */
import { duration, positiveInt } from "@tessera/platform/ConfigKit"
import { Config, Context, Duration, Layer } from "effect"

export interface SymbolShardConfigShape {
  /**
   * Place keys `(account, clientOrderId)` a symbol shard remembers with their results, newest first, and as many
   * Cancel/Move request ids (`TESSERA_SHARD_RECENT_KEYS`, default 100000: a few hundred bytes each). An older key
   * is checked against the `orders` table and refused (`key_expired`), never placed twice.
   */
  readonly shardRecentKeys: number
  /**
   * Finished orders whose final state a symbol shard keeps in memory (`TESSERA_SHARD_FINISHED_ORDERS`, default
   * 100000); GetOrder reads older ones from the `orders` table.
   */
  readonly shardFinishedOrders: number
  /**
   * Bits of a symbol shard's filter of forgotten idempotency keys (`TESSERA_SHARD_KEY_FILTER_BITS`, default 2^24 =
   * 2 MiB, about 1% false positives at 1.7M forgotten keys); a false positive costs one indexed `orders` read.
   */
  readonly shardKeyFilterBits: number
  /**
   * Commands between two snapshots of a symbol shard (`TESSERA_SHARD_SNAPSHOT_EVERY`, default 100000). A snapshot
   * bounds the journal replayed on activation; the journal before the previous snapshot is then deleted.
   */
  readonly shardSnapshotEvery: number
  /**
   * How long `Orders.PlaceMany` waits for each entry's shard (`TESSERA_PLACE_DEADLINE`, default 2 seconds): an entry
   * whose shard has not answered by then is answered `ShardUnavailable` (retry with the same keys; the orders may
   * still be placed, once), so a moving or sick shard never holds the other entries of the request.
   */
  readonly placeDeadline: Duration.Duration
  /**
   * How long a symbol shard waits for one storage call on its request path, a journal write above all
   * (`TESSERA_JOURNAL_WRITE_TIMEOUT`, default 2 seconds). Past it the waiting requests are answered `ShardUnavailable`
   * (their orders may still be placed: retry with the same keys), and the shard refuses requests the same way until
   * it has re-read its durable state, so a black-holed database never holds a request. Under the lock expiry, so a
   * shard answers before its runner gives it up.
   */
  readonly journalWriteTimeout: Duration.Duration
  /**
   * The longest a symbol shard lets its journal fall behind before it refuses new orders
   * (`TESSERA_SHARD_MAX_QUEUE_DELAY`, default 50 milliseconds): while the write in flight (or the batch waiting for
   * it) is older than this, a place is answered `Overloaded` at once and nothing of it is applied. Past saturation the
   * shard then keeps what it accepts at its normal latency, instead of growing a backlog that every later order waits
   * behind (and that a timed-out client cannot take back). `0` turns the bound off.
   */
  readonly maxQueueDelay: Duration.Duration
}

export class SymbolShardConfig extends Context.Service<SymbolShardConfig, SymbolShardConfigShape>()(
  "tessera/symbol-shard/Config"
) {}

export const defaults: SymbolShardConfigShape = {
  shardRecentKeys: 100_000,
  shardFinishedOrders: 100_000,
  shardKeyFilterBits: 2 ** 24,
  shardSnapshotEvery: 100_000,
  placeDeadline: Duration.seconds(2),
  journalWriteTimeout: Duration.seconds(2),
  maxQueueDelay: Duration.millis(50)
}

export const config: Config.Config<SymbolShardConfigShape> = Config.all({
  shardRecentKeys: positiveInt("TESSERA_SHARD_RECENT_KEYS", defaults.shardRecentKeys),
  shardFinishedOrders: positiveInt("TESSERA_SHARD_FINISHED_ORDERS", defaults.shardFinishedOrders),
  shardKeyFilterBits: positiveInt("TESSERA_SHARD_KEY_FILTER_BITS", defaults.shardKeyFilterBits),
  shardSnapshotEvery: positiveInt("TESSERA_SHARD_SNAPSHOT_EVERY", defaults.shardSnapshotEvery),
  placeDeadline: duration("TESSERA_PLACE_DEADLINE", defaults.placeDeadline),
  journalWriteTimeout: duration("TESSERA_JOURNAL_WRITE_TIMEOUT", defaults.journalWriteTimeout),
  maxQueueDelay: duration("TESSERA_SHARD_MAX_QUEUE_DELAY", defaults.maxQueueDelay)
})

/** Read from the current `ConfigProvider` (the host's). */
export const layerFromEnv: Layer.Layer<SymbolShardConfig, Config.ConfigError> = Layer.effect(SymbolShardConfig)(config)

/** Defaults overridden by `options` (tests). */
export const layer = (options?: Partial<SymbolShardConfigShape>): Layer.Layer<SymbolShardConfig> =>
  Layer.succeed(SymbolShardConfig)({ ...defaults, ...options })

export const variables: ReadonlyArray<readonly [name: string, meaning: string]> = [
  [
    "TESSERA_SHARD_RECENT_KEYS",
    "place keys (and as many cancel/move request ids) a symbol shard remembers; older ones are refused as key_expired, never placed twice (100000)"
  ],
  [
    "TESSERA_SHARD_FINISHED_ORDERS",
    "finished orders a symbol shard keeps in memory; GetOrder reads older ones from the orders table (100000)"
  ],
  ["TESSERA_SHARD_KEY_FILTER_BITS", "bits of a symbol shard's filter of forgotten keys (16777216)"],
  [
    "TESSERA_SHARD_SNAPSHOT_EVERY",
    "commands between symbol shard snapshots; the journal before the previous snapshot is deleted (100000)"
  ],
  [
    "TESSERA_PLACE_DEADLINE",
    "how long Orders.PlaceMany waits for each entry's shard before answering it ShardUnavailable (2 seconds)"
  ],
  [
    "TESSERA_JOURNAL_WRITE_TIMEOUT",
    "how long a symbol shard waits for a journal write (or another storage call) before answering ShardUnavailable and re-reading its state (2 seconds)"
  ],
  [
    "TESSERA_SHARD_MAX_QUEUE_DELAY",
    "how far a symbol shard's journal may fall behind (age of the write in flight) before new orders are answered Overloaded, nothing applied; 0 = off (50 milliseconds)"
  ]
]
