/**
 * Preloaded by the runner image (`node --import ./docker/ecs-metadata.ts app/runner.ts`). On ECS every task
 * has its own address and zone, which a task definition cannot spell out, so this fills `TESSERA_RUNNER_HOST`
 * (the task's private IP, what other runners dial) and `TESSERA_ZONE` from the task metadata endpoint v4 before
 * `runtime/config.ts` reads the environment. Values already set win; outside ECS it does nothing. On ECS without
 * an address it exits non-zero: a runner advertising `localhost` would join the cluster unreachable.
 */

interface TaskMetadata {
  readonly AvailabilityZone?: string
  readonly Containers?: ReadonlyArray<{
    readonly Networks?: ReadonlyArray<{ readonly IPv4Addresses?: ReadonlyArray<string> }>
  }>
}

export const fromTaskMetadata = (task: TaskMetadata): { host?: string; zone?: string } => {
  const host = task.Containers?.flatMap((c) => c.Networks ?? []).flatMap((n) => n.IPv4Addresses ?? [])[0]
  return { host, zone: task.AvailabilityZone }
}

const endpoint = process.env.ECS_CONTAINER_METADATA_URI_V4
if (endpoint !== undefined && endpoint !== "") {
  try {
    const response = await fetch(`${endpoint}/task`, { signal: AbortSignal.timeout(5_000) })
    if (!response.ok) throw new Error(`HTTP ${response.status}`)
    const { host, zone } = fromTaskMetadata((await response.json()) as TaskMetadata)
    if (host === undefined) throw new Error("no IPv4 address in the task metadata")
    process.env.TESSERA_RUNNER_HOST ||= host
    if (zone !== undefined) process.env.TESSERA_ZONE ||= zone
  } catch (cause) {
    process.stderr.write(`tessera: cannot read ECS task metadata from ${endpoint}: ${String(cause)}\n`)
    process.exit(1)
  }
}
