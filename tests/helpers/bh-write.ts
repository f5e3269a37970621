// Helpers for the bh write-path tests: images from our mkfs, files created
// through the fs layer (no VFS write surface yet), and our own reads.

import * as nfs from "node:fs";
import * as path from "node:path";
import { expect } from "vitest";
import { mkfs, mount } from "../../host/index.js";
import type { MkfsOptions } from "../../host/mkfs/mkfs.js";
import { BhBufferedIO } from "../../host/buffered/bh/read.js";
import { ReadaheadState } from "../../host/buffered/readahead.js";
import { FT } from "../../host/format/dirent.js";
import { S_IFREG } from "../../host/format/inode.js";
import { newInode } from "../../host/fs/ialloc.js";
import type { Ext4Inode } from "../../host/fs/inode.js";
import { markInodeDirty } from "../../host/fs/inode-write.js";
import { addEntry, addEntryCredits } from "../../host/fs/namei.js";
import type { Ext4 } from "../../host/fs/super.js";
import type { Volume } from "../../host/vfs/volume.js";
import { runSync } from "./exec.js";

export const FIXED = { uuid: "3a6a2f1e-5b4c-4d3e-8f2a-1b2c3d4e5f60", hashSeed: "1b2c3d4e-0000-4000-8000-000000000001" };

export function makeImage(work: string, name: string, size: string, opts: MkfsOptions = {}): string {
  const img = path.join(work, `${name}.img`);
  mkfs(img, { size, ...FIXED, ...opts });
  return img;
}

export interface Mounted { vol: Volume; fs: Ext4; io: BhBufferedIO }

export function open(img: string, mountOptions?: string, cacheSize?: number): Mounted {
  const vol = mount(img, { mountOptions, cacheSize });
  return { vol, fs: vol.fs, io: new BhBufferedIO(vol.fs) };
}

/** A new empty regular file `name` in the root directory, referenced (iput it). */
export function createFile(fs: Ext4, name: string): Ext4Inode {
  const h = fs.startHandle(addEntryCredits(fs) + 16);
  try {
    const root = fs.inode(2);
    const f = newInode(h, fs, root, S_IFREG | 0o644);
    markInodeDirty(h, fs, f);
    addEntry(h, fs, root, new TextEncoder().encode(name), f.ino, FT.REG);
    markInodeDirty(h, fs, root);
    return f;
  } finally {
    h.stop();
  }
}

/** Our read of the whole file through the bh read path. */
export function readAll(m: Mounted, inode: Ext4Inode): Buffer {
  const out = Buffer.alloc(inode.size);
  let done = 0;
  const ra = new ReadaheadState();
  while (done < out.length) {
    const n = m.io.read(inode, done, out.subarray(done), ra);
    if (n === 0) break;
    done += n;
  }
  expect(done).toBe(out.length);
  return out;
}

export function expectClean(img: string): void {
  const r = runSync("e2fsck", ["-fn", img], { okCodes: [0, 1, 2, 4, 8, 12] });
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
}

/** Bytes that differ per offset and per seed, so a block in the wrong place shows. */
export function pattern(seed: number, len: number): Uint8Array {
  const b = new Uint8Array(len);
  let x = (seed * 2654435761) >>> 0;
  for (let i = 0; i < len; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

export function rmrf(p: string): void { nfs.rmSync(p, { recursive: true, force: true }); }
