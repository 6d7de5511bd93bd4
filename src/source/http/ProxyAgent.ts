/**
 * The Node agents of a run through proxies (`HttpSource.layerNodeProxied`), loaded only when a proxy
 * variable is set. Each request picks its way by its own URL: a `no_proxy` host goes direct, an https
 * URL through a CONNECT tunnel to its host and port (TLS end to end, the name resolved by the proxy),
 * an http URL as an absolute-form request to the proxy. The credentials of a proxy URL are sent as
 * `Proxy-Authorization` and never handed to the agents inside a URL (their debug output prints URLs).
 *
 * It imports nothing the rest of the bundle imports (types aside): a module loaded by `import()` is
 * initialised lazily, and esbuild then wraps every module it imports the same way, the whole of
 * `effect` included, which cost the start-up of every run (docs/PERFORMANCE.md, "Start-up").
 */
import { Agent, type AgentConnectOpts } from "agent-base"
import { HttpProxyAgent } from "http-proxy-agent"
import { HttpsProxyAgent } from "https-proxy-agent"
import * as http from "node:http"
import * as https from "node:https"
import type { Socket } from "node:net"
import type { ProxyServer, ProxySettings } from "./Proxy.js"

/** The proxy a request takes (`Proxy.proxyFor`), or undefined to go direct. */
type Choose = (request: { readonly secure: boolean; readonly host: string; readonly port: number }) => ProxyServer | undefined

/**
 * A failure to reach or use the proxy, told as such: the message names the proxy's host and the
 * variable, never its credentials. The error code stays (ECONNREFUSED, ...) for the client's message.
 */
const throughProxy = (proxy: ProxyServer, error: unknown): Error => {
  const message = error instanceof Error ? error.message : String(error)
  const code = error instanceof Error ? (error as { code?: unknown }).code : undefined
  return Object.assign(new Error(`through the proxy ${proxy.url.host} (${proxy.variable}): ${message}`), { code })
}

const options = (proxy: ProxyServer) => ({
  keepAlive: true,
  headers: proxy.authorization === undefined ? {} : { "Proxy-Authorization": proxy.authorization }
})

/** https URLs: a CONNECT tunnel. A proxy that refuses the tunnel fails the try, naming the proxy. */
class Tunnel extends HttpsProxyAgent<string> {
  constructor(private readonly server: ProxyServer) {
    super(server.url.href, options(server))
  }
  override async connect(req: http.ClientRequest, opts: AgentConnectOpts): Promise<Socket> {
    let status: number | undefined
    req.once("proxyConnect", (answer: { statusCode?: number }) => (status = answer.statusCode))
    try {
      const socket = await super.connect(req, opts)
      // 407 is left to reach the client as the response (a refusal no retry mends: Client.ts says so);
      // any other refusal (502: the proxy could not reach the host) is a failed try, retried
      if (status !== undefined && status !== 200 && status !== 407) {
        socket.destroy()
        throw new Error(`the proxy answered CONNECT ${opts.host}:${opts.port} with HTTP ${status}`)
      }
      return socket
    } catch (error) {
      throw throughProxy(this.server, error)
    }
  }
}

/** what a request ended before it had a socket holds: its header, written, waiting in `outputData` */
interface Written {
  _header: string | null
  _implicitHeader(): void
  outputData?: Array<{ data: unknown }>
}

/** Node's own `Agent#addRequest` (untyped): a free kept-alive socket, or a new one through `connect` */
const nodeAddRequest = (http.Agent.prototype as unknown as { addRequest: (req: unknown, opts: unknown) => void }).addRequest

/** http URLs: absolute-form requests to the proxy. */
class Forward extends HttpProxyAgent<string> {
  constructor(private readonly server: ProxyServer) {
    super(server.url.href, options(server))
  }
  /**
   * HttpProxyAgent makes the request line absolute here, but writes the header again only in
   * `connect`, which a request on a kept-alive connection to the proxy never reaches: a request ended
   * before it had its socket (NodeAgent.ts ends it at once) then went out as `GET /items` and the
   * proxy answered 500. The header is written again here too, as `connect` does.
   */
  override addRequest(req: Parameters<HttpProxyAgent<string>["addRequest"]>[0], opts: AgentConnectOpts): void {
    const request = req as unknown as Written
    request._header = null
    this.setRequestProps(req, opts)
    const queued = request.outputData?.[0]
    if (queued !== undefined && typeof queued.data === "string") {
      request._implicitHeader()
      queued.data = request._header + queued.data.substring(queued.data.indexOf("\r\n\r\n") + 4)
    }
    nodeAddRequest.call(this, req, opts)
  }
  override async connect(req: Parameters<HttpProxyAgent<string>["connect"]>[0], opts: AgentConnectOpts): Promise<Socket> {
    try {
      return await super.connect(req, opts)
    } catch (error) {
      throw throughProxy(this.server, error)
    }
  }
}

/** One request at a time to the agent its URL takes; destroying it destroys them all. */
class Route extends Agent {
  constructor(
    secure: boolean,
    private readonly pick: (opts: AgentConnectOpts) => http.Agent,
    private readonly agents: ReadonlyArray<http.Agent>
  ) {
    // keepAlive: a request asks its own agent whether to keep the connection (the agent it is handed to keeps it)
    super({ keepAlive: true })
    // https.request checks the agent's protocol; agent-base would guess it from the call stack
    this.protocol = secure ? "https:" : "http:"
  }
  override connect(_req: http.ClientRequest, opts: AgentConnectOpts): http.Agent {
    return this.pick(opts)
  }
  override destroy(): void {
    for (const agent of this.agents) agent.destroy()
    super.destroy()
  }
}

const route = (settings: ProxySettings, choose: Choose, secure: boolean): http.Agent => {
  const direct = secure ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true })
  const proxy = secure ? settings.https : settings.http
  if (proxy === undefined) return direct
  const proxied = secure ? new Tunnel(proxy) : new Forward(proxy)
  return new Route(secure, (opts) => {
    const port = opts.port ?? (secure ? 443 : 80)
    return choose({ secure, host: opts.host ?? "", port }) === undefined ? direct : proxied
  }, [direct, proxied])
}

/** The client's two agents (NodeHttpClient's `HttpAgent`), for http and https URLs. */
export const make = (settings: ProxySettings, choose: Choose): { readonly http: http.Agent; readonly https: https.Agent } => ({
  http: route(settings, choose, false),
  // a Route stands for an https.Agent: https.request only asks it for its protocol and to add the request
  https: route(settings, choose, true) as https.Agent
})
