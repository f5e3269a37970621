// A harness for the write-side block mapping: images from mkfs with empty
// files made by debugfs, a model of each file's blocks (pattern, unwritten,
// hole), allocation through ext4MapBlocks with the pattern written straight
// to the device, and the judges: e2fsck -fn, our reader after a remount, the
// kernel through a loop mount.

import * as fs from "node:fs";
import * as path from "node:path";
import { expect } from "vitest";
import { mount } from "../../host/index.js";
import type { Volume } from "../../host/index.js";
import type { Inode } from "../../host/format/inode.js";
import type { Ext4 } from "../../host/fs/super.js";
import type { Handle } from "../../host/journal/handle.js";
import { ext4MapBlocks, GET_BLOCKS, MAP } from "../../host/fs/map-blocks.js";
import { markInodeDirty } from "../../host/fs/inode-write.js";
import { type Ext4Inode, setInodeSize } from "../../host/fs/inode.js";
import { runSync } from "./exec.js";
import { mkfsEnv } from "./images.js";
import { loopMountSupport, withLoopMountSync } from "./kernel.js";

export { mulberry32 } from "./random.js";

/** mkfs.ext4 without a journal, plus empty extent (or, for ext3 images, block-mapped) files made by debugfs. */
export function makeImage(work: string, name: string, args: string[], size: string, files: string[]): string {
  const img = path.join(work, `${name}.img`);
  const r = runSync("mkfs.ext4", ["-q", "-F", "-U", "5a1e0c2b-7d3f-4e6a-9b8c-0d1e2f3a4b5c", "-E", "hash_seed=1b2c3d4e-0000-4000-8000-000000000001", ...args, img, size], { env: { ...mkfsEnv(work), E2FSPROGS_FAKE_TIME: "1700000000" } });
  expect(r.code, r.stderr).toBe(0);
  const cmds = files.map((f) => `write /dev/null ${f}`).join("\n");
  const d = runSync("debugfs", ["-w", "-f", "-", img], { input: cmds + "\n" });
  expect(d.code, d.stderr).toBe(0);
  return img;
}

export function fsck(img: string): { code: number; out: string } {
  const r = runSync("e2fsck", ["-fn", img], { okCodes: [0, 1, 2, 4, 8, 12] });
  return { code: r.code, out: `${r.stdout}\n${r.stderr}` };
}

export function expectFsckClean(img: string, when: string): void {
  const r = fsck(img);
  if (r.code !== 0) console.log(`e2fsck after ${when}:\n${r.out}`);
  expect(r.code, `e2fsck -fn after ${when}:\n${r.out}`).toBe(0);
}

export function freeBlocksOf(img: string): number {
  const out = runSync("dumpe2fs", ["-h", img]).stdout;
  const m = /^Free blocks:\s+(\d+)/m.exec(out);
  if (!m) throw new Error("dumpe2fs printed no free block count");
  return Number(m[1]);
}

export function fsOf(vol: Volume): Ext4 { return (vol as unknown as { fs: Ext4 }).fs; }

/** What each logical block of a file should read as. */
export interface BlockState { gen: number; unwritten: boolean }

export class FileModel {
  blocks = new Map<number, BlockState>();
  sizeBlocks = 0;
  constructor(readonly name: string, readonly id: number) {}
}

/** The bytes a block of file `id` holds after its `gen`th allocation. */
export function pattern(bs: number, id: number, lblk: number, gen: number): Uint8Array {
  const b = new Uint8Array(bs);
  let x = (Math.imul(id + 1, 0x9e3779b1) ^ Math.imul(lblk + 1, 0x85ebca6b) ^ Math.imul(gen + 1, 0xc2b2ae35)) >>> 0;
  for (let i = 0; i < bs; i += 4) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff; b[i + 1] = (x >>> 8) & 0xff; b[i + 2] = (x >>> 16) & 0xff; b[i + 3] = x >>> 24;
  }
  return b;
}

export function expectedBytes(bs: number, m: FileModel): Uint8Array {
  const out = new Uint8Array(m.sizeBlocks * bs);
  for (const [lblk, s] of m.blocks) {
    if (lblk >= m.sizeBlocks) throw new Error(`model: block ${lblk} past size ${m.sizeBlocks}`);
    if (!s.unwritten) out.set(pattern(bs, m.id, lblk, s.gen), lblk * bs);
  }
  return out;
}

let genCounter = 0;

/** The file's inode, through the mounted filesystem. */
export function inodeOf(vol: Volume, name: string): Inode {
  return fsOf(vol).inode(Number(vol.statSync(`/${name}`).ino));
}

/**
 * Maps [lblk, lblk+len) with `flags`, run by run as a caller of
 * ext4_map_blocks does; blocks that come back NEW get a fresh pattern on the
 * device. Returns the runs' results.
 */
export function mapRange(h: Handle, f: Ext4, inode: Inode, m: FileModel, lblk: number, len: number, flags: number): { len: number; flags: number; pblk: number }[] {
  const bs = f.sb.blockSize;
  const out: { len: number; flags: number; pblk: number }[] = [];
  let at = lblk;
  while (at < lblk + len) {
    const r = ext4MapBlocks(h, f, inode, { lblk: at, len: lblk + len - at }, flags);
    expect(r.lblk).toBe(at);
    expect(r.len).toBeGreaterThan(0);
    out.push(r);
    if (r.flags & MAP.NEW) {
      for (let k = 0; k < r.len; k++) {
        const gen = ++genCounter;
        f.device.write((r.pblk + k) * bs, pattern(bs, m.id, at + k, gen));
        m.blocks.set(at + k, { gen, unwritten: (r.flags & MAP.UNWRITTEN) !== 0 });
      }
    } else if (flags & GET_BLOCKS.CONVERT) {
      for (let k = 0; k < r.len; k++) { const s = m.blocks.get(at + k); if (s) s.unwritten = false; }
    } else if (flags & GET_BLOCKS.CONVERT_UNWRITTEN) {
      for (let k = 0; k < r.len; k++) { const s = m.blocks.get(at + k); if (s) s.unwritten = true; }
    } else if (!(r.flags & (MAP.MAPPED | MAP.UNWRITTEN))) {
      throw new Error(`no mapping for ${at}+${r.len} with flags ${flags}`);
    }
    at += r.len;
  }
  if (lblk + len > m.sizeBlocks) setSize(h, f, inode, m, lblk + len);
  return out;
}

export function setSize(h: Handle, f: Ext4, inode: Inode, m: FileModel, blocks: number): void {
  m.sizeBlocks = blocks;
  // i_size and i_disksize alike: encodeInode writes i_disksize.
  setInodeSize(inode as Ext4Inode, blocks * f.sb.blockSize);
  markInodeDirty(h, f, inode);
}

/** The model's view of a removal of [start, end]. */
export function modelRemove(m: FileModel, start: number, end: number): void {
  for (const k of [...m.blocks.keys()]) if (k >= start && k <= end) m.blocks.delete(k);
}

/** Our reader (a fresh read-only mount) and, where loop mounts work, the kernel read every file as the model says. */
export function checkContents(img: string, bs: number, models: FileModel[], kernel: boolean): void {
  const vol = mount(img, { readOnly: true });
  try {
    for (const m of models) {
      const got = vol.readFileSync(`/${m.name}`) as Buffer;
      const want = expectedBytes(bs, m);
      expect(got.length, `${m.name} size`).toBe(want.length);
      if (!Buffer.from(want).equals(got)) {
        let first = 0;
        while (first < want.length && got[first] === want[first]) first++;
        throw new Error(`${m.name}: our reader differs from the model at block ${Math.floor(first / bs)} (model ${JSON.stringify(m.blocks.get(Math.floor(first / bs)))})`);
      }
    }
  } finally {
    vol.unmount();
  }
  if (!kernel) return;
  const loop = loopMountSupport();
  if (!loop.ok) {
    console.log(`kernel comparison skipped: ${loop.reason}`);
    return;
  }
  withLoopMountSync(img, (mnt) => {
    for (const m of models) {
      const got = fs.readFileSync(path.join(mnt, m.name));
      const want = Buffer.from(expectedBytes(bs, m));
      expect(got.equals(want), `${m.name}: the kernel reads what the model says`).toBe(true);
    }
  }, { readOnly: true });
}

export function treeDepth(inode: Inode): number { return inode.iBlock[6] | (inode.iBlock[7] << 8); }

/** A read-write mount and one handle for `fn`; the handle stops and the volume unmounts (syncs) after it. */
export function withRw<T>(img: string, fn: (f: Ext4, h: Handle, vol: Volume) => T): T {
  const vol = mount(img);
  try {
    const f = fsOf(vol);
    const h = f.startHandle(64);
    try {
      return fn(f, h, vol);
    } finally {
      h.stop();
    }
  } finally {
    vol.unmount();
  }
}
