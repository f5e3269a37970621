// setattr (host/vfs/setattr.ts): the size change as truncate_up and
// truncate_down, and chmod / chown / utimes. Sizes are judged by e2fsck, our
// reader and the kernel, with the partial-block zeroing seen as the calls it
// makes on the buffered path; attributes by doing the same calls through the
// kernel on a copy of the image and comparing what debugfs reads in both
// (mode bits after the set-ID rules, owners, times to the nanosecond).

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Ext4Error, mount } from "../host/index.js";
import type { Volume } from "../host/index.js";
import type { BufferedIO } from "../host/buffered/io.js";
import { INODE_FLAGS } from "../host/format/inode.js";
import type { Ext4Inode } from "../host/fs/inode.js";
import type { Ext4 } from "../host/fs/super.js";
import { type Attrs, setattrAttrs, setattrSize, UTIME_NOW } from "../host/vfs/setattr.js";
import { missingTools, runSync } from "./helpers/exec.js";
import { mkfsEnv } from "./helpers/images.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "debugfs", "dumpe2fs"], "e2fsprogs");
if (missing) console.log(`setattr: skipped: ${missing}`);
const d = missing ? describe.skip : describe;
const loop = loopMountSupport();
if (!loop.ok) console.log(`setattr: kernel comparisons skipped: ${loop.reason}`);

let work: string;
beforeAll(() => { if (!missing) work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-setattr-")); });
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

const fsOf = (vol: Volume) => (vol as unknown as { fs: Ext4 }).fs;

function content(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 13 + seed + (i >> 9)) & 0xff;
  return b;
}

/** A buffered path that records the zeroing asked of it. */
function recordingIo(): { io: BufferedIO; zeroed: [number, number, number][] } {
  const zeroed: [number, number, number][] = [];
  const io = {
    name: "bh" as const,
    read(): number { throw new Error("not read here"); },
    zeroRange(inode: Ext4Inode, from: number, to: number) { zeroed.push([inode.ino, from, to]); },
  } as unknown as BufferedIO;
  return { io, zeroed };
}

function fsckClean(img: string, when: string): void {
  const r = runSync("e2fsck", ["-fn", img], { okCodes: [0, 1, 2, 4, 8, 12] });
  expect(r.code, `e2fsck after ${when}:\n${r.stdout}\n${r.stderr}`).toBe(0);
}

function freeBlocks(img: string): number {
  return Number(/^Free blocks:\s+(\d+)/m.exec(runSync("dumpe2fs", ["-h", img]).stdout)![1]);
}

function mkfs(name: string, tree: string, args: string[], size = "32M"): string {
  const img = path.join(work, `${name}.img`);
  const r = runSync("mkfs.ext4", ["-q", "-F", "-E", "hash_seed=1b2c3d4e-0000-4000-8000-000000000001", ...args, "-d", tree, img, size], { env: { ...mkfsEnv(work), E2FSPROGS_FAKE_TIME: "1700000000" } });
  expect(r.code, r.stderr).toBe(0);
  return img;
}

/** Runs fn with the inode of `p` held, on a read-write mount that is unmounted after. */
function withInode<T>(img: string, p: string, fn: (f: Ext4, inode: Ext4Inode, vol: Volume) => T, opts: { readOnly?: boolean } = {}): T {
  const vol = mount(img, opts);
  try {
    const f = fsOf(vol);
    const inode = f.iget(Number(vol.statSync(p).ino));
    try {
      return fn(f, inode, vol);
    } finally {
      f.iput(inode);
    }
  } finally {
    vol.unmount();
  }
}

function code(fn: () => void): string | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof Ext4Error) return e.code;
    throw e;
  }
  return undefined;
}

d("setattrSize", () => {
  it("4k journaled: truncate_down to block-aligned and unaligned sizes, truncate_up past EOF; zeroing asked for exactly the partial blocks; e2fsck clean, blocks freed, the kernel reads the bytes", () => {
    const tree = path.join(work, "size-tree");
    fs.mkdirSync(path.join(tree, "dd"), { recursive: true });
    const a = content(100 * 1024, 1);
    const b = content(10 * 1024, 2);
    fs.writeFileSync(path.join(tree, "a"), a);
    fs.writeFileSync(path.join(tree, "b"), b);
    const img = mkfs("size", tree, ["-b", "4096"]);
    const free0 = freeBlocks(img);
    const { io, zeroed } = recordingIo();

    // Down to a block boundary: no zeroing, 15 blocks freed.
    withInode(img, "/a", (f, inode) => setattrSize({ fs: f, io }, inode, 40960));
    expect(zeroed).toEqual([]);
    fsckClean(img, "a to 40960");
    expect(freeBlocks(img)).toBe(free0 + 15);

    // Up from an unaligned size: the old last block's tail [10240, 12288) is zeroed; no blocks.
    let ino = 0;
    withInode(img, "/b", (f, inode) => {
      ino = inode.ino;
      const mtime = inode.mtime;
      setattrSize({ fs: f, io }, inode, 1 << 20);
      expect(inode.size).toBe(1 << 20);
      expect(inode.disksize).toBe(1 << 20);
      expect(inode.mtime.sec * 1e9 + inode.mtime.nsec).toBeGreaterThan(mtime.sec * 1e9 + mtime.nsec);
    });
    expect(zeroed).toEqual([[ino, 10240, 12288]]);
    fsckClean(img, "b to 1 MiB");
    expect(freeBlocks(img)).toBe(free0 + 15);

    // Down to an unaligned size: [5000, 8192) zeroed before the blocks past it go.
    zeroed.length = 0;
    withInode(img, "/a", (f, inode) => { ino = inode.ino; setattrSize({ fs: f, io }, inode, 5000); });
    expect(zeroed).toEqual([[ino, 5000, 8192]]);
    fsckClean(img, "a to 5000");
    expect(freeBlocks(img)).toBe(free0 + 23);

    const want = { a: a.subarray(0, 5000), b: Buffer.concat([b, Buffer.alloc((1 << 20) - b.length)]) };
    const ro = mount(img, { readOnly: true });
    try {
      expect((ro.readFileSync("/a") as Buffer).equals(want.a)).toBe(true);
      expect((ro.readFileSync("/b") as Buffer).equals(want.b)).toBe(true);
    } finally {
      ro.unmount();
    }
    if (loop.ok) {
      withLoopMountSync(img, (mnt) => {
        expect(fs.readFileSync(path.join(mnt, "a")).equals(want.a)).toBe(true);
        expect(fs.readFileSync(path.join(mnt, "b")).equals(want.b)).toBe(true);
      }, { readOnly: true });
    }

    // To nothing: every block back.
    withInode(img, "/a", (f, inode) => setattrSize({ fs: f, io }, inode, 0));
    withInode(img, "/b", (f, inode) => setattrSize({ fs: f, io }, inode, 0));
    fsckClean(img, "both to 0");
    expect(freeBlocks(img)).toBe(free0 + 25 + 3);
  });

  it("errors as ext4_setattr and do_truncate give them: EPERM immutable / append-only, EISDIR, EINVAL, EFBIG, EROFS", () => {
    const tree = path.join(work, "err-tree");
    fs.mkdirSync(path.join(tree, "dd"), { recursive: true });
    fs.writeFileSync(path.join(tree, "f"), content(5000, 3));
    const img = mkfs("err", tree, ["-b", "4096"]);
    const { io } = recordingIo();
    withInode(img, "/f", (f, inode) => {
      const ctx = { fs: f, io };
      inode.flags |= INODE_FLAGS.IMMUTABLE;
      expect(code(() => setattrSize(ctx, inode, 0))).toBe("EPERM");
      expect(code(() => setattrAttrs(ctx, inode, { mode: 0o600 }))).toBe("EPERM");
      expect(code(() => setattrAttrs(ctx, inode, { atime: UTIME_NOW, mtime: UTIME_NOW }))).toBe("EPERM");
      inode.flags &= ~INODE_FLAGS.IMMUTABLE;
      inode.flags |= INODE_FLAGS.APPEND;
      expect(code(() => setattrSize(ctx, inode, 0))).toBe("EPERM");
      expect(code(() => setattrAttrs(ctx, inode, { uid: 5 }))).toBe("EPERM");
      expect(code(() => setattrAttrs(ctx, inode, { mtime: { sec: 5, nsec: 0 } }))).toBe("EPERM");
      // touch on an append-only file: times set to now are allowed.
      expect(code(() => setattrAttrs(ctx, inode, { atime: UTIME_NOW, mtime: UTIME_NOW }))).toBe(undefined);
      inode.flags &= ~INODE_FLAGS.APPEND;
      expect(code(() => setattrSize(ctx, inode, -1))).toBe("EINVAL");
      // s_maxbytes of a 4k extent file: 2^32 - 1 blocks (16 TiB - 4 KiB).
      expect(code(() => setattrSize(ctx, inode, (2 ** 32 - 1) * 4096 + 1))).toBe("EFBIG");
      expect(code(() => setattrSize(ctx, inode, (2 ** 32 - 1) * 4096))).toBe(undefined);
      expect(code(() => setattrSize(ctx, inode, 0))).toBe(undefined);
    });
    withInode(img, "/dd", (f, inode) => expect(code(() => setattrSize({ fs: f, io }, inode, 0))).toBe("EISDIR"));
    withInode(img, "/f", (f, inode) => expect(code(() => setattrSize({ fs: f, io }, inode, 0))).toBe("EROFS"), { readOnly: true });
    fsckClean(img, "error cases");
  });
});

/** debugfs's view of an inode: mode, owners, atime and mtime as raw words. */
function statOf(img: string, p: string): { mode: string; uid: number; gid: number; atime: string; mtime: string; ctime: string } {
  const out = runSync("debugfs", ["-R", `stat ${p}`, img]).stdout;
  const t = (n: string) => new RegExp(`^\\s*${n}: (0x[0-9a-f]+(?::[0-9a-f]+)?)`, "m").exec(out)?.[1] ?? "";
  return {
    mode: /Mode:\s+(\d+)/.exec(out)![1],
    uid: Number(/User:\s+(\d+)/.exec(out)![1]),
    gid: Number(/Group:\s+(\d+)/.exec(out)![1]),
    atime: t("atime"), mtime: t("mtime"), ctime: t("ctime"),
  };
}

interface Op { path: string; attrs: Attrs; py: string }

const ops: Op[] = [
  // chown of a set-user-ID, set-group-ID executable: both bits go.
  { path: "/suid", attrs: { uid: 1000 }, py: "os.chown(p, 1000, -1)" },
  // set-group-ID without group execute (mandatory-locking marker) stays.
  { path: "/sgid_noexec", attrs: { uid: 1000, gid: 1000 }, py: "os.chown(p, 1000, 1000)" },
  // chown to -1, -1 changes no owner but still clears set-user-ID.
  { path: "/suid2", attrs: { uid: -1, gid: -1 }, py: "os.chown(p, -1, -1)" },
  // Directories keep their set-ID bits.
  { path: "/dir", attrs: { uid: 7, gid: 8 }, py: "os.chown(p, 7, 8)" },
  { path: "/plain", attrs: { mode: 0o7777 }, py: "os.chmod(p, 0o7777)" },
  { path: "/plain2", attrs: { mode: 0o2711 }, py: "os.chmod(p, 0o2711)" },
  { path: "/times", attrs: { atime: { sec: 1234567890, nsec: 123456789 }, mtime: { sec: 2000000000, nsec: 999999999 } }, py: "os.utime(p, ns=(1234567890123456789, 2000000000999999999))" },
  // Past 2038 and before 1970: the extra epoch bits.
  { path: "/times2", attrs: { atime: { sec: 2 ** 33 + 5, nsec: 7 }, mtime: { sec: -1000, nsec: 500 } }, py: "os.utime(p, ns=((2**33 + 5) * 10**9 + 7, -1000 * 10**9 + 500))" },
  // Past what the inode stores: clamped to 2446-05-10.
  { path: "/times3", attrs: { atime: { sec: 2 ** 36, nsec: 1 }, mtime: { sec: -(2 ** 33), nsec: 0 } }, py: "os.utime(p, ns=(2**36 * 10**9 + 1, -(2**33) * 10**9))" },
];

d("setattrAttrs against the kernel", () => {
  it.each([["256-byte inodes", ["-I", "256"]], ["128-byte inodes (seconds, 1901-2038)", ["-I", "128"]]] as [string, string[]][])("%s: chmod / chown / utimes leave what the kernel's leave", (_name, args) => {
    if (!loop.ok) {
      console.log(`setattr kernel comparison skipped: ${loop.reason}`);
      return;
    }
    const tree = path.join(work, `attr-tree${args[1]}`);
    fs.mkdirSync(tree, { recursive: true });
    for (const o of ops) {
      if (o.path === "/dir") fs.mkdirSync(path.join(tree, "dir"));
      else fs.writeFileSync(path.join(tree, o.path.slice(1)), "x");
    }
    const modes: Record<string, number> = { "/suid": 0o6755, "/sgid_noexec": 0o2644, "/suid2": 0o4755, "/dir": 0o6755, "/plain": 0o644, "/plain2": 0o644 };
    for (const [p, m] of Object.entries(modes)) fs.chmodSync(path.join(tree, p), m);
    const ours = mkfs(`attrs${args[1]}`, tree, ["-b", "4096", ...args]);
    const kern = path.join(work, `attrs${args[1]}-kernel.img`);
    fs.copyFileSync(ours, kern);

    const { io } = recordingIo();
    const before = Date.now() / 1000;
    for (const o of ops) withInode(ours, o.path, (f, inode) => setattrAttrs({ fs: f, io }, inode, o.attrs));
    fsckClean(ours, "attribute changes");
    withLoopMountSync(kern, (mnt) => {
      const script = ["import os", ...ops.map((o) => `p = ${JSON.stringify(path.join(mnt, o.path.slice(1)))}\n${o.py}`)].join("\n");
      const r = runSync("python3", ["-c", script]);
      expect(r.code, r.stderr).toBe(0);
    });
    for (const o of ops) {
      const a = statOf(ours, o.path);
      const k = statOf(kern, o.path);
      expect({ path: o.path, mode: a.mode, uid: a.uid, gid: a.gid }).toEqual({ path: o.path, mode: k.mode, uid: k.uid, gid: k.gid });
      if (o.attrs.atime) expect([o.path, a.atime, a.mtime]).toEqual([o.path, k.atime, k.mtime]);
      // ctime is now in both.
      expect(Number.parseInt(a.ctime.slice(2, 10), 16)).toBeGreaterThanOrEqual(Math.floor(before));
    }
  });
});

d("chmod of a file with an access ACL", () => {
  it("4k: the ACL's owner, mask and other entries follow the new mode, as posix_acl_chmod makes them", () => {
    if (!loop.ok) {
      console.log(`ACL chmod comparison skipped: ${loop.reason}`);
      return;
    }
    const tree = path.join(work, "acl-tree");
    fs.mkdirSync(tree, { recursive: true });
    fs.writeFileSync(path.join(tree, "f"), "acl");
    const img0 = mkfs("acl", tree, ["-b", "4096"]);
    // The kernel sets the ACL (a named user, so a mask entry too).
    withLoopMountSync(img0, (mnt) => {
      expect(runSync("setfacl", ["-m", "u:1234:rwx,g::r-x,m::rwx,o::r--", path.join(mnt, "f")]).code).toBe(0);
    });
    const kern = path.join(work, "acl-kernel.img");
    fs.copyFileSync(img0, kern);
    const { io } = recordingIo();
    withInode(img0, "/f", (f, inode) => setattrAttrs({ fs: f, io }, inode, { mode: 0o640 }));
    fsckClean(img0, "chmod with an ACL");
    withLoopMountSync(kern, (mnt) => { fs.chmodSync(path.join(mnt, "f"), 0o640); });
    const acl = (img: string) => withLoopMountSync(img, (mnt) => runSync("getfacl", ["-n", "-p", path.join(mnt, "f")]).stdout.split("\n").filter((l) => !l.startsWith("#")).join("\n"), { readOnly: true });
    const ours = acl(img0);
    expect(ours).toMatch(/mask::r--/);
    expect(ours).toBe(acl(kern));
  });
});
