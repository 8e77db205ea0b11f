/**
 * NodeInfo: facts about the node a module runs on, provided by the host: its availability zone and its data
 * folder (where embedded stores keep files).
 */
import { Context, Layer, Option } from "effect"

export class NodeInfo extends Context.Service<
  NodeInfo,
  {
    /** This runner's availability zone (`TESSERA_ZONE`), when known. */
    readonly zone: Option.Option<string>
    /** The node's data folder (`TESSERA_DATA`); modules keep embedded files under it. */
    readonly dataDir: string
    /** The URL clients reach this node's gateway at (`TESSERA_GATEWAY_URL`), when known: announced to clients. */
    readonly gatewayUrl: Option.Option<string>
  }
>()("tessera/platform/NodeInfo") {}

export const layer = (options: {
  readonly zone?: string | undefined
  readonly dataDir: string
  readonly gatewayUrl?: string | undefined
}) =>
  Layer.succeed(NodeInfo)({
    zone: Option.fromUndefinedOr(options.zone),
    dataDir: options.dataDir,
    gatewayUrl: Option.fromUndefinedOr(options.gatewayUrl)
  })
