/**
 * What every part of the Postgres sink writes its SQL with: identifiers from the config are always
 * quoted (`"` doubled), values are always bind parameters, and a failed statement becomes a
 * DatabaseError saying what Ferry was doing.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect } from "effect"
import { fromSqlError } from "../../postgres/Database.js"
import type { DatabaseError } from "../../domain/Errors.js"
import type { TargetSpec } from "../../domain/StreamSpec.js"

/** `"name"` with embedded quotes doubled: config identifiers are never spliced unquoted */
export const quoteIdent = (name: string): string => `"${name.replace(/"/g, "\"\"")}"`

export const qualifiedName = (target: Pick<TargetSpec, "schema" | "table">): string =>
  `${quoteIdent(target.schema)}.${quoteIdent(target.table)}`

/** the target as messages name it: `schema.table`, unquoted */
export const displayName = (target: Pick<TargetSpec, "schema" | "table">): string => `${target.schema}.${target.table}`

/** one statement; a failure is a DatabaseError `doing: <Postgres' message>` */
export const query = <A extends object = Record<string, unknown>>(
  sql: SqlClient,
  text: string,
  params: ReadonlyArray<unknown>,
  doing: string
): Effect.Effect<ReadonlyArray<A>, DatabaseError> =>
  sql.unsafe<A>(text, params).pipe(Effect.mapError((e) => fromSqlError(e, doing)))

/**
 * data errors are the row's fault (class 22, not-null, check, and 54000: a value too large for its
 * index, e.g. a primary key of 10 kB): quarantine the row, keep the run
 */
export const isDataError = (state: string | undefined): boolean =>
  state !== undefined && (state.startsWith("22") || state === "23502" || state === "23514" || state === "54000")
