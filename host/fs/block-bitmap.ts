// Block bitmaps (fs/ext4/balloc.c): group geometry in clusters, reading a
// group's bitmap through a buffer head (a BLOCK_UNINIT group's bitmap is
// built in memory as ext4_init_block_bitmap builds it), its validation
// (checksum, metadata bits, free count), and the bitmap checksum kept in the
// group descriptor.

import type { BufferHead } from "../cache/buffer-head.js";
import { corrupted } from "../errors.js";
import { INCOMPAT, RO_COMPAT } from "../format/features.js";
import { BG_FLAGS, type GroupDesc } from "../format/group-desc.js";
import { groupCount, hasIncompat, hasRoCompat, type Superblock } from "../format/superblock.js";
import { groupFirstBlock, groupHasSuper } from "./groups.js";
import type { Ext4 } from "./super.js";

/** Cluster geometry of a mounted filesystem (clusters are blocks without bigalloc). */
export class Geometry {
  /** Blocks per cluster (EXT4_CLUSTER_RATIO) and its log. */
  readonly ratio: number;
  readonly clusterBits: number;
  readonly groups: number;
  readonly blocksPerGroup: number;
  readonly clustersPerGroup: number;
  /** Inode-table blocks per group (s_itb_per_group). */
  readonly itbPerGroup: number;
  /** Group descriptor checksums on (ext4_has_group_desc_csum): only then are the UNINIT flags meaningful. */
  readonly descCsum: boolean;
  /** Per group: the [block, count) ranges of any group's bitmaps and inode table that lie in it. */
  private metaIn: Map<number, [number, number][]> | undefined;

  constructor(readonly sb: Superblock, private readonly descs: GroupDesc[]) {
    this.ratio = sb.clusterSize / sb.blockSize;
    this.clusterBits = Math.log2(this.ratio);
    this.groups = groupCount(sb);
    this.blocksPerGroup = sb.blocksPerGroup;
    this.clustersPerGroup = sb.clustersPerGroup;
    this.itbPerGroup = Math.ceil((sb.inodesPerGroup * sb.inodeSize) / sb.blockSize);
    this.descCsum = hasRoCompat(sb, RO_COMPAT.METADATA_CSUM) || hasRoCompat(sb, RO_COMPAT.GDT_CSUM);
  }

  groupOf(block: number): number { return Math.floor((block - this.sb.firstDataBlock) / this.blocksPerGroup); }
  /** Cluster offset of `block` in its group. */
  clusterInGroup(block: number): number { return ((block - this.sb.firstDataBlock) % this.blocksPerGroup) >> this.clusterBits; }
  /** First block of cluster `c` of group `g`. */
  blockOf(g: number, c: number): number { return groupFirstBlock(this.sb, g) + c * this.ratio; }

  /** num_clusters_in_group: the last group may be short (its last cluster partial). */
  clustersInGroup(g: number): number {
    if (g < this.groups - 1) return this.clustersPerGroup;
    return Math.ceil((this.sb.blocksCount - groupFirstBlock(this.sb, g)) / this.ratio);
  }

  /** Clusters an allocation may take: a partial last cluster would run past the filesystem. */
  usableClusters(g: number): number {
    if (g < this.groups - 1) return this.clustersPerGroup;
    return Math.floor((this.sb.blocksCount - groupFirstBlock(this.sb, g)) / this.ratio);
  }

  /** ext4_num_base_meta_clusters: superblock, descriptors and reserved GDT blocks at the group's start. */
  baseMetaClusters(g: number): number {
    const sb = this.sb;
    const perBlock = sb.blockSize / sb.descSize;
    let num = groupHasSuper(sb, g) ? 1 : 0;
    if (!hasIncompat(sb, INCOMPAT.META_BG) || g < sb.firstMetaBg * perBlock) {
      if (num) num += (hasIncompat(sb, INCOMPAT.META_BG) ? sb.firstMetaBg : Math.ceil(this.groups / perBlock)) + sb.reservedGdtBlocks;
    } else {
      // meta_bg: one descriptor block in the first, second and last group of a meta group.
      const first = Math.floor(g / perBlock) * perBlock;
      if (g === first || g === first + 1 || g === first + perBlock - 1) num += 1;
    }
    return Math.ceil(num / this.ratio);
  }

  /** Bitmaps and inode-table blocks (of any group: flex_bg packs them) lying in group g. */
  metadataIn(g: number): [number, number][] {
    if (!this.metaIn) {
      const m = new Map<number, [number, number][]>();
      const add = (start: number, count: number) => {
        // Split at group boundaries (an inode table may straddle one).
        while (count > 0) {
          const gg = this.groupOf(start);
          const n = Math.min(count, groupFirstBlock(this.sb, gg) + this.blocksPerGroup - start);
          let list = m.get(gg);
          if (!list) m.set(gg, (list = []));
          list.push([start, n]);
          start += n;
          count -= n;
        }
      };
      for (const gd of this.descs) {
        add(gd.blockBitmap, 1);
        add(gd.inodeBitmap, 1);
        add(gd.inodeTable, this.itbPerGroup);
      }
      this.metaIn = m;
    }
    return this.metaIn.get(g) ?? [];
  }

  /** Bytes of the bitmap the checksum covers (EXT4_CLUSTERS_PER_GROUP / 8). */
  get bitmapCsumBytes(): number { return this.clustersPerGroup / 8; }
}

/**
 * ext4_init_block_bitmap into `b` (a BLOCK_UNINIT group has no bitmap on
 * disk): the group's superblock and descriptor copies, every bitmap and
 * inode-table block that lies in it (its own, and other groups' where flex_bg
 * packed them here), and the bits past the group's end, in use.
 */
export function initBlockBitmap(fs: Ext4, geo: Geometry, g: number, b: Uint8Array): void {
  const x = fs.wasm.x;
  b.fill(0);
  const ptr = b.byteOffset;
  x.bitmapFill(ptr, 0, geo.baseMetaClusters(g), 1);
  const start = groupFirstBlock(fs.sb, g);
  for (const [blk, n] of geo.metadataIn(g)) {
    const c0 = (blk - start) >> geo.clusterBits;
    const c1 = (blk + n - 1 - start) >> geo.clusterBits;
    x.bitmapFill(ptr, c0, c1 + 1, 1);
  }
  x.bitmapFill(ptr, geo.clustersInGroup(g), fs.sb.blockSize * 8, 1);
}

/** ext4_block_bitmap_csum_set: crc32c over the group's clusters, lo/hi in the descriptor as desc_size allows. */
export function setBlockBitmapCsum(fs: Ext4, geo: Geometry, gd: GroupDesc, b: Uint8Array): void {
  if (!fs.metadataCsum) return;
  const c = fs.csum.bitmap(b, geo.bitmapCsumBytes);
  gd.blockBitmapCsum = fs.sb.descSize >= 64 ? c : c & 0xffff;
}

export function blockBitmapCsumOk(fs: Ext4, geo: Geometry, gd: GroupDesc, b: Uint8Array): boolean {
  if (!fs.metadataCsum) return true;
  const c = fs.csum.bitmap(b, geo.bitmapCsumBytes);
  return fs.sb.descSize >= 64 ? c === gd.blockBitmapCsum >>> 0 : (c & 0xffff) === (gd.blockBitmapCsum & 0xffff);
}

/** Does group g's bitmap exist only in memory (BLOCK_UNINIT, honoured only with descriptor checksums)? */
export function blockUninit(geo: Geometry, gd: GroupDesc): boolean {
  return geo.descCsum && (gd.flags & BG_FLAGS.BLOCK_UNINIT) !== 0;
}

/**
 * ext4_read_block_bitmap: group g's bitmap, referenced (the caller brelses).
 * A BLOCK_UNINIT group's bitmap is rebuilt in memory whenever it is read,
 * so the buffer never carries stale device bytes (it is never dirty while
 * the flag is set: allocating from the group clears the flag).
 */
export function readBlockBitmap(fs: Ext4, geo: Geometry, g: number): BufferHead {
  const gd = fs.groups[g];
  if (blockUninit(geo, gd)) {
    const bh = fs.bcache.getblk(gd.blockBitmap, "block bitmap");
    if (!bh.dirty) {
      initBlockBitmap(fs, geo, g, bh.data);
      fs.bcache.setUptodate(bh);
    }
    return bh;
  }
  return fs.bcache.bread(gd.blockBitmap, "block bitmap");
}

/**
 * ext4_validate_block_bitmap and the free-count check of
 * ext4_mb_generate_buddy: a reason the bitmap must not be trusted, or
 * undefined. (The kernel then marks the group's bitmap corrupt and allocates
 * elsewhere.)
 */
export function blockBitmapProblem(fs: Ext4, geo: Geometry, g: number, b: Uint8Array): string | undefined {
  const gd = fs.groups[g];
  const x = fs.wasm.x;
  const ptr = b.byteOffset;
  if (!blockUninit(geo, gd) && fs.verifyChecksums && !blockBitmapCsumOk(fs, geo, gd, b)) {
    return `block bitmap checksum mismatch in group ${g} (block ${gd.blockBitmap})`;
  }
  const start = groupFirstBlock(fs.sb, g);
  for (const [blk, n] of geo.metadataIn(g)) {
    const c0 = (blk - start) >> geo.clusterBits;
    const c1 = ((blk + n - 1 - start) >> geo.clusterBits) + 1;
    if (x.bitmapCount(ptr, c0, c1) !== c1 - c0) return `block bitmap of group ${g} marks metadata blocks ${blk}-${blk + n - 1} free`;
  }
  const clusters = geo.clustersInGroup(g);
  const free = clusters - x.bitmapCount(ptr, 0, clusters);
  if (free !== gd.freeBlocks) {
    return `block bitmap and descriptor of group ${g} disagree: ${free} vs ${gd.freeBlocks} free clusters`;
  }
  return undefined;
}

/** The typed error for a block that lies outside any group's data area. */
export function outsideFs(fs: Ext4, pblk: number, count: number, what: string) {
  return corrupted(`${what} ${pblk}-${pblk + count - 1} lie outside the filesystem (${fs.sb.blocksCount} blocks, data from ${fs.sb.firstDataBlock})`, { block: pblk });
}
