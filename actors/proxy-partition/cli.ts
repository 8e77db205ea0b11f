/**
 * `tessera graph ...`: turns the subcommand's arguments into one gateway call (the CLI prints the result).
 * Throws `GraphUsage` for bad arguments.
 */

import { callGateway, connectionHelp, connectionOptions, type Io, parse, UsageError } from "@tessera/client/cli"
import { Effect } from "effect"
import { type GraphApiClient, graphApi, graphClient } from "./client.ts"
import { DEFAULT_PARTITIONS } from "./core.ts"
import type { Properties } from "./protocol.ts"

export class GraphUsage extends Error {}

export const graphUsage = `tessera graph <subcommand> [options]

  put ID [--props JSON]            create or replace a vertex (properties: a JSON object, default {})
  get ID [ID...]                   one vertex, or several at once (Graph.BatchGet; null for unknown ids)
  delete ID                        delete a vertex and its out-edges
  edge SRC LABEL DST [--remove]    add (or remove) the directed edge SRC -LABEL-> DST
  neighbors ID [--label L]         out-neighbours, 1 hop
  khop ID --k N [--label L] [--limit N]   vertices within N <= 3 hops
  stats                            partition tiers, temperatures, preferred zones and traffic served in and
                                   outside them (graph_partitions; sameZone / crossZone totals)
  demote PARTITION                 snapshot a partition to the cold tier now
  info PARTITION                   tier, size, host runner and its zone, preferred zone of one partition
  rebalance [--iterations N] [--seed S] [--dry-run]
                                   communities from the stored edges (label propagation, N rounds at most,
                                   default 20; order and ties drawn from a PRNG seeded by S, default 1), then every vertex
                                   without a placement key moves online to its community's partition

  --partitions N   total partitions, as the cluster's TESSERA_GRAPH_PARTITIONS (default: that variable or 64)

  Placement keys: with the default TESSERA_GRAPH_PLACEMENT=tag, an id's hash tag decides its partition, as in
  Redis: {acme}alice and {acme}bob live together. A key is 1-64 of A-Z a-z 0-9 . _ - : / @ + =.`

export const graphOptions = {
  props: { type: "string" },
  label: { type: "string" },
  k: { type: "string" },
  limit: { type: "string" },
  partitions: { type: "string" },
  remove: { type: "boolean" },
  iterations: { type: "string" },
  seed: { type: "string" },
  "dry-run": { type: "boolean" }
} as const

export interface GraphValues {
  readonly props?: string | undefined
  readonly label?: string | undefined
  readonly k?: string | undefined
  readonly limit?: string | undefined
  readonly partitions?: string | undefined
  readonly remove?: boolean | undefined
  readonly iterations?: string | undefined
  readonly seed?: string | undefined
  readonly "dry-run"?: boolean | undefined
}

const integer = (name: string, value: string | undefined): number | undefined => {
  if (value === undefined) return undefined
  if (!/^\d+$/.test(value)) throw new GraphUsage(`--${name} must be a non-negative integer, got ${value}`)
  return Number(value)
}

const arity = (args: ReadonlyArray<string>, n: number, what: string) => {
  if (args.length !== n) throw new GraphUsage(`usage: tessera graph ${what}`)
}

export const graphCall = (
  positionals: ReadonlyArray<string>,
  values: GraphValues,
  env: Record<string, string | undefined>
): ((client: GraphApiClient) => Effect.Effect<unknown, unknown>) => {
  const [sub, ...args] = positionals
  const partitions = integer("partitions", values.partitions ?? env.TESSERA_GRAPH_PARTITIONS) ?? DEFAULT_PARTITIONS
  if (partitions < 1) throw new GraphUsage("--partitions must be at least 1")
  const g = (client: GraphApiClient) => graphClient(client, partitions)
  switch (sub) {
    case "put": {
      arity(args, 1, "put ID [--props JSON]")
      let properties: Properties
      try {
        properties = JSON.parse(values.props ?? "{}")
      } catch (error) {
        throw new GraphUsage(`--props is not JSON: ${(error as Error).message}`)
      }
      if (properties === null || typeof properties !== "object" || Array.isArray(properties)) {
        throw new GraphUsage("--props must be a JSON object")
      }
      return (client) => g(client).put(args[0], properties)
    }
    case "get":
      if (args.length === 0) throw new GraphUsage("usage: tessera graph get ID [ID...]")
      return args.length === 1
        ? (client) => g(client).get(args[0])
        : (client) =>
            Effect.map(g(client).batchGet(args), (values) => args.map((id, i) => ({ id, properties: values[i] })))
    case "delete":
      arity(args, 1, "delete ID")
      return (client) => g(client).delete(args[0])
    case "edge":
      arity(args, 3, "edge SRC LABEL DST [--remove]")
      return values.remove === true
        ? (client) => g(client).removeEdge(args[0], args[1], args[2])
        : (client) => g(client).addEdge(args[0], args[1], args[2])
    case "neighbors":
      arity(args, 1, "neighbors ID [--label L]")
      return (client) => g(client).neighbors(args[0], values.label)
    case "khop": {
      arity(args, 1, "khop ID --k N [--label L] [--limit N]")
      const k = integer("k", values.k)
      if (k === undefined) throw new GraphUsage("khop needs --k N (1 to 3)")
      const limit = integer("limit", values.limit)
      return (client) => g(client).khop(args[0], k, { label: values.label, limit })
    }
    case "stats":
      arity(args, 0, "stats")
      return (client) => g(client).stats()
    case "demote":
    case "info": {
      arity(args, 1, `${sub} PARTITION`)
      const partition = integer("partition", args[0]) ?? 0
      return sub === "demote" ? (client) => g(client).demote(partition) : (client) => g(client).info(partition)
    }
    case "rebalance": {
      arity(args, 0, "rebalance [--iterations N] [--seed S] [--dry-run]")
      const iterations = integer("iterations", values.iterations)
      const seed = integer("seed", values.seed)
      const dryRun = values["dry-run"] === true
      return (client) => client["Graph.Rebalance"]({ iterations, seed, dryRun })
    }
    default:
      throw new GraphUsage(`unknown graph subcommand ${JSON.stringify(sub ?? "")}\n\n${graphUsage}`)
  }
}

/** `tessera graph ...` (listed in module.ts). */
export const graphCommand = async (argv: ReadonlyArray<string>, io: Io): Promise<number> => {
  const { values, positionals } = parse(argv, { ...connectionOptions, ...graphOptions }, true)
  let call: ReturnType<typeof graphCall>
  try {
    call = graphCall(positionals, values, io.env)
  } catch (error) {
    if (error instanceof GraphUsage) throw new UsageError(error.message)
    throw error
  }
  // A rebalance makes one move after another: it gets an hour, not the usual 30 s.
  return callGateway(graphApi, values, io, call, positionals[0] === "rebalance" ? "1 hour" : undefined)
}

export const graphCommandUsage = `${graphUsage}\n${connectionHelp}`
