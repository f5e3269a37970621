// The namespace operations (host/fs/namei-ops.ts) against the kernel: one
// seeded sequence applied by us on an image and by the kernel's system calls
// on a loop mount of an identical copy gives the same error code at every
// step, e2fsck -fn finds ours clean, and the kernel sees the same tree in
// both. Plus the cases a random sequence rarely reaches (EMLINK, ACL
// inheritance without the kernel, the on-disk forms of symlinks and devices).

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount } from "../host/index.js";
import { Ext4Error } from "../host/errors.js";
import { lookup } from "../host/fs/dir.js";
import type { Ext4 } from "../host/fs/super.js";
import { ext4Create, ext4Link, ext4Mkdir, ext4Mknod, ext4Symlink } from "../host/fs/namei-ops.js";
import { INODE_FLAGS, S_IFBLK, S_IFCHR, S_IFDIR } from "../host/format/inode.js";
import { missingTools, runSync } from "./helpers/exec.js";
import { mkfsEnv } from "./helpers/images.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";
import { applyKernel, applyOurs, kernelTree, type NsOp, NsGenerator } from "./helpers/namei-diff.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "debugfs"], "e2fsprogs");
if (missing) console.log(`namei-ops: skipped: ${missing}`);
const d = missing ? describe.skip : describe;
const loop = loopMountSupport();
const python = missingTools(["python3"], "python3");
const kernelSkip = !loop.ok ? loop.reason : python;
if (kernelSkip) console.log(`namei-ops: kernel differential skipped: ${kernelSkip}`);

let work: string;
beforeAll(() => { if (!missing) work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-nameiops-")); });
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

const enc = (s: string) => new TextEncoder().encode(s);
const fsOf = (vol: unknown) => (vol as { fs: Ext4 }).fs;
const cred = { uid: 0, gid: 0, umask: 0 };

function mkfs(name: string, args: string[], size = "32M"): string {
  const img = path.join(work, `${name}.img`);
  runSync("mkfs.ext4", ["-q", "-F", ...args, img, size], { env: mkfsEnv(work) });
  return img;
}

function expectClean(img: string): void {
  const r = runSync("e2fsck", ["-fn", img], { okCodes: [0, 1, 2, 4, 8] });
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
}

function expectCode(fn: () => unknown, code: string): void {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(Ext4Error);
    expect((e as Ext4Error).code, (e as Error).message).toBe(code);
    return;
  }
  throw new Error(`expected ${code}`);
}

/** posix_acl_xattr bytes (version 2): [tag, perm, id]. */
function aclXattr(entries: [number, number, number][]): string {
  const b = Buffer.alloc(4 + entries.length * 8);
  b.writeUInt32LE(2, 0);
  entries.forEach(([tag, perm, id], i) => { b.writeUInt16LE(tag, 4 + i * 8); b.writeUInt16LE(perm, 6 + i * 8); b.writeUInt32LE(id >>> 0, 8 + i * 8); });
  return b.toString("hex");
}

/** Directories with default ACLs, made by the kernel before the copy: "acl" (named user and mask), "acl2" (mode-equivalent). */
function kernelSetup(img: string): string[] {
  const full = aclXattr([[1, 7, -1], [2, 5, 1000], [4, 5, -1], [0x10, 7, -1], [0x20, 5, -1]]);
  const minimal = aclXattr([[1, 7, -1], [4, 5, -1], [0x20, 0, -1]]);
  withLoopMountSync(img, (mnt) => {
    runSync("python3", ["-c", `import os,sys
os.chdir(sys.argv[1]); os.umask(0)
os.mkdir("acl", 0o755); os.setxattr("acl", "system.posix_acl_default", bytes.fromhex("${full}"))
os.mkdir("acl2", 0o755); os.setxattr("acl2", "system.posix_acl_default", bytes.fromhex("${minimal}"))
os.mkdir("sgid", 0o2775); os.chown("sgid", 0, 1234)`, mnt]);
  });
  return ["acl", "acl2", "sgid"];
}

const VARIANTS: [string, string[]][] = [
  ["4k-journal", []],
  ["1k-journal", ["-b", "1024"]],
  ["4k-inline-nojournal", ["-O", "^has_journal,inline_data"]],
  ["1k-nocsum-nojournal", ["-b", "1024", "-O", "^has_journal,^metadata_csum,^64bit"]],
];

/** Runs a generated sequence on ours and the kernel's copy; returns the number of operations and of errors. */
function differential(name: string, args: string[], seed: number, gen: Partial<ConstructorParameters<typeof NsGenerator>[0]>): { n: number; errors: Map<string, number>; indexed: number; renames: Map<string, number> } {
  const ours = mkfs(`${name}-${seed}`, args);
  const initialDirs = kernelSetup(ours);
  const theirs = `${ours}.kernel`;
  fs.copyFileSync(ours, theirs);
  const g = new NsGenerator({ seed, count: 400, initialDirs, ...gen });
  const seq: NsOp[] = [];
  const got: (string | null)[] = [];
  let indexed = 0;
  const vol = mount(ours);
  try {
    const f = fsOf(vol);
    for (let o = g.next(); o; o = g.next()) {
      const r = applyOurs(f, o);
      seq.push(o);
      got.push(r);
      g.result(r);
    }
    for (const p of g.dirs()) {
      let cur = f.iget(2);
      for (const c of p ? p.split("/") : []) {
        const next = f.iget(lookup(f, cur, enc(c)));
        f.iput(cur);
        cur = next;
      }
      if (cur.flags & INODE_FLAGS.INDEX) indexed++;
      f.iput(cur);
    }
  } finally {
    vol.unmount();
  }
  const kernel = applyKernel(theirs, seq);
  const diffs = got.map((r, i) => (r === kernel[i] ? null : `op ${i} ${JSON.stringify(seq[i])}: ours ${r}, kernel's ${kernel[i]}`)).filter(Boolean);
  expect(diffs.slice(0, 8)).toEqual([]);
  expectClean(ours);
  expectClean(theirs);
  expect(kernelTree(ours)).toEqual(kernelTree(theirs));
  const errors = new Map<string, number>();
  for (const r of got) errors.set(r ?? "ok", (errors.get(r ?? "ok") ?? 0) + 1);
  const renames = new Map<string, number>();
  seq.forEach((o, i) => { if (o.op === "rename") { const k = `flags${o.flags}:${got[i] ?? "ok"}`; renames.set(k, (renames.get(k) ?? 0) + 1); } });
  return { n: seq.length, errors, indexed, renames };
}

d("namei-ops against the kernel", () => {
  const k = kernelSkip ? it.skip : it;
  it.each(VARIANTS)("%s: create, mkdir, mknod, symlink and link give the kernel's errors and tree", (name, args) => {
    if (kernelSkip) return;
    const { n, errors } = differential(name, args, 11, { ops: ["create", "mkdir", "mknod", "symlink", "link"], count: 500 });
    console.log(`namei-ops ${name} (create family): ${n} ops, ${JSON.stringify([...errors])}`);
    for (const code of ["ok", "EEXIST", "ENOENT", "ENAMETOOLONG", "ENOTDIR", "EPERM"]) expect(errors.get(code), code).toBeGreaterThan(0);
  });
  it.each(VARIANTS)("%s: every namespace operation, rename flags included, directories grown to an htree and shrunk", (name, args) => {
    if (kernelSkip) return;
    const { n, errors, indexed, renames } = differential(name, args, 23 + name.length, { count: 1200, bursts: 3, burstSize: 220 });
    console.log(`namei-ops ${name} (all): ${n} ops, ${JSON.stringify([...errors])}; ${indexed} htree directories; renames ${JSON.stringify([...renames].sort())}`);
    expect(indexed).toBeGreaterThan(0);
    for (const f of [0, 1, 2, 4]) expect(renames.get(`flags${f}:ok`), `flags ${f}`).toBeGreaterThan(0);
    for (const code of ["ok", "EEXIST", "ENOENT", "ENOTDIR", "EISDIR", "ENOTEMPTY", "EINVAL", "EBUSY"]) expect(errors.get(code), code).toBeGreaterThan(0);
  });
  void k;
});

d("namei-ops on disk", () => {
  it("fast and slow symlinks, old and new device numbers, an inline directory: the forms debugfs shows", () => {
    const img = mkfs("forms", ["-O", "^has_journal,inline_data"]);
    const vol = mount(img);
    try {
      const f = fsOf(vol);
      const root = f.iget(2);
      try {
        const fast = ext4Symlink(f, root, enc("fast"), enc("x".repeat(59)), cred);
        expect(fast.flags & INODE_FLAGS.EXTENTS).toBe(0);
        expect(fast.size).toBe(59);
        const slow = ext4Symlink(f, root, enc("slow"), enc("y".repeat(60)), cred);
        expect(slow.flags & INODE_FLAGS.EXTENTS).not.toBe(0);
        expect(slow.blocks512).toBe(8);
        const oldDev = ext4Mknod(f, root, enc("old"), S_IFCHR | 0o600, (8 << 8) | 1, cred);
        expect([...oldDev.iBlock.subarray(0, 8)]).toEqual([1, 8, 0, 0, 0, 0, 0, 0]);
        const newDev = ext4Mknod(f, root, enc("new"), S_IFBLK | 0o600, (300 << 8) | (70000 & 0xff) | ((70000 & 0xfff00) << 12), cred);
        expect(newDev.iBlock[0] | newDev.iBlock[1] | newDev.iBlock[2] | newDev.iBlock[3]).toBe(0);
        const dir = ext4Mkdir(f, root, enc("d"), 0o755, cred);
        expect(dir.flags & INODE_FLAGS.INLINE_DATA).not.toBe(0);
        expect(dir.size).toBe(60);
        expect(dir.linksCount).toBe(2);
        expect(root.linksCount).toBe(4);
        for (const i of [fast, slow, oldDev, newDev, dir]) f.iput(i);
      } finally {
        f.iput(root);
      }
    } finally {
      vol.unmount();
    }
    expectClean(img);
    const stat = (p: string) => runSync("debugfs", ["-R", `stat ${p}`, img]).stdout;
    expect(stat("/fast")).toMatch(/Fast link dest: "x{59}"/);
    expect(stat("/old")).toMatch(/Device major\/minor number: 08:01/);
    expect(stat("/new")).toMatch(/Device major\/minor number: 300:70000/);
    expect(stat("/d")).toMatch(/Size of inline data: 60/);
  });

  it("errors: EEXIST, ENAMETOOLONG, EPERM for a directory link, EMLINK at 65000 links, EPERM in an immutable directory", () => {
    const img = mkfs("errors", ["-O", "^has_journal"]);
    const vol = mount(img);
    try {
      const f = fsOf(vol);
      const root = f.iget(2);
      try {
        const a = ext4Create(f, root, enc("a"), 0o644, cred);
        expectCode(() => ext4Create(f, root, enc("a"), 0o644, cred), "EEXIST");
        expectCode(() => ext4Mkdir(f, root, enc("."), 0o755, cred), "EEXIST");
        expectCode(() => ext4Create(f, root, enc("n".repeat(256)), 0o644, cred), "ENAMETOOLONG");
        expectCode(() => ext4Symlink(f, root, enc("s"), enc("t".repeat(4096)), cred), "ENAMETOOLONG");
        expectCode(() => ext4Symlink(f, root, enc("s"), new Uint8Array(0), cred), "ENOENT");
        expectCode(() => ext4Mknod(f, root, enc("m"), S_IFDIR | 0o755, 0, cred), "EPERM");
        expectCode(() => ext4Create(f, a, enc("x"), 0o644, cred), "ENOTDIR");
        expectCode(() => ext4Link(f, root, root, enc("rootlink")), "EPERM");
        a.linksCount = 65000;
        expectCode(() => ext4Link(f, a, root, enc("b")), "EMLINK");
        a.linksCount = 1;
        const dir = ext4Mkdir(f, root, enc("imm"), 0o755, cred);
        dir.flags |= INODE_FLAGS.IMMUTABLE;
        expectCode(() => ext4Create(f, dir, enc("x"), 0o644, cred), "EPERM");
        dir.flags &= ~INODE_FLAGS.IMMUTABLE;
        // A linear directory at EXT4_LINK_MAX takes no subdirectory.
        const links = root.linksCount;
        root.linksCount = 65000;
        expectCode(() => ext4Mkdir(f, root, enc("sub"), 0o755, cred), "EMLINK");
        root.linksCount = links;
        expect(lookup(f, root, enc("sub"))).toBe(0);
        const l = ext4Link(f, a, root, enc("b"));
        expect(a.linksCount).toBe(2);
        f.iput(l);
        f.iput(a);
        f.iput(dir);
      } finally {
        f.iput(root);
      }
    } finally {
      vol.unmount();
    }
    expectClean(img);
  });
});
