/**
 * Runner processes of the graph module for tests: one fresh database, one cold-tier folder and one Redis key prefix
 * shared by every runner started, and one clean-up for all of them.
 */
import { deleteRedisKeys, freshDatabase, type RunnerProcess, redisUrl, startProcess, tempDataDir } from "./harness.ts"

export const graphRunners = (options: {
  readonly database: string
  /** Start of the Redis key prefix (a time stamp follows). */
  readonly prefix: string
  readonly partitions: number
}) => {
  const db = freshDatabase(options.database)
  const cold = tempDataDir()
  const prefix = `${options.prefix}${Date.now().toString(36)}`
  const started: Array<RunnerProcess> = []
  return {
    db,
    cold,
    prefix,
    /** A runner on the shared database, cold tier and prefix; `env` adds to (or overrides) their variables. */
    start: async (name: string, env: Record<string, string> = {}) => {
      const runner = await startProcess(name, {
        env: {
          DATABASE_URL: db.url,
          REDIS_URL: redisUrl,
          TESSERA_GRAPH_PREFIX: prefix,
          TESSERA_GRAPH_COLD: cold.dir,
          TESSERA_GRAPH_PARTITIONS: String(options.partitions),
          ...env
        }
      })
      started.push(runner)
      return runner
    },
    /** Kills every runner started (-9), then drops the database, the cold tier and the keys under the prefix. */
    stop: async () => {
      for (const runner of started) runner.child.kill("SIGKILL")
      await Promise.all(started.map((runner) => runner.exited))
      db.drop()
      cold.remove()
      await deleteRedisKeys(prefix)
    }
  }
}
