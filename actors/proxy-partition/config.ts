/**
 * The graph module's config slice, read through Effect `Config` (the host decides the provider: the environment by
 * default): partition count, zone preference, hot-tier key prefix, idle time before demotion, the cold tier.
 */
import { duration, invalid, positiveInt, zoneList } from "@tessera/platform/ConfigKit"
import { Config, Context, Duration, Effect, Layer, Option } from "effect"
import { DEFAULT_PARTITIONS, hashTagRule, type PlacementRule, parsePlacementRule } from "./core.ts"

export interface GraphConfigShape {
  /** Graph partitions in the whole cluster (`TESSERA_GRAPH_PARTITIONS`, default 64); equal on every runner. */
  readonly graphPartitions: number
  /**
   * Zones graph partitions are spread over (`TESSERA_GRAPH_ZONES`, comma-separated, e.g. `us-east-1a,us-east-1b`):
   * partition p prefers `graphZones[p mod n]`. Empty (default): no placement preference. Equal on every runner.
   */
  readonly graphZones: ReadonlyArray<string>
  /**
   * How a vertex id gives its placement key (`TESSERA_GRAPH_PLACEMENT`): `tag` (default, Redis hash tags:
   * `{acme}alice` lives with every `{acme}...` id), `none`, or `prefix:<separator>`; a program may set any
   * `PlacementRule`. Equal on every runner and client (`vertexPartition` routes by it).
   */
  readonly graphPlacement: PlacementRule
  /** Valkey key prefix of the graph hot tier (`TESSERA_GRAPH_PREFIX`, default `g`). */
  readonly graphKeyPrefix: string
  /** Idle time before a graph partition is demoted to the cold tier (`TESSERA_GRAPH_IDLE`, default 10 minutes). */
  readonly graphIdle: Duration.Duration
  /**
   * How often a hot partition with writes since its last snapshot is snapshotted to the cold tier
   * (`TESSERA_GRAPH_SNAPSHOT_INTERVAL`, default 60 s; 0 turns it off): what a Valkey loss can lose. A runner takes
   * one such snapshot at a time, and each partition at most one per interval.
   */
  readonly graphSnapshotInterval: Duration.Duration
  /**
   * Cold tier of graph partitions (`TESSERA_GRAPH_COLD`): `s3://bucket/prefix` for S3, a folder path otherwise.
   * None: the folder `graph-cold` under the node's data folder.
   */
  readonly graphCold: Option.Option<string>
  /** S3 endpoint for an S3-compatible store (`TESSERA_S3_ENDPOINT`, e.g. a local server). None: AWS. */
  readonly s3Endpoint: Option.Option<string>
}

export class GraphConfig extends Context.Service<GraphConfig, GraphConfigShape>()("tessera/graph/Config") {}

export const defaults: GraphConfigShape = {
  graphPartitions: DEFAULT_PARTITIONS,
  graphZones: [],
  graphPlacement: hashTagRule,
  graphKeyPrefix: "g",
  graphIdle: Duration.minutes(10),
  graphSnapshotInterval: Duration.seconds(60),
  graphCold: Option.none(),
  s3Endpoint: Option.none()
}

export const config: Config.Config<GraphConfigShape> = Config.all({
  graphPartitions: positiveInt("TESSERA_GRAPH_PARTITIONS", defaults.graphPartitions),
  graphZones: zoneList("TESSERA_GRAPH_ZONES"),
  graphPlacement: Config.String("TESSERA_GRAPH_PLACEMENT").pipe(
    Config.withDefault("tag"),
    Config.mapEffect((text) => {
      const rule = parsePlacementRule(text)
      return rule === undefined
        ? Effect.fail(invalid(`TESSERA_GRAPH_PLACEMENT must be tag, none or prefix:<separator>, got ${text}`))
        : Effect.succeed(rule)
    })
  ),
  graphKeyPrefix: Config.String("TESSERA_GRAPH_PREFIX").pipe(Config.withDefault(defaults.graphKeyPrefix)),
  graphIdle: duration("TESSERA_GRAPH_IDLE", defaults.graphIdle),
  graphSnapshotInterval: duration("TESSERA_GRAPH_SNAPSHOT_INTERVAL", defaults.graphSnapshotInterval),
  graphCold: Config.String("TESSERA_GRAPH_COLD").pipe(Config.option),
  s3Endpoint: Config.String("TESSERA_S3_ENDPOINT").pipe(Config.option)
})

/** Read from the current `ConfigProvider` (the host's). */
export const layerFromEnv: Layer.Layer<GraphConfig, Config.ConfigError> = Layer.effect(GraphConfig)(config)

/** Defaults overridden by `options` (tests). */
export const layer = (options?: Partial<GraphConfigShape>): Layer.Layer<GraphConfig> =>
  Layer.succeed(GraphConfig)({ ...defaults, ...options })

export const variables: ReadonlyArray<readonly [name: string, meaning: string]> = [
  ["TESSERA_GRAPH_PARTITIONS", "graph partitions in the cluster, equal on all runners (64)"],
  [
    "TESSERA_GRAPH_ZONES",
    "comma-separated zones graph partitions prefer, partition p -> zone p mod n; equal on all runners (none: no preference)"
  ],
  [
    "TESSERA_GRAPH_PLACEMENT",
    "how a vertex id gives its placement key: tag ({key}rest hash tags), none, or prefix:<separator>; equal on all runners and clients (tag)"
  ],
  ["TESSERA_GRAPH_PREFIX", "Valkey key prefix of the graph hot tier (g)"],
  [
    "TESSERA_GRAPH_IDLE",
    "idle time before a graph partition is demoted to the cold tier; partitions report and check every min(5 s, idle/2) (10 minutes)"
  ],
  [
    "TESSERA_GRAPH_SNAPSHOT_INTERVAL",
    "how often a hot graph partition that changed is snapshotted to the cold tier, bounding what a Valkey loss loses; 0: never (60 s)"
  ],
  ["TESSERA_GRAPH_COLD", "graph cold tier: s3://bucket/prefix or a folder (TESSERA_DATA/graph-cold)"],
  ["TESSERA_S3_ENDPOINT", "S3 endpoint for an S3-compatible store (AWS)"]
]
