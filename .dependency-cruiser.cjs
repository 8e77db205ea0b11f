// The one-way dependency rule, checked by `npm run lint` (its `lint:deps` step runs depcruise with this file).
//
//   packages/contracts   imports effect and node builtins only
//   packages/platform    never runtime/, actors/, app/, bench/, packages/client or packages/testing
//   packages/client      imports contracts, effect and node builtins only
//   packages/testing     imports contracts, platform, effect and node builtins only
//   runtime/             the host: packages and npm; never actors/ or app/ (it folds the modules it is handed)
//   actors/<kind>/       packages and npm; never runtime/ or app/
//   app/                 the entry points, listing the seed modules: imports anything, imported by nothing
//   bench/, test/        dev code: import anything but app/; nothing outside bench/ imports bench/
//
// Tests (`*.test.ts` and the helpers in test/) are held to fewer rules, all listed here: no cycles anywhere;
// runtime/ tests still never import actors/ or app/ (the host is tested without the seed actors); package tests may
// use the helpers in test/, and packages/testing's example test may use a seed actor (actors/probe) as its subject;
// actor tests may import runtime/ to host the actor under test. No source file imports a test file or test/.
//
// Imports by bare specifier (`@tessera/runtime/config`) go through the workspace symlinks in node_modules/@tessera;
// with preserveSymlinks false they resolve to the real folders (runtime/config.ts), so the path rules below see
// them exactly as relative imports. test/depcruise.test.ts cruises a planted tree with this file
// and checks that such a violation, and one of every rule, is caught.

const TEST = "(\\.test\\.ts$|^test/)"
const EFFECT = "^node_modules/effect/"

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "no-circular",
      comment: "1. No import cycles, in any file, tests included.",
      severity: "error",
      from: {},
      to: { circular: true }
    },
    {
      name: "contracts-only-effect",
      comment: "2. packages/contracts imports only itself, effect and node builtins (its tests may use dev tools).",
      severity: "error",
      from: { path: "^packages/contracts/", pathNot: "\\.test\\.ts$" },
      to: { dependencyTypesNot: ["core"], pathNot: ["^packages/contracts/", EFFECT] }
    },
    {
      name: "platform-not-upward",
      comment: "3. packages/platform never imports the client or the test kit (runtime/, actors/, app/: see below).",
      severity: "error",
      from: { path: "^packages/platform/" },
      to: { path: "^packages/(client|testing)/" }
    },
    {
      name: "packages-not-upward",
      comment: "4. No file under packages/, tests included, imports runtime/, app/ or bench/.",
      severity: "error",
      from: { path: "^packages/" },
      to: { path: "^(runtime|app|bench)/" }
    },
    {
      name: "packages-not-on-actors",
      comment:
        "4. Nothing under packages/ imports actors/, but packages/testing's example test (a seed actor is its subject).",
      severity: "error",
      from: { path: "^packages/", pathNot: "^packages/testing/.*\\.test\\.ts$" },
      to: { path: "^actors/" }
    },
    {
      name: "client-only-contracts",
      comment: "5. packages/client depends only on itself, contracts, effect and node builtins.",
      severity: "error",
      from: { path: "^packages/client/", pathNot: TEST },
      to: { dependencyTypesNot: ["core"], pathNot: ["^packages/(client|contracts)/", EFFECT] }
    },
    {
      name: "testing-only-contracts-platform",
      comment: "5. packages/testing depends only on itself, contracts, platform, effect and node builtins.",
      severity: "error",
      from: { path: "^packages/testing/", pathNot: TEST },
      to: { dependencyTypesNot: ["core"], pathNot: ["^packages/(testing|contracts|platform)/", EFFECT] }
    },
    {
      name: "runtime-names-no-actor",
      comment: "6. The host never imports actors/ or app/, in tests too: it folds the modules it is handed.",
      severity: "error",
      from: { path: "^runtime/" },
      to: { path: "^(actors|app)/" }
    },
    {
      name: "actors-not-on-host",
      comment: "7. Actor source never imports runtime/ or app/ (actor tests may import runtime/ to host the actor).",
      severity: "error",
      from: { path: "^actors/", pathNot: TEST },
      to: { path: "^(runtime|app)/" }
    },
    {
      name: "no-test-code-in-source",
      comment: "Source under packages/, runtime/, actors/ and app/ never imports test files or test/ helpers.",
      severity: "error",
      from: { path: "^(packages|runtime|actors|app)/", pathNot: TEST },
      to: { path: TEST }
    },
    {
      name: "nothing-imports-app",
      comment: "app/ holds entry points: nothing imports them.",
      severity: "error",
      from: { pathNot: "^app/" },
      to: { path: "^app/" }
    },
    {
      name: "nothing-imports-bench",
      comment: "bench/ is a leaf: nothing outside it imports it.",
      severity: "error",
      from: { pathNot: "^bench/" },
      to: { path: "^bench/" }
    },
    {
      name: "not-to-unresolvable",
      comment: "Every import resolves: an import the cruiser cannot follow would slip past the rules above.",
      severity: "error",
      from: {},
      to: { couldNotResolve: true }
    }
  ],
  options: {
    // TypeScript 7 has no JS compiler API, so the cruiser parses .ts with swc (which keeps type-only imports).
    parser: "swc",
    // The folders to cruise are named in package.json's `lint:deps`; node_modules is never entered.
    exclude: { path: "(^|/)(\\.sst|\\.tessera|\\.pack|dist)/" },
    doNotFollow: { path: "node_modules" },
    // Resolve the workspace symlinks node_modules/@tessera/* to packages/* and runtime/, so the rules see real paths.
    preserveSymlinks: false,
    moduleSystems: ["es6", "cjs"],
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default", "types"],
      mainFields: ["module", "main", "types", "typings"],
      extensions: [".ts", ".d.ts", ".js", ".mjs", ".cjs", ".json"]
    }
  }
}
