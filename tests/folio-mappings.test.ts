// Mapping ids that cannot alias a deleted and reused inode's stale folios,
// and the per-mapping writeback error (errseq) fsync reports once.

import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrSeq } from "../host/cache/errseq.js";
import { DEVICE_MAPPING, FolioCache, TAG } from "../host/cache/folio-cache.js";
import { ReadaheadState } from "../host/buffered/readahead.js";
import { mount } from "../host/index.js";
import { Ext4Wasm } from "../host/wasm/module.js";

function makeCache(budgetMiB = 8) {
  const w = new Ext4Wasm(budgetMiB << 20, 12);
  return new FolioCache(w, 4096);
}

describe("mapping ids", () => {
  it("a closed mapping's folios are gone, and the same (ino, generation) reopened gets a new id", () => {
    const c = makeCache();
    const a = c.mappings.open(12, 77);
    expect(a).not.toBe(DEVICE_MAPPING);
    expect(c.mappings.idFor(12, 77)).toBe(a); // the read path gets the held id
    const s = c.create(a, 5, 0);
    c.markDirty(s); // a deleted inode's dirty data is dropped with it
    expect(c.stats().dirtyBytes).toBe(4096);
    c.mappings.close(a);
    expect(c.lookup(a, 5)).toBe(-1);
    expect(c.stats()).toMatchObject({ folios: 0, dirtyBytes: 0 });
    expect(c.dirtyMappings()).toEqual([]);
    const b = c.mappings.open(12, 77); // the number (and even the generation) reused
    expect(b).not.toBe(a);
    expect(c.lookup(b, 5)).toBe(-1);
  });

  it("holds are counted: the mapping ends at the last close", () => {
    const c = makeCache();
    const a = c.mappings.open(3, 1);
    expect(c.mappings.open(3, 1)).toBe(a);
    const s = c.create(a, 0, 0);
    c.mappings.close(a);
    expect(c.lookup(a, 0)).toBe(s);
    c.mappings.close(a);
    expect(c.lookup(a, 0)).toBe(-1);
    expect(() => c.mappings.close(a)).toThrow(/EINVAL/);
  });

  it("another generation of an inode number nobody holds is a dead inode: its folios go", () => {
    const c = makeCache();
    const old = c.mappings.idFor(40, 1);
    c.create(old, 0, 2);
    const fresh = c.mappings.idFor(40, 2);
    expect(fresh).not.toBe(old);
    expect(c.lookup(old, 0)).toBe(-1);
    expect(c.mappingCounts(old).folios).toBe(0);
    expect(c.mappings.get(old)).toBeUndefined();
  });

  it("refuses to close a mapping with a folio under writeback (EBUSY), keeping it intact", () => {
    const c = makeCache();
    const a = c.mappings.open(9, 9);
    const s = c.create(a, 0, 0);
    c.markDirty(s);
    c.x.folioClearDirtyForIo(s);
    c.startWriteback(s);
    expect(() => c.mappings.close(a)).toThrow(/EBUSY/);
    expect(c.lookup(a, 0)).toBe(s);
    c.endWriteback(s);
    c.mappings.close(a);
    expect(c.lookup(a, 0)).toBe(-1);
  });

  it("forgets ids nobody holds once they have no folios: a tree walk leaves no table behind", () => {
    const c = makeCache();
    const held = c.mappings.open(1, 1);
    for (let ino = 2; ino < 50_000; ino++) c.mappings.idFor(ino, 0);
    expect(c.mappings.size).toBeLessThan(8200);
    expect(c.mappings.get(held)).toBeDefined();
    expect(c.mappings.idFor(1, 1)).toBe(held);
  });

  it("never hands out the device mapping or an id still in use", () => {
    const c = makeCache();
    const ids = new Set<number>();
    for (let ino = 1; ino < 3000; ino++) ids.add(c.mappings.open(ino, 0));
    expect(ids.size).toBe(2999);
    expect(ids.has(DEVICE_MAPPING)).toBe(false);
  });
});

describe("writeback errors (errseq)", () => {
  it("each opener's fsync reports an error once; later openers see only new ones", () => {
    const e = new ErrSeq();
    const fd1 = e.sample(), fd2 = e.sample();
    e.set("EIO");
    const late = e.sample(); // opened after the failure, before anyone saw it: sees it too
    let r = e.checkAndAdvance(fd1);
    expect(r.error).toBe("EIO");
    expect(e.checkAndAdvance(r.since).error).toBeUndefined();
    expect(e.checkAndAdvance(fd2).error).toBe("EIO");
    expect(e.checkAndAdvance(late).error).toBe("EIO");
    const after = e.sample(); // opened after it was seen: nothing to report
    expect(e.checkAndAdvance(after).error).toBeUndefined();
    // Two failures nobody has seen yet report as one, the latest.
    e.set("EIO");
    e.set("ENOSPC");
    r = e.checkAndAdvance(after);
    expect(r.error).toBe("ENOSPC");
    expect(e.checkAndAdvance(r.since).error).toBeUndefined();
  });

  it("a failed folio writeback marks the folio and the mapping; filemap_check_errors reports it once", () => {
    const c = makeCache();
    const m = c.mappings.open(5, 5);
    const st = c.mappings.get(m)!;
    const since = st.wbErr.sample();
    const s = c.create(m, 0, 0);
    c.markDirty(s);
    c.x.folioClearDirtyForIo(s);
    c.startWriteback(s);
    c.endWriteback(s, "EIO");
    expect(c.flags(s) & 16).toBe(16); // FOLIO.ERROR
    expect(c.marks(s) & TAG.WRITEBACK).toBe(0);
    expect(c.waitWriteback(m)).toBe("EIO");
    expect(c.waitWriteback(m)).toBeUndefined();
    expect(st.wbErr.checkAndAdvance(since).error).toBe("EIO");
    // A later successful writeback clears the folio's error flag, not the mapping's report.
    c.markDirty(s);
    c.x.folioClearDirtyForIo(s);
    c.startWriteback(s);
    c.endWriteback(s);
    expect(c.flags(s) & 16).toBe(0);
  });

  it("waitWriteback refuses a folio left under writeback (the synchronous state machine is exact)", () => {
    const c = makeCache();
    const m = c.mappings.open(6, 6);
    const s = c.create(m, 10, 0);
    c.startWriteback(s);
    expect(() => c.waitWriteback(m, 0, 10)).not.toThrow();
    expect(() => c.waitWriteback(m, 0, 11)).toThrow(/EBUSY/);
    expect(() => c.truncate(m, 0)).toThrow(/EBUSY/);
    c.endWriteback(s);
    expect(() => c.endWriteback(s)).toThrow(/EINVAL/);
    expect(c.truncate(m, 0)).toBe(1);
  });
});

describe("the read paths use mapping ids, not inode numbers", () => {
  let work: string;
  let image: Uint8Array;
  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-mapids-"));
    const src = path.join(work, "src");
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, "a"), Buffer.alloc(64 << 10, 0x61));
    fs.writeFileSync(path.join(src, "b"), Buffer.alloc(64 << 10, 0x62));
    const img = path.join(work, "img");
    execFileSync("mkfs.ext4", ["-q", "-F", "-d", src, img, "16M"]);
    image = new Uint8Array(fs.readFileSync(img));
  });
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

  for (const mountOptions of ["nobuffered_iomap", "buffered_iomap"]) {
    it(`${mountOptions}: an inode number reused by another file never reads the old file's cached folios`, () => {
      const v = mount(image, { readOnly: true, mountOptions });
      try {
        const ia = v.inodeOf("/a", true);
        const ib = v.inodeOf("/b", true);
        const buf = Buffer.alloc(4096);
        // Below the open-file layer (which holds the one in-core inode of a number), so a
        // fabricated inode, another file's under this number, goes down the read path itself.
        const read = (inode: typeof ia) => {
          v.readInode(inode, 0, buf, new ReadaheadState());
          return buf[0];
        };
        expect(read(ia)).toBe(0x61);
        const idA = v.fs.cache.mappingOf(ia);
        expect(v.fs.cache.mappingCounts(idA).folios).toBeGreaterThan(0);
        // File b's content under a's number with a new generation (freed and reused): never a's folios.
        expect(read({ ...ib, ino: ia.ino, generation: (ia.generation + 1) >>> 0 })).toBe(0x62);
        // The same generation too (mkfs -d and some tools write 0), once the freed inode's
        // mapping is closed, as the in-core inode does when the inode is freed or evicted.
        expect(read(ia)).toBe(0x61);
        const held = v.fs.cache.mappings.open(ia.ino, ia.generation);
        expect(held).toBe(v.fs.cache.mappingOf(ia));
        v.fs.cache.mappings.close(held);
        expect(read({ ...ib, ino: ia.ino, generation: ia.generation })).toBe(0x62);
        expect(read(ib)).toBe(0x62);
      } finally {
        v.unmount();
      }
    });
  }
});
