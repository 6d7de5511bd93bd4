/**
 * Issue 14, item 4, through the real bin and a real database (server, or embedded without
 * FERRY_TEST_DATABASE_URL): `graphql` sources against a real GraphQL API (`support/graphql.ts`:
 * the reference implementation behind graphql-http) and a `method: POST` REST source.
 * - Relay cursor pagination in the variables, `{cursor}` in the variables across two runs (the
 *   second sends the checkpoint, as an Int: a string would be refused by the server's validation);
 * - offset pagination in the variables;
 * - `errors` in a 200 response: exit 69 with the first message, and without the token it quoted;
 * - graphql with a body: 78 naming the field, nothing requested;
 * - a POST body's `{cursor}` and a cursor `in: body`, across two runs.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "@effect/vitest"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { type CliResult, configDir, ferry, summaries } from "./support/cli.js"
import { type GraphQLServer, startGraphQL } from "./support/graphql.js"
import { json, startServer, type TestServer } from "./support/http.js"
import { fileDatabase } from "./support/pg.js"
import { expectNoSecrets, ferryTablesText } from "./support/secrets.js"

const TOKEN = "gql-T0ken-9f3b2c71"
const db = fileDatabase("ferry_graphql")
let api: GraphQLServer
let rest: TestServer
/** the REST API's records, and the JSON bodies it was sent */
const items: Array<{ id: string; updated: number }> = []
const bodies: Array<any> = []

beforeAll(async () => {
  api = await startGraphQL(TOKEN)
  rest = await startServer(async (req, res) => {
    let text = ""
    for await (const chunk of req) text += chunk
    const body = JSON.parse(text)
    bodies.push(body)
    // `updated_after` must be a number, as this API's filter wants
    if (body.filter.updated_after !== null && typeof body.filter.updated_after !== "number") return json(res, { error: "bad filter" }, 400)
    const matching = items.filter((i) => body.filter.updated_after === null || i.updated >= body.filter.updated_after)
    const start = body.after === undefined ? 0 : matching.findIndex((i) => i.id === body.after) + 1
    const page = matching.slice(start, start + 2)
    json(res, { results: page, next: start + 2 < matching.length ? page.at(-1)!.id : null })
  })
})

afterAll(async () => {
  await api?.close()
  await rest?.close()
})

const ordersQuery = "query($first: Int!, $after: String, $since: Int) { " +
  "orders(first: $first, after: $after, updatedAfter: $since) { nodes { id total updatedAt } pageInfo { endCursor hasNextPage } } }"

const run = (name: string, source: string, columns = "{ id: text, total: integer, updatedAt: bigint }"): Promise<CliResult> =>
  ferry(["run"], {
    env: { DATABASE_URL: db.url, TOKEN },
    cwd: configDir(`
database: { url: "\${DATABASE_URL}" }
streams:
  - name: ${name}
    source:
      url: ${api.url}/graphql
      auth: { type: bearer, token: "\${TOKEN}" }
      retry: { attempts: 1 }
${source.trim().split("\n").map((line) => `      ${line}`).join("\n")}
    target: { table: ${name}, primaryKey: [id], columns: ${columns} }
`)
  })

const rows = async (table: string) => (await db.query(`SELECT * FROM "${table}" ORDER BY id`)).map((r) => ({ ...r }))

describe("graphql", () => {
  it("Relay pagination in the variables; {cursor} sends the checkpoint as an Int on the next run", async () => {
    api.orders.push(...[1, 2, 3, 4, 5].map((n) => ({ id: `o${n}`, total: n * 10, updatedAt: n * 100 })))
    const source = `
graphql:
  query: "${ordersQuery}"
  variables: { first: 2, since: "{cursor}" }
records: data.orders.nodes
pagination: { type: cursor, param: after, nextPath: data.orders.pageInfo.endCursor, hasMorePath: data.orders.pageInfo.hasNextPage, in: variables }
incremental: { cursorField: updatedAt }`
    const first = await run("gql_orders", source)
    expect(first.code, first.stderr).toBe(0)
    // page 1 sends no `after` (absent: the start); `since` is null, the template's value on a full read
    expect(api.calls.map((c) => c.args)).toEqual([
      { first: 2, updatedAfter: null },
      { first: 2, after: "o2", updatedAfter: null },
      { first: 2, after: "o4", updatedAfter: null }
    ])
    expect(summaries(first)[0]).toMatchObject({ pages: 3, inserted: 5 })

    api.orders[4] = { id: "o5", total: 55, updatedAt: 600 }
    api.orders.push({ id: "o6", total: 60, updatedAt: 700 })
    api.calls.length = 0
    const second = await run("gql_orders", source)
    expect(second.code, second.stderr).toBe(0)
    expect(api.calls.map((c) => c.args)).toEqual([{ first: 2, updatedAfter: 500 }])
    expect(summaries(second)[0]).toMatchObject({ pages: 1, inserted: 1, updated: 1 })
    expect(await rows("gql_orders")).toEqual([
      ...[1, 2, 3, 4].map((n) => ({ id: `o${n}`, total: n * 10, updatedAt: String(n * 100) })),
      { id: "o5", total: 55, updatedAt: "600" },
      { id: "o6", total: 60, updatedAt: "700" }
    ])
  })

  it("a child stream per parent row: {parent.<column>} in the variables, never in the query's text", async () => {
    const before = api.orders.splice(0)
    onTestFinished(() => {
      api.orders.splice(0, api.orders.length, ...before)
    })
    api.calls.length = 0
    // ids that look like GraphQL syntax: only variables keep them data
    const customers = ["c-1", "c\"2) { x }", "9007199254740993"]
    customers.forEach((customer, i) =>
      api.orders.push(...[1, 2, 3].map((n) => ({ id: `${i}-${n}`, total: n, updatedAt: n, customer }))))
    const dir = configDir(`
database: { url: "\${DATABASE_URL}" }
streams:
  - name: gql_customers
    source:
      url: ${api.url}/graphql
      auth: { type: bearer, token: "\${TOKEN}" }
      graphql: { query: "{ customers { id name } }" }
      records: data.customers
    target: { table: gql_customers, primaryKey: [id], columns: { id: text, name: text } }
  - name: gql_orders_of
    parent: { stream: gql_customers }
    source:
      url: ${api.url}/graphql
      auth: { type: bearer, token: "\${TOKEN}" }
      graphql:
        query: "query($customer: ID!, $first: Int!, $after: String) { ordersOf(customer: $customer, first: $first, after: $after) { nodes { id total updatedAt } pageInfo { endCursor hasNextPage } } }"
        variables: { customer: "{parent.id}", first: 2 }
      records: data.ordersOf.nodes
      pagination: { type: cursor, param: after, nextPath: data.ordersOf.pageInfo.endCursor, hasMorePath: data.ordersOf.pageInfo.hasNextPage, in: variables }
    target:
      table: gql_orders_of
      primaryKey: [id]
      columns: { id: text, customer: { type: text, from: "{parent.id}" }, total: integer }
`)
    const result = await ferry(["run"], { cwd: dir, env: { DATABASE_URL: db.url, TOKEN } })
    expect(result.code, result.stderr).toBe(0)
    expect(summaries(result)[1]).toMatchObject({ stream: "gql_orders_of", parents: 3, inserted: 9 })
    // each customer's id reached the server as the variable's value, exactly, page after page
    const asked = api.calls.filter((c) => c.field === "ordersOf").map((c) => `${c.args.customer} ${c.args.after ?? "-"}`)
    expect(asked.sort()).toEqual(customers.flatMap((c, i) => [`${c} -`, `${c} ${i}-2`]).sort())
    const stored = await db.query(`SELECT customer, count(*)::int AS n FROM gql_orders_of GROUP BY customer ORDER BY customer`)
    expect(stored).toEqual([...customers].sort().map((customer) => ({ customer, n: 3 })))

    // in the query's text a parent value would be GraphQL syntax: 78 naming the field, nothing requested
    api.calls.length = 0
    const text = readFileSync(join(dir, "ferry.config.yaml"), "utf8").replace("ordersOf(customer: $customer", "ordersOf(customer: \\\"{parent.id}\\\"")
    writeFileSync(join(dir, "ferry.config.yaml"), text)
    const refused = await ferry(["run"], { cwd: dir, env: { DATABASE_URL: db.url, TOKEN } })
    expect(refused.code).toBe(78)
    expect(refused.stderr).toMatch(/streams\[1\]\.source\.graphql\.query: \{parent\.…\} would write a parent value into the query's text/)
    expect(api.calls).toEqual([])
  })

  it("offset pagination in the variables", async () => {
    api.calls.length = 0
    const result = await run("gql_offset", `
graphql:
  query: "query($offset: Int!, $limit: Int!) { ordersAt(offset: $offset, limit: $limit) { id total updatedAt } }"
records: data.ordersAt
pagination: { type: offset, offsetParam: offset, limitParam: limit, limit: 4, in: variables }`)
    expect(result.code, result.stderr).toBe(0)
    expect(api.calls.map((c) => c.args)).toEqual([{ offset: 0, limit: 4 }, { offset: 4, limit: 4 }])
    expect((await rows("gql_offset")).map((r) => r.id)).toEqual(["o1", "o2", "o3", "o4", "o5", "o6"])
  })

  it("errors in a 200 response: exit 69 with the first message, never the token it quoted", async () => {
    const result = await run("gql_refunds", `
graphql: { query: "{ refunds { id total updatedAt } }" }
records: data.refunds`)
    expect(result.code, result.stderr).toBe(69)
    expect(result.stderr).toContain("the GraphQL API answered with errors: the token *** lacks the scope refunds:read")
    expectNoSecrets([result.stdout, result.stderr, ...(await ferryTablesText(db))], [TOKEN])
  })

  it("graphql with a body: 78 naming the field; nothing is requested", async () => {
    api.calls.length = 0
    const result = await run("gql_bad", `
graphql: { query: "{ refunds { id } }" }
body: { q: 1 }
records: data.refunds`)
    expect(result.code).toBe(78)
    expect(result.stderr).toContain("streams[0].source.body")
    expect(api.calls).toEqual([])
  })
})

describe("method: POST with a body", () => {
  it("{cursor} in the body as a number and the cursor in: body, across two runs", async () => {
    items.push(...[1, 2, 3].map((n) => ({ id: `i${n}`, updated: 1700000000 + n })))
    const runRest = () =>
      ferry(["run"], {
        env: { DATABASE_URL: db.url },
        cwd: configDir(`
database: { url: "\${DATABASE_URL}" }
streams:
  - name: post_items
    source:
      url: ${rest.url}/search
      method: POST
      body: { filter: { updated_after: "{cursor}" } }
      records: results
      pagination: { type: cursor, param: after, nextPath: next, in: body }
      incremental: { cursorField: updated, format: unix }
      retry: { attempts: 1 }
    target: { table: post_items, primaryKey: [id], columns: { id: text, updated: { type: timestamptz, format: unix } } }
`)
      })
    const first = await runRest()
    expect(first.code, first.stderr).toBe(0)
    expect(bodies).toEqual([{ filter: { updated_after: null } }, { filter: { updated_after: null }, after: "i2" }])
    items.push({ id: "i4", updated: 1700000010 })
    bodies.length = 0
    const second = await runRest()
    expect(second.code, second.stderr).toBe(0)
    expect(bodies).toEqual([{ filter: { updated_after: 1700000003 } }])
    expect((await rows("post_items")).map((r) => r.id)).toEqual(["i1", "i2", "i3", "i4"])
  })
})
