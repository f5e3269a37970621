// The extent status tree against a per-block model: seeded random inserts,
// removes, caches and lookups, thousands of them, the tree's invariants and
// every answer checked after each step, `seq` moving on every change and
// never on a lookup. Then the shrinker: a cap on cached extents per mount that
// never drops a delayed one.

import { describe, expect, it } from "vitest";
import { ES, EsShrinker, type ExtentStatus, ExtentStatusTree } from "../host/fs/extents-status.js";
import { mulberry32 as rng } from "./helpers/random.js";


type Cell = { status: number; pblk: number } | undefined;
const SPACE = 300;
const KINDS = [ES.WRITTEN, ES.UNWRITTEN, ES.DELAYED, ES.HOLE];

/** What the tree must say about each block, and that its extents are sorted, disjoint and maximal (plain checks: expect() per block is slow). */
function check(tree: ExtentStatusTree, model: Cell[], far: Map<number, Cell>): void {
  const ex = tree.extents();
  const bad: string[] = [];
  let delayed = 0;
  let blocks = 0;
  for (let k = 0; k < ex.length && bad.length === 0; k++) {
    const e = ex[k];
    if (e.len < 1) bad.push(`extent ${k} is empty`);
    if (k > 0) {
      const p = ex[k - 1];
      if (p.lblk + p.len > e.lblk) bad.push(`extents ${k - 1} and ${k} overlap`);
      const mergeable = p.status === e.status && p.lblk + p.len === e.lblk && (!(e.status & (ES.WRITTEN | ES.UNWRITTEN)) || p.pblk + p.len === e.pblk);
      if (mergeable) bad.push(`extents ${k - 1} and ${k} should have been merged`);
    }
    if (e.status === ES.DELAYED) delayed += e.len;
    blocks += e.len;
    for (let b = e.lblk; b < e.lblk + e.len; b++) {
      const want = b < SPACE ? model[b] : far.get(b);
      const pblk = e.status & (ES.WRITTEN | ES.UNWRITTEN) ? e.pblk + (b - e.lblk) : 0;
      if (!want || want.status !== e.status || want.pblk !== pblk) {
        bad.push(`block ${b}: tree says ${e.status}/${pblk}, model ${want ? `${want.status}/${want.pblk}` : "nothing"}`);
        break;
      }
    }
  }
  const known = model.filter((c) => c).length + [...far.values()].filter((c) => c).length;
  if (bad.length === 0 && blocks !== known) bad.push(`tree holds ${blocks} blocks, model ${known}`);
  if (bad.length === 0 && tree.delayedBlocks !== delayed) bad.push(`delayedBlocks ${tree.delayedBlocks}, counted ${delayed}`);
  if (bad.length) expect(bad, JSON.stringify(ex)).toEqual([]);
}

function setModel(model: Cell[], far: Map<number, Cell>, lblk: number, len: number, f: (b: number) => Cell): void {
  for (let b = lblk; b < lblk + len; b++) {
    if (b < SPACE) model[b] = f(b);
    else far.set(b, f(b));
  }
}

describe("extent status tree against a model", () => {
  it.each([1, 2, 3, 4])("seed %i: 4000 random operations", (seed) => {
    const r = rng(seed);
    const tree = new ExtentStatusTree();
    const model: Cell[] = new Array(SPACE).fill(undefined);
    const far = new Map<number, Cell>();
    const int = (n: number) => Math.floor(r() * n);
    let lastSeq = tree.seq;
    for (let op = 0; op < 4000; op++) {
      const lblk = r() < 0.03 ? 0xffffffff - int(4) : int(SPACE - 1);
      const len = Math.max(1, Math.min(lblk >= SPACE ? 0x100000000 - lblk : SPACE - lblk, 1 + int(r() < 0.2 ? 80 : 12)));
      const what = r();
      if (what < 0.35) {
        const status = KINDS[int(4)];
        // Small pblk ranges so neighbours are often physically contiguous.
        const pblk = 1000 + int(40) * 4;
        tree.insert(lblk, len, pblk, status);
        setModel(model, far, lblk, len, (b) => ({ status, pblk: status & (ES.WRITTEN | ES.UNWRITTEN) ? pblk + (b - lblk) : 0 }));
        expect(tree.seq).toBe(lastSeq + 1);
      } else if (what < 0.5) {
        let delayed = 0;
        for (let b = lblk; b < lblk + len; b++) if ((b < SPACE ? model[b] : far.get(b))?.status === ES.DELAYED) delayed++;
        expect(tree.remove(lblk, len)).toBe(delayed);
        setModel(model, far, lblk, len, () => undefined);
        expect(tree.seq).toBe(lastSeq + 1);
      } else if (what < 0.6) {
        const status = [ES.WRITTEN, ES.UNWRITTEN, ES.HOLE][int(3)];
        const pblk = 5000 + int(100);
        tree.cache(lblk, len, pblk, status);
        const at = (b: number) => (b < SPACE ? model[b] : far.get(b));
        if (!at(lblk)) {
          let stop = lblk;
          while (stop < lblk + len && !at(stop)) stop++;
          setModel(model, far, lblk, stop - lblk, (b) => ({ status, pblk: status === ES.HOLE ? 0 : pblk + (b - lblk) }));
        }
        expect(tree.seq, "caching never changes seq").toBe(lastSeq);
      } else if (what < 0.8) {
        const e = tree.lookup(lblk);
        const want = lblk < SPACE ? model[lblk] : far.get(lblk);
        if (!want) expect(e).toBeUndefined();
        else {
          expect(e).toBeDefined();
          expect(e!.lblk <= lblk && lblk < e!.lblk + e!.len).toBe(true);
          expect(e!.status).toBe(want.status);
        }
        expect(tree.seq, "lookups never change seq").toBe(lastSeq);
      } else if (what < 0.9) {
        const mask = [ES.DELAYED, ES.WRITTEN | ES.UNWRITTEN, ES.HOLE, ES.DELAYED | ES.HOLE][int(4)];
        const end = lblk + len - 1;
        let first: number | undefined;
        for (let b = lblk; b <= end && first === undefined; b++) {
          const c = b < SPACE ? model[b] : far.get(b);
          if (c && c.status & mask) first = b;
        }
        const e: ExtentStatus | undefined = tree.findExtentRange(mask, lblk, end);
        if (first === undefined) expect(e).toBeUndefined();
        else {
          expect(e).toBeDefined();
          expect(Math.max(e!.lblk, lblk)).toBe(first);
        }
        expect(tree.seq).toBe(lastSeq);
      } else {
        let n = 0;
        for (let b = lblk; b < lblk + len; b++) if ((b < SPACE ? model[b] : far.get(b))?.status === ES.DELAYED) n++;
        expect(tree.countBlocks(ES.DELAYED, lblk, len)).toBe(n);
        expect(tree.seq).toBe(lastSeq);
      }
      lastSeq = tree.seq;
      check(tree, model, far);
    }
  });

  it("refuses ranges outside 32-bit logical blocks and mixed kinds", () => {
    const t = new ExtentStatusTree();
    expect(() => t.insert(0xffffffff, 2, 0, ES.HOLE)).toThrow(RangeError);
    expect(() => t.insert(0, 0, 0, ES.HOLE)).toThrow(RangeError);
    expect(() => t.insert(0, 1, 0, ES.WRITTEN | ES.HOLE)).toThrow(RangeError);
    expect(() => t.cache(0, 1, 0, ES.DELAYED)).toThrow(RangeError);
    expect(t.seq).toBe(0);
  });

  it("merges an insert with what is left of the extent it splits when physically contiguous", () => {
    const t = new ExtentStatusTree();
    t.insert(0, 10, 100, ES.WRITTEN);
    t.insert(4, 2, 104, ES.WRITTEN);
    expect(t.extents()).toEqual([{ lblk: 0, len: 10, pblk: 100, status: ES.WRITTEN }]);
    t.insert(4, 2, 500, ES.WRITTEN);
    expect(t.extents().map((e) => [e.lblk, e.len, e.pblk])).toEqual([[0, 4, 100], [4, 2, 500], [6, 4, 106]]);
  });
});

describe("extent status shrinker", () => {
  it("keeps cached extents of a mount under its cap and never drops a delayed one", () => {
    const r = rng(99);
    const cap = 64;
    const s = new EsShrinker(cap);
    const trees = Array.from({ length: 12 }, () => new ExtentStatusTree(s));
    const delayed = trees.map(() => new Set<number>());
    for (let op = 0; op < 5000; op++) {
      const k = Math.floor(r() * trees.length);
      const t = trees[k];
      const lblk = Math.floor(r() * 2000);
      if (r() < 0.15) {
        t.insert(lblk, 1, 0, ES.DELAYED);
        delayed[k].add(lblk);
      } else {
        // Non-contiguous blocks: every cached extent is its own.
        if (!t.lookup(lblk)) t.cache(lblk, 1, 10000 + lblk * 3, ES.WRITTEN);
        if (r() < 0.3) t.lookup(lblk);
      }
      expect(s.cached).toBeLessThanOrEqual(cap);
      expect(s.cached).toBe(trees.reduce((n, x) => n + x.reclaimableCount, 0));
    }
    expect(s.reclaimed).toBeGreaterThan(1000);
    trees.forEach((t, k) => {
      const d = t.extents().filter((e) => e.status === ES.DELAYED).flatMap((e) => Array.from({ length: e.len }, (_, i) => e.lblk + i));
      expect(new Set(d)).toEqual(delayed[k]);
    });
  });
});
