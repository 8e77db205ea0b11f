/**
 * One graph partition at run time: the hot tier in Valkey, the cold tier in an `ObjectStore`, metadata in SQL
 * (`graph_partitions`). The entity (`entity.ts`) owns one of these per active partition and calls `ensureHot`
 * before serving; tier changes hold the partition's gate exclusively, ordinary requests share it.
 *
 * Demotion: snapshot the hot keys, put the snapshot object (a new key per version), then swap the pointer (the
 * metadata row: tier `cold`, location, version), then evict the keys and delete the previous snapshot. A crash
 * before the pointer swap leaves the partition hot and the previous snapshot untouched; a crash after it leaves a
 * cold pointer whose restore overwrites whatever keys were left.
 *
 * Checkpoints (hot-tier durability): every `TESSERA_GRAPH_SNAPSHOT_INTERVAL` a hot partition with writes since its last
 * snapshot is snapshotted the same way, except that the pointer swap keeps the tier hot and nothing is evicted. A
 * `live` marker key sits beside the partition's keys while it is hot; an owner that finds it gone (Valkey wiped or
 * failed over to an empty node) restores the last snapshot, so a Valkey loss loses at most the writes of one interval
 * (plus those accepted between the loss and the owner's next check, one report interval at most).
 *
 * Gateways read hot vertices and edges straight from Valkey with no tier check: whatever vertex key is present
 * holds the latest properties (writes go through the owner, which promotes first, and eviction only deletes), a
 * restore writes a vertex's edges before its key, and eviction deletes both in one DEL. So a present vertex key
 * comes with its complete edge set, and a missing one sends the read to the owner, which promotes if needed.
 *
 * Fencing: each activation claims the next owner epoch of its partition (`graph_partition_owners`) before it reads
 * the metadata row, and every metadata write is conditional on that epoch, checked under a share lock on the owner
 * row in the same transaction (SQLite: its transactions run one at a time). A claim waits for a write in flight under
 * the old epoch; a write after it changes nothing and fails `StaleOwner`, and the partition then refuses every later
 * request. Snapshot objects carry the epoch in their key, so a stale owner's object never replaces one the metadata
 * points to (and is deleted when its pointer swap is refused). The hot tier is fenced too: each activation raises the
 * partition's fence key in Valkey (`owner`, beside its keys) to its epoch, and every hot-tier write runs only while
 * the fence holds that epoch (`ValkeyService.fenced`: checked and written in one round trip, nothing in between), so
 * a stale owner's write changes no key and fails `StaleOwner` as a refused metadata write does. The epoch claimed in
 * SQL starts above the fence, so a fence left by another database (a test, a restored one) never blocks a claim.
 *
 * Moves (rebalance): a vertex lives in its home partition (`vertexPartition`) unless a row of `graph_vertex_moves`
 * (home, vertex, holder) says a rebalance moved it to `holder`. The row is the truth, written fenced under the home's
 * epoch; the home's Valkey vertex key then holds a forward marker (`@holder`) for gateways, rewritten from the rows
 * whenever the home's hot tier is (re)built, and the holder keeps the vertex among its own keys (its snapshots carry
 * it). `stale` names a partition that may still hold a copy to drop (a copy in flight, or the previous holder).
 */

import type { ObjectStoreShape } from "@tessera/platform/ObjectStore"
import { Cmd, type Command, type Fence, type ValkeyService } from "@tessera/platform/Valkey"
import { Data, Effect, Semaphore } from "effect"
import { SqlClient, type SqlError } from "effect/sql"
import {
  decodeSnapshot,
  edgeMember,
  forwardMarker,
  nextTemperature,
  type PartitionKeys,
  parseEdgeMember,
  parseForwardMarker,
  partitionKeys,
  type Snapshot,
  snapshotJson,
  snapshotKey
} from "./core.ts"
import * as GraphMetrics from "./metrics.ts"
import { GraphStorageError, type Neighbor, type Tier } from "./protocol.ts"

/** Migrations of the graph-proxy actor, recorded in `proxy_partition_migrations`. */
export const migrations = {
  "1_graph_partitions": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE IF NOT EXISTS graph_partitions (
      partition INTEGER PRIMARY KEY,
      tier TEXT NOT NULL,
      location TEXT,
      version INTEGER NOT NULL,
      last_access BIGINT NOT NULL,
      temperature DOUBLE PRECISION NOT NULL
    )`
  }),
  // Placement hints: the preferred zone, and the traffic served inside / outside it (cumulative).
  "2_graph_partition_zones": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE graph_partitions ADD COLUMN zone TEXT`
    yield* sql`ALTER TABLE graph_partitions ADD COLUMN same_zone BIGINT NOT NULL DEFAULT 0`
    yield* sql`ALTER TABLE graph_partitions ADD COLUMN cross_zone BIGINT NOT NULL DEFAULT 0`
  }),
  // Owner epochs (fencing): one row per partition, bumped by every activation.
  "3_graph_partition_owners": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE IF NOT EXISTS graph_partition_owners (
      partition INTEGER PRIMARY KEY,
      epoch BIGINT NOT NULL
    )`
  }),
  // Rebalance: vertices living outside their home partition.
  "4_graph_vertex_moves": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE IF NOT EXISTS graph_vertex_moves (
      home INTEGER NOT NULL,
      vertex_id TEXT NOT NULL,
      holder INTEGER NOT NULL,
      stale INTEGER,
      PRIMARY KEY (home, vertex_id)
    )`
    yield* sql`CREATE INDEX IF NOT EXISTS graph_vertex_moves_holder ON graph_vertex_moves (holder)`
    yield* sql`CREATE INDEX IF NOT EXISTS graph_vertex_moves_stale ON graph_vertex_moves (stale)`
  })
}
export const migrationsTable = "proxy_partition_migrations"

export interface MetaRow {
  readonly partition: number
  readonly tier: Tier
  readonly location: string | null
  readonly version: number
  readonly lastAccess: number
  readonly temperature: number
  /** Preferred zone (from `TESSERA_GRAPH_ZONES`), or null for no preference. */
  readonly zone: string | null
  /** Requests and direct reads served in the preferred zone / outside it, since the partition was created. */
  readonly sameZone: number
  readonly crossZone: number
}

const toRow = (r: Record<string, unknown>): MetaRow => ({
  partition: Number(r.partition),
  tier: r.tier === "cold" ? "cold" : "hot",
  location: r.location === null || r.location === undefined ? null : String(r.location),
  version: Number(r.version),
  lastAccess: Number(r.last_access),
  temperature: Number(r.temperature),
  zone: r.zone === null || r.zone === undefined ? null : String(r.zone),
  sameZone: Number(r.same_zone ?? 0),
  crossZone: Number(r.cross_zone ?? 0)
})

export const readMeta = (sql: SqlClient.SqlClient, partition: number) =>
  Effect.map(
    sql<Record<string, unknown>>`SELECT partition, tier, location, version, last_access, temperature, zone, same_zone,
      cross_zone FROM graph_partitions WHERE partition = ${partition}`,
    (rows) => (rows.length === 0 ? undefined : toRow(rows[0]))
  )

export const readAllMeta = (sql: SqlClient.SqlClient) =>
  Effect.map(
    sql<Record<string, unknown>>`SELECT partition, tier, location, version, last_access, temperature, zone, same_zone,
      cross_zone FROM graph_partitions ORDER BY partition`,
    (rows) => rows.map(toRow)
  )

/**
 * A metadata write under an owner epoch that is no longer current: another activation claimed the partition since.
 * Nothing was written; the activation that got it must stand down.
 */
export class StaleOwner extends Data.TaggedError("StaleOwner")<{
  readonly partition: number
  readonly epoch: number
  readonly message: string
}> {}

const staleOwner = (partition: number, epoch: number) =>
  new StaleOwner({
    partition,
    epoch,
    message: `partition ${partition}: owner epoch ${epoch} is no longer current (the partition moved); the write was refused`
  })

/**
 * Claims the partition for a new activation: the next owner epoch (at least `floor`), which fences out every earlier
 * one.
 */
export const claimPartition = (
  sql: SqlClient.SqlClient,
  partition: number,
  floor = 1
): Effect.Effect<number, SqlError.SqlError> =>
  Effect.map(
    sql<{ epoch: number | string }>`INSERT INTO graph_partition_owners (partition, epoch)
      VALUES (${partition}, ${Math.max(1, floor)})
      ON CONFLICT (partition) DO UPDATE SET epoch = CASE WHEN graph_partition_owners.epoch + 1 > ${floor}
        THEN graph_partition_owners.epoch + 1 ELSE ${floor} END RETURNING epoch`,
    (rows) => Number(rows[0].epoch)
  )

/**
 * Runs `write` in a transaction that first checks `epoch` is the partition's current one; PostgreSQL share-locks the
 * owner row until commit (a claim waits for it), SQLite has one connection whose transactions run one at a time.
 */
const fenced = <A, E, R>(
  sql: SqlClient.SqlClient,
  partition: number,
  epoch: number,
  write: Effect.Effect<A, E, R>
): Effect.Effect<A, E | SqlError.SqlError | StaleOwner, R> =>
  sql.withTransaction(
    Effect.gen(function* () {
      const current = yield* sql.onDialectOrElse({
        pg: () =>
          sql`SELECT epoch FROM graph_partition_owners WHERE partition = ${partition} AND epoch = ${epoch} FOR SHARE`,
        orElse: () => sql`SELECT epoch FROM graph_partition_owners WHERE partition = ${partition} AND epoch = ${epoch}`
      })
      if (current.length === 0) return yield* Effect.fail(staleOwner(partition, epoch))
      return yield* write
    })
  )

/**
 * Upserts the row under owner `epoch`; the zone traffic counters are only ever added to (`touchMeta`), never
 * overwritten.
 */
export const writeMeta = (sql: SqlClient.SqlClient, row: MetaRow, epoch: number) =>
  fenced(
    sql,
    row.partition,
    epoch,
    sql`INSERT INTO graph_partitions (partition, tier, location, version, last_access, temperature, zone)
      VALUES (${row.partition}, ${row.tier}, ${row.location}, ${row.version}, ${row.lastAccess}, ${row.temperature},
        ${row.zone})
      ON CONFLICT (partition) DO UPDATE SET tier = excluded.tier, location = excluded.location,
        version = excluded.version, last_access = excluded.last_access, temperature = excluded.temperature,
        zone = excluded.zone`
  )

/**
 * Last access and temperature, and the zone traffic served since the previous report (added to the totals), under
 * owner `epoch`.
 */
export const touchMeta = (
  sql: SqlClient.SqlClient,
  partition: number,
  epoch: number,
  lastAccess: number,
  temperature: number,
  zoneTraffic: { readonly same: number; readonly cross: number } = { same: 0, cross: 0 }
) =>
  fenced(
    sql,
    partition,
    epoch,
    sql`UPDATE graph_partitions SET last_access = ${lastAccess}, temperature = ${temperature},
      same_zone = same_zone + ${zoneTraffic.same}, cross_zone = cross_zone + ${zoneTraffic.cross}
      WHERE partition = ${partition}`
  )

/** The vertex `id` of partition `home` lives in `holder`; `stale` may still hold a copy. Under the home's `epoch`. */
export const writeMove = (
  sql: SqlClient.SqlClient,
  home: number,
  epoch: number,
  move: { readonly id: string; readonly holder: number; readonly stale: number | null }
) =>
  fenced(
    sql,
    home,
    epoch,
    sql`INSERT INTO graph_vertex_moves (home, vertex_id, holder, stale) VALUES (${home}, ${move.id}, ${move.holder},
      ${move.stale}) ON CONFLICT (home, vertex_id) DO UPDATE SET holder = excluded.holder, stale = excluded.stale`
  )

/** The vertex is back home with no copy elsewhere (or deleted). Under the home's `epoch`. */
export const deleteMove = (sql: SqlClient.SqlClient, home: number, epoch: number, id: string) =>
  fenced(sql, home, epoch, sql`DELETE FROM graph_vertex_moves WHERE home = ${home} AND vertex_id = ${id}`)

export interface MoveRow {
  readonly home: number
  readonly id: string
  readonly holder: number
  readonly stale: number | null
}

/** Rows of vertices homed in `partition` (moved away) or held by it (guests, or copies it may still have). */
const readMoves = (sql: SqlClient.SqlClient, partition: number) =>
  Effect.map(
    sql<Record<string, unknown>>`SELECT home, vertex_id, holder, stale FROM graph_vertex_moves
      WHERE home = ${partition} OR holder = ${partition} OR stale = ${partition}`,
    (rows): Array<MoveRow> =>
      rows.map((r) => ({
        home: Number(r.home),
        id: String(r.vertex_id),
        holder: Number(r.holder),
        stale: r.stale === null || r.stale === undefined ? null : Number(r.stale)
      }))
  )

const storageError = (error: { readonly message: string }) => new GraphStorageError({ message: error.message })

/** Keys deleted per DEL during eviction. */
const EVICT_CHUNK = 1000
/** Vertices read per pipeline when a partition is snapshotted. */
const SNAPSHOT_CHUNK = 256
/** Commands per pipeline during restore. */
const RESTORE_CHUNK = 20_000

/**
 * The hot-tier operations of one partition (no tier checks: the caller ensures the partition is hot). Every write
 * runs under `fence`; one the fence refuses (a newer owner claimed it) changes nothing and fails with `stale()`.
 */
export const hotTier = (
  valkey: ValkeyService,
  keys: PartitionKeys,
  fence: Fence,
  stale: () => Effect.Effect<never, StaleOwner>
) => {
  const fail = Effect.mapError(storageError)
  const write = <const Cs extends ReadonlyArray<Command>>(commands: Cs) =>
    Effect.flatMap(fail(valkey.fenced(fence, commands)), (results) =>
      results === undefined ? stale() : Effect.succeed(results)
    )
  return {
    /** Takes the gateways' direct-read count since the last call, and how many of them came from other zones. */
    takeDirectReads: Effect.map(
      fail(
        valkey.pipeline([Cmd.get(keys.reads), Cmd.get(keys.crossZoneReads), Cmd.del(keys.reads, keys.crossZoneReads)])
      ),
      ([n, cross]) => ({ total: n === null ? 0 : Number(n), crossZone: cross === null ? 0 : Number(cross) })
    ),
    /** `created`: the id was new. */
    put: (id: string, json: string) =>
      Effect.map(write([Cmd.set(keys.vertex(id), json), Cmd.sadd(keys.ids, id)]), (r) => r[1] === 1),
    get: (id: string) => fail(valkey.get(keys.vertex(id))),
    getMany: (ids: ReadonlyArray<string>) =>
      ids.length === 0 ? Effect.succeed([]) : fail(valkey.mget(...ids.map(keys.vertex))),
    exists: (id: string) => Effect.map(fail(valkey.exists(keys.vertex(id))), (n) => n > 0),
    delete: (id: string) =>
      Effect.map(write([Cmd.del(keys.vertex(id), keys.out(id)), Cmd.srem(keys.ids, id)]), (r) => r[1] === 1),
    addEdge: (src: string, label: string, dst: string) =>
      Effect.map(write([Cmd.sadd(keys.out(src), edgeMember(label, dst))]), (r) => r[0] === 1),
    removeEdge: (src: string, label: string, dst: string) =>
      Effect.map(write([Cmd.srem(keys.out(src), edgeMember(label, dst))]), (r) => r[0] === 1),
    /** `undefined` when the vertex does not exist. */
    neighbors: (id: string, label: string | undefined) =>
      Effect.map(
        fail(valkey.pipeline([Cmd.exists(keys.vertex(id)), Cmd.smembers(keys.out(id))])),
        ([exists, members]): Array<Neighbor> | undefined => {
          if (exists === 0) return undefined
          const out: Array<Neighbor> = []
          for (const member of members) {
            const edge = parseEdgeMember(member)
            if (label === undefined || edge.label === label) out.push(edge)
          }
          return out
        }
      ),
    neighborsMany: (ids: ReadonlyArray<string>, label: string | undefined) =>
      ids.length === 0
        ? Effect.succeed([] as Array<Array<string>>)
        : Effect.map(fail(valkey.pipeline(ids.map((id) => Cmd.smembers(keys.out(id))))), (sets) =>
            (sets as Array<Array<string>>).map((members) => {
              const out: Array<string> = []
              for (const member of members) {
                const edge = parseEdgeMember(member)
                if (label === undefined || edge.label === label) out.push(edge.id)
              }
              return out
            })
          ),
    count: fail(valkey.scard(keys.ids)),
    /** Every vertex id the partition holds (its own and guests). */
    ids: fail(valkey.smembers(keys.ids)),
    /** Reads every vertex and its edges. */
    snapshot: (partition: number, version: number): Effect.Effect<Snapshot, GraphStorageError> =>
      Effect.gen(function* () {
        const ids = yield* fail(valkey.smembers(keys.ids))
        const vertices: Snapshot["vertices"] = []
        // In pipelines of SNAPSHOT_CHUNK vertices: the connection is the gateways' too, and one reply of a whole
        // partition would hold every read queued behind it (and the event loop while it is parsed).
        for (let start = 0; start < ids.length; start += SNAPSHOT_CHUNK) {
          const end = Math.min(ids.length, start + SNAPSHOT_CHUNK)
          const commands: Array<Command> = new Array((end - start) * 2)
          for (let i = start; i < end; i++) {
            commands[2 * (i - start)] = Cmd.get(keys.vertex(ids[i]))
            commands[2 * (i - start) + 1] = Cmd.smembers(keys.out(ids[i]))
          }
          const replies = yield* fail(valkey.pipeline(commands))
          for (let i = start; i < end; i++) {
            const properties = replies[2 * (i - start)] as string | null
            // A forward marker (the vertex moved away while this snapshot ran) is not a vertex of this partition.
            if (properties === null || parseForwardMarker(properties) !== undefined) continue
            vertices.push([ids[i], properties, replies[2 * (i - start) + 1] as Array<string>])
          }
        }
        return { format: 1, partition, version, vertices }
      }),
    /** Deletes every key of the partition, and the keys of `moved` (forward markers, edges left behind). */
    evict: (moved: Iterable<string> = []) =>
      Effect.gen(function* () {
        const ids = [...(yield* fail(valkey.smembers(keys.ids))), ...moved]
        const commands: Array<Command> = []
        for (let i = 0; i < ids.length; i += EVICT_CHUNK) {
          const chunk: Array<string> = []
          for (const id of ids.slice(i, i + EVICT_CHUNK)) chunk.push(keys.vertex(id), keys.out(id))
          commands.push(Cmd.del(...chunk))
        }
        // The marker first: a gateway or owner that finds it gone knows the keys are going.
        commands.unshift(Cmd.del(keys.live))
        commands.push(Cmd.del(keys.ids))
        yield* write(commands)
        return ids.length
      }),
    /**
     * The vertex moved to `holder`: one pipeline swaps its properties for the forward marker (gateways follow it from
     * then on), drops it from the ids set and deletes its edges (nobody reads them behind a marker).
     */
    forwardTo: (forwards: ReadonlyArray<readonly [id: string, holder: number]>) =>
      forwards.length === 0
        ? Effect.void
        : Effect.asVoid(
            write(
              forwards.flatMap(([id, holder]) => [
                Cmd.set(keys.vertex(id), forwardMarker(holder)),
                Cmd.srem(keys.ids, id),
                Cmd.del(keys.out(id))
              ])
            )
          ),
    /** Writes a copy of a vertex (replacing any): edges first, then its key, as a restore does. */
    adopt: (id: string, json: string, edges: ReadonlyArray<string>) =>
      Effect.asVoid(
        write([
          Cmd.del(keys.out(id)),
          ...(edges.length > 0 ? [Cmd.sadd(keys.out(id), ...edges)] : []),
          Cmd.set(keys.vertex(id), json),
          Cmd.sadd(keys.ids, id)
        ])
      ),
    /** Drops a copy (one DEL for its key and edges, as eviction does). */
    release: (id: string) =>
      Effect.map(write([Cmd.del(keys.vertex(id), keys.out(id)), Cmd.srem(keys.ids, id)]), (r) => r[1] === 1),
    /** `[marker present, ids set present]` (0 or 1 each): a hot partition without its marker lost its keys. */
    liveness: Effect.map(
      fail(valkey.pipeline([Cmd.exists(keys.live), Cmd.exists(keys.ids)])),
      ([live, ids]) => [live, ids] as const
    ),
    markLive: Effect.asVoid(write([Cmd.set(keys.live, "1")])),
    /** Writes a snapshot's vertices and edges (after evicting leftovers), in large pipelines. */
    restore: (snapshot: Snapshot) =>
      Effect.gen(function* () {
        let commands: Array<Command> = []
        const flush = Effect.suspend(() => {
          const batch = commands
          commands = []
          return batch.length === 0 ? Effect.void : Effect.asVoid(write(batch))
        })
        let ids: Array<string> = []
        for (const [id, properties, edges] of snapshot.vertices) {
          // Edges before the vertex key: a gateway that finds the vertex also finds all of its edges.
          if (edges.length > 0) commands.push(Cmd.sadd(keys.out(id), ...edges))
          commands.push(Cmd.set(keys.vertex(id), properties))
          ids.push(id)
          if (ids.length >= EVICT_CHUNK) {
            commands.push(Cmd.sadd(keys.ids, ...ids))
            ids = []
          }
          if (commands.length >= RESTORE_CHUNK) yield* flush
        }
        if (ids.length > 0) commands.push(Cmd.sadd(keys.ids, ...ids))
        // Last: the marker says the whole snapshot is in.
        commands.push(Cmd.set(keys.live, "1"))
        yield* flush
      })
  }
}

export interface PartitionOptions {
  readonly partition: number
  readonly keyPrefix: string
  readonly valkey: ValkeyService
  readonly sql: SqlClient.SqlClient
  readonly cold: ObjectStoreShape
  /** The partition's preferred zone (`preferredZone` of `TESSERA_GRAPH_ZONES`); none: no zone accounting. */
  readonly preferredZone?: string | undefined
  /** The zone of the runner hosting this instance (`TESSERA_ZONE`). */
  readonly runnerZone?: string | undefined
}

/** Most concurrent requests per partition; a tier change takes all of them. */
const GATE = 1 << 20

/**
 * A partition's tier state machine. `run(effect)` runs a request once the partition is hot (promoting it first
 * when cold); `demote` snapshots and evicts it. Writes also hold a one-permit lock so that read-modify-write
 * sequences (edge on an existing vertex) do not interleave with deletes.
 */
export const makePartition = (options: PartitionOptions) =>
  Effect.gen(function* () {
    const { partition, sql, cold } = options
    const keys = partitionKeys(options.keyPrefix, partition)
    const gate = yield* Semaphore.make(GATE)
    const writeLock = yield* Semaphore.make(1)
    const failSql = Effect.mapError(storageError)
    const staleWrites = GraphMetrics.staleOwnerWrites.labels({ partition: String(partition) })
    /** Set by the first refused write: from then on this activation refuses every request, touching nothing. */
    let stale: StaleOwner | undefined

    const refused = (error: StaleOwner) =>
      Effect.suspend(() => {
        stale ??= error
        staleWrites.inc()
        return Effect.fail(error)
      })
    /** A fenced metadata write: a refusal is counted and fences this activation off; other failures are storage errors. */
    const metaWrite = <A>(write: Effect.Effect<A, SqlError.SqlError | StaleOwner>) =>
      write.pipe(
        Effect.catchTag("StaleOwner", refused),
        Effect.mapError((error) => (error._tag === "StaleOwner" ? error : storageError(error)))
      )
    const refuseIfStale = Effect.suspend(() => (stale === undefined ? Effect.void : Effect.fail(stale)))

    // Claimed before the metadata is read: writes of an earlier owner committed first (and are read here) or fail.
    // Above the hot tier's fence, then raised there: a fence already higher means a newer owner claimed since.
    const fenceKey = keys.owner
    const fenced = yield* Effect.mapError(options.valkey.get(fenceKey), storageError)
    const floor = fenced !== null && Number.isSafeInteger(Number(fenced)) ? Number(fenced) + 1 : 1
    const epoch = yield* failSql(claimPartition(sql, partition, floor))
    if (!(yield* Effect.mapError(options.valkey.claimFence(fenceKey, epoch), storageError))) {
      return yield* refused(staleOwner(partition, epoch))
    }
    const hot = hotTier(options.valkey, keys, { key: fenceKey, epoch }, () => refused(staleOwner(partition, epoch)))
    const zone = options.preferredZone ?? null
    let meta: MetaRow = yield* failSql(readMeta(sql, partition)).pipe(
      Effect.flatMap((row) => {
        // The preferred zone follows the configuration (placement is computed from it on every runner).
        if (row !== undefined) {
          if (row.zone === zone) return Effect.succeed(row)
          const rezoned: MetaRow = { ...row, zone }
          return Effect.as(metaWrite(writeMeta(sql, rezoned, epoch)), rezoned)
        }
        const fresh: MetaRow = {
          partition,
          tier: "hot",
          location: null,
          version: 0,
          lastAccess: Date.now(),
          temperature: 0,
          zone,
          sameZone: 0,
          crossZone: 0
        }
        return Effect.as(metaWrite(writeMeta(sql, fresh, epoch)), fresh)
      })
    )
    // Requests served here count as same- or cross-zone; a partition without a preferred zone is not counted.
    const servedHere = zone === null ? "none" : options.runnerZone === zone ? ("same" as const) : ("cross" as const)
    let requests = 0
    let windowStart = Date.now()
    let lastAccess = Date.now()
    const temperatureGauge = GraphMetrics.temperature.labels({ partition: String(partition) })
    const hotGauge = GraphMetrics.partitionHot.labels({ partition: String(partition) })
    temperatureGauge.set(meta.temperature)
    hotGauge.set(meta.tier === "hot" ? 1 : 0)

    // Rebalance state, read after the claim like the metadata row.
    /** Vertices homed here that live elsewhere: id -> holder. */
    const forwards = new Map<string, number>()
    /** Vertices of other homes held here (and copies this partition may still have). */
    const guests = new Set<string>()
    /**
     * Moves of vertices homed here that did not finish, by id: a copy to drop (`stale`), the row to settle. As read at
     * activation; an entry leaves when its row is settled, and a later move or delete of the id settles it first.
     */
    const unfinished = new Map<string, MoveRow>()
    for (const row of yield* failSql(readMoves(sql, partition))) {
      if (row.home === partition) {
        if (row.holder !== partition) forwards.set(row.id, row.holder)
        if (row.stale !== null) unfinished.set(row.id, row)
      } else if (row.holder === partition || row.stale === partition) guests.add(row.id)
    }
    const writeForwards = Effect.suspend(() => hot.forwardTo([...forwards]))

    /** Rewrites the hot tier from the snapshot at `location` (or just marks it live when there is none). */
    const restoreFrom = (location: string | null) =>
      Effect.gen(function* () {
        // Checked before the hot tier is rewritten: a stale owner must not evict the new owner's keys.
        const current = yield* failSql(
          sql`SELECT epoch FROM graph_partition_owners WHERE partition = ${partition} AND epoch = ${epoch}`
        )
        if (current.length === 0) return yield* refused(staleOwner(partition, epoch))
        if (location === null) {
          yield* hot.markLive
          return yield* writeForwards
        }
        const bytes = yield* Effect.mapError(cold.get(location), storageError)
        if (bytes === null) return yield* new GraphStorageError({ message: `snapshot ${location} is missing` })
        const snapshot = yield* Effect.try({
          try: () => decodeSnapshot(bytes),
          catch: (error) => new GraphStorageError({ message: `snapshot ${location}: ${String(error)}` })
        })
        yield* hot.evict(forwards.keys())
        yield* hot.restore(snapshot)
        yield* writeForwards
      })

    const promoteLocked = Effect.gen(function* () {
      yield* refuseIfStale
      if (meta.tier === "hot") return 0
      const started = performance.now()
      yield* restoreFrom(meta.location)
      checkpointed = writes
      const next: MetaRow = { ...meta, tier: "hot", lastAccess: Date.now() }
      yield* metaWrite(writeMeta(sql, next, epoch))
      meta = next
      const millis = performance.now() - started
      GraphMetrics.promotions.inc()
      GraphMetrics.promotionSeconds.observe(millis / 1000)
      hotGauge.set(1)
      return millis
    })

    /** Writes the snapshot object only (step one of demotion); exposed for crash tests. */
    const writeSnapshot = Effect.gen(function* () {
      const version = meta.version + 1
      const snapshot = yield* hot.snapshot(partition, version)
      const key = snapshotKey(partition, version, epoch)
      const parts: Array<string> = []
      for (const part of snapshotJson(snapshot, SNAPSHOT_CHUNK)) {
        parts.push(part)
        yield* Effect.yieldNow
      }
      yield* Effect.mapError(cold.put(key, new TextEncoder().encode(parts.join(""))), storageError)
      return { key, version, vertices: snapshot.vertices.length }
    })

    const demoteLocked = Effect.gen(function* () {
      yield* refuseIfStale
      if (meta.tier === "cold") return { version: meta.version, vertices: 0, millis: 0 }
      const started = performance.now()
      // Gateways keep reading the keys directly until they are evicted; a key evicted under them sends them here.
      const written = yield* writeSnapshot
      const previous = meta.location
      const next: MetaRow = {
        ...meta,
        tier: "cold",
        location: written.key,
        version: written.version,
        lastAccess
      }
      // A refused pointer swap leaves the keys alone and removes the object nobody points to.
      yield* metaWrite(writeMeta(sql, next, epoch)).pipe(
        Effect.tapError((error) =>
          error._tag === "StaleOwner" ? Effect.ignore(cold.delete(written.key)) : Effect.void
        )
      )
      meta = next
      yield* hot.evict(forwards.keys())
      if (previous !== null && previous !== written.key) yield* Effect.ignore(cold.delete(previous))
      const millis = performance.now() - started
      GraphMetrics.demotions.inc()
      GraphMetrics.demotionSeconds.observe(millis / 1000)
      hotGauge.set(0)
      return { version: written.version, vertices: written.vertices, millis }
    })

    /**
     * Hot-tier durability: a hot partition whose Valkey keys vanished (no live marker) is rewritten from its last
     * snapshot (a checkpoint or the demotion it was promoted from). At activation the ids set must be gone too, so a
     * partition hot in Valkey from before the marker existed is kept as it is; while active, this activation wrote the
     * marker itself, so its absence alone means a loss (writes accepted since the loss and before this check, at most
     * one report interval, are lost with it).
     */
    const recoverLocked = (activation: boolean) =>
      Effect.gen(function* () {
        yield* refuseIfStale
        if (meta.tier !== "hot") return false
        const [live, ids] = yield* hot.liveness
        if (live === 1) return false
        if (meta.location === null || (activation && ids === 1)) {
          yield* restoreFrom(null)
          return false
        }
        yield* restoreFrom(meta.location)
        // What was restored is what the snapshot holds: nothing newer to write until the next write.
        checkpointed = writes
        GraphMetrics.wipeRestores.inc()
        return true
      })

    // Writes since the activation (counted when each ends) and the count the last checkpoint covered.
    let writes = 0
    let checkpointed = 0

    /**
     * Periodic snapshot of a hot partition that changed since the last one: the object under a new version and this
     * epoch, then a fenced pointer swap that keeps the tier hot (a refused swap deletes the object), then the
     * previous object is deleted. The keys stay in Valkey; a later wipe restores from here.
     */
    const checkpointLocked = Effect.gen(function* () {
      yield* refuseIfStale
      if (meta.tier !== "hot" || writes === checkpointed) return undefined
      const started = performance.now()
      // Writes ending after this mark may be missed by the snapshot: they leave the partition dirty for the next.
      const mark = writes
      const written = yield* writeSnapshot
      const previous = meta.location
      const next: MetaRow = { ...meta, location: written.key, version: written.version }
      yield* metaWrite(writeMeta(sql, next, epoch)).pipe(
        Effect.tapError((error) =>
          error._tag === "StaleOwner" ? Effect.ignore(cold.delete(written.key)) : Effect.void
        )
      )
      meta = next
      checkpointed = mark
      if (previous !== null && previous !== written.key) yield* Effect.ignore(cold.delete(previous))
      const millis = performance.now() - started
      GraphMetrics.checkpoints.inc()
      GraphMetrics.checkpointSeconds.observe(millis / 1000)
      return { version: written.version, vertices: written.vertices, millis }
    })

    yield* recoverLocked(true)
    // A move that stopped between its metadata switch and its Valkey one left the marker behind: the rows decide.
    if (meta.tier === "hot") yield* writeForwards

    const exclusive = gate.withPermits(GATE)
    const promote = exclusive(promoteLocked)
    const demote = exclusive(demoteLocked)
    // Shares the gate with requests (they go on), excludes tier changes.
    const checkpoint = gate.withPermits(1)(checkpointLocked)
    // The cheap check runs ungated; only a missing marker takes the partition exclusively.
    const recover = Effect.flatMap(Effect.andThen(refuseIfStale, hot.liveness), ([live]) =>
      live === 1 || meta.tier !== "hot" ? Effect.succeed(false) : exclusive(recoverLocked(false))
    )

    const run = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | GraphStorageError | StaleOwner, R> => {
      if (stale !== undefined) return Effect.fail(stale)
      requests++
      lastAccess = Date.now()
      if (meta.tier === "hot") {
        GraphMetrics.entityHits.inc()
        return gate.withPermits(1)(effect)
      }
      GraphMetrics.entityMisses.inc()
      return Effect.flatMap(promote, () => gate.withPermits(1)(effect))
    }
    const write = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      run(
        writeLock.withPermits(1)(
          Effect.ensuring(
            effect,
            Effect.sync(() => {
              writes++
            })
          )
        )
      )

    /**
     * Flushes last access, temperature and zone traffic to the metadata row. Zone traffic: this entity's requests
     * (same or cross by this runner's zone) plus the gateways' direct reads (cross as the gateways counted them).
     */
    const report = Effect.flatMap(Effect.andThen(refuseIfStale, hot.takeDirectReads), (direct) => {
      const served = requests
      if (direct.total > 0) {
        requests += direct.total
        lastAccess = Date.now()
      }
      const now = Date.now()
      const temperature = nextTemperature(meta.temperature, requests, now - windowStart)
      requests = 0
      windowStart = now
      let same = 0
      let cross = 0
      if (servedHere !== "none") {
        if (servedHere === "same") {
          same = served
          GraphMetrics.entitySameZone.inc(served)
        } else {
          cross = served
          GraphMetrics.entityCrossZone.inc(served)
        }
        cross += direct.crossZone
        same += Math.max(0, direct.total - direct.crossZone)
      }
      meta = { ...meta, lastAccess, temperature, sameZone: meta.sameZone + same, crossZone: meta.crossZone + cross }
      temperatureGauge.set(temperature)
      return metaWrite(touchMeta(sql, partition, epoch, lastAccess, temperature, { same, cross }))
    })

    // Requests on vertices homed here share it; a move of one takes it whole, so no request sees a move half done.
    const moveLock = yield* Semaphore.make(GATE)

    return {
      partition,
      /** The owner epoch this activation claimed. */
      epoch,
      forwards,
      guests,
      unfinished,
      /** Runs a request on vertices homed here (shares the move lock). */
      homed: moveLock.withPermits(1),
      /** Runs a move (excludes every request on vertices homed here, and other moves). */
      moving: moveLock.withPermits(GATE),
      /** Records where a vertex homed here lives (fenced under this epoch). */
      recordMove: (move: { readonly id: string; readonly holder: number; readonly stale: number | null }) =>
        metaWrite(writeMove(sql, partition, epoch, move)),
      /** The vertex is home again, or gone, and no copy is left elsewhere (fenced). */
      forgetMove: (id: string) => metaWrite(deleteMove(sql, partition, epoch, id)),
      hot,
      run,
      write,
      promote,
      demote,
      checkpoint,
      recover,
      /** True while writes since the last checkpoint are not in a snapshot. */
      dirty: () => writes !== checkpointed,
      writeSnapshot,
      report,
      meta: () => meta,
      idleMillis: () => Date.now() - lastAccess,
      /** The partition leaves this runner: its gauges read 0 here (dashboards take the max per partition). */
      released: () => {
        temperatureGauge.set(0)
        hotGauge.set(0)
      }
    }
  })
