// `put` of a tree against the kernel: `ext4wasm put IMAGE SRC/. /` (one
// process: start-up, mount, copy, unmount) against `cp -a SRC/. MNT/ && sync`
// into a loop mount of an identical fresh image, both on tmpfs, in the same
// run, each side --runs times (default 3, alternating) and the median taken:
// the machine may be shared, so the ratio is the figure to quote.
// `node bench/put.mjs [--src DIR] [--files N] [--runs R] [--baseline BIN]`:
// the default tree is 20 000 files in 1 000 directories with sizes drawn like
// a /usr tree (most under 16 KiB, a few MiB-sized), made once in /dev/shm.
// --baseline runs another build's bin/ext4wasm.mjs as a third column (before
// and after a change in one run). The put column also gives the put process's
// peak RSS. `sync -f` (syncfs of the loop mount) rather than a bare sync: it
// writes back and commits the same filesystem, without waiting for whatever
// else the machine has mounted. Every image is checked with e2fsck -fn. The kernel column needs
// root and loop devices; without them it is skipped with the reason.

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : def; };
const files = Number(opt("--files", "20000"));
const runs = Math.max(1, Number(opt("--runs", "3")));
const baseline = opt("--baseline", undefined);
const base = fs.existsSync("/dev/shm") ? "/dev/shm" : (process.env.TMPDIR ?? "/tmp");
const dir = fs.mkdtempSync(path.join(base, "ext4wasm-bench-put-"));
const bin = new URL("../bin/ext4wasm.mjs", import.meta.url).pathname;
// The child's peak RSS, printed on stderr as it exits (spawnSync gives no rusage).
const RSS_TAG = "ext4wasm-bench-maxrss-kib=";
const rssHook = `data:text/javascript,process.on("exit",()=>process.stderr.write("\\n${RSS_TAG}"+process.resourceUsage().maxRSS+"\\n"))`;

function run(cmd, argv, opts = {}) {
  const t = performance.now();
  const r = spawnSync(cmd, argv, { stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 << 20, ...opts });
  const ms = performance.now() - t;
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(" ")} exited ${r.status}: ${r.stderr}`);
  return { ms, out: r.stdout.toString(), err: r.stderr.toString() };
}

/** A deterministic tree: xorshift sizes, a log-uniform spread from 0 to 4 MiB, most files small. */
function makeTree(root, n) {
  let x = 0x9e3779b9;
  const rnd = () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 2 ** 32; };
  const chunk = Buffer.alloc(4 << 20);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 131 + (i >> 9)) & 0xff;
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const d = path.join(root, `d${i % 50}`, `s${i % 1000}`);
    if (i < 1000) fs.mkdirSync(d, { recursive: true });
    const size = rnd() < 0.02 ? Math.floor(rnd() * (4 << 20)) : Math.floor(2 ** (rnd() * 14));
    fs.writeFileSync(path.join(d, `file-${i}.dat`), chunk.subarray(i % 997, (i % 997) + size));
    bytes += size;
  }
  return bytes;
}

function du(p) { return Number(run("du", ["-sb", p]).out.split("\t")[0]); }
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fsck = (img) => spawnSync("e2fsck", ["-fn", img]).status;

const loopOk = process.getuid?.() === 0 && fs.existsSync("/dev/loop-control");
try {
  const src = opt("--src", undefined) ?? path.join(dir, "tree");
  if (!opt("--src", undefined)) makeTree(src, files);
  const bytes = du(src);
  const count = Number(run("sh", ["-c", `find "${src}" | wc -l`]).out.trim());
  const size = `${Math.max(256, Math.ceil((bytes * 1.6) / 2 ** 20) + 256)}M`;
  const mkfs = (img) => run("mkfs.ext4", ["-q", "-F", "-b", "4096", img, size]);

  /** One put into a fresh image: wall time, peak RSS, e2fsck status. */
  const putOnce = (which) => {
    const img = path.join(dir, "ours.img");
    mkfs(img);
    const r = run(process.execPath, [`--import=${rssHook}`, which, "put", "-q", img, `${src}/.`, "/"]);
    const rss = Number(r.err.split(RSS_TAG)[1]?.trim() ?? NaN) * 1024;
    const status = fsck(img);
    fs.rmSync(img);
    return { ms: r.ms, rss, fsck: status };
  };
  /** One cp -a + sync into a fresh loop mount; mount and umount timed apart. */
  const kernelOnce = () => {
    const img = path.join(dir, "kernel.img");
    const mnt = path.join(dir, "mnt");
    fs.mkdirSync(mnt, { recursive: true });
    mkfs(img);
    const mountT = run("mount", ["-o", "loop", img, mnt]);
    let cp, umountT;
    try {
      cp = run("sh", ["-c", `cp -a "${src}/." "${mnt}/" && sync -f "${mnt}"`]);
    } finally {
      umountT = run("umount", [mnt]);
    }
    const status = fsck(img);
    fs.rmSync(img);
    return { ms: cp.ms, all: mountT.ms + cp.ms + umountT.ms, fsck: status };
  };

  const ours = [], before = [], kernel = [];
  let reason = "";
  if (!loopOk) reason = process.getuid?.() !== 0 ? "not root" : "no /dev/loop-control";
  for (let i = 0; i < runs; i++) {
    ours.push(putOnce(bin));
    if (baseline) before.push(putOnce(baseline));
    if (loopOk) kernel.push(kernelOnce());
  }

  const mibs = (ms) => (bytes / 2 ** 20 / (ms / 1000)).toFixed(0);
  const clean = (xs) => (xs.every((x) => x.fsck === 0) ? "clean" : `exit ${xs.map((x) => x.fsck).join(",")}`);
  const row = (name, ms, extra, xs) =>
    `| ${name} | ${(ms / 1000).toFixed(2)} s | ${mibs(ms)} | ${(count / (ms / 1000)).toFixed(0)} | ${extra} | ${xs ? clean(xs) : ""} |`;
  const putMs = median(ours.map((x) => x.ms));
  const rssMiB = (xs) => `${(median(xs.map((x) => x.rss)) / 2 ** 20).toFixed(0)} MiB`;
  console.log(`tree: ${count} entries, ${(bytes / 2 ** 20).toFixed(0)} MiB (${src}); images ${size} on ${base}; median of ${runs} run(s)\n`);
  console.log("| tool | wall time | MiB/s | entries/s | peak RSS | e2fsck -fn |\n| --- | --- | --- | --- | --- | --- |");
  console.log(row("ext4wasm put (start-up + mount + copy + unmount)", putMs, rssMiB(ours), ours));
  if (baseline) console.log(row(`baseline put (${baseline})`, median(before.map((x) => x.ms)), rssMiB(before), before));
  if (loopOk) {
    const cpMs = median(kernel.map((x) => x.ms));
    console.log(row("kernel: cp -a + sync into a loop mount", cpMs, "", kernel));
    console.log(row("kernel: mount + cp -a + sync + umount", median(kernel.map((x) => x.all)), "", null));
    console.log(`\nput / (cp -a + sync): ${(putMs / cpMs).toFixed(2)}x the time` +
      (baseline ? `; baseline put / (cp -a + sync): ${(median(before.map((x) => x.ms)) / cpMs).toFixed(2)}x` : ""));
    console.log(`runs (s): put ${ours.map((x) => (x.ms / 1000).toFixed(2)).join(" ")}` +
      (baseline ? `; baseline ${before.map((x) => (x.ms / 1000).toFixed(2)).join(" ")}` : "") +
      `; cp -a + sync ${kernel.map((x) => (x.ms / 1000).toFixed(2)).join(" ")}`);
  } else {
    console.log(`| kernel | skipped: ${reason} | | | | |`);
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
