/**
 * Tessera's configuration: the only module that reads the environment.
 *
 * Every setting has a documented default, so `npm start` needs no environment at all. Bad values fail at
 * startup with a `ConfigError` naming the variable, never later at first use.
 */
import { readFileSync } from "node:fs"
import { duration, invalid, port, positiveInt, url } from "@tessera/platform/ConfigKit"
import { Config, ConfigProvider, Context, Duration, Effect, Layer, Option, Redacted } from "effect"

/** One token of `TESSERA_TOKENS`: the accounts it may act for (`"*"`: all) and whether it may call admin RPCs. */
export interface TokenGrant {
  readonly token: Redacted.Redacted<string>
  readonly accounts: ReadonlyArray<string> | "*"
  readonly admin: boolean
}

/** One table's retention (`TESSERA_RETENTION`): rows older than `age` are archived, then deleted. */
export interface RetentionSetting {
  /** A module's retention name (`orderbook_deltas`, `trades`, `orders`, `journal`). */
  readonly name: string
  readonly age: Duration.Duration
}

/** Where the gateway sends `Strict-Transport-Security` (`TESSERA_HSTS`). */
export type HstsMode = "auto" | "on" | "off"

export interface TesseraConfigShape {
  /** Postgres URL (`DATABASE_URL`). None: embedded node:sqlite storage under `dataDir`. */
  readonly databaseUrl: Option.Option<Redacted.Redacted<string>>
  /** Valkey / Redis URL (`REDIS_URL`). None: the in-memory Valkey layer. */
  readonly redisUrl: Option.Option<Redacted.Redacted<string>>
  /**
   * Valkey / Redis Cluster mode (`REDIS_CLUSTER`, default false): `REDIS_URL` names a seed node (ElastiCache: the
   * cluster-mode configuration endpoint) and commands follow the cluster's slot map.
   */
  readonly redisCluster: boolean
  /**
   * A Valkey replica in this runner's zone (`TESSERA_VALKEY_REPLICA_URL`; with `REDIS_CLUSTER`, any node: reads go to
   * each slot's replicas). Reads that tolerate staleness (the graph gateway's direct reads) go there while its lag is
   * at most `redisReplicaMaxLag`, and to the primary otherwise or when it fails. None: every read on the primary.
   */
  readonly redisReplicaUrl: Option.Option<Redacted.Redacted<string>>
  /**
   * Largest replica lag at which the replica still serves reads (`TESSERA_VALKEY_REPLICA_MAX_LAG`, default 1
   * second), measured every `max(100 ms, lag / 4)`: a replica read misses at most the last `lag + lag / 4` of writes.
   */
  readonly redisReplicaMaxLag: Duration.Duration
  /**
   * The URL clients reach this runner's gateway at (`TESSERA_GATEWAY_URL`, e.g. its zone's load balancer), announced
   * in routing tables (the graph's `Graph.Routing`); `{zone}` in it stands for `TESSERA_ZONE` (a zonal load-balancer
   * name, `http://{zone}.<dns>`). None: `http://TESSERA_HOST:TESSERA_PORT` when that host is a concrete address and
   * the port fixed, else not announced.
   */
  readonly gatewayUrl: Option.Option<string>
  /**
   * Postgres connect timeout (`TESSERA_PG_CONNECT_TIMEOUT`, default 5 seconds): one connection attempt, TCP to
   * authenticated, so an unreachable server fails a checkout instead of hanging it.
   */
  readonly pgConnectTimeout: Duration.Duration
  /**
   * Idle time before TCP keepalive probes start on a Postgres connection (`TESSERA_PG_KEEPALIVE`, default 10
   * seconds, whole seconds): a peer that vanished while the connection idled is noticed about 10 s later.
   */
  readonly pgKeepAlive: Duration.Duration
  /**
   * Server-side `statement_timeout` of every Postgres session (`TESSERA_PG_STATEMENT_TIMEOUT`, default 10 seconds;
   * 0 disables it): a statement stuck on a lock or a sick server ends with an error. Every Tessera statement takes
   * milliseconds; the cluster's shard-lock session only runs non-blocking `pg_try_advisory_lock` statements.
   */
  readonly pgStatementTimeout: Duration.Duration
  /**
   * Server-side `idle_in_transaction_session_timeout` (`TESSERA_PG_IDLE_IN_TRANSACTION_TIMEOUT`, default 10 seconds;
   * 0 disables it): a runner cut off inside a transaction loses that session, so its row locks (the owner rows
   * other runners claim) do not outlive it.
   */
  readonly pgIdleInTransactionTimeout: Duration.Duration
  /**
   * Valkey command timeout (`TESSERA_REDIS_COMMAND_TIMEOUT`, default 2 seconds): a command without a reply by then
   * fails with a `Connection` `ValkeyError` instead of waiting on a dead or black-holed server. XREAD BLOCK reads
   * have their own bound (their block time plus a grace).
   */
  readonly redisCommandTimeout: Duration.Duration
  /** Gateway port (`TESSERA_PORT`, default 7400). 0 picks a free port. */
  readonly port: number
  /** Gateway bind address (`TESSERA_HOST`, default 127.0.0.1; containers set 0.0.0.0). */
  readonly host: string
  /** Address other runners use to reach this one (`TESSERA_RUNNER_HOST`, default localhost). */
  readonly runnerHost: string
  /** Cluster transport port (`TESSERA_RUNNER_PORT`, default 34431). */
  readonly runnerPort: number
  /**
   * Bearer token the gateway requires (`TESSERA_TOKEN`): full access, admin. None (and no `tokens`): no auth (local
   * use only).
   */
  readonly token: Option.Option<Redacted.Redacted<string>>
  /**
   * Tokens scoped to accounts (`TESSERA_TOKENS`: a file path, or inline JSON starting with `{`), e.g.
   * `{"<token>": {"accounts": ["a1"], "admin": false}}`; accepted besides `token`.
   */
  readonly tokens: ReadonlyArray<TokenGrant>
  /**
   * `Strict-Transport-Security` on gateway answers (`TESSERA_HSTS`, default `auto`): `auto` when the request came
   * through a TLS-terminating proxy (`X-Forwarded-Proto: https`), `on` always, `off` never.
   */
  readonly hsts: HstsMode
  /**
   * Shared secret of the runner-to-runner transport (`TESSERA_CLUSTER_SECRET`, at least 16 characters). Set: the
   * transport is TLS with this pre-shared key, so a runner without it can neither connect nor be connected to.
   * None: plain TCP (a trusted network only).
   */
  readonly clusterSecret: Option.Option<Redacted.Redacted<string>>
  /**
   * A second secret this runner accepts from peers (`TESSERA_CLUSTER_SECRET_ACCEPTED`), for rotation: it still
   * connects with `clusterSecret`.
   */
  readonly clusterSecretAccepted: Option.Option<Redacted.Redacted<string>>
  /** Embedded data folder (`TESSERA_DATA`, default `.tessera`). */
  readonly dataDir: string
  /**
   * Availability zone of this runner (`TESSERA_ZONE`). Modules with zone groups (the graph's `TESSERA_GRAPH_ZONES`)
   * prefer runners of each group's zone; a runner stands by for the other zones' groups.
   */
  readonly zone: Option.Option<string>
  /**
   * Cluster transport port of this runner's standby identity (`TESSERA_STANDBY_PORT`, default `runnerPort + 1`). Only
   * used when a module declares zone groups, in a multi-runner cluster: the standby holds, at a small weight, the
   * other zones' groups, so they stay served when their own zone has no live runner.
   */
  readonly standbyPort: Option.Option<number>
  /** Largest request body the gateway reads (`TESSERA_MAX_BODY_BYTES`, default 1 MiB). */
  readonly maxBodyBytes: number
  /**
   * Longest a client may take to send a request's headers (`TESSERA_HTTP_HEADERS_TIMEOUT`, default 10 seconds): a
   * slow-loris client that trickles them is answered 408 and disconnected instead of holding a socket forever.
   */
  readonly httpHeadersTimeout: Duration.Duration
  /** Longest a client may take to send a whole request, body included (`TESSERA_HTTP_REQUEST_TIMEOUT`, default 30 s). */
  readonly httpRequestTimeout: Duration.Duration
  /**
   * Admission bound of this runner's gateway (`TESSERA_MAX_IN_FLIGHT`, default 2000): the weight of the requests it
   * handles at once (a request weighs 1, an order RPC the orders it carries). Past it a request is refused with a
   * typed `Overloaded` at once, so what is admitted keeps its normal latency instead of joining an unbounded queue.
   */
  readonly maxInFlight: number
  /** The same bound per client connection (`TESSERA_MAX_IN_FLIGHT_PER_CONNECTION`, default 2000). */
  readonly maxInFlightPerConnection: number
  /**
   * Client connections the gateway holds open at once (`TESSERA_MAX_CONNECTIONS`, default 10000); a connection past
   * it is closed on arrival, so a client opening sockets without end cannot exhaust the runner's file descriptors.
   */
  readonly maxConnections: number
  /** Retry hint sent with `Overloaded`, in milliseconds (`TESSERA_OVERLOAD_RETRY_AFTER_MS`, default 50). */
  readonly overloadRetryAfterMs: number
  /**
   * Latency an admitted request should stay under, in milliseconds (`TESSERA_ADMISSION_TARGET_MS`, default 250): the
   * runner's admission limit shrinks while more than a tenth of its requests take longer, and grows back after. A
   * backstop: a symbol shard holds its own backlog to `TESSERA_SHARD_MAX_QUEUE_DELAY`; a gateway target near the
   * journal's own latency kept the limit at its floor and cut what the runner acks past saturation.
   */
  readonly admissionTargetMs: number
  /**
   * The floor of the runner's adaptive admission limit (`TESSERA_MIN_IN_FLIGHT`, default 256, at most
   * `TESSERA_MAX_IN_FLIGHT`). Orders in flight are what group commit batches, so the floor over the journal's latency
   * bounds what the runner can ack while the limit sits at it.
   */
  readonly minInFlight: number
  /**
   * How long an admitted request may hold its admission weight, in milliseconds (`TESSERA_ADMISSION_HOLD_MS`, default
   * 10000). A request still running after it (stuck behind a shard that never answers) is counted as expired and
   * no longer holds back admission, so a handful of stuck requests cannot refuse everything after them for good.
   */
  readonly admissionHoldMs: number
  /**
   * How long the gateway waits for an entity's answer to a request sent through its entity proxy, in milliseconds
   * (`TESSERA_REQUEST_TIMEOUT_MS`, default 10000); past it the request is answered `RequestTimeout` (it may still
   * complete: retry with the same keys). Sharding retries a send while no runner holds its shard, for good.
   */
  readonly requestTimeoutMs: number
  /** Shards per group (`TESSERA_SHARDS`, default 300). Must be equal on every runner. */
  readonly shardsPerGroup: number
  /**
   * Shard-lock expiry (`TESSERA_SHARD_LOCK_EXPIRATION`, default 5 seconds). A dead runner's shards become
   * free after this long. Stock Effect uses 35 s, which measured ~36 s failover here (DESIGN §6); 5 s with a
   * 1 s refresh measured 3.3-5.2 s with every persisted message delivered once.
   */
  readonly shardLockExpiration: Duration.Duration
  /** Shard-lock refresh (`TESSERA_SHARD_LOCK_REFRESH`, default 1 second): well under a third of the expiry. */
  readonly shardLockRefresh: Duration.Duration
  /** Assignment refresh (`TESSERA_ASSIGNMENT_REFRESH`, default 500 ms): how soon a runner sees a departure. */
  readonly assignmentRefresh: Duration.Duration
  /**
   * Runner health check (`TESSERA_HEALTH_CHECK`, default 1 second): how soon a dead runner is noticed. A kill -9
   * ends its Postgres session, so its locks go at once; detection is what bounds failover (2 s measured 5.0 s to every
   * symbol answering in `npm run bench -- failover`, 1 s 4.0-5.0 s; pings are retried, so a busy runner is not
   * declared dead on one miss).
   */
  readonly healthCheck: Duration.Duration
  /** Persisted-message poll (`TESSERA_MESSAGE_POLL`, default 1 second): how soon orphaned messages are resent. */
  readonly messagePoll: Duration.Duration
  /** Idle time before an entity is passivated (`TESSERA_ENTITY_MAX_IDLE`, default 5 minutes). */
  readonly entityMaxIdle: Duration.Duration
  /**
   * Bound on a stop (`TESSERA_DRAIN_TIMEOUT`, default 30 seconds, at least 1 second): on SIGTERM the node refuses new
   * requests, finishes those in flight (half of it at most), hands its shards over and flushes; past it, it exits 1.
   * An orchestrator's kill timeout (ECS `stopTimeout`) must exceed it.
   */
  readonly drainTimeout: Duration.Duration
  /**
   * How long a stopping node keeps answering `/ready` 503 and refusing requests before it hands its shards over
   * (`TESSERA_DRAIN_GRACE`, default 0: ECS takes a task out of its target group before SIGTERM). Set it above the
   * readiness period of a load balancer that only polls `/ready`; it counts within `TESSERA_DRAIN_TIMEOUT`.
   */
  readonly drainGrace: Duration.Duration
  /**
   * Whether this node applies the schema at startup (`TESSERA_MIGRATE`, default true). Off, it runs no DDL and
   * needs the schema `tessera-migrate` applied as the owner role, so it can connect as the application role.
   */
  readonly migrate: boolean
  /**
   * The application role `tessera-migrate` creates or updates (`TESSERA_APP_DB_ROLE`, default `tessera_app`): DML
   * on every table, no DDL.
   */
  readonly appDbRole: string
  /** Its password (`TESSERA_APP_DB_PASSWORD`). None: `tessera-migrate` leaves roles alone. */
  readonly appDbPassword: Option.Option<Redacted.Redacted<string>>
  /** OTLP/HTTP collector base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`). None: no trace export, no cost. */
  readonly otlpEndpoint: Option.Option<string>
  /** Service name on exported traces (`OTEL_SERVICE_NAME`, default `tessera`). */
  readonly otelServiceName: string
  /** Share of root traces kept (`OTEL_TRACES_SAMPLER_ARG`, 0..1, default 1); children follow their parent. */
  readonly traceSampleRatio: number
  /**
   * Retention per table (`TESSERA_RETENTION`, e.g. `orderbook_deltas=7 days,trades=365 days`; default none: nothing
   * is archived or deleted). Names are those the modules declare; each age is at least one hour.
   */
  readonly retention: ReadonlyArray<RetentionSetting>
  /** How often the retention job runs (`TESSERA_RETENTION_INTERVAL`, default 1 minute). */
  readonly retentionInterval: Duration.Duration
  /** Rows per archive object (`TESSERA_RETENTION_BATCH_ROWS`, default 5000), read and deleted in small statements. */
  readonly retentionBatchRows: number
  /**
   * Archive objects per table per run (`TESSERA_RETENTION_MAX_BATCHES`, default 4): bounds the job's work per run, so
   * a backlog (retention just turned on) drains over many runs instead of loading the database at once.
   */
  readonly retentionMaxBatches: number
  /** Archive store (`TESSERA_ARCHIVE`): `s3://bucket/prefix` or a folder. None: the folder `archive` under `dataDir`. */
  readonly archive: Option.Option<string>
  /** S3 endpoint of an S3-compatible archive store (`TESSERA_S3_ENDPOINT`, e.g. a local server). None: AWS. */
  readonly s3Endpoint: Option.Option<string>
}

export class TesseraConfig extends Context.Service<TesseraConfig, TesseraConfigShape>()("tessera/runtime/Config") {}

export const defaults: TesseraConfigShape = {
  databaseUrl: Option.none(),
  redisUrl: Option.none(),
  redisCluster: false,
  redisReplicaUrl: Option.none(),
  redisReplicaMaxLag: Duration.seconds(1),
  gatewayUrl: Option.none(),
  pgConnectTimeout: Duration.seconds(5),
  pgKeepAlive: Duration.seconds(10),
  pgStatementTimeout: Duration.seconds(10),
  pgIdleInTransactionTimeout: Duration.seconds(10),
  redisCommandTimeout: Duration.seconds(2),
  port: 7400,
  host: "127.0.0.1",
  runnerHost: "localhost",
  runnerPort: 34431,
  token: Option.none(),
  tokens: [],
  hsts: "auto",
  clusterSecret: Option.none(),
  clusterSecretAccepted: Option.none(),
  dataDir: ".tessera",
  zone: Option.none(),
  standbyPort: Option.none(),
  maxBodyBytes: 1024 * 1024,
  httpHeadersTimeout: Duration.seconds(10),
  httpRequestTimeout: Duration.seconds(30),
  maxInFlight: 2000,
  maxInFlightPerConnection: 2000,
  maxConnections: 10_000,
  overloadRetryAfterMs: 50,
  admissionTargetMs: 250,
  minInFlight: 256,
  admissionHoldMs: 10_000,
  requestTimeoutMs: 10_000,
  shardsPerGroup: 300,
  shardLockExpiration: Duration.seconds(5),
  shardLockRefresh: Duration.seconds(1),
  assignmentRefresh: Duration.millis(500),
  healthCheck: Duration.seconds(1),
  messagePoll: Duration.seconds(1),
  entityMaxIdle: Duration.minutes(5),
  drainTimeout: Duration.seconds(30),
  drainGrace: Duration.zero,
  migrate: true,
  appDbRole: "tessera_app",
  appDbPassword: Option.none(),
  otlpEndpoint: Option.none(),
  otelServiceName: "tessera",
  traceSampleRatio: 1,
  retention: [],
  retentionInterval: Duration.minutes(1),
  retentionBatchRows: 5000,
  retentionMaxBatches: 4,
  archive: Option.none(),
  s3Endpoint: Option.none()
}

/** A duration of at least `min`, in whole milliseconds (Postgres reads its timeouts as integer milliseconds). */
const boundedDuration = (name: string, fallback: Duration.Duration, min: Duration.Duration, meaning: string) =>
  duration(name, fallback).pipe(
    Config.mapEffect((value) =>
      Duration.isGreaterThanOrEqualTo(value, min) && Number.isSafeInteger(Duration.toMillis(value))
        ? Effect.succeed(value)
        : Effect.fail(invalid(`${name} must be ${meaning}, got ${Duration.format(value)}`))
    )
  )

/** The grants of a `TESSERA_TOKENS` document; a problem is described without ever quoting a token. */
export const parseTokens = (text: string): ReadonlyArray<TokenGrant> | string => {
  let document: unknown
  try {
    document = JSON.parse(text)
  } catch (error) {
    return `is not valid JSON (${(error as Error).message.replace(/"[^"]*"/g, "…")})`
  }
  if (typeof document !== "object" || document === null || Array.isArray(document)) {
    return 'must be a JSON object: {"<token>": {"accounts": ["<account>", ...] or "*", "admin": true|false}}'
  }
  const grants: Array<TokenGrant> = []
  let n = 0
  for (const [token, grant] of Object.entries(document)) {
    n++
    // Tokens are named by position: a config error is logged, and a token must never be.
    if (token.length < 16 || /\s/.test(token)) return `token #${n} must be at least 16 characters with no whitespace`
    if (typeof grant !== "object" || grant === null) return `token #${n} must map to {"accounts": [...], "admin": ...}`
    const { accounts, admin, ...rest } = grant as { accounts?: unknown; admin?: unknown }
    const extra = Object.keys(rest)
    if (extra.length > 0) return `token #${n} has unknown field ${JSON.stringify(extra[0])} (accounts, admin)`
    if (admin !== undefined && typeof admin !== "boolean") return `token #${n}: admin must be true or false`
    if (
      accounts !== "*" &&
      !(
        Array.isArray(accounts) &&
        accounts.every((account) => typeof account === "string" && account.length >= 1 && account.length <= 64)
      )
    ) {
      return `token #${n}: accounts must be "*" or a list of account ids (1-64 characters)`
    }
    grants.push({ token: Redacted.make(token), accounts: accounts as TokenGrant["accounts"], admin: admin === true })
  }
  return grants
}

const tokensConfig = Config.String("TESSERA_TOKENS").pipe(
  Config.mapEffect((value) => {
    const inline = value.trimStart().startsWith("{")
    let text = value
    if (!inline) {
      try {
        text = readFileSync(value, "utf8")
      } catch (error) {
        return Effect.fail(invalid(`TESSERA_TOKENS: cannot read file ${value}: ${(error as Error).message}`))
      }
    }
    const grants = parseTokens(text)
    return typeof grants === "string"
      ? Effect.fail(invalid(`TESSERA_TOKENS ${inline ? "(inline JSON)" : `(file ${value})`} ${grants}`))
      : Effect.succeed(grants)
  }),
  Config.withDefault([] as ReadonlyArray<TokenGrant>)
)

/** `name=duration,...` of `TESSERA_RETENTION`, or what is wrong with it. */
export const parseRetention = (text: string): ReadonlyArray<RetentionSetting> | string => {
  const settings: Array<RetentionSetting> = []
  for (const part of text.split(",")) {
    if (part.trim() === "") continue
    const match = /^\s*([a-z][a-z0-9_]{0,62})\s*=\s*(.+?)\s*$/.exec(part)
    if (match === null) return `entries are name=duration (e.g. trades=90 days), got ${JSON.stringify(part.trim())}`
    const [, name, ageText] = match
    const age = Duration.fromInput(ageText as Duration.Input)
    if (age._tag === "None") return `${name}: ${JSON.stringify(ageText)} is not a duration (e.g. 90 days, 12 hours)`
    // A typo such as "7 minutes" for days would archive the live data away: ages start at an hour.
    if (!Duration.isGreaterThanOrEqualTo(age.value, Duration.hours(1))) {
      return `${name}: retention must be 1 hour or more`
    }
    if (settings.some((s) => s.name === name)) return `${name} is listed twice`
    settings.push({ name, age: age.value })
  }
  return settings
}

const clusterSecretConfig = (name: string) =>
  Config.Redacted(name).pipe(
    Config.mapEffect((secret) =>
      Redacted.value(secret).length >= 16
        ? Effect.succeed(secret)
        : Effect.fail(invalid(`${name} must be at least 16 characters`))
    ),
    Config.option
  )

/** The environment description: variable names, parsing, defaults. */
export const config: Config.Config<TesseraConfigShape> = Config.all({
  databaseUrl: url("DATABASE_URL", ["postgres:", "postgresql:"]),
  redisUrl: url("REDIS_URL", ["redis:", "rediss:"]),
  redisCluster: Config.Boolean("REDIS_CLUSTER").pipe(Config.withDefault(defaults.redisCluster)),
  redisReplicaUrl: url("TESSERA_VALKEY_REPLICA_URL", ["redis:", "rediss:"]),
  redisReplicaMaxLag: duration("TESSERA_VALKEY_REPLICA_MAX_LAG", defaults.redisReplicaMaxLag),
  gatewayUrl: Config.String("TESSERA_GATEWAY_URL").pipe(
    Config.mapEffect((value) =>
      /^https?:\/\/[^/\s]+\/?$/.test(value)
        ? Effect.succeed(value.replace(/\/$/, ""))
        : Effect.fail(invalid(`TESSERA_GATEWAY_URL must be an http(s) URL with no path, got ${JSON.stringify(value)}`))
    ),
    Config.option
  ),
  pgConnectTimeout: boundedDuration(
    "TESSERA_PG_CONNECT_TIMEOUT",
    defaults.pgConnectTimeout,
    Duration.millis(1),
    "a positive duration"
  ),
  pgKeepAlive: boundedDuration("TESSERA_PG_KEEPALIVE", defaults.pgKeepAlive, Duration.seconds(1), "at least 1 second"),
  pgStatementTimeout: boundedDuration(
    "TESSERA_PG_STATEMENT_TIMEOUT",
    defaults.pgStatementTimeout,
    Duration.zero,
    "a duration (0 disables it)"
  ),
  pgIdleInTransactionTimeout: boundedDuration(
    "TESSERA_PG_IDLE_IN_TRANSACTION_TIMEOUT",
    defaults.pgIdleInTransactionTimeout,
    Duration.zero,
    "a duration (0 disables it)"
  ),
  redisCommandTimeout: boundedDuration(
    "TESSERA_REDIS_COMMAND_TIMEOUT",
    defaults.redisCommandTimeout,
    Duration.millis(1),
    "a positive duration"
  ),
  port: port("TESSERA_PORT", defaults.port),
  host: Config.String("TESSERA_HOST").pipe(Config.withDefault(defaults.host)),
  runnerHost: Config.String("TESSERA_RUNNER_HOST").pipe(Config.withDefault(defaults.runnerHost)),
  runnerPort: port("TESSERA_RUNNER_PORT", defaults.runnerPort),
  token: Config.Redacted("TESSERA_TOKEN").pipe(Config.option),
  tokens: tokensConfig,
  hsts: Config.String("TESSERA_HSTS").pipe(
    Config.mapEffect((value): Effect.Effect<HstsMode, Config.ConfigError> => {
      const mode = value.trim().toLowerCase()
      if (mode === "auto") return Effect.succeed("auto")
      if (["on", "1", "true"].includes(mode)) return Effect.succeed("on")
      if (["off", "0", "false"].includes(mode)) return Effect.succeed("off")
      return Effect.fail(invalid(`TESSERA_HSTS must be auto, on (1, true) or off (0, false), got ${value}`))
    }),
    Config.withDefault<HstsMode>(defaults.hsts)
  ),
  clusterSecret: clusterSecretConfig("TESSERA_CLUSTER_SECRET"),
  clusterSecretAccepted: clusterSecretConfig("TESSERA_CLUSTER_SECRET_ACCEPTED"),
  dataDir: Config.String("TESSERA_DATA").pipe(Config.withDefault(defaults.dataDir)),
  zone: Config.String("TESSERA_ZONE").pipe(Config.option),
  standbyPort: Config.Int("TESSERA_STANDBY_PORT").pipe(
    Config.mapEffect((n) =>
      n >= 1 && n <= 65535
        ? Effect.succeed(n)
        : Effect.fail(
            new Config.ConfigError(
              new ConfigProvider.SourceError({
                message: `TESSERA_STANDBY_PORT must be a port number (1-65535), got ${n}`
              })
            )
          )
    ),
    Config.option
  ),
  maxBodyBytes: positiveInt("TESSERA_MAX_BODY_BYTES", defaults.maxBodyBytes),
  httpHeadersTimeout: duration("TESSERA_HTTP_HEADERS_TIMEOUT", defaults.httpHeadersTimeout),
  httpRequestTimeout: duration("TESSERA_HTTP_REQUEST_TIMEOUT", defaults.httpRequestTimeout),
  maxInFlight: positiveInt("TESSERA_MAX_IN_FLIGHT", defaults.maxInFlight),
  maxInFlightPerConnection: positiveInt("TESSERA_MAX_IN_FLIGHT_PER_CONNECTION", defaults.maxInFlightPerConnection),
  maxConnections: positiveInt("TESSERA_MAX_CONNECTIONS", defaults.maxConnections),
  overloadRetryAfterMs: positiveInt("TESSERA_OVERLOAD_RETRY_AFTER_MS", defaults.overloadRetryAfterMs),
  admissionTargetMs: positiveInt("TESSERA_ADMISSION_TARGET_MS", defaults.admissionTargetMs),
  minInFlight: positiveInt("TESSERA_MIN_IN_FLIGHT", defaults.minInFlight),
  admissionHoldMs: positiveInt("TESSERA_ADMISSION_HOLD_MS", defaults.admissionHoldMs),
  requestTimeoutMs: positiveInt("TESSERA_REQUEST_TIMEOUT_MS", defaults.requestTimeoutMs),
  shardsPerGroup: positiveInt("TESSERA_SHARDS", defaults.shardsPerGroup),
  shardLockExpiration: duration("TESSERA_SHARD_LOCK_EXPIRATION", defaults.shardLockExpiration),
  shardLockRefresh: duration("TESSERA_SHARD_LOCK_REFRESH", defaults.shardLockRefresh),
  assignmentRefresh: duration("TESSERA_ASSIGNMENT_REFRESH", defaults.assignmentRefresh),
  healthCheck: duration("TESSERA_HEALTH_CHECK", defaults.healthCheck),
  messagePoll: duration("TESSERA_MESSAGE_POLL", defaults.messagePoll),
  entityMaxIdle: duration("TESSERA_ENTITY_MAX_IDLE", defaults.entityMaxIdle),
  drainTimeout: boundedDuration(
    "TESSERA_DRAIN_TIMEOUT",
    defaults.drainTimeout,
    Duration.seconds(1),
    "at least 1 second"
  ),
  drainGrace: boundedDuration("TESSERA_DRAIN_GRACE", defaults.drainGrace, Duration.zero, "a duration (0: none)"),
  migrate: Config.Boolean("TESSERA_MIGRATE").pipe(Config.withDefault(defaults.migrate)),
  appDbRole: Config.String("TESSERA_APP_DB_ROLE").pipe(
    Config.mapEffect((role) =>
      /^[a-z_][a-z0-9_]{0,62}$/.test(role)
        ? Effect.succeed(role)
        : Effect.fail(
            invalid(`TESSERA_APP_DB_ROLE must be a plain lowercase PostgreSQL name, got ${JSON.stringify(role)}`)
          )
    ),
    Config.withDefault(defaults.appDbRole)
  ),
  appDbPassword: Config.Redacted("TESSERA_APP_DB_PASSWORD").pipe(Config.option),
  otlpEndpoint: Config.String("OTEL_EXPORTER_OTLP_ENDPOINT").pipe(
    Config.mapEffect((value) =>
      /^https?:\/\//.test(value)
        ? Effect.succeed(value)
        : Effect.fail(
            new Config.ConfigError(
              new ConfigProvider.SourceError({ message: "OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL" })
            )
          )
    ),
    Config.option
  ),
  otelServiceName: Config.String("OTEL_SERVICE_NAME").pipe(Config.withDefault(defaults.otelServiceName)),
  traceSampleRatio: Config.Number("OTEL_TRACES_SAMPLER_ARG").pipe(
    Config.mapEffect((ratio) =>
      ratio >= 0 && ratio <= 1
        ? Effect.succeed(ratio)
        : Effect.fail(
            new Config.ConfigError(
              new ConfigProvider.SourceError({ message: `OTEL_TRACES_SAMPLER_ARG must be within 0..1, got ${ratio}` })
            )
          )
    ),
    Config.withDefault(defaults.traceSampleRatio)
  ),
  retention: Config.String("TESSERA_RETENTION").pipe(
    Config.mapEffect((value) => {
      const settings = parseRetention(value)
      return typeof settings === "string"
        ? Effect.fail(invalid(`TESSERA_RETENTION ${settings}`))
        : Effect.succeed(settings)
    }),
    Config.withDefault(defaults.retention)
  ),
  retentionInterval: boundedDuration(
    "TESSERA_RETENTION_INTERVAL",
    defaults.retentionInterval,
    Duration.seconds(1),
    "at least 1 second"
  ),
  retentionBatchRows: positiveInt("TESSERA_RETENTION_BATCH_ROWS", defaults.retentionBatchRows),
  retentionMaxBatches: positiveInt("TESSERA_RETENTION_MAX_BATCHES", defaults.retentionMaxBatches),
  archive: Config.String("TESSERA_ARCHIVE").pipe(Config.option),
  s3Endpoint: Config.String("TESSERA_S3_ENDPOINT").pipe(Config.option)
})

/** Reads and validates a configuration from an environment record (tests pass their own). */
export const fromEnv = (
  env: Record<string, string | undefined>
): Effect.Effect<TesseraConfigShape, Config.ConfigError> =>
  config.parse(ConfigProvider.fromEnvRecord(env)).pipe(
    Effect.flatMap((cfg) => {
      const problem = Duration.isGreaterThanOrEqualTo(cfg.shardLockRefresh, cfg.shardLockExpiration)
        ? "TESSERA_SHARD_LOCK_REFRESH must be shorter than TESSERA_SHARD_LOCK_EXPIRATION"
        : Option.isSome(cfg.clusterSecretAccepted) && Option.isNone(cfg.clusterSecret)
          ? "TESSERA_CLUSTER_SECRET_ACCEPTED needs TESSERA_CLUSTER_SECRET (the secret this runner connects with)"
          : undefined
      return problem === undefined
        ? Effect.succeed(cfg)
        : Effect.fail(new Config.ConfigError(new ConfigProvider.SourceError({ message: problem })))
    })
  )

/** The standby identity's transport port: `TESSERA_STANDBY_PORT`, else the runner port + 1. */
/** The gateway URL this runner announces: `TESSERA_GATEWAY_URL`, else its bind address when that is concrete. */
export const gatewayUrlOf = (cfg: TesseraConfigShape): string | undefined => {
  if (Option.isSome(cfg.gatewayUrl)) {
    const url = cfg.gatewayUrl.value
    if (!url.includes("{zone}")) return url
    return Option.isSome(cfg.zone) ? url.replaceAll("{zone}", cfg.zone.value) : undefined
  }
  const wildcard = cfg.host === "0.0.0.0" || cfg.host === "::" || cfg.host === ""
  if (wildcard || cfg.port === 0) return undefined
  return `http://${cfg.host.includes(":") ? `[${cfg.host}]` : cfg.host}:${cfg.port}`
}

export const standbyPortOf = (cfg: TesseraConfigShape): number =>
  Option.getOrElse(cfg.standbyPort, () => cfg.runnerPort + 1)

/** The process environment, read once. */
export const layerFromEnv: Layer.Layer<TesseraConfig, Config.ConfigError> = Layer.effect(TesseraConfig)(
  Effect.suspend(() => fromEnv(process.env))
)

/** A fixed configuration: defaults overridden by `options` (tests, embedded use). */
export const layer = (options?: Partial<TesseraConfigShape>): Layer.Layer<TesseraConfig> =>
  Layer.succeed(TesseraConfig)({ ...defaults, ...options })

/** The environment variables Tessera reads, for help text and the README. */
export const variables: ReadonlyArray<readonly [name: string, meaning: string]> = [
  ["DATABASE_URL", "Postgres URL; unset: embedded storage under TESSERA_DATA"],
  ["REDIS_URL", "Valkey/Redis URL; unset: in-memory cache"],
  ["REDIS_CLUSTER", "true: REDIS_URL is a seed node of a Valkey/Redis Cluster, e.g. ElastiCache cluster mode (false)"],
  [
    "TESSERA_VALKEY_REPLICA_URL",
    "Valkey replica in this runner's zone: stale-tolerant reads (graph gateway reads) go there while it is fresh (none)"
  ],
  ["TESSERA_VALKEY_REPLICA_MAX_LAG", "largest replica lag at which the replica still serves reads (1 second)"],
  [
    "TESSERA_GATEWAY_URL",
    "URL clients reach this gateway at, announced in routing tables; {zone} stands for TESSERA_ZONE (http://TESSERA_HOST:TESSERA_PORT when concrete)"
  ],
  ["TESSERA_PG_CONNECT_TIMEOUT", "Postgres connection attempt timeout (5 seconds)"],
  ["TESSERA_PG_KEEPALIVE", "idle time before TCP keepalive probes on Postgres connections (10 seconds)"],
  ["TESSERA_PG_STATEMENT_TIMEOUT", "server-side statement_timeout of Postgres sessions, 0 disables (10 seconds)"],
  [
    "TESSERA_PG_IDLE_IN_TRANSACTION_TIMEOUT",
    "server-side idle_in_transaction_session_timeout of Postgres sessions, 0 disables (10 seconds)"
  ],
  ["TESSERA_REDIS_COMMAND_TIMEOUT", "a Valkey command without a reply by then fails (2 seconds)"],
  ["TESSERA_PORT", "gateway port (7400)"],
  ["TESSERA_HOST", "gateway bind address (127.0.0.1)"],
  ["TESSERA_RUNNER_HOST", "address other runners reach this one at (localhost)"],
  ["TESSERA_RUNNER_PORT", "cluster transport port (34431)"],
  ["TESSERA_TOKEN", "bearer token required by the gateway: full access, admin (none)"],
  [
    "TESSERA_TOKENS",
    'tokens scoped to accounts, a file path or inline JSON: {"<token>": {"accounts": ["a1"] or "*", "admin": false}} (none)'
  ],
  [
    "TESSERA_HSTS",
    "Strict-Transport-Security: auto (when X-Forwarded-Proto is https), on or 1 (always: served behind TLS), off (auto)"
  ],
  [
    "TESSERA_CLUSTER_SECRET",
    "runner transport secret (16+ characters): TLS with a pre-shared key between runners (none: plain TCP)"
  ],
  ["TESSERA_CLUSTER_SECRET_ACCEPTED", "a second cluster secret accepted from peers, for rotation (none)"],
  ["TESSERA_DATA", "embedded data folder (.tessera)"],
  ["TESSERA_ZONE", "availability zone of this runner: it prefers the zone groups of its zone (none)"],
  [
    "TESSERA_STANDBY_PORT",
    "with zone groups (e.g. TESSERA_GRAPH_ZONES): transport port of the runner's standby identity, which serves other zones' groups when their zone has no live runner (TESSERA_RUNNER_PORT + 1)"
  ],
  ["TESSERA_MAX_BODY_BYTES", "largest gateway request body (1048576)"],
  ["TESSERA_HTTP_HEADERS_TIMEOUT", "a client must send a request's headers within this (10 seconds)"],
  ["TESSERA_HTTP_REQUEST_TIMEOUT", "a client must send a whole request within this (30 seconds)"],
  ["TESSERA_MAX_IN_FLIGHT", "admission bound: request weight (orders) the gateway handles at once (2000)"],
  ["TESSERA_MAX_IN_FLIGHT_PER_CONNECTION", "the same bound per client connection (2000)"],
  ["TESSERA_MAX_CONNECTIONS", "client connections the gateway holds at once; more are closed on arrival (10000)"],
  ["TESSERA_OVERLOAD_RETRY_AFTER_MS", "retry hint sent with Overloaded, in milliseconds (50)"],
  [
    "TESSERA_ADMISSION_TARGET_MS",
    "latency admitted requests should stay under; the admission limit shrinks while they do not (250)"
  ],
  [
    "TESSERA_MIN_IN_FLIGHT",
    "floor of the adaptive admission limit, in orders (at most TESSERA_MAX_IN_FLIGHT); floor / journal latency bounds acks/s at the floor (256)"
  ],
  [
    "TESSERA_ADMISSION_HOLD_MS",
    "how long an admitted request holds its admission weight; a stuck one stops holding back others after (10000)"
  ],
  [
    "TESSERA_REQUEST_TIMEOUT_MS",
    "deadline of a request to an entity through the gateway's proxy; then RequestTimeout, retry with its keys (10000)"
  ],
  ["TESSERA_SHARDS", "shards per group, equal on all runners (300)"],
  ["TESSERA_SHARD_LOCK_EXPIRATION", "shard lock expiry (5 seconds)"],
  ["TESSERA_SHARD_LOCK_REFRESH", "shard lock refresh (1 second)"],
  ["TESSERA_ASSIGNMENT_REFRESH", "shard assignment refresh (500 millis)"],
  ["TESSERA_HEALTH_CHECK", "runner health check interval (1 second)"],
  ["TESSERA_MESSAGE_POLL", "persisted message poll interval (1 second)"],
  ["TESSERA_ENTITY_MAX_IDLE", "idle time before an entity passivates (5 minutes)"],
  ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTLP/HTTP collector URL for traces (none: no export)"],
  ["OTEL_SERVICE_NAME", "service name on exported traces (tessera)"],
  ["OTEL_TRACES_SAMPLER_ARG", "share of root traces exported, 0..1 (1)"],
  [
    "TESSERA_RETENTION",
    "retention per table, name=duration,...: orderbook_deltas, trades, orders (finished), journal (audit rows); older rows are archived, then deleted (none: keep everything)"
  ],
  ["TESSERA_RETENTION_INTERVAL", "how often the retention job runs (1 minute)"],
  ["TESSERA_RETENTION_BATCH_ROWS", "rows per archive object (5000)"],
  ["TESSERA_RETENTION_MAX_BATCHES", "archive objects per table per run (4)"],
  ["TESSERA_ARCHIVE", "archive store: s3://bucket/prefix or a folder (TESSERA_DATA/archive)"],
  ["TESSERA_S3_ENDPOINT", "S3 endpoint of an S3-compatible store, for the archive and the graph cold tier (AWS)"]
]
