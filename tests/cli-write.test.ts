// The write commands end to end, as a user runs them: `put` of a generated
// tree (every kind of entry, holes, hard links, xattrs, odd names, extreme
// times) into a fresh image, then mkdir, rm, mv, ln, truncate, chmod, chown,
// touch. Judged by e2fsck -fn, by our reader against the host tree, and by
// the kernel's view of the same image on a loop mount. A put that runs out
// of space midway leaves the image as it was.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount } from "../host/index.js";
import { ensureBuilt, runCli } from "./cli-helpers.js";
import { compareVolumeWithTree, hostDirVolume, type VolumeLike } from "./helpers/compare.js";
import { missingTools, runSync } from "./helpers/exec.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";
import { snapshotTimes } from "./helpers/hostfs.js";
import { generateTree } from "./helpers/tree.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "debugfs", "getfattr"], "e2fsprogs, attr");
if (missing) console.log(`cli-write: skipped: ${missing}`);
const d = missing ? describe.skip : describe;
const loop = loopMountSupport();
if (!loop.ok) console.log(`cli-write: kernel comparisons skipped: ${loop.reason}`);

let work: string;
beforeAll(() => {
  if (missing) return;
  ensureBuilt();
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-cli-write-"));
}, 300_000);
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

function ok(args: string[]): string {
  const r = runCli(args);
  if (r.status !== 0) throw new Error(`ext4wasm ${args.join(" ")} exited ${r.status}: ${r.stderr}`);
  expect(r.stderr).toBe("");
  return r.stdout.toString("utf8");
}

function fsck(img: string): void {
  const r = runSync("e2fsck", ["-fn", img]);
  if (r.code !== 0) throw new Error(`e2fsck -fn ${img} exited ${r.code}:\n${r.stdout}${r.stderr}`);
}

function newImage(name: string, size: string, extra: string[] = []): string {
  const img = path.join(work, name);
  fs.rmSync(img, { force: true });
  ok(["mkfs", "-q", ...extra, img, size]);
  return img;
}

function withVolume<T>(img: string, fn: (vol: VolumeLike & ReturnType<typeof mount>) => T): T {
  const vol = mount(img, { readOnly: true });
  try { return fn(vol as VolumeLike & ReturnType<typeof mount>); } finally { vol.unmount(); }
}

d("ext4wasm put", () => {
  it("copies a whole tree as cp -a does: our reader and the kernel see the host tree", () => {
    for (const extra of [["-b", "4096"], ["-b", "1024"], ["-b", "4096", "-O", "^has_journal"]]) {
      const bs = Number(extra[1]);
      const src = path.join(work, `tree-${bs}`);
      // A symlink target fits in one block (longer ones are ENAMETOOLONG, as the kernel's ext4_symlink).
      if (!fs.existsSync(src)) generateTree(src, { seed: 11, scale: "small", maxSymlinkTarget: bs - 1, bigXattrSize: bs - 200 });
      const img = newImage("put.img", "256M", extra);
      // put reads the host files, which moves their atimes: compare with the times before. Taken
      // twice: the first walk's readdirs move the directories' atimes (relatime), then they hold.
      snapshotTimes(src);
      const times = snapshotTimes(src);
      ok(["put", "-q", img, `${src}/.`, "/"]);
      fsck(img);
      // Directory atimes on the host are not stable (relatime moves them on every readdir while
      // atime <= ctime, and coarse clocks make that common): files' atimes are compared, and
      // directory atimes are checked in the next test on a tree whose atimes hold.
      const dirAtimeFree = (rel: string) => fs.lstatSync(Buffer.concat([Buffer.from(`${src}/`), Buffer.from(rel, "latin1")])).isDirectory();
      const counts = withVolume(img, (vol) => compareVolumeWithTree(vol, src, { times, checkAtime: false }));
      withVolume(img, (vol) => {
        for (const [rel, t] of times) {
          if (rel === "" || dirAtimeFree(rel)) continue;
          expect([rel, vol.lstatSync(Buffer.from(rel, "latin1"), { bigint: true }).atimeNs]).toEqual([rel, t.atimeNs]);
        }
      });
      expect(counts.files).toBeGreaterThan(20);
      expect(counts.hardlinks).toBeGreaterThan(0);
      if (loop.ok) withLoopMountSync(img, (mnt) => compareVolumeWithTree(hostDirVolume(mnt), src, { times, checkAtime: false }), { readOnly: true });
    }
  }, 600_000);

  it("into an existing directory it goes inside; a single file becomes DEST; existing files are replaced", () => {
    const img = newImage("put2.img", "64M");
    const f = path.join(work, "hello.txt");
    fs.writeFileSync(f, "hello\n");
    // A directory's times (atime too) are copied to the nanosecond.
    const dir = path.join(work, "timed");
    fs.mkdirSync(path.join(dir, "sub"), { recursive: true });
    runSync("touch", ["-h", "-a", "-d", "@-1000000000.123456789", path.join(dir, "sub")]);
    runSync("touch", ["-h", "-m", "-d", "@4102444800.000000001", path.join(dir, "sub")]);
    const want = fs.lstatSync(path.join(dir, "sub"), { bigint: true });
    ok(["mkdir", img, "/etc"]);
    ok(["put", img, f, "/etc"]);
    ok(["put", img, f, "/etc/renamed"]);
    fs.writeFileSync(f, "second version\n");
    ok(["put", img, f, "/etc/renamed"]);
    ok(["put", img, dir, "/"]);
    fsck(img);
    withVolume(img, (vol) => {
      expect(vol.readFileSync("/etc/hello.txt", "utf8")).toBe("hello\n");
      expect(vol.readFileSync("/etc/renamed", "utf8")).toBe("second version\n");
      expect((vol.readdirSync("/etc") as string[]).sort()).toEqual(["hello.txt", "renamed"]);
      const got = vol.lstatSync("/timed/sub", { bigint: true });
      expect([got.atimeNs, got.mtimeNs]).toEqual([want.atimeNs, want.mtimeNs]);
    });
  });

  it("a put that runs out of space midway leaves the image as it was", () => {
    const img = newImage("full.img", "8M", ["-b", "1024", "-N", "8192"]);
    ok(["mkdir", img, "/keep"]);
    const before = withVolume(img, (vol) => ({ statfs: vol.statfsSync(), names: vol.readdirSync("/") }));
    // One-block files with long names, as many as the free blocks less a few: the space check
    // (data blocks, one block per directory) passes, but the directory's entries need a fifth more.
    const src = path.join(work, "many");
    fs.mkdirSync(src, { recursive: true });
    const n = before.statfs.bavail - 60;
    expect(n).toBeLessThan(before.statfs.ffree);
    for (let i = 0; i < n; i++) fs.writeFileSync(path.join(src, `${"n".repeat(200)}-${i}`), "x");
    const r = runCli(["put", "-q", img, src, "/keep"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/ENOSPC/);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    fsck(img);
    const after = withVolume(img, (vol) => ({ statfs: vol.statfsSync(), names: vol.readdirSync("/") }));
    expect(after.names).toEqual(before.names);
    expect(after.statfs.bfree).toBe(before.statfs.bfree);
    expect(after.statfs.ffree).toBe(before.statfs.ffree);
  }, 300_000);
});

d("ext4wasm mkdir, rm, mv, ln, truncate, chmod, chown, touch", () => {
  it("change the image as the coreutils commands would change a mounted one", () => {
    const img = newImage("ops.img", "64M");
    ok(["mkdir", "-p", img, "/a/b/c"]);
    ok(["mkdir", "-m", "1777", img, "/tmp"]);
    ok(["mkdir", "-p", img, "/etc"]);
    ok(["touch", img, "/etc/passwd"]);
    // chown by name: the image's own account files decide, not the host's.
    const fd = path.join(work, "passwd");
    fs.writeFileSync(fd, "root:x:0:0::/root:/bin/sh\nwww:x:33:44::/var/www:/bin/false\n");
    ok(["put", img, fd, "/etc/passwd"]);
    fs.writeFileSync(fd, "root:x:0:\nweb:x:45:\n");
    ok(["put", img, fd, "/etc/group"]);
    ok(["truncate", img, "/a/b/big", "10M"]);
    ok(["truncate", img, "/a/b/big", "-1M"]);
    ok(["ln", "-s", img, "../b/big", "/a/c-link"]);
    ok(["ln", img, "/a/b/big", "/a/hard"]);
    ok(["mv", img, "/a/hard", "/a/b/c"]);
    ok(["chmod", img, "u+s,go-r", "/a/b/big"]);
    ok(["chmod", "-R", img, "a-w", "/a/b/c"]);
    ok(["chown", img, "www:web", "/a/b/big"]);
    ok(["chown", "-h", img, "33:", "/a/c-link"]);
    ok(["touch", "-d", "@1700000000.123456789", img, "/a/b/big"]);
    ok(["mkdir", img, "/gone"]);
    ok(["touch", img, "/gone/x"]);
    ok(["rm", "-r", img, "/gone"]);
    ok(["rm", "-f", img, "/not-there"]);
    fsck(img);
    const check = (vol: { lstatSync: (p: string, o: { bigint: true }) => { mode: bigint; uid: bigint; gid: bigint; size: bigint; nlink: bigint; mtimeNs: bigint; ino: bigint } }) => {
      const big = vol.lstatSync("/a/b/big", { bigint: true });
      expect(Number(big.size)).toBe(9 << 20);
      // u+s,go-r gives 4600; chmod -R a-w reaches the same inode through c/hard (4400); chown clears setuid, as the kernel does.
      expect(Number(big.mode & 0o7777n).toString(8)).toBe("400");
      expect([Number(big.uid), Number(big.gid)]).toEqual([33, 45]);
      expect(big.nlink).toBe(2n);
      expect(big.mtimeNs).toBe(1700000000123456789n);
      expect(vol.lstatSync("/a/b/c/hard", { bigint: true }).ino).toBe(vol.lstatSync("/a/b/big", { bigint: true }).ino);
      expect(Number(vol.lstatSync("/a/c-link", { bigint: true }).gid)).toBe(44);
      expect(Number(vol.lstatSync("/tmp", { bigint: true }).mode & 0o7777n).toString(8)).toBe("1777");
    };
    withVolume(img, (vol) => {
      check(vol as never);
      expect(vol.readlinkSync("/a/c-link")).toBe("../b/big");
      expect(vol.existsSync("/gone")).toBe(false);
    });
    if (loop.ok) withLoopMountSync(img, (mnt) => {
      const host = { lstatSync: (p: string, o: { bigint: true }) => fs.lstatSync(path.join(mnt, p), o) };
      check(host as never);
    }, { readOnly: true });
  }, 300_000);

  it("mistakes are one line on stderr and a non-zero exit, and change nothing", () => {
    const img = newImage("err.img", "16M");
    const listing = () => runSync("debugfs", ["-R", "ls -l -p /", img]).stdout + runSync("dumpe2fs", ["-h", img]).stdout.split("\n").filter((l) => /^Free (blocks|inodes):/.test(l)).join("\n");
    const before = listing();
    const size = fs.statSync(img).size;
    const cases: [string[], RegExp][] = [
      [["mkdir", img, "/x/y"], /ENOENT/],
      [["rm", img, "/nope"], /ENOENT/],
      [["rm", img, "/lost+found"], /EISDIR/],
      [["rm", "-r", img, "/"], /EPERM|refusing/],
      [["mv", img, "/nope", "/b"], /ENOENT/],
      [["chmod", img, "u+q", "/"], /invalid mode/],
      [["chown", img, "nosuchuser", "/"], /nosuchuser/],
      [["truncate", img, "/lost+found", "0"], /EISDIR/],
      [["touch", "-o", "ro", img, "/new"], /EROFS/],
    ];
    for (const [args, re] of cases) {
      const r = runCli(args);
      expect([args.join(" "), r.status === 0]).toEqual([args.join(" "), false]);
      expect(r.stderr).toMatch(re);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
    fsck(img);
    // Only the mount bookkeeping may differ (mount count, times, lifetime writes): entries and free counts do not.
    expect(listing()).toBe(before);
    expect(fs.statSync(img).size).toBe(size);
  }, 300_000);
});
