// The write side of block mapping (ext4_map_blocks with its GET_BLOCKS
// flags): look up, allocate into holes, and switch extents between unwritten
// and written. Lookups go through fs.mapBlocks (the read path and its leaf
// cache); changes through extents-write.ts (extent files) or indirect-write.ts
// (block-mapped files).

import { Ext4Error } from "../errors.js";
import { onCorruption } from "./ext4-error.js";
import { type Inode, INODE_FLAGS } from "../format/inode.js";
import type { Handle } from "../journal/handle.js";
import { extentSeq } from "./extents.js";
import { anyMapped, EXT_INIT_MAX_LEN, EXT_MAX_BLOCKS, EXT_UNWRITTEN_MAX_LEN, extRemoveSpace, insertExtent, setExtentKind } from "./extents-write.js";
import { indBoundary, indMapBlocksCreate, indRemoveSpace } from "./indirect-write.js";
import { Ext4Inode } from "./inode.js";
import { markInodeDirty } from "./inode-write.js";
import { MapKind } from "./mapping.js";
import { ALLOC, freeBlocks, goalForInode, newBlocks } from "./mballoc.js";
import type { Ext4 } from "./super.js";

/**
 * Unmaps logical blocks [start, end] (inclusive) of a file and frees them:
 * ext4_ext_remove_space for extent files, ext4_ind_remove_space for
 * block-mapped ones (truncate: end = 0xfffffffe; punch: the hole's last block).
 */
export function ext4RemoveSpace(handle: Handle, fs: Ext4, inode: Inode, start: number, end: number): void {
  if (inode.flags & INODE_FLAGS.EXTENTS) extRemoveSpace(handle, fs, inode, start, end);
  else if (inode.flags & INODE_FLAGS.INLINE_DATA) throw new Ext4Error("EINVAL", "inline-data files have no blocks to remove", { ino: inode.ino });
  else indRemoveSpace(handle, fs, inode, start, end);
}

/** ext4_map_blocks flags (fs/ext4/ext4.h, same values). */
export const GET_BLOCKS = {
  /** Allocate blocks for holes. */
  CREATE: 0x0001,
  /** New blocks go in as unwritten extents. */
  UNWRIT_EXT: 0x0002,
  CREATE_UNWRIT_EXT: 0x0003,
  /** Delayed allocation: the space is reserved already (accepted; accounting is the in-core inode's). */
  DELALLOC_RESERVE: 0x0004,
  PRE_IO: 0x0008,
  /** Unwritten extents in the range become written (I/O completion). */
  CONVERT: 0x0010,
  IO_CREATE_EXT: 0x000b,
  IO_CONVERT_EXT: 0x0013,
  /** Extent-tree blocks a split needs may come from the reserved pool. */
  METADATA_NOFAIL: 0x0020,
  NO_NORMALIZE: 0x0040,
  /** Written extents in the range become unwritten (zero range). */
  CONVERT_UNWRITTEN: 0x0100,
} as const;

/** ext4_map_blocks result flags. */
export const MAP = {
  NEW: 1 << 0,
  MAPPED: 1 << 1,
  UNWRITTEN: 1 << 2,
  BOUNDARY: 1 << 3,
  DELAYED: 1 << 4,
} as const;

export interface MapRequest { lblk: number; len: number }

export interface MapResult {
  lblk: number;
  /** Blocks the answer covers from lblk (>= 1; a hole: up to the next mapped block or the length asked). */
  len: number;
  /** First physical block (0 for a hole). */
  pblk: number;
  flags: number;
  /** Changes whenever the inode's mapping changes: compare to know an earlier answer still holds. */
  seq: number;
}

/**
 * ext4_map_blocks: maps map.len blocks from map.lblk, as far as one extent
 * (or one contiguous run of new blocks) goes. Without CREATE it only looks
 * up (handle may be undefined). With CREATE a hole gets one contiguous run
 * of new blocks near goalForInode (as many of the range as one run gives),
 * written or, with UNWRIT_EXT, unwritten (NEW | MAPPED [| UNWRITTEN]). The
 * allocator charges i_blocks; the inode is marked dirty here.
 */
export function ext4MapBlocks(handle: Handle | undefined, fs: Ext4, inode: Inode, map: MapRequest, flags = 0): MapResult {
  // Changing a mapping over a damaged tree is an ext4_error (ext4-error.ts); a lookup's damage is the reader's.
  if (!(flags & (GET_BLOCKS.CREATE | GET_BLOCKS.CONVERT | GET_BLOCKS.CONVERT_UNWRITTEN))) return mapBlocks(handle, fs, inode, map, flags);
  return onCorruption(fs, "ext4_map_blocks", () => mapBlocks(handle, fs, inode, map, flags));
}

/**
 * ext4_update_inode_fsync_trans(handle, inode, 1), as ext4_ext_map_blocks and the
 * unwritten conversion call it: blocks newly written-mapped are what fdatasync
 * must commit, even when i_disksize stays.
 */
function datasyncDirty(h: Handle, inode: Inode): void {
  if (h.journaled && inode instanceof Ext4Inode) inode.datasyncTid = h.tid;
}

function mapBlocks(handle: Handle | undefined, fs: Ext4, inode: Inode, map: MapRequest, flags: number): MapResult {
  const { lblk } = map;
  if (!Number.isInteger(lblk) || lblk < 0 || !Number.isInteger(map.len) || map.len < 1) {
    throw new Ext4Error("EINVAL", `bad block range ${lblk}+${map.len}`, { ino: inode.ino });
  }
  const changes = (flags & (GET_BLOCKS.CREATE | GET_BLOCKS.CONVERT | GET_BLOCKS.CONVERT_UNWRITTEN)) !== 0;
  if (changes && !handle) throw new Error("ext4MapBlocks: changing the mapping needs a handle");
  if (!(inode.flags & INODE_FLAGS.EXTENTS)) {
    if (!changes) return lookup(fs, inode, map);
    if (flags & (GET_BLOCKS.UNWRIT_EXT | GET_BLOCKS.CONVERT | GET_BLOCKS.CONVERT_UNWRITTEN)) {
      throw new Ext4Error("EOPNOTSUPP", "block-mapped files have no unwritten extents", { ino: inode.ino });
    }
    const r = indMapBlocksCreate(handle!, fs, inode, map);
    if (r.flags & MAP.NEW) datasyncDirty(handle!, inode);
    return r;
  }
  if (lblk >= EXT_MAX_BLOCKS) throw new Ext4Error("EFBIG", `logical block ${lblk} is past the largest an extent maps`, { ino: inode.ino });
  const len = Math.min(map.len, EXT_MAX_BLOCKS - lblk);
  const found = lookup(fs, inode, { lblk, len });
  if (!changes) return found;
  const h = handle!;
  const opts = { nofail: (flags & GET_BLOCKS.METADATA_NOFAIL) !== 0 };
  // ext4_ext_map_blocks: the data allocation inherits the reservation hints.
  const allocFlags = ALLOC.DATA | (flags & GET_BLOCKS.DELALLOC_RESERVE ? ALLOC.DELALLOC_RESERVED : 0) | (opts.nofail ? ALLOC.NOFAIL : 0);
  if (found.flags & MAP.UNWRITTEN) {
    if (flags & GET_BLOCKS.CONVERT) {
      const n = setExtentKind(h, fs, inode, lblk, found.len, false, opts);
      markInodeDirty(h, fs, inode);
      datasyncDirty(h, inode);
      return { lblk, len: n, pblk: found.pblk, flags: MAP.MAPPED, seq: extentSeq(inode) };
    }
    if ((flags & GET_BLOCKS.UNWRIT_EXT) || !(flags & GET_BLOCKS.CREATE)) return { ...found, flags: MAP.UNWRITTEN | MAP.MAPPED };
    // A plain write into preallocated space: written now, and NEW, since the caller must zero what it does not write.
    const n = setExtentKind(h, fs, inode, lblk, found.len, false, opts);
    markInodeDirty(h, fs, inode);
    datasyncDirty(h, inode);
    return { lblk, len: n, pblk: found.pblk, flags: MAP.NEW | MAP.MAPPED, seq: extentSeq(inode) };
  }
  if (found.flags & MAP.MAPPED) {
    if (flags & GET_BLOCKS.CONVERT_UNWRITTEN) {
      const n = setExtentKind(h, fs, inode, lblk, found.len, true, opts);
      markInodeDirty(h, fs, inode);
      return { lblk, len: n, pblk: found.pblk, flags: MAP.UNWRITTEN | MAP.MAPPED, seq: extentSeq(inode) };
    }
    return found;
  }
  if (!(flags & GET_BLOCKS.CREATE)) return found;
  // A hole: one run of new blocks, no longer than the hole or an extent.
  const unwritten = (flags & GET_BLOCKS.UNWRIT_EXT) !== 0;
  let want = Math.min(len, found.len, unwritten ? EXT_UNWRITTEN_MAX_LEN : EXT_INIT_MAX_LEN);
  const ratio = fs.sb.clusterSize / fs.sb.blockSize;
  let pblk: number;
  if (ratio > 1) {
    // Bigalloc: a logical cluster lives in one physical cluster.
    const implied = impliedCluster(fs, inode, lblk, want, ratio);
    if (implied) {
      insertExtent(h, fs, inode, { lblk, len: implied.len, pblk: implied.pblk, unwritten }, opts);
      markInodeDirty(h, fs, inode);
      if (!unwritten) datasyncDirty(h, inode);
      return { lblk, len: implied.len, pblk: implied.pblk, flags: MAP.NEW | MAP.MAPPED | (unwritten ? MAP.UNWRITTEN : 0), seq: extentSeq(inode) };
    }
    // Nor may the new run reach into the cluster of the blocks mapped after the hole.
    const after = lblk + want;
    if (after % ratio !== 0 && after < EXT_MAX_BLOCKS && anyMapped(fs, inode, after, after - (after % ratio) + ratio)) want = after - (after % ratio) - lblk;
    const offset = lblk % ratio;
    const run = newBlocks(h, fs, { inode, goal: Math.max(0, goalForInode(fs, inode, lblk) - offset), len: offset + want, flags: allocFlags });
    pblk = run.pblk + offset;
    want = Math.min(want, run.clusters * ratio - offset);
    try {
      insertExtent(h, fs, inode, { lblk, len: want, pblk, unwritten }, opts);
    } catch (e) {
      freeBlocks(h, fs, inode, run.pblk, run.clusters * ratio);
      markInodeDirty(h, fs, inode);
      throw e;
    }
  } else {
    const run = newBlocks(h, fs, { inode, goal: goalForInode(fs, inode, lblk), len: want, flags: allocFlags });
    pblk = run.pblk;
    want = run.len;
    try {
      insertExtent(h, fs, inode, { lblk, len: want, pblk, unwritten }, opts);
    } catch (e) {
      freeBlocks(h, fs, inode, run.pblk, run.len);
      markInodeDirty(h, fs, inode);
      throw e;
    }
  }
  markInodeDirty(h, fs, inode);
  if (!unwritten) datasyncDirty(h, inode);
  return { lblk, len: want, pblk, flags: MAP.NEW | MAP.MAPPED | (unwritten ? MAP.UNWRITTEN : 0), seq: extentSeq(inode) };
}

/**
 * get_implied_cluster_alloc: when other blocks of lblk's logical cluster are
 * mapped, lblk's block is already allocated, in their physical cluster at
 * lblk's offset: map up to the next mapped block or the cluster's end.
 */
function impliedCluster(fs: Ext4, inode: Inode, lblk: number, want: number, ratio: number): { pblk: number; len: number } | undefined {
  const c0 = lblk - (lblk % ratio);
  const c1 = Math.min(c0 + ratio, EXT_MAX_BLOCKS);
  for (let b = c0; b < c1; ) {
    const m = fs.mapBlocks(inode, b, c1 - b);
    if (m.pblk !== 0) {
      const base = m.pblk - (m.pblk % ratio);
      // The hole from lblk ends at the next mapped block (found.len bounded `want` already).
      return { pblk: base + (lblk % ratio), len: Math.min(want, c1 - lblk) };
    }
    b += m.len;
  }
  return undefined;
}

function lookup(fs: Ext4, inode: Inode, map: MapRequest): MapResult {
  const m = fs.mapBlocks(inode, map.lblk, map.len);
  const flags = m.kind === MapKind.Mapped ? MAP.MAPPED : m.kind === MapKind.Unwritten ? MAP.UNWRITTEN : 0;
  const boundary = m.kind !== MapKind.Hole && !(inode.flags & INODE_FLAGS.EXTENTS) && indBoundary(fs, m.lblk + m.len);
  return { lblk: m.lblk, len: m.len, pblk: m.pblk, flags: flags | (boundary ? MAP.BOUNDARY : 0), seq: extentSeq(inode) };
}
