export * as Api from "./Api.ts"
export * as TesseraClient from "./TesseraClient.ts"
