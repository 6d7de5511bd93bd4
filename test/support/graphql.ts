/**
 * A real GraphQL API on 127.0.0.1, for tests: the reference implementation (`graphql`) validates and
 * executes each POSTed `{ query, variables }` and the answer is sent as GraphQL over HTTP says for
 * `application/json` (200, errors in the body; 400 for a request that is not GraphQL). Orders, paged Relay-style
 * (`first`/`after`, `pageInfo { endCursor hasNextPage }`) or by offset, filtered by `updatedAfter`;
 * a bearer token is required. `calls` records each resolved query's arguments (the variables as the
 * server understood them).
 */
import { buildSchema, graphql, GraphQLError } from "graphql"
import { json, startServer, type TestServer } from "./http.js"

export interface Order {
  readonly id: string
  readonly total: number
  /** Unix seconds */
  readonly updatedAt: number
  /** the customer's id (`ordersOf`) */
  readonly customer?: string
}

const schema = buildSchema(`
  type Order { id: ID!, total: Int!, updatedAt: Int! }
  type Customer { id: ID!, name: String! }
  type PageInfo { endCursor: String, hasNextPage: Boolean! }
  type OrderConnection { nodes: [Order!]!, pageInfo: PageInfo! }
  type Query {
    orders(first: Int!, after: String, updatedAfter: Int): OrderConnection!
    ordersAt(offset: Int!, limit: Int!): [Order!]!
    refunds: [Order!]
    customers: [Customer!]!
    ordersOf(customer: ID!, first: Int!, after: String): OrderConnection!
  }
`)

export interface GraphQLServer extends TestServer {
  /** the API's data: tests change it between runs */
  readonly orders: Array<Order>
  readonly calls: Array<{ readonly field: string; readonly args: Record<string, unknown> }>
}

/** Orders by `updatedAt` then `id`; `after` is the id of the last order of the previous page. */
const sorted = (orders: ReadonlyArray<Order>) =>
  [...orders].sort((a, b) => a.updatedAt - b.updatedAt || a.id.localeCompare(b.id))

export const startGraphQL = async (token: string): Promise<GraphQLServer> => {
  const orders: Array<Order> = []
  const calls: GraphQLServer["calls"] = []
  const rootValue = {
    orders: (args: { first: number; after?: string | null; updatedAfter?: number | null }) => {
      calls.push({ field: "orders", args: { ...args } })
      const since = sorted(orders).filter((o) => args.updatedAfter == null || o.updatedAt >= args.updatedAfter)
      const start = args.after == null ? 0 : since.findIndex((o) => o.id === args.after) + 1
      if (args.after != null && start === 0) throw new GraphQLError(`unknown cursor ${args.after}`)
      const nodes = since.slice(start, start + args.first)
      return { nodes, pageInfo: { endCursor: nodes.at(-1)?.id ?? null, hasNextPage: start + args.first < since.length } }
    },
    customers: () => [...new Set(orders.flatMap((o) => o.customer ?? []))].map((id) => ({ id, name: `customer ${id}` })),
    ordersOf: (args: { customer: string; first: number; after?: string | null }) => {
      calls.push({ field: "ordersOf", args: { ...args } })
      const mine = sorted(orders).filter((o) => o.customer === args.customer)
      const start = args.after == null ? 0 : mine.findIndex((o) => o.id === args.after) + 1
      const nodes = mine.slice(start, start + args.first)
      return { nodes, pageInfo: { endCursor: nodes.at(-1)?.id ?? null, hasNextPage: start + args.first < mine.length } }
    },
    ordersAt: (args: { offset: number; limit: number }) => {
      calls.push({ field: "ordersAt", args: { ...args } })
      return sorted(orders).slice(args.offset, args.offset + args.limit)
    },
    // an API that names the caller's token in its error (some do): Ferry must not repeat it
    refunds: (_args: unknown, context: { authorization?: string }) => {
      throw new GraphQLError(`the token ${context.authorization?.replace(/^Bearer /, "")} lacks the scope refunds:read`)
    }
  }
  const server = await startServer(async (req, res) => {
    if (req.headers.authorization !== `Bearer ${token}`) return json(res, { errors: [{ message: "unauthenticated" }] }, 401)
    let text = ""
    for await (const chunk of req) text += chunk
    const request = req.method === "POST" && req.headers["content-type"]?.startsWith("application/json") ? JSON.parse(text) : {}
    if (typeof request.query !== "string") return json(res, { errors: [{ message: "expected a POST of { query, variables }" }] }, 400)
    json(res, await graphql({
      schema,
      source: request.query,
      variableValues: request.variables,
      rootValue,
      contextValue: { authorization: req.headers.authorization }
    }))
  })
  return { ...server, orders, calls }
}
