/**
 * The application role: what runners connect as when the schema is applied by `tessera-migrate` (app/migrate.ts)
 * as its owner. No imports, so the stack (infra/database.ts) shares these statements with the runtime.
 */

const literal = (text: string) => `'${text.replaceAll("'", "''")}'`
const identifier = (name: string) => {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a plain PostgreSQL identifier: ${name}`)
  return name
}

/**
 * What the owner runs (after its migrations) to create or update the application role: log in with `password`,
 * read and write every table and sequence of `public`, today's and those the owner creates later; create, alter,
 * drop or truncate nothing. Idempotent: each migration run may apply it again (rotating the password). Runs as a
 * CREATEROLE role that is no superuser (Aurora's master): such a role may not name SUPERUSER at all, even to deny
 * it, and the role is created without it.
 */
export const appRoleStatements = (owner: string, password: string, role: string): ReadonlyArray<string> => {
  const app = identifier(role)
  const by = identifier(owner)
  return [
    `DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = ${literal(app)}) THEN CREATE ROLE ${app}; END IF; END $$`,
    `ALTER ROLE ${app} WITH LOGIN NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD ${literal(password)}`,
    "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
    `GRANT USAGE ON SCHEMA public TO ${app}`,
    `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${app}`,
    `GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ${app}`,
    `ALTER DEFAULT PRIVILEGES FOR ROLE ${by} IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ${app}`,
    `ALTER DEFAULT PRIVILEGES FOR ROLE ${by} IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO ${app}`
  ]
}
