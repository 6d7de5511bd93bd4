/** `ferry sql <statement>`: one statement on the database, its rows as a table or as JSON. */
import { SqlClient } from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Chunk, Effect, Stream } from "effect"
import { DatabaseError, ExitCode, UsageError } from "../../domain/Errors.js"
import * as Database from "../../postgres/Database.js"
import { quoteIdent } from "../../sink/postgres/Sql.js"
import type { Command } from "../Args.js"
import { formatTable } from "../TextTable.js"
import * as Wiring from "../Wiring.js"
import { type CommandEnvironment, notCreatedYet, withConfig } from "./CommandEnvironment.js"

/**
 * The statement: one, with the target tables' schema first on the search path (`orders`, not
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

export const sql = (command: Extract<Command, { _tag: "sql" }>, environment: CommandEnvironment) =>
  withConfig(command.config, environment, (config) =>
    Effect.gen(function*() {
      if (!Wiring.databaseExists(config, environment)) {
        return yield* new DatabaseError({
          reason: `no database to query: the ${Wiring.describeDatabase(config, environment)} is ${notCreatedYet}`
        })
      }
      const rows = yield* runStatement(command.query, config.database.schema).pipe(
        Effect.provide(Wiring.database(config, environment)),
        Effect.scoped
      )
      // the user's own data, as it is (not redacted)
      if (command.json) environment.stdout(JSON.stringify(rows, null, 2))
      else {
        const columns = rows.length > 0 ? Object.keys(rows[0]!) : []
        environment.stdout(rows.length > 0 ? formatTable(columns, rows) : "(no rows)")
        if (rows.length > 0) environment.stdout(`(${rows.length} row${rows.length === 1 ? "" : "s"})`)
      }
      return ExitCode.Ok
    }))
