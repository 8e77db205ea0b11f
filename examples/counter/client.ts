#!/usr/bin/env node
// `node examples/counter/client.ts [ID] [BY]`: increments a counter through a node's gateway (TESSERA_URL).
import * as TesseraClient from "@tessera/client/TesseraClient"
import { Contract } from "@tessera/contracts"
import { Effect } from "effect"
import { CounterContract } from "./protocol.ts"

const api = Contract.api(CounterContract)

const program = Effect.gen(function* () {
  const tessera = yield* TesseraClient.make(api, { url: process.env.TESSERA_URL ?? "http://127.0.0.1:7400" })
  const entityId = process.argv[2] ?? "demo"
  const value = yield* tessera["Counter.Increment"]({ entityId, payload: { by: Number(process.argv[3] ?? 1) } })
  console.log(`${entityId} = ${value}`)
}).pipe(Effect.scoped)

Effect.runPromise(program)
