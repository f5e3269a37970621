// Devices and files past 16 TiB: page indexes of 2^32 and beyond must reach
// the folio cache whole (they once wrapped to 32 bits on the way into wasm and
// returned another block). A synthetic device needs nothing; the images live
// as sparse files on a tmpfs this test mounts itself (ext4 on / cannot hold a
// 20 TiB file), and the kernel-written one also needs loop mounts.

import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BufferCache } from "../host/cache/buffer-cache.js";
import { FolioCache } from "../host/cache/folio-cache.js";
import type { BlockDevice } from "../host/device/block-device.js";
import { mount } from "../host/index.js";
import { crc32c, Ext4Wasm } from "../host/wasm/module.js";
import { runSync } from "./helpers/exec.js";
import { loopMountSupport, withLoopMount } from "./helpers/kernel.js";

const TiB = 2 ** 40;

/** A device of any size whose every block starts with its own block number (f64); no bytes stored. */
class PatternDevice implements BlockDevice {
  readonly readOnly = true;
  reads = 0;
  constructor(readonly size: number, private readonly bs: number) {}
  read(pos: number, dst: Uint8Array): void {
    this.reads++;
    dst.fill(0);
    const dv = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
    for (let b = Math.ceil(pos / this.bs); b * this.bs + 8 <= pos + dst.length; b++) dv.setFloat64(b * this.bs - pos, b, true);
  }
  write(): void { throw new Error("read-only"); }
  flush(): void {}
  close(): void {}
}

describe("metadata blocks past 16 TiB (synthetic device)", () => {
  it.each([4096, 1024, 65536])("block size %i: blocks whose page indexes differ only above bit 32 stay apart", (bs) => {
    const dev = new PatternDevice(40 * TiB, bs);
    const w = new Ext4Wasm(8 << 20, Math.log2(bs));
    const bc = new BufferCache(new FolioCache(w, bs), dev, dev.size / bs);
    // Block numbers whose device page indexes are p, p + 2^32, p + 2^33.
    const stride = (2 ** 32 * 4096) / bs;
    const low = 7 * Math.max(1, 4096 / bs);
    const blocks = [low, low + stride, low + 2 * stride, low + 1 + stride];
    for (const b of blocks) expect(new DataView(bc.read(b).slice().buffer).getFloat64(0, true)).toBe(b);
    // Cached now: the same answers without another device read.
    const before = dev.reads;
    for (const b of blocks) expect(new DataView(bc.read(b).slice().buffer).getFloat64(0, true)).toBe(b);
    expect(dev.reads).toBe(before);
  });
});

describe("filesystems beyond what a byte offset holds exactly", () => {
  it("are refused at mount with EFBIG, not read from wrapped offsets", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-efbig-"));
    try {
      const img = path.join(dir, "small.img");
      runSync("mkfs.ext4", ["-q", "-F", "-O", "64bit", img, "8M"]);
      const bytes = new Uint8Array(fs.readFileSync(img));
      // s_blocks_count_hi = 2^20: 2^52 blocks of 4 KiB, 2^64 bytes.
      const dv = new DataView(bytes.buffer);
      dv.setUint32(1024 + 0x150, 2 ** 20, true);
      dv.setUint32(1024 + 0x3fc, crc32c(0xffffffff, bytes.subarray(1024, 1024 + 0x3fc)), true); // still a valid superblock
      expect(() => mount(bytes, { readOnly: true })).toThrow(/EFBIG: filesystem of \d+ blocks/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---- images on a tmpfs ------------------------------------------------------

type Support = { ok: true } | { ok: false; reason: string };

function tmpfsSupport(): Support {
  if (process.getuid?.() !== 0) return { ok: false, reason: "not running as root (needs mount -t tmpfs)" };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-tmpfsprobe-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir], { stdio: "pipe" });
    execFileSync("umount", [dir], { stdio: "pipe" });
    return { ok: true };
  } catch (e) {
    return { ok: false, reason: `mount -t tmpfs failed: ${(e as Error).message.split("\n")[0]}` };
  } finally {
    fs.rmdirSync(dir);
  }
}

const tmpfs = tmpfsSupport();
if (!tmpfs.ok) console.warn(`[bigdev] images past 16 TiB skipped: ${tmpfs.reason}`);
const loop = tmpfs.ok ? loopMountSupport() : tmpfs;
if (tmpfs.ok && !loop.ok) console.warn(`[bigdev] kernel-written 20 TiB image skipped: ${loop.reason}`);

let work = "";
let mounted = false;
beforeAll(() => {
  if (!tmpfs.ok) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-bigdev-"));
  // Sparse images: mkfs of 20 TiB with -N 65536 stores about 300 MB.
  runSync("mount", ["-t", "tmpfs", "-o", "size=3g", "tmpfs", work]);
  mounted = true;
});
afterAll(() => {
  if (mounted) runSync("umount", [work]);
  if (work) fs.rmdirSync(work);
});

const mkfs = (args: string[]) => runSync("mkfs.ext4", ["-q", "-F", ...args]);
const fsckClean = (img: string) => runSync("e2fsck", ["-fn", img]);

/** A host tree of a few files to put on an image. */
function smallTree(dir: string): Map<string, Buffer> {
  const files = new Map<string, Buffer>([
    ["a.txt", Buffer.from("hello, far away\n")],
    ["sub/b.bin", Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 2654435761) >>> 24))],
    ["sub/deeper/c.txt", Buffer.from("c\n".repeat(3000))],
  ]);
  for (const [p, data] of files) {
    fs.mkdirSync(path.dirname(path.join(dir, p)), { recursive: true });
    fs.writeFileSync(path.join(dir, p), data);
  }
  return files;
}

describe.skipIf(!tmpfs.ok)("20 TiB image, made by e2fsprogs, inode table past 16 TiB", () => {
  it("reads every file back (group 0's inode table moved beyond 2^32 pages; e2fsck clean)", () => {
    const tree = path.join(work, "tree-e2fs");
    const files = smallTree(tree);
    const img = path.join(work, "e2fs-20t.img");
    fs.writeFileSync(img, "");
    fs.truncateSync(img, 20 * TiB);
    mkfs(["-N", "65536", "-E", "lazy_itable_init=1,lazy_journal_init=1", "-d", tree, img]);
    // mkfs -d puts every inode in group 0, near the start. Move that group's
    // one-block inode table (flex_bg allows a table anywhere) to 17 TiB, where
    // its page index is past 2^32; then let e2fsck fix the group free counts.
    const m = /located at block (\d+)/.exec(runSync("debugfs", ["-R", "imap <2>", img]).stdout);
    expect(m).not.toBeNull();
    const oldBlk = Number(m![1]);
    const newBlk = (17 * TiB) / 4096 + 1000;
    const fd = fs.openSync(img, "r+");
    const buf = Buffer.alloc(4096);
    fs.readSync(fd, buf, 0, 4096, oldBlk * 4096);
    fs.writeSync(fd, buf, 0, 4096, newBlk * 4096);
    fs.closeSync(fd);
    runSync("debugfs", ["-w", "-f", "-", img], { input: `set_bg 0 inode_table ${newBlk}\nsetb ${newBlk}\nfreeb ${oldBlk}\nset_bg 0 checksum calc\n` });
    runSync("e2fsck", ["-fy", img], { okCodes: [0, 1] });
    fsckClean(img);
    expect(runSync("debugfs", ["-R", "imap <2>", img]).stdout).toContain(`located at block ${newBlk},`);
    const vol = mount(img, { readOnly: true });
    try {
      for (const [p, data] of files) expect(Buffer.from(vol.readFileSync("/" + p)).equals(data), p).toBe(true);
      expect(vol.readdirSync("/sub").sort()).toEqual(["b.bin", "deeper"]);
    } finally {
      vol.unmount();
    }
  });
});

describe.skipIf(!tmpfs.ok)("64 KiB blocks: a file past 16 TiB (page indexes past 2^32)", () => {
  it.each(["buffered_iomap", "nobuffered_iomap"])("reads its last block through %s", (opt) => {
    const tree = path.join(work, "tree-64k");
    const img = path.join(work, "huge-file-64k.img");
    const chunk = Buffer.from(Array.from({ length: 65536 }, (_, i) => (i * 40503) >>> 8));
    const lastLblk = 2 ** 32 - 2; // the file ends at lblk 2^32 - 1, ext4's largest
    if (!fs.existsSync(img)) {
      fs.mkdirSync(tree, { recursive: true });
      const fd = fs.openSync(path.join(tree, "huge"), "w");
      fs.writeSync(fd, chunk, 0, 4096, 0);
      fs.writeSync(fd, chunk, 0, 65536, lastLblk * 65536);
      fs.ftruncateSync(fd, (lastLblk + 1) * 65536);
      fs.closeSync(fd);
      mkfs(["-b", "65536", "-d", tree, img, "256M"]);
      fsckClean(img);
    }
    const vol = mount(img, { readOnly: true, mountOptions: opt });
    try {
      const fd = vol.openSync("/huge", "r");
      const size = (lastLblk + 1) * 65536;
      expect(vol.fstatSync(fd).size).toBe(size);
      const got = Buffer.alloc(65536);
      expect(vol.readSync(fd, got, 0, 65536, lastLblk * 65536)).toBe(65536);
      expect(got.equals(chunk)).toBe(true);
      expect(vol.readSync(fd, got, 0, 4096, 0)).toBe(4096);
      expect(got.subarray(0, 4096).equals(chunk.subarray(0, 4096))).toBe(true);
      // A hole in the middle, past 2^32 pages, reads as zeros.
      expect(vol.readSync(fd, got, 0, 8192, 2 ** 47)).toBe(8192);
      expect(got.subarray(0, 8192).every((b) => b === 0)).toBe(true);
      expect(vol.readSync(fd, got, 0, 100, size)).toBe(0);
    } finally {
      vol.unmount();
    }
  });
});

describe.skipIf(!loop.ok)("20 TiB image populated by the kernel", () => {
  it("reads all 100 files back (e2fsck clean first)", async () => {
    const img = path.join(work, "kernel-20t.img");
    fs.writeFileSync(img, "");
    fs.truncateSync(img, 20 * TiB);
    mkfs(["-N", "65536", "-E", "lazy_itable_init=1,lazy_journal_init=1", img]);
    // The kernel's Orlov allocator spreads top-level directories over all
    // groups, so many inodes land in inode tables past 16 TiB.
    const inos: number[] = [];
    await withLoopMount(img, (mnt) => {
      for (let i = 0; i < 100; i++) {
        fs.mkdirSync(path.join(mnt, `d${i}`));
        fs.writeFileSync(path.join(mnt, `d${i}`, "f"), `file ${i}\n`.repeat(i + 1));
        inos.push(fs.statSync(path.join(mnt, `d${i}`, "f")).ino);
      }
    }, { options: "noatime" });
    fsckClean(img);
    const sb = runSync("dumpe2fs", ["-h", img]).stdout;
    const ipg = Number(/^Inodes per group:\s+(\d+)/m.exec(sb)![1]);
    // A group's inode table sits at the start of its flex group (16 groups of 128 MiB): some must be past 16 TiB.
    const groupsPast16T = inos.filter((ino) => (Math.floor((ino - 1) / ipg) & ~15) * 128 * 2 ** 20 >= 16 * TiB).length;
    expect(groupsPast16T).toBeGreaterThan(0);
    const vol = mount(img, { readOnly: true });
    try {
      for (let i = 0; i < 100; i++) {
        expect(vol.readFileSync(`/d${i}/f`, "utf8"), `d${i}/f`).toBe(`file ${i}\n`.repeat(i + 1));
        expect(vol.statSync(`/d${i}/f`).ino).toBe(inos[i]);
      }
    } finally {
      vol.unmount();
    }
  });
});
