/**
 * The stack per stage, evaluated offline under Pulumi mocks (see `harness.ts`), checked on the inputs that matter.
 */
import { readdirSync, readFileSync, statSync } from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Duration, Effect, Option } from "effect"
import { assert, beforeAll, describe, it } from "vitest"
import { fromEnv as runtimeConfig } from "../runtime/config.ts"
import { marketDataAccess, readerPort, runnerAccess, runnerKeyPatterns } from "./cache.ts"
import { amiParameter } from "./capacity.ts"
import { evaluate, evaluateProgram, mockPassword, named, ofType, type Recorded, zones } from "./harness.ts"
import { privateCidr, publicCidr, vpcCidr } from "./network.ts"
import { alarms, collectorImage, queueDepthMetric, ruleFile, scrapeJob } from "./observability.ts"
import { drainTimeoutSeconds, migrateName, stopTimeoutSeconds } from "./runners.ts"
import { dev, ports, production, type StageConfig, stageConfig } from "./stage.ts"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

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
  rolePolicy: "aws:iam/rolePolicy:RolePolicy",
  listener: "aws:lb/listener:Listener",
  certificate: "aws:acm/certificate:Certificate",
  certificateValidation: "aws:acm/certificateValidation:CertificateValidation",
  record: "aws:route53/record:Record",
  cacheUser: "aws:elasticache/user:User",
  userGroup: "aws:elasticache/userGroup:UserGroup",
  image: "docker-build:index:Image",
  workspace: "aws:amp/workspace:Workspace",
  ruleGroups: "aws:amp/ruleGroupNamespace:RuleGroupNamespace",
  alertManager: "aws:amp/alertManagerDefinition:AlertManagerDefinition",
  topicPolicy: "aws:sns/topicPolicy:TopicPolicy"
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
const environmentOf = (container: { environment: Array<{ name: string; value: string }> }): Record<string, string> =>
  Object.fromEntries(container.environment.map((e) => [e.name, e.value]))
/** The sidecar's collector configuration, parsed from its AOT_CONFIG_CONTENT. */
const collectorOf = (task: Recorded) => {
  const sidecar = containers(task).find((c: { name: string }) => c.name === "collector")
  assert.isDefined(sidecar, `${task.name} has a collector sidecar`)
  return JSON.parse(environmentOf(sidecar).AOT_CONFIG_CONTENT)
}

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
      `Cache:${ports.valkey}<-Runner`,
      // The serverless cache's zone-local read port (infra/cache.ts).
      ...(config.cache.mode === "serverless" ? [`Cache:${readerPort}<-Runner`] : [])
    ])
    const egress = show(rules(resources, T.egress).filter((r) => r.group !== "Nat"))
    assert.sameMembers(egress, [
      `LoadBalancer:${ports.gateway}<-Runner`,
      `Runner:${ports.clusterTransport}<-Runner`,
      `Runner:${ports.clusterStandby}<-Runner`,
      `Runner:${ports.postgres}<-Database`,
      `Runner:${ports.valkey}<-Cache`,
      ...(config.cache.mode === "serverless" ? [`Runner:${readerPort}<-Cache`] : []),
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
      // A node of every shard in each of the 3 zones (infra/cache.test.ts).
      assert.strictEqual(group.replicasPerNodeGroup, 2)
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
      assert.sameMembers(Object.keys(secrets), [
        "DATABASE_URL",
        "REDIS_URL",
        "TESSERA_VALKEY_REPLICA_URL",
        "TESSERA_TOKEN",
        "TESSERA_CLUSTER_SECRET"
      ])
      assert.match(secrets.TESSERA_CLUSTER_SECRET, /secretsmanager.*ClusterSecretSecret$/)
      for (const name of Object.keys(secrets)) assert.notProperty(environment, name)
      // The application role's URL: the owner's is the migrate container's alone.
      assert.match(secrets.DATABASE_URL, /secretsmanager.*DatabaseAppCredentials:url::$/)
      assert.match(secrets.REDIS_URL, /secretsmanager.*CacheCredentials:url::$/)
      assert.notInclude(task.inputs.containerDefinitions, mockPassword)
      assert.notMatch(task.inputs.containerDefinitions, /postgres(ql)?:\/\/|rediss?:\/\//)
      assert.strictEqual(environment.TESSERA_PORT, String(ports.gateway))
      assert.strictEqual(environment.TESSERA_RUNNER_PORT, String(ports.clusterTransport))
      assert.strictEqual(environment.TESSERA_GRAPH_COLD, "s3://snapshots-mock/graph")
      assert.strictEqual(environment.TESSERA_ARCHIVE, "s3://snapshots-mock/archive")
      assert.strictEqual(environment.REDIS_CLUSTER, "true")
      // Zone placement: the private subnets' AZs, and the standby identity's port (mapped and open runner-to-runner).
      assert.strictEqual(environment.TESSERA_GRAPH_ZONES, "us-east-1a,us-east-1b,us-east-1c")
      // Gatherer replicas spread over the same AZs: replica r in zone r mod 3, so never two of a connection on a host.
      assert.strictEqual(environment.TESSERA_GATHER_ZONES, "us-east-1a,us-east-1b,us-east-1c")
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
    // The cluster secret is generated and stored as a Pulumi secret.
    const clusterSecret = named(resources, "ClusterSecretValue").inputs.secretString
    assert.notStrictEqual(reveal(clusterSecret), clusterSecret, "stored as a Pulumi secret")
    assert.strictEqual(reveal(clusterSecret), mockPassword)
    // The execution role may read exactly these secrets (the owner's database URL for the migrate container).
    const policy = JSON.parse(named(resources, "RunnerExecutionSecrets").inputs.policy)
    assert.sameMembers(
      policy.Statement[0].Resource.map((arn: string) => arn.split("/").at(-1)),
      ["DatabaseCredentials", "DatabaseAppCredentials", "CacheCredentials", "GatewayTokenSecret", "ClusterSecretSecret"]
    )
  })

  it("scales each runner service on CPU and on queue depth", () => {
    const policies = ofType(resources, T.scalingPolicy).filter((p) => p.inputs.serviceNamespace === "ecs")
    assert.lengthOf(policies, config.services.length * 2)
    const specs = policies.map((p) => p.inputs.targetTrackingScalingPolicyConfiguration)
    assert.lengthOf(
      specs.filter((s) => s.predefinedMetricSpecification?.predefinedMetricType === "ECSServiceAverageCPUUtilization"),
      config.services.length
    )
    const queue = specs.filter((s) => s.customizedMetricSpecification !== undefined)
    assert.lengthOf(queue, config.services.length)
    for (const spec of queue) {
      const metric = spec.customizedMetricSpecification
      assert.strictEqual(metric.namespace, "Tessera")
      assert.strictEqual(metric.metricName, "effect_cluster_entity_mailbox_size_max")
      assert.sameDeepMembers(metric.dimensions, [
        { name: "stage", value: config.stage },
        { name: "type", value: "SymbolShard" }
      ])
      assert.isBelow(spec.targetValue, 1000, "scales out before the queue-depth alarm")
    }
    // Something really emits it: effect/cluster exports the gauge at /metrics, and every task's sidecar publishes
    // exactly that series, with those dimensions, to that namespace (embedded metric format).
    const clusterMetrics = readFileSync(path.join(root, "node_modules/effect/dist/cluster/ClusterMetrics.js"), "utf8")
    assert.include(clusterMetrics, `"${queueDepthMetric.name}"`)
    for (const task of ofType(resources, T.taskDefinition)) {
      const collector = collectorOf(task)
      const emf = collector.exporters.awsemf
      assert.strictEqual(emf.namespace, "Tessera")
      assert.deepStrictEqual(emf.metric_declarations, [
        { dimensions: [["stage", "type"]], metric_name_selectors: ["^effect_cluster_entity_mailbox_size_max"] }
      ])
      assert.deepStrictEqual(collector.processors["filter/queuedepth"].metrics.include.metric_names, [
        "effect_cluster_entity_mailbox_size_max"
      ])
      const scrape = collector.receivers.prometheus.config.scrape_configs[0]
      assert.deepStrictEqual(scrape.metric_relabel_configs, [
        { target_label: "stage", replacement: config.stage, action: "replace" }
      ])
      assert.deepStrictEqual(collector.service.pipelines["metrics/cloudwatch"].exporters, ["awsemf"])
    }
  })

  it("migrates as the owner in an init container, then runs the runner as the app role, drained within stopTimeout", async () => {
    for (const task of ofType(resources, T.taskDefinition)) {
      const defs = containers(task)
      const [runner] = defs
      const migrate = defs.find((c: { name: string }) => c.name === migrateName)
      assert.isDefined(migrate, `${task.name} has a migrate container`)
      assert.deepStrictEqual(migrate.command, ["node", "app/migrate.ts"])
      assert.isFalse(migrate.essential)
      const secrets = Object.fromEntries(
        migrate.secrets.map((e: { name: string; valueFrom: string }) => [e.name, e.valueFrom])
      )
      assert.match(secrets.DATABASE_URL, /secretsmanager.*DatabaseCredentials:url::$/)
      assert.match(secrets.TESSERA_APP_DB_PASSWORD, /secretsmanager.*DatabaseAppCredentials:password::$/)
      assert.deepStrictEqual(
        runner.dependsOn.find((d: { containerName: string }) => d.containerName === migrateName),
        { containerName: migrateName, condition: "SUCCESS" }
      )
      const parsed = await Effect.runPromise(
        runtimeConfig({
          ...environmentOf(runner),
          DATABASE_URL: "postgres://tessera_app:p@db.example:5432/tessera?sslmode=verify-full",
          REDIS_URL: "rediss://tessera:p@cache.example:6379",
          TESSERA_TOKEN: mockPassword,
          TESSERA_CLUSTER_SECRET: mockPassword,
          TESSERA_RUNNER_HOST: "10.0.40.7",
          TESSERA_ZONE: "us-east-1a"
        })
      )
      assert.isFalse(parsed.migrate, "the runner runs no DDL")
      const migrateConfig = await Effect.runPromise(
        runtimeConfig({
          ...environmentOf(migrate),
          DATABASE_URL: "postgres://tessera:p@db.example:5432/tessera?sslmode=verify-full",
          TESSERA_APP_DB_PASSWORD: mockPassword
        })
      )
      assert.strictEqual(migrateConfig.appDbRole, "tessera_app")
      // ECS sends SIGKILL stopTimeout after SIGTERM: the drain's own bound must end first.
      assert.strictEqual(runner.stopTimeout, stopTimeoutSeconds)
      assert.strictEqual(Duration.toSeconds(parsed.drainTimeout), drainTimeoutSeconds)
      assert.isBelow(drainTimeoutSeconds, stopTimeoutSeconds)
      assert.isAtMost(stopTimeoutSeconds, 120, "ECS allows 120 s at most")
    }
    const service = ofType(resources, "aws:ecs/service:Service")[0].inputs
    assert.strictEqual(service.deploymentMinimumHealthyPercent, 100)
    assert.strictEqual(service.deploymentMaximumPercent, 200)
  })

  it("sets only an environment runtime/config.ts accepts (secrets stand in with well-formed values)", async () => {
    for (const task of ofType(resources, T.taskDefinition)) {
      const env = {
        ...environmentOf(containers(task)[0]),
        DATABASE_URL: "postgres://tessera:p@db.example:5432/tessera?sslmode=verify-full",
        REDIS_URL: "rediss://tessera:p@cache.example:6379",
        TESSERA_TOKEN: mockPassword,
        TESSERA_CLUSTER_SECRET: mockPassword,
        // Filled by docker/ecs-metadata.ts at task start.
        TESSERA_RUNNER_HOST: "10.0.40.7",
        TESSERA_ZONE: "us-east-1a"
      }
      const parsed = await Effect.runPromise(Effect.result(runtimeConfig(env)))
      assert.strictEqual(
        parsed._tag,
        "Success",
        `${task.name}: ${parsed._tag === "Failure" ? String(parsed.failure) : ""}`
      )
      if (parsed._tag !== "Success") continue
      assert.strictEqual(parsed.success.shardsPerGroup, config.shards)
      assert.strictEqual(parsed.success.hsts, config.https === "required" ? "on" : "off")
      assert.isTrue(Option.isSome(parsed.success.clusterSecret))
      assert.deepStrictEqual(parsed.success.otlpEndpoint, Option.some("http://127.0.0.1:4318"))
    }
  })

  it("serves HTTPS where the stage requires it: ACM certificate, HTTP redirected, HSTS on", () => {
    // The public load balancer's listeners (the internal zonal one has its own test, zones.test.ts).
    const listeners = ofType(resources, T.listener).filter((l) => !l.name.startsWith("Zonal"))
    const envs = ofType(resources, T.taskDefinition).map((task) => environmentOf(containers(task)[0]))
    if (config.https === "required") {
      const [certificate] = ofType(resources, T.certificate)
      assert.strictEqual(certificate.inputs.domainName, "tessera.example.com")
      assert.strictEqual(certificate.inputs.validationMethod, "DNS")
      const validation = named(resources, "CertificateValidation").inputs
      assert.strictEqual(validation.certificateArn, `arn:aws:mock:us-east-1:123456789012:${T.certificate}/Certificate`)
      assert.deepStrictEqual(validation.validationRecordFqdns, ["_mock.tessera.example.com."])
      const alias = named(resources, "GatewayAlias").inputs
      assert.strictEqual(alias.name, "tessera.example.com")
      assert.strictEqual(alias.zoneId, "Z123MOCK")
      const https = named(resources, "HttpsListener").inputs
      assert.strictEqual(https.port, 443)
      assert.strictEqual(https.protocol, "HTTPS")
      assert.strictEqual(https.certificateArn, validation.certificateArn, "the listener waits for validation")
      assert.match(https.sslPolicy, /TLS13/)
      assert.strictEqual(https.defaultActions[0].type, "forward")
      const http = named(resources, "HttpListener").inputs
      assert.strictEqual(http.port, 80)
      assert.deepStrictEqual(http.defaultActions, [
        { type: "redirect", redirect: { port: "443", protocol: "HTTPS", statusCode: "HTTP_301" } }
      ])
      assert.lengthOf(listeners, 2)
      for (const env of envs) assert.strictEqual(env.TESSERA_HSTS, "on")
    } else {
      assert.lengthOf(listeners, 1)
      assert.strictEqual(listeners[0].inputs.defaultActions[0].type, "forward")
      assert.lengthOf(ofType(resources, T.certificate), 0)
      // HSTS over plain HTTP would be ignored by browsers and wrong: only behind TLS.
      for (const env of envs) assert.strictEqual(env.TESSERA_HSTS, "off")
    }
  })

  it("gives Valkey users per purpose: runners on their key families, a read-only market-data consumer", () => {
    const users = Object.fromEntries(ofType(resources, T.cacheUser).map((u) => [u.inputs.userName, u.inputs]))
    assert.sameMembers(Object.keys(users), ["default", "tessera", "tessera-md"])
    assert.match(users.default.accessString, /^off /)
    const runner: string = users.tessera.accessString
    assert.strictEqual(runner, runnerAccess)
    const keys = (access: string) => access.split(" ").filter((t) => t.startsWith("~"))
    assert.sameMembers(keys(runner), ["~md:*", "~g:*", "~tessera:*"])
    assert.sameMembers([...runnerKeyPatterns], ["md:*", "g:*", "tessera:*"])
    assert.notInclude(runner, "+@all")
    assert.notInclude(runner, "~*")
    assert.include(runner, "-@dangerous")
    const md: string = users["tessera-md"].accessString
    assert.strictEqual(md, marketDataAccess)
    assert.sameMembers(keys(md), ["~md:*"])
    assert.include(md, "+@read")
    assert.notInclude(md, "@write")
    assert.notInclude(md, "+@all")
    const [group] = ofType(resources, T.userGroup)
    assert.sameMembers(group.inputs.userIds, [
      `tessera-${config.stage}-default`,
      `tessera-${config.stage}-app`,
      `tessera-${config.stage}-md`
    ])
    const mdSecret = JSON.parse(
      reveal(named(resources, "CacheMarketDataCredentialsValue").inputs.secretString) as string
    )
    assert.match(mdSecret.url, /^rediss:\/\/tessera-md:.+@.+:6379$/)
  })

  it("keeps Aurora point-in-time recovery for the stage's retention window", () => {
    const [cluster] = ofType(resources, T.cluster)
    assert.strictEqual(cluster.inputs.backupRetentionPeriod, config.database.backupRetentionDays)
    assert.strictEqual(cluster.inputs.preferredBackupWindow, "03:00-04:00")
    if (config.stage === "production") assert.strictEqual(cluster.inputs.backupRetentionPeriod, 14)
    else assert.isAtLeast(cluster.inputs.backupRetentionPeriod, 1)
  })

  it("places runners over zones and never two on one host", () => {
    for (const service of ofType(resources, T.service)) {
      assert.deepStrictEqual(service.inputs.orderedPlacementStrategies, [
        { type: "spread", field: "attribute:ecs.availability-zone" },
        { type: "spread", field: "instanceId" }
      ])
      assert.deepStrictEqual(service.inputs.placementConstraints, [{ type: "distinctInstance" }])
    }
  })

  it("builds the image from the Dockerfile for each service architecture and runs the pushed digest", () => {
    const images = ofType(resources, T.image)
    assert.lengthOf(images, 1)
    const image = images[0].inputs
    assert.isTrue(image.push)
    assert.strictEqual(image.context.location, root)
    assert.strictEqual(image.dockerfile.location, path.join(root, "Dockerfile"))
    const wanted = config.services.map((s) => (s.architecture === "arm64" ? "linux/arm64" : "linux/amd64"))
    assert.sameMembers(image.platforms, [...new Set(wanted)])
    assert.deepStrictEqual(image.tags, ["123456789012.dkr.ecr.us-east-1.amazonaws.com/RunnerImages:test"])
    assert.strictEqual(image.registries[0].address, "123456789012.dkr.ecr.us-east-1.amazonaws.com")
    assert.strictEqual(image.registries[0].username, "AWS")
    for (const task of ofType(resources, T.taskDefinition)) {
      assert.match(containers(task)[0].image, /RunnerImages:test@sha256:[0-9a-f]{64}$/)
    }
  })

  it("scrapes every runner's /metrics and receives its traces in a sidecar, to Managed Prometheus and X-Ray", () => {
    const [workspace] = ofType(resources, T.workspace)
    assert.strictEqual(workspace.inputs.alias, `tessera-${config.stage}`)
    for (const task of ofType(resources, T.taskDefinition)) {
      const [runner, sidecar] = containers(task)
      assert.strictEqual(sidecar.name, "collector")
      assert.strictEqual(sidecar.image, collectorImage)
      assert.isFalse(sidecar.essential)
      assert.deepStrictEqual(
        sidecar.secrets.map((s: { name: string }) => s.name),
        ["TESSERA_TOKEN"]
      )
      const collector = collectorOf(task)
      const scrape = collector.receivers.prometheus.config.scrape_configs[0]
      assert.strictEqual(scrape.job_name, scrapeJob)
      assert.deepStrictEqual(scrape.static_configs, [{ targets: [`127.0.0.1:${ports.gateway}`] }])
      assert.strictEqual(scrape.metrics_path, "/metrics")
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the collector expands it, not JavaScript
      assert.deepStrictEqual(scrape.authorization, { type: "Bearer", credentials: "${env:TESSERA_TOKEN}" })
      assert.strictEqual(
        collector.exporters.prometheusremotewrite.endpoint,
        "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-mock/api/v1/remote_write"
      )
      assert.strictEqual(collector.exporters.prometheusremotewrite.auth.authenticator, "sigv4auth")
      assert.deepStrictEqual(collector.service.pipelines.traces, {
        receivers: ["otlp"],
        processors: ["resourcedetection/ecs", "batch"],
        exporters: ["awsxray"]
      })
      const env = environmentOf(runner)
      assert.strictEqual(env.OTEL_EXPORTER_OTLP_ENDPOINT, "http://127.0.0.1:4318")
      assert.strictEqual(collector.receivers.otlp.protocols.http.endpoint, "127.0.0.1:4318")
      assert.strictEqual(env.TESSERA_SHARDS, String(config.shards))
      assert.deepStrictEqual(runner.dependsOn, [
        { containerName: "collector", condition: "START" },
        { containerName: migrateName, condition: "SUCCESS" }
      ])
    }
    const telemetry = JSON.parse(named(resources, "RunnerTaskTelemetry").inputs.policy)
    const remoteWrite = telemetry.Statement.find((s: { Action: Array<string> }) => s.Action.includes("aps:RemoteWrite"))
    assert.deepStrictEqual(remoteWrite.Resource, [`arn:aws:mock:us-east-1:123456789012:${T.workspace}/Metrics`])
  })

  it("declares the seed alarms as alerting rules with their thresholds, routed to the alarm topic", () => {
    const [namespace] = ofType(resources, T.ruleGroups)
    assert.strictEqual(namespace.inputs.workspaceId, "Metrics-id")
    const rules: Array<{ alert: string; expr: string; for: string }> = JSON.parse(namespace.inputs.data).groups[0].rules
    const byName = Object.fromEntries(rules.map((r) => [r.alert, r]))
    const expected: Record<string, { for: string; has: ReadonlyArray<string> }> = {
      OrderLatencyP99High: {
        for: "5m",
        has: [
          "histogram_quantile(0.99,",
          "tessera_gateway_request_duration_seconds_bucket",
          "Orders.PlaceMany",
          "> 0.05"
        ]
      },
      AckedTpsLow: {
        for: "5m",
        has: [
          'tessera_orders_total{job="tessera-runner",outcome="accepted"}[1m])) < 4000',
          "tessera_gateway_overloaded_total",
          ") > 4000"
        ]
      },
      ErrorRateHigh: { for: "5m", has: ['outcome=~"error|defect"', "tessera_gateway_requests_total", "> 0.01"] },
      QueueDepthHigh: { for: "2m", has: ["max by (type) (effect_cluster_entity_mailbox_size_max", "> 1000"] },
      RunnerDown: { for: "1m", has: ['up{job="tessera-runner"} == 0', "effect_cluster_runners_healthy"] },
      ShardUnowned: { for: "1m", has: [`(${config.shards} - sum(tessera_shards_held`, "absent(tessera_shards_held"] },
      GathererGapUnhealed: { for: "30s", has: ["max by (dedup) (tessera_dedup_unhealed_markets", "> 0"] }
    }
    assert.sameMembers(Object.keys(byName), Object.keys(expected))
    for (const [name, want] of Object.entries(expected)) {
      assert.strictEqual(byName[name].for, want.for, name)
      for (const part of want.has) assert.include(byName[name].expr, part, name)
      // Every series an alarm reads is scraped from the runners.
      assert.include(byName[name].expr, `job="${scrapeJob}"`, name)
    }
    // Every metric an alarm names is exported by the runtime (its sources, or effect/cluster's ClusterMetrics).
    const exported = exportedMetricNames()
    for (const alarm of alarms(config)) {
      for (const metric of alarm.expr.match(/\b(?:tessera|effect_cluster)_[a-z_]+/g) ?? []) {
        const base = metric.replace(/_bucket$/, "")
        assert.isTrue(exported.has(base), `${alarm.name}: ${metric} is not exported`)
      }
    }
    // Tasks that are gone (no series left to alert on): running below desired, per service, on the same topic.
    const taskAlarms = ofType(resources, "aws:cloudwatch/metricAlarm:MetricAlarm")
    assert.lengthOf(taskAlarms, config.services.length)
    for (const alarm of taskAlarms) {
      const { inputs } = alarm
      assert.strictEqual(inputs.comparisonOperator, "GreaterThanThreshold")
      assert.strictEqual(inputs.threshold, 0)
      assert.strictEqual(inputs.evaluationPeriods, 3)
      assert.strictEqual(inputs.treatMissingData, "breaching")
      const queries = Object.fromEntries(inputs.metricQueries.map((q: { id: string }) => [q.id, q]))
      assert.strictEqual(queries.missing.expression, "desired - running")
      assert.strictEqual(queries.desired.metric.metricName, "DesiredTaskCount")
      assert.strictEqual(queries.running.metric.metricName, "RunningTaskCount")
      const service = ofType(resources, T.service).find(
        (s) => `${s.name}-name` === queries.running.metric.dimensions.ServiceName
      )
      assert.isDefined(service, `${alarm.name} watches a runner service`)
      assert.strictEqual(queries.running.metric.dimensions.ClusterName, "Cluster-name")
      assert.deepStrictEqual(inputs.alarmActions, [
        "arn:aws:mock:us-east-1:123456789012:aws:sns/topic:Topic/AlarmTopic"
      ])
    }
    const routing = JSON.parse(named(resources, "AlarmRouting").inputs.definition)
    const manager = JSON.parse(routing.alertmanager_config)
    assert.strictEqual(
      manager.receivers[0].sns_configs[0].topic_arn,
      "arn:aws:mock:us-east-1:123456789012:aws:sns/topic:Topic/AlarmTopic"
    )
    const topicPolicy = JSON.parse(named(resources, "AlarmTopicFromPrometheus").inputs.policy)
    assert.deepStrictEqual(topicPolicy.Statement[0].Principal, { Service: "aps.amazonaws.com" })
    assert.include(topicPolicy.Statement[0].Action, "sns:Publish")
  })
})

/** Metric names the runtime declares (string literals in runtime/, actors/, packages/platform) plus effect's. */
const exportedMetricNames = (): ReadonlySet<string> => {
  const names = new Set<string>()
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir)) {
      const full = path.join(dir, entry)
      if (entry === "node_modules") continue
      if (statSync(full).isDirectory()) walk(full)
      else if (entry.endsWith(".ts") && !entry.endsWith(".test.ts")) {
        for (const m of readFileSync(full, "utf8").matchAll(/"(tessera_[a-z_]+)"/g)) names.add(m[1])
      }
    }
  }
  for (const dir of ["runtime", "actors", "packages/platform/src"]) walk(path.join(root, dir))
  const cluster = readFileSync(path.join(root, "node_modules/effect/dist/cluster/ClusterMetrics.js"), "utf8")
  for (const m of cluster.matchAll(/"(effect_cluster_[a-z_]+)"/g)) names.add(m[1])
  return names
}

describe("cluster-secret rotation", () => {
  const secretsOf = (resources: ReadonlyArray<Recorded>) =>
    ofType(resources, T.taskDefinition).map((task) =>
      Object.fromEntries(
        containers(task)[0].secrets.map((e: { name: string; valueFrom: string }) => [
          e.name,
          e.valueFrom.split("/").at(-1)
        ])
      )
    )
  const readable = (resources: ReadonlyArray<Recorded>) =>
    JSON.parse(named(resources, "RunnerExecutionSecrets").inputs.policy).Statement[0].Resource.map((arn: string) =>
      arn.split("/").at(-1)
    )

  it("moves the runners through the three steps, each generation its own generated secret", async () => {
    const stage = dev("rotate")
    const step1 = await evaluate(stage, { imageTag: "t", clusterSecret: { generation: 1, accepted: 2 } })
    for (const secrets of secretsOf(step1)) {
      assert.strictEqual(secrets.TESSERA_CLUSTER_SECRET, "ClusterSecretSecret")
      assert.strictEqual(secrets.TESSERA_CLUSTER_SECRET_ACCEPTED, "ClusterSecret2Secret")
    }
    assert.includeMembers(readable(step1), ["ClusterSecretSecret", "ClusterSecret2Secret"])
    assert.strictEqual(reveal(named(step1, "ClusterSecret2Value").inputs.secretString), mockPassword)
    const step2 = await evaluate(stage, { imageTag: "t", clusterSecret: { generation: 2, accepted: 1 } })
    for (const secrets of secretsOf(step2)) {
      assert.strictEqual(secrets.TESSERA_CLUSTER_SECRET, "ClusterSecret2Secret")
      assert.strictEqual(secrets.TESSERA_CLUSTER_SECRET_ACCEPTED, "ClusterSecretSecret")
    }
    const step3 = await evaluate(stage, { imageTag: "t", clusterSecret: { generation: 2 } })
    for (const secrets of secretsOf(step3)) {
      assert.strictEqual(secrets.TESSERA_CLUSTER_SECRET, "ClusterSecret2Secret")
      assert.notProperty(secrets, "TESSERA_CLUSTER_SECRET_ACCEPTED")
    }
    assert.notInclude(readable(step3), "ClusterSecretSecret", "the old generation is gone")
    assert.lengthOf(
      ofType(step3, "aws:secretsmanager/secret:Secret").filter((r) => r.name.startsWith("ClusterSecret")),
      1
    )
  })

  it("refuses an accepted generation equal to the one runners connect with", async () => {
    const failure = await evaluate(dev("rotate"), {
      imageTag: "t",
      clusterSecret: { generation: 2, accepted: 2 }
    }).then(
      () => undefined,
      (error: Error) => error
    )
    assert.match(failure?.message ?? "", /ACCEPTED_GENERATION/)
  })
})

describe("HTTPS with a certificate of one's own", () => {
  it("uses the given ACM certificate on a stage that does not require HTTPS, and turns HSTS on", async () => {
    const resources = await evaluate(dev("alice"), {
      imageTag: "t",
      certificateArn: "arn:aws:acm:us-east-1:1:certificate/own"
    })
    assert.strictEqual(
      named(resources, "HttpsListener").inputs.certificateArn,
      "arn:aws:acm:us-east-1:1:certificate/own"
    )
    assert.lengthOf(ofType(resources, T.certificate), 0)
    assert.strictEqual(named(resources, "HttpListener").inputs.defaultActions[0].type, "redirect")
    for (const task of ofType(resources, T.taskDefinition)) {
      assert.strictEqual(environmentOf(containers(task)[0]).TESSERA_HSTS, "on")
    }
  })

  it("refuses to deploy production without a domain or certificate", async () => {
    let failure: unknown
    try {
      await evaluate(production, { imageTag: "t" })
    } catch (error) {
      failure = error
    }
    assert.instanceOf(failure, Error)
    assert.match((failure as Error).message, /requires HTTPS/)
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
    process.env.TESSERA_DOMAIN = "tessera.example.com"
    process.env.TESSERA_HOSTED_ZONE_ID = "Z123MOCK"
    const resources = await evaluateProgram("production", () => config.run()).finally(() => {
      delete process.env.TESSERA_DOMAIN
      delete process.env.TESSERA_HOSTED_ZONE_ID
    })
    assert.strictEqual(named(resources, "Certificate").inputs.domainName, "tessera.example.com")
    assert.lengthOf(ofType(resources, T.natGateway), 3)
    assert.lengthOf(ofType(resources, T.replicationGroup), 1)
    assert.lengthOf(ofType(resources, T.capacityProvider), 4)
  })
})

describe("docs/deploy.md", () => {
  const doc = readFileSync(path.join(root, "docs", "deploy.md"), "utf8")
  /** The text of the section under `heading` (to the next heading of any level). */
  const section = (heading: string) => {
    const start = doc.indexOf(`\n${heading}\n`)
    if (start < 0) return undefined
    const body = doc.slice(start + heading.length + 2)
    const end = body.search(/\n#{1,6} /)
    return end < 0 ? body : body.slice(0, end)
  }

  it("has a runbook section for every alarm its runbook annotation points at, saying what to do", () => {
    const rules: Array<{ alert: string; annotations: { runbook: string } }> = JSON.parse(ruleFile(dev("test")))
      .groups[0].rules
    for (const rule of rules) {
      assert.strictEqual(rule.annotations.runbook, `docs/deploy.md#${rule.alert.toLowerCase()}`)
      const body = section(`### ${rule.alert}`)
      assert.isDefined(body, `a "### ${rule.alert}" section`)
      // What it means (the threshold it fires at) and what to act on.
      assert.isAbove(body?.trim().length ?? 0, 200, `${rule.alert}'s section says what it means and what to do`)
    }
  })

  it("says how to rotate the tokens and the cluster secret", () => {
    const body = section("## Tokens and the cluster secret: access and rotation") ?? ""
    assert.include(body, "Rotate a token without downtime")
    assert.include(body, "To revoke a leaked token")
    assert.include(body, "Rotate in three rolling deploys")
    for (const variable of ["TESSERA_CLUSTER_SECRET_ACCEPTED", "TESSERA_CLUSTER_SECRET_GENERATION"]) {
      assert.include(body, variable)
    }
  })
})
