/**
 * FerryConfig: the configuration file (YAML or JSON) plus the environment, as runtime values.
 * locate the file → parse its syntax (Syntax.ts) → read `${VAR}` and `${file:PATH}` on the parsed tree
 * (Interpolation.ts) → validate (ConfigFile.ts) → map to StreamSpecs. Every failure is one ConfigError (exit 78) naming the file position, the field
 * path or the variable, and never a secret.
 */
import { Context, Effect, Either, Layer, Option, Redacted } from "effect"
import type { Duration } from "effect"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import * as Children from "../domain/Children.js"
import * as DefaultShape from "../domain/DefaultShape.js"
import * as Deletes from "../domain/Deletes.js"
import { ConfigError } from "../domain/Errors.js"
import { epochOfInitial } from "../domain/Epoch.js"
import { Incremental } from "../domain/Incremental.js"
import * as RowDecoder from "../domain/RowDecoder.js"
import { Redactor, secretsOf } from "../domain/Secrets.js"
import type { StreamSpec } from "../domain/StreamSpec.js"
import { TargetSpec } from "../domain/Target.js"
import * as ConfigFile from "./ConfigFile.js"
import { type Env, envSecrets, type EnvValue, resolveTree } from "./Interpolation.js"
import { cursorFormat } from "./Epoch.js"
import { parseSyntax } from "./Syntax.js"

export interface FerryConfigShape {
  /** absolute path of the config file */
  readonly file: string
  /** `url` none: the embedded database */
  readonly database: {
    readonly url: Option.Option<Redacted.Redacted<string>>
    readonly schema: string
    /** absent: the default (Database.defaultTimeouts), unless the URL's `options=` sets it */
    readonly lockTimeout?: Duration.Duration | undefined
    readonly statementTimeout?: Duration.Duration | undefined
  }
  readonly checkpoint: { readonly store: "postgres" } | { readonly store: "file"; readonly path: string }
  readonly streams: ReadonlyArray<StreamSpec>
  /** streams at a time (`concurrency:`; `ferry run --concurrency` overrides) */
  readonly concurrency: number
  /** each stream's `schedule:` (cron, UTC), by stream name: when `ferry worker` runs it */
  readonly schedules: ReadonlyMap<string, string>
  /** how long a stream's lease lasts without renewal (`lease:`, default 30 s) */
  readonly lease: Duration.Duration
  /**
   * every secret value (auth, fixed headers, the database password, every value read from the
   * environment or from a `${file:…}` but names): scrub these from any text
   */
  readonly secrets: ReadonlyArray<string>
}

export class FerryConfig extends Context.Tag("ferry/FerryConfig")<FerryConfig, FerryConfigShape>() {}


export interface LoadOptions {
  /** `--config`; else `FERRY_CONFIG`, else ./ferry.config.yaml|yml|json */
  readonly path?: string | undefined
  /** defaults to process.env */
  readonly env?: Env | undefined
  /** defaults to process.cwd() */
  readonly cwd?: string | undefined
}

// --- locating -----------------------------------------------------------------------------------------

const defaultNames = ["ferry.config.yaml", "ferry.config.yml", "ferry.config.json"] as const

/** The absolute path of the config file: `path`, else FERRY_CONFIG, else the first default name in `cwd`. */
export const locate = (options: { path?: string | undefined; env: Env; cwd: string }): Effect.Effect<string, ConfigError> =>
  Effect.suspend(() => {
    const given = options.path ?? (options.env.FERRY_CONFIG || undefined)
    if (given !== undefined) {
      const file = nodePath.resolve(options.cwd, given)
      const from = options.path !== undefined ? "--config" : "FERRY_CONFIG"
      return fs.existsSync(file)
        ? Effect.succeed(file)
        : Effect.fail(new ConfigError({ path: "", reason: `config file ${file} (from ${from}) does not exist` }))
    }
    const found = defaultNames.map((name) => nodePath.join(options.cwd, name)).find((file) => fs.existsSync(file))
    return found !== undefined ? Effect.succeed(found) : Effect.fail(
      new ConfigError({
        path: "",
        reason: `no config file: looked for ${defaultNames.join(", ")} in ${options.cwd}; pass --config FILE or set FERRY_CONFIG`
      })
    )
  })

const read = (file: string): Effect.Effect<string, ConfigError> =>
  Effect.tryPromise({
    try: () => fs.promises.readFile(file, "utf8"),
    catch: (error) =>
      new ConfigError({
        path: "",
        reason: `cannot read config file ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`
      })
  })

// --- mapping to runtime shapes ------------------------------------------------------------------------

/** A stream of the file as the model has it: its columns (or the default shape), its cursor's type, its decoder. */
const toStreamSpec = (stream: ConfigFile.StreamConfig, schema: string): StreamSpec => {
  const { incremental: given, ...source } = stream.source
  const declared = stream.target.columns === undefined ? undefined : ConfigFile.columnList(stream.target.columns)
  const format = cursorFormat(stream)
  const epoch = format === "unix" || format === "unix_ms" ? format : undefined
  const incremental = given && Incremental.make({
    ...given,
    ...(epoch === undefined ? {} : { format: epoch }),
    ...(epoch === undefined || given.initial === undefined ? {} : { initial: epochOfInitial(given.initial, epoch) }),
    // an epoch cursor is a number (its column is a timestamp)
    cursorType: epoch !== undefined ? "number" : given.cursorType ?? DefaultShape.inferCursorType(
      given.initial,
      declared?.find((c) => c.name === DefaultShape.cursorColumnOf(declared, given.cursorField))?.type
    )
  })
  const { extra, primaryKey, table } = stream.target
  const record = declared === undefined ? stream.target.record ?? DefaultShape.defaultRecordColumn : stream.target.record
  const { columns, cursorColumn } = declared === undefined
    ? DefaultShape.defaultColumns(primaryKey, incremental, record)
    : { columns: declared, cursorColumn: incremental && DefaultShape.cursorColumnOf(declared, incremental.cursorField) }
  const children = stream.target.children?.map(({ columns, ...child }) => ({ ...child, columns: ConfigFile.columnList(columns) }))
  // `record` and `extra` are jsonb columns after the others: the record whole, and what no column reads
  const roles = [
    ...(declared !== undefined && record !== undefined ? [{ name: record, type: "jsonb" as const, from: "" }] : []),
    ...(extra === undefined ? [] : [{ name: extra, type: "jsonb" as const, from: "" }])
  ]
  const target = TargetSpec.make({
    schema,
    table,
    primaryKey,
    columns: [...columns, ...roles],
    cursorColumn,
    write: stream.target.write,
    record,
    extra,
    deletes: stream.target.deletes
  })
  // with children: the parent table has the digest column too, which its decoder does not read
  const withChildren = children === undefined
    ? target
    : TargetSpec.make({ ...target, columns: Children.withDigestColumn(target.columns, children), children })
  return {
    name: stream.name,
    source: { ...source, method: source.graphql === undefined ? source.method ?? "GET" : "POST", incremental },
    // `_deleted_at` (deletes.action: mark) is the run's to fill, the digest of the children the sink's
    target: Deletes.withColumns(withChildren),
    // the parent's decoder reads its columns, and knows the lists its children take
    decode: Children.withChildren(withChildren, RowDecoder.fromColumns({ ...target, children }, incremental)),
    maxInvalid: stream.maxInvalid,
    fullEvery: stream.fullEvery,
    maxAge: stream.maxAge
  }
}

/**
 * Each child stream with its parent's name and target table (the file's rules checked they exist), and,
 * when it sets no `rateLimit` of its own, its parent's: the same setting object, so that the parent and
 * its children take turns in one limiter (`source/http/RateLimit.ts`): they call the same API.
 */
const withParents = (given: ReadonlyArray<ConfigFile.StreamConfig>, streams: ReadonlyArray<StreamSpec>): ReadonlyArray<StreamSpec> => {
  const resolved = new Map<string, StreamSpec>()
  const resolve = (i: number): StreamSpec => {
    const stream = streams[i]!
    const known = resolved.get(stream.name)
    if (known !== undefined) return known
    const at = streams.findIndex((s) => s.name === given[i]!.parent?.stream)
    // the file's rules refuse cycles: a parent chain ends
    const parent = at < 0 ? undefined : resolve(at)
    const done = parent === undefined ? stream : {
      ...stream,
      source: stream.source.rateLimit === undefined ? { ...stream.source, rateLimit: parent.source.rateLimit } : stream.source,
      parent: { stream: parent.name, target: parent.target }
    }
    resolved.set(stream.name, done)
    return done
  }
  return streams.map((_, i) => resolve(i))
}

const decodeOrSame = (text: string) => Either.getOrElse(Either.try(() => decodeURIComponent(text)), () => text)

/** The password inside `postgres://user:password@host/db`, as written and decoded. */
const databasePassword = (url: string): ReadonlyArray<string> => {
  const password = url !== "" && URL.canParse(url) ? new URL(url).password : ""
  return password === "" ? [] : [password, decodeOrSame(password)]
}

const toShape = (file: string, config: ConfigFile.ConfigFile, fromEnv: ReadonlyArray<EnvValue>): FerryConfigShape => {
  const url = config.database.url ?? ""
  const streams = withParents(config.streams, config.streams.map((stream) => toStreamSpec(stream, config.database.schema)))
  const secrets = [
    ...databasePassword(url),
    ...streams.flatMap((s) => [...secretsOf(s.source.auth), ...Object.values(s.source.headers)]),
    // a token can be put anywhere (`/bot${TOKEN}/...`, a param that is not the auth): every value from
    // the environment or a secret file is one, except names and plain settings
    ...envSecrets(fromEnv)
  ]
  return {
    file,
    database: {
      url: url === "" ? Option.none() : Option.some(Redacted.make(url)),
      schema: config.database.schema,
      lockTimeout: config.database.lockTimeout,
      statementTimeout: config.database.statementTimeout
    },
    checkpoint: config.checkpoint.store === "file"
      // relative to the config file's directory, so cron's working directory does not matter
      ? { store: "file", path: nodePath.resolve(nodePath.dirname(file), config.checkpoint.path) }
      : { store: "postgres" },
    streams,
    concurrency: config.concurrency,
    schedules: new Map(config.streams.flatMap((s) => (s.schedule === undefined ? [] : [[s.name, s.schedule.trim()] as const]))),
    lease: config.lease,
    secrets: [...new Set(secrets.filter((s) => s !== ""))]
  }
}

/** The error with no value from the environment in it (the messages avoid values; this makes sure). */
const scrubbed = (error: ConfigError, fromEnv: ReadonlyArray<EnvValue>): ConfigError => {
  const redactor = Redactor.empty.with(envSecrets(fromEnv))
  const path = redactor.redact(error.path)
  const reason = redactor.redact(error.reason)
  return path === error.path && reason === error.reason ? error : new ConfigError({ path, reason })
}

// --- entry points -------------------------------------------------------------------------------------

/** The config in `text`; `file` (made absolute) picks the syntax (`.json` or YAML) and names errors. */
export const parse = (text: string, file: string, env: Env): Effect.Effect<FerryConfigShape, ConfigError> =>
  Effect.suspend(() => {
    const absolute = nodePath.resolve(file)
    const fromEnv: Array<EnvValue> = []
    return parseSyntax(text, absolute).pipe(
      Either.flatMap(({ refs, tree }) => resolveTree(tree, env, refs, fromEnv, nodePath.dirname(absolute))),
      Either.flatMap(ConfigFile.decode),
      Either.map((config) => toShape(absolute, config, fromEnv)),
      // the secrets are not registered with the logger yet: a message that quoted one is scrubbed here
      Either.mapLeft((error) => scrubbed(error, fromEnv))
    )
  })

export const load = (options: LoadOptions = {}): Effect.Effect<FerryConfigShape, ConfigError> =>
  Effect.gen(function*() {
    const env = options.env ?? process.env
    const file = yield* locate({ path: options.path, env, cwd: options.cwd ?? process.cwd() })
    return yield* parse(yield* read(file), file, env)
  })

export const layer = (options: LoadOptions = {}): Layer.Layer<FerryConfig, ConfigError> =>
  Layer.effect(FerryConfig, load(options))

/** The JSON Schema of the file format, for editors; generated from the schema that validates. */
export const jsonSchema = (): object => ConfigFile.jsonSchema()
