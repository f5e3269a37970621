// statfs(2) as ext4_statfs answers it (bsddf, the default): f_blocks is the
// block count less the metadata overhead (ext4_calculate_overhead: the
// superblock and descriptor backups, bitmaps, inode tables, the internal
// journal); f_bfree the free clusters less those delalloc has claimed;
// f_bavail less the root reserve and s_resv_clusters too.

import { INCOMPAT } from "../format/features.js";
import { hasIncompat } from "../format/superblock.js";
import { groupHasSuper } from "../fs/groups.js";
import { allocStats } from "../fs/mballoc.js";
import type { Ext4 } from "../fs/super.js";

/** node's StatFs fields (numbers, or bigints with { bigint: true }). */
export interface StatFs<T = number | bigint> { type: T; bsize: T; blocks: T; bfree: T; bavail: T; files: T; ffree: T }

const EXT4_SUPER_MAGIC = 0xef53;
const S_OVERHEAD_CLUSTERS = 0x248;

/** ext4_calculate_overhead in blocks (s_overhead_clusters when mke2fs or the kernel recorded it). */
export function overheadBlocks(fs: Ext4): number {
  const sb = fs.sb;
  const ratio = 2 ** (sb.logClusterSize - (Math.log2(sb.blockSize) - 10));
  const recorded = new DataView(sb.raw.buffer, sb.raw.byteOffset).getUint32(S_OVERHEAD_CLUSTERS, true);
  if (recorded) return recorded * ratio;
  const ngroups = fs.groups.length;
  const perBlock = sb.blockSize / sb.descSize;
  const gdtBlocks = Math.ceil(ngroups / perBlock);
  const itb = Math.ceil((sb.inodesPerGroup * sb.inodeSize) / sb.blockSize);
  const metaBg = hasIncompat(sb, INCOMPAT.META_BG);
  let overhead = sb.firstDataBlock + ngroups * (2 + itb);
  for (let g = 0; g < ngroups; g++) {
    const hasSuper = groupHasSuper(sb, g);
    if (!metaBg) {
      if (hasSuper) overhead += 1 + gdtBlocks + sb.reservedGdtBlocks;
      continue;
    }
    // ext4_bg_num_gdb: below s_first_meta_bg as without meta_bg; past it, one block in a meta group's first, second and last group.
    const mg = Math.floor(g / perBlock);
    if (mg < sb.firstMetaBg) {
      if (hasSuper) overhead += 1 + sb.firstMetaBg + sb.reservedGdtBlocks;
    } else {
      const first = mg * perBlock;
      if (hasSuper) overhead += 1;
      if (g === first || g === first + 1 || g === first + perBlock - 1) overhead += 1;
    }
  }
  if (fs.hasJournal && sb.journalInum) overhead += Math.floor(fs.inode(sb.journalInum).size / sb.blockSize);
  return overhead;
}

export function statfs(fs: Ext4, bigint: boolean): StatFs {
  const sb = fs.sb;
  const ratio = 2 ** (sb.logClusterSize - (Math.log2(sb.blockSize) - 10));
  let freeClusters = 0;
  let ffree = 0;
  for (const g of fs.groups) { freeClusters += g.freeBlocks; ffree += g.freeInodes; }
  let dirty = 0;
  let resv = hasIncompat(sb, INCOMPAT.EXTENTS) ? Math.min(Math.floor(Math.floor(sb.blocksCount / ratio) / 50), 4096) : 0;
  if (!fs.readOnly) {
    const a = allocStats(fs);
    freeClusters = a.freeClusters;
    dirty = a.dirtyClusters;
    resv = a.resvClusters;
  }
  const bfree = Math.max(0, freeClusters - dirty) * ratio;
  const out = {
    type: EXT4_SUPER_MAGIC, bsize: sb.blockSize, blocks: sb.blocksCount - overheadBlocks(fs), bfree,
    bavail: Math.max(0, bfree - sb.reservedBlocksCount - resv * ratio), files: sb.inodesCount, ffree,
  };
  if (!bigint) return out;
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, BigInt(v)])) as unknown as StatFs;
}
