// `tessera gather status|replicas N`: the gatherer module's CLI command (listed in module.ts).
import { callGateway, connectionHelp, connectionOptions, type Io, parse, UsageError } from "@tessera/client/cli"
import { Contract } from "@tessera/contracts"
import { GatherContract } from "./protocol.ts"

const api = Contract.api(GatherContract)

export const gatherUsage = `tessera gather status [--url URL] [--token TOKEN]
tessera gather replicas N [--url URL] [--token TOKEN]   (add or remove gatherer replicas at run time)

${connectionHelp}`

export const gatherCommand = async (argv: ReadonlyArray<string>, io: Io): Promise<number> => {
  const { values, positionals } = parse(argv, connectionOptions, true)
  if (positionals.length === 1 && positionals[0] === "status") {
    return callGateway(api, values, io, (client) => client["Gather.Status"]())
  }
  if (positionals.length === 2 && positionals[0] === "replicas" && /^\d+$/.test(positionals[1])) {
    const replicas = Number(positionals[1])
    return callGateway(api, values, io, (client) => client["Gather.SetReplicas"]({ replicas }))
  }
  throw new UsageError("usage: tessera gather status | tessera gather replicas N")
}
