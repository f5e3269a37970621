// Dirty accounting with thresholds (balance_dirty_pages) and writeback
// through a registered callback: a writer that dirties ten times the cache
// budget never fails and the cache stays within its budget.

import { describe, expect, it } from "vitest";
import { DEVICE_MAPPING, FolioCache, MAX_INDEX, PAGE_SIZE, TAG } from "../host/cache/folio-cache.js";
import { writeCachePages } from "../host/cache/writeback.js";
import { MemoryDevice } from "../host/device/memory-device.js";
import { Ext4Error } from "../host/errors.js";
import { Ext4Wasm } from "../host/wasm/module.js";

const MiB = 1 << 20;

function makeCache(budget: number) {
  const w = new Ext4Wasm(budget, 12);
  return { w, c: new FolioCache(w, 4096) };
}

/** The byte every file position holds: differs per file, page and byte. */
function pattern(file: number, pos: number): number {
  return (file * 31 + Math.floor(pos / PAGE_SIZE) * 7 + pos) & 0xff;
}

/** Files laid out on a memory device, `fileBytes` apart; the fake ->writepages writes folios there. */
class FakeFs {
  readonly dev: MemoryDevice;
  readonly ids: number[] = [];
  writes = 0;
  failIn: number | undefined;
  /** Metadata each writeback call reads through the cache (as block allocation would). */
  metaReads = 0;
  constructor(readonly c: FolioCache, readonly files: number, readonly fileBytes: number, opts: { sync?: boolean; meta?: boolean } = {}) {
    this.dev = MemoryDevice.ofSize(files * fileBytes);
    for (let f = 0; f < files; f++) this.ids.push(c.mappings.open(100 + f, 1));
    c.writeback.setCallback((mapping, start, end) => {
      if (opts.meta) this.readMeta();
      const err = writeCachePages(c, mapping, start, end, opts.sync ?? false, (slot) => this.writeFolio(mapping, slot));
      void err; // recorded on the mapping by endWriteback
    });
  }
  base(mapping: number): number { return this.ids.indexOf(mapping) * this.fileBytes; }
  writeFolio(mapping: number, slot: number): void {
    if (mapping === this.failIn) throw new Ext4Error("EIO", "injected write failure");
    this.dev.write(this.base(mapping) + this.c.index(slot) * PAGE_SIZE, this.c.bytes(slot));
    this.writes++;
  }
  readMeta(): void {
    const page = this.metaReads++ % 64;
    let s = this.c.lookup(DEVICE_MAPPING, page);
    if (s < 0) s = this.c.create(DEVICE_MAPPING, page, 0);
    this.c.setUptodate(s, 0, 1);
  }
  /** Buffered write of [pos, pos+len) of file f: find or create folios, copy, dirty. */
  write(f: number, pos: number, len: number, order: number, dropbehind = false): void {
    const m = this.ids[f];
    for (let p = pos; p < pos + len; ) {
      const page = Math.floor(p / PAGE_SIZE);
      let s = this.c.lookup(m, page);
      if (s < 0) {
        let o = order;
        while (o > 0 && (page % (1 << o) !== 0 || this.c.x.folioFirstCached(m, page, 1 << o) >= 0)) o--;
        s = this.c.create(m, page, o);
      }
      const fStart = this.c.index(s) * PAGE_SIZE;
      const bytes = this.c.bytes(s);
      const end = Math.min(pos + len, fStart + bytes.length);
      for (let q = p; q < end; q++) bytes[q - fStart] = pattern(f, q);
      this.c.setUptodate(s, 0, this.c.blocks(s));
      this.c.markDirty(s);
      if (dropbehind) this.c.setDropbehind(s);
      p = end;
    }
  }
  /** sync(): every dirty mapping written whole, integrity mode. */
  sync(): void {
    for (const m of this.c.dirtyMappings()) writeCachePages(this.c, m, 0, MAX_INDEX, true, (slot) => this.writeFolio(m, slot));
  }
  check(f: number, upTo: number): void {
    const b = this.dev.bytes.subarray(f * this.fileBytes, f * this.fileBytes + upTo);
    for (let q = 0; q < upTo; q += 997) if (b[q] !== pattern(f, q)) throw new Error(`file ${f} byte ${q}: ${b[q]} != ${pattern(f, q)}`);
  }
}

describe("balance_dirty_pages and writeback", () => {
  it("a writer dirtying 10x the budget never fails; dirty bytes stay under the threshold, the cache within budget", () => {
    const budget = 8 * MiB;
    const { w, c } = makeCache(budget);
    const fsx = new FakeFs(c, 3, 32 * MiB, { meta: true });
    const buf = w.x.memory.buffer;
    const { dirty: thresh, background } = c.writeback.thresholds();
    expect(thresh).toBe(Math.floor(budget * 0.2));
    expect(background).toBe(Math.floor(budget * 0.1));
    let maxDirty = 0;
    const chunk = 64 << 10;
    let written = 0;
    const lens = [0, 0, 0];
    // Three files written side by side, 80 MiB in all, 64 KiB per write call.
    for (let pos = 0; written < 10 * budget; pos += chunk) {
      for (let f = 0; f < 3 && written < 10 * budget; f++) {
        fsx.write(f, pos, chunk, 4);
        written += chunk;
        lens[f] = pos + chunk;
        const st = c.stats();
        maxDirty = Math.max(maxDirty, st.dirtyBytes + st.writebackBytes);
        c.balanceDirty();
        const after = c.stats();
        expect(after.dirtyBytes + after.writebackBytes).toBeLessThanOrEqual(thresh);
        expect(after.usedBytes).toBeLessThanOrEqual(after.capacityBytes);
      }
    }
    expect(maxDirty).toBeLessThanOrEqual(thresh + chunk);
    expect(c.writeback.writtenPages).toBeGreaterThan((8 * budget) / PAGE_SIZE);
    expect(c.stats().writebackBytes).toBe(0); // every writeback ended
    expect(w.x.memory.buffer).toBe(buf); // never grew
    fsx.sync();
    expect(c.stats().dirtyBytes).toBe(0);
    expect(c.dirtyMappings()).toEqual([]);
    for (let f = 0; f < 3; f++) fsx.check(f, lens[f]);
    expect(fsx.metaReads).toBeGreaterThan(0);
  });

  it("folio creation with everything dirty writes back through the callback instead of failing", () => {
    const { c } = makeCache(4 * MiB);
    const fsx = new FakeFs(c, 1, 64 * MiB);
    // No balanceDirty calls at all: only creation's own writeback keeps the writer going.
    fsx.write(0, 0, 40 * MiB, 2);
    expect(c.stats().usedBytes).toBeLessThanOrEqual(4 * MiB);
    fsx.sync();
    fsx.check(0, 40 * MiB);
  });

  it("without a callback, a cache full of dirty folios says ENOMEM", () => {
    const { c } = makeCache(4 * MiB);
    const m = c.mappings.open(1, 1);
    for (let i = 0; i < 1024; i++) c.markDirty(c.create(m, i, 0));
    expect(() => c.create(m, 5000, 0)).toThrow(/ENOMEM/);
    expect(c.balanceDirty()).toBe(0);
  });

  it("writes back the oldest dirty mapping first, resuming each where it stopped", () => {
    const { c } = makeCache(64 * MiB);
    const calls: [number, number, number][] = [];
    const a = c.mappings.open(1, 1), b = c.mappings.open(2, 1);
    const dirty = (m: number, from: number, n: number) => { for (let i = from; i < from + n; i++) c.markDirty(c.create(m, i, 0)); };
    dirty(b, 0, 2000);
    dirty(a, 0, 2000);
    expect(c.dirtyMappings()).toEqual([b, a]);
    c.writeback.setCallback((m, start, end) => {
      calls.push([m, start, end]);
      writeCachePages(c, m, start, end, false, () => {});
    });
    c.writeback.setLimits({ dirtyRatio: 0.05, backgroundRatio: 0.02 });
    // 4000 dirty pages = 15.6 MiB > 5% of 64 MiB: write back to 2% (~1.3 MiB).
    c.balanceDirty();
    expect(calls[0]).toEqual([b, 0, 1024]);
    expect(calls[1]).toEqual([a, 0, 1024]);
    expect(calls[2]).toEqual([b, 1024, 2000]);
    expect(c.stats().dirtyBytes).toBeLessThanOrEqual(64 * MiB * 0.02);
    expect(() => c.writeback.setLimits({ dirtyRatio: 0.1, backgroundRatio: 0.2 })).toThrow(/EINVAL/);
  });

  it("uncached (dropbehind) writes leave nothing cached once written back", () => {
    const { c } = makeCache(16 * MiB);
    const fsx = new FakeFs(c, 1, 64 * MiB);
    fsx.write(0, 0, 48 * MiB, 4, true);
    fsx.sync();
    expect(c.stats().usedBytes).toBe(0);
    fsx.check(0, 48 * MiB);
  });

  it("a failed writeback is recorded on the mapping for fsync and does not stop the writer", () => {
    const { c } = makeCache(4 * MiB);
    const fsx = new FakeFs(c, 2, 32 * MiB);
    const st = c.mappings.get(fsx.ids[1])!;
    const since = st.wbErr.sample();
    fsx.failIn = fsx.ids[1];
    for (let pos = 0; pos < 16 * MiB; pos += 1 * MiB) {
      fsx.write(0, pos, 1 * MiB, 2);
      fsx.write(1, pos, 1 * MiB, 2);
      c.balanceDirty();
    }
    expect(st.wbErr.checkAndAdvance(since).error).toBe("EIO");
    expect(c.waitWriteback(fsx.ids[1])).toBe("EIO");
    expect(c.waitWriteback(fsx.ids[0])).toBeUndefined();
    fsx.failIn = undefined;
    fsx.sync();
    fsx.check(0, 16 * MiB);
  });

  it("an integrity pass writes what was dirty when it began: folios dirtied meanwhile wait (TOWRITE)", () => {
    const { c } = makeCache(8 * MiB);
    const m = c.mappings.open(1, 1);
    for (let i = 0; i < 10; i++) c.markDirty(c.create(m, i, 0));
    const written: number[] = [];
    const redirtyAhead = (slot: number) => {
      written.push(c.index(slot));
      if (c.index(slot) === 2) c.markDirty(c.create(m, 50, 0)); // dirtied during the pass, ahead of it
    };
    writeCachePages(c, m, 0, MAX_INDEX, true, redirtyAhead);
    expect(written).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect([...c.folios(m, 0, MAX_INDEX, TAG.DIRTY)].map((s) => c.index(s))).toEqual([50]);
    expect([...c.folios(m, 0, MAX_INDEX, TAG.TOWRITE)]).toEqual([]);
    // Background writeback walks DIRTY tags, so it would have taken the new folio in the same pass.
    written.length = 0;
    for (let i = 0; i < 5; i++) c.markDirty(c.lookup(m, i));
    writeCachePages(c, m, 0, MAX_INDEX, false, (slot) => {
      written.push(c.index(slot));
      if (c.index(slot) === 2) c.markDirty(c.create(m, 60, 0));
    });
    expect(written).toEqual([0, 1, 2, 3, 4, 50, 60]);
  });

  it("range writeback: start over [start, end) takes only dirty folios there, end finishes exactly those", () => {
    const { c } = makeCache(8 * MiB);
    const m = c.mappings.open(1, 1);
    const slots = Array.from({ length: 20 }, (_, i) => c.create(m, i * 4, 2)); // pages 0..79
    for (const s of slots) c.markDirty(s);
    c.setDropbehind(slots[6]);
    const started = c.startWritebackRange(m, 10, 30); // folios at 8..28 overlap it
    expect(started.map((s) => c.index(s))).toEqual([8, 12, 16, 20, 24, 28]);
    expect(c.mappingCounts(m)).toMatchObject({ dirtyFolios: 14, writebackFolios: 6, writebackPages: 24 });
    expect(c.startWritebackRange(m, 10, 30)).toEqual([]); // nothing dirty left there
    c.markDirty(slots[4]); // redirtied while under writeback
    expect(() => c.waitWriteback(m, 0, 20)).toThrow(/EBUSY/);
    expect(c.endWritebackRange(m, 0, MAX_INDEX)).toBe(6);
    expect(c.lookup(m, 24)).toBe(-1); // the dropbehind one went at writeback end
    expect(c.isDirty(slots[4])).toBe(true);
    expect(c.mappingCounts(m)).toMatchObject({ folios: 19, dirtyFolios: 15, writebackFolios: 0, tags: TAG.DIRTY });
    expect(c.writebackMappings()).toEqual([]);
    expect(c.waitWriteback(m)).toBeUndefined();
  });
});
