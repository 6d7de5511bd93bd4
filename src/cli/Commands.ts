/**
 * What each command does, as an Effect that ends in an exit code. Every failure is logged once,
 * as one line naming what is wrong, and mapped to its documented code; a defect (a bug in Ferry)
 * is the only thing that logs a stack, and exits 70.
 */
import { SqlClient } from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { randomBytes } from "node:crypto"
import { Cause, Chunk, Effect, Either, Option, Stream } from "effect"
import * as FileCheckpoints from "../checkpoint/FileCheckpoints.js"
import { CheckpointStore, keyOf } from "../CheckpointStore.js"
import type { Command } from "./Args.js"
import * as Config from "../config/Config.js"
import * as Database from "../postgres/Database.js"
import { DatabaseError, ExitCode, UsageError, worstExitCode, type FerryError } from "../domain/Errors.js"
import * as Failpoint from "../lib/Failpoint.js"
import { redactor } from "./Logging.js"
import { formatDuration, formatTable } from "./TextTable.js"
import { quoteIdent } from "../sink/postgres/Sql.js"
import * as Memory from "../testing/Memory.js"
import * as Progress from "./Progress.js"
import * as Services from "./Wiring.js"
import { Sink } from "../Sink.js"
import { Source } from "../Source.js"
import { type StreamSpec, targetName } from "../domain/StreamSpec.js"
import { syncAll } from "../sync/Sync.js"

export interface CommandEnvironment extends Services.Environment {
  readonly stdout: (text: string) => void
  readonly stderrIsTTY: boolean
  /** the exit code of an interruption, by the signal that caused it (130 SIGINT, 143 SIGTERM) */
  readonly interruptedExitCode?: (() => number) | undefined
  /** the id every log line of this process carries; default a new one */
  readonly runId?: string | undefined
}

export const newRunId = (): string => `${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`

const loadConfig = (path: string | undefined, environment: CommandEnvironment) =>
  Effect.tap(Config.load({ path, env: { ...environment.env }, cwd: environment.cwd }), (config) =>
    Effect.sync(() => redactor.add(config.secrets)))

/**
 * stdout for what Ferry itself says (`check`, `status`): no configured secret in it. `sql` prints the
 * user's own data as it is.
 */
const redactedStdout = (environment: CommandEnvironment) => (text: string) => environment.stdout(redactor.redact(text))

const selectStreams = (config: Config.FerryConfigShape, names: ReadonlyArray<string>) => {
  if (names.length === 0) return Effect.succeed(config.streams)
  const known = new Map(config.streams.map((s) => [s.name, s]))
  const missing = names.filter((n) => !known.has(n))
  return missing.length > 0
    ? Effect.fail(
      new UsageError({
        message: `unknown stream ${missing.map((m) => `"${m}"`).join(", ")}; the config has ${
          config.streams.map((s) => s.name).join(", ")
        }`
      })
    )
    : Effect.succeed([...new Set(names)].map((n) => known.get(n)!))
}

const run = (command: Extract<Command, { _tag: "run" }>, environment: CommandEnvironment, runId: string) =>
  Effect.gen(function*() {
    const config = yield* loadConfig(command.config, environment)
    const streams = yield* selectStreams(config, command.streams)
    const stray = Services.strayDataDir(config, environment)
    if (stray !== undefined) {
      yield* Effect.logWarning("embedded.elsewhere").pipe(Effect.annotateLogs({
        found: stray,
        using: Services.dataDir(config, environment),
        hint: "the embedded database lives beside the config file; move the directory found there " +
          "(or set FERRY_DATA_DIR to it) to keep its data and checkpoints"
      }))
    }
    return yield* Effect.gen(function*() {
      const progress = yield* Progress.make({ tty: environment.stderrIsTTY })
      const summaries = yield* syncAll(streams, {
        runId,
        fullRefresh: command.fullRefresh,
        dryRun: command.dryRun,
        onProgress: progress.update,
        interruptedExitCode: environment.interruptedExitCode
      })
      return worstExitCode(summaries.map((s) => s.exitCode))
    }).pipe(
      Effect.provide(Services.layer(config, environment)),
      Effect.scoped
    )
  })

const check = (command: Extract<Command, { _tag: "check" }>, environment: CommandEnvironment) =>
  Effect.gen(function*() {
    const config = yield* loadConfig(command.config, environment)
    const out = redactedStdout(environment)
    out(`ok    config ${config.file}: ${config.streams.length} stream(s)`)
    // `check` reads the database and the sources; it creates nothing, not even the embedded database.
    const where = Services.describeDatabase(config, environment)
    if (Services.databaseExists(config, environment)) {
      yield* Effect.flatMap(SqlClient, (sql) => sql<{ version: string }>`SELECT current_setting('server_version') AS version`).pipe(
        Effect.mapError((e) => Database.fromSqlError(e, "checking the database")),
        Effect.tap(([row]) => out(`ok    database ${where} (PostgreSQL ${row?.version ?? "?"})`)),
        Effect.provide(Services.database(config, environment))
      )
    } else out(`ok    database ${where}: ${notCreatedYet}`)
    return yield* Effect.gen(function*() {
      const source = yield* Source
      const codes: Array<number> = []
      for (const stream of config.streams) {
        const from = Option.fromNullable(stream.source.incremental?.initial)
        const first = yield* source.pages(stream, from).pipe(
          Stream.take(1),
          Stream.runHead,
          Effect.either,
          Effect.annotateLogs({ stream: stream.name })
        )
        if (Either.isLeft(first)) {
          out(`FAIL  ${stream.name}: ${first.left.message}`)
          codes.push(first.left.exitCode)
          continue
        }
        const records = Option.match(first.right, { onNone: () => [] as ReadonlyArray<unknown>, onSome: (p) => p.records })
        const reasons = records.flatMap((r) => Either.match(stream.decode(r), { onLeft: (reason) => [reason], onRight: () => [] }))
        // the first few distinct reasons: one bad field usually explains a whole page
        const shown = [...new Set(reasons)].slice(0, 3).map((r) => `\n      ${r}`).join("")
        if (records.length > 0 && reasons.length === records.length) {
          // not one record would be written: the config does not fit the data (a wrong `records` path,
          // a column type, a primary key that is not there)
          out(`FAIL  ${stream.name}: none of the ${records.length} record(s) on the first page is valid:${shown}`)
          codes.push(ExitCode.Data)
          continue
        }
        out(
          `ok    ${stream.name}: ${records.length} record(s) on the first page, ${reasons.length} invalid` +
            (reasons.length > 0 ? `:${shown}` : "")
        )
        const more = Option.flatMap(first.right, (p) => Option.fromNullable(p.morePages))
        // a warning, not a failure (exit stays 0): the records may be all there are
        if (Option.isSome(more)) out(`warn  ${stream.name}: the source may have more pages than it reads: ${more.value}`)
        codes.push(ExitCode.Ok)
      }
      return worstExitCode(codes)
    }).pipe(Effect.provide(Services.source))
  })

/** what the looking commands say of an embedded database that no run has created */
const notCreatedYet = "not created yet (the first `ferry run` creates it)"

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
}

/**
 * The last run of each stream with its target table. A run recorded before runs named their target
 * (target NULL) stands for its stream until the target has a run of its own; before the migration that
 * added the target (a read-only `status` migrates nothing), every run is such a run.
 */
const lastRuns = (streams: ReadonlyArray<StreamSpec>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const [table] = yield* sql.unsafe<{ present: boolean; keyed: boolean; timed: boolean }>(
      `SELECT to_regclass('ferry.runs') IS NOT NULL AS present,
         EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass('ferry.runs') AND attname = 'already_quarantined'
           AND NOT attisdropped) AS keyed,
         EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass('ferry.runs') AND attname = 'duration_ms'
           AND NOT attisdropped) AS timed`
    )
    if (!table?.present) return new Map<string, Record<string, unknown>>()
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
    const rows = yield* sql.unsafe<Record<string, unknown>>(
      `SELECT DISTINCT ON (s.stream) s.stream, r.run_id, r.status, r.started_at, r.finished_at,
         ${duration} AS duration_ms,
         r.fetched, r.inserted, r.updated, r.unchanged, r.quarantined, ${already} AS already_quarantined, r.error,
         ${abandoned}
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

const statusRows = (streams: ReadonlyArray<StreamSpec>, runs: ReadonlyMap<string, Record<string, unknown>>) =>
  Effect.gen(function*() {
    const store = yield* CheckpointStore
    const out: Array<StatusRow> = []
    for (const stream of streams) {
      const checkpoint = yield* store.load(keyOf(stream))
      const run = runs.get(stream.name)
      out.push({
        stream: stream.name,
        target: targetName(stream.target),
        checkpoint: Option.getOrNull(Option.map(checkpoint, (c) => c.cursor)),
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
        last_abandoned_at: toIso(run?.last_abandoned_at)
      })
    }
    return out
  })

const status = (command: Extract<Command, { _tag: "status" }>, environment: CommandEnvironment) =>
  Effect.gen(function*() {
    const config = yield* loadConfig(command.config, environment)
    const exists = Services.databaseExists(config, environment)
    const rows = yield* (exists
      ? Effect.flatMap(lastRuns(config.streams), (runs) => statusRows(config.streams, runs)).pipe(
        Effect.provide(Services.layer(config, environment, 1))
      )
      // No embedded database yet: no run was recorded (a file checkpoint store may still hold cursors).
      : statusRows(config.streams, new Map()).pipe(
        Effect.provide(
          config.checkpoint.store === "file" ? FileCheckpoints.layer(config.checkpoint.path) : Memory.layer()
        )
      ))
    // ferry.runs.error may predate the redaction of the message (or the secret may be new): redact again
    const out = redactedStdout(environment)
    const database = Services.describeDatabase(config, environment)
    if (command.json) {
      out(JSON.stringify({ database, created: exists, streams: rows }, null, 2))
    } else {
      if (!exists) out(`database ${database}: ${notCreatedYet}`)
      out(
        formatTable(
          [
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
          ],
          rows.map((r) => ({
            ...r,
            status: r.status ?? "never run",
            last_run_at: r.started_at,
            duration: formatDuration(r.duration_ms)
          }))
        )
      )
      for (const r of rows) {
        if (r.error) out(`${r.stream}: last error: ${r.error}`)
        if (r.abandoned_runs > 0) {
          out(`${r.stream}: ${r.abandoned_runs} run(s) abandoned, the last one started at ${r.last_abandoned_at} ` +
            `(killed, out of memory, or its database session lost; status 'abandoned' in ferry.runs)`)
        }
      }
    }
    return ExitCode.Ok
  })

const reset = (command: Extract<Command, { _tag: "reset" }>, environment: CommandEnvironment) =>
  Effect.gen(function*() {
    const config = yield* loadConfig(command.config, environment)
    const [stream] = yield* selectStreams(config, [command.stream])
    if (!Services.databaseExists(config, environment)) {
      // No embedded database, so no run is in progress (a run creates it first): only a file store
      // can hold a checkpoint.
      if (config.checkpoint.store === "file") {
        yield* Effect.flatMap(CheckpointStore, (store) => store.clear(keyOf(stream!))).pipe(
          Effect.provide(FileCheckpoints.layer(config.checkpoint.path))
        )
      } else {
        environment.stdout(`reset ${stream!.name}: nothing to reset, the ${Services.describeDatabase(config, environment)} is ${notCreatedYet}`)
        return ExitCode.Ok
      }
    } else {
      yield* Effect.scoped(Effect.gen(function*() {
        const sink = yield* Sink
        const store = yield* CheckpointStore
        // Not while a run of the stream is in progress: it would save its cursor right back.
        yield* sink.lock(stream!)
        yield* store.clear(keyOf(stream!))
      })).pipe(Effect.provide(Services.layer(config, environment)))
    }
    environment.stdout(
      `reset ${stream!.name}: the next run reads from ${stream!.source.incremental?.initial ?? "the beginning"}`
    )
    return ExitCode.Ok
  })

/**
 * `ferry sql`'s statement: one, with the target tables' schema first on the search path (`orders`, not
 * `public.orders`, when `database.schema` is elsewhere). It goes through the extended protocol (a
 * cursor), where Postgres itself refuses a second statement; so a `;`-separated list never half-runs.
 * The statement's own failure (a typo, an unknown table) is the user's: 64 with Postgres's message; a
 * connection that fails is 74 as everywhere.
 */
const runStatement = (query: string, schema: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const conn = yield* sql.reserve
    yield* conn.execute(`SELECT set_config('search_path', $1, false)`, [`${quoteIdent(schema)}, public`], undefined)
    return yield* Stream.runCollect(conn.executeStream(query, [], undefined)).pipe(
      Effect.map((chunk) => Chunk.toReadonlyArray(chunk) as ReadonlyArray<Record<string, unknown>>),
      Effect.mapError((e) => statementError(e))
    )
  }).pipe(Effect.catchIf(Database.isSqlError, (e) => Effect.fail(Database.fromSqlError(e, "running the statement"))))

/** SQLSTATE classes that are the connection's or the server's trouble, not the statement's */
const serverTrouble = ["08", "53", "57", "58", "XX"]

const statementError = (error: SqlError): UsageError | DatabaseError => {
  const state = Database.sqlState(error)
  // a lock wait that ran out is no mistake in the statement: 75, as for a run
  if (state === undefined || serverTrouble.includes(state.slice(0, 2)) || state === Database.lockNotAvailable) {
    return Database.fromSqlError(error, "running the statement")
  }
  const text = Database.fromSqlError(error, "the statement failed").reason
  return new UsageError({
    message: state === "42601" && /multiple commands/.test(text)
      ? "ferry sql runs one statement at a time; this text holds several"
      : text
  })
}

const sqlCommand = (command: Extract<Command, { _tag: "sql" }>, environment: CommandEnvironment) =>
  Effect.gen(function*() {
    const config = yield* loadConfig(command.config, environment)
    if (!Services.databaseExists(config, environment)) {
      return yield* new DatabaseError({ reason: `no database to query: the ${Services.describeDatabase(config, environment)} is ${notCreatedYet}` })
    }
    const rows = yield* runStatement(command.query, config.database.schema).pipe(
      Effect.provide(Services.database(config, environment)),
      Effect.scoped
    )
    if (command.json) environment.stdout(JSON.stringify(rows, null, 2))
    else {
      const columns = rows.length > 0 ? Object.keys(rows[0]!) : []
      environment.stdout(rows.length > 0 ? formatTable(columns, rows) : "(no rows)")
      if (rows.length > 0) environment.stdout(`(${rows.length} row${rows.length === 1 ? "" : "s"})`)
    }
    return ExitCode.Ok
  })

const isFerryError = (u: unknown): u is FerryError =>
  typeof u === "object" && u !== null && "exitCode" in u && "_tag" in u

/** Runs a command: its exit code, with every error logged once and mapped to its code. */
export const execute = (command: Command, environment: CommandEnvironment): Effect.Effect<number> => {
  // every log line carries run_id and stream, also those before any stream starts (stream: null)
  const runId = environment.runId ?? newRunId()
  const program: Effect.Effect<number, unknown> = (() => {
    switch (command._tag) {
      case "run":
        return run(command, environment, runId)
      case "check":
        return check(command, environment)
      case "status":
        return status(command, environment)
      case "reset":
        return reset(command, environment)
      case "sql":
        return sqlCommand(command, environment)
      case "schema":
        return Effect.sync(() => {
          environment.stdout(JSON.stringify(Config.jsonSchema(), null, 2))
          return ExitCode.Ok
        })
      case "help":
      case "version":
        return Effect.succeed(ExitCode.Ok)
    }
  })()
  // FERRY_FAILPOINT (a testing aid) is configuration: unreadable, it is a 78 before anything runs
  return Effect.zipRight(Failpoint.validate, program).pipe(
    Effect.catchAll((error) =>
      isFerryError(error)
        ? Effect.as(
          Effect.logError(error.message).pipe(Effect.annotateLogs({ error: error._tag, exit_code: error.exitCode })),
          error.exitCode as number
        )
        : Effect.as(Effect.logError("internal error", Cause.fail(error)), ExitCode.Software as number)
    ),
    Effect.catchAllDefect((defect) =>
      Effect.as(Effect.logError("internal error", Cause.die(defect)), ExitCode.Software as number)
    ),
    Effect.annotateLogs({ run_id: runId, stream: null })
  )
}
