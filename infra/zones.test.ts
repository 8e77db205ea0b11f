/**
 * Zone affinity of the gateways in the stack (Pulumi mocks): an internal network load balancer with cross-zone load
 * balancing off in front of every runner service, and each task announcing its own zone's name on it.
 */
import { Effect, Option } from "effect"
import { assert, beforeAll, describe, it } from "vitest"
import { gatewayUrlOf, fromEnv as runtimeConfig } from "../runtime/config.ts"
import { evaluate, mockPassword, named, ofType, type Recorded } from "./harness.ts"
import { dev, ports, production, type StageConfig } from "./stage.ts"

const stages: ReadonlyArray<[string, StageConfig]> = [
  ["dev", dev("dev")],
  ["production", production]
]

const containers = (task: Recorded) => JSON.parse(task.inputs.containerDefinitions)
const environmentOf = (container: { environment: Array<{ name: string; value: string }> }): Record<string, string> =>
  Object.fromEntries(container.environment.map((e) => [e.name, e.value]))

describe.each(stages)("stage %s", (_stage, config) => {
  let resources: ReadonlyArray<Recorded> = []
  beforeAll(async () => {
    resources = await evaluate(config)
  })

  it("puts the gateways behind an internal load balancer that keeps each zone's traffic in the zone", () => {
    const zonal = named(resources, "ZonalGateway").inputs
    assert.strictEqual(zonal.loadBalancerType, "network")
    assert.isTrue(zonal.internal)
    assert.isFalse(zonal.enableCrossZoneLoadBalancing, "cross-zone load balancing off")
    assert.deepStrictEqual(
      zonal.subnets,
      ofType(resources, "aws:ec2/subnet:Subnet")
        .filter((s) => s.name.startsWith("Private"))
        .map((s) => s.id)
    )
    const targets = named(resources, "GatewayZonalTargets").inputs
    assert.strictEqual(targets.protocol, "TCP")
    assert.strictEqual(targets.port, ports.gateway)
    assert.strictEqual(targets.healthCheck.path, "/ready")
    const listener = named(resources, "ZonalGatewayListener").inputs
    assert.strictEqual(
      listener.loadBalancerArn,
      "arn:aws:mock:us-east-1:123456789012:aws:lb/loadBalancer:LoadBalancer/ZonalGateway"
    )
    assert.match(listener.defaultActions[0].targetGroupArn, /GatewayZonalTargets$/)
    // The public load balancer keeps its own target group; every runner service registers in both.
    for (const service of ofType(resources, "aws:ecs/service:Service")) {
      const groups = service.inputs.loadBalancers.map((lb: { targetGroupArn: string }) =>
        lb.targetGroupArn.split("/").at(-1)
      )
      assert.sameMembers(groups, ["GatewayTargets", "GatewayZonalTargets"], service.name)
    }
  })

  it("has each task announce its own zone's name on that load balancer", async () => {
    const tasks = ofType(resources, "aws:ecs/taskDefinition:TaskDefinition")
    assert.isNotEmpty(tasks)
    for (const task of tasks) {
      const env = environmentOf(containers(task)[0])
      assert.strictEqual(env.TESSERA_GATEWAY_URL, "http://{zone}.ZonalGateway.mock.elb.amazonaws.com")
      const parsed = await Effect.runPromise(
        runtimeConfig({
          ...env,
          DATABASE_URL: "postgres://tessera:p@db.example:5432/tessera",
          REDIS_URL: "rediss://tessera:p@cache.example:6379",
          TESSERA_TOKEN: mockPassword,
          TESSERA_CLUSTER_SECRET: mockPassword,
          TESSERA_RUNNER_HOST: "10.0.40.7",
          // Filled by docker/ecs-metadata.ts at task start.
          TESSERA_ZONE: "us-east-1b"
        })
      )
      assert.strictEqual(gatewayUrlOf(parsed), "http://us-east-1b.ZonalGateway.mock.elb.amazonaws.com")
      // Without a zone the task announces nothing (a template it cannot fill).
      assert.isUndefined(gatewayUrlOf({ ...parsed, zone: Option.none() }))
    }
  })
})
