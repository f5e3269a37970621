#!/usr/bin/env node
// Cached sequential writes on the bh buffered path: a 64 MiB file written
// front to back in 4k, 64k and 1M requests into the folio cache (512 MiB
// budget, so the dirty threshold of 20% is not crossed and no writeback runs
// inside the timed loop), then fsync timed apart (delayed allocation, the
// data written home, the journal commit). Our path only; the kernel
// comparison is a later step. The write path is internal (no node:fs write
// surface yet), so host/ is bundled here with esbuild for the run.
//
//   node bench/bh-write.mjs            3 timed passes per request size (after one warm-up)
//   node bench/bh-write.mjs --quick    16 MiB file, 2 passes
//
// Markdown to stdout, progress to stderr. Images are in memory.

import { buildSync } from "esbuild";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const quick = process.argv.includes("--quick");
const FILE = (quick ? 16 : 64) << 20;
const PASSES = quick ? 2 : 3;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-bench-bhwrite-"));

try {
  const entry = path.join(tmp, "entry.ts");
  const h = (p) => JSON.stringify(path.join(ROOT, p));
  fs.writeFileSync(entry, [
    `export { mount, mkfs, MemoryDevice } from ${h("host/index.ts")};`,
    `export { BhBufferedIO } from ${h("host/buffered/bh/read.ts")};`,
    `export { newInode } from ${h("host/fs/ialloc.ts")};`,
    `export { markInodeDirty } from ${h("host/fs/inode-write.ts")};`,
    `export { addEntry, addEntryCredits } from ${h("host/fs/namei.ts")};`,
  ].join("\n"));
  const out = path.join(tmp, "bundle.mjs");
  buildSync({ entryPoints: [entry], bundle: true, format: "esm", platform: "node", outfile: out, logLevel: "warning" });
  const lib = await import(pathToFileURL(out).href);

  const image = new Uint8Array(512 << 20);
  lib.mkfs(new lib.MemoryDevice(image), { blockSize: 4096, uuid: "3a6a2f1e-5b4c-4d3e-8f2a-1b2c3d4e5f60", hashSeed: "1b2c3d4e-0000-4000-8000-000000000001" });
  const pristine = image.slice();
  const src = new Uint8Array(1 << 20);
  for (let i = 0; i < src.length; i++) src[i] = (i * 2654435761) >>> 24;

  const rows = [];
  for (const bs of [4096, 65536, 1 << 20]) {
    const mbps = [];
    const fsyncMs = [];
    for (let pass = 0; pass <= PASSES; pass++) {
      image.set(pristine);
      const vol = lib.mount(new lib.MemoryDevice(image), { cacheSize: 512 << 20 });
      try {
        const f = vol.fs;
        const io = new lib.BhBufferedIO(f);
        const hd = f.startHandle(lib.addEntryCredits(f) + 16);
        const root = f.inode(2);
        const file = lib.newInode(hd, f, root, 0o100644);
        lib.markInodeDirty(hd, f, file);
        lib.addEntry(hd, f, root, new TextEncoder().encode("bench"), file.ino, 1);
        hd.stop();
        const chunk = src.subarray(0, bs);
        const t0 = process.hrtime.bigint();
        for (let pos = 0; pos < FILE; pos += bs) io.write(file, pos, chunk);
        const t1 = process.hrtime.bigint();
        io.fsync(file, false);
        const t2 = process.hrtime.bigint();
        if (pass > 0) {
          mbps.push(FILE / (1 << 20) / (Number(t1 - t0) / 1e9));
          fsyncMs.push(Number(t2 - t1) / 1e6);
        }
        f.iput(file);
      } finally {
        vol.unmount();
      }
      process.stderr.write(`bh-write bench: ${bs} bytes, pass ${pass}${pass === 0 ? " (warm-up)" : ""}\n`);
    }
    const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
    rows.push({ bs, mbps: med(mbps), min: Math.min(...mbps), max: Math.max(...mbps), fsync: med(fsyncMs) });
  }
  console.log(`\n### bh cached sequential writes (${FILE >> 20} MiB file, 4k blocks, data=ordered, delalloc; median of ${PASSES})\n`);
  console.log("| request | MiB/s (median) | min–max | fsync after (ms) |");
  console.log("|---|---|---|---|");
  const label = (b) => (b >= 1 << 20 ? `${b >> 20}M` : `${b >> 10}k`);
  for (const r of rows) console.log(`| ${label(r.bs)} | ${r.mbps.toFixed(0)} | ${r.min.toFixed(0)}–${r.max.toFixed(0)} | ${r.fsync.toFixed(0)} |`);
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
