/**
 * The OTLP settings read from the environment, and the tracer wrapper that keeps secrets out of spans
 * (a span is exported, never logged, so the logger's redaction does not see it).
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Either, Exit, Option, Tracer } from "effect"
import { redacting, settingsFromEnv } from "../src/cli/Telemetry.js"

describe("settingsFromEnv", () => {
  it("off without an endpoint, or with OTEL_SDK_DISABLED=true", () => {
    expect(settingsFromEnv({})).toEqual(Either.right(undefined))
    expect(settingsFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: " " })).toEqual(Either.right(undefined))
    expect(settingsFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_SDK_DISABLED: "true" })).toEqual(Either.right(undefined))
  })

  it("the base endpoint gives /v1/traces and /v1/metrics; a signal's own endpoint is used as it is", () => {
    expect(settingsFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318/" })).toEqual(Either.right({
      traces: "http://c:4318/v1/traces",
      metrics: "http://c:4318/v1/metrics",
      headers: {},
      protobuf: true
    }))
    const traces = Either.getOrThrow(settingsFromEnv({
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "https://t/x",
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_EXPORTER_OTLP_HEADERS: "api-key=a%3Db, x = 1 ,broken"
    }))
    expect(traces).toEqual({ traces: "https://t/x", metrics: undefined, headers: { "api-key": "a=b", x: "1" }, protobuf: false })
  })

  it("a malformed endpoint is a config error naming the variable, not its value", () => {
    const error = Either.getLeft(settingsFromEnv({ OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: "user:secret@collector:4318" }))
    expect(Option.getOrThrow(error).message).toBe(
      "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: expected an http:// or https:// URL (Ferry exports OTLP over HTTP)"
    )
    expect(Option.getOrThrow(error).exitCode).toBe(78)
  })
})

describe("redacting tracer", () => {
  it("redacts string attributes, event attributes and the error a span ends with", () => {
    const ended: Array<Exit.Exit<unknown, unknown>> = []
    const spans: Array<Tracer.Span> = []
    const inner = Tracer.make({
      span: (name, parent, context, links, startTime, kind) => {
        const attributes = new Map<string, unknown>()
        const span: Tracer.Span = {
          _tag: "Span", name, spanId: "s", traceId: "t", parent, context, links: [...links], sampled: true, kind,
          status: { _tag: "Started", startTime }, attributes,
          attribute: (key, value) => void attributes.set(key, value),
          event: (eventName, _time, eventAttributes) => void attributes.set(`event.${eventName}`, eventAttributes),
          addLinks: () => undefined,
          end: (_time, exit) => void ended.push(exit)
        }
        spans.push(span)
        return span
      },
      context: (f) => f()
    })
    const tracer = redacting(inner, (text) => text.replaceAll("hunter2", "***"))
    const span = tracer.span("x", Option.none(), Effect.runSync(Effect.context<never>()), [], 0n, "internal")
    span.attribute("url.full", "https://api/x?key=hunter2")
    span.attribute("ferry.records", 3)
    span.event("e", 1n, { said: "hunter2 was here" })
    span.end(2n, Exit.fail({ _tag: "SourceError", message: "GET https://api/x?key=hunter2: HTTP 500" }))
    expect(spans[0]!.attributes.get("url.full")).toBe("https://api/x?key=***")
    expect(spans[0]!.attributes.get("ferry.records")).toBe(3)
    expect(spans[0]!.attributes.get("event.e")).toEqual({ said: "*** was here" })
    const error = Cause.squash((ended[0] as Exit.Failure<unknown, unknown>).cause) as Error
    expect([error.name, error.message, error.stack]).toEqual([
      "SourceError",
      "GET https://api/x?key=***: HTTP 500",
      "SourceError: GET https://api/x?key=***: HTTP 500"
    ])
  })
})
