/** Where a stream's records come from: an HTTP JSON API, read page by page (`source/http/`). */
import { Duration, Schema } from "effect"
import { Auth } from "./Auth.js"
import { DottedPath, DurationField, HeaderName, HttpUrl, NonEmpty, ScalarText, withDefault } from "./Fields.js"
import { Incremental } from "./Incremental.js"
import { Origin } from "./Origin.js"
import { Pagination } from "./Pagination.js"
import { RateLimit } from "./RateLimit.js"
import { Retry } from "./Retry.js"

export const HttpSourceSpec = Schema.Struct({
  url: HttpUrl,
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
