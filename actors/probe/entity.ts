import { Effect } from "effect"
import { Entity } from "effect/cluster"
import { Probe } from "./protocol.ts"

export const ProbeEntityLayer = Probe.toLayer(
  Effect.gen(function* () {
    const address = yield* Entity.CurrentAddress
    const runner = yield* Entity.CurrentRunnerAddress
    const runnerName = `${runner.host}:${runner.port}`
    const activatedAt = Date.now()
    let handled = 0
    return Probe.of({
      Where: () =>
        Effect.sync(() => ({ entityId: address.entityId, runner: runnerName, handled: ++handled, activatedAt }))
    })
  })
)
