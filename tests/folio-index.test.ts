// The per-mapping ordered index of folios (the xarray of a mapping), its
// DIRTY / WRITEBACK / TOWRITE marks, the folio flags and the mapping lists,
// checked against a plain model under thousands of seeded random operations.

import { describe, expect, it } from "vitest";
import { Ext4Error } from "../host/errors.js";
import { FOLIO, FolioCache, MAX_INDEX, TAG } from "../host/cache/folio-cache.js";
import { Ext4Wasm } from "../host/wasm/module.js";

function makeCache(budgetMiB: number, blockSize = 4096) {
  const w = new Ext4Wasm(budgetMiB << 20, Math.log2(blockSize));
  return { w, c: new FolioCache(w, blockSize) };
}

interface MFolio {
  slot: number; gen: number; mapping: number; index: number; order: number;
  dirty: boolean; wb: boolean; pins: number; dropbehind: boolean; tags: number;
}

function rng(seed: number) {
  let s = seed >>> 0;
  return (n: number) => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) % n);
  };
}

class Model {
  folios: MFolio[] = [];
  /** Mappings with DIRTY-tagged folios, in the order they became so. */
  dirtyList: number[] = [];
  constructor(readonly c: FolioCache) {}

  of(m: number) { return this.folios.filter((f) => f.mapping === m).sort((a, b) => a.index - b.index); }
  end(f: MFolio) { return f.index + (1 << f.order); }
  overlaps(m: number, index: number, order: number) {
    return this.folios.some((f) => f.mapping === m && f.index < index + (1 << order) && index < this.end(f));
  }
  gone(f: MFolio) { this.folios = this.folios.filter((g) => g !== f); this.syncList(f.mapping); }
  syncList(m: number) {
    const tagged = this.folios.some((f) => f.mapping === m && f.tags & TAG.DIRTY);
    const at = this.dirtyList.indexOf(m);
    if (tagged && at < 0) this.dirtyList.push(m);
    if (!tagged && at >= 0) this.dirtyList.splice(at, 1);
  }
  idle(f: MFolio) { return !f.dirty && !f.wb && f.pins === 0; }
  /** Folios reclaim took: only idle ones may go. */
  reconcile() {
    for (const f of [...this.folios]) {
      if (this.c.gen(f.slot) !== f.gen) {
        expect(this.idle(f), `reclaim took a folio that was dirty=${f.dirty} wb=${f.wb} pins=${f.pins}`).toBe(true);
        this.gone(f);
      }
    }
  }
  /** Everything the cache says about mapping m, compared with the model. */
  check(m: number, rnd: (n: number) => number) {
    const c = this.c;
    const mine = this.of(m);
    for (const f of mine) {
      expect(c.gen(f.slot)).toBe(f.gen);
      expect(c.marks(f.slot)).toBe(f.tags);
      const fl = c.flags(f.slot);
      expect(!!(fl & FOLIO.DIRTY)).toBe(f.dirty);
      expect(!!(fl & FOLIO.WRITEBACK)).toBe(f.wb);
    }
    for (const tag of [0, TAG.DIRTY, TAG.WRITEBACK, TAG.TOWRITE]) {
      const start = rnd(2) ? 0 : rnd(4200);
      const end = rnd(3) ? MAX_INDEX : start + rnd(600);
      const want = mine.filter((f) => (tag === 0 || f.tags & tag) && this.end(f) > start && f.index < end).map((f) => f.slot);
      expect([...c.folios(m, start, end, tag)]).toEqual(want);
      const first = mine.find((f) => (tag === 0 || f.tags & tag) && this.end(f) > start);
      expect(c.findFolio(m, start, tag)).toBe(first ? first.slot : -1);
    }
    const counts = c.mappingCounts(m);
    const dirty = mine.filter((f) => f.dirty), wb = mine.filter((f) => f.wb);
    const pages = (l: MFolio[]) => l.reduce((n, f) => n + (1 << f.order), 0);
    expect(counts).toEqual({
      folios: mine.length, pages: pages(mine), dirtyFolios: dirty.length, dirtyPages: pages(dirty),
      writebackFolios: wb.length, writebackPages: pages(wb), tags: mine.reduce((t, f) => t | f.tags, 0),
    });
    expect(c.dirtyMappings()).toEqual(this.dirtyList);
    expect(new Set(c.writebackMappings())).toEqual(new Set(this.folios.filter((f) => f.wb).map((f) => f.mapping)));
    const all = this.folios;
    expect(c.stats().dirtyBytes).toBe(pages(all.filter((f) => f.dirty)) * 4096);
    expect(c.stats().writebackBytes).toBe(pages(all.filter((f) => f.wb)) * 4096);
    expect(c.stats().folios).toBe(all.length + this.detachedPinned);
  }
  detachedPinned = 0;
}

describe.each([4096, 1024])("per-mapping folio index against a model (%i-byte blocks)", (blockSize) => {
  it("agrees on ordered walks, tags, counts and lists over 6000 random operations", () => {
    const { c } = makeCache(4, blockSize);
    const model = new Model(c);
    const rnd = rng(0xf0110 + blockSize);
    const MAPPINGS = [0, 3, 7, 12];
    const pick = (pred: (f: MFolio) => boolean) => {
      const l = model.folios.filter(pred);
      return l.length ? l[rnd(l.length)] : undefined;
    };
    const detached: { slot: number; gen: number; pins: number }[] = [];
    let enomem = 0;
    for (let op = 0; op < 6000; op++) {
      const m = MAPPINGS[rnd(MAPPINGS.length)];
      const r = rnd(100);
      if (r < 35) {
        const order = rnd(4);
        const index = rnd(4096) & ~((1 << order) - 1);
        if (model.overlaps(m, index, order)) continue;
        let s: number;
        try {
          s = c.create(m, index, order);
        } catch (e) {
          expect((e as Ext4Error).code).toBe("ENOMEM");
          enomem++;
          model.reconcile();
          continue;
        }
        model.reconcile();
        for (const d of detached) expect(c.gen(d.slot)).toBe(d.gen); // a pinned detached folio is never reused
        const f: MFolio = { slot: s, gen: c.gen(s), mapping: m, index: c.index(s), order: c.order(s), dirty: false, wb: false, pins: 0, dropbehind: false, tags: 0 };
        expect(f.index % (1 << f.order)).toBe(0);
        expect(f.index <= index && index < model.end(f)).toBe(true);
        model.folios.push(f);
      } else if (r < 50) {
        const f = pick(() => true);
        if (!f) continue;
        c.markDirty(f.slot, rnd(c.blocks(f.slot)), 1);
        f.dirty = true;
        f.tags |= TAG.DIRTY;
        model.syncList(f.mapping);
      } else if (r < 56) {
        const f = pick((g) => g.dirty);
        if (!f) continue;
        expect(c.x.folioClearDirtyForIo(f.slot)).toBe(1);
        f.dirty = false; // the DIRTY tag stays until writeback starts
      } else if (r < 64) {
        const f = pick((g) => !g.wb);
        if (!f) continue;
        c.startWriteback(f.slot);
        f.wb = true;
        f.tags |= TAG.WRITEBACK;
        if (!f.dirty) f.tags &= ~TAG.DIRTY;
        f.tags &= ~TAG.TOWRITE;
        model.syncList(f.mapping);
        expect(() => c.startWriteback(f.slot)).toThrow(/EINVAL/);
      } else if (r < 73) {
        const f = pick((g) => g.wb);
        if (!f) continue;
        const freed = c.endWriteback(f.slot, rnd(8) === 0 ? "EIO" : undefined);
        f.wb = false;
        f.tags &= ~TAG.WRITEBACK;
        const expectFreed = f.dropbehind && model.idle(f);
        expect(freed).toBe(expectFreed);
        if (freed) { expect(c.gen(f.slot)).toBe(f.gen + 1); model.gone(f); } else model.syncList(f.mapping);
      } else if (r < 77) {
        const f = pick((g) => g.dirty);
        if (!f) continue;
        c.x.folioClearDirty(f.slot, 0, c.blocks(f.slot)); // cancel: nothing to write any more
        f.dirty = false;
        f.tags &= ~(TAG.DIRTY | TAG.TOWRITE);
        model.syncList(f.mapping);
      } else if (r < 81) {
        const f = pick(() => true);
        if (!f) continue;
        if (f.pins > 0 && rnd(2)) {
          c.x.folioUnpin(f.slot);
          f.pins--;
          if (f.pins === 0 && f.dropbehind && model.idle(f)) { expect(c.gen(f.slot)).toBe(f.gen + 1); model.gone(f); }
        } else if (f.pins < 2) {
          c.x.folioPin(f.slot);
          f.pins++;
        }
      } else if (r < 84) {
        const f = pick(() => true);
        if (!f) continue;
        c.setDropbehind(f.slot);
        f.dropbehind = true;
      } else if (r < 87) {
        const start = rnd(4096), end = rnd(2) ? MAX_INDEX : start + rnd(1024);
        const n = c.tagForWriteback(m, start, end);
        const hit = model.of(m).filter((f) => f.tags & TAG.DIRTY && model.end(f) > start && f.index < end);
        expect(n).toBe(hit.length);
        for (const f of hit) f.tags |= TAG.TOWRITE;
      } else if (r < 90) {
        const start = rnd(4096), end = rnd(2) ? MAX_INDEX : start + rnd(1024);
        const inRange = model.of(m).filter((f) => model.end(f) > start && f.index < end);
        if (inRange.some((f) => f.wb)) {
          expect(() => c.truncate(m, start, end)).toThrow(/EBUSY/);
          continue;
        }
        const whole = inRange.filter((f) => f.index >= start && model.end(f) <= end);
        expect(c.truncate(m, start, end)).toBe(whole.length);
        for (const f of whole) {
          expect(c.lookup(m, f.index)).toBe(-1);
          model.gone(f);
          if (f.pins > 0) { detached.push({ slot: f.slot, gen: f.gen, pins: f.pins }); model.detachedPinned++; }
          else expect(c.gen(f.slot)).toBe(f.gen + 1);
        }
      } else if (r < 92) {
        // Unpin detached folios: the last unpin frees them.
        const d = detached.pop();
        if (!d) continue;
        for (let i = 0; i < d.pins; i++) c.x.folioUnpin(d.slot);
        expect(c.gen(d.slot)).toBe(d.gen + 1);
        model.detachedPinned--;
      } else {
        model.check(m, rnd);
      }
    }
    for (const m of MAPPINGS) model.check(m, rnd);
    expect(enomem).toBeLessThan(600); // the mix leaves most creations room
    expect(c.stats().usedBytes).toBeLessThanOrEqual(c.stats().capacityBytes);
  });
});

describe("per-mapping folio index", () => {
  it("keeps the tree shallow for sequential and random insertion (treap depth)", () => {
    const { c } = makeCache(64);
    for (let i = 0; i < 16384; i++) c.create(5, i, 0); // 64 MiB of order-0 folios, index order
    const seq = c.x.mappingTreeDepth(5);
    const rnd = rng(7);
    const perm = Array.from({ length: 8192 }, (_, i) => i);
    for (let i = perm.length - 1; i > 0; i--) { const j = rnd(i + 1); [perm[i], perm[j]] = [perm[j], perm[i]]; }
    c.truncate(5, 0);
    for (const i of perm) c.create(6, i * 2, 0);
    const random = c.x.mappingTreeDepth(6);
    // log2(16384) = 14; a treap's expected depth is ~2 ln n (~19), a list would be 16384.
    expect(seq).toBeLessThan(45);
    expect(random).toBeLessThan(45);
    expect(c.mappingCounts(5).folios).toBe(0);
    expect([...c.folios(6, 100, 110)].map((s) => c.index(s))).toEqual([100, 102, 104, 106, 108]);
  });

  it("finds the next DIRTY folio far away past thousands of clean ones, and only the mapping's own", () => {
    const { c } = makeCache(32);
    for (let i = 0; i < 4096; i++) { c.create(1, i, 0); c.create(2, i, 0); }
    const far = c.lookup(1, 4000);
    c.markDirty(far);
    c.markDirty(c.lookup(2, 10));
    expect(c.findFolio(1, 0, TAG.DIRTY)).toBe(far);
    expect(c.findFolio(1, 4001, TAG.DIRTY)).toBe(-1);
    expect([...c.folios(1, 0, MAX_INDEX, TAG.DIRTY)]).toEqual([far]);
    expect(c.dirtyMappings()).toEqual([1, 2]);
    expect(c.mappingCounts(1)).toMatchObject({ folios: 4096, dirtyFolios: 1, dirtyPages: 1, tags: TAG.DIRTY });
  });

  it("a large folio is found from any page it covers, by walks starting inside it", () => {
    const { c } = makeCache(8);
    const big = c.create(4, 64, 5); // pages 64..95
    const after = c.create(4, 96, 0);
    expect([...c.folios(4, 80, 97)]).toEqual([big, after]);
    expect(c.findFolio(4, 95)).toBe(big);
    expect(c.findFolio(4, 96)).toBe(after);
    expect(c.x.folioFirstCached(4, 60, 8)).toBe(4);
    // Truncating from inside the large folio leaves it for the caller (partial folio); from its start removes it.
    expect(c.truncate(4, 70)).toBe(1);
    expect(c.lookup(4, 96)).toBe(-1);
    expect(c.lookup(4, 70)).toBe(big);
    expect(c.truncate(4, 64)).toBe(1);
    expect(c.mappingCounts(4).folios).toBe(0);
  });

  it("a walk may drop the folios it visits (dropbehind at writeback end) and goes on in order", () => {
    const { c } = makeCache(8);
    const slots = Array.from({ length: 200 }, (_, i) => c.create(9, i * 2, 0));
    for (const s of slots) { c.markDirty(s); c.setDropbehind(s); }
    const seen: number[] = [];
    for (const s of c.folios(9, 0, MAX_INDEX, TAG.DIRTY)) {
      seen.push(c.index(s));
      expect(c.x.folioClearDirtyForIo(s)).toBe(1);
      c.startWriteback(s);
      expect(c.endWriteback(s)).toBe(true); // freed
    }
    expect(seen).toEqual(Array.from({ length: 200 }, (_, i) => i * 2));
    expect(c.mappingCounts(9).folios).toBe(0);
    expect(c.dirtyMappings()).toEqual([]);
    expect(c.stats().usedBytes).toBe(0);
  });
});
