/** The seed modules' `tessera` commands. */
import type { Cli } from "@tessera/contracts"
import { seedModules } from "./index.ts"

export const seedCli: ReadonlyArray<Cli.Command> = seedModules.flatMap((module) => module.cli ?? [])
