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

const tokenUrlRule = "expected an https URL (http only on 127.0.0.1 or localhost): the client secret goes there"

/** The token endpoint: https, or plain http to the loopback host only (credentials never cross a network in clear). */
const TokenUrl = Schema.String.pipe(
  Schema.filter((text) => {
    if (!URL.canParse(text)) return tokenUrlRule
    const url = new URL(text)
    if (url.protocol === "https:") return true
    return url.protocol === "http:" && ["127.0.0.1", "localhost", "[::1]"].includes(url.hostname) ? true : tokenUrlRule
  }, { jsonSchema: { type: "string", description: tokenUrlRule } })
)

/**
 * OAuth2: an access token from `tokenUrl` (client credentials, or a refresh token), sent as
 * `Authorization: Bearer` where the credentials go; renewed before it expires and once on a 401.
 */
const OAuth2 = Schema.Struct({
  type: Schema.Literal("oauth2"),
  tokenUrl: TokenUrl,
  clientId: NonEmpty,
  clientSecret: Secret,
  scopes: Schema.optional(Schema.Array(NonEmpty)),
  audience: Schema.optional(NonEmpty),
  grant: Schema.optionalWith(Schema.Literal("client_credentials", "refresh_token"), { default: () => "client_credentials" }),
  refreshToken: Schema.optional(Secret),
  origins
}).pipe(
  Schema.filter((auth) =>
    auth.grant !== "refresh_token" || auth.refreshToken !== undefined ||
    { path: ["refreshToken"], message: "expected a refreshToken: grant is refresh_token" }
  )
)

export const Auth = Schema.Union(
  Schema.Struct({ type: Schema.Literal("bearer"), token: Secret, origins }),
  Schema.Struct({ type: Schema.Literal("basic"), username: Schema.String, password: Secret, origins }),
  /** a custom header, e.g. `X-Api-Key: ...` */
  Schema.Struct({ type: Schema.Literal("header"), name: HeaderName, value: Secret, origins }),
  /** a query parameter, e.g. `?api_key=...` */
  Schema.Struct({ type: Schema.Literal("query"), name: NonEmpty, value: Secret, origins }),
  OAuth2
)
export type Auth = typeof Auth.Type
