/**
 * OpenTelemetry through the bin: with OTEL_EXPORTER_OTLP_ENDPOINT set, `ferry run` sends its spans and
 * counters to a local OTLP/HTTP receiver: a run span per stream with its page fetches and batch
 * transactions under it, the service name and resource attributes, the record counters; and no secret
 * (a bearer token, a password in a query parameter, the database password, the collector's own header)
 * in anything it sends. Without the variables nothing is sent; a malformed endpoint is a 78.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { rmSync } from "node:fs"
import { join } from "node:path"
import { type Api, makeRecords, startApi } from "./support/api.js"
import { configDir, ferry, parseLogs, start } from "./support/cli.js"
import { startServer, type TestServer } from "./support/http.js"
import { fileDatabase, usingServer } from "./support/pg.js"

const token = "tok-SECRET-4411"
const apiKey = "key-SECRET-5522"
const dbPassword = "dbpass-SECRET-6633"
const collectorKey = "collector-SECRET-7744"
const secrets = [token, apiKey, dbPassword, collectorKey]

const db = fileDatabase("ferry_otel")
let api: Api
let receiver: TestServer
const received: Array<{ path: string; type: string; body: Buffer; headers: Record<string, unknown> }> = []
const dirs: Array<string> = []

beforeAll(async () => {
  api = await startApi(makeRecords(25), { auth: { type: "bearer", token }, pageSize: 10 })
  receiver = await startServer(async (req, res, url) => {
    const chunks: Array<Buffer> = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    received.push({ path: url.pathname, type: String(req.headers["content-type"]), body: Buffer.concat(chunks), headers: req.headers })
    res.writeHead(200, { "content-type": "application/json" }).end("{}")
  })
})
afterAll(async () => {
  await api?.close()
  await receiver?.close()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

/** the test database's URL with a password in it (trust auth ignores it; it must not leak) */
const urlWithPassword = () => {
  const url = new URL(db.url)
  url.password = dbPassword
  return url.toString()
}

const [major, minor] = process.versions.node.split(".").map(Number) as [number, number]
/** `ferry worker` needs Node 22.12 (pg-boss) and a server: CI's Node 22 step runs that case */
const workerNode = usingServer && (major > 22 || (major === 22 && minor >= 12))

const configFor = (table: string) => {
  const dir = configDir(`
database: { url: "\${DATABASE_URL}" }
streams:
  - name: items
    source:
      url: ${api.url}/link
      auth: { type: bearer, token: "\${TOKEN}" }
      params: { api_key: "\${API_KEY}" }
      records: data
      pagination: { type: link }
      retry: { attempts: 2, base: 10 millis, max: 1 second }
      incremental: { cursorField: updated_at, param: since, initial: "2000-01-01T00:00:00Z", order: asc }
    target:
      table: ${table}
      primaryKey: [id]
      columns: { id: text, name: text, amount: numeric, updated_at: timestamptz }
`)
  dirs.push(dir)
  return join(dir, "ferry.config.yaml")
}

const secretEnv = () => ({ DATABASE_URL: urlWithPassword(), TOKEN: token, API_KEY: apiKey })

const run = (table: string, env: Record<string, string>) =>
  ferry(["run", "--config", configFor(table)], { env: { ...secretEnv(), ...env } })

type Attr = { key: string; value: Record<string, unknown> }
const attrs = (list: Array<Attr> | undefined): Record<string, unknown> =>
  Object.fromEntries((list ?? []).map((a) => [a.key, Object.values(a.value)[0]]))

const otel = (port: string) => ({
  OTEL_EXPORTER_OTLP_ENDPOINT: port,
  OTEL_SERVICE_NAME: "ferry-test",
  OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=test,team=data",
  OTEL_EXPORTER_OTLP_HEADERS: `x-collector-key=${collectorKey}`
})

describe("OpenTelemetry over OTLP/HTTP", () => {
  it("spans: a run per stream, its pages and batches under it, with their attributes and the service", async () => {
    received.length = 0
    const result = await run("items_json", { ...otel(receiver.url), OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" })
    expect(result.code, result.stderr).toBe(0)
    const traces = received.filter((r) => r.path === "/v1/traces")
    expect(traces.length).toBeGreaterThan(0)
    expect(traces[0]!.type).toContain("application/json")
    expect(traces[0]!.headers["x-collector-key"]).toBe(collectorKey)
    const resourceSpans = traces.flatMap((t) => JSON.parse(t.body.toString()).resourceSpans)
    const resource = attrs(resourceSpans[0].resource.attributes)
    expect(resource).toMatchObject({ "service.name": "ferry-test", "deployment.environment": "test", team: "data" })
    const spans = resourceSpans.flatMap((r: any) => r.scopeSpans.flatMap((s: any) => s.spans))
    const named = (name: string) => spans.filter((s: any) => s.name === name)
    const [runSpan, ...others] = named("ferry.stream.run")
    expect(others).toEqual([])
    expect(attrs(runSpan.attributes)).toMatchObject({ "ferry.stream": "items", "ferry.target": "public.items_json", "ferry.inserted": 25 })
    const pages = named("ferry.page.fetch")
    const batches = named("ferry.batch.commit")
    expect(pages.length).toBe(3)
    expect(batches.length).toBeGreaterThan(0)
    for (const child of [...pages, ...batches]) {
      expect(child.traceId).toBe(runSpan.traceId)
      expect(child.parentSpanId).toBe(runSpan.spanId)
    }
    const page = attrs(pages[0].attributes)
    expect(page).toMatchObject({ "http.response.status_code": 200, "ferry.records": 10, "ferry.retries": 0, "http.request.method": "GET" })
    expect(String(page["url.full"])).toMatch(new RegExp(`^${api.url}/link\\?api_key=\\*\\*\\*&since=`))
    expect(batches.reduce((n: number, b: any) => n + Number(attrs(b.attributes)["ferry.rows"]), 0)).toBe(25)
    expect(Number(attrs(batches[0].attributes)["ferry.bytes"])).toBeGreaterThan(0)
    // the metrics: records by outcome, as counters
    const metrics = received.filter((r) => r.path === "/v1/metrics")
      .flatMap((m) => JSON.parse(m.body.toString()).resourceMetrics.flatMap((r: any) => r.scopeMetrics.flatMap((s: any) => s.metrics)))
    const points = metrics.filter((m: any) => m.name === "ferry.records").flatMap((m: any) => m.sum.dataPoints)
    const inserted = points.find((p: any) => attrs(p.attributes).outcome === "inserted")
    expect(Number(inserted.asDouble ?? inserted.asInt)).toBe(25)
    expect(metrics.find((m: any) => m.name === "ferry.retries")?.sum.isMonotonic).toBe(true)
  })

  it("no secret in anything sent: token, query password, database password, collector header; a failure's span too", async () => {
    received.length = 0
    expect((await run("items_secrets", { ...otel(receiver.url), OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" })).code).toBe(0)
    // a failing run: its span ends with the error (which names the URL)
    api.fail = () => 500
    try {
      expect((await run("items_failing", { ...otel(receiver.url), OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" })).code).toBe(69)
    } finally {
      api.fail = undefined
    }
    const sent = received.map((r) => r.body.toString()).join("\n")
    expect(sent).toContain("ferry.page.fetch")
    expect(sent).toContain("HTTP 500")
    for (const secret of secrets) expect(sent).not.toContain(secret)
  })

  it("protobuf by default, without a secret either", async () => {
    received.length = 0
    expect((await run("items_proto", otel(receiver.url))).code).toBe(0)
    const traces = received.filter((r) => r.path === "/v1/traces")
    expect(traces[0]!.type).toContain("application/x-protobuf")
    const bytes = Buffer.concat(received.map((r) => r.body)).toString("latin1")
    expect(bytes).toContain("ferry.stream.run")
    expect(bytes).toContain("ferry-test")
    for (const secret of secrets) expect(bytes).not.toContain(secret)
  })

  it("a collector that does not answer costs the run its exit code nothing, and at most ~2 s", async () => {
    const started = Date.now()
    const result = await run("items_down", {
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://otel:${collectorKey}@127.0.0.1:9`,
      FERRY_LOG_LEVEL: "debug"
    })
    expect(result.code, result.stderr).toBe(0)
    expect(Date.now() - started).toBeLessThan(8_000)
    // even at debug level, nothing printed holds the password of the endpoint's URL
    expect(result.stderr).not.toContain(collectorKey)
  })

  it("nothing is sent without the variables; a malformed endpoint is a 78 naming the variable", async () => {
    received.length = 0
    expect((await run("items_off", {})).code).toBe(0)
    expect(received).toEqual([])
    const bad = await run("items_bad", { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "localhost:4318" })
    expect(bad.code).toBe(78)
    expect(bad.logs.find((l) => l.level === "error")?.msg).toBe(
      "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: expected an http:// or https:// URL (Ferry exports OTLP over HTTP)"
    )
  })

  it.runIf(workerNode)("a worker exports each job's run as a root span, with its pages under it, and no secret", async () => {
    received.length = 0
    const config = configFor("items_worker")
    const env = { ...secretEnv(), ...otel(receiver.url), OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" }
    const worker = start(["worker", "--config", config], { env })
    let text = ""
    worker.child.stderr!.on("data", (d) => (text += d))
    const lines = () => parseLogs(text.slice(0, text.lastIndexOf("\n") + 1))
    const until = async (what: string, ok: () => boolean) => {
      for (const deadline = Date.now() + 30_000; !ok();) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${text}`)
        await new Promise((r) => setTimeout(r, 100))
      }
    }
    await until("worker.start", () => lines().some((l) => l.msg === "worker.start"))
    const enqueued = await ferry(["enqueue", "--config", config, "--stream", "items"], { env: secretEnv() })
    expect(enqueued.code, enqueued.stderr).toBe(0)
    await until("job.end", () => lines().some((l) => l.msg === "job.end"))
    worker.child.kill("SIGTERM")
    expect((await worker.done).code).toBe(0)
    const spans = received.filter((r) => r.path === "/v1/traces")
      .flatMap((t) => JSON.parse(t.body.toString()).resourceSpans.flatMap((r: any) => r.scopeSpans.flatMap((s: any) => s.spans)))
    const runs = spans.filter((s: any) => s.name === "ferry.stream.run")
    expect(runs).toHaveLength(1)
    expect(runs[0].parentSpanId ?? "").toBe("")
    expect(attrs(runs[0].attributes)).toMatchObject({ "ferry.stream": "items", "ferry.inserted": 25 })
    const pages = spans.filter((s: any) => s.name === "ferry.page.fetch")
    expect(pages.length).toBe(3)
    for (const page of pages) expect(page.parentSpanId).toBe(runs[0].spanId)
    const sent = received.map((r) => r.body.toString()).join("\n")
    for (const secret of secrets.filter((s) => s !== collectorKey)) expect(sent).not.toContain(secret)
  })
})
