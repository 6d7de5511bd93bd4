/**
 * `ferry.quarantine`: the records a stream could not write, each stored once per stream and target.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect } from "effect"
import type { DatabaseError } from "../../domain/Errors.js"
import * as Json from "../../domain/Json.js"
import { type StreamSpec, targetName } from "../../domain/StreamSpec.js"
import type { QuarantineItem, QuarantineResult } from "../../Sink.js"
import { query } from "./Sql.js"

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

/** records per statement */
const batchSize = 1000

/**
 * Each record's stored text (`rawJson`) is hashed here, in the statement, so that the hash is always
 * that of the text stored. A text quarantined before for the stream and its target, or twice in
 * the batch, is not stored again (the run's lock excludes another writer of these rows).
 */
const storeBatch = (
  sql: SqlClient,
  stream: StreamSpec,
  runId: string,
  batch: ReadonlyArray<QuarantineItem>
): Effect.Effect<QuarantineResult, DatabaseError> => {
  // text cannot hold NUL; the record is JSON (NUL escaped), the reason is ours to escape
  const reasons = batch.map((i) => i.reason.replace(/\u0000/g, "\\u0000"))
  const records = batch.map((i) => rawJson(i.raw))
  return query<{ stored: number }>(
    sql,
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
    [runId, stream.name, targetName(stream.target), reasons, records],
    `quarantining ${batch.length} record(s) of stream ${stream.name}`
  ).pipe(Effect.map((rows) => ({ stored: rows[0]?.stored ?? 0, already: batch.length - (rows[0]?.stored ?? 0) })))
}

export const quarantine = (
  sql: SqlClient,
  stream: StreamSpec,
  runId: string,
  items: ReadonlyArray<QuarantineItem>
): Effect.Effect<QuarantineResult, DatabaseError> => {
  const batches: Array<ReadonlyArray<QuarantineItem>> = []
  for (let i = 0; i < items.length; i += batchSize) batches.push(items.slice(i, i + batchSize))
  return Effect.forEach(batches, (batch) => storeBatch(sql, stream, runId, batch)).pipe(
    Effect.map((results) =>
      results.reduce((a, b) => ({ stored: a.stored + b.stored, already: a.already + b.already }), { stored: 0, already: 0 })
    )
  )
}
