// Loads the built bundle (dist/index.mjs), building it first when it is
// missing or older than host/ or assembly/, so the bench measures the code
// in the tree and not a stale build.

import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

function newestMtime(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return t;
}

export async function loadBuiltLibrary() {
  const bundle = join(ROOT, "dist/index.mjs");
  const sources = Math.max(newestMtime(join(ROOT, "host")), newestMtime(join(ROOT, "assembly")));
  if (!existsSync(bundle) || statSync(bundle).mtimeMs < sources) {
    process.stderr.write("bench: dist/ is missing or older than the sources; running npm run build\n");
    // The build's output goes to stderr: stdout carries only the table.
    const r = spawnSync("npm", ["run", "build"], { cwd: ROOT, stdio: ["ignore", 2, 2] });
    if (r.status !== 0) throw new Error(`npm run build failed (exit ${r.status})`);
  }
  return import(pathToFileURL(bundle).href);
}
