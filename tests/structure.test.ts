// Structural checks the kernel makes past the checksums: each case damages
// one structure of a clean image (mkfs.ext4 -d, e2fsck -fyD) and rewrites its
// checksum (tests/helpers/recsum.ts, or debugfs, which writes checksummed), so
// only the structure is wrong. We must then answer as the kernel does: refuse
// what it refuses (fs/ext4/extents.c __ext4_ext_check, inode.c __ext4_iget,
// super.c ext4_fill_super), and where it falls back (namei.c dx_probe's
// ERR_BAD_DX_DIR, then a linear search) find what it finds. Where loop mounts
// work, each case also shows the kernel's own verdict on the same image
// (mounted ro,noload).

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Ext4Error, mount, type MountOptions } from "../host/index.js";
import { runSync } from "./helpers/exec.js";
import { mkfsEnv } from "./helpers/images.js";
import { loopMountSupport, withLoopMount } from "./helpers/kernel.js";
import { Recsum } from "./helpers/recsum.js";

const u16 = (b: Uint8Array, o: number) => b[o] | (b[o + 1] << 8);
const u32 = (b: Uint8Array, o: number) => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
const put16 = (b: Uint8Array, o: number, v: number) => { b[o] = v & 0xff; b[o + 1] = v >>> 8; };
const put32 = (b: Uint8Array, o: number, v: number) => { for (let i = 0; i < 4; i++) b[o + i] = (v >>> (8 * i)) & 0xff; };

const DIR_N = 300;
const BIG_N = 3000;
const dirName = (i: number) => `entry-${String(i).padStart(4, "0")}-${"n".repeat(i % 40)}`;
const bigName = (i: number) => `big-entry-${String(i).padStart(5, "0")}-${"q".repeat(30)}`;
const ISLANDS = 400;
const islandByte = (i: number) => (i % 251) + 1;

let tmp = "";
let pristine: Uint8Array;
const ino = new Map<string, number>();

function debugfsOut(image: string, req: string): string {
  return runSync("debugfs", ["-R", req, image]).stdout;
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-structure-"));
  const src = path.join(tmp, "src");
  fs.mkdirSync(path.join(src, "dir"), { recursive: true });
  fs.mkdirSync(path.join(src, "bigdir"));
  // 1 KiB islands with 1 KiB holes between: 400 extents, a tree of depth 2 at 1 KiB blocks.
  const fd = fs.openSync(path.join(src, "sparse"), "w");
  for (let i = 0; i < ISLANDS; i++) fs.writeSync(fd, Buffer.alloc(1024, islandByte(i)), 0, 1024, i * 2048);
  fs.closeSync(fd);
  fs.writeFileSync(path.join(src, "tiny"), "tiny\n");
  for (let i = 0; i < DIR_N; i++) fs.writeFileSync(path.join(src, "dir", dirName(i)), `d${i}\n`);
  for (let i = 0; i < BIG_N; i++) fs.writeFileSync(path.join(src, "bigdir", bigName(i)), `b${i}\n`);
  const img = path.join(tmp, "pristine.img");
  runSync("mkfs.ext4", ["-q", "-F", "-t", "ext4", "-b", "1024", "-N", "4096", "-d", src, img, "24M"], { env: mkfsEnv(tmp) });
  runSync("e2fsck", ["-fyD", img], { okCodes: [0, 1] });
  runSync("e2fsck", ["-fn", img]);
  for (const p of ["sparse", "tiny", "dir", "bigdir"]) ino.set(p, Number(/Inode: (\d+)/.exec(debugfsOut(img, `stat /${p}`))![1]));
  pristine = new Uint8Array(fs.readFileSync(img));
});

afterAll(() => { if (tmp) fs.rmSync(tmp, { recursive: true, force: true }); });

/** A copy of the pristine image with `damage` applied (checksums are the damage's job). */
function damaged(name: string, damage: (img: Uint8Array, rs: Recsum) => void): { file: string; image: Uint8Array } {
  const image = pristine.slice();
  damage(image, new Recsum(pristine, image));
  const file = path.join(tmp, `${name}.img`);
  fs.writeFileSync(file, image);
  return { file, image };
}

/** Physical block of logical block `lblk` of inode `i` in the pristine image. */
const bmap = (i: number, lblk: number) => Number(debugfsOut(path.join(tmp, "pristine.img"), `bmap <${i}> ${lblk}`).trim());

type Verdict = { bytes: Buffer } | { error: string };

/** Reads `rel` from our mount of `image`; the error is the Ext4Error code (anything else fails the test). */
function ours(image: Uint8Array, rel: string, options: MountOptions = { readOnly: true }): Verdict {
  let vol;
  try {
    vol = mount(image.slice(), options);
  } catch (e) {
    expect(e, (e as Error).stack).toBeInstanceOf(Ext4Error);
    return { error: `mount:${(e as Ext4Error).code}` };
  }
  try {
    return { bytes: vol.readFileSync(rel) as Buffer };
  } catch (e) {
    expect(e, (e as Error).stack).toBeInstanceOf(Ext4Error);
    return { error: (e as Ext4Error).code };
  } finally {
    vol.unmount();
  }
}

/** Node has no name for EUCLEAN (117, the kernel's EFSCORRUPTED): "Unknown system error -117". */
export const errnoName = (e: NodeJS.ErrnoException): string => (e.errno === -117 ? "EUCLEAN" : e.code ?? `errno ${e.errno}`);

const kernelReason = (): string | null => { const s = loopMountSupport(); return s.ok ? null : s.reason; };

/** The kernel's reads of `rels` from `file` (ro,noload), or null (reason printed) where loop mounts do not work. */
async function kernel(file: string, rels: string[], what: string): Promise<Verdict[] | { mountFailed: string } | null> {
  const why = kernelReason();
  if (why) { console.log(`structure: kernel verdict for "${what}" skipped: ${why}`); return null; }
  try {
    return await withLoopMount(file, (mnt) => rels.map((rel): Verdict => {
      try { return { bytes: fs.readFileSync(path.join(mnt, rel)) }; } catch (e) { return { error: errnoName(e as NodeJS.ErrnoException) }; }
    }), { readOnly: true, options: "noload,errors=continue" });
  } catch (e) {
    return { mountFailed: (e as Error).message.split("\n").slice(0, 3).join(" ") };
  }
}

const sparseBytes = () => {
  const b = Buffer.alloc((ISLANDS - 1) * 2048 + 1024);
  for (let i = 0; i < ISLANDS; i++) b.fill(islandByte(i), i * 2048, i * 2048 + 1024);
  return b;
};

describe("the checksum rewriter", () => {
  it("reproduces every checksum mke2fs and e2fsck wrote", () => {
    const rs = new Recsum(pristine, pristine.slice());
    const img = rs.img;
    const sparse = ino.get("sparse")!;
    const dir = ino.get("dir")!;
    const big = ino.get("bigdir")!;
    const etb0 = Number(/\(ETB0\):(\d+)/.exec(debugfsOut(path.join(tmp, "pristine.img"), "stat /sparse"))![1]);
    const dirRoot = bmap(dir, 0);
    const dirLeaf = bmap(dir, 1);
    const node = bmap(big, u32(rs.block(bmap(big, 0)), 36));
    const cases: [string, () => void, () => void][] = [
      ["superblock", () => put32(img, 1024 + 0x3fc, 0), () => rs.superblock()],
      ["group 0 descriptor", () => put16(img, rs.descriptorOffset(0) + 0x1e, 0), () => rs.groupDesc(0)],
      ["inode", () => { put16(rs.inodeBytes(sparse), 0x7c, 0); put16(rs.inodeBytes(sparse), 0x82, 0); }, () => rs.inode(sparse)],
      ["extent block", () => put32(rs.block(etb0), 12 + 12 * u16(rs.block(etb0), 4), 0), () => rs.extentBlock(etb0, sparse)],
      ["dirent leaf", () => put32(rs.block(dirLeaf), 1020, 0), () => rs.dirBlock(dirLeaf, dir, false)],
      ["dx root", () => put32(rs.block(dirRoot), 32 + 8 * u16(rs.block(dirRoot), 32) + 4, 0), () => rs.dirBlock(dirRoot, dir, true)],
      ["dx node", () => put32(rs.block(node), 8 + 8 * u16(rs.block(node), 8) + 4, 0), () => rs.dirBlock(node, big, false)],
    ];
    for (const [what, clear, fix] of cases) {
      clear();
      expect(Buffer.compare(img, pristine), `${what}: the clear changed something`).not.toBe(0);
      fix();
      expect(Buffer.compare(img, pristine), `${what}: recomputed`).toBe(0);
    }
  });
});

describe("extent tree structure (__ext4_ext_check)", () => {
  const etb = () => {
    const stat = debugfsOut(path.join(tmp, "pristine.img"), "stat /sparse");
    return { index: Number(/\(ETB0\):(\d+)/.exec(stat)![1]) };
  };

  it("the pristine tree is depth 2 and reads whole", () => {
    const root = new Recsum(pristine, pristine.slice()).inodeBytes(ino.get("sparse")!).subarray(0x28);
    expect(u16(root, 0)).toBe(0xf30a);
    expect(u16(root, 6), "root depth").toBe(2);
    expect(ours(pristine, "/sparse")).toEqual({ bytes: sparseBytes() });
  });

  it("an index block with no entries is corrupt, not a hole", async () => {
    const { index } = etb();
    const { file, image } = damaged("etb-empty", (img, rs) => {
      const b = rs.block(index);
      expect(u16(b, 6), "ETB0 is an index node").toBe(1);
      put16(b, 2, 0);
      rs.extentBlock(index, ino.get("sparse")!);
    });
    expect(ours(image, "/sparse")).toEqual({ error: "EFSCORRUPTED" });
    const k = await kernel(file, ["sparse"], "empty index block");
    if (k) expect(k).toEqual([{ error: expect.stringMatching(/^(EIO|EUCLEAN)$/) }]);
  });

  it("a root index with no entries is corrupt", async () => {
    const { file, image } = damaged("root-empty", (img, rs) => {
      put16(rs.inodeBytes(ino.get("sparse")!), 0x28 + 2, 0);
      rs.inode(ino.get("sparse")!);
    });
    expect(ours(image, "/sparse")).toEqual({ error: "EFSCORRUPTED" });
    const k = await kernel(file, ["sparse"], "empty root index");
    if (k) expect(k).toEqual([{ error: expect.stringMatching(/^(EIO|EUCLEAN)$/) }]);
  });

  it("a child whose first block is not its index entry's is corrupt", async () => {
    const { index } = etb();
    const { file, image } = damaged("etb-lblk", (img, rs) => {
      const b = rs.block(index);
      expect(u16(b, 2), "ETB0 has several leaves").toBeGreaterThan(2);
      const e1 = 12 + 12; // entry 1's ei_block; +1 keeps the entries in order
      expect(u32(b, e1) + 1).toBeLessThan(u32(b, e1 + 12));
      put32(b, e1, u32(b, e1) + 1);
      rs.extentBlock(index, ino.get("sparse")!);
    });
    expect(ours(image, "/sparse")).toEqual({ error: "EFSCORRUPTED" });
    const k = await kernel(file, ["sparse"], "child lblk mismatch");
    if (k) expect(k).toEqual([{ error: expect.stringMatching(/^(EIO|EUCLEAN)$/) }]);
  });

  it("an extent at s_first_data_block (the superblock's block) is corrupt", async () => {
    const { file, image } = damaged("extent-sb", (img, rs) => {
      const raw = rs.inodeBytes(ino.get("tiny")!);
      expect(u16(raw, 0x28 + 2), "tiny has one extent in its root").toBe(1);
      expect(rs.sb.firstDataBlock).toBe(1);
      put32(raw, 0x28 + 12 + 8, rs.sb.firstDataBlock);
      rs.inode(ino.get("tiny")!);
    });
    expect(ours(image, "/tiny")).toEqual({ error: "EFSCORRUPTED" });
    const k = await kernel(file, ["tiny"], "extent at first data block");
    if (k) expect(k).toEqual([{ error: expect.stringMatching(/^(EIO|EUCLEAN)$/) }]);
  });
});

describe("inode checks at iget (__ext4_iget)", () => {
  it("i_size with bit 63 set is refused", async () => {
    const file = path.join(tmp, "isize63.img");
    fs.writeFileSync(file, pristine);
    runSync("debugfs", ["-w", "-R", "sif /tiny size 0x8000000000000005", file]);
    const image = new Uint8Array(fs.readFileSync(file));
    expect(ours(image, "/tiny")).toEqual({ error: "EFSCORRUPTED" });
    const vol = mount(image, { readOnly: true });
    try {
      expect(() => vol.lstatSync("/tiny")).toThrow(expect.objectContaining({ code: "EFSCORRUPTED" }));
      expect(vol.lstatSync("/dir").isDirectory()).toBe(true);
    } finally {
      vol.unmount();
    }
    const k = await kernel(file, ["tiny"], "i_size bit 63");
    if (k) expect(k).toEqual([{ error: expect.stringMatching(/^(EIO|EUCLEAN)$/) }]);
  });

  it("a name that leads to an inode without links is refused (deleted inode referenced)", async () => {
    const file = path.join(tmp, "nlink0.img");
    fs.writeFileSync(file, pristine);
    runSync("debugfs", ["-w", "-R", "sif /tiny links_count 0", file]);
    const image = new Uint8Array(fs.readFileSync(file));
    expect(ours(image, "/tiny")).toEqual({ error: "EFSCORRUPTED" });
    const k = await kernel(file, ["tiny", "dir/" + dirName(1)], "links_count 0");
    if (k) expect(k).toEqual([{ error: "EUCLEAN" }, { bytes: Buffer.from("d1\n") }]);
  });

  it("a name that leads to a reserved inode (below s_first_ino, not the root) is refused (is_special_ino)", async () => {
    const file = path.join(tmp, "special.img");
    fs.writeFileSync(file, pristine);
    // Entries naming the resize inode (7) and the journal (8): debugfs writes them checksummed.
    runSync("debugfs", ["-w", "-R", "ln <7> /resize-link", file]);
    runSync("debugfs", ["-w", "-R", "ln <8> /dir/journal-link", file]);
    const image = new Uint8Array(fs.readFileSync(file));
    expect(ours(image, "/resize-link")).toEqual({ error: "EFSCORRUPTED" });
    expect(ours(image, "/dir/journal-link")).toEqual({ error: "EFSCORRUPTED" });
    const vol = mount(image, { readOnly: true });
    try {
      expect(() => vol.lstatSync("/resize-link")).toThrow(expect.objectContaining({ code: "EFSCORRUPTED", path: "/resize-link" }));
      // The listing still shows the name (getdents does not iget); the rest reads.
      expect(vol.readdirSync("/")).toContain("resize-link");
      expect(vol.readFileSync("/tiny", "utf8")).toBe("tiny\n");
    } finally {
      vol.unmount();
    }
    const k = await kernel(file, ["resize-link", "dir/journal-link", "tiny"], "special inode names");
    if (k) expect(k).toEqual([{ error: "EUCLEAN" }, { error: "EUCLEAN" }, { bytes: Buffer.from("tiny\n") }]);
  });
});

describe("more iget and mount checks the fuzz suite found us missing", () => {
  it("refuses an inode with both the inline-data and extents flags", async () => {
    const src = path.join(tmp, "inline-src");
    fs.mkdirSync(src, { recursive: true });
    fs.writeFileSync(path.join(src, "f"), "inline bytes\n");
    const file = path.join(tmp, "inline-extents.img");
    runSync("mkfs.ext4", ["-q", "-F", "-t", "ext4", "-O", "inline_data", "-d", src, file, "8M"], { env: mkfsEnv(tmp) });
    const flags = Number(/Flags: (0x[0-9a-f]+)/.exec(debugfsOut(file, "stat /f"))![1]);
    expect(flags & 0x10000000, "f is inline").toBeTruthy();
    expect(ours(new Uint8Array(fs.readFileSync(file)), "/f")).toEqual({ bytes: Buffer.from("inline bytes\n") });
    runSync("debugfs", ["-w", "-R", `sif /f flags 0x${(flags | 0x80000).toString(16)}`, file]);
    expect(ours(new Uint8Array(fs.readFileSync(file)), "/f")).toEqual({ error: "EFSCORRUPTED" });
    const k = await kernel(file, ["f"], "inline data and extents flags");
    if (k) expect(k).toEqual([{ error: "EUCLEAN" }]);
  });

  it("refuses an inode whose in-inode xattr names a value inode without the ea_inode feature", async () => {
    const file = path.join(tmp, "ea-inum.img");
    fs.writeFileSync(file, pristine);
    runSync("debugfs", ["-w", "-R", "ea_set /tiny user.a hello", file]);
    const base = new Uint8Array(fs.readFileSync(file));
    const image = base.slice();
    const rs = new Recsum(base, image);
    const raw = rs.inodeBytes(ino.get("tiny")!);
    const first = 128 + u16(raw, 0x80);
    expect(u32(raw, first), "in-inode xattr magic").toBe(0xea020000);
    put32(raw, first + 4 + 4, 12); // e_value_inum of the first entry
    rs.inode(ino.get("tiny")!);
    fs.writeFileSync(file, image);
    expect(ours(base, "/tiny")).toEqual({ bytes: Buffer.from("tiny\n") });
    expect(ours(image, "/tiny")).toEqual({ error: "EFSCORRUPTED" });
    const k = await kernel(file, ["tiny"], "ea_inode xattr without the feature");
    if (k) expect(k).toEqual([{ error: "EUCLEAN" }]);
  });

  it.each([1, 3, 0x8000])("refuses a mount whose s_log_cluster_size (%i) is not the block size's without bigalloc", async (log) => {
    const { file, image } = damaged(`log-cluster-${log}`, (img, rs) => {
      expect(u32(img, 1024 + 0x18), "s_log_block_size").toBe(0);
      put32(img, 1024 + 0x1c, log);
      rs.superblock();
    });
    expect(ours(image, "/tiny")).toEqual({ error: "mount:EFSCORRUPTED" });
    const k = await kernel(file, ["tiny"], `s_log_cluster_size ${log}`);
    if (k) expect(k).toMatchObject({ mountFailed: expect.any(String) });
  });

  it.each(["want", "min"])("refuses a mount whose s_%s_extra_isize exceeds the inode's room", async (which) => {
    const { file, image } = damaged(`${which}-extra`, (img, rs) => {
      put16(img, 1024 + (which === "want" ? 0x15e : 0x15c), rs.sb.inodeSize - 128 + 4);
      rs.superblock();
    });
    expect(ours(image, "/tiny")).toEqual({ error: "mount:EFSCORRUPTED" });
    const k = await kernel(file, ["tiny"], `s_${which}_extra_isize`);
    if (k) expect(k).toMatchObject({ mountFailed: expect.any(String) });
  });
});

describe("the system zone (block_validity.c)", () => {
  it("refuses an extent that maps part of an inode table", async () => {
    const { file, image } = damaged("extent-itable", (img, rs) => {
      const raw = rs.inodeBytes(ino.get("tiny")!);
      const itable = Math.floor(rs.inodeOffset(1) / rs.bs);
      put32(raw, 0x28 + 12 + 8, itable + 1);
      rs.inode(ino.get("tiny")!);
    });
    expect(ours(image, "/tiny")).toEqual({ error: "EFSCORRUPTED" });
    const k = await kernel(file, ["tiny"], "extent into the inode table");
    if (k) expect(k).toEqual([{ error: expect.stringMatching(/^(EIO|EUCLEAN)$/) }]);
  });

  it("refuses an xattr block that is a bitmap", async () => {
    const { file, image } = damaged("acl-bitmap", (img, rs) => {
      const raw = rs.inodeBytes(ino.get("tiny")!);
      put32(raw, 0x68, u32(img, rs.descriptorOffset(0) + 0x4)); // group 0's inode bitmap
      rs.inode(ino.get("tiny")!);
    });
    expect(ours(image, "/tiny")).toEqual({ error: "EFSCORRUPTED" });
    const k = await kernel(file, ["tiny"], "xattr block on a bitmap");
    if (k) expect(k).toEqual([{ error: "EUCLEAN" }]);
  });

  it("refuses a block-mapped inode naming an invalid direct block, even one it does not use", async () => {
    const src = path.join(tmp, "ind-src");
    fs.mkdirSync(src, { recursive: true });
    fs.writeFileSync(path.join(src, "f"), "");
    const file = path.join(tmp, "ind.img");
    runSync("mkfs.ext4", ["-q", "-F", "-t", "ext4", "-O", "^extent,^64bit,^flex_bg", "-d", src, file, "8M"], { env: mkfsEnv(tmp) });
    expect(ours(new Uint8Array(fs.readFileSync(file)), "/f")).toEqual({ bytes: Buffer.alloc(0) });
    const tind = path.join(tmp, "ind-tind.img");
    fs.copyFileSync(file, tind);
    runSync("debugfs", ["-w", "-R", "sif /f block[TIND] 0x80000000", tind]);
    runSync("debugfs", ["-w", "-R", "sif /f block[11] 0x80000000", file]);
    expect(ours(new Uint8Array(fs.readFileSync(file)), "/f")).toEqual({ error: "EFSCORRUPTED" });
    // The kernel checks the direct slots at iget; an unused triple-indirect pointer it never follows.
    expect(ours(new Uint8Array(fs.readFileSync(tind)), "/f")).toEqual({ bytes: Buffer.alloc(0) });
    const kt = await kernel(tind, ["f"], "invalid unused TIND pointer");
    if (kt) expect(kt).toEqual([{ bytes: Buffer.alloc(0) }]);
    const k = await kernel(file, ["f"], "invalid block in i_block");
    if (k) expect(k).toEqual([{ error: "EUCLEAN" }]);
  });

  it("counts the reserved GDT blocks in the zone: one more than there is room for refuses the mount", async () => {
    const file = path.join(tmp, "rgdt.img");
    runSync("mkfs.ext4", ["-q", "-F", "-t", "ext4", "-b", "4096", "-O", "^extent,^64bit,^flex_bg", file, "16M"], { env: mkfsEnv(tmp) });
    const dump = runSync("dumpe2fs", [file]).stdout;
    const reserved = Number(/Reserved GDT blocks:\s+(\d+)/.exec(dump)?.[1] ?? 0);
    const bitmap = Number(/Block bitmap at (\d+)/.exec(dump)![1]);
    expect(bitmap, "group 0's block bitmap follows its reserved GDT blocks").toBe(2 + reserved);
    expect(ours(new Uint8Array(fs.readFileSync(file)), "/lost+found")).toMatchObject({ error: "EISDIR" });
    runSync("debugfs", ["-w", "-R", `ssv reserved_gdt_blocks ${reserved + 1}`, file]);
    expect(ours(new Uint8Array(fs.readFileSync(file)), "/lost+found")).toEqual({ error: "mount:EFSCORRUPTED" });
    const k = await kernel(file, ["lost+found"], "reserved GDT blocks over the bitmap");
    if (k) expect(k).toMatchObject({ mountFailed: expect.any(String) });
  });

  it("refuses a mount whose block bitmap lies in an inode table", async () => {
    const { file, image } = damaged("bitmap-itable", (img, rs) => {
      const d1 = rs.descriptorOffset(1);
      put32(img, d1, Math.floor(rs.inodeOffset(1) / rs.bs) + 2);
      rs.groupDesc(1);
    });
    expect(ours(image, "/tiny")).toEqual({ error: "mount:EFSCORRUPTED" });
    const k = await kernel(file, ["tiny"], "bitmap in an inode table");
    if (k) expect(k).toMatchObject({ mountFailed: expect.any(String) });
  });
});

describe("i_size against maxbytes (__ext4_iget, ext4_max_size / ext4_max_bitmap_size)", () => {
  // Largest sizes the kernel takes, by mapping and geometry (checked against the kernel below).
  const CASES = [
    { what: "extents, 4 KiB, huge_file", args: ["-b", "4096"], max: 2 ** 44 - 4096 },
    { what: "extents, 1 KiB, no huge_file", args: ["-b", "1024", "-O", "^huge_file"], max: 2199023254528 },
    { what: "block-mapped, 4 KiB, huge_file", args: ["-b", "4096", "-O", "^extent,^64bit"], max: 4402345721856 },
    { what: "block-mapped, 1 KiB, huge_file", args: ["-b", "1024", "-O", "^extent,^64bit"], max: 17247252480 },
  ];
  it.each(CASES)("$what: a size of maxbytes reads, one byte more is refused", async ({ args, max, what }) => {
    const src = path.join(tmp, "max-src");
    fs.mkdirSync(src, { recursive: true });
    fs.writeFileSync(path.join(src, "f"), "head");
    for (const [size, ok] of [[max, true], [max + 1, false]] as const) {
      const file = path.join(tmp, `max-${size}.img`);
      runSync("mkfs.ext4", ["-q", "-F", "-t", "ext4", ...args, "-d", src, file, "8M"], { env: mkfsEnv(tmp) });
      runSync("debugfs", ["-w", "-R", `sif /f size ${size}`, file]);
      const vol = mount(new Uint8Array(fs.readFileSync(file)), { readOnly: true });
      try {
        if (ok) expect(Number(vol.lstatSync("/f", { bigint: true }).size)).toBe(size);
        else expect(() => vol.lstatSync("/f")).toThrow(expect.objectContaining({ code: "EFSCORRUPTED" }));
      } finally {
        vol.unmount();
      }
      const why = kernelReason();
      if (why) { console.log(`structure: kernel verdict for "${what}" skipped: ${why}`); continue; }
      const k = await withLoopMount(file, (mnt) => {
        try { return fs.statSync(path.join(mnt, "f")).size; } catch (e) { return errnoName(e as NodeJS.ErrnoException); }
      }, { readOnly: true, options: "noload" });
      expect(k, `the kernel on ${size}`).toEqual(ok ? size : "EUCLEAN");
    }
  });
});

describe("htree index checks (dx_probe): a bad index is searched linearly", () => {
  /** Block 0 of a directory: the dx root. */
  const rootOf = (dir: string) => bmap(ino.get(dir)!, 0);

  /** Every entry of the root (or node at countOffset) now names entry 0's leaf: the index misroutes every name. */
  const misroute = (b: Uint8Array, countOffset: number) => {
    const count = u16(b, countOffset + 2);
    expect(count).toBeGreaterThan(2);
    for (let i = 1; i < count; i++) put32(b, countOffset + 8 * i + 4, u32(b, countOffset + 4));
  };

  const readAll = (image: Uint8Array, rels: string[]) => {
    const vol = mount(image.slice(), { readOnly: true });
    try {
      return rels.map((rel): Verdict => {
        try { return { bytes: vol.readFileSync(rel) as Buffer }; } catch (e) { return { error: (e as Ext4Error).code }; }
      });
    } finally {
      vol.unmount();
    }
  };

  const dirRels = Array.from({ length: DIR_N }, (_, i) => `dir/${dirName(i)}`).filter((_, i) => i % 7 === 0);
  const dirWant = dirRels.map((rel) => ({ bytes: Buffer.from(`d${Number(rel.slice(10, 14))}\n`) }));

  it("the pristine directories are indexed (one and two levels)", () => {
    const root = new Recsum(pristine, pristine).block(rootOf("dir"));
    expect(u16(root, 32), "root limit").toBe(Math.floor((1024 - 32 - 8) / 8));
    expect(root[30], "dir: one level").toBe(0);
    expect(new Recsum(pristine, pristine).block(rootOf("bigdir"))[30], "bigdir: two levels").toBe(1);
  });

  it("a root limit that is not dx_root_limit makes the index unusable", async () => {
    const root = rootOf("dir");
    const { file, image } = damaged("dx-root-limit", (img, rs) => {
      const b = rs.block(root);
      misroute(b, 32);
      // Still room for the tail (so the checksum is valid), but not the limit the kernel computes.
      put16(b, 32, u16(b, 32) - 1);
      rs.dxNode(root, ino.get("dir")!, 32);
    });
    // The misrouted index alone (limit intact) loses names: the limit is what makes both sides fall back.
    const misroutedOnly = damaged("dx-misrouted", (img, rs) => { misroute(rs.block(root), 32); rs.dxNode(root, ino.get("dir")!, 32); });
    expect(readAll(misroutedOnly.image, dirRels).some((v) => "error" in v)).toBe(true);
    expect(readAll(image, dirRels)).toEqual(dirWant);
    const k = await kernel(file, dirRels, "dx root limit");
    if (k) expect(k).toEqual(dirWant);
  });

  it("an interior node limit that is not dx_node_limit makes the index unusable", async () => {
    const big = ino.get("bigdir")!;
    const rootB = new Recsum(pristine, pristine).block(rootOf("bigdir"));
    const node = bmap(big, u32(rootB, 32 + 8 + 4)); // the node under root entry 1
    const rels = Array.from({ length: BIG_N }, (_, i) => `bigdir/${bigName(i)}`).filter((_, i) => i % 5 === 0);
    const want = rels.map((rel) => ({ bytes: Buffer.from(`b${Number(rel.slice(17, 22))}\n`) }));
    const { file, image } = damaged("dx-node-limit", (img, rs) => {
      const b = rs.block(node);
      expect(u16(b, 4), "an interior node spans its block").toBe(1024);
      expect(u16(b, 8), "node limit").toBe(Math.floor((1024 - 8 - 8) / 8));
      misroute(b, 8);
      put16(b, 8, u16(b, 8) - 1);
      rs.dxNode(node, big, 8);
    });
    expect(readAll(image, rels)).toEqual(want);
    const k = await kernel(file, rels, "dx node limit");
    if (k) expect(k).toEqual(want);
  });

  it("a root naming the siphash hash outside a casefolded+encrypted directory is searched linearly", async () => {
    const root = rootOf("dir");
    const { file, image } = damaged("dx-siphash", (img, rs) => {
      rs.block(root)[28] = 6;
      rs.dxNode(root, ino.get("dir")!, 32);
    });
    expect(readAll(image, dirRels)).toEqual(dirWant);
    const k = await kernel(file, dirRels, "siphash root");
    if (k) expect(k).toEqual(dirWant);
  });

  it("a root naming an unknown hash version is searched linearly", () => {
    const root = rootOf("dir");
    const { image } = damaged("dx-hash9", (img, rs) => {
      rs.block(root)[28] = 9;
      rs.dxNode(root, ino.get("dir")!, 32);
    });
    expect(readAll(image, dirRels)).toEqual(dirWant);
  });
});

describe("superblock checks (ext4_fill_super)", () => {
  it("refuses desc_size 32 with the 64bit feature", async () => {
    const file = path.join(tmp, "desc32.img");
    fs.writeFileSync(file, pristine);
    expect(runSync("dumpe2fs", ["-h", file]).stdout).toMatch(/features:.*64bit/);
    runSync("debugfs", ["-w", "-R", "ssv desc_size 32", file]);
    const image = new Uint8Array(fs.readFileSync(file));
    for (const options of [{ readOnly: true }, { readOnly: true, ignoreChecksums: true }]) {
      let err: unknown;
      try { mount(image.slice(), options).unmount(); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(Ext4Error);
      expect((err as Ext4Error).message).toMatch(/descriptor size 32/);
    }
    const k = await kernel(file, ["tiny"], "desc_size 32");
    if (k) expect(k).toMatchObject({ mountFailed: expect.any(String) });
  });

  it("a group descriptor checksum mismatch refuses a read-write mount; read-only mounts with a warning (ext4_check_descriptors)", async () => {
    const file = path.join(tmp, "gdcsum.img");
    fs.writeFileSync(file, pristine);
    runSync("debugfs", ["-w", "-R", "set_bg 1 checksum 0x1234", file]);
    const image = new Uint8Array(fs.readFileSync(file));
    let err: unknown;
    try { mount(image.slice(), {}).unmount(); } catch (e) { err = e; }
    expect(err).toMatchObject({ code: "EFSCORRUPTED", message: expect.stringMatching(/group 1 descriptor checksum mismatch/) });
    expect(ours(image, "/tiny")).toEqual({ bytes: Buffer.from("tiny\n") });
    const vol = mount(image.slice(), { readOnly: true });
    try {
      expect(vol.warnings).toEqual([expect.stringMatching(/^group 1 descriptor checksum mismatch .*mounted read-only anyway/)]);
      expect(vol.readdirSync("/dir").length).toBe(DIR_N);
    } finally {
      vol.unmount();
    }
    const k = await kernel(file, ["tiny"], "group descriptor checksum, read-only");
    if (k) expect(k).toEqual([{ bytes: Buffer.from("tiny\n") }]);
    if (!kernelReason()) {
      const rw = spawnSync("sh", ["-c", `d=$(mktemp -d) && mount -o loop ${file} $d; r=$?; umount $d 2>/dev/null; rmdir $d; exit $r`]);
      expect(rw.status, "the kernel refuses the read-write mount").not.toBe(0);
    }
  });
});
