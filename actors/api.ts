/**
 * The gateway API of a node hosting the seed modules, built from their contracts alone (no entity code): for
 * clients, benches and tests.
 */
import { Contract } from "@tessera/contracts"
import { GatherContract } from "./gatherer/protocol.ts"
import { ProbeContract } from "./probe/protocol.ts"
import { GraphContract } from "./proxy-partition/protocol.ts"
import { SymbolShardContract } from "./symbol-shard/protocol.ts"

export const SeedApi = Contract.api(ProbeContract, SymbolShardContract, GraphContract, GatherContract)
export type SeedApi = typeof SeedApi
