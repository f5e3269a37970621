// mkfs against mke2fs: wall time and bytes actually allocated (du) for new
// sparse images. `node bench/mkfs.mjs [SIZE ...]` (default 4G 1T), in a temp
// dir on the filesystem of $TMPDIR. Uses the built bundle (npm run build).

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { mkfs } from "../dist/index.mjs";

const sizes = process.argv.slice(2).length ? process.argv.slice(2) : ["4G", "1T"];
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-bench-mkfs-"));
const allocated = (f) => fs.statSync(f).blocks * 512;
const mib = (n) => `${(n / 2 ** 20).toFixed(1)} MiB`;

try {
  console.log("| size | tool | time | allocated |\n| --- | --- | --- | --- |");
  for (const size of sizes) {
    const img = path.join(dir, "img");
    const runs = { ours: [], mke2fs: [] };
    let alloc = {};
    for (let i = 0; i < 3; i++) {
      fs.rmSync(img, { force: true });
      let t = performance.now();
      mkfs(img, { size });
      runs.ours.push(performance.now() - t);
      alloc.ours = allocated(img);
      fs.rmSync(img, { force: true });
      t = performance.now();
      const r = spawnSync("mkfs.ext4", ["-q", "-F", img, size], { stdio: "ignore" });
      runs.mke2fs.push(performance.now() - t);
      if (r.status !== 0) throw new Error(`mkfs.ext4 ${size} failed`);
      alloc.mke2fs = allocated(img);
    }
    fs.rmSync(img, { force: true });
    for (const tool of ["ours", "mke2fs"]) {
      const best = Math.min(...runs[tool]);
      console.log(`| ${size} | ${tool === "ours" ? "ext4wasm mkfs (in process)" : "mkfs.ext4 (process)"} | ${best.toFixed(0)} ms | ${mib(alloc[tool])} |`);
    }
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
