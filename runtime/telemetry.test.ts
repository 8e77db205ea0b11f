import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Option, Tracer } from "effect"
import { fromEnv } from "./config.ts"
import { withSampling } from "./telemetry.ts"

/** A tracer that records the sampling decision of every span it is asked for. */
const recording = () => {
  const decisions: Array<boolean> = []
  const tracer = Tracer.make({
    span(options) {
      decisions.push(options.sampled)
      return new Tracer.NativeSpan({ ...options })
    }
  })
  return { tracer, decisions }
}

const spanOptions = (parent: Option.Option<Tracer.AnySpan>) => ({
  name: "s",
  parent,
  annotations: Context.empty(),
  links: [],
  startTime: 0n,
  kind: "internal" as const,
  root: Option.isNone(parent),
  sampled: true
})

describe("trace sampling", () => {
  it("drops every root at ratio 0 but follows a sampled parent; keeps everything at ratio 1", () => {
    const { tracer, decisions } = recording()
    const none = withSampling(tracer, 0)
    none.span(spanOptions(Option.none()))
    none.span(spanOptions(Option.some(Tracer.externalSpan({ traceId: "t", spanId: "p", sampled: true }))))
    none.span(spanOptions(Option.some(Tracer.externalSpan({ traceId: "t", spanId: "q", sampled: false }))))
    assert.deepStrictEqual(decisions, [false, true, false])
    assert.strictEqual(withSampling(tracer, 1), tracer)
  })

  it("keeps about the configured share of roots", () => {
    const { tracer, decisions } = recording()
    const quarter = withSampling(tracer, 0.25)
    for (let i = 0; i < 4000; i++) quarter.span(spanOptions(Option.none()))
    const kept = decisions.filter(Boolean).length
    assert.isTrue(kept > 800 && kept < 1200, `kept ${kept} of 4000`)
  })
})

describe("tracing configuration", () => {
  it.effect("reads the standard OTEL variables, defaulting to no exporter", () =>
    Effect.gen(function* () {
      const unset = yield* fromEnv({})
      assert.isTrue(Option.isNone(unset.otlpEndpoint))
      assert.strictEqual(unset.otelServiceName, "tessera")
      assert.strictEqual(unset.traceSampleRatio, 1)
      const set = yield* fromEnv({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318",
        OTEL_SERVICE_NAME: "tessera-eu",
        OTEL_TRACES_SAMPLER_ARG: "0.1"
      })
      assert.deepStrictEqual(set.otlpEndpoint, Option.some("http://collector:4318"))
      assert.strictEqual(set.otelServiceName, "tessera-eu")
      assert.strictEqual(set.traceSampleRatio, 0.1)
      const badRatio = yield* Effect.flip(fromEnv({ OTEL_TRACES_SAMPLER_ARG: "2" }))
      assert.include(String(badRatio), "OTEL_TRACES_SAMPLER_ARG")
      const badUrl = yield* Effect.flip(fromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" }))
      assert.include(String(badUrl), "OTEL_EXPORTER_OTLP_ENDPOINT")
    })
  )
})
