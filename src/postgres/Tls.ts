/**
 * TLS to PostgreSQL as libpq documents it: `sslmode`, `sslrootcert`, `sslcert` and `sslkey` in the
 * URL (else PGSSLMODE, PGSSLROOTCERT, PGSSLCERT, PGSSLKEY; else libpq's default, `prefer`).
 *
 * node-postgres reads these parameters itself, differently: `require` and `prefer` verify like
 * `verify-full`, `prefer` fails against a server without TLS, and it prints a plain-text SECURITY
 * WARNING to stderr. So Ferry takes them out of the URL and hands pg the TLS options libpq would use:
 *
 * | sslmode     | TLS                          | certificate checked                                |
 * | disable     | never                        | -                                                  |
 * | allow       | never (libpq: if refused, tries TLS) | -                                          |
 * | prefer      | if the server offers it      | no                                                 |
 * | require     | always                       | no; with a root certificate file, as verify-ca     |
 * | verify-ca   | always                       | signed by the root certificate(s)                  |
 * | verify-full | always                       | signed, and issued for the host connected to      |
 *
 * The root certificate is `sslrootcert` (`system`: Node's public CAs), else `~/.postgresql/root.crt`;
 * a client certificate is `sslcert`/`sslkey`, else `~/.postgresql/postgresql.crt|key` when present.
 */
import { Either } from "effect"
import { existsSync, readFileSync } from "node:fs"
import { homedir } from "node:os"
import { join } from "node:path"
import type { ConnectionOptions } from "node:tls"
import { ConfigError } from "../domain/Errors.js"

type SslMode = "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full"

const modes: ReadonlyArray<SslMode> = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

/** the URL parameters that are Ferry's to interpret, not pg's */
const tlsParams = ["sslmode", "sslrootcert", "sslcert", "sslkey", "ssl", "uselibpqcompat"] as const

export interface Tls {
  /** the URL without its TLS parameters, for pg */
  readonly url: string
  readonly mode: SslMode
  /** pg's `ssl` option for the first attempt */
  readonly ssl: false | ConnectionOptions
  /** `prefer`: a server that refuses TLS is connected to again without it */
  readonly plainIfRefused: boolean
}

/** what pg says when the server answers `N` to its SSLRequest */
export const isTlsRefused = (error: unknown): boolean =>
  error instanceof Error && /does not support SSL/i.test(error.message)

export interface Environment {
  readonly env: Readonly<Record<string, string | undefined>>
  /** `~`, for `~/.postgresql/`; default the user's home */
  readonly home?: string | undefined
}

const invalid = (reason: string) => new ConfigError({ path: "database.url", reason })

const readFile = (path: string, what: string): Either.Either<string, ConfigError> => {
  try {
    return Either.right(readFileSync(path, "utf8"))
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    return Either.left(invalid(`cannot read the ${what} ${path} (${code ?? String(e)})`))
  }
}

/** The TLS settings of a connection URL; a bad `sslmode` or an unreadable certificate file is a 78. */
export const fromUrl = (url: string, environment: Environment): Either.Either<Tls, ConfigError> =>
  Either.gen(function*() {
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      // not ours to judge: pg reports a URL it cannot parse
      return { url, mode: "prefer" as SslMode, ssl: false as const, plainIfRefused: true }
    }
    const env = environment.env
    const query = new URLSearchParams(parsed.searchParams)
    const param = (name: string, variable: string): string | undefined => {
      const value = query.get(name) ?? env[variable]
      return value === undefined || value === "" ? undefined : value
    }
    const given = param("sslmode", "PGSSLMODE") ?? "prefer"
    if (!(modes as ReadonlyArray<string>).includes(given)) {
      return yield* Either.left(invalid(`sslmode=${given} is not one of ${modes.join(", ")}`))
    }
    const mode = given as SslMode
    for (const name of tlsParams) parsed.searchParams.delete(name)
    const stripped = parsed.toString()
    if (mode === "disable" || mode === "allow") return { url: stripped, mode, ssl: false, plainIfRefused: false }

    const dir = join(environment.home ?? homedir(), ".postgresql")
    const ssl: { -readonly [K in keyof ConnectionOptions]: ConnectionOptions[K] } = {}
    const rootcert = param("sslrootcert", "PGSSLROOTCERT")
    const defaultRoot = join(dir, "root.crt")
    const verify = mode === "verify-ca" || mode === "verify-full"
    if (rootcert === "system") {
      // Node's bundled public CAs (the default when `ca` is not set)
    } else if (rootcert !== undefined) {
      ssl.ca = yield* readFile(rootcert, "root certificate file (sslrootcert)")
    } else if (existsSync(defaultRoot)) {
      ssl.ca = yield* readFile(defaultRoot, "root certificate file")
    } else if (verify) {
      return yield* Either.left(
        invalid(
          `sslmode=${mode} needs a root certificate: set sslrootcert=/path/to/ca.crt in the URL ` +
            `(or sslrootcert=system for the public CAs), or put it in ${defaultRoot}`
        )
      )
    }
    const cert = param("sslcert", "PGSSLCERT") ?? (existsSync(join(dir, "postgresql.crt")) ? join(dir, "postgresql.crt") : undefined)
    const key = param("sslkey", "PGSSLKEY") ?? (existsSync(join(dir, "postgresql.key")) ? join(dir, "postgresql.key") : undefined)
    if (cert !== undefined) ssl.cert = yield* readFile(cert, "client certificate file (sslcert)")
    if (key !== undefined) ssl.key = yield* readFile(key, "client key file (sslkey)")

    // require/prefer check nothing, unless require has a root certificate (then as verify-ca: libpq)
    const checkChain = verify || (mode === "require" && ssl.ca !== undefined)
    ssl.rejectUnauthorized = checkChain
    if (checkChain && mode !== "verify-full") ssl.checkServerIdentity = () => undefined
    return { url: stripped, mode, ssl, plainIfRefused: mode === "prefer" }
  })
