// The in-core inode: one object per inode number however it is reached
// (iget, the read path's fs.inode, after LRU eviction while a reader still
// holds it), references keep it cached, i_size and i_disksize apart on disk,
// EXT4_STATE_NEW zeroing the whole on-disk inode, the path bit frozen while
// folios are dirty, and the read path's mappings cached in the extent status
// tree without moving its seq.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount } from "../host/index.js";
import { ES } from "../host/fs/extents-status.js";
import { extentMapBlocks } from "../host/fs/extents.js";
import { Ext4Inode, STATE } from "../host/fs/inode.js";
import { markInodeDirty } from "../host/fs/inode-write.js";
import { inodeLocation } from "../host/fs/inode-table.js";
import type { Ext4 } from "../host/fs/super.js";
import { missingTools, runSync } from "./helpers/exec.js";
import { mkfsEnv } from "./helpers/images.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "debugfs"], "e2fsprogs");
if (missing) console.log(`inode-cache: skipped: ${missing}`);
const d = missing ? describe.skip : describe;

let work: string;
let img: string;

beforeAll(() => {
  if (missing) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-icache-"));
  const tree = path.join(work, "tree");
  fs.mkdirSync(tree);
  fs.writeFileSync(path.join(tree, "a"), "hello");
  const big = Buffer.alloc(2 << 20, 1);
  fs.writeFileSync(path.join(tree, "big"), big);
  // 12 one-block runs with holes between: 12 extents, more than the root holds, so one leaf block.
  const fd = fs.openSync(path.join(tree, "sparse"), "w");
  for (let k = 0; k < 12; k++) fs.writeSync(fd, Buffer.alloc(4096, k + 1), 0, 4096, k * 2 * 4096);
  fs.closeSync(fd);
  img = path.join(work, "base.img");
  const r = runSync("mkfs.ext4", ["-q", "-F", "-O", "^has_journal", "-b", "4096", "-d", tree, img, "32M"], { env: mkfsEnv(work) });
  expect(r.code, r.stderr).toBe(0);
});

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

function copy(name: string): string {
  const p = path.join(work, name);
  fs.copyFileSync(img, p);
  return p;
}

function fsOf(vol: unknown): Ext4 { return (vol as { fs: Ext4 }).fs; }

d("in-core inode cache", () => {
  it("gives one object per inode number while referenced (iget, open files) and refuses changes through a stale one", () => {
    const vol = mount(copy("one.img"), { cacheSize: 4 << 20 });
    try {
      const f = fsOf(vol);
      const ino = vol.statSync("/a").ino;
      const held = f.iget(ino);
      expect(held).toBeInstanceOf(Ext4Inode);
      expect(f.inode(ino)).toBe(held);
      const b = f.iget(ino);
      expect(b).toBe(held);
      expect(held.count).toBe(2);
      // Referenced while still in the LRU (kept lazily): counted as busy all the same.
      expect(f.icache.busyInodes()).toContain(held);
      f.iput(b);
      const bigIno = vol.statSync("/big").ino;
      const unreferenced = f.inode(bigIno);
      const fd = vol.openSync("/big");
      const opened = f.icache.cached(bigIno)!;
      expect(opened).toBe(unreferenced);
      expect(opened.count).toBe(1);
      // Far more inodes than the idle LRU holds (256 at a 4 MiB budget).
      const lost = f.inode(11);
      for (let i = 12; i <= f.sb.inodesCount; i++) f.inode(i);
      expect(f.icache.stats.idle).toBeLessThanOrEqual(256);
      expect(f.icache.stats.busy).toBe(2);
      // Referenced: still the one object, for readers and iget alike.
      expect(f.inode(ino)).toBe(held);
      expect(f.inode(bigIno)).toBe(opened);
      expect(vol.readSync(fd, Buffer.alloc(4), 0, 4, 0)).toBe(4);
      vol.closeSync(fd);
      expect(opened.count).toBe(0);
      f.iput(held);
      expect(() => f.iput(held)).toThrow(/without a reference/);
      expect(f.icache.stats.busy).toBe(0);
      // Unreferenced and evicted: a later lookup reads a new object, and the old one may not be written.
      const fresh = f.inode(11);
      expect(fresh).not.toBe(lost);
      const h = f.startHandle(1);
      expect(() => markInodeDirty(h, f, lost)).toThrow(/stale/);
      markInodeDirty(h, f, fresh);
      h.stop();
    } finally {
      vol.unmount();
    }
  });

  it("writes i_disksize, not i_size; a NEW inode is written whole, in-inode xattr area zeroed", () => {
    const p = copy("disksize.img");
    const vol = mount(p);
    let ino = 0;
    try {
      const f = fsOf(vol);
      ino = vol.statSync("/a").ino;
      const inode = f.iget(ino);
      inode.size = 1 << 20; // i_size runs ahead: nothing of it reaches the disk
      const h = f.startHandle(1);
      markInodeDirty(h, f, inode);
      expect(inode.disksize).toBe(5);
      // EXT4_STATE_NEW: junk in the raw copy past the fields is not written.
      inode.raw.fill(0x5a, 160, f.sb.inodeSize);
      inode.setState(STATE.NEW);
      markInodeDirty(h, f, inode);
      expect(inode.testState(STATE.NEW)).toBe(false);
      h.stop();
      const loc = inodeLocation(f, ino);
      const onDisk = f.bcache.readCopy(loc.block).subarray(loc.offset, loc.offset + f.sb.inodeSize);
      expect(onDisk.subarray(160).every((x) => x === 0)).toBe(true);
      expect(onDisk.subarray(0x28, 0x28 + 60)).toEqual(inode.iBlock);
      f.iput(inode);
    } finally {
      vol.unmount();
    }
    const r = runSync("e2fsck", ["-fn", p]);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(runSync("debugfs", ["-R", "stat /a", p]).stdout).toMatch(/Size: 5\b/);
  });

  it("fixes the buffered path at iget and refuses to move it while folios are dirty", () => {
    const vol = mount(copy("path.img"), { readOnly: true, mountOptions: "buffered_iomap" });
    try {
      const f = fsOf(vol);
      const inode = f.iget(vol.statSync("/big").ino);
      expect(inode.bufferedIomap).toBe(true);
      expect(f.inode(vol.statSync("/").ino).bufferedIomap, "directories stay on buffer heads").toBe(false);
      inode.dirtyFolios = 1;
      expect(() => inode.setBufferedIomap(!inode.bufferedIomap)).toThrow(/dirty/);
      inode.dirtyFolios = 0;
      inode.setBufferedIomap(!inode.bufferedIomap);
      f.iput(inode);
    } finally {
      vol.unmount();
    }
  });

  it("caches the read path's mappings in the extent status tree without changing seq, and answers from it", () => {
    const vol = mount(copy("es.img"), { readOnly: true });
    try {
      const f = fsOf(vol);
      const inode = f.iget(vol.statSync("/big").ino);
      const seq = inode.es.seq;
      const blocks = Math.ceil(inode.size / f.sb.blockSize);
      const first = [];
      for (let b = 0; b < blocks + 4; b++) first.push(f.mapBlocks(inode, b, 1));
      expect(inode.es.seq).toBe(seq);
      expect(inode.es.count).toBeGreaterThan(0);
      // Cached pieces of one extent merge into one entry.
      const written = inode.es.extents().filter((e) => e.status === ES.WRITTEN);
      expect(written.reduce((n, e) => n + e.len, 0)).toBe(blocks);
      for (let b = 0; b < blocks + 4; b++) {
        expect(f.mapBlocks(inode, b, 1)).toEqual(first[b]);
        expect(f.mapBlocks(inode, b, 1)).toEqual(extentMapBlocks(f, inode, b, 1));
      }
      expect(inode.es.seq).toBe(seq);
      f.iput(inode);
      expect(Buffer.compare(vol.readFileSync("/big") as Buffer, Buffer.alloc(2 << 20, 1))).toBe(0);
    } finally {
      vol.unmount();
    }
  });

  it("caches a whole leaf read from disk, its extents and the holes between them (ext4_cache_extents), without changing seq", () => {
    const vol = mount(copy("leaf.img"), { readOnly: true });
    try {
      const f = fsOf(vol);
      const inode = f.iget(vol.statSync("/sparse").ino);
      expect(inode.iBlock[6], "a leaf below the root").toBe(1);
      const seq = inode.es.seq;
      expect(f.mapBlocks(inode, 0, 1)).toMatchObject({ lblk: 0, len: 1 });
      expect(inode.es.seq).toBe(seq);
      const ex = inode.es.extents();
      expect(ex.filter((e) => e.status === ES.WRITTEN).map((e) => e.lblk)).toEqual(Array.from({ length: 12 }, (_, k) => 2 * k));
      expect(ex.filter((e) => e.status === ES.HOLE).map((e) => [e.lblk, e.len])).toEqual(Array.from({ length: 11 }, (_, k) => [2 * k + 1, 1]));
      // Every later lookup in the leaf answers from the tree, as the disk would.
      for (let b = 0; b < 24; b++) expect(f.mapBlocks(inode, b, 1)).toEqual(extentMapBlocks(f, { ...inode }, b, 1));
      f.iput(inode);
    } finally {
      vol.unmount();
    }
  });
});
