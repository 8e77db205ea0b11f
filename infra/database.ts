/**
 * Aurora PostgreSQL Serverless v2: cluster storage and actor tables. The master password is generated, kept in
 * Secrets Manager with a ready `DATABASE_URL`, and reaches the runners as an ECS secret, never as plain
 * environment. TLS is enforced (`rds.force_ssl`).
 */
import * as aws from "@pulumi/aws"
import * as pulumi from "@pulumi/pulumi"
import * as random from "@pulumi/random"
import type { Network } from "./network.ts"
import { ports, type StageConfig } from "./stage.ts"

export const engineVersion = "16.6"
export const databaseName = "tessera"
const username = "tessera"
/** Daily snapshot (UTC), outside the maintenance window; PITR between snapshots comes from the continuous log. */
export const backupWindow = "03:00-04:00"
export const maintenanceWindow = "sun:04:30-sun:05:30"

/**
 * The application role runners connect as: DML only, no DDL. The runner task's `migrate` init container runs
 * `tessera-migrate` as the owner, which creates or updates it (`appRoleStatements` in runtime/appRole.ts).
 */
export const appRole = "tessera_app"

export interface Database {
  readonly cluster: aws.rds.Cluster
  /** The owner's JSON `{ username, password, host, port, dbname, url }`; only `tessera-migrate` reads `url`. */
  readonly secret: aws.secretsmanager.Secret
  /** The application role's, in the same shape; runners read its `url` as `DATABASE_URL`. */
  readonly appSecret: aws.secretsmanager.Secret
}

export const database = (config: StageConfig, net: Network): Database => {
  const { stage } = config
  const db = config.database
  const subnets = new aws.rds.SubnetGroup("DatabaseSubnets", {
    subnetIds: net.privateSubnets.map((subnet) => subnet.id),
    tags: { "tessera:stage": stage }
  })
  const parameters = new aws.rds.ClusterParameterGroup("DatabaseParameters", {
    family: `aurora-postgresql${engineVersion.split(".")[0]}`,
    description: "Tessera: TLS only",
    parameters: [{ name: "rds.force_ssl", value: "1" }]
  })
  const password = new random.RandomPassword("DatabasePassword", { length: 40, special: false })

  const cluster = new aws.rds.Cluster("Database", {
    engine: "aurora-postgresql",
    engineMode: "provisioned",
    engineVersion,
    databaseName,
    masterUsername: username,
    masterPassword: password.result,
    dbSubnetGroupName: subnets.name,
    dbClusterParameterGroupName: parameters.name,
    vpcSecurityGroupIds: [net.securityGroups.database.id],
    storageEncrypted: true,
    port: ports.postgres,
    serverlessv2ScalingConfiguration: {
      minCapacity: db.minAcu,
      maxCapacity: db.maxAcu,
      secondsUntilAutoPause: db.autoPauseSeconds
    },
    // Point-in-time recovery: Aurora keeps continuous backups for `backupRetentionDays`; any second in that
    // window (to about 5 minutes ago) restores into a new cluster (docs/deploy.md, "Point-in-time recovery").
    backupRetentionPeriod: db.backupRetentionDays,
    preferredBackupWindow: backupWindow,
    preferredMaintenanceWindow: maintenanceWindow,
    deletionProtection: db.deletionProtection,
    skipFinalSnapshot: !db.finalSnapshot,
    finalSnapshotIdentifier: db.finalSnapshot ? `tessera-${stage}-final` : undefined,
    copyTagsToSnapshot: true,
    tags: { "tessera:stage": stage }
  })

  // The first instance is the writer; the others are readers that Aurora places in other AZs and fails over to.
  for (let i = 0; i < db.instances; i++) {
    new aws.rds.ClusterInstance(`DatabaseInstance${i + 1}`, {
      clusterIdentifier: cluster.id,
      instanceClass: "db.serverless",
      engine: "aurora-postgresql",
      engineVersion,
      publiclyAccessible: false,
      promotionTier: i,
      tags: { "tessera:stage": stage }
    })
  }

  const secret = new aws.secretsmanager.Secret("DatabaseCredentials", {
    description: `Tessera ${stage}: Aurora credentials and DATABASE_URL`,
    recoveryWindowInDays: db.deletionProtection ? 30 : 0,
    tags: { "tessera:stage": stage }
  })
  new aws.secretsmanager.SecretVersion("DatabaseCredentialsValue", {
    secretId: secret.id,
    secretString: pulumi.all([cluster.endpoint, cluster.port, password.result]).apply(([host, port, pass]) =>
      JSON.stringify({
        username,
        password: pass,
        host,
        port,
        dbname: databaseName,
        url: `postgres://${username}:${pass}@${host}:${port}/${databaseName}?sslmode=verify-full`
      })
    )
  })

  // Set by the migrate container on every task start (ALTER ROLE ... PASSWORD), so a rotation here reaches both.
  const appPassword = new random.RandomPassword("DatabaseAppPassword", { length: 40, special: false })
  const appSecret = new aws.secretsmanager.Secret("DatabaseAppCredentials", {
    description: `Tessera ${stage}: Aurora application role (${appRole}) credentials and DATABASE_URL`,
    recoveryWindowInDays: db.deletionProtection ? 30 : 0,
    tags: { "tessera:stage": stage }
  })
  new aws.secretsmanager.SecretVersion("DatabaseAppCredentialsValue", {
    secretId: appSecret.id,
    secretString: pulumi.all([cluster.endpoint, cluster.port, appPassword.result]).apply(([host, port, pass]) =>
      JSON.stringify({
        username: appRole,
        password: pass,
        host,
        port,
        dbname: databaseName,
        url: `postgres://${appRole}:${pass}@${host}:${port}/${databaseName}?sslmode=verify-full`
      })
    )
  })

  return { cluster, secret, appSecret }
}
