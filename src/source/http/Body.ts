/**
 * The JSON body of a page's request (`method: POST`): the `body` template, or the GraphQL query and
 * variables, with `{cursor}`, `{end}` and `{next}` filled (`domain/JsonTemplate.ts`) and the pagination's parameters
 * (`in: body`, `in: variables`) placed. GET requests have none.
 */
import { Option } from "effect"
import * as Json from "../../domain/Json.js"
import type { HttpSourceSpec } from "../../domain/StreamSpec.js"
import { fill, type TemplateValues } from "../../domain/JsonTemplate.js"
import * as GraphQL from "./GraphQL.js"
import type { PageRequest } from "./Paginators.js"

const numeric = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?$/

/**
 * The cursor as a JSON value: a number for a numeric cursor (`cursorType: number`, epoch formats),
 * with all its digits, else the text as stored.
 */
const cursorValue = (spec: HttpSourceSpec, cursor: string): unknown =>
  spec.incremental?.cursorType === "number" && numeric.test(cursor) ? Json.parse(cursor) : cursor

/** The values of the placeholders for this page: the run's cursor and upper bound, and the page's token. */
const templateValues = (
  spec: HttpSourceSpec,
  from: Option.Option<string>,
  request: PageRequest,
  end: Option.Option<string>
): TemplateValues => ({
  cursor: Option.match(from, { onNone: () => undefined, onSome: (cursor) => cursorValue(spec, cursor) }),
  end: Option.match(end, { onNone: () => undefined, onSome: (bound) => cursorValue(spec, bound) }),
  next: request.next
})

/** The body's text, or `undefined` for a GET. Never logged: it may hold a secret. */
export const bodyText = (
  spec: HttpSourceSpec,
  from: Option.Option<string>,
  request: PageRequest,
  end: Option.Option<string> = Option.none()
): string | undefined => {
  if (spec.graphql === undefined && spec.method !== "POST") return undefined
  const values = templateValues(spec, from, request, end)
  if (spec.graphql !== undefined) return Json.stringify(GraphQL.body(spec.graphql, values, request.fields))
  const filled = spec.body === undefined ? undefined : fill(spec.body, values)
  if (Object.keys(request.fields).length === 0) return filled === undefined ? undefined : Json.stringify(filled)
  // `in: body`: the parameters at the top level (the config refuses a body that is not a mapping)
  return Json.stringify({ ...(filled as Record<string, unknown> | undefined), ...request.fields })
}
