// The built package (dist/) is what the CLI and runtime tests exercise. `npm
// test` builds first; a test file run alone rebuilds a stale dist/ itself,
// under a lock, since test files run in parallel and a build empties dist/.

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const OUTPUTS = ["dist/index.mjs", "dist/index.cjs", "dist/cli.mjs", "dist/types/index.d.ts"];
const LOCK = path.join(ROOT, "build", ".build-lock");

function newestMtime(dir: string): number {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestMtime(p) : fs.statSync(p).mtimeMs);
  }
  return t;
}

function stale(): boolean {
  const outputs = OUTPUTS.map((p) => path.join(ROOT, p));
  if (outputs.some((p) => !fs.existsSync(p))) return true;
  const sources = Math.max(newestMtime(path.join(ROOT, "host")), newestMtime(path.join(ROOT, "assembly")));
  return Math.min(...outputs.map((p) => fs.statSync(p).mtimeMs)) < sources;
}

/** Runs `npm run build` when dist/ is missing or older than host/ or assembly/. */
export function ensureBuilt(): void {
  if (!stale()) return;
  fs.mkdirSync(path.dirname(LOCK), { recursive: true });
  const deadline = Date.now() + 300_000;
  for (;;) {
    try {
      fs.mkdirSync(LOCK);
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`timed out waiting for another build (${LOCK})`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
    }
  }
  try {
    if (!stale()) return; // another test file built it while we waited
    console.log("dist/ is missing or older than the sources; running npm run build");
    const r = spawnSync("npm", ["run", "build"], { cwd: ROOT, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`npm run build failed (${r.status})\n${r.stdout}\n${r.stderr}`);
  } finally {
    fs.rmdirSync(LOCK);
  }
}
