export * as Cli from "./cli.ts"
export * as TesseraClient from "./TesseraClient.ts"
