/**
 * The gatherer module on one in-process node (real PostgreSQL and Redis) fed by the in-process venue simulator, for
 * the tests of gatherers and deduplicators. Here, not in actors/gatherer/: it hosts the module on runtime/, which
 * actor source may not import.
 */
import { Effect, Layer, Option, Redacted } from "effect"
import { type GatherConfigShape, layer as gatherConfig } from "../actors/gatherer/config.ts"
import { GatherModule } from "../actors/gatherer/module.ts"
import { Deduplicator, dedupEntityId } from "../actors/gatherer/protocol.ts"
import { startVenue, type VenueOptions } from "../actors/gatherer/venue.ts"
import { layerSingle } from "../runtime/cluster.ts"
import * as Config from "../runtime/config.ts"
import * as Hosted from "../runtime/hosted.ts"
import { layerSql, layerValkey } from "../runtime/storage.ts"
import { redisUrl } from "./harness.ts"

export interface GatherNodeOptions {
  readonly databaseUrl: string
  /** The venue's WebSocket URL, with any fault query (`?drop=0.05&…`). */
  readonly venueUrl: string
  /** Gatherer settings over the module's defaults; one venue connection per replica unless set. */
  readonly gather: Partial<GatherConfigShape>
  /** Default the test Redis, database 0. */
  readonly redisUrl?: string
  /** Default 16. */
  readonly shardsPerGroup?: number
}

/** A single-runner cluster hosting only the gatherer module. */
export const gatherNode = (options: GatherNodeOptions) =>
  Hosted.layerModules([
    {
      ...GatherModule,
      config: gatherConfig({ venueUrl: Option.some(options.venueUrl), gatherConnections: 1, ...options.gather })
    }
  ]).pipe(
    Layer.provideMerge(layerSingle([])),
    Layer.provideMerge(layerSql),
    Layer.provideMerge(layerValkey),
    Layer.provideMerge(
      Config.layer({
        databaseUrl: Option.some(Redacted.make(options.databaseUrl)),
        redisUrl: Option.some(Redacted.make(options.redisUrl ?? redisUrl)),
        shardsPerGroup: options.shardsPerGroup ?? 16
      })
    )
  )

/** The venue simulator for the scope, closed when it closes. */
export const scopedVenue = (options: VenueOptions) =>
  Effect.acquireRelease(
    Effect.promise(() => startVenue(options)),
    (venue) => Effect.promise(() => venue.close())
  )

/** The Status of each of `shards` deduplicators. */
export const dedupStatusesOf = (shards: number) =>
  Effect.gen(function* () {
    const dedup = yield* Deduplicator.client
    return yield* Effect.forEach(
      Array.from({ length: shards }, (_, k) => dedupEntityId(k)),
      (id) => dedup(id).Status()
    )
  })
