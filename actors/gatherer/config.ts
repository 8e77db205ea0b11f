/**
 * The gatherer module's config slice, read through Effect `Config` (the host decides the provider: the environment
 * by default): where the venue is, how many replicas and connections collect it, how many deduplicators merge it.
 */
import { duration, invalid, positiveInt, zoneList } from "@tessera/platform/ConfigKit"
import { Config, Context, Duration, Effect, Layer, Option } from "effect"

export interface GatherConfigShape {
  /** Market-data venue WebSocket URL for the gatherers (`TESSERA_VENUE_URL`). None: no gatherer fleet runs. */
  readonly venueUrl: Option.Option<string>
  /** Gatherer replicas, each collecting every market (`TESSERA_GATHER_REPLICAS`, default 3). */
  readonly gatherReplicas: number
  /** Venue connections per replica, each with a slice of the markets (`TESSERA_GATHER_CONNECTIONS`, default 1). */
  readonly gatherConnections: number
  /**
   * Zones gatherer replicas are spread over (`TESSERA_GATHER_ZONES`, comma-separated): replica r lives in shard group
   * `gatherer-<zones[r mod n]>`, served by that zone's runners (others' standbys only while it has none). Empty
   * (default): every gatherer in `default`, placed by shard hashing alone. Equal on every runner.
   */
  readonly gatherZones: ReadonlyArray<string>
  /** Deduplicator entities, each market in one (`TESSERA_DEDUP_SHARDS`, default 8: lower lag measured than 16). */
  readonly dedupShards: number
  /**
   * Deltas a deduplicator holds unwritten, at most (`TESSERA_DEDUP_MAX_PENDING`, default 200000): while Postgres is
   * down further copies are shed (counted) and the hole they leave is healed from a venue snapshot afterwards.
   */
  readonly dedupMaxPending: number
  /**
   * Deadline of one gatherer → deduplicator send (`TESSERA_GATHER_SEND_TIMEOUT`, default 2 s): past it the send
   * fails a typed `SendTimeout` (counted) and its copies go again with the next one, so a deduplicator that is
   * moving or stuck delays only its own markets, and for at most this long per attempt.
   */
  readonly gatherSendTimeout: Duration.Duration
  /** Delta copies in one send to a deduplicator, at most (`TESSERA_GATHER_SEND_BATCH`, default 5000). */
  readonly gatherSendBatch: number
  /**
   * Copies a gatherer holds for one deduplicator while its sends fail or wait (`TESSERA_GATHER_BACKLOG`, default
   * 50000): past it the oldest are dropped (counted), except each market's newest dropped copy, which is sent so the
   * deduplicator sees the hole and heals it from a snapshot (so at most this plus one copy per market).
   */
  readonly gatherBacklog: number
  /**
   * In-process demo venue for a single node (`TESSERA_DEMO_VENUE`: `on` = 200 markets at 500 deltas/s, or
   * `<markets>x<rate>`), used when `TESSERA_VENUE_URL` is unset. None (default): no demo feed.
   */
  readonly demoVenue: Option.Option<{ readonly markets: number; readonly rate: number }>
  /** Deadline of one venue snapshot request (`TESSERA_SNAPSHOT_TIMEOUT`, default 2 s): a hung venue is retried. */
  readonly snapshotTimeout: Duration.Duration
  /** Largest snapshot body accepted (`TESSERA_SNAPSHOT_MAX_BYTES`, default 8 MiB; the venue retains <= 1024 deltas). */
  readonly snapshotMaxBytes: number
  /**
   * Largest venue WebSocket frame (`TESSERA_VENUE_MAX_FRAME_BYTES`, default 512 KiB): a bigger one closes the
   * connection (ws maxPayload, 1009) and the gatherer reconnects; the simulator sends at most 1000 deltas a frame.
   */
  readonly venueMaxFrameBytes: number
}

export class GatherConfig extends Context.Service<GatherConfig, GatherConfigShape>()("tessera/gatherer/Config") {}

export const defaults: GatherConfigShape = {
  venueUrl: Option.none(),
  gatherReplicas: 3,
  gatherConnections: 1,
  gatherZones: [],
  dedupShards: 8,
  dedupMaxPending: 200_000,
  gatherSendTimeout: Duration.seconds(2),
  gatherSendBatch: 5000,
  gatherBacklog: 50_000,
  demoVenue: Option.none(),
  snapshotTimeout: Duration.seconds(2),
  snapshotMaxBytes: 8 * 1024 * 1024,
  venueMaxFrameBytes: 512 * 1024
}

export const config: Config.Config<GatherConfigShape> = Config.all({
  venueUrl: Config.String("TESSERA_VENUE_URL").pipe(
    Config.mapEffect((value) =>
      /^wss?:\/\/\S+$/.test(value)
        ? Effect.succeed(value)
        : Effect.fail(invalid("TESSERA_VENUE_URL must be a ws:// or wss:// URL"))
    ),
    Config.option
  ),
  gatherReplicas: positiveInt("TESSERA_GATHER_REPLICAS", defaults.gatherReplicas),
  gatherConnections: positiveInt("TESSERA_GATHER_CONNECTIONS", defaults.gatherConnections),
  gatherZones: zoneList("TESSERA_GATHER_ZONES"),
  dedupShards: positiveInt("TESSERA_DEDUP_SHARDS", defaults.dedupShards),
  dedupMaxPending: positiveInt("TESSERA_DEDUP_MAX_PENDING", defaults.dedupMaxPending),
  gatherSendTimeout: duration("TESSERA_GATHER_SEND_TIMEOUT", defaults.gatherSendTimeout),
  gatherSendBatch: positiveInt("TESSERA_GATHER_SEND_BATCH", defaults.gatherSendBatch),
  gatherBacklog: positiveInt("TESSERA_GATHER_BACKLOG", defaults.gatherBacklog),
  demoVenue: Config.String("TESSERA_DEMO_VENUE").pipe(
    Config.mapEffect((value) => {
      if (value === "on") return Effect.succeed({ markets: 200, rate: 500 })
      const match = /^(\d+)x(\d+)$/.exec(value)
      return match !== null && Number(match[1]) > 0
        ? Effect.succeed({ markets: Number(match[1]), rate: Number(match[2]) })
        : Effect.fail(invalid("TESSERA_DEMO_VENUE must be on or <markets>x<rate>, e.g. 200x500"))
    }),
    Config.option
  ),
  snapshotTimeout: duration("TESSERA_SNAPSHOT_TIMEOUT", defaults.snapshotTimeout),
  snapshotMaxBytes: positiveInt("TESSERA_SNAPSHOT_MAX_BYTES", defaults.snapshotMaxBytes),
  venueMaxFrameBytes: positiveInt("TESSERA_VENUE_MAX_FRAME_BYTES", defaults.venueMaxFrameBytes)
})

/** Read from the current `ConfigProvider` (the host's). */
export const layerFromEnv: Layer.Layer<GatherConfig, Config.ConfigError> = Layer.effect(GatherConfig)(config)

/** Defaults overridden by `options` (tests). */
export const layer = (options?: Partial<GatherConfigShape>): Layer.Layer<GatherConfig> =>
  Layer.succeed(GatherConfig)({ ...defaults, ...options })

export const variables: ReadonlyArray<readonly [name: string, meaning: string]> = [
  ["TESSERA_VENUE_URL", "market-data venue ws:// URL for the gatherer fleet; unset: no gatherers"],
  ["TESSERA_GATHER_REPLICAS", "gatherer replicas, each collecting every market (3)"],
  ["TESSERA_GATHER_CONNECTIONS", "venue connections per gatherer replica (1)"],
  [
    "TESSERA_GATHER_ZONES",
    "comma-separated zones gatherer replicas are spread over, replica r -> zone r mod n; equal on all runners (none)"
  ],
  ["TESSERA_DEDUP_SHARDS", "deduplicator entities markets are spread over (8)"],
  [
    "TESSERA_DEDUP_MAX_PENDING",
    "deltas a deduplicator holds unwritten while Postgres is slow or down; more are shed and healed by snapshot (200000)"
  ],
  ["TESSERA_GATHER_SEND_TIMEOUT", "deadline of one gatherer send to a deduplicator; the copies go again (2 seconds)"],
  ["TESSERA_GATHER_SEND_BATCH", "delta copies in one gatherer send to a deduplicator, at most (5000)"],
  [
    "TESSERA_GATHER_BACKLOG",
    "copies a gatherer holds per deduplicator while sends fail; the oldest beyond are dropped and healed (50000)"
  ],
  ["TESSERA_DEMO_VENUE", "in-process demo venue for a single node: on (200x500) or <markets>x<rate>; unset: none"],
  ["TESSERA_SNAPSHOT_TIMEOUT", "deadline of one venue snapshot request (2 seconds)"],
  ["TESSERA_SNAPSHOT_MAX_BYTES", "largest venue snapshot body accepted (8388608)"],
  ["TESSERA_VENUE_MAX_FRAME_BYTES", "largest venue WebSocket frame; bigger closes the connection (524288)"]
]
