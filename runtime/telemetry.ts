/**
 * Traces over OTLP/HTTP (JSON) when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; nothing at all otherwise (Effect's
 * built-in tracer keeps spans in memory for the fiber only and exports nothing).
 *
 * Spans already exist where they matter: the gateway's RPC server (`gateway.<Rpc>`), the sharding client
 * (`<Entity>.client.<Rpc>`), the runner transport and the entity handler (`<Entity>.<Rpc>`). Effect RPC and
 * the cluster envelope carry trace and span ids, so one trace follows a call across processes. Sampling is
 * parent-based: a root span is kept with probability `OTEL_TRACES_SAMPLER_ARG` (default 1), children follow
 * their parent's decision, so a trace is whole or absent.
 */
import { Effect, Layer, Option, Tracer } from "effect"
import { FetchHttpClient } from "effect/http"
import { OtlpExporter, OtlpSerialization, OtlpTracer } from "effect/observability"
import { TesseraConfig, type TesseraConfigShape } from "./config.ts"

/** `inner` with parent-based ratio sampling of root spans. */
export const withSampling = (inner: Tracer.Tracer, ratio: number): Tracer.Tracer => {
  if (ratio >= 1) return inner
  return Tracer.make({
    span(options) {
      const sampled = Option.isSome(options.parent) ? options.parent.value.sampled : Math.random() < ratio
      return inner.span({ ...options, sampled: options.sampled && sampled })
    },
    context: inner.context
  })
}

/** The OTLP trace exporter for `endpoint` (the collector's base URL; spans go to `<endpoint>/v1/traces`). */
export const layerOtlp = (options: {
  readonly endpoint: string
  readonly serviceName: string
  readonly sampleRatio: number
  readonly attributes?: Record<string, unknown>
}) =>
  Layer.effect(Tracer.Tracer)(
    Effect.map(
      OtlpTracer.make({
        url: `${options.endpoint.replace(/\/+$/, "")}/v1/traces`,
        resource: { serviceName: options.serviceName, attributes: options.attributes },
        exportInterval: "1 second"
      }),
      (tracer) => withSampling(tracer, options.sampleRatio)
    )
  ).pipe(
    Layer.provideMerge(OtlpExporter.layerFlusher),
    Layer.provide(OtlpSerialization.layerJson),
    Layer.provide(FetchHttpClient.layer)
  )

/** Tracing as configured: the OTLP exporter when an endpoint is set, otherwise nothing. */
export const layer: Layer.Layer<never, never, TesseraConfig> = Layer.unwrap(
  Effect.map(TesseraConfig, (config: TesseraConfigShape) =>
    Option.match(config.otlpEndpoint, {
      onNone: () => Layer.empty,
      onSome: (endpoint) =>
        layerOtlp({
          endpoint,
          serviceName: config.otelServiceName,
          sampleRatio: config.traceSampleRatio,
          attributes: { "tessera.runner.port": config.runnerPort }
        })
    })
  )
)
