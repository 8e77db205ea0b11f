import { describe, it } from "@effect/vitest"
import { failoverScenario } from "./failoverScenario.ts"

describe("two-runner cluster (real Postgres + Redis, separate processes)", () => {
  it.live(
    "entities spread over both runners answer again from the survivor after kill -9",
    () => failoverScenario({ label: "failover" }),
    120_000
  )
})
