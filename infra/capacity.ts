/**
 * The ECS cluster on EC2 capacity providers. SST's `sst.aws.Cluster`/`Service` run on Fargate only, and Tessera
 * wants Graviton and x86 hosts, spot, and long-lived runners, so this is plain `aws.ecs` / `aws.autoscaling`:
 * one Auto Scaling group per (architecture, purchase option), each behind its own capacity provider with managed
 * scaling (ECS sizes the group to the tasks) and managed termination protection (ECS only removes empty hosts).
 */
import * as aws from "@pulumi/aws"
import type { Network } from "./network.ts"
import type { Architecture, Fleet, Purchase, StageConfig } from "./stage.ts"

/** The current ECS-optimised Amazon Linux 2023 AMI per architecture, resolved by EC2 from SSM at each launch. */
export const amiParameter: Record<Architecture, string> = {
  arm64: "/aws/service/ecs/optimized-ami/amazon-linux-2023/arm64/recommended/image_id",
  x86_64: "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"
}

export const fleetKey = (architecture: Architecture, purchase: Purchase) => `${architecture}/${purchase}`
const fleetName = (fleet: Fleet) =>
  `${fleet.architecture === "arm64" ? "Arm64" : "X86"}${fleet.purchase === "spot" ? "Spot" : "OnDemand"}`

export interface Capacity {
  readonly cluster: aws.ecs.Cluster
  /** Keyed by `fleetKey(architecture, purchase)`. */
  readonly providers: ReadonlyMap<string, aws.ecs.CapacityProvider>
  readonly clusterProviders: aws.ecs.ClusterCapacityProviders
}

export const capacity = (config: StageConfig, net: Network): Capacity => {
  const { stage } = config
  const cluster = new aws.ecs.Cluster("Cluster", {
    settings: [{ name: "containerInsights", value: "enabled" }],
    tags: { "tessera:stage": stage }
  })

  const role = new aws.iam.Role("HostRole", {
    assumeRolePolicy: aws.iam.assumeRolePolicyForPrincipal({ Service: "ec2.amazonaws.com" }),
    tags: { "tessera:stage": stage }
  })
  new aws.iam.RolePolicyAttachment("HostEcsPolicy", {
    role: role.name,
    policyArn: "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
  })
  // Session Manager instead of SSH: no inbound port on the hosts.
  new aws.iam.RolePolicyAttachment("HostSsmPolicy", {
    role: role.name,
    policyArn: "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
  })
  const profile = new aws.iam.InstanceProfile("HostProfile", { role: role.name })

  const userData = cluster.name.apply((name) =>
    Buffer.from(
      [
        "#!/bin/bash",
        "cat >> /etc/ecs/ecs.config <<EOF",
        `ECS_CLUSTER=${name}`,
        // Spot interruption notice: drain tasks in the two minutes before the host goes.
        "ECS_ENABLE_SPOT_INSTANCE_DRAINING=true",
        // Tasks do not get the host's instance credentials.
        "ECS_AWSVPC_BLOCK_IMDS=true",
        "ECS_CONTAINER_STOP_TIMEOUT=60s",
        "EOF",
        ""
      ].join("\n")
    ).toString("base64")
  )

  const templates = new Map<Architecture, aws.ec2.LaunchTemplate>()
  const templateFor = (architecture: Architecture) => {
    let template = templates.get(architecture)
    if (template === undefined) {
      template = new aws.ec2.LaunchTemplate(`HostTemplate${architecture === "arm64" ? "Arm64" : "X86"}`, {
        imageId: `resolve:ssm:${amiParameter[architecture]}`,
        iamInstanceProfile: { arn: profile.arn },
        vpcSecurityGroupIds: [net.securityGroups.host.id],
        userData,
        metadataOptions: { httpTokens: "required", httpEndpoint: "enabled", httpPutResponseHopLimit: 1 },
        blockDeviceMappings: [
          { deviceName: "/dev/xvda", ebs: { volumeSize: 30, volumeType: "gp3", encrypted: "true" } }
        ],
        updateDefaultVersion: true,
        tags: { "tessera:stage": stage }
      })
      templates.set(architecture, template)
    }
    return template
  }

  const providers = new Map<string, aws.ecs.CapacityProvider>()
  for (const fleet of config.fleets) {
    const name = fleetName(fleet)
    const template = templateFor(fleet.architecture)
    const group = new aws.autoscaling.Group(
      `${name}Hosts`,
      {
        minSize: 0,
        maxSize: fleet.maxInstances,
        vpcZoneIdentifiers: net.privateSubnets.map((subnet) => subnet.id),
        // Required by managed termination protection: ECS decides which hosts may go.
        protectFromScaleIn: true,
        capacityRebalance: fleet.purchase === "spot",
        healthCheckType: "EC2",
        mixedInstancesPolicy: {
          instancesDistribution: {
            onDemandBaseCapacity: 0,
            onDemandPercentageAboveBaseCapacity: fleet.purchase === "on-demand" ? 100 : 0,
            onDemandAllocationStrategy: "prioritized",
            spotAllocationStrategy: "price-capacity-optimized"
          },
          launchTemplate: {
            launchTemplateSpecification: { launchTemplateId: template.id, version: "$Default" },
            overrides: fleet.instanceTypes.map((instanceType) => ({ instanceType }))
          }
        },
        tags: [
          { key: "Name", value: `tessera-${stage}-${fleet.architecture}-${fleet.purchase}`, propagateAtLaunch: true },
          { key: "AmazonECSManaged", value: "true", propagateAtLaunch: true },
          { key: "tessera:stage", value: stage, propagateAtLaunch: true }
        ]
      },
      // ECS managed scaling owns the group's size.
      { ignoreChanges: ["desiredCapacity"] }
    )
    providers.set(
      fleetKey(fleet.architecture, fleet.purchase),
      new aws.ecs.CapacityProvider(`${name}Capacity`, {
        autoScalingGroupProvider: {
          autoScalingGroupArn: group.arn,
          managedTerminationProtection: "ENABLED",
          managedDraining: "ENABLED",
          managedScaling: {
            status: "ENABLED",
            targetCapacity: 100,
            minimumScalingStepSize: 1,
            maximumScalingStepSize: 4,
            instanceWarmupPeriod: 180
          }
        },
        tags: { "tessera:stage": stage, "tessera:architecture": fleet.architecture, "tessera:purchase": fleet.purchase }
      })
    )
  }

  const [first] = providers.values()
  const clusterProviders = new aws.ecs.ClusterCapacityProviders("ClusterCapacity", {
    clusterName: cluster.name,
    capacityProviders: [...providers.values()].map((provider) => provider.name),
    defaultCapacityProviderStrategies: [{ capacityProvider: first.name, weight: 1 }]
  })

  return { cluster, providers, clusterProviders }
}
