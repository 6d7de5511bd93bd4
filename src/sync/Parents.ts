/**
 * A child stream's run (`parent: { stream }`, domain/Parent.ts): one read per row of the parent's
 * table, as the table stands when the child runs (after its parent, in a run of both), each read with
 * the parent row's own checkpoint (the stream, its target and the parent row's key): a new parent row
 * starts from `initial` while the others go on from theirs. The parent rows are read a chunk at a time
 * and the reads made one after another, on the run's connection: memory and connections stay flat
 * however many parent rows there are. A parent row whose child URL answers 404, or whose values cannot
 * make one, is logged and skipped; any other failure ends the stream with its own exit code (the next
 * run resumes every parent row from its checkpoint).
 */
import { Effect, Either, Option, Ref } from "effect"
import { SourceError } from "../domain/Errors.js"
import * as Parent from "../domain/Parent.js"
import type { ParentRow, ParentSpec } from "../domain/Parent.js"
import type { TargetState } from "../Sink.js"
import { type Fields, read } from "./Read.js"
import type { Run } from "./Run.js"

/** parent rows read per query */
const chunkSize = 500

/** one more parent row read, or skipped, in the run's summary */
const countParent = (run: Run, field: "read" | "skipped") =>
  Ref.update(run.state, (s) => {
    const parents = { read: s.parents?.read ?? 0, skipped: s.parents?.skipped ?? 0 }
    return { ...s, parents: { ...parents, [field]: parents[field] + 1 } }
  })

const skip = (run: Run, row: ParentRow, reason: string, url?: string) =>
  Effect.zipRight(
    Effect.logWarning("parent.skipped").pipe(Effect.annotateLogs({ parent: row.key, reason, ...(url === undefined ? {} : { url }) })),
    countParent(run, "skipped")
  )

/** One parent row's read: the stream's source filled from the row, its checkpoint the row's own. */
const readParentRow = (given: Run, row: ParentRow, table: TargetState, fields: Fields) =>
  Effect.zipRight(
    countParent(given, "read"),
    Effect.suspend(() => readSource(given, row, table, fields))
  )

const readSource = (given: Run, row: ParentRow, table: TargetState, fields: Fields) => {
  const stream = Parent.streamFor(given.stream, row)
  if (Either.isLeft(stream)) return skip(given, row, stream.left)
  const run: Run = { ...given, stream: stream.right, key: { ...given.key, parent: row.key } }
  return read(run, table, fields, { parent: row.key }).pipe(
    Effect.asVoid,
    Effect.catchIf(
      (error): error is SourceError => error instanceof SourceError && error.status === 404,
      (error) => skip(given, row, "the source answered 404 (not found)", error.url)
    )
  )
}

/** Reads the child stream once per row of `parent`'s table. */
export const readParents = (run: Run, parent: ParentSpec, table: TargetState, fields: Fields) =>
  Effect.gen(function*() {
    const columns = Parent.columnsRead(run.stream.source, run.stream.target.columns)
    yield* Ref.update(run.state, (s) => ({ ...s, parents: { read: 0, skipped: 0 } }))
    let after: ParentRow | undefined
    for (;;) {
      const chunk = yield* run.sink.parentRows(parent, columns, after, chunkSize)
      if (Option.isNone(chunk)) {
        return yield* Effect.logWarning("parent.missing").pipe(Effect.annotateLogs({
          parent_stream: parent.stream,
          reason: `the parent stream's table ${parent.target.schema}.${parent.target.table} does not exist yet: run ${parent.stream} first`
        }))
      }
      for (const row of chunk.value) yield* readParentRow(run, row, table, fields)
      if (chunk.value.length < chunkSize) return
      after = chunk.value[chunk.value.length - 1]
    }
  })
