// fallocate (host/vfs/fallocate.ts over host/fs/fallocate.ts) against the
// kernel: the same sequence of fallocate(2) calls (default, KEEP_SIZE,
// PUNCH_HOLE, ZERO_RANGE, COLLAPSE_RANGE, INSERT_RANGE, and the invalid
// combinations) runs through our code on one copy of an image and through
// the kernel (raw syscalls from python3 on a loop mount) on another. Every
// call must fail or succeed as the kernel's did, with its errno; afterwards
// each file's size, bytes and block map (hole / written / unwritten per
// logical block, as debugfs lists the extents) must equal the kernel's, and
// e2fsck must find our image clean. The partial-block zeroing goes through a
// stand-in for BufferedIO.zeroRange that zeroes mapped blocks on the device.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Ext4Error, mount } from "../host/index.js";
import type { Volume } from "../host/index.js";
import { BhBufferedIO } from "../host/buffered/bh/read.js";
import { INODE_FLAGS } from "../host/format/inode.js";
import type { Ext4Inode } from "../host/fs/inode.js";
import { markInodeDirty } from "../host/fs/inode-write.js";
import type { Ext4 } from "../host/fs/super.js";
import { type FallocateMode, vfsFallocate } from "../host/vfs/fallocate.js";
import { missingTools, runSync } from "./helpers/exec.js";
import { mkfsEnv } from "./helpers/images.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "debugfs", "python3", "chattr"], "e2fsprogs and python3");
if (missing) console.log(`fallocate: skipped: ${missing}`);
const loop = loopMountSupport();
if (!missing && !loop.ok) console.log(`fallocate: skipped, every case compares with the kernel: ${loop.reason}`);
const d = missing || !loop.ok ? describe.skip : describe;

let work: string;
beforeAll(() => { if (!missing) work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-falloc-")); });
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

const fsOf = (vol: Volume) => (vol as unknown as { fs: Ext4 }).fs;

const KEEP = 0x01, PUNCH = 0x02, COLLAPSE = 0x08, ZERO = 0x10, INSERT = 0x20;
/** Not a mode: a write of content(len, offset % 251) at offset, through the page cache (delayed). */
const WRITE = -1;
type Op = [file: string, mode: number, offset: number, len: number];

function modeOf(m: number): FallocateMode {
  const o: FallocateMode = {};
  if (m & KEEP) o.keepSize = true;
  if (m & PUNCH) o.punchHole = true;
  if (m & COLLAPSE) o.collapseRange = true;
  if (m & ZERO) o.zeroRange = true;
  if (m & INSERT) o.insertRange = true;
  return o;
}

function content(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = 1 + ((i * 29 + seed + (i >> 10)) % 250);
  return b;
}

/** Each logical block's state from debugfs's extent listing, run-length coded: [first, last, "W" | "U"]. */
function blockMap(img: string, file: string): string[] {
  const out = runSync("debugfs", ["-R", `ex /${file}`, img]).stdout;
  const rows = [...out.matchAll(/^ *(\d+)\/ *(\d+) +\d+\/ *\d+ +(\d+) *- *(\d+) +\d+ *- *\d+ +\d+ *(Uninit)?$/gm)]
    .filter((m) => m[1] === m[2])
    .map((m) => ({ a: Number(m[3]), b: Number(m[4]), k: m[5] ? "U" : "W" }));
  const runs: { a: number; b: number; k: string }[] = [];
  for (const r of rows) {
    const last = runs[runs.length - 1];
    if (last && last.k === r.k && last.b + 1 === r.a) last.b = r.b;
    else runs.push({ ...r });
  }
  return runs.map((r) => `${r.a}-${r.b}${r.k}`);
}

const PY = `
import ctypes, errno, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
mnt, ops = sys.argv[1], json.loads(sys.argv[2])
out = []
def content(n, seed):
    return bytes(1 + ((i * 29 + seed + (i >> 10)) % 250) for i in range(n))
for f, mode, off, ln in ops:
    if mode == -1:
        fd = os.open(os.path.join(mnt, f), os.O_RDWR)
        os.pwrite(fd, content(ln, off % 251), off)
        os.close(fd)
        out.append("OK")
        continue
    fd = os.open(os.path.join(mnt, f), os.O_RDWR | (os.O_APPEND if f.startswith("ap") else 0))
    r = libc.fallocate(fd, mode, off, ln)
    e = "OK" if r == 0 else errno.errorcode[ctypes.get_errno()]
    out.append("EOPNOTSUPP" if e == "ENOTSUP" else e)
    os.close(fd)
print(json.dumps(out))
`;

function kernelRun(img: string, ops: Op[], before?: (mnt: string) => void): string[] {
  return withLoopMountSync(img, (mnt) => {
    before?.(mnt);
    const r = runSync("python3", ["-c", PY, mnt, JSON.stringify(ops)]);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as string[];
  });
}

function oursRun(img: string, ops: Op[], flags: Record<string, number> = {}): string[] {
  const vol = mount(img);
  try {
    const f = fsOf(vol);
    const io = new BhBufferedIO(f);
    const inodes = new Map<string, Ext4Inode>();
    const inodeOf = (name: string) => {
      let i = inodes.get(name);
      if (!i) { i = f.iget(Number(vol.statSync(`/${name}`).ino)); inodes.set(name, i); }
      return i;
    };
    for (const [name, fl] of Object.entries(flags)) {
      const inode = inodeOf(name);
      const h = f.startHandle(1);
      inode.flags |= fl;
      markInodeDirty(h, f, inode);
      h.stop();
    }
    const out = ops.map(([file, m, off, len]) => {
      try {
        if (m === WRITE) {
          const inode = inodeOf(file);
          io.write(inode, off, content(len, off % 251));
          return "OK";
        }
        vfsFallocate({ fs: f, io }, inodeOf(file), off, len, m & 0x40 ? m : modeOf(m));
        return "OK";
      } catch (e) {
        if (e instanceof Ext4Error) return e.code;
        throw e;
      }
    });
    for (const i of inodes.values()) f.iput(i);
    return out;
  } finally {
    vol.unmount();
  }
}

function fsckClean(img: string, when: string): void {
  const r = runSync("e2fsck", ["-fn", img], { okCodes: [0, 1, 2, 4, 8, 12] });
  expect(r.code, `e2fsck after ${when}:\n${r.stdout}\n${r.stderr}`).toBe(0);
}

function compareFiles(ours: string, kern: string, files: string[], when: string): void {
  fsckClean(ours, when);
  const read = (img: string) => withLoopMountSync(img, (mnt) => files.map((f) => fs.readFileSync(path.join(mnt, f))), { readOnly: true });
  const a = read(ours);
  const b = read(kern);
  files.forEach((f, i) => {
    expect(a[i].length, `${when}: ${f} size`).toBe(b[i].length);
    expect(a[i].equals(b[i]), `${when}: ${f} bytes`).toBe(true);
    expect(blockMap(ours, f), `${when}: ${f} block map`).toEqual(blockMap(kern, f));
  });
  // Our own reader agrees with the kernel's.
  const vol = mount(ours, { readOnly: true });
  try {
    files.forEach((f, i) => expect((vol.readFileSync(`/${f}`) as Buffer).equals(b[i]), `${when}: ${f} through our reader`).toBe(true));
  } finally {
    vol.unmount();
  }
}

function images(name: string, args: string[], files: Record<string, Buffer>): { ours: string; kern: string } {
  const tree = path.join(work, `${name}-tree`);
  fs.mkdirSync(tree, { recursive: true });
  for (const [n, b] of Object.entries(files)) fs.writeFileSync(path.join(tree, n), b);
  const ours = path.join(work, `${name}.img`);
  const r = runSync("mkfs.ext4", ["-q", "-F", "-E", "hash_seed=1b2c3d4e-0000-4000-8000-000000000001", ...args, "-d", tree, ours, "64M"], { env: { ...mkfsEnv(work), E2FSPROGS_FAKE_TIME: "1700000000" } });
  expect(r.code, r.stderr).toBe(0);
  const kern = path.join(work, `${name}-kernel.img`);
  fs.copyFileSync(ours, kern);
  return { ours, kern };
}

const K = 1024;
const sequence: Op[] = [
  ["a", 0, 100 * K, 50 * K],
  ["a", KEEP, 200 * K, 40 * K],
  ["a", PUNCH | KEEP, 10000, 20000],
  ["a", ZERO, 40000, 10000],
  ["a", COLLAPSE, 16 * K, 8 * K],
  ["a", INSERT, 8 * K, 4 * K],
  ["a", ZERO | KEEP, 150 * K, 100 * K],
  ["a", PUNCH | KEEP, 120 * K, 1 << 20],
  ["b", ZERO, 5000, 100],
  ["b", INSERT, 0, 4 * K],
  ["b", COLLAPSE, 0, 4 * K],
  ["b", PUNCH | KEEP, 3 * K, 70 * K],
  ["c", 0, 0, 1 << 20],
  ["c", COLLAPSE, 0, 4 * K],
  ["c", INSERT, 4 * K, 8 * K],
  ["c", ZERO, 1000, 300 * K],
  ["e", KEEP, 0, 64 * K],
  ["e", 0, 60 * K, 10],
  // Invalid calls.
  ["b", COLLAPSE, 1000, 4 * K],
  ["b", COLLAPSE, 32 * K, 1 << 20],
  ["b", INSERT, 1 << 20, 4 * K],
  ["b", PUNCH, 0, 4 * K],
  ["b", PUNCH | ZERO | KEEP, 0, 4 * K],
  ["b", COLLAPSE | KEEP, 0, 4 * K],
  ["b", INSERT | ZERO, 0, 4 * K],
  ["b", 0, 0, 0],
  ["b", 0, -1, 10],
  ["b", 0, 2 ** 44, 4 * K],
  ["b", INSERT, 0, 2 ** 44 - 8 * K],
  ["b", 0x40, 0, 4 * K],
  // Cached, delayed data under every mode: punched, zeroed, collapsed and inserted around.
  ["w", WRITE, 0, 90 * K + 123],
  ["w", PUNCH | KEEP, 5000, 9000],
  ["w", WRITE, 200 * K, 7000],
  ["w", ZERO, 30 * K + 5, 10 * K],
  ["w", COLLAPSE, 48 * K, 16 * K],
  ["w", WRITE, 70 * K + 3, 30 * K],
  ["w", INSERT, 16 * K, 32 * K],
  ["w", ZERO | KEEP, 100 * K, 500 * K],
  ["w", PUNCH | KEEP, 150 * K, 20 * K],
];

const layouts: [string, string[]][] = [
  ["4k", ["-b", "4096"]],
  ["1k", ["-b", "1024"]],
  ["bigalloc", ["-b", "4096", "-O", "bigalloc", "-C", "16384"]],
];

d("fallocate against the kernel", () => {
  it.each(layouts)("%s: the same calls give the same errors, sizes, bytes and block maps", (name, args) => {
    const { ours, kern } = images(`seq-${name}`, args, { a: content(64 * K, 1), b: content(64 * K, 2), c: Buffer.alloc(0), e: Buffer.alloc(0), w: Buffer.alloc(0) });
    // s_maxbytes is per block size: the EFBIG cases only where 2^44 is past it.
    const ops = sequence.filter((o) => name !== "1k" || o[2] + o[3] < 2 ** 41 || o[3] < 0 || o[2] < 0);
    const k = kernelRun(kern, ops);
    const o = oursRun(ours, ops);
    expect(ops.map((op, i) => `${JSON.stringify(op)} ${o[i]}`)).toEqual(ops.map((op, i) => `${JSON.stringify(op)} ${k[i]}`));
    for (const f of ["a", "b", "c", "e", "w"]) console.log(`${name} ${f}: ${blockMap(kern, f).join(" ")}`);
    compareFiles(ours, kern, ["a", "b", "c", "e", "w"], name);
  });

  it("4k: append-only and immutable files (EPERM but for plain allocation on append-only), a directory is not reached", () => {
    const { ours, kern } = images("flags", ["-b", "4096"], { ap: content(20 * K, 3), im: content(20 * K, 4) });
    // An immutable file cannot even be opened for writing in the kernel: ours alone says EPERM.
    const ops: Op[] = [["ap", 0, 0, 40 * K], ["ap", KEEP, 0, 80 * K], ["ap", PUNCH | KEEP, 0, 4 * K], ["ap", ZERO, 0, 4 * K], ["ap", COLLAPSE, 0, 4 * K], ["ap", INSERT, 0, 4 * K]];
    const k = kernelRun(kern, ops, (mnt) => {
      expect(runSync("chattr", ["+a", path.join(mnt, "ap")]).code).toBe(0);
    });
    const o = oursRun(ours, [...ops, ["im", 0, 0, 40 * K], ["im", PUNCH | KEEP, 0, 4 * K]], { ap: INODE_FLAGS.APPEND, im: INODE_FLAGS.IMMUTABLE });
    expect(o).toEqual([...k, "EPERM", "EPERM"]);
    fsckClean(ours, "flags");
    expect(blockMap(ours, "ap")).toEqual(blockMap(kern, "ap"));
    // vfs_fallocate: EISDIR before any mode.
    const vol = mount(ours);
    try {
      const f = fsOf(vol);
      const root = f.iget(2);
      try {
        expect(() => vfsFallocate({ fs: f, io: new BhBufferedIO(f) }, root, 0, 4096)).toThrow(expect.objectContaining({ code: "EISDIR" }));
      } finally {
        f.iput(root);
      }
    } finally {
      vol.unmount();
    }
  });

  it("1k ext3 (block-mapped): EOPNOTSUPP but for PUNCH_HOLE, which frees the blocks as the kernel does", () => {
    const { ours, kern } = images("ext3", ["-t", "ext3", "-b", "1024"], { a: content(300 * K, 5), b: content(40 * K, 6) });
    const ops: Op[] = [["a", 0, 0, 400 * K], ["a", KEEP, 0, 400 * K], ["a", ZERO, 0, 4 * K], ["a", COLLAPSE, 0, 4 * K], ["a", INSERT, 0, 4 * K],
      ["a", PUNCH | KEEP, 5000, 280 * K], ["b", PUNCH | KEEP, 0, 1 << 20], ["a", PUNCH | KEEP, 290 * K, 4 * K]];
    const k = kernelRun(kern, ops);
    const o = oursRun(ours, ops);
    expect(o).toEqual(k);
    fsckClean(ours, "ext3 punches");
    const read = (img: string) => withLoopMountSync(img, (mnt) => ["a", "b"].map((f) => fs.readFileSync(path.join(mnt, f))), { readOnly: true });
    const [oa, ob] = read(ours);
    const [ka, kb] = read(kern);
    expect(oa.equals(ka)).toBe(true);
    expect(ob.equals(kb)).toBe(true);
    const blocks = (img: string, f: string) => runSync("debugfs", ["-R", `stat /${f}`, img]).stdout.match(/Blockcount: (\d+)/)![1];
    expect([blocks(ours, "a"), blocks(ours, "b")]).toEqual([blocks(kern, "a"), blocks(kern, "b")]);
  });
});


// Found by fsx (tests/fsx.test.ts): a large folio straddling the start of a
// collapse or insert kept a zeroed copy of the range in the cache, over
// blocks the shift maps anew, so reads saw zeros where the moved data was.
describe.skipIf(!!missing)("collapse and insert range under a large folio", () => {
  const expected = (data: Buffer, mode: "collapse" | "insert", off: number, len: number) =>
    mode === "collapse" ? Buffer.concat([data.subarray(0, off), data.subarray(off + len)]) : Buffer.concat([data.subarray(0, off), Buffer.alloc(len), data.subarray(off)]);
  it.each([
    ["collapse", "dirty", 8192, 12288], ["collapse", "clean", 8192, 12288], ["insert", "dirty", 8192, 4096], ["insert", "clean", 8192, 4096],
  ] as const)("%s at a block inside a %s 16 KiB folio: the moved bytes read back, before and after a remount", (mode, state, off, len) => {
    const img = path.join(work, `folio-${mode}-${state}.img`);
    runSync("mkfs.ext4", ["-q", "-F", img, "32M"], { env: mkfsEnv(work) });
    const data = content(21458, 7);
    const want = expected(data, mode, off, len);
    let vol = mount(img);
    try {
      const fd = vol.openSync("/f", "w+");
      vol.writeSync(fd, data, 0, data.length, 0); // one write: folio 0 is order 2 (blocks 0-3)
      if (state === "clean") vol.fsyncSync(fd);
      vol.fallocateSync(fd, off, len, mode === "collapse" ? { collapseRange: true } : { insertRange: true });
      expect((vol.readFileSync("/f") as Buffer).equals(want), "read back through the cache").toBe(true);
      vol.closeSync(fd);
      vol.unmount();
      vol = mount(img, { readOnly: true });
      expect((vol.readFileSync("/f") as Buffer).equals(want), "read back after a remount").toBe(true);
    } finally {
      vol.unmount();
    }
    fsckClean(img, `${mode} under a ${state} folio`);
  });
});
