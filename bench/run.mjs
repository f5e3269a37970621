#!/usr/bin/env node
// Sequential-read benchmark of the two buffered read paths (buffer heads vs
// iomap), after the fio read table of the ext4 buffered-iomap series: request
// sizes 1k/4k/64k/1M, states "ondisk" (caches dropped before each pass: the
// file comes from the device), "pre-cache" (the file is already in the folio
// cache), "hole" (cold read of a sparse file: mapping and zeroing, no data
// from the device). Reference timed in the same cells: plain Buffer.copy of
// the same request sizes, the ceiling for any read path.
//
//   npm run bench                 ~2 min on 2 cores: 192 MiB file, 5 timed passes per cell
//   node bench/run.mjs --quick    ~15 s: 32 MiB file, 3 timed passes per cell
//   node bench/run.mjs --out f.json   JSON to f.json instead of bench/results/read-<date>.json
//
// Markdown goes to stdout, progress to stderr. See bench/README.md.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import * as v8 from "node:v8";
import * as vm from "node:vm";
import { loadBuiltLibrary } from "./dist.mjs";
import { buildImage, DATA_FILE, HOLE_FILE } from "./image.mjs";
import { countingDevice, memcpyPass, mibPerSecond, readPass, summarize } from "./measure.mjs";
import { kernelPeer } from "./kernel-peer.mjs";
import { formatReport } from "./report.mjs";

const MiB = 1 << 20;
const argv = process.argv.slice(2);
const unknown = argv.filter((a, i) => a !== "--quick" && a !== "--out" && argv[i - 1] !== "--out");
if (unknown.length) throw new Error(`unknown argument(s) ${unknown.join(" ")}; usage: run.mjs [--quick] [--out file.json]`);
const quick = argv.includes("--quick");
const outArg = argv.includes("--out") ? argv[argv.indexOf("--out") + 1] : undefined;
if (argv.includes("--out") && !outArg) throw new Error("--out needs a file name");

const CONFIG = {
  quick,
  fileBytes: (quick ? 32 : 192) * MiB,
  imageBytes: (quick ? 64 : 256) * MiB,
  cacheSize: 512 * MiB,
  warmup: 1,
  reps: quick ? 3 : 5,
  requestSizes: [1024, 4096, 64 * 1024, MiB],
};
const PATHS = [
  { name: "bh", mountOptions: "ro,nobuffered_iomap" },
  { name: "iomap", mountOptions: "ro,buffered_iomap" },
];
const STATES = ["ondisk", "pre-cache", "hole"];

// A collection between passes keeps one pass's garbage (and the wasm memory of
// unmounted volumes) from being collected inside the next timed pass.
v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc");

const log = (msg) => process.stderr.write(`bench: ${msg}\n`);
const t0 = Date.now();

const lib = await loadBuiltLibrary();
log(`building a ${CONFIG.imageBytes / MiB} MiB image with a ${CONFIG.fileBytes / MiB} MiB file (mkfs.ext4 -d)`);
const { image, data, expected, layout } = buildImage(CONFIG);
log(`image in memory; ${DATA_FILE}: ${layout.dataExtents} extent(s), ${HOLE_FILE}: ${layout.holeBlocks} blocks allocated`);
if (layout.holeBlocks !== 0) throw new Error(`${HOLE_FILE} is not sparse in the image (${layout.holeBlocks} blocks)`);

const buf = Buffer.allocUnsafe(Math.max(...CONFIG.requestSizes));
const failures = [];

function mountFresh(p) {
  const dev = countingDevice(new lib.MemoryDevice(image, { readOnly: true }));
  const vol = lib.mount(dev, { readOnly: true, mountOptions: p.mountOptions, cacheSize: CONFIG.cacheSize });
  for (const f of [DATA_FILE, HOLE_FILE]) {
    const got = vol.ioPathOf(f);
    if (got !== p.name) throw new Error(`${p.mountOptions}: ${f} takes the ${got} path, expected ${p.name}`);
  }
  return { vol, dev };
}

/** Checks one pass: every byte delivered and, when hashed, the right bytes. */
function verify(label, file, r) {
  if (r.bytes !== CONFIG.fileBytes) failures.push(`${label}: read ${r.bytes} of ${CONFIG.fileBytes} bytes`);
  if (r.sha256 !== undefined && r.sha256 !== expected[file]) failures.push(`${label}: sha256 ${r.sha256} != ${expected[file]}`);
}

/**
 * One cell of the table: for each participant (the two paths, plus a memcpy
 * reference where one belongs), warm-up passes (hashed) then timed passes,
 * interleaved pass by pass so a noisy neighbour hits all of them alike.
 */
function measureCell(state, bs, participants) {
  const cells = Object.fromEntries(participants.map((p) => [p.name, { samples: [], deviceBytes: [], verified: 0 }]));
  for (let i = 0; i < CONFIG.warmup + CONFIG.reps; i++) {
    const warm = i < CONFIG.warmup;
    for (const p of participants) {
      gc();
      const { r, deviceBytes, file } = p.pass(bs, warm);
      verify(`${state} ${p.name} bs=${bs} pass ${i}`, file, r);
      const c = cells[p.name];
      if (r.sha256 !== undefined) c.verified++;
      if (!warm) {
        c.samples.push(mibPerSecond(r));
        c.deviceBytes.push(deviceBytes);
      }
    }
  }
  return Object.fromEntries(Object.entries(cells).map(([name, c]) => [name, {
    ...summarize(c.samples),
    deviceBytesPerPass: summarize(c.deviceBytes).median,
    verifiedPasses: c.verified,
  }]));
}

/**
 * Cold pass: caches dropped first (data and metadata, as `echo 3 >
 * /proc/sys/vm/drop_caches` between fio runs), so the file comes from the
 * device. One mount per path and file serves all its cold passes, so the
 * timing is the read path's, not a new wasm instance's memory growth.
 */
const coldMounts = new Map();
const coldPass = (p, file) => (bs, warm) => {
  const key = `${p.name}:${file}`;
  if (!coldMounts.has(key)) coldMounts.set(key, mountFresh(p));
  const { vol, dev } = coldMounts.get(key);
  vol.dropCaches();
  const before = dev.counter.bytes;
  const r = readPass(vol, file, buf, bs, warm);
  return { r, deviceBytes: dev.counter.bytes - before, file };
};

// pre-cache: one mount per path, filled by a hashed pass before any timing.
const warmMounts = {};
const cacheAfterFill = {};
for (const p of PATHS) {
  warmMounts[p.name] = mountFresh(p);
  verify(`pre-cache ${p.name} fill`, DATA_FILE, readPass(warmMounts[p.name].vol, DATA_FILE, buf, MiB, true));
  cacheAfterFill[p.name] = warmMounts[p.name].vol.fs.cache.stats();
}
const cachedPass = (p) => (bs, warm) => {
  const { vol, dev } = warmMounts[p.name];
  const before = dev.counter.bytes;
  const r = readPass(vol, DATA_FILE, buf, bs, warm);
  return { r, deviceBytes: dev.counter.bytes - before, file: DATA_FILE };
};

// Reference: plain memcpy of the file's bytes in the same request sizes.
const memcpy = { name: "memcpy", pass: (bs) => ({ r: memcpyPass(data, buf, bs), deviceBytes: 0 }) };

// Peer: the kernel reading the same image through a loop mount, where the machine allows.
const kernel = kernelPeer(image);
if (!kernel.available) log(`kernel peer skipped: ${kernel.reason}`);
const kernelPass = (file, cold) => (bs, warm) => {
  if (cold) kernel.dropCaches();
  return { r: kernel.readPass(file.slice(1), buf, bs, warm), deviceBytes: 0, file };
};
if (kernel.available) verify("pre-cache kernel fill", DATA_FILE, kernel.readPass(DATA_FILE.slice(1), buf, MiB, true));
const kernelIn = (file, cold) => (kernel.available ? [{ name: "kernel", pass: kernelPass(file, cold) }] : []);

const participantsOf = {
  ondisk: [...PATHS.map((p) => ({ name: p.name, pass: coldPass(p, DATA_FILE) })), ...kernelIn(DATA_FILE, true), memcpy],
  "pre-cache": [...PATHS.map((p) => ({ name: p.name, pass: cachedPass(p) })), ...kernelIn(DATA_FILE, false), memcpy],
  hole: [...PATHS.map((p) => ({ name: p.name, pass: coldPass(p, HOLE_FILE) })), ...kernelIn(HOLE_FILE, true)],
};

const results = {};
try {
  for (const state of STATES) {
    results[state] = {};
    for (const bs of CONFIG.requestSizes) {
      results[state][bs] = measureCell(state, bs, participantsOf[state]);
      const line = Object.entries(results[state][bs]).map(([name, c]) => `${name} ${c.median.toFixed(0)}`).join("  ");
      log(`${state.padEnd(9)} bs=${String(bs).padStart(7)}  ${line}  MiB/s`);
    }
  }
} finally {
  if (kernel.available) kernel.close();
}
for (const m of coldMounts.values()) m.vol.unmount();
const cacheAfterRun = {};
for (const p of PATHS) {
  cacheAfterRun[p.name] = warmMounts[p.name].vol.fs.cache.stats();
  warmMounts[p.name].vol.unmount();
}

// The states must be what their names say: cold passes pull the file from the
// device, cached passes pull nothing, hole passes pull no file data.
for (const bs of CONFIG.requestSizes) {
  for (const p of PATHS) {
    const dev = (s) => results[s][bs][p.name].deviceBytesPerPass;
    if (dev("ondisk") < CONFIG.fileBytes) failures.push(`ondisk ${p.name} bs=${bs}: only ${dev("ondisk")} device bytes per pass`);
    if (dev("pre-cache") !== 0) failures.push(`pre-cache ${p.name} bs=${bs}: ${dev("pre-cache")} device bytes per pass (cache did not hold the file)`);
    if (dev("hole") > 1 * MiB) failures.push(`hole ${p.name} bs=${bs}: ${dev("hole")} device bytes per pass`);
  }
}

const report = {
  benchmark: "sequential read, whole file, readSync into one reused buffer",
  date: new Date().toISOString(),
  wallSeconds: (Date.now() - t0) / 1000,
  machine: {
    cpu: os.cpus()[0]?.model, cores: os.cpus().length, memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()}`, node: process.version, v8: process.versions.v8,
  },
  config: { ...CONFIG, paths: PATHS, states: STATES, kernelPeer: kernel.available ? `loop mount of an image file on ${kernel.backing}, node:fs readSync` : `skipped: ${kernel.reason}`, timing: "process.hrtime.bigint around each whole-file pass; median of reps after warm-up" },
  image: { ...layout, expected },
  cache: { afterFill: cacheAfterFill, afterRun: cacheAfterRun },
  units: "MiB/s",
  results,
  failures,
};

const root = fileURLToPath(new URL(".", import.meta.url));
const stamp = report.date.replace(/:/g, "").replace(/\..*$/, "Z");
const out = outArg ? path.resolve(outArg) : path.join(root, "results", `read-${stamp}.json`);
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, JSON.stringify(report, null, 2) + "\n");

process.stdout.write(formatReport(report));
log(`JSON written to ${path.relative(process.cwd(), out)}; ${report.wallSeconds.toFixed(1)} s`);
if (failures.length) {
  log(`${failures.length} check(s) FAILED:\n  ${failures.join("\n  ")}`);
  process.exitCode = 1;
}
