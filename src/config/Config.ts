/**
 * FerryConfig: the configuration file (YAML or JSON) plus the environment, as runtime values.
 * locate the file → parse its syntax → read `${VAR}` and `${file:PATH}` on the parsed tree → validate (ConfigSchema.ts)
 * → map to StreamSpecs. Every failure is one ConfigError (exit 78) naming the file position, the field
 * path or the variable, and never a secret.
 */
import { Context, Effect, Either, Layer, Option, Redacted } from "effect"
import type { Duration } from "effect"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import YAML from "yaml"
import * as ConfigSchema from "./ConfigFile.js"
import * as Json from "../domain/Json.js"
import { ConfigError } from "../domain/Errors.js"
import { Redactor, secretsOf } from "../domain/Secrets.js"
import * as RowDecoder from "../domain/RowDecoder.js"
import type { Incremental, Pagination, StreamSpec, TargetSpec } from "../domain/StreamSpec.js"

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
  /**
   * every secret value (auth, fixed headers, the database password, every value read from the
   * environment or from a `${file:…}` but names): scrub these from any text
   */
  readonly secrets: ReadonlyArray<string>
}

export class FerryConfig extends Context.Tag("ferry/FerryConfig")<FerryConfig, FerryConfigShape>() {}

type Env = Record<string, string | undefined>

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

// --- syntax -------------------------------------------------------------------------------------------

const lineColumn = (text: string, offset: number) => {
  const lines = text.slice(0, Math.max(0, offset)).split("\n")
  return { line: lines.length, column: (lines[lines.length - 1] ?? "").length + 1 }
}

/** Where JSON.parse stopped, for the errors V8 reports without a position ("Unexpected token 'x', ..."). */
const jsonErrorOffset = (text: string): number => {
  let i = 0
  const space = () => {
    while (" \t\n\r".includes(text[i] ?? "-")) i++
  }
  const scalar = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null|"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y
  const token = (): boolean => {
    scalar.lastIndex = i
    const match = scalar.exec(text)
    if (match !== null) i += match[0].length
    return match !== null
  }
  const value = (): boolean => {
    space()
    const open = text[i]
    if (open !== "{" && open !== "[") return token()
    const close = open === "{" ? "}" : "]"
    i++
    space()
    if (text[i] === close) return (i++, true)
    for (;;) {
      if (open === "{") {
        space()
        if (text[i] !== "\"" || !token()) return false
        space()
        if (text[i] !== ":") return false
        i++
      }
      if (!value()) return false
      space()
      if (text[i] === close) return (i++, true)
      if (text[i] !== ",") return false
      i++
    }
  }
  if (value()) space()
  return i
}

const parseJson = (text: string, file: string): Either.Either<unknown, ConfigError> =>
  Either.try({
    // Json.parse: `initial: 9007199254740993` keeps its digits (resolveTree makes it a string)
    try: (): unknown => Json.parse(text),
    catch: (error) => {
      const message = error instanceof Error ? error.message : String(error)
      const position = /at position (\d+)/.exec(message)?.[1]
      const { line, column } = lineColumn(text, position === undefined ? jsonErrorOffset(text) : Number(position))
      // V8 quotes the text around the error (`, "..." is not valid JSON`, or `, ...".."...`): it may hold a secret
      const what = message.replace(/, (?:\.\.\.)?"[\s\S]*$/, "").replace(/ in JSON at position[\s\S]*$/, "")
      return new ConfigError({ path: "", reason: `invalid JSON in ${file} at line ${line}, column ${column}: ${what}` })
    }
  })

/**
 * YAML reads `{` `}` as flow-mapping brackets, so `auth: { type: bearer, token: ${TOKEN} }` (the
 * documented style) would not parse. Each `${...}` is hidden behind private-use characters of the same
 * length while YAML parses (syntax error positions stay exact) and restored in the parsed tree, where
 * the environment is read: a variable's value never goes through the YAML parser.
 */
const MARK = "\uE000"
const PAD = "\uE001"
const DIGIT = 0xe100
const BASE = 0xf8ff - DIGIT + 1

interface Hidden {
  readonly text: string
  readonly refs: ReadonlyArray<string>
}

const hideReferences = (text: string): Hidden => {
  if (text.includes(MARK)) return { text, refs: [] }
  const refs: Array<string> = []
  // `${file:${CREDENTIALS_DIRECTORY}/token}` holds one reference inside another: hidden whole
  const hidden = text.replace(/\$?\$\{file:(?:\$\{[^}\n]*\}|[^}\n])*\}|\$?\$\{[^}\n]*\}/g, (ref) => {
    const i = refs.push(ref) - 1
    return MARK + String.fromCharCode(DIGIT + Math.floor(i / BASE), DIGIT + (i % BASE)) + PAD.repeat(ref.length - 3)
  })
  return { text: hidden, refs }
}

const restoreReferences = (text: string, refs: ReadonlyArray<string>): string =>
  refs.length === 0 ? text : text.replace(
    /\uE000([\uE100-\uF8FF])([\uE100-\uF8FF])\uE001*/g,
    (_, high: string, low: string) => refs[(high.charCodeAt(0) - DIGIT) * BASE + low.charCodeAt(0) - DIGIT] ?? ""
  )

const parseYaml = (text: string, file: string): Either.Either<{ tree: unknown; refs: ReadonlyArray<string> }, ConfigError> => {
  const { refs, text: hidden } = hideReferences(text)
  // intAsBigInt: an integer past 2^53 keeps its digits (resolveTree makes it a string)
  const doc = YAML.parseDocument(hidden, { uniqueKeys: true, prettyErrors: true, intAsBigInt: true })
  const error = doc.errors[0]
  if (error !== undefined) {
    const at = error.linePos?.[0]
    const where = at === undefined ? "" : ` at line ${at.line}, column ${at.col}`
    // the first line only: the rest quotes the file, which may hold a secret
    const what = (error.message.split("\n")[0] ?? "").replace(/ at line \d+, column \d+:?$/, "")
    return Either.left(new ConfigError({ path: "", reason: `invalid YAML in ${file}${where}: ${what}` }))
  }
  return Either.try({
    try: () => ({ tree: doc.toJS({ maxAliasCount: 100 }) as unknown, refs }),
    catch: () => new ConfigError({ path: "", reason: `invalid YAML in ${file}: too many aliases (*name)` })
  })
}

// --- environment --------------------------------------------------------------------------------------

// `$${`, `${file:PATH}` (PATH may hold `${VAR}`s; `${file:-x}` is the variable `file` with a default), `${VAR}`
const reference = /\$\$\{|\$\{file:(?!-)((?:\$\{[^}]*\}|[^}])*)\}|\$\{([^}]*)\}|\$\{/g

/**
 * `${VAR}`, `${VAR:-default}` (the default also when VAR is empty, as in sh), `${file:PATH}` (a secret
 * file's content, `readSecretFile`) and `$${` for a literal `${`. The result is always a string, even
 * `"42"`: the schema decides types. `dir` is the config file's directory, for relative PATHs; without
 * it (inside a PATH) `${file:…}` is refused.
 */
const interpolate = (
  text: string,
  env: Env,
  path: ReadonlyArray<PropertyKey>,
  fromEnv: Array<EnvValue>,
  dir: string | undefined
): Either.Either<string, ConfigError> => {
  let out = ""
  let last = 0
  for (const match of text.matchAll(reference)) {
    out += text.slice(last, match.index)
    last = match.index + match[0].length
    if (match[0] === "$${") {
      out += "${"
      continue
    }
    const fail = (reason: string) => Either.left(new ConfigError({ path: ConfigSchema.formatPath(path), reason }))
    if (match[1] !== undefined) {
      if (dir === undefined) return fail("a ${file:…} path cannot itself read a file (only ${VAR} may stand in it)")
      // the variables in the path are locations, not secrets (errors name the file): not recorded
      const file = interpolate(match[1], env, path, [], undefined)
      if (Either.isLeft(file)) return file
      const value = readSecretFile(file.right, dir)
      if (Either.isLeft(value)) return fail(value.left)
      out += value.right
      fromEnv.push({ path, value: value.right })
      continue
    }
    if (match[2] === undefined) return fail("\"${\" without a closing \"}\" (write $${ for a literal ${)")
    const ref = /^([A-Za-z_][A-Za-z0-9_]*)(?::-([\s\S]*))?$/.exec(match[2])
    if (ref === null) return fail("invalid reference: expected ${NAME} or ${NAME:-default}")
    const [, name = "", fallback] = ref
    const value = env[name]
    if (value !== undefined && (value !== "" || fallback === undefined)) {
      out += value
      fromEnv.push({ path, value })
    } else if (fallback !== undefined) out += fallback
    else return fail(`environment variable ${name} is not set`)
  }
  return Either.right(out + text.slice(last))
}

/** The largest secret file read: a secret is a token or a key, not a data file (or /dev/zero). */
const maxSecretFileBytes = 64 * 1024

const fileProblem = (error: unknown): string => {
  const code = (error as NodeJS.ErrnoException).code
  return code === "ENOENT" ? "does not exist"
    : code === "EACCES" || code === "EPERM" ? "cannot be read (permission denied)"
    : code === "ENOTDIR" ? "does not exist (a part of its path is not a directory)"
    : `cannot be read (${code ?? String(error)})`
}

/**
 * A `${file:PATH}`'s value: the UTF-8 content of the regular file at PATH (relative to the config
 * file's directory) with ONE trailing line ending (`\n` or `\r\n`) removed, as Docker secrets and
 * systemd credentials written by `echo` end with one. An empty result is refused: it is a secret that
 * was never filled in. The reason names the file, never its content.
 */
const readSecretFile = (given: string, dir: string): Either.Either<string, string> => {
  if (given === "") return Either.left("${file:} needs a path")
  const file = nodePath.resolve(dir, given)
  const what = `secret file ${file}`
  let bytes: Buffer
  try {
    const stat = fs.statSync(file)
    if (stat.isDirectory()) return Either.left(`${what} is a directory`)
    if (!stat.isFile()) return Either.left(`${what} is not a regular file`)
    if (stat.size > maxSecretFileBytes) return Either.left(`${what} is larger than ${maxSecretFileBytes / 1024} KiB`)
    bytes = fs.readFileSync(file)
  } catch (error) {
    return Either.left(`${what} ${fileProblem(error)}`)
  }
  let text: string
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes)
  } catch {
    return Either.left(`${what} is not UTF-8 text`)
  }
  const value = text.endsWith("\r\n") ? text.slice(0, -2) : text.endsWith("\n") ? text.slice(0, -1) : text
  return value === "" ? Either.left(`${what} is empty`) : Either.right(value)
}

/**
 * A value the environment gave to a `${VAR}` (not a `:-default`, which the file itself holds), or a
 * secret file to a `${file:…}`, and where.
 */
interface EnvValue {
  readonly path: ReadonlyArray<PropertyKey>
  readonly value: string
}

/**
 * The parsed tree with hidden references restored (keys) and read from the environment (values);
 * each value read from the environment is pushed onto `fromEnv`.
 */
const resolveTree = (
  value: unknown,
  env: Env,
  refs: ReadonlyArray<string>,
  fromEnv: Array<EnvValue>,
  dir: string,
  path: ReadonlyArray<PropertyKey> = []
): Either.Either<unknown, ConfigError> => {
  if (typeof value === "string") return interpolate(restoreReferences(value, refs), env, path, fromEnv, dir)
  // a number a double cannot hold becomes its digits, as the schema takes a `${VAR}` (a safe one stays a number)
  if (typeof value === "bigint") return Either.right(Number.isSafeInteger(Number(value)) ? Number(value) : value.toString())
  if (Json.isLosslessNumber(value)) return Either.right(value.text)
  if (typeof value !== "object" || value === null) return Either.right(value)
  const entries = Array.isArray(value) ? value.map((item, i) => [i, item] as const) : Object.entries(value)
  const out: Array<readonly [string | number, unknown]> = []
  for (const [key, item] of entries) {
    const name = typeof key === "number" ? key : restoreReferences(key, refs)
    if (name === "__proto__") {
      // a JavaScript object cannot hold this key as an ordinary one: the schema's maps would drop it
      // silently (a column, a header, a parameter gone), so it is refused wherever it appears
      return Either.left(
        new ConfigError({
          path: ConfigSchema.formatPath([...path, name]),
          reason: `"__proto__" cannot be used as a name in Ferry's config (JavaScript reserves it); rename it`
        })
      )
    }
    const resolved = resolveTree(item, env, refs, fromEnv, dir, [...path, name])
    if (Either.isLeft(resolved)) return resolved
    out.push([name, resolved.right])
  }
  return Either.right(Array.isArray(value) ? out.map(([, item]) => item) : Object.fromEntries(out))
}

// --- mapping to runtime shapes ------------------------------------------------------------------------

const toPagination = (pagination: ConfigSchema.StreamConfig["source"]["pagination"]): Pagination => {
  if (pagination.type !== "cursor") return pagination
  const { fromRecord, hasMorePath, nextPath, param } = pagination
  if (fromRecord !== undefined) return { type: "cursor", param, fromRecord, hasMorePath }
  return { type: "cursor", param, nextPath: nextPath ?? "" } // the schema requires one of the two
}

const toStreamSpec = (stream: ConfigSchema.StreamConfig, schema: string): StreamSpec => {
  const { incremental: given, ...source } = stream.source
  const declared = stream.target.columns === undefined ? undefined : ConfigSchema.columnList(stream.target.columns)
  const incremental: Incremental | undefined = given && {
    ...given,
    cursorType: given.cursorType ?? RowDecoder.inferCursorType(
      given.initial,
      declared?.find((c) => c.name === RowDecoder.cursorColumnOf(declared, given.cursorField))?.type
    )
  }
  const { columns, cursorColumn } = declared === undefined
    ? RowDecoder.defaultColumns(stream.target.primaryKey, incremental)
    : { columns: declared, cursorColumn: incremental && RowDecoder.cursorColumnOf(declared, incremental.cursorField) }
  const target: TargetSpec = { schema, table: stream.target.table, primaryKey: stream.target.primaryKey, columns, cursorColumn }
  return {
    name: stream.name,
    source: { ...source, pagination: toPagination(source.pagination), incremental },
    target,
    decode: RowDecoder.fromColumns(target, incremental),
    maxInvalid: stream.maxInvalid
  }
}

const decodeOrSame = (text: string) => Either.getOrElse(Either.try(() => decodeURIComponent(text)), () => text)

/** The password inside `postgres://user:password@host/db`, as written and decoded. */
const databasePassword = (url: string): ReadonlyArray<string> => {
  const password = url !== "" && URL.canParse(url) ? new URL(url).password : ""
  return password === "" ? [] : [password, decodeOrSame(password)]
}

/**
 * Names are no secrets, even from the environment: a stream's name, its target (table, columns), the
 * schema and the checkpoint file are written into Ferry's own tables and messages as they are; so is
 * the initial cursor (it becomes the checkpoint).
 */
const isName = (path: ReadonlyArray<PropertyKey>): boolean => {
  const [top, , field, key, leaf] = path
  return top === "checkpoint" || (top === "database" && path[1] === "schema") ||
    (top === "streams" && (field === "name" || field === "target")) ||
    (top === "streams" && field === "source" && key === "incremental" && leaf === "initial")
}

/**
 * A short number (`${PAGE_SIZE}`, `${PGPORT}`) or a JSON literal is a setting, not a secret, and
 * replacing it would break the JSON log lines (`"fetched":1000` -> `"fetched":***`).
 */
const isPlain = (value: string): boolean => /^-?\d{1,7}(?:\.\d+)?$/.test(value) || ["true", "false", "null"].includes(value)

/** The values from the environment that are secrets: all but names and plain settings. */
const envSecrets = (fromEnv: ReadonlyArray<EnvValue>): ReadonlyArray<string> =>
  fromEnv.filter((v) => !isName(v.path) && !isPlain(v.value)).map((v) => v.value)

const toShape = (file: string, config: ConfigSchema.ConfigFile, fromEnv: ReadonlyArray<EnvValue>): FerryConfigShape => {
  const url = config.database.url ?? ""
  const streams = config.streams.map((stream) => toStreamSpec(stream, config.database.schema))
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
    const parsed = absolute.toLowerCase().endsWith(".json")
      ? Either.map(parseJson(text.replace(/^\uFEFF/, ""), absolute), (tree) => ({ tree, refs: [] }))
      : parseYaml(text, absolute)
    const fromEnv: Array<EnvValue> = []
    return parsed.pipe(
      Either.flatMap(({ refs, tree }) => resolveTree(tree, env, refs, fromEnv, nodePath.dirname(absolute))),
      Either.flatMap(ConfigSchema.decode),
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

/** A ready config, for tests and for applications that build StreamSpecs in code. */
export const layerTest = (config: FerryConfigShape): Layer.Layer<FerryConfig> => Layer.succeed(FerryConfig, config)

/** The JSON Schema of the file format, for editors; generated from the schema that validates. */
export const jsonSchema = (): object => ConfigSchema.jsonSchema()
