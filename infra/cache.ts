/**
 * ElastiCache Valkey: market-data streams, hot graph partitions, dedup windows. Serverless for small stages;
 * a provisioned cluster-mode replication group (a replica per shard, multi-AZ, shard auto scaling) when the stage
 * asks for it. Both speak TLS only and require a user and password (RBAC user group); the password reaches the
 * runners inside `REDIS_URL`, an ECS secret. Both endpoints are cluster-mode endpoints: clients use cluster mode.
 *
 * Zone-local reads (the graph gateway's stale-tolerant reads, `TESSERA_VALKEY_REPLICA_URL` from the secret's
 * `replicaUrl`): serverless has one endpoint for every zone, and its latency-optimized port (`readerPort`) sends each
 * read to a node in the client's own AZ (another AZ's only when the local one is down), so every runner gets the same
 * URL and ElastiCache picks the zone. A provisioned cluster has no per-zone reader endpoint: each shard keeps a node
 * in every AZ of the private subnets (primary in one, a replica in each other), and runners read the slots'
 * replicas through the configuration endpoint (READONLY); which replica serves a read is the client's pick, not yet
 * the runner's zone.
 *
 * Users per purpose (ACL access strings): the runners' user may touch only Tessera's key families with data
 * commands; a market-data consumer's user may only read the `md:*` streams. `default` is switched off.
 */
import * as aws from "@pulumi/aws"
import * as pulumi from "@pulumi/pulumi"
import * as random from "@pulumi/random"
import type { Network } from "./network.ts"
import { ports, readerPort, type StageConfig } from "./stage.ts"

export { readerPort }

export const engine = "valkey"
export const majorVersion = "8"
const username = "tessera"
const marketDataUsername = "tessera-md"

/**
 * Key families the runtime uses: `md:*` market-data streams (symbol trades/depth, gatherer books), `g:*` the graph
 * hot tier (TESSERA_GRAPH_PREFIX, default `g`), `tessera:*` the storage probe key.
 */
export const runnerKeyPatterns = ["md:*", "g:*", "tessera:*"] as const
/**
 * Runners: data commands on their keys (`@read`/`@write` cover strings, hashes, sets, streams, TTLs), MULTI/EXEC,
 * connection commands; nothing `@dangerous` (FLUSH*, KEYS, CONFIG, DEBUG...) except INFO, and CLUSTER for the
 * cluster client's slot map. No pub/sub channels.
 */
export const runnerAccess = `on ${runnerKeyPatterns.map((p) => `~${p}`).join(" ")} resetchannels -@all +@read +@write +@transaction +@connection -@dangerous +info +cluster`
/** Market-data consumers: XREAD / XRANGE / XLEN and other reads of `md:*` only; no writes, no other keys. */
export const marketDataAccess = "on ~md:* resetchannels -@all +@read +@connection -@dangerous +cluster"

export interface Cache {
  /** Where clients connect: the serverless endpoint or the cluster configuration endpoint. */
  readonly host: pulumi.Output<string>
  readonly port: pulumi.Output<number>
  /**
   * JSON `{ username, password, host, port, url, replicaUrl }`; tasks read `url` as `REDIS_URL` and `replicaUrl` as
   * `TESSERA_VALKEY_REPLICA_URL` (zone-local reads, see above).
   */
  readonly secret: aws.secretsmanager.Secret
  /** The read-only market-data consumer's `{ username, password, host, port, url }`, for readers outside Tessera. */
  readonly marketDataSecret: aws.secretsmanager.Secret
}

export const cache = (config: StageConfig, net: Network): Cache => {
  const { stage } = config
  const tags = { "tessera:stage": stage }
  const password = new random.RandomPassword("CachePassword", { length: 40, special: false })
  // A user group must hold a user named "default": here it exists only to be switched off.
  const disabledDefault = new aws.elasticache.User("CacheDefaultUser", {
    userId: `tessera-${stage}-default`,
    userName: "default",
    engine,
    accessString: "off -@all",
    authenticationMode: {
      type: "password",
      passwords: [new random.RandomPassword("CacheDefaultPassword", { length: 40, special: false }).result]
    },
    tags
  })
  const appUser = new aws.elasticache.User("CacheUser", {
    userId: `tessera-${stage}-app`,
    userName: username,
    engine,
    accessString: runnerAccess,
    authenticationMode: { type: "password", passwords: [password.result] },
    tags
  })
  const marketDataPassword = new random.RandomPassword("CacheMarketDataPassword", { length: 40, special: false })
  const marketDataUser = new aws.elasticache.User("CacheMarketDataUser", {
    userId: `tessera-${stage}-md`,
    userName: marketDataUsername,
    engine,
    accessString: marketDataAccess,
    authenticationMode: { type: "password", passwords: [marketDataPassword.result] },
    tags
  })
  const users = new aws.elasticache.UserGroup("CacheUsers", {
    userGroupId: `tessera-${stage}`,
    engine,
    userIds: [disabledDefault.userId, appUser.userId, marketDataUser.userId],
    tags
  })
  const subnetIds = net.privateSubnets.map((subnet) => subnet.id)
  const securityGroupIds = [net.securityGroups.cache.id]

  let host: pulumi.Output<string>
  let port: pulumi.Output<number>
  let replicaPort: pulumi.Output<number>
  const shape = config.cache
  if (shape.mode === "serverless") {
    const serverless = new aws.elasticache.ServerlessCache("Cache", {
      engine,
      majorEngineVersion: majorVersion,
      name: `tessera-${stage}`,
      description: `Tessera ${stage}`,
      subnetIds,
      securityGroupIds,
      userGroupId: users.userGroupId,
      cacheUsageLimits: {
        dataStorage: { maximum: shape.maxDataGb, unit: "GB" },
        ecpuPerSeconds: [{ maximum: shape.maxEcpuPerSecond }]
      },
      tags
    })
    host = serverless.endpoints.apply((endpoints) => endpoints[0].address)
    port = serverless.endpoints.apply((endpoints) => endpoints[0].port)
    replicaPort = pulumi.output(readerPort)
  } else {
    // One node of every shard in each zone: a replica in each AZ besides the primary's, primaries spread over AZs.
    const zones = net.privateSubnets.map((subnet) => subnet.availabilityZone)
    const replicas = Math.max(shape.replicasPerShard, zones.length - 1)
    const nodeGroupConfigurations = Array.from({ length: shape.minShards }, (_, shard) => {
      const others = zones.filter((_, z) => z !== shard % zones.length)
      return {
        nodeGroupId: String(shard + 1).padStart(4, "0"),
        primaryAvailabilityZone: zones[shard % zones.length],
        replicaAvailabilityZones: Array.from({ length: replicas }, (_, r) => others[r % others.length]),
        replicaCount: replicas
      }
    })
    const cacheSubnets = new aws.elasticache.SubnetGroup("CacheSubnets", { subnetIds, tags })
    const group = new aws.elasticache.ReplicationGroup(
      "Cache",
      {
        description: `Tessera ${stage}`,
        engine,
        engineVersion: `${majorVersion}.0`,
        nodeType: shape.nodeType,
        clusterMode: "enabled",
        parameterGroupName: `default.valkey${majorVersion}.cluster.on`,
        numNodeGroups: shape.minShards,
        replicasPerNodeGroup: replicas,
        nodeGroupConfigurations,
        automaticFailoverEnabled: true,
        multiAzEnabled: true,
        port: ports.valkey,
        subnetGroupName: cacheSubnets.name,
        securityGroupIds,
        transitEncryptionEnabled: true,
        transitEncryptionMode: "required",
        atRestEncryptionEnabled: true,
        userGroupIds: [users.userGroupId],
        snapshotRetentionLimit: 1,
        tags
      },
      // Shard count (and so the shards' list) belongs to auto scaling once the group exists.
      { ignoreChanges: ["numNodeGroups", "nodeGroupConfigurations"] }
    )
    const shards = new aws.appautoscaling.Target("CacheShards", {
      serviceNamespace: "elasticache",
      resourceId: pulumi.interpolate`replication-group/${group.id}`,
      scalableDimension: "elasticache:replication-group:NodeGroups",
      minCapacity: shape.minShards,
      maxCapacity: shape.maxShards
    })
    new aws.appautoscaling.Policy("CacheShardsOnCpu", {
      policyType: "TargetTrackingScaling",
      serviceNamespace: shards.serviceNamespace,
      resourceId: shards.resourceId,
      scalableDimension: shards.scalableDimension,
      targetTrackingScalingPolicyConfiguration: {
        predefinedMetricSpecification: { predefinedMetricType: "ElastiCachePrimaryEngineCPUUtilization" },
        targetValue: 60,
        // Resharding moves slots for minutes: scale in slowly.
        scaleInCooldown: 1800,
        scaleOutCooldown: 600
      }
    })
    host = group.configurationEndpointAddress
    port = group.port.apply((p) => p ?? ports.valkey)
    replicaPort = port
  }

  const secret = new aws.secretsmanager.Secret("CacheCredentials", {
    description: `Tessera ${stage}: Valkey credentials and REDIS_URL`,
    recoveryWindowInDays: 0,
    tags
  })
  new aws.secretsmanager.SecretVersion("CacheCredentialsValue", {
    secretId: secret.id,
    secretString: pulumi.all([host, port, replicaPort, password.result]).apply(([h, p, rp, pass]) =>
      JSON.stringify({
        username,
        password: pass,
        host: h,
        port: p,
        url: `rediss://${username}:${pass}@${h}:${p}`,
        replicaUrl: `rediss://${username}:${pass}@${h}:${rp}`
      })
    )
  })

  const marketDataSecret = new aws.secretsmanager.Secret("CacheMarketDataCredentials", {
    description: `Tessera ${stage}: read-only Valkey market-data consumer`,
    recoveryWindowInDays: 0,
    tags
  })
  new aws.secretsmanager.SecretVersion("CacheMarketDataCredentialsValue", {
    secretId: marketDataSecret.id,
    secretString: pulumi.all([host, port, marketDataPassword.result]).apply(([h, p, pass]) =>
      JSON.stringify({
        username: marketDataUsername,
        password: pass,
        host: h,
        port: p,
        url: `rediss://${marketDataUsername}:${pass}@${h}:${p}`
      })
    )
  })

  return { host, port, secret, marketDataSecret }
}
