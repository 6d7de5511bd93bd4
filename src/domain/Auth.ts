/**
 * How a source authenticates. Secrets are `Redacted` once read: written as text in the file, given
 * as `Redacted` in code.
 */
import { Schema } from "effect"
import { HeaderName, NonEmpty } from "./Fields.js"
import { Origin } from "./Origin.js"

const Secret = Schema.Redacted(Schema.String)

/**
 * Origins (`https://host[:port]`) that receive the auth and the fixed headers besides the source URL's
 * own, which always does; each must also be in `allowOrigins` to be requested at all (`Origin.ts`).
 */
const origins = Schema.optional(Schema.Array(Origin))

export const Auth = Schema.Union(
  Schema.Struct({ type: Schema.Literal("bearer"), token: Secret, origins }),
  Schema.Struct({ type: Schema.Literal("basic"), username: Schema.String, password: Secret, origins }),
  /** a custom header, e.g. `X-Api-Key: ...` */
  Schema.Struct({ type: Schema.Literal("header"), name: HeaderName, value: Secret, origins }),
  /** a query parameter, e.g. `?api_key=...` */
  Schema.Struct({ type: Schema.Literal("query"), name: NonEmpty, value: Secret, origins })
)
export type Auth = typeof Auth.Type
