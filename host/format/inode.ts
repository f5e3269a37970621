// The on-disk inode: decode into a plain object (the raw bytes are kept for
// the i_block area, in-inode xattrs and re-encoding).

import { hiLo, u16, u32 } from "./bytes.js";

export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

export const INODE_FLAGS = {
  SECRM: 0x1, UNRM: 0x2, COMPR: 0x4, SYNC: 0x8, IMMUTABLE: 0x10, APPEND: 0x20, NODUMP: 0x40,
  NOATIME: 0x80, ENCRYPT: 0x800, INDEX: 0x1000, IMAGIC: 0x2000, JOURNAL_DATA: 0x4000,
  NOTAIL: 0x8000, DIRSYNC: 0x10000, TOPDIR: 0x20000, HUGE_FILE: 0x40000, EXTENTS: 0x80000,
  VERITY: 0x100000, EA_INODE: 0x200000, INLINE_DATA: 0x10000000, PROJINHERIT: 0x20000000,
  CASEFOLD: 0x40000000,
} as const;

export const INODE_CSUM_LO = 0x7c;
export const INODE_CSUM_HI = 0x82;
export const GOOD_OLD_INODE_SIZE = 128;

/** A timestamp with nanoseconds; `sec` may be negative or beyond 2^31. */
export interface Timespec { sec: number; nsec: number }

export interface Inode {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /**
   * i_disksize, what the on-disk inode records and encodeInode writes (the
   * in-core inode keeps it apart from i_size); decoding sets both. Absent:
   * `size` is written.
   */
  disksize?: number;
  atime: Timespec;
  ctime: Timespec;
  mtime: Timespec;
  crtime: Timespec | null;
  dtime: number;
  linksCount: number;
  /** i_blocks in 512-byte units (already scaled for HUGE_FILE). */
  blocks512: number;
  flags: number;
  generation: number;
  fileAcl: number;
  extraIsize: number;
  projid: number;
  version: number;
  /** The 60-byte i_block area (extent root, block map, inline data or symlink). */
  iBlock: Uint8Array;
  /** All inode_size bytes as read. */
  raw: Uint8Array;
}

/** Decodes a time from its 32-bit base and optional extra word (epoch bits + nanoseconds). */
export function decodeTime(base: number, extra: number | undefined): Timespec {
  const signed = base | 0;
  if (extra === undefined) return { sec: signed, nsec: 0 };
  const epoch = extra & 3;
  return { sec: signed + epoch * 0x100000000, nsec: extra >>> 2 };
}

export interface InodeDecodeContext {
  inodeSize: number;
  blockSize: number;
  hugeFile: boolean;
  /** largedir: directories may use i_size_high too. */
  largeDir: boolean;
}

export function decodeInode(ino: number, raw: Uint8Array, ctx: InodeDecodeContext): Inode {
  const { inodeSize } = ctx;
  const extraIsize = inodeSize > GOOD_OLD_INODE_SIZE ? u16(raw, 0x80) : 0;
  // ext4_iget: an unused extra area (i_extra_isize 0 in a large inode) is taken
  // as the full 32 bytes before the time fields are read.
  const fieldsIsize = inodeSize > GOOD_OLD_INODE_SIZE && extraIsize === 0 ? 32 : extraIsize;
  const has = (field: number, len: number) => fieldsIsize > 0 && GOOD_OLD_INODE_SIZE + fieldsIsize >= field + len;
  const extra = (off: number) => (has(off, 4) ? u32(raw, off) : undefined);
  const flags = u32(raw, 0x20);
  const mode = u16(raw, 0x0);
  // ext4_isize: i_size_high counts for regular files, and for directories with largedir.
  const size = hiLo((mode & S_IFMT) === S_IFREG || ctx.largeDir ? u32(raw, 0x6c) : 0, u32(raw, 0x4));
  return {
    ino,
    mode,
    uid: (u16(raw, 0x2) | (u16(raw, 0x78) << 16)) >>> 0,
    gid: (u16(raw, 0x18) | (u16(raw, 0x7a) << 16)) >>> 0,
    size,
    disksize: size,
    atime: decodeTime(u32(raw, 0x8), extra(0x8c)),
    ctime: decodeTime(u32(raw, 0xc), extra(0x84)),
    mtime: decodeTime(u32(raw, 0x10), extra(0x88)),
    crtime: has(0x90, 4) ? decodeTime(u32(raw, 0x90), extra(0x94)) : null,
    dtime: u32(raw, 0x14),
    linksCount: u16(raw, 0x1a),
    blocks512: inodeBlocks512(raw, ctx.hugeFile, ctx.blockSize),
    flags,
    generation: u32(raw, 0x64),
    fileAcl: hiLo(u16(raw, 0x76), u32(raw, 0x68)),
    extraIsize,
    projid: has(0x9c, 4) ? u32(raw, 0x9c) : 0,
    version: u32(raw, 0x24) + (has(0x98, 4) ? u32(raw, 0x98) * 0x100000000 : 0),
    iBlock: raw.subarray(0x28, 0x28 + 60),
    raw,
  };
}

/** i_blocks in 512-byte units, honouring HUGE_FILE (then the field counts fs blocks). */
export function inodeBlocks512(raw: Uint8Array, hugeFileFeature: boolean, blockSize: number): number {
  const flags = u32(raw, 0x20);
  const v = hiLo(hugeFileFeature ? u16(raw, 0x74) : 0, u32(raw, 0x1c));
  return hugeFileFeature && flags & INODE_FLAGS.HUGE_FILE ? v * (blockSize / 512) : v;
}

export const isDir = (i: Inode) => (i.mode & S_IFMT) === S_IFDIR;
export const isReg = (i: Inode) => (i.mode & S_IFMT) === S_IFREG;
export const isLnk = (i: Inode) => (i.mode & S_IFMT) === S_IFLNK;

/** The 32-bit base and extra word of a time (ext4_encode_extra_time): epoch bits carry seconds past 2038. */
export function encodeTime(t: Timespec): { base: number; extra: number } {
  const base = ((t.sec % 0x100000000) + 0x100000000) % 0x100000000;
  const signed = base | 0;
  const epoch = ((t.sec - signed) / 0x100000000) & 3;
  return { base: base >>> 0, extra: ((t.nsec << 2) | epoch) >>> 0 };
}

/**
 * Writes the decoded fields back into `raw` (ext4_do_update_inode), leaving
 * the i_block area (already a view of raw) and the in-inode xattrs as they
 * are. Fields past i_extra_isize are not written. The checksum is the
 * caller's. Throws RangeError for an i_blocks the format cannot hold.
 */
export function encodeInode(inode: Inode, raw: Uint8Array, ctx: InodeDecodeContext): void {
  // Module-level helpers, no closures or time objects: this runs for every inode write.
  put16(raw, 0x0, inode.mode);
  put16(raw, 0x2, inode.uid & 0xffff);
  // ext4_isize_set: i_disksize is what the disk records (i_size may run ahead of it).
  const size = inode.disksize ?? inode.size;
  put32(raw, 0x4, size >>> 0);
  put32(raw, 0x6c, hi32(size));
  put16(raw, 0x18, inode.gid & 0xffff);
  put16(raw, 0x1a, inode.linksCount);
  put32(raw, 0x14, inode.dtime);
  put32(raw, 0x24, inode.version >>> 0);
  put32(raw, 0x64, inode.generation);
  put32(raw, 0x68, inode.fileAcl >>> 0);
  put16(raw, 0x76, hi32(inode.fileAcl) & 0xffff);
  put16(raw, 0x78, inode.uid >>> 16);
  put16(raw, 0x7a, inode.gid >>> 16);
  let flags = inode.flags;
  // ext4_inode_blocks_set: 32 bits, or 48 with huge_file, or fs blocks with HUGE_FILE_FL.
  const b = inode.blocks512;
  let lo = b;
  let hi = 0;
  if (b <= 0xffffffff) {
    flags &= ~INODE_FLAGS.HUGE_FILE;
  } else if (!ctx.hugeFile) {
    throw new RangeError(`inode ${inode.ino}: ${b} sectors need the huge_file feature`);
  } else if (b <= 0xffffffffffff) {
    flags &= ~INODE_FLAGS.HUGE_FILE;
    lo = b % 0x100000000;
    hi = Math.floor(b / 0x100000000);
  } else {
    const fsb = b / (ctx.blockSize / 512);
    if (fsb > 0xffffffffffff) throw new RangeError(`inode ${inode.ino}: ${b} sectors is too many`);
    flags |= INODE_FLAGS.HUGE_FILE;
    lo = fsb % 0x100000000;
    hi = Math.floor(fsb / 0x100000000);
  }
  put32(raw, 0x1c, lo >>> 0);
  put16(raw, 0x74, hi);
  inode.flags = flags;
  put32(raw, 0x20, flags);
  // Fields past i_extra_isize are not written: `end` is where the inode's fields stop.
  const end = ctx.inodeSize > GOOD_OLD_INODE_SIZE && inode.extraIsize > 0 ? GOOD_OLD_INODE_SIZE + inode.extraIsize : 0;
  putTime(raw, 0x8, 0x8c, inode.atime, end);
  putTime(raw, 0xc, 0x84, inode.ctime, end);
  putTime(raw, 0x10, 0x88, inode.mtime, end);
  if (ctx.inodeSize > GOOD_OLD_INODE_SIZE) put16(raw, 0x80, inode.extraIsize);
  if (inode.crtime && end >= 0x94) putTime(raw, 0x90, 0x94, inode.crtime, end);
  if (end >= 0x9c) put32(raw, 0x98, hi32(inode.version));
  if (end >= 0xa0) put32(raw, 0x9c, inode.projid);
}

function put16(raw: Uint8Array, o: number, v: number): void {
  raw[o] = v & 0xff;
  raw[o + 1] = (v >>> 8) & 0xff;
}

function put32(raw: Uint8Array, o: number, v: number): void {
  put16(raw, o, v & 0xffff);
  put16(raw, o + 2, (v >>> 16) & 0xffff);
}

function hi32(v: number): number {
  return Math.floor(v / 0x100000000) >>> 0;
}

/** A time's base word, and its extra word where i_extra_isize covers it (encodeTime, without the object). */
function putTime(raw: Uint8Array, baseOff: number, extraOff: number, t: Timespec, end: number): void {
  const base = ((t.sec % 0x100000000) + 0x100000000) % 0x100000000;
  put32(raw, baseOff, base >>> 0);
  if (end >= extraOff + 4) {
    const epoch = ((t.sec - (base | 0)) / 0x100000000) & 3;
    put32(raw, extraOff, ((t.nsec << 2) | epoch) >>> 0);
  }
}
