// `npm test`: build if anything changed since the last build, type-check, then
// run the whole vitest suite (the runtime smoke tests for Deno and Bun are part
// of it). scripts/count-reporter.mjs counts every failure (tests, hooks, files
// that fail to load, unhandled errors) for .ci/run's summary line.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
function newest(dir) {
  let t = 0;
  for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(join(root, p)).mtimeMs);
  }
  return t;
}
const built = join(root, "dist/index.mjs");
const stale = !existsSync(built) || Math.max(newest("host"), newest("assembly")) > statSync(built).mtimeMs;
// Until vitest reports, this run has not finished: a build or type-check
// failure must never leave an earlier run's counts to be read as this one's.
mkdirSync(join(root, "build"), { recursive: true });
writeFileSync(join(root, "build/test-counts.json"), JSON.stringify({ finished: false }));
const run = (cmd, args) => {
  const r = spawnSync(cmd, args, { cwd: root, stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
if (stale || !existsSync(join(root, "host/wasm/binary.generated.ts"))) run("npm", ["run", "build"]);
// Type-check the sources and the tests together (vitest itself does not).
run("npx", ["tsc", "-p", "tsconfig.tests.json"]);
const extra = process.argv.slice(2);
const r = spawnSync("npx", ["vitest", "run", "--reporter=default", "--reporter=./scripts/count-reporter.mjs", ...extra], { cwd: root, stdio: "inherit" });
process.exit(r.status ?? 1);
