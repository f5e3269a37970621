// The ext4wasm CLI, run as a child process against the built package
// (bin/ext4wasm.mjs -> dist/cli.mjs; ensureBuilt() rebuilds a stale dist/).
// Images come from a generated source tree via `mkfs.ext4 -d`, and each
// output is checked against an independent truth: dumpe2fs -h for info, the
// source tree for bytes/names/modes/links/xattrs, debugfs and the library's
// own lstat for the times the image really records.
//
// What mkfs -d (e2fsprogs 1.47.0) records, asserted below rather than assumed:
// whole seconds only (nanoseconds dropped, pre-1970 floored) and no epoch
// bits, so 2100 wraps. The two timestamp probes are therefore rewritten with
// debugfs `sif` to the exact source nanoseconds after mkfs.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount, type BigIntStats } from "../host/index.js";
import {
  debugfsSetTime, debugfsTime, dumpe2fsHeader, ensureBuilt, floorToMicros, floorToSec, hostXattrs, joinBuf,
  pseudoRandom, runCli, sh, touchNs, walkHost, BIN, type CliResult,
} from "./cli-helpers.js";

const isRoot = process.getuid?.() === 0;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-cli-"));
const SRC = path.join(tmp, "src");
const IMG = path.join(tmp, "tree.img");
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const BAD_NAME = Buffer.from([0x62, 0x61, 0x64, 0x2d, 0xff, 0xfe, 0x2e, 0x74, 0x78, 0x74]); // "bad-\xff\xfe.txt"
const OLD_MTIME = -315619199876543211n; // 1960-01-01T00:00:00.123456789Z
const OLD_ATIME = -333000000123456789n; // 1959-06-13
const FUTURE_MTIME = 4102444800987654321n; // 2100-01-01T00:00:00.987654321Z
const FUTURE_ATIME = 4100000000555555555n; // 2099-12-03
const BIG = pseudoRandom((3 << 20) + 123, 42);
const SPARSE_SIZE = 8 << 20;

function buildSource(): void {
  const p = (rel: string) => path.join(SRC, rel);
  fs.mkdirSync(p("sub/deeper"), { recursive: true });
  fs.writeFileSync(p("hello.txt"), "hello, ext4\n");
  fs.writeFileSync(p("big.bin"), BIG);
  const fd = fs.openSync(p("sparse.bin"), "w");
  fs.writeSync(fd, Buffer.alloc(5000, 0x58), 0, 5000, 1 << 20);
  fs.writeSync(fd, pseudoRandom(4096, 9), 0, 4096, SPARSE_SIZE - 4096);
  fs.closeSync(fd);
  fs.symlinkSync("hello.txt", p("link-to-hello"));
  fs.symlinkSync("no/such/target", p("dangling"));
  fs.writeFileSync(p("hard-a"), "two names, one inode\n");
  fs.linkSync(p("hard-a"), p("sub/hard-b"));
  sh("mkfifo", [p("pipe")]);
  fs.writeFileSync(p("setuid-bin"), "#!/bin/sh\n");
  fs.chmodSync(p("setuid-bin"), 0o4755);
  fs.writeFileSync(p("private"), "secret\n");
  fs.chmodSync(p("private"), 0o600);
  fs.writeFileSync(p("sub/readonly"), "ro\n");
  fs.chmodSync(p("sub/readonly"), 0o444);
  fs.mkdirSync(p("shared"));
  fs.chmodSync(p("shared"), 0o2775);
  fs.mkdirSync(p("tmp"));
  fs.chmodSync(p("tmp"), 0o1777);
  fs.writeFileSync(p("sub/deeper/leaf.txt"), "leaf\n");
  // xattrs: the non-UTF-8 file gets its attribute under an ASCII name first (setfattr takes text paths).
  sh("setfattr", ["-n", "user.color", "-v", "blue", p("hello.txt")]);
  sh("setfattr", ["-n", "user.empty", "-v", "", p("private")]);
  sh("setfattr", ["-n", "user.dirattr", "-v", "0x00ff10", p("sub")]);
  fs.writeFileSync(p("bad-tmp"), "not utf-8 name\n");
  sh("setfattr", ["-n", "user.k", "-v", "v", p("bad-tmp")]);
  fs.renameSync(p("bad-tmp"), joinBuf(Buffer.from(SRC), BAD_NAME));
  fs.writeFileSync(p("old.txt"), "from 1960\n");
  fs.writeFileSync(p("future.txt"), "from 2100\n");
  if (isRoot) {
    sh("mknod", [p("null-dev"), "c", "1", "3"]);
    fs.chownSync(p("hello.txt"), 1234, 5678);
    fs.lchownSync(p("link-to-hello"), 4321, 8765);
  }
  // Times last: creating entries moves directory mtimes.
  touchNs(p("old.txt"), OLD_ATIME, OLD_MTIME);
  touchNs(p("future.txt"), FUTURE_ATIME, FUTURE_MTIME);
}

function oneLine(r: CliResult): string {
  const lines = r.stderr.split("\n").filter(Boolean);
  expect(lines, r.stderr).toHaveLength(1);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(lines[0]).toMatch(/^ext4wasm: /);
  return lines[0];
}

const ok = (r: CliResult): string => {
  expect(r.stderr, `exit ${r.status}`).toBe("");
  expect(r.status).toBe(0);
  return r.stdout.toString("latin1");
};

beforeAll(() => {
  ensureBuilt();
  buildSource();
  sh("mkfs.ext4", ["-q", "-F", "-b", "4096", "-L", "clitest", "-d", SRC, IMG, "32M"]);
  // What mkfs -d did to the probes: seconds only, 2100 wrapped (no epoch bits).
  const fut = debugfsTime(IMG, "/future.txt", "mtime");
  expect(fut.extra).toBe(0);
  expect(fut.lo).toBe(Number(BigInt.asUintN(32, FUTURE_MTIME / 1_000_000_000n)));
  expect(debugfsTime(IMG, "/old.txt", "mtime").extra).toBe(0);
  // Give the image the exact source times, nanoseconds and epoch bits included.
  const cmds = [
    ...debugfsSetTime("/old.txt", "atime", OLD_ATIME), ...debugfsSetTime("/old.txt", "mtime", OLD_MTIME),
    ...debugfsSetTime("/future.txt", "atime", FUTURE_ATIME), ...debugfsSetTime("/future.txt", "mtime", FUTURE_MTIME),
  ];
  const cmdFile = path.join(tmp, "sif.cmds");
  fs.writeFileSync(cmdFile, cmds.join("\n") + "\n");
  sh("debugfs", ["-w", "-f", cmdFile, IMG]);
  expect(debugfsTime(IMG, "/future.txt", "mtime").extra).toBe(Number((987654321n << 2n) | 1n));
  sh("e2fsck", ["-fn", IMG]);
}, 300_000);

/** What the image records, read through the library. */
function imageStats(): Map<string, BigIntStats> {
  const vol = mount(IMG, { readOnly: true });
  const out = new Map<string, BigIntStats>();
  try {
    const rec = (dir: Buffer, rel: Buffer) => {
      for (const n of vol.readdirSync(dir, { encoding: "buffer" }) as Buffer[]) {
        const p = Buffer.concat([dir.length === 1 ? dir : Buffer.concat([dir, Buffer.from("/")]), n]);
        const r = joinBuf(rel, n);
        const st = vol.lstatSync(p, { bigint: true });
        out.set(r.toString("latin1"), st);
        if (st.isDirectory()) rec(p, r);
      }
    };
    rec(Buffer.from("/"), Buffer.alloc(0));
  } finally {
    vol.unmount();
  }
  return out;
}

describe("the image the tests read", () => {
  it("records whole-second times from mkfs -d and the exact nanoseconds debugfs wrote", () => {
    const img = imageStats();
    expect(img.get("old.txt")!.mtimeNs).toBe(OLD_MTIME);
    expect(img.get("old.txt")!.atimeNs).toBe(OLD_ATIME);
    expect(img.get("future.txt")!.mtimeNs).toBe(FUTURE_MTIME);
    expect(img.get("future.txt")!.atimeNs).toBe(FUTURE_ATIME);
    for (const e of walkHost(SRC)) {
      const key = e.rel.toString("latin1");
      if (key === "old.txt" || key === "future.txt") continue;
      expect(img.get(key)?.mtimeNs, key).toBe(floorToSec(e.st.mtimeNs));
    }
  });
});

describe("info", () => {
  it("--json matches dumpe2fs -h", () => {
    const j = JSON.parse(ok(runCli(["info", "--json", IMG])));
    const d = dumpe2fsHeader(IMG);
    expect(j.uuid).toBe(d.get("Filesystem UUID"));
    expect(j.volumeName).toBe(d.get("Filesystem volume name"));
    expect(j.blockCount).toBe(Number(d.get("Block count")));
    expect(j.inodeCount).toBe(Number(d.get("Inode count")));
    expect(j.freeBlocks).toBe(Number(d.get("Free blocks")));
    expect(j.freeInodes).toBe(Number(d.get("Free inodes")));
    expect(j.blockSize).toBe(Number(d.get("Block size")));
    expect(j.inodeSize).toBe(Number(d.get("Inode size")));
    expect(j.inodesPerGroup).toBe(Number(d.get("Inodes per group")));
    expect(j.flexGroupSize).toBe(Number(d.get("Flex block group size")));
    expect(j.features).toEqual(d.get("Filesystem features")!.split(/\s+/));
    expect(j.hashVersion).toBe(d.get("Default directory hash"));
    expect(j.hashSeed).toBe(d.get("Directory Hash Seed"));
    expect(j.checksumType).toBe(d.get("Checksum type"));
    expect(j.checksum).toBe(d.get("Checksum"));
    expect(j.journal.inode).toBe(Number(d.get("Journal inode")));
    expect(j.journal.size / 1024 + "k").toBe(d.get("Total journal size"));
    expect(j.journal.recoveryNeeded).toBe(false);
    expect(j.state).toBe(d.get("Filesystem state"));
    expect(j.created).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });

  it("prints a dumpe2fs-style text summary", () => {
    const text = ok(runCli(["info", IMG]));
    const d = dumpe2fsHeader(IMG);
    expect(text).toContain(`Filesystem UUID:          ${d.get("Filesystem UUID")}\n`);
    expect(text).toContain(`Filesystem features:      ${d.get("Filesystem features")}\n`);
    expect(text).toMatch(/^Journal recovery:\s+not needed$/m);
  });

  it("--offset finds a filesystem inside a bigger image", () => {
    const disk = path.join(tmp, "disk.img");
    fs.writeFileSync(disk, Buffer.concat([Buffer.alloc(1 << 20), fs.readFileSync(IMG)]));
    const uuid = dumpe2fsHeader(IMG).get("Filesystem UUID");
    expect(JSON.parse(ok(runCli(["info", "--json", "--offset", "1M", disk]))).uuid).toBe(uuid);
    expect(JSON.parse(ok(runCli(["info", "--offset=2048s", "--json", disk]))).uuid).toBe(uuid);
    const r = runCli(["info", disk]);
    expect(r.status).toBe(1);
    expect(oneLine(r)).toMatch(/bad superblock magic/);
    fs.rmSync(disk);
  });
});

describe("ls", () => {
  it("lists names one per line, bytewise sorted, raw bytes", () => {
    const names = ok(runCli(["ls", IMG])).split("\n").filter(Boolean);
    const want = [...fs.readdirSync(SRC, { encoding: "buffer" }), Buffer.from("lost+found")].sort(Buffer.compare).map((b) => b.toString("latin1"));
    expect(names).toEqual(want);
  });

  it("-l has the ls -l shape", () => {
    const lines = ok(runCli(["ls", "-l", IMG, "/"])).split("\n").filter(Boolean);
    expect(lines[0]).toMatch(/^total \d+$/);
    const shape = /^[-dlpcbs][-r][-w][-xsS][-r][-w][-xsS][-r][-w][-xtT] +\d+ \d+ +\d+ +(\d+|\d+, +\d+) \d{4}-\d\d-\d\d \d\d:\d\d .+$/;
    for (const l of lines.slice(1)) expect(l).toMatch(shape);
    const by = (name: string) => lines.find((l) => l.endsWith(` ${name}`) || l.includes(` ${name} -> `))!;
    expect(by("setuid-bin")).toMatch(/^-rwsr-xr-x /);
    expect(by("shared")).toMatch(/^drwxrwsr-x /);
    expect(by("tmp")).toMatch(/^drwxrwxrwt /);
    expect(by("pipe")).toMatch(/^p/);
    expect(by("link-to-hello")).toMatch(/^l.* link-to-hello -> hello\.txt$/);
    expect(by("hard-a")).toMatch(/^-\S+ +2 /);
    expect(by("old.txt")).toContain(" 1960-01-01 00:00 old.txt");
    expect(by("future.txt")).toContain(" 2100-01-01 00:00 future.txt");
    if (isRoot) {
      expect(by("null-dev")).toMatch(/^c.* 1, +3 /);
      expect(by("hello.txt")).toMatch(/ 1234 +5678 /);
    }
  });

  it("-R prints path headers; -a adds dot entries", () => {
    const text = ok(runCli(["ls", "-R", IMG, "/sub"]));
    expect(text).toMatch(/^\/sub:\nd.*|^\/sub:\ndeeper\n/);
    expect(text).toContain("\n/sub/deeper:\nleaf.txt\n");
    const all = ok(runCli(["ls", "-a", IMG, "/sub"])).split("\n").filter(Boolean);
    expect(all.slice(0, 2)).toEqual([".", ".."]);
  });

  it("--json -R gives typed entries with nanosecond mtimes as strings", () => {
    const arr = JSON.parse(ok(runCli(["ls", "--json", "-R", IMG, "/"]))) as Record<string, unknown>[];
    const find = (p: string) => arr.find((e) => e.path === p)!;
    for (const e of arr) for (const k of ["name", "path", "type", "mode", "uid", "gid", "size", "nlink", "ino", "mtimeNs"]) expect(e, k).toHaveProperty(k);
    expect(find("/future.txt").mtimeNs).toBe(FUTURE_MTIME.toString());
    expect(find("/old.txt").mtimeNs).toBe(OLD_MTIME.toString());
    expect(find("/link-to-hello")).toMatchObject({ type: "symlink", target: "hello.txt" });
    expect(find("/hard-a").ino).toBe(find("/sub/hard-b").ino);
    expect(find("/sub/deeper/leaf.txt").type).toBe("file");
    expect(find("/pipe").type).toBe("fifo");
    const bad = arr.find((e) => e.nameHex === BAD_NAME.toString("hex"));
    expect(bad?.type).toBe("file");
  });
});

describe("cat", () => {
  it("writes the exact bytes, following symlinks", () => {
    expect(runCli(["cat", IMG, "/big.bin"]).stdout.equals(BIG)).toBe(true);
    expect(runCli(["cat", "-o", "buffered_iomap", IMG, "/big.bin"]).stdout.equals(BIG)).toBe(true);
    expect(ok(runCli(["cat", IMG, "/link-to-hello"]))).toBe("hello, ext4\n");
    const sparse = runCli(["cat", IMG, "/sparse.bin"]).stdout;
    expect(sparse.equals(fs.readFileSync(path.join(SRC, "sparse.bin")))).toBe(true);
  });

  it("stops quietly when the reader goes away (EPIPE)", () => {
    const r = spawnSync("bash", ["-c", `"${process.execPath}" "${BIN}" cat "${IMG}" /big.bin | head -c 10 >/dev/null; echo "\${PIPESTATUS[0]}"`], { encoding: "utf8" });
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe("0");
  });

  it("refuses a directory with one line", () => {
    const r = runCli(["cat", IMG, "/sub"]);
    expect(r.status).toBe(1);
    expect(oneLine(r)).toBe("ext4wasm: EISDIR: illegal operation on a directory, read '/sub'");
  });
});

describe("stat", () => {
  it("--json reports nanosecond times, flags, I/O path and xattrs", () => {
    const j = JSON.parse(ok(runCli(["stat", "--json", IMG, "/future.txt"])));
    expect(j).toMatchObject({ type: "file", size: 10, mtimeNs: FUTURE_MTIME.toString(), atimeNs: FUTURE_ATIME.toString(), ioPath: "bh", modeOctal: "0644" });
    expect(j.mtime).toBe("2100-01-01T00:00:00.987654321Z");
    expect(j.flags).toContain("extents");
    expect(JSON.parse(ok(runCli(["stat", "--json", "-o", "buffered_iomap", IMG, "/future.txt"]))).ioPath).toBe("iomap");
    expect(JSON.parse(ok(runCli(["stat", "--json", IMG, "/hello.txt"]))).xattrs).toContain("user.color");
    const link = JSON.parse(ok(runCli(["stat", "--json", IMG, "/link-to-hello"])));
    expect(link).toMatchObject({ type: "symlink", target: "hello.txt", ioPath: null });
    expect(JSON.parse(ok(runCli(["stat", "-L", "--json", IMG, "/link-to-hello"]))).type).toBe("file");
  });

  it("prints stat(1)-like text", () => {
    const text = ok(runCli(["stat", IMG, "/old.txt"]));
    expect(text).toMatch(/^Access: \(0644\/-rw-r--r--\)/m);
    expect(text).toContain("Modify: 1960-01-01 00:00:00.123456789 +0000\n");
    expect(text).toMatch(/^ Flags: extents/m);
    expect(text).toMatch(/^\s+IO: bh/m);
  });
});

describe("get", () => {
  it("copies the whole tree back as the source was (within what the image keeps)", () => {
    const out = path.join(tmp, "out");
    const r = runCli(["get", IMG, "/", out]);
    expect(r.status, r.stderr).toBe(0);
    if (isRoot) expect(r.stderr).toBe("");

    // lstat everything before reading anything (reads move atimes).
    const got = new Map(walkHost(out).map((e) => [e.rel.toString("latin1"), e]));
    const img = imageStats();
    const src = walkHost(SRC);
    expect([...got.keys()].sort()).toEqual([...src.map((e) => e.rel.toString("latin1")), "lost+found"].sort());

    for (const s of src) {
      const key = s.rel.toString("latin1");
      const o = got.get(key)!;
      const i = img.get(key)!;
      const kind = (st: fs.BigIntStats) => Number(st.mode) & 0o170000;
      expect(kind(o.st), key).toBe(kind(s.st));
      if (!s.st.isSymbolicLink()) expect(Number(o.st.mode) & 0o7777, key).toBe(Number(s.st.mode) & 0o7777);
      if (isRoot) expect([o.st.uid, o.st.gid], key).toEqual([s.st.uid, s.st.gid]);
      // Times: the image's, to the microsecond (node's utimes limit); those are the source's as mkfs/debugfs kept them.
      expect(o.st.mtimeNs, `${key} mtime`).toBe(floorToMicros(i.mtimeNs));
      expect(o.st.atimeNs, `${key} atime`).toBe(floorToMicros(i.atimeNs));
      const exact = key === "old.txt" || key === "future.txt";
      expect(o.st.mtimeNs, `${key} mtime vs source`).toBe(exact ? floorToMicros(s.st.mtimeNs) : floorToSec(s.st.mtimeNs));
      if (s.st.isFile()) expect(o.st.size, key).toBe(s.st.size);
      if (s.st.isCharacterDevice()) expect(o.st.rdev).toBe(s.st.rdev);
    }
    // Pre-1970 and post-2038 with sub-second digits.
    expect(got.get("old.txt")!.st.mtimeNs).toBe(-315619199876544000n);
    expect(got.get("future.txt")!.st.mtimeNs).toBe(4102444800987654000n);
    expect(got.get("old.txt")!.st.atimeNs).toBe(floorToMicros(OLD_ATIME));

    // Bytes, symlink targets, hard links, sparseness, xattrs.
    for (const s of src) {
      const o = got.get(s.rel.toString("latin1"))!;
      if (s.st.isFile()) expect(fs.readFileSync(o.abs).equals(fs.readFileSync(s.abs)), s.rel.toString("latin1")).toBe(true);
      if (s.st.isSymbolicLink()) expect(fs.readlinkSync(o.abs, { encoding: "buffer" })).toEqual(fs.readlinkSync(s.abs, { encoding: "buffer" }));
    }
    expect(got.get("hard-a")!.st.ino).toBe(got.get("sub/hard-b")!.st.ino);
    expect(got.get("hard-a")!.st.nlink).toBe(2n);
    const sparse = got.get("sparse.bin")!.st;
    expect(sparse.size).toBe(BigInt(SPARSE_SIZE));
    expect(Number(sparse.blocks) * 512).toBeLessThanOrEqual(Number(src.find((e) => e.rel.toString() === "sparse.bin")!.st.blocks) * 512 + 8192);
    expect(Number(sparse.blocks) * 512).toBeLessThan(SPARSE_SIZE / 8);
    const du = Number(sh("du", ["-k", path.join(out, "sparse.bin")]).split("\t")[0]);
    expect(du).toBeLessThan(64);
    const srcX = hostXattrs(SRC);
    expect(srcX.get("hello.txt")?.get("user.color")).toBe(Buffer.from("blue").toString("base64"));
    expect(srcX.get("private")?.get("user.empty")).toBe("");
    expect(srcX.get("sub")?.get("user.dirattr")).toBe(Buffer.from([0x00, 0xff, 0x10]).toString("base64"));
    expect(srcX.get(BAD_NAME.toString("latin1"))?.get("user.k")).toBe(Buffer.from("v").toString("base64"));
    expect(hostXattrs(out)).toEqual(srcX);
    expect(got.has(BAD_NAME.toString("latin1"))).toBe(true);
  });

  it("copies one file into an existing directory, refuses to overwrite without --force", () => {
    const dir = path.join(tmp, "single");
    fs.mkdirSync(dir);
    ok(runCli(["get", IMG, "/setuid-bin", dir]));
    const st = fs.statSync(path.join(dir, "setuid-bin"));
    expect(st.mode & 0o7777).toBe(0o4755);
    const again = runCli(["get", IMG, "/setuid-bin", dir]);
    expect(again.status).toBe(1);
    expect(oneLine(again)).toMatch(/^ext4wasm: EEXIST: .*setuid-bin.*--force/);
    ok(runCli(["get", "--force", IMG, "/hello.txt", path.join(dir, "setuid-bin")]));
    expect(fs.readFileSync(path.join(dir, "setuid-bin"), "utf8")).toBe("hello, ext4\n");
    ok(runCli(["get", "-q", IMG, "/link-to-hello", path.join(dir, "l")]));
    expect(fs.readlinkSync(path.join(dir, "l"))).toBe("hello.txt");
  });
});

describe("errors", () => {
  it("a missing image is one ENOENT line, exit 1", () => {
    const r = runCli(["ls", path.join(tmp, "nope.img")]);
    expect(r.status).toBe(1);
    expect(oneLine(r)).toBe(`ext4wasm: ENOENT: no such file or directory, stat '${path.join(tmp, "nope.img")}'`);
  });

  it("a missing path inside the image is one ENOENT line, exit 1", () => {
    for (const cmd of [["cat", IMG, "/x"], ["stat", IMG, "/x"], ["get", IMG, "/x", path.join(tmp, "x")]]) {
      const r = runCli(cmd);
      expect(r.status, cmd.join(" ")).toBe(1);
      expect(oneLine(r)).toMatch(/^ext4wasm: ENOENT: no such file or directory, l?stat '\/x'$/);
    }
    // ls words it as GNU ls does, and exits 2 for an argument it cannot access (its "serious trouble").
    const r = runCli(["ls", IMG, "/x"]);
    expect(r.status).toBe(2);
    expect(oneLine(r)).toBe("ext4wasm: cannot access '/x': ENOENT: no such file or directory");
  });

  it("usage errors exit 2 with one line", () => {
    for (const cmd of [["ls", "--bogus", IMG], ["cat", IMG], ["frobnicate"], ["ls", "-Z", IMG], ["info", IMG, "extra"], ["info", "--offset", "lots", IMG]]) {
      const r = runCli(cmd);
      expect(r.status, cmd.join(" ")).toBe(2);
      oneLine(r);
    }
    expect(runCli([]).status).toBe(2);
  });

  it("bad mount options are operational errors; EXT4WASM_DEBUG=1 adds the stack", () => {
    const r = runCli(["ls", "-o", "bogus", IMG]);
    expect(r.status).toBe(1);
    expect(oneLine(r)).toContain("unknown mount option 'bogus'");
    const d = runCli(["ls", "-o", "bogus", IMG], { EXT4WASM_DEBUG: "1" });
    expect(d.stderr).toMatch(/^\s+at /m);
  });

  it("--help works for every command", () => {
    for (const c of ["info", "ls", "cat", "stat", "get", "demo"]) {
      expect(ok(runCli([c, "--help"]))).toMatch(new RegExp(`^usage: ext4wasm ${c}`));
    }
    expect(ok(runCli(["--help"]))).toContain("commands:");
  });
});

describe("demo", () => {
  it("builds an image and shows both I/O paths agreeing", () => {
    const text = ok(runCli(["demo"]));
    expect(text).toMatch(/^result: all \d+ files agree across both I\/O paths/m);
    expect(text).toMatch(/\(bh\) \| [0-9a-f]{12} \(iomap\)\s+agree/);
    expect(text).toMatch(/buffered_iomap\s+\(iomap\) cold\s+\d+ MiB\/s/);
    expect(text).not.toContain("DIFFER");
  });
});
