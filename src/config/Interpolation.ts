/**
 * `${VAR}`, `${VAR:-default}`, `${file:PATH}` and `$${` in the parsed config: read from the
 * environment (and from secret files) on the tree, after the syntax is parsed, so that a value never
 * goes through the YAML parser. Every value read is recorded with its path: all but names and plain
 * settings are secrets.
 */
import { Either } from "effect"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import * as Json from "../domain/Json.js"
import { ConfigError } from "../domain/Errors.js"
import { formatPath } from "./Messages.js"

export type Env = Record<string, string | undefined>

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

/** The text with its references hidden, and the references, by index. */
interface Hidden {
  readonly text: string
  readonly refs: ReadonlyArray<string>
}

export const hideReferences = (text: string): Hidden => {
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
    const fail = (reason: string) => Either.left(new ConfigError({ path: formatPath(path), reason }))
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
export interface EnvValue {
  readonly path: ReadonlyArray<PropertyKey>
  readonly value: string
}

/**
 * The parsed tree with hidden references restored (keys) and read from the environment (values);
 * each value read from the environment is pushed onto `fromEnv`.
 */
export const resolveTree = (
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
          path: formatPath([...path, name]),
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
export const envSecrets = (fromEnv: ReadonlyArray<EnvValue>): ReadonlyArray<string> =>
  fromEnv.filter((v) => !isName(v.path) && !isPlain(v.value)).map((v) => v.value)
