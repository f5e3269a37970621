#!/usr/bin/env node
// Resident memory while writing a 4 GiB file on the bh buffered path: a
// sparse image file (mkfs'd by us, lazily zeroed) in tmpfs (/dev/shm) when it
// has room, else on the filesystem with the most free space; the file written
// front to back in 1 MiB requests through the volume's writeSync, then fsync
// and unmount. Process RSS is sampled every 64 MiB written (and the peak read
// from getrusage at the end); the target is RSS within cacheSize + 64 MiB.
// Pages of a tmpfs image file are not the process's: only the engine's
// memory (wasm arena, JS heap, node itself) counts.
//
//   node bench/bh-write-rss.mjs                 4 GiB, cacheSize 256 MiB (the default)
//   node bench/bh-write-rss.mjs --size=1G --cache=64M
//
// Markdown to stdout, progress to stderr.

import { execFileSync } from "node:child_process";
import { buildSync } from "esbuild";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const MiB = 1 << 20;
const arg = (name, dflt) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  if (!a) return dflt;
  const v = a.slice(name.length + 3);
  return Number.parseFloat(v) * (/g$/i.test(v) ? 1 << 30 : /m$/i.test(v) ? MiB : /k$/i.test(v) ? 1024 : 1);
};
const SIZE = arg("size", 4 * 2 ** 30);
const CACHE = arg("cache", 256 * MiB);
const REQ = arg("req", MiB);
// Room for the data, its extent tree and the journal, with slack.
const IMAGE = Math.ceil((SIZE * 1.1 + 512 * MiB) / MiB) * MiB;

/** Free bytes of the filesystem holding dir (df). */
function freeBytes(dir) {
  const out = execFileSync("df", ["-B1", "--output=avail", dir], { encoding: "utf8" }).trim().split("\n");
  return Number(out[out.length - 1]);
}

function pickDir() {
  const cands = [];
  if (fs.existsSync("/dev/shm")) cands.push({ dir: "/dev/shm", kind: "tmpfs (/dev/shm)" });
  cands.push({ dir: os.tmpdir(), kind: `${os.tmpdir()}` }, { dir: ROOT, kind: `the worktree's filesystem (${ROOT})` });
  for (const c of cands) c.free = freeBytes(c.dir);
  // The written data occupies SIZE in the image file; the rest stays sparse.
  const need = SIZE + 256 * MiB;
  const shm = cands[0].dir === "/dev/shm" && cands[0].free >= need ? cands[0] : undefined;
  if (shm) return shm;
  const best = cands.sort((a, b) => b.free - a.free)[0];
  if (best.free < need) throw new Error(`no filesystem has ${need >> 20} MiB free for the image (largest: ${best.dir}, ${best.free >> 20} MiB)`);
  process.stderr.write(`bh-write-rss: /dev/shm has no room for ${SIZE >> 20} MiB; the image is a file on ${best.kind}\n`);
  return best;
}

const rssMiB = () => process.memoryUsage.rss() / MiB;

const child = process.env.EXT4WASM_RSS_CHILD;
if (!child) {
  // The parent bundles host/ and runs the measurement in a child, so that esbuild is not part of the RSS measured.
  const where = pickDir();
  const tmp = fs.mkdtempSync(path.join(where.dir, "ext4wasm-bench-rss-"));
  try {
    const entry = path.join(tmp, "entry.ts");
    fs.writeFileSync(entry, `export { mount, mkfs } from ${JSON.stringify(path.join(ROOT, "host/index.ts"))};\n`);
    buildSync({ entryPoints: [entry], bundle: true, format: "esm", platform: "node", outfile: path.join(tmp, "bundle.mjs"), logLevel: "warning" });
    // mkfs here too: its garbage would stay in the child's heap.
    const lib = await import(pathToFileURL(path.join(tmp, "bundle.mjs")).href);
    const image = path.join(tmp, "image.ext4");
    fs.writeFileSync(image, "");
    fs.truncateSync(image, IMAGE);
    lib.mkfs(image, { blockSize: 4096, uuid: "3a6a2f1e-5b4c-4d3e-8f2a-1b2c3d4e5f60", hashSeed: "1b2c3d4e-0000-4000-8000-000000000001" });
    execFileSync(process.execPath, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
      stdio: "inherit", env: { ...process.env, EXT4WASM_RSS_CHILD: JSON.stringify({ tmp, kind: where.kind }) },
    });
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
} else {
  const { tmp, kind } = JSON.parse(child);
  const where = { kind };
  const lib = await import(pathToFileURL(path.join(tmp, "bundle.mjs")).href);

  const image = path.join(tmp, "image.ext4");
  const base = rssMiB();
  const src = new Uint8Array(REQ);
  for (let i = 0; i < src.length; i++) src[i] = (i * 2654435761) >>> 24;

  const vol = lib.mount(image, { cacheSize: CACHE });
  const afterMount = rssMiB();
  const samples = [];
  let peak = 0;
  const t0 = process.hrtime.bigint();
  let tFsync = 0;
  try {
    const fd = vol.openSync("/big", "w");
    const every = Math.max(1, Math.floor((64 * MiB) / REQ));
    let i = 0;
    for (let pos = 0; pos < SIZE; pos += REQ, i++) {
      vol.writeSync(fd, src, 0, Math.min(REQ, SIZE - pos), null);
      if (i % every === every - 1) {
        const r = rssMiB();
        samples.push(r);
        if (r > peak) peak = r;
        if (samples.length % 8 === 0) {
          const m = process.memoryUsage();
          process.stderr.write(`bh-write-rss: ${((pos + REQ) / MiB).toFixed(0)} MiB written, rss ${r.toFixed(0)} MiB (JS heap ${(m.heapUsed / MiB).toFixed(0)}/${(m.heapTotal / MiB).toFixed(0)}, array buffers ${(m.arrayBuffers / MiB).toFixed(0)}, cache used ${(vol.fs.cache.stats().usedBytes / MiB).toFixed(0)})\n`);
        }
      }
    }
    const t1 = process.hrtime.bigint();
    vol.fsyncSync(fd);
    vol.closeSync(fd);
    tFsync = Number(process.hrtime.bigint() - t1) / 1e9;
    const r = rssMiB();
    samples.push(r);
    if (r > peak) peak = r;
  } finally {
    vol.unmount();
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const maxRss = process.resourceUsage().maxRSS / 1024; // KiB -> MiB
  const limit = CACHE / MiB + 64;
  const ok = (v) => (v <= limit ? "within" : "over");
  console.log(`\n### RSS while writing ${(SIZE / 2 ** 30).toFixed(2)} GiB (${REQ >> 10} KiB requests, cacheSize ${CACHE >> 20} MiB, image on ${where.kind})\n`);
  console.log("| measure | MiB |");
  console.log("|---|---|");
  console.log(`| RSS before mount (node, the bundle) | ${base.toFixed(0)} |`);
  console.log(`| RSS after mount | ${afterMount.toFixed(0)} |`);
  console.log(`| RSS peak while writing (sampled every 64 MiB) | ${peak.toFixed(0)} (${ok(peak)} cacheSize + 64 = ${limit}) |`);
  console.log(`| RSS peak of the process (getrusage) | ${maxRss.toFixed(0)} (${ok(maxRss)} ${limit}) |`);
  console.log(`| growth over the pre-mount RSS (peak) | ${(peak - base).toFixed(0)} |`);
  console.log(`\nWrite + fsync + unmount: ${secs.toFixed(1)} s (${(SIZE / MiB / secs).toFixed(0)} MiB/s), of it fsync ${tFsync.toFixed(1)} s.`);
}
