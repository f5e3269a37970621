// Inode allocation judged by e2fsprogs and the kernel: inodes made through
// handles on no-journal images of several geometries, linked into the tree
// with debugfs, must leave e2fsck -fn clean and stat in the kernel with the
// mode, owner and nanosecond times we gave them. Top-level directories spread
// across (flex) groups as Orlov does (the kernel's own mkdir picks the same
// groups), files stay near their parent, allocation runs to ENOSPC and
// freeing gives every count back.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Ext4Error, mount } from "../host/index.js";
import { setU16, setU32, u32 } from "../host/format/bytes.js";
import { BG_FLAGS } from "../host/format/group-desc.js";
import { S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, INODE_FLAGS, type Timespec } from "../host/format/inode.js";
import { flexSize, freeInode, newInode, seedInodeAllocator } from "../host/fs/ialloc.js";
import type { Ext4Inode } from "../host/fs/inode.js";
import { markGroupDescDirty } from "../host/fs/groups.js";
import { markInodeDirty } from "../host/fs/inode-write.js";
import type { Handle } from "../host/journal/handle.js";
import type { Ext4 } from "../host/fs/super.js";
import { missingTools, runSync } from "./helpers/exec.js";
import { mkfsEnv } from "./helpers/images.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "debugfs", "dumpe2fs"], "e2fsprogs");
if (missing) console.log(`ialloc: skipped: ${missing}`);
const d = missing ? describe.skip : describe;
const loop = missing ? { ok: false as const, reason: missing } : loopMountSupport();
if (!loop.ok) console.log(`ialloc: kernel checks skipped: ${loop.reason}`);

let work: string;
beforeAll(() => { if (!missing) work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-ialloc-")); });
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

/**
 * kernelSame: how many of the six top-level directories must land where the
 * kernel's mkdir puts them. The kernel reads its free counters approximately
 * (percpu_counter_read_positive leaves per-CPU deltas under the batch out),
 * so at an exact tie with the average it sees the free inodes of before the
 * last few allocations; on the 128-byte geometry the fifth directory is such
 * a tie.
 */
interface Geometry { name: string; args: string[]; size: string; kernelSame?: number }
const GEOMETRIES: Geometry[] = [
  { name: "4k-flex2-csum", args: ["-b", "4096", "-g", "8192", "-G", "2", "-N", "2048"], size: "128M" },
  { name: "2k-flex2-csum", args: ["-b", "2048", "-G", "2", "-N", "4096"], size: "256M" },
  { name: "1k-noflex-uninit_bg", args: ["-b", "1024", "-O", "^flex_bg,^metadata_csum,uninit_bg", "-N", "2048"], size: "64M" },
  { name: "1k-noflex-plain-128", args: ["-b", "1024", "-I", "128", "-O", "^flex_bg,^metadata_csum,^uninit_bg,^64bit"], size: "32M", kernelSame: 4 },
];

function mkfs(name: string, g: Geometry, extra: string[] = []): string {
  const img = path.join(work, `${name}.img`);
  const r = runSync("mkfs.ext4", ["-q", "-F", "-O", "^has_journal", "-U", "0b6a3d1e-2f4c-4e8a-9c1d-5e6f7a8b9c0d",
    "-E", "hash_seed=5a3c1e2f-0000-4000-8000-00000000abcd", ...g.args, ...extra, img, g.size], { env: { ...mkfsEnv(work), E2FSPROGS_FAKE_TIME: "1700000000" } });
  expect(r.code, r.stderr).toBe(0);
  return img;
}

function fsck(img: string): void {
  const r = runSync("e2fsck", ["-fn", img]);
  expect(r.code, `e2fsck -fn ${path.basename(img)}:\n${r.stdout}\n${r.stderr}`).toBe(0);
}

function debugfsW(img: string, cmds: string[]): void {
  const f = path.join(work, "cmds.txt");
  fs.writeFileSync(f, cmds.join("\n") + "\n");
  const r = runSync("debugfs", ["-w", "-f", f, img]);
  const errs = r.stderr.split("\n").filter((l) => l && !l.startsWith("debugfs "));
  expect(errs, r.stderr).toEqual([]);
}

function fsOf(vol: unknown): Ext4 { return (vol as { fs: Ext4 }).fs; }
const groupOf = (f: Ext4, ino: number) => Math.floor((ino - 1) / f.sb.inodesPerGroup);

/**
 * Gives a new directory its first block ("." and ".."), as ext4_init_new_dir
 * would: a block taken from group 0's bitmap by hand (the block allocator is
 * not this module's), one extent, link counts 2 and parent + 1.
 */
function makeDirBlock(h: Handle, f: Ext4, dir: Ext4Inode, parent: Ext4Inode): void {
  const sb = f.sb;
  // In the directory's own group, as the kernel's goal puts it, unless that group's block bitmap is not initialised yet.
  const bg = f.groups[groupOf(f, dir.ino)].flags & BG_FLAGS.BLOCK_UNINIT || flexSize(f) > 1 ? 0 : groupOf(f, dir.ino);
  const gd = f.groups[bg];
  const bbh = f.bcache.bread(gd.blockBitmap);
  let pblk = -1;
  try {
    h.getWriteAccess(bbh);
    const b = bbh.data;
    for (let i = 0; i < sb.blocksPerGroup; i++) {
      if (!(b[i >> 3] & (1 << (i & 7)))) { b[i >> 3] |= 1 << (i & 7); pblk = sb.firstDataBlock + bg * sb.blocksPerGroup + i; break; }
    }
    expect(pblk).toBeGreaterThan(0);
    if (f.metadataCsum) gd.blockBitmapCsum = f.csum.bitmap(b, sb.clustersPerGroup / 8);
    h.dirtyMetadata(bbh);
  } finally {
    f.bcache.brelse(bbh);
  }
  gd.freeBlocks--;
  markGroupDescDirty(h, f, bg);
  sb.freeBlocksCount--;
  f.markSuperDirty();
  const bs = sb.blockSize;
  const bh = f.bcache.getblk(pblk);
  try {
    h.getCreateAccess(bh);
    const b = bh.data;
    b.fill(0);
    const tail = f.metadataCsum ? 12 : 0;
    setU32(b, 0, dir.ino); setU16(b, 4, 12); b[6] = 1; b[7] = 2; b[8] = 0x2e;
    setU32(b, 12, parent.ino); setU16(b, 16, bs - 12 - tail); b[18] = 2; b[19] = 2; b[20] = 0x2e; b[21] = 0x2e;
    if (tail) {
      setU16(b, bs - 8, 12); b[bs - 5] = 0xde;
      setU32(b, bs - 4, f.csum.dirBlock(f.inodeSeed(dir), b));
    }
    h.dirtyMetadata(bh);
  } finally {
    f.bcache.brelse(bh);
  }
  const ib = dir.iBlock;
  setU16(ib, 2, 1); // one extent in the root
  setU32(ib, 12, 0); setU16(ib, 16, 1); setU16(ib, 18, 0); setU32(ib, 20, pblk);
  dir.size = dir.disksize = bs;
  dir.blocks512 = bs / 512;
  dir.linksCount = 2;
  markInodeDirty(h, f, dir);
  parent.linksCount++;
  markInodeDirty(h, f, parent);
}

interface Made { path: string; ino: number; mode: number; uid: number; gid: number; time: Timespec; group: number }

d("inode allocation", () => {
  it.each(GEOMETRIES)("$name: directories, files, a symlink, a device and a fifo: e2fsck clean, the kernel's stat as given", (g) => {
    const img = mkfs(`alloc-${g.name}`, g);
    const kernelImg = path.join(work, `alloc-${g.name}-kernel.img`);
    fs.copyFileSync(img, kernelImg);
    // Tables of groups still INODE_UNINIT hold junk (a lazily initialised table may): nothing of it may show.
    let junkGroups = 0;
    {
      const vol = mount(img, { readOnly: true });
      const f = fsOf(vol);
      const fd = fs.openSync(img, "r+");
      try {
        for (const gd of f.groups) {
          if (!(gd.flags & BG_FLAGS.INODE_UNINIT)) continue;
          const bytes = f.sb.inodesPerGroup * f.sb.inodeSize;
          fs.writeSync(fd, Buffer.alloc(bytes, 0xa5), 0, bytes, gd.inodeTable * f.sb.blockSize);
          junkGroups++;
        }
      } finally {
        fs.closeSync(fd);
        vol.unmount();
      }
    }
    if (g.args.join(" ").includes("^uninit_bg")) expect(junkGroups).toBe(0);
    else expect(junkGroups).toBeGreaterThan(0);

    const made: Made[] = [];
    const cmds: string[] = [];
    let nflex = 0;
    let ngroups = 0;
    const vol = mount(img);
    try {
      const f = fsOf(vol);
      seedInodeAllocator(f, 42);
      ngroups = f.groups.length;
      const blockUninitBefore = f.groups.map((gd) => (gd.flags & BG_FLAGS.BLOCK_UNINIT) !== 0);
      nflex = Math.ceil(ngroups / flexSize(f));
      const nsec = f.sb.inodeSize > 128;
      const root = f.iget(2);
      const h = f.startHandle(64);
      let t = 0;
      const time = (): Timespec => ({ sec: 1_750_000_000 + t, nsec: nsec ? 123_456_789 - t++ : (t++, 0) });
      const make = (parent: Ext4Inode, parentPath: string, name: string, mode: number, uid: number, gid: number): Ext4Inode => {
        const tm = time();
        const inode = newInode(h, f, parent, mode, { uid, gid, name: new TextEncoder().encode(name), time: tm });
        const p = `${parentPath}/${name}`;
        cmds.push(`ln <${inode.ino}> ${p}`);
        made.push({ path: p, ino: inode.ino, mode: inode.mode, uid: inode.uid, gid: inode.gid, time: tm, group: groupOf(f, inode.ino) });
        return inode;
      };
      const dirs: Ext4Inode[] = [];
      for (let i = 0; i < 6; i++) {
        const dmode = S_IFDIR | (i === 0 ? 0o2775 : 0o755);
        const dir = make(root, "", `top${i}`, dmode, 1000 + i, i === 0 ? 500 : 1000);
        makeDirBlock(h, f, dir, root);
        dirs.push(dir);
      }
      expect(dirs[0].mode & 0o7777).toBe(0o2775);
      for (const [k, dir] of dirs.entries()) {
        for (let j = 0; j < 3; j++) {
          const file = make(dir, `/top${k}`, `f${j}`, S_IFREG | 0o640, 2000 + j, 3000);
          expect(file.flags & INODE_FLAGS.EXTENTS, "regular files are extent-mapped").not.toBe(0);
          // setgid directory: its group, whatever the creator's.
          if (k === 0) expect(file.gid).toBe(500);
          f.iput(file);
        }
      }
      // A subdirectory of the setgid directory inherits the bit and the group.
      const sub = make(dirs[0], "/top0", "sub", S_IFDIR | 0o755, 7, 7);
      expect(sub.mode & 0o2000).toBe(0o2000);
      expect(sub.gid).toBe(500);
      makeDirBlock(h, f, sub, dirs[0]);
      f.iput(sub);
      // A fast symlink (its target in i_block, not extent-mapped: ext4_symlink clears the flag), a device, a fifo.
      const lnk = make(root, "", "link", S_IFLNK | 0o777, 0, 0);
      expect(lnk.flags & INODE_FLAGS.EXTENTS).not.toBe(0);
      lnk.flags &= ~INODE_FLAGS.EXTENTS;
      lnk.iBlock.fill(0);
      lnk.iBlock.set(new TextEncoder().encode("top1/f0"));
      lnk.size = lnk.disksize = 7;
      markInodeDirty(h, f, lnk);
      f.iput(lnk);
      const chr = make(root, "", "chr", S_IFCHR | 0o600, 0, 6);
      expect(chr.flags & INODE_FLAGS.EXTENTS, "devices are not extent-mapped").toBe(0);
      setU32(chr.iBlock, 0, (1 << 8) | 3); // old-style rdev 1:3 (/dev/null)
      markInodeDirty(h, f, chr);
      f.iput(chr);
      f.iput(make(root, "", "fifo", S_IFIFO | 0o644, 100005, 70000)); // 32-bit ids: the high halves live in osd2
      h.stop();
      for (const dir of dirs) f.iput(dir);
      f.iput(root);

      // Orlov: top-level directories in as many (flex) groups as there are, up to their number.
      const tops = made.filter((m) => /^\/top\d$/.test(m.path));
      const flexOf = (grp: number) => Math.floor(grp / flexSize(f));
      // A group's first inode initialises its inode bitmap and its block bitmap (the kernel's order).
      for (const m of made) expect(f.groups[m.group].flags & (BG_FLAGS.BLOCK_UNINIT | BG_FLAGS.INODE_UNINIT), m.path).toBe(0);
      if (junkGroups > 0 && flexSize(f) === 1) expect(made.some((m) => blockUninitBefore[m.group]), "some inode went to a BLOCK_UNINIT group").toBe(true);
      // Orlov spreads them where there is more than one (flex) group to spread over.
      if (nflex > 2) expect(new Set(tops.map((m) => flexOf(m.group))).size).toBeGreaterThan(1);
      // Files near their parent: the same group, or the same flex group.
      for (const m of made.filter((x) => /^\/top\d\/f\d$/.test(x.path))) {
        const parent = tops.find((x) => m.path.startsWith(`${x.path}/`))!;
        if (flexSize(f) > 1) expect(flexOf(m.group), m.path).toBe(flexOf(parent.group));
        else expect(m.group, m.path).toBe(parent.group);
      }
    } finally {
      vol.unmount();
    }
    debugfsW(img, cmds);
    fsck(img);

    // Free counts as e2fsck counts them.
    const sum = runSync("dumpe2fs", ["-h", img]).stdout;
    const orig = runSync("dumpe2fs", ["-h", kernelImg]).stdout;
    const free = (s: string) => Number(/Free inodes:\s+(\d+)/.exec(s)![1]);
    expect(free(orig) - free(sum)).toBe(made.length);

    if (!loop.ok) {
      console.log(`ialloc ${g.name}: kernel stat skipped: ${loop.reason}`);
      return;
    }
    withLoopMountSync(img, (mnt) => {
      for (const m of made) {
        const st = fs.lstatSync(path.join(mnt, m.path), { bigint: true });
        const ns = BigInt(m.time.sec) * 1_000_000_000n + BigInt(m.time.nsec);
        expect({ path: m.path, ino: Number(st.ino), mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid), mtime: st.mtimeNs, ctime: st.ctimeNs, atime: st.atimeNs })
          .toEqual({ path: m.path, ino: m.ino, mode: m.mode, uid: m.uid, gid: m.gid, mtime: ns, ctime: ns, atime: ns });
        if (g.args.includes("128")) expect(st.birthtimeNs, m.path).toBe(0n);
        else expect(st.birthtimeNs, m.path).toBe(ns);
      }
      expect(fs.readlinkSync(path.join(mnt, "link"))).toBe("top1/f0");
      expect(fs.statSync(path.join(mnt, "chr")).rdev).toBe((1 << 8) | 3);
    }, { readOnly: true });

    // The kernel's own mkdir of the same names on the pristine image picks the same groups.
    let kernelGroups: number[] = [];
    withLoopMountSync(kernelImg, (mnt) => {
      for (let i = 0; i < 6; i++) fs.mkdirSync(path.join(mnt, `top${i}`));
      kernelGroups = Array.from({ length: 6 }, (_, i) => groupOf({ sb: { inodesPerGroup: ipgOf(kernelImg) } } as Ext4, fs.statSync(path.join(mnt, `top${i}`)).ino));
    });
    const ours = made.filter((m) => /^\/top\d$/.test(m.path)).map((m) => m.group);
    const flex = flexOfImage(kernelImg);
    const n = g.kernelSame ?? 6;
    expect(ours.slice(0, n).map((x) => Math.floor(x / flex))).toEqual(kernelGroups.slice(0, n).map((x) => Math.floor(x / flex)));
    void ngroups;
  });

  it.each([GEOMETRIES[0], GEOMETRIES[2]])("$name: allocates until ENOSPC, e2fsck clean, and freeing every inode restores the counts exactly", (g) => {
    const img = mkfs(`enospc-${g.name}`, { ...g, args: g.args.filter((a, i, all) => a !== "-N" && all[i - 1] !== "-N") }, ["-N", "256"]);
    const before = runSync("dumpe2fs", [img]).stdout;
    const made: number[] = [];
    const vol = mount(img);
    try {
      const f = fsOf(vol);
      seedInodeAllocator(f, 7);
      const blockUninit = f.groups.filter((gd) => gd.flags & BG_FLAGS.BLOCK_UNINIT).length;
      expect(blockUninit).toBeGreaterThan(0);
      const root = f.iget(2);
      const h = f.startHandle(1);
      const failures: string[] = [];
      for (let i = 0; i < 400; i++) {
        try {
          const ino = newInode(h, f, root, S_IFREG | 0o644, { uid: 1, gid: 1 });
          made.push(ino.ino);
          f.iput(ino);
        } catch (e) {
          failures.push(e instanceof Ext4Error ? e.code : String(e));
        }
      }
      // A directory too, once nothing is left.
      try { newInode(h, f, root, S_IFDIR | 0o755); } catch (e) { failures.push(e instanceof Ext4Error ? e.code : String(e)); }
      h.stop();
      f.iput(root);
      expect(made.length).toBe(Number(/Free inodes:\s+(\d+)/.exec(before)![1]));
      expect(new Set(failures)).toEqual(new Set(["ENOSPC"]));
      expect(failures.length).toBe(401 - made.length);
      expect(f.sb.freeInodesCount).toBe(0);
      expect(f.groups.every((gd) => gd.freeInodes === 0)).toBe(true);
      // Every group now has inodes, so every group has its inode and block bitmaps.
      expect(f.groups.filter((gd) => gd.flags & (BG_FLAGS.BLOCK_UNINIT | BG_FLAGS.INODE_UNINIT)).length).toBe(0);
    } finally {
      vol.unmount();
    }
    const link: string[] = [];
    made.forEach((ino, i) => {
      if (i % 30 === 0) link.push("expand_dir /");
      link.push(`ln <${ino}> /n${i}`);
    });
    debugfsW(img, link);
    fsck(img);
    debugfsW(img, made.map((_, i) => `unlink /n${i}`));
    // errors=continue: the double free below is recorded and the frees before it still commit.
    const again = mount(img, { mountOptions: "errors=continue" });
    try {
      const f = fsOf(again);
      const h = f.startHandle(1);
      for (const ino of made) {
        const inode = f.iget(ino);
        inode.linksCount = 0;
        freeInode(h, f, inode);
      }
      // A second free of the same inode is the kernel's "bit already cleared".
      const dead = f.iget(made[0]);
      dead.linksCount = 0;
      expect(() => freeInode(h, f, dead)).toThrow(expect.objectContaining({ code: "EFSCORRUPTED" }));
      // Its link back before the reference goes: the final iput of an unlinked inode would evict (free) it again.
      dead.linksCount = 1;
      f.iput(dead);
      h.stop();
    } finally {
      again.unmount();
    }
    fsck(img);
    const after = runSync("dumpe2fs", [img]).stdout;
    const counts = (s: string) => [...s.matchAll(/(\d+) free inodes?, (\d+) directories/g)].map((m) => `${m[1]}/${m[2]}`);
    expect(counts(after)).toEqual(counts(before));
    expect(/Free inodes:\s+(\d+)/.exec(after)![1]).toBe(/Free inodes:\s+(\d+)/.exec(before)![1]);
  });

  it("refuses to free an inode that still has links or other holders", () => {
    const img = mkfs("refuse", GEOMETRIES[3]);
    const vol = mount(img);
    try {
      const f = fsOf(vol);
      const h = f.startHandle(1);
      const root = f.iget(2);
      const inode = newInode(h, f, root, S_IFREG | 0o600);
      expect(() => freeInode(h, f, inode)).toThrow(/still has 1 links/);
      inode.linksCount = 0;
      const other = f.iget(inode.ino);
      expect(other).toBe(inode);
      expect(() => freeInode(h, f, inode)).toThrow(/references/);
      f.iput(other);
      freeInode(h, f, inode);
      expect(() => freeInode(h, f, root)).toThrow(expect.objectContaining({ code: "EFSCORRUPTED" }));
      h.stop();
      f.iput(root);
    } finally {
      vol.unmount();
    }
    fsck(img);
  });
});

function dumpField(img: string, field: string): number {
  const m = new RegExp(`${field}:\\s+(\\d+)`).exec(runSync("dumpe2fs", ["-h", img]).stdout);
  return m ? Number(m[1]) : 0;
}
function ipgOf(img: string): number { return dumpField(img, "Inodes per group"); }
function flexOfImage(img: string): number { return dumpField(img, "Flex block group size") || 1; }
void u32;
