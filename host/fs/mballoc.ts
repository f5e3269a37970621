// The block allocator (fs/ext4/mballoc.c, with balloc.c's free-space checks):
// newBlocks finds one contiguous run of clusters near a goal, freeBlocks
// gives blocks back, goalForInode says where a file's next blocks belong.
//
// The on-disk state (bitmap bits, descriptor and superblock free counts,
// checksums) changes inside the caller's handle, so it is journaled with the
// change that allocates or frees. What the allocator itself considers free is
// an in-memory view: the bitmap minus the blocks freed by transactions that
// have not yet committed (mballoc's freed-data list). Those stay unusable
// until the handle's commit callback runs, because reusing one earlier lets
// new data overwrite a block the not-yet-deleted file still owns after a
// crash. Data blocks freed under data=writeback are exempt, as in the kernel.
//
// Left out, with their layout effect: preallocation (inode and locality-group
// PAs, request normalisation), stream allocation from s_mb_last_group, the
// buddy cache and its criteria passes (we scan bitmaps in wasm: first fit
// from the goal, then the longest run), discard, and the pid colour of
// ext4_inode_to_goal_block without delalloc.

import type { BufferHead } from "../cache/buffer-head.js";
import { corrupted, Ext4Error } from "../errors.js";
import { extentHeader, EXTENT_MAGIC, indexAt, leafAt } from "../format/extent.js";
import { INCOMPAT } from "../format/features.js";
import { BG_FLAGS } from "../format/group-desc.js";
import { type Inode, INODE_FLAGS, S_IFMT, S_IFREG } from "../format/inode.js";
import { hasIncompat } from "../format/superblock.js";
import type { Handle } from "../journal/handle.js";
import { ext4Error, ext4GroupError } from "./ext4-error.js";
import { blockBitmapProblem, blockUninit, Geometry, outsideFs, readBlockBitmap, setBlockBitmapCsum } from "./block-bitmap.js";
import { groupFirstBlock, markGroupDescDirty } from "./groups.js";
import { MapKind } from "./mapping.js";
import type { Ext4 } from "./super.js";

/** Allocation request flags (the EXT4_MB_* hints that matter here). */
export const ALLOC = {
  /** File data: cached metadata copies of the blocks are forgotten (clean_bdev_aliases). */
  DATA: 0x1,
  /** Metadata (extent index, directory, xattr blocks): the caller getblk()s them itself. */
  METADATA: 0x2,
  /** EXT4_MB_USE_RESERVED: may dip into the reserved clusters (writeback must not fail). */
  NOFAIL: 0x4,
  /** EXT4_MB_HINT_GOAL_ONLY: the goal or nothing (ENOSPC). */
  EXACT_GOAL: 0x8,
  /** EXT4_MB_HINT_MERGE: a run at the goal shorter than asked is welcome (it extends an extent). */
  MERGE: 0x10,
  /** EXT4_MB_USE_ROOT_BLOCKS: may use the root reserve whatever the credentials. */
  USE_ROOT_BLOCKS: 0x20,
  /**
   * EXT4_MB_DELALLOC_RESERVED: the clusters were claimed at reservation time
   * (claimFreeClusters); the delalloc accounting gives the claim back with
   * releaseClaim once they are allocated (ext4_da_update_reserve_space).
   */
  DELALLOC_RESERVED: 0x40,
} as const;

/** Who asks, for the root reserve (ext4_has_free_clusters). Absent: the filesystem itself (privileged). */
export interface AllocCred { uid: number; gid: number; groups?: readonly number[] }

export interface AllocRequest {
  /** The inode whose i_blocks is charged (cluster-sized with bigalloc); the caller marks it dirty. */
  inode?: Inode;
  /** Block near which to allocate (goalForInode). Out of range: the first data block. */
  goal: number;
  /**
   * Blocks wanted, >= 1. With bigalloc whole clusters are allocated and the
   * run starts on a cluster boundary: the caller asks for its logical range
   * widened to the cluster start and maps lblk to pblk + the offset in the
   * cluster, as ext4_ext_map_blocks does.
   */
  len: number;
  flags?: number;
  cred?: AllocCred;
}

export interface AllocResult {
  /** First block, cluster-aligned with bigalloc. */
  pblk: number;
  /** Blocks of the run the caller asked for: 1 <= len <= req.len. */
  len: number;
  /** Clusters allocated (len rounded up to clusters; equals len without bigalloc). */
  clusters: number;
}

export interface FreeFlags {
  /** Metadata blocks: forgotten and revoked through handle.forget; always held back until commit. */
  metadata?: boolean;
  /** Data blocks to forget too (data=journal: their journaled copies are revoked). */
  forget?: boolean;
  /** Data blocks of an inode in data=writeback: reusable at once (the mode's weaker guarantee). */
  writebackData?: boolean;
  /** Bigalloc: a partial first / last cluster is still used by the file (EXT4_FREE_BLOCKS_NOFREE_*_CLUSTER). */
  noFreeFirstCluster?: boolean;
  noFreeLastCluster?: boolean;
}

/** A run freed by a transaction that has not committed: on disk free, to the allocator still in use. */
interface PendingFree { group: number; start: number; count: number; tid: number }

/** ext4_group_info: what the allocator knows of a group beyond its descriptor. */
interface GroupInfo {
  /** Freed, not yet committed runs in this group (cluster offsets), in no particular order. */
  pending: Set<PendingFree>;
  pendingCount: number;
  /** Longest free run in the allocator's view, when known exactly (-1: unknown). */
  largest: number;
  /** The on-disk bitmap was validated against its checksum and descriptor. */
  checked: boolean;
  /** EXT4_GROUP_INFO_BBITMAP_CORRUPT: never allocated from. */
  corrupt: string | undefined;
}

class Allocator {
  readonly geo: Geometry;
  readonly info: GroupInfo[];
  /** s_mb_free_pending: clusters waiting for a commit. */
  pendingClusters = 0;
  /** s_dirtyclusters_counter: clusters claimed by delayed allocation, not yet allocated. */
  dirtyClusters = 0;
  /** s_resv_clusters (ext4_calculate_resv_clusters). */
  readonly resvClusters: number;

  constructor(readonly fs: Ext4) {
    this.geo = new Geometry(fs.sb, fs.groups);
    this.info = fs.groups.map(() => ({ pending: new Set<PendingFree>(), pendingCount: 0, largest: -1, checked: false, corrupt: undefined }));
    // Without extents the kernel reserves nothing; else 2% of the clusters, at most 4096.
    const clusters = Math.floor(fs.sb.blocksCount / this.geo.ratio);
    this.resvClusters = hasIncompat(fs.sb, INCOMPAT.EXTENTS) ? Math.min(Math.floor(clusters / 50), 4096) : 0;
    // s_freeclusters_counter starts from the descriptors (ext4_count_free_clusters), not the lazily kept superblock field.
    let free = 0;
    for (const gd of fs.groups) free += gd.freeBlocks;
    fs.sb.freeBlocksCount = free * this.geo.ratio;
  }

  /** Free clusters as the counters see them (freed-but-uncommitted included, as s_freeclusters_counter does). */
  get freeClusters(): number { return Math.floor(this.fs.sb.freeBlocksCount / this.geo.ratio); }

  /** Clusters of group g the allocator may use now. */
  avail(g: number): number {
    const i = this.info[g];
    return i.corrupt ? 0 : this.fs.groups[g].freeBlocks - i.pendingCount;
  }

  /** The group's bitmap, validated the first time it is used in this mount. */
  bitmap(g: number): BufferHead {
    const bh = readBlockBitmap(this.fs, this.geo, g);
    const i = this.info[g];
    if (!i.checked) {
      const why = blockBitmapProblem(this.fs, this.geo, g, bh.data);
      i.checked = true;
      if (why) this.markCorrupt(g, why);
    }
    return bh;
  }

  /**
   * ext4_mark_group_bitmap_corrupted: never allocated from again. `report`:
   * the finding is an ext4_grp_locked_error of its own (errors=continue goes
   * on elsewhere; remount-ro and panic throw).
   */
  markCorrupt(g: number, why: string, report = true): void {
    if (this.info[g].corrupt) return;
    this.info[g].corrupt = why;
    this.fs.warnings.push(`${why}: group ${g} is not allocated from (EXT4_GROUP_INFO_BBITMAP_CORRUPT)`);
    // The kernel's ext4_grp_locked_error names no inode and no block here.
    if (report) ext4GroupError(this.fs, corrupted(why), "ext4_mb_generate_buddy");
  }

  /**
   * Pointer to the allocator's view of group g's bitmap: the buffer itself,
   * or, while freed runs wait for a commit, a copy in wasm scratch with
   * those runs marked in use. Valid until the next cache or scratch use.
   */
  view(g: number, bh: BufferHead): number {
    const i = this.info[g];
    const b = bh.data;
    if (i.pendingCount === 0) return b.byteOffset;
    const w = this.fs.wasm;
    const ptr = w.scratchPtr;
    w.u8.copyWithin(ptr, b.byteOffset, b.byteOffset + b.length);
    for (const p of i.pending) w.x.bitmapFill(ptr, p.start, p.start + p.count, 1);
    return ptr;
  }

  /** ext4_has_free_clusters. */
  hasFreeClusters(n: number, flags: number, cred: AllocCred | undefined): boolean {
    const sb = this.fs.sb;
    const free = this.freeClusters;
    const dirty = this.dirtyClusters;
    const resv = this.resvClusters;
    const rsv = Math.floor(sb.reservedBlocksCount / this.geo.ratio) + resv;
    if (free >= rsv + n + dirty) return true;
    const privileged = !cred || cred.uid === 0 || cred.uid === sb.defResuid
      || (sb.defResgid !== 0 && (cred.gid === sb.defResgid || (cred.groups ?? []).includes(sb.defResgid)));
    if ((privileged || flags & ALLOC.USE_ROOT_BLOCKS) && free >= n + dirty + resv) return true;
    if (flags & ALLOC.NOFAIL && free >= n + dirty) return true;
    return false;
  }
}

const allocators = new WeakMap<Ext4, Allocator>();

/** The mount's allocator state; rebuilt when the descriptors were reloaded (journal replay). */
function allocator(fs: Ext4): Allocator {
  let a = allocators.get(fs);
  if (!a || a.fs.groups !== fs.groups) {
    a = new Allocator(fs);
    allocators.set(fs, a);
  }
  return a;
}

function checkRequest(fs: Ext4, req: AllocRequest): void {
  if (!Number.isSafeInteger(req.len) || req.len < 1) throw new Ext4Error("EINVAL", `allocation of ${req.len} blocks`);
  if (!Number.isFinite(req.goal)) throw new Ext4Error("EINVAL", `allocation goal ${req.goal}`);
  if (fs.readOnly) throw new Ext4Error("EROFS", "read-only file system");
}

/** A found run: group, first cluster, clusters. */
interface Run { g: number; c: number; n: number }

/**
 * ext4_mb_new_blocks: one contiguous run of 1..req.len blocks near the goal.
 * Throws ENOSPC (needsCommitToFree tells whether a commit would help).
 */
export function newBlocks(handle: Handle, fs: Ext4, req: AllocRequest): AllocResult {
  checkRequest(fs, req);
  const a = allocator(fs);
  const geo = a.geo;
  const flags = req.flags ?? 0;
  const sb = fs.sb;
  let goal = Math.floor(req.goal);
  if (goal < sb.firstDataBlock || goal >= sb.blocksCount) goal = sb.firstDataBlock;
  // Whole clusters, and no run longer than a group's bitmap.
  let want = Math.min(Math.ceil(req.len / geo.ratio), geo.clustersPerGroup);
  if (!(flags & ALLOC.DELALLOC_RESERVED)) {
    // ext4_claim_free_clusters, halving the request until it fits.
    while (want > 0 && !a.hasFreeClusters(want, flags, req.cred)) want >>= 1;
    if (want === 0) throw enospc(a, "no free clusters left for this request (reserve kept)");
  }
  const run = findRun(a, goal, want, flags);
  if (!run) throw enospc(a, a.pendingClusters > 0 ? `no free run; ${a.pendingClusters} freed clusters wait for a commit` : "no free blocks");
  markUsed(handle, a, run, flags);
  const pblk = geo.blockOf(run.g, run.c);
  const blocks = run.n * geo.ratio;
  if (req.inode) req.inode.blocks512 += blocks * (sb.blockSize / 512);
  if (!(flags & ALLOC.METADATA)) fs.bcache.forgetRange(pblk, Math.min(blocks, sb.blocksCount - pblk));
  return { pblk, len: Math.min(req.len, blocks), clusters: run.n };
}

/**
 * ext4_new_meta_blocks for one block (an extent index or leaf, a directory
 * or xattr block): charged to `inode` if given; the caller getblk()s it and
 * takes create access.
 */
export function newMetaBlock(handle: Handle, fs: Ext4, inode: Inode | undefined, goal: number, flags = 0): number {
  return newBlocks(handle, fs, { inode, goal, len: 1, flags: (flags | ALLOC.METADATA) & ~ALLOC.DATA }).pblk;
}

function enospc(a: Allocator, why: string): Ext4Error {
  return new Ext4Error("ENOSPC", `no space left on device: ${why}`);
}

/** The goal's run, else the first run covering the request from the goal on, else the longest run anywhere. */
function findRun(a: Allocator, goal: number, want: number, flags: number): Run | undefined {
  const geo = a.geo;
  const x = a.fs.wasm.x;
  const gGoal = geo.groupOf(goal);
  const cGoal = geo.clusterInGroup(goal);
  // ext4_mb_find_by_goal.
  if (a.avail(gGoal) > 0 && cGoal < geo.usableClusters(gGoal)) {
    const got = withView(a, gGoal, (ptr, end) => {
      if (cGoal >= end || x.bitmapFind(ptr, cGoal, cGoal + 1, 0) !== cGoal) return 0;
      const stop = x.bitmapFind(ptr, cGoal, Math.min(end, cGoal + want), 1);
      return (stop < 0 ? Math.min(end, cGoal + want) : stop) - cGoal;
    });
    if (got >= want || (got > 0 && flags & ALLOC.MERGE)) return { g: gGoal, c: cGoal, n: got };
  }
  if (flags & ALLOC.EXACT_GOAL) return undefined;
  // A run covering the request: the goal group from the goal on (then its start), then the next groups.
  for (let k = 0; k < geo.groups; k++) {
    const g = (gGoal + k) % geo.groups;
    const i = a.info[g];
    if (a.avail(g) < want || (i.largest >= 0 && i.largest < want)) continue;
    const c = withView(a, g, (ptr, end) => {
      let s = k === 0 && cGoal < end ? x.bitmapFindZeroRun(ptr, cGoal, end, want) : -1;
      if (s < 0) s = x.bitmapFindZeroRun(ptr, 0, end, want);
      if (s < 0) {
        // The whole group was scanned: remember its longest run so later requests skip it.
        const l = x.bitmapLongestZeroRun(ptr, 0, end);
        i.largest = l < 0 ? 0 : x.bitmapLastRunLen();
      }
      return s;
    });
    if (c >= 0) return { g, c, n: want };
  }
  // No run is long enough: the longest free run there is (nearest the goal among equals).
  let best: Run | undefined;
  for (let k = 0; k < geo.groups; k++) {
    const g = (gGoal + k) % geo.groups;
    const i = a.info[g];
    if (a.avail(g) <= 0 || (best && (a.avail(g) <= best.n || (i.largest >= 0 && i.largest <= best.n)))) continue;
    withView(a, g, (ptr, end) => {
      const s = x.bitmapLongestZeroRun(ptr, 0, end);
      const n = s < 0 ? 0 : x.bitmapLastRunLen();
      i.largest = n;
      if (n > 0 && (!best || n > best.n)) best = { g, c: s, n };
    });
  }
  return best;
}

/** Runs `fn` over the allocator's view of group g (pointer, usable clusters); the bitmap is held meanwhile. */
function withView<T>(a: Allocator, g: number, fn: (ptr: number, end: number) => T): T {
  const bh = a.bitmap(g);
  try {
    if (a.info[g].corrupt) return fn(0, 0);
    return fn(a.view(g, bh), a.geo.usableClusters(g));
  } finally {
    a.fs.bcache.brelse(bh);
  }
}

/** ext4_mb_mark_diskspace_used: the bits, the descriptor (BLOCK_UNINIT cleared), the free counts. */
function markUsed(handle: Handle, a: Allocator, run: Run, flags: number): void {
  const fs = a.fs;
  const geo = a.geo;
  const x = fs.wasm.x;
  const pblk = geo.blockOf(run.g, run.c);
  const blocks = run.n * geo.ratio;
  const zone = fs.systemZone?.overlapping(pblk, blocks);
  if (zone) {
    // The bitmap calls metadata free: it cannot be trusted (the kernel leaks the run and errors).
    a.markCorrupt(run.g, `block bitmap of group ${run.g} marks metadata blocks near ${zone.start} free`, false);
    ext4Error(fs, corrupted(`allocating blocks ${pblk}-${pblk + blocks - 1} which overlap filesystem metadata`, { block: pblk }), "ext4_mb_mark_diskspace_used");
  }
  const gd = fs.groups[run.g];
  const bh = a.bitmap(run.g);
  try {
    handle.getWriteAccess(bh);
    const b = bh.data;
    if (x.bitmapCount(b.byteOffset, run.c, run.c + run.n) !== 0) throw new Error(`allocator picked in-use clusters ${run.c}+${run.n} of group ${run.g}`);
    if (blockUninit(geo, gd)) {
      // The in-memory bitmap becomes the group's real one; its free count is what init left free.
      gd.flags &= ~BG_FLAGS.BLOCK_UNINIT;
      const clusters = geo.clustersInGroup(run.g);
      gd.freeBlocks = clusters - x.bitmapCount(b.byteOffset, 0, clusters);
    }
    x.bitmapFill(b.byteOffset, run.c, run.c + run.n, 1);
    setBlockBitmapCsum(fs, geo, gd, b);
    handle.dirtyMetadata(bh);
  } finally {
    fs.bcache.brelse(bh);
  }
  gd.freeBlocks -= run.n;
  markGroupDescDirty(handle, fs, run.g);
  fs.sb.freeBlocksCount -= blocks;
  fs.markSuperDirty();
  a.info[run.g].largest = -1;
  void flags;
}

/**
 * ext4_free_blocks: blocks [pblk, pblk+len) of `inode` (if given, its
 * i_blocks drops) are freed in this handle's transaction; the allocator
 * reuses them once it has committed (at once for data=writeback data).
 * With bigalloc the run widens to whole clusters unless noFree*Cluster.
 */
export function freeBlocks(handle: Handle, fs: Ext4, inode: Inode | undefined, pblk: number, len: number, flags: FreeFlags = {}): void {
  if (fs.readOnly) throw new Ext4Error("EROFS", "read-only file system");
  const a = allocator(fs);
  const geo = a.geo;
  const sb = fs.sb;
  if (!Number.isSafeInteger(pblk) || !Number.isSafeInteger(len) || len < 1) throw new Ext4Error("EINVAL", `freeing ${len} blocks at ${pblk}`);
  // EXT4_PBLK_COFF: with bigalloc s_first_data_block is 0, so clusters align to block 0.
  const ratio = geo.ratio;
  let start = pblk;
  let end = pblk + len;
  if (start % ratio) start = flags.noFreeFirstCluster ? start + ratio - (start % ratio) : start - (start % ratio);
  if (end % ratio) end = flags.noFreeLastCluster ? end - (end % ratio) : end + ratio - (end % ratio);
  if (end <= start) return;
  if (start <= sb.firstDataBlock || end > sb.blocksCount + ((ratio - (sb.blocksCount % ratio)) % ratio)) ext4Error(fs, outsideFs(fs, start, end - start, "freeing blocks"), "ext4_free_blocks");
  const zone = fs.systemZone?.overlapping(start, end - start);
  if (zone && zone.ino !== (inode?.ino ?? -1)) ext4Error(fs, corrupted(`freeing blocks ${start}-${end - 1} which overlap filesystem metadata`, { block: start, ino: inode?.ino }), "ext4_free_blocks");
  // Split by group, and check every part before changing any.
  const parts: Run[] = [];
  for (let b = start; b < end; ) {
    const g = geo.groupOf(b);
    const stop = Math.min(end, groupFirstBlock(sb, g) + geo.blocksPerGroup);
    parts.push({ g, c: geo.clusterInGroup(b), n: (stop - b) / ratio });
    b = stop;
  }
  const x = fs.wasm.x;
  for (const p of parts) {
    const bh = a.bitmap(p.g);
    try {
      const i = a.info[p.g];
      if (i.corrupt) ext4Error(fs, corrupted(`freeing blocks in group ${p.g}, whose block bitmap is damaged (${i.corrupt})`, { block: start }), "ext4_mb_clear_bb");
      if (x.bitmapCount(bh.data.byteOffset, p.c, p.c + p.n) !== p.n) {
        // mb_free_blocks: "freeing already freed block"; the group's bitmap is not trusted again. Nothing is freed.
        const why = `freeing blocks ${geo.blockOf(p.g, p.c)}-${geo.blockOf(p.g, p.c + p.n) - 1}, some already free (bit already cleared)`;
        a.markCorrupt(p.g, why, false);
        ext4Error(fs, corrupted(why, { block: geo.blockOf(p.g, p.c), ino: inode?.ino }), "mb_free_blocks");
      }
    } finally {
      fs.bcache.brelse(bh);
    }
  }
  if (flags.metadata || flags.forget) {
    for (let b = start; b < end; b++) handle.forget(b, !!flags.metadata, fs.bcache.peek(b));
  }
  const deferred = flags.metadata || !flags.writebackData;
  for (const p of parts) {
    const gd = fs.groups[p.g];
    const bh = a.bitmap(p.g);
    try {
      handle.getWriteAccess(bh);
      const b = bh.data;
      x.bitmapFill(b.byteOffset, p.c, p.c + p.n, 0);
      setBlockBitmapCsum(fs, geo, gd, b);
      handle.dirtyMetadata(bh);
    } finally {
      fs.bcache.brelse(bh);
    }
    gd.freeBlocks += p.n;
    markGroupDescDirty(handle, fs, p.g);
    sb.freeBlocksCount += p.n * ratio;
    fs.markSuperDirty();
    const i = a.info[p.g];
    if (deferred) {
      const e: PendingFree = { group: p.g, start: p.c, count: p.n, tid: handle.tid };
      i.pending.add(e);
      i.pendingCount += p.n;
      a.pendingClusters += p.n;
      handle.onCommit(() => releasePending(a, e));
    } else {
      i.largest = -1;
    }
  }
  if (inode) inode.blocks512 = Math.max(0, inode.blocks512 - (end - start) * (sb.blockSize / 512));
}

/** ext4_free_data_in_buddy: the committed run becomes free to the allocator. */
function releasePending(a: Allocator, e: PendingFree): void {
  const i = a.info[e.group];
  if (!i.pending.delete(e)) return;
  i.pendingCount -= e.count;
  a.pendingClusters -= e.count;
  i.largest = -1;
}

/** True when freed blocks wait for a commit: an ENOSPC may go away after one (s_mb_free_pending). */
export function needsCommitToFree(fs: Ext4): boolean {
  return allocator(fs).pendingClusters > 0;
}

/**
 * ext4_should_retry_alloc: after ENOSPC, whether to force a commit and try
 * again (at most 3 times, only while freed blocks wait for a commit, and
 * only if the caller could use a free cluster at all: `flags` and `cred`
 * as in its request).
 */
export function shouldRetryAlloc(fs: Ext4, retries: number, flags = 0, cred?: AllocCred): boolean {
  const a = allocator(fs);
  if (!a.hasFreeClusters(1, flags, cred) || retries > 3) return false;
  return a.pendingClusters > 0;
}

/**
 * Runs `op` (which starts and stops its own handle), and on ENOSPC forces a
 * commit through `forceCommit` (the journal's: jbd2_journal_force_commit_nested)
 * and runs it again while shouldRetryAlloc says so.
 */
export function retryOnEnospc<T>(fs: Ext4, op: () => T, forceCommit: () => void, opts: { flags?: number; cred?: AllocCred } = {}): T {
  for (let retries = 1; ; retries++) {
    try {
      return op();
    } catch (e) {
      if (!(e instanceof Ext4Error && e.code === "ENOSPC") || !shouldRetryAlloc(fs, retries, opts.flags, opts.cred)) throw e;
      forceCommit();
    }
  }
}

/**
 * ext4_claim_free_clusters for delayed allocation: `n` clusters are promised
 * (later allocated with ALLOC.DELALLOC_RESERVED); ENOSPC if they are not there.
 */
export function claimFreeClusters(fs: Ext4, n: number, flags = 0, cred?: AllocCred): void {
  const a = allocator(fs);
  if (!a.hasFreeClusters(n, flags, cred)) throw new Ext4Error("ENOSPC", "no space left on device");
  a.dirtyClusters += n;
}

/**
 * A delayed-allocation claim given back: allocated at last (ext4_da_update_reserve_space)
 * or dropped (truncate, invalidate: ext4_da_release_space).
 */
export function releaseClaim(fs: Ext4, n: number): void {
  const a = allocator(fs);
  a.dirtyClusters = Math.max(0, a.dirtyClusters - n);
}

/** What statfs and tests see: free clusters (counters), those waiting for a commit, claimed, reserved. */
export function allocStats(fs: Ext4): { freeClusters: number; pendingClusters: number; dirtyClusters: number; resvClusters: number } {
  const a = allocator(fs);
  return { freeClusters: a.freeClusters, pendingClusters: a.pendingClusters, dirtyClusters: a.dirtyClusters, resvClusters: a.resvClusters };
}

// ---- goals ----

/** EXT4_FLEX_SIZE_DIR_ALLOC_SCHEME: from this flex size on, regular files start in the flex group's second group. */
const FLEX_SIZE_DIR_ALLOC_SCHEME = 4;

/**
 * ext4_inode_to_goal_block: the first block of the inode's group; with a
 * flex_bg of 4 or more groups, of its flex group, one group later for
 * regular files (so data follows the packed metadata, and directories keep
 * the first group). No per-process colour: delalloc (the default) has none.
 */
export function inodeToGoalBlock(fs: Ext4, inode: Inode): number {
  const sb = fs.sb;
  let group = Math.floor((inode.ino - 1) / sb.inodesPerGroup);
  const log = hasIncompat(sb, INCOMPAT.FLEX_BG) && sb.logGroupsPerFlex >= 1 && sb.logGroupsPerFlex <= 31 ? sb.logGroupsPerFlex : 0;
  const flexSize = 2 ** log;
  if (flexSize >= FLEX_SIZE_DIR_ALLOC_SCHEME) {
    group = Math.floor(group / flexSize) * flexSize;
    if ((inode.mode & S_IFMT) === S_IFREG) group++;
  }
  return groupFirstBlock(sb, group);
}

/**
 * ext4_ext_find_goal: after the extent nearest at or before `lblk` (as far
 * on as `lblk` is from it), else the extent block the search ends in, else
 * the inode's group. Indirect files: after the mapped block before `lblk`.
 */
export function goalForInode(fs: Ext4, inode: Inode, lblk: number): number {
  if (inode.flags & INODE_FLAGS.EXTENTS) {
    const g = extentGoal(fs, inode, lblk);
    if (g !== undefined) return g;
  } else if (!(inode.flags & INODE_FLAGS.INLINE_DATA) && lblk > 0) {
    try {
      const m = fs.mapBlocks(inode, lblk - 1, 1);
      if (m.kind !== MapKind.Hole) return m.pblk + 1;
    } catch { /* a hint only: fall back to the inode's group */ }
  }
  return inodeToGoalBlock(fs, inode);
}

/** The search path's last extent (ext4_ext_binsearch: the last at or before lblk, or the first). */
function extentGoal(fs: Ext4, inode: Inode, lblk: number): number | undefined {
  let node: Uint8Array = inode.iBlock;
  let nodeBytes = 60;
  let nodeBlock: number | undefined;
  for (let level = 0; level <= 5; level++) {
    const h = extentHeader(node);
    if (node[0] + node[1] * 256 !== EXTENT_MAGIC || h.entries > h.max || 12 + 12 * h.max > nodeBytes) return undefined;
    if (h.entries === 0) return nodeBlock;
    let lo = 1;
    let hi = h.entries - 1;
    let at = 0;
    const key = (k: number) => (h.depth === 0 ? leafAt(node, k).lblk : indexAt(node, k).lblk);
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (key(mid) <= lblk) { at = mid; lo = mid + 1; } else hi = mid - 1;
    }
    if (h.depth === 0) {
      const e = leafAt(node, at);
      return lblk > e.lblk ? e.pblk + (lblk - e.lblk) : e.pblk - (e.lblk - lblk);
    }
    const child = indexAt(node, at).leaf;
    if (child <= fs.sb.firstDataBlock || child >= fs.sb.blocksCount) return undefined;
    node = fs.bcache.read(child, "extent tree block");
    nodeBytes = fs.sb.blockSize;
    nodeBlock = child;
  }
  return undefined;
}

/**
 * get_default_free_blocks_flags: the blocks of directories, symlinks and
 * ea_inodes are metadata (journaled), so freeing them forgets and revokes
 * their buffers; regular file data is plain data, but journaled data
 * (ext4_should_journal_data) is forgotten too, as ext4_remove_blocks does:
 * its buffers may still wait for a checkpoint.
 */
export function defaultFreeFlags(inode: Inode, fs: Ext4): FreeFlags {
  const t = inode.mode & S_IFMT;
  if (t === 0o040000 || t === 0o120000 || inode.flags & INODE_FLAGS.EA_INODE) return { metadata: true };
  return fs.journal !== undefined && (fs.config.options.data === "journal" || inode.flags & INODE_FLAGS.JOURNAL_DATA) ? { forget: true } : {};
}
