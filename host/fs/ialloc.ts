// Inode allocation (fs/ext4/ialloc.c): choosing a group (Orlov for
// directories, near the parent for the rest), the inode bitmap through buffer
// heads and a handle, INODE_UNINIT and itable_unused, group and superblock
// counts, and the new inode itself. Freeing gives it all back.

import type { BufferHead } from "../cache/buffer-head.js";
import { BH } from "../cache/buffer-head.js";
import { corrupted, Ext4Error } from "../errors.js";
import { ext4Error, ext4GroupError } from "./ext4-error.js";
import { DX_HASH_HALF_MD4, dirHash } from "../format/dirhash.js";
import { EXTENT_MAGIC } from "../format/extent.js";
import { INCOMPAT, RO_COMPAT } from "../format/features.js";
import { BG_FLAGS } from "../format/group-desc.js";
import { decodeInode, GOOD_OLD_INODE_SIZE, type Inode, INODE_FLAGS, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, type Timespec } from "../format/inode.js";
import { hasIncompat, hasRoCompat } from "../format/superblock.js";
import type { Handle } from "../journal/handle.js";
import { Geometry, readBlockBitmap, setBlockBitmapCsum } from "./block-bitmap.js";
import { markGroupDescDirty } from "./groups.js";
import { Ext4Inode, shouldUseBufferedIomap, STATE } from "./inode.js";
import { markInodeDirty } from "./inode-write.js";
import type { Ext4 } from "./super.js";
import { currentTime } from "./xattr-write.js";

/** EXT4_ROOT_INO (super.ts exports it too; not imported from there: fs/evict.ts, which super.ts imports, imports this module). */
const ROOT_INO = 2;

const S_ISGID = 0o2000;
const S_IXGRP = 0o010;
const NOCOMPR_FL = 0x400;
const DAX_FL = 0x2000000;

/** EXT4_FL_INHERITED: the flags a new inode takes from its directory. */
const FL_INHERITED = INODE_FLAGS.SECRM | INODE_FLAGS.UNRM | INODE_FLAGS.COMPR | INODE_FLAGS.SYNC | INODE_FLAGS.NODUMP |
  INODE_FLAGS.NOATIME | NOCOMPR_FL | INODE_FLAGS.JOURNAL_DATA | INODE_FLAGS.NOTAIL | INODE_FLAGS.DIRSYNC |
  INODE_FLAGS.PROJINHERIT | INODE_FLAGS.CASEFOLD | DAX_FL;
/** EXT4_REG_FLMASK: all but the directory-only flags. */
const REG_FLMASK = ~(INODE_FLAGS.DIRSYNC | INODE_FLAGS.TOPDIR | INODE_FLAGS.CASEFOLD | INODE_FLAGS.PROJINHERIT);
/** EXT4_OTHER_FLMASK: what devices, fifos, sockets and symlinks keep. */
const OTHER_FLMASK = INODE_FLAGS.NODUMP | INODE_FLAGS.NOATIME;

export interface NewInodeOptions {
  /** Owner: fsuid and fsgid of the creator (default 0). */
  uid?: number;
  gid?: number;
  /** The creator's supplementary groups (the setgid strip rule asks whether it is in the directory's group). */
  groups?: number[];
  /** The new name, for a directory: Orlov spreads top-level directories by its hash, as the kernel does. */
  name?: Uint8Array;
  /** Creation time (default: now). */
  time?: Timespec;
  /** Extra i_flags (the kernel's i_flags argument, e.g. EA_INODE). */
  flags?: number;
}

/** The mount's random source for generations and Orlov's starting group: crypto by default, seedable for tests. */
const rngs = new WeakMap<Ext4, () => number>();

/** Makes inode generations and Orlov's random choices deterministic on this mount (tests). */
export function seedInodeAllocator(fs: Ext4, seed: number): void {
  let a = seed >>> 0;
  rngs.set(fs, () => {
    // mulberry32
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  });
}

/** Crypto words fetched 256 at a time: one getRandomValues per inode cost a tenth of a put's CPU. */
const cryptoPool = new Uint32Array(256);
let cryptoLeft = 0;
function random32(fs: Ext4): number {
  const r = rngs.get(fs);
  if (r) return r();
  if (cryptoLeft === 0) {
    globalThis.crypto.getRandomValues(cryptoPool);
    cryptoLeft = cryptoPool.length;
  }
  return cryptoPool[--cryptoLeft];
}

export function hasGroupDescCsum(fs: Ext4): boolean {
  return hasRoCompat(fs.sb, RO_COMPAT.METADATA_CSUM) || hasRoCompat(fs.sb, RO_COMPAT.GDT_CSUM);
}

/** ext4_flex_bg_size: groups per flex group (1 without flex_bg). */
export function flexSize(fs: Ext4): number {
  const log = fs.sb.logGroupsPerFlex;
  if (!hasIncompat(fs.sb, INCOMPAT.FLEX_BG) || log < 1 || log > 31) return 1;
  return 2 ** log;
}

/** s_want_extra_isize as ext4_clamp_want_extra_isize computes it. */
export function wantExtraIsize(fs: Ext4): number {
  const sb = fs.sb;
  if (sb.inodeSize === GOOD_OLD_INODE_SIZE) return 0;
  const def = 32; // sizeof(struct ext4_inode) - EXT4_GOOD_OLD_INODE_SIZE
  let want = def;
  if (hasRoCompat(sb, RO_COMPAT.EXTRA_ISIZE)) want = Math.max(want, sb.wantExtraIsize, sb.minExtraIsize);
  if (GOOD_OLD_INODE_SIZE + want > sb.inodeSize) want = def;
  return want;
}

/** The one clock of the inode times (a second clock here could date a new file after its first write). */
const now = (): Timespec => currentTime();

// ---- the inode bitmap ----

function bitmapCsumMatches(fs: Ext4, g: number, b: Uint8Array): boolean {
  const want = fs.csum.bitmap(b, fs.sb.inodesPerGroup / 8);
  const stored = fs.groups[g].inodeBitmapCsum;
  return fs.sb.descSize >= 64 ? want === stored : (want & 0xffff) === (stored & 0xffff);
}

/**
 * ext4_read_inode_bitmap: the group's inode bitmap, referenced. An
 * INODE_UNINIT group's bitmap is made in memory (all free, the padding past
 * inodes_per_group set), not read. A bitmap whose checksum fails is reported
 * and the group skipped (undefined), as the kernel marks it corrupt.
 */
export function readInodeBitmap(fs: Ext4, g: number): BufferHead | undefined {
  const gd = fs.groups[g];
  const ipg = fs.sb.inodesPerGroup;
  if (hasGroupDescCsum(fs) && gd.flags & BG_FLAGS.INODE_UNINIT) {
    if (g === 0) throw corrupted("inode bitmap for group 0 marked uninitialised", { block: gd.inodeBitmap });
    const bh = fs.bcache.getblk(gd.inodeBitmap, "inode bitmap");
    const b = bh.data;
    b.fill(0, 0, Math.ceil(ipg / 8));
    // ext4_mark_bitmap_end: bits past the group's inodes are in use.
    for (let i = ipg; i < fs.sb.blockSize * 8; i++) b[i >> 3] |= 1 << (i & 7);
    fs.bcache.setUptodate(bh);
    bh.set(BH.VERIFIED);
    return bh;
  }
  const bh = fs.bcache.bread(gd.inodeBitmap, "inode bitmap");
  if (fs.metadataCsum && fs.verifyChecksums && !bh.test(BH.VERIFIED)) {
    if (!bitmapCsumMatches(fs, g, bh.data)) {
      fs.bcache.brelse(bh);
      fs.warnings.push(`group ${g} inode bitmap checksum mismatch (block ${gd.inodeBitmap}): group skipped for allocation`);
      // ext4_validate_inode_bitmap: an ext4_error, once per group (IBITMAP_CORRUPT); errors=continue skips the group.
      if (!badInodeBitmaps(fs).has(g)) {
        badInodeBitmaps(fs).add(g);
        ext4GroupError(fs, corrupted(`corrupt inode bitmap in group ${g}`, { block: gd.inodeBitmap }), "ext4_validate_inode_bitmap");
      }
      return undefined;
    }
    bh.set(BH.VERIFIED);
  }
  return bh;
}

/** Is the on-disk inode at `index` of group g in use (mode, links and no dtime), whatever the bitmap says? */
function liveOnDisk(fs: Ext4, g: number, index: number): boolean {
  const gd = fs.groups[g];
  if (hasGroupDescCsum(fs) && (gd.flags & BG_FLAGS.INODE_UNINIT || index >= fs.sb.inodesPerGroup - gd.itableUnused)) return false;
  const size = fs.sb.inodeSize;
  const off = index * size;
  const b = fs.bcache.readCopy(gd.inodeTable + Math.floor(off / fs.sb.blockSize), "inode table");
  const at = off % fs.sb.blockSize;
  const mode = b[at] | (b[at + 1] << 8);
  const links = b[at + 0x1a] | (b[at + 0x1b] << 8);
  const dtime = (b[at + 0x14] | (b[at + 0x15] << 8) | (b[at + 0x16] << 16) | (b[at + 0x17] << 24)) >>> 0;
  return mode !== 0 && links !== 0 && dtime === 0;
}

const badBitmaps = new WeakMap<Ext4, Set<number>>();
function badInodeBitmaps(fs: Ext4): Set<number> {
  let s = badBitmaps.get(fs);
  if (!s) badBitmaps.set(fs, (s = new Set()));
  return s;
}

function firstZeroBit(b: Uint8Array, from: number, nbits: number): number {
  for (let i = from; i < nbits; i++) {
    const byte = b[i >> 3];
    if (byte === 0xff) { i |= 7; continue; }
    if (!(byte & (1 << (i & 7)))) return i;
  }
  return -1;
}

// ---- choosing a group ----

interface OrlovStats { freeInodes: number; freeClusters: number; usedDirs: number }

/** get_orlov_stats: one group's counts, or a flex group's sums. */
function orlovStats(fs: Ext4, g: number, flex: number): OrlovStats {
  const s = { freeInodes: 0, freeClusters: 0, usedDirs: 0 };
  const first = g * flex;
  for (let k = first; k < Math.min(first + flex, fs.groups.length); k++) {
    const gd = fs.groups[k];
    s.freeInodes += gd.freeInodes;
    s.freeClusters += gd.freeBlocks;
    s.usedDirs += gd.usedDirs;
  }
  return s;
}

/**
 * find_group_orlov: top-level directories (children of the root, or of a
 * TOPDIR directory) go to a flex group with fewer directories than the rest
 * and above-average free inodes and blocks, starting from the name's hash;
 * other directories stay near their parent unless its group is crowded.
 */
function findGroupOrlov(fs: Ext4, parent: Ext4Inode, mode: number, name: Uint8Array | undefined): number {
  const sb = fs.sb;
  const realGroups = fs.groups.length;
  const flex = flexSize(fs);
  const ipg = sb.inodesPerGroup;
  let ngroups = realGroups;
  let parentGroup = parent.blockGroup;
  if (flex > 1) {
    ngroups = Math.ceil(realGroups / flex);
    parentGroup = Math.floor(parentGroup / flex);
  }
  const freei = sb.freeInodesCount;
  let avefreei = Math.floor(freei / ngroups);
  const avefreec = Math.floor(sb.freeBlocksCount / ngroups);
  const ndirs = fs.groups.reduce((n, gd) => n + gd.usedDirs, 0);
  const foundFlex = (grp: number): number => {
    if (flex === 1) return grp;
    // Inodes packed at the start of the flex group's tables.
    for (let k = grp * flex; k < Math.min(grp * flex + flex, realGroups); k++) if (fs.groups[k].freeInodes) return k;
    return -1;
  };
  let found = -1;
  if ((mode & S_IFMT) === S_IFDIR && (parent.ino === ROOT_INO || parent.flags & INODE_FLAGS.TOPDIR)) {
    let bestNdir = ipg;
    let grp = -1;
    parentGroup = name ? dirHash(name, DX_HASH_HALF_MD4, sb.hashSeed).major % ngroups : random32(fs) % ngroups;
    for (let i = 0; i < ngroups; i++) {
      const g = (parentGroup + i) % ngroups;
      const st = orlovStats(fs, g, flex);
      if (!st.freeInodes || st.usedDirs >= bestNdir || st.freeInodes < avefreei || st.freeClusters < avefreec) continue;
      grp = g;
      bestNdir = st.usedDirs;
    }
    if (grp >= 0) found = foundFlex(grp);
  } else {
    const maxDirs = Math.floor(ndirs / ngroups) + Math.floor((ipg * flex) / 16);
    const minInodes = Math.max(1, avefreei - Math.floor((ipg * flex) / 4));
    const minClusters = avefreec - Math.floor((sb.clustersPerGroup * flex) / 4);
    if (parent.lastAllocGroup >= 0) parentGroup = flex > 1 ? Math.floor(parent.lastAllocGroup / flex) : parent.lastAllocGroup;
    // The kernel compares an unsigned count with a signed minimum: a negative one is never met.
    if (minClusters >= 0) {
      for (let i = 0; i < ngroups; i++) {
        const grp = (parentGroup + i) % ngroups;
        const st = orlovStats(fs, grp, flex);
        if (st.usedDirs >= maxDirs || st.freeInodes < minInodes || st.freeClusters < minClusters) continue;
        found = foundFlex(grp);
        break;
      }
    }
  }
  if (found >= 0) return found;
  // fallback: the first group from the parent's with at least average free inodes, then any free inode.
  avefreei = Math.floor(freei / realGroups);
  for (;;) {
    for (let i = 0; i < realGroups; i++) {
      const g = (parent.blockGroup + i) % realGroups;
      const free = fs.groups[g].freeInodes;
      if (free && free >= avefreei) return g;
    }
    if (avefreei === 0) return -1;
    avefreei = 0;
  }
}

/**
 * find_group_other: in the parent's flex group (or the one last used for
 * this directory), else Orlov's choice of another; without flex_bg, the
 * parent's group, then a quadratic hash from it, then any group.
 */
function findGroupOther(fs: Ext4, parent: Ext4Inode, mode: number): number {
  const ngroups = fs.groups.length;
  const flex = flexSize(fs);
  const free = (g: number) => fs.groups[g].freeInodes > 0;
  const hasBlocks = (g: number) => fs.groups[g].freeBlocks > 0;
  let parentGroup = parent.blockGroup;
  if (flex > 1) {
    for (let retry = 0; retry < 2; retry++) {
      const start = parentGroup - (parentGroup % flex);
      for (let g = start; g < Math.min(start + flex, ngroups); g++) if (free(g)) return g;
      if (retry === 0 && parent.lastAllocGroup >= 0) parentGroup = parent.lastAllocGroup;
      else break;
    }
    return findGroupOrlov(fs, parent, mode, undefined);
  }
  let g = parentGroup;
  if (free(g) && hasBlocks(g)) return g;
  // Files of one directory together, those of another directory sharing the group elsewhere.
  g = (g + parent.ino) % ngroups;
  for (let i = 1; i < ngroups; i *= 2) {
    g += i;
    if (g >= ngroups) g -= ngroups;
    if (free(g) && hasBlocks(g)) return g;
  }
  g = parentGroup;
  for (let i = 0; i < ngroups; i++) {
    if (++g >= ngroups) g = 0;
    if (free(g)) return g;
  }
  return -1;
}

// ---- the inode table ----

/**
 * Without ITABLE_ZEROED, inodes that move from the unused tail of a table
 * into its used part may hold whatever the disk had (the lazy init thread
 * has not zeroed them): they are zeroed here, the new inode excepted (it is
 * written whole).
 */
function zeroTableRange(handle: Handle, fs: Ext4, g: number, from: number, to: number): void {
  const sb = fs.sb;
  const perBlock = sb.blockSize / sb.inodeSize;
  for (let i = from; i < to;) {
    const blk = Math.floor(i / perBlock);
    const end = Math.min(to, (blk + 1) * perBlock);
    const whole = i % perBlock === 0 && end - i === perBlock;
    const pblk = fs.groups[g].inodeTable + blk;
    const bh = whole ? fs.bcache.getblk(pblk, "inode table block") : fs.bcache.bread(pblk, "inode table block");
    try {
      if (whole) handle.getCreateAccess(bh);
      else handle.getWriteAccess(bh);
      bh.data.fill(0, (i % perBlock) * sb.inodeSize, (i % perBlock) * sb.inodeSize + (end - i) * sb.inodeSize);
      handle.dirtyMetadata(bh);
    } finally {
      fs.bcache.brelse(bh);
    }
    i = end;
  }
}

// ---- allocation ----

/**
 * __ext4_new_inode: allocates an inode for a new file of `mode` in `dir` and
 * returns its in-core inode, referenced (iput it) and written once (zeroed,
 * with times, owner, flags, generation). The caller links it, sets
 * i_links_count for directories, and writes it again after its own changes.
 * ENOSPC when no group has a free inode.
 */
export function newInode(handle: Handle, fs: Ext4, dir: Inode, mode: number, opts: NewInodeOptions = {}): Ext4Inode {
  const sb = fs.sb;
  const parent = dir instanceof Ext4Inode ? dir : fs.inode(dir.ino);
  const isDir = (mode & S_IFMT) === S_IFDIR;
  const ngroups = fs.groups.length;
  let group = isDir ? findGroupOrlov(fs, parent, mode, opts.name) : findGroupOther(fs, parent, mode);
  parent.lastAllocGroup = group;
  if (group < 0) throw new Ext4Error("ENOSPC", "no free inodes");
  const ipg = sb.inodesPerGroup;
  let bit = -1;
  for (let i = 0; i < ngroups; i++, group = group + 1 === ngroups ? 0 : group + 1) {
    const gd = fs.groups[group];
    if (gd.freeInodes === 0 || badInodeBitmaps(fs).has(group)) continue;
    const bh = readInodeBitmap(fs, group);
    if (!bh) continue;
    try {
      const found = firstZeroBit(bh.data, 0, ipg);
      if (found < 0) continue;
      if (group === 0 && found + 1 < sb.firstIno) {
        fs.warnings.push(`reserved inode ${found + 1} found cleared in the inode bitmap: group 0 skipped`);
        continue;
      }
      if (liveOnDisk(fs, group, found)) {
        // A free bit over a live inode: the bitmap is wrong, and claiming it would overwrite a file
        // (the kernel's "doubly allocated?"). The group is not allocated from again.
        badInodeBitmaps(fs).add(group);
        ext4GroupError(fs, corrupted(`inode ${group * ipg + found + 1} is in use but free in the inode bitmap`, { ino: group * ipg + found + 1, block: gd.inodeBitmap }), "__ext4_new_inode");
        continue;
      }
      handle.getWriteAccess(bh);
      bh.data[found >> 3] |= 1 << (found & 7);
      handle.dirtyMetadata(bh);
      bit = found;
      updateGroupForAlloc(handle, fs, group, bit, isDir, bh);
    } finally {
      fs.bcache.brelse(bh);
    }
    break;
  }
  if (bit < 0) throw new Ext4Error("ENOSPC", "no free inodes");
  const ino = group * ipg + bit + 1;
  return initNewInode(handle, fs, parent, ino, mode, opts);
}

/**
 * A group that gets its first inode gets its block bitmap too, as
 * __ext4_new_inode does: the bitmap ext4_init_block_bitmap builds (the block
 * allocator's, block-bitmap.ts) is written, BLOCK_UNINIT cleared, and the
 * free count is what that bitmap leaves free (ext4_free_clusters_after_init).
 */
function initGroupBlockBitmap(handle: Handle, fs: Ext4, g: number): void {
  const gd = fs.groups[g];
  const geo = new Geometry(fs.sb, fs.groups);
  const bh = readBlockBitmap(fs, geo, g);
  try {
    handle.getWriteAccess(bh);
    handle.dirtyMetadata(bh);
    gd.flags &= ~BG_FLAGS.BLOCK_UNINIT;
    const b = bh.data;
    const clusters = geo.clustersInGroup(g);
    let used = 0;
    for (let c = 0; c < clusters; c++) if (b[c >> 3] & (1 << (c & 7))) used++;
    gd.freeBlocks = clusters - used;
    setBlockBitmapCsum(fs, geo, gd, b);
  } finally {
    fs.bcache.brelse(bh);
  }
}

/** The descriptor's side of taking bit `bit` of group `g`, and the superblock's counts. */
function updateGroupForAlloc(handle: Handle, fs: Ext4, g: number, bit: number, isDir: boolean, bitmap: BufferHead): void {
  const sb = fs.sb;
  const gd = fs.groups[g];
  const ipg = sb.inodesPerGroup;
  if (hasGroupDescCsum(fs) && gd.flags & BG_FLAGS.BLOCK_UNINIT) initGroupBlockBitmap(handle, fs, g);
  if (hasGroupDescCsum(fs)) {
    let used = ipg - gd.itableUnused;
    if (gd.flags & BG_FLAGS.INODE_UNINIT) {
      gd.flags &= ~BG_FLAGS.INODE_UNINIT;
      used = 0;
    }
    // Inodes up to the new one now count as used table.
    if (bit + 1 > used) {
      if (!(gd.flags & BG_FLAGS.INODE_ZEROED) && bit > used) zeroTableRange(handle, fs, g, used, bit);
      gd.itableUnused = ipg - (bit + 1);
    }
  }
  gd.freeInodes--;
  if (isDir) gd.usedDirs++;
  if (fs.metadataCsum) gd.inodeBitmapCsum = fs.csum.bitmap(bitmap.data, ipg / 8);
  markGroupDescDirty(handle, fs, g);
  sb.freeInodesCount--;
  fs.markSuperDirty();
}

function initNewInode(handle: Handle, fs: Ext4, parent: Ext4Inode, ino: number, mode: number, opts: NewInodeOptions): Ext4Inode {
  const sb = fs.sb;
  const raw = new Uint8Array(sb.inodeSize);
  const ctx = { inodeSize: sb.inodeSize, blockSize: sb.blockSize, hugeFile: hasRoCompat(sb, RO_COMPAT.HUGE_FILE), largeDir: hasIncompat(sb, INCOMPAT.LARGEDIR) };
  const inode = new Ext4Inode(decodeInode(ino, raw, ctx), sb.inodesPerGroup, fs.esShrinker);
  const type = mode & S_IFMT;
  // inode_init_owner: a setgid directory gives its group (and, to directories, its setgid bit).
  let uid = opts.uid ?? 0;
  let gid = opts.gid ?? 0;
  if (parent.mode & S_ISGID) {
    gid = parent.gid;
    if (type === S_IFDIR) mode |= S_ISGID;
    else if ((mode & (S_ISGID | S_IXGRP)) === (S_ISGID | S_IXGRP) && type === S_IFREG && uid !== 0 &&
      gid !== (opts.gid ?? 0) && !(opts.groups ?? []).includes(gid)) {
      mode &= ~S_ISGID; // mode_strip_sgid: not in the group, not privileged
    }
  }
  uid >>>= 0;
  gid >>>= 0;
  inode.mode = mode;
  inode.uid = uid;
  inode.gid = gid;
  inode.linksCount = 1;
  inode.extraIsize = wantExtraIsize(fs);
  // Nanoseconds live in the extra fields: without them the disk keeps whole seconds (s_time_gran).
  const t = opts.time ?? now();
  const ts = inode.extraIsize >= 16 ? { sec: t.sec, nsec: t.nsec } : { sec: t.sec, nsec: 0 };
  inode.atime = { ...ts };
  inode.ctime = { ...ts };
  inode.mtime = { ...ts };
  inode.crtime = { ...ts };
  let flags = parent.flags & FL_INHERITED;
  flags = type === S_IFDIR ? flags : type === S_IFREG ? flags & REG_FLMASK : flags & OTHER_FLMASK;
  flags |= opts.flags ?? 0;
  inode.projid = hasRoCompat(sb, RO_COMPAT.PROJECT) && parent.flags & INODE_FLAGS.PROJINHERIT ? parent.projid : 0;
  inode.generation = random32(fs);
  inode.setState(STATE.NEW);
  if (hasIncompat(sb, INCOMPAT.EXTENTS) && (type === S_IFDIR || type === S_IFREG || type === S_IFLNK)) {
    flags |= INODE_FLAGS.EXTENTS;
    // ext4_ext_tree_init: an empty depth-0 root in i_block.
    const ib = inode.iBlock;
    ib[0] = EXTENT_MAGIC & 0xff;
    ib[1] = EXTENT_MAGIC >> 8;
    ib[4] = 4; // eh_max: (60 - 12) / 12
  }
  inode.flags = flags;
  if (handle.journaled) {
    inode.syncTid = handle.tid;
    inode.datasyncTid = handle.tid;
  }
  // The buffered path is fixed at creation by the rules iget applies.
  if (shouldUseBufferedIomap(fs, inode)) inode.setState(STATE.BUFFERED_IOMAP);
  fs.icache.insertNew(inode);
  try {
    markInodeDirty(handle, fs, inode);
  } catch (e) {
    fs.iput(inode);
    throw e;
  }
  return inode;
}

/**
 * ext4_free_inode (with the dtime ext4_evict_inode sets first): the inode,
 * unlinked (i_links_count 0) and held by the caller alone, is written with
 * its deletion time and its bit, counts and directory count given back.
 * The in-core object is dead afterwards.
 */
export function freeInode(handle: Handle, fs: Ext4, inode: Ext4Inode): void {
  const sb = fs.sb;
  const ino = inode.ino;
  if (ino < sb.firstIno || ino > sb.inodesCount) ext4Error(fs, corrupted(`freeing reserved or nonexistent inode ${ino}`, { ino }), "ext4_free_inode");
  if (inode.linksCount !== 0) throw new Error(`freeing inode ${ino} that still has ${inode.linksCount} links`);
  if (inode.count > 1) throw new Error(`freeing inode ${ino} while ${inode.count} references are held`);
  const g = inode.blockGroup;
  const bit = (ino - 1) % sb.inodesPerGroup;
  inode.dtime = now().sec >>> 0;
  markInodeDirty(handle, fs, inode);
  const bh = readInodeBitmap(fs, g);
  if (!bh) ext4Error(fs, corrupted(`inode bitmap of group ${g} is corrupt: inode ${ino} not freed`, { ino, block: fs.groups[g].inodeBitmap }), "ext4_free_inode");
  try {
    if (!(bh.data[bit >> 3] & (1 << (bit & 7)))) ext4Error(fs, corrupted(`bit already cleared for inode ${ino}`, { ino, block: fs.groups[g].inodeBitmap }), "ext4_free_inode");
    handle.getWriteAccess(bh);
    bh.data[bit >> 3] &= ~(1 << (bit & 7));
    handle.dirtyMetadata(bh);
    const gd = fs.groups[g];
    gd.freeInodes++;
    if ((inode.mode & S_IFMT) === S_IFDIR) gd.usedDirs--;
    if (fs.metadataCsum) gd.inodeBitmapCsum = fs.csum.bitmap(bh.data, sb.inodesPerGroup / 8);
    markGroupDescDirty(handle, fs, g);
  } finally {
    fs.bcache.brelse(bh);
  }
  sb.freeInodesCount++;
  fs.markSuperDirty();
  inode.count = 0;
  inode.setState(STATE.FREED);
  fs.icache.forget(inode);
}
