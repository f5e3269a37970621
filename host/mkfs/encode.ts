// The bytes of a new filesystem's metadata: superblock, group descriptors,
// bitmaps, inodes, directory blocks, extent nodes and the jbd2 superblock,
// built from a Layout. Checksums are filled in here (fs/csum.ts).

import { setU16, setU32, setU64 } from "../format/bytes.js";
import { encodeGroupDesc, type GroupDesc } from "../format/group-desc.js";
import { setBe32 } from "../format/jbd2.js";
import { EXT4_MAGIC, SB_CHECKSUM_OFFSET } from "../format/superblock.js";
import type { Checksums } from "../fs/csum.js";
import { JOURNAL_INO, type Extent, type Layout } from "./layout.js";
import { hasFeature } from "./options.js";

const EXTENT_MAGIC = 0xf30a;
const ORPHAN_BLOCK_MAGIC = 0x0b10ca04;

/** The primary superblock (1024 bytes) as mke2fs leaves it; `group` > 0 for a backup copy. */
export function superblockBytes(l: Layout, csum: Checksums, group: number, kbytesWritten: number): Uint8Array {
  const p = l.p;
  const b = new Uint8Array(1024);
  const f = l.features;
  setU32(b, 0x00, l.inodesCount);
  setU32(b, 0x04, l.blocksCount >>> 0);
  setU32(b, 0x08, l.reservedBlocks >>> 0);
  setU32(b, 0x0c, l.freeBlocks >>> 0);
  setU32(b, 0x10, l.freeInodes);
  setU32(b, 0x14, l.firstDataBlock);
  setU32(b, 0x18, p.logBlockSize);
  setU32(b, 0x1c, l.logClusterSize);
  setU32(b, 0x20, l.blocksPerGroup);
  setU32(b, 0x24, l.clustersPerGroup);
  setU32(b, 0x28, l.inodesPerGroup);
  setU32(b, 0x30, p.time); // s_wtime: ext2fs_flush stamps it
  setU16(b, 0x36, 0xffff); // s_max_mnt_count -1: no periodic fsck
  setU16(b, 0x38, EXT4_MAGIC);
  setU16(b, 0x3a, group === 0 ? 1 : 0); // EXT2_VALID_FS; ext2fs_flush writes the backups with it clear
  setU16(b, 0x3c, p.errors);
  setU32(b, 0x40, p.time); // s_lastcheck
  setU32(b, 0x4c, 1); // EXT2_DYNAMIC_REV
  setU32(b, 0x54, 11);
  setU16(b, 0x58, p.inodeSize);
  setU16(b, 0x5a, group);
  setU32(b, 0x5c, f.compat);
  setU32(b, 0x60, f.incompat);
  setU32(b, 0x64, f.roCompat);
  b.set(p.uuid, 0x68);
  b.set(p.label, 0x78);
  setU16(b, 0xce, l.reservedGdtBlocks);
  if (l.journal) setU32(b, 0xe0, JOURNAL_INO);
  for (let i = 0; i < 4; i++) b.set(p.hashSeed.subarray(i * 4, i * 4 + 4), 0xec + i * 4);
  b[0xfc] = 1; // half_md4
  if (hasFeature(f, "64bit")) setU16(b, 0xfe, l.descSize);
  setU32(b, 0x100, 0x0004 | 0x0008); // default_mntopts user_xattr,acl
  setU32(b, 0x108, p.time); // s_mkfs_time
  if (l.journal) {
    b.set(inodeBlockArea(l, l.journal), 0x10c); // s_jnl_blocks[0..14]: the journal's i_block
    const size = l.journal.blocks * l.blockSize;
    setU32(b, 0x10c + 15 * 4, Math.floor(size / 2 ** 32));
    setU32(b, 0x10c + 16 * 4, size >>> 0);
    b[0xfd] = 1; // EXT3_JNL_BACKUP_BLOCKS
  }
  if (hasFeature(f, "64bit")) {
    setU32(b, 0x150, Math.floor(l.blocksCount / 2 ** 32));
    setU32(b, 0x154, Math.floor(l.reservedBlocks / 2 ** 32));
    setU32(b, 0x158, Math.floor(l.freeBlocks / 2 ** 32));
  }
  if (p.inodeSize >= 160) { setU16(b, 0x15c, 32); setU16(b, 0x15e, 32); }
  setU32(b, 0x160, 0x1); // signed directory hash (char is signed on x86)
  b[0x174] = l.logGroupsPerFlex;
  if (hasFeature(f, "metadata_csum")) b[0x175] = 1; // crc32c
  if (hasFeature(f, "encrypt")) { b[0x254] = 1; b[0x255] = 4; } // AES_256_XTS, AES_256_CTS
  setU64(b, 0x178, kbytesWritten);
  setU32(b, 0x248, l.overheadClusters);
  if (hasFeature(f, "metadata_csum_seed")) setU32(b, 0x270, csum.seed);
  if (l.orphan) setU32(b, 0x280, l.orphan.ino);
  if (hasFeature(f, "metadata_csum")) setU32(b, SB_CHECKSUM_OFFSET, csum.superblock(b));
  return b;
}

/** Every group descriptor, descBlocks blocks of them, with checksums. */
export function groupDescBytes(l: Layout, csum: Checksums, bitmapCsums: { block: number[]; inode: number[] }): Uint8Array {
  const out = new Uint8Array(l.descBlocks * l.blockSize);
  const csum32 = hasFeature(l.features, "metadata_csum");
  const csum16 = hasFeature(l.features, "gdt_csum");
  for (let g = 0; g < l.groupCount; g++) {
    const gl = l.groups[g];
    const d: GroupDesc = {
      blockBitmap: gl.blockBitmap, inodeBitmap: gl.inodeBitmap, inodeTable: gl.inodeTable,
      freeBlocks: gl.freeClusters, freeInodes: gl.freeInodes, usedDirs: gl.usedDirs, flags: gl.flags,
      excludeBitmap: 0, blockBitmapCsum: bitmapCsums.block[g] ?? 0, inodeBitmapCsum: bitmapCsums.inode[g] ?? 0,
      itableUnused: gl.itableUnused, checksum: 0,
    };
    const o = g * l.descSize;
    encodeGroupDesc(d, out, o, l.descSize);
    const view = out.subarray(o, o + l.descSize);
    if (csum32) setU16(out, o + 0x1e, csum.groupDescCsum32(g, view));
    else if (csum16) setU16(out, o + 0x1e, csum.groupDescCsum16(l.p.uuid, g, view));
  }
  return out;
}

/** A group's block bitmap (one bit per cluster; the bits past the group's end set), or null if BLOCK_UNINIT. */
export function blockBitmapBytes(l: Layout, g: number): Uint8Array {
  const out = new Uint8Array(l.blockSize);
  const gl = l.groups[g];
  const bits = l.map.groupBits(g);
  const clusters = gl.blocks / l.clusterRatio;
  if (bits && l.clusterRatio === 1) out.set(bits.subarray(0, Math.ceil(clusters / 8)));
  else if (bits) {
    for (let c = 0; c < clusters; c++) {
      const blk = c * l.clusterRatio;
      if (bits[blk >> 3] & (1 << (blk & 7))) out[c >> 3] |= 1 << (c & 7);
    }
  }
  let c = clusters;
  for (; c & 7; c++) out[c >> 3] |= 1 << (c & 7);
  out.fill(0xff, c >> 3);
  return out;
}

/** A group's inode bitmap: inodes 1 .. lastIno used; the bits past inodes_per_group set. */
export function inodeBitmapBytes(l: Layout, g: number): Uint8Array {
  const out = new Uint8Array(l.blockSize);
  const first = g * l.inodesPerGroup + 1;
  const used = Math.max(0, Math.min(l.lastIno - first + 1, l.inodesPerGroup));
  for (let i = 0; i < used; i++) out[i >> 3] |= 1 << (i & 7);
  for (let i = l.inodesPerGroup; i < l.blockSize * 8; i++) out[i >> 3] |= 1 << (i & 7);
  return out;
}

export interface InodeSpec {
  mode: number;
  uid?: number;
  gid?: number;
  links: number;
  size: number;
  /** In filesystem blocks. */
  blocks: number;
  flags: number;
  iblock: Uint8Array; // 60 bytes
  /** Set the three times only (inode 1: ext2fs_update_bb_inode's plain write). */
  small?: boolean;
  /** Made with inline data and expanded to blocks (lost+found with inline_data). */
  inlineWas?: boolean;
}

/** An on-disk inode as ext2fs_write_new_inode writes it: all times = now, i_extra_isize 32, crtime. */
export function inodeBytes(l: Layout, csum: Checksums, ino: number, s: InodeSpec | null): Uint8Array {
  const isz = l.p.inodeSize;
  const b = new Uint8Array(isz);
  if (s) {
    const t = l.p.time;
    setU16(b, 0x00, s.mode);
    setU16(b, 0x02, (s.uid ?? 0) & 0xffff);
    setU32(b, 0x04, s.size >>> 0);
    setU32(b, 0x08, t);
    setU32(b, 0x0c, t);
    setU32(b, 0x10, t);
    setU16(b, 0x18, (s.gid ?? 0) & 0xffff);
    setU16(b, 0x1a, s.links);
    const sectors = s.blocks * (l.blockSize / 512);
    setU32(b, 0x1c, sectors >>> 0);
    setU16(b, 0x74, Math.floor(sectors / 2 ** 32));
    setU32(b, 0x20, s.flags);
    b.set(s.iblock, 0x28);
    setU32(b, 0x6c, Math.floor(s.size / 2 ** 32));
    setU16(b, 0x78, (s.uid ?? 0) >>> 16);
    setU16(b, 0x7a, (s.gid ?? 0) >>> 16);
    if (isz > 128 && !s.small) {
      setU16(b, 0x80, 32);
      if (isz >= 0x98) setU32(b, 0x90, t); // crtime
      // A directory that began as inline data keeps the in-inode xattr header its system.data left.
      if (s.inlineWas && isz >= 128 + 32 + 4) setU32(b, 128 + 32, 0xea020000);
    }
  }
  if (hasFeature(l.features, "metadata_csum")) {
    const c = csum.inode(ino, b, isz);
    setU16(b, 0x7c, c & 0xffff);
    if (isz > 128 && (b[0x80] | (b[0x81] << 8)) >= 4) setU16(b, 0x82, c >>> 16);
  }
  return b;
}

/** i_block of an extent-mapped file: the header and up to 4 extents, or one index to the leaf. */
export function extentRoot(extents: Extent[], leafBlock: number): Uint8Array {
  const b = new Uint8Array(60);
  setU16(b, 0, EXTENT_MAGIC);
  setU16(b, 4, 4);
  if (leafBlock) {
    setU16(b, 2, 1);
    setU16(b, 6, 1);
    setU32(b, 12, 0);
    setU32(b, 16, leafBlock >>> 0);
    setU16(b, 20, Math.floor(leafBlock / 2 ** 32));
    // extent_node_split leaves the root's old entries 1..3 behind the index, as mke2fs's images show.
    extents.slice(1, 4).forEach((e, i) => putExtent(b, 24 + i * 12, e));
  } else {
    setU16(b, 2, extents.length);
    extents.forEach((e, i) => putExtent(b, 12 + i * 12, e));
  }
  return b;
}

function putExtent(b: Uint8Array, o: number, e: Extent): void {
  setU32(b, o, e.lblk);
  setU16(b, o + 4, e.len);
  setU16(b, o + 6, Math.floor(e.pblk / 2 ** 32));
  setU32(b, o + 8, e.pblk >>> 0);
}

/** An extent leaf block (depth 0) with its checksum tail. */
export function extentLeafBytes(l: Layout, csum: Checksums, ino: number, extents: Extent[]): Uint8Array {
  const bs = l.blockSize;
  const b = new Uint8Array(bs);
  const max = Math.floor((bs - 12) / 12);
  setU16(b, 0, EXTENT_MAGIC);
  setU16(b, 2, extents.length);
  setU16(b, 4, max);
  extents.forEach((e, i) => putExtent(b, 12 + i * 12, e));
  if (hasFeature(l.features, "metadata_csum")) {
    const tail = 12 + 12 * max;
    setU32(b, tail, csum.extentBlock(csum.inodeSeed(ino, 0), b, tail));
  }
  return b;
}

/** The 60 bytes of i_block for a file layout (extent root, or direct/indirect pointers). */
export function inodeBlockArea(l: Layout, f: { extents: Extent[]; leafBlock: number; indirect?: number[] }): Uint8Array {
  if (hasFeature(l.features, "extent")) return extentRoot(f.extents, f.leafBlock);
  const b = new Uint8Array(60);
  for (const e of f.extents) for (let i = 0; i < e.len && e.lblk + i < 12; i++) setU32(b, (e.lblk + i) * 4, e.pblk + i);
  if (f.indirect?.length) setU32(b, 12 * 4, f.indirect[0]);
  if (f.indirect && f.indirect.length > 1) setU32(b, 13 * 4, f.indirect[1]);
  return b;
}

function recLen(len: number, bs: number): number {
  if (len < 65536) return len;
  return len === bs ? 65535 : (len & 65532) | ((len >> 16) & 3);
}

function putDirent(b: Uint8Array, o: number, ino: number, len: number, name: string, type: number, l: Layout): void {
  setU32(b, o, ino);
  setU16(b, o + 4, recLen(len, l.blockSize));
  b[o + 6] = name.length;
  b[o + 7] = hasFeature(l.features, "filetype") ? type : 0;
  for (let i = 0; i < name.length; i++) b[o + 8 + i] = name.charCodeAt(i);
}

/** A directory block: the entries given (name, ino), the last one stretched to the end, and the checksum tail. */
export function dirBlockBytes(l: Layout, csum: Checksums, dirIno: number, entries: [string, number][], stretchLast = true): Uint8Array {
  const bs = l.blockSize;
  const b = new Uint8Array(bs);
  const withTail = hasFeature(l.features, "metadata_csum");
  const end = withTail ? bs - 12 : bs;
  let o = 0;
  entries.forEach(([name, ino], i) => {
    const len = stretchLast && i === entries.length - 1 ? end - o : (8 + name.length + 3) & ~3;
    putDirent(b, o, ino, len, name, 2, l);
    o += len;
  });
  // The rest as one empty entry (an empty block; or a block that was inline data: its entries keep their size).
  if (o < end) putDirent(b, o, 0, end - o, "", 0, l);
  if (withTail) {
    const t = bs - 12;
    setU16(b, t + 4, 12);
    b[t + 7] = 0xde;
    setU32(b, t + 8, csum.dirBlock(csum.inodeSeed(dirIno, 0), b));
  }
  return b;
}

/** One orphan file block: empty slots, the magic and (metadata_csum) the block's checksum. */
export function orphanBlockBytes(l: Layout, csum: Checksums, ino: number, pblk: number): Uint8Array {
  const bs = l.blockSize;
  const b = new Uint8Array(bs);
  setU32(b, bs - 8, ORPHAN_BLOCK_MAGIC);
  if (hasFeature(l.features, "metadata_csum")) {
    let c = csum.inodeSeed(ino, 0);
    const blk = new Uint8Array(8);
    setU64(blk, 0, pblk);
    c = csum.crc(c, blk);
    c = csum.crc(c, b.subarray(0, bs - 8));
    setU32(b, bs - 4, c >>> 0);
  }
  return b;
}

/** The jbd2 superblock (v2) mke2fs writes: first 1, sequence 1, no features, the filesystem's UUID. */
export function journalSuperblockBytes(l: Layout, blocks: number): Uint8Array {
  const b = new Uint8Array(l.blockSize);
  setBe32(b, 0x0, 0xc03b3998);
  setBe32(b, 0x4, 4);
  setBe32(b, 0xc, l.blockSize);
  setBe32(b, 0x10, blocks);
  setBe32(b, 0x14, 1);
  setBe32(b, 0x18, 1);
  b.set(l.p.uuid, 0x30);
  setBe32(b, 0x40, 1);
  return b;
}
