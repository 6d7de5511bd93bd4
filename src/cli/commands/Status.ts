/**
 * `ferry status`: each stream's checkpoint and last run (from `ferry.runs`), and who holds it now (its
 * live lease, on a server), as a table or as JSON. It
 * only reads: an embedded database no run has created is said to be so, not created.
 */
import { SqlClient } from "@effect/sql/SqlClient"
import { Effect, Option } from "effect"
import * as FileCheckpoints from "../../checkpoint/FileCheckpoints.js"
import { CheckpointStore, keyOf } from "../../CheckpointStore.js"
import type { FerryConfigShape } from "../../config/Config.js"
import { ExitCode } from "../../domain/Errors.js"
import { type StreamSpec, targetName } from "../../domain/StreamSpec.js"
import * as Database from "../../postgres/Database.js"
import type { Command } from "../Args.js"
import { formatDuration, formatTable } from "../TextTable.js"
import * as Wiring from "../Wiring.js"
import { type CommandEnvironment, notCreatedYet, redactedStdout, withConfig } from "./CommandEnvironment.js"

interface StatusRow {
  readonly stream: string
  readonly target: string
  readonly checkpoint: string | null
  readonly last_run: string | null
  readonly status: string | null
  readonly started_at: string | null
  readonly finished_at: string | null
  readonly duration_ms: number | null
  readonly fetched: number | null
  readonly inserted: number | null
  readonly updated: number | null
  readonly unchanged: number | null
  readonly quarantined: number | null
  readonly already_quarantined: number | null
  readonly error: string | null
  /** runs of the stream and target found dead (status `abandoned`), and when the last one started */
  readonly abandoned_runs: number
  readonly last_abandoned_at: string | null
  /** a stream with `target.deletes` only: the last run's deleted (flagged) and missing (complete read) rows */
  readonly deleted?: number | null
  readonly missing?: number | null
  /** a child stream: its parent stream (it keeps a checkpoint per parent row, none of its own) */
  readonly parent_stream?: string
  /** a stream a run holds now (server only): its lease's owner, epoch and expiry */
  readonly lease?: { readonly owner: string; readonly epoch: string; readonly until: string }
}

type RunRow = Record<string, unknown>

/** the stream's lease while it is live (a run holds the stream now) */
const liveLease = `(SELECT json_build_object('owner', l.owner, 'epoch', l.epoch::text,
    'until', to_char(l.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
  FROM ferry.leases l WHERE l.stream = s.stream AND l.target = s.target AND l.expires_at > now()) AS lease`

/**
 * The last run of each stream with its target table. A run recorded before runs named their target
 * (target NULL) stands for its stream until the target has a run of its own; before the migration that
 * added the target (a read-only `status` migrates nothing), every run is such a run.
 */
const lastRuns = (streams: ReadonlyArray<StreamSpec>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const [table] = yield* sql.unsafe<{ present: boolean; keyed: boolean; timed: boolean; deletes: boolean; leased: boolean }>(
      `SELECT to_regclass('ferry.runs') IS NOT NULL AS present, to_regclass('ferry.leases') IS NOT NULL AS leased,
         EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass('ferry.runs') AND attname = 'already_quarantined'
           AND NOT attisdropped) AS keyed,
         EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass('ferry.runs') AND attname = 'duration_ms'
           AND NOT attisdropped) AS timed,
         EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass('ferry.runs') AND attname = 'missing'
           AND NOT attisdropped) AS deletes`
    )
    if (!table?.present) return new Map<string, RunRow>()
    const [target, already] = table.keyed ? ["r.target", "r.already_quarantined"] : ["NULL", "NULL"]
    // the summary's duration_ms (from the program's start); a run recorded before it was stored: the timestamps
    const fromTimestamps = "(extract(epoch FROM r.finished_at - r.started_at) * 1000)::bigint"
    const duration = table.timed ? `coalesce(r.duration_ms, ${fromTimestamps})` : fromTimestamps
    // runs found dead (PgSink.startRun): the last run that succeeded after them would hide them
    const abandoned = table.timed
      ? `(SELECT count(*) FROM ferry.runs a WHERE a.stream = s.stream AND a.target = s.target AND a.status = 'abandoned')
           AS abandoned_runs,
         (SELECT max(a.started_at) FROM ferry.runs a WHERE a.stream = s.stream AND a.target = s.target
           AND a.status = 'abandoned') AS last_abandoned_at`
      : "0 AS abandoned_runs, NULL::timestamptz AS last_abandoned_at"
    const rows = yield* sql.unsafe<RunRow>(
      `SELECT DISTINCT ON (s.stream) s.stream, r.run_id, r.status, r.started_at, r.finished_at,
         ${duration} AS duration_ms,
         r.fetched, r.inserted, r.updated, r.unchanged, r.quarantined, ${already} AS already_quarantined, r.error,
         ${table.deletes ? "r.deleted, r.missing" : "NULL AS deleted, NULL AS missing"},
         ${abandoned},
         ${table.leased ? liveLease : "NULL AS lease"}
       FROM unnest($1::text[], $2::text[]) AS s(stream, target)
       JOIN ferry.runs r ON r.stream = s.stream AND (${target} = s.target OR ${target} IS NULL)
       ORDER BY s.stream, ${target} IS NULL, r.started_at DESC`,
      [streams.map((s) => s.name), streams.map((s) => targetName(s.target))]
    )
    return new Map(rows.map((r) => [String(r.stream), r]))
  }).pipe(Effect.mapError((e) => Database.fromSqlError(e, "reading ferry.runs")))

const toIso = (value: unknown): string | null =>
  value === null || value === undefined ? null : value instanceof Date ? value.toISOString() : String(value)
const toNumber = (value: unknown): number | null => (value === null || value === undefined ? null : Number(value))

const statusRow = (stream: StreamSpec, checkpoint: Option.Option<string>, run: RunRow | undefined): StatusRow => ({
  stream: stream.name,
  target: targetName(stream.target),
  checkpoint: Option.getOrNull(checkpoint),
  last_run: run ? String(run.run_id) : null,
  status: run ? String(run.status) : null,
  started_at: toIso(run?.started_at),
  finished_at: toIso(run?.finished_at),
  duration_ms: toNumber(run?.duration_ms),
  fetched: toNumber(run?.fetched),
  inserted: toNumber(run?.inserted),
  updated: toNumber(run?.updated),
  unchanged: toNumber(run?.unchanged),
  quarantined: toNumber(run?.quarantined),
  already_quarantined: toNumber(run?.already_quarantined),
  error: run?.error === null || run?.error === undefined ? null : String(run.error),
  abandoned_runs: toNumber(run?.abandoned_runs) ?? 0,
  last_abandoned_at: toIso(run?.last_abandoned_at),
  ...(stream.target.deletes === undefined ? {} : { deleted: toNumber(run?.deleted), missing: toNumber(run?.missing) }),
  ...(stream.parent === undefined ? {} : { parent_stream: stream.parent.stream }),
  ...(run?.lease ? { lease: run.lease as NonNullable<StatusRow["lease"]> } : {})
})

/** Each stream's row: its checkpoint from the store, its last run from `runs`. */
const statusRows = (streams: ReadonlyArray<StreamSpec>, runs: ReadonlyMap<string, RunRow>) =>
  Effect.flatMap(CheckpointStore, (store) =>
    Effect.forEach(streams, (stream) =>
      Effect.map(store.load(keyOf(stream)), (checkpoint) =>
        statusRow(stream, Option.map(checkpoint, (c) => c.cursor), runs.get(stream.name)))))

/** The rows: from the database, or, before it is created, from a file checkpoint store if there is one. */
const rowsOf = (config: FerryConfigShape, environment: CommandEnvironment, exists: boolean) => {
  if (exists) {
    return Effect.flatMap(lastRuns(config.streams), (runs) => statusRows(config.streams, runs)).pipe(
      Effect.provide(Wiring.stateLayer(config, environment, 1))
    )
  }
  // No embedded database yet: no run was recorded (a file checkpoint store may still hold cursors).
  return config.checkpoint.store === "file"
    ? statusRows(config.streams, new Map()).pipe(Effect.provide(FileCheckpoints.layer(config.checkpoint.path)))
    : Effect.succeed(config.streams.map((stream) => statusRow(stream, Option.none(), undefined)))
}

const columns = [
  "stream",
  "checkpoint",
  "status",
  "last_run_at",
  "duration",
  "fetched",
  "inserted",
  "updated",
  "unchanged",
  "quarantined",
  "already_quarantined"
]

const printTable = (rows: ReadonlyArray<StatusRow>, out: (text: string) => void) => {
  out(formatTable(
    // the deletes' counts: only when a stream has deletes
    rows.some((r) => "deleted" in r) ? [...columns, "deleted", "missing"] : columns,
    rows.map((r) => ({
      ...r,
      checkpoint: r.parent_stream === undefined ? r.checkpoint : `per ${r.parent_stream} row`,
      status: r.status ?? "never run",
      last_run_at: r.started_at,
      duration: formatDuration(r.duration_ms)
    }))
  ))
  for (const r of rows) {
    if (r.lease) out(`${r.stream}: held by ${r.lease.owner} until ${r.lease.until} (lease epoch ${r.lease.epoch})`)
    if (r.error) out(`${r.stream}: last error: ${r.error}`)
    if (r.abandoned_runs > 0) {
      out(`${r.stream}: ${r.abandoned_runs} run(s) abandoned, the last one started at ${r.last_abandoned_at} ` +
        `(killed, out of memory, or its database session lost; status 'abandoned' in ferry.runs)`)
    }
  }
}

export const status = (command: Extract<Command, { _tag: "status" }>, environment: CommandEnvironment) =>
  withConfig(command.config, environment, (config) =>
    Effect.gen(function*() {
      const exists = Wiring.databaseExists(config, environment)
      const rows = yield* rowsOf(config, environment, exists)
      // ferry.runs.error may predate the redaction of the message (or the secret may be new): redact again
      const out = yield* redactedStdout(environment)
      const database = Wiring.describeDatabase(config, environment)
      if (command.json) out(JSON.stringify({ database, created: exists, streams: rows }, null, 2))
      else {
        if (!exists) out(`database ${database}: ${notCreatedYet}`)
        printTable(rows, out)
      }
      return ExitCode.Ok
    }))
