/**
 * What a run of a stream reads, from where to where (README "Backfill in slices"):
 * - a run: from its checkpoint (less the lookback), else `initial`, up to `incremental.end` if set;
 * - a slice (`SyncOptions.slice`, `ferry run --from/--to`): from `from` exactly (none: `initial`, less
 *   the lookback) up to `to` (none: `incremental.end`), and the stored checkpoint is neither read nor
 *   moved: a slice is a repair or a backfill beside the stream's own progress, not a step of it.
 * A read with an end, and any slice, is never complete (Deletes.isComplete): what lies past the end,
 * or before `from`, was not read.
 */
import { Effect, Either, Option, Stream } from "effect"
import * as Bound from "../domain/Bound.js"
import * as Cursor from "../domain/Cursor.js"
import { ConfigError, UsageError } from "../domain/Errors.js"
import type { StreamSpec } from "../domain/StreamSpec.js"
import { pagesOf } from "../Source.js"

/** `--from` / `--to` as given: cursor values or `now - <duration>`; one of them at least */
export interface Slice {
  readonly from?: string | undefined
  readonly to?: string | undefined
}

/** a slice's bounds in the cursor's form */
export interface Resolved {
  readonly from: string | undefined
  readonly to: string | undefined
}

/** a slice leaves the checkpoint where it is; a full refresh reads from `initial` and moves it */
export const fullRefreshConflict = "--from/--to read a slice and leave the checkpoint alone; --full-refresh re-reads from initial and moves it: give one or the other"

/** `incremental.end` at `now`, in the cursor's form; none without one */
export const endOf = (stream: StreamSpec, now: number): Either.Either<string | undefined, ConfigError> => {
  const incremental = stream.source.incremental
  if (incremental?.end === undefined) return Either.right(undefined)
  return Bound.resolve(incremental.end, incremental, now).pipe(
    Either.mapLeft((reason) => new ConfigError({ path: `stream ${stream.name}: source.incremental.end`, reason }))
  )
}

/**
 * The slice's bounds for `stream` at `now`, in the cursor's form, or the usage error that names the
 * flag: the stream must be incremental, each bound must be a value of its cursor, `from` not after `to`.
 */
export const sliceOf = (stream: StreamSpec, slice: Slice, now: number, fullRefresh = false): Either.Either<Resolved, UsageError> => {
  const incremental = stream.source.incremental
  const fail = (message: string) => Either.left(new UsageError({ message }))
  if (fullRefresh) return fail(fullRefreshConflict)
  if (incremental === undefined) {
    return fail(`--from/--to read a slice of an incremental stream; stream ${stream.name} has no source.incremental (pick streams with --stream)`)
  }
  const one = (flag: string, text: string | undefined): Either.Either<string | undefined, UsageError> =>
    text === undefined ? Either.right(undefined) : Bound.resolve(text, incremental, now).pipe(
      Either.mapLeft((reason) => new UsageError({ message: `--${flag} ${JSON.stringify(text)} for stream ${stream.name}: ${reason}` }))
    )
  return Either.gen(function*() {
    const from = yield* one("from", slice.from)
    const to = yield* one("to", slice.to)
    if (from !== undefined && to !== undefined && Cursor.compare(incremental.cursorType)(from, to) > 0) {
      return yield* fail(`--from ${from} is after --to ${to} (stream ${stream.name})`)
    }
    return { from, to }
  })
}

/** Where a run reads: its start (`from`), its upper bound (`end`), and whether the range is empty. */
export interface Bounds {
  readonly from: Option.Option<string>
  readonly end: string | undefined
  /** `from` is past `end`: nothing to ask the source for (the checkpoint is past the end already) */
  readonly empty: boolean
}

/** the run's bounds: a slice's, else from the run's start cursor (`start`, checkpoint less lookback) to `end` */
export const boundsOf = (
  stream: StreamSpec,
  start: Option.Option<string>,
  end: string | undefined,
  slice: Resolved | undefined
): Bounds => {
  const type = Cursor.typeOf(stream)
  const from = slice?.from === undefined ? start : Option.some(slice.from)
  const upTo = slice?.to ?? end
  const empty = Option.isSome(from) && upTo !== undefined && Cursor.compare(type)(from.value, upTo) > 0
  return { from, end: upTo, empty }
}

/**
 * A run's `end` and slice at `now` (`options.now`, else the stream's start), or why they are wrong: a
 * config error for `end` (a stream made in code; the file's is checked when it is read), a usage error for the slice.
 */
export const resolve = (
  stream: StreamSpec,
  options: { readonly slice?: Slice | undefined; readonly fullRefresh?: boolean | undefined; readonly now?: number | undefined },
  startedAt: number
): Effect.Effect<{ readonly end: string | undefined; readonly slice: Resolved | undefined }, ConfigError | UsageError> => {
  const now = options.now ?? startedAt
  return Either.gen(function*() {
    const end = yield* endOf(stream, now)
    const slice = options.slice === undefined ? undefined : yield* sliceOf(stream, options.slice, now, options.fullRefresh)
    return { end, slice }
  })
}

/** the pages of the run's bounds; none when they are empty */
export const pages = (stream: StreamSpec, bounds: Bounds) =>
  bounds.empty ? Stream.empty : pagesOf(stream, bounds.from, Option.fromNullable(bounds.end))
