/** The seed modules: the actors Tessera ships with, hosted by `npm start` and `npm run runner`. */
import { GatherModule } from "./gatherer/module.ts"
import { ProbeModule } from "./probe/module.ts"
import { GraphModule } from "./proxy-partition/module.ts"
import { SymbolShardModule } from "./symbol-shard/module.ts"

export const seedModules = [ProbeModule, SymbolShardModule, GraphModule, GatherModule] as const
