/**
 * The layering of src/ (README "Layout"), checked in CI by `npm run lint:deps`:
 * domain <- ports (Source, Sink, CheckpointStore) <- sync (the program);
 * adapters (source/, sink/, checkpoint/, postgres/, embedded/) implement the ports;
 * cli/ (and the library entry, index.ts) is the only place that picks adapters.
 * lib/ holds helpers with no Ferry concept; config/ reads the file into domain values.
 */
const ports = "^src/(Source|Sink|CheckpointStore)\\.ts$"
const adapters = "^src/(source|sink|checkpoint|postgres|embedded)/"

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    { name: "no-circular", severity: "error", comment: "an import cycle", from: {}, to: { circular: true } },
    {
      name: "domain-imports-only-effect",
      severity: "error",
      comment: "domain/ is the model: it imports effect and itself, nothing else",
      from: { path: "^src/domain/" },
      to: { pathNot: ["^src/domain/", "^node_modules/effect/"] }
    },
    {
      name: "ports-import-only-domain",
      severity: "error",
      from: { path: ports },
      to: { pathNot: ["^src/domain/", "^node_modules/effect/"] }
    },
    {
      name: "lib-imports-no-ferry-concept",
      severity: "error",
      comment: "lib/ is general-purpose: effect, node, and the domain's errors",
      from: { path: "^src/lib/" },
      to: { path: "^src/", pathNot: ["^src/lib/", "^src/domain/Errors\\.ts$"] }
    },
    {
      name: "sync-imports-ports-and-domain",
      severity: "error",
      comment: "the program knows the ports, not HTTP or SQL",
      from: { path: "^src/sync/" },
      to: { path: "^src/", pathNot: ["^src/sync/", "^src/domain/", "^src/lib/", ports] }
    },
    {
      name: "sync-imports-no-platform",
      severity: "error",
      from: { path: "^src/sync/" },
      to: { dependencyTypes: ["npm", "npm-dev", "npm-peer", "core"], pathNot: ["^node_modules/effect/"] }
    },
    {
      name: "config-reads-into-domain",
      severity: "error",
      from: { path: "^src/config/" },
      to: { path: "^src/", pathNot: ["^src/config/", "^src/domain/", "^src/lib/"] }
    },
    {
      name: "testing-implements-ports",
      severity: "error",
      comment: "the in-memory layers (ferry/testing) stand for adapters: ports and domain only",
      from: { path: "^src/testing/" },
      to: { path: "^src/", pathNot: ["^src/testing/", "^src/domain/", "^src/lib/", ports] }
    },
    {
      name: "only-cli-picks-adapters",
      severity: "error",
      comment: "adapters are chosen in cli/ (and exported by index.ts), not imported by the program",
      from: { path: "^src/", pathNot: ["^src/cli/", "^src/index\\.ts$", adapters] },
      to: { path: adapters }
    },
    {
      name: "adapters-stay-apart",
      severity: "error",
      comment: "an adapter uses the ports, the domain, lib/ and the shared postgres/ connection; not another adapter",
      from: { path: adapters },
      to: { path: "^src/", pathNot: ["^src/domain/", "^src/lib/", "^src/postgres/", ports, "^src/$1/"] }
    },
    {
      name: "only-cli-loads-the-worker",
      severity: "error",
      comment: "worker/ loads pg-boss (Node 22.12+): only the worker and enqueue commands may reach it, never the library",
      from: { path: "^src/", pathNot: ["^src/cli/", "^src/worker/"] },
      to: { path: "^src/worker/" }
    },
    {
      name: "nothing-imports-cli",
      severity: "error",
      from: { path: "^src/", pathNot: ["^src/cli/"] },
      to: { path: "^src/cli/" }
    }
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default", "types"] }
  }
}
