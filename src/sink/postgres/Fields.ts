/**
 * `ferry.fields`: the field paths a stream has seen in its target's records, for the run summary's
 * `new_fields` (sync/NewFields.ts decides what a path is and how many are kept).
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect } from "effect"
import type { DatabaseError } from "../../domain/Errors.js"
import { type StreamSpec, targetName } from "../../domain/StreamSpec.js"
import { query } from "./Sql.js"

/** The stream's known paths; none before the first prepare made the table (a dry run's is rolled back). */
export const known = (sql: SqlClient, stream: StreamSpec): Effect.Effect<ReadonlyArray<string>, DatabaseError> =>
  Effect.gen(function*() {
    const doing = `reading the known fields of stream ${stream.name}`
    const [{ present }] = yield* query<{ present: boolean }>(sql, `SELECT to_regclass('ferry.fields') IS NOT NULL AS present`, [], doing)
    if (!present) return []
    const rows = yield* query<{ path: string }>(
      sql,
      `SELECT path FROM ferry.fields WHERE stream = $1 AND target = $2`,
      [stream.name, targetName(stream.target)],
      doing
    )
    return rows.map((r) => r.path)
  })

/** Records paths first seen by `runId` (inside the batch's transaction: a batch rolled back records none). */
export const record = (
  sql: SqlClient,
  stream: StreamSpec,
  runId: string,
  paths: ReadonlyArray<string>
): Effect.Effect<void, DatabaseError> =>
  paths.length === 0 ? Effect.void : Effect.asVoid(query(
    sql,
    `INSERT INTO ferry.fields (stream, target, path, first_seen_run)
     SELECT $1, $2, p, $4 FROM unnest($3::text[]) AS p ON CONFLICT DO NOTHING`,
    [stream.name, targetName(stream.target), paths, runId],
    `recording the new fields of stream ${stream.name}`
  ))
