// The metadata seam the write path stands on: buffer heads over the device
// mapping, journal handles (here ext4's no-journal mode), inode and group
// descriptor write-back. Judged by e2fsck, debugfs and byte comparison of
// the image, never by our own reader alone.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount } from "../host/index.js";
import { encodeInode } from "../host/format/inode.js";
import { markInodeDirty, setInodeChecksum } from "../host/fs/inode-write.js";
import { markGroupDescDirty } from "../host/fs/groups.js";
import { readInodeRaw } from "../host/fs/inode-table.js";
import { RO_COMPAT } from "../host/format/features.js";
import { hasRoCompat } from "../host/format/superblock.js";
import type { Ext4 } from "../host/fs/super.js";
import { missingTools, runSync } from "./helpers/exec.js";
import { mkfsEnv } from "./helpers/images.js";
import { shaOutsideMountFields } from "./helpers/mount-fields.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "debugfs"], "e2fsprogs");
if (missing) console.log(`metadata-seam: skipped: ${missing}`);
const d = missing ? describe.skip : describe;

let work: string;
let tree: string;

beforeAll(() => {
  if (missing) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-seam-"));
  tree = path.join(work, "tree");
  fs.mkdirSync(path.join(tree, "dir/sub"), { recursive: true });
  for (let i = 0; i < 40; i++) fs.writeFileSync(path.join(tree, "dir", `f${i}`), "x".repeat(i * 300));
  fs.writeFileSync(path.join(tree, "a"), "hello");
  fs.symlinkSync("dir/sub", path.join(tree, "link"));
  fs.writeFileSync(path.join(tree, "big"), Buffer.alloc(3 << 20, 7));
});

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

function mkfs(name: string, args: string[]): string {
  const img = path.join(work, `${name}.img`);
  const r = runSync("mkfs.ext4", ["-q", "-F", "-U", "6d0e4b2a-61b1-4c1e-9d5a-0a0b0c0d0e0f", "-E", "hash_seed=1b2c3d4e-0000-4000-8000-000000000001", ...args, "-d", tree, img, "64M"], { env: { ...mkfsEnv(work), E2FSPROGS_FAKE_TIME: "1700000000" } });
  expect(r.code, r.stderr).toBe(0);
  return img;
}

function fsckClean(img: string): void {
  const r = runSync("e2fsck", ["-fn", img]);
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
}

function sha(img: string): string { return createHash("sha256").update(fs.readFileSync(img)).digest("hex"); }

function fsOf(vol: unknown): Ext4 { return (vol as { fs: Ext4 }).fs; }

function blocksDiffering(a: Buffer, b: Buffer, bs: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < a.length; i += bs) if (!a.subarray(i, i + bs).equals(b.subarray(i, i + bs))) out.push(i / bs);
  return out;
}

const variants: [string, string[]][] = [
  ["4k-csum", []],
  ["1k-128", ["-b", "1024", "-I", "128", "-O", "^metadata_csum,^64bit"]],
  ["2k-gdtcsum", ["-b", "2048", "-O", "^metadata_csum,uninit_bg"]],
];

d("inode encoding", () => {
  it.each(variants)("re-encoding every inode of a mkfs -d image (%s) gives its bytes back, checksum included", (name, args) => {
    const img = mkfs(`enc-${name}`, args);
    // Fields mkfs -d leaves at zero: nanoseconds, epoch bits, 32-bit ids.
    const sif = (f: string, v: string) => expect(runSync("debugfs", ["-w", "-R", `sif /a ${f} ${v}`, img]).code).toBe(0);
    sif("uid", "100000");
    sif("gid", "70000");
    if (!args.includes("128")) {
      sif("mtime_extra", "0x12345679");
      sif("crtime_extra", "0x2");
    }
    const vol = mount(img, { readOnly: true });
    try {
      const f = fsOf(vol);
      const sb = f.sb;
      const ctx = { inodeSize: sb.inodeSize, blockSize: sb.blockSize, hugeFile: hasRoCompat(sb, RO_COMPAT.HUGE_FILE), largeDir: false };
      let checked = 0;
      for (let ino = 1; ino <= sb.inodesCount; ino++) {
        const inode = readInodeRaw(f, ino);
        if (inode.raw.every((x) => x === 0)) continue;
        const copy = inode.raw.slice();
        const clone = { ...inode, raw: copy, iBlock: copy.subarray(0x28, 0x88) };
        copy.fill(0xa5, 0, 0x28); // the encoder must rewrite every field it owns
        copy.fill(0xa5, 0x64, 0x70); // (0x70 i_faddr and 0x7e are obsolete or reserved: kept as they are)
        copy.fill(0xa5, 0x74, f.metadataCsum ? 0x7e : 0x7c);
        encodeInode(clone, copy, ctx);
        setInodeChecksum(f, ino, copy);
        const diff = [...copy.keys()].filter((k) => copy[k] !== inode.raw[k]).map((k) => `0x${k.toString(16)}`);
        expect(diff, `inode ${ino}`).toEqual([]);
        checked++;
      }
      expect(checked).toBeGreaterThan(45);
    } finally {
      vol.unmount();
    }
  });
});

d("metadata through a no-journal handle", () => {
  it("an inode change reaches exactly its inode-table block, e2fsck-clean, and debugfs sees it", () => {
    const img = mkfs("nojournal", ["-O", "^has_journal"]);
    const before = fs.readFileSync(img);
    const vol = mount(img);
    let tableBlock = -1;
    try {
      const f = fsOf(vol);
      const ino = vol.statSync("/a").ino;
      const inode = f.inode(ino);
      inode.mtime = { sec: 4102444800, nsec: 123456789 }; // 2100-01-01: epoch bits needed
      inode.uid = 123456;
      const h = f.startHandle(1);
      markInodeDirty(h, f, inode);
      h.stop();
      tableBlock = f.groups[Math.floor((ino - 1) / f.sb.inodesPerGroup)].inodeTable + Math.floor((((ino - 1) % f.sb.inodesPerGroup) * f.sb.inodeSize) / f.sb.blockSize);
      expect(f.bcache.dirtyCount).toBe(1);
    } finally {
      vol.unmount();
    }
    const after = fs.readFileSync(img);
    // The superblock (block 0) changes by the mount itself: mount count and times.
    expect(blocksDiffering(before, after, 4096)).toEqual([0, tableBlock]);
    fsckClean(img);
    const stat = runSync("debugfs", ["-R", "stat /a", img]).stdout;
    expect(stat).toMatch(/User: 123456/);
    expect(stat).toMatch(/mtime: 0x[0-9a-f]+:1d6f3455 -- .*2100/);
    const again = mount(img, { readOnly: true });
    try {
      expect(again.statSync("/a", { bigint: true }).mtimeNs).toBe(4102444800123456789n);
    } finally {
      again.unmount();
    }
  });

  it("a dirty buffer is never reclaimed: it survives reading the whole device through a 4 MiB cache", () => {
    const img = mkfs("pressure", ["-O", "^has_journal", "-b", "1024"]);
    const vol = mount(img, { cacheSize: 4 << 20 });
    try {
      const f = fsOf(vol);
      const ino = vol.statSync("/dir/f3").ino;
      const inode = f.inode(ino);
      inode.linksCount = 1;
      inode.mtime = { sec: 1234567890, nsec: 5 };
      const h = f.startHandle(1);
      markInodeDirty(h, f, inode);
      h.stop();
      for (let b = 0; b < f.sb.blocksCount; b++) f.bcache.read(b);
      expect(f.cache.stats().evictions).toBeGreaterThan(1000);
      expect(f.bcache.dirtyCount).toBe(1);
    } finally {
      vol.unmount();
    }
    fsckClean(img);
    expect(runSync("debugfs", ["-R", "stat /dir/f3", img]).stdout).toMatch(/mtime: 0x499602d2:00000014/);
  });

  it.each(variants)("re-encoding every group descriptor (%s) leaves the image byte-identical", (name, args) => {
    const img = mkfs(`gd-${name}`, ["-O", "^has_journal", ...args]);
    const before = shaOutsideMountFields(img);
    const vol = mount(img);
    try {
      const f = fsOf(vol);
      const h = f.startHandle(f.groups.length);
      for (let g = 0; g < f.groups.length; g++) markGroupDescDirty(h, f, g);
      h.stop();
      expect(f.bcache.dirtyCount).toBeGreaterThan(0);
    } finally {
      vol.unmount();
    }
    expect(shaOutsideMountFields(img)).toBe(before);
  });

  it.each(variants)("committing an unchanged superblock (%s) rewrites it byte for byte", (name, args) => {
    const img = mkfs(`sb-${name}`, ["-O", "^has_journal", ...args]);
    const before = shaOutsideMountFields(img);
    const vol = mount(img);
    let counted = 0;
    try {
      const f = fsOf(vol);
      const dev = f.device;
      const write = dev.write.bind(dev);
      dev.write = (pos, src) => { counted += src.length; write(pos, src); };
      f.markSuperDirty();
    } finally {
      vol.unmount();
    }
    expect(counted).toBe(1024);
    expect(shaOutsideMountFields(img)).toBe(before);
  });

  it("a handle is refused on a read-only mount (EROFS); a read-write journaled mount gives journal handles", () => {
    const img = mkfs("journaled", []);
    const before = sha(img);
    const ro = mount(img, { readOnly: true });
    try {
      expect(() => fsOf(ro).startHandle(1)).toThrow(expect.objectContaining({ code: "EROFS" }));
    } finally {
      ro.unmount();
    }
    expect(sha(img)).toBe(before);
    const rw = mount(img);
    try {
      const h = fsOf(rw).startHandle(1);
      expect(h.journaled).toBe(true);
      h.stop();
    } finally {
      rw.unmount();
    }
    fsckClean(img);
  });

});
