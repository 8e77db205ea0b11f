/**
 * Gatherer and Deduplicator entities and the supervisor singleton that keeps the fleet running.
 * The pure parts live in `dedup.ts` (window) and `feed.ts` (frame parsing); this file is the wiring.
 */

import * as Metrics from "@tessera/platform/Metrics"
import { Valkey } from "@tessera/platform/Valkey"
import { Data, Duration, Effect, Latch, Layer, Option, Schedule, Semaphore } from "effect"
import { ClusterSchema, Entity, EntityProxyServer, type Sharding, Singleton } from "effect/cluster"
import type { SqlClient } from "effect/sql"
import WebSocket from "ws"
import * as BookPublisher from "./bookPublisher.ts"
import { GatherConfig, type GatherConfigShape } from "./config.ts"
import { clearColumns, DedupWindow, emptyColumns, type SnapshotRequest } from "./dedup.ts"
import { epochOf, escapeVenue, FeedEpochs, feedCounters, Outbox, parseFrame, sliceColumns } from "./feed.ts"
import {
  Deduplicator,
  type DeduplicatorStatus,
  dedupEntityId,
  dedupShardOf,
  Gatherer,
  GathererMisplaced,
  type GathererStatus,
  GatherRpcs,
  gathererEntityId,
  gathererShardGroup,
  parseGathererId
} from "./protocol.ts"
import { fetchSnapshot, type SnapshotError } from "./snapshot.ts"
import {
  claimOwner,
  fleetReplicas,
  insertChunk,
  lastWrittenSeqs,
  loadCounters,
  type StaleOwner,
  saveCounters,
  setFleetReplicas,
  writeDeltas,
  writtenMarkets
} from "./store.ts"
import { startVenue } from "./venue.ts"

/** `ws://host:port/path?faults` → `http://host:port` (markets and snapshots are served over HTTP). */
export const venueHttpBase = (venueUrl: string): string => {
  const url = new URL(venueUrl)
  url.protocol = url.protocol === "wss:" ? "https:" : "http:"
  return `${url.protocol}//${url.host}`
}

const runnerName = (runner: { host: string; port: number }) => `${runner.host}:${runner.port}`

const percentile = (sorted: Float64Array, p: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]

/** A send to a deduplicator outlived TESSERA_GATHER_SEND_TIMEOUT; its copies stay queued for the next send. */
class SendTimeout extends Data.TaggedError("SendTimeout")<{ readonly dedup: string; readonly deltas: number }> {}

/** How long a gatherer keeps its connection without hearing from the supervisor (five supervisor rounds). */
const gathererLeaseMs = 10_000
const flushEveryMs = 25
const writeEveryMs = 20
const gapCheckEveryMs = 50
const lagSamples = 8192
/** Snapshot retries: exponential from 100 ms, jittered, capped at 10 s; flagged unhealed after 3 failures in a row. */
const snapshotBackoff = Schedule.exponential(Duration.millis(100), 2).pipe(
  Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.seconds(10)))),
  Schedule.jittered
)
const flagAfterFailures = 3
const listedUnhealed = 100
/** Markets per last-seq query when an activation starts the markets it finds in the table. */
const startChunk = 1000

export const metrics = {
  received: Metrics.counter("tessera_gatherer_deltas_received_total", "Delta copies taken from the venue", [
    "gatherer"
  ]),
  garbage: Metrics.counter("tessera_gatherer_garbage_total", "Venue frames or deltas rejected", ["gatherer"]),
  garbageFrames: Metrics.counter("tessera_gatherer_garbage_frames_total", "Venue frames with garbage in them", [
    "gatherer"
  ]),
  oversizeFrames: Metrics.counter(
    "tessera_gatherer_oversize_frames_total",
    "Venue frames over TESSERA_VENUE_MAX_FRAME_BYTES (the connection is closed and reopened)",
    ["gatherer"]
  ),
  resets: Metrics.counter("tessera_gatherer_venue_resets_total", "Venue sequence-reset markers received", ["gatherer"]),
  regressions: Metrics.counter(
    "tessera_gatherer_seq_regressions_total",
    "Markets whose venue seq went back in a fresh session with no reset marker (taken as a reset: next epoch)",
    ["gatherer"]
  ),
  reconnects: Metrics.counter("tessera_gatherer_reconnects_total", "Venue reconnect attempts", ["gatherer"]),
  sendFailures: Metrics.counter(
    "tessera_gatherer_send_failures_total",
    "Sends to a deduplicator that failed, by reason (timeout past TESSERA_GATHER_SEND_TIMEOUT, or the error's tag); their copies go again",
    ["gatherer", "reason"]
  ),
  backlogDropped: Metrics.counter(
    "tessera_gatherer_backlog_dropped_total",
    "Delta copies dropped, oldest first, past TESSERA_GATHER_BACKLOG waiting for one deduplicator",
    ["gatherer"]
  ),
  backlog: Metrics.gauge(
    "tessera_gatherer_backlog_deltas",
    "Delta copies a gatherer holds for its deduplicators (unsent or to be sent again)",
    ["gatherer"]
  ),
  copies: Metrics.counter("tessera_dedup_copies_total", "Delta copies offered to deduplicators", ["dedup"]),
  duplicates: Metrics.counter("tessera_dedup_duplicates_total", "Copies dropped as duplicates", ["dedup"]),
  written: Metrics.counter("tessera_dedup_written_total", "Deltas written to orderbook_deltas", ["dedup"]),
  gaps: Metrics.counter("tessera_dedup_gaps_total", "Holes that outlived the gap deadline", ["dedup"]),
  healed: Metrics.counter("tessera_dedup_healed_total", "Deltas only a venue snapshot supplied", ["dedup"]),
  snapshotFailures: Metrics.counter(
    "tessera_dedup_snapshot_failures_total",
    "Venue snapshot requests that failed, by reason (timeout, http, oversize, invalid, network)",
    ["dedup", "reason"]
  ),
  unhealed: Metrics.gauge(
    "tessera_dedup_unhealed_markets",
    "Markets whose hole snapshots could not heal after several tries (still retried with backoff)",
    ["dedup"]
  ),
  sequenceResets: Metrics.counter(
    "tessera_dedup_sequence_resets_total",
    "Venue sequence resets a deduplicator resnapshotted (a market moved to a new venue epoch)",
    ["dedup"]
  ),
  staleOwner: Metrics.counter(
    "tessera_dedup_stale_owner_writes_total",
    "orderbook_deltas inserts refused because the deduplicator's owner epoch was stale (another activation claimed it)",
    ["dedup"]
  ),
  lag: Metrics.histogram("tessera_dedup_sync_lag_seconds", "Venue timestamp to row written"),
  shed: Metrics.counter(
    "tessera_dedup_shed_total",
    "Delta copies refused because the deduplicator held TESSERA_DEDUP_MAX_PENDING unwritten deltas (healed by snapshot)",
    ["dedup"]
  ),
  invalid: Metrics.counter(
    "tessera_dedup_invalid_total",
    "Delta copies refused for a seq that is not an integer >= 1",
    ["dedup"]
  ),
  pending: Metrics.gauge("tessera_dedup_pending_deltas", "Deltas accepted and not yet written to orderbook_deltas", [
    "dedup"
  ])
}

/** Runs `effect` at most every `everyMs`: a cycle that took longer starts the next one at once. */
const paced = <A, E, R>(everyMs: number, effect: Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    const started = Date.now()
    return Effect.andThen(
      effect,
      Effect.suspend(() => {
        const left = everyMs - (Date.now() - started)
        return left > 0 ? Effect.sleep(Duration.millis(left)) : Effect.yieldNow
      })
    )
  })

export const DeduplicatorLayer = Deduplicator.toLayer(
  Effect.gen(function* () {
    const address = yield* Entity.CurrentAddress
    const runner = runnerName(yield* Entity.CurrentRunnerAddress)
    const config = yield* GatherConfig
    const valkey = yield* Valkey
    const venueHttp = Option.map(config.venueUrl, venueHttpBase)
    const window = new DedupWindow()
    // Claimed before anything is read from the table: inserts of an earlier owner committed first or fail.
    const owner = yield* Effect.orDie(claimOwner(address.entityId))
    // The counters as of the previous owner's last write: they survive a move.
    const saved = yield* Effect.orDie(loadCounters(address.entityId))
    for (const key of Object.keys(window.counters) as Array<keyof typeof window.counters>) {
      if (saved[key] !== undefined) window.counters[key] = saved[key]
    }
    const book = yield* BookPublisher.make({ dedup: address.entityId, valkey, tables: BookPublisher.sqlTables })
    // Every market of this deduplicator with rows, not only those the next copies name: an idle market's stream is
    // brought up to the table too (the previous owner may have died between its insert and its publish).
    const shard = Number(address.entityId.slice(1))
    yield* Effect.forkScoped(
      Effect.gen(function* () {
        const mine = (yield* writtenMarkets).filter((market) => dedupShardOf(market, config.dedupShards) === shard)
        for (let from = 0; from < mine.length; from += startChunk) {
          const chunk = mine.slice(from, from + startChunk)
          const last = yield* lastWrittenSeqs(chunk)
          for (const market of chunk) {
            // Both no-ops for a market an Ingest started meanwhile (it read the same table).
            window.init(market, last.get(market))
            book.start(market, last.get(market))
          }
        }
      }).pipe(
        Effect.tapError((error) => Effect.logWarning("listing the deduplicator's markets failed; retrying", error)),
        Effect.retry(Schedule.spaced(Duration.seconds(1)))
      )
    )
    const dedupLabel = { dedup: address.entityId }
    const writtenMetric = metrics.written.labels(dedupLabel)
    const copiesMetric = metrics.copies.labels(dedupLabel)
    const duplicatesMetric = metrics.duplicates.labels(dedupLabel)
    let reportedGaps = 0
    let reportedHealed = 0
    let pending = emptyColumns()
    let writing = emptyColumns()
    let copies = saved.copies ?? 0
    let written = saved.written ?? 0
    let writeFailures = saved.writeFailures ?? 0
    let shed = saved.shed ?? 0
    let invalid = saved.invalid ?? 0
    const maxPending = config.dedupMaxPending
    const pendingGauge = metrics.pending.labels(dedupLabel)
    /** The counters as persisted with each write (and every second while only they change). */
    const countersJson = () =>
      JSON.stringify({ ...window.counters, copies, written: written, writeFailures, shed, invalid })
    let savedJson = countersJson()
    const lags = new Float64Array(lagSamples)
    let lagCount = 0
    /** Set when an insert was refused as stale: this activation writes nothing more and its handlers die. */
    let stale: StaleOwner | undefined

    const standDown = (error: StaleOwner) =>
      Effect.suspend(() => {
        if (stale === undefined) metrics.staleOwner.labels(dedupLabel).inc()
        stale = error
        return Effect.logWarning(`${error.message}; this activation stands down`)
      })
    // A handler that dies makes the entity manager end this activation (a rebuild claims a new epoch).
    const refuseIfStale = Effect.suspend(() =>
      stale === undefined ? Effect.void : Effect.die(new Error(`${stale.message}; this activation stands down`))
    )

    const writeOnce = Effect.gen(function* () {
      if (pending.seq.length === 0) return
      const rows = pending
      pending = writing
      writing = rows
      const writtenAt = Date.now()
      // Counted as written once the insert lands: the saved counters then match the table.
      const counters = JSON.stringify({
        ...window.counters,
        copies,
        written: written + rows.seq.length,
        writeFailures,
        shed,
        invalid
      })
      for (let from = 0; from < rows.seq.length; from += insertChunk) {
        const to = Math.min(rows.seq.length, from + insertChunk)
        // Retried until it lands (ON CONFLICT makes a repeat harmless, and the window already moved on), unless the
        // owner epoch is stale: then nothing more is written and the loop ends.
        yield* writeDeltas(owner, rows, from, to, writtenAt, counters).pipe(
          Effect.tapError((error) =>
            error._tag === "StaleOwner"
              ? Effect.void
              : Effect.sync(() => {
                  writeFailures++
                }).pipe(Effect.andThen(Effect.logWarning("orderbook_deltas insert failed; retrying", error)))
          ),
          Effect.retry({
            schedule: Schedule.spaced(Duration.millis(200)),
            while: (error) => error._tag !== "StaleOwner"
          })
        )
      }
      const now = Date.now()
      for (let i = 0; i < rows.ts.length; i++) {
        const lag = now - rows.ts[i]
        lags[lagCount++ % lagSamples] = lag
        metrics.lag.observe(lag / 1000)
      }
      written += rows.seq.length
      savedJson = counters
      writtenMetric.inc(rows.seq.length)
      // Published only now that the rows are durable; the publisher copies them (the buffer is reused) and sends
      // them off this loop, in seq order per market.
      book.written(rows)
      clearColumns(rows)
      pendingGauge.set(pending.seq.length)
    })

    yield* Effect.forkScoped(
      Effect.forever(paced(writeEveryMs, writeOnce), { disableYield: true }).pipe(
        Effect.catchTag("StaleOwner", standDown)
      )
    )
    // Counters that changed with no row written (duplicates only, shed copies) are saved once a second, fenced.
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.andThen(
          Effect.sleep("1 second"),
          Effect.suspend(() => {
            const json = countersJson()
            if (json === savedJson || stale !== undefined || pending.seq.length > 0) return Effect.void
            return saveCounters(owner, json).pipe(
              Effect.tap(() =>
                Effect.sync(() => {
                  savedJson = json
                })
              ),
              Effect.timeout("2 seconds"),
              Effect.ignore
            )
          })
        )
      )
    )
    // On passivation or a shard moving away, write what was accepted (a hand-over, not a failure, so nothing
    // has to be healed from snapshots). Bounded: the next owner heals whatever this misses.
    // The counters go with them: the default "{}" reset the next owner's counters after every hand-over.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        for (const rows of [writing, pending]) {
          const n = rows.seq.length
          if (n === 0 || stale !== undefined) continue
          const counters = JSON.stringify({
            ...window.counters,
            copies,
            written: written + n,
            writeFailures,
            shed,
            invalid
          })
          yield* writeDeltas(owner, rows, 0, n, Date.now(), counters).pipe(
            Effect.tap(() =>
              Effect.sync(() => {
                written += n
                savedJson = counters
              })
            ),
            Effect.catchTag("StaleOwner", standDown),
            Effect.timeout(Duration.seconds(5)),
            Effect.ignore
          )
        }
        const json = countersJson()
        if (json === savedJson || stale !== undefined) return
        yield* saveCounters(owner, json).pipe(Effect.timeout(Duration.seconds(2)), Effect.ignore)
      })
    )

    const unhealedGauge = metrics.unhealed.labels(dedupLabel)
    const snapshotLimits = { timeout: config.snapshotTimeout, maxBytes: config.snapshotMaxBytes }
    // Markets with a snapshot being fetched or retried: one healing fiber each, so the window's re-requests
    // (every snapshotRetryMs) never pile up copies of it.
    const healing = new Map<string, { failures: number; sinceMs: number; lastError: string; flagged: boolean }>()
    const fetchPermits = yield* Semaphore.make(8)
    let snapshotFailures = 0

    const recordFailure = (market: string, error: SnapshotError) =>
      Effect.suspend(() => {
        snapshotFailures++
        metrics.snapshotFailures.labels({ dedup: address.entityId, reason: error.reason }).inc()
        const state = healing.get(market)
        if (state === undefined) return Effect.void
        if (state.failures === 0) state.sinceMs = Date.now()
        state.failures++
        state.lastError = error.message
        if (state.failures < flagAfterFailures || state.flagged) return Effect.void
        state.flagged = true
        unhealedGauge.inc()
        return Effect.logWarning(
          `deduplicator ${address.entityId}: market ${escapeVenue(market, 60)} not healed after ${state.failures} snapshot attempts (${error.message}); retrying with backoff`
        )
      })

    /** Fetches and applies a snapshot for `market`, retried with backoff while its hole at `next` is still open. */
    const heal = (base: string, market: string) => {
      const holeAt = window.nextSeq(market)
      return fetchPermits
        .withPermits(1)(fetchSnapshot(base, market, window.nextSeq(market), snapshotLimits))
        .pipe(
          Effect.tapError((error) => recordFailure(market, error)),
          Effect.retry({ schedule: snapshotBackoff, while: () => window.nextSeq(market) === holeAt }),
          Effect.flatMap((snapshot) =>
            Effect.sync(() => {
              const next = window.nextSeq(market)
              const reset = snapshot.epoch > epochOf(next)
              const skippedBefore = window.counters.skipped
              window.applySnapshot(pending, Date.now(), market, snapshot.firstSeq, snapshot.deltas)
              if (reset) {
                // The old epoch's unsent tail is gone with the venue's reset, not skipped: the jump to the new
                // epoch's first seq is not a count of lost deltas.
                window.counters.skipped = skippedBefore
                metrics.sequenceResets.labels(dedupLabel).inc()
              }
            })
          ),
          // The hole was filled meanwhile (late copies): the window asks again if one is still open.
          Effect.catch(() => Effect.void),
          Effect.ensuring(
            Effect.sync(() => {
              if (healing.get(market)?.flagged === true) unhealedGauge.dec()
              healing.delete(market)
            })
          )
        )
    }

    if (Option.isSome(venueHttp)) {
      const requests: Array<SnapshotRequest> = []
      yield* Effect.forkScoped(
        Effect.forever(
          Effect.gen(function* () {
            yield* Effect.sleep(Duration.millis(gapCheckEveryMs))
            requests.length = 0
            // While the buffer is full a snapshot would only grow it: holes wait until the writes catch up.
            if (pending.seq.length >= maxPending) return
            window.due(Date.now(), requests)
            const { gaps, healed } = window.counters
            if (gaps > reportedGaps) metrics.gaps.labels(dedupLabel).inc(gaps - reportedGaps)
            if (healed > reportedHealed) metrics.healed.labels(dedupLabel).inc(healed - reportedHealed)
            reportedGaps = gaps
            reportedHealed = healed
            for (const request of requests) {
              if (healing.has(request.market)) continue
              healing.set(request.market, { failures: 0, sinceMs: Date.now(), lastError: "", flagged: false })
              yield* Effect.forkScoped(heal(venueHttp.value, request.market))
            }
          }),
          { disableYield: true }
        )
      )
    }

    const unhealed = () => {
      const list: Array<DeduplicatorStatus["unhealed"][number]> = []
      let count = 0
      for (const [market, state] of healing) {
        if (!state.flagged) continue
        count++
        if (list.length < listedUnhealed) {
          list.push({ market, failures: state.failures, sinceMs: state.sinceMs, lastError: state.lastError })
        }
      }
      return { list, count }
    }

    const status = (): DeduplicatorStatus => {
      const n = Math.min(lagCount, lagSamples)
      const sorted = lags.slice(0, n).sort()
      const c = window.counters
      const flagged = unhealed()
      return {
        id: address.entityId,
        runner,
        markets: window.marketCount,
        copies,
        accepted: c.accepted,
        written,
        duplicates: c.duplicates,
        overflow: c.overflow,
        gaps: c.gaps,
        snapshots: c.snapshotsApplied,
        healed: c.healed,
        skipped: c.skipped,
        openHoles: window.openHoles,
        pendingWrites: pending.seq.length + writing.seq.length,
        writeFailures,
        lagP50Ms: percentile(sorted, 0.5),
        lagP99Ms: percentile(sorted, 0.99),
        snapshotFailures,
        unhealed: flagged.list,
        unhealedCount: flagged.count
      }
    }

    return Deduplicator.of({
      Ingest: ({ payload: { batch } }) =>
        Effect.gen(function* () {
          yield* refuseIfStale
          let unknown: Array<string> | undefined
          for (let i = 0; i < batch.market.length; i++) {
            const market = batch.market[i]
            if (!window.has(market)) {
              unknown ??= []
              if (!unknown.includes(market)) unknown.push(market)
            }
          }
          // Resume after what is already in the table (a failover or restart), not from the first copy seen.
          if (unknown !== undefined) {
            const last = yield* lastWrittenSeqs(unknown).pipe(
              Effect.tapError((error) => Effect.logWarning("reading last written seqs failed; retrying", error)),
              Effect.retry(Schedule.spaced(Duration.millis(200))),
              Effect.orDie
            )
            for (const market of unknown) {
              window.init(market, last.get(market))
              // Its stream gets what the previous owner wrote but may not have published, before any live row.
              book.start(market, last.get(market))
            }
          }
          copies += batch.seq.length
          copiesMetric.inc(batch.seq.length)
          if (pending.seq.length >= maxPending) {
            // Postgres is not keeping up: shed (counted) rather than grow; the hole is healed by a snapshot later.
            shed += batch.seq.length
            metrics.shed.labels(dedupLabel).inc(batch.seq.length)
            // Remembered as holes: a market that goes quiet after this would otherwise never be healed.
            const now = Date.now()
            for (let i = 0; i < batch.seq.length; i++) {
              const seq = batch.seq[i]
              if (Number.isSafeInteger(seq) && seq >= 1) window.noteRefused(now, batch.market[i], seq)
            }
            return { accepted: 0, duplicates: 0 }
          }
          const before = window.counters.duplicates
          const now = Date.now()
          let accepted = 0
          for (let i = 0; i < batch.seq.length; i++) {
            const seq = batch.seq[i]
            // A stream id is `<seq>-0`: only integers >= 1 (and exact in a double) can be one.
            if (!(Number.isSafeInteger(seq) && seq >= 1)) {
              invalid++
              metrics.invalid.labels(dedupLabel).inc()
              continue
            }
            if (
              window.offer(
                pending,
                now,
                batch.market[i],
                batch.seq[i],
                batch.ts[i],
                batch.side[i],
                batch.price[i],
                batch.qty[i]
              )
            ) {
              accepted++
            }
          }
          pendingGauge.set(pending.seq.length)
          duplicatesMetric.inc(window.counters.duplicates - before)
          return { accepted, duplicates: window.counters.duplicates - before }
        }),
      Status: () => Effect.andThen(refuseIfStale, Effect.sync(status))
    })
  })
)

/**
 * `Gatherer` placed by zone: with `TESSERA_GATHER_ZONES`, replica r lives in shard group `gatherer-<zones[r mod n]>`,
 * so one host or zone loss takes at most one copy of a connection (while each zone has a live runner). Every
 * in-cluster client must address gatherers through it: the bare entity addresses `default`, which the entity refuses.
 */
export const zonedGatherer = (config: Pick<GatherConfigShape, "gatherZones">) => {
  if (config.gatherZones.length === 0) return Gatherer
  const zones = [...config.gatherZones]
  // Called when a layer builds, not per request.
  return Gatherer.annotate(ClusterSchema.ShardGroup, (entityId) => gathererShardGroup(entityId, zones))
}

export const GathererLayer = Gatherer.toLayer(
  Effect.gen(function* () {
    const address = yield* Entity.CurrentAddress
    const runner = runnerName(yield* Entity.CurrentRunnerAddress)
    const config = yield* GatherConfig
    const expectedGroup = gathererShardGroup(address.entityId, config.gatherZones)
    // Addressed in another group than its zone's, the same replica could run twice (once per group): refuse.
    if (address.shardId.group !== expectedGroup) {
      const misplaced = Effect.fail(
        new GathererMisplaced({
          message: `gatherer ${address.entityId} was addressed in shard group ${address.shardId.group}, expected ${expectedGroup}: TESSERA_GATHER_ZONES differs between nodes`
        })
      )
      return Gatherer.of({ Ensure: () => misplaced, Status: () => misplaced })
    }
    const dedupClient = yield* Deduplicator.client
    const slot = parseGathererId(address.entityId)
    const shards = config.dedupShards
    const outbox = new Outbox(shards, config.gatherBacklog)
    const counters = feedCounters()
    // Epochs of untagged deltas, from reset markers and from seqs that go back in a fresh session.
    const epochs = new FeedEpochs()
    let shardOf: Map<string, number> | undefined
    let markets: Array<string> = []
    let socket: WebSocket | undefined
    let connected = false
    let leaseUntil = 0
    let reconnects = 0
    let backoffMs = 100
    let forwarded = 0
    let sendFailures = 0
    let rateWindowStart = Date.now()
    let rateWindowReceived = 0
    let msgsPerSec = 0
    let loggedGarbage = 0
    let reportedGarbageFrames = 0
    let reportedResets = 0
    let reportedRegressions = 0
    let oversizeFrames = 0
    let reportedOversize = 0
    let reportedReconnects = 0
    let reportedFailures = 0
    let reportedDropped = 0
    const backlogGauge = metrics.backlog.labels({ gatherer: address.entityId })

    const venueUrl = (base: string) => {
      const url = new URL(base)
      if (slot !== undefined && !url.searchParams.has("seed")) {
        url.searchParams.set("seed", String(slot.replica * 1000 + slot.connection + 1))
      }
      return url.toString()
    }

    const leased = () => Date.now() < leaseUntil
    // Opened by each lease renewal; the connection loop waits on it while no lease is held.
    const leaseRenewed = Latch.makeUnsafe(false)

    const fetchMarkets = (base: string) =>
      Effect.tryPromise({
        try: (signal) =>
          fetch(`${venueHttpBase(base)}/markets`, { signal }).then((response) => {
            if (!response.ok) throw new Error(`GET /markets answered ${response.status}`)
            return response.json() as Promise<unknown>
          }),
        catch: (cause) => cause
      }).pipe(
        Effect.timeout(Duration.seconds(5)),
        Effect.flatMap((all) =>
          Array.isArray(all) && all.every((market) => typeof market === "string")
            ? Effect.succeed(all as Array<string>)
            : Effect.fail(new Error("GET /markets did not answer a list of market names"))
        )
      )

    /** One venue session: connects, subscribes, and completes when the socket closes (interrupting closes it). */
    const session = (base: string) =>
      Effect.callback<void>((resume) => {
        // maxPayload: a frame over the cap closes the connection (1009) before it is buffered whole.
        const ws = new WebSocket(venueUrl(base), { perMessageDeflate: false, maxPayload: config.venueMaxFrameBytes })
        socket = ws
        ws.on("open", () => {
          epochs.newSession()
          connected = true
          backoffMs = 100
          ws.send(JSON.stringify({ op: "subscribe", markets }))
        })
        ws.on("message", (data) => {
          parseFrame(String(data), shardOf!, outbox.fresh, counters, epochs)
        })
        ws.on("close", () => {
          connected = false
          if (socket === ws) socket = undefined
          resume(Effect.void)
        })
        ws.on("error", (error: Error & { code?: string }) => {
          // `close` follows.
          if (error.code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH") oversizeFrames++
        })
        return Effect.sync(() => ws.terminate())
      })

    /** Keeps one venue session open while the lease is held, reconnecting with jittered exponential backoff. */
    const connection = (base: string, own: { readonly connection: number }) =>
      Effect.gen(function* () {
        while (true) {
          yield* leaseRenewed.close
          if (!leased()) {
            yield* leaseRenewed.await
            continue
          }
          const exit = yield* Effect.exit(
            Effect.gen(function* () {
              if (shardOf === undefined) {
                const all = yield* fetchMarkets(base)
                markets = all.filter((_, i) => i % config.gatherConnections === own.connection)
                shardOf = new Map(markets.map((market) => [market, dedupShardOf(market, shards)]))
              }
              yield* session(base)
            })
          )
          if (!leased()) continue
          reconnects++
          if (exit._tag === "Failure" && reconnects - reportedFailures >= 10) {
            reportedFailures = reconnects
            yield* Effect.logWarning(`gatherer ${address.entityId}: venue unreachable, retrying`, exit.cause)
          }
          const delay = backoffMs * (0.5 + Math.random())
          backoffMs = Math.min(backoffMs * 2, 5000)
          yield* Effect.sleep(Duration.millis(delay))
        }
      })

    if (Option.isSome(config.venueUrl) && slot !== undefined) {
      yield* Effect.forkScoped(connection(config.venueUrl.value, slot))
    }

    const flush = Effect.gen(function* () {
      const now = Date.now()
      if (socket !== undefined && now >= leaseUntil) {
        // Nobody renewed the lease (replica removed or supervisor gone): stop collecting.
        socket.terminate()
      }
      if (now - rateWindowStart >= 1000) {
        const gathererLabel = { gatherer: address.entityId }
        metrics.received.labels(gathererLabel).inc(counters.received - rateWindowReceived)
        if (reconnects > reportedReconnects)
          metrics.reconnects.labels(gathererLabel).inc(reconnects - reportedReconnects)
        reportedReconnects = reconnects
        if (counters.garbage > loggedGarbage)
          metrics.garbage.labels(gathererLabel).inc(counters.garbage - loggedGarbage)
        if (counters.garbageFrames > reportedGarbageFrames)
          metrics.garbageFrames.labels(gathererLabel).inc(counters.garbageFrames - reportedGarbageFrames)
        reportedGarbageFrames = counters.garbageFrames
        if (counters.resets > reportedResets) metrics.resets.labels(gathererLabel).inc(counters.resets - reportedResets)
        reportedResets = counters.resets
        if (counters.regressions > reportedRegressions) {
          metrics.regressions.labels(gathererLabel).inc(counters.regressions - reportedRegressions)
          yield* Effect.logWarning(
            `gatherer ${address.entityId}: ${counters.regressions - reportedRegressions} market(s) restarted their seqs in a new venue session without a reset marker; taken as resets`
          )
        }
        reportedRegressions = counters.regressions
        if (oversizeFrames > reportedOversize) {
          metrics.oversizeFrames.labels(gathererLabel).inc(oversizeFrames - reportedOversize)
          yield* Effect.logWarning(
            `gatherer ${address.entityId}: ${oversizeFrames - reportedOversize} venue frames over ${config.venueMaxFrameBytes} bytes refused (connection reopened)`
          )
        }
        reportedOversize = oversizeFrames
        msgsPerSec = ((counters.received - rateWindowReceived) * 1000) / (now - rateWindowStart)
        rateWindowReceived = counters.received
        rateWindowStart = now
        if (counters.garbage > loggedGarbage) {
          yield* Effect.logWarning(
            `gatherer ${address.entityId}: ${counters.garbage - loggedGarbage} garbage frames/deltas from the venue, last: ${counters.lastGarbage}`
          )
          loggedGarbage = counters.garbage
        }
      }
      // Sends run on their own fibers; the bound holds meanwhile.
      outbox.cap()
      let backlog = 0
      for (let shard = 0; shard < shards; shard++) backlog += outbox.backlog(shard)
      backlogGauge.set(backlog)
      if (outbox.dropped > reportedDropped) {
        metrics.backlogDropped.labels({ gatherer: address.entityId }).inc(outbox.dropped - reportedDropped)
        reportedDropped = outbox.dropped
      }
    })

    const sendFailed = (reason: string) =>
      Effect.sync(() => {
        sendFailures++
        metrics.sendFailures.labels({ gatherer: address.entityId, reason }).inc()
      })

    /**
     * Sends what waits for deduplicator `shard`, in chunks, each under the send deadline. Undelivered copies stay in
     * the outbox and go with the next send: copies the deduplicator took already are only duplicates to it.
     */
    const sendTo = (shard: number) =>
      Effect.gen(function* () {
        const out = outbox.take(shard)
        const n = out.seq.length
        if (n === 0) return
        const id = dedupEntityId(shard)
        for (let from = 0; from < n; ) {
          const to = Math.min(n, from + config.gatherSendBatch)
          const batch = from === 0 && to === n ? out : sliceColumns(out, from, to)
          const failure = yield* dedupClient(id)
            .Ingest({ batch })
            .pipe(
              Effect.timeoutOrElse({
                duration: config.gatherSendTimeout,
                orElse: () => Effect.fail(new SendTimeout({ dedup: id, deltas: to - from }))
              }),
              Effect.as(undefined),
              Effect.catch((error) => Effect.succeed(error._tag === "SendTimeout" ? "timeout" : error._tag)),
              Effect.catchDefect(() => Effect.succeed("defect"))
            )
          if (failure !== undefined) {
            outbox.failed(shard, from)
            return yield* sendFailed(failure)
          }
          forwarded += to - from
          from = to
        }
        outbox.delivered(shard)
      })

    for (let shard = 0; shard < shards; shard++) {
      yield* Effect.forkScoped(Effect.forever(paced(flushEveryMs, sendTo(shard)), { disableYield: true }))
    }
    yield* Effect.forkScoped(Effect.forever(paced(flushEveryMs, flush), { disableYield: true }))

    const status = (): GathererStatus => ({
      id: address.entityId,
      runner,
      connected,
      markets: markets.length,
      received: counters.received,
      forwarded,
      garbage: counters.garbage,
      garbageFrames: counters.garbageFrames,
      oversizeFrames,
      resets: counters.resets,
      reconnects,
      sendFailures,
      msgsPerSec
    })

    return Gatherer.of({
      Ensure: () =>
        Effect.sync(() => {
          leaseUntil = Date.now() + gathererLeaseMs
          leaseRenewed.openUnsafe()
          return status()
        }),
      Status: () => Effect.sync(status)
    })
  }),
  { maxIdleTime: Duration.minutes(1) }
)

/** How often the supervisor renews every gatherer's lease (and so restarts any that moved or stopped). */
const superviseEveryMs = 2000

const fleetIds = (replicas: number, connections: number) => {
  const ids: Array<string> = []
  for (let r = 0; r < replicas; r++) {
    for (let c = 0; c < connections; c++) ids.push(gathererEntityId(r, c))
  }
  return ids
}

/** The replica count set at run time, else the configured one. */
const currentReplicas = (config: GatherConfigShape) =>
  fleetReplicas.pipe(
    Effect.map((replicas) => replicas ?? config.gatherReplicas),
    Effect.orElseSucceed(() => config.gatherReplicas)
  )

/** The cluster singleton that keeps `replicas × connections` gatherers running while a venue is configured. */
export const GatherSupervisorLayer: Layer.Layer<never, never, GatherConfig | Sharding.Sharding | SqlClient.SqlClient> =
  Layer.unwrap(
    Effect.map(GatherConfig, (config: GatherConfigShape) =>
      Option.isNone(config.venueUrl)
        ? Layer.empty
        : Singleton.make(
            "GatherSupervisor",
            Effect.gen(function* () {
              const gatherer = yield* zonedGatherer(config).client
              const dedup = yield* Deduplicator.client
              const dedupIds = Array.from({ length: config.dedupShards }, (_, k) => dedupEntityId(k))
              yield* Effect.forever(
                Effect.gen(function* () {
                  // Re-read every round: `tessera gather replicas N` adds or removes replicas at run time. A
                  // removed replica's lease runs out and it disconnects by itself.
                  const replicas = yield* currentReplicas(config)
                  yield* Effect.forEach(
                    fleetIds(replicas, config.gatherConnections),
                    // Bounded: one Ensure that hangs (a send to a shard in flux) must not let every lease run out.
                    (id) =>
                      Effect.ignore(
                        gatherer(id)
                          .Ensure()
                          .pipe(Effect.timeout(Duration.seconds(2)))
                      ),
                    { concurrency: "unbounded", discard: true }
                  )
                  // Deduplicators too: one whose runner died is rebuilt on a survivor within a round even while no
                  // copy reaches it (a quiet venue), so its streams get what the dead owner wrote but never published.
                  yield* Effect.forEach(
                    dedupIds,
                    (id) =>
                      Effect.ignore(
                        dedup(id)
                          .Status()
                          .pipe(Effect.timeout(Duration.seconds(2)))
                      ),
                    { concurrency: "unbounded", discard: true }
                  )
                  yield* Effect.sleep(Duration.millis(superviseEveryMs))
                }),
                { disableYield: true }
              )
            })
          )
    )
  )

const layerFleet = Layer.mergeAll(DeduplicatorLayer, GathererLayer, GatherSupervisorLayer)

/**
 * Both entities, the supervisor and the tables. With `TESSERA_DEMO_VENUE` (and no `TESSERA_VENUE_URL`) an
 * in-process venue simulator feeds the fleet: the demo of `npm start`.
 */
export const layer: Layer.Layer<never, unknown, GatherConfig | Valkey | SqlClient.SqlClient | Sharding.Sharding> =
  Layer.unwrap(
    Effect.gen(function* () {
      const config = yield* GatherConfig
      if (Option.isNone(config.demoVenue) || Option.isSome(config.venueUrl)) return layerFleet
      const { markets, rate } = config.demoVenue.value
      const venue = yield* Effect.acquireRelease(
        Effect.promise(() => startVenue({ markets, rate })),
        (v) => Effect.promise(() => v.close())
      )
      yield* Effect.logInfo(`demo venue: ${markets} markets at ${rate} deltas/s on ${venue.url}`)
      return layerFleet.pipe(
        Layer.provide(Layer.succeed(GatherConfig)({ ...config, venueUrl: Option.some(venue.url) }))
      )
    })
  )

/** Gateway handler of `Gather.Status`: asks every gatherer and deduplicator, each with a short timeout. */
export const layerGatherRpcs = GatherRpcs.toLayer(
  Effect.gen(function* () {
    const config = yield* GatherConfig
    const gatherer = yield* zonedGatherer(config).client
    const dedup = yield* Deduplicator.client
    return GatherRpcs.of({
      "Gather.Status": () =>
        Effect.gen(function* () {
          const unreachable: Array<string> = []
          const ask = <A, E, R>(id: string, effect: Effect.Effect<A, E, R>) =>
            effect.pipe(
              Effect.timeout(Duration.seconds(2)),
              Effect.map(Option.some),
              Effect.catchCause(() =>
                Effect.sync(() => {
                  unreachable.push(id)
                  return Option.none<A>()
                })
              )
            )
          // Only the current fleet is asked, so Status does not wake gatherers nobody runs.
          const replicas = yield* currentReplicas(config)
          const fed = Option.isSome(config.venueUrl) || Option.isSome(config.demoVenue)
          const gathererIds = fed ? fleetIds(replicas, config.gatherConnections) : []
          const gatherers = yield* Effect.forEach(gathererIds, (id) => ask(id, gatherer(id).Status()), {
            concurrency: "unbounded"
          })
          const dedupIds = Array.from({ length: config.dedupShards }, (_, k) => dedupEntityId(k))
          const dedups = yield* Effect.forEach(dedupIds, (id) => ask(id, dedup(id).Status()), {
            concurrency: "unbounded"
          })
          return {
            venueUrl: Option.getOrNull(config.venueUrl),
            replicas,
            connections: config.gatherConnections,
            zones: config.gatherZones,
            dedupShards: config.dedupShards,
            gatherers: gatherers.flatMap((o) => (Option.isSome(o) ? [o.value] : [])),
            deduplicators: dedups.flatMap((o) => (Option.isSome(o) ? [o.value] : [])),
            unreachable
          }
        }),
      "Gather.SetReplicas": ({ replicas }) => setFleetReplicas(replicas).pipe(Effect.orDie, Effect.as({ replicas }))
    })
  })
)

/** The gateway's `Gatherer.*` proxy RPCs, addressed through `zonedGatherer`. */
export const layerGathererProxyRpcs = Layer.unwrap(
  Effect.map(GatherConfig, (config: GatherConfigShape) => EntityProxyServer.layerRpcHandlers(zonedGatherer(config)))
)
