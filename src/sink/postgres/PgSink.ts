/**
 * The live Sink: everything Ferry writes to PostgreSQL.
 *
 * - prepare: Ferry's own tables in schema `ferry` (versioned migrations, Migrations.ts), then the
 *   target table (created, or verified against information_schema: a table that does not fit is a
 *   TargetMismatch, never altered); it says whether the table holds rows (a checkpoint needs them).
 * - write: one INSERT ... ON CONFLICT per chunk with all rows in ONE json parameter (no 65,535
 *   bind-parameter limit). Unchanged rows are not rewritten (no new row version), an older cursor
 *   never overwrites a newer one. Rows Postgres refuses are found by bisecting the chunk inside
 *   savepoints and handed back as `rejected`.
 * - encode/writeBulk: into a table that was empty when prepared (a first load), pages are COPYed
 *   instead (CopyIn.ts). The primary key still refuses any duplicate, and the first refusal sends
 *   those pages and the rest of the run back to the upsert: the same outcome, 3 × cheaper.
 * - lock: a session advisory lock on a reserved connection, released before it returns to the pool,
 *   one per stream and target table.
 *
 * Every identifier from the config is quoted (`"` doubled); values are always bind parameters.
 */
import { SqlClient } from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import type { Connection } from "@effect/sql/SqlConnection"
import { Data, Effect, Layer } from "effect"
import type { Scope } from "effect"
import * as CopyIn from "./CopyIn.js"
import * as Json from "../../domain/Json.js"
import { fromSqlError, isSqlError, sqlState } from "../../postgres/Database.js"
import { DatabaseError, LockHeld, TargetMismatch } from "../../domain/Errors.js"
import * as Failpoint from "../../lib/Failpoint.js"
import * as Migrations from "../../postgres/Migrations.js"
import type { Bulk, QuarantineItem, QuarantineResult, RunRecord, SinkShape, TargetState, WriteResult } from "../../Sink.js"
import { Sink } from "../../Sink.js"
import type { Row, StreamSpec, TargetSpec } from "../../domain/StreamSpec.js"
import { columnTypes, targetName } from "../../domain/StreamSpec.js"
import * as Cursor from "../../domain/Cursor.js"

export interface PgSinkOptions {
  /** default true; the embedded database passes false (it locks its data directory instead) */
  readonly advisoryLock?: boolean | undefined
  /** cap on one statement's JSON, in bytes (default 4 MiB) */
  readonly maxChunkBytes?: number | undefined
  /** COPY into a table that was empty when prepared (default true; never on PGlite, which cannot) */
  readonly copy?: boolean | undefined
  /**
   * without advisory locks: fails when this process no longer holds what excludes other runs (the
   * embedded database's data-directory lock), for `verifyLock`
   */
  readonly holdsLock?: Effect.Effect<void, DatabaseError> | undefined
}

/** `"name"` with embedded quotes doubled: config identifiers are never spliced unquoted */
export const quoteIdent = (name: string): string => `"${name.replace(/"/g, "\"\"")}"`

export const qualifiedName = (target: Pick<TargetSpec, "schema" | "table">): string =>
  `${quoteIdent(target.schema)}.${quoteIdent(target.table)}`

const displayName = (target: Pick<TargetSpec, "schema" | "table">): string => `${target.schema}.${target.table}`

/** the key of Ferry's lock around its own DDL (two processes preparing at once) */
const PREPARE_LOCK = "ferry:prepare"
/** one lock per stream AND target table: same-named streams of two configs do not exclude each other */
const streamLockKey = (stream: StreamSpec): string => `ferry:stream:${stream.name}:${targetName(stream.target)}`
const streamLabel = (stream: StreamSpec): string => `${stream.name} (${targetName(stream.target)})`

/** the SQLSTATE of a relation that does not exist: `ferry.migrations` in a database never migrated */
const undefinedTable = "42P01"

/** the first pass of `prepare` found something to create or migrate: the second pass takes the lock */
class NeedsLock extends Data.TaggedError("NeedsLock") {}

// ---------------------------------------------------------------------------------------------
// Target table: create or verify

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

export const canonicalType = (type: string): string => {
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
const specProblems = (target: TargetSpec): Array<string> => {
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
  return problems
}

const createTableSql = (target: TargetSpec): string => {
  const columns = target.columns.map((c) => `${quoteIdent(c.name)} ${c.type}`)
  const pk = target.primaryKey.map(quoteIdent).join(", ")
  return `CREATE TABLE IF NOT EXISTS ${qualifiedName(target)} (${columns.join(", ")}, PRIMARY KEY (${pk}))`
}

const compareTable = (
  target: TargetSpec,
  existing: ReadonlyArray<ExistingColumn>,
  primaryKey: ReadonlyArray<string>
): Array<string> => {
  const problems: Array<string> = []
  const byName = new Map(existing.map((c) => [c.name, c]))
  const wanted = new Set(target.columns.map((c) => c.name))
  for (const c of target.columns) {
    const e = byName.get(c.name)
    if (e === undefined) {
      problems.push(`column "${c.name}" is missing (the stream needs ${c.type})`)
      continue
    }
    const actual = e.type === "USER-DEFINED" || e.type === "ARRAY" ? e.udt : e.type
    if (canonicalType(actual) !== canonicalType(c.type)) {
      problems.push(`column "${c.name}" is ${actual}, the stream needs ${c.type}`)
    }
    if (e.generated === "ALWAYS") problems.push(`column "${c.name}" is a generated column`)
  }
  for (const e of existing) {
    if (!wanted.has(e.name) && e.nullable === "NO" && e.def === null && e.generated !== "ALWAYS") {
      problems.push(`column "${e.name}" is NOT NULL without a default, and the stream does not write it`)
    }
  }
  const pkWanted = [...target.primaryKey].sort()
  const pkActual = [...primaryKey].sort()
  const list = (cols: ReadonlyArray<string>) => `(${cols.map((c) => `"${c}"`).join(", ")})`
  if (pkActual.length === 0) {
    problems.push(`the table has no primary key, the stream needs ${list(target.primaryKey)}`)
  } else if (pkWanted.length !== pkActual.length || pkWanted.some((c, i) => c !== pkActual[i])) {
    problems.push(`the primary key is ${list(primaryKey)}, the stream needs ${list(target.primaryKey)}`)
  }
  return problems
}

// ---------------------------------------------------------------------------------------------
// Upsert

/**
 * INSERT ... SELECT FROM json_populate_recordset($1) ON CONFLICT DO UPDATE, updating only when
 * something differs and the stored cursor is not newer. `xmax = 0` tells an insert from an update.
 * `json`, not `jsonb`: Postgres parses it lazily field by field instead of building a jsonb value
 * first, which took a third longer here (docs/PERFORMANCE.md).
 */
export const upsertSql = (target: TargetSpec): string => {
  const table = qualifiedName(target)
  const alias = quoteIdent("ferry_target")
  const cols = target.columns.map((c) => quoteIdent(c.name))
  const pk = target.primaryKey.map(quoteIdent)
  const pkSet = new Set(target.primaryKey)
  const rest = target.columns.filter((c) => !pkSet.has(c.name)).map((c) => quoteIdent(c.name))
  const insert = `INSERT INTO ${table} AS ${alias} (${cols.join(", ")}) ` +
    `SELECT ${cols.join(", ")} FROM json_populate_recordset(NULL::${table}, $1::json)`
  if (rest.length === 0) {
    return `${insert} ON CONFLICT (${pk.join(", ")}) DO NOTHING RETURNING (xmax = 0) AS inserted`
  }
  const set = rest.map((c) => `${c} = EXCLUDED.${c}`).join(", ")
  const mine = rest.map((c) => `${alias}.${c}`).join(", ")
  const theirs = rest.map((c) => `EXCLUDED.${c}`).join(", ")
  let where = `ROW(${mine}) IS DISTINCT FROM ROW(${theirs})`
  if (target.cursorColumn !== undefined) {
    const cur = quoteIdent(target.cursorColumn)
    where += ` AND (${alias}.${cur} IS NULL OR ${alias}.${cur} <= EXCLUDED.${cur})`
  }
  return `${insert} ON CONFLICT (${pk.join(", ")}) DO UPDATE SET ${set} WHERE ${where} RETURNING (xmax = 0) AS inserted`
}

/** COPY's statement: the columns in the order `CopyIn.encode` writes them */
export const copySql = (target: TargetSpec): string =>
  `COPY ${qualifiedName(target)} (${CopyIn.columnNames(target).map(quoteIdent).join(", ")}) FROM STDIN`

/** the SQLSTATE of a duplicate key: in a COPY it means the table has the row already */
const uniqueViolation = "23505"

/** a page as COPY text (UTF-8), its rows deduplicated by key */
interface CopyBulk extends Bulk {
  readonly kept: number
  readonly payload: Buffer
}

interface Encoded {
  readonly row: Row
  readonly json: string
  readonly bytes: number
}

const chunkBySize = (items: ReadonlyArray<Encoded>, maxBytes: number): Array<Array<Encoded>> => {
  const chunks: Array<Array<Encoded>> = []
  let current: Array<Encoded> = []
  let size = 2
  for (const item of items) {
    if (current.length > 0 && size + item.bytes + 1 > maxBytes) {
      chunks.push(current)
      current = []
      size = 2
    }
    current.push(item)
    size += item.bytes + 1
  }
  if (current.length > 0) chunks.push(current)
  return chunks
}

/**
 * data errors are the row's fault (class 22, not-null, check, and 54000: a value too large for its
 * index, e.g. a primary key of 10 kB): quarantine the row, keep the run
 */
export const isDataError = (state: string | undefined): boolean =>
  state !== undefined && (state.startsWith("22") || state === "23502" || state === "23514" || state === "54000")

interface ChunkResult {
  inserted: number
  updated: number
  rejected: Array<{ readonly row: Row; readonly reason: string }>
}

/** what one statement's RETURNING says: `xmax = 0` rows were inserted, the others updated */
const counted = (returned: ReadonlyArray<{ inserted: boolean }>): ChunkResult => {
  const inserted = returned.filter((r) => r.inserted).length
  return { inserted, updated: returned.length - inserted, rejected: [] }
}

const addChunks = (a: ChunkResult, b: ChunkResult): ChunkResult => ({
  inserted: a.inserted + b.inserted,
  updated: a.updated + b.updated,
  rejected: [...a.rejected, ...b.rejected]
})

/** every input row is inserted, updated, rejected, or else unchanged (same content, older, or a duplicate) */
const writeResult = (total: number, result: ChunkResult): WriteResult => ({
  inserted: result.inserted,
  updated: result.updated,
  unchanged: total - result.inserted - result.updated - result.rejected.length,
  rejected: result.rejected
})

// ---------------------------------------------------------------------------------------------
// The service

/** a successful value carried out of a transaction as a failure, so that it rolls back */
class RollbackSignal<A> {
  constructor(readonly value: A) {}
}

export const make = (sqlClient: SqlClient, options?: PgSinkOptions): SinkShape => {
  // our own result names (inserted, locked, ...) must not go through an app's name transforms
  const sql = sqlClient.withoutTransforms()
  const advisoryLock = options?.advisoryLock ?? true
  const maxChunkBytes = options?.maxChunkBytes ?? 4 * 1024 * 1024
  const copyOption = options?.copy ?? true
  /**
   * streams whose table was empty when prepared: their batches are COPYed until a key is found in the
   * table already (then the upsert takes over for the rest of the run)
   */
  const bulk = new Set<string>()

  const run = <A extends object = Record<string, unknown>>(
    text: string,
    params: ReadonlyArray<unknown>,
    doing: string
  ): Effect.Effect<ReadonlyArray<A>, DatabaseError> =>
    sql.unsafe<A>(text, params).pipe(Effect.mapError((e) => fromSqlError(e, doing)))

  /**
   * A lock wait that ran out (DatabaseError.temporary, 75) also names the other sessions holding locks
   * on the table (this process's own share its application_name), the strongest first: who to ask. Read
   * on a connection of its own (the failed statement's transaction is aborted); one query, on failure only.
   */
  const blockedOn = (target: TargetSpec) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.catchIf(
      effect,
      (e): e is E & DatabaseError => e instanceof DatabaseError && e.temporary === true,
      (e) =>
        Effect.scoped(Effect.flatMap(sql.reserve, (conn) =>
          conn.execute(
            `SELECT a.application_name AS app, a.pid, l.mode FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'relation' AND l.granted AND l.relation = to_regclass($1)
               AND a.application_name IS DISTINCT FROM current_setting('application_name')
             ORDER BY l.mode = 'AccessShareLock', a.backend_start LIMIT 3`,
            [qualifiedName(target)],
            undefined
          ))).pipe(
            Effect.map((rows) => {
              const holders = (rows as ReadonlyArray<{ app: string | null; pid: number; mode: string }>).map((r) =>
                `${r.app ? `"${r.app}"` : "an unnamed client"} (backend pid ${r.pid}, ${r.mode})`
              )
              return holders.length === 0
                ? e
                : new DatabaseError({ reason: `${e.reason}; sessions holding locks on ${displayName(target)}: ${holders.join(", ")}`, temporary: true })
            }),
            Effect.orElseSucceed(() => e),
            Effect.flatMap((error) => Effect.fail(error as E))
          )
    )

  const prepare = (stream: StreamSpec): Effect.Effect<TargetState, DatabaseError | TargetMismatch> => {
    const target = stream.target
    const name = displayName(target)
    /**
     * The common path takes no lock: one round trip says that Ferry's tables are migrated and the
     * target exists (then it is only verified). Anything to create or migrate is done in a second pass
     * under the prepare lock, which first runs the migrations this database lacks (the Migrator checks
     * again under its own table lock). Not the other way round: a pass holding the prepare lock that
     * waited for the Migrator's table lock while a reader of that table waited for the prepare lock
     * would deadlock.
     */
    const pass = (locked: boolean) => Effect.gen(function*() {
      const invalid = specProblems(target)
      if (invalid.length > 0) return yield* new TargetMismatch({ table: name, problems: invalid })
      if (locked) {
        yield* run(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [PREPARE_LOCK], "locking Ferry's schema")
        yield* Migrations.migrate(sql)
      }
      // One round trip for what every run asks (a database far away pays each one): the last migration
      // of Ferry's tables, what the target is, and whether this is PGlite (its socket server has no
      // COPY FROM STDIN: a COPY there would wait for ever). A database never migrated has no
      // ferry.migrations: the statement fails, and the locked pass migrates.
      const [state] = yield* sql.unsafe<{ pglite: boolean; migrated: number | null; kind: string | null }>(
        `SELECT version() LIKE '%PGlite%' AS pglite, (SELECT max(migration_id) FROM ${Migrations.table}) AS migrated,
           (SELECT c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relname = $2) AS kind`,
        [target.schema, target.table]
      ).pipe(
        Effect.catchIf((e) => !locked && sqlState(e) === undefinedTable, () => Effect.fail(new NeedsLock())),
        Effect.mapError((e) => e instanceof NeedsLock ? e : fromSqlError(e, `looking up table ${name}`))
      )
      // an older release's migrations only (a newer release's are more than we know, and kept)
      if ((state.migrated ?? 0) < Migrations.latest && !locked) return yield* new NeedsLock()
      const copyAllowed = copyOption && !state.pglite
      bulk.delete(stream.name)
      if (state.kind === null) {
        if (!locked) return yield* new NeedsLock()
        yield* run(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(target.schema)}`, [], `creating schema ${target.schema}`)
        yield* run(createTableSql(target), [], `creating table ${name}`)
        if (copyAllowed) bulk.add(stream.name)
        return "created" as const
      }
      if (state.kind !== "r" && state.kind !== "p") {
        return yield* new TargetMismatch({ table: name, problems: [`${name} exists but is not a table`] })
      }
      const columns = yield* run<ExistingColumn>(
        `SELECT column_name::text AS name, data_type::text AS type, udt_name::text AS udt,
                is_nullable::text AS nullable, column_default::text AS def, is_generated::text AS generated
         FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2
         ORDER BY ordinal_position`,
        [target.schema, target.table],
        `reading the columns of ${name}`
      )
      // the primary key, and whether the table holds a row (a checkpoint needs one; COPY needs none)
      const [{ empty, pk }] = yield* run<{ pk: Array<string>; empty: boolean }>(
        `SELECT ARRAY(
           SELECT a.attname::text
           FROM pg_index i
           JOIN pg_class c ON c.oid = i.indrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
           WHERE n.nspname = $1 AND c.relname = $2 AND i.indisprimary
           ORDER BY array_position(i.indkey::int2[], a.attnum)
         ) AS pk, NOT EXISTS (SELECT FROM ${qualifiedName(target)}) AS empty`,
        [target.schema, target.table],
        `reading the primary key of ${name}`
      )
      const problems = compareTable(target, columns, pk)
      if (problems.length > 0) return yield* new TargetMismatch({ table: name, problems })
      if (copyAllowed && empty) bulk.add(stream.name)
      return empty ? "empty" as const : "filled" as const
    }).pipe(sql.withTransaction)
    return pass(false).pipe(
      Effect.catchTag("NeedsLock", () => pass(true)),
      // the locked pass never asks for the lock again
      Effect.catchTag("NeedsLock", () => Effect.fail(new DatabaseError({ reason: `preparing table ${name}: lock asked for twice` }))),
      Effect.catchIf(isSqlError, (e) => Effect.fail(fromSqlError(e, `preparing table ${name}`))),
      blockedOn(target)
    )
  }

  const write = (stream: StreamSpec, rows: ReadonlyArray<Row>): Effect.Effect<WriteResult, DatabaseError> =>
    Effect.suspend(() =>
      upsert(stream, rows.length, Cursor.latestPerKey(rows, Cursor.typeOf(stream)))
    ).pipe(blockedOn(stream.target))

  const encode = (stream: StreamSpec, rows: ReadonlyArray<Row>): CopyBulk | undefined => {
    if (!bulk.has(stream.name)) return undefined
    const kept = Cursor.latestPerKey(rows, Cursor.typeOf(stream))
    const text = CopyIn.encode(stream.target, kept)
    // a Buffer lives outside the JS heap: a batch in flight costs the garbage collector nothing
    return text === undefined ? undefined : { rows: rows.length, kept: kept.length, payload: Buffer.from(text) }
  }

  /**
   * One COPY in a savepoint. A key the table has already (another writer, or a key repeated across
   * pages) ends the bulk path for the stream; a value Postgres refuses just sends these pages to
   * `write`, which isolates the row. Either way the savepoint is rolled back: nothing half-written.
   */
  const copyPages = (
    stream: StreamSpec,
    pages: ReadonlyArray<Bulk>
  ): Effect.Effect<WriteResult | undefined, DatabaseError> =>
    Effect.suspend(() => {
      if (!bulk.has(stream.name)) return Effect.succeed(undefined)
      const copies = pages as ReadonlyArray<CopyBulk>
      const name = displayName(stream.target)
      const total = copies.reduce((n, p) => n + p.rows, 0)
      const kept = copies.reduce((n, p) => n + p.kept, 0)
      return CopyIn.copy(copySql(stream.target), copies.map((p) => p.payload)).pipe(
        Effect.filterOrFail(
          (copied) => copied === kept,
          (copied) => new SqlError({ cause: new Error(`COPY reported ${copied} rows for ${kept}`) })
        ),
        sql.withTransaction,
        Effect.map((copied): WriteResult | undefined => ({
          inserted: copied,
          updated: 0,
          unchanged: total - copied,
          rejected: []
        })),
        Effect.catchAll((error) => {
          const state = sqlState(error)
          if (state === uniqueViolation) {
            bulk.delete(stream.name)
            return Effect.as(Effect.logDebug("sink.bulk_off").pipe(Effect.annotateLogs({ table: name })), undefined)
          }
          if (isDataError(state)) return Effect.succeed(undefined)
          return Effect.fail(fromSqlError(error, `writing ${kept} row(s) to ${name}`))
        })
      )
    })

  const writeBulk = (stream: StreamSpec, pages: ReadonlyArray<Bulk>): Effect.Effect<WriteResult | undefined, DatabaseError> =>
    copyPages(stream, pages).pipe(blockedOn(stream.target))

  const upsert = (
    stream: StreamSpec,
    total: number,
    kept: ReadonlyArray<Row>
  ): Effect.Effect<WriteResult, DatabaseError> =>
    Effect.suspend(() => {
      const name = displayName(stream.target)
      const text = upsertSql(stream.target)
      // The common case first: the whole batch as one JSON text, stringified in one call (half the CPU
      // of row by row). A batch that is too big, not JSON, or refused by Postgres takes the row-by-row
      // path below, which chunks by size and isolates refused rows. Json.stringify writes a long
      // number's exact digits (a number inside jsonb; bigint and numeric values are already text).
      let whole: string | undefined
      try {
        whole = Json.stringify(kept.map((row) => row.values))
      } catch {
        whole = undefined
      }
      const rowByRow = Effect.suspend(() => writeRowByRow(kept, name, text)).pipe(
        Effect.map((result) => writeResult(total, result))
      )
      if (whole === undefined || kept.length === 0 || Buffer.byteLength(whole) > maxChunkBytes) return rowByRow
      return sql.unsafe<{ inserted: boolean }>(text, [whole]).pipe(
        sql.withTransaction,
        Effect.map((returned) => writeResult(total, counted(returned))),
        Effect.catchAll((error) =>
          isDataError(sqlState(error))
            ? rowByRow
            : Effect.fail(fromSqlError(error, `writing ${kept.length} row(s) to ${name}`))
        )
      )
    })

  const writeRowByRow = (
    kept: ReadonlyArray<Row>,
    name: string,
    text: string
  ): Effect.Effect<ChunkResult, DatabaseError> => {
    const unencodable: ChunkResult = { inserted: 0, updated: 0, rejected: [] }
    const encoded: Array<Encoded> = []
    for (const row of kept) {
      let json: string | undefined
      try {
        json = Json.stringify(row.values)
        if (json === undefined) throw new Error("no JSON")
      } catch (cause) {
        unencodable.rejected.push({ row, reason: `the row's values are not JSON: ${String(cause)}` })
        continue
      }
      encoded.push({ row, json, bytes: Buffer.byteLength(json) })
    }

    // each attempt runs in its own savepoint, so a refused chunk leaves the outer transaction usable
    const attempt = (items: ReadonlyArray<Encoded>): Effect.Effect<ChunkResult, DatabaseError> =>
      sql.unsafe<{ inserted: boolean }>(text, [`[${items.map((i) => i.json).join(",")}]`]).pipe(
        sql.withTransaction,
        Effect.map(counted),
        Effect.catchAll((error) => {
          if (!isDataError(sqlState(error))) {
            return Effect.fail(fromSqlError(error, `writing ${items.length} row(s) to ${name}`))
          }
          if (items.length === 1) {
            const reason = fromSqlError(error, "Postgres refused the row").reason
            return Effect.succeed<ChunkResult>({ inserted: 0, updated: 0, rejected: [{ row: items[0].row, reason }] })
          }
          // bisect: the halves that Postgres accepts are written, the refused rows are isolated
          const mid = Math.ceil(items.length / 2)
          return Effect.zipWith(attempt(items.slice(0, mid)), attempt(items.slice(mid)), addChunks)
        })
      )

    return Effect.forEach(chunkBySize(encoded, maxChunkBytes), attempt, { discard: false }).pipe(
      // rows that are not JSON were rejected before any statement
      Effect.map((results) => results.reduce(addChunks, unencodable))
    )
  }

  /**
   * The stream locks this process holds: lock key -> the stream's label and the backend pid of the
   * session holding it. If that session dies (the server restarted, an admin terminated it), Postgres
   * drops the lock while we go on over fresh pool connections: every transaction checks, before its
   * commit, that the lock is still ours, so a run never writes without it.
   */
  const held = new Map<string, { readonly label: string; readonly pid: number }>()

  const checkLock = (key: string, label: string, pid: number): Effect.Effect<void, DatabaseError> =>
    run<{ held: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = $2 AND objsubid = 1
         AND classid::bigint = ((hashtextextended($1, 0) >> 32) & 4294967295)
         AND objid::bigint = (hashtextextended($1, 0) & 4294967295)) AS held`,
      [key, pid],
      `checking the lock of stream ${label}`
    ).pipe(
      Effect.filterOrFail(
        (rows) => rows[0]?.held === true,
        () =>
          new DatabaseError({
            reason: `lost the lock of stream ${label}: its database session (backend pid ${pid}) ended; ` +
              `stopping rather than writing without it`
          })
      ),
      Effect.asVoid
    )

  const verifyLocks: Effect.Effect<void, DatabaseError> = Effect.suspend(() =>
    Effect.forEach(held, ([key, { label, pid }]) => checkLock(key, label, pid), { discard: true })
  )

  const verifyLock = (stream: StreamSpec): Effect.Effect<void, DatabaseError> =>
    Effect.suspend(() => {
      if (!advisoryLock) return options?.holdsLock ?? Effect.void
      const key = streamLockKey(stream)
      const lock = held.get(key)
      return lock === undefined
        ? Effect.fail(new DatabaseError({ reason: `this run does not hold the lock of stream ${streamLabel(stream)}; stopping rather than writing without it` }))
        : checkLock(key, lock.label, lock.pid)
    })

  const transaction = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | DatabaseError, R> =>
    sql.withTransaction(Effect.zipLeft(effect, Effect.zipRight(verifyLocks, Failpoint.pass("before-commit")))).pipe(
      Effect.catchIf(isSqlError, (e) => Effect.fail(fromSqlError(e, "running a transaction")))
    )

  const rolledBackTransaction = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | DatabaseError, R> =>
    sql.withTransaction(Effect.flatMap(effect, (a) => Effect.fail(new RollbackSignal(a)))).pipe(
      Effect.catchIf(
        (e): e is RollbackSignal<A> => e instanceof RollbackSignal,
        (signal) => Effect.succeed(signal.value)
      ),
      Effect.catchIf(isSqlError, (e) => Effect.fail(fromSqlError(e, "running a rolled-back transaction")))
    )

  const describeHolder = (conn: Connection, key: string): Effect.Effect<string> =>
    conn.execute(
      `SELECT a.application_name AS app, host(a.client_addr) AS addr, a.pid AS pid,
              a.backend_start::text AS since
       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
       WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
         AND l.classid::bigint = ((hashtextextended($1, 0) >> 32) & 4294967295)
         AND l.objid::bigint = (hashtextextended($1, 0) & 4294967295)
         AND l.pid <> pg_backend_pid()`,
      [key],
      undefined
    ).pipe(
      Effect.map((rows) => {
        const r = rows[0] as { app: string | null; addr: string | null; pid: number; since: string | null } | undefined
        if (r === undefined) return "another session (it may have just finished)"
        const app = r.app ? `"${r.app}"` : "an unnamed client"
        const from = r.addr ? `from ${r.addr}` : "over a local socket"
        const since = r.since ? `, connected since ${r.since}` : ""
        return `${app} ${from}, backend pid ${r.pid}${since}`
      }),
      Effect.orElseSucceed(() => "another session (its details could not be read)")
    )

  const lock = (spec: StreamSpec): Effect.Effect<void, LockHeld | DatabaseError, Scope.Scope> =>
    advisoryLock
      ? Effect.gen(function*() {
        const key = streamLockKey(spec)
        const stream = streamLabel(spec)
        const conn = yield* sql.reserve.pipe(
          Effect.mapError((e) => fromSqlError(e, `reserving a connection for the lock of stream ${stream}`))
        )
        // Registered before the attempt, so an interruption mid-query cannot leak a held lock into
        // the pool; it unlocks only if this session holds the lock. It runs before the connection
        // goes back to the pool (finalizers run in reverse order).
        yield* Effect.addFinalizer(() =>
          conn.execute(
            `SELECT pg_advisory_unlock(hashtextextended($1, 0)) FROM pg_locks
             WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND objsubid = 1
               AND classid::bigint = ((hashtextextended($1, 0) >> 32) & 4294967295)
               AND objid::bigint = (hashtextextended($1, 0) & 4294967295)`,
            [key],
            undefined
          ).pipe(
            Effect.tapError((e) => Effect.logWarning(fromSqlError(e, `releasing the lock of stream ${stream}`).reason)),
            Effect.ignore
          )
        )
        const rows = yield* conn.execute(
          `SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS locked, pg_backend_pid() AS pid`,
          [key],
          undefined
        ).pipe(Effect.mapError((e) => fromSqlError(e, `taking the lock of stream ${stream}`)))
        if (rows[0]?.locked !== true) {
          const holder = yield* describeHolder(conn, key)
          return yield* new LockHeld({ stream: spec.name, target: targetName(spec.target), holder })
        }
        held.set(key, { label: stream, pid: Number(rows[0]?.pid) })
        // runs before the unlock above (reverse order)
        yield* Effect.addFinalizer(() => Effect.sync(() => held.delete(key)))
      })
      : Effect.void

  /**
   * Each record's stored text (`rawJson`) is hashed here, in the statement, so that the hash is always
   * that of the text stored. A text quarantined before for the stream and its target, or twice in
   * the batch, is not stored again (the run's lock excludes another writer of these rows).
   */
  const quarantine = (
    stream: StreamSpec,
    runId: string,
    items: ReadonlyArray<QuarantineItem>
  ): Effect.Effect<QuarantineResult, DatabaseError> => {
    const batches: Array<ReadonlyArray<QuarantineItem>> = []
    for (let i = 0; i < items.length; i += 1000) batches.push(items.slice(i, i + 1000))
    const target = targetName(stream.target)
    return Effect.forEach(batches, (batch) => {
      // text cannot hold NUL; the record is JSON (NUL escaped), the reason is ours to escape
      const reasons = batch.map((i) => i.reason.replace(/\u0000/g, "\\u0000"))
      const records = batch.map((i) => rawJson(i.raw))
      return run<{ stored: number }>(
        `WITH x AS (
           SELECT reason, record, sha256(convert_to(record, 'UTF8')) AS hash, n
           FROM unnest($4::text[], $5::text[]) WITH ORDINALITY AS x(reason, record, n)
         ), fresh AS (
           SELECT DISTINCT ON (hash) * FROM x
           WHERE NOT EXISTS (SELECT FROM ferry.quarantine q WHERE q.stream = $2 AND q.target = $3 AND q.hash = x.hash)
           ORDER BY hash, n
         ), stored AS (
           INSERT INTO ferry.quarantine (run_id, stream, target, reason, record, hash)
           SELECT $1, $2, $3, reason, record, hash FROM fresh ORDER BY n
           RETURNING 1
         )
         SELECT count(*)::int AS stored FROM stored`,
        [runId, stream.name, target, reasons, records],
        `quarantining ${batch.length} record(s) of stream ${stream.name}`
      ).pipe(Effect.map((rows) => ({ stored: rows[0]?.stored ?? 0, already: batch.length - (rows[0]?.stored ?? 0) })))
    }).pipe(
      Effect.map((results) =>
        results.reduce((a, b) => ({ stored: a.stored + b.stored, already: a.already + b.already }), { stored: 0, already: 0 })
      )
    )
  }

  /**
   * The run's row, and, in the same statement, its stream's and target's earlier rows still `running`
   * marked `abandoned`: this run holds the lock (or the embedded database's data directory), so no run
   * that wrote them is alive; it was killed (SIGKILL, OOM) or lost its session. Their `finished_at`
   * stays NULL (when they died is not known); `error` says how and when they were found.
   */
  const startRun = (stream: StreamSpec, runId: string): Effect.Effect<void, DatabaseError> =>
    run<{ run_id: string; started_at: string | null }>(
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

  const finishRun = (r: RunRecord): Effect.Effect<void, DatabaseError> =>
    run(
      `INSERT INTO ferry.runs (run_id, stream, status, finished_at, pages, fetched, inserted, updated, unchanged,
         quarantined, retries, checkpoint, error, exit_code, target, already_quarantined, duration_ms)
       VALUES ($1, $2, $3, clock_timestamp(), $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
       ON CONFLICT (run_id, stream) DO UPDATE SET status = EXCLUDED.status, finished_at = EXCLUDED.finished_at,
         pages = EXCLUDED.pages, fetched = EXCLUDED.fetched, inserted = EXCLUDED.inserted,
         updated = EXCLUDED.updated, unchanged = EXCLUDED.unchanged, quarantined = EXCLUDED.quarantined,
         retries = EXCLUDED.retries, checkpoint = EXCLUDED.checkpoint, error = EXCLUDED.error,
         exit_code = EXCLUDED.exit_code, target = EXCLUDED.target, already_quarantined = EXCLUDED.already_quarantined,
         duration_ms = EXCLUDED.duration_ms`,
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
        r.durationMs === undefined ? null : Math.round(r.durationMs)
      ],
      `recording the end of run ${r.runId} of stream ${r.stream}`
    )

  return { prepare, lock, verifyLock, transaction, rolledBackTransaction, write, encode, writeBulk, quarantine, startRun, finishRun }
}

/**
 * The one place that makes a quarantined record's stored text: the record as JSON, equivalent to
 * what was received at any depth (no recursion): the same keys in the same order (index-like keys such
 * as "0" first, as in any JavaScript object), long numbers and
 * `1e400` with the digits as written (Json.parse kept them), NUL and lone surrogates escaped, a
 * non-object as itself. What JSON.parse cannot tell apart is written one way: a number a double holds
 * exactly in its shortest form (`1.50` as `1.5`), a repeated key once (the last). Numbers no JSON text
 * holds (Infinity, NaN: only from a stream made in code) become strings.
 */
const rawJson = (raw: unknown): string => Json.stringifyExact(raw)

export const layer = (options?: PgSinkOptions): Layer.Layer<Sink, never, SqlClient> =>
  Layer.effect(Sink, Effect.map(SqlClient, (sql) => make(sql, options)))
