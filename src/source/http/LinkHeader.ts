/**
 * The RFC 8288 `Link` header: parsing it, and its `rel="next"` target (`type: link` without `nextPath`,
 * and the `source.more_pages` hint).
 */
import { Option } from "effect"

export interface Link {
  readonly target: string
  readonly params: Readonly<Record<string, string>>
}

/**
 * Parse an RFC 8288 `Link` header value: `<a>; rel="next", <b>; rel=last; title="x, y"`. Commas and
 * semicolons inside `<...>` and quoted strings do not split; parameter names are lower-cased.
 */
export const parseLinkHeader = (header: string): ReadonlyArray<Link> => {
  const links: Array<Link> = []
  let i = 0
  const n = header.length
  const skipSpace = () => {
    while (i < n && (header[i] === " " || header[i] === "\t")) i++
  }
  while (i < n) {
    skipSpace()
    if (header[i] !== "<") {
      // not a link-value: skip to the next top-level comma
      while (i < n && header[i] !== ",") i++
      i++
      continue
    }
    const close = header.indexOf(">", i)
    if (close < 0) break
    const target = header.slice(i + 1, close).trim()
    i = close + 1
    const params: Record<string, string> = {}
    for (;;) {
      skipSpace()
      if (header[i] !== ";") break
      i++
      skipSpace()
      let name = ""
      while (i < n && !"=;, \t".includes(header[i]!)) name += header[i++]
      skipSpace()
      let value = ""
      if (header[i] === "=") {
        i++
        skipSpace()
        if (header[i] === "\"") {
          i++
          while (i < n && header[i] !== "\"") {
            if (header[i] === "\\" && i + 1 < n) i++
            value += header[i++]
          }
          i++
        } else {
          while (i < n && !";, \t".includes(header[i]!)) value += header[i++]
        }
      }
      const key = name.toLowerCase()
      // RFC 8288: only the first occurrence of a parameter counts
      if (key !== "" && !(key in params)) params[key] = value
    }
    links.push({ target, params })
    skipSpace()
    if (header[i] === ",") i++
    else {
      while (i < n && header[i] !== ",") i++
      i++
    }
  }
  return links
}

/** The `rel="next"` target of a Link header, resolved against the request URL. */
export const nextLink = (header: string, base: URL): Option.Option<URL> => {
  for (const link of parseLinkHeader(header)) {
    const rels = (link.params["rel"] ?? "").toLowerCase().split(/\s+/)
    if (!rels.includes("next")) continue
    try {
      return Option.some(new URL(link.target, base))
    } catch {
      continue
    }
  }
  return Option.none()
}
