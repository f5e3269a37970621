#!/usr/bin/env node
// Cached sequential writes on the bh buffered path against the kernel's ext4,
// in the same run: a 64 MiB file written front to back in 1k, 4k, 64k and 1M
// requests with writeSync, ours through the volume's node:fs surface into the
// folio cache (cacheSize 512 MiB, so the 20% dirty threshold is not crossed
// inside the timed loop), the kernel's through node:fs on a loop mount of an
// identical fresh image that lives in tmpfs (/dev/shm). The timed part is the
// cached write only (no fsync, on either side; the kernel's vm.dirty_ratio is
// a share of RAM, far above 64 MiB). A second figure times the whole job:
// the writes, then fsync and unmount (delayed allocation, the data written
// home, the journal commit). Every pass starts on a fresh copy of the image.
// Ours is measured twice: on a fresh mount, and warm (see below).
//
//   node bench/bh-write.mjs            3 timed passes per request size (after one warm-up)
//   node bench/bh-write.mjs --quick    16 MiB file, 2 passes
//   node bench/bh-write.mjs --ours     our path only (no kernel column)
//   node bench/bh-write.mjs --sizes=64k,1M
//
// Markdown to stdout, progress to stderr. Our images are in memory. The
// kernel column needs root and loop devices; without them it is skipped and
// the reason printed. host/ is bundled here with esbuild for the run.

import { execFileSync } from "node:child_process";
import { buildSync } from "esbuild";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const oursOnly = argv.includes("--ours");
const FILE = (quick ? 16 : 64) << 20;
const PASSES = quick ? 2 : 3;
const IMAGE = 512 << 20;
const CACHE = 512 << 20;
const parseSize = (s) => Number.parseInt(s, 10) * (/m$/i.test(s) ? 1 << 20 : /k$/i.test(s) ? 1024 : 1);
const sizesArg = argv.find((a) => a.startsWith("--sizes="));
const SIZES = sizesArg ? sizesArg.slice(8).split(",").map(parseSize) : [1024, 4096, 65536, 1 << 20];
const label = (b) => (b >= 1 << 20 ? `${b >> 20}M` : `${b >> 10}k`);
const MiB = 1 << 20;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-bench-bhwrite-"));

/** One pass: the writes timed apart from fsync + close + unmount. */
function writePass(vol, file, src, bs, finish) {
  const fd = vol.openSync(file, "w");
  const chunk = src.subarray(0, bs);
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let pos = 0; pos < FILE; pos += bs) vol.writeSync(fd, chunk, 0, bs, null);
  const t1 = process.hrtime.bigint();
  const c1 = process.cpuUsage(c0);
  vol.fsyncSync(fd);
  vol.closeSync(fd);
  finish();
  const t2 = process.hrtime.bigint();
  return { write: Number(t1 - t0), total: Number(t2 - t0), cpu: (c1.user + c1.system) * 1000 };
}

/**
 * The kernel side: why it cannot run, or a function that runs one pass on a
 * fresh copy of the image, loop-mounted read-write from tmpfs. Every mount is
 * unmounted and every loop device detached before the pass returns.
 */
function kernelSide(pristine) {
  if (oursOnly) return { reason: "--ours given" };
  if (process.getuid?.() !== 0) return { reason: "the kernel column needs root (loop mount)" };
  if (!fs.existsSync("/dev/loop-control")) return { reason: "the kernel column needs /dev/loop-control" };
  if (!fs.existsSync("/dev/shm")) return { reason: "the kernel column needs tmpfs at /dev/shm for the image" };
  const dir = fs.mkdtempSync(path.join("/dev/shm", "ext4wasm-bench-bhwrite-"));
  const image = path.join(dir, "image.ext4");
  const mnt = path.join(dir, "mnt");
  fs.mkdirSync(mnt);
  const pass = (src, bs) => {
    writeSparse(image, pristine);
    let loop = "";
    let mounted = false;
    try {
      loop = execFileSync("losetup", ["--find", "--show", image], { encoding: "utf8" }).trim();
      execFileSync("mount", ["-t", "ext4", "-o", "rw,noatime", loop, mnt]);
      mounted = true;
      return writePass(fs, path.join(mnt, "bench"), src, bs, () => {
        execFileSync("umount", [mnt]);
        mounted = false;
      });
    } finally {
      try { if (mounted) execFileSync("umount", [mnt]); } finally {
        if (loop) execFileSync("losetup", ["-d", loop]);
      }
    }
  };
  // A trial mount: a machine where loop devices exist but cannot be used says so now.
  try {
    pass(new Uint8Array(4096), 4096);
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    return { reason: `the kernel column could not loop-mount the image: ${String(e.message).split("\n")[0]}` };
  }
  return { pass, close: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** The image file written sparse (only its non-zero 4k blocks), as a fresh mkfs'd file is. */
function writeSparse(file, bytes) {
  const fd = fs.openSync(file, "w");
  try {
    fs.ftruncateSync(fd, bytes.length);
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length >> 2);
    for (let off = 0; off < bytes.length; off += 4096) {
      let zero = true;
      for (let i = off >> 2, e = (off + 4096) >> 2; i < e; i++) if (words[i]) { zero = false; break; }
      if (!zero) fs.writeSync(fd, bytes, off, 4096, off);
    }
  } finally {
    fs.closeSync(fd);
  }
}

const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

let kernel;
try {
  const entry = path.join(tmp, "entry.ts");
  fs.writeFileSync(entry, `export { mount, mkfs, MemoryDevice } from ${JSON.stringify(path.join(ROOT, "host/index.ts"))};\n`);
  const out = path.join(tmp, "bundle.mjs");
  buildSync({ entryPoints: [entry], bundle: true, format: "esm", platform: "node", outfile: out, logLevel: "warning" });
  const lib = await import(pathToFileURL(out).href);

  const pristine = new Uint8Array(IMAGE);
  lib.mkfs(new lib.MemoryDevice(pristine), { blockSize: 4096, uuid: "3a6a2f1e-5b4c-4d3e-8f2a-1b2c3d4e5f60", hashSeed: "1b2c3d4e-0000-4000-8000-000000000001" });
  const image = new Uint8Array(IMAGE);
  const src = new Uint8Array(1 << 20);
  for (let i = 0; i < src.length; i++) src[i] = (i * 2654435761) >>> 24;

  kernel = kernelSide(pristine);
  if (!kernel.pass) process.stderr.write(`bh-write bench: kernel column skipped: ${kernel.reason}\n`);
  // Fresh: the first file of a new mount, so every folio's memory is touched for the first time (a page fault
  // per 4 KiB page of the wasm arena, in the timed loop). Warm: a file of the same size written, fsynced and
  // deleted first on the same mount, so the arena's pages are resident, as the kernel's free pages always are.
  const oursPass = (bs, warm) => {
    image.set(pristine);
    const vol = lib.mount(new lib.MemoryDevice(image), { cacheSize: CACHE });
    let mounted = true;
    try {
      if (warm) {
        writePass(vol, "/warm", src, bs, () => {});
        vol.unlinkSync("/warm");
        vol.sync();
      }
      return writePass(vol, "/bench", src, bs, () => { vol.unmount(); mounted = false; });
    } finally {
      if (mounted) vol.unmount();
    }
  };

  const rows = [];
  for (const bs of SIZES) {
    const s = { fresh: { write: [], total: [], cpu: [] }, warm: { write: [], total: [], cpu: [] }, kernel: { write: [], total: [], cpu: [] } };
    // Alternated passes, so that load from other jobs falls on both sides alike.
    for (let pass = 0; pass <= PASSES; pass++) {
      const sides = [["fresh", (b) => oursPass(b, false)], ["warm", (b) => oursPass(b, true)]];
      if (kernel.pass) sides.push(["kernel", (b) => kernel.pass(src, b)]);
      for (const [name, run] of sides) {
        const r = run(bs);
        if (pass > 0) {
          s[name].write.push(FILE / MiB / (r.write / 1e9));
          s[name].total.push(FILE / MiB / (r.total / 1e9));
          s[name].cpu.push(FILE / MiB / (r.cpu / 1e9));
        }
      }
      process.stderr.write(`bh-write bench: ${label(bs)}, pass ${pass}${pass === 0 ? " (warm-up)" : ""}\n`);
    }
    rows.push({ bs, s });
  }

  const fmt = (a) => (a.length ? `${med(a).toFixed(0)} (${Math.min(...a).toFixed(0)}–${Math.max(...a).toFixed(0)})` : "–");
  const ratio = (a, b) => (a.length && b.length ? (med(a) / med(b)).toFixed(2) : "–");
  console.log(`\n### bh cached sequential writes (${FILE >> 20} MiB file, 4k blocks, data=ordered, delalloc; MiB/s by the wall clock, median of ${PASSES} (min–max))\n`);
  if (!kernel.pass) console.log(`Kernel column skipped: ${kernel.reason}.\n`);
  console.log("Ours fresh: the first file of a new mount (the wasm arena's pages touched for the first time, a page fault each);");
  console.log("ours warm: the same after a file of the same size was written, fsynced and deleted on that mount (resident arena,");
  console.log("as the kernel's free pages are). Ratios are ours/kernel.\n");
  console.log("| request | ours fresh | ours warm | kernel | fresh/kernel | warm/kernel |");
  console.log("|---|---|---|---|---|---|");
  for (const { bs, s } of rows) {
    console.log(`| ${label(bs)} | ${fmt(s.fresh.write)} | ${fmt(s.warm.write)} | ${fmt(s.kernel.write)} | ${ratio(s.fresh.write, s.kernel.write)} | ${ratio(s.warm.write, s.kernel.write)} |`);
  }
  console.log(`\nThe same passes by CPU time (user + system of this process, which is where the kernel's copy runs too,`);
  console.log(`inside the write calls): the figure that holds on a loaded machine.\n`);
  console.log("| request | ours fresh | ours warm | kernel | fresh/kernel | warm/kernel |");
  console.log("|---|---|---|---|---|---|");
  for (const { bs, s } of rows) {
    console.log(`| ${label(bs)} | ${fmt(s.fresh.cpu)} | ${fmt(s.warm.cpu)} | ${fmt(s.kernel.cpu)} | ${ratio(s.fresh.cpu, s.kernel.cpu)} | ${ratio(s.warm.cpu, s.kernel.cpu)} |`);
  }
  console.log(`\nThe whole job, write + fsync + unmount (MiB/s of the file, wall clock):\n`);
  console.log("| request | ours fresh | ours warm | kernel | fresh/kernel | warm/kernel |");
  console.log("|---|---|---|---|---|---|");
  for (const { bs, s } of rows) {
    console.log(`| ${label(bs)} | ${fmt(s.fresh.total)} | ${fmt(s.warm.total)} | ${fmt(s.kernel.total)} | ${ratio(s.fresh.total, s.kernel.total)} | ${ratio(s.warm.total, s.kernel.total)} |`);
  }
  console.log(`\nload average at the end: ${os.loadavg().map((x) => x.toFixed(1)).join(" ")}`);
} finally {
  try { kernel?.close?.(); } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
