// fs.Stats-shaped results: numbers by default, bigint (with nanosecond
// times) on request, as node:fs does.

import { INODE_FLAGS, type Inode, type Timespec } from "../format/inode.js";
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK } from "../format/inode.js";

abstract class StatsBase<T extends number | bigint> {
  abstract mode: T;
  protected fmt(): number { return Number(this.mode) & S_IFMT; }
  isFile(): boolean { return this.fmt() === S_IFREG; }
  isDirectory(): boolean { return this.fmt() === S_IFDIR; }
  isSymbolicLink(): boolean { return this.fmt() === S_IFLNK; }
  isBlockDevice(): boolean { return this.fmt() === S_IFBLK; }
  isCharacterDevice(): boolean { return this.fmt() === S_IFCHR; }
  isFIFO(): boolean { return this.fmt() === S_IFIFO; }
  isSocket(): boolean { return this.fmt() === S_IFSOCK; }
}

/**
 * st_blocks as ext4_file_getattr reports it: an inline-data file owns no data
 * blocks, so its size in sectors is added, lest tools think it all holes.
 */
function reportedBlocks(i: Inode): number {
  return i.flags & INODE_FLAGS.INLINE_DATA ? i.blocks512 + Math.floor((i.size + 511) / 512) : i.blocks512;
}

const nsOf = (t: Timespec) => BigInt(t.sec) * 1_000_000_000n + BigInt(t.nsec);
const msOf = (t: Timespec) => t.sec * 1000 + t.nsec / 1e6;

export class Stats extends StatsBase<number> {
  dev: number; ino: number; mode: number; nlink: number; uid: number; gid: number; rdev: number;
  size: number; blksize: number; blocks: number;
  atimeMs: number; mtimeMs: number; ctimeMs: number; birthtimeMs: number;
  // Dates are made on first use, as node does: most callers never look.
  get atime(): Date { return new Date(this.atimeMs); }
  get mtime(): Date { return new Date(this.mtimeMs); }
  get ctime(): Date { return new Date(this.ctimeMs); }
  get birthtime(): Date { return new Date(this.birthtimeMs); }
  constructor(i: Inode, blksize: number, rdev: number, dev: number) {
    super();
    this.dev = dev; this.ino = i.ino; this.mode = i.mode; this.nlink = i.linksCount; this.uid = i.uid; this.gid = i.gid;
    this.rdev = rdev; this.size = i.size; this.blksize = blksize; this.blocks = reportedBlocks(i);
    this.atimeMs = msOf(i.atime); this.mtimeMs = msOf(i.mtime); this.ctimeMs = msOf(i.ctime);
    this.birthtimeMs = i.crtime ? msOf(i.crtime) : 0;
  }
}

export class BigIntStats extends StatsBase<bigint> {
  dev: bigint; ino: bigint; mode: bigint; nlink: bigint; uid: bigint; gid: bigint; rdev: bigint;
  size: bigint; blksize: bigint; blocks: bigint;
  atimeNs: bigint; mtimeNs: bigint; ctimeNs: bigint; birthtimeNs: bigint;
  atimeMs: bigint; mtimeMs: bigint; ctimeMs: bigint; birthtimeMs: bigint;
  atime: Date; mtime: Date; ctime: Date; birthtime: Date;
  constructor(i: Inode, blksize: number, rdev: number, dev: number) {
    super();
    this.dev = BigInt(dev); this.ino = BigInt(i.ino); this.mode = BigInt(i.mode); this.nlink = BigInt(i.linksCount);
    this.uid = BigInt(i.uid); this.gid = BigInt(i.gid); this.rdev = BigInt(rdev); this.size = BigInt(i.size);
    this.blksize = BigInt(blksize); this.blocks = BigInt(reportedBlocks(i));
    this.atimeNs = nsOf(i.atime); this.mtimeNs = nsOf(i.mtime); this.ctimeNs = nsOf(i.ctime);
    this.birthtimeNs = i.crtime ? nsOf(i.crtime) : 0n;
    const ms = (ns: bigint) => ns / 1_000_000n; // truncated toward zero, as node does
    this.atimeMs = ms(this.atimeNs); this.mtimeMs = ms(this.mtimeNs); this.ctimeMs = ms(this.ctimeNs); this.birthtimeMs = ms(this.birthtimeNs);
    this.atime = new Date(Number(this.atimeMs)); this.mtime = new Date(Number(this.mtimeMs));
    this.ctime = new Date(Number(this.ctimeMs)); this.birthtime = new Date(Number(this.birthtimeMs));
  }
}

/** Device number of a character/block special file, from i_block (old or new encoding). */
export function decodeRdev(iBlock: Uint8Array): number {
  const w0 = iBlock[0] | (iBlock[1] << 8) | (iBlock[2] << 16) | (iBlock[3] << 24);
  if (w0 !== 0) {
    // Old 16-bit encoding: major in bits 8..15, minor in 0..7.
    return ((((w0 >>> 8) & 0xff) << 8) | (w0 & 0xff)) >>> 0;
  }
  const w1 = (iBlock[4] | (iBlock[5] << 8) | (iBlock[6] << 16) | (iBlock[7] << 24)) >>> 0;
  const major = (w1 & 0xfff00) >>> 8;
  const minor = (w1 & 0xff) | ((w1 >>> 12) & 0xfff00);
  // Linux's userspace dev_t packing (as stat(2) reports it), for majors/minors below 2^12 / 2^20.
  return ((major & 0xfff) << 8 | (minor & 0xff) | ((minor & ~0xff) << 12)) >>> 0;
}
