/**
 * One Tessera node: configuration, storage, the cluster (single embedded node or one runner of many), the
 * actor entities, node status and the gateway. Entry points only choose the mode and launch this layer.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Exit, Layer, Option } from "effect"
import * as GathererEntity from "../actors/gatherer/entity.ts"
import { ProbeEntityLayer } from "../actors/probe/entity.ts"
import * as ProxyPartition from "../actors/proxy-partition/entity.ts"
import { SymbolShardEntityLayer } from "../actors/symbol-shard/entity.ts"
import { layerRunner, layerSingle, layerStandby } from "./cluster.ts"
import * as Config from "./config.ts"
import * as Gateway from "./gateway.ts"
import * as NodeStatus from "./NodeStatus.ts"
import { layerSql, layerValkey } from "./storage.ts"
import * as Telemetry from "./telemetry.ts"

/** The entities every node hosts. Each actor kind adds its entity layer here. */
export const layerEntities = Layer.mergeAll(
  ProbeEntityLayer,
  SymbolShardEntityLayer,
  ProxyPartition.layer,
  GathererEntity.layer
)

const build = (mode: NodeStatus.NodeMode) =>
  Gateway.announceReady.pipe(
    Layer.provide(Layer.mergeAll(Gateway.layer, layerEntities)),
    // With TESSERA_GRAPH_ZONES, a second runner identity keeps other zones' graph partitions served (cluster.ts).
    Layer.merge(mode === "runner" ? layerStandby(ProxyPartition.layer) : Layer.empty),
    Layer.provide(NodeStatus.layer(mode)),
    Layer.provideMerge(mode === "runner" ? layerRunner : layerSingle),
    Layer.provideMerge(layerSql),
    Layer.provideMerge(layerValkey),
    Layer.provideMerge(Telemetry.layer)
  )

/**
 * A node in `mode`: `single` (one embedded node), `runner` (a cluster member over the socket transport), or
 * `auto` (`runner` when DATABASE_URL is set, since runners can only share Postgres, otherwise `single`).
 */
export const make = (
  mode: NodeStatus.NodeMode | "auto",
  config: Layer.Layer<Config.TesseraConfig, unknown> = Config.layerFromEnv
) =>
  (mode === "auto"
    ? Layer.unwrap(
        Effect.map(Config.TesseraConfig, (cfg: Config.TesseraConfigShape) =>
          build(Option.isSome(cfg.databaseUrl) ? "runner" : "single")
        )
      )
    : build(mode)
  ).pipe(Layer.provideMerge(config))

/** Runs a node until SIGINT/SIGTERM; a clean stop (interruption after draining) exits 0. */
export const launch = <A, E>(layer: Layer.Layer<A, E>) =>
  Layer.launch(layer).pipe(
    NodeRuntime.runMain({
      teardown: (exit, onExit) => {
        if (Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause)) {
          process.stderr.write("tessera stopped\n")
          onExit(0)
        } else {
          onExit(1)
        }
      }
    })
  )
