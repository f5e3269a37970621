// errors= handling (ext4-error.ts, the kernel's __ext4_error +
// ext4_handle_error): corruption met while writing is recorded in the
// superblock (dumpe2fs -h reads it back), and then errors=remount-ro aborts
// the journal and turns the volume read-only (later writes EROFS, reads go
// on, nothing after the last commit reaches the disk), errors=continue fails
// only the operation, errors=panic throws a fatal Ext4Panic. Without errors=
// the superblock's s_errors decides, as in the kernel. The kernel, given the
// same damaged group, records the same function in the same fields.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount } from "../host/index.js";
import { Ext4Error } from "../host/errors.js";
import type { Ext4 } from "../host/fs/super.js";
import { Ext4Panic, errorBehavior } from "../host/fs/ext4-error.js";
import { newInode } from "../host/fs/ialloc.js";
import { setInodeSize } from "../host/fs/inode.js";
import { markInodeDirty } from "../host/fs/inode-write.js";
import { ext4MapBlocks, GET_BLOCKS } from "../host/fs/map-blocks.js";
import { freeBlocks, newBlocks } from "../host/fs/mballoc.js";
import { addEntry, addEntryCredits } from "../host/fs/namei.js";
import { FT } from "../host/format/dirent.js";
import { S_IFREG } from "../host/format/inode.js";
import { missingTools, runSync } from "./helpers/exec.js";
import { dumpe2fsFields, fsckClean, fsOf, mkfsImage, ourReplay } from "./helpers/jbd2.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "debugfs", "dumpe2fs"], "e2fsprogs");
if (missing) console.log(`ext4-error: skipped: ${missing}`);
const d = missing ? describe.skip : describe;

let work: string;
let tree: string;
beforeAll(() => {
  if (missing) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-errors-"));
  tree = path.join(work, "tree");
  fs.mkdirSync(tree, { recursive: true });
  for (let i = 1; i <= 8; i++) fs.writeFileSync(path.join(tree, `f${i}`), `file ${i}\n`.repeat(100 * i));
});
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

const enc = (s: string) => new TextEncoder().encode(s);
function thrown(fn: () => unknown): Ext4Error {
  try { fn(); } catch (e) { if (e instanceof Ext4Error) return e; throw e; }
  throw new Error("expected an Ext4Error");
}

/** A file of `blocks` blocks named `name` in the root, in one handle. */
function writeFile(f: Ext4, name: string, blocks: number): number {
  const root = f.iget(2);
  const h = f.startHandle(addEntryCredits(f) + 16);
  try {
    const file = newInode(h, f, root, S_IFREG | 0o644);
    const m = ext4MapBlocks(h, f, file, { lblk: 0, len: blocks }, GET_BLOCKS.CREATE);
    f.device.write(m.pblk * f.sb.blockSize, new Uint8Array(m.len * f.sb.blockSize).fill(0x5a));
    setInodeSize(file, m.len * f.sb.blockSize);
    markInodeDirty(h, f, file);
    addEntry(h, f, root, enc(name), file.ino, FT.REG);
    const ino = file.ino;
    f.iput(file);
    return ino;
  } finally {
    h.stop();
    f.iput(root);
  }
}

/** A free data block near the end of the filesystem (the tree is small). */
function freeBlock(f: Ext4): number {
  const h = f.startHandle(8);
  try {
    // Found by the allocator itself, then given back, so it is free on disk once committed.
    const r = newBlocks(h, f, { goal: f.sb.blocksCount - 64, len: 1 });
    freeBlocks(h, f, undefined, r.pblk, 1, { writebackData: true });
    return r.pblk;
  } finally {
    h.stop();
  }
}

/** Freeing an already free block (mb_free_blocks' "freeing already freed block"), inside an operation that also changed an inode. */
function doubleFree(f: Ext4, victimIno: number, pblk: number): Ext4Error {
  const h = f.startHandle(8);
  try {
    const v = f.iget(victimIno);
    v.uid = 4242; // a change in the same transaction: it must never reach the disk under remount-ro
    markInodeDirty(h, f, v);
    f.iput(v);
    return thrown(() => freeBlocks(h, f, undefined, pblk, 1));
  } finally {
    h.stop();
  }
}

/** Group g's descriptor claims `free` free blocks (its checksum kept valid), whatever its bitmap says. */
function damageGroupFree(img: string, g: number, free: number): void {
  runSync("debugfs", ["-w", "-n", "-f", "-", img], { input: `set_bg ${g} free_blocks_count ${free}\nset_bg ${g} checksum calc\n` });
}

/** e2fsck -fn finds the descriptor's wrong free count and nothing else. */
function fsckDamageOnly(img: string): void {
  const r = runSync("e2fsck", ["-fn", img], { okCodes: [0, 1, 2, 4, 8, 12] });
  const problems = r.stdout.split("\n").filter((l) => l && !/^Pass \d|^e2fsck|^\S+: \d+\/\d+ files|WARNING: Filesystem still has errors|^Fix\? no$|^$/.test(l));
  expect(problems.every((l) => /Free blocks count wrong for group #0|^Free blocks count wrong \(/.test(l)), r.stdout).toBe(true);
}

function uidOf(img: string, p: string): number {
  const out = runSync("debugfs", ["-R", `stat ${p}`, img]).stdout;
  return Number(/User:\s+(\d+)/.exec(out)![1]);
}

d("errors= handling", () => {
  it("remount-ro: recorded, journal aborted (the last commit is what lands), read-only afterwards (EROFS), reads go on", () => {
    const img = mkfsImage(work, "remount-ro", tree, []);
    const vol = mount(img, { mountOptions: "errors=remount-ro" });
    let committed = 0;
    try {
      const f = fsOf(vol);
      committed = writeFile(f, "committed", 4);
      const pblk = freeBlock(f);
      f.commit();
      const e = doubleFree(f, committed, pblk);
      expect(e.code).toBe("EFSCORRUPTED");
      expect(f.readOnly).toBe(true);
      expect(f.journal?.aborted).toBeDefined();
      expect(thrown(() => f.startHandle(1)).code).toBe("EROFS");
      expect(thrown(() => writeFile(f, "later", 1)).code).toBe("EROFS");
      expect(vol.statSync("/committed").size).toBe(4 * f.sb.blockSize);
      expect(vol.readFileSync("/f3").toString()).toBe("file 3\n".repeat(300));
      expect(f.warnings).toContain("EXT4-fs: Remounting filesystem read-only");
    } finally {
      vol.unmount();
    }
    const sb = dumpe2fsFields(img);
    expect(sb.get("Filesystem state")).toBe("clean with errors");
    expect(sb.get("FS Error count")).toBe("1");
    expect(sb.get("First error function")).toBe("mb_free_blocks");
    expect(sb.get("Last error function")).toBe("mb_free_blocks");
    expect(sb.get("First error err")).toBe("EFSCORRUPTED");
    expect(sb.get("Filesystem features")).toMatch(/needs_recovery/);
    // The next mount replays what was committed, and only that.
    ourReplay(img);
    fsckClean(img);
    expect(uidOf(img, "/committed")).toBe(0);
    expect(dumpe2fsFields(img).get("Filesystem state")).toBe("clean with errors");
  });

  it("continue: recorded, the operation fails, the volume stays writable; a clean unmount keeps ERROR_FS", () => {
    // 1k blocks: several groups, so the group the double free marks corrupt is not the only one.
    const img = mkfsImage(work, "continue", tree, ["-b", "1024"]);
    const vol = mount(img, { mountOptions: "errors=continue" });
    try {
      const f = fsOf(vol);
      const ino = writeFile(f, "a", 2);
      const pblk = freeBlock(f);
      f.commit();
      expect(doubleFree(f, ino, pblk).code).toBe("EFSCORRUPTED");
      expect(f.readOnly).toBe(false);
      writeFile(f, "b", 2);
    } finally {
      vol.unmount();
    }
    fsckClean(img);
    const sb = dumpe2fsFields(img);
    expect(sb.get("Filesystem state")).toBe("clean with errors");
    expect(sb.get("FS Error count")).toBe("1");
    expect(sb.get("Filesystem features")).not.toMatch(/needs_recovery/);
    const v = mount(img, { readOnly: true });
    try { expect(v.statSync("/b").size).toBeGreaterThan(0); } finally { v.unmount(); }
  });

  it("panic: a fatal Ext4Panic after the record; the volume read-only", () => {
    const img = mkfsImage(work, "panic", tree, []);
    const vol = mount(img, { mountOptions: "errors=panic" });
    try {
      const f = fsOf(vol);
      const ino = writeFile(f, "a", 1);
      const pblk = freeBlock(f);
      f.commit();
      const e = doubleFree(f, ino, pblk);
      expect(e).toBeInstanceOf(Ext4Panic);
      expect((e as Ext4Panic).fatal).toBe(true);
      expect(e.code).toBe("EFSCORRUPTED");
      expect(f.readOnly).toBe(true);
    } finally {
      vol.unmount();
    }
    expect(dumpe2fsFields(img).get("FS Error count")).toBe("1");
  });

  it("without errors=: remount-ro, or panic where s_errors says so (s_errors continue is not taken: errors=continue must be asked for)", () => {
    for (const [arg, want] of [["continue", "remount-ro"], ["remount-ro", "remount-ro"], ["panic", "panic"]] as const) {
      const img = mkfsImage(work, `default-${arg}`, tree, ["-e", arg]);
      const vol = mount(img);
      try {
        expect(errorBehavior(fsOf(vol))).toBe(want);
      } finally {
        vol.unmount();
      }
      const over = mount(img, { mountOptions: "errors=continue" });
      try { expect(errorBehavior(fsOf(over))).toBe("continue"); } finally { over.unmount(); }
    }
  });

  it("no journal, remount-ro: what was not synced is dropped, never written; the record is", () => {
    const img = mkfsImage(work, "nojournal", tree, ["-O", "^has_journal"]);
    const vol = mount(img, { mountOptions: "errors=remount-ro" });
    try {
      const f = fsOf(vol);
      writeFile(f, "synced", 2);
      const pblk = freeBlock(f);
      f.sync();
      writeFile(f, "unsynced", 2);
      expect(doubleFree(f, vol.statSync("/synced").ino, pblk).code).toBe("EFSCORRUPTED");
      expect(f.readOnly).toBe(true);
    } finally {
      vol.unmount();
    }
    // Unmounted without the clean state: e2fsck sees a filesystem not cleanly unmounted, but nothing wrong in it.
    fsckClean(img);
    const v = mount(img, { readOnly: true });
    try {
      expect(v.existsSync("/synced")).toBe(true);
      expect(v.existsSync("/unsynced")).toBe(false);
    } finally {
      v.unmount();
    }
    expect(dumpe2fsFields(img).get("FS Error count")).toBe("1");
  });

  it("a group whose bitmap disagrees with its free count: never allocated from; continue allocates elsewhere, remount-ro fails the allocation", () => {
    for (const mode of ["continue", "remount-ro"] as const) {
      const img = mkfsImage(work, `badgroup-${mode}`, tree, ["-b", "1024"], "24M");
      // Group 1's descriptor claims fewer free blocks than its bitmap shows.
      damageGroupFree(img, 1, 17);
      const vol = mount(img, { mountOptions: `errors=${mode}` });
      try {
        const f = fsOf(vol);
        const goal = f.sb.firstDataBlock + f.sb.blocksPerGroup + 100;
        const h = f.startHandle(8);
        let got: number | undefined;
        let err: Ext4Error | undefined;
        try {
          got = newBlocks(h, f, { goal, len: 1 }).pblk;
        } catch (e) {
          err = e as Ext4Error;
        } finally {
          h.stop();
        }
        if (mode === "continue") {
          expect(err).toBeUndefined();
          expect(Math.floor((got! - f.sb.firstDataBlock) / f.sb.blocksPerGroup)).not.toBe(1);
          expect(f.readOnly).toBe(false);
        } else {
          expect(err?.code).toBe("EFSCORRUPTED");
          expect(f.readOnly).toBe(true);
        }
      } finally {
        vol.unmount();
      }
      const sb = dumpe2fsFields(img);
      expect(sb.get("FS Error count")).toBe("1");
      expect(sb.get("First error function")).toBe("ext4_mb_generate_buddy");
    }
  });

  it("a free inode-bitmap bit over a live inode: an ext4_error, never an overwritten file", () => {
    const img = mkfsImage(work, "live-inode", tree, []);
    runSync("debugfs", ["-w", "-R", "freei /f1", img]);
    const vol = mount(img, { mountOptions: "errors=remount-ro" });
    try {
      const f = fsOf(vol);
      const e = thrown(() => writeFile(f, "new", 1));
      expect(e.code).toBe("EFSCORRUPTED");
      expect(e.message).toMatch(/in use but free in the inode bitmap/);
      expect(f.readOnly).toBe(true);
    } finally {
      vol.unmount();
    }
    expect(dumpe2fsFields(img).get("First error function")).toBe("__ext4_new_inode");
    const v = mount(img, { readOnly: true });
    try { expect(v.readFileSync("/f1").toString()).toBe("file 1\n".repeat(100)); } finally { v.unmount(); }
  });

  it("a directory whose block 0 is a hole takes no entries (no block without \".\" is made)", () => {
    const img = mkfsImage(work, "dir-hole", tree, []);
    runSync("debugfs", ["-w", "-f", "-", img], { input: "mkdir d\npunch d 0 0\nsif d size 4096\n" });
    const vol = mount(img, { mountOptions: "errors=continue" });
    try {
      const f = fsOf(vol);
      const d = f.iget(vol.statSync("/d").ino);
      const h = f.startHandle(addEntryCredits(f));
      try {
        expect(thrown(() => addEntry(h, f, d, enc("x"), 12, FT.REG)).code).toBe("EFSCORRUPTED");
      } finally {
        h.stop();
        f.iput(d);
      }
      expect(f.readOnly).toBe(false);
    } finally {
      vol.unmount();
    }
    expect(dumpe2fsFields(img).get("First error function")).toBe("ext4_add_entry");
  });

  it("the kernel records the same damaged group in the same fields", () => {
    const loop = loopMountSupport();
    if (!loop.ok) { console.log(`ext4-error: kernel comparison skipped: ${loop.reason}`); return; }
    const img = mkfsImage(work, "badgroup-kernel", tree, ["-b", "1024"], "24M");
    // Group 0 (where both allocators start for a file in the root) claims 50 more free blocks than its bitmap has.
    const v0 = mount(img, { readOnly: true });
    const free0 = fsOf(v0).groups[0].freeBlocks;
    v0.unmount();
    damageGroupFree(img, 0, free0 + 50);
    const kimg = `${img}.kernel`;
    fs.copyFileSync(img, kimg);
    withLoopMountSync(kimg, (mnt) => {
      fs.writeFileSync(path.join(mnt, "small"), Buffer.alloc(100 << 10, 0x61));
      runSync("sync", ["-f", mnt]);
    }, { options: "errors=continue" });
    const k = dumpe2fsFields(kimg);
    expect(k.get("First error function")).toBe("ext4_mb_generate_buddy");
    const vol = mount(img, { mountOptions: "errors=continue" });
    try {
      // An allocation that starts in group 0, as the kernel's did; given back in the same handle.
      const f = fsOf(vol);
      const h = f.startHandle(8);
      try {
        const r = newBlocks(h, f, { goal: f.sb.firstDataBlock + 1000, len: 100 });
        freeBlocks(h, f, undefined, r.pblk, r.len, { writebackData: true });
      } finally {
        h.stop();
      }
    } finally {
      vol.unmount();
    }
    fsckDamageOnly(img);
    const ours = dumpe2fsFields(img);
    for (const field of ["Filesystem state", "FS Error count", "First error function", "First error inode #", "First error block #", "First error err", "Last error function"]) {
      expect(ours.get(field), field).toBe(k.get(field));
    }
  });
});
