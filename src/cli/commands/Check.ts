/**
 * `ferry check`: the config, the database and each stream's first page, one line each on stdout. It
 * reads the database and the sources; it creates nothing, not even the embedded database.
 * With `--fresh` or `--max-age` it is the freshness check instead (`Freshness.ts`), database only.
 */
import { SqlClient } from "@effect/sql/SqlClient"
import { Clock, Effect, Either, Option, Stream } from "effect"
import type { FerryConfigShape } from "../../config/Config.js"
import { ExitCode, worstExitCode } from "../../domain/Errors.js"
import * as Parent from "../../domain/Parent.js"
import type { ParentSpec } from "../../domain/Parent.js"
import type { StreamSpec } from "../../domain/StreamSpec.js"
import * as Database from "../../postgres/Database.js"
import * as ParentRows from "../../sink/postgres/ParentRows.js"
import { Source } from "../../Source.js"
import { endOf } from "../../sync/Window.js"
import type { Command } from "../Args.js"
import * as Wiring from "../Wiring.js"
import { freshness } from "./Freshness.js"
import { type CommandEnvironment, notCreatedYet, redactedStdout, withConfig } from "./CommandEnvironment.js"

type Out = (text: string) => void

const checkDatabase = (config: FerryConfigShape, environment: CommandEnvironment, out: Out) => {
  const where = Wiring.describeDatabase(config, environment)
  if (!Wiring.databaseExists(config, environment)) return Effect.sync(() => out(`ok    database ${where}: ${notCreatedYet}`))
  return Effect.flatMap(SqlClient, (sql) => sql<{ version: string }>`SELECT current_setting('server_version') AS version`).pipe(
    Effect.mapError((e) => Database.fromSqlError(e, "checking the database")),
    Effect.tap(([row]) => out(`ok    database ${where} (PostgreSQL ${row?.version ?? "?"})`)),
    Effect.provide(Wiring.database(config, environment))
  )
}

/** One stream's first page: its exit code (0, or what reading or decoding it says), its lines printed. */
const checkStream = (stream: StreamSpec, out: Out) =>
  Effect.gen(function*() {
    const source = yield* Source
    const from = Option.fromNullable(stream.source.incremental?.initial)
    // the end a run would send (`now - 1 hour`: now); the config has checked it already
    const end = Either.getOrUndefined(endOf(stream, yield* Clock.currentTimeMillis))
    const first = yield* source.pages(stream, from, Option.fromNullable(end)).pipe(
      Stream.take(1),
      Stream.runHead,
      Effect.either,
      Effect.annotateLogs({ stream: stream.name })
    )
    if (Either.isLeft(first)) {
      out(`FAIL  ${stream.name}: ${first.left.message}`)
      return first.left.exitCode as number
    }
    const records = Option.match(first.right, { onNone: () => [] as ReadonlyArray<unknown>, onSome: (p) => p.records })
    const reasons = records.flatMap((r) => Either.match(stream.decode(r), { onLeft: (reason) => [reason], onRight: () => [] }))
    // the first few distinct reasons: one bad field usually explains a whole page
    const shown = [...new Set(reasons)].slice(0, 3).map((r) => `\n      ${r}`).join("")
    if (records.length > 0 && reasons.length === records.length) {
      // not one record would be written: the config does not fit the data (a wrong `records` path,
      // a column type, a primary key that is not there)
      out(`FAIL  ${stream.name}: none of the ${records.length} record(s) on the first page is valid:${shown}`)
      return ExitCode.Data
    }
    out(
      `ok    ${stream.name}: ${records.length} record(s) on the first page, ${reasons.length} invalid` +
        (reasons.length > 0 ? `:${shown}` : "")
    )
    const more = Option.flatMap(first.right, (p) => Option.fromNullable(p.morePages))
    // a warning, not a failure (exit stays 0): the records may be all there are
    if (Option.isSome(more)) out(`warn  ${stream.name}: the source may have more pages than it reads: ${more.value}`)
    return ExitCode.Ok
  })

/**
 * A child stream is checked as it reads its parent's first row (the table as it stands, read only):
 * its URL has no meaning without one. No row yet (or no database): nothing to check, said so.
 */
const checkChild = (stream: StreamSpec & { readonly parent: ParentSpec }, config: FerryConfigShape, environment: CommandEnvironment, out: Out) =>
  Effect.gen(function*() {
    const parent = stream.parent
    const columns = Parent.columnsRead(stream.source, stream.target.columns)
    const rows = !Wiring.databaseExists(config, environment) ? Option.none() : yield* Effect.flatMap(
      SqlClient,
      (sql) => ParentRows.parentRows(sql, parent, columns, undefined, 1)
    ).pipe(Effect.provide(Wiring.database(config, environment)))
    const row = Option.flatMap(rows, (found) => Option.fromNullable(found[0]))
    if (Option.isNone(row)) {
      out(`skip  ${stream.name}: no row in ${parent.stream}'s table yet to read a child page for (run ${parent.stream} first)`)
      return ExitCode.Ok as number
    }
    const child = Parent.streamFor(stream, row.value)
    if (Either.isLeft(child)) {
      out(`FAIL  ${stream.name}: the first row of ${parent.stream} (${row.value.key}) makes no request: ${child.left}`)
      return ExitCode.Data as number
    }
    return yield* checkStream(child.right, out)
  })

export const check = (command: Extract<Command, { _tag: "check" }>, environment: CommandEnvironment) =>
  withConfig(command.config, environment, (config) =>
    command.freshness !== undefined ? freshness(config, command.freshness, environment) : Effect.gen(function*() {
      const out = yield* redactedStdout(environment)
      out(`ok    config ${config.file}: ${config.streams.length} stream(s)`)
      yield* checkDatabase(config, environment, out)
      const codes = yield* Effect.forEach(config.streams, (stream) =>
        stream.parent === undefined
          ? checkStream(stream, out)
          : checkChild({ ...stream, parent: stream.parent }, config, environment, out)).pipe(
        Effect.provide(Wiring.source(environment))
      )
      return worstExitCode(codes)
    }))
