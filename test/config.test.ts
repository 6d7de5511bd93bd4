import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Option, Redacted } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import { assert } from "vitest"
import YAML from "yaml"
import * as Config from "../src/config/Config.js"
import { ConfigError } from "../src/domain/Errors.js"

const env = {
  DATABASE_URL: "postgres://ferry:s3cr3t-pass@db.internal:5432/warehouse",
  ORDERS_TOKEN: "s3cr3t-token",
  SHOP_PASSWORD: "s3cr3t-basic",
  LIMIT: "500",
  INITIAL: "1000",
  EMPTY: ""
}

/** Every key of DESIGN.md's example, and each pagination, auth and incremental style once. */
const fullYaml = `
database:
  url: \${DATABASE_URL}
  schema: analytics
checkpoint: { store: file, path: state/checkpoints.json }
streams:
  - name: orders
    source:
      url: \${API_BASE:-https://api.example.com}/v1/orders
      auth: { type: bearer, token: \${ORDERS_TOKEN} }
      headers: { X-Tenant: acme-s3cr3t-header }
      params: { status: any, note: "$\${literal}" }
      records: data
      pagination: { type: link }
      incremental:
        cursorField: updated_at
        param: updated_since
        initial: "2020-01-01T00:00:00Z"
        lookback: 5 minutes
        order: asc
      timeout: 10 seconds
      retry: { attempts: 3, base: 20 millis, max: 1 seconds }
    target:
      table: orders
      primaryKey: [id]
      columns:
        id: text
        status: TEXT
        amount: decimal
        customer_email: { type: varchar, from: customer.email }
        updated_at: timestamp with time zone
    maxInvalid: 2
  - name: customers
    source:
      url: https://shop.example.com/customers
      auth: { type: basic, username: ferry, password: \${SHOP_PASSWORD} }
      pagination: { type: cursor, nextPath: meta.next, param: cursor }
      incremental: { cursorField: seq, params: { seq: "gt.{cursor}" }, initial: \${INITIAL} }
    target: { table: customers, primaryKey: [id] }
  - name: invoices
    source:
      url: https://billing.example.com/invoices
      auth: { type: header, name: X-Api-Key, value: s3cr3t-apikey }
      pagination: { type: offset, limit: \${LIMIT} }
      incremental: { cursorField: updated, cursorType: string }
    target: { table: invoices, primaryKey: [id], columns: { id: int8, updated: text } }
  - name: payments
    source:
      url: https://pay.example.com/payments
      auth: { type: query, name: api_key, value: s3cr3t-query }
      pagination: { type: page, size: 50 }
    target: { table: payments, primaryKey: [id] }
  - name: charges
    source:
      url: https://pay.example.com/charges
      pagination: { type: cursor, fromRecord: id, param: starting_after, hasMorePath: has_more }
    target: { table: charges, primaryKey: [id] }
  - name: refunds
    source: { url: "\${REFUNDS_URL:-https://pay.example.com/refunds}", pagination: { type: none } }
    target: { table: refunds, primaryKey: [id] }
`

const parse = (text: string, file: string, vars: Record<string, string | undefined> = env) =>
  Config.parse(text, file, vars)

/** The shape without functions, for comparing a YAML and a JSON load. */
const comparable = (config: Config.FerryConfigShape) =>
  JSON.parse(JSON.stringify({ ...config, file: undefined, streams: config.streams.map((s) => ({ ...s, decode: undefined })) }))

describe("Config.parse: pagination styles of issue 14", () => {
  const withPagination = (pagination: string) =>
    `streams:\n  - name: a\n    source: { url: "https://x.test/a", pagination: ${pagination} }\n    target: { table: a, primaryKey: [id] }\n`
  it.effect("type: link with nextPath is the body's next URL; without it, the Link header; cursor nextHeader is a third cursor style", () =>
    Effect.gen(function*() {
      const pagination = (text: string) => parse(withPagination(text), "/tmp/c.yaml").pipe(Effect.map((c) => c.streams[0]!.source.pagination))
      expect(yield* pagination("{ type: link, nextPath: links.next }")).toEqual({ _tag: "LinkInBody", nextPath: "links.next" })
      expect(yield* pagination("{ type: link, nextPath: _links.next.href }")).toEqual({ _tag: "LinkInBody", nextPath: "_links.next.href" })
      expect(yield* pagination("{ type: link }")).toEqual({ _tag: "Link" })
      expect(yield* pagination("{ type: cursor, nextHeader: X-Next-Cursor, param: cursor }")).toEqual({
        _tag: "CursorHeader",
        nextHeader: "X-Next-Cursor",
        param: "cursor"
      })
      expect(yield* pagination("{ type: cursor, nextPath: meta.next, param: cursor }")).toEqual({
        _tag: "CursorToken",
        nextPath: "meta.next",
        param: "cursor"
      })
    }))
})

describe("Config.parse: numbers past 2^53 keep their digits (issue 10)", () => {
  const config = (initial: string) => `
streams:
  - name: s
    source: { url: "https://api.example.com/s", incremental: { cursorField: seq, param: since, initial: ${initial} } }
    target: { table: s, primaryKey: [id] }
`
  it.effect("in YAML and in JSON, an unquoted initial cursor is not rounded; a small one is as before", () =>
    Effect.gen(function*() {
      const yaml = yield* parse(config("9007199254740993"), "/x/ferry.config.yaml")
      expect(yaml.streams[0]!.source.incremental?.initial).toBe("9007199254740993")
      expect(yaml.streams[0]!.source.incremental?.cursorType).toBe("number")
      const json = yield* parse(
        JSON.stringify(YAML.parse(config("0"))).replace(`"initial":0`, `"initial":12345678901234567890123`),
        "/x/ferry.config.json"
      )
      expect(json.streams[0]!.source.incremental?.initial).toBe("12345678901234567890123")
      const small = yield* parse(config("42").replace("initial: 42", "initial: 42, order: asc") + "    maxInvalid: 3\n", "/x/f.yaml")
      expect(small.streams[0]!.source.incremental?.initial).toBe("42")
      expect(small.streams[0]!.maxInvalid).toBe(3)
    }))
})

describe("Config.parse: a valid config", () => {
  it.effect("maps every key of the design's example to runtime values", () =>
    Effect.gen(function*() {
      const config = yield* parse(fullYaml, "/etc/ferry/ferry.config.yaml")
      expect(config.file).toBe("/etc/ferry/ferry.config.yaml")
      expect(Option.map(config.database.url, Redacted.value)).toEqual(Option.some(env.DATABASE_URL))
      expect(config.database.schema).toBe("analytics")
      // relative to the config file's directory, not to the working directory
      expect(config.checkpoint).toEqual({ store: "file", path: "/etc/ferry/state/checkpoints.json" })
      expect(config.streams.map((s) => s.name)).toEqual(["orders", "customers", "invoices", "payments", "charges", "refunds"])

      const [orders, customers, invoices, payments, charges, refunds] = config.streams
      const source = orders!.source
      expect(source.url).toBe("https://api.example.com/v1/orders")
      expect(source.auth?.type).toBe("bearer")
      expect(source.auth?.type === "bearer" && Redacted.value(source.auth.token)).toBe("s3cr3t-token")
      expect(source.headers).toEqual({ "X-Tenant": "acme-s3cr3t-header" })
      expect(source.params).toEqual({ status: "any", note: "${literal}" })
      expect(source.records).toBe("data")
      expect(source.pagination).toEqual({ _tag: "Link" })
      expect(Duration.toMillis(source.timeout)).toBe(10_000)
      expect(source.retry.attempts).toBe(3)
      expect(Duration.toMillis(source.retry.base)).toBe(20)
      expect(Duration.toMillis(source.retry.max)).toBe(1_000)
      expect(source.incremental?.cursorField).toBe("updated_at")
      expect(source.incremental?.param).toBe("updated_since")
      expect(source.incremental?.initial).toBe("2020-01-01T00:00:00Z")
      expect(Duration.toMillis(source.incremental!.lookback)).toBe(5 * 60_000)
      expect(source.incremental?.order).toBe("asc")
      expect(source.incremental?.cursorType).toBe("timestamp")
      expect(orders!.maxInvalid).toBe(2)
      expect(orders!.target).toEqual({
        schema: "analytics",
        table: "orders",
        primaryKey: ["id"],
        columns: [
          { name: "id", type: "text", from: "id" },
          { name: "status", type: "text", from: "status" },
          { name: "amount", type: "numeric", from: "amount" },
          { name: "customer_email", type: "text", from: "customer.email" },
          { name: "updated_at", type: "timestamptz", from: "updated_at" }
        ],
        cursorColumn: "updated_at"
      })
      const row = orders!.decode({
        id: "o1",
        status: "paid",
        amount: "12.50",
        customer: { email: "a@example.com" },
        updated_at: "2024-05-01T10:00:00Z"
      })
      expect(Either.map(row, (r) => r.values.customer_email)).toEqual(Either.right("a@example.com"))

      expect(customers!.source.auth?.type === "basic" && customers!.source.auth.username).toBe("ferry")
      expect(customers!.source.pagination).toEqual({ _tag: "CursorToken", nextPath: "meta.next", param: "cursor" })
      expect(customers!.source.incremental?.params).toEqual({ seq: "gt.{cursor}" })
      // `${INITIAL}` stays the string "1000"; a numeric initial makes a number cursor
      expect(customers!.source.incremental?.initial).toBe("1000")
      expect(customers!.source.incremental?.cursorType).toBe("number")
      expect(customers!.source.incremental?.order).toBe("unsorted")
      expect(Duration.toMillis(customers!.source.incremental!.lookback)).toBe(0)
      // no columns: primary key + cursor + record jsonb
      expect(customers!.target.columns.map((c) => `${c.name}:${c.type}`)).toEqual(["id:text", "seq:numeric", "record:jsonb"])
      expect(customers!.target.cursorColumn).toBe("seq")

      // `${LIMIT}` is the string "500": the schema makes it the integer
      expect(invoices!.source.pagination).toEqual({ _tag: "Offset", offsetParam: "offset", limitParam: "limit", limit: 500 })
      expect(invoices!.source.incremental?.cursorType).toBe("string")
      expect(invoices!.target.columns).toEqual([{ name: "id", type: "bigint", from: "id" }, {
        name: "updated",
        type: "text",
        from: "updated"
      }])
      expect(invoices!.target.cursorColumn).toBe("updated")
      expect(payments!.source.pagination).toEqual({
        _tag: "Page",
        pageParam: "page",
        sizeParam: "per_page",
        size: 50,
        firstPage: 1
      })
      expect(charges!.source.pagination).toEqual({
        _tag: "CursorFromRecord",
        fromRecord: "id",
        param: "starting_after",
        hasMorePath: "has_more"
      })
      expect(refunds!.source.url).toBe("https://pay.example.com/refunds")

      expect([...config.secrets].sort()).toEqual(
        expect.arrayContaining([
          "s3cr3t-pass",
          "s3cr3t-token",
          "s3cr3t-basic",
          "s3cr3t-apikey",
          "s3cr3t-query",
          "acme-s3cr3t-header"
        ])
      )
      expect(config.secrets).not.toContain("")
    }))

  it.effect("fills every default of a minimal config", () =>
    Effect.gen(function*() {
      const config = yield* parse(
        "streams:\n  - name: items\n    source: { url: http://localhost:8080/items }\n    target: { table: items, primaryKey: [id] }\n",
        "ferry.config.yaml",
        { DATABASE_URL: "" }
      )
      expect(config.file).toBe(nodePath.resolve("ferry.config.yaml"))
      expect(Option.isNone(config.database.url)).toBe(true)
      expect(config.database.schema).toBe("public")
      expect(config.checkpoint).toEqual({ store: "postgres" })
      expect(config.secrets).toEqual([])
      const [items] = config.streams
      expect(items!.source.headers).toEqual({})
      expect(items!.source.params).toEqual({})
      expect(items!.source.auth).toBeUndefined()
      expect(items!.source.incremental).toBeUndefined()
      expect(items!.source.pagination).toEqual({ _tag: "None" })
      expect(Duration.toMillis(items!.source.timeout)).toBe(30_000)
      expect(items!.source.retry.attempts).toBe(6)
      expect(Duration.toMillis(items!.source.retry.base)).toBe(500)
      expect(Duration.toMillis(items!.source.retry.max)).toBe(60_000)
      expect(items!.maxInvalid).toBe(0)
      expect(items!.target.columns.map((c) => c.name)).toEqual(["id", "record"])
      expect(items!.target.cursorColumn).toBeUndefined()
    }))

  it.effect("reads the same config from JSON", () =>
    Effect.gen(function*() {
      // plain YAML cannot read `${X}` inside `{ }`; Ferry can (the test quotes them to get the plain tree)
      const json = JSON.stringify(YAML.parse(fullYaml.replace(/(: )(\$\{[A-Z_]+\})( ?[},])/g, "$1\"$2\"$3")), null, 2)
      expect(json).toContain("\"${ORDERS_TOKEN}\"")
      const fromJson = yield* parse(json, "/etc/ferry/ferry.config.json")
      const fromYaml = yield* parse(fullYaml, "/etc/ferry/ferry.config.yaml")
      expect(fromJson.file).toBe("/etc/ferry/ferry.config.json")
      expect(comparable(fromJson)).toEqual(comparable(fromYaml))
      expect(fromJson.secrets).toEqual(fromYaml.secrets)
    }))

  it.effect("defaults and empty variables: ${VAR:-default} takes the default when VAR is unset or empty", () =>
    Effect.gen(function*() {
      const text = "database: { url: \"${EMPTY}\" }\nstreams:\n" +
        "  - name: a\n    source: { url: \"${BASE:-http://x.test}/${EMPTY:-path}\" }\n    target: { table: a, primaryKey: [id] }\n"
      const config = yield* parse(text, "c.yaml")
      expect(config.streams[0]!.source.url).toBe("http://x.test/path")
      expect(Option.isNone(config.database.url)).toBe(true)
      const other = yield* parse(text, "c.yaml", { BASE: "https://other.test", EMPTY: "" })
      expect(other.streams[0]!.source.url).toBe("https://other.test/path")
    }))
})

describe("Config.parse: ${VAR} inside YAML flow mappings", () => {
  it.effect("a value never goes through the YAML parser, and $${ stays literal", () =>
    Effect.gen(function*() {
      const text = "streams:\n  - { name: a, source: { url: \"http://x.test\", params: { q: ${Q}, r: $${Q}, s: a${Q}b } },\n" +
        "      target: { table: a, primaryKey: [id] } }\n"
      const config = yield* parse(text, "f.yaml", { Q: "x: [1, {y" })
      expect(config.streams[0]!.source.params).toEqual({ q: "x: [1, {y", r: "${Q}", s: "ax: [1, {yb" })
    }))

  it.effect("syntax errors keep their line and column", () =>
    Effect.gen(function*() {
      const text = "database: { url: ${DATABASE_URL}, schema: [ }\n"
      const error = yield* Effect.flip(parse(text, "f.yaml"))
      // the same text with the reference replaced by a plain word of the same length
      const plain = YAML.parseDocument(text.replace("${DATABASE_URL}", "x".repeat(15))).errors[0]!.linePos![0]!
      expect(error.reason).toContain(`at line ${plain.line}, column ${plain.col}:`)
      expect(plain.col).toBeGreaterThan(33)
    }))
})

describe("Config.parse: ${file:PATH} reads a secret file (issue 11)", () => {
  /** a config directory holding these files; the config is parsed as `<dir>/ferry.config.yaml` */
  const withFiles = (files: Record<string, string | Buffer>) => {
    const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), "ferry-secret-files-"))
    for (const [name, content] of Object.entries(files)) {
      fs.mkdirSync(nodePath.dirname(nodePath.join(dir, name)), { recursive: true })
      fs.writeFileSync(nodePath.join(dir, name), content)
    }
    return dir
  }
  const config = (auth: string, extra = "") =>
    `streams:\n  - name: a\n    source: { url: "https://x.test/a${extra}", auth: ${auth}, pagination: { type: none } }\n` +
    `    target: { table: a, primaryKey: [id] }\n`
  const tokenOf = (c: Config.FerryConfigShape) => {
    const auth = c.streams[0]!.source.auth
    return auth?.type === "bearer" ? Redacted.value(auth.token) : undefined
  }

  it.effect("absolute and relative paths (relative to the config file's directory), one trailing newline removed, a secret", () =>
    Effect.gen(function*() {
      const dir = withFiles({ "secrets/token": "file-token-123\n" })
      const absolute = yield* parse(config(`{ type: bearer, token: \${file:${dir}/secrets/token} }`), nodePath.join(dir, "c.yaml"), {})
      expect(tokenOf(absolute)).toBe("file-token-123")
      expect(absolute.secrets).toContain("file-token-123")
      // relative: the config's directory, not the working directory
      const relative = yield* parse(config("{ type: bearer, token: ${file:secrets/token} }"), nodePath.join(dir, "c.yaml"), {})
      expect(tokenOf(relative)).toBe("file-token-123")
      const dotted = yield* parse(config("{ type: bearer, token: ${file:./secrets/token} }"), nodePath.join(dir, "c.yaml"), {})
      expect(tokenOf(dotted)).toBe("file-token-123")
    }))

  it.effect("exactly one trailing line ending is removed; spaces, inner lines and a second newline stay", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [string, string]> = [
        ["tok-plain", "tok-plain"],
        ["tok-lf\n", "tok-lf"],
        ["tok-crlf\r\n", "tok-crlf"],
        ["tok-two\n\n", "tok-two\n"],
        [" tok-spaced \n", " tok-spaced "],
        ["line-one\nline-two\n", "line-one\nline-two"]
      ]
      for (const [content, value] of cases) {
        const dir = withFiles({ token: content })
        const c = yield* parse(config("{ type: bearer, token: ${file:token} }"), nodePath.join(dir, "c.yaml"), {})
        expect(tokenOf(c)).toBe(value)
        expect(c.secrets).toContain(value)
      }
    }))

  it.effect("works inside strings and flow maps, in JSON too; a ${VAR} may stand in the path; $${file:…} is literal", () =>
    Effect.gen(function*() {
      const dir = withFiles({ "creds/token": "path-token-456\n" })
      const text = `streams:\n  - { name: a, source: { url: "https://x.test/bot\${file:creds/token}/a", pagination: { type: none },\n` +
        `      params: { k: \${file:\${CREDS}/token}, d: "\${file:\${NOPE:-creds}/token}", lit: $\${file:creds/token} } },\n` +
        `      target: { table: a, primaryKey: [id] } }\n`
      const c = yield* parse(text, nodePath.join(dir, "c.yaml"), { CREDS: nodePath.join(dir, "creds") })
      expect(c.streams[0]!.source.url).toBe("https://x.test/botpath-token-456/a")
      expect(c.streams[0]!.source.params).toEqual({ k: "path-token-456", d: "path-token-456", lit: "${file:creds/token}" })
      expect(c.secrets).toEqual(["path-token-456"]) // the directory from CREDS is a location, not a secret
      const json = JSON.stringify({
        streams: [{ name: "a", source: { url: "https://x.test/a", auth: { type: "bearer", token: "${file:creds/token}" } }, target: { table: "a", primaryKey: ["id"] } }]
      })
      expect(tokenOf(yield* parse(json, nodePath.join(dir, "c.json"), {}))).toBe("path-token-456")
    }))

  it.effect("${file:-x} is still the variable `file` with a default", () =>
    Effect.gen(function*() {
      const c = yield* parse(config("{ type: bearer, token: ${file:-default-token} }"), "c.yaml", {})
      expect(tokenOf(c)).toBe("default-token")
      expect(tokenOf(yield* parse(config("{ type: bearer, token: ${file:-default-token} }"), "c.yaml", { file: "from-env-token" })))
        .toBe("from-env-token")
    }))

  it.effect("a missing, unreadable, empty, directory, special or binary file is a 78 naming the field and the file, never the content", () =>
    Effect.gen(function*() {
      const dir = withFiles({
        empty: "",
        newline: "\n",
        binary: Buffer.from([0x73, 0x65, 0xff, 0xfe, 0x63]),
        locked: "locked-secret-789\n",
        big: "x".repeat(70 * 1024),
        "sub/x": "y"
      })
      fs.chmodSync(nodePath.join(dir, "locked"), 0o000)
      const root = process.getuid?.() === 0 // root reads any file
      const cases: ReadonlyArray<readonly [string, string | undefined]> = [
        ["absent", `secret file ${nodePath.join(dir, "absent")} does not exist`],
        ["sub/x/y", `secret file ${nodePath.join(dir, "sub/x/y")} does not exist (a part of its path is not a directory)`],
        ["sub", `secret file ${nodePath.join(dir, "sub")} is a directory`],
        ["empty", `secret file ${nodePath.join(dir, "empty")} is empty`],
        ["newline", `secret file ${nodePath.join(dir, "newline")} is empty`],
        ["binary", `secret file ${nodePath.join(dir, "binary")} is not UTF-8 text`],
        ["big", `secret file ${nodePath.join(dir, "big")} is larger than 64 KiB`],
        ["/dev/null", "secret file /dev/null is not a regular file"],
        ["locked", root ? undefined : `secret file ${nodePath.join(dir, "locked")} cannot be read (permission denied)`]
      ]
      for (const [path, reason] of cases) {
        if (reason === undefined) continue
        const error = yield* Effect.flip(parse(config(`{ type: bearer, token: "\${file:${path}}" }`), nodePath.join(dir, "c.yaml"), {}))
        expect(error).toBeInstanceOf(ConfigError)
        expect(error.exitCode).toBe(78)
        expect(error.path).toBe("streams[0].source.auth.token")
        expect(error.reason).toBe(reason)
        expect(error.message).not.toContain("locked-secret")
      }
    }))

  it.effect("an empty path, a ${file:} inside a path and an unset variable in the path are 78s", () =>
    Effect.gen(function*() {
      const dir = withFiles({ token: "nested-token-1\n" })
      const file = nodePath.join(dir, "c.yaml")
      const empty = yield* Effect.flip(parse(config("{ type: bearer, token: \"${file:}\" }"), file, {}))
      expect(empty.message).toBe("streams[0].source.auth.token: ${file:} needs a path")
      const nested = yield* Effect.flip(parse(config("{ type: bearer, token: \"${file:${file:token}}\" }"), file, {}))
      expect(nested.reason).toContain("cannot itself read a file")
      const unset = yield* Effect.flip(parse(config("{ type: bearer, token: \"${file:${CREDENTIALS_DIRECTORY}/token}\" }"), file, {}))
      expect(unset.message).toBe("streams[0].source.auth.token: environment variable CREDENTIALS_DIRECTORY is not set")
    }))

  it.effect("a file's value that a later error would quote is scrubbed from it", () =>
    Effect.gen(function*() {
      const dir = withFiles({ limit: "not-a-number-secret\n" })
      const text = `streams:\n  - name: a\n    source: { url: "https://x.test/a", pagination: { type: offset, limit: "\${file:limit}" } }\n` +
        `    target: { table: a, primaryKey: [id] }\n`
      const error = yield* Effect.flip(parse(text, nodePath.join(dir, "c.yaml"), {}))
      expect(error.exitCode).toBe(78)
      expect(error.message).not.toContain("not-a-number-secret")
    }))
})

// --- broken configs -------------------------------------------------------------------------------------

/** A valid config as data, with a secret in it, to break one field at a time. */
const baseConfig = () => ({
  database: { url: "${DATABASE_URL}" },
  streams: [{
    name: "orders",
    source: {
      url: "https://api.example.com/orders",
      auth: { type: "bearer", token: "${ORDERS_TOKEN}" },
      headers: { "X-Secret": "s3cr3t-header" },
      incremental: { cursorField: "updated_at", param: "since" },
      pagination: { type: "link" } as Record<string, unknown>
    } as Record<string, unknown>,
    target: {
      table: "orders",
      primaryKey: ["id"],
      columns: { id: "text", updated_at: "timestamptz" } as Record<string, unknown>
    } as Record<string, unknown>,
    maxInvalid: 0 as unknown
  }] as Array<Record<string, any>>
} as Record<string, any>)

const broken = (change: (c: ReturnType<typeof baseConfig>) => void, format: "yaml" | "json" = "yaml") => {
  const config = baseConfig()
  change(config)
  return format === "json" ? JSON.stringify(config, null, 2) : YAML.stringify(config)
}
const stream0 = (c: ReturnType<typeof baseConfig>) => c.streams[0]!

interface Case {
  readonly name: string
  readonly text: string
  readonly file?: string
  readonly path: string
  /** a piece the reason must hold */
  readonly says: string
}

const cases: ReadonlyArray<Case> = [
  { name: "YAML syntax error", text: "streams:\n  - name: a\n   source: 1\n", path: "", says: "line 3, column" },
  { name: "YAML duplicate key", text: broken(() => {}) + "database: {}\n", path: "", says: "line" },
  {
    name: "YAML error next to a secret",
    text: "streams:\n  - token: \"s3cr3t-token\n",
    path: "",
    says: "invalid YAML"
  },
  {
    name: "JSON syntax error (trailing comma)",
    text: "{\n  \"streams\": [],\n}",
    file: "ferry.config.json",
    path: "",
    says: "line 3, column 1"
  },
  {
    name: "JSON bad token next to a secret (V8 gives no position)",
    text: "{\n  \"database\": {\"url\": s3cr3t-token}\n}",
    file: "ferry.config.json",
    path: "",
    says: "line 2, column 23: Unexpected token 's'"
  },
  {
    name: "JSON error V8 places",
    text: "{\n  \"database\": {\"url\": \"s3cr3t-token\" xyz}\n}",
    file: "ferry.config.json",
    path: "",
    says: "line 2, column 38: Expected ',' or '}'"
  },
  { name: "empty file", text: "", path: "", says: "expected a mapping with a `streams` list" },
  { name: "top level is a list", text: "- a\n- b\n", path: "", says: "expected a mapping with a `streams` list" },
  { name: "unknown key at top level", text: broken((c) => (c.foo = 1)), path: "foo", says: "unknown key \"foo\"" },
  { name: "unknown key in source", text: broken((c) => (stream0(c).source.foo = 1)), path: "streams[0].source.foo", says: "unknown key \"foo\"" },
  {
    name: "unknown key in auth",
    text: broken((c) => (stream0(c).source.auth = { type: "bearer", token: "${ORDERS_TOKEN}", tokn: "x" })),
    path: "streams[0].source.auth.tokn",
    says: "unknown key"
  },
  {
    name: "unknown key in JSON",
    text: broken((c) => (stream0(c).batchSize = 10), "json"),
    file: "f.json",
    path: "streams[0].batchSize",
    says: "unknown key"
  },
  {
    name: "__proto__ key",
    text: "__proto__: { streams: [] }\n" + broken(() => {}),
    path: "__proto__",
    says: "\"__proto__\" cannot be used as a name"
  },
  { name: "streams missing", text: broken((c) => delete c.streams), path: "streams", says: "required" },
  { name: "streams empty", text: broken((c) => (c.streams = [])), path: "streams", says: "at least one stream" },
  { name: "streams not a list", text: broken((c) => (c.streams = { orders: {} })), path: "streams", says: "expected a list" },
  { name: "stream name missing", text: broken((c) => delete stream0(c).name), path: "streams[0].name", says: "required" },
  { name: "url is a number", text: broken((c) => (stream0(c).source.url = 42)), path: "streams[0].source.url", says: "expected a string" },
  { name: "url is not http", text: broken((c) => (stream0(c).source.url = "ftp://x.test/a")), path: "streams[0].source.url", says: "http" },
  {
    name: "url from a secret variable",
    text: broken((c) => (stream0(c).source.url = "${ORDERS_TOKEN}")),
    path: "streams[0].source.url",
    says: "http"
  },
  { name: "bad duration", text: broken((c) => (stream0(c).source.timeout = "30 secs")), path: "streams[0].source.timeout", says: "duration like \"30 seconds\"" },
  {
    name: "negative duration",
    text: broken((c) => (stream0(c).source.incremental.lookback = "-5 minutes")),
    path: "streams[0].source.incremental.lookback",
    says: "duration"
  },
  {
    name: "duration of the wrong type",
    text: broken((c) => (stream0(c).source.retry = { base: true })),
    path: "streams[0].source.retry.base",
    says: "duration"
  },
  {
    name: "missing environment variable",
    text: broken((c) => (stream0(c).source.auth = { type: "bearer", token: "${MISSING_TOKEN}" })),
    path: "streams[0].source.auth.token",
    says: "environment variable MISSING_TOKEN is not set"
  },
  {
    name: "unterminated reference",
    text: broken((c) => (stream0(c).source.params = { q: "${ORDERS_TOKEN" })),
    path: "streams[0].source.params.q",
    says: "closing"
  },
  { name: "empty reference", text: broken((c) => (stream0(c).target.table = "${}")), path: "streams[0].target.table", says: "${NAME}" },
  {
    name: "duplicate stream name",
    text: broken((c) => c.streams.push(structuredClone(stream0(c)))),
    path: "streams[1].name",
    says: "duplicate stream name \"orders\""
  },
  {
    name: "identifier with SQL in it",
    text: broken((c) => (stream0(c).target.table = "orders; drop table x")),
    path: "streams[0].target.table",
    says: "not a valid identifier"
  },
  { name: "identifier with a quote", text: broken((c) => (stream0(c).name = "a\"b")), path: "streams[0].name", says: "not a valid identifier" },
  {
    name: "identifier too long",
    text: broken((c) => (c.database.schema = "s".repeat(64))),
    path: "database.schema",
    says: "at most 63 characters"
  },
  {
    name: "column name not an identifier",
    text: broken((c) => (stream0(c).target.columns["a b"] = "text")),
    path: "streams[0].target.columns[\"a b\"]",
    says: "invalid key \"a b\": expected a PostgreSQL identifier"
  },
  {
    name: "unsupported column type",
    text: broken((c) => (stream0(c).target.columns.amount = "money")),
    path: "streams[0].target.columns.amount",
    says: "one of text, integer"
  },
  {
    name: "column type named like an Object property",
    text: broken((c) => (stream0(c).target.columns.amount = "constructor")),
    path: "streams[0].target.columns.amount",
    says: "column type"
  },
  {
    name: "unsupported column type in the long form",
    text: broken((c) => (stream0(c).target.columns.amount = { type: "varchar2", from: "a.b" })),
    path: "streams[0].target.columns.amount.type",
    says: "column type"
  },
  {
    name: "bad column path",
    text: broken((c) => (stream0(c).target.columns.amount = { type: "numeric", from: "a..b" })),
    path: "streams[0].target.columns.amount.from",
    says: "dotted path"
  },
  {
    name: "unknown pagination type",
    text: broken((c) => (stream0(c).source.pagination = { type: "next" })),
    path: "streams[0].source.pagination.type",
    says: "expected one of none, link, cursor, offset, page"
  },
  {
    name: "cursor with nextPath and fromRecord",
    text: broken((c) => (stream0(c).source.pagination = { type: "cursor", param: "c", nextPath: "next", fromRecord: "id" })),
    path: "streams[0].source.pagination",
    says: "exactly one of nextPath"
  },
  {
    name: "cursor with neither",
    text: broken((c) => (stream0(c).source.pagination = { type: "cursor", param: "c" })),
    path: "streams[0].source.pagination",
    says: "exactly one of nextPath"
  },
  {
    name: "cursor with nextPath and nextHeader",
    text: broken((c) => (stream0(c).source.pagination = { type: "cursor", param: "c", nextPath: "next", nextHeader: "X-Next" })),
    path: "streams[0].source.pagination",
    says: "exactly one of nextPath (token in the body), fromRecord (field of the last record) or nextHeader"
  },
  {
    name: "cursor with fromRecord and nextHeader",
    text: broken((c) => (stream0(c).source.pagination = { type: "cursor", param: "c", fromRecord: "id", nextHeader: "X-Next" })),
    path: "streams[0].source.pagination",
    says: "exactly one of nextPath"
  },
  {
    name: "hasMorePath with nextHeader",
    text: broken((c) => (stream0(c).source.pagination = { type: "cursor", param: "c", nextHeader: "X-Next", hasMorePath: "more" })),
    path: "streams[0].source.pagination.hasMorePath",
    says: "only used with nextPath or fromRecord"
  },
  {
    name: "nextHeader not a header name",
    text: broken((c) => (stream0(c).source.pagination = { type: "cursor", param: "c", nextHeader: "X Next" })),
    path: "streams[0].source.pagination.nextHeader",
    says: "not a valid HTTP header name"
  },
  {
    name: "nextHeader without param",
    text: broken((c) => (stream0(c).source.pagination = { type: "cursor", nextHeader: "X-Next" })),
    path: "streams[0].source.pagination.param",
    says: "is required"
  },
  {
    name: "link nextPath not a dotted path",
    text: broken((c) => (stream0(c).source.pagination = { type: "link", nextPath: "links..next" })),
    path: "streams[0].source.pagination.nextPath",
    says: "dotted path"
  },
  {
    name: "link with a cursor's key",
    text: broken((c) => (stream0(c).source.pagination = { type: "link", nextPath: "links.next", param: "p" })),
    path: "streams[0].source.pagination.param",
    says: "unknown key \"param\" (expected one of type, nextPath)"
  },
  {
    name: "offset limit 0",
    text: broken((c) => (stream0(c).source.pagination = { type: "offset", limit: 0 })),
    path: "streams[0].source.pagination.limit",
    says: ">= 1"
  },
  {
    name: "params template without {cursor}",
    text: broken((c) => (stream0(c).source.incremental = { cursorField: "updated_at", params: { updated_at: "gte.now" } })),
    path: "streams[0].source.incremental.params.updated_at",
    says: "{cursor}"
  },
  {
    name: "param and params",
    text: broken((c) => (stream0(c).source.incremental.params = { u: "gte.{cursor}" })),
    path: "streams[0].source.incremental",
    says: "not both"
  },
  {
    name: "unknown order",
    text: broken((c) => (stream0(c).source.incremental.order = "desc")),
    path: "streams[0].source.incremental.order",
    says: "expected one of asc, unsorted"
  },
  {
    name: "unknown cursorType",
    text: broken((c) => (stream0(c).source.incremental.cursorType = "date")),
    path: "streams[0].source.incremental.cursorType",
    says: "timestamp, number, string"
  },
  { name: "primaryKey empty", text: broken((c) => (stream0(c).target.primaryKey = [])), path: "streams[0].target.primaryKey", says: "at least one" },
  {
    name: "primaryKey not a column",
    text: broken((c) => (stream0(c).target.primaryKey = ["id", "order_id"])),
    path: "streams[0].target.primaryKey[1]",
    says: "\"order_id\" is not one of the columns"
  },
  {
    name: "no column for the cursor field",
    text: broken((c) => delete stream0(c).target.columns.updated_at),
    path: "streams[0].target.columns",
    says: "cursor field \"updated_at\""
  },
  {
    name: "default columns would need a bad name",
    text: broken((c) => {
      delete stream0(c).target.columns
      stream0(c).source.incremental.cursorField = "meta.updated-at"
    }),
    path: "streams[0].target",
    says: "meta_updated-at"
  },
  {
    name: "database url of another scheme",
    text: broken((c) => (c.database.url = "mysql://ferry:s3cr3t-pass@db/x")),
    path: "database.url",
    says: "postgres://"
  },
  { name: "maxInvalid negative", text: broken((c) => (stream0(c).maxInvalid = -1)), path: "streams[0].maxInvalid", says: ">= 0" },
  { name: "maxInvalid fractional", text: broken((c) => (stream0(c).maxInvalid = "1.5")), path: "streams[0].maxInvalid", says: "whole number" },
  { name: "retry attempts 0", text: broken((c) => (stream0(c).source.retry = { attempts: 0 })), path: "streams[0].source.retry.attempts", says: ">= 1" },
  {
    name: "unknown checkpoint store",
    text: broken((c) => (c.checkpoint = { store: "redis" })),
    path: "checkpoint.store",
    says: "expected one of postgres, file"
  },
  {
    name: "unknown auth type",
    text: broken((c) => (stream0(c).source.auth = { type: "oauth", token: "${ORDERS_TOKEN}" })),
    path: "streams[0].source.auth.type",
    says: "expected one of bearer, basic, header, query"
  },
  {
    name: "token of the wrong type",
    text: broken((c) => (stream0(c).source.auth = { type: "bearer", token: ["s3cr3t-token"] })),
    path: "streams[0].source.auth.token",
    says: "expected a string"
  },
  { name: "lease too short", text: broken((c) => (c.lease = "1 second")), path: "lease", says: "expected a duration from 2 seconds to 1 hour" },
  { name: "lease too long", text: broken((c) => (c.lease = "2 hours")), path: "lease", says: "expected a duration from 2 seconds to 1 hour" },
  { name: "lease not a duration", text: broken((c) => (c.lease = "soon")), path: "lease", says: "expected a duration" },
  {
    name: "bad header name",
    text: broken((c) => (stream0(c).source.headers = { "X Secret": "s3cr3t-header" })),
    path: "streams[0].source.headers[\"X Secret\"]",
    says: "expected an HTTP header name"
  },
  {
    name: "schedule: not five fields",
    text: broken((c) => (stream0(c).schedule = "@hourly")),
    path: "streams[0].schedule",
    says: `stream "orders": not a cron schedule: expected 5 fields`
  },
  {
    name: "schedule: an hour out of range",
    text: broken((c) => (stream0(c).schedule = "0 24 * * *")),
    path: "streams[0].schedule",
    says: `hour field: "24" is not in 0-23`
  },
  {
    name: "schedule: a backwards range",
    text: broken((c) => (stream0(c).schedule = "0 0 * * FRI-MON")),
    path: "streams[0].schedule",
    says: `day-of-week field: the range "FRI-MON" runs backwards`
  },
  {
    name: "schedule: a day no month of it has",
    text: broken((c) => (stream0(c).schedule = "0 0 30,31 2 *")),
    path: "streams[0].schedule",
    says: `day-of-month 30,31 never falls in month 2: the schedule would never run`
  },
  {
    name: "schedule: the 31st of months of 30 days",
    text: broken((c) => (stream0(c).schedule = "0 0 31 APR,JUN,SEP,NOV *")),
    path: "streams[0].schedule",
    says: `never falls in month APR,JUN,SEP,NOV`
  }
]

describe("Config.parse: schedule", () => {
  it.effect.each(["*/15 * * * *", "0 3 * * MON-FRI", "5,35 8-18/2 1 JAN,jul 0", "0 0 * * 7", "0 0 29 2 *", "0 0 31 2 MON", "0 0 28-31 */2 *"])("accepts %s, as schedules[name]", (cron) =>
    Effect.gen(function*() {
      const config = yield* parse(broken((c) => (stream0(c).schedule = cron)), "ferry.config.yaml")
      expect(config.schedules).toEqual(new Map([["orders", cron]]))
    }))
})

describe("Config.parse: lease", () => {
  it.effect("30 seconds unless `lease:` says otherwise (a duration, as the other keys)", () =>
    Effect.gen(function*() {
      expect(Duration.toMillis((yield* parse(broken(() => {}), "ferry.config.yaml")).lease)).toBe(30_000)
      expect(Duration.toMillis((yield* parse(broken((c) => (c.lease = "5 seconds")), "ferry.config.yaml")).lease)).toBe(5_000)
      expect(Duration.toMillis((yield* parse(broken((c) => (c.lease = 2000)), "ferry.config.yaml")).lease)).toBe(2_000)
    }))
})

describe("Config.parse: broken configs", () => {
  it("has a corpus of at least 35 broken configs", () => {
    expect(cases.length).toBeGreaterThanOrEqual(35)
  })

  it.effect.each(cases)("$name", (c) =>
    Effect.gen(function*() {
      const result = yield* Effect.either(parse(c.text, c.file ?? "ferry.config.yaml"))
      // a plain assertion: printing an accepted config (functions, Redacted) as a diff is slow
      assert(Either.isLeft(result), "the broken config was accepted")
      const error = result.left
      expect(error).toBeInstanceOf(ConfigError)
      expect(error._tag).toBe("ConfigError")
      expect(error.exitCode).toBe(78)
      expect(error.path).toBe(c.path)
      expect(error.reason).toContain(c.says)
      expect(error.message.split("\n")).toHaveLength(1)
      expect(error.message).not.toMatch(/s3cr3t/)
    }))
})

// --- locating and loading -------------------------------------------------------------------------------

const minimal = (table: string) =>
  `streams:\n  - name: ${table}\n    source: { url: "https://x.test/${table}" }\n    target: { table: ${table}, primaryKey: [id] }\n`

describe("Config.locate and Config.load", () => {
  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), "ferry-config-"))
  const write = (name: string, text: string) => {
    fs.mkdirSync(nodePath.dirname(nodePath.join(dir, name)), { recursive: true })
    fs.writeFileSync(nodePath.join(dir, name), text)
  }
  write("ferry.config.yaml", minimal("from_yaml"))
  write("ferry.config.yml", minimal("from_yml"))
  write("ferry.config.json", JSON.stringify(YAML.parse(minimal("from_json"))))
  write("env.yaml", minimal("from_env"))
  write("given.yaml", minimal("from_path"))
  write("sub/checkpointed.yaml", minimal("sub") + "checkpoint: { store: file }\n")

  it.effect("path wins over FERRY_CONFIG, which wins over ./ferry.config.yaml|yml|json", () =>
    Effect.gen(function*() {
      const fromEnv = { FERRY_CONFIG: "env.yaml" }
      expect(yield* Config.locate({ path: "given.yaml", env: fromEnv, cwd: dir })).toBe(nodePath.join(dir, "given.yaml"))
      expect(yield* Config.locate({ env: fromEnv, cwd: dir })).toBe(nodePath.join(dir, "env.yaml"))
      expect(yield* Config.locate({ env: { FERRY_CONFIG: "" }, cwd: dir })).toBe(nodePath.join(dir, "ferry.config.yaml"))
      const load = (options: Config.LoadOptions) =>
        Effect.map(Config.load(options), (config) => config.streams[0]!.name)
      expect(yield* load({ path: "given.yaml", env: fromEnv, cwd: dir })).toBe("from_path")
      expect(yield* load({ env: fromEnv, cwd: dir })).toBe("from_env")
      expect(yield* load({ env: {}, cwd: dir })).toBe("from_yaml")
    }))

  it.effect("then .yml, then .json", () =>
    Effect.gen(function*() {
      const only = fs.mkdtempSync(nodePath.join(os.tmpdir(), "ferry-config-"))
      fs.writeFileSync(nodePath.join(only, "ferry.config.json"), "{}")
      expect(yield* Config.locate({ env: {}, cwd: only })).toBe(nodePath.join(only, "ferry.config.json"))
      fs.writeFileSync(nodePath.join(only, "ferry.config.yml"), "")
      expect(yield* Config.locate({ env: {}, cwd: only })).toBe(nodePath.join(only, "ferry.config.yml"))
      fs.rmSync(only, { recursive: true })
    }))

  it.effect("names what it looked for when nothing is there", () =>
    Effect.gen(function*() {
      const empty = fs.mkdtempSync(nodePath.join(os.tmpdir(), "ferry-config-"))
      const none = yield* Effect.flip(Config.locate({ env: {}, cwd: empty }))
      expect(none).toBeInstanceOf(ConfigError)
      expect(none.message).toContain("ferry.config.yaml, ferry.config.yml, ferry.config.json")
      expect(none.message).toContain(empty)
      const missing = yield* Effect.flip(Config.locate({ env: { FERRY_CONFIG: "nope.yaml" }, cwd: empty }))
      expect(missing.message).toContain(nodePath.join(empty, "nope.yaml"))
      expect(missing.message).toContain("FERRY_CONFIG")
      fs.rmSync(empty, { recursive: true })
    }))

  it.effect("resolves the file checkpoint path against the config file's directory", () =>
    Effect.gen(function*() {
      const config = yield* Config.load({ path: nodePath.join(dir, "sub/checkpointed.yaml"), env: {}, cwd: os.tmpdir() })
      expect(config.file).toBe(nodePath.join(dir, "sub/checkpointed.yaml"))
      expect(config.checkpoint).toEqual({ store: "file", path: nodePath.join(dir, "sub/.ferry/checkpoints.json") })
    }))

  it.effect("layer provides FerryConfig and fails with the ConfigError", () =>
    Effect.gen(function*() {
      const config = yield* Effect.provide(Config.FerryConfig, Config.layer({ env: {}, cwd: dir }))
      expect(config.streams[0]!.name).toBe("from_yaml")
      const error = yield* Effect.flip(Effect.provide(Config.FerryConfig, Config.layer({ path: "absent.yaml", env: {}, cwd: dir })))
      expect(error).toBeInstanceOf(ConfigError)
    }))
})

describe("Config.jsonSchema", () => {
  it("describes the file format", () => {
    const schema = Config.jsonSchema() as {
      properties: Record<string, { items?: { properties: Record<string, unknown> } }>
      additionalProperties: unknown
    }
    expect(typeof schema).toBe("object")
    expect(Object.keys(schema.properties).sort()).toEqual(["checkpoint", "concurrency", "database", "lease", "streams"])
    expect(Object.keys(schema.properties.streams!.items!.properties).sort()).toEqual(["fullEvery", "maxAge", "maxInvalid", "name", "parent", "schedule", "source", "target"])
    expect(schema.additionalProperties).toBe(false)
  })

  it("lets `${VAR}` through where a pattern applies, since editors see the file before interpolation", () => {
    const stream = (Config.jsonSchema() as any).properties.streams.items.properties
    const url = new RegExp(stream.source.properties.url.pattern)
    expect(url.test("https://api.example.com/v1")).toBe(true)
    expect(url.test("${API_URL:-http://127.0.0.1:8787}/v1/orders")).toBe(true)
    expect(url.test("ftp://example.com")).toBe(false)
    const table = new RegExp(stream.target.properties.table.pattern)
    expect([table.test("orders"), table.test("${TABLE}"), table.test("orders; drop table x")]).toEqual([true, true, false])
    const timeout = new RegExp(stream.source.properties.timeout.anyOf[0].pattern)
    expect([timeout.test("30 seconds"), timeout.test("${TIMEOUT}"), timeout.test("30 secs")]).toEqual([true, true, false])
    const maxInvalid = new RegExp(stream.maxInvalid.anyOf[1].pattern)
    expect([maxInvalid.test("12"), maxInvalid.test("${MAX_INVALID}"), maxInvalid.test("twelve")]).toEqual([true, true, false])
  })
})
