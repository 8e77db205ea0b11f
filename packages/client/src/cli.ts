/**
 * The `tessera` command line: JSON on stdout, errors on stderr with a non-zero exit. The core commands are here;
 * each module adds its own (`Module.cli`), and an entry point passes them to `main`.
 */
import { parseArgs } from "node:util"
import { Cli } from "@tessera/contracts"
import { Cause, type Duration, Effect, Exit, Option } from "effect"
import type { RpcGroup } from "effect/rpc"
import * as TesseraClient from "./TesseraClient.ts"

export type Io = Cli.Io
export type Command = Cli.Command
export const UsageError = Cli.UsageError

/** `--url`, `--token` and `--help`: the options every gateway command takes. */
export const connectionOptions = {
  url: { type: "string" },
  token: { type: "string" },
  help: { type: "boolean", short: "h" }
} as const

/** Help lines for `connectionOptions`. */
export const connectionHelp = `  --url URL      gateway URL (default: $TESSERA_URL or http://127.0.0.1:7400)
  --token TOKEN  bearer token (default: $TESSERA_TOKEN)`

/** `node:util` parseArgs, strict, with parse problems as `UsageError`s. */
export const parse = <
  const O extends Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }>
>(
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

/** Runs one gateway call and prints its JSON result; gives up after `timeout` (long admin jobs pass their own). */
export const callGateway = async <Api extends RpcGroup.Any, A>(
  api: Api,
  values: { url?: string | undefined; token?: string | undefined },
  io: Io,
  call: (client: TesseraClient.Client<Api>) => Effect.Effect<A, unknown>,
  timeout: Duration.Input = "30 seconds"
): Promise<number> => {
  const options = clientOptions(values, io.env)
  const exit = await Effect.runPromiseExit(
    Effect.scoped(Effect.flatMap(TesseraClient.make(api, options), call)).pipe(Effect.timeout(timeout))
  )
  if (Exit.isSuccess(exit)) {
    io.stdout.write(`${JSON.stringify(exit.value, null, 2)}\n`)
    return 0
  }
  io.stderr.write(`tessera: ${describeFailure(exit.cause, options.url)}\n`)
  return 1
}

/** The commands every `tessera` has; modules add theirs (`main(argv, io, module.cli)`). */
export const coreCommands: ReadonlyArray<Command> = [
  {
    name: "status",
    summary: "runners, shards per runner, active entities and hosted modules (JSON)",
    usage: `tessera status [--url URL] [--token TOKEN]\n\n${connectionHelp}`,
    run: async (argv, io) => {
      const { values } = parse(argv, connectionOptions)
      return callGateway(TesseraClient.controlApi, values, io, (client) => client.Status())
    }
  }
]

const help = (commands: ReadonlyMap<string, Command>) =>
  `tessera: command line for a Tessera cluster

usage: tessera <command> [options]

commands:
${[...commands].map(([name, command]) => `  ${name.padEnd(10)} ${command.summary}`).join("\n")}

Run 'tessera <command> --help' for a command's options.
`

/** Runs `tessera <argv>` with the core commands and `extra` (modules' commands); resolves to the exit code. */
export const main = async (
  argv: ReadonlyArray<string>,
  io: Io,
  extra: ReadonlyArray<Command> = []
): Promise<number> => {
  const commands = new Map<string, Command>()
  for (const command of [...coreCommands, ...extra]) {
    if (commands.has(command.name)) throw new TypeError(`two tessera commands are named ${command.name}`)
    commands.set(command.name, command)
  }
  const [name, ...rest] = argv
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    io.stdout.write(help(commands))
    return name === undefined ? 2 : 0
  }
  const command = commands.get(name)
  if (command === undefined) {
    io.stderr.write(`tessera: unknown command "${name}"\n\n${help(commands)}`)
    return 2
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    io.stdout.write(`${command.usage}\n`)
    return 0
  }
  try {
    return await command.run(rest, io)
  } catch (error) {
    if (error instanceof Cli.UsageError) {
      io.stderr.write(`tessera ${name}: ${error.message}\n\nusage: ${command.usage}\n`)
      return 2
    }
    io.stderr.write(`tessera ${name}: ${(error as Error)?.stack ?? String(error)}\n`)
    return 1
  }
}
