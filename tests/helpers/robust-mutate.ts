// The seeded metadata corruption of tests/corruption.test.ts, shared with the
// read-write damage suite (tests/damaged-rw.test.ts): the source tree, the
// metadata regions e2fsprogs sees in the pristine image, and seeded mutants
// of one region (optionally with its checksum rewritten).

import * as fs from "node:fs";
import * as path from "node:path";
import { ensureAttrTools, runSync } from "./exec.js";
import { Recsum } from "./recsum.js";
import { mulberry32 as prng } from "./random.js";

export interface Variant { name: string; args: string[]; csum: boolean }

// ---- the source tree -------------------------------------------------------

export function buildTree(dir: string): void {
  ensureAttrTools();
  const w = (rel: string, data: string | Buffer) => fs.writeFileSync(path.join(dir, rel), data);
  const setx = (rel: string, name: string, value: string) => runSync("setfattr", ["-n", name, "-v", value, path.join(dir, rel)]);
  fs.mkdirSync(path.join(dir, "bigdir/sub1"), { recursive: true });
  fs.mkdirSync(path.join(dir, "bigdir/sub2"));
  // ~400 entries of mixed name lengths: several blocks, so e2fsck -D builds an htree.
  for (let i = 0; i < 400; i++) w(`bigdir/entry-${String(i).padStart(4, "0")}-${"n".repeat(i % 37)}`, i % 9 === 0 ? `content ${i}\n` : "");
  w("bigdir/sub1/inner", "inner file\n");
  // 400 one-block islands separated by holes: 400 extents, an extent tree of depth >= 1.
  const fd = fs.openSync(path.join(dir, "sparse400"), "w");
  for (let i = 0; i < 400; i++) fs.writeSync(fd, Buffer.alloc(4096, (i % 251) + 1), 0, 4096, i * 8192);
  fs.closeSync(fd);
  w("tiny", "tiny\n");
  w("small100", "s".repeat(100));
  w("medium", Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7) & 0xff)));
  fs.symlinkSync("tiny", path.join(dir, "fast-link"));
  fs.symlinkSync("x/".repeat(100) + "target", path.join(dir, "slow-link"));
  fs.linkSync(path.join(dir, "tiny"), path.join(dir, "tiny-hardlink"));
  w("xattrs", "has attributes\n");
  setx("xattrs", "user.small", "hello");
  for (let i = 0; i < 3; i++) setx("xattrs", `user.m${i}`, `v${i}-${"m".repeat(100)}`);
  setx("xattrs", "user.big", "b".repeat(500));
  fs.mkdirSync(path.join(dir, "xdir"));
  setx("xdir", "user.dirattr", "on a directory");
  w("xdir/f", "f\n");
}

// ---- metadata block discovery (e2fsprogs' view of the pristine image) ---------

export type Category = "superblock" | "gdt" | "bitmap" | "inode" | "dir" | "extent" | "indirect" | "xattr" | "symlink";

/**
 * A byte range of the image that holds metadata of one category, with what its checksum needs:
 * the owning inode (inodes, extent and directory blocks), a directory block's logical number,
 * a descriptor block's first group.
 */
export interface Region { category: Category; start: number; len: number; label: string; owner?: number; lblk?: number; firstGroup?: number }

export interface ImageInfo {
  variant: Variant;
  image: Uint8Array;
  blockSize: number;
  blocksCount: number;
  regions: Map<Category, Region[]>;
  /** Inode slots of the objects the tree was built to have (root, dirs, links, sparse, xattrs). */
  keyInodes: Region[];
}

function parseRanges(s: string): [number, number][] {
  return s.split(",").map((x) => x.trim()).filter(Boolean).map((x) => {
    const [a, b] = x.split("-").map(Number);
    return [a, b ?? a];
  });
}

export function discoverMetadata(variant: Variant, file: string): ImageInfo {
  const dump = runSync("dumpe2fs", [file]).stdout;
  const num = (re: RegExp) => Number(re.exec(dump)?.[1]);
  const blockSize = num(/^Block size:\s+(\d+)/m);
  const inodeSize = num(/^Inode size:\s+(\d+)/m);
  const ipg = num(/^Inodes per group:\s+(\d+)/m);
  const blocksCount = num(/^Block count:\s+(\d+)/m);
  const descPerBlock = blockSize / (num(/^Group descriptor size:\s+(\d+)/m) || 32);
  const regions = new Map<Category, Region[]>();
  const add = (r: Region) => { if (!regions.has(r.category)) regions.set(r.category, []); regions.get(r.category)!.push(r); };
  const addBlocks = (category: Category, from: number, to: number, label: string, extra: (b: number) => Partial<Region> = () => ({})) => {
    for (let b = from; b <= to; b++) add({ category, start: b * blockSize, len: blockSize, label: `${label} block ${b}`, ...extra(b) });
  };
  add({ category: "superblock", start: 1024, len: 1024, label: "primary superblock" });
  const used: number[] = [];
  const tables: number[] = [];
  for (const g of dump.split(/^Group /m).slice(1)) {
    const n = Number(/^(\d+):/.exec(g)?.[1]);
    const gdt = /Primary superblock at \d+, Group descriptors at (\d+)-(\d+)/.exec(g);
    if (gdt) addBlocks("gdt", Number(gdt[1]), Number(gdt[2]), "group descriptor", (b) => ({ firstGroup: (b - Number(gdt[1])) * descPerBlock }));
    // meta_bg: the primary descriptor block of each meta group sits in its first group.
    const metaGdt = /Group descriptor at (\d+)/.exec(g);
    if (metaGdt && n % descPerBlock === 0) addBlocks("gdt", Number(metaGdt[1]), Number(metaGdt[1]), `meta_bg descriptor (group ${n})`, () => ({ firstGroup: n }));
    for (const m of g.matchAll(/(Block|Inode) bitmap at (\d+)/g)) addBlocks("bitmap", Number(m[2]), Number(m[2]), `${m[1].toLowerCase()} bitmap`);
    tables[n] = Number(/Inode table at (\d+)-/.exec(g)?.[1]);
    const free = parseRanges(/Free inodes: ?([^\n]*)/.exec(g)?.[1] ?? "");
    const isFree = (i: number) => free.some(([a, b]) => i >= a && i <= b);
    for (let i = n * ipg + 1; i <= (n + 1) * ipg; i++) if (!isFree(i)) used.push(i);
  }
  const inodeRegion = (ino: number, label: string): Region => {
    const g = Math.floor((ino - 1) / ipg);
    return { category: "inode", start: tables[g] * blockSize + ((ino - 1) % ipg) * inodeSize, len: inodeSize, label: `inode ${ino} (${label})`, owner: ino };
  };
  // Inodes the read path reaches: the root and everything from 11 on (not the journal or resize inode).
  const reachable = used.filter((i) => i === 2 || i >= 11);
  const stats = runSync("debugfs", ["-f", "-", file], { input: reachable.map((i) => `stat <${i}>`).join("\n") + "\n" }).stdout;
  const keyInodes: Region[] = [];
  for (const chunk of stats.split(/^debugfs: stat /m).slice(1)) {
    const ino = Number(/^<(\d+)>/.exec(chunk)?.[1]);
    const type = /Type: (\w+)/.exec(chunk)?.[1] ?? "?";
    const r = inodeRegion(ino, type);
    add(r);
    const acl = Number(/File ACL: (\d+)/.exec(chunk)?.[1] ?? 0);
    if (acl) addBlocks("xattr", acl, acl, `xattr of inode ${ino}`);
    for (const m of chunk.matchAll(/\((ETB\d+|IND|DIND|TIND)\):(\d+)/g)) {
      addBlocks(m[1].startsWith("ETB") ? "extent" : "indirect", Number(m[2]), Number(m[2]), `${m[1]} of inode ${ino}`, () => ({ owner: ino }));
    }
    const data: [number, number, number][] = [];
    for (const m of chunk.matchAll(/\((\d+)(?:-(\d+))?\):(\d+)(?:-(\d+))?/g)) data.push([Number(m[3]), Number(m[4] ?? m[3]), Number(m[1])]);
    if (type === "directory") for (const [a, b, l] of data) addBlocks("dir", a, b, `directory ${ino}`, (p) => ({ owner: ino, lblk: l + p - a }));
    if (type === "symlink") for (const [a, b] of data) addBlocks("symlink", a, b, `symlink ${ino}`);
    const interesting = ino === 2 || type !== "regular" || acl !== 0 || /Size of inline data|Extended attributes/.test(chunk) || data.length > 4;
    if (interesting) keyInodes.push(r);
  }
  return { variant, image: new Uint8Array(fs.readFileSync(file)), blockSize, blocksCount, regions, keyInodes };
}

// ---- seeded mutation --------------------------------------------------------


export interface Mutation { image: Uint8Array; category: Category; description: string }

/**
 * Rewrites the checksum of the structure in `region` of `img` (laid out like the pristine image):
 * the mutant then has valid checksums and only its structure is wrong.
 */
export function resum(info: ImageInfo, region: Region, img: Uint8Array): void {
  const rs = new Recsum(info.image, img);
  const pblk = Math.floor(region.start / info.blockSize);
  switch (region.category) {
    case "superblock": rs.superblock(); break;
    case "gdt": rs.gdtBlock(pblk, region.firstGroup!); break;
    case "inode": rs.inode(region.owner!); break;
    case "extent": rs.extentBlock(pblk, region.owner!); break;
    case "dir": rs.dirBlock(pblk, region.owner!, region.lblk === 0); break;
    case "xattr": rs.xattrBlock(pblk); break;
    default: break;
  }
}

export function mutate(info: ImageInfo, seed: number, resummed = false): Mutation {
  const rand = prng(seed * 7919 + info.variant.name.length * 104729 + (resummed ? 0x5eed : 0));
  const int = (n: number) => Math.floor(rand() * n);
  const pick = <T>(xs: T[]): T => xs[int(xs.length)];
  const category = pick([...info.regions.keys()].filter((c) => !resummed || CHECKSUMMED.has(c)));
  const region = category === "inode" && rand() < 0.7 && info.keyInodes.length ? pick(info.keyInodes) : pick(info.regions.get(category)!);
  const img = info.image.slice();
  const dv = new DataView(img.buffer, img.byteOffset, img.byteLength);
  const edits: string[] = [];
  const count = 1 + int(8);
  for (let k = 0; k < count; k++) {
    const kind = pick(["byte", "bit", "u16", "u32", "u32"] as const);
    const size = kind === "u16" ? 2 : kind === "u32" ? 4 : 1;
    const rel = int(Math.floor(region.len / size)) * size;
    const at = region.start + rel;
    const hex = (v: number) => `0x${v.toString(16)}`;
    if (kind === "byte") {
      const v = int(256);
      img[at] = v;
      edits.push(`u8@+${hex(rel)}=${hex(v)}`);
    } else if (kind === "bit") {
      const bit = int(8);
      img[at] ^= 1 << bit;
      edits.push(`flip@+${hex(rel)}.${bit}`);
    } else if (kind === "u16") {
      const old = dv.getUint16(at, true);
      const v = pick([0, 0xffff, 0x8000, int(0x10000), (old + 1) & 0xffff, (old - 1) & 0xffff]);
      dv.setUint16(at, v, true);
      edits.push(`u16@+${hex(rel)}=${hex(v)}`);
    } else {
      const old = dv.getUint32(at, true);
      const v = pick([0, 0xffffffff, 0x7fffffff, 0x80000000, int(2 ** 32), (old + 1) >>> 0, (old - 1) >>> 0,
        info.blocksCount, info.blocksCount - 1, info.blocksCount + 1, 1 + int(16)]) >>> 0;
      dv.setUint32(at, v, true);
      edits.push(`u32@+${hex(rel)}=${hex(v)}`);
    }
  }
  if (resummed) resum(info, region, img);
  return { image: img, category, description: `${region.label}: ${edits.join(" ")}${resummed ? " (checksum rewritten)" : ""}` };
}

/** Metadata metadata_csum protects (block-map indirect blocks, bitmaps as read here, symlink data are not). */
export const CHECKSUMMED = new Set<Category>(["superblock", "gdt", "inode", "dir", "extent", "xattr"]);
