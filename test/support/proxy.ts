/**
 * A real HTTP proxy for tests: TooTallNate's `proxy` package (CONNECT tunnels and absolute-form
 * requests, as Squid does) on 127.0.0.1, with what it was asked recorded, optional Basic credentials,
 * and a host table of its own: a name only the proxy can resolve (`api.ferry.test`, a reserved TLD)
 * proves that the client left the resolving to the proxy. Also a CA and a certificate for that name,
 * for an https source that the client trusts through NODE_EXTRA_CA_CERTS.
 */
import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createProxy } from "proxy"

export interface ProxyRequest {
  /** CONNECT, or the method of an absolute-form request */
  readonly method: string
  /** `host:port` for CONNECT, the absolute URL otherwise, as the client wrote them */
  readonly target: string
  readonly authorization: string | undefined
}

export interface TestProxy {
  readonly port: number
  readonly seen: Array<ProxyRequest>
  readonly close: () => Promise<void>
}

export const startProxy = async (
  options: { readonly hosts?: Record<string, string>; readonly credentials?: string } = {}
): Promise<TestProxy> => {
  const seen: Array<ProxyRequest> = []
  const hosts = options.hosts ?? {}
  const server = http.createServer()
  const record = (req: http.IncomingMessage) =>
    seen.push({ method: req.method ?? "", target: req.url ?? "", authorization: req.headers["proxy-authorization"] })
  // before the proxy's own listeners: record, then resolve the names of the table here
  server.prependListener("connect", (req: http.IncomingMessage) => {
    record(req)
    const at = (req.url ?? "").lastIndexOf(":")
    const address = hosts[(req.url ?? "").slice(0, at)]
    if (address !== undefined) req.url = `${address}${req.url!.slice(at)}`
  })
  server.prependListener("request", (req: http.IncomingMessage) => {
    record(req)
    if (!URL.canParse(req.url ?? "")) return
    const url = new URL(req.url!)
    const address = hosts[url.hostname]
    if (address !== undefined) {
      url.hostname = address
      req.url = url.toString()
    }
  })
  const proxy = createProxy(server)
  if (options.credentials !== undefined) {
    const expected = `Basic ${Buffer.from(options.credentials).toString("base64")}`
    proxy.authenticate = (req) => req.headers["proxy-authorization"] === expected
  }
  return listening(server, seen)
}

/** `server` listening on a free loopback port, with what it saw and a `close` that ends its connections. */
export const listening = async <S>(server: http.Server, seen: Array<S>) => {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}

export interface Certificate {
  readonly caFile: string
  readonly key: Buffer
  readonly cert: Buffer
}

/** A CA made here and a server certificate it signed for `names` (openssl, as test/support/tls-cluster.ts). */
export const makeCertificate = (names: ReadonlyArray<string>): Certificate => {
  const dir = mkdtempSync(join(tmpdir(), "ferry-proxy-tls-"))
  const openssl = (...args: Array<string>) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" })
  openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=ferry test CA", "-keyout", "ca.key", "-out", "ca.crt")
  writeFileSync(join(dir, "san.ext"), `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}\n`)
  openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=${names[0]}`, "-keyout", "server.key", "-out", "server.csr")
  openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
    "-extfile", "san.ext", "-out", "server.crt")
  return { caFile: join(dir, "ca.crt"), key: readFileSync(join(dir, "server.key")), cert: readFileSync(join(dir, "server.crt")) }
}
