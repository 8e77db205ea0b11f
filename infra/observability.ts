/**
 * Metrics, traces and alarms in AWS (docs/deploy.md, "Observability"): every runner task carries an ADOT collector
 * sidecar that scrapes the runner's own `/metrics` and remote-writes it to an Amazon Managed Service for
 * Prometheus workspace, receives the runner's OTLP traces and sends them to X-Ray, and publishes the one
 * series the services scale on (the deepest SymbolShard mailbox) to CloudWatch as embedded metrics. The alarms
 * are Prometheus alerting rules in the workspace; its alert manager sends them to an SNS topic.
 */
import * as aws from "@pulumi/aws"
import * as pulumi from "@pulumi/pulumi"
import type { StageConfig } from "./stage.ts"

/** The ADOT collector image, pinned (it bundles the prometheus receiver, sigv4auth, awsxray and awsemf). */
export const collectorImage = "public.ecr.aws/aws-observability/aws-otel-collector:v0.40.0"
/** `job` label of every runner series the sidecar scrapes. */
export const scrapeJob = "tessera-runner"
/** Where the runner sends OTLP/HTTP traces: the sidecar, on the task's own loopback (awsvpc). */
export const otlpEndpoint = "http://127.0.0.1:4318"
export const scrapeIntervalSeconds = 15

/** The series the queue-depth scaling policy tracks, as the collector publishes it to CloudWatch. */
export const queueDepthMetric = {
  namespace: "Tessera",
  name: "effect_cluster_entity_mailbox_size_max",
  /** Dimensions: the stage (added by the scrape) and the entity type (the runtime's own label). */
  stageDimension: "stage",
  typeDimension: "type",
  entityType: "SymbolShard"
} as const

export interface Alarm {
  /** Alert name; docs/deploy.md has a section of the same name saying what it means and what to do. */
  readonly name: string
  /** PromQL over the runners' series; an alert is pending while it returns anything. */
  readonly expr: string
  /** How long `expr` must hold before the alert fires. */
  readonly for: string
  readonly summary: string
}

const job = `job="${scrapeJob}"`
const orderRpcs = `rpc=~"SymbolShard.Place|SymbolShard.PlaceBatch|Orders.PlaceMany"`

/**
 * The seed 004 §8.3 alarms, each on series the runtime really exports (runtime/metrics.ts, runtime/admission.ts,
 * actors/symbol-shard/metrics.ts, actors/gatherer/entity.ts, effect/cluster ClusterMetrics).
 */
export const alarms = (config: StageConfig): ReadonlyArray<Alarm> => [
  {
    name: "OrderLatencyP99High",
    expr: `histogram_quantile(0.99, sum by (le) (rate(tessera_gateway_request_duration_seconds_bucket{${job},${orderRpcs}}[1m]))) > 0.05`,
    for: "5m",
    summary: "p99 latency of order RPCs above 50 ms for 5 minutes"
  },
  {
    name: "AckedTpsLow",
    // Offered = orders that reached a shard (accepted or rejected) plus requests refused at admission.
    expr:
      `sum(rate(tessera_orders_total{${job},outcome="accepted"}[1m])) < 4000` +
      ` and (sum(rate(tessera_orders_total{${job}}[1m])) + (sum(rate(tessera_gateway_overloaded_total{${job}}[1m])) or vector(0))) > 4000`,
    for: "5m",
    summary: "fewer than 4,000 orders/s acknowledged while more than 4,000/s are offered"
  },
  {
    name: "ErrorRateHigh",
    expr:
      `sum(rate(tessera_gateway_requests_total{${job},outcome=~"error|defect"}[5m]))` +
      ` / sum(rate(tessera_gateway_requests_total{${job}}[5m])) > 0.01`,
    for: "5m",
    summary: "more than 1% of gateway RPCs end in an error or a defect"
  },
  {
    name: "QueueDepthHigh",
    expr: `max by (type) (effect_cluster_entity_mailbox_size_max{${job}}) > 1000`,
    for: "2m",
    summary: "an entity mailbox holds more than 1,000 requests"
  },
  {
    name: "RunnerDown",
    // A hung runner (its sidecar's scrape fails) or a runner the cluster registered but no longer finds healthy.
    expr:
      `up{${job}} == 0` + ` or (max(effect_cluster_runners{${job}}) - max(effect_cluster_runners_healthy{${job}})) > 0`,
    for: "1m",
    summary: "a runner does not answer its scrape, or the cluster counts an unhealthy runner"
  },
  {
    name: "ShardUnowned",
    expr: `(${config.shards} - sum(tessera_shards_held{${job}})) > 0` + ` or absent(tessera_shards_held{${job}})`,
    for: "1m",
    summary: `fewer than ${config.shards} shards are held by a runner`
  },
  {
    name: "GathererGapUnhealed",
    // A market is counted once its hole's snapshots failed a few times in a row (seconds after the gap, the
    // gatherer still retrying with backoff); still counted 30 s later, its gap has been unhealed for over 30 s.
    expr: `max by (dedup) (tessera_dedup_unhealed_markets{${job}}) > 0`,
    for: "30s",
    summary: "a deduplicator has a market whose gap no venue snapshot healed for more than 30 s"
  }
]

/** The alerting rules file (Prometheus rule-file YAML; JSON is YAML). */
export const ruleFile = (config: StageConfig): string =>
  JSON.stringify(
    {
      groups: [
        {
          name: "tessera",
          rules: alarms(config).map((alarm) => ({
            alert: alarm.name,
            expr: alarm.expr,
            for: alarm.for,
            labels: { severity: "page", stage: config.stage },
            annotations: { summary: alarm.summary, runbook: `docs/deploy.md#${alarm.name.toLowerCase()}` }
          }))
        }
      ]
    },
    null,
    2
  )

/**
 * The sidecar's configuration (JSON is YAML). `${env:...}` is expanded by the collector at start:
 * TESSERA_TOKEN (the scrape's bearer token) reaches the sidecar as an ECS secret, never in this text.
 */
export const collectorConfig = (stage: string, remoteWriteUrl: string, region: string, emfLogGroup: string) =>
  JSON.stringify({
    extensions: {
      sigv4auth: { region, service: "aps" },
      health_check: { endpoint: "127.0.0.1:13133" }
    },
    receivers: {
      otlp: { protocols: { http: { endpoint: "127.0.0.1:4318" }, grpc: { endpoint: "127.0.0.1:4317" } } },
      prometheus: {
        config: {
          scrape_configs: [
            {
              job_name: scrapeJob,
              scrape_interval: `${scrapeIntervalSeconds}s`,
              scrape_timeout: "10s",
              metrics_path: "/metrics",
              // biome-ignore lint/suspicious/noTemplateCurlyInString: the collector expands it, not JavaScript
              authorization: { type: "Bearer", credentials: "${env:TESSERA_TOKEN}" },
              static_configs: [{ targets: ["127.0.0.1:7400"] }],
              // Every sample carries the stage: the CloudWatch dimension the scaling policy selects on.
              metric_relabel_configs: [
                { target_label: queueDepthMetric.stageDimension, replacement: stage, action: "replace" }
              ]
            }
          ]
        }
      }
    },
    processors: {
      batch: { timeout: "10s" },
      "resourcedetection/ecs": { detectors: ["env", "ecs"], timeout: "2s", override: false },
      "filter/queuedepth": {
        metrics: { include: { match_type: "strict", metric_names: [queueDepthMetric.name] } }
      }
    },
    exporters: {
      prometheusremotewrite: {
        endpoint: remoteWriteUrl,
        auth: { authenticator: "sigv4auth" },
        resource_to_telemetry_conversion: { enabled: true }
      },
      awsxray: { region },
      awsemf: {
        region,
        namespace: queueDepthMetric.namespace,
        log_group_name: emfLogGroup,
        dimension_rollup_option: "NoDimensionRollup",
        metric_declarations: [
          {
            dimensions: [[queueDepthMetric.stageDimension, queueDepthMetric.typeDimension]],
            // No trailing `$`: the collector's config expansion reads `$` itself; no longer name shares the prefix.
            metric_name_selectors: [`^${queueDepthMetric.name}`]
          }
        ]
      }
    },
    service: {
      extensions: ["sigv4auth", "health_check"],
      pipelines: {
        "metrics/prometheus": {
          receivers: ["prometheus"],
          processors: ["resourcedetection/ecs", "batch"],
          exporters: ["prometheusremotewrite"]
        },
        "metrics/cloudwatch": {
          receivers: ["prometheus"],
          processors: ["filter/queuedepth", "batch"],
          exporters: ["awsemf"]
        },
        traces: { receivers: ["otlp"], processors: ["resourcedetection/ecs", "batch"], exporters: ["awsxray"] }
      }
    }
  })

export interface Observability {
  readonly workspace: aws.amp.Workspace
  /** `…/api/v1/remote_write` of the workspace. */
  readonly remoteWriteUrl: pulumi.Output<string>
  readonly alarmTopic: aws.sns.Topic
  /** Where the collector writes the embedded-metric records CloudWatch turns into the queue-depth metric. */
  readonly emfLogGroup: aws.cloudwatch.LogGroup
}

export const observability = (config: StageConfig, alarmEmail: string | undefined): Observability => {
  const { stage } = config
  const tags = { "tessera:stage": stage }
  const workspace = new aws.amp.Workspace("Metrics", { alias: `tessera-${stage}`, tags })
  const remoteWriteUrl = pulumi.interpolate`${workspace.prometheusEndpoint}api/v1/remote_write`

  new aws.amp.RuleGroupNamespace("Alarms", { name: "tessera", workspaceId: workspace.id, data: ruleFile(config) })

  const alarmTopic = new aws.sns.Topic("AlarmTopic", { name: `tessera-${stage}-alarms`, tags })
  new aws.sns.TopicPolicy("AlarmTopicFromPrometheus", {
    arn: alarmTopic.arn,
    policy: pulumi.jsonStringify({
      Version: "2012-10-17",
      Statement: [
        {
          Effect: "Allow",
          Principal: { Service: "aps.amazonaws.com" },
          Action: ["sns:Publish", "sns:GetTopicAttributes"],
          Resource: alarmTopic.arn,
          Condition: { ArnEquals: { "aws:SourceArn": workspace.arn } }
        }
      ]
    })
  })
  const region = aws.getRegionOutput().region
  new aws.amp.AlertManagerDefinition("AlarmRouting", {
    workspaceId: workspace.id,
    definition: pulumi.all([alarmTopic.arn, region]).apply(([topicArn, r]) =>
      JSON.stringify({
        alertmanager_config: JSON.stringify({
          route: { receiver: "sns", group_by: ["alertname"], repeat_interval: "1h" },
          receivers: [{ name: "sns", sns_configs: [{ topic_arn: topicArn, sigv4: { region: r } }] }]
        })
      })
    )
  })
  if (alarmEmail !== undefined) {
    new aws.sns.TopicSubscription("AlarmEmail", { topic: alarmTopic.arn, protocol: "email", endpoint: alarmEmail })
  }

  const emfLogGroup = new aws.cloudwatch.LogGroup("CollectorMetrics", {
    name: `/tessera/${stage}/metrics`,
    retentionInDays: config.logRetentionDays,
    tags
  })
  return { workspace, remoteWriteUrl, alarmTopic, emfLogGroup }
}

/**
 * RunnerDown for tasks that are gone rather than hung: a killed task takes its sidecar and its series with it, so
 * Container Insights' running count against the desired count of each runner service alarms on the same topic.
 */
export const taskCountAlarms = (
  config: StageConfig,
  clusterName: pulumi.Input<string>,
  services: ReadonlyMap<string, { readonly name: pulumi.Output<string> }>,
  alarmTopic: aws.sns.Topic
): ReadonlyArray<aws.cloudwatch.MetricAlarm> =>
  [...services].map(([architecture, service]) => {
    const metric = (id: string, metricName: string) => ({
      id,
      returnData: false,
      metric: {
        namespace: "ECS/ContainerInsights",
        metricName,
        period: 60,
        stat: "Average",
        dimensions: { ClusterName: clusterName, ServiceName: service.name }
      }
    })
    return new aws.cloudwatch.MetricAlarm(`RunnerDownTasks${architecture === "arm64" ? "Arm64" : "X86"}`, {
      name: `tessera-${config.stage}-RunnerDown-${architecture}`,
      alarmDescription: "runner tasks running fewer than desired for 3 minutes (docs/deploy.md#runnerdown)",
      comparisonOperator: "GreaterThanThreshold",
      threshold: 0,
      evaluationPeriods: 3,
      datapointsToAlarm: 3,
      // No data means Container Insights lost the service: as bad as missing tasks.
      treatMissingData: "breaching",
      metricQueries: [
        metric("desired", "DesiredTaskCount"),
        metric("running", "RunningTaskCount"),
        { id: "missing", expression: "desired - running", label: "runner tasks missing", returnData: true }
      ],
      alarmActions: [alarmTopic.arn],
      okActions: [alarmTopic.arn],
      tags: { "tessera:stage": config.stage }
    })
  })
