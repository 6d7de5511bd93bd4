/**
 * Issue 13, items 2 and 3, the pure parts: what `extra` keeps (the record minus what the columns
 * read), the new-field tracker (a field reported once; mapped fields, and fields under a new one, not
 * reported; bounded), and the config keys `record` and `extra` (validated, naming the field).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import * as Config from "../src/config/Config.js"
import * as Json from "../src/domain/Json.js"
import { isMapped, mappedTree, unmappedOf } from "../src/domain/Unmapped.js"
import type { TargetSpec } from "../src/domain/StreamSpec.js"
import * as NewFields from "../src/sync/NewFields.js"
import { target } from "./support/streams.js"

const orders: TargetSpec = target({
  table: "orders",
  primaryKey: ["id"],
  columns: [
    { name: "id", type: "text", from: "id" },
    { name: "email", type: "text", from: "customer.email" },
    { name: "address", type: "jsonb", from: "customer.address" },
    { name: "_record", type: "jsonb", from: "" },
    { name: "_extra", type: "jsonb", from: "" }
  ],
  cursorColumn: undefined,
  record: "_record",
  extra: "_extra"
})

describe("Unmapped: what extra keeps", () => {
  const tree = mappedTree(["id", "customer.email", "customer.address"])

  it("drops the fields the columns read, keeps the rest of a partly read object, and arrays whole", () => {
    const record = Json.parse(
      `{"id":"a","customer":{"email":"e","name":"Ann","address":{"city":"X"}},"items":[{"sku":1}],"n":12345678901234567890}`
    ) as Record<string, unknown>
    expect(Json.stringify(unmappedOf(record, tree))).toBe(`{"customer":{"name":"Ann"},"items":[{"sku":1}],"n":12345678901234567890}`)
  })

  it("is undefined when every field is read, and keeps a value whose shape a path cannot enter", () => {
    expect(unmappedOf({ id: "a", customer: { email: "e" } }, tree)).toBeUndefined()
    expect(unmappedOf({ id: "a", customer: "a string" }, tree)).toEqual({ customer: "a string" })
  })

  it("keeps a __proto__ key as a plain key", () => {
    const out = unmappedOf(JSON.parse(`{"id":"a","__proto__":{"x":1}}`), tree)!
    expect(Object.keys(out)).toEqual(["__proto__"])
    expect(JSON.stringify(out)).toBe(`{"__proto__":{"x":1}}`)
  })

  it("a path is mapped when a column reads it or a field it lies in, not its parents", () => {
    expect(isMapped(tree, ["customer", "email"])).toBe(true)
    expect(isMapped(tree, ["customer", "address", "city"])).toBe(true)
    expect(isMapped(tree, ["customer"])).toBe(false)
    expect(isMapped(tree, ["customer", "name"])).toBe(false)
  })

  it("the decoder fills the extra column, and the record column with the record as received", () => {
    const decode = Config.parse(
      `
streams:
  - name: s
    source: { url: "https://api.example.com/s" }
    target:
      table: s
      primaryKey: [id]
      columns: { id: text, email: { type: text, from: customer.email } }
      record: _record
      extra: _extra
`,
      "/x/f.yaml",
      {}
    ).pipe(Effect.runSync).streams[0]!.decode
    const record = Json.parse(`{"id":"a","customer":{"email":"e","vip":true},"big":1234567890123456789}`)
    const row = Either.getOrThrow(decode(record))
    expect(Json.stringify(row.values)).toBe(
      `{"id":"a","email":"e","_record":{"id":"a","customer":{"email":"e","vip":true},"big":1234567890123456789},` +
        `"_extra":{"customer":{"vip":true},"big":1234567890123456789}}`
    )
  })
})

describe("a list that goes to a child table is mapped", () => {
  it("extra leaves it out, and the new-field report does not name it", () => {
    const stream = Config.parse(
      `
streams:
  - name: s
    source: { url: "https://api.example.com/s" }
    target:
      table: s
      primaryKey: [id]
      columns: { id: text }
      extra: _extra
      children:
        - { path: items, table: s_items, primaryKey: [sku], columns: { sku: text } }
`,
      "/x/f.yaml",
      {}
    ).pipe(Effect.runSync).streams[0]!
    const row = Either.getOrThrow(stream.decode({ id: "a", items: [{ sku: "x" }], note: "kept" }))
    expect(row.values._extra).toEqual({ note: "kept" })
    const found = NewFields.make(stream.target, []).observe([{ id: "a", items: [{ sku: "x" }], note: "kept" }])
    expect(found?.reported).toEqual(["note"])
  })
})

describe("NewFields: a field no column maps is reported the first time it is seen", () => {
  it("reports unmapped fields once, the topmost of a new object only, and knows what was stored", () => {
    const tracker = NewFields.make(orders, [])
    const first = tracker.observe([{ id: "a", customer: { email: "e", name: "n", address: { city: "c" } }, meta: { a: 1 } }])
    expect(first).toEqual({ paths: ["meta", "customer.name", "meta.a"], reported: ["meta", "customer.name"] })
    expect(tracker.observe([{ id: "b", customer: { email: "f", name: "m" }, meta: { a: 2 } }])).toBeUndefined()
    // the next run knows the stored paths: only the new one
    const next = NewFields.make(orders, first!.paths)
    expect(next.observe([{ id: "a", customer: { name: "n", email: "e" }, meta: { a: 1, b: 2 } }])).toEqual({
      paths: ["meta.b"],
      reported: ["meta.b"]
    })
  })

  it("goes three levels deep and never into arrays", () => {
    const tracker = NewFields.make(orders, [])
    const found = tracker.observe([{ id: "a", x: { y: { z: { w: 1 } } }, list: [{ k: 1 }] }])
    expect(found?.paths).toEqual(["x", "list", "x.y", "x.y.z"])
  })

  it("keeps at most maxPaths per stream, and says so once", () => {
    const known = Array.from({ length: NewFields.maxPaths - 1 }, (_, i) => `f${i}`)
    const tracker = NewFields.make(orders, known)
    expect(tracker.capNotice()).toBe(false)
    expect(tracker.observe([{ id: "a", new1: 1, new2: 2 }])?.reported).toEqual(["new1"])
    expect(tracker.capNotice()).toBe(true)
    expect(tracker.capNotice()).toBe(false)
    expect(tracker.observe([{ id: "a", new3: 1 }])).toBeUndefined()
  })
})

describe("Config: target.record and target.extra", () => {
  const config = (target: string) => `
streams:
  - name: s
    source: { url: "https://api.example.com/s" }
    target: { table: s, primaryKey: [id], ${target} }
`
  const failure = (target: string) =>
    Effect.runSync(Effect.flip(Config.parse(config(target), "/x/f.yaml", {}))).message

  it("names the field when a role's column is taken or not an identifier", () => {
    expect(failure("columns: { id: text, raw: jsonb }, record: raw")).toBe(
      `streams[0].target.record: "raw" is one of the columns: name a new column`
    )
    expect(failure("columns: { id: text }, record: r, extra: r")).toMatch(/^streams\[0\]\.target\.extra: "r" is already a column/)
    expect(failure("extra: record")).toMatch(/^streams\[0\]\.target\.extra: "record" is already a column/)
    expect(failure("columns: { id: text }, extra: 1x")).toMatch(/^streams\[0\]\.target\.extra: not a valid identifier/)
  })

  it("without columns the record column is `record` (or the name given); with columns, none unless asked", () => {
    const targetOf = (t: string) => Effect.runSync(Config.parse(config(t), "/x/f.yaml", {})).streams[0]!.target
    expect(targetOf("extra: _extra")).toMatchObject({
      record: "record",
      extra: "_extra",
      columns: [{ name: "id" }, { name: "record", type: "jsonb", from: "" }, { name: "_extra", type: "jsonb" }]
    })
    expect(targetOf("record: raw").columns.map((c) => c.name)).toEqual(["id", "raw"])
    expect(targetOf("columns: { id: text }").record).toBeUndefined()
  })
})
