/**
 * Spans and counters for OpenTelemetry, at no cost when it is off: `span` hands the effect back as it
 * is, and the counters count nothing, until the bin turns telemetry on (`enable`: only when an
 * `OTEL_EXPORTER_OTLP_*` endpoint is set, cli/Telemetry.ts). Without this switch Effect's own tracer
 * would make, and drop, a span per page (issue 17). Spans: `ferry.stream.run`, with `ferry.page.fetch`
 * and `ferry.batch.commit` under it.
 */
import { Effect, Metric } from "effect"

let on = false

/** from now on, spans are made and counters count (the exporter is in place) */
export const enable = (): void => {
  on = true
}

type Attributes = Readonly<Record<string, string | number | boolean>>

/** `self` in a span named `name`; when telemetry is off, `self` itself (and `attributes` is not called) */
export const span = (name: string, attributes: () => Attributes) => <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  on ? Effect.withSpan(self, name, { attributes: attributes(), captureStackTrace: false }) : self

/** attributes learnt along the way (a page's status, a run's counts), on the current span */
export const annotate = (attributes: Attributes): Effect.Effect<void> => (on ? Effect.annotateCurrentSpan(attributes) : Effect.void)

/** attributes known only when `self` ends (a run's counts), on its span, whatever the outcome */
export const annotateAtEnd = (attributes: Effect.Effect<Attributes>) => <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  on ? Effect.onExit(self, () => Effect.flatMap(attributes, annotate)) : self

const records = Metric.counter("ferry.records", { description: "records read, by outcome", incremental: true })
const retries = Metric.counter("ferry.retries", { description: "HTTP requests retried", incremental: true })
const pages = Metric.counter("ferry.pages", { description: "pages fetched", incremental: true })
const runs = Metric.counter("ferry.runs", { description: "stream runs, by status", incremental: true })

interface Ended {
  readonly stream: string
  readonly status: string
  readonly inserted: number
  readonly updated: number
  readonly unchanged: number
  readonly quarantined: number
  readonly alreadyQuarantined: number
  readonly retries: number
  readonly pages: number
}

/** a stream's run, counted when it ends, whatever the outcome */
export const countRun = (run: Ended): Effect.Effect<void> => {
  if (!on) return Effect.void
  const outcomes = {
    inserted: run.inserted,
    updated: run.updated,
    unchanged: run.unchanged,
    quarantined: run.quarantined,
    already_quarantined: run.alreadyQuarantined
  }
  const counted = (counter: Metric.Metric.Counter<number>) => counter.pipe(Metric.tagged("stream", run.stream))
  return Effect.all([
    ...Object.entries(outcomes).map(([outcome, n]) => Metric.incrementBy(counted(records).pipe(Metric.tagged("outcome", outcome)), n)),
    Metric.incrementBy(counted(retries), run.retries),
    Metric.incrementBy(counted(pages), run.pages),
    Metric.incrementBy(counted(runs).pipe(Metric.tagged("status", run.status)), 1)
  ], { discard: true })
}
