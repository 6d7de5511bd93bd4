/**
 * Parent → child streams from code (`StreamSpec.make` with `parent`), on the in-memory layers and a real
 * HTTP server: the parent runs first, the child once per parent row with the row's values in its URL,
 * each row with its own checkpoint; `ferry/testing`'s sink serves the parent rows as PgSink does
 * (primary key order, rows marked deleted left out).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Schema } from "effect"
import * as Parent from "../src/domain/Parent.js"
import * as StreamSpec from "../src/domain/StreamSpec.js"
import * as HttpSource from "../src/source/http/HttpSource.js"
import { syncAll } from "../src/sync/Sync.js"
import * as Memory from "../src/testing/index.js"
import { json, startServer } from "./support/http.js"

const Team = Schema.Struct({ slug: Schema.String, name: Schema.String })
const Member = Schema.Struct({ login: Schema.String, seen: Schema.String })

describe("StreamSpec.make with parent", () => {
  it.scopedLive("reads each parent row's URL, in key order, with a checkpoint per parent row", () =>
    Effect.gen(function*() {
      const members: Record<string, Array<{ login: string; seen: string }>> = {
        "a b": [{ login: "ann", seen: "2024-01-02T00:00:00Z" }],
        core: [{ login: "bob", seen: "2024-03-01T00:00:00Z" }, { login: "cy", seen: "2024-02-01T00:00:00Z" }]
      }
      const server = yield* Effect.acquireRelease(
        Effect.promise(() =>
          startServer((_req, res, url) => {
            if (url.pathname === "/teams") return json(res, [{ slug: "core", name: "Core" }, { slug: "a b", name: "Spaced" }])
            const slug = decodeURIComponent(/^\/teams\/(.+)\/members$/.exec(url.pathname)?.[1] ?? "")
            json(res, (members[slug] ?? []).filter((m) => m.seen >= (url.searchParams.get("since") ?? "")))
          })
        ),
        (s) => Effect.promise(() => s.close())
      )
      const teams = StreamSpec.make({ name: "teams", schema: Team, source: { url: `${server.url}/teams` }, target: { table: "teams", primaryKey: ["slug"] } })
      const teamMembers = StreamSpec.make({
        name: "members",
        schema: Member,
        parent: teams,
        source: { url: `${server.url}/teams/{parent.slug}/members`, params: { team: "{parent.name}" } },
        incremental: { cursorField: "seen", param: "since", initial: "2020-01-01T00:00:00Z", order: "asc" },
        target: { table: "members", primaryKey: ["login"] }
      })
      const db = Memory.make()
      // listed child first: the parent still runs first
      const summaries = yield* syncAll([teamMembers, teams], { runId: "r1" }).pipe(
        Effect.provide(Memory.layer(db)),
        Effect.provide(HttpSource.layerNode)
      )
      expect(summaries.map((s) => [s.stream, s.status, s.inserted])).toEqual([["teams", "succeeded", 2], ["members", "succeeded", 3]])
      expect(summaries[1]!.parents).toEqual({ read: 2, skipped: 0 })
      const childRequests = server.requests.filter((r) => r.url.pathname.endsWith("/members"))
      expect(childRequests.map((r) => [r.url.pathname, r.url.searchParams.get("team")])).toEqual([
        ["/teams/a%20b/members", "Spaced"],
        ["/teams/core/members", "Core"]
      ])
      const checkpoints = Object.fromEntries([...db.state.checkpoints].filter(([k]) => k.startsWith("members@")))
      expect(checkpoints).toEqual({
        "members@public.members [\"a b\"]": "2024-01-02T00:00:00Z",
        "members@public.members [\"core\"]": "2024-03-01T00:00:00Z"
      })
      // a second run reads each team from its own checkpoint
      server.requests.length = 0
      yield* syncAll([teams, teamMembers], { runId: "r2" }).pipe(Effect.provide(Memory.layer(db)), Effect.provide(HttpSource.layerNode))
      const since = server.requests.filter((r) => r.url.pathname.endsWith("/members")).map((r) => r.url.searchParams.get("since"))
      expect(since).toEqual(["2024-01-02T00:00:00Z", "2024-03-01T00:00:00Z"])
      expect(db.state.tables.get("public.members")?.size).toBe(3)
    }))
})

describe("Parent.streamFor", () => {
  const row = { key: "[\"7\"]", values: { id: "9007199254740993", name: "a \"quoted\" {cursor} name" } }
  const stream = (source: { body?: unknown; graphql?: { query: string; variables: Record<string, unknown> } }) => ({
    source: { url: "https://api.example/items", params: {}, headers: {}, ...source },
    decode: (raw: unknown) => raw
  })

  it("fills a POST body's strings with the row's values as text, and leaves the other placeholders for each page", () => {
    const filled = Parent.streamFor(stream({ body: { filter: { account: "{parent.id}", label: "for {parent.name}" }, after: "{cursor}", n: 5 } }), row)
    expect(Either.getOrThrow(filled).source.body).toEqual({
      filter: { account: "9007199254740993", label: "for a \"quoted\" {cursor} name" },
      after: "{cursor}",
      n: 5
    })
  })

  it("fills GraphQL variables, never the query's text; an absent value skips the row", () => {
    const query = "query($a: ID!) { x(a: $a) { id } }"
    const filled = Either.getOrThrow(Parent.streamFor(stream({ graphql: { query, variables: { a: "{parent.id}", list: ["{parent.id}", 1] } } }), row))
    expect(filled.source.graphql).toEqual({ query, variables: { a: "9007199254740993", list: ["9007199254740993", 1] } })
    const absent = Parent.streamFor(stream({ body: { a: "{parent.missing}" } }), row)
    expect(Either.isLeft(absent) && absent.left).toBe("{parent.missing}: parent column missing is null")
  })
})
