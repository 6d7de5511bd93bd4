/**
 * `ferry.runs`: one row per run and stream, written when the run starts (`running`) and when it ends.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect } from "effect"
import type { DatabaseError } from "../../domain/Errors.js"
import { type StreamSpec, targetName } from "../../domain/StreamSpec.js"
import type { RunRecord } from "../../Sink.js"
import { query } from "./Sql.js"

/**
 * The run's row, and, in the same statement, its stream's and target's earlier rows still `running`
 * marked `abandoned`: this run holds the lock (or the embedded database's data directory), so no run
 * that wrote them is alive; it was killed (SIGKILL, OOM) or lost its session. Their `finished_at`
 * stays NULL (when they died is not known); `error` says how and when they were found.
 */
export const startRun = (sql: SqlClient, stream: StreamSpec, runId: string): Effect.Effect<void, DatabaseError> =>
  query<{ run_id: string; started_at: string | null }>(
    sql,
    `WITH abandoned AS (
       UPDATE ferry.runs SET status = 'abandoned',
         error = 'abandoned: the run ended without recording its end (killed, out of memory, or its database ' ||
           'session lost); found by run ' || $1 || ' at ' || to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
       WHERE stream = $2 AND target = $3 AND status = 'running' AND run_id <> $1
       RETURNING run_id, started_at::text
     ), started AS (
       INSERT INTO ferry.runs (run_id, stream, target, status, started_at) VALUES ($1, $2, $3, 'running', clock_timestamp())
       ON CONFLICT (run_id, stream) DO UPDATE SET target = EXCLUDED.target, status = 'running',
         started_at = EXCLUDED.started_at, finished_at = NULL, error = NULL, exit_code = NULL, duration_ms = NULL
     )
     SELECT run_id, started_at FROM abandoned`,
    [runId, stream.name, targetName(stream.target)],
    `recording the start of run ${runId} of stream ${stream.name}`
  ).pipe(
    Effect.tap((rows) =>
      Effect.forEach(rows, (r) =>
        Effect.logWarning("run.abandoned").pipe(
          Effect.annotateLogs({ abandoned_run_id: r.run_id, started_at: r.started_at, target: targetName(stream.target) })
        ), { discard: true })
    ),
    Effect.asVoid
  )

/** the run's end: its status, counts, checkpoint, error and exit code (a row even if the start was not recorded) */
export const finishRun = (sql: SqlClient, r: RunRecord): Effect.Effect<void, DatabaseError> =>
  query(
    sql,
    `INSERT INTO ferry.runs (run_id, stream, status, finished_at, pages, fetched, inserted, updated, unchanged,
       quarantined, retries, checkpoint, error, exit_code, target, already_quarantined, duration_ms,
       deleted, missing, complete_read, slice)
     VALUES ($1, $2, $3, clock_timestamp(), $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
     ON CONFLICT (run_id, stream) DO UPDATE SET status = EXCLUDED.status, finished_at = EXCLUDED.finished_at,
       pages = EXCLUDED.pages, fetched = EXCLUDED.fetched, inserted = EXCLUDED.inserted,
       updated = EXCLUDED.updated, unchanged = EXCLUDED.unchanged, quarantined = EXCLUDED.quarantined,
       retries = EXCLUDED.retries, checkpoint = EXCLUDED.checkpoint, error = EXCLUDED.error,
       exit_code = EXCLUDED.exit_code, target = EXCLUDED.target, already_quarantined = EXCLUDED.already_quarantined,
       duration_ms = EXCLUDED.duration_ms, deleted = EXCLUDED.deleted, missing = EXCLUDED.missing,
       complete_read = EXCLUDED.complete_read, slice = EXCLUDED.slice`,
    [
      r.runId,
      r.stream,
      r.status,
      r.counts.pages,
      r.counts.fetched,
      r.counts.inserted,
      r.counts.updated,
      r.counts.unchanged,
      r.counts.quarantined,
      r.counts.retries,
      r.checkpoint ?? null,
      r.error === undefined ? null : r.error.replace(/\u0000/g, "\\u0000"),
      r.exitCode,
      r.target,
      r.counts.alreadyQuarantined,
      r.durationMs === undefined ? null : Math.round(r.durationMs),
      r.counts.deleted ?? null,
      r.counts.missing ?? null,
      r.completeRead === true ? true : null,
      r.slice === true ? true : null
    ],
    `recording the end of run ${r.runId} of stream ${r.stream}`
  ).pipe(Effect.asVoid)

/** when the last complete read of the stream and target that succeeded started (epoch ms), if any */
export const lastCompleteRead = (sql: SqlClient, stream: StreamSpec): Effect.Effect<number | undefined, DatabaseError> =>
  query<{ at: string | null }>(
    sql,
    `SELECT (extract(epoch FROM max(coalesce(started_at, finished_at))) * 1000)::float8::text AS at FROM ferry.runs
     WHERE stream = $1 AND target = $2 AND complete_read AND status = 'succeeded'`,
    [stream.name, targetName(stream.target)],
    `reading the last complete read of stream ${stream.name}`
  ).pipe(Effect.map(([row]) => (row?.at === null || row?.at === undefined ? undefined : Number(row.at))))

export interface LastSuccess {
  /** when the stream's last successful run ended (ISO 8601), and how long ago by the database's clock */
  readonly at: string
  readonly ageMs: number
}

/**
 * Each stream's last successful run with its target table (another config's stream of the same name
 * writes another table: its runs do not count; nor do slices, `--from/--to`), for `ferry check --fresh`. A run recorded before runs
 * named their target (target NULL) counts for its stream; no `ferry.runs` yet: none succeeded.
 * Ages are measured on the database's clock, the one that stamped the runs.
 */
export const lastSuccesses = (
  sql: SqlClient,
  streams: ReadonlyArray<StreamSpec>
): Effect.Effect<ReadonlyMap<string, LastSuccess>, DatabaseError> =>
  Effect.gen(function*() {
    const doing = "reading the last successful runs from ferry.runs"
    const column = (name: string) =>
      `EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass('ferry.runs') AND attname = '${name}' AND NOT attisdropped)`
    const [table] = yield* query<{ present: boolean; keyed: boolean; sliced: boolean }>(
      sql,
      `SELECT to_regclass('ferry.runs') IS NOT NULL AS present, ${column("target")} AS keyed, ${column("slice")} AS sliced`,
      [],
      doing
    )
    if (table?.present !== true) return new Map()
    const target = table.keyed ? "r.target" : "NULL"
    // a slice (`--from/--to`) read a window, not the stream up to now: it does not make the stream fresh
    const whole = table.sliced ? "AND r.slice IS NOT TRUE" : ""
    const rows = yield* query<{ stream: string; at: string; age_ms: string }>(
      sql,
      `SELECT s.stream, to_char(max(coalesce(r.finished_at, r.started_at)) AT TIME ZONE 'UTC',
           'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS at,
         (extract(epoch FROM clock_timestamp() - max(coalesce(r.finished_at, r.started_at))) * 1000)::float8::text AS age_ms
       FROM unnest($1::text[], $2::text[]) AS s(stream, target)
       JOIN ferry.runs r ON r.stream = s.stream AND (${target} = s.target OR ${target} IS NULL) AND r.status = 'succeeded' ${whole}
       GROUP BY s.stream`,
      [streams.map((s) => s.name), streams.map((s) => targetName(s.target))],
      doing
    )
    return new Map(rows.map((r) => [r.stream, { at: r.at, ageMs: Math.max(0, Number(r.age_ms)) }]))
  })
