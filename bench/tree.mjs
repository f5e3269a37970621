// Tree benchmark: whole-tree walks of a real system directory, ours against
// the kernel's, side by side in one run. An image is made with mkfs.ext4 -d
// from SRC (/usr by default), then, alternating by repetition:
//   ours    `ext4wasm ls -lR IMG /`  and  `ext4wasm get -q IMG / DST`
//           (a fresh node process each: start-up, mount and the cold cache included)
//   kernel  `ls -lR MNT` and `cp -a MNT/. DST` on a read-only loop mount of the
//           same image, after `sync; echo 3 > /proc/sys/vm/drop_caches`
//   debugfs `debugfs -R "rdump / DST" IMG`
// Wall time and peak RSS (from /usr/bin/time -f %M; left out without it) per
// pass; the median of the runs is reported. Targets (issue 5): get no slower than cp -a; ls -lR
// within 3x of the kernel's cold ls -lR.
//
//   node bench/tree.mjs [SRC] [--runs N] [--work DIR] [--out FILE]
//   npm run bench:tree -- /usr/share --runs 3

import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BIN = path.join(ROOT, "bin/ext4wasm.mjs");

function parseArgs(argv) {
  const o = { src: "/usr", runs: 3, work: fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir(), out: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--runs") o.runs = Number(argv[++i]);
    else if (a === "--work") o.work = argv[++i];
    else if (a === "--out") o.out = argv[++i];
    else if (a.startsWith("--")) throw new Error(`unknown option ${a}`);
    else o.src = a;
  }
  if (!Number.isInteger(o.runs) || o.runs < 1) throw new Error("--runs takes a positive integer");
  return o;
}

function log(s) { process.stderr.write(`${s}\n`); }

function ensureBuilt() {
  const dist = path.join(ROOT, "dist/cli.mjs");
  const newest = (d) => {
    let t = 0;
    for (const e of fs.readdirSync(d, { withFileTypes: true, recursive: true })) {
      if (e.isFile()) t = Math.max(t, fs.statSync(path.join(e.parentPath, e.name)).mtimeMs);
    }
    return t;
  };
  if (!fs.existsSync(dist) || fs.statSync(dist).mtimeMs < Math.max(newest(path.join(ROOT, "host")), newest(path.join(ROOT, "assembly")))) {
    log("building (npm run build)...");
    execFileSync("npm", ["run", "build"], { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"] });
  }
}

const TIME = fs.existsSync("/usr/bin/time") ? "/usr/bin/time" : null;

/** Runs a command, stdout discarded; wall seconds and peak RSS (KiB) of the command. */
function timed(cmd, args, opts = {}) {
  const start = process.hrtime.bigint();
  const r = TIME
    ? spawnSync(TIME, ["-f", "@@%M", cmd, ...args], { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8", ...opts })
    : spawnSync(cmd, args, { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8", ...opts });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const m = /@@(\d+)\s*$/.exec(r.stderr ?? "");
  const stderr = (r.stderr ?? "").replace(/@@\d+\s*$/, "").trim();
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.status}: ${stderr.split("\n").slice(-3).join(" | ")}`);
  return { seconds, maxRssKiB: m ? Number(m[1]) : null, stderr };
}

/** Clean caches for a cold pass: syncfs of the filesystems involved (a global sync waits on every mount of the machine), then drop_caches. */
function dropCaches(...paths) {
  const existing = paths.map((p) => (fs.existsSync(p) ? p : path.dirname(p))).filter((p) => fs.existsSync(p));
  if (existing.length) execFileSync("sync", ["-f", ...existing]);
  fs.writeFileSync("/proc/sys/vm/drop_caches", "3");
}

function du(dir) {
  const out = execFileSync("du", ["-sx", "--block-size=1", dir], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  return Number(out.split("\t")[0]);
}

function countEntries(dir) {
  const out = execFileSync("sh", ["-c", `find "$1" -xdev | wc -l`, "sh", dir], { encoding: "utf8" });
  return Number(out.trim());
}

function loopMount(image, mnt) {
  if (process.getuid?.() !== 0) return { ok: false, reason: "needs root" };
  if (!fs.existsSync("/dev/loop-control")) return { ok: false, reason: "no /dev/loop-control" };
  let dev = "";
  try {
    dev = execFileSync("losetup", ["--find", "--show", "--read-only", image], { encoding: "utf8" }).trim();
    execFileSync("mount", ["-t", "ext4", "-o", "ro,noatime", dev, mnt]);
    return { ok: true, dev };
  } catch (e) {
    if (dev) execFileSync("losetup", ["-d", dev]);
    return { ok: false, reason: e.message.split("\n")[0] };
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function main() {
  const o = parseArgs(process.argv.slice(2));
  ensureBuilt();
  const work = fs.mkdtempSync(path.join(o.work, "ext4wasm-bench-tree-"));
  const image = path.join(work, "tree.ext4");
  const mnt = path.join(work, "mnt");
  const dst = path.join(work, "dst");
  fs.mkdirSync(mnt);
  let mount = { ok: false, reason: "not tried" };
  const rm = () => spawnSync("rm", ["-rf", dst]);
  try {
    const bytes = du(o.src);
    const entries = countEntries(o.src);
    const size = Math.ceil((bytes * 1.25 + entries * 8192 + (256 << 20)) / (1 << 20));
    log(`source ${o.src}: ${entries} entries, ${(bytes / 2 ** 20).toFixed(0)} MiB; image ${size} MiB in ${o.work}`);
    const mk = timed("mkfs.ext4", ["-q", "-F", "-b", "4096", "-N", String(Math.ceil(entries * 1.1) + 1024), "-d", o.src, image, `${size}M`]);
    log(`mkfs.ext4 -d: ${mk.seconds.toFixed(1)} s`);
    mount = loopMount(image, mnt);
    if (!mount.ok) log(`kernel passes skipped: ${mount.reason}`);
    const hasDebugfs = spawnSync("debugfs", ["-V"]).status === 0;

    const passes = {
      "ext4wasm ls -lR": () => { dropCaches(image); return timed(process.execPath, [BIN, "ls", "-lR", image, "/"]); },
      "kernel ls -lR (cold)": mount.ok ? () => { dropCaches(image, mnt); return timed("ls", ["-lR", mnt]); } : null,
      "ext4wasm get": () => { rm(); dropCaches(image, dst); const r = timed(process.execPath, [BIN, "get", "-q", image, "/", dst]); rm(); return r; },
      "kernel cp -a (cold)": mount.ok ? () => { rm(); dropCaches(image, mnt, dst); const r = timed("cp", ["-a", `${mnt}/.`, dst]); rm(); return r; } : null,
      "debugfs rdump": hasDebugfs ? () => { rm(); fs.mkdirSync(dst); dropCaches(image, dst); const r = timed("debugfs", ["-R", `rdump / ${dst}`, image]); rm(); return r; } : null,
    };
    const samples = Object.fromEntries(Object.keys(passes).map((k) => [k, []]));
    for (let run = 1; run <= o.runs; run++) {
      for (const [name, fn] of Object.entries(passes)) {
        if (!fn) continue;
        const r = fn();
        samples[name].push(r);
        log(`run ${run}/${o.runs}  ${name.padEnd(22)} ${r.seconds.toFixed(2).padStart(7)} s  ${r.maxRssKiB === null ? "" : `${(r.maxRssKiB / 1024).toFixed(0)} MiB`}`);
      }
    }
    const rows = Object.entries(samples).filter(([, s]) => s.length).map(([name, s]) => ({
      name,
      seconds: median(s.map((x) => x.seconds)),
      minSeconds: Math.min(...s.map((x) => x.seconds)),
      maxSeconds: Math.max(...s.map((x) => x.seconds)),
      maxRssMiB: s[0].maxRssKiB === null ? null : Math.max(...s.map((x) => x.maxRssKiB)) / 1024,
    }));
    const by = Object.fromEntries(rows.map((r) => [r.name, r]));
    const ratio = (a, b) => (by[a] && by[b] ? by[a].seconds / by[b].seconds : null);
    const targets = {
      getVsCpA: ratio("ext4wasm get", "kernel cp -a (cold)"),
      lsVsKernelLs: ratio("ext4wasm ls -lR", "kernel ls -lR (cold)"),
    };
    const report = {
      date: new Date().toISOString(),
      source: o.src, entries, sourceBytes: bytes, imageMiB: size, backing: o.work, runs: o.runs,
      node: process.version, kernel: os.release(), cpus: os.cpus().length,
      kernelPasses: mount.ok ? "loop mount, ro,noatime" : `skipped: ${mount.reason}`,
      rows, targets: {
        ...targets,
        getNoSlowerThanCpA: targets.getVsCpA === null ? null : targets.getVsCpA <= 1,
        lsWithin3xOfKernel: targets.lsVsKernelLs === null ? null : targets.lsVsKernelLs <= 3,
      },
    };
    console.log(`\nTree benchmark: ${o.src} (${entries} entries, ${(bytes / 2 ** 20).toFixed(0)} MiB), median of ${o.runs}\n`);
    console.log("| pass | median s | min s | max s | peak RSS MiB |");
    console.log("|---|---:|---:|---:|---:|");
    for (const r of rows) console.log(`| ${r.name} | ${r.seconds.toFixed(2)} | ${r.minSeconds.toFixed(2)} | ${r.maxSeconds.toFixed(2)} | ${r.maxRssMiB === null ? "-" : r.maxRssMiB.toFixed(0)} |`);
    console.log("");
    if (targets.getVsCpA !== null) console.log(`get / cp -a: ${targets.getVsCpA.toFixed(2)}x (target <= 1)`);
    if (targets.lsVsKernelLs !== null) console.log(`ls -lR / kernel ls -lR: ${targets.lsVsKernelLs.toFixed(2)}x (target <= 3)`);
    const out = o.out ?? path.join(ROOT, "bench/results", `tree-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, JSON.stringify(report, null, 2) + "\n");
    log(`report: ${out}`);
  } finally {
    rm();
    if (mount.ok) {
      spawnSync("umount", [mnt]);
      spawnSync("losetup", ["-d", mount.dev]);
    }
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main();
