/**
 * Evaluates the whole stack for a stage under Pulumi mocks (`runtime.setMocks`): no AWS, no Pulumi CLI, no
 * plugins. Every resource registration is recorded with its resolved inputs; data-source calls get fixed answers.
 * Ids are `<logical name>-id`, so a rule can be traced back to the group it names.
 */
import * as pulumi from "@pulumi/pulumi"
import { tessera } from "./index.ts"
import type { DeployInputs } from "./runners.ts"
import type { StageConfig } from "./stage.ts"

export interface Recorded {
  readonly type: string
  readonly name: string
  readonly id: string
  /** Resolved inputs: an untyped property bag, as Pulumi hands it to the mocks. */
  readonly inputs: Record<string, any>
}

export const zones = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1f"]
export const region = "us-east-1"
/** Every generated password resolves to this under mocks, so tests can look for leaks of it. */
export const mockPassword = "MOCKPASSWORDdoNotLeak0123456789"

const computed = (type: string, name: string, inputs: Record<string, unknown>): Record<string, unknown> => {
  const arn = `arn:aws:mock:${region}:123456789012:${type}/${name}`
  const base = { arn, name: inputs.name ?? `${name}-name` }
  switch (type) {
    case "random:index/randomPassword:RandomPassword":
      return { result: mockPassword }
    case "aws:rds/cluster:Cluster":
      return { ...base, endpoint: `${name}.cluster-mock.${region}.rds.amazonaws.com`, port: inputs.port ?? 5432 }
    case "aws:elasticache/serverlessCache:ServerlessCache":
      return { ...base, endpoints: [{ address: `${name}.serverless.mock.cache.amazonaws.com`, port: 6379 }] }
    case "aws:elasticache/replicationGroup:ReplicationGroup":
      return { ...base, configurationEndpointAddress: `clustercfg.${name}.mock.cache.amazonaws.com` }
    case "aws:ec2/launchTemplate:LaunchTemplate":
      return { ...base, latestVersion: 1 }
    case "aws:ec2/instance:Instance":
      return { ...base, primaryNetworkInterfaceId: `${name}-eni` }
    case "aws:lb/loadBalancer:LoadBalancer":
      return { ...base, dnsName: `${name}.mock.elb.amazonaws.com` }
    case "aws:ecr/repository:Repository":
      return { ...base, repositoryUrl: `123456789012.dkr.ecr.${region}.amazonaws.com/${name}` }
    case "aws:s3/bucket:Bucket":
      return { ...base, bucket: `${name.toLowerCase()}-mock` }
    case "aws:amp/workspace:Workspace":
      return { ...base, prometheusEndpoint: `https://aps-workspaces.${region}.amazonaws.com/workspaces/ws-mock/` }
    case "docker-build:index:Image":
      return { ...base, ref: `${(inputs.tags as Array<string>)[0]}@sha256:${"0".repeat(64)}`, digest: "sha256:mock" }
    case "aws:acm/certificate:Certificate":
      return {
        ...base,
        domainValidationOptions: [
          {
            domainName: inputs.domainName,
            resourceRecordName: `_mock.${inputs.domainName}.`,
            resourceRecordType: "CNAME",
            resourceRecordValue: "_mock.acm-validations.aws."
          }
        ]
      }
    case "aws:acm/certificateValidation:CertificateValidation":
      return { ...base, certificateArn: inputs.certificateArn }
    case "aws:route53/record:Record":
      return { ...base, fqdn: inputs.name }
    default:
      return base
  }
}

const settle = (value: unknown, done: (value: unknown) => void) => {
  const output: pulumi.Output<unknown> = pulumi.output(value)
  output.apply(done)
}

/** Runs a Pulumi program (anything that declares resources and returns outputs) against mocks as `stack`. */
export const evaluateProgram = async (
  stack: string,
  program: () => Promise<Record<string, unknown> | void> | Record<string, unknown>
): Promise<ReadonlyArray<Recorded>> => {
  const resources: Array<Recorded> = []
  await pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        const id = `${args.name}-id`
        resources.push({ type: args.type, name: args.name, id, inputs: args.inputs })
        return { id, state: { ...args.inputs, ...computed(args.type, args.name, args.inputs) } }
      },
      call: (args) => {
        switch (args.token) {
          case "aws:index/getAvailabilityZones:getAvailabilityZones":
            return { names: zones, zoneIds: zones.map((_, i) => `use1-az${i + 1}`), id: region }
          case "aws:index/getRegion:getRegion":
            return { name: region, region, id: region }
          case "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            return { userName: "AWS", password: mockPassword, proxyEndpoint: "https://mock", id: region }
          default:
            return args.inputs
        }
      }
    },
    "tessera",
    stack,
    false
  )
  const outputs = (await program()) ?? {}
  await Promise.all(Object.values(outputs).map((output) => new Promise((resolve) => settle(output, resolve))))
  // Waits for every outstanding registration, including those that waited on other resources' outputs.
  await pulumi.runtime.disconnect()
  return resources
}

/** Registers the stage's stack against mocks and returns every resource it declared. */
export const evaluate = (
  config: StageConfig,
  inputs: DeployInputs = {
    imageTag: "test",
    ...(config.https === "required" ? { domain: "tessera.example.com", hostedZoneId: "Z123MOCK" } : {})
  }
): Promise<ReadonlyArray<Recorded>> => evaluateProgram(config.stage, () => tessera(config, inputs))

export const ofType = (resources: ReadonlyArray<Recorded>, type: string) => resources.filter((r) => r.type === type)

export const named = (resources: ReadonlyArray<Recorded>, name: string): Recorded => {
  const found = resources.find((r) => r.name === name)
  if (found === undefined) throw new Error(`no resource named ${name}`)
  return found
}
