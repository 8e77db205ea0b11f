export * as TesseraTest from "./TesseraTest.ts"
