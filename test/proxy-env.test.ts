/**
 * The proxy variables as Ferry reads them (src/source/http/Proxy.ts): which spelling wins, what is a
 * malformed value, and which hosts NO_PROXY sends direct. The requests themselves: test/proxy.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { fromEnv, proxyFor, secretsOf, type ProxySettings } from "../src/source/http/Proxy.js"

const settings = (env: Record<string, string>): ProxySettings | undefined => Either.getOrThrow(fromEnv(env))

const error = (env: Record<string, string>): string =>
  Either.match(fromEnv(env), { onLeft: (e) => e.message, onRight: () => "no error" })

/** the proxy host a request to `url` takes, or "direct" */
const via = (env: Record<string, string>, url: string): string => {
  const u = new URL(url)
  const secure = u.protocol === "https:"
  const proxy = proxyFor(settings(env)!, { secure, host: u.hostname, port: Number(u.port || (secure ? 443 : 80)) })
  return proxy === undefined ? "direct" : proxy.url.host
}

describe("the proxy variables", () => {
  it("none set, or set empty: no proxy (nothing of the proxy code is loaded)", () => {
    expect(settings({})).toBeUndefined()
    expect(settings({ HTTPS_PROXY: "", http_proxy: "  ", NO_PROXY: "example.com" })).toBeUndefined()
  })

  it("each scheme its own variable; lower case wins over upper case; an empty lower case does not hide the upper", () => {
    const env = { https_proxy: "http://lower:1", HTTPS_PROXY: "http://upper:2", http_proxy: "", HTTP_PROXY: "http://plain:3" }
    expect(via(env, "https://api.example.com/x")).toBe("lower:1")
    expect(via(env, "http://api.example.com/x")).toBe("plain:3")
    expect(settings(env)!.https!.variable).toBe("https_proxy")
    expect(via({ HTTPS_PROXY: "http://p:3128" }, "http://api.example.com/x")).toBe("direct")
  })

  it("a value without a scheme is an http proxy; default ports are the scheme's; https proxies are accepted", () => {
    expect(settings({ HTTPS_PROXY: "proxy.corp:3128" })!.https!.url.href).toBe("http://proxy.corp:3128/")
    expect(settings({ HTTPS_PROXY: "http://proxy.corp" })!.https!.url.host).toBe("proxy.corp")
    expect(settings({ HTTPS_PROXY: "https://proxy.corp:8443/ignored/path" })!.https!.url.href).toBe("https://proxy.corp:8443/")
  })

  it("credentials become a Basic Proxy-Authorization, decoded, and are left out of the proxy's URL", () => {
    const proxy = settings({ HTTPS_PROXY: "http://us%40er:p%3Ass%20word@proxy.corp:3128" })!.https!
    expect(proxy.url.href).toBe("http://proxy.corp:3128/")
    expect(proxy.authorization).toBe(`Basic ${Buffer.from("us@er:p:ss word").toString("base64")}`)
    expect(secretsOf({ HTTPS_PROXY: "http://us%40er:p%3Ass%20word@proxy.corp:3128" })).toEqual([
      "p%3Ass%20word",
      "p:ss word",
      Buffer.from("us@er:p:ss word").toString("base64")
    ])
    expect(settings({ HTTP_PROXY: "http://proxy.corp:3128" })!.http!.authorization).toBeUndefined()
  })

  it("a malformed value is an error naming the variable and never the value", () => {
    expect(error({ HTTPS_PROXY: "socks5://u:hunter22@h:1080" })).toBe(
      "the environment variable HTTPS_PROXY is a socks5:// proxy; Ferry speaks to http:// and https:// proxies only"
    )
    expect(error({ http_proxy: "http://[::1" })).toBe(
      "the environment variable http_proxy is not a proxy URL (http://[user:password@]host[:port])"
    )
    expect(error({ HTTP_PROXY: "http://u:%E0%A4%A@h:1" })).toBe(
      "the environment variable HTTP_PROXY has credentials that are not URL-encoded text"
    )
    expect(error({ HTTPS_PROXY: "http://h:99999" })).toContain("HTTPS_PROXY is not a proxy URL")
    expect(secretsOf({ HTTPS_PROXY: "socks5://u:hunter22@h:1080" })).toEqual([])
  })
})

describe("NO_PROXY", () => {
  const through = (noProxy: string, url: string) => via({ HTTPS_PROXY: "http://p:1", HTTP_PROXY: "http://p:1", NO_PROXY: noProxy }, url)

  it("a name covers itself and its subdomains, with or without a leading dot or *., never a longer name", () => {
    for (const entry of ["example.com", ".example.com", "*.example.com", "EXAMPLE.com."]) {
      expect(through(entry, "https://example.com/x"), entry).toBe("direct")
      expect(through(entry, "https://api.Example.com/x"), entry).toBe("direct")
      expect(through(entry, "https://notexample.com/x"), entry).toBe("p:1")
      expect(through(entry, "https://example.com.evil.net/x"), entry).toBe("p:1")
    }
  })

  it("comma or space separated; * alone sends everything direct; unknown entries match nothing", () => {
    expect(through("a.com, b.com c.com", "http://c.com/")).toBe("direct")
    expect(through("a.com,b.com", "http://d.com/")).toBe("p:1")
    expect(through("*", "https://anything.net/")).toBe("direct")
    expect(through("a.com,*", "https://anything.net/")).toBe("direct")
    expect(through("10.0.0.0/99,:::,", "https://anything.net/")).toBe("p:1")
  })

  it("host:port matches that port only (the scheme's default when the URL has none)", () => {
    expect(through("api.com:8443", "https://api.com:8443/")).toBe("direct")
    expect(through("api.com:8443", "https://api.com/")).toBe("p:1")
    expect(through("api.com:443", "https://api.com/")).toBe("direct")
  })

  it("addresses and CIDR blocks match URLs written with an address, IPv4 and IPv6", () => {
    expect(through("127.0.0.1", "http://127.0.0.1:8080/")).toBe("direct")
    expect(through("127.0.0.1:9", "http://127.0.0.1:8080/")).toBe("p:1")
    expect(through("10.0.0.0/8", "http://10.1.2.3/")).toBe("direct")
    expect(through("10.0.0.0/8", "http://11.1.2.3/")).toBe("p:1")
    expect(through("::1", "http://[::1]:8080/")).toBe("direct")
    expect(through("[::1]:8080", "http://[::1]:8080/")).toBe("direct")
    expect(through("[::1]:8081", "http://[::1]:8080/")).toBe("p:1")
    expect(through("fd00::/8", "http://[fd12::5]/")).toBe("direct")
    // a name is not resolved to match an address: the proxy resolves names
    expect(through("127.0.0.1", "http://localhost/")).toBe("p:1")
  })

  it("no_proxy wins over NO_PROXY", () => {
    const env = { HTTPS_PROXY: "http://p:1", no_proxy: "a.com", NO_PROXY: "b.com" }
    expect(via(env, "https://a.com/")).toBe("direct")
    expect(via(env, "https://b.com/")).toBe("p:1")
  })
})
