/**
 * GraphQL over HTTP: the query POSTed as `{ query, variables }`, and the errors a GraphQL API reports
 * inside a 200 response. In a module of its own, so that a stream without `graphql` need not load it.
 */
import type { GraphQL } from "../../domain/HttpSourceSpec.js"
import { fill, type TemplateValues } from "../../domain/JsonTemplate.js"

/**
 * The request body: the query as written, the variables with their placeholders filled, then the
 * pagination's parameters (`in: variables`) over them.
 */
export const body = (graphql: GraphQL, values: TemplateValues, fields: Readonly<Record<string, unknown>>): unknown => ({
  query: graphql.query,
  variables: { ...(fill(graphql.variables, values) as Record<string, unknown>), ...fields }
})

const messageOf = (error: unknown): string => {
  const message = typeof error === "object" && error !== null ? (error as { message?: unknown }).message : undefined
  return typeof message === "string" && message.trim() !== "" ? message : "an error without a message"
}

/**
 * Why a response is not a page of data, or `undefined`: a non-empty `errors` list (its first message;
 * a partial result with errors is refused too, since records could be missing) or `data` null or absent.
 */
export const problem = (response: unknown): string | undefined => {
  const { data, errors } = (typeof response === "object" && response !== null ? response : {}) as { data?: unknown; errors?: unknown }
  if (Array.isArray(errors) && errors.length > 0) {
    const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : ""
    return `the GraphQL API answered with errors: ${messageOf(errors[0])}${more}`
  }
  if (data === undefined || data === null) return "the GraphQL response has no data"
  return undefined
}
