#!/usr/bin/env node
// Block allocator benchmark and layout figures: how long allocating 1 GiB
// takes (as a file's writeback would: each request after the last run, at
// most one extent's worth, 32768 blocks), how many runs 64 MiB gets on an
// empty and on a fragmented filesystem. The allocator is internal (not in
// the public bundle), so host/ is bundled here with esbuild for the run.
//
//   node bench/mballoc.mjs            4k, 1k and bigalloc images, 5 timed passes each
//
// Markdown to stdout, progress to stderr. Images live in a temp dir, removed at the end.

import { buildSync } from "esbuild";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-bench-mballoc-"));

try {
  const entry = path.join(tmp, "entry.ts");
  fs.writeFileSync(entry, [
    `export { mount } from ${JSON.stringify(path.join(ROOT, "host/index.ts"))};`,
    `export * from ${JSON.stringify(path.join(ROOT, "host/fs/mballoc.ts"))};`,
  ].join("\n"));
  const out = path.join(tmp, "bundle.mjs");
  buildSync({ entryPoints: [entry], bundle: true, format: "esm", platform: "node", outfile: out, logLevel: "warning" });
  const lib = await import(pathToFileURL(out).href);

  const variants = [
    { name: "4k, flex_bg", args: ["-b", "4096"], features: "", size: "4G" },
    { name: "1k, flex_bg", args: ["-b", "1024"], features: "", size: "2G" },
    { name: "4k, no flex_bg", args: ["-b", "4096"], features: "^flex_bg", size: "4G" },
    { name: "bigalloc 64k (4k blocks)", args: ["-b", "4096", "-C", "65536"], features: "bigalloc", size: "4G" },
  ];
  const rows = [];
  for (const v of variants) {
    const img = path.join(tmp, "bench.img");
    const mkfs = () => execFileSync("mkfs.ext4", ["-q", "-F", "-O", ["^has_journal", v.features].filter(Boolean).join(","), ...v.args, img, v.size], { stdio: "ignore" });
    process.stderr.write(`mballoc bench: ${v.name}\n`);
    mkfs();
    const times = [];
    let runsPerGiB = 0;
    let runs64 = 0;
    for (let pass = 0; pass < 6; pass++) {
      const vol = lib.mount(img, { cacheSize: 64 << 20 });
      try {
        const f = vol.fs;
        const h = f.startHandle(1000);
        const ino = f.inode(2);
        const inode = { ...ino, ino: 12, mode: 0o100644, flags: 0x80000, blocks512: 0 };
        const bs = f.sb.blockSize;
        let goal = lib.goalForInode(f, inode, 0);
        const t0 = process.hrtime.bigint();
        let runs = 0;
        for (let left = (1 << 30) / bs; left > 0; ) {
          const r = lib.newBlocks(h, f, { inode, goal, len: Math.min(left, 32768), flags: lib.ALLOC.DATA });
          left -= r.len;
          // A request continuing the last run is the same extent.
          if (r.pblk !== goal || runs === 0) runs++;
          goal = r.pblk + r.len;
        }
        const t1 = process.hrtime.bigint();
        if (pass > 0) times.push(Number(t1 - t0) / 1e6);
        runsPerGiB = runs;
        h.stop();
      } finally {
        vol.unmount();
      }
      mkfs();
    }
    // Fragmented: runs of 64 blocks allocated over the first groups, every other one freed.
    let fragRuns = 0;
    {
      const vol = lib.mount(img, { cacheSize: 64 << 20 });
      try {
        const f = vol.fs;
        const h = f.startHandle(1000);
        const held = [];
        for (let i = 0; i < 2048; i++) held.push(lib.newBlocks(h, f, { goal: 0, len: 64 }));
        for (let i = 0; i < held.length; i += 2) lib.freeBlocks(h, f, undefined, held[i].pblk, held[i].len);
        const inode = { ...f.inode(2), ino: 12, mode: 0o100644, flags: 0x80000, blocks512: 0 };
        let goal = lib.goalForInode(f, inode, 0);
        const emptyRuns = [];
        for (const start of ["empty", "frag"]) {
          let runs = 0;
          let g = start === "empty" ? goal : f.sb.firstDataBlock;
          for (let left = (64 << 20) / f.sb.blockSize; left > 0; ) {
            const r = lib.newBlocks(h, f, { inode, goal: g, len: Math.min(left, 32768) });
            left -= r.len;
            if (r.pblk !== g || runs === 0) runs++;
            g = r.pblk + r.len;
          }
          emptyRuns.push(runs);
        }
        runs64 = emptyRuns[0];
        fragRuns = emptyRuns[1];
        h.stop();
      } finally {
        vol.unmount();
      }
    }
    times.sort((a, b) => a - b);
    rows.push({ name: v.name, median: times[Math.floor(times.length / 2)], min: times[0], runsPerGiB, runs64, fragRuns });
  }
  console.log("| image | 1 GiB allocation, median (min) | runs per 1 GiB | runs per 64 MiB, fresh area | runs per 64 MiB from block 0, fragmented start |");
  console.log("|---|---|---|---|---|");
  for (const r of rows) console.log(`| ${r.name} | ${r.median.toFixed(1)} ms (${r.min.toFixed(1)}) | ${r.runsPerGiB} | ${r.runs64} | ${r.fragRuns} |`);
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
