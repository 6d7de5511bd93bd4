/**
 * Streams built by hand for tests: the model's own defaults (the schemas' `make`), fast retries, and
 * whatever a test overrides. Pagination is written as in the config file (`{ type: "link" }`).
 */
import { Duration, Either, Schema } from "effect"
import { HttpSourceSpec } from "../../src/domain/HttpSourceSpec.js"
import { Incremental } from "../../src/domain/Incremental.js"
import { Pagination } from "../../src/domain/Pagination.js"
import * as RowDecoder from "../../src/domain/RowDecoder.js"
import type { StreamSpec } from "../../src/domain/StreamSpec.js"
import { type Column, type ColumnType, TargetSpec } from "../../src/domain/Target.js"

export type SourceOverrides = Partial<Omit<HttpSourceSpec, "pagination">> & {
  readonly pagination?: typeof Pagination.Encoded | undefined
}

/** An HTTP source (nothing listens at the default URL), one quick attempt per request; values unchecked, as in code. */
export const source = (overrides: SourceOverrides = {}): HttpSourceSpec => {
  const { pagination, ...rest } = overrides
  return HttpSourceSpec.make({
    url: "http://127.0.0.1:9/unused",
    timeout: Duration.seconds(1),
    retry: { attempts: 1, base: Duration.millis(1), max: Duration.millis(1) },
    ...rest,
    pagination: pagination && Schema.decodeSync(Pagination)(pagination)
  }, { disableValidation: true })
}

/** `name: type`, from the field of the same name. */
export const column = (name: string, type: ColumnType): Column => ({ name, type, from: name })

/** A table `public.items` keyed by `id`. */
export const target = (overrides: Partial<TargetSpec> = {}): TargetSpec =>
  TargetSpec.make({ table: "items", primaryKey: ["id"], columns: [], ...overrides })

/** An incremental source's settings, on a number cursor unless overridden. */
export const incremental = (overrides: Partial<Incremental> & Pick<Incremental, "cursorField">): Incremental =>
  Incremental.make({ cursorType: "number", ...overrides })

/**
 * A stream `items`; its `decode` reads the target's columns (`RowDecoder.fromColumns`) unless given,
 * so that a test's target and decoder never disagree.
 */
export const streamSpec = (
  overrides: Partial<Omit<StreamSpec, "source" | "target">> & {
    readonly source?: SourceOverrides
    readonly target?: Partial<TargetSpec>
  } = {}
): StreamSpec => {
  const spec = target(overrides.target)
  return {
    name: "items",
    maxInvalid: 0,
    decode: spec.columns.length > 0 ? RowDecoder.fromColumns(spec, undefined) : () => Either.left("unused"),
    ...overrides,
    source: source(overrides.source),
    target: spec
  }
}
