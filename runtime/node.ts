/**
 * One Tessera node: configuration, storage, the cluster (single embedded node or one runner of many), the
 * modules it hosts, node status and the gateway. Entry points choose the mode and the modules, and launch this
 * layer; nothing here names an actor.
 */
import { NodeRuntime } from "@effect/platform-node"
import type { Module } from "@tessera/contracts"
import * as NodeInfo from "@tessera/platform/NodeInfo"
import { Cause, Effect, Exit, Layer, Option } from "effect"
import { layerRunner, layerSingle, layerStandby } from "./cluster.ts"
import * as Config from "./config.ts"
import * as Drain from "./drain.ts"
import * as Gateway from "./gateway.ts"
import * as Hosted from "./hosted.ts"
import * as NodeStatus from "./NodeStatus.ts"
import * as Retention from "./retention.ts"
import { layerSql, layerValkey, layerValkeyReplica } from "./storage.ts"
import * as Telemetry from "./telemetry.ts"

const layerNodeInfo = Layer.unwrap(
  Effect.map(Config.TesseraConfig, (config: Config.TesseraConfigShape) =>
    NodeInfo.layer({
      zone: Option.getOrUndefined(config.zone),
      dataDir: config.dataDir,
      gatewayUrl: Config.gatewayUrlOf(config)
    })
  )
)

const build = (mode: NodeStatus.NodeMode, modules: ReadonlyArray<Module.Any>) =>
  Gateway.announceReady.pipe(
    Layer.provide(Layer.mergeAll(Gateway.layer(modules), Hosted.layerModules(modules), Retention.layer(modules))),
    // With zone groups (TESSERA_GRAPH_ZONES), a second runner identity keeps other zones' groups served (cluster.ts).
    Layer.merge(mode === "runner" ? layerStandby(modules, Hosted.standbyLayer(modules)) : Layer.empty),
    Layer.provide(NodeStatus.layer(mode, modules)),
    Layer.provideMerge(mode === "runner" ? layerRunner(modules) : layerSingle(modules)),
    // The drain state before the services that consult it (the gateway, `/ready`).
    Layer.provideMerge(Drain.layer),
    Layer.provideMerge(layerSql),
    Layer.provideMerge(layerValkeyReplica),
    Layer.provideMerge(layerValkey),
    Layer.provideMerge(layerNodeInfo),
    Layer.provideMerge(Telemetry.layer),
    // Stops first on SIGTERM: out of rotation, admitted requests finished, then the rest stops (drain.ts).
    Drain.drainFirst
  )

/** The services a node gives its modules' layers: the cluster, SQL, Valkey, node facts and Tessera's config. */
export type HostServices = Layer.Success<ReturnType<typeof build>> | Config.TesseraConfig

/**
 * A node hosting `modules` in `mode`: `single` (one embedded node), `runner` (a cluster member over the socket
 * transport), or `auto` (`runner` when DATABASE_URL is set, since runners can only share Postgres, otherwise
 * `single`). Typed by the modules, so a module needing a service the host does not provide fails to compile at
 * `Node.launch` instead of at startup.
 */
export const make = <const Modules extends ReadonlyArray<Module.Any>>(
  mode: NodeStatus.NodeMode | "auto",
  modules: Modules,
  config: Layer.Layer<Config.TesseraConfig, unknown> = Config.layerFromEnv
): Layer.Layer<HostServices, unknown, Exclude<Module.Requirements<Modules[number]>, HostServices>> =>
  (mode === "auto"
    ? Layer.unwrap(
        Effect.map(Config.TesseraConfig, (cfg: Config.TesseraConfigShape) =>
          build(Option.isSome(cfg.databaseUrl) ? "runner" : "single", modules)
        )
      )
    : build(mode, modules)
  ).pipe(Layer.provideMerge(config)) as Layer.Layer<HostServices, unknown> // `build` sees `Module.Any` (needs `any`)

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
