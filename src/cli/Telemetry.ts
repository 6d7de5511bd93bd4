/**
 * OpenTelemetry for `ferry run`, on only when an OTLP endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT`,
 * or `..._TRACES_ENDPOINT` / `..._METRICS_ENDPOINT`): traces and metrics over OTLP/HTTP through
 * `@effect/opentelemetry`'s own exporters (Effect's HTTP client; no OpenTelemetry SDK to load), with
 * `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_HEADERS` and `..._PROTOCOL`
 * (`http/protobuf`, the default, or `http/json`). Every string a span carries, and every error it ends
 * with, goes through the run's redactor first: a span is exported, not logged, so the logger's
 * redaction never sees it. The HTTP client's own per-request spans are off (they would carry the raw
 * URL and headers); the page span carries the URL as the logs show it.
 */
import * as OtlpMetrics from "@effect/opentelemetry/OtlpMetrics"
import * as OtlpSerialization from "@effect/opentelemetry/OtlpSerialization"
import * as OtlpTracer from "@effect/opentelemetry/OtlpTracer"
import { HttpClient } from "@effect/platform"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Cause, ConfigProvider, Effect, Either, Exit, Layer, Tracer } from "effect"
import { ConfigError } from "../domain/Errors.js"
import { CurrentRedactor, Redactor } from "../domain/Secrets.js"
import * as Telemetry from "../lib/Telemetry.js"
import { version } from "../version.js"
import type { CommandEnvironment } from "./commands/CommandEnvironment.js"

interface Settings {
  readonly traces: string | undefined
  readonly metrics: string | undefined
  readonly headers: Readonly<Record<string, string>>
  readonly protobuf: boolean
}

type Env = Readonly<Record<string, string | undefined>>

const valueOf = (env: Env, name: string) => {
  const value = env[name]?.trim()
  return value === undefined || value === "" ? undefined : value
}

/** `k=v,k2=v2`, values percent-encoded (the OTel spec's form for headers) */
const headersOf = (text: string | undefined): Record<string, string> =>
  Object.fromEntries((text ?? "").split(",").flatMap((pair) => {
    const at = pair.indexOf("=")
    if (at <= 0) return []
    const value = pair.slice(at + 1).trim()
    return [[pair.slice(0, at).trim(), Either.getOrElse(Either.try(() => decodeURIComponent(value)), () => value)]]
  }))

/** the endpoints from the environment; none set: undefined (telemetry off); a malformed one: 78 naming the variable */
export const settingsFromEnv = (env: Env): Either.Either<Settings | undefined, ConfigError> => {
  if (valueOf(env, "OTEL_SDK_DISABLED")?.toLowerCase() === "true") return Either.right(undefined)
  const base = valueOf(env, "OTEL_EXPORTER_OTLP_ENDPOINT")
  const endpoints = [["OTEL_EXPORTER_OTLP_ENDPOINT", base], ...["TRACES", "METRICS"].map((s) => [`OTEL_EXPORTER_OTLP_${s}_ENDPOINT`, valueOf(env, `OTEL_EXPORTER_OTLP_${s}_ENDPOINT`)])]
  for (const [name, value] of endpoints) {
    if (value !== undefined && !(/^https?:\/\//i.test(value) && URL.canParse(value))) {
      return Either.left(new ConfigError({ path: name!, reason: "expected an http:// or https:// URL (Ferry exports OTLP over HTTP)" }))
    }
  }
  const under = (path: string) => base === undefined ? undefined : `${base.replace(/\/+$/, "")}/${path}`
  const traces = valueOf(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") ?? under("v1/traces")
  const metrics = valueOf(env, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") ?? under("v1/metrics")
  if (traces === undefined && metrics === undefined) return Either.right(undefined)
  const protocol = valueOf(env, "OTEL_EXPORTER_OTLP_PROTOCOL") ?? "http/protobuf"
  return Either.right({ traces, metrics, headers: headersOf(env.OTEL_EXPORTER_OTLP_HEADERS), protobuf: protocol !== "http/json" })
}

const passwordOf = (url: string | undefined): ReadonlyArray<string> => {
  const password = url === undefined ? "" : new URL(url).password
  return password === "" ? [] : [password, Either.getOrElse(Either.try(() => decodeURIComponent(password)), () => password)]
}

/** a span whose strings, and the error it ends with, pass through `redact` */
export const redacting = (tracer: Tracer.Tracer, redact: (text: string) => string): Tracer.Tracer =>
  Tracer.make({
    span(...args) {
      const span = tracer.span(...args)
      const clean = (value: unknown) => (typeof value === "string" ? redact(value) : value)
      const attribute = span.attribute.bind(span)
      const end = span.end.bind(span)
      const event = span.event.bind(span)
      return Object.assign(span, {
        attribute: (key: string, value: unknown) => attribute(key, clean(value)),
        event: (name: string, time: bigint, attributes?: Record<string, unknown>) =>
          event(name, time, attributes && Object.fromEntries(Object.entries(attributes).map(([k, v]) => [k, clean(v)]))),
        end: (time: bigint, exit: Exit.Exit<unknown, unknown>) => {
          if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) return end(time, exit)
          const error = Cause.squash(exit.cause)
          const tag = typeof error === "object" && error !== null && "_tag" in error ? String(error._tag) : "Error"
          const message = typeof error === "object" && error !== null && "message" in error ? String(error.message) : String(error)
          const cleaned = Object.assign(new Error(redact(message)), { name: tag })
          cleaned.stack = `${tag}: ${cleaned.message}`
          return end(time, Exit.fail(cleaned))
        }
      })
    },
    context: tracer.context
  })

const exporters = (settings: Settings, env: Env, redact: (text: string) => string) => {
  const attributes = valueOf(env, "OTEL_RESOURCE_ATTRIBUTES") ?? ""
  // OTEL_SERVICE_NAME, else service.name in the attributes, else "ferry"
  const resource = {
    serviceName: valueOf(env, "OTEL_SERVICE_NAME") ?? (/(^|,)\s*service\.name\s*=/.test(attributes) ? undefined : "ferry"),
    serviceVersion: version
  }
  const options = { resource, headers: settings.headers, shutdownTimeout: "2 seconds" } as const
  const tracer = settings.traces === undefined ? Layer.empty : Layer.unwrapScoped(
    Effect.map(OtlpTracer.make({ ...options, url: settings.traces }), (t) => Layer.setTracer(redacting(t, redact)))
  )
  const metrics = settings.metrics === undefined ? Layer.empty : OtlpMetrics.layer({ ...options, url: settings.metrics })
  return Layer.mergeAll(tracer, metrics).pipe(
    Layer.provide(settings.protobuf ? OtlpSerialization.layerProtobuf : OtlpSerialization.layerJson),
    Layer.provide(NodeHttpClient.layer),
    // OTEL_RESOURCE_ATTRIBUTES is read by the exporters from this environment, not the process's
    Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined)))))
  )
}

/**
 * `body` with telemetry when an endpoint is set; else `body` as it is (nothing is built or switched on).
 * The exporters send what is left when `body` ends (at most 2 s each for a collector that does not answer).
 */
export const around = <A, E, R>(
  environment: CommandEnvironment,
  body: (environment: CommandEnvironment) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | ConfigError, R> =>
  Either.match(settingsFromEnv(environment.env), {
    onLeft: Effect.fail,
    onRight: (settings) => {
      if (settings === undefined) return body(environment)
      // the collector's credentials: header values, a password in an endpoint URL
      const own = [...Object.values(settings.headers), ...[settings.traces, settings.metrics].flatMap((u) => passwordOf(u))]
      let redactor = Redactor.empty.with(own)
      const told: CommandEnvironment = {
        ...environment,
        onSecrets: (secrets) => {
          redactor = redactor.with(secrets)
          environment.onSecrets?.(secrets)
        }
      }
      Telemetry.enable()
      return body(told).pipe(
        Effect.locally(HttpClient.currentTracerDisabledWhen, () => true),
        Effect.locallyWith(CurrentRedactor, (r) => r.with(own)),
        Effect.provide(exporters(settings, environment.env, (text) => redactor.redact(text)))
      )
    }
  })
