/**
 * `ferry check --fresh` / `--max-age AGE`: the dead man's switch. Each stream whose last successful run
 * (in `ferry.runs`) is older than its max age, or that never succeeded, is stale: exit 2, a code that
 * the check's own failures (64, 74, 75, 78) never use, so a monitor tells "stale" from "could not look".
 * Only the database is read: a monitor runs this every minute, and the APIs need not answer it.
 */
import { SqlClient } from "@effect/sql/SqlClient"
import { Duration, Effect } from "effect"
import type { FerryConfigShape } from "../../config/Config.js"
import { ExitCode, UsageError } from "../../domain/Errors.js"
import * as MaxAge from "../../domain/MaxAge.js"
import type { StreamSpec } from "../../domain/StreamSpec.js"
import * as RunLog from "../../sink/postgres/RunLog.js"
import type { Freshness } from "../Args.js"
import * as Wiring from "../Wiring.js"
import { type CommandEnvironment, redactedStdout, selectStreams } from "./CommandEnvironment.js"

interface Verdict {
  readonly stream: string
  readonly last_success: string | null
  readonly age_seconds: number | null
  /** as written (`2h`), and in seconds; null: the stream has no max age (not judged) */
  readonly max_age: string | null
  readonly max_age_seconds: number | null
  /** null: not judged */
  readonly ok: boolean | null
}

/** the flag's limit over the stream's own (a flag overrides the config, as `--concurrency` does) */
const limitOf = (stream: StreamSpec, flag: Freshness["maxAge"]) =>
  flag !== undefined
    ? flag
    : stream.maxAge === undefined
    ? undefined
    : { ms: Duration.toMillis(stream.maxAge), text: MaxAge.format(Duration.toMillis(stream.maxAge)) }

const verdictOf = (stream: StreamSpec, flag: Freshness["maxAge"], last: RunLog.LastSuccess | undefined): Verdict => {
  const limit = limitOf(stream, flag)
  return {
    stream: stream.name,
    last_success: last?.at ?? null,
    age_seconds: last === undefined ? null : Math.round(last.ageMs / 1000),
    max_age: limit?.text ?? null,
    max_age_seconds: limit === undefined ? null : limit.ms / 1000,
    ok: limit === undefined ? null : last !== undefined && last.ageMs <= limit.ms
  }
}

/** `3h 5m`: the two largest units */
const ago = (seconds: number): string => {
  const parts: Array<[number, string]> = [
    [Math.floor(seconds / 86_400), "d"],
    [Math.floor((seconds % 86_400) / 3_600), "h"],
    [Math.floor((seconds % 3_600) / 60), "m"],
    [seconds % 60, "s"]
  ]
  const shown = parts.filter(([n]) => n > 0).map(([n, unit]) => `${n}${unit}`)
  return shown.length === 0 ? "0s" : shown.slice(0, 2).join(" ")
}

const line = (v: Verdict): string => {
  if (v.ok === null) return `skip  ${v.stream}: no maxAge in the config (give --max-age to judge every stream)`
  const head = v.ok ? "ok   " : "STALE"
  if (v.last_success === null) return `${head} ${v.stream}: never succeeded (max age ${v.max_age})`
  return `${head} ${v.stream}: last success ${v.last_success}, ${ago(v.age_seconds!)} ago (max age ${v.max_age})`
}

const lastSuccesses = (config: FerryConfigShape, environment: CommandEnvironment, streams: ReadonlyArray<StreamSpec>) =>
  // an embedded database no run has created: no run succeeded (and none is created to say so)
  !Wiring.databaseExists(config, environment)
    ? Effect.succeed(new Map<string, RunLog.LastSuccess>())
    : Effect.flatMap(SqlClient, (sql) => RunLog.lastSuccesses(sql, streams)).pipe(
      Effect.provide(Wiring.database(config, environment))
    )

export const freshness = (config: FerryConfigShape, freshness: Freshness, environment: CommandEnvironment) =>
  Effect.gen(function*() {
    const streams = yield* selectStreams(config, freshness.streams)
    if (freshness.maxAge === undefined && streams.every((s) => s.maxAge === undefined)) {
      return yield* new UsageError({
        message: "check --fresh: no selected stream has maxAge: in the config; set it, or give --max-age AGE (e.g. 2h)"
      })
    }
    const last = yield* lastSuccesses(config, environment, streams)
    const verdicts = streams.map((s) => verdictOf(s, freshness.maxAge, last.get(s.name)))
    const ok = verdicts.every((v) => v.ok !== false)
    const out = yield* redactedStdout(environment)
    if (freshness.json) {
      out(JSON.stringify({ database: Wiring.describeDatabase(config, environment), ok, streams: verdicts }, null, 2))
    } else for (const v of verdicts) out(line(v))
    return ok ? ExitCode.Ok : ExitCode.Stale
  })
