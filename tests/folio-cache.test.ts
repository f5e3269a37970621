import { describe, expect, it } from "vitest";
import { FolioCache } from "../host/cache/folio-cache.js";
import { Ext4Wasm } from "../host/wasm/module.js";

function makeCache(budgetMiB: number, blockSize = 4096) {
  const w = new Ext4Wasm(budgetMiB << 20, Math.log2(blockSize));
  return { w, c: new FolioCache(w, blockSize) };
}

describe("folio cache (wasm)", () => {
  it("finds a large folio from any page it holds, and only those", () => {
    const { c } = makeCache(8);
    const s = c.create(7, 512, 4); // pages 512..527
    expect(c.order(s)).toBe(4);
    expect(c.index(s)).toBe(512);
    for (const p of [512, 519, 527]) expect(c.lookup(7, p)).toBe(s);
    expect(c.lookup(7, 511)).toBe(-1);
    expect(c.lookup(7, 528)).toBe(-1);
    expect(c.lookup(8, 515)).toBe(-1); // other mapping
    expect(c.size(s)).toBe(16 * 4096);
  });

  it("drop-behind takes a folio only as reclaim would: never pinned, never dirty", () => {
    const { c } = makeCache(8);
    const s = c.create(5, 0, 2);
    c.x.folioPin(s);
    expect(c.x.folioDropIfIdle(s)).toBe(0);
    expect(c.lookup(5, 1)).toBe(s);
    c.x.folioUnpin(s);
    c.x.folioSetDirty(s, 0, 1);
    expect(c.x.folioDropIfIdle(s)).toBe(0);
    expect(c.lookup(5, 1)).toBe(s);
    c.x.folioClearDirty(s, 0, 1);
    expect(c.x.folioDropIfIdle(s)).toBe(1);
    expect(c.lookup(5, 1)).toBe(-1);
  });

  it("rounds an unaligned index down to the folio's order", () => {
    const { c } = makeCache(8);
    const s = c.create(1, 37, 3);
    expect(c.index(s)).toBe(32);
    expect(c.lookup(1, 39)).toBe(s);
  });

  it("tracks uptodate bits per block inside a folio (1 KiB blocks)", () => {
    const { c } = makeCache(8, 1024);
    const s = c.create(3, 0, 1); // 8 KiB = 8 blocks
    expect(c.blocks(s)).toBe(8);
    expect(c.isUptodate(s, 0, 8)).toBe(false);
    c.setUptodate(s, 2, 3);
    expect(c.isUptodate(s, 2, 3)).toBe(true);
    expect(c.isUptodate(s, 1, 2)).toBe(false);
    expect(c.x.folioFindNotUptodate(s, 2, 6)).toBe(3); // block 5 is the first not uptodate
    c.x.folioClearUptodate(s, 3, 1);
    expect(c.isUptodate(s, 2, 3)).toBe(false);
  });

  it("keeps 64 KiB blocks in folios of at least order 4", () => {
    const { c } = makeCache(8, 65536);
    expect(c.minOrder).toBe(4);
    const s = c.create(2, 16, 0);
    expect(c.order(s)).toBe(4);
    expect(c.blocks(s)).toBe(1);
    c.setUptodate(s, 0, 1);
    expect(c.isUptodate(s, 0, 1)).toBe(true);
  });

  it("stays within its byte budget, reclaiming least recently used folios first", () => {
    const { c } = makeCache(4); // 4 MiB = 1024 pages
    const slots: number[] = [];
    for (let i = 0; i < 1024; i++) slots.push(c.create(1, i, 0));
    expect(c.stats().usedBytes).toBe(4 << 20);
    c.lookup(1, 0); // touch page 0: it becomes the most recently used
    for (let i = 0; i < 64; i++) c.create(2, i, 0);
    const st = c.stats();
    expect(st.usedBytes).toBeLessThanOrEqual(st.capacityBytes);
    expect(st.evictions).toBeGreaterThan(0);
    expect(c.lookup(1, 0)).toBeGreaterThanOrEqual(0); // touched page survived
    expect(c.lookup(1, 1)).toBe(-1); // coldest pages went first
    for (let i = 0; i < 64; i++) expect(c.lookup(2, i)).toBeGreaterThanOrEqual(0);
  });

  it("never reclaims pinned or dirty folios, and says so when nothing is left", () => {
    const { c } = makeCache(4);
    const pinned = c.create(1, 0, 9); // 2 MiB
    c.x.folioPin(pinned);
    const dirty = c.create(1, 512, 9); // the other 2 MiB
    c.x.folioSetDirty(dirty, 0, 1);
    expect(() => c.create(5, 0, 0)).toThrow(/ENOMEM/);
    c.x.folioUnpin(pinned);
    const s = c.create(5, 0, 0);
    expect(s).toBeGreaterThanOrEqual(0);
    expect(c.lookup(1, 0)).toBe(-1); // the unpinned one was reclaimed
    expect(c.lookup(1, 600)).toBe(dirty);
  });

  it("falls back to a smaller order when a large block cannot be assembled", () => {
    const { c } = makeCache(4);
    // Pin one page in each 2 MiB chunk so no order-9 block can ever coalesce.
    const a = c.create(1, 0, 0);
    const b = c.create(1, 1, 0);
    for (let i = 2; i < 1024; i++) c.create(1, i, 0);
    c.x.folioPin(a);
    c.x.folioPin(c.lookup(1, 600));
    void b;
    const s = c.create(9, 0, 9);
    expect(c.order(s)).toBeLessThan(9);
    expect(c.order(s)).toBeGreaterThanOrEqual(0);
  });

  it("bumps a slot's generation when its folio is reclaimed", () => {
    const { c } = makeCache(4);
    const s = c.create(1, 0, 0);
    const g = c.gen(s);
    c.x.folioRemove(s);
    expect(c.gen(s)).toBe(g + 1);
    expect(c.lookup(1, 0)).toBe(-1);
  });

  it("reports the first cached page of a range", () => {
    const { c } = makeCache(8);
    c.create(4, 100, 0);
    c.create(4, 200, 2);
    expect(c.x.folioFirstCached(4, 0, 100)).toBe(-1);
    expect(c.x.folioFirstCached(4, 96, 8)).toBe(4);
    expect(c.x.folioFirstCached(4, 192, 16)).toBe(8);
    expect(c.x.folioFirstCached(5, 96, 8)).toBe(-1);
  });

  it("keeps page indexes past 2^32 exact: indexes differing only above bit 32 never alias", () => {
    const { c } = makeCache(8);
    const lo = c.create(0, 5, 0);
    const hi = c.create(0, 5 + 2 ** 32, 0);
    const far = c.create(0, 7 + 2 ** 40, 3); // rounds down to its order, all bits kept
    expect(hi).not.toBe(lo);
    expect(c.index(lo)).toBe(5);
    expect(c.index(hi)).toBe(5 + 2 ** 32);
    expect(c.index(far)).toBe(2 ** 40);
    expect(c.lookup(0, 5)).toBe(lo);
    expect(c.lookup(0, 5 + 2 ** 32)).toBe(hi);
    expect(c.lookup(0, 5 + 2 ** 33)).toBe(-1);
    expect(c.lookup(0, 2 ** 40 + 6)).toBe(far);
    expect(c.lookup(0, 6)).toBe(-1);
    expect(c.x.folioFirstCached(0, 2 ** 32, 8)).toBe(5);
    expect(c.x.folioFirstCached(0, 2 ** 40 - 4, 8)).toBe(4);
    // Dropping the low folio leaves the high one in place.
    c.x.folioRemove(lo);
    expect(c.lookup(0, 5)).toBe(-1);
    expect(c.lookup(0, 5 + 2 ** 32)).toBe(hi);
  });

  it("refuses a page index it cannot hold exactly (EOVERFLOW), never truncating it", () => {
    const { c } = makeCache(4);
    for (const bad of [2 ** 53, -1, 1.5, Number.NaN]) {
      expect(() => c.lookup(3, bad)).toThrow(/EOVERFLOW/);
      expect(() => c.create(3, bad, 0)).toThrow(/EOVERFLOW/);
    }
  });

  it("reserves the whole budget at set-up: memory never grows afterwards, so views never detach", () => {
    const { w, c } = makeCache(256);
    const buf = w.x.memory.buffer;
    expect(buf.byteLength).toBeGreaterThanOrEqual(256 << 20);
    const view = w.u8;
    // Fill the arena twice over: reclaim reuses it, memory stays as it was.
    for (let i = 0; i < 256; i++) c.create(1, i * 512, 9);
    expect(c.stats().usedBytes).toBe(256 << 20);
    for (let i = 0; i < 256; i++) c.create(2, i * 512, 9);
    expect(w.x.memory.buffer).toBe(buf);
    expect(w.u8).toBe(view);
    expect(view.byteLength).toBe(buf.byteLength);
  });

  it("a reserved but untouched budget costs no resident memory", () => {
    const before = process.memoryUsage().rss;
    const { w } = makeCache(1024);
    const after = process.memoryUsage().rss;
    expect(w.x.memory.buffer.byteLength).toBeGreaterThan(1 << 30);
    // The metadata written at set-up (hash heads) is ~0.2% of the budget.
    expect(after - before).toBeLessThan(64 << 20);
  });

  it("survives churn: random creates and lookups never overlap folios", () => {
    const { c } = makeCache(4);
    let seed = 12345;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    for (let k = 0; k < 5000; k++) {
      const order = rnd(4);
      const index = rnd(4096) & ~((1 << order) - 1);
      if (c.x.folioFirstCached(1, index, 1 << order) >= 0) continue;
      const s = c.create(1, index, order);
      const o = c.order(s);
      expect(c.index(s) % (1 << o)).toBe(0);
      for (let p = 0; p < 1 << o; p++) expect(c.lookup(1, c.index(s) + p)).toBe(s);
    }
    expect(c.stats().usedBytes).toBeLessThanOrEqual(c.stats().capacityBytes);
  });
});

describe("extent and bitmap scans (wasm)", () => {
  it("binary-searches extent nodes and rejects bad headers", () => {
    const w = new Ext4Wasm(4 << 20, 12);
    const mem = w.u8;
    const p = w.scratchPtr;
    const dv = new DataView(mem.buffer);
    dv.setUint16(p, 0xf30a, true); dv.setUint16(p + 2, 4, true); dv.setUint16(p + 4, 4, true); dv.setUint16(p + 6, 0, true);
    [0, 10, 100, 1000].forEach((b, i) => dv.setUint32(p + 12 + i * 12, b, true));
    expect(w.x.extentCheckHeader(p, 60, 0)).toBe(0);
    expect(w.x.extentSearch(p, 0)).toBe(0);
    expect(w.x.extentSearch(p, 99)).toBe(1);
    expect(w.x.extentSearch(p, 100)).toBe(2);
    expect(w.x.extentSearch(p, 5000)).toBe(3);
    dv.setUint32(p + 12 + 2 * 12, 5, true); // out of order
    expect(w.x.extentCheckHeader(p, 60, 0)).toBe(-1);
    dv.setUint16(p + 4, 5, true); // max too large for 60 bytes
    expect(w.x.extentCheckHeader(p, 60, -1)).toBe(-1);
  });

  it("finds set and clear bits across word boundaries", () => {
    const w = new Ext4Wasm(4 << 20, 12);
    const p = w.scratchPtr;
    w.x.zeroRange(p, 64);
    w.x.bitmapFill(p, 70, 200, 1);
    expect(w.x.bitmapFind(p, 0, 512, 1)).toBe(70);
    expect(w.x.bitmapFind(p, 70, 512, 0)).toBe(200);
    expect(w.x.bitmapFind(p, 201, 512, 1)).toBe(-1);
    expect(w.x.bitmapCount(p, 0, 512)).toBe(130);
    expect(w.x.isZero(p + 32, 32)).toBe(1);
    expect(w.x.isZero(p, 32)).toBe(0);
  });
});
