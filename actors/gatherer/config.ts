/**
 * The gatherer module's config slice, read through Effect `Config` (the host decides the provider: the environment
 * by default): where the venue is, how many replicas and connections collect it, how many deduplicators merge it.
 */
import { invalid, positiveInt } from "@tessera/platform/ConfigKit"
import { Config, Context, Effect, Layer, Option } from "effect"

export interface GatherConfigShape {
  /** Market-data venue WebSocket URL for the gatherers (`TESSERA_VENUE_URL`). None: no gatherer fleet runs. */
  readonly venueUrl: Option.Option<string>
  /** Gatherer replicas, each collecting every market (`TESSERA_GATHER_REPLICAS`, default 3). */
  readonly gatherReplicas: number
  /** Venue connections per replica, each with a slice of the markets (`TESSERA_GATHER_CONNECTIONS`, default 1). */
  readonly gatherConnections: number
  /** Deduplicator entities, each market in one (`TESSERA_DEDUP_SHARDS`, default 8: lower lag measured than 16). */
  readonly dedupShards: number
  /**
   * In-process demo venue for a single node (`TESSERA_DEMO_VENUE`: `on` = 200 markets at 500 deltas/s, or
   * `<markets>x<rate>`), used when `TESSERA_VENUE_URL` is unset. None (default): no demo feed.
   */
  readonly demoVenue: Option.Option<{ readonly markets: number; readonly rate: number }>
}

export class GatherConfig extends Context.Service<GatherConfig, GatherConfigShape>()("tessera/gatherer/Config") {}

export const defaults: GatherConfigShape = {
  venueUrl: Option.none(),
  gatherReplicas: 3,
  gatherConnections: 1,
  dedupShards: 8,
  demoVenue: Option.none()
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
  dedupShards: positiveInt("TESSERA_DEDUP_SHARDS", defaults.dedupShards),
  demoVenue: Config.String("TESSERA_DEMO_VENUE").pipe(
    Config.mapEffect((value) => {
      if (value === "on") return Effect.succeed({ markets: 200, rate: 500 })
      const match = /^(\d+)x(\d+)$/.exec(value)
      return match !== null && Number(match[1]) > 0
        ? Effect.succeed({ markets: Number(match[1]), rate: Number(match[2]) })
        : Effect.fail(invalid("TESSERA_DEMO_VENUE must be on or <markets>x<rate>, e.g. 200x500"))
    }),
    Config.option
  )
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
  ["TESSERA_DEDUP_SHARDS", "deduplicator entities markets are spread over (8)"],
  ["TESSERA_DEMO_VENUE", "in-process demo venue for a single node: on (200x500) or <markets>x<rate>; unset: none"]
]
