// Helpers for the allocator tests: images, e2fsck's own account of bitmap
// differences, dumpe2fs free counts, a journaled handle whose commit the
// test fires by hand, and attaching allocated runs to a file as an extent
// tree (so e2fsck sees an owner for every block and can call the image clean).

import * as fs from "node:fs";
import * as path from "node:path";
import { expect } from "vitest";
import type { BufferCache } from "../../host/cache/buffer-cache.js";
import type { BufferHead } from "../../host/cache/buffer-head.js";
import { setU16, setU32 } from "../../host/format/bytes.js";
import { EXTENT_MAGIC, extentTailOffset } from "../../host/format/extent.js";
import type { Inode } from "../../host/format/inode.js";
import type { Handle } from "../../host/journal/handle.js";
import { markInodeDirty } from "../../host/fs/inode-write.js";
import { freeBlocks, newMetaBlock } from "../../host/fs/mballoc.js";
import type { Ext4 } from "../../host/fs/super.js";
import { runSync } from "./exec.js";
import { mkfsEnv } from "./images.js";

export function fsOf(vol: unknown): Ext4 { return (vol as { fs: Ext4 }).fs; }

/** A no-journal test image (`-O ^has_journal` plus `features`), sparse, with empty files f0..f{files-1}. */
export function makeImage(work: string, name: string, args: string[], features: string, size: string, files = 8): string {
  const img = path.join(work, `${name}.img`);
  const tree = path.join(work, `tree-${files}`);
  if (!fs.existsSync(tree)) {
    fs.mkdirSync(tree);
    for (let i = 0; i < files; i++) fs.writeFileSync(path.join(tree, `f${i}`), "");
  }
  const feat = ["^has_journal", ...(features ? [features] : [])].join(",");
  const r = runSync("mkfs.ext4", ["-q", "-F", "-U", "3a6a2f1e-5b4c-4d3e-8f2a-1b2c3d4e5f60", "-E", "hash_seed=1b2c3d4e-0000-4000-8000-000000000001", "-O", feat, ...args, "-d", tree, img, size], { env: { ...mkfsEnv(work), E2FSPROGS_FAKE_TIME: "1700000000" } });
  expect(r.code, r.stderr).toBe(0);
  return img;
}

export interface Fsck { code: number; out: string }
export function fsck(img: string): Fsck {
  const r = runSync("e2fsck", ["-fn", img], { okCodes: [0, 1, 2, 4, 8, 12] });
  return { code: r.code, out: `${r.stdout}\n${r.stderr}` };
}

export function expectClean(img: string): void {
  const r = fsck(img);
  expect(r.code, r.out).toBe(0);
}

/**
 * e2fsck's "Block bitmap differences": blocks the bitmap marks in use that
 * no file owns (-) and the reverse (+). With bigalloc e2fsck names each
 * cluster by its first block; a range A--B steps by the cluster size.
 * Fails if e2fsck reports anything but these differences.
 */
export function bitmapDifferences(img: string, ratio: number): { minus: Set<number>; plus: Set<number> } {
  const r = fsck(img);
  const minus = new Set<number>();
  const plus = new Set<number>();
  const lines = r.out.split("\n");
  const at = lines.findIndex((l) => l.startsWith("Block bitmap differences:"));
  if (at >= 0) {
    let text = "";
    for (let k = at; k < lines.length && !lines[k].startsWith("Fix?"); k++) text += ` ${lines[k]}`;
    for (const m of text.replace("Block bitmap differences:", "").matchAll(/([+-])(?:\((\d+)--(\d+)\)|(\d+))/g)) {
      const set = m[1] === "-" ? minus : plus;
      const a = Number(m[2] ?? m[4]);
      const b = Number(m[3] ?? m[4]);
      for (let x = a; x <= b; x += ratio) set.add(x);
    }
  }
  const expected = /^(Pass \d|Block bitmap differences|Fix\? no|e2fsck \d|.*: \*+ WARNING: Filesystem still has errors|.*files \(.*blocks$|\s*$)/;
  const fixAt = at < 0 ? -1 : lines.findIndex((x, j) => j > at && x.startsWith("Fix?"));
  const others = lines.filter((l, k) => !(at >= 0 && k >= at && k <= fixAt) && !expected.test(l));
  expect(others, r.out).toEqual([]);
  return { minus, plus };
}

/** dumpe2fs: the superblock's free blocks and every group's free count and flags. */
export function freeCounts(img: string): { free: number; groups: number[]; flags: string[] } {
  const out = runSync("dumpe2fs", [img]).stdout;
  const free = Number(/^Free blocks:\s+(\d+)/m.exec(out)![1]);
  const groups = [...out.matchAll(/^\s+(\d+) free (?:blocks|clusters)/gm)].map((m) => Number(m[1]));
  const flags = [...out.matchAll(/^Group \d+: .*?(\[.*\])?$/gm)].map((m) => m[1] ?? "");
  return { free, groups, flags };
}

/** The cluster-start blocks of a run (e2fsck's names for it). */
export function clusterStarts(pblk: number, clusters: number, ratio: number): number[] {
  return Array.from({ length: clusters }, (_, i) => pblk + i * ratio);
}

/** A journaled handle whose transaction commits when the test says (its commit callbacks fire then). */
export class FakeTxn {
  callbacks: (() => void)[] = [];
  forgotten: { blocknr: number; isMetadata: boolean; hadBh: boolean }[] = [];
  constructor(readonly tid: number) {}
  commit(): void {
    const cbs = this.callbacks;
    this.callbacks = [];
    for (const f of cbs) f();
  }
}

export function fakeJournalHandle(bcache: BufferCache, txn: FakeTxn): Handle {
  let stopped = false;
  const live = () => { if (stopped) throw new Error("handle used after stop"); };
  return {
    journaled: true,
    tid: txn.tid,
    credits: 1000,
    getWriteAccess(bh: BufferHead) { live(); if (!bh.uptodate) throw new Error("write access to a buffer never read"); },
    getCreateAccess(bh: BufferHead) { live(); bcache.setUptodate(bh); },
    // The test journal writes buffers home at sync like the no-journal mode: only commit timing is simulated.
    dirtyMetadata(bh: BufferHead) { live(); bcache.markDirty(bh); },
    forget(blocknr: number, isMetadata: boolean, bh?: BufferHead) { live(); txn.forgotten.push({ blocknr, isMetadata, hadBh: !!bh }); if (bh) bcache.clearDirty(bh); },
    extend() { return true; },
    restart() { live(); },
    onCommit(fn: () => void) { txn.callbacks.push(fn); },
    stop() { live(); stopped = true; },
  };
}

export interface Attached { runs: { pblk: number; len: number }[]; leaf?: number }

/**
 * Makes `runs` (data blocks, each <= 32768 blocks, in order) the file's
 * contents: an extent root in the inode, or with more than four runs one
 * leaf block allocated here as metadata. i_blocks is the allocator's to
 * charge; the size follows the mapped blocks.
 */
export function attachRuns(handle: Handle, fs: Ext4, inode: Inode, runs: { pblk: number; len: number }[]): Attached {
  const bs = fs.sb.blockSize;
  const put = (b: Uint8Array, o: number, entries: number, max: number, depth: number) => {
    setU16(b, o, EXTENT_MAGIC); setU16(b, o + 2, entries); setU16(b, o + 4, max); setU16(b, o + 6, depth); setU32(b, o + 8, 0);
  };
  const putExtents = (b: Uint8Array) => {
    let lblk = 0;
    runs.forEach((r, k) => {
      const p = 12 + 12 * k;
      setU32(b, p, lblk); setU16(b, p + 4, r.len); setU16(b, p + 6, Math.floor(r.pblk / 2 ** 32)); setU32(b, p + 8, r.pblk >>> 0);
      lblk += r.len;
    });
    return lblk;
  };
  const root = inode.iBlock;
  root.fill(0);
  let blocks: number;
  let leaf: number | undefined;
  if (runs.length <= 4) {
    put(root, 0, runs.length, 4, 0);
    blocks = putExtents(root);
  } else {
    const max = (bs - 12) / 12 | 0;
    if (runs.length > max) throw new Error(`attachRuns: ${runs.length} runs do not fit one leaf`);
    leaf = newMetaBlock(handle, fs, inode, runs[0].pblk);
    const bh = fs.bcache.getblk(leaf);
    try {
      handle.getCreateAccess(bh);
      const b = bh.data;
      b.fill(0);
      put(b, 0, runs.length, max, 0);
      blocks = putExtents(b);
      if (fs.metadataCsum) setU32(b, extentTailOffset(max), fs.csum.extentBlock(fs.inodeSeed(inode), b, extentTailOffset(max)));
      handle.dirtyMetadata(bh);
    } finally {
      fs.bcache.brelse(bh);
    }
    put(root, 0, 1, 4, 1);
    setU32(root, 12, 0); setU32(root, 16, leaf >>> 0); setU16(root, 20, Math.floor(leaf / 2 ** 32));
  }
  inode.size = blocks * bs;
  markInodeDirty(handle, fs, inode);
  return { runs, leaf };
}

/** Frees what attachRuns attached (the leaf as metadata) and leaves the file empty. */
export function detachRuns(handle: Handle, fs: Ext4, inode: Inode, a: Attached): void {
  for (const r of a.runs) freeBlocks(handle, fs, inode, r.pblk, r.len);
  if (a.leaf !== undefined) freeBlocks(handle, fs, inode, a.leaf, 1, { metadata: true });
  const root = inode.iBlock;
  root.fill(0);
  setU16(root, 0, EXTENT_MAGIC); setU16(root, 4, 4);
  inode.size = 0;
  markInodeDirty(handle, fs, inode);
}
