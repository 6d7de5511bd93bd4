/**
 * The JSON Schema shipped for editors (ferry.schema.json) is generated from the same Effect Schema
 * that validates the config: it must be current, accept the example config and reject broken ones.
 */
import { describe, expect, it } from "@effect/vitest"
import { Ajv } from "ajv"
import { readFileSync } from "node:fs"
import YAML from "yaml"
import * as Config from "../src/config/Config.js"

const shipped = JSON.parse(readFileSync(new URL("../ferry.schema.json", import.meta.url), "utf8"))
const example = YAML.parse(readFileSync(new URL("../ferry.config.yaml", import.meta.url), "utf8"))

const validate = new Ajv({ strict: false, allErrors: true }).compile(shipped)

describe("ferry.schema.json", () => {
  it("is the schema `ferry schema` prints today (regenerate: node bin/ferry.mjs schema > ferry.schema.json)", () => {
    expect(shipped).toEqual(JSON.parse(JSON.stringify(Config.jsonSchema())))
  })

  it("accepts the example config", () => {
    expect(validate(example), JSON.stringify(validate.errors)).toBe(true)
  })

  it.each([
    ["an unknown top-level key", { ...example, extra: true }],
    ["an unknown pagination type", { ...example, streams: [{ ...example.streams[0], source: { ...example.streams[0].source, pagination: { type: "sideways" } } }] }],
    ["a table name that is not an identifier", { ...example, streams: [{ ...example.streams[0], target: { ...example.streams[0].target, table: "orders; drop table x" } }] }],
    ["a stream without a source", { ...example, streams: [{ name: "x", target: { table: "t", primaryKey: ["id"] } }] }],
    ["no streams", { database: {} }]
  ])("rejects %s", (_, config) => {
    expect(validate(config)).toBe(false)
  })
})
