/**
 * The HTTP proxies of the environment, read as curl, wget, npm and Python's requests read them:
 * `https_proxy`/`HTTPS_PROXY` for https URLs, `http_proxy`/`HTTP_PROXY` for http URLs, and
 * `no_proxy`/`NO_PROXY` for the hosts that are reached directly. Of two spellings the lower-case one
 * wins when it is set and not empty. `ALL_PROXY` is not read (it is mostly set for SOCKS, which Ferry
 * does not speak). This module only reads and checks the variables; the agents that use them are in
 * `ProxyAgent.ts`, loaded only when a proxy is set (docs/DESIGN-NOTES.md, "Proxies").
 */
import { Either } from "effect"
import { BlockList, isIP } from "node:net"
import { ConfigError } from "../../domain/Errors.js"
import { basicCredentials } from "../../domain/Secrets.js"

export interface ProxyServer {
  /** the proxy without its credentials: what the agents get and what messages show (`url.host`) */
  readonly url: URL
  /** `Basic ...` when the variable holds credentials (`http://user:password@host:port`) */
  readonly authorization: string | undefined
  /** the variable it was read from, for messages */
  readonly variable: string
  /** the password in its written, decoded and header forms, for the redactor */
  readonly secrets: ReadonlyArray<string>
}

type Rule =
  | { readonly _tag: "All" }
  | { readonly _tag: "Name"; readonly name: string; readonly port: number | undefined }
  | { readonly _tag: "Address"; readonly list: BlockList; readonly port: number | undefined }

export interface ProxySettings {
  readonly https: ProxyServer | undefined
  readonly http: ProxyServer | undefined
  readonly noProxy: ReadonlyArray<Rule>
}

type Env = Readonly<Record<string, string | undefined>>

/** The variable that applies, lower case first (as curl, wget and requests), and its value. */
const lookup = (env: Env, name: string): { readonly variable: string; readonly value: string } | undefined => {
  for (const variable of [name.toLowerCase(), name.toUpperCase()]) {
    const value = env[variable]?.trim()
    if (value !== undefined && value !== "") return { variable, value }
  }
  return undefined
}

const decoded = (text: string): string | undefined => {
  try {
    return decodeURIComponent(text)
  } catch {
    return undefined
  }
}

/** One proxy variable; the error names the variable, never its value (it may hold a password). */
const server = (variable: string, value: string): Either.Either<ProxyServer, ConfigError> => {
  const fail = (why: string) =>
    Either.left(new ConfigError({ path: "", reason: `the environment variable ${variable} ${why}` }))
  // `proxy:3128` without a scheme is an http proxy, as for curl
  const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`
  if (!URL.canParse(text)) return fail("is not a proxy URL (http://[user:password@]host[:port])")
  const url = new URL(text)
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return fail(`is a ${url.protocol}// proxy; Ferry speaks to http:// and https:// proxies only`)
  }
  if (url.hostname === "") return fail("has no host (http://[user:password@]host[:port])")
  const username = decoded(url.username)
  const password = decoded(url.password)
  if (username === undefined || password === undefined) return fail("has credentials that are not URL-encoded text")
  const authorization = username === "" && password === "" ? undefined : `Basic ${basicCredentials(username, password)}`
  return Either.right({
    url: new URL(`${url.protocol}//${url.host}`),
    authorization,
    variable,
    secrets: password === "" ? [] : [...new Set([url.password, password, authorization!.slice("Basic ".length)])]
  })
}

const port = (text: string | undefined): number | undefined => (text === undefined ? undefined : Number(text))

/** An IP address or a CIDR block as a rule; undefined for an entry that is neither. */
const addressRule = (entry: string, port: number | undefined): Rule | undefined => {
  const [address = "", bits] = entry.split("/")
  const family = isIP(address)
  if (family === 0) return undefined
  const type = family === 4 ? "ipv4" : "ipv6"
  const list = new BlockList()
  if (bits === undefined) list.addAddress(address, type)
  else if (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128)) list.addSubnet(address, Number(bits), type)
  else return undefined
  return { _tag: "Address", list, port }
}

/**
 * One `no_proxy` entry: `*`; a host name, which also covers its subdomains (`example.com`,
 * `.example.com` and `*.example.com` alike, as curl); an IP address or a CIDR block, matched against
 * URLs written with an address (names are not resolved: the proxy resolves them); each may end in
 * `:port`. An entry Ferry does not understand matches nothing, as in the tools that share the variable.
 */
const rule = (entry: string): Rule | undefined => {
  if (entry === "*") return { _tag: "All" }
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry)
  if (bracketed !== null) return addressRule(bracketed[1]!, port(bracketed[2]))
  if (isIP(entry.split("/")[0]!) === 6) return addressRule(entry, undefined)
  const withPort = /^(.*):(\d+)$/.exec(entry)
  const host = withPort === null ? entry : withPort[1]!
  const p = port(withPort?.[2])
  if (isIP(host.split("/")[0]!) !== 0) return addressRule(host, p)
  const name = host.replace(/^\*?\.?/, "").replace(/\.$/, "")
  return name === "" ? undefined : { _tag: "Name", name, port: p }
}

const noProxyRules = (env: Env): ReadonlyArray<Rule> =>
  (lookup(env, "no_proxy")?.value ?? "").toLowerCase().split(/[\s,]+/).flatMap((entry) => {
    const r = entry === "" ? undefined : rule(entry)
    return r === undefined ? [] : [r]
  })

/** The proxy settings, or undefined when no proxy is set (then nothing of the proxy code is loaded). */
export const fromEnv = (env: Env): Either.Either<ProxySettings | undefined, ConfigError> => {
  const read = (name: string) => {
    const found = lookup(env, name)
    return found === undefined ? Either.right(undefined) : server(found.variable, found.value)
  }
  return Either.gen(function*() {
    const https = yield* read("https_proxy")
    const http = yield* read("http_proxy")
    return https === undefined && http === undefined ? undefined : { https, http, noProxy: noProxyRules(env) }
  })
}

/** The password forms of every proxy set: the redactor takes them out of anything written. */
export const secretsOf = (env: Env): ReadonlyArray<string> =>
  Either.match(fromEnv(env), {
    onLeft: () => [],
    onRight: (settings) => [...(settings?.https?.secrets ?? []), ...(settings?.http?.secrets ?? [])]
  })

/** Whether a request to `host`:`port` goes direct, by `no_proxy`. `host` as in a URL (IPv6 in brackets). */
const bypasses = (rules: ReadonlyArray<Rule>, host: string, port: number): boolean => {
  const name = host.toLowerCase().replace(/^\[|\]$/g, "").replace(/\.$/, "")
  const family = isIP(name)
  return rules.some((r) => {
    if (r._tag === "All") return true
    if (r.port !== undefined && r.port !== port) return false
    if (r._tag === "Name") return name === r.name || name.endsWith(`.${r.name}`)
    return family !== 0 && r.list.check(name, family === 4 ? "ipv4" : "ipv6")
  })
}

/** The proxy for a request, or undefined to go direct. */
export const proxyFor = (
  settings: ProxySettings,
  request: { readonly secure: boolean; readonly host: string; readonly port: number }
): ProxyServer | undefined => {
  const proxy = request.secure ? settings.https : settings.http
  return proxy === undefined || bypasses(settings.noProxy, request.host, request.port) ? undefined : proxy
}
