// The bh path's other entry points: zeroRange, allocDaBlocks, uncached
// (dontcache) writes, fsync's error reporting, and truncateInodePages +
// esRemoveExtent over delayed data (what truncate will call).

import * as nfs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemoryDevice, mkfs, mount } from "../host/index.js";
import type { BlockDevice } from "../host/device/block-device.js";
import { BhBufferedIO } from "../host/buffered/bh/read.js";
import { truncateInodePages } from "../host/cache/truncate.js";
import { esRemoveExtent } from "../host/fs/delalloc.js";
import { setInodeSize } from "../host/fs/inode.js";
import { markInodeDirty } from "../host/fs/inode-write.js";
import { allocStats } from "../host/fs/mballoc.js";
import { missingTools } from "./helpers/exec.js";
import { createFile, expectClean, FIXED, makeImage, open, pattern, readAll, rmrf } from "./helpers/bh-write.js";

const missing = missingTools(["e2fsck"], "e2fsprogs");
if (missing) console.log(`bh-write-ops: skipped: ${missing}`);
const d = missing ? describe.skip : describe;

let work: string;
beforeAll(() => { work = nfs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-bhops-")); });
afterAll(() => { if (work) rmrf(work); });

function remountRead(img: string, name: string): Buffer {
  const v = mount(img, { readOnly: true });
  try {
    return v.readFileSync(`/${name}`) as Buffer;
  } finally {
    v.unmount();
  }
}

d("bh write-path operations", () => {
  it("zeroRange zeroes delayed and mapped blocks through the cache and leaves holes unallocated", () => {
    const img = makeImage(work, "zero", "32M", { blockSize: 4096 });
    const m = open(img);
    const f = createFile(m.fs, "z");
    const model = Buffer.alloc(64 << 10);
    try {
      // Blocks 0-3 written back (mapped), 8-11 delayed, 4-7 and 12-15 holes.
      const a = pattern(1, 16384);
      m.io.write(f, 0, a);
      model.set(a, 0);
      m.io.writeback(f, 0, Infinity, true);
      const b = pattern(2, 16384);
      m.io.write(f, 32768, b);
      model.set(b, 32768);
      m.io.write(f, (64 << 10) - 1, new Uint8Array([7]));
      model[(64 << 10) - 1] = 7;
      const delayed = f.delayedBlocks;
      const blocks = f.blocks512;
      m.io.zeroRange(f, 1000, 40000);
      model.fill(0, 1000, 40000);
      expect(f.delayedBlocks).toBe(delayed);
      expect(f.blocks512).toBe(blocks);
      expect(readAll(m, f).equals(model)).toBe(true);
      m.io.fsync(f, false);
    } finally {
      m.fs.iput(f);
      m.vol.unmount();
    }
    expectClean(img);
    expect(remountRead(img, "z").equals(model)).toBe(true);
  });

  it("allocDaBlocks allocates every delayed block and brings i_disksize to i_size", () => {
    const img = makeImage(work, "autoda", "32M", { blockSize: 4096 });
    const m = open(img);
    const f = createFile(m.fs, "r");
    try {
      m.io.write(f, 0, pattern(3, 50_000));
      expect(f.delayedBlocks).toBe(13);
      expect(f.disksize).toBe(0);
      m.io.allocDaBlocks(f);
      expect(f.delayedBlocks).toBe(0);
      expect(f.reservedDataBlocks).toBe(0);
      expect(f.disksize).toBe(50_000);
    } finally {
      m.fs.iput(f);
      m.vol.unmount();
    }
    expectClean(img);
  });

  it("dontcache writes are written back at once and leave no folio cached", () => {
    const img = makeImage(work, "dontcache", "32M", { blockSize: 4096 });
    const m = open(img);
    const f = createFile(m.fs, "u");
    const data = pattern(4, 3 << 20);
    try {
      m.io.write(f, 0, data, { dontcache: true });
      const c = m.fs.cache.mappingCounts(m.fs.cache.mappingOf(f));
      expect(c.dirtyFolios).toBe(0);
      expect(c.folios).toBe(0);
      expect(f.delayedBlocks).toBe(0);
    } finally {
      m.fs.iput(f);
      m.vol.unmount();
    }
    expectClean(img);
    expect(remountRead(img, "u").equals(Buffer.from(data))).toBe(true);
  });

  it("an asynchronous writeback failure comes out of the next fsync once, then fsync succeeds", () => {
    const bytes = new Uint8Array(32 << 20);
    mkfs(new MemoryDevice(bytes), { size: bytes.length, blockSize: 4096, features: "^has_journal", ...FIXED });
    const inner = new MemoryDevice(bytes);
    let failData = false;
    const metaEnd = 2 << 20; // our mkfs puts metadata first; file data lands above this on an empty image
    const dev: BlockDevice = {
      get size() { return inner.size; },
      get readOnly() { return false; },
      read: (p, b) => inner.read(p, b),
      write: (p, b) => { if (failData && p >= metaEnd) throw new Error("injected write error"); inner.write(p, b); },
      flush: () => inner.flush(),
      close: () => inner.close(),
    };
    const vol = mount(dev);
    const io = new BhBufferedIO(vol.fs);
    const f = createFile(vol.fs, "e");
    try {
      io.write(f, 0, pattern(5, 200_000));
      failData = true;
      io.writeback(f, 0, Infinity, false); // no throw: the writer that triggered writeback never sees it
      let err: unknown;
      try { io.fsync(f, false); } catch (e) { err = e; }
      expect(err).toMatchObject({ code: "EIO" });
      failData = false;
      io.fsync(f, false); // reported once
    } finally {
      vol.fs.iput(f);
      vol.unmount();
    }
  });

  it("truncateInodePages + esRemoveExtent over delayed data: reservations and dirty folios go, the image stays clean", () => {
    const img = makeImage(work, "trunc", "32M", { blockSize: 4096 });
    const m = open(img);
    const f = createFile(m.fs, "t");
    const data = pattern(6, 100_000);
    try {
      const base = allocStats(m.fs).dirtyClusters;
      m.io.write(f, 0, data);
      expect(f.reservedDataBlocks).toBe(25);
      // truncate to 10000 bytes as setattr will: size first, the cache, then the extent status range.
      const h = m.fs.startHandle(4);
      setInodeSize(f, 10_000);
      markInodeDirty(h, m.fs, f);
      h.stop();
      m.io.zeroRange(f, 10_000, 12_288);
      truncateInodePages(m.fs, f, 10_000);
      esRemoveExtent(m.fs, f, 3, 0x100000000 - 3);
      expect(f.reservedDataBlocks).toBe(3);
      expect(allocStats(m.fs).dirtyClusters).toBe(base + 3);
      // One large folio straddles the new end and stays (its tail zeroed); the folios past it went.
      const counts = m.fs.cache.mappingCounts(m.fs.cache.mappingOf(f));
      expect(counts.folios).toBe(1);
      expect(f.dirtyFolios).toBe(1);
      m.io.fsync(f, false);
      expect(f.reservedDataBlocks).toBe(0);
      expect(readAll(m, f).equals(Buffer.from(data.subarray(0, 10_000)))).toBe(true);
    } finally {
      m.fs.iput(f);
      m.vol.unmount();
    }
    expectClean(img);
    expect(remountRead(img, "t").equals(Buffer.from(data.subarray(0, 10_000)))).toBe(true);
  });
});

// Found by fsx: zeroRange left unwritten blocks alone, though a write into preallocated space leaves
// its data in the cached copy until writeback converts the extent; a punch kept those bytes.
d("zeroRange over written-to preallocation", () => {
  it("a punch of the tail of a write into a keep-size preallocation zeroes the cached bytes", () => {
    const img = makeImage(work, "zero-unwritten", "32M", { blockSize: 4096 });
    const vol = mount(img);
    const model = Buffer.from(pattern(40, 10000));
    try {
      const fd = vol.openSync("/u", "w+");
      vol.fallocateSync(fd, 0, 65536, { keepSize: true });
      vol.writeSync(fd, model, 0, model.length, 0);
      vol.fallocateSync(fd, 9000, 100000, { punchHole: true, keepSize: true });
      model.fill(0, 9000);
      expect((vol.readFileSync("/u") as Buffer).equals(model), "read through the cache").toBe(true);
      vol.closeSync(fd);
    } finally {
      vol.unmount();
    }
    expectClean(img);
    expect(remountRead(img, "u").equals(model)).toBe(true);
  });
});

d("writeback near ENOSPC", () => {
  // Found by the ENOSPC suite: after a full file was deleted, new delayed writes were reserved
  // against its freed (not yet committed) blocks; writeback then failed to allocate and dropped
  // the data, so a 16 MiB filesystem took 20 MiB of writes and sync failed. ext4_writepages
  // forces the commit and maps again.
  it("forces the commit that frees a deleted file's blocks and maps again, losing nothing", () => {
    const bytes = new Uint8Array(16 << 20);
    mkfs(new MemoryDevice(bytes), { blockSize: 4096, ...FIXED });
    const vol = mount(bytes);
    const fillUp = (name: string, byte: number): number => {
      const chunk = Buffer.alloc(1 << 20, byte);
      const fd = vol.openSync(name, "w");
      let total = 0;
      try {
        for (;;) { const n = vol.writeSync(fd, chunk); total += n; if (n < chunk.length) break; }
      } catch (e) {
        expect((e as { code?: string }).code).toBe("ENOSPC");
      } finally {
        vol.closeSync(fd);
      }
      return total;
    };
    try {
      const first = fillUp("/a", 1);
      vol.unlinkSync("/a"); // its blocks wait for the commit
      const second = fillUp("/b", 2);
      vol.sync();
      expect(second).toBe(first);
      expect(Buffer.compare(vol.readFileSync("/b") as Buffer, Buffer.alloc(second, 2))).toBe(0);
      expect(vol.warnings.filter((w) => /data is lost/.test(w))).toEqual([]);
    } finally {
      vol.unmount();
    }
    const img = path.join(work, "enospc-retry.img");
    nfs.writeFileSync(img, bytes);
    expectClean(img);
  });
});

d("data=journal", () => {
  it("file data goes through the log, reads prefer the journal's newer copy, and the checkpoint writes it home", () => {
    const img = makeImage(work, "dj", "32M", { blockSize: 4096 });
    const m = open(img, "data=journal");
    const f = createFile(m.fs, "j");
    const data = pattern(9, 40 * 4096 + 123);
    try {
      const j = m.fs.journal!;
      const logged = j.stats.logBlocks;
      m.io.write(f, 0, data);
      expect(f.dirtyFolios).toBe(0); // the folios stay clean: writeback never writes journalled data
      m.io.fsync(f, false);
      expect(j.stats.logBlocks - logged).toBeGreaterThanOrEqual(41);
      // With the data folios dropped, a read before the checkpoint must still see the new bytes.
      m.fs.cache.truncate(m.fs.cache.mappingOf(f), 0);
      expect(readAll(m, f).equals(Buffer.from(data))).toBe(true);
      // An overwrite of part of a block after the folio went: the rest of the block comes from the journal's copy.
      m.fs.cache.truncate(m.fs.cache.mappingOf(f), 0);
      m.io.write(f, 5000, new Uint8Array([1, 2, 3]));
      data.set([1, 2, 3], 5000);
      m.io.fsync(f, true);
      expect(readAll(m, f).equals(Buffer.from(data))).toBe(true);
    } finally {
      m.fs.iput(f);
      m.vol.unmount();
    }
    expectClean(img);
    expect(remountRead(img, "j").equals(Buffer.from(data))).toBe(true);
  });

  // Found by fsx: truncate freed journalled data blocks without forgetting the journal's copies
  // (EXT4_FREE_BLOCKS_FORGET), so the next owner of a block after the commit found it still journaled.
  it("a truncate forgets the journal's copies of the data blocks it frees; the blocks serve a new file after the commit", () => {
    const img = makeImage(work, "dj-free", "32M", { blockSize: 4096 });
    const vol = mount(img, { mountOptions: "data=journal" });
    const a = pattern(21, 24578);
    try {
      const fb = vol.openSync("/b", "w+");
      vol.writeSync(fb, pattern(20, 12288), 0, 12288, 2084864);
      const ino = Number(vol.fstatSync(fb).ino);
      const fbInode = vol.fs.iget(ino);
      const freed = vol.fs.mapBlocks(fbInode, 2084864 / 4096, 3);
      vol.fs.iput(fbInode);
      vol.ftruncateSync(fb, 1460529);
      expect(vol.fs.bcache.peek(freed.pblk)?.jh, "the freed block's journal head").toBeUndefined();
      vol.sync();
      const fa = vol.openSync("/a", "w+");
      vol.writeSync(fa, a, 0, a.length, 798720); // its blocks include the ones /b freed
      vol.closeSync(fa);
      vol.closeSync(fb);
    } finally {
      vol.unmount();
    }
    expectClean(img);
    expect(remountRead(img, "a").subarray(798720).equals(Buffer.from(a))).toBe(true);
  });

  // Found by fsx: a partial write into a block that zero range had made unwritten took the rest of
  // the block from the journal's copy of its old data instead of zeros.
  it.each([1024, 4096])("a partial write into a block zero range made unwritten reads zeros around it (%i-byte blocks)", (bs) => {
    const img = makeImage(work, `dj-zero-${bs}`, "32M", { blockSize: bs });
    const vol = mount(img, { mountOptions: "data=journal" });
    const model = Buffer.from(pattern(30, 4 * 4096));
    try {
      const fd = vol.openSync("/z", "w+");
      vol.writeSync(fd, model, 0, model.length, 0);
      vol.fallocateSync(fd, 4096, 8192, { zeroRange: true, keepSize: true });
      model.fill(0, 4096, 12288);
      vol.writeSync(fd, Buffer.from("0123456789"), 0, 10, 4100);
      model.write("0123456789", 4100);
      expect((vol.readFileSync("/z") as Buffer).equals(model)).toBe(true);
      vol.closeSync(fd);
    } finally {
      vol.unmount();
    }
    expectClean(img);
    expect(remountRead(img, "z").equals(model)).toBe(true);
  });
});

describe("write-path mount options", () => {
  it("dioread_nolock is the default, dioread_lock turns it off, nodelalloc turns delalloc off; values are refused", async () => {
    const { parseMountOptions } = await import("../host/options.js");
    expect(parseMountOptions(undefined, false)).toMatchObject({ dioreadNolock: true, delalloc: true });
    expect(parseMountOptions("dioread_lock", false)).toMatchObject({ dioreadNolock: false });
    expect(parseMountOptions("dioread_lock,dioread_nolock", false)).toMatchObject({ dioreadNolock: true });
    expect(parseMountOptions("nodelalloc", false)).toMatchObject({ delalloc: false });
    expect(parseMountOptions("dioread_lock", false).accepted).toEqual([]);
    expect(() => parseMountOptions("dioread_lock=1", false)).toThrow(/takes no value/);
  });
});

describe("writes refused", () => {
  it("EROFS on a read-only mount (nothing written), EPERM for verity, ENOKEY for encrypted, EFSCORRUPTED for an inline flag without its system.data", () => {
    const bytes = new Uint8Array(16 << 20);
    mkfs(new MemoryDevice(bytes), { size: bytes.length, blockSize: 4096, ...FIXED });
    const before = bytes.slice();
    const ro = mount(new MemoryDevice(bytes, { readOnly: true }), { readOnly: true });
    try {
      const io = new BhBufferedIO(ro.fs);
      const root = ro.fs.iget(2);
      try {
        expect(() => io.write(root, 0, new Uint8Array(10))).toThrow(expect.objectContaining({ code: "EROFS" }));
      } finally {
        ro.fs.iput(root);
      }
    } finally {
      ro.unmount();
    }
    expect(Buffer.from(bytes).equals(Buffer.from(before))).toBe(true);
    const rw = mount(new MemoryDevice(bytes));
    const io = new BhBufferedIO(rw.fs);
    const f = createFile(rw.fs, "x");
    try {
      const flags = f.flags;
      for (const [flag, code] of [[0x100000, "EPERM"], [0x800, "ENOKEY"], [0x10000000, "EFSCORRUPTED"]] as const) {
        f.flags = flags | flag;
        expect(() => io.write(f, 0, new Uint8Array(10)), code).toThrow(expect.objectContaining({ code }));
      }
      f.flags = flags;
      expect(f.size).toBe(0);
    } finally {
      rw.fs.iput(f);
      rw.unmount();
    }
  });
});

d("partial-block zeroing over unwritten extents (ext4_block_zero_page_range)", () => {
  // Found by the API crash sweep: a write into preallocated (unwritten)
  // blocks waits in the cache until writeback; a punch or truncate whose
  // edge falls in such a block left the cached bytes unzeroed, since
  // unwritten blocks were taken to read as zeros.
  it.each([["punch hole"], ["truncate down"], ["zero range"]])("%s: the edge of a written-but-unwritten block reads as zeros", (how) => {
    const img = makeImage(work, `zero-unwritten-${how.replace(/ /g, "-")}`, "16M", { blockSize: 4096 });
    const vol = mount(img);
    try {
      const fd = vol.openSync("/f", "w+");
      vol.fallocateSync(fd, 0, 40960, { keepSize: true });
      const data = Buffer.from(pattern(5, 40000));
      vol.writeSync(fd, data, 0, data.length, 0);
      const want = Buffer.from(data);
      if (how === "punch hole") {
        vol.fallocateSync(fd, 5000, 20000, { punchHole: true, keepSize: true });
        want.fill(0, 5000, 25000);
      } else if (how === "zero range") {
        vol.fallocateSync(fd, 5000, 20000, { zeroRange: true, keepSize: true });
        want.fill(0, 5000, 25000);
      } else {
        vol.ftruncateSync(fd, 5000);
        vol.ftruncateSync(fd, 40000);
        want.fill(0, 5000);
      }
      expect((vol.readFileSync("/f") as Buffer).equals(want), "before writeback").toBe(true);
      vol.fsyncSync(fd);
      vol.closeSync(fd);
      vol.dropCaches();
      expect((vol.readFileSync("/f") as Buffer).equals(want), "after writeback").toBe(true);
    } finally {
      vol.unmount();
    }
    expectClean(img);
  });
});

d("data=journal: a partial write into a zeroed range (write_begin's edges)", () => {
  // Found by the API crash sweep: after a zero range (or punch and
  // re-allocation) the journal's buffer of a block still held its old bytes,
  // and a partial write into the block, now new, copied them in instead of
  // zeroing the part it does not write.
  it.each([["1k", 1024], ["4k", 4096]])("%s: the unwritten part of the block reads as zeros", (_n, bs) => {
    const img = makeImage(work, `jdata-zero-edge-${bs}`, "16M", { blockSize: bs });
    const vol = mount(img, { mountOptions: "data=journal" });
    try {
      const fd = vol.openSync("/f", "w+");
      const a = Buffer.from(pattern(7, 10110));
      vol.writeSync(fd, a, 0, a.length, 0);
      vol.fsyncSync(fd);
      vol.fallocateSync(fd, 555, 20512, { zeroRange: true });
      const b = Buffer.from(pattern(8, 649));
      vol.writeSync(fd, b, 0, b.length, 6258);
      const want = Buffer.alloc(21067);
      a.copy(want, 0, 0, 555);
      b.copy(want, 6258);
      expect((vol.readFileSync("/f") as Buffer).equals(want)).toBe(true);
      vol.closeSync(fd);
    } finally {
      vol.unmount();
    }
    expectClean(img);
    const again = mount(img, { readOnly: true });
    try {
      expect((again.readFileSync("/f") as Buffer).subarray(0, 6258).every((x, i) => i < 555 || x === 0)).toBe(true);
    } finally {
      again.unmount();
    }
  });
});
