// The read-write mount lifecycle: what a read-write mount changes in the
// superblock (compared field by field with the kernel's own mount and
// unmount of the same image), needs_recovery while mounted, the clean state
// at unmount, and the images a read-write mount refuses.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount } from "../host/index.js";
import { INCOMPAT } from "../host/format/features.js";
import { markInodeDirty } from "../host/fs/inode-write.js";
import { missingTools, runSync } from "./helpers/exec.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";
import { dumpe2fsFields, fsckClean, fsOf, makeTree, mkfsImage } from "./helpers/jbd2.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "debugfs", "dumpe2fs"], "e2fsprogs");
if (missing) console.log(`jbd2-lifecycle: skipped: ${missing}`);
const d = missing ? describe.skip : describe;

let work: string;
let tree: string;
beforeAll(() => {
  if (missing) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-jbd2-life-"));
  tree = makeTree(work, 20);
});
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

function incompatOnDisk(img: string): number {
  const b = Buffer.alloc(4);
  const fd = fs.openSync(img, "r");
  try { fs.readSync(fd, b, 0, 4, 1024 + 0x60); } finally { fs.closeSync(fd); }
  return b.readUInt32LE(0);
}

function changedFields(before: Map<string, string>, after: Map<string, string>): string[] {
  const keys = new Set([...before.keys(), ...after.keys()]);
  return [...keys].filter((k) => before.get(k) !== after.get(k)).sort();
}

d("read-write mount lifecycle", () => {
  it.each([
    ["4k", []],
    ["1k-nocsum-32bit", ["-b", "1024", "-O", "^metadata_csum,^64bit"]],
    ["no-journal", ["-O", "^has_journal"]],
  ])("%s: mount and unmount with no changes: e2fsck-clean, and the superblock changes as the kernel's do", (name, args) => {
    const img = mkfsImage(work, `noop-${name}`, tree, args);
    const kimg = path.join(work, `noop-${name}-kernel.img`);
    fs.copyFileSync(img, kimg);
    const before = dumpe2fsFields(img);
    mount(img).unmount();
    fsckClean(img);
    const ours = dumpe2fsFields(img);
    const changed = changedFields(before, ours);
    const expected = ["Checksum", "Last mount time", "Last write time", "Lifetime writes", "Mount count"].filter((k) => before.has(k) || k !== "Checksum");
    expect(changed.filter((k) => k !== "Checksum" || before.has("Checksum"))).toEqual(expected.filter((k) => k !== "Checksum" || before.has("Checksum")));
    expect(ours.get("Mount count")).toBe(String(Number(before.get("Mount count")) + 1));
    expect(ours.get("Filesystem state")).toBe("clean");
    // No transaction ran: the journal superblock is untouched, as the kernel leaves it (JBD2_FLUSHED).
    expect(ours.get("Journal sequence")).toBe(before.get("Journal sequence"));
    const s = loopMountSupport();
    if (!s.ok) { console.log(`jbd2-lifecycle: kernel comparison skipped: ${s.reason}`); return; }
    withLoopMountSync(kimg, () => undefined, { options: "noatime" });
    const kernel = dumpe2fsFields(kimg);
    expect(changedFields(before, kernel)).toEqual(changed);
    for (const k of ["Mount count", "Filesystem state", "Filesystem features", "Journal sequence", "Journal start", "Journal features", "Lifetime writes"]) {
      expect(ours.get(k), k).toBe(kernel.get(k));
    }
  });

  it("needs_recovery is on the device while mounted read-write with a journal and cleared by the unmount", () => {
    const img = mkfsImage(work, "recover-flag", tree, []);
    expect(incompatOnDisk(img) & INCOMPAT.RECOVER).toBe(0);
    const vol = mount(img);
    try {
      expect(incompatOnDisk(img) & INCOMPAT.RECOVER).toBe(INCOMPAT.RECOVER);
      const f = fsOf(vol);
      const h = f.startHandle(2);
      expect(h.journaled).toBe(true);
      const inode = f.inode(vol.statSync("/f1").ino);
      inode.uid = 4242;
      markInodeDirty(h, f, inode);
      h.stop();
    } finally {
      vol.unmount();
    }
    expect(incompatOnDisk(img) & INCOMPAT.RECOVER).toBe(0);
    fsckClean(img);
    expect(runSync("debugfs", ["-R", "stat /f1", img]).stdout).toMatch(/User:\s+4242/);
    const f = dumpe2fsFields(img);
    expect(f.get("Journal start")).toBe("0");
    expect(f.get("Journal features")).toBe("journal_64bit journal_checksum_v3");
  });

  it("one change and an unmount leave the journal superblock as the kernel's chown and unmount do", () => {
    const s = loopMountSupport();
    if (!s.ok) { console.log(`jbd2-lifecycle: kernel comparison skipped: ${s.reason}`); return; }
    const img = mkfsImage(work, "one-change", tree, []);
    const kimg = path.join(work, "one-change-kernel.img");
    fs.copyFileSync(img, kimg);
    const vol = mount(img);
    try {
      const f = fsOf(vol);
      const h = f.startHandle(1);
      const inode = f.inode(vol.statSync("/f3").ino);
      inode.uid = 77;
      markInodeDirty(h, f, inode);
      h.stop();
    } finally {
      vol.unmount();
    }
    withLoopMountSync(kimg, (mnt) => fs.chownSync(path.join(mnt, "f3"), 77, 0), { options: "noatime" });
    const jsb = (file: string) => {
      const jb = Number(/\d+/.exec(runSync("debugfs", ["-R", "bmap <8> 0", file]).stdout)![0]);
      const b = Buffer.alloc(1024);
      const fd = fs.openSync(file, "r");
      try { fs.readSync(fd, b, 0, 1024, jb * 4096); } finally { fs.closeSync(fd); }
      return { sequence: b.readUInt32BE(0x18), start: b.readUInt32BE(0x1c), head: b.readUInt32BE(0x58), compat: b.readUInt32BE(0x24), incompat: b.readUInt32BE(0x28), csumType: b[0x50] };
    };
    expect(jsb(img)).toEqual(jsb(kimg));
    fsckClean(img);
    fsckClean(kimg);
  });

  it("a log left without needs_recovery is ignored, as the kernel ignores it (jbd2_journal_wipe)", () => {
    const img = mkfsImage(work, "wipe", tree, []);
    const vol = mount(img);
    const crash = path.join(work, "wipe-crash.img");
    try {
      const f = fsOf(vol);
      const h = f.startHandle(2);
      const inode = f.inode(vol.statSync("/f4").ino);
      inode.uid = 99;
      markInodeDirty(h, f, inode);
      h.stop();
      f.commit();
      fs.copyFileSync(img, crash);
    } finally {
      vol.unmount();
    }
    runSync("debugfs", ["-w", "-R", "feature ^needs_recovery", crash]);
    const kimg = path.join(work, "wipe-kernel.img");
    fs.copyFileSync(crash, kimg);
    const v2 = mount(crash);
    try {
      expect(fsOf(v2).warnings.join(" ")).toMatch(/ignoring recovery information/);
      expect(v2.statSync("/f4").uid).toBe(0);
    } finally {
      v2.unmount();
    }
    fsckClean(crash);
    expect(runSync("debugfs", ["-R", "stat /f4", crash]).stdout).toMatch(/User:\s+0 /);
    const s = loopMountSupport();
    if (!s.ok) { console.log(`jbd2-lifecycle: kernel comparison skipped: ${s.reason}`); return; }
    withLoopMountSync(kimg, (mnt) => expect(fs.statSync(path.join(mnt, "f4")).uid).toBe(0), { options: "noatime" });
    fsckClean(kimg);
  });

  it("the superblock written by commitSuper and a cached copy of its block never disagree (one copy, as s_sbh)", () => {
    const img = mkfsImage(work, "sb-cache", tree, []);
    const vol = mount(img);
    try {
      const f = fsOf(vol);
      const cached = f.bcache.readCopy(0);
      f.sb.freeInodesCount -= 0; // unchanged counts, new write time
      f.commitSuper();
      const disk = Buffer.alloc(4096);
      const fd = fs.openSync(img, "r");
      try { fs.readSync(fd, disk, 0, 4096, 0); } finally { fs.closeSync(fd); }
      expect(Buffer.from(f.bcache.readCopy(0)).equals(disk)).toBe(true);
      expect(cached.length).toBe(4096);
    } finally {
      vol.unmount();
    }
  });

  it("without a journal, VALID_FS is cleared while mounted and put back at unmount (ext4_setup_super)", () => {
    const img = mkfsImage(work, "state-nojournal", tree, ["-O", "^has_journal"]);
    const vol = mount(img);
    try {
      expect(dumpe2fsFields(img).get("Filesystem state")).toBe("not clean");
    } finally {
      vol.unmount();
    }
    expect(dumpe2fsFields(img).get("Filesystem state")).toBe("clean");
    fsckClean(img);
  });

  it("refuses read-write mounts of mmp images (EOPNOTSUPP) and writes nothing; read-only works (fast_commit: tests/fast-commit.test.ts)", () => {
    for (const feat of ["mmp"]) {
      const img = mkfsImage(work, `refuse-${feat}`, tree, ["-O", feat]);
      const bytes = fs.readFileSync(img);
      expect(() => mount(img)).toThrow(expect.objectContaining({ code: "EOPNOTSUPP" }));
      mount(img, { readOnly: true }).unmount();
      expect(fs.readFileSync(img).equals(bytes)).toBe(true);
    }
  });

  it("noload read-write: allowed on a clean journal (metadata written in place), refused (EINVAL) when recovery is needed", () => {
    const img = mkfsImage(work, "noload", tree, []);
    const vol = mount(img, { mountOptions: "noload" });
    try {
      const f = fsOf(vol);
      expect(f.journal).toBeUndefined();
      expect(f.startHandle(1).journaled).toBe(false);
      expect(incompatOnDisk(img) & INCOMPAT.RECOVER).toBe(0);
    } finally {
      vol.unmount();
    }
    fsckClean(img);
    // A crash copy: committed but never checkpointed.
    const vol2 = mount(img);
    const crash = path.join(work, "noload-crash.img");
    try {
      const f = fsOf(vol2);
      const h = f.startHandle(2);
      const inode = f.inode(vol2.statSync("/f2").ino);
      inode.uid = 77;
      markInodeDirty(h, f, inode);
      h.stop();
      f.commit();
      fs.copyFileSync(img, crash);
    } finally {
      vol2.unmount();
    }
    const bytes = fs.readFileSync(crash);
    expect(() => mount(crash, { mountOptions: "noload" })).toThrow(expect.objectContaining({ code: "EINVAL" }));
    expect(fs.readFileSync(crash).equals(bytes)).toBe(true);
    mount(crash, { readOnly: true, mountOptions: "noload" }).unmount();
  });
});
