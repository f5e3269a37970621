// `put` of a tree against the kernel: `ext4wasm put IMAGE SRC/. /` (one
// process: mount, copy, unmount) against `cp -a SRC/. MNT/ && sync` into a
// loop mount of an identical fresh image, both on tmpfs, in the same run.
// `node bench/put.mjs [--src DIR] [--files N]`: the default tree is 20 000
// files in 1 000 directories with sizes drawn like a /usr tree (most under
// 16 KiB, a few MiB-sized), made once in /dev/shm. Both images are checked
// with e2fsck -fn afterwards. The kernel column needs root and loop devices;
// without them it is skipped with the reason.

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : def; };
const files = Number(opt("--files", "20000"));
const base = fs.existsSync("/dev/shm") ? "/dev/shm" : (process.env.TMPDIR ?? "/tmp");
const dir = fs.mkdtempSync(path.join(base, "ext4wasm-bench-put-"));
const bin = new URL("../bin/ext4wasm.mjs", import.meta.url).pathname;

function run(cmd, argv, opts = {}) {
  const t = performance.now();
  const r = spawnSync(cmd, argv, { stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 << 20, ...opts });
  const ms = performance.now() - t;
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(" ")} exited ${r.status}: ${r.stderr}`);
  return { ms, out: r.stdout.toString() };
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

const loopOk = process.getuid?.() === 0 && fs.existsSync("/dev/loop-control");
try {
  const src = opt("--src", undefined) ?? path.join(dir, "tree");
  if (!opt("--src", undefined)) makeTree(src, files);
  const bytes = du(src);
  const count = Number(run("sh", ["-c", `find "${src}" | wc -l`]).out.trim());
  const size = `${Math.max(256, Math.ceil((bytes * 1.6) / 2 ** 20) + 256)}M`;
  const mkfs = (img) => run("mkfs.ext4", ["-q", "-F", "-b", "4096", img, size]);

  const ours = path.join(dir, "ours.img");
  mkfs(ours);
  const put = run(process.execPath, [bin, "put", "-q", ours, `${src}/.`, "/"]);
  const fsckOurs = spawnSync("e2fsck", ["-fn", ours]).status;

  let kernel = null;
  let reason = "";
  if (loopOk) {
    const img = path.join(dir, "kernel.img");
    const mnt = path.join(dir, "mnt");
    fs.mkdirSync(mnt);
    mkfs(img);
    const mountT = run("mount", ["-o", "loop", img, mnt]);
    try {
      const cp = run("sh", ["-c", `cp -a "${src}/." "${mnt}/" && sync`]);
      kernel = { cp: cp.ms };
    } finally {
      kernel = { ...kernel, umount: run("umount", [mnt]).ms, mount: mountT.ms };
    }
    kernel.fsck = spawnSync("e2fsck", ["-fn", img]).status;
  } else {
    reason = process.getuid?.() !== 0 ? "not root" : "no /dev/loop-control";
  }
  const mibs = (ms) => (bytes / 2 ** 20 / (ms / 1000)).toFixed(0);
  console.log(`tree: ${count} entries, ${(bytes / 2 ** 20).toFixed(0)} MiB (${src}); images ${size} on ${base}\n`);
  console.log("| tool | wall time | MiB/s | entries/s | e2fsck -fn |\n| --- | --- | --- | --- | --- |");
  console.log(`| ext4wasm put (mount + copy + unmount) | ${(put.ms / 1000).toFixed(2)} s | ${mibs(put.ms)} | ${(count / (put.ms / 1000)).toFixed(0)} | ${fsckOurs === 0 ? "clean" : `exit ${fsckOurs}`} |`);
  if (kernel) {
    const all = kernel.mount + kernel.cp + kernel.umount;
    console.log(`| kernel: cp -a + sync into a loop mount | ${(kernel.cp / 1000).toFixed(2)} s | ${mibs(kernel.cp)} | ${(count / (kernel.cp / 1000)).toFixed(0)} | ${kernel.fsck === 0 ? "clean" : `exit ${kernel.fsck}`} |`);
    console.log(`| kernel: mount + cp -a + sync + umount | ${(all / 1000).toFixed(2)} s | ${mibs(all)} | ${(count / (all / 1000)).toFixed(0)} | |`);
    console.log(`\nput / (cp -a + sync): ${(put.ms / kernel.cp).toFixed(2)}x the time`);
  } else {
    console.log(`| kernel | skipped: ${reason} | | | |`);
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
