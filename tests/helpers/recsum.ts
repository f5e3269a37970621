// Recomputes metadata checksums in an image buffer after a test has damaged
// it, so the damage reads as "valid checksum, bad structure": what the
// kernel's structural checks (and ours) exist for. crc32c and crc16 are
// computed here in plain JS, apart from the engine's wasm; geometry comes
// from the pristine image through the engine's format codecs. Layouts
// (ext4 docs, checksums.rst): the superblock over its first 0x3fc bytes;
// descriptors crc32c(seed, group, desc without bg_checksum) & 0xffff, or
// crc16 under gdt_csum; inodes crc32c(inode seed, inode with both checksum
// halves zeroed); extent blocks over header + eh_max entries; dirent leaves
// before the 12-byte tail; htree nodes over count entries, then the tail's
// reserved word and four zero bytes; xattr blocks crc32c(seed, le64 block,
// block with h_checksum zeroed).

import { decodeGroupDesc } from "../../host/format/group-desc.js";
import { decodeSuperblock, type Superblock } from "../../host/format/superblock.js";
import { descriptorBlock } from "../../host/fs/groups.js";

const CRC32C = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** crc32c as ext4 uses it: seeded, no final inversion (ext2fs_crc32c_le). */
export function crc32c(seed: number, b: Uint8Array): number {
  let c = seed >>> 0;
  for (let i = 0; i < b.length; i++) c = CRC32C[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return c >>> 0;
}

/** crc16 (ANSI, reflected 0xa001), as uninit_bg descriptors use it. */
export function crc16(seed: number, b: Uint8Array): number {
  let c = seed & 0xffff;
  for (let i = 0; i < b.length; i++) {
    c ^= b[i];
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xa001 : c >>> 1;
  }
  return c & 0xffff;
}

const le32 = (v: number) => Uint8Array.of(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
const le64 = (v: number) => { const b = new Uint8Array(8); b.set(le32(v >>> 0)); b.set(le32(Math.floor(v / 2 ** 32)), 4); return b; };
const get16 = (b: Uint8Array, o: number) => b[o] | (b[o + 1] << 8);
const get32 = (b: Uint8Array, o: number) => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
const put16 = (b: Uint8Array, o: number, v: number) => { b[o] = v & 0xff; b[o + 1] = (v >>> 8) & 0xff; };
const put32 = (b: Uint8Array, o: number, v: number) => b.set(le32(v >>> 0), o);

/** Checksum rewriting over `img` (changed in place), laid out like `pristine`. */
export class Recsum {
  readonly sb: Superblock;
  readonly bs: number;
  readonly metadataCsum: boolean;
  readonly gdtCsum: boolean;
  readonly seed: number;

  constructor(pristine: Uint8Array, readonly img: Uint8Array) {
    this.sb = decodeSuperblock(pristine.subarray(1024, 2048));
    this.bs = this.sb.blockSize;
    this.metadataCsum = (this.sb.featureRoCompat & 0x400) !== 0;
    this.gdtCsum = (this.sb.featureRoCompat & 0x10) !== 0;
    this.seed = this.sb.featureIncompat & 0x2000 ? this.sb.checksumSeed : crc32c(0xffffffff, this.sb.uuid);
  }

  block(pblk: number): Uint8Array { return this.img.subarray(pblk * this.bs, (pblk + 1) * this.bs); }

  superblock(): void {
    if (!this.metadataCsum) return;
    const s = this.img.subarray(1024, 2048);
    put32(s, 0x3fc, crc32c(0xffffffff, s.subarray(0, 0x3fc)));
  }

  /** Rewrites the checksum of every descriptor in GDT block `pblk`, whose first group is `firstGroup`. */
  gdtBlock(pblk: number, firstGroup: number): void {
    const ds = this.sb.descSize;
    const b = this.block(pblk);
    const groups = Math.ceil((this.sb.blocksCount - this.sb.firstDataBlock) / this.sb.blocksPerGroup);
    for (let j = 0; j * ds < this.bs && firstGroup + j < groups; j++) this.descriptorAt(b, j * ds, firstGroup + j);
  }

  private descriptorAt(b: Uint8Array, o: number, g: number): void {
    const d = b.subarray(o, o + this.sb.descSize);
    if (this.metadataCsum) {
      let c = crc32c(this.seed, le32(g));
      c = crc32c(c, d.subarray(0, 0x1e));
      c = crc32c(c, new Uint8Array(2));
      c = crc32c(c, d.subarray(0x20));
      put16(d, 0x1e, c & 0xffff);
    } else if (this.gdtCsum) {
      let c = crc16(0xffff, this.sb.uuid);
      c = crc16(c, le32(g));
      c = crc16(c, d.subarray(0, 0x1e));
      if (d.length > 0x20) c = crc16(c, d.subarray(0x20));
      put16(d, 0x1e, c);
    }
  }

  /** Where group g's descriptor lives (primary copy). */
  descriptorOffset(g: number): number {
    const perBlock = this.bs / this.sb.descSize;
    return descriptorBlock(this.sb, Math.floor(g / perBlock)) * this.bs + (g % perBlock) * this.sb.descSize;
  }

  groupDesc(g: number): void {
    const o = this.descriptorOffset(g);
    this.descriptorAt(this.img.subarray(o, o + this.sb.descSize), 0, g);
  }

  inodeOffset(ino: number): number {
    const g = Math.floor((ino - 1) / this.sb.inodesPerGroup);
    const o = this.descriptorOffset(g);
    const gd = decodeGroupDesc(this.img, o, this.sb.descSize);
    return gd.inodeTable * this.bs + ((ino - 1) % this.sb.inodesPerGroup) * this.sb.inodeSize;
  }

  inodeBytes(ino: number): Uint8Array {
    const o = this.inodeOffset(ino);
    return this.img.subarray(o, o + this.sb.inodeSize);
  }

  /** crc32c(fs seed, ino, generation): the seed of the inode and of every block it owns. */
  inodeSeed(ino: number): number {
    return crc32c(crc32c(this.seed, le32(ino)), le32(get32(this.inodeBytes(ino), 0x64)));
  }

  inode(ino: number): void {
    if (!this.metadataCsum) return;
    const raw = this.inodeBytes(ino);
    const extra = this.sb.inodeSize > 128 ? get16(raw, 0x80) : 0;
    const hasHi = this.sb.inodeSize > 128 && 128 + extra >= 0x84;
    put16(raw, 0x7c, 0);
    if (hasHi) put16(raw, 0x82, 0);
    const c = crc32c(this.inodeSeed(ino), raw);
    put16(raw, 0x7c, c & 0xffff);
    if (hasHi) put16(raw, 0x82, c >>> 16);
  }

  /** An extent tree block of inode `ino`: the sum sits right after eh_max entries. */
  extentBlock(pblk: number, ino: number): void {
    if (!this.metadataCsum) return;
    const b = this.block(pblk);
    const tail = 12 + 12 * get16(b, 4);
    if (tail + 4 > this.bs) return;
    put32(b, tail, crc32c(this.inodeSeed(ino), b.subarray(0, tail)));
  }

  /** A linear directory block (or htree leaf) ending in a dirent tail. */
  dirLeaf(pblk: number, ino: number): void {
    if (!this.metadataCsum) return;
    const b = this.block(pblk);
    put32(b, this.bs - 4, crc32c(this.inodeSeed(ino), b.subarray(0, this.bs - 12)));
  }

  /** An htree root (countOffset 32) or interior node (8): the tail follows `limit` entries. */
  dxNode(pblk: number, ino: number, countOffset: number): void {
    if (!this.metadataCsum) return;
    const b = this.block(pblk);
    const limit = get16(b, countOffset);
    const count = get16(b, countOffset + 2);
    const tail = countOffset + limit * 8;
    if (tail + 8 > this.bs || countOffset + count * 8 > this.bs) return;
    let c = crc32c(this.inodeSeed(ino), b.subarray(0, countOffset + count * 8));
    c = crc32c(c, b.subarray(tail, tail + 4));
    c = crc32c(c, new Uint8Array(4));
    put32(b, tail + 4, c);
  }

  /** A directory block of either kind, told apart as the kernel does (root at lblk 0, fake dirent spanning the block). */
  dirBlock(pblk: number, ino: number, isRoot: boolean): void {
    const b = this.block(pblk);
    const t = this.bs - 12;
    const hasTail = get32(b, t) === 0 && get16(b, t + 4) === 12 && b[t + 6] === 0 && b[t + 7] === 0xde;
    if (hasTail) this.dirLeaf(pblk, ino);
    else if (isRoot) this.dxNode(pblk, ino, 32);
    else if (get16(b, 4) === this.bs || (this.bs === 65536 && get16(b, 4) === 0)) this.dxNode(pblk, ino, 8);
  }

  xattrBlock(pblk: number): void {
    if (!this.metadataCsum) return;
    const b = this.block(pblk);
    put32(b, 0x10, 0);
    put32(b, 0x10, crc32c(crc32c(this.seed, le64(pblk)), b));
  }
}
