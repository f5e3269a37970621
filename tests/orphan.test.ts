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
import type { Ext4Inode } from "../host/fs/inode.js";
import { markInodeDirty } from "../host/fs/inode-write.js";
import { deleteEntry } from "../host/fs/namei.js";
import { orphanAdd, orphanDel, orphanState } from "../host/fs/orphan.js";
import type { Ext4 } from "../host/fs/super.js";
import { missingTools, runSync } from "./helpers/exec.js";
import { dumpe2fsFields, fsckClean, fsOf, makeTree, mkfsImage, RecordingDevice } from "./helpers/jbd2.js";
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
];

/** Unlinks `name` from the root while it stays open (the dentry dropped, a reference kept): ext4_unlink's orphan step. */
function unlinkOpen(f: Ext4, name: string): Ext4Inode {
  const root = f.iget(2);
  const h = f.startHandle(24);
  try {
    const ino = deleteEntry(h, f, root, Buffer.from(name));
    const inode = f.iget(ino);
    inode.linksCount--;
    markInodeDirty(h, f, inode);
    if (inode.linksCount === 0) orphanAdd(h, f, inode);
    return inode;
  } finally {
    h.stop();
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
      const orphanFile = args.includes("orphan_file");
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
