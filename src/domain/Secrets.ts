/**
 * Secrets: the values of a stream's auth, and the redactor that replaces every form a secret takes in
 * text Ferry writes (logs, errors, `ferry.runs`) with `***`.
 */
import { FiberRef, Redacted } from "effect"
import type { Auth } from "./Auth.js"

/**
 * The forms a secret takes in text Ferry writes: as is, URL-encoded (as a component, as a query value,
 * as a path segment: three different encodings) and escaped inside a JSON string (a JSON log line).
 */
const formsOf = (value: string): ReadonlyArray<string> => {
  const forms = [value, encodeURIComponent(value), new URLSearchParams({ v: value }).toString().slice(2)]
  try {
    forms.push(new URL(`http://h/${value}`).pathname.slice(1), new URL(`http://h/?${value}`).search.slice(1))
  } catch {
    // not a URL part at all: the other forms remain
  }
  forms.push(JSON.stringify(value).slice(1, -1))
  // a path drops its `.` and `..` segments: a shorter form is no longer the secret
  return [...new Set(forms)].filter((form) => form.length >= value.length)
}

/**
 * Replaces every secret it holds with `***`. Immutable: `with` makes a new redactor, so a run's
 * redactor (`CurrentRedactor`) is never changed under another run. Secrets shorter than 4 characters
 * are ignored (too many false hits).
 */
export class Redactor {
  static readonly empty = new Redactor([])
  /** every form of every secret, longest first, so a secret containing another is replaced whole */
  private constructor(private readonly forms: ReadonlyArray<string>) {}
  with(values: Iterable<string>): Redactor {
    const forms = new Set(this.forms)
    for (const value of values) {
      if (value.length < 4) continue
      for (const form of formsOf(value)) forms.add(form)
    }
    return forms.size === this.forms.length ? this : new Redactor([...forms].sort((a, b) => b.length - a.length))
  }
  redact(text: string): string {
    let out = text
    for (const secret of this.forms) if (out.includes(secret)) out = out.split(secret).join("***")
    return out
  }
}

/** The secret values of an auth config (empty strings are no secrets: replacing "" would mangle text). */
export const secretsOf = (auth: Auth | undefined): ReadonlyArray<string> => {
  if (auth === undefined) return []
  const values = ((): ReadonlyArray<string> => {
    switch (auth.type) {
      case "bearer":
        return [Redacted.value(auth.token)]
      case "basic": {
        const password = Redacted.value(auth.password)
        return [password, basicCredentials(auth.username, password)]
      }
      case "header":
      case "query":
        return [Redacted.value(auth.value)]
      case "oauth2":
        return [Redacted.value(auth.clientSecret), ...(auth.refreshToken ? [Redacted.value(auth.refreshToken)] : [])]
    }
  })()
  return values.filter((v) => v.length > 0)
}

/** UTF-8, unlike `btoa` (which HttpClientRequest.basicAuth uses and which throws on non-Latin-1 text). */
export const basicCredentials = (username: string, password: string) =>
  Buffer.from(`${username}:${password}`, "utf8").toString("base64")

/**
 * The redactor of the current run, per fiber: the CLI sets it from the config's secrets (`Effect.locally`);
 * Sync and the logger read it. Two applications (or two runs) in one process never see each other's.
 */
export const CurrentRedactor: FiberRef.FiberRef<Redactor> = FiberRef.unsafeMake(Redactor.empty)
