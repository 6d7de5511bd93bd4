/**
 * One request of an HTTP source: the first URL of a run (fixed params + incremental cursor), the
 * outgoing request (fixed headers + auth), and the redacted form of a URL for logs and errors.
 *
 * URLs move between pages WITHOUT the query auth value; `toHttpRequest` adds it on the way out, so a
 * pagination style never handles a secret and a `Link` header that drops the key still works.
 */
import { HttpClientRequest } from "@effect/platform"
import { Option, Redacted } from "effect"
import { basicCredentials, secretsOf } from "../../domain/Secrets.js"
import type { Auth, HttpSourceSpec } from "../../domain/StreamSpec.js"
import { carriesCredentials } from "../../domain/Origin.js"
import * as Template from "../../domain/Template.js"

const placeholder = "***"

/** Query parameter names that hold a secret whatever their value (compared lower-case, `-` as `_`). */
const secretParamNames = new Set([
  "access_token",
  "api_key",
  "apikey",
  "auth",
  "authorization",
  "client_secret",
  "key",
  "password",
  "secret",
  "sig",
  "signature",
  "token",
  "x_api_key"
])

const isSecretParamName = (name: string) => secretParamNames.has(name.toLowerCase().replaceAll("-", "_"))

/** Replace every occurrence of a secret (raw or URL-encoded) in free text with `***`. */
export const scrub = (text: string, auth: Auth | undefined): string => {
  let out = text
  for (const secret of secretsOf(auth)) {
    for (const form of new Set([secret, encodeURIComponent(secret)])) out = out.split(form).join(placeholder)
  }
  return out
}

/**
 * The URL as it may appear in a log line or an error: no userinfo, the query auth value, secret-named
 * params and any param whose value is a secret replaced by `***`, and any secret left in the path too.
 */
export const redactUrl = (url: URL | string, auth: Auth | undefined): string => {
  // a page's URL is shown by its fetch and looked at again by the client (whether it holds a secret)
  const text = url.toString()
  if (text === last.text && auth === last.auth) return last.shown
  const shown = redacted(text, auth)
  last = { text, auth, shown }
  return shown
}

/** the last URL redacted, and how */
let last: { readonly text: string; readonly auth: Auth | undefined; readonly shown: string } = { text: "", auth: undefined, shown: "" }

const redacted = (url: string, auth: Auth | undefined): string => {
  let copy: URL
  try {
    copy = new URL(url)
  } catch {
    return scrub(url, auth)
  }
  copy.username = ""
  copy.password = ""
  const secrets = new Set(secretsOf(auth))
  const params = copy.searchParams
  const entries = Array.from(params.entries())
  const hidden = entries.map(([name, value]): [string, string] =>
    (auth?.type === "query" && name === auth.name) || isSecretParamName(name) || secrets.has(value)
      ? [name, placeholder]
      : [name, value]
  )
  if (hidden.some(([, v], i) => v !== entries[i]![1])) {
    copy.search = new URLSearchParams(hidden).toString()
  }
  return scrub(copy.toString(), auth)
}

/**
 * effectiveAuth per spec: it is asked several times a page. Kept with the URL it was read from, and
 * read again if the spec's URL changed in place.
 */
const auths = new WeakMap<HttpSourceSpec, { readonly url: string; readonly auth: Auth | undefined }>()

/** Credentials written into the spec's URL (`https://user:pass@host`): fetch refuses them, so they become basic auth. */
export const effectiveAuth = (spec: HttpSourceSpec): Auth | undefined => {
  if (spec.auth !== undefined) return spec.auth
  const known = auths.get(spec)
  if (known !== undefined && known.url === spec.url) return known.auth
  const auth = authInUrl(spec)
  auths.set(spec, { url: spec.url, auth })
  return auth
}

const authInUrl = (spec: HttpSourceSpec): Auth | undefined => {
  const url = parseUrl(spec.url)
  if (url === undefined || (url.username === "" && url.password === "")) return undefined
  return {
    type: "basic",
    username: decodeURIComponent(url.username),
    password: Redacted.make(decodeURIComponent(url.password))
  }
}

const parseUrl = (s: string): URL | undefined => {
  try {
    return new URL(s)
  } catch {
    return undefined
  }
}

/** the placeholders a run fills in params (Template.ts) */
const bounds = ["cursor", "end"] as const

/**
 * The first URL of a run: the spec's URL (userinfo removed) with its fixed params and the read's
 * bounds: `from` as `param=<cursor>` and `end` as `endParam=<end>`, or through templates (`"gte.{cursor}"`,
 * `"{end}"`) in `incremental.params` and `source.params`. A template whose bound the run has not
 * (`from` none: a full read) is left out. `undefined` when the spec's URL is not a URL.
 */
export const firstUrl = (
  spec: HttpSourceSpec,
  from: Option.Option<string>,
  end: Option.Option<string> = Option.none()
): URL | undefined => {
  const url = parseUrl(spec.url)
  if (url === undefined) return undefined
  url.username = ""
  url.password = ""
  const values: Template.Values = { cursor: Option.getOrUndefined(from), end: Option.getOrUndefined(end) }
  const set = (name: string, template: string) => {
    const value = Template.fill(template, values)
    if (value !== undefined) url.searchParams.set(name, value)
  }
  for (const [name, value] of Object.entries(spec.params)) set(name, value)
  const incremental = spec.incremental
  if (incremental === undefined) return url
  if (incremental.param !== undefined) set(incremental.param, "{cursor}")
  if (incremental.endParam !== undefined) set(incremental.endParam, "{end}")
  for (const [name, template] of Object.entries(incremental.params ?? {})) set(name, template)
  return url
}

/** The URL actually sent: with the query auth value, when the auth is a query parameter. */
export const sentUrl = (url: URL, auth: Auth | undefined): URL => {
  if (auth?.type !== "query") return url
  const copy = new URL(url)
  copy.searchParams.set(auth.name, Redacted.value(auth.value))
  return copy
}

/**
 * The URL actually sent to `url`'s origin: with the query auth value where the credentials go
 * (`Origin.ts`). Elsewhere without it, nor any of the fixed params, even when the server copied them
 * into its next link: they are the configured origin's only.
 */
export const requestUrl = (spec: HttpSourceSpec, url: URL): URL => {
  const auth = effectiveAuth(spec)
  if (carriesCredentials(spec, url)) return sentUrl(url, auth)
  const own = [
    ...Object.entries(spec.params),
    ...(auth?.type === "query" ? [[auth.name, Redacted.value(auth.value)] as const] : [])
  ]
  // a templated param went out filled in: any value it could have become is its own
  const sent = own.flatMap(([name, template]) =>
    url.searchParams.getAll(name).filter((value) => value === template || Template.couldBe(template, bounds, value))
      .map((value) => [name, value] as const)
  )
  if (sent.length === 0) return url
  const copy = new URL(url)
  for (const [name, value] of sent) copy.searchParams.delete(name, value)
  return copy
}

/**
 * The request for `url` (a GET, or a POST of `body`, JSON text, as `application/json`): JSON accepted,
 * and, where the credentials go (the source URL's origin and `auth.origins`), the fixed headers and the
 * auth. Another origin gets neither: Ferry treats every fixed header as a secret (it redacts them all),
 * so they follow the auth's rule. The body goes wherever the page is (it is the query itself).
 */
export const toHttpRequest = (spec: HttpSourceSpec, url: URL, body?: string): HttpClientRequest.HttpClientRequest => {
  const target = requestUrl(spec, url).toString()
  const plain = spec.method === "POST" || spec.graphql !== undefined
    ? HttpClientRequest.post(target).pipe(
      HttpClientRequest.acceptJson,
      (request) => body === undefined ? request : HttpClientRequest.bodyText(request, body, "application/json")
    )
    : HttpClientRequest.get(target).pipe(HttpClientRequest.acceptJson)
  if (!carriesCredentials(spec, url)) return plain
  const auth = effectiveAuth(spec)
  const base = HttpClientRequest.setHeaders(plain, spec.headers)
  if (auth === undefined) return base
  switch (auth.type) {
    case "bearer":
      return HttpClientRequest.bearerToken(base, auth.token)
    case "basic":
      return HttpClientRequest.setHeader(
        base,
        "Authorization",
        `Basic ${basicCredentials(auth.username, Redacted.value(auth.password))}`
      )
    case "header":
      return HttpClientRequest.setHeader(base, auth.name, Redacted.value(auth.value))
    case "query":
    case "oauth2": // the token is added by `Client.send` (`OAuth2.ts`)
      return base
  }
}
