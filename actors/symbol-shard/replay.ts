// `tessera replay`: commands as JSON lines on stdin, events as JSON lines on stdout (DESIGN.md §3.1).
// One symbol, no cluster, no storage. Malformed lines are reported on stderr as `line N: <reason>`
// and skipped; the run goes on. A long run shows progress on stderr (never stdout): a bar when stderr is a
// terminal (and stdout is not), plain lines every few seconds otherwise, nothing for runs shorter than that.
import { fstatSync } from "node:fs"
import { progress } from "@tessera/platform/Progress"
import { DecimalUnit } from "./engine/Decimal.ts"
import { bookLine, eventLines } from "./engine/events.ts"
import { OrderBook } from "./engine/OrderBook.ts"

export interface ReplayIo {
  readonly stdin: NodeJS.ReadableStream
  readonly stdout: NodeJS.WritableStream
  readonly stderr: NodeJS.WritableStream
  /** Milliseconds before progress may appear on stderr (default 1 s on a terminal, 5 s otherwise). */
  readonly progressAfterMs?: number
}

/** The size of stdin when it is a regular file (`tessera replay < big.jsonl`), for a progress total. */
const inputSize = (stdin: NodeJS.ReadableStream): number | undefined => {
  const fd = (stdin as { readonly fd?: unknown }).fd
  if (typeof fd !== "number") return undefined
  try {
    const stat = fstatSync(fd)
    return stat.isFile() ? stat.size : undefined
  } catch {
    return undefined
  }
}

/** Progress for a replay, or undefined when events already scroll on the same terminal. */
const replayProgress = (io: ReplayIo) => {
  const stderr = io.stderr as NodeJS.WritableStream & { readonly isTTY?: boolean; readonly columns?: number }
  const stdoutTty = (io.stdout as { readonly isTTY?: boolean }).isTTY === true
  if (stderr.isTTY === true && stdoutTty) return undefined
  const size = inputSize(io.stdin)
  const bar = progress("replay", {
    stream: stderr,
    total: size,
    unit: size === undefined ? "lines" : "B",
    afterMs: io.progressAfterMs ?? (stderr.isTTY === true ? 1000 : 5000)
  })
  return { bar, bytes: size !== undefined }
}

const usage = `usage: tessera replay [--tick 0.01] [--lot 1] [--min-qty Q] [--max-qty Q]

Reads order-book commands as JSON lines on stdin and writes events as JSON lines on stdout:
  {"op":"place","id":"o1","account":"a1","side":"buy","type":"limit","price":"100.00","qty":"5","tif":"GTC"}
  {"op":"place","id":"o2","side":"sell","type":"market","qty":"3"}
  {"op":"place","id":"o3","side":"sell","type":"limit","price":"101","qty":"1","postOnly":true}
  {"op":"cancel","id":"o1"}
  {"op":"move","id":"o1","price":"101.00"}          (optional "qty": the new open quantity; no "price" keeps it)
  {"op":"book","depth":5}                          (no depth: every level)

options:
  --tick T      price increment (default 0.01); prices print with its decimals
  --lot L       quantity increment (default 1); quantities print with its decimals
  --min-qty Q   smallest order quantity (default: one lot)
  --max-qty Q   largest order quantity (default: 2^48-1 lots)
  --help        this text
Malformed lines are reported on stderr as "line N: <reason>" and skipped.
`

const FLUSH_AT = 1 << 16

/** Runs `tessera replay`; resolves to the exit code (0, or 2 for bad arguments). */
export async function replayCommand(argv: ReadonlyArray<string>, io: ReplayIo): Promise<number> {
  const opts: Record<string, string | undefined> = {
    tick: "0.01",
    lot: "1",
    "min-qty": undefined,
    "max-qty": undefined
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === "--help" || arg === "-h") {
      io.stdout.write(usage)
      return 0
    }
    const eq = arg.indexOf("=")
    const name = arg.startsWith("--") ? arg.slice(2, eq === -1 ? undefined : eq) : ""
    if (!(name in opts)) {
      io.stderr.write(`tessera replay: unknown argument "${arg}"\n\n${usage}`)
      return 2
    }
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1)
    if (value === undefined || value === "") {
      io.stderr.write(`tessera replay: --${name} needs a value\n`)
      return 2
    }
    opts[name] = value
  }
  for (const name of ["tick", "lot"]) {
    try {
      new DecimalUnit(opts[name]!)
    } catch (e) {
      io.stderr.write(`tessera replay: --${name}: ${(e as Error).message}\n`)
      return 2
    }
  }
  let book: OrderBook
  try {
    book = new OrderBook({ tick: opts.tick!, lot: opts.lot!, minQty: opts["min-qty"], maxQty: opts["max-qty"] })
  } catch (e) {
    io.stderr.write(`tessera replay: ${(e as Error).message}\n`)
    return 2
  }

  const replayer = new Replayer(book)
  let out = ""
  let err = ""
  const flush = async (): Promise<void> => {
    if (err !== "") {
      io.stderr.write(err)
      err = ""
    }
    if (out !== "") {
      const ok = io.stdout.write(out)
      out = ""
      if (!ok) await new Promise<void>((resolve) => io.stdout.once("drain", resolve))
    }
  }

  const shown = replayProgress(io)
  const decoder = new TextDecoder()
  let carry = ""
  let lineNo = 0
  for await (const chunk of io.stdin) {
    if (shown !== undefined) {
      if (shown.bytes)
        shown.bar.tick(typeof chunk === "string" ? Buffer.byteLength(chunk) : (chunk as Uint8Array).length)
      else shown.bar.set(lineNo)
    }
    const text = carry + (typeof chunk === "string" ? chunk : decoder.decode(chunk as Uint8Array, { stream: true }))
    let start = 0
    let nl = text.indexOf("\n", start)
    while (nl !== -1) {
      lineNo++
      const res = replayer.line(text, start, nl)
      if (res !== undefined) out += res
      else err += `line ${lineNo}: ${replayer.error}\n`
      start = nl + 1
      nl = text.indexOf("\n", start)
    }
    carry = text.slice(start)
    if (out.length >= FLUSH_AT || err.length >= FLUSH_AT) await flush()
  }
  carry += decoder.decode()
  if (carry.length > 0) {
    lineNo++
    const res = replayer.line(carry, 0, carry.length)
    if (res !== undefined) out += res
    else err += `line ${lineNo}: ${replayer.error}\n`
  }
  await flush()
  if (shown !== undefined) {
    if (!shown.bytes) shown.bar.set(lineNo)
    shown.bar.done()
  }
  return 0
}

/** Applies one JSON command line to a book and returns its event lines, or undefined with `error` set. */
export class Replayer {
  readonly book: OrderBook
  /** Why the last line was malformed. */
  error = ""

  constructor(book: OrderBook) {
    this.book = book
  }

  /** Handles `text[start, end)`; returns the event lines ("" for a blank line) or undefined if malformed. */
  line(text: string, start: number, end: number): string | undefined {
    if (end > start && text.charCodeAt(end - 1) === 13) end--
    let blank = true
    for (let i = start; i < end; i++) {
      const c = text.charCodeAt(i)
      if (c !== 32 && c !== 9) {
        blank = false
        break
      }
    }
    if (blank) return ""
    let cmd: unknown
    try {
      cmd = JSON.parse(start === 0 && end === text.length ? text : text.slice(start, end))
    } catch {
      return this.fail("invalid JSON")
    }
    return this.command(cmd)
  }

  /** Handles one decoded command. */
  command(cmd: unknown): string | undefined {
    if (typeof cmd !== "object" || cmd === null || Array.isArray(cmd)) return this.fail("expected a JSON object")
    const c = cmd as Record<string, unknown>
    const book = this.book
    switch (c.op) {
      case "place": {
        const id = c.id
        if (typeof id !== "string" || id === "") return this.fail('place needs a non-empty string "id"')
        const side = lower(c.side)
        if (side !== "buy" && side !== "sell") return this.fail('"side" must be "buy" or "sell"')
        const type = c.type === undefined ? "limit" : lower(c.type)
        if (type !== "limit" && type !== "market") return this.fail('"type" must be "limit" or "market"')
        const tif = c.tif === undefined ? "GTC" : typeof c.tif === "string" ? c.tif.toUpperCase() : ""
        if (tif !== "GTC" && tif !== "IOC" && tif !== "FOK") return this.fail('"tif" must be "GTC", "IOC" or "FOK"')
        if (c.postOnly !== undefined && typeof c.postOnly !== "boolean")
          return this.fail('"postOnly" must be a boolean')
        if (c.account !== undefined && typeof c.account !== "string") return this.fail('"account" must be a string')
        book.place({
          id,
          account: c.account,
          side,
          type,
          price: decimalField(c.price),
          qty: decimalField(c.qty) ?? "",
          tif,
          postOnly: c.postOnly
        })
        return eventLines(book)
      }
      case "cancel": {
        const id = c.id
        if (typeof id !== "string" || id === "") return this.fail('cancel needs a non-empty string "id"')
        book.cancel(id)
        return eventLines(book)
      }
      case "move": {
        const id = c.id
        if (typeof id !== "string" || id === "") return this.fail('move needs a non-empty string "id"')
        if (c.price === undefined && c.qty === undefined) return this.fail('move needs "price" and/or "qty"')
        book.move(id, c.price === undefined ? undefined : (decimalField(c.price) ?? ""), decimalField(c.qty))
        return eventLines(book)
      }
      case "book": {
        const depth = c.depth
        if (depth !== undefined && !(typeof depth === "number" && Number.isInteger(depth) && depth >= 0)) {
          return this.fail('"depth" must be a non-negative integer')
        }
        return bookLine(book.depth(depth ?? Number.POSITIVE_INFINITY))
      }
      case undefined:
        return this.fail('missing "op"')
      default:
        return this.fail(`unknown op ${JSON.stringify(c.op)}`)
    }
  }

  private fail(reason: string): undefined {
    this.error = reason
    return undefined
  }
}

const lower = (v: unknown): string => (typeof v === "string" ? v.toLowerCase() : "")

/** A price or quantity field: decimal strings and JSON numbers pass; anything else becomes "" (invalid). */
const decimalField = (v: unknown): string | number | undefined =>
  v === undefined ? undefined : typeof v === "string" || typeof v === "number" ? v : ""
