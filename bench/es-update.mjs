#!/usr/bin/env node
// Mapping lookups after allocations: what range-precise extent status updates
// save over dropping the whole cached mapping at every change (what every
// block-map change did before: bumpExtentSeq's shrink(true) + invalidate).
// Each workload allocates blocks one call at a time through ext4MapBlocks
// (CREATE) and maps blocks of the file through fs.mapBlocks between
// allocations, as a writer interleaved with reads of what it wrote would:
//
//   random   3000 one-block allocations at random places of a 400 MiB range (a fragmented
//            tree of depth 1-2), then 32 lookups of random blocks mapped so far
//   append   6000 one-block appends (one growing extent), then 8 lookups of the last blocks
//
// "full drop" calls the old whole drop (bumpExtentSeq, still exported for
// error paths) after each allocation; "range" is the code as it is. Both run
// on a fresh copy of the same image, interleaved, 5 passes each (first is
// warm-up); medians of wall and CPU time. The fs layer is internal, so host/
// is bundled here with esbuild.   node bench/es-update.mjs [--quick]

import { buildSync } from "esbuild";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const quick = process.argv.includes("--quick");
const PASSES = quick ? 3 : 5;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-bench-es-"));

function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

try {
  const entry = path.join(tmp, "entry.ts");
  fs.writeFileSync(entry, [
    `export { mount } from ${JSON.stringify(path.join(ROOT, "host/index.ts"))};`,
    `export { ext4MapBlocks, GET_BLOCKS } from ${JSON.stringify(path.join(ROOT, "host/fs/map-blocks.ts"))};`,
    `export { bumpExtentSeq } from ${JSON.stringify(path.join(ROOT, "host/fs/extents.ts"))};`,
  ].join("\n"));
  const out = path.join(tmp, "bundle.mjs");
  buildSync({ entryPoints: [entry], bundle: true, format: "esm", platform: "node", outfile: out, logLevel: "warning" });
  const lib = await import(pathToFileURL(out).href);

  const src = path.join(tmp, "src");
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, "f"), "");
  const base = path.join(tmp, "base.img");
  execFileSync("mkfs.ext4", ["-q", "-F", "-O", "^has_journal", "-b", "4096", "-d", src, base, "1G"], { stdio: "ignore" });

  const workloads = {
    random: { allocs: quick ? 1000 : 3000, lookups: 32, seed: 0xe5 },
    append: { allocs: quick ? 2000 : 6000, lookups: 8, seed: 0xa9 },
  };

  /** One pass: returns wall and CPU ms of the allocation + lookup loop. */
  function pass(name, fullDrop) {
    const w = workloads[name];
    const img = path.join(tmp, "run.img");
    fs.copyFileSync(base, img);
    const vol = lib.mount(img, { cacheSize: 64 << 20 });
    try {
      const f = vol.fs;
      const inode = f.iget(Number(vol.statSync("/f").ino));
      const r = rng(w.seed);
      const mapped = [];
      const seen = new Set();
      let h = f.startHandle(64);
      const cpu0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < w.allocs; i++) {
        if (h.credits < 32) { h.stop(); h = f.startHandle(64); }
        let lblk;
        if (name === "append") lblk = i;
        else do lblk = Math.floor(r() * 100000); while (seen.has(lblk));
        seen.add(lblk);
        lib.ext4MapBlocks(h, f, inode, { lblk, len: 1 }, lib.GET_BLOCKS.CREATE);
        if (fullDrop) lib.bumpExtentSeq(inode);
        mapped.push(lblk);
        for (let q = 0; q < w.lookups; q++) {
          const b = name === "append" ? Math.max(0, i - q) : mapped[Math.floor(r() * mapped.length)];
          if (f.mapBlocks(inode, b, 1).pblk === 0) throw new Error(`block ${b} not mapped`);
        }
      }
      const t1 = process.hrtime.bigint();
      const cpu = process.cpuUsage(cpu0);
      h.stop();
      f.iput(inode);
      return { wall: Number(t1 - t0) / 1e6, cpu: (cpu.user + cpu.system) / 1000 };
    } finally {
      vol.unmount();
      fs.rmSync(img, { force: true });
    }
  }

  const rows = [];
  for (const name of Object.keys(workloads)) {
    process.stderr.write(`es-update bench: ${name}\n`);
    const res = { full: [], range: [] };
    for (let p = 0; p < PASSES; p++) {
      for (const mode of ["full", "range"]) {
        const m = pass(name, mode === "full");
        if (p > 0) res[mode].push(m);
      }
    }
    const w = workloads[name];
    const ops = w.allocs * (1 + w.lookups);
    const fw = median(res.full.map((x) => x.wall)), rw = median(res.range.map((x) => x.wall));
    const fc = median(res.full.map((x) => x.cpu)), rc = median(res.range.map((x) => x.cpu));
    rows.push(`| ${name} | ${w.allocs} allocs x ${w.lookups} lookups | ${fw.toFixed(0)} / ${fc.toFixed(0)} | ${rw.toFixed(0)} / ${rc.toFixed(0)} | ${(fc / rc).toFixed(1)}x | ${((rc * 1e6) / ops).toFixed(0)} ns |`);
  }
  console.log("| workload | operations | full drop: wall / CPU ms | range: wall / CPU ms | CPU ratio | range CPU per call |");
  console.log("|---|---|---|---|---|---|");
  for (const r of rows) console.log(r);
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
