// xattr blocks shared by several inodes (h_refcount > 1): never edited in
// place, copied on write, a reference dropped when an inode lets go, the
// block freed with its last reference. Judged by e2fsck -fn (refcounts,
// i_blocks, bitmaps), our reader and the kernel's getfattr.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount } from "../host/index.js";
import { setU32, u32 } from "../host/format/bytes.js";
import { markInodeDirty } from "../host/fs/inode-write.js";
import type { Ext4 } from "../host/fs/super.js";
import type { Volume } from "../host/vfs/volume.js";
import { attrToolsMissing, missingTools } from "./helpers/exec.js";
import { cloneModel, fileAcl, judge, mkfsImage, writeTree, type XattrModel } from "./helpers/xattr-model.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "debugfs"], "e2fsprogs") ?? attrToolsMissing();
if (missing) console.log(`xattr-write-shared: skipped: ${missing}`);
const d = missing ? describe.skip : describe;

const A = (n: number, c = 0x41) => Buffer.alloc(n, c);
let work: string;
let tree: string;
let base: XattrModel;

beforeAll(() => {
  if (missing) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-xattrs-"));
  tree = path.join(work, "tree");
  fs.mkdirSync(tree);
  base = writeTree(tree, [
    { path: "a", data: "a\n", xattrs: { "user.one": Buffer.from("hello"), "user.two": A(300) } },
    { path: "c", data: "c\n", xattrs: {} },
    { path: "e", data: "e\n", xattrs: {} },
  ]);
});

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

const VARIANTS: [string, string[]][] = [
  ["4k-256-csum", ["-b", "4096", "-I", "256"]],
  ["4k-128-csum", ["-b", "4096", "-I", "128"]],
  ["1k-256-nocsum", ["-b", "1024", "-I", "256", "-O", "^metadata_csum"]],
  ["1k-128-csum", ["-b", "1024", "-I", "128"]],
];

function fsOf(vol: Volume): Ext4 { return (vol as unknown as { fs: Ext4 }).fs; }

/**
 * Makes `to` (an inode without xattrs) share `from`'s xattr block, as the
 * kernel's mbcache would: refcount + 1, i_file_acl, i_blocks. Written through
 * the metadata seam; e2fsck judges the result before any test relies on it.
 */
function share(img: string, from: string, to: string[]): number {
  const vol = mount(img);
  try {
    const f = fsOf(vol);
    const src = f.inode(vol.statSync(from).ino);
    const pblk = src.fileAcl;
    const h = f.startHandle(8);
    const bh = f.bcache.bread(pblk);
    h.getWriteAccess(bh);
    setU32(bh.data, 4, u32(bh.data, 4) + to.length);
    if (f.metadataCsum) setU32(bh.data, 16, f.csum.xattrBlock(pblk, bh.data));
    h.dirtyMetadata(bh);
    f.bcache.brelse(bh);
    for (const p of to) {
      const dst = f.inode(vol.statSync(p).ino);
      dst.fileAcl = pblk;
      dst.blocks512 += f.sb.blockSize / 512;
      markInodeDirty(h, f, dst);
    }
    h.stop();
    return pblk;
  } finally {
    vol.unmount();
  }
}

/** The block's attributes as the model holds them: with 128-byte inodes /a has all of them there. */
function blockAttrs(args: string[]): Map<string, Buffer> {
  return args.includes("128") ? new Map(base.get("/a")!) : new Map([["user.two", A(300)]]);
}

function blockBytes(img: string, pblk: number): Buffer {
  const vol = mount(img, { readOnly: true });
  try {
    return Buffer.from(fsOf(vol).bcache.readCopy(pblk));
  } finally {
    vol.unmount();
  }
}

/** Everything but the refcount (and the checksum over it) is as it was. */
function expectOnlyRefcountChanged(before: Buffer, after: Buffer, refcount: number): void {
  expect(after.readUInt32LE(4)).toBe(refcount);
  const mask = (b: Buffer) => { const c = Buffer.from(b); c.fill(0, 4, 8); c.fill(0, 16, 20); return c; };
  expect(mask(after).equals(mask(before))).toBe(true);
}

function freeBlocks(img: string): number {
  const vol = mount(img, { readOnly: true });
  try {
    return vol.statfsSync().bfree;
  } finally {
    vol.unmount();
  }
}

let seq = 0;
function sharedImage(args: string[]): { img: string; pblk: number; model: XattrModel } {
  const img = mkfsImage(work, `sh${seq++}`, tree, args);
  const pblk = share(img, "/a", ["/c", "/e"]);
  const model = cloneModel(base);
  model.set("/c", blockAttrs(args));
  model.set("/e", blockAttrs(args));
  judge(img, model); // the hand-made sharing is what e2fsck and the kernel accept
  return { img, pblk, model };
}

function edit(img: string, fn: (vol: Volume) => void): void {
  const vol = mount(img);
  try {
    fn(vol);
  } finally {
    vol.unmount();
  }
}

d("shared xattr blocks", () => {
  it.each(VARIANTS)("a change to a shared block copies it; the old block only loses a reference (%s)", (_n, args) => {
    const { img, pblk, model } = sharedImage(args);
    const before = blockBytes(img, pblk);
    edit(img, (vol) => vol.setxattr("/c", "user.two", A(300, 0x42), { flag: "replace" }));
    model.get("/c")!.set("user.two", A(300, 0x42));
    judge(img, model);
    const copy = fileAcl(img, "/c");
    expect(copy).not.toBe(pblk);
    expect(copy).toBeGreaterThan(0);
    expect(fileAcl(img, "/a")).toBe(pblk);
    expect(fileAcl(img, "/e")).toBe(pblk);
    expectOnlyRefcountChanged(before, blockBytes(img, pblk), 2);
    expect(blockBytes(img, copy).readUInt32LE(4)).toBe(1);
  });

  it.each(VARIANTS)("a new attribute on an inode sharing the block copies it too (%s)", (_n, args) => {
    const { img, pblk, model } = sharedImage(args);
    edit(img, (vol) => vol.setxattr("/e", "user.big", A(500, 0x61))); // too big for any inode body
    model.get("/e")!.set("user.big", A(500, 0x61));
    judge(img, model);
    expect(fileAcl(img, "/e")).not.toBe(pblk);
    expect(blockBytes(img, pblk).readUInt32LE(4)).toBe(2);
  });

  it.each(VARIANTS)("removing attributes: an emptied copy is no block, the shared one loses a reference, the last one frees it (%s)", (_n, args) => {
    const { img, pblk, model } = sharedImage(args);
    const free0 = freeBlocks(img);
    // /e lets go of every attribute in the block: it ends up without one (no copy made).
    edit(img, (vol) => {
      for (const name of blockAttrs(args).keys()) vol.removexattr("/e", name);
    });
    model.set("/e", new Map());
    judge(img, model);
    expect(fileAcl(img, "/e")).toBe(0);
    expect(blockBytes(img, pblk).readUInt32LE(4)).toBe(2);
    expect(freeBlocks(img)).toBe(free0);
    // /c moves its attribute into the inode body where it fits, else drops it.
    edit(img, (vol) => {
      if (args.includes("256")) vol.setxattr("/c", "user.two", Buffer.from("small"));
      else for (const name of blockAttrs(args).keys()) vol.removexattr("/c", name);
    });
    if (args.includes("256")) model.get("/c")!.set("user.two", Buffer.from("small"));
    else model.set("/c", new Map());
    judge(img, model);
    expect(fileAcl(img, "/c")).toBe(0);
    expect(blockBytes(img, pblk).readUInt32LE(4)).toBe(1);
    // Now /a is alone: edited in place, then emptied and freed.
    edit(img, (vol) => vol.setxattr("/a", "user.two", A(301, 0x43)));
    model.get("/a")!.set("user.two", A(301, 0x43));
    judge(img, model);
    expect(fileAcl(img, "/a")).toBe(pblk);
    edit(img, (vol) => {
      for (const name of [...model.get("/a")!.keys()]) vol.removexattr("/a", name);
    });
    model.set("/a", new Map());
    judge(img, model);
    expect(fileAcl(img, "/a")).toBe(0);
    expect(freeBlocks(img)).toBe(free0 + 1);
  });

  it.each(VARIANTS)("a new block for an inode without one, freed again when emptied (%s)", (_n, args) => {
    const img = mkfsImage(work, `nb${seq++}`, tree, args);
    const model = cloneModel(base);
    const free0 = freeBlocks(img);
    edit(img, (vol) => vol.setxattr("/c", "user.v", A(600, 0x70)));
    model.get("/c")!.set("user.v", A(600, 0x70));
    judge(img, model);
    expect(fileAcl(img, "/c")).toBeGreaterThan(0);
    expect(freeBlocks(img)).toBe(free0 - 1);
    edit(img, (vol) => vol.removexattr("/c", "user.v"));
    model.get("/c")!.delete("user.v");
    judge(img, model);
    expect(fileAcl(img, "/c")).toBe(0);
    expect(freeBlocks(img)).toBe(free0);
  });
});
