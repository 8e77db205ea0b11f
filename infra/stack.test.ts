/**
 * The stack per stage, evaluated offline under Pulumi mocks (see `harness.ts`), checked on the inputs that matter.
 */
import { assert, beforeAll, describe, it } from "vitest"
import { amiParameter } from "./capacity.ts"
import { evaluate, evaluateProgram, mockPassword, named, ofType, type Recorded, zones } from "./harness.ts"
import { privateCidr, publicCidr, vpcCidr } from "./network.ts"
import { dev, ports, production, type StageConfig, stageConfig } from "./stage.ts"

const T = {
  subnet: "aws:ec2/subnet:Subnet",
  routeTable: "aws:ec2/routeTable:RouteTable",
  natGateway: "aws:ec2/natGateway:NatGateway",
  instance: "aws:ec2/instance:Instance",
  endpoint: "aws:ec2/vpcEndpoint:VpcEndpoint",
  group: "aws:ec2/securityGroup:SecurityGroup",
  legacyRule: "aws:ec2/securityGroupRule:SecurityGroupRule",
  ingress: "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
  egress: "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
  cluster: "aws:rds/cluster:Cluster",
  clusterInstance: "aws:rds/clusterInstance:ClusterInstance",
  serverlessCache: "aws:elasticache/serverlessCache:ServerlessCache",
  replicationGroup: "aws:elasticache/replicationGroup:ReplicationGroup",
  scalingTarget: "aws:appautoscaling/target:Target",
  scalingPolicy: "aws:appautoscaling/policy:Policy",
  asg: "aws:autoscaling/group:Group",
  launchTemplate: "aws:ec2/launchTemplate:LaunchTemplate",
  capacityProvider: "aws:ecs/capacityProvider:CapacityProvider",
  taskDefinition: "aws:ecs/taskDefinition:TaskDefinition",
  service: "aws:ecs/service:Service",
  targetGroup: "aws:lb/targetGroup:TargetGroup",
  secretVersion: "aws:secretsmanager/secretVersion:SecretVersion",
  rolePolicy: "aws:iam/rolePolicy:RolePolicy"
} as const

/** Secret outputs arrive in mocks wrapped in Pulumi's secret signature object. */
const reveal = (value: unknown): unknown =>
  typeof value === "object" && value !== null && "4dabf18193072939515e22adb298388d" in value && "value" in value
    ? value.value
    : value

const groupName = (resources: ReadonlyArray<Recorded>, id: string) => {
  const group = ofType(resources, T.group).find((g) => g.id === id)
  assert.isDefined(group, `security group ${id}`)
  return group.name.replace(/SecurityGroup$/, "")
}

interface Rule {
  readonly group: string
  readonly port: number
  readonly peer: string
}
/** Every ingress (or egress) rule as `group:port <- peer`, peers being group names or CIDRs. */
const rules = (resources: ReadonlyArray<Recorded>, type: string): ReadonlyArray<Rule> =>
  ofType(resources, type).map(({ inputs }) => {
    assert.strictEqual(inputs.ipProtocol, "tcp", "only TCP rules")
    assert.strictEqual(inputs.fromPort, inputs.toPort, "single-port rules only")
    return {
      group: groupName(resources, inputs.securityGroupId),
      port: inputs.fromPort,
      peer:
        inputs.referencedSecurityGroupId !== undefined
          ? groupName(resources, inputs.referencedSecurityGroupId)
          : (inputs.cidrIpv4 ?? inputs.cidrIpv6 ?? inputs.prefixListId)
    }
  })
const show = (rs: ReadonlyArray<Rule>) => rs.map((r) => `${r.group}:${r.port}<-${r.peer}`).sort()

const containers = (task: Recorded) => JSON.parse(task.inputs.containerDefinitions)

const stages: ReadonlyArray<[string, StageConfig]> = [
  ["dev", dev("dev")],
  ["production", production]
]

describe.each(stages)("stage %s", (_stage, config) => {
  let resources: ReadonlyArray<Recorded> = []
  beforeAll(async () => {
    resources = await evaluate(config)
  })

  it("spreads public and private subnets over three availability zones", () => {
    const subnets = ofType(resources, T.subnet)
    const publics = subnets.filter((s) => s.name.startsWith("Public"))
    const privates = subnets.filter((s) => s.name.startsWith("Private"))
    assert.strictEqual(config.availabilityZones, 3)
    assert.lengthOf(publics, 3)
    assert.lengthOf(privates, 3)
    assert.sameMembers(
      publics.map((s) => s.inputs.availabilityZone),
      zones.slice(0, 3)
    )
    assert.sameMembers(
      privates.map((s) => s.inputs.availabilityZone),
      zones.slice(0, 3)
    )
    assert.isTrue(publics.every((s) => s.inputs.mapPublicIpOnLaunch === true))
    assert.isTrue(privates.every((s) => s.inputs.mapPublicIpOnLaunch === false))
    assert.sameMembers(
      subnets.map((s) => s.inputs.cidrBlock),
      [0, 1, 2].flatMap((az) => [publicCidr(az), privateCidr(az)])
    )
    assert.strictEqual(named(resources, "Vpc").inputs.cidrBlock, vpcCidr)
  })

  it("routes private subnets through the stage's NAT and S3 through a gateway endpoint", () => {
    const privateTables = ofType(resources, T.routeTable).filter((t) => t.name.startsWith("Private"))
    assert.lengthOf(privateTables, 3)
    const targets = privateTables.map((t) => {
      const [route] = t.inputs.routes
      assert.strictEqual(route.cidrBlock, "0.0.0.0/0")
      return route.natGatewayId ?? route.networkInterfaceId
    })
    if (config.nat.mode === "managed") {
      const gateways = ofType(resources, T.natGateway)
      assert.lengthOf(gateways, 3)
      assert.lengthOf(ofType(resources, T.instance), 0)
      assert.sameMembers(
        gateways.map((g) => g.inputs.subnetId),
        ["PublicSubnet1-id", "PublicSubnet2-id", "PublicSubnet3-id"]
      )
      assert.sameMembers(
        targets,
        gateways.map((g) => g.id)
      )
    } else {
      assert.lengthOf(ofType(resources, T.natGateway), 0)
      const [nat] = ofType(resources, T.instance)
      assert.lengthOf(ofType(resources, T.instance), 1)
      assert.strictEqual(nat.inputs.sourceDestCheck, false)
      assert.strictEqual(nat.inputs.subnetId, "PublicSubnet1-id")
      assert.deepStrictEqual(targets, ["NatInstance-eni", "NatInstance-eni", "NatInstance-eni"])
    }
    const [s3] = ofType(resources, T.endpoint)
    assert.strictEqual(s3.inputs.vpcEndpointType, "Gateway")
    assert.strictEqual(s3.inputs.serviceName, "com.amazonaws.us-east-1.s3")
    assert.sameMembers(s3.inputs.routeTableIds, ["PublicRouteTable-id", ...privateTables.map((t) => t.id)])
  })

  it("opens nothing to the internet but the load balancer's 80 and 443", () => {
    const ingress = rules(resources, T.ingress)
    const open = ingress.filter((r) => r.peer === "0.0.0.0/0" || r.peer === "::/0")
    assert.sameMembers(show(open), ["LoadBalancer:80<-0.0.0.0/0", "LoadBalancer:443<-0.0.0.0/0"])
    // No inline rules or legacy rule resources that this check would miss.
    assert.lengthOf(ofType(resources, T.legacyRule), 0)
    for (const group of ofType(resources, T.group)) {
      assert.isUndefined(group.inputs.ingress, `${group.name} has inline ingress`)
      assert.isUndefined(group.inputs.egress, `${group.name} has inline egress`)
    }
  })

  it("lets only runners reach the database and cache, the gateway only through the load balancer", () => {
    const ingress = show(rules(resources, T.ingress).filter((r) => r.group !== "Nat"))
    assert.sameMembers(ingress, [
      "LoadBalancer:80<-0.0.0.0/0",
      "LoadBalancer:443<-0.0.0.0/0",
      `Runner:${ports.gateway}<-LoadBalancer`,
      `Runner:${ports.clusterTransport}<-Runner`,
      `Runner:${ports.clusterStandby}<-Runner`,
      `Database:${ports.postgres}<-Runner`,
      `Cache:${ports.valkey}<-Runner`
    ])
    const egress = show(rules(resources, T.egress).filter((r) => r.group !== "Nat"))
    assert.sameMembers(egress, [
      `LoadBalancer:${ports.gateway}<-Runner`,
      `Runner:${ports.clusterTransport}<-Runner`,
      `Runner:${ports.clusterStandby}<-Runner`,
      `Runner:${ports.postgres}<-Database`,
      `Runner:${ports.valkey}<-Cache`,
      "Runner:443<-0.0.0.0/0",
      "Host:443<-0.0.0.0/0"
    ])
    if (config.nat.mode === "instance") {
      assert.sameMembers(show(rules(resources, T.ingress).filter((r) => r.group === "Nat")), [`Nat:443<-${vpcCidr}`])
    }
  })

  it("runs Aurora PostgreSQL Serverless v2 with the stage's capacity range and protection", () => {
    const [cluster] = ofType(resources, T.cluster)
    const db = config.database
    assert.strictEqual(cluster.inputs.engine, "aurora-postgresql")
    assert.strictEqual(cluster.inputs.engineMode, "provisioned")
    assert.isTrue(cluster.inputs.storageEncrypted)
    const scaling = cluster.inputs.serverlessv2ScalingConfiguration
    assert.strictEqual(scaling.minCapacity, db.minAcu)
    assert.strictEqual(scaling.maxCapacity, db.maxAcu)
    assert.strictEqual(scaling.secondsUntilAutoPause, db.autoPauseSeconds)
    assert.deepStrictEqual(cluster.inputs.vpcSecurityGroupIds, ["DatabaseSecurityGroup-id"])
    const instances = ofType(resources, T.clusterInstance)
    assert.lengthOf(instances, db.instances)
    assert.isTrue(instances.every((i) => i.inputs.instanceClass === "db.serverless" && !i.inputs.publiclyAccessible))
    if (config.stage === "production") {
      assert.deepStrictEqual([scaling.minCapacity, scaling.maxCapacity], [0.5, 128])
      assert.isUndefined(scaling.secondsUntilAutoPause)
      assert.isTrue(cluster.inputs.deletionProtection)
      assert.isFalse(cluster.inputs.skipFinalSnapshot)
      assert.isString(cluster.inputs.finalSnapshotIdentifier)
      assert.isAtLeast(instances.length, 2)
    } else {
      assert.strictEqual(scaling.minCapacity, 0, "dev scales to zero")
      assert.isAtLeast(scaling.secondsUntilAutoPause, 300)
      assert.isFalse(cluster.inputs.deletionProtection)
      assert.isTrue(cluster.inputs.skipFinalSnapshot)
    }
  })

  it("runs Valkey with TLS and a password: serverless in dev, a multi-AZ cluster of 3-6 shards in production", () => {
    const serverless = ofType(resources, T.serverlessCache)
    const groups = ofType(resources, T.replicationGroup)
    if (config.cache.mode === "serverless") {
      assert.lengthOf(serverless, 1)
      assert.lengthOf(groups, 0)
      assert.strictEqual(serverless[0].inputs.engine, "valkey")
      assert.strictEqual(serverless[0].inputs.userGroupId, `tessera-${config.stage}`)
      assert.deepStrictEqual(serverless[0].inputs.securityGroupIds, ["CacheSecurityGroup-id"])
    } else {
      assert.lengthOf(serverless, 0)
      assert.lengthOf(groups, 1)
      const group = groups[0].inputs
      assert.strictEqual(group.engine, "valkey")
      assert.strictEqual(group.clusterMode, "enabled")
      assert.strictEqual(group.numNodeGroups, 3)
      assert.strictEqual(group.replicasPerNodeGroup, 1)
      assert.isTrue(group.multiAzEnabled && group.automaticFailoverEnabled)
      assert.isTrue(group.transitEncryptionEnabled)
      assert.strictEqual(group.transitEncryptionMode, "required")
      assert.isTrue(group.atRestEncryptionEnabled)
      assert.deepStrictEqual(group.userGroupIds, [`tessera-${config.stage}`])
      const shards = ofType(resources, T.scalingTarget).find((t) => t.inputs.serviceNamespace === "elasticache")
      assert.isDefined(shards)
      assert.deepStrictEqual([shards.inputs.minCapacity, shards.inputs.maxCapacity], [3, 6])
    }
    const app = named(resources, "CacheUser").inputs
    assert.strictEqual(app.authenticationMode.type, "password")
    assert.include(named(resources, "CacheDefaultUser").inputs.accessString, "off")
  })

  it("has one capacity provider per architecture and purchase option, managed scaling and protection", () => {
    const providers = ofType(resources, T.capacityProvider)
    const expected =
      config.stage === "production"
        ? ["arm64/on-demand", "arm64/spot", "x86_64/on-demand", "x86_64/spot"]
        : ["arm64/spot"]
    assert.sameMembers(
      providers.map((p) => `${p.inputs.tags["tessera:architecture"]}/${p.inputs.tags["tessera:purchase"]}`),
      expected
    )
    for (const provider of providers) {
      const asgProvider = provider.inputs.autoScalingGroupProvider
      assert.strictEqual(asgProvider.managedTerminationProtection, "ENABLED")
      assert.strictEqual(asgProvider.managedScaling.status, "ENABLED")
      const asg = ofType(resources, T.asg).find((g) => asgProvider.autoScalingGroupArn.endsWith(`/${g.name}`))
      assert.isDefined(asg, `group behind ${provider.name}`)
      assert.isTrue(asg.inputs.protectFromScaleIn)
      const architecture = provider.inputs.tags["tessera:architecture"]
      const purchase = provider.inputs.tags["tessera:purchase"]
      const policy = asg.inputs.mixedInstancesPolicy
      assert.strictEqual(
        policy.instancesDistribution.onDemandPercentageAboveBaseCapacity,
        purchase === "spot" ? 0 : 100
      )
      const types: Array<string> = policy.launchTemplate.overrides.map((o: { instanceType: string }) => o.instanceType)
      // Graviton families carry a "g" after the generation digit (m7g, r7g); Intel ones do not (m6i, c6i).
      assert.isTrue(
        types.every((t) => /^[a-z]+\d+g[a-z]*\./.test(t) === (architecture === "arm64")),
        `${architecture} instance types: ${types}`
      )
      const template = ofType(resources, T.launchTemplate).find(
        (lt) => lt.id === policy.launchTemplate.launchTemplateSpecification.launchTemplateId
      )
      assert.isDefined(template)
      assert.strictEqual(
        template.inputs.imageId,
        `resolve:ssm:${amiParameter[architecture as keyof typeof amiParameter]}`
      )
    }
  })

  it("runs runner tasks on EC2 only, one service per architecture, spread by capacity provider strategy", () => {
    const tasks = ofType(resources, T.taskDefinition)
    const services = ofType(resources, T.service)
    assert.lengthOf(tasks, config.services.length)
    assert.lengthOf(services, config.services.length)
    for (const task of tasks) {
      assert.deepStrictEqual(task.inputs.requiresCompatibilities, ["EC2"])
      assert.strictEqual(task.inputs.networkMode, "awsvpc")
    }
    for (const service of services) {
      assert.isUndefined(service.inputs.launchType, "placement comes from capacity providers")
      const strategy: Array<{ capacityProvider: string; base?: number; weight: number }> =
        service.inputs.capacityProviderStrategies
      const names = strategy.map((s) => s.capacityProvider)
      const shape = config.services.find((s) => service.name.toLowerCase().includes(s.architecture.slice(0, 3)))
      assert.isDefined(shape)
      if (shape.onDemandBase > 0) {
        const onDemand = strategy.find((s) => s.capacityProvider.includes("OnDemand"))
        assert.strictEqual(onDemand?.base, shape.onDemandBase)
        assert.isTrue(names.some((n) => n.includes("Spot")))
      } else {
        assert.isTrue(
          names.every((n) => n.includes("Spot")),
          "spot only"
        )
      }
      assert.deepStrictEqual(service.inputs.networkConfiguration.securityGroups, ["RunnerSecurityGroup-id"])
      assert.strictEqual(service.inputs.loadBalancers[0].containerPort, ports.gateway)
    }
    assert.strictEqual(ofType(resources, T.targetGroup)[0].inputs.healthCheck.path, "/ready")
  })

  it("hands credentials to tasks as secrets, never as plain environment", () => {
    for (const task of ofType(resources, T.taskDefinition)) {
      const [runner] = containers(task)
      const environment = Object.fromEntries(
        runner.environment.map((e: { name: string; value: string }) => [e.name, e.value])
      )
      const secrets = Object.fromEntries(
        runner.secrets.map((s: { name: string; valueFrom: string }) => [s.name, s.valueFrom])
      )
      assert.sameMembers(Object.keys(secrets), ["DATABASE_URL", "REDIS_URL", "TESSERA_TOKEN"])
      for (const name of Object.keys(secrets)) assert.notProperty(environment, name)
      assert.match(secrets.DATABASE_URL, /secretsmanager.*DatabaseCredentials:url::$/)
      assert.match(secrets.REDIS_URL, /secretsmanager.*CacheCredentials:url::$/)
      assert.notInclude(task.inputs.containerDefinitions, mockPassword)
      assert.notMatch(task.inputs.containerDefinitions, /postgres(ql)?:\/\/|rediss?:\/\//)
      assert.strictEqual(environment.TESSERA_PORT, String(ports.gateway))
      assert.strictEqual(environment.TESSERA_RUNNER_PORT, String(ports.clusterTransport))
      assert.strictEqual(environment.TESSERA_GRAPH_COLD, "s3://snapshots-mock/graph")
      assert.strictEqual(environment.REDIS_CLUSTER, "true")
      // Zone placement: the private subnets' AZs, and the standby identity's port (mapped and open runner-to-runner).
      assert.strictEqual(environment.TESSERA_GRAPH_ZONES, "us-east-1a,us-east-1b,us-east-1c")
      assert.strictEqual(environment.TESSERA_STANDBY_PORT, String(ports.clusterStandby))
      assert.include(
        runner.portMappings.map((m: { containerPort: number }) => m.containerPort),
        ports.clusterStandby
      )
    }
    // The secret values themselves carry the URLs the runtime reads, marked secret in state.
    const dbSecret = named(resources, "DatabaseCredentialsValue").inputs.secretString
    assert.notStrictEqual(reveal(dbSecret), dbSecret, "stored as a Pulumi secret")
    assert.match(
      JSON.parse(reveal(dbSecret) as string).url,
      /^postgres:\/\/tessera:.+@.+:5432\/tessera\?sslmode=verify-full$/
    )
    const cacheSecret = named(resources, "CacheCredentialsValue").inputs.secretString
    assert.match(JSON.parse(reveal(cacheSecret) as string).url, /^rediss:\/\/tessera:.+@.+:6379$/)
    // The execution role may read exactly the three secrets.
    const policy = JSON.parse(named(resources, "RunnerExecutionSecrets").inputs.policy)
    assert.lengthOf(policy.Statement[0].Resource, 3)
  })

  it("scales each runner service on CPU and on queue depth", () => {
    const policies = ofType(resources, T.scalingPolicy).filter((p) => p.inputs.serviceNamespace === "ecs")
    assert.lengthOf(policies, config.services.length * 2)
    const specs = policies.map((p) => p.inputs.targetTrackingScalingPolicyConfiguration)
    assert.lengthOf(
      specs.filter((s) => s.predefinedMetricSpecification?.predefinedMetricType === "ECSServiceAverageCPUUtilization"),
      config.services.length
    )
    assert.lengthOf(
      specs.filter(
        (s) =>
          s.customizedMetricSpecification?.metricName === "QueueDepth" &&
          s.customizedMetricSpecification?.namespace === "Tessera"
      ),
      config.services.length
    )
  })
})

describe("stage selection", () => {
  it("gives production its own shape and every other stage the cheap one", () => {
    assert.strictEqual(stageConfig("production"), production)
    for (const stage of ["dev", "alice", "pr-42"]) {
      const config = stageConfig(stage)
      assert.strictEqual(config.stage, stage)
      assert.deepStrictEqual(config.nat, { mode: "instance", instanceType: "t4g.nano" })
      assert.isTrue(config.fleets.every((f) => f.purchase === "spot"))
    }
  })
})

describe("sst.config.ts", () => {
  // The two SST globals it uses; `$config` is the identity in SST too (platform/src/config.ts).
  const globals = globalThis as { $config?: unknown; $app?: unknown }
  const load = async (stage: string) => {
    globals.$config = (input: unknown) => input
    globals.$app = { name: "tessera", stage, removal: "remove", protect: false, providers: {} }
    const { default: config } = await import("../sst.config.ts")
    return config
  }

  it("protects and retains production only, and pins the providers", async () => {
    const config = await load("production")
    const production = await config.app({ stage: "production" })
    assert.isTrue(production.protect)
    assert.strictEqual(production.removal, "retain")
    assert.deepStrictEqual(production.providers, { aws: { version: "7.48.0" }, random: "4.16.6" })
    const dev = await config.app({ stage: "dev" })
    assert.isFalse(dev.protect)
    assert.strictEqual(dev.removal, "remove")
  })

  it("deploys the production shape for $app.stage production", async () => {
    const config = await load("production")
    const resources = await evaluateProgram("production", () => config.run())
    assert.lengthOf(ofType(resources, T.natGateway), 3)
    assert.lengthOf(ofType(resources, T.replicationGroup), 1)
    assert.lengthOf(ofType(resources, T.capacityProvider), 4)
  })
})
