/** Where a stream's records come from: an HTTP JSON API, read page by page (`source/http/`). */
import { Duration, Schema } from "effect"
import { Auth } from "./Auth.js"
import { DottedPath, DurationField, HeaderName, HttpUrl, NonEmpty, oneOf, ScalarText, withDefault } from "./Fields.js"
import { Incremental } from "./Incremental.js"
import { Origin } from "./Origin.js"
import { Pagination } from "./Pagination.js"
import { RateLimit } from "./RateLimit.js"
import { Retry } from "./Retry.js"

export const Method = oneOf("GET", "POST")
export type Method = typeof Method.Type

/** Any JSON value; its strings may hold `{cursor}` and `{next}` (`Template.ts`). */
const JsonValue = Schema.Unknown.annotations({
  jsonSchema: {
    type: ["object", "array", "string", "number", "boolean", "null"],
    description: "any JSON value; strings may hold {cursor} and {next}"
  }
})

/** A GraphQL query, POSTed as `{ query, variables }` (`source/http/GraphQL.ts`). */
export const GraphQL = Schema.Struct({
  query: NonEmpty,
  /** the query's variables; their strings may hold `{cursor}` and `{next}` */
  variables: withDefault(Schema.Record({ key: Schema.String, value: JsonValue }), () => ({}))
})
export type GraphQL = typeof GraphQL.Type

export const HttpSourceSpec = Schema.Struct({
  url: HttpUrl,
  /** POST sends `body` (or the GraphQL query) as JSON; `graphql` implies POST */
  method: withDefault(Method, () => "GET" as const),
  /** with POST: the JSON body; its strings may hold `{cursor}` and `{next}` */
  body: Schema.optional(JsonValue),
  graphql: Schema.optional(GraphQL),
  auth: Schema.optional(Auth),
  /** sent with every request to the origins that receive the credentials */
  headers: withDefault(Schema.Record({ key: HeaderName, value: ScalarText }), () => ({})),
  params: withDefault(Schema.Record({ key: NonEmpty, value: ScalarText }), () => ({})),
  /**
   * other origins (`https://host[:port]`) a next page may be on; fetched without credentials unless
   * `auth.origins` lists them (`Origin.ts`). Absent: the source URL's origin only.
   */
  allowOrigins: Schema.optional(Schema.Array(Origin)),
  /** dotted path to the array of records; absent: the body is the array */
  records: Schema.optional(DottedPath),
  pagination: withDefault(Pagination, () => ({ _tag: "None" as const })),
  incremental: Schema.optional(Incremental),
  /** per request, the body's read included */
  timeout: withDefault(DurationField, () => Duration.seconds(30)),
  retry: withDefault(Retry, () => Retry.make({})),
  /** absent: no limit (`source/http/RateLimit.ts`) */
  rateLimit: Schema.optional(RateLimit)
})
export type HttpSourceSpec = typeof HttpSourceSpec.Type

/** The request rules that span fields, as `[path under source, message]`; `method` as written (absent: default). */
export const requestProblems = (
  source: {
    readonly method?: Method | undefined
    readonly body?: unknown
    readonly graphql?: object | undefined
    readonly records?: string | undefined
    readonly pagination: Pagination
  }
): ReadonlyArray<readonly [ReadonlyArray<string>, string]> => {
  const { body, graphql, method, pagination } = source
  const post = graphql !== undefined || method === "POST"
  const where = "in" in pagination ? pagination.in : undefined
  const problems: Array<readonly [ReadonlyArray<string>, string]> = []
  if (graphql !== undefined && method === "GET") problems.push([["method"], "graphql is sent with POST: remove method: GET"])
  if (graphql !== undefined && body !== undefined) {
    problems.push([["body"], "graphql sends { query, variables } as the body: remove body and use graphql.variables"])
  }
  if (graphql !== undefined && source.records === undefined) {
    problems.push([["records"], "a GraphQL response is an object: give the dotted path of the list, e.g. data.orders.nodes"])
  }
  if (graphql === undefined && body !== undefined && method !== "POST") problems.push([["body"], "a body is sent with method: POST only"])
  if (where === "variables" && graphql === undefined) {
    problems.push([["pagination", "in"], "in: variables places the parameter in graphql.variables: it needs source.graphql"])
  }
  if (where === "body" && (graphql !== undefined || !post)) {
    problems.push([["pagination", "in"], graphql !== undefined ? "with graphql use in: variables" : "in: body needs method: POST"])
  }
  if (where === "body" && body !== undefined && (typeof body !== "object" || body === null || Array.isArray(body))) {
    problems.push([["body"], "in: body adds the pagination parameters to the body: it must be a mapping"])
  }
  return problems
}
