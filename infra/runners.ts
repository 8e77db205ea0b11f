/**
 * The runners: the image (built from `Dockerfile` and pushed to ECR by the deploy), one EC2 task definition and
 * one ECS service per architecture with an ADOT collector sidecar (observability.ts), the gateway behind an
 * application load balancer (HTTPS with an ACM certificate, HTTP redirected), and service auto scaling on CPU and
 * on queue depth. In-VPC clients that route by zone (the graph's `Graph.Routing`) reach the gateways through an
 * internal network load balancer with cross-zone load balancing off: its zonal name `<az>.<dns>` answers only from
 * that zone's gateways, and each task announces that name for its own zone (`TESSERA_GATEWAY_URL`).
 *
 * Configuration reaches the container as `runtime/config.ts` reads it: plain values in `environment`, and every
 * credential (`DATABASE_URL`, `REDIS_URL`, `TESSERA_TOKEN`) as an ECS secret resolved from Secrets Manager when
 * the task starts. `TESSERA_RUNNER_HOST` and `TESSERA_ZONE` differ per task, so the image's entry point
 * (`docker/ecs-metadata.ts`) fills them from the ECS task metadata endpoint.
 */
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as aws from "@pulumi/aws"
import * as dockerBuild from "@pulumi/docker-build"
import * as pulumi from "@pulumi/pulumi"
import * as random from "@pulumi/random"
import type { Cache } from "./cache.ts"
import { type Capacity, fleetKey } from "./capacity.ts"
import { appRole, type Database } from "./database.ts"
import type { Network } from "./network.ts"
import { collectorConfig, collectorImage, type Observability, otlpEndpoint, queueDepthMetric } from "./observability.ts"
import { type Architecture, ports, type RunnerService, type StageConfig } from "./stage.ts"
import type { Storage } from "./storage.ts"

/** Inputs that come from the deploying environment rather than the stage shape. */
export interface DeployInputs {
  /** Tag the deploy pushes the runner image under (a multi-arch manifest); tasks pin the pushed digest. */
  readonly imageTag: string
  /** Domain of the gateway (TESSERA_DOMAIN): the stack requests an ACM certificate for it (DNS validation). */
  readonly domain?: string | undefined
  /** Route 53 zone of `domain` (TESSERA_HOSTED_ZONE_ID): validation and alias records are created in it. */
  readonly hostedZoneId?: string | undefined
  /** An existing ACM certificate instead of `domain` (TESSERA_CERTIFICATE_ARN). */
  readonly certificateArn?: string | undefined
  /** Subscribed to the alarm topic when set (TESSERA_ALARM_EMAIL). */
  readonly alarmEmail?: string | undefined
  /**
   * Cluster-secret generations: runners connect with `generation` (TESSERA_CLUSTER_SECRET_GENERATION, default 1)
   * and also accept `accepted` (TESSERA_CLUSTER_SECRET_ACCEPTED_GENERATION) while a rotation is under way.
   */
  readonly clusterSecret?: { readonly generation: number; readonly accepted?: number | undefined } | undefined
}

export { queueDepthMetric }
export const containerName = "runner"
export const collectorName = "collector"
/** The init container that applies the schema as the owner before the runner starts as the application role. */
export const migrateName = "migrate"
/** A runner's bound on its stop (`TESSERA_DRAIN_TIMEOUT`): refuse, finish, hand the shards over, flush. */
export const drainTimeoutSeconds = 45
/** ECS's SIGKILL after SIGTERM: above the drain bound, so a drain always ends on its own (ECS allows 120 at most). */
export const stopTimeoutSeconds = 60
/** The repository root: the image's build context. */
const repositoryRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

export interface Runners {
  readonly repository: aws.ecr.Repository
  readonly loadBalancer: aws.lb.LoadBalancer
  readonly url: pulumi.Output<string>
  /** Internal, zone-affine entry to the gateways (cross-zone load balancing off): `http://<az>.<dns>` per zone. */
  readonly zonalGateway: aws.lb.LoadBalancer
  /** The zonal URL template tasks announce, `{zone}` standing for a task's availability zone. */
  readonly zonalUrl: pulumi.Output<string>
  readonly taskDefinitions: ReadonlyMap<Architecture, aws.ecs.TaskDefinition>
  readonly services: ReadonlyMap<Architecture, aws.ecs.Service>
  readonly tokenSecret: aws.secretsmanager.Secret
  readonly clusterSecret: aws.secretsmanager.Secret
  readonly image: dockerBuild.Image
  /** Present when the stack requested the certificate: CNAMEs to add when no hosted zone was given. */
  readonly certificateValidation?: pulumi.Output<ReadonlyArray<{ name: string; type: string; value: string }>>
}

export interface RunnerDependencies {
  readonly network: Network
  readonly database: Database
  readonly cache: Cache
  readonly storage: Storage
  readonly capacity: Capacity
  readonly observability: Observability
}

const archName = (architecture: Architecture) => (architecture === "arm64" ? "Arm64" : "X86")

export const runners = (config: StageConfig, deps: RunnerDependencies, inputs: DeployInputs): Runners => {
  const { stage } = config
  const https = inputs.certificateArn !== undefined || inputs.domain !== undefined
  if (config.https === "required" && !https) {
    throw new Error(
      `stage ${stage} requires HTTPS: set TESSERA_DOMAIN (with TESSERA_HOSTED_ZONE_ID for DNS validation) or TESSERA_CERTIFICATE_ARN`
    )
  }
  const tags = { "tessera:stage": stage }
  const { network: net, capacity } = deps
  const graphZones = pulumi
    .all(net.privateSubnets.map((subnet) => subnet.availabilityZone))
    .apply((zones) => zones.join(","))

  const repository = new aws.ecr.Repository("RunnerImages", {
    imageScanningConfiguration: { scanOnPush: true },
    imageTagMutability: "MUTABLE",
    forceDelete: !config.database.deletionProtection,
    tags
  })
  new aws.ecr.LifecyclePolicy("RunnerImagesLifecycle", {
    repository: repository.name,
    policy: JSON.stringify({
      rules: [
        {
          rulePriority: 1,
          description: "keep the last 30 images",
          selection: { tagStatus: "any", countType: "imageCountMoreThan", countNumber: 30 },
          action: { type: "expire" }
        }
      ]
    })
  })
  const logs = new aws.cloudwatch.LogGroup("RunnerLogs", {
    name: `/tessera/${stage}/runner`,
    retentionInDays: config.logRetentionDays,
    tags
  })

  const token = new random.RandomPassword("GatewayToken", { length: 48, special: false })
  const tokenSecret = new aws.secretsmanager.Secret("GatewayTokenSecret", {
    description: `Tessera ${stage}: gateway bearer token (TESSERA_TOKEN)`,
    recoveryWindowInDays: 0,
    tags
  })
  new aws.secretsmanager.SecretVersion("GatewayTokenValue", { secretId: tokenSecret.id, secretString: token.result })
  // Runner-to-runner transport: a runner must present this to join or send (TESSERA_CLUSTER_SECRET). Each
  // generation is its own random value and secret; rotation moves the generations (docs/deploy.md).
  const rotation = inputs.clusterSecret ?? { generation: 1 }
  if (!Number.isInteger(rotation.generation) || rotation.generation < 1) {
    throw new Error(`TESSERA_CLUSTER_SECRET_GENERATION must be a positive integer, got ${rotation.generation}`)
  }
  if (
    rotation.accepted !== undefined &&
    (!Number.isInteger(rotation.accepted) || rotation.accepted < 1 || rotation.accepted === rotation.generation)
  ) {
    throw new Error(
      `TESSERA_CLUSTER_SECRET_ACCEPTED_GENERATION must be a positive integer other than the generation, got ${rotation.accepted}`
    )
  }
  const clusterSecret = clusterSecretGeneration(stage, rotation.generation, tags)
  const acceptedSecret =
    rotation.accepted === undefined ? undefined : clusterSecretGeneration(stage, rotation.accepted, tags)

  // `sst deploy` builds the current tree for every architecture a service runs on and pushes it; the tasks name
  // the pushed digest, so a code change rolls the services and an unchanged tree changes nothing.
  const auth = aws.ecr.getAuthorizationTokenOutput({ registryId: repository.registryId })
  const image = new dockerBuild.Image("RunnerImage", {
    context: { location: repositoryRoot },
    dockerfile: { location: path.join(repositoryRoot, "Dockerfile") },
    platforms: [...new Set(config.services.map((s) => s.architecture))].map((a) =>
      a === "arm64" ? dockerBuild.Platform.Linux_arm64 : dockerBuild.Platform.Linux_amd64
    ),
    push: true,
    tags: [pulumi.interpolate`${repository.repositoryUrl}:${inputs.imageTag}`],
    // The registry host (`<account>.dkr.ecr.<region>.amazonaws.com`), which the ECR token authenticates.
    registries: [
      {
        address: repository.repositoryUrl.apply((url) => url.split("/")[0]),
        username: auth.userName,
        password: auth.password
      }
    ]
  })

  // The execution role starts tasks (pull image, write logs, resolve secrets); it may read these only.
  const executionRole = new aws.iam.Role("RunnerExecutionRole", {
    assumeRolePolicy: aws.iam.assumeRolePolicyForPrincipal({ Service: "ecs-tasks.amazonaws.com" }),
    tags
  })
  new aws.iam.RolePolicyAttachment("RunnerExecutionPolicy", {
    role: executionRole.name,
    policyArn: "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
  })
  new aws.iam.RolePolicy("RunnerExecutionSecrets", {
    role: executionRole.id,
    policy: pulumi.jsonStringify({
      Version: "2012-10-17",
      Statement: [
        {
          Effect: "Allow",
          Action: ["secretsmanager:GetSecretValue"],
          Resource: [
            deps.database.secret.arn,
            deps.database.appSecret.arn,
            deps.cache.secret.arn,
            tokenSecret.arn,
            clusterSecret.arn,
            ...(acceptedSecret === undefined ? [] : [acceptedSecret.arn])
          ]
        }
      ]
    })
  })
  // The task role is what the runner and its sidecar may do: the cold-tier bucket, remote write to the stage's
  // Prometheus workspace, traces to X-Ray, embedded metrics into one log group.
  const taskRole = new aws.iam.Role("RunnerTaskRole", {
    assumeRolePolicy: aws.iam.assumeRolePolicyForPrincipal({ Service: "ecs-tasks.amazonaws.com" }),
    tags
  })
  new aws.iam.RolePolicy("RunnerTaskSnapshots", {
    role: taskRole.id,
    policy: pulumi.jsonStringify({
      Version: "2012-10-17",
      Statement: [
        { Effect: "Allow", Action: ["s3:ListBucket"], Resource: [deps.storage.snapshots.arn] },
        {
          Effect: "Allow",
          Action: ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
          Resource: [pulumi.interpolate`${deps.storage.snapshots.arn}/*`]
        }
      ]
    })
  })
  const obs = deps.observability
  new aws.iam.RolePolicy("RunnerTaskTelemetry", {
    role: taskRole.id,
    policy: pulumi.jsonStringify({
      Version: "2012-10-17",
      Statement: [
        { Effect: "Allow", Action: ["aps:RemoteWrite"], Resource: [obs.workspace.arn] },
        // X-Ray's trace APIs take no resource-level permissions.
        {
          Effect: "Allow",
          Action: ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules"],
          Resource: ["*"]
        },
        {
          Effect: "Allow",
          Action: ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
          Resource: [pulumi.interpolate`${obs.emfLogGroup.arn}:*`]
        }
      ]
    })
  })

  const loadBalancer = new aws.lb.LoadBalancer("LoadBalancer", {
    loadBalancerType: "application",
    internal: false,
    securityGroups: [net.securityGroups.loadBalancer.id],
    subnets: net.publicSubnets.map((subnet) => subnet.id),
    // WebSocket clients of the gateway stay connected; the ALB would cut idle ones after 60 s.
    idleTimeout: 3600,
    dropInvalidHeaderFields: true,
    tags
  })
  const targets = new aws.lb.TargetGroup("GatewayTargets", {
    port: ports.gateway,
    protocol: "HTTP",
    targetType: "ip",
    vpcId: net.vpc.id,
    deregistrationDelay: 30,
    healthCheck: {
      path: "/ready",
      matcher: "200",
      interval: 10,
      timeout: 5,
      healthyThreshold: 2,
      unhealthyThreshold: 3
    },
    tags
  })
  const forward = [{ type: "forward", targetGroupArn: targets.arn }]
  // Zone affinity for clients inside the VPC: each NLB node forwards only to gateways of its own zone, so a client
  // that picks the zonal name of the zone holding its data crosses no zone to reach a gateway.
  const zonalGateway = new aws.lb.LoadBalancer("ZonalGateway", {
    loadBalancerType: "network",
    internal: true,
    enableCrossZoneLoadBalancing: false,
    securityGroups: [net.securityGroups.loadBalancer.id],
    subnets: net.privateSubnets.map((subnet) => subnet.id),
    tags
  })
  const zonalTargets = new aws.lb.TargetGroup("GatewayZonalTargets", {
    port: ports.gateway,
    protocol: "TCP",
    targetType: "ip",
    vpcId: net.vpc.id,
    deregistrationDelay: 30,
    healthCheck: {
      protocol: "HTTP",
      path: "/ready",
      matcher: "200",
      interval: 10,
      timeout: 5,
      healthyThreshold: 2,
      unhealthyThreshold: 3
    },
    tags
  })
  const zonalListener = new aws.lb.Listener("ZonalGatewayListener", {
    loadBalancerArn: zonalGateway.arn,
    port: 80,
    protocol: "TCP",
    defaultActions: [{ type: "forward", targetGroupArn: zonalTargets.arn }]
  })
  const zonalUrl = pulumi.interpolate`http://{zone}.${zonalGateway.dnsName}`
  const certificate = https ? certificateFor(stage, inputs, loadBalancer, tags) : undefined
  const listeners: Array<aws.lb.Listener> = []
  if (certificate !== undefined) {
    listeners.push(
      new aws.lb.Listener("HttpsListener", {
        loadBalancerArn: loadBalancer.arn,
        port: 443,
        protocol: "HTTPS",
        sslPolicy: "ELBSecurityPolicy-TLS13-1-2-2021-06",
        certificateArn: certificate.arn,
        defaultActions: forward
      }),
      new aws.lb.Listener("HttpListener", {
        loadBalancerArn: loadBalancer.arn,
        port: 80,
        protocol: "HTTP",
        defaultActions: [{ type: "redirect", redirect: { port: "443", protocol: "HTTPS", statusCode: "HTTP_301" } }]
      })
    )
  } else {
    listeners.push(
      new aws.lb.Listener("HttpListener", {
        loadBalancerArn: loadBalancer.arn,
        port: 80,
        protocol: "HTTP",
        defaultActions: forward
      })
    )
  }
  const url =
    inputs.domain !== undefined
      ? pulumi.output(`https://${inputs.domain}`)
      : pulumi.interpolate`${https ? "https" : "http"}://${loadBalancer.dnsName}`

  const region = aws.getRegionOutput().region
  const collector = pulumi
    .all([obs.remoteWriteUrl, region, obs.emfLogGroup.name])
    .apply(([remoteWrite, r, group]) => collectorConfig(stage, remoteWrite, r, group))
  const taskDefinitions = new Map<Architecture, aws.ecs.TaskDefinition>()
  const services = new Map<Architecture, aws.ecs.Service>()
  for (const service of config.services) {
    const name = `Runner${archName(service.architecture)}`
    const taskDefinition = new aws.ecs.TaskDefinition(`${name}Task`, {
      family: `tessera-${stage}-runner-${service.architecture}`,
      requiresCompatibilities: ["EC2"],
      networkMode: "awsvpc",
      cpu: String(config.task.cpu),
      memory: String(config.task.memoryMiB),
      runtimePlatform: {
        cpuArchitecture: service.architecture === "arm64" ? "ARM64" : "X86_64",
        operatingSystemFamily: "LINUX"
      },
      placementConstraints: [
        { type: "memberOf", expression: `attribute:ecs.cpu-architecture == ${service.architecture}` }
      ],
      executionRoleArn: executionRole.arn,
      taskRoleArn: taskRole.arn,
      containerDefinitions: pulumi.jsonStringify([
        {
          name: containerName,
          image: image.ref,
          essential: true,
          portMappings: [
            { name: "gateway", containerPort: ports.gateway, protocol: "tcp" },
            { name: "cluster", containerPort: ports.clusterTransport, protocol: "tcp" },
            { name: "standby", containerPort: ports.clusterStandby, protocol: "tcp" }
          ],
          environment: [
            { name: "NODE_ENV", value: "production" },
            // The schema is the migrate container's: this runner connects as the application role, which runs no DDL.
            { name: "TESSERA_MIGRATE", value: "false" },
            { name: "TESSERA_DRAIN_TIMEOUT", value: `${drainTimeoutSeconds} seconds` },
            { name: "TESSERA_HOST", value: "0.0.0.0" },
            { name: "TESSERA_PORT", value: String(ports.gateway) },
            { name: "TESSERA_RUNNER_PORT", value: String(ports.clusterTransport) },
            // Graph partitions prefer the AZs of the private subnets (zones[p mod n]); each task's own AZ comes
            // from the task metadata (TESSERA_ZONE), and its standby identity serves the other AZs' partitions.
            { name: "TESSERA_GRAPH_ZONES", value: graphZones },
            // Gatherer replica r lives in zone zones[r mod n], so the replicas of a venue connection are in
            // different AZs and so on different hosts (one runner per host).
            { name: "TESSERA_GATHER_ZONES", value: graphZones },
            { name: "TESSERA_STANDBY_PORT", value: String(ports.clusterStandby) },
            // What the task announces in routing tables: the zonal load-balancer name of its own zone.
            { name: "TESSERA_GATEWAY_URL", value: zonalUrl },
            // The dimension value of the queue-depth metric the runners publish.
            { name: "TESSERA_STAGE", value: stage },
            { name: "TESSERA_GRAPH_COLD", value: pulumi.interpolate`s3://${deps.storage.snapshots.bucket}/graph` },
            // The retention archive (retention itself stays off until TESSERA_RETENTION is set on the stage).
            { name: "TESSERA_ARCHIVE", value: pulumi.interpolate`s3://${deps.storage.snapshots.bucket}/archive` },
            // Serverless and provisioned (cluster-mode) ElastiCache both expect cluster clients.
            { name: "REDIS_CLUSTER", value: "true" },
            { name: "AWS_REGION", value: region },
            { name: "TESSERA_SHARDS", value: String(config.shards) },
            // Strict-Transport-Security: always when the load balancer terminates TLS (HTTP is only a redirect
            // there), never on a plain-HTTP stage, where browsers would ignore it.
            { name: "TESSERA_HSTS", value: https ? "on" : "off" },
            { name: "OTEL_EXPORTER_OTLP_ENDPOINT", value: otlpEndpoint },
            { name: "OTEL_SERVICE_NAME", value: `tessera-${stage}` }
          ],
          secrets: [
            { name: "DATABASE_URL", valueFrom: pulumi.interpolate`${deps.database.appSecret.arn}:url::` },
            { name: "REDIS_URL", valueFrom: pulumi.interpolate`${deps.cache.secret.arn}:url::` },
            // Stale-tolerant reads from a node in the task's own zone (infra/cache.ts).
            {
              name: "TESSERA_VALKEY_REPLICA_URL",
              valueFrom: pulumi.interpolate`${deps.cache.secret.arn}:replicaUrl::`
            },
            { name: "TESSERA_TOKEN", valueFrom: tokenSecret.arn },
            { name: "TESSERA_CLUSTER_SECRET", valueFrom: clusterSecret.arn },
            ...(acceptedSecret === undefined
              ? []
              : [{ name: "TESSERA_CLUSTER_SECRET_ACCEPTED", valueFrom: acceptedSecret.arn }])
          ],
          // The runner starts after its collector, so its first spans and scrapes have somewhere to go.
          // ... and once its schema is in place (the migrate container exited 0).
          dependsOn: [
            { containerName: collectorName, condition: "START" },
            { containerName: migrateName, condition: "SUCCESS" }
          ],
          // Liveness only: a runner that is alive but not ready (joining, rebalancing) must not be killed;
          // readiness (`/ready`) gates load balancer traffic through the target group's health check.
          healthCheck: {
            command: [
              "CMD",
              "node",
              "-e",
              `fetch("http://127.0.0.1:${ports.gateway}/health").then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))`
            ],
            interval: 10,
            timeout: 5,
            retries: 3,
            startPeriod: 30
          },
          stopTimeout: stopTimeoutSeconds,
          // An init process as PID 1 forwards SIGTERM to node and reaps children.
          linuxParameters: { initProcessEnabled: true },
          ulimits: [{ name: "nofile", softLimit: 65536, hardLimit: 65536 }],
          logConfiguration: {
            logDriver: "awslogs",
            options: {
              "awslogs-group": logs.name,
              "awslogs-region": region,
              "awslogs-stream-prefix": "runner"
            }
          }
        },
        {
          name: collectorName,
          image: collectorImage,
          // A dead collector loses telemetry, not orders: the runner keeps serving. Its series then go missing,
          // which the ShardUnowned alarm (held sum short, or absent) and the dashboards show.
          essential: false,
          cpu: 128,
          memoryReservation: 256,
          environment: [{ name: "AOT_CONFIG_CONTENT", value: collector }],
          secrets: [{ name: "TESSERA_TOKEN", valueFrom: tokenSecret.arn }],
          logConfiguration: {
            logDriver: "awslogs",
            options: {
              "awslogs-group": logs.name,
              "awslogs-region": region,
              "awslogs-stream-prefix": "collector"
            }
          }
        },
        {
          // `tessera-migrate` as the owner on every task start (idempotent, and a no-op once applied): the schema and
          // the application role's grants and password, so `sst deploy` alone migrates before new runners serve.
          name: migrateName,
          image: image.ref,
          essential: false,
          command: ["node", "app/migrate.ts"],
          memoryReservation: 128,
          environment: [
            { name: "NODE_ENV", value: "production" },
            { name: "TESSERA_APP_DB_ROLE", value: appRole }
          ],
          secrets: [
            { name: "DATABASE_URL", valueFrom: pulumi.interpolate`${deps.database.secret.arn}:url::` },
            {
              name: "TESSERA_APP_DB_PASSWORD",
              valueFrom: pulumi.interpolate`${deps.database.appSecret.arn}:password::`
            }
          ],
          logConfiguration: {
            logDriver: "awslogs",
            options: {
              "awslogs-group": logs.name,
              "awslogs-region": region,
              "awslogs-stream-prefix": "migrate"
            }
          }
        }
      ]),
      tags
    })
    taskDefinitions.set(service.architecture, taskDefinition)

    const ecsService = new aws.ecs.Service(
      name,
      {
        cluster: capacity.cluster.arn,
        taskDefinition: taskDefinition.arn,
        desiredCount: service.minTasks,
        capacityProviderStrategies: strategy(service, capacity),
        networkConfiguration: {
          subnets: net.privateSubnets.map((subnet) => subnet.id),
          securityGroups: [net.securityGroups.runner.id],
          assignPublicIp: false
        },
        loadBalancers: [
          { targetGroupArn: targets.arn, containerName, containerPort: ports.gateway },
          { targetGroupArn: zonalTargets.arn, containerName, containerPort: ports.gateway }
        ],
        healthCheckGracePeriodSeconds: 60,
        // Replace runners one batch at a time without dropping below the wanted count: shards move, never vanish.
        deploymentMinimumHealthyPercent: 100,
        deploymentMaximumPercent: 200,
        deploymentCircuitBreaker: { enable: true, rollback: true },
        // Runners (and so the shards they host, and each zone's gatherer replicas) spread over AZs, never two on
        // one host: losing a host or a zone takes at most one runner's share.
        orderedPlacementStrategies: [
          { type: "spread", field: "attribute:ecs.availability-zone" },
          { type: "spread", field: "instanceId" }
        ],
        placementConstraints: [{ type: "distinctInstance" }],
        propagateTags: "SERVICE",
        enableEcsManagedTags: true,
        waitForSteadyState: false,
        tags
      },
      // Auto scaling owns the task count once the service exists.
      { ignoreChanges: ["desiredCount"], dependsOn: [capacity.clusterProviders, ...listeners, zonalListener] }
    )
    services.set(service.architecture, ecsService)
    autoscale(name, config, service, capacity, ecsService)
  }

  return {
    repository,
    loadBalancer,
    url,
    zonalGateway,
    zonalUrl,
    taskDefinitions,
    services,
    tokenSecret,
    clusterSecret,
    image,
    certificateValidation: certificate?.validation
  }
}

/** One generation of the cluster secret; generation 1 keeps the names the stack first gave it. */
const clusterSecretGeneration = (stage: string, generation: number, tags: Record<string, string>) => {
  const name = generation === 1 ? "ClusterSecret" : `ClusterSecret${generation}`
  const value = new random.RandomPassword(name, { length: 48, special: false })
  const secret = new aws.secretsmanager.Secret(`${name}Secret`, {
    description: `Tessera ${stage}: runner-to-runner cluster secret, generation ${generation}`,
    recoveryWindowInDays: 0,
    tags: { ...tags, "tessera:generation": String(generation) }
  })
  new aws.secretsmanager.SecretVersion(`${name}Value`, { secretId: secret.id, secretString: value.result })
  return secret
}

/**
 * The listener's certificate: the given ARN, or an ACM certificate for `domain` validated by DNS. With a hosted
 * zone the validation and alias records are created there and the listener waits for validation; without one the
 * validation CNAMEs are an output to add at the domain's DNS host.
 */
const certificateFor = (
  stage: string,
  inputs: DeployInputs,
  loadBalancer: aws.lb.LoadBalancer,
  tags: Record<string, string>
): { arn: pulumi.Input<string>; validation?: Runners["certificateValidation"] } => {
  if (inputs.certificateArn !== undefined) return { arn: inputs.certificateArn }
  const domain = inputs.domain!
  const certificate = new aws.acm.Certificate("Certificate", {
    domainName: domain,
    validationMethod: "DNS",
    tags: { ...tags, Name: `tessera-${stage}` }
  })
  const validation = certificate.domainValidationOptions.apply((options) =>
    options.map((o) => ({ name: o.resourceRecordName, type: o.resourceRecordType, value: o.resourceRecordValue }))
  )
  const zoneId = inputs.hostedZoneId
  if (zoneId === undefined) return { arn: certificate.arn, validation }
  const record = new aws.route53.Record("CertificateValidationRecord", {
    zoneId,
    name: validation.apply((v) => v[0].name),
    type: validation.apply((v) => v[0].type),
    records: [validation.apply((v) => v[0].value)],
    ttl: 300,
    allowOverwrite: true
  })
  const validated = new aws.acm.CertificateValidation("CertificateValidation", {
    certificateArn: certificate.arn,
    validationRecordFqdns: [record.fqdn]
  })
  new aws.route53.Record("GatewayAlias", {
    zoneId,
    name: domain,
    type: "A",
    aliases: [{ name: loadBalancer.dnsName, zoneId: loadBalancer.zoneId, evaluateTargetHealth: true }]
  })
  return { arn: validated.certificateArn, validation }
}

/** On-demand base and weight, then spot weight, over the service architecture's capacity providers. */
const strategy = (service: RunnerService, capacity: Capacity) => {
  const entries: Array<{ capacityProvider: pulumi.Output<string>; base?: number; weight: number }> = []
  const onDemand = capacity.providers.get(fleetKey(service.architecture, "on-demand"))
  const spot = capacity.providers.get(fleetKey(service.architecture, "spot"))
  if (onDemand !== undefined && (service.onDemandBase > 0 || service.onDemandWeight > 0)) {
    entries.push({ capacityProvider: onDemand.name, base: service.onDemandBase, weight: service.onDemandWeight })
  }
  if (spot !== undefined && service.spotWeight > 0) {
    entries.push({ capacityProvider: spot.name, weight: service.spotWeight })
  }
  if (entries.length === 0) {
    throw new Error(`runner service ${service.architecture}: no capacity provider matches its strategy`)
  }
  return entries
}

const autoscale = (
  name: string,
  config: StageConfig,
  service: RunnerService,
  capacity: Capacity,
  ecsService: aws.ecs.Service
) => {
  const target = new aws.appautoscaling.Target(`${name}Scaling`, {
    serviceNamespace: "ecs",
    scalableDimension: "ecs:service:DesiredCount",
    resourceId: pulumi.interpolate`service/${capacity.cluster.name}/${ecsService.name}`,
    minCapacity: service.minTasks,
    maxCapacity: service.maxTasks
  })
  const on = { serviceNamespace: target.serviceNamespace, resourceId: target.resourceId }
  new aws.appautoscaling.Policy(`${name}ScaleOnCpu`, {
    policyType: "TargetTrackingScaling",
    ...on,
    scalableDimension: target.scalableDimension,
    targetTrackingScalingPolicyConfiguration: {
      predefinedMetricSpecification: { predefinedMetricType: "ECSServiceAverageCPUUtilization" },
      targetValue: config.autoscaling.cpuTargetPercent,
      scaleInCooldown: 300,
      scaleOutCooldown: 60
    }
  })
  new aws.appautoscaling.Policy(`${name}ScaleOnQueueDepth`, {
    policyType: "TargetTrackingScaling",
    ...on,
    scalableDimension: target.scalableDimension,
    targetTrackingScalingPolicyConfiguration: {
      // Each runner's deepest SymbolShard mailbox, averaged over the stage's runners: more runners, fewer
      // symbols each, shallower mailboxes. The sidecar publishes it from the runner's own /metrics.
      customizedMetricSpecification: {
        namespace: queueDepthMetric.namespace,
        metricName: queueDepthMetric.name,
        statistic: "Average",
        dimensions: [
          { name: queueDepthMetric.stageDimension, value: config.stage },
          { name: queueDepthMetric.typeDimension, value: queueDepthMetric.entityType }
        ]
      },
      targetValue: config.autoscaling.queueDepthTarget,
      scaleInCooldown: 300,
      scaleOutCooldown: 60
    }
  })
}
