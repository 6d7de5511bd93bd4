/**
 * Embedding Ferry in an Effect application: a stream defined in code with an Effect Schema (no
 * config file), run with the application's own SqlClient, HttpClient and logger.
 *
 *   npx tsc -p examples && DATABASE_URL=postgres://... API_URL=http://... node examples/dist/embed.js
 *
 * on every Node Ferry supports (20, 22, 24): the project's tsc compiles it against the built package
 * (`npm install` builds dist/) into examples/dist/. Node 22.18+ and 24 also run it as it is, stripping
 * the types: `node examples/embed.ts`; Node 20 cannot.
 *
 * `test/example.test.ts` runs `program` against a local HTTP server and PostgreSQL.
 */
import { FetchHttpClient } from "@effect/platform"
import { PgClient } from "@effect/sql-pg"
import { Config, Duration, Effect, Layer, Logger, Redacted, Schema } from "effect"
import { PostgresCheckpoints, HttpSource, PgSink, StreamSpec, syncStream } from "ferry"

/** The records as the application wants them: decoded, typed, validated. */
export const Order = Schema.Struct({
  id: Schema.String,
  status: Schema.Literal("pending", "paid", "shipped", "refunded"),
  amount: Schema.Number,
  updated_at: Schema.Date
})

export const orders = (apiUrl: string) =>
  StreamSpec.make({
    name: "orders",
    schema: Order,
    source: {
      url: `${apiUrl}/v1/orders`,
      auth: { type: "bearer", token: Redacted.make("demo-token") },
      records: "data",
      pagination: { type: "link" },
      retry: { attempts: 3, base: Duration.millis(50) }
    },
    incremental: { cursorField: "updated_at", param: "updated_since", order: "asc" },
    target: { table: "embedded_orders", primaryKey: ["id"] }
  })

/** One sync of the stream: the summary, or a typed error (SourceError, DatabaseError, ...). */
export const program = (apiUrl: string) => syncStream(orders(apiUrl), { runId: `embed-${Date.now()}` })

/** The application's own services: Ferry's live layers over its SqlClient and HttpClient. */
export const layer = (databaseUrl: Redacted.Redacted<string>) =>
  Layer.mergeAll(PgSink.layer(), PostgresCheckpoints.layer, HttpSource.layer).pipe(
    Layer.provideMerge(PgClient.layer({ url: databaseUrl, connectTimeout: Duration.seconds(5) })),
    Layer.provide(FetchHttpClient.layer)
  )

const main = Effect.gen(function*() {
  const databaseUrl = yield* Config.redacted("DATABASE_URL")
  const apiUrl = yield* Config.string("API_URL")
  const summary = yield* program(apiUrl).pipe(Effect.provide(layer(databaseUrl)))
  yield* Effect.logInfo(`synced ${summary.fetched} orders: ${summary.inserted} new, ${summary.updated} updated`)
}).pipe(Effect.provide(Logger.pretty))

if (import.meta.url === `file://${process.argv[1]}`) Effect.runPromise(main)
