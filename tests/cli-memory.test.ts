// The resident set of the CLI's tree walks stays under 128 MiB (issue 5).
// `ls -lR`, `ls -R --json` and `get` run as child processes on an image of a
// generated tree shaped like /usr/share: one flat directory of 8 000 entries
// and 120 small ones, 44 000 entries in all (more inodes than the old decoded
// inode cache held). Each child reports its peak resident set (VmHWM from
// /proc/self/status, read as it exits) through a preloaded hook. Before the
// caches were sized for the job, this tree took ls -lR to ~175 MiB, ls -R
// --json to ~205 MiB and get to ~177 MiB; now each peaks near 95-105 MiB. A
// memory bound, not a timing: it holds however loaded the machine is. (When
// the write-path foundation merged, get's peak went bimodal, up to 152 MiB in
// some runs: what each in-core inode carried past the young generation had
// grown by half; see docs/design.md, "Memory of the CLI walks".)

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, ensureBuilt, sh, writePatternedFile } from "./cli-helpers.js";

const LIMIT_MIB = 128;
const base = fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();
const tmp = fs.mkdtempSync(path.join(base, "ext4wasm-mem-"));
const SRC = path.join(tmp, "src");
const IMG = path.join(tmp, "tree.img");
const HOOK = path.join(tmp, "hwm.cjs");
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

let skip: string | null = null;
if (!fs.existsSync("/proc/self/status")) skip = "no /proc/self/status to read the peak resident set from";
else if (spawnSync("mkfs.ext4", ["-V"]).error) skip = "mkfs.ext4 not found (install e2fsprogs)";

beforeAll(() => {
  if (skip) {
    console.log(`cli-memory: skipped: ${skip}`);
    return;
  }
  ensureBuilt();
  const data = Buffer.alloc(3000, 0x61);
  fs.mkdirSync(path.join(SRC, "big"), { recursive: true });
  for (let i = 0; i < 8000; i++) fs.writeFileSync(path.join(SRC, "big", `entry-with-a-longish-name-${i}.1.gz`), data.subarray(0, i % 50));
  for (let d = 0; d < 120; d++) {
    const dir = path.join(SRC, `d${d}`, "sub");
    fs.mkdirSync(dir, { recursive: true });
    for (let i = 0; i < 300; i++) fs.writeFileSync(path.join(dir, `file-${i}.txt`), data.subarray(0, (i * 37) % 3000));
    fs.symlinkSync("sub/file-1.txt", path.join(SRC, `d${d}`, "link"));
  }
  sh("mkfs.ext4", ["-q", "-F", "-b", "4096", "-N", "50000", "-d", SRC, IMG, "300M"]);
  fs.rmSync(SRC, { recursive: true, force: true });
  fs.writeFileSync(HOOK, `process.on("exit", () => {
  const m = /VmHWM:\\s+(\\d+) kB/.exec(require("fs").readFileSync("/proc/self/status", "utf8"));
  process.stderr.write("\\nVmHWM " + (m ? m[1] : "?") + "\\n");
});\n`);
}, 120_000);

/** Runs the CLI with stdout discarded; its exit status and peak resident set in MiB. */
function peakOf(args: string[]): { status: number | null; peakMiB: number; stderr: string } {
  const r = spawnSync(process.execPath, ["--require", HOOK, BIN, ...args], { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" });
  const m = /\nVmHWM (\d+)\n$/.exec(r.stderr);
  if (!m) throw new Error(`no VmHWM from the child (status ${r.status}): ${r.stderr.slice(-500)}`);
  return { status: r.status, peakMiB: Number(m[1]) / 1024, stderr: r.stderr };
}

describe("memory of the tree walks", () => {
  it(`ls -lR of 44 000 entries peaks under ${LIMIT_MIB} MiB`, (ctx) => {
    if (skip) return ctx.skip();
    const r = peakOf(["ls", "-lR", IMG, "/"]);
    console.log(`ls -lR: peak ${r.peakMiB.toFixed(0)} MiB`);
    expect(r.status).toBe(0);
    expect(r.peakMiB).toBeLessThan(LIMIT_MIB);
  }, 60_000);

  it(`ls -R --json of 44 000 entries peaks under ${LIMIT_MIB} MiB`, (ctx) => {
    if (skip) return ctx.skip();
    const r = peakOf(["ls", "-R", "--json", IMG, "/"]);
    console.log(`ls -R --json: peak ${r.peakMiB.toFixed(0)} MiB`);
    expect(r.status).toBe(0);
    expect(r.peakMiB).toBeLessThan(LIMIT_MIB);
  }, 60_000);

  it(`get of 44 000 entries peaks under ${LIMIT_MIB} MiB`, (ctx) => {
    if (skip) return ctx.skip();
    const dst = path.join(tmp, "copy");
    try {
      const r = peakOf(["get", "-q", IMG, "/", dst]);
      console.log(`get: peak ${r.peakMiB.toFixed(0)} MiB`);
      expect(r.status).toBe(0);
      expect(fs.readdirSync(path.join(dst, "big")).length).toBe(8000);
      expect(r.peakMiB).toBeLessThan(LIMIT_MIB);
    } finally {
      fs.rmSync(dst, { recursive: true, force: true });
    }
  }, 60_000);
});

// cat reads with drop-behind through the walk's small cache: a file larger
// than the bound streams through it (with the library's default 256 MiB
// cache a 150 MB file took ~200 MiB; now ~60 MiB).
describe("memory of cat", () => {
  it(`cat of a 150 MB file peaks under ${LIMIT_MIB} MiB`, (ctx) => {
    if (skip) return ctx.skip();
    const src = path.join(tmp, "cat-src");
    const img = path.join(tmp, "cat.img");
    try {
      fs.mkdirSync(src);
      writePatternedFile(path.join(src, "big"), 150);
      sh("mkfs.ext4", ["-q", "-F", "-b", "4096", "-d", src, img, "200M"]);
      fs.rmSync(src, { recursive: true, force: true });
      const r = peakOf(["cat", img, "/big"]);
      console.log(`cat: peak ${r.peakMiB.toFixed(0)} MiB`);
      expect(r.status).toBe(0);
      expect(r.peakMiB).toBeLessThan(LIMIT_MIB);
    } finally {
      fs.rmSync(src, { recursive: true, force: true });
      fs.rmSync(img, { force: true });
    }
  }, 60_000);
});
