// The read-write half of the robustness suites: a damaged image mounted
// read-write and written to through the fs layer (ops composed as
// tests/write-e2e.test.ts composes them: newInode, addEntry, ext4MapBlocks,
// deleteEntry, extRemoveSpace, freeInode, setxattr), each step's outcome
// classified (a typed Ext4Error, or a bug). Runs in the robustness worker
// (robust-worker.ts), so a hang is cut off; the image bytes after unmount come
// back for e2fsck and dumpe2fs.

import { Ext4Error, MemoryDevice, mount, type Volume } from "../../host/index.js";
import type { Ext4 } from "../../host/fs/super.js";
import { newInode, freeInode } from "../../host/fs/ialloc.js";
import { type Ext4Inode, setInodeSize } from "../../host/fs/inode.js";
import { markInodeDirty } from "../../host/fs/inode-write.js";
import { ext4MapBlocks, GET_BLOCKS } from "../../host/fs/map-blocks.js";
import { addEntry, addEntryCredits, checkNewName, deleteEntry, deleteEntryCredits } from "../../host/fs/namei.js";
import { holdsEaInodeRefs } from "../../host/fs/write-gate.js";
import { inodeXattrs } from "../../host/fs/xattr.js";
import { extRemoveSpace } from "../../host/fs/extents-write.js";
import { indRemoveSpace } from "../../host/fs/indirect-write.js";
import { xattrDeleteInode } from "../../host/fs/xattr-write.js";
import { FT } from "../../host/format/dirent.js";
import { INODE_FLAGS, isDir, isReg, S_IFREG } from "../../host/format/inode.js";
import { classify as classifyWalk, type Outcome } from "./robust-walk.js";

/** As the walk classifies, with the worker bundle's data: URL cut out of stack frames. */
function classify(e: unknown): Outcome {
  const c = classifyWalk(e);
  return "bug" in c ? { bug: c.bug.replace(/data:text\/javascript;base64,[A-Za-z0-9+/=]+/g, "<worker>") } : c;
}

export interface WriteJob {
  kind: "write";
  image: Uint8Array;
  mountOptions: string;
}

export interface WriteStep { op: string; code?: string }

export interface WriteResult {
  kind: "write";
  mounted: boolean;
  mountError?: string;
  steps: WriteStep[];
  /** Foreign exceptions and retyped bounds failures: each one is a bug. */
  bugs: string[];
  /** The volume turned read-only during the workload (errors=remount-ro). */
  turnedReadOnly: boolean;
  /** The code a write got after the volume turned read-only. */
  afterCode?: string;
  warnings: string[];
  /** The image after unmount. */
  image: Uint8Array;
}

const enc = (s: string) => new TextEncoder().encode(s);
const fsOf = (vol: Volume) => (vol as unknown as { fs: Ext4 }).fs;

/** Up to `n` entries of `dir` (by path) with their inode numbers, damage tolerated. */
function entries(vol: Volume, dir: string, n: number): { path: string; ino: number }[] {
  try {
    return vol.readdirSync(dir).slice(0, 64).map((name) => {
      const p = `${dir === "/" ? "" : dir}/${name}`;
      try { return { path: p, ino: vol.lstatSync(p).ino }; } catch { return undefined; }
    }).filter((e): e is { path: string; ino: number } => e !== undefined && e.path !== "/lost+found").slice(0, n);
  } catch {
    return [];
  }
}

/** A new regular file of `blocks` data blocks named `name` in directory inode `dirIno`. */
function createFile(f: Ext4, dirIno: number, name: string, blocks: number): void {
  const dir = f.iget(dirIno);
  const h = f.startHandle(addEntryCredits(f) + 32);
  let file: Ext4Inode | undefined;
  let linked = false;
  try {
    // As ext4_create: the name is checked before an inode is taken, and an inode that gets no name is freed again.
    checkNewName(f, dir, enc(name));
    file = newInode(h, f, dir, S_IFREG | 0o644);
    if (blocks > 0 && file.flags & INODE_FLAGS.EXTENTS) {
      const m = ext4MapBlocks(h, f, file, { lblk: 0, len: blocks }, GET_BLOCKS.CREATE);
      f.device.write(m.pblk * f.sb.blockSize, new Uint8Array(m.len * f.sb.blockSize).fill(0x47));
      setInodeSize(file, m.len * f.sb.blockSize);
      markInodeDirty(h, f, file);
    }
    addEntry(h, f, dir, enc(name), file.ino, FT.REG);
    linked = true;
  } finally {
    if (file && !linked && !f.readOnly) {
      try {
        file.linksCount = 0;
        if (file.flags & INODE_FLAGS.EXTENTS) extRemoveSpace(h, f, file, 0, 0xfffffffe);
        setInodeSize(file, 0);
        freeInode(h, f, file);
        file = undefined;
      } catch { /* the first error is the one reported */ }
    }
    h.stop();
    if (file) f.iput(file);
    f.iput(dir);
  }
}

/** Appends `blocks` blocks to regular file `ino` (through its extent tree or indirect blocks). */
function extendFile(f: Ext4, ino: number, blocks: number): void {
  const inode = f.iget(ino);
  const h = f.startHandle(64);
  try {
    if (!isReg(inode) || inode.flags & INODE_FLAGS.INLINE_DATA) return;
    const bs = f.sb.blockSize;
    const lblk = Math.ceil(inode.size / bs);
    const m = ext4MapBlocks(h, f, inode, { lblk, len: blocks }, GET_BLOCKS.CREATE);
    f.device.write(m.pblk * bs, new Uint8Array(m.len * bs).fill(0x48));
    setInodeSize(inode, (lblk + m.len) * bs);
    markInodeDirty(h, f, inode);
  } finally {
    h.stop();
    f.iput(inode);
  }
}

/** unlink + evict of a regular file with one link: its entry, blocks, xattr block and inode freed. */
function removeFile(f: Ext4, dirIno: number, name: string, ino: number): void {
  const dir = f.iget(dirIno);
  const inode = f.iget(ino);
  const h = f.startHandle(deleteEntryCredits(f) + 64);
  let freed = false;
  try {
    if (!isReg(inode) || inode.linksCount !== 1) return;
    // What eviction will need is checked before the name goes (as unlink with the orphan list would make safe).
    if (holdsEaInodeRefs(f, inode)) throw new Ext4Error("EOPNOTSUPP", "the inode holds ea_inode references", { ino });
    inodeXattrs(f, inode);
    deleteEntry(h, f, dir, enc(name));
    inode.linksCount = 0;
    markInodeDirty(h, f, inode);
    if (!(inode.flags & INODE_FLAGS.INLINE_DATA)) {
      if (inode.flags & INODE_FLAGS.EXTENTS) extRemoveSpace(h, f, inode, 0, 0xfffffffe);
      else indRemoveSpace(h, f, inode, 0, 0xffffffff);
    }
    setInodeSize(inode, 0);
    xattrDeleteInode(h, f, inode);
    freeInode(h, f, inode);
    freed = true;
  } finally {
    h.stop();
    // freeInode takes the in-core inode and its reference with it.
    if (!freed) f.iput(inode);
    f.iput(dir);
  }
}

export function writeWorkload(job: WriteJob): WriteResult {
  const out: WriteResult = { kind: "write", mounted: false, steps: [], bugs: [], turnedReadOnly: false, warnings: [], image: job.image };
  const device = new MemoryDevice(job.image);
  let vol: Volume;
  try {
    vol = mount(device, { mountOptions: job.mountOptions });
  } catch (e) {
    const c = classify(e);
    if ("bug" in c) out.bugs.push(`mount: ${c.bug}`);
    else out.mountError = c.code;
    return out;
  }
  out.mounted = true;
  const f = fsOf(vol);
  const step = (op: string, fn: () => void) => {
    try {
      fn();
      out.steps.push({ op });
    } catch (e) {
      const c = classify(e);
      if ("bug" in c) out.bugs.push(`${op}: ${c.bug}`);
      out.steps.push({ op, code: "bug" in c ? "BUG" : c.code });
    }
  };
  try {
    const top = entries(vol, "/", 40);
    const dirs = top.filter((e) => { try { return isDir(f.inode(e.ino)); } catch { return false; } }).slice(0, 3);
    const files = top.filter((e) => { try { return isReg(f.inode(e.ino)); } catch { return false; } });
    step("create /gate-new (8 blocks)", () => createFile(f, 2, "gate-new", 8));
    for (const d of dirs) step(`create in ${d.path}`, () => createFile(f, d.ino, "gate-entry", 1));
    for (const e of files.slice(0, 2)) step(`extend ${e.path}`, () => extendFile(f, e.ino, 4));
    for (const e of files.slice(2, 5)) step(`unlink ${e.path}`, () => removeFile(f, 2, e.path.slice(1), e.ino));
    for (const d of dirs.slice(0, 2)) {
      for (const e of entries(vol, d.path, 2)) {
        step(`unlink ${e.path}`, () => removeFile(f, d.ino, e.path.slice(d.path.length + 1), e.ino));
      }
    }
    if (files[0]) step(`setxattr ${files[0].path}`, () => vol.setxattr(files[0].path, "user.gate", new Uint8Array(300).fill(0x61)));
    step("sync", () => f.sync());
    out.turnedReadOnly = f.readOnly;
    if (f.readOnly) {
      try { createFile(f, 2, "gate-after", 1); out.afterCode = "none"; } catch (e) { const c = classify(e); out.afterCode = "bug" in c ? "BUG" : c.code; }
    }
  } finally {
    out.warnings = f.warnings.slice(0, 20);
    try {
      vol.unmount();
    } catch (e) {
      const c = classify(e);
      out.bugs.push(`unmount: ${"bug" in c ? c.bug : `${c.code} ${(e as Ext4Error).message}`}`);
    }
  }
  out.image = device.bytes;
  return out;
}
