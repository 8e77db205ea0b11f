/**
 * Every difference between stages, in one place. The other `infra/*.ts` modules take a `StageConfig` and contain
 * no stage conditionals of their own: `dev` is the cheap shape every personal stage gets, `production` the shape
 * the seeds plan (DESIGN.md §1).
 */

export type Architecture = "arm64" | "x86_64"
export type Purchase = "on-demand" | "spot"

/** One Auto Scaling group and the ECS capacity provider over it. */
export interface Fleet {
  readonly architecture: Architecture
  readonly purchase: Purchase
  /** Instance types the group may launch, most preferred first (mixed instances policy). */
  readonly instanceTypes: ReadonlyArray<string>
  readonly maxInstances: number
}

/** One runner service per architecture; its tasks go to that architecture's fleets. */
export interface RunnerService {
  readonly architecture: Architecture
  /** Tasks kept on on-demand capacity before any spot task is placed (0: spot only). */
  readonly onDemandBase: number
  /** Out of every `onDemandWeight + spotWeight` tasks above the base, how many go to spot. */
  readonly onDemandWeight: number
  readonly spotWeight: number
  readonly minTasks: number
  readonly maxTasks: number
}

export type CacheConfig =
  | {
      readonly mode: "serverless"
      readonly maxDataGb: number
      readonly maxEcpuPerSecond: number
    }
  | {
      readonly mode: "cluster"
      readonly nodeType: string
      /** Shards start at `minShards`; ElastiCache auto scaling moves between `minShards` and `maxShards`. */
      readonly minShards: number
      readonly maxShards: number
      readonly replicasPerShard: number
    }

export type NatConfig =
  /** One managed NAT gateway per AZ: no cross-AZ dependency, ~$33/month each plus data. */
  | { readonly mode: "managed" }
  /** One small EC2 instance in the first AZ routes every private subnet: a few dollars a month. */
  | { readonly mode: "instance"; readonly instanceType: string }

export interface StageConfig {
  readonly stage: string
  /** `required`: the stack refuses to deploy without a domain or certificate for HTTPS (no plain-HTTP gateway). */
  readonly https: "required" | "optional"
  /** Shards per group (TESSERA_SHARDS); the "shard held by no runner" alarm compares the held sum with it. */
  readonly shards: number
  readonly availabilityZones: number
  readonly nat: NatConfig
  readonly database: {
    /** Aurora Serverless v2 capacity in ACU; 0 lets the cluster pause. */
    readonly minAcu: number
    readonly maxAcu: number
    /** Seconds of idleness before an Aurora cluster with `minAcu: 0` pauses (300-86400); undefined: never. */
    readonly autoPauseSeconds: number | undefined
    /** Writer plus readers; more than one puts a reader in another AZ for failover. */
    readonly instances: number
    readonly deletionProtection: boolean
    readonly finalSnapshot: boolean
    /**
     * Days of automated backups, which is also the point-in-time recovery window: Aurora can restore to any
     * second from the earliest restorable time (about `backupRetentionDays` ago) to about five minutes ago.
     */
    readonly backupRetentionDays: number
  }
  readonly cache: CacheConfig
  readonly fleets: ReadonlyArray<Fleet>
  readonly services: ReadonlyArray<RunnerService>
  readonly task: {
    /** CPU units (1024 = one vCPU) and hard memory limit (MiB) of one runner task. */
    readonly cpu: number
    readonly memoryMiB: number
  }
  readonly autoscaling: {
    readonly cpuTargetPercent: number
    /**
     * Target of the queue-depth policy: the deepest SymbolShard mailbox per runner
     * (`effect_cluster_entity_mailbox_size_max`, published to CloudWatch by the collector), averaged over runners.
     */
    readonly queueDepthTarget: number
  }
  readonly logRetentionDays: number
}

/** Ports shared by the security groups, the task definition and the load balancer. */
export const ports = {
  gateway: 7400,
  clusterTransport: 34431,
  /** The standby runner identity that serves other zones' graph partitions (TESSERA_STANDBY_PORT). */
  clusterStandby: 34432,
  postgres: 5432,
  valkey: 6379
} as const

/** Serverless Valkey's latency-optimized read port: reads from a replica in the caller's AZ. */
export const readerPort = 6380

const graviton = ["m7g.large", "r7g.large", "m6g.large"]
// c6i.xlarge, not .large: a production task needs more memory than a c6i.large (4 GiB) has.
const intel = ["m6i.large", "m7i.large", "c6i.xlarge"]

/** Cheap: one NAT instance, Aurora that pauses, serverless Valkey, spot Graviton only. */
export const dev = (stage: string): StageConfig => ({
  stage,
  https: "optional",
  shards: 300,
  availabilityZones: 3,
  nat: { mode: "instance", instanceType: "t4g.nano" },
  database: {
    minAcu: 0,
    maxAcu: 4,
    autoPauseSeconds: 300,
    instances: 1,
    deletionProtection: false,
    finalSnapshot: false,
    backupRetentionDays: 1
  },
  cache: { mode: "serverless", maxDataGb: 1, maxEcpuPerSecond: 5000 },
  fleets: [{ architecture: "arm64", purchase: "spot", instanceTypes: graviton, maxInstances: 3 }],
  services: [{ architecture: "arm64", onDemandBase: 0, onDemandWeight: 0, spotWeight: 1, minTasks: 1, maxTasks: 3 }],
  task: { cpu: 1024, memoryMiB: 3072 },
  autoscaling: { cpuTargetPercent: 60, queueDepthTarget: 500 },
  logRetentionDays: 7
})

/** The seeds' shape: NAT per AZ, 0.5-128 ACU, clustered Valkey, on-demand base plus spot on both architectures. */
export const production: StageConfig = {
  stage: "production",
  https: "required",
  shards: 300,
  availabilityZones: 3,
  nat: { mode: "managed" },
  database: {
    minAcu: 0.5,
    maxAcu: 128,
    autoPauseSeconds: undefined,
    instances: 2,
    deletionProtection: true,
    finalSnapshot: true,
    backupRetentionDays: 14
  },
  cache: { mode: "cluster", nodeType: "cache.r7g.large", minShards: 3, maxShards: 6, replicasPerShard: 1 },
  fleets: [
    { architecture: "arm64", purchase: "on-demand", instanceTypes: graviton, maxInstances: 12 },
    { architecture: "arm64", purchase: "spot", instanceTypes: graviton, maxInstances: 24 },
    { architecture: "x86_64", purchase: "on-demand", instanceTypes: intel, maxInstances: 6 },
    { architecture: "x86_64", purchase: "spot", instanceTypes: intel, maxInstances: 12 }
  ],
  services: [
    { architecture: "arm64", onDemandBase: 3, onDemandWeight: 1, spotWeight: 2, minTasks: 3, maxTasks: 36 },
    { architecture: "x86_64", onDemandBase: 1, onDemandWeight: 1, spotWeight: 2, minTasks: 1, maxTasks: 12 }
  ],
  task: { cpu: 2048, memoryMiB: 6144 },
  autoscaling: { cpuTargetPercent: 60, queueDepthTarget: 500 },
  logRetentionDays: 30
}

/** `production` gets the production shape; every other stage name (dev, personal stages, PRs) the cheap one. */
export const stageConfig = (stage: string): StageConfig => (stage === "production" ? production : dev(stage))
