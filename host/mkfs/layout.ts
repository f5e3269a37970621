// Where everything goes: the filesystem geometry (ext2fs_initialize), the
// group tables (ext2fs_allocate_tables with flex_bg packing), and the blocks
// of the root directory, lost+found, the resize inode, the journal and the
// orphan file, each found by the same first-fit searches from the same goals
// as mke2fs uses, so our layout is mke2fs's layout. Pure planning: no I/O.

import { Ext4Error } from "../errors.js";
import { BG_FLAGS } from "../format/group-desc.js";
import { BlockMap } from "./block-map.js";
import { defaultJournalBlocks, einval, hasFeature, setFeature, type FeatureSet, type MkfsParams } from "./options.js";

export const ROOT_INO = 2;
export const RESIZE_INO = 7;
export const JOURNAL_INO = 8;
export const FIRST_INO = 11;
export const LOST_FOUND_INO = 11;

export interface GroupLayout {
  first: number;
  blocks: number;
  hasSuper: boolean;
  blockBitmap: number;
  inodeBitmap: number;
  inodeTable: number;
  flags: number;
  itableUnused: number;
  freeClusters: number;
  freeInodes: number;
  usedDirs: number;
}

export interface Extent { lblk: number; len: number; pblk: number }

export interface FileLayout {
  ino: number;
  /** Data extents in logical order. */
  extents: Extent[];
  /** Extent tree leaf block (the root is full), or 0. */
  leafBlock: number;
  /** Blocks counted in i_blocks (data + tree), in filesystem blocks. */
  allocatedBlocks: number;
  /** Block-mapped files: IND, then DIND and the INDs under it, in allocation order. */
  indirect?: number[];
}

export interface Layout {
  p: MkfsParams;
  features: FeatureSet;
  blockSize: number;
  clusterRatio: number;
  logClusterSize: number; // log2(cluster / 1024)
  blocksCount: number;
  reservedBlocks: number;
  firstDataBlock: number;
  blocksPerGroup: number;
  clustersPerGroup: number;
  groupCount: number;
  descSize: number;
  descBlocks: number;
  reservedGdtBlocks: number;
  inodesPerGroup: number;
  inodesCount: number;
  inodeBlocksPerGroup: number;
  logGroupsPerFlex: number;
  csumFlag: boolean;
  groups: GroupLayout[];
  map: BlockMap;
  overheadClusters: number;
  freeBlocks: number;
  freeInodes: number;
  /** Highest inode number in use (root, lost+found, reserved, orphan file). */
  lastIno: number;
  root: FileLayout;
  lostFound: FileLayout;
  /** Resize inode: its double indirect block; the reserved GDT blocks it lists. */
  resize?: { dind: number; allocatedBlocks: number };
  journal?: FileLayout & { blocks: number };
  orphan?: FileLayout & { blocks: number };
}

const MAX_INIT_LEN = 32768;
const INODE_EXTENTS_IN_ROOT = 4;

function bgHasSuper(features: FeatureSet, g: number): boolean {
  if (g <= 1) return true;
  if (!hasFeature(features, "sparse_super")) return true;
  if (!(g & 1)) return false;
  for (const base of [3, 5, 7]) {
    let n = base;
    while (n < g) n *= base;
    if (n === g) return true;
  }
  return false;
}

/** The groups carrying backups, in the order list_backups() gives them (1, 3, 5, 7, 9, 25, 27, ...). */
export function backupGroups(features: FeatureSet, groupCount: number): number[] {
  const out: number[] = [];
  if (!hasFeature(features, "sparse_super")) {
    for (let g = 1; g < groupCount; g++) out.push(g);
    return out;
  }
  let three = 1, five = 5, seven = 7;
  for (;;) {
    let min = three, which = 3;
    if (five < min) { min = five; which = 5; }
    if (seven < min) { min = seven; which = 7; }
    if (min >= groupCount) break;
    out.push(min);
    if (which === 3) three *= 3; else if (which === 5) five *= 5; else seven *= 7;
  }
  return out;
}

const tooSmall = (why: string) => einval(`the filesystem is too small: ${why}`);

export function computeLayout(p: MkfsParams): Layout {
  const features: FeatureSet = { ...p.features };
  const bs = p.blockSize;
  const ratio = p.clusterSize / bs;
  const bigalloc = ratio > 1;
  const logClusterSize = Math.round(Math.log2(p.clusterSize / 1024));
  const firstDataBlock = logClusterSize ? 0 : 1;
  const inodeSize = p.inodeSize;

  let blocksPerGroup: number;
  let clustersPerGroup: number;
  if (bigalloc) {
    clustersPerGroup = logClusterSize + 15 < 32 ? bs * 8 : (bs - 1) * 8;
    clustersPerGroup = Math.min(clustersPerGroup, 65528);
    blocksPerGroup = clustersPerGroup * ratio;
    if (blocksPerGroup >= 2 ** 32) throw einval(`cluster size ${p.clusterSize} too large for ${bs}-byte blocks (-C)`);
  } else {
    blocksPerGroup = Math.min(bs * 8, 65528);
    clustersPerGroup = blocksPerGroup;
  }
  let blocksCount = p.blocksCount - (p.blocksCount % ratio);
  let reservedBlocks = p.reservedBlocks;
  if (reservedBlocks >= p.blocksCount) throw einval("reserved blocks (-m) exceed the filesystem");

  const descSize = hasFeature(features, "64bit") ? 64 : 32;
  const descPerBlock = bs / descSize;
  const inodesPerBlock = bs / inodeSize;
  const apb = bs / 4;

  let groupCount = 0, descBlocks = 0, inodesPerGroup = 0, inodeBlocksPerGroup = 0, reservedGdtBlocks = 0, inodesCount = 0;
  for (;;) { // ext2fs_initialize's retry
    groupCount = Math.ceil((blocksCount - firstDataBlock) / blocksPerGroup);
    if (groupCount <= 0) throw tooSmall("no block group fits");
    descBlocks = Math.ceil(groupCount / descPerBlock);
    const i = bs >= 4096 ? 1 : 4096 / bs;
    let inodes = p.inodesCount || (hasFeature(features, "64bit") && blocksCount / i >= 2 ** 32 ? 0xffffffff : Math.floor(blocksCount / i));
    if (inodes < FIRST_INO + 1) inodes = FIRST_INO + 1;
    let ipg = Math.ceil(inodes / groupCount);
    if (ipg > bs * 8) {
      if (!bigalloc && blocksPerGroup >= 256) {
        blocksPerGroup -= 8;
        clustersPerGroup = blocksPerGroup;
        blocksCount = p.blocksCount;
        continue;
      }
      throw einval(`too many inodes for ${groupCount} groups (-N, -i)`);
    }
    ipg = Math.min(ipg, 65536 - inodesPerBlock);
    for (;;) {
      inodesPerGroup = ipg;
      inodeBlocksPerGroup = Math.ceil((inodesPerGroup * inodeSize) / bs);
      inodesPerGroup = Math.floor((inodeBlocksPerGroup * bs) / inodeSize);
      if (inodesPerGroup < 8) inodesPerGroup = 8;
      inodesPerGroup &= ~7;
      inodeBlocksPerGroup = Math.ceil((inodesPerGroup * inodeSize) / bs);
      if (inodesPerGroup * groupCount > 0xffffffff) { ipg--; continue; }
      break;
    }
    inodesCount = inodesPerGroup * groupCount;

    reservedGdtBlocks = 0;
    if (hasFeature(features, "resize_inode")) {
      // calc_reserved_gdt_blocks: room to grow to 1024 times the size, within 2^32 blocks.
      let maxBlocks = 0xffffffff;
      if (blocksCount < Math.floor(maxBlocks / 1024)) maxBlocks = blocksCount * 1024;
      const rsvGroups = Math.ceil((maxBlocks - firstDataBlock) / blocksPerGroup);
      reservedGdtBlocks = Math.min(Math.max(Math.ceil(rsvGroups / descPerBlock) - descBlocks, 0), apb);
    }
    if (reservedGdtBlocks + descBlocks > Math.floor((blocksPerGroup * 3) / 4)) {
      // mke2fs switches to meta_bg here; we do not build meta_bg layouts.
      throw new Ext4Error("EOPNOTSUPP", "this size needs meta_bg group descriptors, which this mkfs does not build", { syscall: "mkfs" });
    }
    let overhead = 3 + inodeBlocksPerGroup + reservedGdtBlocks + descBlocks;
    if (overhead > blocksPerGroup) throw einval("too many inodes per group (-N, -i)");
    overhead = 2 + inodeBlocksPerGroup;
    if (bgHasSuper(features, groupCount - 1)) overhead += 1 + descBlocks + reservedGdtBlocks;
    const rem = (blocksCount - firstDataBlock) % blocksPerGroup;
    if (groupCount === 1 && rem && rem < overhead) throw tooSmall(`${rem} blocks cannot hold a group's ${overhead} blocks of metadata`);
    if (rem && rem < overhead + 50) {
      blocksCount -= rem;
      const r = (100 * p.reservedBlocks) / p.blocksCount;
      reservedBlocks = Math.floor((r * blocksCount) / 100);
      continue;
    }
    break;
  }

  const map = new BlockMap(blocksCount, firstDataBlock, blocksPerGroup, groupCount);
  const csumFlag = hasFeature(features, "metadata_csum") || hasFeature(features, "gdt_csum");
  const groupFirst = (g: number) => firstDataBlock + g * blocksPerGroup;
  const groupLast = (g: number) => (g === groupCount - 1 ? blocksCount - 1 : groupFirst(g + 1) - 1);
  const groupOf = (b: number) => Math.floor((b - firstDataBlock) / blocksPerGroup);
  const groups: GroupLayout[] = [];
  /** Groups that got a block through the allocator (BLOCK_UNINIT cleared, as ext2fs_block_alloc_stats does). */
  const touched = new Uint8Array(groupCount);
  let freeAfterInit = 0; // super->s_free_blocks_count after initialize (-J size= is checked against half of it)
  for (let g = 0; g < groupCount; g++) {
    const first = groupFirst(g);
    const blocks = groupLast(g) - first + 1;
    const hasSuper = bgHasSuper(features, g);
    const sbBlk = g === 0 && first === 0 && bs === 1024 ? 1 : first;
    if (hasSuper) {
      map.mark(sbBlk);
      map.mark(sbBlk + 1, Math.min(descBlocks + reservedGdtBlocks, blocksCount - (sbBlk + 1)));
    }
    if (g === 0 && bs === 1024 && ratio > 1) map.mark(0);
    const used = hasSuper ? 1 + descBlocks + reservedGdtBlocks : 0;
    freeAfterInit += blocks - used - (p.logGroupsPerFlex ? 0 : 2 + inodeBlocksPerGroup);
    groups.push({
      first, blocks, hasSuper, blockBitmap: 0, inodeBitmap: 0, inodeTable: 0,
      flags: csumFlag ? (g !== groupCount - 1 ? BG_FLAGS.BLOCK_UNINIT : 0) | BG_FLAGS.INODE_UNINIT : 0,
      itableUnused: 0, freeClusters: 0, freeInodes: inodesPerGroup, usedDirs: 0,
    });
  }
  freeAfterInit -= freeAfterInit % ratio;

  allocateTables(p, groups, map, { groupCount, groupFirst, groupLast, groupOf, inodeBlocksPerGroup, blocksPerGroup, blocksCount, touched });

  if (bigalloc) clusterize(map, ratio, blocksCount);
  const overheadBase = map.countUsed(firstDataBlock, blocksCount - 1) / ratio;

  /** ext2fs_new_block2: first free cluster at or after goal, wrapping once. */
  const newBlock = (goal: number): number => {
    if (!goal || goal >= blocksCount) goal = firstDataBlock;
    goal -= goal % ratio;
    let b = map.findFirstZero(goal, blocksCount - 1);
    if (b < 0 && goal !== firstDataBlock) b = map.findFirstZero(firstDataBlock, goal - 1);
    if (b < 0) throw tooSmall("no free block for the root directory, lost+found or the journal");
    return b;
  };
  const claim = (b: number, n = 1): void => {
    const start = b - (b % ratio);
    const end = Math.ceil((b + n) / ratio) * ratio;
    map.mark(start, Math.min(end, blocksCount) - start);
    for (let g = groupOf(start); g <= groupOf(Math.min(end, blocksCount) - 1); g++) touched[g] = 1;
  };
  const flexGroupGoal = (ino: number) => {
    let g = Math.floor((ino - 1) / inodesPerGroup);
    if (p.logGroupsPerFlex) g &= ~((1 << p.logGroupsPerFlex) - 1);
    return groupFirst(g);
  };

  // Root directory (never inline: its inode is below s_first_ino).
  const rootBlk = newBlock(flexGroupGoal(ROOT_INO));
  claim(rootBlk);
  const root: FileLayout = { ino: ROOT_INO, extents: [{ lblk: 0, len: 1, pblk: rootBlk }], leafBlock: 0, allocatedBlocks: ratio };

  // lost+found: 16 KiB or more, at least two blocks, at most the 12 direct blocks (create_lost_and_found).
  // With inline_data it starts inline, and the first expansion only moves it to one block.
  let lpfBlocks = hasFeature(features, "inline_data") ? 0 : 1;
  for (let i = 1, size = 0; i < 12; i++) {
    size += bs;
    if (size >= 16384 && size >= 2 * bs) break;
    lpfBlocks++;
  }
  const lpfFirst = newBlock(flexGroupGoal(LOST_FOUND_INO));
  claim(lpfFirst);
  const lpfExtents: Extent[] = [{ lblk: 0, len: 1, pblk: lpfFirst }];
  let lpfAllocated = ratio;
  for (let l = 1; l < lpfBlocks; l++) {
    const last = lpfExtents[lpfExtents.length - 1];
    const prev = last.pblk + last.len - 1;
    let b: number;
    if (ratio > 1 && (prev + 1) % ratio !== 0) b = prev + 1; // the rest of the cluster is the file's already
    else { b = newBlock(prev + 1); claim(b); lpfAllocated += ratio; }
    if (b === prev + 1) last.len++;
    else lpfExtents.push({ lblk: l, len: 1, pblk: b });
  }
  const lostFound: FileLayout = { ino: LOST_FOUND_INO, extents: lpfExtents, leafBlock: 0, allocatedBlocks: lpfAllocated };
  if (lpfExtents.length > INODE_EXTENTS_IN_ROOT) throw new Ext4Error("EOPNOTSUPP", "lost+found would need an extent tree", { syscall: "mkfs" });

  // Resize inode: its double indirect block, near the group 0 tables.
  let resize: Layout["resize"];
  if (hasFeature(features, "resize_inode")) {
    // Made even with no reserved GDT blocks (64 KiB blocks): then it holds only its dind block.
    const sbBlk = firstDataBlock === 0 && bs === 1024 ? 1 : firstDataBlock;
    const dind = newBlock(sbBlk + descBlocks + reservedGdtBlocks + 2 + inodeBlocksPerGroup);
    claim(dind);
    // ext2fs_iblk_add_blocks counts each block as a whole cluster.
    resize = { dind, allocatedBlocks: (1 + reservedGdtBlocks * (1 + backupGroups(features, groupCount).length)) * ratio };
  }

  // Journal: contiguous runs from the goal (ext2fs_fallocate), extents of at most 32768 blocks.
  let journal: Layout["journal"];
  let journalBlocks = 0;
  if (hasFeature(features, "has_journal")) {
    journalBlocks = p.journalExplicit ? p.journalBlocks : Math.max(defaultJournalBlocks(blocksCount), 0);
    if (p.journalExplicit && journalBlocks > freeAfterInit / 2) throw einval(`the journal (-J size=) is too big for the filesystem: ${journalBlocks} blocks`);
    if (journalBlocks === 0) {
      // Too small for a journal: mke2fs drops it (and the orphan file with it).
      setFeature(features, "has_journal", false);
      setFeature(features, "orphan_file", false);
    }
  }
  const freeInGroup = (g: number) => (groups[g].blocks - map.countUsed(groups[g].first, groups[g].first + groups[g].blocks - 1)) / ratio;
  if (journalBlocks > 0) {
    let goal = midpointJournalGoal();
    const z = map.findFirstZero(goal, blocksCount - 1);
    if (z >= 0) goal = z;
    journal = { ...fallocate(JOURNAL_INO, goal, journalBlocks), blocks: journalBlocks };
  }

  function midpointJournalGoal(): number {
    let group = groupOf(Math.floor((blocksCount - firstDataBlock) / 2));
    const logFlex = 1 << p.logGroupsPerFlex;
    let start: number;
    if (p.logGroupsPerFlex && group > logFlex) {
      group &= ~(logFlex - 1);
      while (group < groupCount && freeInGroup(group) === 0) group++;
      if (group === groupCount) group = 0;
      start = group;
    } else start = group > 0 ? group - 1 : group;
    const end = group + 1 < groupCount ? group + 1 : group;
    group = start;
    for (let i = start + 1; i <= end; i++) if (freeInGroup(i) > freeInGroup(group)) group = i;
    return groupFirst(group);
  }

  function fallocate(ino: number, goal: number, len: number): FileLayout {
    if (!hasFeature(features, "extent")) return indirectFile(ino, flexGroupGoal(ino), len);
    const extents: Extent[] = [];
    let leafBlock = 0;
    let allocated = 0;
    let pblk = goal - (goal % ratio);
    let lblk = 0;
    while (lblk < len) {
      const want = Math.min(len - lblk, MAX_INIT_LEN);
      let start = map.findFirstZero(pblk, blocksCount - 1);
      if (start < 0) start = map.findFirstZero(firstDataBlock, blocksCount - 1);
      if (start < 0) throw tooSmall("no room for the journal");
      const used = map.findFirstSet(start, Math.min(start + want - 1, blocksCount - 1));
      const end = used < 0 ? Math.min(start + want, blocksCount) : used;
      const plen = end - start;
      claim(start, plen);
      allocated += Math.ceil(plen / ratio) * ratio;
      extents.push({ lblk, len: plen, pblk: start });
      if (extents.length === INODE_EXTENTS_IN_ROOT + 1) {
        // The root is full: extent_node_split moves it to a leaf placed just before the first extent.
        let g = extents[0].pblk - ratio;
        g -= g % ratio;
        leafBlock = newBlock(g);
        claim(leafBlock);
        allocated += ratio;
      }
      lblk += plen;
      pblk = start + plen;
      if (pblk >= blocksCount) pblk = firstDataBlock;
    }
    if (extents.length > (bs - 12) / 12) throw new Ext4Error("EOPNOTSUPP", `inode ${ino} would need more than one extent leaf`, { syscall: "mkfs" });
    return { ino, extents, leafBlock, allocatedBlocks: allocated };
  }

  function indirectFile(ino: number, goal: number, len: number): FileLayout {
    // Block-mapped (no extent feature): data and indirect blocks in file order, as ext2fs_bmap allocates them.
    const extents: Extent[] = [];
    let allocated = 0;
    let next = goal;
    const take = (): number => {
      const b = newBlock(next);
      claim(b);
      allocated++;
      next = b + 1;
      return b;
    };
    const meta: number[] = [];
    const data = (lblk: number) => {
      const b = take();
      const last = extents[extents.length - 1];
      if (last && last.pblk + last.len === b && last.lblk + last.len === lblk) last.len++;
      else extents.push({ lblk, len: 1, pblk: b });
    };
    const apb = bs / 4;
    for (let l = 0; l < len; l++) {
      // ext2fs_bmap allocates the indirect block before the data block it maps.
      if (l === 12) meta.push(take());
      else if (l === 12 + apb) { meta.push(take()); meta.push(take()); }
      else if (l > 12 + apb && l < 12 + apb + apb * apb && (l - 12 - apb) % apb === 0) meta.push(take());
      else if (l >= 12 + apb + apb * apb) throw new Ext4Error("EOPNOTSUPP", "journal too large for a block-mapped inode", { syscall: "mkfs" });
      data(l);
    }
    return { ino, extents, leafBlock: 0, allocatedBlocks: allocated, indirect: meta };
  }

  // Orphan file: inode 12, blocks from the start of the filesystem (block_iterate APPEND with goal 0).
  let orphan: Layout["orphan"];
  let lastIno = FIRST_INO;
  if (hasFeature(features, "orphan_file")) {
    let n = p.orphanFileBlocks;
    if (!n) {
      n = blocksCount < 128 * 1024 ? 32 : blocksCount < 2 * 1024 * 1024 ? Math.floor(blocksCount / 4096) : 512;
      n = Math.ceil(n / ratio) * ratio;
    }
    const ino = FIRST_INO + 1;
    lastIno = ino;
    const extents: Extent[] = [];
    let last = 0;
    let allocated = 0;
    for (let l = 0; l < n; l++) {
      let b: number;
      if (l && ratio > 1 && Math.floor(last / ratio) === Math.floor((last + 1) / ratio)) b = last + 1;
      else { b = newBlock(last); claim(b); allocated += ratio; }
      const e = extents[extents.length - 1];
      if (e && e.pblk + e.len === b && e.len < MAX_INIT_LEN) e.len++;
      else extents.push({ lblk: l, len: 1, pblk: b });
      last = b;
    }
    if (extents.length > INODE_EXTENTS_IN_ROOT) throw new Ext4Error("EOPNOTSUPP", "the orphan file would need an extent tree", { syscall: "mkfs" });
    orphan = { ino, extents, leafBlock: 0, allocatedBlocks: allocated, blocks: n };
  }

  // Group summaries, from the map: what ext2fs's alloc_stats bookkeeping amounts to.
  let freeBlocks = 0;
  for (let g = 0; g < groupCount; g++) {
    const gl = groups[g];
    gl.freeClusters = (gl.blocks - map.countUsed(gl.first, gl.first + gl.blocks - 1)) / ratio;
    freeBlocks += gl.freeClusters * ratio;
    if (csumFlag && touched[g]) gl.flags &= ~BG_FLAGS.BLOCK_UNINIT;
    const firstIno = g * inodesPerGroup + 1;
    const usedHere = Math.max(0, Math.min(lastIno, firstIno + inodesPerGroup - 1) - firstIno + 1);
    gl.freeInodes = inodesPerGroup - usedHere;
    if (csumFlag) {
      gl.itableUnused = inodesPerGroup - usedHere;
      if (usedHere) gl.flags &= ~BG_FLAGS.INODE_UNINIT;
    }
    if (!p.lazyItableInit) gl.flags |= BG_FLAGS.INODE_ZEROED;
  }
  groups[Math.floor((ROOT_INO - 1) / inodesPerGroup)].usedDirs++;
  groups[Math.floor((LOST_FOUND_INO - 1) / inodesPerGroup)].usedDirs++;

  return {
    p, features, blockSize: bs, clusterRatio: ratio, logClusterSize, blocksCount, reservedBlocks, firstDataBlock,
    blocksPerGroup, clustersPerGroup, groupCount, descSize, descBlocks, reservedGdtBlocks, inodesPerGroup, inodesCount,
    inodeBlocksPerGroup, logGroupsPerFlex: p.logGroupsPerFlex, csumFlag, groups, map,
    overheadClusters: overheadBase + Math.ceil(journalBlocks / ratio) + firstDataBlock,
    freeBlocks, freeInodes: inodesCount - lastIno, lastIno, root, lostFound, resize, journal, orphan,
  };
}

interface GroupGeom {
  groupCount: number;
  groupFirst(g: number): number;
  groupLast(g: number): number;
  groupOf(b: number): number;
  inodeBlocksPerGroup: number;
  blocksPerGroup: number;
  blocksCount: number;
  touched: Uint8Array;
}

/** ext2fs_allocate_tables / ext2fs_allocate_group_table, flex_bg packing included. */
function allocateTables(p: MkfsParams, groups: GroupLayout[], map: BlockMap, geo: GroupGeom): void {
  const flexSize = p.logGroupsPerFlex ? 1 << p.logGroupsPerFlex : 0;
  const ipb = geo.inodeBlocksPerGroup;
  const noSpace = () => einval("the filesystem is too small for its group tables");

  const flexbgOffset = (group: number, startBlk: number, remGrp: number, elemSize: number): number => {
    const flexbg = Math.floor(group / flexSize);
    let size = remGrp * elemSize;
    if (size > Math.floor(geo.blocksPerGroup / 4)) size = Math.floor(geo.blocksPerGroup / 4);
    if (startBlk && startBlk < geo.blocksCount) {
      const b = map.getFreeBlocks(startBlk, startBlk + size, elemSize);
      if (b >= 0) return b;
    }
    const start = geo.groupFirst(flexSize * flexbg);
    const lastGrp = Math.min(group | (flexSize - 1), geo.groupCount - 1);
    const lastBlk = geo.groupLast(lastGrp);
    for (const [s, n] of [[start, size], [start, elemSize], [0, elemSize]] as const) {
      const b = map.getFreeBlocks(s, lastBlk, n);
      if (b >= 0) return b;
    }
    return 0;
  };
  const take = (b: number, n: number, flex: boolean): void => {
    map.mark(b, n);
    if (flex) for (let g = geo.groupOf(b); g <= geo.groupOf(b + n - 1); g++) geo.touched[g] = 1;
  };

  for (let group = 0; group < geo.groupCount; group++) {
    const gl = groups[group];
    let groupBlk = geo.groupFirst(group);
    let lastBlk = geo.groupLast(group);
    let lastGrp = 0, remGrps = 0, tableOffset = 0;
    if (flexSize) {
      lastGrp = Math.min(group | (flexSize - 1), geo.groupCount - 1);
      remGrps = lastGrp - group + 1;
    }
    let startBlk = groupBlk;
    if (flexSize) {
      let prev = 0;
      tableOffset = flexSize;
      if (group % flexSize) prev = groups[group - 1].blockBitmap + 1;
      else if (lastGrp === geo.groupCount - 1) {
        // The last flex group keeps its tables contiguous.
        tableOffset = lastGrp & (flexSize - 1);
        tableOffset = tableOffset === 0 ? flexSize : tableOffset + 1;
      }
      startBlk = flexbgOffset(group, prev, remGrps, 1);
      lastBlk = geo.groupLast(lastGrp);
    }
    let b = map.getFreeBlocks(startBlk, lastBlk, 1);
    if (b < 0) b = map.getFreeBlocks(groupBlk, lastBlk, 1);
    if (b < 0) throw noSpace();
    take(b, 1, flexSize > 0);
    gl.blockBitmap = b;

    if (flexSize) {
      const prev = group % flexSize ? groups[group - 1].inodeBitmap + 1 : gl.blockBitmap + tableOffset;
      startBlk = flexbgOffset(group, prev, remGrps, 1);
      lastBlk = geo.groupLast(lastGrp);
    }
    b = map.getFreeBlocks(startBlk, lastBlk, 1);
    if (b < 0) b = map.getFreeBlocks(groupBlk, lastBlk, 1);
    if (b < 0) throw noSpace();
    take(b, 1, flexSize > 0);
    gl.inodeBitmap = b;

    if (flexSize) {
      const prev = group % flexSize ? groups[group - 1].inodeTable + ipb : gl.inodeBitmap + tableOffset;
      groupBlk = flexbgOffset(group, prev, remGrps, ipb);
      lastBlk = geo.groupLast(lastGrp);
    }
    b = map.getFreeBlocks(groupBlk, lastBlk, ipb);
    if (b < 0) throw noSpace();
    take(b, ipb, flexSize > 0);
    gl.inodeTable = b;
  }
}

/** ext2fs_convert_subcluster_bitmap: a cluster with any used block is used. */
function clusterize(map: BlockMap, ratio: number, blocksCount: number): void {
  let b = 0;
  for (;;) {
    const s = map.findFirstSet(b, blocksCount - 1);
    if (s < 0) return;
    const z = map.findFirstZero(s, blocksCount - 1);
    const end = z < 0 ? blocksCount : z;
    const cs = s - (s % ratio);
    const ce = Math.min(Math.ceil(end / ratio) * ratio, blocksCount);
    map.mark(cs, ce - cs);
    b = ce;
    if (b >= blocksCount) return;
  }
}
