/**
 * Graph calls over a Tessera gateway client: computes each vertex's partition with the shared `partitionOf` and
 * calls the partition entity (or the gateway-level Graph.* RPCs).
 */
import type { Client } from "@tessera/client/TesseraClient"
import { Contract } from "@tessera/contracts"
import { DEFAULT_PARTITIONS, partitionOf } from "./core.ts"
import { GraphContract, type Properties } from "./protocol.ts"

/** The gateway API of the graph module alone. */
export const graphApi = Contract.api(GraphContract)
export type GraphApiClient = Client<typeof graphApi>

export const graphClient = (client: GraphApiClient, partitions: number = DEFAULT_PARTITIONS) => {
  const at = (id: string) => String(partitionOf(id, partitions))
  return {
    partitionOf: (id: string) => partitionOf(id, partitions),
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
