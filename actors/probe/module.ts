/** The Probe module: a diagnostic entity that says which runner hosts it, and `tessera probe`. */
import { Module } from "@tessera/contracts"
import { probeCommand, probeUsage } from "./cli.ts"
import { ProbeEntityLayer } from "./entity.ts"
import { ProbeContract } from "./protocol.ts"

export const ProbeModule = Module.make({
  contract: ProbeContract,
  layer: ProbeEntityLayer,
  cli: [{ name: "probe", summary: "ask Probe entities which runner hosts them", usage: probeUsage, run: probeCommand }]
})
