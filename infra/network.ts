/**
 * The VPC: public and private subnets over `availabilityZones` AZs, NAT (managed per AZ, or one instance), an S3
 * gateway endpoint, and the security groups. Every rule is its own `aws.vpc.SecurityGroup*Rule` resource so the
 * whole policy reads as the list below and the tests can check it rule by rule; groups carry no inline rules.
 *
 * Who talks to whom:
 *   internet  -> loadBalancer  80, 443
 *   loadBalancer -> runner     7400 (gateway)
 *   runner   -> runner         34431 (cluster transport)
 *   runner   -> database       5432
 *   runner   -> cache          6379
 *   runner, host -> internet   443 (ECR, AWS APIs, venue feeds), through NAT
 */
import * as aws from "@pulumi/aws"
import * as pulumi from "@pulumi/pulumi"
import { type NatConfig, ports, readerPort, type StageConfig } from "./stage.ts"

export const vpcCidr = "10.0.0.0/16"
/** Small public subnets (load balancer, NAT) and large private ones: awsvpc tasks take one address each. */
export const publicCidr = (az: number) => `10.0.${az * 4}.0/22`
export const privateCidr = (az: number) => `10.0.${32 + az * 32}.0/19`
const anywhere = "0.0.0.0/0"

export interface SecurityGroups {
  readonly loadBalancer: aws.ec2.SecurityGroup
  /** Runner tasks (awsvpc: each task's own network interface). */
  readonly runner: aws.ec2.SecurityGroup
  /** The EC2 container instances themselves: the ECS agent and image pulls, nothing inbound. */
  readonly host: aws.ec2.SecurityGroup
  readonly database: aws.ec2.SecurityGroup
  readonly cache: aws.ec2.SecurityGroup
}

export interface Network {
  readonly vpc: aws.ec2.Vpc
  readonly publicSubnets: ReadonlyArray<aws.ec2.Subnet>
  readonly privateSubnets: ReadonlyArray<aws.ec2.Subnet>
  readonly securityGroups: SecurityGroups
}

const tags = (stage: string, name: string) => ({ Name: `tessera-${stage}-${name}`, "tessera:stage": stage })

export const network = (config: StageConfig): Network => {
  const { stage } = config
  const zones = aws.getAvailabilityZonesOutput({ state: "available" })
  const region = aws.getRegionOutput()

  const vpc = new aws.ec2.Vpc("Vpc", {
    cidrBlock: vpcCidr,
    enableDnsHostnames: true,
    enableDnsSupport: true,
    tags: tags(stage, "vpc")
  })
  const internetGateway = new aws.ec2.InternetGateway("InternetGateway", { vpcId: vpc.id, tags: tags(stage, "igw") })

  const publicRoutes = new aws.ec2.RouteTable("PublicRouteTable", {
    vpcId: vpc.id,
    routes: [{ cidrBlock: anywhere, gatewayId: internetGateway.id }],
    tags: tags(stage, "public")
  })

  const publicSubnets: Array<aws.ec2.Subnet> = []
  const privateSubnets: Array<aws.ec2.Subnet> = []
  for (let az = 0; az < config.availabilityZones; az++) {
    const availabilityZone = zones.names.apply((names) => names[az])
    const pub = new aws.ec2.Subnet(`PublicSubnet${az + 1}`, {
      vpcId: vpc.id,
      cidrBlock: publicCidr(az),
      availabilityZone,
      mapPublicIpOnLaunch: true,
      tags: tags(stage, `public-${az + 1}`)
    })
    new aws.ec2.RouteTableAssociation(`PublicSubnet${az + 1}Routes`, {
      subnetId: pub.id,
      routeTableId: publicRoutes.id
    })
    publicSubnets.push(pub)
    privateSubnets.push(
      new aws.ec2.Subnet(`PrivateSubnet${az + 1}`, {
        vpcId: vpc.id,
        cidrBlock: privateCidr(az),
        availabilityZone,
        mapPublicIpOnLaunch: false,
        tags: tags(stage, `private-${az + 1}`)
      })
    )
  }

  const securityGroups = securityGroupsFor(stage, vpc, config.cache.mode === "serverless")
  const egressTargets = nat(config.nat, stage, vpc, publicSubnets)

  const privateRouteTables = privateSubnets.map((subnet, az) => {
    const table = new aws.ec2.RouteTable(`PrivateRouteTable${az + 1}`, {
      vpcId: vpc.id,
      routes: [{ cidrBlock: anywhere, ...egressTargets(az) }],
      tags: tags(stage, `private-${az + 1}`)
    })
    new aws.ec2.RouteTableAssociation(`PrivateSubnet${az + 1}Routes`, { subnetId: subnet.id, routeTableId: table.id })
    return table
  })

  // S3 traffic (ECR image layers, cold-tier snapshots) skips the NAT: free and not metered per GB.
  new aws.ec2.VpcEndpoint("S3Endpoint", {
    vpcId: vpc.id,
    serviceName: pulumi.interpolate`com.amazonaws.${region.region}.s3`,
    vpcEndpointType: "Gateway",
    routeTableIds: [publicRoutes.id, ...privateRouteTables.map((table) => table.id)],
    tags: tags(stage, "s3")
  })

  return { vpc, publicSubnets, privateSubnets, securityGroups }
}

/** Returns, per AZ, where that AZ's private route table sends internet-bound traffic. */
const nat = (
  config: NatConfig,
  stage: string,
  vpc: aws.ec2.Vpc,
  publicSubnets: ReadonlyArray<aws.ec2.Subnet>
): ((az: number) => { natGatewayId: pulumi.Output<string> } | { networkInterfaceId: pulumi.Output<string> }) => {
  if (config.mode === "managed") {
    const gateways = publicSubnets.map((subnet, az) => {
      const ip = new aws.ec2.Eip(`NatIp${az + 1}`, { domain: "vpc", tags: tags(stage, `nat-${az + 1}`) })
      return new aws.ec2.NatGateway(`NatGateway${az + 1}`, {
        allocationId: ip.id,
        subnetId: subnet.id,
        connectivityType: "public",
        tags: tags(stage, `nat-${az + 1}`)
      })
    })
    return (az) => ({ natGatewayId: gateways[az].id })
  }

  const natGroup = new aws.ec2.SecurityGroup("NatSecurityGroup", {
    vpcId: vpc.id,
    description: "NAT instance: HTTPS from inside the VPC out to the internet",
    tags: tags(stage, "nat")
  })
  new aws.vpc.SecurityGroupIngressRule("NatFromVpc", {
    securityGroupId: natGroup.id,
    ipProtocol: "tcp",
    fromPort: 443,
    toPort: 443,
    cidrIpv4: vpcCidr,
    description: "HTTPS from private subnets"
  })
  new aws.vpc.SecurityGroupEgressRule("NatToInternet", {
    securityGroupId: natGroup.id,
    ipProtocol: "tcp",
    fromPort: 443,
    toPort: 443,
    cidrIpv4: anywhere,
    description: "HTTPS out"
  })
  const template = new aws.ec2.LaunchTemplate("NatLaunchTemplate", {
    // Resolved by EC2 at launch: the current Amazon Linux 2023 AMI without a lookup at deploy time.
    imageId: "resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64",
    metadataOptions: { httpTokens: "required", httpEndpoint: "enabled" },
    tags: tags(stage, "nat")
  })
  const instance = new aws.ec2.Instance("NatInstance", {
    launchTemplate: { id: template.id, version: pulumi.interpolate`${template.latestVersion}` },
    instanceType: config.instanceType,
    subnetId: publicSubnets[0].id,
    associatePublicIpAddress: true,
    sourceDestCheck: false,
    vpcSecurityGroupIds: [natGroup.id],
    userData: natUserData,
    userDataReplaceOnChange: true,
    tags: tags(stage, "nat")
  })
  return () => ({ networkInterfaceId: instance.primaryNetworkInterfaceId })
}

const natUserData = `#!/bin/bash
set -euo pipefail
dnf install -y iptables-services
echo "net.ipv4.ip_forward = 1" > /etc/sysctl.d/90-nat.conf
sysctl --system
out=$(ip route show default | awk '{print $5; exit}')
iptables -t nat -A POSTROUTING -o "$out" -s ${vpcCidr} -j MASQUERADE
iptables -F FORWARD
iptables-save > /etc/sysconfig/iptables
systemctl enable iptables
`

const securityGroupsFor = (stage: string, vpc: aws.ec2.Vpc, serverlessCache: boolean): SecurityGroups => {
  const group = (name: string, description: string) =>
    new aws.ec2.SecurityGroup(`${name}SecurityGroup`, { vpcId: vpc.id, description, tags: tags(stage, name) })
  const loadBalancer = group("LoadBalancer", "Tessera load balancer: HTTP(S) in, gateway out")
  const runner = group("Runner", "Tessera runner tasks")
  const host = group("Host", "Tessera ECS container instances")
  const database = group("Database", "Tessera Aurora PostgreSQL")
  const cache = group("Cache", "Tessera ElastiCache Valkey")

  const allow = (
    name: string,
    to: aws.ec2.SecurityGroup,
    port: number,
    from: aws.ec2.SecurityGroup | string,
    description: string
  ) => {
    const source = typeof from === "string" ? { cidrIpv4: from } : { referencedSecurityGroupId: from.id }
    const rule = { ipProtocol: "tcp", fromPort: port, toPort: port, description }
    new aws.vpc.SecurityGroupIngressRule(`${name}In`, { securityGroupId: to.id, ...source, ...rule })
    if (typeof from !== "string") {
      new aws.vpc.SecurityGroupEgressRule(`${name}Out`, {
        securityGroupId: from.id,
        referencedSecurityGroupId: to.id,
        ...rule
      })
    }
  }
  const allowOut = (name: string, from: aws.ec2.SecurityGroup, port: number, description: string) =>
    new aws.vpc.SecurityGroupEgressRule(name, {
      securityGroupId: from.id,
      ipProtocol: "tcp",
      fromPort: port,
      toPort: port,
      cidrIpv4: anywhere,
      description
    })

  allow("HttpToLoadBalancer", loadBalancer, 80, anywhere, "HTTP from the internet")
  allow("HttpsToLoadBalancer", loadBalancer, 443, anywhere, "HTTPS from the internet")
  allow("LoadBalancerToGateway", runner, ports.gateway, loadBalancer, "gateway, only through the load balancer")
  allow("RunnerToRunner", runner, ports.clusterTransport, runner, "cluster transport between runners")
  allow("RunnerToStandby", runner, ports.clusterStandby, runner, "standby runners (graph partitions of other zones)")
  allow("RunnerToDatabase", database, ports.postgres, runner, "PostgreSQL from runners")
  allow("RunnerToCache", cache, ports.valkey, runner, "Valkey from runners")
  if (serverlessCache) allow("RunnerToCacheReader", cache, readerPort, runner, "Valkey zone-local reads from runners")
  allowOut("RunnerToInternet", runner, 443, "HTTPS out: AWS APIs, venue feeds")
  allowOut("HostToInternet", host, 443, "HTTPS out: ECS agent, ECR image pulls")

  return { loadBalancer, runner, host, database, cache }
}
