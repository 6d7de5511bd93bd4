/**
 * The Source service: pages of raw records for a stream, from a start cursor.
 * Pagination, auth, rate limits, retries and timeouts live behind it (`http/HttpSource.ts`);
 * `Sync` sees only pages.
 */
import { Context, Effect, Option, Stream } from "effect"
import type { RateLimited, SourceError } from "./domain/Errors.js"
import type { StreamSpec } from "./domain/StreamSpec.js"

export interface Page {
  readonly records: ReadonlyArray<unknown>
  /** the request URL, secrets removed (for logs) */
  readonly url: string
  /** retries this page needed */
  readonly retries: number
  /** size of the response body */
  readonly bytes: number
  /**
   * The same records again, parsed anew from the kept body: a consumer that has turned `records` into
   * something smaller can drop them and still get them back in the rare case it needs them (Sync's
   * bulk path). Without it, `records` must be kept.
   */
  readonly reparse?: (() => ReadonlyArray<unknown>) | undefined
  /**
   * On the last page: a sign that the source has more records than the pagination read (a forgotten
   * `pagination`), named; `check` shows it
   */
  readonly morePages?: string | undefined
}

export interface SourceShape {
  /**
   * Every page of the stream, in order. `from` is the cursor to send (the checkpoint less the
   * lookback), `None` for a full read; `end` the upper bound to send (`incremental.end`, a slice's `--to`), if any.
   */
  readonly pages: (
    stream: StreamSpec,
    from: Option.Option<string>,
    end?: Option.Option<string>
  ) => Stream.Stream<Page, SourceError | RateLimited>
}

export class Source extends Context.Tag("ferry/Source")<Source, SourceShape>() {}

export const pagesOf = (stream: StreamSpec, from: Option.Option<string>, end: Option.Option<string> = Option.none()) =>
  Stream.unwrap(Effect.map(Source, (source) => source.pages(stream, from, end)))
