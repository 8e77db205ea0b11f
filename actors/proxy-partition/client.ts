/**
 * Graph calls over a Tessera gateway client: computes each vertex's partition with the shared `vertexPartition` and
 * calls the partition entity (or the gateway-level Graph.* RPCs); `makeZoneRouter` sends each call to a gateway in
 * the zone of its vertices.
 */
import type { Client } from "@tessera/client/TesseraClient"
import { Contract } from "@tessera/contracts"
import { Duration, Effect, Option, Queue, Scope } from "effect"
import { DEFAULT_PARTITIONS } from "./core.ts"
import { GraphContract, type Properties } from "./protocol.ts"
import {
  type GatewayEntry,
  gatewayIn,
  ROUTING_REFRESH,
  type RoutingTable,
  vertexPartition,
  zoneForRequest
} from "./routing.ts"

/** The gateway API of the graph module alone. */
export const graphApi = Contract.api(GraphContract)
export type GraphApiClient = Client<typeof graphApi>

export const graphClient = (client: GraphApiClient, partitions: number = DEFAULT_PARTITIONS) => {
  const at = (id: string) => String(vertexPartition(id, partitions))
  return {
    partitionOf: (id: string) => vertexPartition(id, partitions),
    put: (id: string, properties: Properties) =>
      client["ProxyPartition.PutVertex"]({ entityId: at(id), payload: { id, properties } }),
    get: (id: string) => client["ProxyPartition.GetVertex"]({ entityId: at(id), payload: { id } }),
    delete: (id: string) => client["ProxyPartition.DeleteVertex"]({ entityId: at(id), payload: { id } }),
    addEdge: (src: string, label: string, dst: string) =>
      client["ProxyPartition.AddEdge"]({ entityId: at(src), payload: { src, label, dst } }),
    removeEdge: (src: string, label: string, dst: string) =>
      client["ProxyPartition.RemoveEdge"]({ entityId: at(src), payload: { src, label, dst } }),
    neighbors: (id: string, label?: string) => client["Graph.Neighbors"]({ id, label }),
    /** Neighbours asked of the partition entity itself (no gateway fast path). */
    entityNeighbors: (id: string, label?: string) =>
      client["ProxyPartition.Neighbors"]({ entityId: at(id), payload: { id, label } }),
    demote: (partition: number) => client["ProxyPartition.Demote"]({ entityId: String(partition), payload: undefined }),
    info: (partition: number) => client["ProxyPartition.Info"]({ entityId: String(partition), payload: undefined }),
    batchGet: (ids: ReadonlyArray<string>) => client["Graph.BatchGet"]({ ids }),
    khop: (id: string, k: number, options?: { readonly label?: string; readonly limit?: number }) =>
      client["Graph.KHop"]({ id, k, label: options?.label, limit: options?.limit }),
    stats: () => client["Graph.Stats"]()
  }
}
export type GraphClient = ReturnType<typeof graphClient>

/**
 * Zone-local routing over several gateways: the router fetches the routing table (`Graph.Routing`) from `bootstrap`,
 * refreshes it every `refreshMillis` of the table and at once after a miss (no gateway known in the zone a request
 * belongs to, or a transport failure of a zone's gateway), and sends each request to a gateway of the zone holding
 * its vertices (for a batch, the zone holding most of them), else to `bootstrap`.
 */
export interface ZoneRouterOptions<E> {
  /** A client of any gateway: fetches the table, and serves what no zone's gateway can. */
  readonly bootstrap: GraphApiClient
  /** Opens a client of a gateway URL; the router's scope keeps it. */
  readonly connect: (url: string) => Effect.Effect<GraphApiClient, E, Scope.Scope>
  /** The caller's zone: wins ties between zones. */
  readonly zone?: string | undefined
  /**
   * Reads (BatchGet, Neighbors) to a gateway of the caller's zone when one reads from a fresh replica there, so they
   * cross no zone; they may then miss the replica's last lag of writes (`TESSERA_VALKEY_REPLICA_MAX_LAG`). Default
   * false: reads go to their vertices' zone, like everything else.
   */
  readonly localReplicaReads?: boolean | undefined
  readonly partitions?: number | undefined
}

/** Longest wait for one `Graph.Routing` answer. */
const ROUTING_TIMEOUT = Duration.seconds(5)

export const makeZoneRouter = <E>(options: ZoneRouterOptions<E>) =>
  Effect.gen(function* () {
    const scope = yield* Effect.scope
    const partitions = options.partitions ?? DEFAULT_PARTITIONS
    let table: RoutingTable | undefined
    let refreshes = 0
    const clients = new Map<string, GraphApiClient>()
    const misses = yield* Queue.sliding<void>(1)
    const miss = () => {
      Queue.offerUnsafe(misses, undefined)
    }
    const fetchTable = options.bootstrap["Graph.Routing"]().pipe(
      Effect.timeout(ROUTING_TIMEOUT),
      Effect.tap((fetched) =>
        Effect.sync(() => {
          table = fetched
          refreshes++
        })
      ),
      Effect.ignore
    )
    yield* fetchTable
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.andThen(
          Effect.raceFirst(
            Effect.sleep(Duration.millis(table?.refreshMillis ?? Duration.toMillis(ROUTING_REFRESH))),
            Queue.take(misses)
          ),
          fetchTable
        )
      )
    )

    /** The client of the gateway for `zone` (undefined: none known there, a miss). */
    const clientIn = (zone: string | undefined, spread: number) =>
      Effect.gen(function* () {
        const gateway = table === undefined ? undefined : gatewayIn(table, zone, spread)
        if (gateway === undefined) {
          if (zone !== undefined) miss()
          return { client: options.bootstrap, gateway: undefined }
        }
        const open = clients.get(gateway.url)
        if (open !== undefined) return { client: open, gateway }
        const opened = yield* Effect.option(Scope.provide(options.connect(gateway.url), scope))
        if (Option.isNone(opened)) {
          miss()
          return { client: options.bootstrap, gateway: undefined }
        }
        clients.set(gateway.url, opened.value)
        return { client: opened.value, gateway }
      })

    let counter = 0
    /** The zone and gateway a request reading `ids` goes to. */
    const route = (ids: ReadonlyArray<string>, read = false) =>
      clientIn(
        table === undefined
          ? undefined
          : zoneForRequest(table, ids, { ownZone: options.zone, read, localReplicaReads: options.localReplicaReads }),
        counter++
      )
    const partitionZone = (partition: number) => table?.zones[partition] ?? undefined

    /** Runs `call` on the routed gateway; a transport failure there is a miss, and the call goes to `bootstrap`. */
    const routed = <A, E2, R>(
      target: Effect.Effect<{ readonly client: GraphApiClient; readonly gateway: GatewayEntry | undefined }>,
      call: (graph: GraphClient) => Effect.Effect<A, E2, R>
    ) =>
      Effect.flatMap(target, ({ client, gateway }) =>
        gateway === undefined
          ? call(graphClient(client, partitions))
          : Effect.catchIf(
              call(graphClient(client, partitions)),
              (error): error is E2 =>
                typeof error === "object" && error !== null && (error as { _tag?: unknown })._tag === "RpcClientError",
              () => {
                miss()
                clients.delete(gateway.url)
                return call(graphClient(options.bootstrap, partitions))
              }
            )
      )
    const byId = (id: string) => route([id])
    const byPartition = (partition: number) => clientIn(partitionZone(partition), counter++)

    const graph = {
      partitionOf: (id: string) => vertexPartition(id, partitions),
      put: (id: string, properties: Properties) => routed(byId(id), (g) => g.put(id, properties)),
      get: (id: string) => routed(byId(id), (g) => g.get(id)),
      delete: (id: string) => routed(byId(id), (g) => g.delete(id)),
      addEdge: (src: string, label: string, dst: string) => routed(byId(src), (g) => g.addEdge(src, label, dst)),
      removeEdge: (src: string, label: string, dst: string) => routed(byId(src), (g) => g.removeEdge(src, label, dst)),
      neighbors: (id: string, label?: string) => routed(route([id], true), (g) => g.neighbors(id, label)),
      batchGet: (ids: ReadonlyArray<string>) => routed(route(ids, true), (g) => g.batchGet(ids)),
      khop: (id: string, k: number, khopOptions?: { readonly label?: string; readonly limit?: number }) =>
        routed(byId(id), (g) => g.khop(id, k, khopOptions)),
      info: (partition: number) => routed(byPartition(partition), (g) => g.info(partition)),
      stats: () => graphClient(options.bootstrap, partitions).stats()
    }
    return {
      graph,
      /** The table in use (undefined until a fetch succeeded). */
      table: () => table,
      /** Tables fetched so far. */
      refreshes: () => refreshes,
      /** The gateway a request reading `ids` would go to now (undefined: `bootstrap`). */
      gatewayFor: (ids: ReadonlyArray<string>) => Effect.map(route(ids, true), ({ gateway }) => gateway),
      /** Fetches the table now. */
      refresh: fetchTable
    }
  })
