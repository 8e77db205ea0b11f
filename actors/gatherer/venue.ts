/**
 * Venue simulator: a real WebSocket server publishing order-book deltas for M markets at a total rate, each
 * market with its own gapless seq. An outside program in the shape of a real venue (plain Node, no Effect):
 * tests run it in process, benches and `npm start` demos as a process (`venue-cli.ts`).
 *
 * Protocol (JSON text frames):
 * - client → `{"op":"subscribe","markets":["m0",...]}` / `{"op":"unsubscribe","markets":[...]}`
 * - server → `{"type":"subscribed","count":n}`, then `{"type":"deltas","d":[[market,seq,ts,side,price,qty],...]}`
 *   (side 0 = bid, 1 = ask; ts = venue time in ms); per connection per tick, at most 1000 deltas a frame. After a
 *   market's sequence reset its deltas carry the epoch as a 7th element and seqs restart at 1; the reset itself is
 *   announced as `{"type":"reset","market":"m3","epoch":1}`.
 * - HTTP `GET /markets` → `["m0",...]`; `GET /snapshot?market=m1&from=S[&epoch=E]` → `{"market","epoch",
 *   "firstSeq","lastSeq","d":[...]}`: the retained deltas from S (or from the oldest retained one) up to the latest;
 *   asked for an earlier epoch than the market's, the current epoch's retained deltas.
 *
 * Faults are injected per connection with a seeded generator, from the venue's defaults or the connection URL's
 * query (`ws://host:port/?drop=0.01&dup=0.01&reorder=8&stall=0.001&stallMs=300&disconnect=0.0005&seed=7`):
 * `drop`/`dup` per delta, `reorder` = window of deltas a copy may be held back, `stall`/`disconnect`/`garbage`
 * (a frame of garbage)/`huge` (a 1 MiB frame) per tick. Venue-wide: `reset` (per tick, one random market's sequence
 * resets) and `snapshot503` (per snapshot request); `setSnapshotFault` makes every snapshot fail one way.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { prng } from "@tessera/platform/Random"
import { type WebSocket, WebSocketServer } from "ws"

export interface Faults {
  readonly drop: number
  readonly dup: number
  readonly reorder: number
  readonly stall: number
  readonly stallMs: number
  readonly disconnect: number
  readonly garbage: number
  readonly huge: number
  /** Venue-wide, per tick: one random market's sequence resets (a new epoch from seq 1). */
  readonly reset: number
  /** Venue-wide, per snapshot request: answered 503. */
  readonly snapshot503: number
}

export const noFaults: Faults = {
  drop: 0,
  dup: 0,
  reorder: 0,
  stall: 0,
  stallMs: 0,
  disconnect: 0,
  garbage: 0,
  huge: 0,
  reset: 0,
  snapshot503: 0
}

/** How every snapshot request fails until set back to `none`: 503, never answered, a 9 MiB body, or `firstSeq` 1e15. */
export type SnapshotFault = "none" | "503" | "timeout" | "oversize" | "invalid"

/** Deltas per frame at most, so a catch-up after a stall never makes a frame a client's size cap refuses. */
const frameDeltas = 1000

export interface VenueOptions {
  readonly markets: number
  /** Total deltas per second over all markets. */
  readonly rate: number
  readonly seed?: number
  readonly port?: number
  readonly host?: string
  readonly tickMs?: number
  /** Deltas retained per market for snapshots (default: about 2M entries over all markets, 64..1024 each). */
  readonly retention?: number
  readonly faults?: Partial<Faults>
  /** false: deltas never carry their epoch; only the `reset` marker (and snapshots) say a market reset. */
  readonly tagEpochs?: boolean
}

export interface VenueStats {
  readonly published: number
  readonly connections: number
  readonly connectionsTotal: number
  readonly snapshots: number
  readonly snapshotsFailed: number
  readonly resets: number
}

export interface Venue {
  readonly url: string
  readonly httpUrl: string
  readonly port: number
  readonly marketNames: ReadonlyArray<string>
  /** The last seq published for each market (index = market number). */
  readonly lastSeqs: () => Float64Array
  readonly stats: () => VenueStats
  readonly setRate: (rate: number) => void
  /** Stops publishing (seqs stay where they are) or resumes. */
  readonly pause: (paused: boolean) => void
  /** Drops every connection (clients see a close). */
  readonly disconnectAll: () => void
  /** Sends a raw text frame to every connection (garbage tests). */
  readonly sendRaw: (text: string) => void
  /** Resets the sequence of these markets (by index): a new epoch from seq 1, announced to subscribers. */
  readonly resetMarkets: (markets: ReadonlyArray<number>) => void
  /** The epoch of each market (index = market number); 0 until its first reset. */
  readonly epochs: () => Uint16Array
  readonly setSnapshotFault: (fault: SnapshotFault) => void
  readonly close: () => Promise<void>
}

interface Connection {
  readonly socket: WebSocket
  readonly subscribed: Uint8Array
  readonly faults: Faults
  readonly random: () => number
  /** Encoded deltas waiting for this tick's frame (or for a stall to end). */
  pending: Array<string>
  /** Copies held back for reordering, released after `releaseAt` ticks. */
  readonly held: Array<{ readonly json: string; releaseAt: number }>
  stalledUntil: number
}

const parseFaults = (defaults: Faults, query: URLSearchParams): { faults: Faults; seed: number | undefined } => {
  const num = (name: string, fallback: number) => {
    const raw = query.get(name)
    const value = raw === null ? Number.NaN : Number(raw)
    return Number.isFinite(value) && value >= 0 ? value : fallback
  }
  const seed = query.get("seed")
  return {
    faults: {
      drop: num("drop", defaults.drop),
      dup: num("dup", defaults.dup),
      reorder: Math.floor(num("reorder", defaults.reorder)),
      stall: num("stall", defaults.stall),
      stallMs: num("stallMs", defaults.stallMs),
      disconnect: num("disconnect", defaults.disconnect),
      garbage: num("garbage", defaults.garbage),
      huge: num("huge", defaults.huge),
      reset: defaults.reset,
      snapshot503: defaults.snapshot503
    },
    seed: seed === null ? undefined : Number(seed) | 0
  }
}

/** Garbage a broken venue or a middlebox might send: bad JSON, a frame that forges a log line, bad deltas. */
const garbageFrame = (random: () => number): string => {
  const pick = Math.floor(random() * 4)
  if (pick === 0) return "\u0000not json\n2026-01-01T00:00:00Z level=ERROR forged log line"
  if (pick === 1) return `{"type":"deltas","d":[["m0",-1,0,0,1,1],["m0",1e15,0,0,1,1],["nope\nlevel=ERROR",1,0,0,1,1]]}`
  if (pick === 2) return `{"type":"deltas","d":"oops"}`
  return `[1,2,3]`
}

/** A 1 MiB frame (a valid-looking deltas frame of padding). */
const makeHugeFrame = () => `{"type":"deltas","pad":"${"x".repeat(1024 * 1024)}","d":[]}`

export const startVenue = (options: VenueOptions): Promise<Venue> => {
  const marketCount = options.markets
  const marketNames = Array.from({ length: marketCount }, (_, i) => `m${i}`)
  const marketIndex = new Map(marketNames.map((name, i) => [name, i]))
  const seed = options.seed ?? 1
  const random = prng(seed)
  const tickMs = options.tickMs ?? 10
  const retention =
    options.retention ?? Math.max(64, Math.min(1024, 2 ** Math.ceil(Math.log2(2_000_000 / marketCount)) / 2))
  const defaults: Faults = { ...noFaults, ...options.faults }
  const tagEpochs = options.tagEpochs ?? true
  let rate = options.rate
  let paused = false
  let published = 0
  let snapshots = 0
  let snapshotsFailed = 0
  let resets = 0
  let snapshotFault: SnapshotFault = "none"
  let hugeFrame: string | undefined
  let connectionsTotal = 0
  let tick = 0
  let carry = 0
  let lastTickAt = Date.now()

  const seqs = new Float64Array(marketCount)
  const epochs = new Uint16Array(marketCount)
  const mids = new Float64Array(marketCount)
  for (let m = 0; m < marketCount; m++) mids[m] = 100 + (m % 97)
  // Retention ring per market: seq s of market m lives at m * retention + s % retention.
  const ringTs = new Float64Array(marketCount * retention)
  const ringSide = new Uint8Array(marketCount * retention)
  const ringPrice = new Float64Array(marketCount * retention)
  const ringQty = new Float64Array(marketCount * retention)

  const connections = new Set<Connection>()

  const encode = (m: number, seq: number, ts: number, side: number, price: number, qty: number) =>
    epochs[m] === 0 || !tagEpochs
      ? `["${marketNames[m]}",${seq},${ts},${side},${price},${qty}]`
      : `["${marketNames[m]}",${seq},${ts},${side},${price},${qty},${epochs[m]}]`
  // Snapshots carry the epoch once at the top.
  const encodeSnapshotDelta = (m: number, seq: number, ts: number, side: number, price: number, qty: number) =>
    `["${marketNames[m]}",${seq},${ts},${side},${price},${qty}]`

  const resetMarket = (m: number) => {
    epochs[m]++
    seqs[m] = 0
    resets++
    const marker = `{"type":"reset","market":"${marketNames[m]}","epoch":${epochs[m]}}`
    for (const conn of connections) {
      if (conn.subscribed[m] === 0) continue
      // After what was already queued on this connection, so the old epoch's deltas come first.
      conn.pending.push(marker)
    }
  }

  const deliver = (conn: Connection, json: string) => {
    const f = conn.faults
    if (f.drop > 0 && conn.random() < f.drop) return
    const copies = f.dup > 0 && conn.random() < f.dup ? 2 : 1
    for (let c = 0; c < copies; c++) {
      if (f.reorder > 0 && conn.random() < 0.05) {
        conn.held.push({ json, releaseAt: tick + 1 + Math.floor(conn.random() * f.reorder) })
      } else {
        conn.pending.push(json)
      }
    }
  }

  const flush = (conn: Connection, now: number) => {
    if (conn.held.length > 0) {
      let kept = 0
      for (let i = 0; i < conn.held.length; i++) {
        const h = conn.held[i]
        if (h.releaseAt <= tick) conn.pending.push(h.json)
        else conn.held[kept++] = h
      }
      conn.held.length = kept
    }
    const f = conn.faults
    if (f.disconnect > 0 && conn.random() < f.disconnect) {
      conn.socket.terminate()
      return
    }
    if (f.stall > 0 && conn.stalledUntil === 0 && conn.random() < f.stall) conn.stalledUntil = now + f.stallMs
    if (conn.stalledUntil !== 0) {
      if (now < conn.stalledUntil) return
      conn.stalledUntil = 0
    }
    if (f.garbage > 0 && conn.random() < f.garbage) conn.socket.send(garbageFrame(conn.random))
    if (f.huge > 0 && conn.random() < f.huge) conn.socket.send((hugeFrame ??= makeHugeFrame()))
    if (conn.pending.length === 0) return
    // A consumer this far behind is cut off, as real venues do.
    if (conn.socket.bufferedAmount > 64 * 1024 * 1024) {
      conn.socket.terminate()
      return
    }
    let from = 0
    for (let i = 0; i <= conn.pending.length; i++) {
      const atEnd = i === conn.pending.length
      const marker = !atEnd && conn.pending[i].charCodeAt(0) === 123 // "{": a reset marker, sent on its own
      if (atEnd || marker || i - from === frameDeltas) {
        if (i > from) conn.socket.send(`{"type":"deltas","d":[${conn.pending.slice(from, i).join(",")}]}`)
        from = i
        if (marker) {
          conn.socket.send(conn.pending[i])
          from = i + 1
        }
      }
    }
    conn.pending = []
  }

  const onTick = () => {
    tick++
    const now = Date.now()
    // Elapsed time, not the nominal tick, so a late timer does not lower the rate.
    const elapsed = Math.min(1000, now - lastTickAt)
    lastTickAt = now
    if (!paused && defaults.reset > 0 && random() < defaults.reset) resetMarket(Math.floor(random() * marketCount))
    if (!paused) {
      carry += (rate * elapsed) / 1000
      const n = Math.floor(carry)
      carry -= n
      for (let i = 0; i < n; i++) {
        const m = Math.floor(random() * marketCount)
        const seq = ++seqs[m]
        const side = random() < 0.5 ? 0 : 1
        const price = Math.round((mids[m] + (side === 0 ? -1 : 1) * (1 + Math.floor(random() * 20)) * 0.01) * 100) / 100
        const qty = random() < 0.2 ? 0 : 1 + Math.floor(random() * 100)
        const slot = m * retention + (seq % retention)
        ringTs[slot] = now
        ringSide[slot] = side
        ringPrice[slot] = price
        ringQty[slot] = qty
        published++
        let json: string | undefined
        for (const conn of connections) {
          if (conn.subscribed[m] === 0) continue
          json ??= encode(m, seq, now, side, price, qty)
          deliver(conn, json)
        }
      }
    }
    for (const conn of connections) flush(conn, now)
  }

  const snapshot = (market: string, from: number, epoch: number) => {
    const m = marketIndex.get(market)
    if (m === undefined) return undefined
    const last = seqs[m]
    const oldest = Math.max(1, last - retention + 1)
    // Asked for an earlier epoch: that one is gone, the current one starts at its oldest retained seq.
    const first = epoch < epochs[m] ? oldest : Math.max(oldest, Math.min(from, last + 1))
    const parts: Array<string> = []
    for (let s = first; s <= last; s++) {
      const slot = m * retention + (s % retention)
      parts.push(encodeSnapshotDelta(m, s, ringTs[slot], ringSide[slot], ringPrice[slot], ringQty[slot]))
    }
    snapshots++
    return `{"market":"${market}","epoch":${epochs[m]},"firstSeq":${first},"lastSeq":${last},"d":[${parts.join(",")}]}`
  }

  /** Answers a snapshot request the way the current fault says; false: no fault, answer normally. */
  const failSnapshot = (market: string, res: ServerResponse): boolean => {
    const fault =
      snapshotFault !== "none"
        ? snapshotFault
        : defaults.snapshot503 > 0 && random() < defaults.snapshot503
          ? "503"
          : "none"
    if (fault === "none") return false
    snapshotsFailed++
    if (fault === "503") {
      res.writeHead(503, { "content-type": "application/json" })
      res.end(`{"error":"snapshot service unavailable"}`)
    } else if (fault === "invalid") {
      res.writeHead(200, { "content-type": "application/json" })
      res.end(`{"market":${JSON.stringify(market)},"firstSeq":1e15,"lastSeq":999999999999999,"d":[]}`)
    } else if (fault === "oversize") {
      res.writeHead(200, { "content-type": "application/json" })
      const chunk = "x".repeat(64 * 1024)
      res.write(`{"market":${JSON.stringify(market)},"pad":"`)
      let sent = 0
      // 9 MiB, written as the socket drains (a client that gives up early closes it).
      const more = () => {
        while (sent < 144) {
          sent++
          if (!res.write(chunk)) return void res.once("drain", more)
        }
        res.end(`","firstSeq":1,"lastSeq":0,"d":[]}`)
      }
      res.on("error", () => {})
      more()
    }
    // "timeout": never answered (close() ends the connection).
    return true
  }

  const onHttp = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://venue")
    if (url.pathname === "/markets") {
      res.writeHead(200, { "content-type": "application/json" })
      res.end(JSON.stringify(marketNames))
      return
    }
    if (url.pathname === "/snapshot") {
      const market = url.searchParams.get("market") ?? ""
      if (failSnapshot(market, res)) return
      const body = snapshot(
        market,
        Number(url.searchParams.get("from") ?? "1"),
        Number(url.searchParams.get("epoch") ?? "0")
      )
      if (body === undefined) {
        res.writeHead(404, { "content-type": "application/json" })
        res.end(`{"error":"unknown market"}`)
        return
      }
      res.writeHead(200, { "content-type": "application/json" })
      res.end(body)
      return
    }
    res.writeHead(404)
    res.end()
  }

  const server: Server = createServer(onHttp)
  const wss = new WebSocketServer({ server, perMessageDeflate: false })
  wss.on("connection", (socket, req) => {
    const query = new URL(req.url ?? "/", "http://venue").searchParams
    const { faults, seed: connSeed } = parseFaults(defaults, query)
    connectionsTotal++
    const conn: Connection = {
      socket,
      subscribed: new Uint8Array(marketCount),
      faults,
      random: prng((connSeed ?? seed) * 7919 + connectionsTotal),
      pending: [],
      held: [],
      stalledUntil: 0
    }
    connections.add(conn)
    socket.on("message", (data) => {
      let msg: { op?: unknown; markets?: unknown }
      try {
        msg = JSON.parse(String(data))
      } catch {
        socket.send(`{"type":"error","error":"invalid JSON"}`)
        return
      }
      const markets = Array.isArray(msg.markets) ? msg.markets : []
      const flag = msg.op === "subscribe" ? 1 : msg.op === "unsubscribe" ? 0 : -1
      if (flag < 0) {
        socket.send(`{"type":"error","error":"unknown op"}`)
        return
      }
      let count = 0
      for (const name of markets) {
        const m = typeof name === "string" ? marketIndex.get(name) : undefined
        if (m !== undefined) {
          conn.subscribed[m] = flag
          count++
        }
      }
      socket.send(`{"type":"${flag === 1 ? "subscribed" : "unsubscribed"}","count":${count}}`)
    })
    socket.on("close", () => connections.delete(conn))
    socket.on("error", () => connections.delete(conn))
  })

  const timer = setInterval(onTick, tickMs)

  return new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
      const address = server.address() as AddressInfo
      const host = options.host ?? "127.0.0.1"
      resolve({
        url: `ws://${host}:${address.port}`,
        httpUrl: `http://${host}:${address.port}`,
        port: address.port,
        marketNames,
        lastSeqs: () => seqs,
        stats: () => ({
          published,
          connections: connections.size,
          connectionsTotal,
          snapshots,
          snapshotsFailed,
          resets
        }),
        setRate: (next) => {
          rate = next
        },
        pause: (value) => {
          paused = value
        },
        disconnectAll: () => {
          for (const conn of connections) conn.socket.terminate()
        },
        sendRaw: (text) => {
          for (const conn of connections) conn.socket.send(text)
        },
        resetMarkets: (markets) => {
          for (const m of markets) resetMarket(m)
        },
        epochs: () => epochs,
        setSnapshotFault: (fault) => {
          snapshotFault = fault
        },
        close: () =>
          new Promise<void>((done) => {
            clearInterval(timer)
            for (const conn of connections) conn.socket.terminate()
            wss.close()
            server.close(() => done())
            server.closeAllConnections()
          })
      })
    })
  })
}
