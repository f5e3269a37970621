// The node:fs-shaped API: results, node-style errors, options, partitions.

import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Ext4Error, MemoryDevice, mount } from "../host/index.js";

let work: string;
let image: string;
let bytes: Uint8Array;
const big = Buffer.alloc(1_500_000);
for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;

function mkfs(out: string, src: string, extra: string[] = []) {
  execFileSync("mkfs.ext4", ["-q", "-F", ...extra, "-d", src, out, "16M"]);
}

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-api-"));
  const src = path.join(work, "src");
  fs.mkdirSync(path.join(src, "dir/sub"), { recursive: true });
  fs.writeFileSync(path.join(src, "hello.txt"), "hello world\n");
  fs.writeFileSync(path.join(src, "big.bin"), big);
  fs.writeFileSync(path.join(src, "dir/sub/deep.txt"), "deep\n");
  fs.symlinkSync("hello.txt", path.join(src, "link"));
  fs.symlinkSync("dir/sub", path.join(src, "dirlink"));
  fs.symlinkSync("loop2", path.join(src, "loop1"));
  fs.symlinkSync("loop1", path.join(src, "loop2"));
  fs.symlinkSync("/nowhere", path.join(src, "dangling"));
  image = path.join(work, "a.img");
  mkfs(image, src);
  bytes = new Uint8Array(fs.readFileSync(image));
});

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const code = (c: string) => expect.objectContaining({ code: c });

describe("reading", () => {
  it("reads files as Buffers or strings, through symlinks, from a path or bytes", () => {
    for (const v of [mount(image, { readOnly: true }), mount(bytes, { readOnly: true })]) {
      expect(v.readFileSync("/hello.txt", "utf8")).toBe("hello world\n");
      expect(Buffer.compare(v.readFileSync("/big.bin") as Buffer, big)).toBe(0);
      expect(v.readFileSync("/link", { encoding: "utf8" })).toBe("hello world\n");
      expect(v.readFileSync("dirlink/deep.txt", "utf8")).toBe("deep\n");
      expect(v.readFileSync("/dir/sub/../sub/./deep.txt", "utf8")).toBe("deep\n");
      v.unmount();
    }
  });

  it("lists directories with and without file types, and recursively", () => {
    const v = mount(image, { readOnly: true });
    const names = (v.readdirSync("/") as string[]).sort();
    expect(names).toEqual(["big.bin", "dangling", "dir", "dirlink", "hello.txt", "link", "loop1", "loop2", "lost+found"]);
    const ents = v.readdirSync("/", { withFileTypes: true });
    const byName = new Map(ents.map((e) => [e.name, e]));
    expect(byName.get("dir")!.isDirectory()).toBe(true);
    expect(byName.get("link")!.isSymbolicLink()).toBe(true);
    expect(byName.get("hello.txt")!.isFile()).toBe(true);
    expect(byName.get("hello.txt")!.parentPath).toBe("/");
    const raw = v.readdirSync("/dir", { encoding: "buffer" }) as Buffer[];
    expect(raw.map((b) => b.toString())).toEqual(["sub"]);
    expect((v.readdirSync("/dir", { recursive: true }) as string[]).sort()).toEqual(["sub", "sub/deep.txt"]);
    // The same order as node's own readdir of the source tree (sorted; recursive breadth first).
    const src = path.join(work, "src");
    expect(v.readdirSync("/").filter((n) => n !== "lost+found")).toEqual(fs.readdirSync(src));
    // (node's string form of recursive readdir also descends into symlinked directories; we do not.)
    const rel = (parent: string, name: string, base: string) => path.posix.relative(base, path.posix.join(parent, name));
    expect(v.readdirSync("/", { recursive: true, withFileTypes: true }).map((d) => rel(d.parentPath, d.name as string, "/"))
      .filter((n) => !n.startsWith("lost+found")))
      .toEqual(fs.readdirSync(src, { recursive: true, withFileTypes: true }).map((d) => rel(d.parentPath ?? d.path, d.name, src)));
    const bufDirents = v.readdirSync("/dir", { withFileTypes: true, encoding: "buffer" });
    expect(Buffer.isBuffer(bufDirents[0].name)).toBe(true);
    v.unmount();
  });

  it("stats like node: numbers, bigint nanoseconds, lstat vs stat", () => {
    const v = mount(image, { readOnly: true });
    const st = v.statSync("/big.bin");
    expect(st.isFile()).toBe(true);
    expect(st.size).toBe(big.length);
    expect(st.blocks).toBeGreaterThanOrEqual(Math.ceil(big.length / 512));
    expect(st.mtime).toBeInstanceOf(Date);
    const lst = v.lstatSync("/link");
    expect(lst.isSymbolicLink()).toBe(true);
    expect(v.statSync("/link").ino).toBe(v.statSync("/hello.txt").ino);
    const bst = v.statSync("/hello.txt", { bigint: true });
    expect(typeof bst.mtimeNs).toBe("bigint");
    expect(bst.mtimeMs).toBe(bst.mtimeNs / 1_000_000n);
    expect(v.statSync("/nope", { throwIfNoEntry: false })).toBeUndefined();
    expect(v.existsSync("/dir/sub")).toBe(true);
    expect(v.existsSync("/dangling")).toBe(false);
    expect(v.readlinkSync("/dangling")).toBe("/nowhere");
    expect(v.realpathSync("/dirlink/deep.txt")).toBe("/dir/sub/deep.txt");
    v.unmount();
  });

  it("reads through descriptors at positions and streams", async () => {
    const v = mount(image, { readOnly: true });
    const fd = v.openSync("/big.bin");
    const buf = Buffer.alloc(1000);
    expect(v.readSync(fd, buf, 0, 1000, 123_456)).toBe(1000);
    expect(Buffer.compare(buf, big.subarray(123_456, 124_456))).toBe(0);
    expect(v.readSync(fd, buf, { position: big.length - 10 })).toBe(10);
    expect(v.readSync(fd, buf, 0, 100, big.length)).toBe(0);
    let total = 0;
    let n: number;
    while ((n = v.readSync(fd, buf)) > 0) total += n;
    expect(total).toBe(big.length);
    v.closeSync(fd);
    expect(() => v.readSync(fd, buf)).toThrow(code("EBADF"));
    const chunks: Buffer[] = [];
    for await (const c of v.createReadStream("/big.bin", { start: 10, end: 200_009 })) chunks.push(c as Buffer);
    expect(Buffer.compare(Buffer.concat(chunks), big.subarray(10, 200_010))).toBe(0);
    const fh = await v.promises.open("/hello.txt");
    expect((await fh.readFile("utf8"))).toBe("hello world\n");
    expect((await fh.stat()).size).toBe(12);
    await fh.close();
    expect(await v.promises.readFile("/dir/sub/deep.txt", "utf8")).toBe("deep\n");
    expect(((await v.promises.readdir("/dir")) as string[])).toEqual(["sub"]);
    v.unmount();
  });
});

describe("errors are node-style and typed", () => {
  it("names the code, syscall and path", () => {
    const v = mount(image, { readOnly: true });
    try {
      v.readFileSync("/missing/file");
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(Ext4Error);
      const err = e as Ext4Error;
      expect(err.code).toBe("ENOENT");
      expect(err.errno).toBe(-2);
      expect(err.syscall).toBe("open");
      expect(err.path).toBe("/missing/file");
      expect(err.message).toContain("'/missing/file'");
    }
    expect(() => v.readdirSync("/hello.txt")).toThrow(code("ENOTDIR"));
    expect(() => v.readFileSync("/hello.txt/x")).toThrow(code("ENOTDIR"));
    expect(() => v.readFileSync("/dir")).toThrow(code("EISDIR"));
    expect(() => v.readFileSync("/loop1")).toThrow(code("ELOOP"));
    expect(() => v.statSync("/hello.txt/")).toThrow(code("ENOTDIR"));
    expect(v.lstatSync("/dirlink/").isDirectory()).toBe(true);
    expect(v.lstatSync("/dir/").isDirectory()).toBe(true);
    expect(() => v.readlinkSync("/hello.txt")).toThrow(code("EINVAL"));
    expect(() => v.statSync("/" + "a".repeat(256))).toThrow(code("ENAMETOOLONG"));
    expect(() => v.readFileSync("/dangling")).toThrow(code("ENOENT"));
    expect(() => v.getxattr("/hello.txt", "user.none")).toThrow(code("ENODATA"));
    expect(() => v.openSync("/hello.txt", "w")).toThrow(code("EROFS"));
    v.unmount();
    expect(() => v.readdirSync("/")).toThrow(code("EBADF"));
  });

  it("refuses bad mount options, missing images and non-filesystems", () => {
    expect(() => mount(image, { mountOptions: "bogus" })).toThrow(code("EINVAL"));
    expect(() => mount(image, { mountOptions: "data=sideways" })).toThrow(code("EINVAL"));
    expect(() => mount(image, { mountOptions: "barrier=2" })).toThrow(code("EINVAL"));
    expect(() => mount(path.join(work, "absent.img"))).toThrow(code("ENOENT"));
    expect(() => mount(new Uint8Array(64 << 10))).toThrow(code("EINVAL"));
    expect(() => mount(new Uint8Array(100))).toThrow(code("EINVAL"));
    expect(() => mount(bytes, { cacheSize: 1000 })).toThrow(code("EINVAL"));
    expect(() => mount(42 as never)).toThrow(code("EINVAL"));
  });

  it("gates features: unknown incompat refuses, unknown ro_compat allows read-only only", () => {
    const incompat = bytes.slice();
    incompat[1024 + 0x60 + 3] |= 0x40; // an incompat bit nobody defines
    expect(() => mount(incompat, { readOnly: true, ignoreChecksums: true })).toThrow(code("EOPNOTSUPP"));
    const ro = bytes.slice();
    ro[1024 + 0x64 + 3] |= 0x40; // an unknown ro_compat bit
    expect(() => mount(ro.slice(), { ignoreChecksums: true })).toThrow(code("EROFS"));
    const v = mount(ro, { readOnly: true, ignoreChecksums: true });
    expect(v.readFileSync("/hello.txt", "utf8")).toBe("hello world\n");
    v.unmount();
  });

  it("reports a superblock checksum mismatch, and reads anyway when told to ignore checksums", () => {
    const bad = bytes.slice();
    bad[1024 + 0x78] ^= 0xff; // volume name byte: covered by the checksum
    expect(() => mount(bad, { readOnly: true })).toThrow(code("EFSCORRUPTED"));
    const v = mount(bad, { readOnly: true, ignoreChecksums: true });
    expect(v.readFileSync("/hello.txt", "utf8")).toBe("hello world\n");
    v.unmount();
  });

  it("never writes a read-only device", () => {
    class Watched extends MemoryDevice {
      writes = 0;
      override write(pos: number, src: Uint8Array) { this.writes++; super.write(pos, src); }
    }
    const dev = new Watched(bytes.slice());
    const v = mount(dev, { readOnly: true });
    v.readdirSync("/", { recursive: true });
    v.readFileSync("/big.bin");
    v.unmount();
    expect(dev.writes).toBe(0);
  });
});

describe("partitions", () => {
  it("mounts a filesystem at an offset inside a disk image", () => {
    const offset = 1 << 20;
    const disk = new Uint8Array(offset + bytes.length + 4096);
    disk.set(bytes, offset);
    const v = mount(disk, { readOnly: true, offset });
    expect(v.readFileSync("/hello.txt", "utf8")).toBe("hello world\n");
    v.unmount();
    expect(() => mount(disk, { readOnly: true, offset: disk.length + 1 })).toThrow(code("EINVAL"));
    expect(() => mount(disk, { readOnly: true, offset: 4096 })).toThrow(code("EINVAL"));
  });

  it("reads a truncated device as far as it goes, with EIO/EFSCORRUPTED beyond", () => {
    const short = bytes.slice(0, Math.floor(bytes.length / 2));
    let v;
    try {
      v = mount(short, { readOnly: true });
    } catch (e) {
      expect(e).toBeInstanceOf(Ext4Error);
      return;
    }
    try {
      v.readFileSync("/big.bin");
    } catch (e) {
      expect(e).toBeInstanceOf(Ext4Error);
    }
    v.unmount();
  });
});

describe("verity and encryption flags", () => {
  it("reads a verity file's content (bh path even with buffered_iomap); refuses an encrypted one", () => {
    const img = path.join(work, "flags.img");
    fs.copyFileSync(image, img);
    // EXTENTS | VERITY on one file, EXTENTS | ENCRYPT on another, and the features that go with them.
    execFileSync("debugfs", ["-w", "-R", "feature verity encrypt", img], { stdio: "ignore" });
    execFileSync("debugfs", ["-w", "-R", "sif /big.bin flags 0x180000", img], { stdio: "ignore" });
    execFileSync("debugfs", ["-w", "-R", "sif /hello.txt flags 0x80800", img], { stdio: "ignore" });
    const v = mount(img, { readOnly: true, mountOptions: "buffered_iomap" });
    try {
      expect(Buffer.compare(v.readFileSync("/big.bin") as Buffer, big)).toBe(0);
      expect(v.ioPathOf("/big.bin")).toBe("bh");
      expect(v.ioPathOf("/dir/sub/deep.txt")).toBe("iomap");
      expect(v.statSync("/hello.txt").size).toBe(12);
      expect(() => v.readFileSync("/hello.txt")).toThrow(code("ENOKEY"));
    } finally {
      v.unmount();
    }
  });
});

describe("inode fields as ext4_iget reads them", () => {
  it("takes an unused extra area (i_extra_isize 0) as 32 bytes for times; i_size_high only for files", () => {
    const img = path.join(work, "iget.img");
    fs.copyFileSync(image, img);
    for (const req of ["sif /hello.txt extra_isize 0", "sif /hello.txt mtime_extra 1", "sif /dir size_high 1"]) {
      execFileSync("debugfs", ["-w", "-R", req, img], { stdio: "ignore" });
    }
    const v = mount(img, { readOnly: true });
    try {
      const st = v.statSync("/hello.txt", { bigint: true });
      expect(st.mtimeNs / 1_000_000_000n).toBeGreaterThan(2n ** 32n); // epoch bit 1 honoured
      expect(v.statSync("/dir").size).toBeLessThan(2 ** 32); // size_high ignored for a directory
      expect(v.readFileSync("/hello.txt", "utf8")).toBe("hello world\n");
    } finally {
      v.unmount();
    }
  });
});

describe("geometry variants", () => {
  it("finds meta_bg descriptors when sparse_super2 places the backups", () => {
    const img = path.join(work, "s2.img");
    execFileSync("mkfs.ext4", ["-q", "-F", "-b", "1024", "-O", "meta_bg,sparse_super2,^resize_inode", "-d", path.join(work, "src"), img, "136000"]);
    expect(execFileSync("sh", ["-c", `e2fsck -fn ${img} >/dev/null 2>&1; echo $?`], { encoding: "utf8" }).trim()).toBe("0");
    const v = mount(img, { readOnly: true });
    try {
      expect(v.fs.groups.length).toBeGreaterThan(16);
      expect(Buffer.compare(v.readFileSync("/big.bin") as Buffer, big)).toBe(0);
    } finally {
      v.unmount();
    }
  });
});

describe("casefolded directories", () => {
  it("match names case-insensitively, exact names first", () => {
    const src = path.join(work, "cfsrc");
    fs.mkdirSync(path.join(src, "cf"), { recursive: true });
    fs.writeFileSync(path.join(src, "cf", "Readme.TXT"), "case\n");
    for (let i = 0; i < 300; i++) fs.writeFileSync(path.join(src, "cf", `file-${i}`), `${i}`);
    const img = path.join(work, "cf.img");
    execFileSync("mkfs.ext4", ["-q", "-F", "-O", "casefold", "-d", src, img, "16M"]);
    // +F (with extents) on the directory, then let e2fsck re-index it with folded hashes.
    execFileSync("debugfs", ["-w", "-R", "sif /cf flags 0x40081000", img], { stdio: "ignore" });
    execFileSync("sh", ["-c", `e2fsck -fyD ${img} >/dev/null 2>&1; true`]);
    expect(execFileSync("sh", ["-c", `e2fsck -fn ${img} >/dev/null 2>&1; echo $?`], { encoding: "utf8" }).trim()).toBe("0");
    const v = mount(img, { readOnly: true });
    try {
      for (const p of ["/cf/Readme.TXT", "/cf/readme.txt", "/cf/README.TXT"]) expect(v.readFileSync(p, "utf8")).toBe("case\n");
      expect(v.readFileSync("/cf/FILE-299", "utf8")).toBe("299");
      expect(v.existsSync("/cf/readme.txt2")).toBe(false);
      expect(v.existsSync("/CF/readme.txt")).toBe(false); // the root is not casefolded
    } finally {
      v.unmount();
    }
  });
});
