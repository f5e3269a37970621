// Orphan records (fs/orphan.ts), eviction (fs/evict.ts) and the read-write
// mount's orphan cleanup (fs/orphan-cleanup.ts), judged by e2fsprogs and the
// kernel: the legacy s_last_orphan chain and the orphan file, as a crash
// leaves them (a recording device's image after the commit), as the kernel
// leaves them (a frozen copy of a loop mount with unlinked files held open),
// and crafted with debugfs (an interrupted truncate).

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount } from "../host/index.js";
import { u32 } from "../host/format/bytes.js";
import { S_IFREG } from "../host/format/inode.js";
import { newInode } from "../host/fs/ialloc.js";
import { type Ext4Inode, STATE } from "../host/fs/inode.js";
import { markInodeDirty } from "../host/fs/inode-write.js";
import { ext4Unlink } from "../host/fs/namei-ops.js";
import { orphanAdd, orphanDel, orphanState } from "../host/fs/orphan.js";
import type { Ext4 } from "../host/fs/super.js";
import { missingTools, runSync } from "./helpers/exec.js";
import { FileModel, mapRange } from "./helpers/extent-model.js";
import { mkfsEnv } from "./helpers/images.js";
import { mulberry32 } from "./helpers/random.js";
import { GET_BLOCKS } from "../host/fs/map-blocks.js";
import { dumpe2fsFields, fsckClean, fsOf, makeTree, mkfsImage, RecordingDevice } from "./helpers/jbd2.js";
import { inodeTableDiff } from "./helpers/inode-tables.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "debugfs", "dumpe2fs"], "e2fsprogs");
if (missing) console.log(`orphan: skipped: ${missing}`);
const d = missing ? describe.skip : describe;

const FILES = 6;
let work: string;
let tree: string;
beforeAll(() => {
  if (missing) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-orphan-"));
  tree = makeTree(work, FILES);
  // Files with blocks to free: 5 blocks of 4k, 20 of 1k.
  for (let i = 1; i <= FILES; i++) fs.writeFileSync(path.join(tree, `f${i}`), Buffer.alloc(20000, i));
});
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

const VARIANTS: [string, string[]][] = [
  ["legacy-4k", []],
  ["orphanfile-4k", ["-O", "orphan_file"]],
  ["legacy-1k-nocsum", ["-b", "1024", "-O", "^metadata_csum"]],
  ["orphanfile-1k", ["-b", "1024", "-O", "orphan_file"]],
  ["bigalloc-orphanfile", ["-O", "bigalloc,orphan_file", "-C", "16384"]],
];

/** unlink(2) of `name` in the root while it stays open: ext4Unlink's reference is the open file's. */
function unlinkOpen(f: Ext4, name: string): Ext4Inode {
  const root = f.iget(2);
  try {
    const inode = ext4Unlink(f, root, Buffer.from(name));
    if (!inode) throw new Error(`ext4Unlink returned no inode for ${name}`);
    return inode;
  } finally {
    f.iput(root);
  }
}

/** A linked inode whose truncate to `size` is under way: i_size set and the orphan record made, no block freed yet. */
function truncating(f: Ext4, ino: number, size: number): Ext4Inode {
  const inode = f.iget(ino);
  const h = f.startHandle(4);
  try {
    inode.size = size;
    inode.disksize = size;
    orphanAdd(h, f, inode);
    markInodeDirty(h, f, inode);
  } finally {
    h.stop();
  }
  return inode;
}

function inoOf(img: string, name: string): number {
  const out = runSync("debugfs", ["-R", `stat /${name}`, img]).stdout;
  const m = /Inode: (\d+)/.exec(out);
  if (!m) throw new Error(`debugfs found no /${name}: ${out}`);
  return Number(m[1]);
}

/** The replay e2fsprogs does (debugfs journal_run; e2fsck would release the orphans too), on a copy. */
function e2Replayed(name: string, state: Uint8Array): string {
  const img = path.join(work, `${name}-e2replay.img`);
  fs.writeFileSync(img, state);
  runSync("debugfs", ["-w", "-R", "journal_run", img]);
  expect(dumpe2fsFields(img).get("Filesystem features")).not.toMatch(/needs_recovery/);
  return img;
}

/** i_dtime and i_links_count of an inode as debugfs reads them (NEXT_ORPHAN while it is an orphan). */
function debugfsInode(img: string, ino: number): { links: number; dtime: number; inUse: boolean } {
  const st = runSync("debugfs", ["-R", `stat <${ino}>`, img]).stdout;
  const links = Number(/Links: (\d+)/.exec(st)?.[1]);
  const dt = /dtime: 0x([0-9a-f]+)/.exec(st);
  const t = runSync("debugfs", ["-R", `testi <${ino}>`, img]).stdout + runSync("debugfs", ["-R", `testi <${ino}>`, img]).stderr;
  return { links, dtime: dt ? parseInt(dt[1], 16) : 0, inUse: /is marked in use/.test(t) };
}

/** The orphan file's non-zero slots, read through debugfs. */
function orphanFileSlots(img: string): number[] {
  const out = path.join(work, "orphan-file.bin");
  runSync("debugfs", ["-R", `dump <12> ${out}`, img]);
  const b = new Uint8Array(fs.readFileSync(out));
  const bs = Number(dumpe2fsFields(img).get("Block size"));
  const per = (bs - 8) / 4;
  const slots: number[] = [];
  for (let o = 0; o < b.length; o += bs) for (let j = 0; j < per; j++) { const v = u32(b, o + j * 4); if (v) slots.push(v); }
  return slots;
}

function fsckOut(img: string): { code: number; out: string } {
  const r = runSync("e2fsck", ["-fn", img], { okCodes: [0, 1, 2, 4, 8, 12] });
  return { code: r.code, out: r.stdout + r.stderr };
}

function freeCounts(img: string): { blocks: number; inodes: number } {
  const m = dumpe2fsFields(img);
  return { blocks: Number(m.get("Free blocks")), inodes: Number(m.get("Free inodes")) };
}

d("orphanAdd / orphanDel on crash images", () => {
  for (const [name, args] of VARIANTS) {
    it(`${name}: the chain e2fsprogs reads after replay, the kernel's and our cleanup`, () => {
      const img = mkfsImage(work, name, tree, args);
      const orphanFile = args.some((a) => a.includes("orphan_file"));
      const inos = [1, 2, 3, 4].map((i) => inoOf(img, `f${i}`));
      const rec = new RecordingDevice(new Uint8Array(fs.readFileSync(img)));
      const vol = mount(rec);
      const f = fsOf(vol);
      const bs = f.sb.blockSize;
      // f1 and f3 unlinked while open; f2 and f4 linked, with a truncate in progress.
      const held = [unlinkOpen(f, "f1")];
      const f2 = truncating(f, inos[1], 20000);
      held.push(unlinkOpen(f, "f3"));
      // f2's truncate finishes: it leaves the list, its predecessor (f3) must point past it.
      let h = f.startHandle(4);
      orphanDel(h, f, f2);
      h.stop();
      f.iput(f2);
      const f4 = truncating(f, inos[3], bs);
      expect(orphanState(f).list).toEqual(orphanFile ? [] : [inos[3], inos[2], inos[0]]);
      f.commit();
      const state = rec.stateAt(rec.ops.length);
      // What the crash left, as e2fsprogs replays it.
      const e2 = e2Replayed(name, state);
      if (orphanFile) {
        expect(orphanFileSlots(e2).sort()).toEqual([inos[0], inos[2], inos[3]].sort());
        expect(dumpe2fsFields(e2).get("Filesystem features")).toMatch(/orphan_present/);
      } else {
        expect(Number(dumpe2fsFields(e2).get("First orphan inode"))).toBe(inos[3]);
        expect(debugfsInode(e2, inos[3]).dtime).toBe(inos[2]);
        expect(debugfsInode(e2, inos[2]).dtime).toBe(inos[0]);
        expect(debugfsInode(e2, inos[0]).dtime).toBe(0);
      }
      expect(debugfsInode(e2, inos[1]).dtime).toBe(0);
      for (const k of [0, 2]) expect(debugfsInode(e2, inos[k])).toMatchObject({ links: 0, inUse: true });
      // e2fsck -n sees inodes in use that no name reaches, and their blocks.
      const seen = fsckOut(e2);
      expect(seen.code, seen.out).toBe(4);
      expect(seen.out).toMatch(/Inode bitmap differences/);
      // e2fsck -y releases them as orphans and is then clean.
      const fixed = path.join(work, `${name}-e2fixed.img`);
      fs.copyFileSync(e2, fixed);
      runSync("e2fsck", ["-fy", fixed], { okCodes: [0, 1] });
      fsckClean(fixed);
      // Our mount replays and cleans up.
      const ours = path.join(work, `${name}-ours.img`);
      fs.writeFileSync(ours, state);
      const v2 = mount(ours);
      expect(fsOf(v2).orphans).toMatchObject({ deleted: 2, truncated: 1 });
      expect(v2.readFileSync("/f4")).toEqual(Buffer.alloc(bs, 4));
      expect(v2.readFileSync("/f2")).toEqual(Buffer.alloc(20000, 2));
      v2.unmount();
      fsckClean(ours);
      for (const k of [0, 2]) expect(debugfsInode(ours, inos[k]).inUse).toBe(false);
      expect(runSync("debugfs", ["-R", "blocks /f4", ours]).stdout.trim().split(/\s+/)).toHaveLength(1);
      expect(freeCounts(ours)).toEqual(freeCounts(fixed));
      // The kernel's mount does the same.
      const s = loopMountSupport();
      if (!s.ok) {
        console.log(`orphan ${name}: kernel cleanup skipped: ${s.reason}`);
      } else {
        const kern = path.join(work, `${name}-kernel.img`);
        fs.writeFileSync(kern, state);
        withLoopMountSync(kern, () => undefined);
        fsckClean(kern);
        expect(freeCounts(kern)).toEqual(freeCounts(ours));
      }
      for (const i of held) f.iput(i);
      f.iput(f4);
      vol.unmount();
    });
  }
});

/** The per-group free ranges and counts dumpe2fs prints: equal when the bitmaps are. */
function groupFreeSummary(img: string): string[] {
  const out = runSync("dumpe2fs", [img]).stdout;
  return out.split("\n").filter((l) => /^\s+Free (blocks|inodes): |free blocks, .* free inodes/.test(l)).map((l) => l.trim());
}

d("eviction: an unlinked file stays readable until its last close", () => {
  for (const [name, args] of [["journaled-4k", []], ["nojournal-1k", ["-b", "1024", "-O", "^has_journal"]]] as [string, string[]][]) {
    it(`${name}: read through the open descriptor, freed at close (or at unmount), e2fsck clean and the counts back`, () => {
      const img = mkfsImage(work, `open-${name}`, tree, args);
      const before = freeCounts(img);
      const dataBlocks = Math.ceil(20000 / Number(dumpe2fsFields(img).get("Block size")));
      const vol = mount(img);
      const f = fsOf(vol);
      const fd = vol.openSync("/f1");
      const fd2 = vol.openSync("/f2");
      const freeInodes = f.sb.freeInodesCount;
      const inodes = ["f1", "f2"].map((n) => unlinkOpen(f, n));
      for (const i of inodes) f.iput(i);
      expect(() => vol.statSync("/f1")).toThrow(expect.objectContaining({ code: "ENOENT" }));
      // Still there for the descriptor: data and inode.
      const buf = Buffer.alloc(20000);
      expect(vol.readSync(fd, buf, 0, 20000, 0)).toBe(20000);
      expect(buf).toEqual(Buffer.alloc(20000, 1));
      expect(f.sb.freeInodesCount).toBe(freeInodes);
      vol.closeSync(fd);
      expect(f.sb.freeInodesCount).toBe(freeInodes + 1);
      expect(vol.readSync(fd2, buf, 0, 20000, 0)).toBe(20000);
      expect(buf).toEqual(Buffer.alloc(20000, 2));
      // fd2 is still open: the unmount frees its inode.
      vol.unmount();
      fsckClean(img);
      expect(freeCounts(img)).toEqual({ blocks: before.blocks + 2 * dataBlocks, inodes: before.inodes + 2 });
      for (const i of inodes) expect(debugfsInode(img, i.ino).inUse).toBe(false);
    });
  }
});

d("orphan file full: the legacy list takes the rest", () => {
  it("1k blocks, a one-block orphan file (254 slots): the 255th orphan goes on s_last_orphan; all leave again; e2fsck clean", () => {
    const img = mkfsImage(work, "orphan-full", tree, ["-b", "1024", "-O", "orphan_file", "-E", "orphan_file_size=1k", "-N", "512"]);
    const vol = mount(img);
    const f = fsOf(vol);
    expect(orphanState(f)).toMatchObject({ fileBlocks: 1, fileFree: 254 });
    const root = f.iget(2);
    const made: Ext4Inode[] = [];
    let h = f.startHandle(8);
    for (let i = 0; i < 256; i++) {
      if (!h.extend(8)) { h.stop(); h = f.startHandle(8); }
      const inode = newInode(h, f, root, S_IFREG | 0o644);
      orphanAdd(h, f, inode);
      made.push(inode);
    }
    h.stop();
    expect(orphanState(f)).toMatchObject({ fileFree: 0, list: [made[255].ino, made[254].ino] });
    expect(f.sb.lastOrphan).toBe(made[255].ino);
    expect(made[255].dtime).toBe(made[254].ino);
    expect(made.slice(0, 254).every((i) => i.testState(STATE.ORPHAN_FILE))).toBe(true);
    f.commit();
    // Unlinked (never named) and let go: evict frees each and drops its record.
    for (const i of made) {
      i.linksCount = 0;
      f.iput(i);
    }
    f.iput(root);
    expect(orphanState(f)).toMatchObject({ fileFree: 254, list: [] });
    expect(f.sb.lastOrphan).toBe(0);
    vol.unmount();
    fsckClean(img);
    expect(orphanFileSlots(img)).toEqual([]);
  });
});

/** Our read-write mount and unmount of a copy, and the kernel's of another: both e2fsck-clean, the same bitmaps and counts. */
function cleanBothWays(name: string, img: string, expected: { deleted: number; truncated: number }): { ours: string; kern?: string } {
  const ours = path.join(work, `${name}-ours.img`);
  fs.copyFileSync(img, ours);
  const v = mount(ours);
  expect(fsOf(v).orphans).toMatchObject({ ...expected, failed: false });
  v.unmount();
  fsckClean(ours);
  const s = loopMountSupport();
  if (!s.ok) {
    console.log(`orphan ${name}: kernel comparison skipped: ${s.reason}`);
    return { ours };
  }
  const kern = path.join(work, `${name}-kernel.img`);
  fs.copyFileSync(img, kern);
  withLoopMountSync(kern, () => undefined);
  fsckClean(kern);
  expect(groupFreeSummary(ours)).toEqual(groupFreeSummary(kern));
  expect(inodeTableDiff(ours, kern), "inode bytes where our cleanup and the kernel's differ").toEqual([]);
  expect(freeCounts(ours)).toEqual(freeCounts(kern));
  return { ours, kern };
}

d("images the kernel leaves with orphans", () => {
  for (const [name, args] of VARIANTS) {
    it(`${name}: files and a directory removed while open on a loop mount, frozen and copied; our mount frees them as the kernel's does`, (ctx) => {
      const s = loopMountSupport();
      if (!s.ok) {
        console.log(`orphan ${name}: kernel-made orphans skipped: ${s.reason}`);
        ctx.skip();
      }
      const img = mkfsImage(work, `kfrozen-${name}`, tree, args);
      const frozen = path.join(work, `kfrozen-${name}-copy.img`);
      withLoopMountSync(img, (mnt) => {
        fs.mkdirSync(path.join(mnt, "d"));
        const fds = ["f1", "f2", "f3", "d"].map((n) => fs.openSync(path.join(mnt, n), "r"));
        try {
          for (const i of [1, 2, 3]) fs.unlinkSync(path.join(mnt, `f${i}`));
          fs.rmdirSync(path.join(mnt, "d"));
          // ext4_freeze: the journal flushed and needs_recovery cleared; the orphans stay recorded.
          runSync("fsfreeze", ["-f", mnt]);
          try {
            fs.copyFileSync(img, frozen);
          } finally {
            runSync("fsfreeze", ["-u", mnt]);
          }
        } finally {
          for (const fd of fds) fs.closeSync(fd);
        }
      });
      const m = dumpe2fsFields(frozen);
      if (args.some((a) => a.includes("orphan_file"))) expect(orphanFileSlots(frozen)).toHaveLength(4);
      else expect(Number(m.get("First orphan inode"))).toBeGreaterThan(0);
      expect(fsckOut(frozen).code).toBe(4);
      // The reader sees none of them, and a read-only mount writes nothing.
      const bytes = fs.readFileSync(frozen);
      const ro = mount(frozen, { readOnly: true });
      expect(ro.readdirSync("/").filter((n) => /^(f[123]|d)$/.test(String(n)))).toEqual([]);
      expect(fsOf(ro).orphans).toBeUndefined();
      ro.unmount();
      expect(fs.readFileSync(frozen).equals(bytes)).toBe(true);
      const { ours } = cleanBothWays(`kfrozen-${name}`, frozen, { deleted: 4, truncated: 0 });
      expect(dumpe2fsFields(ours).get("Filesystem features")).not.toMatch(/orphan_present/);
    });
  }
});

d("orphans crafted with debugfs (an interrupted truncate, an unlinked inode)", () => {
  const crafted: [string, string[]][] = [
    ["journaled-4k", []],
    ["nojournal-4k", ["-O", "^has_journal"]],
    ["ext3-1k", ["-b", "1024", "-O", "^extent,^flex_bg,^metadata_csum,^64bit,^huge_file,^dir_nlink,^extra_isize", "-I", "128"]],
  ];
  for (const [name, args] of crafted) {
    it(`${name}: s_last_orphan -> f1 (links 1, i_size cut to 5000) -> f2 (links 0): we finish both as the kernel does`, () => {
      const img = mkfsImage(work, `craft-${name}`, tree, args);
      const i1 = inoOf(img, "f1");
      const i2 = inoOf(img, "f2");
      const r = runSync("debugfs", ["-w", "-f", "-", img], {
        input: [`sif <${i1}> size 5000`, `sif <${i1}> dtime ${i2}`, "unlink /f2", `sif <${i2}> links_count 0`, `ssv last_orphan ${i1}`].join("\n") + "\n",
      });
      expect(r.code, r.stderr).toBe(0);
      expect(Number(dumpe2fsFields(img).get("First orphan inode"))).toBe(i1);
      const { ours, kern } = cleanBothWays(`craft-${name}`, img, { deleted: 1, truncated: 1 });
      const v = mount(ours, { readOnly: true });
      expect(v.readFileSync("/f1")).toEqual(Buffer.alloc(5000, 1));
      v.unmount();
      expect(debugfsInode(ours, i2).inUse).toBe(false);
      expect(debugfsInode(ours, i1)).toMatchObject({ links: 1, dtime: 0 });
      // The last block's bytes past i_size are zeroed (ext4_block_truncate_page), as the kernel leaves them.
      const bs = Number(dumpe2fsFields(ours).get("Block size"));
      const blocks = runSync("debugfs", ["-R", "blocks /f1", ours]).stdout.trim().split(/\s+/).map(Number);
      expect(blocks).toHaveLength(Math.ceil(5000 / bs));
      const last = blocks[blocks.length - 1];
      const tail = (file: string) => fs.readFileSync(file).subarray(last * bs, last * bs + bs);
      const want = Buffer.alloc(bs);
      want.fill(1, 0, 5000 % bs);
      expect(tail(ours).equals(want)).toBe(true);
      if (kern) expect(tail(kern).equals(want)).toBe(true);
    });
  }
});

d("a filesystem with errors", () => {
  it("ERROR_FS in s_state: the orphan list is dropped, not walked, by our mount as by the kernel's", () => {
    const img = mkfsImage(work, "errorfs", tree, []);
    const i1 = inoOf(img, "f1");
    const r = runSync("debugfs", ["-w", "-f", "-", img], {
      input: ["unlink /f1", `sif <${i1}> links_count 0`, `ssv last_orphan ${i1}`, "ssv state 3"].join("\n") + "\n",
    });
    expect(r.code, r.stderr).toBe(0);
    const ours = path.join(work, "errorfs-ours.img");
    fs.copyFileSync(img, ours);
    const v = mount(ours);
    expect(fsOf(v).orphans).toMatchObject({ deleted: 0, truncated: 0 });
    expect(fsOf(v).warnings).toContain("Errors on filesystem, clearing orphan list.");
    v.unmount();
    const m = dumpe2fsFields(ours);
    expect(m.get("First orphan inode")).toBeUndefined();
    expect(debugfsInode(ours, i1)).toMatchObject({ links: 0, inUse: true });
    const s = loopMountSupport();
    if (!s.ok) {
      console.log(`orphan errorfs: kernel comparison skipped: ${s.reason}`);
      return;
    }
    const kern = path.join(work, "errorfs-kernel.img");
    fs.copyFileSync(img, kern);
    withLoopMountSync(kern, () => undefined);
    expect(dumpe2fsFields(kern).get("First orphan inode")).toBeUndefined();
    expect(debugfsInode(kern, i1)).toMatchObject({ links: 0, inUse: true });
    expect(freeCounts(ours)).toEqual(freeCounts(kern));
  });
});

d("a bad orphan inode", () => {
  it("an orphan not in use in the inode bitmap is an ext4_error: recorded in the superblock; remount-ro by default (the list left to e2fsck), errors=continue goes on", () => {
    const img = mkfsImage(work, "badorphan", tree, []);
    const i1 = inoOf(img, "f1");
    const r = runSync("debugfs", ["-w", "-f", "-", img], {
      input: ["unlink /f1", `sif <${i1}> links_count 0`, `freei <${i1}>`, `ssv last_orphan ${i1}`].join("\n") + "\n",
    });
    expect(r.code, r.stderr).toBe(0);
    const ro = path.join(work, "badorphan-ro.img");
    fs.copyFileSync(img, ro);
    const v = mount(ro);
    expect(fsOf(v).readOnly).toBe(true);
    expect(fsOf(v).warnings.join("\n")).toMatch(new RegExp(`ext4_orphan_get: .*bad orphan inode ${i1}: not in use`));
    expect(() => v.mkdirSync("/x")).toThrow(expect.objectContaining({ code: "EROFS" }));
    v.unmount();
    let m = dumpe2fsFields(ro);
    expect(m.get("First error function")).toBe("ext4_orphan_get");
    expect(m.get("First error inode #")).toBe(String(i1));
    expect(m.get("First orphan inode")).toBe(String(i1));
    const cont = path.join(work, "badorphan-cont.img");
    fs.copyFileSync(img, cont);
    const w = mount(cont, { mountOptions: "errors=continue" });
    expect(fsOf(w).readOnly).toBe(false);
    w.mkdirSync("/x");
    w.unmount();
    m = dumpe2fsFields(cont);
    expect(m.get("First error function")).toBe("ext4_orphan_get");
    expect(m.get("First orphan inode")).toBeUndefined();
  });
});

d("a crash at any commit of a long eviction", () => {
  it("1k, 1 MiB journal: an unlinked file with a block in each of 383 groups is evicted over several transactions; crash states at its flushes are finished by the next mount, e2fsck clean, the counts exact", () => {
    const img = path.join(work, "long-evict.img");
    const r = runSync("mkfs.ext4", ["-q", "-F", "-b", "1024", "-g", "256", "-J", "size=1", "-O", "^flex_bg,^resize_inode", "-N", "4096", img, "96M"], {
      env: { ...mkfsEnv(work), E2FSPROGS_FAKE_TIME: "1700000000" },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(runSync("debugfs", ["-w", "-R", "write /dev/null j", img]).code).toBe(0);
    const ino = inoOf(img, "j");
    const model = new FileModel("j", 81);
    const groups = new Set<number>();
    const v0 = mount(img);
    {
      const f = fsOf(v0);
      const inode = f.iget(ino);
      for (let i = 0; i < f.groups.length; i++) {
        const h = f.startHandle(40);
        const [run] = mapRange(h, f, inode, model, i * 256 + 200, 1, GET_BLOCKS.CREATE);
        groups.add(Math.floor((run.pblk - f.sb.firstDataBlock) / f.sb.blocksPerGroup));
        h.stop();
      }
      f.iput(inode);
      v0.unmount();
    }
    expect(groups.size).toBeGreaterThan(300);
    fsckClean(img);
    const before = freeCounts(img);
    let freedStates = 0;
    const base = new Uint8Array(fs.readFileSync(img));
    const rec = new RecordingDevice(base.slice());
    const vol = mount(rec);
    const f = fsOf(vol);
    const c0 = f.journal!.stats.commits;
    const start = rec.ops.length;
    const held = unlinkOpen(f, "j");
    f.commit();
    f.iput(held);
    f.commit();
    const commits = f.journal!.stats.commits - c0;
    vol.unmount();
    expect(commits, "the eviction spans transactions").toBeGreaterThan(2);
    const done = path.join(work, "long-evict-done.img");
    fs.writeFileSync(done, rec.snapshot());
    fsckClean(done);
    const want = freeCounts(done);
    // Every flush of the workload, with all or (seeded) part of the writes in flight since the one before.
    const all = rec.flushPoints().filter((i) => i >= start);
    // Sampled evenly (a long run could take them all): the first, the last and those between.
    const SAMPLE = 5;
    const flushes = all.length <= SAMPLE ? all : [...new Set(Array.from({ length: SAMPLE }, (_, k) => all[Math.round((k * (all.length - 1)) / (SAMPLE - 1))]))];
    const rnd = mulberry32(7);
    let judged = 0;
    let kernelJudged = 0;
    for (const at of flushes) {
      for (const partial of [false, true]) {
        const state = rec.crashImage(rec.base, at + (partial ? -1 : 0), partial ? () => rnd() < 0.5 : undefined);
        const file = path.join(work, "long-evict-crash.img");
        fs.writeFileSync(file, state);
        const v = mount(file);
        const named = v.existsSync("/j");
        v.unmount();
        fsckClean(file);
        // Before the unlink's commit the file is whole; after it, freed whatever part of the eviction was durable.
        expect(freeCounts(file)).toEqual(named ? before : want);
        if (!named) freedStates++;
        judged++;
        if (kernelJudged < 3 && judged % 5 === 1 && loopMountSupport().ok) {
          const k = path.join(work, "long-evict-crash-kernel.img");
          fs.writeFileSync(k, state);
          withLoopMountSync(k, () => undefined);
          fsckClean(k);
          expect(groupFreeSummary(k)).toEqual(groupFreeSummary(file));
          kernelJudged++;
        }
      }
    }
    expect(freedStates).toBeGreaterThan(3);
    console.log(`long-evict: ${commits} commits, ${judged} crash states judged, ${freedStates} after the unlink (${kernelJudged} by the kernel too)`);
  });
});

d("eviction without a handle", () => {
  it("journal aborted before the last close: the close does not fail, the orphan stays on disk and the next mount frees it", () => {
    const img = mkfsImage(work, "aborted", tree, []);
    const before = freeCounts(img);
    const vol = mount(img);
    const f = fsOf(vol);
    const fd = vol.openSync("/f1");
    f.iput(unlinkOpen(f, "f1"));
    f.commit();
    f.journal!.aborted = new Error("test: journal aborted");
    vol.closeSync(fd);
    expect(orphanState(f).list).toEqual([]);
    vol.unmount();
    // The committed unlink (and s_last_orphan with it) is in the log the next mount replays.
    expect(dumpe2fsFields(img).get("Filesystem features")).toMatch(/needs_recovery/);
    const v2 = mount(img);
    expect(fsOf(v2).recovery?.mode).toBe("disk");
    expect(v2.existsSync("/f1")).toBe(false);
    expect(fsOf(v2).orphans).toMatchObject({ deleted: 1 });
    v2.unmount();
    fsckClean(img);
    expect(freeCounts(img)).toEqual({ blocks: before.blocks + 5, inodes: before.inodes + 1 });
  });
});
