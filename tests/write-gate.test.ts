// The write-feature gate: for each feature that a read-write mount cannot
// keep exact, an image made by mkfs.ext4 -O ... mounted read-write gives the
// documented result (docs/design.md, "The write-feature gate"), writes
// nothing when it refuses, and mounts read-only all the same. The per-inode
// half: casefolded directories take the names whose folding we know to be the
// kernel's (judged by e2fsck and a kernel lookup by another case), encrypted
// directories and files ENOKEY, verity files EPERM, ea_inode holders seen.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount } from "../host/index.js";
import { Ext4Error } from "../host/errors.js";
import type { Ext4 } from "../host/fs/super.js";
import { newInode } from "../host/fs/ialloc.js";
import { addEntry, addEntryCredits, checkNewName } from "../host/fs/namei.js";
import { checkContentWritable, holdsEaInodeRefs } from "../host/fs/write-gate.js";
import { FT } from "../host/format/dirent.js";
import { S_IFREG } from "../host/format/inode.js";
import { missingTools, runSync } from "./helpers/exec.js";
import { fsckClean, mkfsImage } from "./helpers/jbd2.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "debugfs"], "e2fsprogs");
if (missing) console.log(`write-gate: skipped: ${missing}`);
const d = missing ? describe.skip : describe;

let work: string;
let tree: string;
beforeAll(() => {
  if (missing) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-gate-"));
  tree = path.join(work, "tree");
  fs.mkdirSync(path.join(tree, "d"), { recursive: true });
  for (let i = 1; i <= 4; i++) fs.writeFileSync(path.join(tree, `f${i}`), `file ${i}\n`);
});
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

const enc = (s: string) => new TextEncoder().encode(s);
const fsOf = (vol: unknown) => (vol as { fs: Ext4 }).fs;
function codeOf(fn: () => unknown): string | undefined {
  try { fn(); } catch (e) { if (e instanceof Ext4Error) return e.code; throw e; }
  return undefined;
}
function debugfsW(img: string, ...reqs: string[]): void {
  for (const r of reqs) runSync("debugfs", ["-w", "-R", r, img]);
}

/** ext4_create's on-disk part: a new regular file named `name` in `dir` (by path). */
function create(f: Ext4, dirIno: number, name: string): number {
  const dir = f.iget(dirIno);
  const h = f.startHandle(addEntryCredits(f) + 8);
  try {
    checkNewName(f, dir, enc(name));
    const file = newInode(h, f, dir, S_IFREG | 0o644);
    addEntry(h, f, dir, enc(name), file.ino, FT.REG);
    const ino = file.ino;
    f.iput(file);
    return ino;
  } finally {
    h.stop();
    f.iput(dir);
  }
}

d("the write-feature gate, per filesystem", () => {
  it.each([
    ["quota", ["-O", "quota"], "", "EOPNOTSUPP"],
    ["project quota", ["-I", "256", "-O", "project"], "", "EOPNOTSUPP"],
    ["mmp", ["-O", "mmp"], "", "EOPNOTSUPP"],
    ["buffered_iomap (until issue 7)", [], "buffered_iomap", "EOPNOTSUPP"],
  ])("%s: read-write refused (%s %s -> %s), nothing written; read-only works", (name, args, opts, code) => {
    const img = mkfsImage(work, `refuse-${name.replace(/\W+/g, "-")}`, tree, args as string[]);
    const bytes = fs.readFileSync(img);
    const err = (() => { try { mount(img, { mountOptions: opts || undefined }); } catch (e) { return e as Ext4Error; } })();
    expect(err).toBeInstanceOf(Ext4Error);
    expect(err!.code).toBe(code);
    expect(err!.message).toMatch(/read-only/);
    mount(img, { readOnly: true, mountOptions: opts || undefined }).unmount();
    expect(fs.readFileSync(img).equals(bytes)).toBe(true);
  });

  it("unknown ro_compat bits: EROFS read-write, read-only works; an unknown casefold encoding: EOPNOTSUPP read-write", () => {
    const img = mkfsImage(work, "ro-unknown", tree, []);
    debugfsW(img, "feature FEATURE_R19");
    const bytes = fs.readFileSync(img);
    expect(codeOf(() => mount(img))).toBe("EROFS");
    mount(img, { readOnly: true }).unmount();
    expect(fs.readFileSync(img).equals(bytes)).toBe(true);

    const cf = mkfsImage(work, "cf-encoding", tree, ["-O", "casefold"]);
    debugfsW(cf, "ssv encoding 7");
    const cbytes = fs.readFileSync(cf);
    expect(codeOf(() => mount(cf))).toBe("EOPNOTSUPP");
    expect(fs.readFileSync(cf).equals(cbytes)).toBe(true);
  });

  it("an image whose superblock records errors mounts read-write with the kernel's warning", () => {
    const img = mkfsImage(work, "errors-state", tree, []);
    debugfsW(img, "ssv state 3");
    const vol = mount(img);
    try {
      expect(fsOf(vol).warnings).toContain("warning: mounting fs with errors, running e2fsck is recommended");
    } finally {
      vol.unmount();
    }
  });
});

d("the write-feature gate, per inode", () => {
  it("casefold: ASCII names are added (the kernel finds them by another case), others EOPNOTSUPP before anything changes", () => {
    const img = mkfsImage(work, "casefold", tree, ["-O", "casefold"]);
    debugfsW(img, "mkdir cf", "sif cf flags 0x40080000");
    const vol = mount(img);
    let ino = 0;
    try {
      const f = fsOf(vol);
      const cfIno = vol.statSync("/cf").ino;
      ino = create(f, cfIno, "Mixed.Case");
      expect(codeOf(() => checkNewName(f, f.inode(cfIno), enc("Fine.name")))).toBeUndefined();
      const free = f.sb.freeInodesCount;
      expect(codeOf(() => create(f, cfIno, "Grüße"))).toBe("EOPNOTSUPP");
      expect(f.sb.freeInodesCount).toBe(free);
      // Outside casefolded directories any name goes.
      create(f, 2, "Grüße");
      expect(vol.statSync("/cf/mixed.CASE").ino).toBe(ino);
    } finally {
      vol.unmount();
    }
    fsckClean(img);
    const loop = loopMountSupport();
    if (!loop.ok) { console.log(`write-gate: kernel casefold lookup skipped: ${loop.reason}`); return; }
    if (!fs.existsSync("/sys/fs/ext4/features/casefold")) {
      console.log("write-gate: kernel casefold lookup skipped: this kernel has no casefold support (CONFIG_UNICODE)");
      return;
    }
    withLoopMountSync(img, (mnt) => {
      expect(fs.statSync(path.join(mnt, "cf", "MIXED.CASE")).ino).toBe(ino);
    }, { options: "ro" });
  });

  it("encrypt: new names in an encrypted directory ENOKEY, content writes ENOKEY; the rest of the volume writable", () => {
    const img = mkfsImage(work, "encrypt", tree, ["-O", "encrypt"]);
    debugfsW(img, "mkdir enc", "sif enc flags 0x80800", "sif f1 flags 0x80800");
    const vol = mount(img);
    try {
      const f = fsOf(vol);
      expect(codeOf(() => create(f, vol.statSync("/enc").ino, "x"))).toBe("ENOKEY");
      expect(codeOf(() => checkContentWritable(f.inode(vol.statSync("/f1").ino), "write"))).toBe("ENOKEY");
      expect(codeOf(() => checkContentWritable(f.inode(vol.statSync("/f2").ino), "write"))).toBeUndefined();
      create(f, 2, "plain");
    } finally {
      vol.unmount();
    }
  });

  it("verity: a verity file's content is EPERM to change; the volume mounts read-write", () => {
    const img = mkfsImage(work, "verity", tree, ["-O", "verity"]);
    debugfsW(img, "sif f1 flags 0x180000");
    const vol = mount(img);
    try {
      const f = fsOf(vol);
      const e = (() => { try { checkContentWritable(f.inode(vol.statSync("/f1").ino), "open"); } catch (x) { return x as Ext4Error; } })();
      expect(e?.code).toBe("EPERM");
      expect(e?.syscall).toBe("open");
      expect(codeOf(() => checkContentWritable(f.inode(vol.statSync("/f2").ino)))).toBeUndefined();
    } finally {
      vol.unmount();
    }
  });

  it("ea_inode: mounts read-write; an inode holding a value in an inode of its own is seen before its last unlink", () => {
    const img = mkfsImage(work, "ea-inode", tree, ["-I", "256", "-O", "ea_inode"]);
    const value = path.join(work, "big-value");
    fs.writeFileSync(value, Buffer.alloc(5000, 0x61));
    debugfsW(img, `ea_set -f ${value} /f1 user.big`);
    const vol = mount(img);
    try {
      const f = fsOf(vol);
      expect(holdsEaInodeRefs(f, f.inode(vol.statSync("/f1").ino))).toBe(true);
      expect(holdsEaInodeRefs(f, f.inode(vol.statSync("/f2").ino))).toBe(false);
    } finally {
      vol.unmount();
    }
  });
});
