// ENOSPC: small filesystems filled with random-size files and directories
// until the blocks run out, and (few inodes) until the inodes run out. Every
// failure must be ENOSPC (never EIO, another code or a trap), e2fsck -fn stays
// clean, every byte written before reads back (after a remount too), and
// deleting everything gives back exactly the free counts we started with,
// in statfs once the deleting transaction has committed (vol.sync()) and in
// the superblock and group descriptors (dumpe2fs) after the unmount. Also a
// write that only partly fits: a short count, then ENOSPC, as the kernel's.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkfs, mount, MemoryDevice, type MkfsOptions, type Volume } from "../host/index.js";
import { missingTools, runSync } from "./helpers/exec.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";
import { mulberry32 } from "./helpers/random.js";

const missing = missingTools(["e2fsck", "dumpe2fs"], "e2fsprogs");
const d = missing ? describe.skip : describe;
const loop = loopMountSupport();
if (!loop.ok) console.log(`enospc: the kernel comparison is skipped: ${loop.reason}`);

let work: string;
beforeAll(() => { work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-enospc-")); });
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

const FIXED = { uuid: "2a1b3c4d-5e6f-4a0b-8c1d-2e3f4a5b6c7d", hashSeed: "3b2c4d5e-6f70-4b1c-9d2e-3f4a5b6c7d8e", time: 1_700_000_000 };

function fsck(img: string, what: string): void {
  const r = runSync("e2fsck", ["-fn", img], { okCodes: [0, 1, 2, 4, 8, 12] });
  if (r.code !== 0) throw new Error(`${what}: e2fsck -fn exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
}

interface Counts { freeBlocks: number; freeInodes: number; groups: string[] }
/** The superblock's and every group descriptor's free counts (and directories) as dumpe2fs reads them. */
function dumpCounts(img: string): Counts {
  const out = runSync("dumpe2fs", [img], { okCodes: [0, 1] }).stdout;
  const num = (re: RegExp) => Number(re.exec(out)?.[1]);
  return {
    freeBlocks: num(/^Free blocks:\s+(\d+)/m),
    freeInodes: num(/^Free inodes:\s+(\d+)/m),
    groups: [...out.matchAll(/^\s+(\d+) free (?:blocks|clusters), (\d+) free inodes, (\d+) directories/gm)].map((m) => m.slice(1).join("/")),
  };
}

const statCounts = (vol: Volume) => {
  const s = vol.statfsSync();
  return { bfree: s.bfree, bavail: s.bavail, ffree: s.ffree, files: s.files, blocks: s.blocks };
};

interface FillResult { files: Map<string, Buffer>; dirs: string[]; failures: Record<string, number>; ops: number; shortWrites: number }

/** Seeded fill under /fill until `stopAfter` ENOSPC failures in a row; any other error is thrown with the op. */
function fill(vol: Volume, seed: number, sizes: () => number, dirShare: number, tag = "", inDirs = ["/fill"], stopAfter = 12): FillResult {
  const rnd = mulberry32(seed);
  const files = new Map<string, Buffer>();
  const dirs = [...inDirs];
  const failures: Record<string, number> = {};
  let inARow = 0, ops = 0, shortWrites = 0, seq = 0;
  const failed = (op: string, e: unknown) => {
    const code = (e as { code?: string }).code;
    if (code !== "ENOSPC") throw new Error(`seed ${seed} op ${ops} ${op}: expected ENOSPC, got ${code ?? "no code"}: ${(e as Error).stack ?? e}`);
    failures[op.split(" ")[0]] = (failures[op.split(" ")[0]] ?? 0) + 1;
    inARow++;
  };
  while (inARow < stopAfter && ops < 20_000) {
    ops++;
    const parent = dirs[Math.floor(rnd() * dirs.length)];
    const p = `${parent}/${tag}${rnd() < dirShare ? "d" : "f"}${++seq}`;
    if (p.endsWith(`d${seq}`)) {
      try { vol.mkdirSync(p); dirs.push(p); inARow = 0; } catch (e) { failed(`mkdir ${p}`, e); }
      continue;
    }
    let fd: number;
    try { fd = vol.openSync(p, "wx"); } catch (e) { failed(`create ${p}`, e); continue; }
    const want = sizes();
    const data = Buffer.alloc(want);
    for (let i = 0; i < want; i++) data[i] = (seq * 7 + i * 13 + (i >> 8)) & 0xff;
    let done = 0;
    try {
      while (done < want) {
        const n = vol.writeSync(fd, data, done, Math.min(65536, want - done), done);
        if (n < Math.min(65536, want - done)) shortWrites++;
        done += n;
      }
      inARow = 0;
    } catch (e) {
      failed(`write ${p} @${done}`, e);
    } finally {
      files.set(p, data.subarray(0, done));
      vol.closeSync(fd);
    }
  }
  // Full now: the other calls that may need a block or an inode must succeed or fail with ENOSPC too.
  const names = [...files.keys()];
  const links: [string, string][] = [], xattrs: [string, Buffer][] = [];
  for (let i = 0; i < 60; i++) {
    ops++;
    const f = names[Math.floor(rnd() * names.length)];
    const p = `${dirs[Math.floor(rnd() * dirs.length)]}/${tag}x${++seq}-${"n".repeat(Math.floor(rnd() * 200))}`;
    const kind = Math.floor(rnd() * 6);
    try {
      if (kind === 0) { const t = "t/".repeat(Math.floor(rnd() * 500)); /* a target of a block or more is ENAMETOOLONG */ vol.symlinkSync(t, p); links.push([p, t]); }
      else if (kind === 1) { vol.linkSync(f, p); files.set(p, files.get(f)!); }
      else if (kind === 2) { vol.renameSync(f, p); files.set(p, files.get(f)!); files.delete(f); names[names.indexOf(f)] = p; }
      else if (kind === 3) { const v = Buffer.alloc(Math.floor(rnd() * 3000), seq & 0xff); vol.setxattr(f, `user.e${seq}`, v); xattrs.push([`${f}\0user.e${seq}`, v]); }
      else if (kind === 4) { vol.mkdirSync(p); dirs.push(p); }
      else { const fd = vol.openSync(f, "r+"); try { vol.fallocateSync(fd, 0, 1 + Math.floor(rnd() * 65536), { keepSize: true }); } finally { vol.closeSync(fd); } }
    } catch (e) {
      failed(`${["symlink", "link", "rename", "setxattr", "mkdir", "fallocate"][kind]} ${p}`, e);
    }
  }
  for (const [p, t] of links) expect(vol.readlinkSync(p)).toBe(t);
  for (const [k, v] of xattrs) {
    const [p, n] = k.split("\0");
    const now = [...files.entries()].find(([q]) => q === p) ? p : undefined;
    if (now) expect(vol.getxattr(now, n).equals(v)).toBe(true);
  }
  return { files, dirs, failures, ops, shortWrites };
}

function expectFiles(vol: Volume, files: Map<string, Buffer>, what: string): void {
  let bad = 0;
  for (const [p, data] of files) {
    const got = vol.readFileSync(p) as Buffer;
    if (!got.equals(data) && bad++ < 5) expect.fail(`${what}: ${p} reads ${got.length} bytes, ${data.length} were written${got.length === data.length ? " (contents differ)" : ""}`);
  }
}

interface Config { name: string; mkfs: MkfsOptions; sizeMiB: number; seed: number; sizes: (r: () => number) => () => number; dirShare: number; exhaust: "blocks" | "inodes" }

// Sizes: mostly small, some medium, a few large (runs of blocks, extent trees with several leaves).
const mixed = (r: () => number) => () => { const x = r(); return x < 0.6 ? Math.floor(r() * 8192) : x < 0.95 ? Math.floor(r() * 262_144) : Math.floor(r() * 2_097_152); };
const tiny = (r: () => number) => () => (r() < 0.5 ? 0 : Math.floor(r() * 3000));

const CONFIGS: Config[] = [
  { name: "4k blocks", mkfs: { blockSize: 4096 }, sizeMiB: 24, seed: 11, sizes: mixed, dirShare: 0.08, exhaust: "blocks" },
  { name: "1k blocks", mkfs: { blockSize: 1024 }, sizeMiB: 12, seed: 12, sizes: mixed, dirShare: 0.08, exhaust: "blocks" },
  { name: "bigalloc", mkfs: { blockSize: 4096, features: "bigalloc", clusterSize: 16384 }, sizeMiB: 32, seed: 13, sizes: mixed, dirShare: 0.08, exhaust: "blocks" },
  { name: "no journal", mkfs: { blockSize: 4096, features: "^has_journal" }, sizeMiB: 16, seed: 14, sizes: mixed, dirShare: 0.08, exhaust: "blocks" },
  { name: "4k, -N 256", mkfs: { blockSize: 4096, inodes: 256 }, sizeMiB: 32, seed: 15, sizes: tiny, dirShare: 0.2, exhaust: "inodes" },
  { name: "1k, -i 65536", mkfs: { blockSize: 1024, inodeRatio: 65536 }, sizeMiB: 16, seed: 16, sizes: tiny, dirShare: 0.2, exhaust: "inodes" },
  { name: "bigalloc, -N 128", mkfs: { blockSize: 4096, features: "bigalloc", clusterSize: 16384, inodes: 128 }, sizeMiB: 32, seed: 17, sizes: tiny, dirShare: 0.2, exhaust: "inodes" },
];

d("ENOSPC", () => {
  it.each(CONFIGS)("$name: fill until the $exhaust run out; only ENOSPC, e2fsck clean, everything reads back, deleting restores the counts", async (c) => {
    await new Promise<void>((r) => setImmediate(r)); // let the worker answer vitest between long synchronous runs
    const started = Date.now();
    const bytes = new Uint8Array(c.sizeMiB << 20);
    mkfs(new MemoryDevice(bytes), { ...c.mkfs, ...FIXED });
    const img = path.join(work, `${c.name.replace(/\W+/g, "-")}.img`);
    const save = () => fs.writeFileSync(img, bytes);

    let vol = mount(bytes);
    vol.sync();
    const s0 = statCounts(vol);
    vol.unmount();
    save();
    const d0 = dumpCounts(img);

    vol = mount(bytes);
    let r: FillResult;
    try {
      vol.mkdirSync("/fill");
      r = fill(vol, c.seed, c.sizes(mulberry32(c.seed * 31)), c.dirShare);
      const s = statCounts(vol);
      if (c.exhaust === "inodes") expect(s.ffree, "inodes left").toBe(0);
      else expect(s.bavail * s0.blocks / s.blocks, "blocks left").toBeLessThan(s0.blocks / 50);
      expectFiles(vol, r.files, "before the unmount");
    } finally {
      vol.unmount();
    }
    save();
    fsck(img, `${c.name}, full`);

    vol = mount(bytes);
    try {
      expectFiles(vol, r.files, "after a remount");
      // Half deleted, no sync: the refill reaches the freed blocks and inodes (ENOSPC forces the
      // commit that frees them, at reservation and at writeback) and loses nothing.
      let i = 0, freedBytes = 0, freedFiles = 0;
      for (const [p, data] of [...r.files]) {
        if (i++ % 2) continue;
        vol.unlinkSync(p);
        r.files.delete(p);
        if (![...r.files.values()].includes(data)) { freedBytes += data.length; freedFiles++; } // not a hard link's other name
      }
      const again = fill(vol, c.seed + 1000, c.sizes(mulberry32(c.seed * 37)), c.dirShare, "r", r.dirs);
      vol.sync();
      let refilled = 0;
      for (const data of again.files.values()) refilled += data.length;
      if (c.exhaust === "inodes") expect(again.files.size + again.dirs.length - r.dirs.length, "inodes refilled").toBeGreaterThanOrEqual(freedFiles);
      else expect(refilled, `bytes refilled (${freedBytes} freed)`).toBeGreaterThan(freedBytes * 0.8);
      expectFiles(vol, r.files, "the kept files after the refill");
      expectFiles(vol, again.files, "the refill");
      expect(vol.warnings.filter((w) => /lost/.test(w))).toEqual([]);
      vol.rmSync("/fill", { recursive: true });
      vol.sync();
      expect(statCounts(vol), "statfs once the deletes committed").toEqual(s0);
    } finally {
      vol.unmount();
    }
    save();
    fsck(img, `${c.name}, emptied`);
    expect(dumpCounts(img), "superblock and group descriptor counts").toEqual(d0);
    console.log(`enospc ${c.name}: ${r.ops} ops, ${r.files.size} files, ${r.dirs.length} dirs, ENOSPC from ${JSON.stringify(r.failures)}, ${r.shortWrites} short writes, ${Date.now() - started} ms`);
  }, 90_000);

  // generic_perform_write: a write that can reserve some blocks returns what it wrote; the next one is ENOSPC.
  it.each([300_000, 4_000_000])("writes of %i bytes until the space runs out: a short count, then ENOSPC, as the kernel's", (size) => {
    const chunk = Buffer.alloc(size, 0x5a);
    const attempt = (writeSync: (n: Buffer) => number): (number | string)[] => {
      const out: (number | string)[] = [];
      for (let i = 0; i < 64; i++) {
        try { out.push(writeSync(chunk)); } catch (e) { out.push((e as { code?: string }).code ?? String(e)); break; }
      }
      return out;
    };
    const shape = (seq: (number | string)[]) => seq.map((x) => (x === chunk.length ? "full" : typeof x === "number" ? "short" : x)).filter((x, i, a) => x !== "full" || a[i - 1] !== "full");
    const fresh = () => {
      const b = new Uint8Array(16 << 20);
      mkfs(new MemoryDevice(b), { blockSize: 4096, ...FIXED });
      return b;
    };
    const bytes = fresh();
    const vol = mount(bytes);
    let ours: (number | string)[];
    try {
      const fd = vol.openSync("/big", "w");
      ours = attempt((b) => vol.writeSync(fd, b));
      vol.closeSync(fd);
      expect(vol.statSync("/big").size).toBe(ours.reduce<number>((a, x) => a + (typeof x === "number" ? x : 0), 0));
    } finally {
      vol.unmount();
    }
    console.log(`writes of ${size}: ours ${JSON.stringify(ours.slice(-3))}, total ${ours.reduce<number>((a, x) => a + (typeof x === "number" ? x : 0), 0)}`);
    expect(shape(ours)).toEqual(["full", "short", "ENOSPC"]);
    const img = path.join(work, "partial.img");
    fs.writeFileSync(img, bytes);
    fsck(img, "partial write");
    if (!loop.ok) return;
    const kimg = path.join(work, "partial-kernel.img");
    fs.writeFileSync(kimg, fresh());
    const theirs = withLoopMountSync(kimg, (mnt) => {
      const fd = fs.openSync(path.join(mnt, "big"), "w");
      try { return attempt((b) => fs.writeSync(fd, b)); } finally { fs.closeSync(fd); }
    });
    console.log(`partial write: ours ${JSON.stringify(ours)}, the kernel's ${JSON.stringify(theirs)}`);
    expect(shape(ours)).toEqual(shape(theirs));
    const total = (s: (number | string)[]) => s.reduce<number>((a, x) => a + (typeof x === "number" ? x : 0), 0);
    // The same space accounting (reserve, metadata, reserved clusters) within a few blocks.
    expect(Math.abs(total(ours) - total(theirs))).toBeLessThanOrEqual(16 * 4096);
  }, 60_000);
});
