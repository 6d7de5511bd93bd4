/**
 * The live services for a loaded configuration: the database (a server from `database.url`, or the
 * embedded one), the Postgres sink, the configured checkpoint store and the HTTP source.
 */
import type { PgClient } from "@effect/sql-pg"
import type { SqlClient } from "@effect/sql/SqlClient"
import { Effect, Layer, Option } from "effect"
import * as Checkpoint from "./Checkpoint.js"
import type { FerryConfigShape } from "./Config.js"
import * as Database from "./Database.js"
import * as DataDirLock from "./embedded/DataDirLock.js"
import * as EmbeddedPostgres from "./embedded/EmbeddedPostgres.js"
import type { DatabaseError, LockHeld } from "./Errors.js"
import * as HttpSource from "./http/HttpSource.js"
import * as PgSink from "./PgSink.js"
import type { Sink } from "./Sink.js"
import type { Source } from "./Source.js"

export interface Environment {
  readonly env: Readonly<Record<string, string | undefined>>
  readonly cwd: string
}

/** Where the data lives, for messages: `host:port/db`, or the embedded data directory. */
export const describeDatabase = (config: FerryConfigShape, environment: Environment): string =>
  Option.match(config.database.url, {
    onSome: Database.describe,
    onNone: () => `embedded Postgres in ${EmbeddedPostgres.defaultDataDir(environment.env, environment.cwd)}`
  })

export const isEmbedded = (config: FerryConfigShape): boolean => Option.isNone(config.database.url)

/**
 * The configured server, or the embedded database on one connection (PGlite has one session; its
 * data directory lock gives single flight, so there is no advisory lock on that path). `connections`:
 * how many to open at start, at once (a command that takes a stream's lock needs two).
 */
export const database = (
  config: FerryConfigShape,
  environment: Environment,
  connections = 1
): Layer.Layer<SqlClient | PgClient.PgClient, DatabaseError | LockHeld> =>
  Option.match(config.database.url, {
    onSome: (url) => Database.layer({ url, connections }),
    onNone: () =>
      Layer.unwrapScoped(
        Effect.map(
          EmbeddedPostgres.start({ dataDir: EmbeddedPostgres.defaultDataDir(environment.env, environment.cwd) }),
          ({ url }) => Database.layer({ url, ...EmbeddedPostgres.clientOptions })
        )
      )
  })

export const checkpointStore = (config: FerryConfigShape): Layer.Layer<Checkpoint.CheckpointStore, never, SqlClient> =>
  config.checkpoint.store === "file" ? Checkpoint.layerFile(config.checkpoint.path) : Checkpoint.layerPostgres

/** The bin's HTTP client: node:http with keep-alive (fetch costs 55–120 ms of start-up; docs/PERFORMANCE.md). */
export const source: Layer.Layer<Source> = HttpSource.layerNode

/**
 * Everything `Sync` needs, plus the SqlClient for `status` and `sql`. `connections`: how many to open
 * at start; default two, as a command that takes a stream's lock holds two (`status` takes none).
 */
export const layer = (
  config: FerryConfigShape,
  environment: Environment,
  connections = 2
): Layer.Layer<Sink | Checkpoint.CheckpointStore | Source | SqlClient, DatabaseError | LockHeld> =>
  Layer.mergeAll(
    // the embedded database: no advisory locks (one session: its data directory's lock excludes other
    // runs, and is what `verifyLock` checks), no COPY (pglite-socket has none)
    PgSink.layer({
      advisoryLock: !isEmbedded(config),
      copy: !isEmbedded(config),
      holdsLock: isEmbedded(config)
        ? DataDirLock.verify(EmbeddedPostgres.defaultDataDir(environment.env, environment.cwd))
        : undefined
    }),
    checkpointStore(config),
    source
  ).pipe(Layer.provideMerge(database(config, environment, connections)))
