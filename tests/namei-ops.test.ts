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
import { MemoryDevice, mount, RecordingDevice } from "../host/index.js";
import { Ext4Error } from "../host/errors.js";
import { lookup } from "../host/fs/dir.js";
import type { Ext4 } from "../host/fs/super.js";
import { ext4Create, ext4Link, ext4Mkdir, ext4Mknod, ext4Rename, ext4Rmdir, ext4Symlink, ext4Unlink } from "../host/fs/namei-ops.js";
import { isOrphan } from "../host/fs/orphan.js";
import { readDotDot } from "../host/fs/namei.js";
import type { Ext4Inode } from "../host/fs/inode.js";
import { INODE_FLAGS, S_IFBLK, S_IFCHR, S_IFDIR } from "../host/format/inode.js";
import { missingTools, runSync } from "./helpers/exec.js";
import { mkfsEnv } from "./helpers/images.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";
import { differential, kernelTimeChanges, type NsOp, ourTimeChanges, RENAME_EXCHANGE, RENAME_WHITEOUT, VARIANTS } from "./helpers/namei-diff.js";

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

d("namei-ops against the kernel", () => {
  const k = kernelSkip ? it.skip : it;
  it.each(VARIANTS)("%s: create, mkdir, mknod, symlink and link give the kernel's errors and tree", async (name, args) => {
    if (kernelSkip) return;
    const { n, errors } = await differential(work, name, args, 11, { ops: ["create", "mkdir", "mknod", "symlink", "link"], count: 500 });
    console.log(`namei-ops ${name} (create family): ${n} ops, ${JSON.stringify([...errors])}`);
    for (const code of ["ok", "EEXIST", "ENOENT", "ENAMETOOLONG", "ENOTDIR", "EPERM"]) expect(errors.get(code), code).toBeGreaterThan(0);
  });
  it.each(VARIANTS)("%s: every namespace operation, rename flags included, directories grown to an htree and shrunk", async (name, args) => {
    if (kernelSkip) return;
    const { n, errors, indexed, renames } = await differential(work, name, args, 23 + name.length, { count: 1200, bursts: 3, burstSize: 220 });
    console.log(`namei-ops ${name} (all): ${n} ops, ${JSON.stringify([...errors])}; ${indexed} htree directories; renames ${JSON.stringify([...renames].sort())}`);
    expect(indexed).toBeGreaterThan(0);
    for (const f of [0, 1, 2, 4]) expect(renames.get(`flags${f}:ok`), `flags ${f}`).toBeGreaterThan(0);
    for (const code of ["ok", "EEXIST", "ENOENT", "ENOTDIR", "EISDIR", "ENOTEMPTY", "EINVAL", "EBUSY"]) expect(errors.get(code), code).toBeGreaterThan(0);
  });
  void k;
});

/** Mounts `img` read-write with `opts`, runs fn on the root, unmounts, and has e2fsck judge. */
function onRoot(img: string, fn: (f: Ext4, root: Ext4Inode) => void, opts: { mountOptions?: string } = {}): void {
  const vol = mount(img, opts);
  try {
    const f = fsOf(vol);
    const root = f.iget(2);
    try {
      fn(f, root);
    } finally {
      f.iput(root);
    }
  } finally {
    vol.unmount();
  }
  expectClean(img);
}

d("namei-ops: the times each operation changes, as the kernel changes them", () => {
  it.each([["4k-journal", []], ["1k-inline-nojournal", ["-b", "1024", "-O", "^has_journal,inline_data"]]] as [string, string[]][])("%s", (name, args) => {
    if (kernelSkip) return;
    const img = mkfs(`times-${name}`, args);
    const theirs = `${img}.kernel`;
    fs.copyFileSync(img, theirs);
    const S: [NsOp, string[]][] = [
      [{ op: "mkdir", path: "a", mode: 0o755 }, ["."]],
      [{ op: "mkdir", path: "b", mode: 0o755 }, [".", "a"]],
      [{ op: "create", path: "a/f", mode: 0o644 }, [".", "a"]],
      [{ op: "mknod", path: "a/n", mode: 0o10644, rdev: 0 }, ["a", "a/f"]],
      [{ op: "symlink", path: "a/s", target: "x".repeat(80) }, ["a"]],
      [{ op: "link", path: "a/f", path2: "b/g" }, ["a", "b", "a/f"]],
      [{ op: "unlink", path: "b/g" }, ["a", "b", "a/f"]],
      [{ op: "rename", path: "a/f", path2: "a/f2", flags: 0 }, [".", "a", "a/f"]],
      [{ op: "rename", path: "a/f2", path2: "b/f", flags: 0 }, ["a", "b", "a/f2"]],
      [{ op: "mkdir", path: "a/d", mode: 0o755 }, ["a"]],
      [{ op: "rename", path: "a/d", path2: "b/d", flags: 0 }, ["a", "b", "a/d"]],
      [{ op: "create", path: "a/v", mode: 0o644 }, ["a"]],
      [{ op: "rename", path: "b/f", path2: "a/v", flags: 0 }, ["a", "b", "b/f", "a/v"]],
      [{ op: "mkdir", path: "a/e", mode: 0o755 }, ["a"]],
      [{ op: "rename", path: "b/d", path2: "a/e", flags: 0 }, ["a", "b", "b/d", "a/e"]],
      [{ op: "rename", path: "a/e", path2: "b", flags: RENAME_EXCHANGE }, [".", "a", "a/e", "b"]],
      [{ op: "rename", path: "a/v", path2: "a/w", flags: RENAME_WHITEOUT }, ["a", "a/v"]],
      [{ op: "rmdir", path: "a/e" }, ["a", "a/e"]],
      [{ op: "unlink", path: "a/w" }, ["a", "a/w"]],
    ];
    const vol = mount(img);
    let ours: boolean[][][];
    try {
      ours = ourTimeChanges(fsOf(vol), S);
    } finally {
      vol.unmount();
    }
    expectClean(img);
    const kernel = kernelTimeChanges(theirs, S);
    const diffs = S.map(([o, w], i) => (JSON.stringify(ours[i]) === JSON.stringify(kernel[i]) ? null : `${JSON.stringify(o)} ${JSON.stringify(w)}: ours ${JSON.stringify(ours[i])}, kernel's ${JSON.stringify(kernel[i])}`)).filter(Boolean);
    expect(diffs).toEqual([]);
  });
});

d("namei-ops: unlink, rmdir and rename", () => {
  it("an unlinked file stays readable while referenced, is an orphan in the unlinking handle, and is freed at the last iput", () => {
    const img = mkfs("unlink-open", []);
    onRoot(img, (f, root) => {
      const a = ext4Create(f, root, enc("a"), 0o644, cred);
      const freeBefore = f.sb.freeInodesCount;
      const gone = ext4Unlink(f, root, enc("a"))!;
      expect(gone).toBe(a);
      expect(a.linksCount).toBe(0);
      expect(isOrphan(f, a)).toBe(true);
      expect(lookup(f, root, enc("a"))).toBe(0);
      f.iput(gone);
      expect(f.sb.freeInodesCount).toBe(freeBefore);
      f.iput(a);
      expect(f.sb.freeInodesCount).toBe(freeBefore + 1);
    });
  });

  it("rmdir: ENOTEMPTY, EINVAL for '.', ENOTEMPTY for '..', ENOTDIR; the parent's link count drops", () => {
    const img = mkfs("rmdir", ["-O", "^has_journal"]);
    onRoot(img, (f, root) => {
      const links = root.linksCount;
      const d1 = ext4Mkdir(f, root, enc("d"), 0o755, cred);
      const x = ext4Create(f, d1, enc("x"), 0o644, cred);
      expect(root.linksCount).toBe(links + 1);
      expectCode(() => ext4Rmdir(f, root, enc("d")), "ENOTEMPTY");
      expectCode(() => ext4Rmdir(f, d1, enc(".")), "EINVAL");
      expectCode(() => ext4Rmdir(f, d1, enc("..")), "ENOTEMPTY");
      expectCode(() => ext4Rmdir(f, d1, enc("x")), "ENOTDIR");
      expectCode(() => ext4Unlink(f, root, enc("d")), "EISDIR");
      f.iput(ext4Unlink(f, d1, enc("x"))!);
      f.iput(x);
      f.iput(ext4Rmdir(f, root, enc("d"))!);
      expect(d1.linksCount).toBe(0);
      expect(root.linksCount).toBe(links);
      f.iput(d1);
    });
  });

  it("EPERM: unlink in an append-only directory, rename of an immutable file", () => {
    const img = mkfs("eperm", ["-O", "^has_journal"]);
    onRoot(img, (f, root) => {
      const dir = ext4Mkdir(f, root, enc("ap"), 0o755, cred);
      const a = ext4Create(f, dir, enc("a"), 0o644, cred);
      dir.flags |= INODE_FLAGS.APPEND;
      expectCode(() => ext4Unlink(f, dir, enc("a")), "EPERM");
      dir.flags &= ~INODE_FLAGS.APPEND;
      a.flags |= INODE_FLAGS.IMMUTABLE;
      expectCode(() => ext4Rename(f, dir, enc("a"), root, enc("b")), "EPERM");
      expectCode(() => ext4Unlink(f, dir, enc("a")), "EPERM");
      a.flags &= ~INODE_FLAGS.IMMUTABLE;
      f.iput(a);
      f.iput(dir);
    });
  });

  it("auto_da_alloc: a rename over a regular file asks for the source's delayed blocks first, not with noauto_da_alloc or without a target", () => {
    const img = mkfs("autoda", []);
    for (const [opts, want] of [[undefined, ["a"]], ["noauto_da_alloc", []]] as const) {
      onRoot(img, (f, root) => {
        const seen: string[] = [];
        const hooks = { allocDaBlocks: (i: Ext4Inode) => seen.push(i.ino === lookup(f, root, enc("a")) ? "a" : String(i.ino)) };
        for (const n of ["a", "b"]) f.iput(ext4Create(f, root, enc(n), 0o644, cred));
        ext4Rename(f, root, enc("a"), root, enc("fresh"), {}, hooks); // no target
        ext4Rename(f, root, enc("fresh"), root, enc("a"), {}, hooks);
        expect(seen).toEqual([]);
        ext4Rename(f, root, enc("a"), root, enc("b"), {}, { allocDaBlocks: (i) => { seen.push(i.ino === lookup(f, root, enc("a")) ? "a" : "?"); } });
        expect(seen).toEqual(want);
        f.iput(ext4Unlink(f, root, enc("b"))!);
      }, opts ? { mountOptions: opts } : {});
    }
  });

  it("dir_nlink: an indexed directory past EXT4_LINK_MAX goes to 1 link; a linear one refuses a moved-in directory with EMLINK", () => {
    const img = mkfs("dirnlink", ["-O", "^has_journal"]);
    onRoot(img, (f, root) => {
      const lin = ext4Mkdir(f, root, enc("linear"), 0o755, cred);
      const big = ext4Mkdir(f, root, enc("big"), 0o755, cred);
      // Enough names to turn "big" into an htree.
      for (let i = 0; i < 150; i++) f.iput(ext4Create(f, big, enc(`name-${i}-${"z".repeat(20)}`), 0o644, cred));
      expect(big.flags & INODE_FLAGS.INDEX).not.toBe(0);
      const sub = ext4Mkdir(f, root, enc("sub"), 0o755, cred);
      lin.linksCount = 65000;
      expectCode(() => ext4Rename(f, root, enc("sub"), lin, enc("sub")), "EMLINK");
      expectCode(() => ext4Mkdir(f, lin, enc("x"), 0o755, cred), "EMLINK");
      lin.linksCount = 2;
      big.linksCount = 65000;
      ext4Rename(f, root, enc("sub"), big, enc("sub"));
      expect(big.linksCount).toBe(1);
      expect(readDotDot(f, sub)).toBe(big.ino);
      // Moving it out again leaves an indexed directory at 1 (the kernel never counts back up).
      ext4Rename(f, big, enc("sub"), root, enc("sub"));
      expect(big.linksCount).toBe(1);
      expect(readDotDot(f, sub)).toBe(2);
      for (const i of [lin, big, sub]) f.iput(i);
    });
  });
});

d("namei-ops: a crash after unlink and rmdir of held inodes", () => {
  it.each([["4k", []], ["orphan_file", ["-O", "orphan_file"]]] as [string, string[]][])("%s: the orphans committed with the unlinks are freed by our replay and by the kernel's", (name, args) => {
    const img = mkfs(`crash-${name}`, args);
    const base = new Uint8Array(fs.readFileSync(img));
    const rec = new RecordingDevice(new MemoryDevice(base.slice()));
    const vol = mount(rec);
    const f = fsOf(vol);
    const root = f.iget(2);
    for (const n of ["a", "b"]) f.iput(ext4Create(f, root, enc(n), 0o644, cred));
    f.iput(ext4Mkdir(f, root, enc("d"), 0o755, cred));
    f.iput(ext4Mkdir(f, root, enc("e"), 0o755, cred));
    f.commit();
    // Held across the crash (never iput): unlinked, orphaned, not yet freed.
    const held = [ext4Unlink(f, root, enc("a"))!, ext4Rmdir(f, root, enc("d"))!];
    expect(held.map((i) => i.linksCount)).toEqual([0, 0]);
    // And a rename over a held target: "b" replaced by "c".
    f.iput(ext4Create(f, root, enc("c"), 0o644, cred));
    const b = f.iget(lookup(f, root, enc("b")));
    ext4Rename(f, root, enc("c"), root, enc("b"));
    expect(b.linksCount).toBe(0);
    f.commit();
    const crashed = rec.crashImage(base, rec.events.length - 1);
    const ours = path.join(work, `crash-${name}-ours.img`);
    fs.writeFileSync(ours, crashed);
    const again = mount(ours);
    try {
      expect((again.readdirSync("/") as string[]).sort()).toEqual(["b", "e", "lost+found"]);
    } finally {
      again.unmount();
    }
    expectClean(ours);
    if (!kernelSkip) {
      const theirs = path.join(work, `crash-${name}-kernel.img`);
      fs.writeFileSync(theirs, crashed);
      withLoopMountSync(theirs, (mnt) => expect(fs.readdirSync(mnt).sort()).toEqual(["b", "e", "lost+found"]));
      expectClean(theirs);
    }
  });
});

d("namei-ops: ENOSPC", () => {
  it.each([["journal", []], ["nojournal", ["-O", "^has_journal"]]] as [string, string[]][])("%s: a mkdir or slow symlink that finds no block leaves nothing behind", (name, args) => {
    const img = mkfs(`enospc-${name}`, ["-b", "1024", "-m", "0", "-N", "4096", "-I", "128", ...args], "4M");
    onRoot(img, (f, root) => {
      let n = 0;
      for (;;) {
        try {
          f.iput(ext4Symlink(f, root, enc(`s${n}`), enc("t".repeat(100)), cred));
          n++;
        } catch (e) {
          expect((e as Ext4Error).code).toBe("ENOSPC");
          break;
        }
      }
      expect(n).toBeGreaterThan(100);
      const freeInodes = f.sb.freeInodesCount;
      expectCode(() => ext4Mkdir(f, root, enc("d"), 0o755, cred), "ENOSPC");
      expectCode(() => ext4Symlink(f, root, enc("s"), enc("t".repeat(100)), cred), "ENOSPC");
      expect(f.sb.freeInodesCount).toBe(freeInodes);
      expect(lookup(f, root, enc("d"))).toBe(0);
      // Fast symlinks need no block.
      f.iput(ext4Symlink(f, root, enc("fast"), enc("t"), cred));
    });
  });
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

// A long run: NAMEI_OPS_SEEDS=100-140 npx vitest run tests/namei-ops.test.ts -t "long run"
const seeds = process.env.NAMEI_OPS_SEEDS?.split("-").map(Number);
(seeds && !kernelSkip ? d : describe.skip)("namei-ops long run", () => {
  const list = seeds ? Array.from({ length: seeds[1] - seeds[0] }, (_, i) => seeds[0] + i) : [];
  for (const seed of list) {
    it.each(VARIANTS)(`seed ${seed} %s`, async (name, args) => {
      await differential(work, name, args, seed, { count: Number(process.env.NAMEI_OPS_COUNT ?? 1500), bursts: 2, burstSize: 150 });
    });
  }
});
