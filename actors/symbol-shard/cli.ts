// `tessera order place|cancel|move|get`, `tessera book`, `tessera md tail`: the symbol shard's CLI commands
// (listed in module.ts, loaded when run).
import { parseArgs } from "node:util"
import { callGateway, describeFailure, type Io, UsageError } from "@tessera/client/cli"
import * as TesseraClient from "@tessera/client/TesseraClient"
import { Contract } from "@tessera/contracts"
import { Effect, Exit, Stream } from "effect"
import { SymbolShardContract } from "./protocol.ts"

const api = Contract.api(SymbolShardContract)

type Options = Record<string, { type: "string" | "boolean" }>

const parse = (argv: ReadonlyArray<string>, options: Options) => {
  try {
    return parseArgs({ args: [...argv], options, allowPositionals: true, strict: true })
  } catch (error) {
    throw new UsageError((error as Error).message)
  }
}

const common = { url: { type: "string" }, token: { type: "string" }, symbol: { type: "string" } } as const

export const orderUsage = `tessera order place --symbol S --account A --client-id C --side buy|sell [--type limit|market]
                    [--price P] --qty Q [--tif GTC|IOC|FOK] [--post-only]
tessera order cancel --symbol S --id ORDER_ID [--request-id R]
tessera order move --symbol S --id ORDER_ID [--price P] [--qty Q] [--request-id R]
tessera order get --symbol S --id ORDER_ID
  --request-id R: makes a cancel or move safe to retry (the same R answers the first result, applied once)
  --url URL --token TOKEN as for every command`

export const orderCommand = async (argv: ReadonlyArray<string>, io: Io): Promise<number> => {
  const [action, ...rest] = argv
  if (action === undefined || action.startsWith("-")) {
    throw new UsageError("order needs an action: place, cancel, move or get")
  }
  const { values } = parse(rest, {
    ...common,
    id: { type: "string" },
    account: { type: "string" },
    "client-id": { type: "string" },
    side: { type: "string" },
    type: { type: "string" },
    price: { type: "string" },
    qty: { type: "string" },
    tif: { type: "string" },
    "post-only": { type: "boolean" },
    "request-id": { type: "string" }
  })
  const v = values as Record<string, string | boolean | undefined>
  const str = (name: string) => (typeof v[name] === "string" ? (v[name] as string) : undefined)
  const need = (name: string) => {
    const value = str(name)
    if (value === undefined) throw new UsageError(`order ${action} needs --${name}`)
    return value
  }
  const entityId = need("symbol")
  const conn = { url: str("url"), token: str("token") }
  switch (action) {
    case "place": {
      const payload = {
        account: need("account"),
        clientOrderId: need("client-id"),
        side: need("side") as "buy" | "sell",
        type: str("type") as "limit" | "market" | undefined,
        price: str("price"),
        qty: need("qty"),
        tif: str("tif") as "GTC" | "IOC" | "FOK" | undefined,
        postOnly: v["post-only"] === true ? true : undefined
      }
      return callGateway(api, conn, io, (client) => client["SymbolShard.Place"]({ entityId, payload }))
    }
    case "cancel": {
      const payload = { orderId: need("id"), requestId: str("request-id") }
      return callGateway(api, conn, io, (client) => client["SymbolShard.Cancel"]({ entityId, payload }))
    }
    case "move": {
      const payload = { orderId: need("id"), price: str("price"), qty: str("qty"), requestId: str("request-id") }
      return callGateway(api, conn, io, (client) => client["SymbolShard.Move"]({ entityId, payload }))
    }
    case "get": {
      const orderId = need("id")
      return callGateway(api, conn, io, (client) => client["SymbolShard.GetOrder"]({ entityId, payload: { orderId } }))
    }
    default:
      throw new UsageError(`unknown order action ${JSON.stringify(action)} (place, cancel, move, get)`)
  }
}

export const bookUsage = "tessera book --symbol S [--depth N] [--url URL] [--token TOKEN]"

export const bookCommand = async (argv: ReadonlyArray<string>, io: Io): Promise<number> => {
  const { values } = parse(argv, { ...common, depth: { type: "string" } })
  const v = values as Record<string, string | undefined>
  if (v.symbol === undefined) throw new UsageError("book needs --symbol")
  const depth = v.depth === undefined ? 10 : Number(v.depth)
  if (!Number.isInteger(depth) || depth < 1) throw new UsageError("--depth must be a positive integer")
  return callGateway(api, { url: v.url, token: v.token }, io, (client) =>
    client["SymbolShard.Depth"]({ entityId: v.symbol as string, payload: { depth } })
  )
}

export const mdUsage = `tessera md tail [--symbol S ...] [--market M ...] [--from STREAM=ID ...] [--count N]
                [--url URL] [--token TOKEN]
  follows the trades and depth of each symbol (md:{S}:trades, md:{S}:depth) and the book deltas of each market
  (md:book:{M}) through the gateway's MarketData.Subscribe, one JSON line per entry ({stream, id, kind, source,
  ...fields}); reconnects and resumes after the last id printed. --from STREAM=ID starts that stream after ID (the
  id of the last line you have); --count stops after N entries`

export const mdCommand = async (argv: ReadonlyArray<string>, io: Io): Promise<number> => {
  const [action, ...rest] = argv
  if (action !== "tail") throw new UsageError("md supports: tail")
  const { values } = parse(rest, {
    url: { type: "string" },
    token: { type: "string" },
    symbol: { type: "string", multiple: true },
    market: { type: "string", multiple: true },
    from: { type: "string", multiple: true },
    count: { type: "string" }
  } as never)
  const v = values as {
    url?: string
    token?: string
    symbol?: Array<string>
    market?: Array<string>
    from?: Array<string>
    count?: string
  }
  if (v.symbol === undefined && v.market === undefined) throw new UsageError("md tail needs --symbol or --market")
  const limit = v.count === undefined ? Number.POSITIVE_INFINITY : Number(v.count)
  if (!(limit >= 1) || (limit !== Number.POSITIVE_INFINITY && !Number.isInteger(limit))) {
    throw new UsageError("--count must be a positive integer")
  }
  const from: Record<string, string> = {}
  for (const item of v.from ?? []) {
    const at = item.lastIndexOf("=")
    if (at <= 0) throw new UsageError(`--from takes STREAM=ID, not ${JSON.stringify(item)}`)
    from[item.slice(0, at)] = item.slice(at + 1)
  }
  const url = v.url ?? io.env.TESSERA_URL ?? "http://127.0.0.1:7400"
  const events = TesseraClient.subscribe(
    { url, token: v.token ?? io.env.TESSERA_TOKEN },
    { symbols: v.symbol, markets: v.market, from }
  )
  const exit = await Effect.runPromiseExit(
    (limit === Number.POSITIVE_INFINITY ? events : Stream.take(events, limit)).pipe(
      Stream.runForEach((event) =>
        Effect.sync(() => {
          const { stream, id, kind, source, fields } = event
          io.stdout.write(`${JSON.stringify({ stream, id, kind, source, ...fields })}\n`)
        })
      )
    )
  )
  if (Exit.isSuccess(exit)) return 0
  io.stderr.write(`tessera: ${describeFailure(exit.cause, url)}\n`)
  return 1
}

export const symbolUsage = `tessera symbol list
tessera symbol add --symbol S --tick T --lot L [--min-qty Q] [--max-qty Q]
tessera symbol halt --symbol S        (places and moves refused with Halted; cancels still run)
tessera symbol resume --symbol S
tessera symbol set --symbol S [--min-qty Q] [--max-qty Q]   (limits for new orders; tick and lot are fixed)
  changes need an admin token; --url URL --token TOKEN as for every command`

export const symbolCommand = async (argv: ReadonlyArray<string>, io: Io): Promise<number> => {
  const [action, ...rest] = argv
  if (action === undefined || action.startsWith("-")) {
    throw new UsageError("symbol needs an action: list, add, halt, resume or set")
  }
  const { values } = parse(rest, {
    ...common,
    tick: { type: "string" },
    lot: { type: "string" },
    "min-qty": { type: "string" },
    "max-qty": { type: "string" }
  })
  const v = values as Record<string, string | undefined>
  const need = (name: string) => {
    const value = v[name]
    if (value === undefined) throw new UsageError(`symbol ${action} needs --${name}`)
    return value
  }
  const conn = { url: v.url, token: v.token }
  switch (action) {
    case "list":
      return callGateway(api, conn, io, (client) => client["Symbols.List"](undefined as never))
    case "add": {
      const payload = {
        symbol: need("symbol"),
        tick: need("tick"),
        lot: need("lot"),
        minQty: v["min-qty"],
        maxQty: v["max-qty"]
      }
      return callGateway(api, conn, io, (client) => client["Symbols.Add"](payload))
    }
    case "halt":
      return callGateway(api, conn, io, (client) => client["Symbols.Halt"]({ symbol: need("symbol") }))
    case "resume":
      return callGateway(api, conn, io, (client) => client["Symbols.Resume"]({ symbol: need("symbol") }))
    case "set": {
      const symbol = need("symbol")
      if (v["min-qty"] === undefined && v["max-qty"] === undefined) {
        throw new UsageError("symbol set needs --min-qty or --max-qty")
      }
      return callGateway(api, conn, io, (client) =>
        client["Symbols.Set"]({ symbol, minQty: v["min-qty"], maxQty: v["max-qty"] })
      )
    }
    default:
      throw new UsageError(`unknown symbol action ${JSON.stringify(action)} (list, add, halt, resume, set)`)
  }
}
