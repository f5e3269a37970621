// ext4wasm ls on damaged images lists as GNU ls does on the kernel's mount:
// names alone need no inode; an entry whose inode cannot be read is reported
// ("cannot access") and listed with "?" fields under -l; a directory that
// cannot be opened is reported and skipped; a directory loop is named and
// skipped; exit 1 for trouble below the argument, 2 for the argument itself.

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt, ROOT, runCli, sh } from "./cli-helpers.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";

let tmp: string;
let IMG: string;
const loop = loopMountSupport();
const CORPUS = path.resolve(ROOT, "../shared/corpus/e2fsprogs-f");

beforeAll(() => {
  ensureBuilt();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ls-damaged-"));
  const src = path.join(tmp, "src");
  for (const d of ["d/e", "sub/badd", "sub/ok"]) fs.mkdirSync(path.join(src, d), { recursive: true });
  fs.writeFileSync(path.join(src, "bad"), "x\n");
  fs.writeFileSync(path.join(src, "good"), "y\n");
  fs.writeFileSync(path.join(src, "sub/f"), "z\n");
  fs.writeFileSync(path.join(src, "sub/badd/in"), "");
  fs.symlinkSync("good", path.join(src, "sub/l"));
  IMG = path.join(tmp, "damaged.img");
  sh("mkfs.ext4", ["-q", "-O", "metadata_csum", "-d", src, IMG, "4M"]);
  // Two inodes with a bad checksum (a file, a directory) and a directory hard link that makes a loop.
  const r = spawnSync("debugfs", ["-w", "-f", "-", IMG], {
    input: "sif /bad checksum 0x1234\nsif /sub/badd checksum 0x1234\nlink /d /d/e/loop\n", encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`debugfs failed: ${r.stderr}`);
});

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const ls = (...args: string[]) => {
  const r = runCli(["ls", ...args]);
  return { status: r.status, out: r.stdout.toString("latin1"), err: r.stderr.split("\n").filter(Boolean) };
};

/** GNU ls in the kernel's mount: UTC, numeric ids, our time style, no ACL/SELinux mark after the mode. */
function kernelLs(cwd: string, args: string[]) {
  const r = spawnSync("ls", ["--time-style=long-iso", ...args], { cwd, env: { ...process.env, LC_ALL: "C", TZ: "UTC" }, encoding: "latin1" });
  const out = r.stdout.replace(/^([-dlcbps?][-rwxsStT?]{9})[.+]/gm, "$1");
  return { status: r.status, out, err: r.stderr.split("\n").filter(Boolean) };
}

/** "ls: cannot access 'sub/badd': Bad message" and ours as the same shape: what, and which path. */
const shape = (line: string) => line.replace(/^(ls|ext4wasm): /, "").replace(/'\/?([^']*)'.*$/, "'$1'").replace(/^\/?([^:]*): not listing.*$/, "$1: loop");

describe("ls on a damaged image (debugfs-made)", () => {
  it("lists names without reading an inode: -a and -R go past bad inodes", () => {
    const a = ls("-a", IMG, "/");
    expect(a.err).toEqual([]);
    expect(a.status).toBe(0);
    expect(a.out).toBe(".\n..\nbad\nd\ngood\nlost+found\nsub\n");
    const sub = ls("-R", IMG, "/sub");
    expect(sub.out).toBe("/sub:\nbadd\nf\nl\nok\n\n/sub/ok:\n");
    // The bad directory is gone into by its entry's type, and cannot be opened: minor, exit 1.
    expect(sub.err).toEqual([expect.stringMatching(/^ext4wasm: cannot open directory '\/sub\/badd': EFSCORRUPTED: inode checksum mismatch/)]);
    expect(sub.status).toBe(1);
  });

  it("-l lists an unreadable inode as ls does: type from the entry, '?' fields, cannot access on stderr, exit 1", () => {
    const r = ls("-l", IMG, "/");
    expect(r.status).toBe(1);
    expect(r.err).toEqual([expect.stringMatching(/^ext4wasm: cannot access '\/bad': EFSCORRUPTED: inode checksum mismatch .*\(inode \d+/)]);
    const lines = r.out.split("\n");
    expect(lines.filter((l) => /^-\?{9} \? \? \? +\? +\? bad$/.test(l))).toHaveLength(1);
    expect(lines.filter((l) => / (d|good|lost\+found|sub)$/.test(l) && !l.includes("?"))).toHaveLength(4);
  });

  it("a command-line argument that cannot be read is serious trouble: exit 2, nothing listed", () => {
    for (const [p, what] of [["/x", "ENOENT: no such file or directory"], ["/bad", "EFSCORRUPTED: inode checksum mismatch"], ["/sub/badd", "EFSCORRUPTED"]]) {
      const r = ls("-l", IMG, p);
      expect(r.status, p).toBe(2);
      expect(r.out, p).toBe("");
      expect(r.err, p).toEqual([expect.stringMatching(new RegExp(`^ext4wasm: cannot access '${p}': ${what}`))]);
    }
  });

  it("a directory loop is named and skipped, the rest listed, exit 2 (as GNU ls)", () => {
    const r = ls("-R", IMG, "/");
    expect(r.err).toContain("ext4wasm: /d/e/loop: not listing already-listed directory");
    expect(r.status).toBe(2);
    expect(r.out).toContain("/d/e:\nloop\n\n/lost+found:\n\n/sub:\nbadd\n");
    expect(r.out).toContain("\n/sub/ok:\n");
  });

  it("--json reports failures as items with error and syscall, and exits as text does", () => {
    const r = runCli(["ls", "-R", "--json", IMG, "/"]);
    expect(r.status).toBe(2); // the loop
    const items = JSON.parse(r.stdout.toString("utf8")) as Record<string, unknown>[];
    const bad = items.filter((i) => "error" in i);
    expect(bad.map((i) => [i.path, i.syscall])).toEqual([
      ["/bad", "lstat"], ["/d/e/loop", "opendir"], ["/sub/badd", "lstat"], ["/sub/badd", "opendir"],
    ]);
    expect(bad[0]).toMatchObject({ name: "bad", type: "file", error: expect.stringMatching(/^EFSCORRUPTED: inode checksum mismatch/) });
    expect(bad[2]).toMatchObject({ name: "badd", type: "dir" });
    expect(items.some((i) => i.path === "/sub/ok" && i.type === "dir" && !("error" in i))).toBe(true);
    const top = runCli(["ls", "--json", IMG, "/x"]);
    expect(top.status).toBe(2);
    expect(JSON.parse(top.stdout.toString("utf8"))).toEqual([{ path: "/x", syscall: "lstat", error: "ENOENT: no such file or directory", name: "x" }]);
  });

  it.skipIf(!loop.ok)("matches GNU ls on the kernel's mount: -laR and -aR, stdout, stderr shapes, exit status", () => {
    withLoopMountSync(IMG, (mnt) => {
      for (const args of [["-laRn"], ["-aR"]]) {
        const k = kernelLs(mnt, [...args, "sub"]);
        const ours = ls(...args.map((a) => a.replace("n", "")), IMG, "/sub");
        expect(ours.out.replace(/^\/(.*:)$/gm, "$1"), args.join(" ")).toBe(k.out);
        expect(ours.err.map(shape), args.join(" ")).toEqual(k.err.map(shape));
        expect(ours.status, args.join(" ")).toBe(k.status);
      }
      // The root: all but ".." (and the total it is in), which the kernel takes from the mount's parent.
      const k = kernelLs(mnt, ["-lan"]);
      const ours = ls("-la", IMG, "/");
      const noDotDot = (t: string) => t.split("\n").filter((l) => !l.endsWith(" ..") && !l.startsWith("total ")).join("\n");
      expect(noDotDot(ours.out)).toBe(noDotDot(k.out));
      expect(ours.err.map(shape)).toEqual(k.err.map(shape));
      expect(ours.status).toBe(k.status);
    }, { readOnly: true });
  });
  it("a directory whose block cannot be read: header, 'reading directory' on stderr, nothing listed; exit 2 as the argument, 1 below it", () => {
    const img = path.join(tmp, "dirblock.img");
    fs.copyFileSync(IMG, img);
    const blk = Number(sh("debugfs", ["-R", "bmap /sub/ok 0", img]).trim());
    expect(blk).toBeGreaterThan(0);
    const fd = fs.openSync(img, "r+");
    try { fs.writeSync(fd, Buffer.alloc(1024, "garbage"), 0, 1024, blk * 1024); } finally { fs.closeSync(fd); }
    const arg = ls("-laR", img, "/sub/ok");
    expect(arg.out).toBe("/sub/ok:\ntotal 0\n");
    expect(arg.err).toEqual([expect.stringMatching(/^ext4wasm: reading directory '\/sub\/ok': EFSCORRUPTED: directory block/)]);
    expect(arg.status).toBe(2);
    const below = ls("-R", img, "/sub");
    expect(below.out).toBe("/sub:\nbadd\nf\nl\nok\n\n/sub/ok:\n");
    expect(below.status).toBe(1);
    if (!loop.ok) return;
    withLoopMountSync(img, (mnt) => {
      const k = kernelLs(mnt, ["-laRn", "sub/ok"]);
      expect(arg.out.replace(/^\//, "")).toBe(k.out);
      expect(arg.err.map(shape)).toEqual(k.err.map(shape));
      expect(arg.status).toBe(k.status);
    }, { readOnly: true });
  });

  it("a symlink whose target cannot be read is listed without '-> target', 'cannot read symbolic link' on stderr, exit 1", () => {
    // (The kernel refuses this inode at iget, so it lists "l?????????"; ours reads the inode and fails the readlink, as GNU ls reports that.)
    const img = path.join(tmp, "badlink.img");
    fs.copyFileSync(IMG, img);
    sh("debugfs", ["-w", "-R", "sif /sub/l size 200", img]); // a fast symlink claiming 200 bytes
    const r = ls("-l", img, "/sub");
    expect(r.out.split("\n")).toContainEqual(expect.stringMatching(/^lrwxrwxrwx 1 0 0 +200 \d{4}-\d\d-\d\d \d\d:\d\d l$/));
    expect(r.err).toContainEqual(expect.stringMatching(/^ext4wasm: cannot read symbolic link '\/sub\/l': EFSCORRUPTED/));
    expect(r.status).toBe(1);
    const j = runCli(["ls", "--json", img, "/sub"]);
    const items = JSON.parse(j.stdout.toString("utf8")) as Record<string, unknown>[];
    expect(items.find((i) => i.path === "/sub/l")).toMatchObject({ type: "symlink", size: 200, syscall: "readlink", error: expect.stringMatching(/^EFSCORRUPTED/) });
    expect(j.status).toBe(1);
    const top = ls("-l", img, "/sub/l");
    expect(top.status).toBe(2);
    expect(top.out).toMatch(/ \/sub\/l\n$/);
  });

  if (!loop.ok) console.log(`ls-damaged: kernel comparison skipped: ${loop.reason}`);
});

// The images of the user trial: names-only listings as long as the kernel's.
const trial = ["f_bad_inode_csum", "f_yesall", "f_holedir"];
const haveCorpus = trial.every((n) => fs.existsSync(path.join(CORPUS, `${n}.img.gz`)));
if (!haveCorpus) console.log(`ls-damaged: corpus part skipped: ${trial.join(", ")} not all under ${CORPUS}`);

describe.skipIf(!haveCorpus)("ls -a on e2fsprogs corpus images with bad inodes", () => {
  for (const name of trial) {
    it(`${name}: every name, exit 0${loop.ok ? ", as the kernel lists them" : ""}`, () => {
      const img = path.join(tmp, `${name}.img`);
      fs.writeFileSync(img, spawnSync("gunzip", ["-c", path.join(CORPUS, `${name}.img.gz`)], { maxBuffer: 64 << 20 }).stdout);
      const r = ls("-a", img, "/");
      expect(r.err).toEqual([]);
      expect(r.status).toBe(0);
      const want = { f_bad_inode_csum: 120, f_yesall: 6, f_holedir: 3 }[name];
      expect(r.out.split("\n").filter(Boolean)).toHaveLength(want!);
      if (loop.ok) {
        const k = withLoopMountSync(img, (mnt) => kernelLs(mnt, ["-a"]), { readOnly: true });
        expect(r.out).toBe(k.out);
      } else {
        console.log(`ls-damaged: ${name} kernel comparison skipped: ${loop.reason}`);
      }
    });
  }
});
