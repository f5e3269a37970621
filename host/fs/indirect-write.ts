// Block-mapped (ext2/ext3) files written: allocation through direct, single,
// double and triple indirect blocks (ext4_ind_map_blocks with create,
// ext4_alloc_branch, ext4_splice_branch) and removal of a range
// (ext4_ind_truncate, ext4_ind_remove_space). Indirect blocks change through
// the handle; the i_block slots by markInodeDirty.

import { corrupted, Ext4Error } from "../errors.js";
import { ext4Error } from "./ext4-error.js";
import { setU32, u32 } from "../format/bytes.js";
import type { Inode } from "../format/inode.js";
import type { Handle } from "../journal/handle.js";
import { extentSeq, extentsChanged } from "./extents.js";
import { ES } from "./extents-status.js";
import { markInodeDirty } from "./inode-write.js";
import { ALLOC, defaultFreeFlags, freeBlocks, goalForInode, newBlocks } from "./mballoc.js";
import type { Ext4 } from "./super.js";

const DIRECT = 12;
/** MAP.* values (map-blocks.ts owns them; repeated here so the layers stay one way). */
const MAP_NEW = 1 << 0;
const MAP_MAPPED = 1 << 1;
const MAP_BOUNDARY = 1 << 3;

/** ext4_block_to_path: the slot in i_block, then the offset at each indirect level. */
export function blockToPath(fs: Ext4, inode: Inode, lblk: number): number[] {
  const per = fs.sb.blockSize / 4;
  let rel = lblk;
  if (rel < DIRECT) return [rel];
  if ((rel -= DIRECT) < per) return [12, rel];
  if ((rel -= per) < per * per) return [13, Math.floor(rel / per), rel % per];
  if ((rel -= per * per) < per * per * per) return [14, Math.floor(rel / (per * per)), Math.floor(rel / per) % per, rel % per];
  throw new Ext4Error("EFBIG", `logical block ${lblk} is past the largest a block-mapped file maps`, { ino: inode.ino });
}

/** Does a mapping that ends just before `endLblk` reach the last pointer of its container (EXT4_MAP_BOUNDARY)? */
export function indBoundary(fs: Ext4, endLblk: number): boolean {
  const per = fs.sb.blockSize / 4;
  if (endLblk <= DIRECT) return endLblk === DIRECT;
  const bases = [DIRECT, DIRECT + per, DIRECT + per + per * per];
  let base = bases[0];
  for (const b of bases) if (endLblk > b) base = b;
  return (endLblk - base) % per === 0;
}

interface Link {
  /** Indirect block holding the pointer; undefined: the pointer is in i_block. */
  container: number | undefined;
  offset: number;
  value: number;
}

function checkPtr(fs: Ext4, inode: Inode, b: number, container: number | undefined): number {
  if (b !== 0 && (b <= fs.sb.firstDataBlock || b >= fs.sb.blocksCount)) {
    ext4Error(fs, corrupted(`block pointer ${b} outside the filesystem`, { ino: inode.ino, block: container }), "ext4_ind_map_blocks");
  }
  return b;
}

/** ext4_get_branch: the chain of pointers down to lblk's, stopping at the first zero. */
function getBranch(fs: Ext4, inode: Inode, offsets: number[]): Link[] {
  const chain: Link[] = [];
  let container: number | undefined;
  for (let i = 0; i < offsets.length; i++) {
    const value = container === undefined
      ? u32(inode.iBlock, offsets[i] * 4)
      : u32(fs.bcache.read(container, "indirect block"), offsets[i] * 4);
    chain.push({ container, offset: offsets[i], value: checkPtr(fs, inode, value, container) });
    if (value === 0) break;
    container = value;
  }
  return chain;
}

/** A pointer changed in its container: the indirect block through the handle, i_block with the inode. */
function setPointer(handle: Handle, fs: Ext4, inode: Inode, container: number | undefined, offset: number, values: number[]): void {
  if (container === undefined) {
    for (let k = 0; k < values.length; k++) setU32(inode.iBlock, (offset + k) * 4, values[k]);
    markInodeDirty(handle, fs, inode);
    return;
  }
  const bh = fs.bcache.bread(container, "indirect block");
  try {
    handle.getWriteAccess(bh);
    const b = bh.data;
    for (let k = 0; k < values.length; k++) setU32(b, (offset + k) * 4, values[k]);
    handle.dirtyMetadata(bh);
  } finally {
    fs.bcache.brelse(bh);
  }
}

/** ext4_find_near: the nearest block before this pointer in its container, or the container itself. */
function findNear(fs: Ext4, inode: Inode, link: Link, lblk: number): number {
  const b = link.container === undefined ? inode.iBlock : fs.bcache.read(link.container, "indirect block");
  for (let k = link.offset - 1; k >= 0; k--) {
    const v = u32(b, k * 4);
    if (v !== 0) return v;
  }
  return link.container ?? goalForInode(fs, inode, lblk);
}

/**
 * ext4_ind_map_blocks with EXT4_GET_BLOCKS_CREATE: a mapped block answers as
 * the read path does; a hole gets its missing indirect blocks and a run of
 * data blocks (up to the end of the indirect block and the run of holes
 * there), spliced in once everything below is written.
 */
export function indMapBlocksCreate(handle: Handle, fs: Ext4, inode: Inode, map: { lblk: number; len: number }): { lblk: number; len: number; pblk: number; flags: number; seq: number } {
  const { lblk } = map;
  const offsets = blockToPath(fs, inode, lblk);
  const depth = offsets.length;
  const chain = getBranch(fs, inode, offsets);
  const per = fs.sb.blockSize / 4;
  const final = depth === 1 ? DIRECT : per;
  const last = offsets[depth - 1];
  if (chain.length === depth && chain[depth - 1].value !== 0) {
    // Mapped: count the contiguous run in the same container.
    const first = chain[depth - 1];
    const b = first.container === undefined ? inode.iBlock : fs.bcache.read(first.container, "indirect block");
    let n = 1;
    while (last + n < final && n < map.len && u32(b, (last + n) * 4) === first.value + n) n++;
    return { lblk, len: n, pblk: first.value, flags: MAP_MAPPED | (last + n >= final ? MAP_BOUNDARY : 0), seq: extentSeq(inode) };
  }
  // Missing from chain.length - 1 down: indirect blocks for the levels below the first zero, then data.
  const missingInd = depth - chain.length;
  // ext4_blks_to_allocate: with indirect blocks missing, the whole rest of the new block is free;
  // else as many zero pointers as follow in the existing container.
  let count = Math.min(map.len, final - last);
  if (missingInd === 0) {
    const link = chain[depth - 1];
    const b = link.container === undefined ? inode.iBlock : fs.bcache.read(link.container, "indirect block");
    let n = 1;
    while (n < count && u32(b, (last + n) * 4) === 0) n++;
    count = n;
  }
  const top = chain[chain.length - 1];
  extentsChanged(inode, lblk, count, 0, 0); // forgotten until spliced in: a failure part-way leaves no stale hole
  let goal = findNear(fs, inode, top, lblk);
  const ind: number[] = [];
  let data: { pblk: number; len: number };
  try {
    for (let i = 0; i < missingInd; i++) {
      const r = newBlocks(handle, fs, { inode, goal, len: 1, flags: ALLOC.METADATA });
      ind.push(r.pblk);
      goal = r.pblk + 1;
    }
    data = newBlocks(handle, fs, { inode, goal, len: count, flags: ALLOC.DATA });
  } catch (e) {
    for (const b of ind) freeBlocks(handle, fs, inode, b, 1, { metadata: true });
    markInodeDirty(handle, fs, inode);
    throw e;
  }
  // ext4_alloc_branch: each new indirect block points to the next, the last to the data run.
  for (let i = 0; i < missingInd; i++) {
    const bh = fs.bcache.getblk(ind[i], "indirect block");
    try {
      handle.getCreateAccess(bh);
      const b = bh.data;
      b.fill(0);
      const slot = offsets[chain.length + i];
      if (i + 1 < missingInd) setU32(b, slot * 4, ind[i + 1]);
      else for (let k = 0; k < data.len; k++) setU32(b, (slot + k) * 4, data.pblk + k);
      handle.dirtyMetadata(bh);
    } finally {
      fs.bcache.brelse(bh);
    }
  }
  fs.bcache.forgetRange(data.pblk, data.len);
  // ext4_splice_branch: the new branch joins the tree last.
  const runs = missingInd > 0 ? [ind[0]] : Array.from({ length: data.len }, (_, k) => data.pblk + k);
  setPointer(handle, fs, inode, top.container, top.offset, runs);
  markInodeDirty(handle, fs, inode);
  const seq = extentsChanged(inode, lblk, data.len, data.pblk, ES.WRITTEN);
  return { lblk, len: data.len, pblk: data.pblk, flags: MAP_NEW | MAP_MAPPED | (last + data.len >= final ? MAP_BOUNDARY : 0), seq };
}

/**
 * ext4_ind_remove_space / ext4_ind_truncate: frees the blocks of logical
 * [start, end] (inclusive) and every indirect block left without pointers,
 * zeroing the pointers to them. A pointer is zeroed in the same transaction
 * that frees what it pointed to, and the handle is extended or restarted only
 * between indirect blocks of data pointers (ext4_ind_truncate_ensure_credits),
 * so every transaction boundary leaves a tree whose pointers all lead to
 * allocated blocks.
 */
export function indRemoveSpace(handle: Handle, fs: Ext4, inode: Inode, start: number, end: number): void {
  const per = fs.sb.blockSize / 4;
  const maxBlocks = DIRECT + per + per * per + per * per * per;
  end = Math.min(end, maxBlocks - 1);
  if (end < start) return;
  // What was cached of the range goes first: freeing part-way may restart the handle, which may run writeback.
  extentsChanged(inode, start, end - start + 1, 0, 0);
  // Direct blocks.
  const direct = new RunFreer(handle, fs, inode, (slots) => {
    for (const k of slots) setU32(inode.iBlock, k * 4, 0);
    markInodeDirty(handle, fs, inode);
  });
  for (let s = Math.max(start, 0); s <= Math.min(end, DIRECT - 1); s++) {
    const v = checkPtr(fs, inode, u32(inode.iBlock, s * 4), undefined);
    if (v) direct.add(s, v);
  }
  direct.flush();
  // The three trees: [base, base + span) each.
  let base = DIRECT;
  for (let level = 1; level <= 3; level++) {
    const span = per ** level;
    if (end >= base && start < base + span) {
      const slot = 11 + level;
      const v = checkPtr(fs, inode, u32(inode.iBlock, slot * 4), undefined);
      if (v && freeSubtree(handle, fs, inode, v, level, Math.max(start, base) - base, Math.min(end, base + span - 1) - base)) {
        setU32(inode.iBlock, slot * 4, 0);
        markInodeDirty(handle, fs, inode);
      }
    }
    base += span;
  }
  markInodeDirty(handle, fs, inode);
  extentsChanged(inode, start, end - start + 1, 0, ES.HOLE);
}

/**
 * ext4_ind_truncate_ensure_credits: `n` more credits, or a new transaction;
 * the closing one carries the inode as its frees left it (i_blocks).
 */
function ensureCredits(handle: Handle, fs: Ext4, inode: Inode, n: number): void {
  if (handle.extend(n)) return;
  markInodeDirty(handle, fs, inode);
  // The new handle also covers what the caller does after the removal (the inode, the orphan entry).
  handle.restart(n + RESTART_SLACK);
}

/** Credits a restarted handle keeps beyond the step that asked (ext4_blocks_for_truncate's base, roughly). */
const RESTART_SLACK = 8;

/** A bitmap and a descriptor per group a run of blocks touches. */
function groupsCost(fs: Ext4, pblk: number, len: number): number {
  const per = fs.sb.blocksPerGroup;
  return 2 * (Math.floor((pblk + len - 1 - fs.sb.firstDataBlock) / per) - Math.floor((pblk - fs.sb.firstDataBlock) / per) + 1);
}

/**
 * Frees [lo, hi] (offsets within the subtree) of the indirect block `blk` at
 * `level` (1: its pointers are data). Returns true when [lo, hi] is its whole
 * span: then it is freed and the caller zeroes its pointer.
 */
function freeSubtree(handle: Handle, fs: Ext4, inode: Inode, blk: number, level: number, lo: number, hi: number): boolean {
  const per = fs.sb.blockSize / 4;
  const span = per ** (level - 1);
  const bh = fs.bcache.bread(blk, "indirect block");
  try {
    const first = Math.floor(lo / span);
    const lastSlot = Math.floor(hi / span);
    if (level === 1) {
      const data = new RunFreer(handle, fs, inode, (slots) => {
        handle.getWriteAccess(bh);
        for (const k of slots) setU32(bh.data, k * 4, 0);
        handle.dirtyMetadata(bh);
      });
      for (let k = first; k <= lastSlot; k++) {
        const v = checkPtr(fs, inode, u32(bh.data, k * 4), blk);
        if (v) data.add(k, v);
      }
      data.flush();
    } else {
      for (let k = first; k <= lastSlot; k++) {
        const v = checkPtr(fs, inode, u32(bh.data, k * 4), blk);
        if (!v) continue;
        const subLo = Math.max(lo, k * span) - k * span;
        const subHi = Math.min(hi, k * span + span - 1) - k * span;
        if (freeSubtree(handle, fs, inode, v, level - 1, subLo, subHi)) {
          // Zeroed in the transaction that freed the child: a restart after this sees no dangling pointer.
          handle.getWriteAccess(bh);
          setU32(bh.data, k * 4, 0);
          handle.dirtyMetadata(bh);
        }
      }
    }
  } finally {
    fs.bcache.brelse(bh);
  }
  // As ext4_free_branches: the block goes only with its whole span; one the range only
  // partly covers stays, even emptied (the kernel's punch leaves it, e2fsck accepts it).
  if (lo !== 0 || hi !== per * span - 1) return false;
  // Its bitmap and descriptor, the revoke, and the parent's pointer.
  ensureCredits(handle, fs, inode, 2 + 1 + 2);
  freeBlocks(handle, fs, inode, blk, 1, { metadata: true });
  return true;
}

/**
 * ext4_free_data / ext4_clear_blocks: data blocks freed per contiguous run;
 * before each run its credits are ensured (a restart may come between
 * runs), then the run's pointers are zeroed (`zero`) and its blocks freed in
 * the same transaction, so no transaction boundary leaves a pointer to a
 * freed block.
 */
class RunFreer {
  private pblk = 0;
  private len = 0;
  private slots: number[] = [];
  constructor(private readonly handle: Handle, private readonly fs: Ext4, private readonly inode: Inode, private readonly zero: (slots: number[]) => void) {}
  add(slot: number, b: number): void {
    if (this.len && b === this.pblk + this.len) {
      this.len++;
      this.slots.push(slot);
      return;
    }
    this.flush();
    this.pblk = b;
    this.len = 1;
    this.slots = [slot];
  }
  flush(): void {
    if (!this.len) return;
    // The run's groups, the pointer's block, the inode.
    ensureCredits(this.handle, this.fs, this.inode, groupsCost(this.fs, this.pblk, this.len) + 2);
    this.zero(this.slots);
    freeBlocks(this.handle, this.fs, this.inode, this.pblk, this.len, defaultFreeFlags(this.inode, this.fs));
    this.len = 0;
  }
}
