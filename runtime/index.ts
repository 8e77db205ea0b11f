export * as Config from "./config.ts"
export * as Node from "./node.ts"
