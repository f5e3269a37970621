// Delayed-allocation accounting (ext4_da_reserve_space, ext4_da_release_space,
// ext4_da_update_reserve_space and the reservation side of
// ext4_es_remove_extent). Delayed blocks live only in the extent status tree;
// each reserved cluster is one claim on the filesystem's free clusters
// (mballoc's dirty-clusters counter) and one unit of i_reserved_data_blocks.
//
// Which clusters hold a reservation: without bigalloc, every delayed block.
// With bigalloc, a cluster is reserved when its first delayed block arrives
// while none of its blocks is allocated on disk (ext4_insert_delayed_block);
// later delayed blocks of that cluster share it, and blocks of a cluster
// already allocated need none (the kernel's pending reservations). The set
// of reserved logical clusters is kept per inode here.

import { Ext4Error } from "../errors.js";
import { ES } from "./extents-status.js";
import type { Ext4Inode } from "./inode.js";
import { MapKind } from "./mapping.js";
import { claimFreeClusters, releaseClaim, shouldRetryAlloc } from "./mballoc.js";
import type { Ext4 } from "./super.js";

/** Bigalloc only: the logical clusters of each inode that hold a reservation. */
const reservedClusters = new WeakMap<Ext4Inode, Set<number>>();

function ratioOf(fs: Ext4): number { return fs.sb.clusterSize / fs.sb.blockSize; }

function clusterSet(inode: Ext4Inode): Set<number> {
  let s = reservedClusters.get(inode);
  if (!s) reservedClusters.set(inode, (s = new Set()));
  return s;
}

/**
 * ext4_da_reserve_space: claims `nblocks` clusters (blocks without bigalloc)
 * for delayed blocks of `inode`. ENOSPC (typed, with the inode) if they are
 * not there even after forcing commits while freed blocks wait for one
 * (ext4_should_retry_alloc, as ext4_da_write_begin retries). Must be called
 * outside any handle: the retry commits the running transaction.
 */
export function daReserveSpace(fs: Ext4, inode: Ext4Inode, nblocks: number): void {
  if (nblocks <= 0) return;
  for (let retries = 1; ; retries++) {
    try {
      claimFreeClusters(fs, nblocks);
      break;
    } catch (e) {
      if (!(e instanceof Ext4Error && e.code === "ENOSPC")) throw e;
      if (!shouldRetryAlloc(fs, retries)) {
        throw new Ext4Error("ENOSPC", `no space left on device for ${nblocks} delayed cluster(s)`, { ino: inode.ino });
      }
      fs.commit();
    }
  }
  inode.reservedDataBlocks += nblocks;
  fs.inodeSettled(inode);
}

/**
 * ext4_da_release_space: gives back `nblocks` reserved clusters that will not
 * be allocated (truncated, punched, invalidated). More than the inode holds is
 * a bookkeeping bug the kernel warns about and clamps; so do we.
 */
export function daReleaseSpace(fs: Ext4, inode: Ext4Inode, nblocks: number): void {
  if (nblocks <= 0) return;
  if (nblocks > inode.reservedDataBlocks) {
    fs.warnings.push(`inode ${inode.ino}: releasing ${nblocks} reserved clusters, only ${inode.reservedDataBlocks} held (ext4_da_release_space)`);
    nblocks = inode.reservedDataBlocks;
  }
  inode.reservedDataBlocks -= nblocks;
  releaseClaim(fs, nblocks);
  fs.inodeSettled(inode);
}

/**
 * ext4_da_update_reserve_space: `nblocks` reserved clusters were allocated
 * (writeback mapped delayed blocks with ALLOC.DELALLOC_RESERVED): the claim
 * is now a real allocation. Same accounting as a release.
 */
export function daUpdateReserveSpace(fs: Ext4, inode: Ext4Inode, nblocks: number): void {
  daReleaseSpace(fs, inode, nblocks);
}

/**
 * How many new reservations delaying blocks [lblk, lblk+len) needs, and
 * records them (bigalloc: the clusters that get one). The blocks must not be
 * delayed or mapped yet; call before inserting them as DELAYED, and reserve
 * the count with daReserveSpace first (undo with daForgetClusters on failure).
 */
export function daClustersToReserve(fs: Ext4, inode: Ext4Inode, lblk: number, len: number): number[] {
  const ratio = ratioOf(fs);
  if (ratio === 1) return [];
  const set = clusterSet(inode);
  const out: number[] = [];
  for (let c = Math.floor(lblk / ratio); c * ratio < lblk + len; c++) {
    if (set.has(c)) continue;
    const c0 = c * ratio;
    // A cluster with delayed blocks but no reservation is allocated already (pending); so is one with mapped blocks.
    if (inode.es.countBlocks(ES.DELAYED, c0, ratio) > 0 || clusterMapped(fs, inode, c0, ratio)) continue;
    out.push(c);
  }
  return out;
}

/** Records bigalloc clusters as reserved (after daReserveSpace succeeded for them). */
export function daAddClusters(inode: Ext4Inode, clusters: number[]): void {
  if (clusters.length === 0) return;
  const set = clusterSet(inode);
  for (const c of clusters) set.add(c);
}

/**
 * The number of reservations delayed blocks [lblk, lblk+len) stand for once
 * they are allocated or dropped: without bigalloc the delayed blocks in the
 * range; with it, the reserved clusters the range covers that will have no
 * delayed block left (`afterRemoval`: call after the range left the tree).
 * Those clusters are forgotten.
 */
function takeReservations(fs: Ext4, inode: Ext4Inode, lblk: number, len: number, delayedRemoved: number, allocated: boolean): number {
  const ratio = ratioOf(fs);
  if (ratio === 1) return delayedRemoved;
  const set = reservedClusters.get(inode);
  if (!set || set.size === 0) return 0;
  let n = 0;
  // Over the reserved clusters, not the range: truncate passes a range to the end of the file's reach (2^32 blocks).
  const c0 = Math.floor(lblk / ratio);
  const c1 = Math.ceil((lblk + len) / ratio);
  for (const c of set) {
    if (c < c0 || c >= c1) continue;
    // An allocated cluster consumed its reservation; a dropped one only when no delayed block of it is left.
    if (allocated || inode.es.countBlocks(ES.DELAYED, c * ratio, ratio) === 0) {
      set.delete(c);
      n++;
    }
  }
  return n;
}

/**
 * ext4_es_remove_extent: forgets [lblk, lblk+len) in the extent status tree
 * and releases the reservations of the delayed blocks it removed. truncate,
 * punch, collapse and evict call it for the range they drop.
 */
export function esRemoveExtent(fs: Ext4, inode: Ext4Inode, lblk: number, len: number): void {
  if (len <= 0) return;
  const end = Math.min(lblk + len, 0x100000000);
  if (end <= lblk) return;
  const removed = inode.es.remove(lblk, end - lblk);
  daReleaseSpace(fs, inode, takeReservations(fs, inode, lblk, end - lblk, removed, false));
}

/**
 * Writeback allocated delayed blocks [lblk, lblk+len) (they are now WRITTEN or
 * UNWRITTEN in the tree, inserted by the caller): their reservations become
 * allocations. `delayedAllocated` is how many delayed blocks the range held.
 */
export function daAllocated(fs: Ext4, inode: Ext4Inode, lblk: number, len: number, delayedAllocated: number): void {
  daUpdateReserveSpace(fs, inode, takeReservations(fs, inode, lblk, len, delayedAllocated, true));
}

/** Whether a block of logical cluster [c0, c0+ratio) is allocated on disk (ext4_clu_mapped). */
function clusterMapped(fs: Ext4, inode: Ext4Inode, c0: number, ratio: number): boolean {
  for (let b = c0; b < c0 + ratio; ) {
    const m = fs.mapBlocks(inode, b, c0 + ratio - b);
    if (m.kind !== MapKind.Hole) return true;
    b += Math.max(1, m.len);
  }
  return false;
}

/** auto_da_alloc is on unless the last of the two options given says noauto_da_alloc. */
export function autoDaAlloc(fs: Ext4): boolean {
  const a = fs.config.options.accepted;
  return a.lastIndexOf("noauto_da_alloc") <= a.lastIndexOf("auto_da_alloc");
}
