export * as Cli from "./Cli.ts"
export * as Contract from "./Contract.ts"
export * as Control from "./Control.ts"
export * as Module from "./Module.ts"
