// Directory-entry tests: no-journal images made by mkfs -d (optionally
// indexed by e2fsck -fyD), hard links added and removed through namei, and
// the verdicts of e2fsck, our own fresh mount and the kernel's loop mount
// against a model of the directory.

import * as fs from "node:fs";
import * as path from "node:path";
import { expect } from "vitest";
import { mount } from "../../host/index.js";
import { lookup, readDir } from "../../host/fs/dir.js";
import { markInodeDirty } from "../../host/fs/inode-write.js";
import { addEntry, deleteEntry } from "../../host/fs/namei.js";
import { FT } from "../../host/format/dirent.js";
import type { Ext4 } from "../../host/fs/super.js";
import type { Handle } from "../../host/journal/handle.js";
import type { Volume } from "../../host/vfs/volume.js";
import { runSync } from "./exec.js";
import { mkfsEnv } from "./images.js";
import { loopMountSupport, withLoopMountSync } from "./kernel.js";

export interface ImageSpec {
  name: string;
  blockSize: 1024 | 4096 | 65536;
  /** -O list (^has_journal is always added). */
  features?: string;
  hash?: "half_md4" | "tea";
  sizeMiB?: number;
  /** Fills the source tree. */
  tree: (root: string) => void;
  /** Index every directory afterwards (e2fsck -fyD). */
  index?: boolean;
  /** Set s_flags to UNSIGNED_HASH before indexing. */
  unsigned?: boolean;
  inodeSize?: number;
  /** debugfs -w requests run before indexing. */
  debugfs?: string[];
}

export function makeImage(work: string, s: ImageSpec): string {
  const src = path.join(work, `${s.name}-tree`);
  fs.rmSync(src, { recursive: true, force: true });
  fs.mkdirSync(src);
  s.tree(src);
  const img = path.join(work, `${s.name}.img`);
  const features = ["^has_journal", ...(s.features ? [s.features] : [])].join(",");
  runSync("mkfs.ext4", ["-q", "-F", "-b", String(s.blockSize), ...(s.inodeSize ? ["-I", String(s.inodeSize)] : []), "-O", features, "-U", "6d0e4b2a-61b1-4c1e-9d5a-0a0b0c0d0e0f",
    "-E", "hash_seed=1b2c3d4e-0000-4000-8000-000000000001", "-d", src, img, `${s.sizeMiB ?? 64}M`], { env: { ...mkfsEnv(work, s.hash ?? "half_md4"), E2FSPROGS_FAKE_TIME: "1700000000" } });
  fs.rmSync(src, { recursive: true, force: true });
  if (s.unsigned) runSync("debugfs", ["-w", "-R", "ssv flags 2", img]);
  for (const req of s.debugfs ?? []) runSync("debugfs", ["-w", "-R", req, img]);
  if (s.index) runSync("e2fsck", ["-fyD", img], { okCodes: [0, 1] });
  return img;
}

/** The names as latin1 strings (byte for byte), for models and the kernel's listing. */
export const key = (b: Uint8Array) => Buffer.from(b).toString("latin1");
export const bytes = (k: string) => new Uint8Array(Buffer.from(k, "latin1"));

export function fsOf(vol: Volume): Ext4 { return (vol as unknown as { fs: Ext4 }).fs; }

/** Mounts read-write, runs fn with one handle, stops it and unmounts (sync) whatever happens. */
export function withHandle<T>(img: string, fn: (f: Ext4, h: Handle, vol: Volume) => T, mountOptions?: string): T {
  const vol = mount(img, { mountOptions });
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

/** Lets the test worker answer vitest between long synchronous stretches (its RPC times out otherwise). */
export const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** withHandle for long sessions that await tick() now and then. */
export async function withHandleAsync<T>(img: string, fn: (f: Ext4, h: Handle, vol: Volume) => Promise<T>): Promise<T> {
  const vol = mount(img);
  try {
    const f = fsOf(vol);
    const h = f.startHandle(64);
    try {
      return await fn(f, h, vol);
    } finally {
      h.stop();
    }
  } finally {
    vol.unmount();
  }
}

/** A hard link: the name, and the target's links_count + 1 (what ext4_link does around ext4_add_entry). */
export function link(f: Ext4, h: Handle, dirIno: number, name: Uint8Array, target: number): void {
  const dir = f.inode(dirIno);
  addEntry(h, f, dir, name, target, FT.REG);
  const t = f.inode(target);
  t.linksCount++;
  markInodeDirty(h, f, t);
}

/** A name removed, and its inode's links_count - 1 (the test keeps every inode linked elsewhere). */
export function unlink(f: Ext4, h: Handle, dirIno: number, name: Uint8Array): number {
  const ino = deleteEntry(h, f, f.inode(dirIno), name);
  const t = f.inode(ino);
  t.linksCount--;
  markInodeDirty(h, f, t);
  return ino;
}

/** The directory's names but . and .. as our reader lists them. */
export function ourNames(f: Ext4, dirIno: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const e of readDir(f, f.inode(dirIno))) {
    const k = key(e.name);
    if (k === "." || k === "..") continue;
    expect(out.has(k), `duplicate name ${k}`).toBe(false);
    out.set(k, e.ino);
  }
  return out;
}

export function sortedEntries(m: Map<string, number>): [string, number][] {
  return [...m.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** The live mount agrees with the model: listing and every lookup (the dcache included), and removed names miss. */
export function expectLive(f: Ext4, dirIno: number, model: Map<string, number>, gone: Iterable<string> = []): void {
  expect(sortedEntries(ourNames(f, dirIno))).toEqual(sortedEntries(model));
  const dir = f.inode(dirIno);
  for (const [k, ino] of model) expect(lookup(f, dir, bytes(k)), k).toBe(ino);
  for (const k of gone) if (!model.has(k)) expect(lookup(f, dir, bytes(k)), k).toBe(0);
}

export function fsck(img: string): string {
  const r = runSync("e2fsck", ["-fn", img], { okCodes: [0, 1, 2, 4, 8, 12] });
  expect(r.code, `e2fsck -fn ${img}:\n${r.stdout}\n${r.stderr}`).toBe(0);
  return r.stdout;
}

/** htree depth (indirect_levels + 1; 0 for a linear directory) and size in blocks, as our reader sees them. */
export function dirShape(f: Ext4, dirIno: number): { indexed: boolean; levels: number; blocks: number } {
  const dir = f.inode(dirIno);
  const blocks = Math.ceil(dir.size / f.sb.blockSize);
  if (!(dir.flags & 0x1000)) return { indexed: false, levels: 0, blocks };
  const m = f.mapBlocks(dir, 0, 1);
  const b = f.bcache.read(m.pblk);
  return { indexed: true, levels: b[24 + 6] + 1, blocks };
}

/**
 * Every verdict on an unmounted image: e2fsck -fn clean, a fresh mount of ours
 * lists and looks up exactly the model, and the kernel does too where loop
 * mounts work (else the reason is printed).
 */
export function checkImage(img: string, dirPath: string, model: Map<string, number>, gone: string[] = [], needs?: "casefold" | "page-size blocks"): void {
  fsck(img);
  const vol = mount(img, { readOnly: true });
  try {
    const f = fsOf(vol);
    const dirIno = vol.statSync(dirPath).ino;
    expectLive(f, dirIno, model, gone);
  } finally {
    vol.unmount();
  }
  const loop = loopMountSupport();
  if (!loop.ok) {
    console.log(`namei: kernel check skipped: ${loop.reason}`);
    return;
  }
  if (needs === "page-size blocks") {
    console.log("namei: kernel check skipped: blocks larger than the page size do not mount before Linux 6.19 (e2fsck and our reader judged)");
    return;
  }
  if (needs && !fs.existsSync(`/sys/fs/ext4/features/${needs}`)) {
    console.log(`namei: kernel check skipped: this kernel's ext4 has no ${needs} (/sys/fs/ext4/features/${needs}; CONFIG_UNICODE)`);
    return;
  }
  withLoopMountSync(img, (mnt) => {
    const dir = path.join(mnt, dirPath);
    const listed = runSync("ls", ["-f", dir]).stdout.split("\n").filter((l) => l !== "" && l !== "." && l !== "..");
    expect(listed.sort()).toEqual([...model.keys()].sort());
    for (const [k, ino] of model) expect(fs.lstatSync(Buffer.concat([Buffer.from(dir + "/"), Buffer.from(k, "latin1")])).ino, k).toBe(ino);
    for (const k of gone) if (!model.has(k)) expect(fs.existsSync(Buffer.concat([Buffer.from(dir + "/"), Buffer.from(k, "latin1")])), k).toBe(false);
  }, { readOnly: true });
}

export { mulberry32 as rng } from "./random.js";

/** A source tree: pool/ holds `pool` empty files; dir/ links `names` to them (names n00000...). */
export function linkedTree(names: number, pool = 16, dir = "d"): (root: string) => void {
  return (root) => {
    fs.mkdirSync(path.join(root, "pool"));
    fs.mkdirSync(path.join(root, dir));
    for (let i = 0; i < pool; i++) fs.writeFileSync(path.join(root, "pool", `p${i}`), "");
    for (let i = 0; i < names; i++) fs.linkSync(path.join(root, "pool", `p${i % pool}`), path.join(root, dir, `n${String(i).padStart(5, "0")}`));
  };
}
