/**
 * Origins (`scheme://host[:port]`) and the rule for a next page the source points to: credentials
 * (auth and the fixed headers) go to the configured URL's origin and to the origins `auth.origins`
 * lists, nowhere else; a next page on any other origin is fetched only when `source.allowOrigins` lists
 * it, and never from https down to http.
 */
import { Either, ParseResult, Schema } from "effect"
import { says } from "./Fields.js"

const originRule = "expected an origin: http(s)://host[:port], without a path, query or fragment"

/** An origin as written in a config (`https://CDN.example.com:443/`), normalised (`https://cdn.example.com`). */
export const parseOrigin = (text: string): Either.Either<string, string> => {
  if (!URL.canParse(text)) return Either.left(originRule)
  const url = new URL(text)
  const plain = (url.protocol === "http:" || url.protocol === "https:") && url.username === "" &&
    url.password === "" && url.pathname === "/" && url.search === "" && url.hash === "" &&
    !/[?#]/.test(text) && !/^[a-z]+:\/\/[^/]*\/./i.test(text)
  return plain ? Either.right(url.origin) : Either.left(originRule)
}

/** `https://cdn.example.com[:port]`, normalised to the form `URL.origin` gives (lower-case host, no default port). */
export const Origin = Schema.transformOrFail(Schema.String, Schema.String, {
  strict: true,
  decode: (input, _, ast) =>
    Either.match(parseOrigin(input), {
      onLeft: (rule) => ParseResult.fail(new ParseResult.Type(ast, input, rule)),
      onRight: ParseResult.succeed
    }),
  encode: ParseResult.succeed
}).annotations({
  ...says(originRule),
  jsonSchema: {
    type: "string",
    pattern: "^[hH][tT][tT][pP][sS]?://[^/?#]+/?$",
    description: "an origin: http(s)://host[:port], without a path"
  }
})

/** What the rules read of a source (`HttpSourceSpec`): its URL and the origins it names. */
interface Reach {
  readonly url: string
  readonly auth?: { readonly origins?: ReadonlyArray<string> | undefined } | undefined
  readonly allowOrigins?: ReadonlyArray<string> | undefined
}

/** The origin of a URL for a message: `null` origins (file:, data:) still name their scheme. */
const describeOrigin = (url: URL): string => (url.origin !== "null" ? url.origin : `${url.protocol}//${url.host}`)

/** what the rules read of the source URL: its origin and scheme (none when it is no URL) */
interface Home {
  readonly origin: string
  readonly protocol: string
}

/**
 * The source's home and credential origins, worked out once per spec: they are asked several times a
 * page. Kept with the URL and a copy of the origins they came from, and worked out again if those
 * differ (a spec, or its origins array, changed in place by code that embeds Ferry): credentials never
 * follow a stale origin.
 */
const reaches = new WeakMap<Reach, {
  readonly url: string
  readonly origins: ReadonlyArray<string> | undefined
  readonly home: Home | undefined
  readonly credentials: ReadonlySet<string>
}>()

/** the same origins in the same order (compared by content: an array may be edited in place) */
const sameOrigins = (a: ReadonlyArray<string> | undefined, b: ReadonlyArray<string> | undefined): boolean =>
  a === undefined || b === undefined ? a === b : a.length === b.length && a.every((o, i) => o === b[i])

const reachOf = (spec: Reach) => {
  let known = reaches.get(spec)
  if (known === undefined || known.url !== spec.url || !sameOrigins(known.origins, spec.auth?.origins)) {
    const url = URL.canParse(spec.url) ? new URL(spec.url) : undefined
    const home = url === undefined ? undefined : { origin: url.origin, protocol: url.protocol }
    const origins = spec.auth?.origins === undefined ? undefined : [...spec.auth.origins]
    known = { url: spec.url, origins, home, credentials: new Set([...(home === undefined ? [] : [home.origin]), ...(origins ?? [])]) }
    reaches.set(spec, known)
  }
  return known
}

const homeOf = (spec: Reach): Home | undefined => reachOf(spec).home

/** The origins that receive the credentials: the configured URL's, and those `auth.origins` adds. */
const credentialOrigins = (spec: Reach): ReadonlySet<string> => reachOf(spec).credentials

/** Whether a request to `url` carries the auth and the fixed headers. */
export const carriesCredentials = (spec: Reach, url: URL): boolean => credentialOrigins(spec).has(url.origin)

/**
 * Why the page at `to`, which the page at `from` points to, is not fetched; `undefined`: fetch it.
 * Names both origins, never a URL's path or query (they may hold a secret).
 */
export const nextPageRefusal = (spec: Reach, from: URL, to: URL): string | undefined => {
  const home = homeOf(spec)
  if (home === undefined) return undefined
  const source = home.origin
  if (to.protocol === "http:" && (from.protocol === "https:" || home.protocol === "https:")) {
    return `the next page would go from https down to http (${describeOrigin(from)} -> ${
      describeOrigin(to)
    }; the source is ${source}); Ferry never downgrades, whatever source.allowOrigins lists`
  }
  if (to.origin === source || (spec.allowOrigins ?? []).includes(to.origin)) return undefined
  return `the next page is on another origin (${describeOrigin(to)}; the source is ${source}); ` +
    `Ferry does not follow it: list that origin in source.allowOrigins to fetch it (credentials go there only if auth.origins lists it too)`
}
