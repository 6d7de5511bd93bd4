/**
 * The target table: created from the stream's columns when it does not exist, otherwise verified
 * against information_schema. A column the stream lists and the table lacks is reported as missing
 * (Prepare.ts adds it: Evolve.ts); anything else that does not fit is a TargetMismatch (78) whose
 * message holds the SQL that would make it fit, and nothing is altered.
 * Its primary key is `tableKey`: the stream's, and the cursor column after it for `write: append`.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect } from "effect"
import { type DatabaseError, TargetMismatch } from "../../domain/Errors.js"
import { type Column, columnTypes, tableKey, type TargetSpec } from "../../domain/StreamSpec.js"
import { displayName, qualifiedName, query, quoteIdent } from "./Sql.js"

/** information_schema spells types one way, users another: compare canonical names */
const typeAliases: Readonly<Record<string, string>> = {
  int: "integer",
  int4: "integer",
  integer: "integer",
  int8: "bigint",
  bigint: "bigint",
  float8: "double precision",
  "double precision": "double precision",
  float4: "real",
  real: "real",
  bool: "boolean",
  boolean: "boolean",
  decimal: "numeric",
  numeric: "numeric",
  timestamptz: "timestamp with time zone",
  "timestamp with time zone": "timestamp with time zone",
  timestamp: "timestamp without time zone",
  "timestamp without time zone": "timestamp without time zone",
  date: "date",
  text: "text",
  jsonb: "jsonb",
  json: "json",
  uuid: "uuid",
  varchar: "character varying",
  "character varying": "character varying"
}

const canonicalType = (type: string): string => {
  const t = type.trim().toLowerCase()
  return typeAliases[t] ?? t
}

interface ExistingColumn {
  readonly name: string
  readonly type: string
  readonly udt: string
  readonly nullable: string
  readonly def: string | null
  readonly generated: string
}

/** problems that make the stream's own spec unusable, whatever the table */
export const specProblems = (target: TargetSpec): Array<string> => {
  const problems: Array<string> = []
  const names = new Set(target.columns.map((c) => c.name))
  for (const c of target.columns) {
    if (!(columnTypes as ReadonlyArray<string>).includes(c.type)) {
      problems.push(`column "${c.name}" has unsupported type ${JSON.stringify(c.type)}`)
    }
  }
  if (target.primaryKey.length === 0) problems.push("the stream has no primary key")
  for (const k of target.primaryKey) {
    if (!names.has(k)) problems.push(`primary key column "${k}" is not one of the stream's columns`)
  }
  if (target.cursorColumn !== undefined && !names.has(target.cursorColumn)) {
    problems.push(`cursor column "${target.cursorColumn}" is not one of the stream's columns`)
  }
  if (target.write === "append" && target.cursorColumn === undefined) {
    problems.push("write: append keeps a row per version (primary key + cursor) and the stream has no cursor")
  }
  if (target.write === "replace" && target.cursorColumn !== undefined) {
    problems.push("write: replace reads the whole source every run and keeps no checkpoint: the stream has a cursor")
  }
  for (const [role, name] of [["record", target.record], ["extra", target.extra]] as const) {
    if (name !== undefined && !target.columns.some((c) => c.name === name && c.type === "jsonb")) {
      problems.push(`${role} column "${name}" is not a jsonb column of the stream`)
    }
  }
  return problems
}

/** `(columns, PRIMARY KEY (...))`: the table the stream needs (the key: `tableKey`) */
export const definition = (target: TargetSpec): string => {
  const columns = target.columns.map((c) => `${quoteIdent(c.name)} ${c.type}`)
  return `(${columns.join(", ")}, PRIMARY KEY (${tableKey(target).map(quoteIdent).join(", ")}))`
}

/** the schema if missing, and the table with the stream's columns and primary key */
export const create = (sql: SqlClient, target: TargetSpec): Effect.Effect<void, DatabaseError> =>
  query(sql, `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(target.schema)}`, [], `creating schema ${target.schema}`).pipe(
    Effect.zipRight(query(
      sql,
      `CREATE TABLE IF NOT EXISTS ${qualifiedName(target)} ${definition(target)}`,
      [],
      `creating table ${displayName(target)}`
    )),
    Effect.asVoid
  )

/** what does not fit, and the statement a person would run to make it fit */
interface Misfit {
  readonly problem: string
  readonly sql: string
}

const columnProblems = (target: TargetSpec, existing: ReadonlyArray<ExistingColumn>) => {
  const misfits: Array<Misfit> = []
  const missing: Array<Column> = []
  const table = qualifiedName(target)
  const byName = new Map(existing.map((c) => [c.name, c]))
  const wanted = new Set(target.columns.map((c) => c.name))
  for (const c of target.columns) {
    const e = byName.get(c.name)
    if (e === undefined) {
      if (!missing.some((m) => m.name === c.name)) missing.push(c)
      continue
    }
    const column = quoteIdent(c.name)
    const actual = e.type === "USER-DEFINED" || e.type === "ARRAY" ? e.udt : e.type
    if (canonicalType(actual) !== canonicalType(c.type)) {
      misfits.push({
        problem: `column "${c.name}" is ${actual}, the stream needs ${c.type}`,
        sql: `ALTER TABLE ${table} ALTER COLUMN ${column} TYPE ${c.type} USING ${column}::${c.type};`
      })
    }
    if (e.generated === "ALWAYS") {
      misfits.push({
        problem: `column "${c.name}" is a generated column`,
        sql: `ALTER TABLE ${table} ALTER COLUMN ${column} DROP EXPRESSION;`
      })
    }
  }
  for (const e of existing) {
    if (!wanted.has(e.name) && e.nullable === "NO" && e.def === null && e.generated !== "ALWAYS") {
      misfits.push({
        problem: `column "${e.name}" is NOT NULL without a default, and the stream does not write it`,
        sql: `ALTER TABLE ${table} ALTER COLUMN ${quoteIdent(e.name)} DROP NOT NULL;`
      })
    }
  }
  return { misfits, missing }
}

const primaryKeyProblems = (
  target: TargetSpec,
  primaryKey: ReadonlyArray<string>,
  constraint: string | null
): Array<Misfit> => {
  const needed = tableKey(target)
  const pkWanted = [...needed].sort()
  const pkActual = [...primaryKey].sort()
  const list = (cols: ReadonlyArray<string>) => `(${cols.map((c) => `"${c}"`).join(", ")})`
  const add = `ADD PRIMARY KEY (${needed.map(quoteIdent).join(", ")});`
  const table = qualifiedName(target)
  if (pkActual.length === 0 || constraint === null) {
    return [{ problem: `the table has no primary key, the stream needs ${list(needed)}`, sql: `ALTER TABLE ${table} ${add}` }]
  }
  if (pkWanted.length !== pkActual.length || pkWanted.some((c, i) => c !== pkActual[i])) {
    return [{
      problem: `the primary key is ${list(primaryKey)}, the stream needs ${list(needed)}`,
      sql: `ALTER TABLE ${table} DROP CONSTRAINT ${quoteIdent(constraint)}, ${add}`
    }]
  }
  return []
}

/** the statement that adds a column the table lacks */
export const addColumnSql = (target: TargetSpec, column: Column): string =>
  `ALTER TABLE ${qualifiedName(target)} ADD COLUMN ${quoteIdent(column.name)} ${column.type}`

/** an existing table that fits, but for the columns it lacks */
export interface Verified {
  /** the table holds no row (a checkpoint needs one; COPY needs none) */
  readonly empty: boolean
  /** the stream's columns the table lacks, in the stream's order: added by Prepare (Evolve.ts) */
  readonly missing: ReadonlyArray<Column>
}

/**
 * An existing table checked against the stream: every column there with its type (or missing: an
 * additive change), no other column that needs a value, the same primary key. Anything else is a
 * TargetMismatch carrying the SQL that would make the table fit, the missing columns' included.
 */
export const verify = (sql: SqlClient, target: TargetSpec): Effect.Effect<Verified, DatabaseError | TargetMismatch> =>
  Effect.gen(function*() {
    const name = displayName(target)
    const columns = yield* query<ExistingColumn>(
      sql,
      `SELECT column_name::text AS name, data_type::text AS type, udt_name::text AS udt,
              is_nullable::text AS nullable, column_default::text AS def, is_generated::text AS generated
       FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2
       ORDER BY ordinal_position`,
      [target.schema, target.table],
      `reading the columns of ${name}`
    )
    const [{ constraint, empty, pk }] = yield* query<{ pk: Array<string>; constraint: string | null; empty: boolean }>(
      sql,
      `SELECT ARRAY(
         SELECT a.attname::text
         FROM pg_index i
         JOIN pg_class c ON c.oid = i.indrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
         WHERE n.nspname = $1 AND c.relname = $2 AND i.indisprimary
         ORDER BY array_position(i.indkey::int2[], a.attnum)
       ) AS pk, (
         SELECT k.conname::text FROM pg_constraint k
         JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relname = $2 AND k.contype = 'p'
       ) AS constraint, NOT EXISTS (SELECT FROM ${qualifiedName(target)}) AS empty`,
      [target.schema, target.table],
      `reading the primary key of ${name}`
    )
    const { misfits, missing } = columnProblems(target, columns)
    misfits.push(...primaryKeyProblems(target, pk, constraint))
    if (misfits.length > 0) {
      // not additive: nothing changes; the SQL adds the missing columns first (a new key may need one)
      const adds = missing.map((c) => ({ problem: `column "${c.name}" is missing (the stream needs ${c.type})`, sql: `${addColumnSql(target, c)};` }))
      const all = [...adds, ...misfits]
      return yield* new TargetMismatch({ table: name, problems: all.map((m) => m.problem), sql: all.map((m) => m.sql) })
    }
    return { empty, missing }
  })
