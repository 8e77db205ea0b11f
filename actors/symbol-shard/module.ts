/**
 * The symbol shard module: one order book per trading pair (entity `SymbolShard`, id = symbol), the `Orders.*`
 * and `Symbols.*` gateway RPCs, its tables and config slice, and the `order`, `symbol`, `book`, `md` and `replay`
 * CLI commands.
 */
import { Module } from "@tessera/contracts"
import * as Metrics from "@tessera/platform/Metrics"
import { Effect, Layer } from "effect"
import * as Cli from "./cli.ts"
import * as ShardConfig from "./config.ts"
import { SymbolShardEntityLayer } from "./entity.ts"
import { access, admissionWeights, layerOrderRpcs, layerSymbolAdminRpcs } from "./gateway.ts"
import { migrations } from "./journal.ts"
import * as ShardMetrics from "./metrics.ts"
import { depthStream, SymbolShardContract, tradesStream } from "./protocol.ts"
import { replayCommand } from "./replay.ts"
import { retention, retentionMigrations } from "./retention.ts"
import { makeSymbolCheck } from "./symbols.ts"

export const SymbolShardModule = Module.make({
  contract: SymbolShardContract,
  layer: SymbolShardEntityLayer,
  handlers: Layer.merge(layerOrderRpcs, layerSymbolAdminRpcs),
  admissionWeights,
  access,
  config: ShardConfig.layerFromEnv,
  variables: ShardConfig.variables,
  migrations: { table: "symbol_shard_migrations", migrations: { ...migrations, ...retentionMigrations } },
  retention,
  entityIds: Effect.map(makeSymbolCheck, (check) => ({ SymbolShard: check })),
  marketData: Effect.map(makeSymbolCheck, (check) => [
    {
      field: "symbols",
      check,
      streams: (symbol: string) => [
        { key: tradesStream(symbol), kind: "trade" },
        { key: depthStream(symbol), kind: "depth" }
      ]
    }
  ]),
  metrics: Metrics.familyNames(ShardMetrics),
  cli: [
    {
      name: "order",
      summary: "place, cancel, move or get an order on a symbol shard",
      usage: Cli.orderUsage,
      run: Cli.orderCommand
    },
    {
      name: "symbol",
      summary: "list, add, halt, resume or set the limits of symbols (admin token for changes)",
      usage: Cli.symbolUsage,
      run: Cli.symbolCommand
    },
    { name: "book", summary: "aggregated depth of a symbol's book", usage: Cli.bookUsage, run: Cli.bookCommand },
    {
      name: "md",
      summary: "follow a symbol's market data (trades and depth streams)",
      usage: Cli.mdUsage,
      run: Cli.mdCommand
    },
    {
      name: "replay",
      summary: "run matching-engine commands (JSON lines on stdin) and print events (no cluster)",
      usage: "tessera replay [--tick 0.01] [--lot 1]   (see DESIGN.md §3.1 for the format)",
      run: replayCommand
    }
  ]
})
