// Reading inodes from the inode tables, checksums verified.

import { corrupted } from "../errors.js";
import { u16, u32 } from "../format/bytes.js";
import { BG_FLAGS } from "../format/group-desc.js";
import { INCOMPAT, RO_COMPAT } from "../format/features.js";
import { decodeInode, GOOD_OLD_INODE_SIZE, Inode, INODE_CSUM_HI, INODE_CSUM_LO, INODE_FLAGS, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from "../format/inode.js";
import { XATTR_MAGIC } from "../format/xattr.js";
import { hasRoCompat } from "../format/superblock.js";
import type { Ext4 } from "./super.js";

/** Where inode `ino` lives: block and byte offset within it. */
export function inodeLocation(fs: Ext4, ino: number): { group: number; index: number; block: number; offset: number } {
  const sb = fs.sb;
  if (!Number.isInteger(ino) || ino < 1 || ino > sb.inodesCount) throw corrupted(`inode number ${ino} out of range (1..${sb.inodesCount})`, { ino });
  const group = Math.floor((ino - 1) / sb.inodesPerGroup);
  const index = (ino - 1) % sb.inodesPerGroup;
  const byte = index * sb.inodeSize;
  const gd = fs.groups[group];
  return { group, index, block: gd.inodeTable + Math.floor(byte / sb.blockSize), offset: byte % sb.blockSize };
}

/** True if the inode lies in a part of its group's table that was never initialised. */
function inUninitArea(fs: Ext4, group: number, index: number): boolean {
  const sb = fs.sb;
  if (!hasRoCompat(sb, RO_COMPAT.GDT_CSUM) && !hasRoCompat(sb, RO_COMPAT.METADATA_CSUM)) return false;
  const gd = fs.groups[group];
  if (gd.flags & BG_FLAGS.INODE_UNINIT) return true;
  return index >= sb.inodesPerGroup - gd.itableUnused;
}

export function readInodeRaw(fs: Ext4, ino: number): Inode {
  const sb = fs.sb;
  const loc = inodeLocation(fs, ino);
  const ctx = {
    inodeSize: sb.inodeSize, blockSize: sb.blockSize, hugeFile: hasRoCompat(sb, RO_COMPAT.HUGE_FILE),
    largeDir: (sb.featureIncompat & INCOMPAT.LARGEDIR) !== 0,
  };
  if (inUninitArea(fs, loc.group, loc.index)) {
    return decodeInode(ino, new Uint8Array(sb.inodeSize), ctx);
  }
  const block = fs.bcache.read(loc.block, "inode table block");
  const raw = block.slice(loc.offset, loc.offset + sb.inodeSize);
  if (sb.inodeSize > 128) {
    const extra = u16(raw, 0x80);
    if (extra > sb.inodeSize - 128 || (extra & 3) !== 0) throw corrupted(`i_extra_isize ${extra} is invalid`, { ino, block: loc.block });
  }
  if (fs.metadataCsum && fs.verifyChecksums && !isAllZero(raw)) {
    const c = fs.csum.inode(ino, raw, sb.inodeSize);
    const hasHi = sb.inodeSize > 128 && u16(raw, 0x80) >= 4;
    const stored = u16(raw, INODE_CSUM_LO) | (hasHi ? u16(raw, INODE_CSUM_HI) << 16 : 0);
    const want = hasHi ? c : c & 0xffff;
    if ((stored >>> 0) !== (want >>> 0)) {
      throw corrupted(`inode checksum mismatch (stored 0x${(stored >>> 0).toString(16)}, computed 0x${(want >>> 0).toString(16)})`, { ino, block: loc.block });
    }
  }
  const inode = decodeInode(ino, raw, ctx);
  checkSize(fs, inode, loc.block);
  // __ext4_iget refuses these outright, whatever the caller goes on to read.
  if (inode.flags & INODE_FLAGS.INLINE_DATA && inode.flags & INODE_FLAGS.EXTENTS) throw corrupted("inode has both inline data and extents flags", { ino, block: loc.block });
  checkInodeXattrs(fs, inode, loc.block);
  checkBlockRefs(fs, inode, loc.block);
  // ext4_inode_block_valid on i_file_acl, system zone included.
  if (inode.fileAcl !== 0) {
    const z = fs.systemZone?.overlapping(inode.fileAcl, 1);
    if (inode.fileAcl <= fs.sb.firstDataBlock || inode.fileAcl >= fs.sb.blocksCount || (z && z.ino !== ino)) {
      throw corrupted(`bad extended attribute block ${inode.fileAcl}`, { ino, block: loc.block });
    }
  }
  return inode;
}

/**
 * ext4_ind_check_inode (via ext4_check_blockref): every direct block a block-mapped file, directory
 * or slow symlink names in i_block, used or not, must be a valid block outside the system zone.
 * (The kernel checks the 12 direct slots here; indirect ones when it reads through them.)
 */
function checkBlockRefs(fs: Ext4, inode: Inode, block: number): void {
  if (inode.flags & (INODE_FLAGS.EXTENTS | INODE_FLAGS.INLINE_DATA)) return;
  const type = inode.mode & S_IFMT;
  if (type !== S_IFREG && type !== S_IFDIR && !(type === S_IFLNK && !isFastSymlink(fs, inode))) return;
  if (fs.hasJournal && inode.ino === fs.sb.journalInum) return;
  for (let i = 0; i < 12; i++) {
    const b = u32(inode.iBlock, i * 4);
    if (b === 0) continue;
    const z = fs.systemZone?.overlapping(b, 1);
    if (b <= fs.sb.firstDataBlock || b >= fs.sb.blocksCount || (z && z.ino !== inode.ino)) {
      throw corrupted(`invalid block ${b} in i_block[${i}]`, { ino: inode.ino, block });
    }
  }
}

/** ext4_inode_is_fast_symlink: no blocks but the xattr block's (an ea_inode: a short size). */
export function isFastSymlink(fs: Ext4, inode: Inode): boolean {
  if (inode.flags & INODE_FLAGS.EA_INODE) return inode.size !== 0 && inode.size < 60;
  const eaBlocks = inode.fileAcl !== 0 ? fs.sb.clusterSize / 512 : 0;
  return inode.blocks512 - eaBlocks === 0;
}

/**
 * ext4_iget_extra_inode -> xattr_check_inode: the in-inode xattr entries must stay inside the
 * inode, their values too, and a value in an inode needs the ea_inode feature and a plausible inode.
 */
function checkInodeXattrs(fs: Ext4, inode: Inode, block: number): void {
  const raw = inode.raw;
  const end = fs.sb.inodeSize;
  const start = GOOD_OLD_INODE_SIZE + inode.extraIsize;
  // An i_extra_isize of 0 is taken as unused space, not checked (__ext4_iget).
  if (end <= GOOD_OLD_INODE_SIZE || inode.extraIsize === 0 || start + 4 > end || u32(raw, start) !== XATTR_MAGIC) return;
  const first = start + 4;
  const bad = (why: string) => corrupted(`corrupted in-inode xattr: ${why}`, { ino: inode.ino, block });
  for (let p = first; p + 4 <= end && u32(raw, p) !== 0; p += (16 + raw[p] + 3) & ~3) {
    if (p + 16 > end || p + 16 + raw[p] > end) throw bad("entry runs past the inode");
    const offs = u16(raw, p + 2);
    const inum = u32(raw, p + 4);
    const size = u32(raw, p + 8);
    if (inum !== 0) {
      if (!(fs.sb.featureIncompat & INCOMPAT.EA_INODE)) throw bad("ea_inode specified without ea_inode feature enabled");
      if (inum === inode.ino || inum < fs.sb.firstIno || inum > fs.sb.inodesCount) throw bad(`invalid ea_ino ${inum}`);
    } else if (size !== 0 && (offs > end - first || size > end - first - offs)) {
      throw bad("value is out of bounds");
    }
  }
}

/**
 * __ext4_iget: i_size is a signed loff_t no larger than the inode's maxbytes (s_maxbytes for
 * extent-mapped inodes, s_bitmap_maxbytes for block-mapped ones); anything else is refused.
 */
function checkSize(fs: Ext4, inode: Inode, block: number): void {
  const raw = inode.raw;
  const hi = inode.size >= 2 ** 32 ? u32(raw, 0x6c) : 0;
  const size = (BigInt(hi) << 32n) | BigInt(u32(raw, 0x4));
  if (size <= 0xffffffffn) return;
  const huge = hasRoCompat(fs.sb, RO_COMPAT.HUGE_FILE);
  const bits = BigInt(fs.sb.logBlockSize + 10);
  const max = inode.flags & INODE_FLAGS.EXTENTS ? maxExtentSize(bits, huge) : maxBitmapSize(bits, huge);
  if (size >= 1n << 63n) throw corrupted(`bad i_size value 0x${size.toString(16)} (negative)`, { ino: inode.ino, block });
  if (size > max) throw corrupted(`bad i_size value ${size} (the largest for this inode is ${max})`, { ino: inode.ino, block });
}

const MAX_LFS_FILESIZE = (1n << 63n) - 1n;

/** ext4_max_size: ee_block is 32 bits (one block kept back for ee_len), capped by i_blocks without huge_file. */
function maxExtentSize(bits: bigint, huge: boolean): bigint {
  const upper = huge ? MAX_LFS_FILESIZE : ((((1n << 32n) - 1n) >> (bits - 9n)) << bits);
  const res = ((1n << 32n) - 1n) << bits;
  return res > upper ? upper : res;
}

/** ext4_max_bitmap_size: what the block tree addresses, less its own metadata blocks, within the i_blocks limit. */
function maxBitmapSize(bits: bigint, huge: boolean): bigint {
  const ppb = 1n << (bits - 2n);
  const div = (a: bigint, b: bigint) => (a + b - 1n) / b;
  let upper = huge ? (1n << 48n) - 1n : ((1n << 32n) - 1n) >> (bits - 9n);
  let res = 12n + ppb + ppb * ppb + ppb * ppb * ppb;
  let meta = 1n + (1n + ppb) + (1n + ppb + ppb * ppb);
  if (res + meta > upper) {
    res = upper;
    upper -= 12n + ppb;
    meta = 1n;
    if (upper < ppb * ppb) {
      meta += 1n + div(upper, ppb);
    } else {
      meta += 1n + ppb;
      upper -= ppb * ppb;
      meta += 1n + div(upper, ppb) + div(upper, ppb * ppb);
    }
    res -= meta;
  }
  res <<= bits;
  return res > MAX_LFS_FILESIZE ? MAX_LFS_FILESIZE : res;
}

function isAllZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}
