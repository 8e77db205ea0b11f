/**
 * Zone-local Valkey reads in the stack (Pulumi mocks): serverless gives every runner its latency-optimized read port
 * (ElastiCache serves each read from the caller's AZ), a provisioned cluster keeps a node of every shard in each AZ,
 * and every task gets `TESSERA_VALKEY_REPLICA_URL` from the cache secret, which the runtime config accepts.
 */
import { Effect, Option, Redacted } from "effect"
import { assert, beforeAll, describe, it } from "vitest"
import { fromEnv as runtimeConfig } from "../runtime/config.ts"
import { readerPort } from "./cache.ts"
import { evaluate, mockPassword, named, ofType, type Recorded, zones } from "./harness.ts"
import { dev, ports, production, type StageConfig } from "./stage.ts"

const stages: ReadonlyArray<[string, StageConfig]> = [
  ["dev", dev("dev")],
  ["production", production]
]

/** Secret outputs arrive in mocks wrapped in Pulumi's secret signature object. */
const reveal = (value: unknown): unknown =>
  typeof value === "object" && value !== null && "value" in value ? value.value : value

describe.each(stages)("stage %s", (_stage, config) => {
  let resources: ReadonlyArray<Recorded> = []
  beforeAll(async () => {
    resources = await evaluate(config)
  })
  const secret = () =>
    JSON.parse(reveal(named(resources, "CacheCredentialsValue").inputs.secretString) as string) as {
      readonly url: string
      readonly replicaUrl: string
    }
  const readerRules = () =>
    ofType(resources, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule").filter(
      (r) => r.inputs.fromPort === readerPort
    )

  it("stores a replica URL beside REDIS_URL: the reader port when serverless, the cluster endpoint otherwise", () => {
    const { url, replicaUrl } = secret()
    const primary = new URL(url)
    const replica = new URL(replicaUrl)
    assert.strictEqual(replica.protocol, "rediss:")
    assert.strictEqual(replica.username, "tessera")
    assert.strictEqual(replica.password, mockPassword)
    assert.strictEqual(replica.hostname, primary.hostname, "one endpoint for every zone")
    if (config.cache.mode === "serverless") {
      assert.strictEqual(replica.port, String(readerPort))
      // Runners may reach it: the reader port is open to them, and only to them.
      assert.lengthOf(readerRules(), 1)
      assert.strictEqual(readerRules()[0].inputs.securityGroupId, "CacheSecurityGroup-id")
      assert.strictEqual(readerRules()[0].inputs.referencedSecurityGroupId, "RunnerSecurityGroup-id")
    } else {
      assert.strictEqual(replica.port, String(ports.valkey))
      assert.lengthOf(readerRules(), 0, "no reader port on a provisioned cluster")
    }
  })

  it("gives every runner task the replica URL as TESSERA_VALKEY_REPLICA_URL, which its config accepts", async () => {
    const tasks = ofType(resources, "aws:ecs/taskDefinition:TaskDefinition")
    assert.isNotEmpty(tasks)
    for (const task of tasks) {
      const runner = JSON.parse(task.inputs.containerDefinitions)[0] as {
        secrets: Array<{ name: string; valueFrom: string }>
        environment: Array<{ name: string; value: string }>
      }
      const from = runner.secrets.find((s) => s.name === "TESSERA_VALKEY_REPLICA_URL")
      assert.isDefined(from, task.name)
      assert.match(from.valueFrom, /CacheCredentials:replicaUrl::$/)
      const env = Object.fromEntries(runner.environment.map((e) => [e.name, e.value]))
      const parsed = await Effect.runPromise(
        runtimeConfig({
          ...env,
          DATABASE_URL: "postgres://tessera:p@db.example:5432/tessera",
          REDIS_URL: secret().url,
          TESSERA_VALKEY_REPLICA_URL: secret().replicaUrl,
          TESSERA_TOKEN: mockPassword,
          TESSERA_CLUSTER_SECRET: mockPassword,
          TESSERA_RUNNER_HOST: "10.0.40.7",
          TESSERA_ZONE: zones[1]
        })
      )
      assert.strictEqual(Option.map(parsed.redisReplicaUrl, Redacted.value).pipe(Option.getOrNull), secret().replicaUrl)
      assert.isTrue(parsed.redisCluster)
    }
  })

  it("keeps a node of every shard in each zone of the private subnets (provisioned cluster)", () => {
    if (config.cache.mode === "serverless") {
      assert.lengthOf(ofType(resources, "aws:elasticache/replicationGroup:ReplicationGroup"), 0)
      return
    }
    const group = named(resources, "Cache").inputs
    const subnetZones = ofType(resources, "aws:ec2/subnet:Subnet")
      .filter((s) => s.name.startsWith("Private"))
      .map((s) => s.inputs.availabilityZone as string)
    assert.lengthOf(subnetZones, config.availabilityZones)
    const shards = group.nodeGroupConfigurations as Array<{
      nodeGroupId: string
      primaryAvailabilityZone: string
      replicaAvailabilityZones: Array<string>
      replicaCount: number
    }>
    assert.lengthOf(shards, config.cache.minShards)
    assert.strictEqual(group.replicasPerNodeGroup, subnetZones.length - 1)
    for (const shard of shards) {
      assert.sameMembers(
        [shard.primaryAvailabilityZone, ...shard.replicaAvailabilityZones],
        subnetZones,
        shard.nodeGroupId
      )
      assert.strictEqual(shard.replicaCount, group.replicasPerNodeGroup)
    }
    // Primaries spread over the zones, so losing one zone fails over at most a third of the shards.
    assert.sameMembers(
      shards.map((s) => s.primaryAvailabilityZone),
      subnetZones.slice(0, shards.length)
    )
  })
})
