/**
 * The `tessera` command line: JSON on stdout, errors on stderr with a non-zero exit.
 * Each command is an entry in `commands`; later actor kinds add theirs here.
 */
import { parseArgs } from "node:util"
import { Cause, Effect, Exit, Option } from "effect"
import { GraphUsage, graphCall, graphOptions, graphUsage } from "../../../actors/proxy-partition/cli.ts"
import { orderUsage } from "../../../actors/symbol-shard/cli.ts"
import * as TesseraClient from "./TesseraClient.ts"

export interface Io {
  readonly stdin: NodeJS.ReadableStream
  readonly stdout: NodeJS.WritableStream
  readonly stderr: NodeJS.WritableStream
  readonly env: Record<string, string | undefined>
}

export class UsageError extends Error {
  override readonly name = "UsageError"
}

interface Command {
  readonly summary: string
  readonly usage: string
  readonly run: (argv: ReadonlyArray<string>, io: Io) => Promise<number>
}

const connectionOptions = {
  url: { type: "string" },
  token: { type: "string" },
  help: { type: "boolean", short: "h" }
} as const

const connectionHelp = `  --url URL      gateway URL (default: $TESSERA_URL or http://127.0.0.1:7400)
  --token TOKEN  bearer token (default: $TESSERA_TOKEN)`

const parse = <const O extends Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }>>(
  argv: ReadonlyArray<string>,
  options: O,
  allowPositionals = false
) => {
  try {
    return parseArgs({ args: [...argv], options, allowPositionals, strict: true })
  } catch (error) {
    throw new UsageError((error as Error).message)
  }
}

const clientOptions = (values: { url?: string | undefined; token?: string | undefined }, env: Io["env"]) => ({
  url: values.url ?? env.TESSERA_URL ?? "http://127.0.0.1:7400",
  token: values.token ?? env.TESSERA_TOKEN
})

/** Explains a failed call in one line: unreachable gateway, auth, or the typed error the gateway returned. */
export const describeFailure = (cause: Cause.Cause<unknown>, url: string): string => {
  const failure = Cause.findErrorOption(cause)
  const error: any = Option.isSome(failure) ? failure.value : Cause.squash(cause)
  if (error?._tag === "RpcClientError") {
    const reason = error.reason
    const status = reason?.response?.status ?? reason?.cause?.response?.status
    if (status === 401) return `unauthorized: the gateway at ${url} needs a valid --token (or TESSERA_TOKEN)`
    if (status !== undefined) return `the gateway at ${url} answered HTTP ${status}`
    const details: Array<string> = []
    for (let c = reason?.cause; c !== undefined && c !== null && details.length < 4; c = c.cause) {
      const text = c.code ?? c.message
      if (typeof text === "string" && text.length > 0) details.push(text)
    }
    return `cannot reach the gateway at ${url}: ${details.join(": ") || reason?.message || reason?._tag || String(error)}`
  }
  if (error && typeof error === "object" && "_tag" in error) {
    const { _tag, ...rest } = error
    const detail = error.message || JSON.stringify(rest)
    return `${_tag}: ${detail}`
  }
  return String(error?.message ?? error)
}

/** Runs one gateway call and prints its JSON result. */
export const callGateway = async <A>(
  values: { url?: string | undefined; token?: string | undefined },
  io: Io,
  call: (client: TesseraClient.Client) => Effect.Effect<A, unknown>
): Promise<number> => {
  const options = clientOptions(values, io.env)
  const exit = await Effect.runPromiseExit(
    Effect.scoped(Effect.flatMap(TesseraClient.make(options), call)).pipe(Effect.timeout("30 seconds"))
  )
  if (Exit.isSuccess(exit)) {
    io.stdout.write(`${JSON.stringify(exit.value, null, 2)}\n`)
    return 0
  }
  io.stderr.write(`tessera: ${describeFailure(exit.cause, options.url)}\n`)
  return 1
}

export const commands: Record<string, Command> = {
  status: {
    summary: "runners, shards per runner and active entities (JSON)",
    usage: `tessera status [--url URL] [--token TOKEN]\n\n${connectionHelp}`,
    run: async (argv, io) => {
      const { values } = parse(argv, connectionOptions)
      return callGateway(values, io, (client) => client.Status())
    }
  },
  probe: {
    summary: "ask Probe entities which runner hosts them",
    usage: `tessera probe ID [ID...] [--url URL] [--token TOKEN]\n\n${connectionHelp}`,
    run: async (argv, io) => {
      const { values, positionals } = parse(argv, connectionOptions, true)
      if (positionals.length === 0) throw new UsageError("probe needs at least one entity id")
      return callGateway(values, io, (client) =>
        Effect.forEach(positionals, (entityId) => client["Probe.Where"]({ entityId, payload: {} }), {
          concurrency: 16
        })
      )
    }
  },
  gather: {
    summary: "market-data gatherers and deduplicators: status (msgs/s, duplicates, gaps, lag) or replicas N",
    usage: `tessera gather status [--url URL] [--token TOKEN]
tessera gather replicas N [--url URL] [--token TOKEN]   (add or remove gatherer replicas at run time)

${connectionHelp}`,
    run: async (argv, io) => {
      const { values, positionals } = parse(argv, connectionOptions, true)
      if (positionals.length === 1 && positionals[0] === "status") {
        return callGateway(values, io, (client) => client["Gather.Status"]())
      }
      if (positionals.length === 2 && positionals[0] === "replicas" && /^\d+$/.test(positionals[1])) {
        const replicas = Number(positionals[1])
        return callGateway(values, io, (client) => client["Gather.SetReplicas"]({ replicas }))
      }
      throw new UsageError("usage: tessera gather status | tessera gather replicas N")
    }
  },
  graph: {
    summary: "graph proxy: put, get, delete, edge, neighbors, khop, stats, demote, info (JSON)",
    usage: `${graphUsage}\n${connectionHelp}`,
    run: async (argv, io) => {
      const { values, positionals } = parse(argv, { ...connectionOptions, ...graphOptions }, true)
      let call: ReturnType<typeof graphCall>
      try {
        call = graphCall(positionals, values, io.env)
      } catch (error) {
        if (error instanceof GraphUsage) throw new UsageError(error.message)
        throw error
      }
      return callGateway(values, io, call)
    }
  },
  order: {
    summary: "place, cancel, move or get an order on a symbol shard",
    usage: orderUsage,
    run: async (argv, io) => (await import("../../../actors/symbol-shard/cli.ts")).orderCommand(argv, io)
  },
  book: {
    summary: "aggregated depth of a symbol's book",
    usage: "tessera book --symbol S [--depth N] [--url URL] [--token TOKEN]",
    run: async (argv, io) => (await import("../../../actors/symbol-shard/cli.ts")).bookCommand(argv, io)
  },
  md: {
    summary: "follow a symbol's market data (trades and depth streams)",
    usage: "tessera md tail --symbol S [--redis URL] [--count N]",
    run: async (argv, io) => (await import("../../../actors/symbol-shard/cli.ts")).mdCommand(argv, io)
  },
  replay: {
    summary: "run matching-engine commands (JSON lines on stdin) and print events (no cluster)",
    usage: "tessera replay [--tick 0.01] [--lot 1]   (see DESIGN.md §3.1 for the format)",
    run: async (argv, io) => {
      const { replayCommand } = await import("../../../actors/symbol-shard/replay.ts")
      return replayCommand(argv, io)
    }
  }
}

const help = () =>
  `tessera: command line for a Tessera cluster

usage: tessera <command> [options]

commands:
${Object.entries(commands)
  .map(([name, command]) => `  ${name.padEnd(10)} ${command.summary}`)
  .join("\n")}

Run 'tessera <command> --help' for a command's options.
`

export const main = async (argv: ReadonlyArray<string>, io: Io): Promise<number> => {
  const [name, ...rest] = argv
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    io.stdout.write(help())
    return name === undefined ? 2 : 0
  }
  const command = commands[name]
  if (command === undefined) {
    io.stderr.write(`tessera: unknown command "${name}"\n\n${help()}`)
    return 2
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    io.stdout.write(`${command.usage}\n`)
    return 0
  }
  try {
    return await command.run(rest, io)
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(`tessera ${name}: ${error.message}\n\nusage: ${command.usage}\n`)
      return 2
    }
    io.stderr.write(`tessera ${name}: ${(error as Error)?.stack ?? String(error)}\n`)
    return 1
  }
}
