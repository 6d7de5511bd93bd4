/**
 * A source whose truth the process-level suites and `npm run chaos` compare the target table against:
 * thousands of records, cursor ties, and records that change WHILE a run reads them. Plain JS with
 * only `node:` imports, so that scripts/chaos.mjs runs under bare node; the tests import it through
 * test/support/truth-api.ts (types in truth-source.d.mts).
 *
 * - `since` is an inclusive (>=) filter on `updated_at`.
 * - `order: "asc"` serves by (updated_at, id); `order: "unsorted"` by a fixed shuffled position (stable
 *   across requests and changes, not sorted by the cursor).
 * - Pages are keyset-paginated (the token is the key of the last record served), as real APIs do: a
 *   record that changes mid-run moves (asc: to the end) without shifting the others, so nothing is
 *   skipped or served twice because of an offset. The token travels in a Link header (`link`) or in the
 *   body's `next` (`cursor`).
 * - With `updatesPerPage > 0`, every page request first changes that many random records: new content,
 *   `version + 1`, and `updated_at` = now. Each request's changes share one instant (ties), strictly later
 *   than every cursor already in the source, so a change never lands behind what was already served.
 * - With `failRate > 0`, that fraction of page requests (seeded) answers 503 instead, changing nothing.
 * - `onServed(n, last)` is called right after the n-th page of data has been written to the socket
 *   (`last`: the page had no next one).
 * - Records can go and come back (hard deletes): `remove(n)` takes n random records out of the source
 *   (served no more; keyset pages do not shift), `restore(n)` brings n of them back as a new version
 *   (`updated_at` = now, like a change). With `removesPerPage > 0` every page request first removes that
 *   many. `truth()` is what the source has now, `gone()` the last version of each record it no longer has.
 * - `served` (set it to a new Map to start recording): every record version a page carried, by id;
 *   `removed` (a new Set): the ids removed while it is set. The chaos checks of `write: replace` and
 *   `deletes` read what one run could have seen from them.
 *
 * Everything is seeded: the same seed gives the same records and the same changes.
 */
import { createServer } from "node:http"
import { prng } from "./demo-server.mjs"

export { prng }

const compareKey = (a, b) => a.ms - b.ms || (a.record.id < b.record.id ? -1 : a.record.id > b.record.id ? 1 : 0)

const sendJson = (res, body, status = 200, headers = {}) => {
  res.writeHead(status, { "content-type": "application/json", ...headers })
  res.end(JSON.stringify(body))
}

/**
 * @param {{ count: number, order: "asc" | "unsorted", pagination: "link" | "cursor", pageSize: number, seed: number }} options
 */
export const startTruthApi = async (options) => {
  const random = prng(options.seed)
  // 503s draw from their own sequence, so that turning them on does not change the records' changes
  const failRandom = prng(options.seed ^ 0x503)
  const base = Date.UTC(2024, 0, 1)
  const entries = []
  // positions for the unsorted order: a seeded shuffle of 0..count-1
  const positions = Array.from({ length: options.count }, (_, i) => i)
  for (let i = positions.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[positions[i], positions[j]] = [positions[j], positions[i]]
  }
  let tick = 0
  for (let i = 0; i < options.count; i++) {
    // runs of 1 to 4 records share an updated_at: ties on the cursor, also across page boundaries
    if (i === 0 || random() < 0.4) tick++
    const ms = base + tick * 1000
    entries.push({
      record: { id: `t${String(i).padStart(6, "0")}`, name: `record ${i}`, amount: i % 1000, version: 1, updated_at: new Date(ms).toISOString() },
      ms,
      pos: positions[i],
      present: true
    })
  }
  /** asc: sorted by (ms, id); unsorted: indexed by pos */
  const sorted = [...entries].sort(compareKey)
  const byPos = []
  for (const e of entries) byPos[e.pos] = e
  let lastMs = sorted[sorted.length - 1].ms

  /** first index in `sorted` whose key is > (ms, id), or >= ms when id is undefined */
  const lowerBound = (ms, id) => {
    let lo = 0
    let hi = sorted.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const e = sorted[mid]
      const before = e.ms < ms || (e.ms === ms && id !== undefined && e.record.id <= id)
      if (before) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** takes `e` out of the sorted array (binary search on its key) */
  const unsort = (e) => {
    let i = lowerBound(e.ms, undefined)
    while (sorted[i] !== e) i++
    sorted.splice(i, 1)
  }

  /** n random records out of the source (the last one always stays) */
  const remove = (n) => {
    for (let k = 0; k < n && sorted.length > 1; k++) {
      const e = sorted[Math.floor(random() * sorted.length)]
      unsort(e)
      e.present = false
      api.removed?.add(e.record.id)
    }
  }

  /** n random records the source no longer has back, each as a new version */
  const restore = (n) => {
    const absent = entries.filter((e) => !e.present)
    const back = new Set()
    while (back.size < Math.min(n, absent.length)) back.add(absent[Math.floor(random() * absent.length)])
    const ms = Math.max(Date.now(), lastMs + 1)
    lastMs = ms
    for (const e of back) {
      const version = e.record.version + 1
      e.record = { ...e.record, name: `${e.record.id} back v${version}`, amount: (e.record.amount * 3 + version) % 10_000, version, updated_at: new Date(ms).toISOString() }
      e.ms = ms
      e.present = true
      sorted.splice(lowerBound(ms, e.record.id), 0, e)
    }
  }

  const change = (n) => {
    if (n <= 0) return
    // strictly later than anything in the source: a change never lands behind a served key
    const ms = Math.max(Date.now(), lastMs + 1)
    lastMs = ms
    const changed = new Set()
    // drawn from every record, skipping the removed ones (with none removed, the draws of old)
    while (changed.size < Math.min(n, sorted.length)) {
      const e = entries[Math.floor(random() * entries.length)]
      if (e.present) changed.add(e)
    }
    for (const e of changed) {
      // remove from the sorted array (binary search on the old key), re-insert at the new one
      unsort(e)
      const version = e.record.version + 1
      e.record = {
        ...e.record,
        name: `${e.record.id} v${version}`,
        amount: (e.record.amount * 7 + version) % 10_000,
        version,
        updated_at: new Date(ms).toISOString()
      }
      e.ms = ms
      sorted.splice(lowerBound(ms, e.record.id), 0, e)
    }
  }

  let served = 0
  let firstPageAt = 0
  const api = {
    order: options.order,
    updatesPerPage: 0,
    removesPerPage: 0,
    delayMs: 0,
    failRate: 0,
    onServed: undefined,
    served: undefined,
    removed: undefined
  }

  const page = (url) => {
    const sinceText = url.searchParams.get("since")
    const since = sinceText === null ? Number.NEGATIVE_INFINITY : Date.parse(sinceText)
    const token = url.searchParams.get(options.pagination === "link" ? "after" : "cursor")
    const out = []
    if (options.order === "asc") {
      let i
      if (token === null) i = Number.isFinite(since) ? lowerBound(since, undefined) : 0
      else {
        const [ms, id] = token.split("_")
        i = Math.max(lowerBound(Number(ms), id), Number.isFinite(since) ? lowerBound(since, undefined) : 0)
      }
      for (; i < sorted.length && out.length < options.pageSize; i++) out.push(sorted[i])
      const more = i < sorted.length
      const last = out[out.length - 1]
      return { records: out.map((e) => e.record), next: more && last ? `${last.ms}_${last.record.id}` : undefined }
    }
    let i = token === null ? 0 : Number(token) + 1
    for (; i < byPos.length && out.length < options.pageSize; i++) {
      const e = byPos[i]
      if (e.present && e.ms >= since) out.push(e)
    }
    // more only if a later position still matches the filter
    let more = false
    for (let j = i; j < byPos.length; j++) {
      if (byPos[j].present && byPos[j].ms >= since) {
        more = true
        break
      }
    }
    const last = out[out.length - 1]
    return { records: out.map((e) => e.record), next: more && last ? String(last.pos) : undefined }
  }

  const handle = async (res, url) => {
    if (url.pathname !== "/records") return sendJson(res, { error: "not found" }, 404)
    const first = url.searchParams.get(options.pagination === "link" ? "after" : "cursor") === null
    if (first) firstPageAt = Date.now()
    if (api.delayMs > 0) await new Promise((r) => setTimeout(r, api.delayMs))
    if (api.failRate > 0 && failRandom() < api.failRate) return sendJson(res, { error: "try again" }, 503)
    change(api.updatesPerPage)
    remove(api.removesPerPage)
    const { next, records } = page(url)
    if (api.served !== undefined) {
      for (const r of records) {
        const versions = api.served.get(r.id)
        if (versions === undefined) api.served.set(r.id, [r])
        else versions.push(r)
      }
    }
    served++
    const n = served
    res.once("finish", () => api.onServed?.(n, next === undefined))
    if (options.pagination === "link") {
      const headers = {}
      if (next !== undefined) {
        const link = new URL(url)
        link.searchParams.set("after", next)
        headers.link = `<${link.pathname}${link.search}>; rel="next"`
      }
      return sendJson(res, { data: records }, 200, headers)
    }
    return sendJson(res, { data: records, next: next ?? null })
  }

  const requests = []
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1")
    requests.push({ method: req.method ?? "GET", url, headers: req.headers })
    handle(res, url).catch((e) => {
      res.statusCode = 500
      res.end(String(e))
    })
  })
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address()

  return Object.assign(api, {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
    pagesServed: () => served,
    lastFirstPageAt: () => firstPageAt,
    change,
    remove,
    restore,
    truth: () => new Map(entries.filter((e) => e.present).map((e) => [e.record.id, e.record])),
    gone: () => new Map(entries.filter((e) => !e.present).map((e) => [e.record.id, e.record])),
    /** the greatest cursor of a record the source has (with no removals: of any change) */
    maxCursor: () => new Date(sorted[sorted.length - 1].ms).toISOString(),
    countSince: (since) => (since === undefined ? sorted.length : sorted.length - lowerBound(Date.parse(since), undefined))
  })
}

/**
 * One stream of a truth source in a Ferry config (YAML, indented as an item of `streams:`): link
 * pagination for `asc`, a body cursor for `unsorted` with a lookback of `lookbackMs`, the records' columns.
 * Shared by the crash suite and the chaos script, which must test the same shape of stream. The chaos
 * script's other streams: `incremental: false` (every run reads everything), `write`, `deletes` (the
 * YAML of `target.deletes`), `fullEvery`.
 */
export const truthStreamYaml = ({ deletes, fullEvery, incremental = true, lookbackMs, name, order, retry, url, write }) => `
  - name: ${name}
    source:
      url: ${url}/records
      records: data
      pagination: ${order === "asc" ? "{ type: link }" : "{ type: cursor, nextPath: next, param: cursor }"}
${incremental ? `      incremental:
        cursorField: updated_at
        param: since
        initial: "2000-01-01T00:00:00Z"
        order: ${order}
        ${order === "unsorted" ? `lookback: ${lookbackMs} millis` : ""}
` : ""}      retry: ${retry}
    target:
      table: ${name}
      primaryKey: [id]
      columns: { id: text, name: text, amount: numeric, version: integer, updated_at: timestamptz }
${write === undefined ? "" : `      write: ${write}\n`}${deletes === undefined ? "" : `      deletes: ${deletes}\n`}${fullEvery === undefined ? "" : `    fullEvery: ${fullEvery}\n`}`
