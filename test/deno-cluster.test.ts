// Deno 2 in cluster mode: the failover scenario of test/failover.test.ts with both runners started as
// `deno run -A app/runner.ts` (the npm-pinned Deno), sharing one fresh Postgres database and the real Redis.
import { join } from "node:path"
import { describe, it } from "@effect/vitest"
import { failoverScenario } from "./failoverScenario.ts"
import { repoRoot } from "./harness.ts"

const deno = { bin: join(repoRoot, "node_modules", ".bin", "deno"), args: ["run", "-A"] }

describe("two-runner cluster under Deno (real Postgres + Redis, separate processes)", () => {
  it.live(
    "entities spread over both Deno runners answer again from the survivor after kill -9",
    () => failoverScenario({ label: "deno", command: deno }),
    150_000
  )
})
