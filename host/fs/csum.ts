// Metadata checksums (metadata_csum, crc32c; uninit_bg, crc16), computed in
// wasm over the cached block bytes without copying. "Zeroed" fields are
// skipped by feeding zero bytes in their place.

import { le32, le64, setU32, u16, u32 } from "../format/bytes.js";
import { BG_CHECKSUM_OFFSET } from "../format/group-desc.js";
import { GOOD_OLD_INODE_SIZE, INODE_CSUM_HI, INODE_CSUM_LO } from "../format/inode.js";
import { SB_CHECKSUM_OFFSET } from "../format/superblock.js";
import type { Ext4Wasm } from "../wasm/module.js";

const ZERO4 = new Uint8Array(4);

export class Checksums {
  constructor(private readonly w: Ext4Wasm, /** crc32c seed of the filesystem (from uuid or s_checksum_seed). */ readonly seed: number) {}

  crc(seed: number, b: Uint8Array): number { return this.w.crc32c(seed, b); }

  /** crc32c over b with [skipAt, skipAt+skipLen) treated as zeros. */
  crcSkipping(seed: number, b: Uint8Array, skipAt: number, skipLen: number): number {
    let c = this.w.crc32c(seed, b.subarray(0, skipAt));
    c = this.w.crc32c(c, ZERO4.subarray(0, skipLen));
    return this.w.crc32c(c, b.subarray(skipAt + skipLen));
  }

  superblock(sb: Uint8Array): number {
    return this.w.crc32c(0xffffffff, sb.subarray(0, SB_CHECKSUM_OFFSET));
  }

  groupDescCsum32(group: number, desc: Uint8Array): number {
    // crc32c(seed, le32 group, the descriptor with its checksum as zeros), staged in scratch as one run.
    const w = this.w, mem = w.u8, p = w.scratchPtr;
    setU32(mem, p, group);
    mem.set(desc, p + 4);
    mem[p + 4 + BG_CHECKSUM_OFFSET] = mem[p + 5 + BG_CHECKSUM_OFFSET] = 0;
    return w.x.crc32c(this.seed, p, 4 + desc.length) & 0xffff;
  }

  /** uninit_bg/gdt_csum: crc16 over uuid, group, descriptor without its checksum field. */
  groupDescCsum16(uuid: Uint8Array, group: number, desc: Uint8Array): number {
    let c = this.w.crc16(0xffff, uuid);
    c = this.w.crc16(c, le32(group));
    c = this.w.crc16(c, desc.subarray(0, BG_CHECKSUM_OFFSET));
    if (desc.length > BG_CHECKSUM_OFFSET + 2) c = this.w.crc16(c, desc.subarray(BG_CHECKSUM_OFFSET + 2));
    return c & 0xffff;
  }

  /** Seed for per-inode structures: crc32c(fs seed, ino, generation). */
  inodeSeed(ino: number, generation: number): number {
    // Both words staged in scratch: one wasm call, nothing allocated (this runs for every inode write).
    const w = this.w, mem = w.u8, p = w.scratchPtr;
    setU32(mem, p, ino);
    setU32(mem, p + 4, generation);
    return w.x.crc32c(this.seed, p, 8) >>> 0;
  }

  /** Full 32-bit inode checksum; the caller compares lo (and hi if present). */
  inode(ino: number, raw: Uint8Array, inodeSize: number): number {
    // crc32c(seed, ino, generation, the inode with its checksum fields as zeros), staged in scratch as
    // one run: a copy of at most an inode, one wasm call and no allocation.
    const w = this.w, mem = w.u8, p = w.scratchPtr;
    const len = Math.min(raw.length, Math.max(GOOD_OLD_INODE_SIZE, inodeSize));
    setU32(mem, p, ino);
    setU32(mem, p + 4, u32(raw, 0x64));
    mem.set(raw.subarray(0, len), p + 8);
    mem[p + 8 + INODE_CSUM_LO] = mem[p + 9 + INODE_CSUM_LO] = 0;
    if (len > GOOD_OLD_INODE_SIZE && u16(raw, 0x80) + GOOD_OLD_INODE_SIZE >= INODE_CSUM_HI + 2) {
      mem[p + 8 + INODE_CSUM_HI] = mem[p + 9 + INODE_CSUM_HI] = 0;
    }
    return w.x.crc32c(this.seed, p, 8 + len) >>> 0;
  }

  /** Extent block tail: crc32c(inode seed, header + max entries). */
  extentBlock(inodeSeed: number, block: Uint8Array, tailOffset: number): number {
    return this.w.crc32c(inodeSeed, block.subarray(0, tailOffset));
  }

  /** Linear directory block: crc32c(inode seed, bytes before the 12-byte tail). */
  dirBlock(inodeSeed: number, block: Uint8Array): number {
    return this.w.crc32c(inodeSeed, block.subarray(0, block.length - 12));
  }

  /** htree node: crc32c(inode seed, up to the used entries, then the tail's reserved word, then 4 zero bytes). */
  dxNode(inodeSeed: number, block: Uint8Array, countOffset: number, count: number, tailOffset: number): number {
    let c = this.w.crc32c(inodeSeed, block.subarray(0, countOffset + count * 8));
    c = this.w.crc32c(c, block.subarray(tailOffset, tailOffset + 4));
    return this.w.crc32c(c, ZERO4);
  }

  /** Block or inode bitmap (ext4_block_bitmap_csum_set): crc32c(fs seed, the first `bytes` bytes). */
  bitmap(b: Uint8Array, bytes: number): number {
    return this.w.crc32c(this.seed, b.subarray(0, bytes)) >>> 0;
  }

  /** xattr block: crc32c(fs seed, le64 block number, block with checksum (0x10) zeroed). */
  xattrBlock(pblk: number, block: Uint8Array): number {
    return this.crcSkipping(this.w.crc32c(this.seed, le64(pblk)), block, 0x10, 4);
  }
}
