// `tessera probe ID...`: asks Probe entities which runner hosts them (listed in module.ts).
import { callGateway, connectionHelp, connectionOptions, type Io, parse, UsageError } from "@tessera/client/cli"
import { Contract } from "@tessera/contracts"
import { Effect } from "effect"
import { ProbeContract } from "./protocol.ts"

const api = Contract.api(ProbeContract)

export const probeUsage = `tessera probe ID [ID...] [--url URL] [--token TOKEN]\n\n${connectionHelp}`

export const probeCommand = async (argv: ReadonlyArray<string>, io: Io): Promise<number> => {
  const { values, positionals } = parse(argv, connectionOptions, true)
  if (positionals.length === 0) throw new UsageError("probe needs at least one entity id")
  return callGateway(api, values, io, (client) =>
    Effect.forEach(positionals, (entityId) => client["Probe.Where"]({ entityId, payload: {} }), { concurrency: 16 })
  )
}
