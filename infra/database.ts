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

/** The application role runners are meant to use: DML only, no DDL (see `appRoleStatements`). */
export const appRole = "tessera_app"

const literal = (text: string) => `'${text.replaceAll("'", "''")}'`
const identifier = (name: string) => {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a plain PostgreSQL identifier: ${name}`)
  return name
}

/**
 * What the owner runs (after its migrations) to create or update the application role: log in with `password`,
 * read and write every table and sequence of `public`, today's and those the owner creates later; create, alter,
 * drop or truncate nothing. Idempotent: each migration run may apply it again (rotating the password).
 */
export const appRoleStatements = (owner: string, password: string, role: string = appRole): ReadonlyArray<string> => {
  const app = identifier(role)
  const by = identifier(owner)
  return [
    `DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = ${literal(app)}) THEN CREATE ROLE ${app}; END IF; END $$`,
    `ALTER ROLE ${app} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD ${literal(password)}`,
    "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
    `GRANT USAGE ON SCHEMA public TO ${app}`,
    `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${app}`,
    `GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ${app}`,
    `ALTER DEFAULT PRIVILEGES FOR ROLE ${by} IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ${app}`,
    `ALTER DEFAULT PRIVILEGES FOR ROLE ${by} IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO ${app}`
  ]
}

export interface Database {
  readonly cluster: aws.rds.Cluster
  /** JSON `{ username, password, host, port, dbname, url }`; tasks read `url` as `DATABASE_URL`. */
  readonly secret: aws.secretsmanager.Secret
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

  return { cluster, secret }
}
