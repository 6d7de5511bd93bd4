/**
 * The in-memory Source: `pages(name, from)` returns the pages a real API would serve. It may fail (as a
 * flaky API does) by returning a failing stream.
 */
import { Layer, type Option, type Stream } from "effect"
import type { RateLimited, SourceError } from "../domain/Errors.js"
import { type Page, Source } from "../Source.js"

export const layer = (
  pages: (stream: string, from: Option.Option<string>) => Stream.Stream<Page, SourceError | RateLimited>
): Layer.Layer<Source> => Layer.succeed(Source, { pages: (stream, from) => pages(stream.name, from) })
