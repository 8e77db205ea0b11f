/**
 * Tessera's AWS home for one stage: `sst.config.ts` calls `tessera(stageConfig($app.stage), inputs)`. Each module
 * is a function of the stage shape and the resources it depends on, so tests evaluate the same code under Pulumi
 * mocks without the SST CLI.
 */
import { cache } from "./cache.ts"
import { capacity } from "./capacity.ts"
import { database } from "./database.ts"
import { network } from "./network.ts"
import { observability, taskCountAlarms } from "./observability.ts"
import { type DeployInputs, runners } from "./runners.ts"
import type { StageConfig } from "./stage.ts"
import { storage } from "./storage.ts"

export const tessera = (config: StageConfig, inputs: DeployInputs) => {
  const net = network(config)
  const db = database(config, net)
  const valkey = cache(config, net)
  const snapshots = storage(config)
  const compute = capacity(config, net)
  const telemetry = observability(config, inputs.alarmEmail)
  const run = runners(
    config,
    { network: net, database: db, cache: valkey, storage: snapshots, capacity: compute, observability: telemetry },
    inputs
  )
  taskCountAlarms(config, compute.cluster.name, run.services, telemetry.alarmTopic)
  return {
    url: run.url,
    repository: run.repository.repositoryUrl,
    cluster: compute.cluster.name,
    database: db.cluster.endpoint,
    cache: valkey.host,
    snapshots: snapshots.snapshots.bucket,
    tokenSecret: run.tokenSecret.name,
    clusterSecret: run.clusterSecret.name,
    marketDataCredentials: valkey.marketDataSecret.name,
    image: run.image.ref,
    prometheus: telemetry.workspace.prometheusEndpoint,
    alarmTopic: telemetry.alarmTopic.arn,
    ...(run.certificateValidation === undefined ? {} : { certificateValidation: run.certificateValidation })
  }
}
