/**
 * OAuth2 access tokens for `auth: { type: oauth2 }`: fetched from the token endpoint on first use (a
 * form-encoded POST, the client credentials in the body), kept in memory until `expires_in` less a
 * margin, renewed when stale or when the source answered 401 with it. The token is only ever a header
 * value (`Authorization`, which the client's trace redacts); the endpoint's refusal is reported by its
 * `error` code alone, never with the request's body.
 */
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { Clock, Effect, Redacted } from "effect"
import type { Auth } from "../../domain/StreamSpec.js"
import { RequestFailure } from "./RetrySchedule.js"

export type OAuth2Auth = Extract<Auth, { type: "oauth2" }>

interface Token {
  readonly value: Redacted.Redacted<string>
  readonly expiresAt: number
}

interface Holder {
  current: Token | undefined
  readonly lock: Effect.Semaphore
}

/** One holder per auth config: one token per run, shared by the stream's requests. */
const holders = new WeakMap<OAuth2Auth, Holder>()

const holderOf = (auth: OAuth2Auth): Holder => {
  let holder = holders.get(auth)
  if (holder === undefined) {
    holder = { current: undefined, lock: Effect.unsafeMakeSemaphore(1) }
    holders.set(auth, holder)
  }
  return holder
}

const failure = (kind: "fatal" | "transient", reason: string, status?: number) =>
  new RequestFailure({ kind, status, reason, asked: undefined })

const form = (auth: OAuth2Auth): Record<string, string> => {
  const params: Record<string, string> = {
    grant_type: auth.grant,
    client_id: auth.clientId,
    client_secret: Redacted.value(auth.clientSecret)
  }
  if (auth.scopes !== undefined && auth.scopes.length > 0) params.scope = auth.scopes.join(" ")
  if (auth.audience !== undefined) params.audience = auth.audience
  if (auth.grant === "refresh_token" && auth.refreshToken !== undefined) {
    params.refresh_token = Redacted.value(auth.refreshToken)
  }
  return params
}

/** the endpoint's `error` code, if it is one (letters, digits, `_`, `.`, `-`: nothing the client sent) */
const errorCode = (body: unknown): string => {
  const code = typeof body === "object" && body !== null ? (body as { error?: unknown }).error : undefined
  return typeof code === "string" && /^[\w.-]{1,64}$/.test(code) ? code : "no error code"
}

const parse = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** renew this long before the token expires (half its life for a short-lived one) */
const marginMillis = (lifeMillis: number) => Math.min(30_000, lifeMillis / 2)

const fetchToken = (client: HttpClient.HttpClient, auth: OAuth2Auth): Effect.Effect<Token, RequestFailure> =>
  Effect.gen(function*() {
    const request = HttpClientRequest.post(auth.tokenUrl).pipe(
      HttpClientRequest.acceptJson,
      HttpClientRequest.bodyUrlParams(form(auth))
    )
    const started = yield* Clock.currentTimeMillis
    const { status, text } = yield* client.execute(request).pipe(
      Effect.flatMap((response) => Effect.map(response.text, (text) => ({ status: response.status, text }))),
      Effect.mapError(() => failure("transient", "the OAuth2 token endpoint could not be reached"))
    )
    const body = parse(text)
    if (status >= 500) return yield* failure("transient", `the OAuth2 token endpoint failed (HTTP ${status})`, status)
    if (status < 200 || status >= 300) {
      return yield* failure("fatal", `the OAuth2 token endpoint refused the grant: ${errorCode(body)}`, status)
    }
    const { access_token, expires_in } = (body ?? {}) as { access_token?: unknown; expires_in?: unknown }
    if (typeof access_token !== "string" || access_token === "") {
      return yield* failure("fatal", "the OAuth2 token endpoint answered without an access_token", status)
    }
    const life = typeof expires_in === "number" && expires_in > 0 ? expires_in * 1000 : 3_600_000
    return { value: Redacted.make(access_token), expiresAt: started + life - marginMillis(life) }
  })

/**
 * The current access token: the held one while fresh, else a new one. `stale`: the token the source
 * just refused (401), renewed unless another request renewed it already.
 */
export const accessToken = (
  client: HttpClient.HttpClient,
  auth: OAuth2Auth,
  stale?: Redacted.Redacted<string>
): Effect.Effect<Redacted.Redacted<string>, RequestFailure> => {
  const holder = holderOf(auth)
  return holder.lock.withPermits(1)(
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const held = holder.current
      if (held !== undefined && held.expiresAt > now && held.value !== stale) return held.value
      const token = yield* fetchToken(client, auth)
      holder.current = token
      return token.value
    })
  )
}
