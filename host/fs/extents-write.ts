// Extent tree changes (fs/ext4/extents.c): insert with merge into the
// neighbours, leaf and index splits, growing the tree in depth when the root
// is full and shrinking it when it empties, splitting an extent at a block,
// switching a range between written and unwritten, and removing a range
// (truncate, punch). Every node change goes through the handle: an extent
// block by write access, the edit, its checksum tail, dirty metadata; the
// root in i_block by markInodeDirty. Paths come from findExtent (extents.ts)
// and are walked again after every structural change, so no step works on a
// stale view of the tree.

import { BH } from "../cache/buffer-head.js";
import { corrupted, Ext4Error } from "../errors.js";
import { ext4Error, onCorruption } from "./ext4-error.js";
import { setU16, setU32, u16, u32 } from "../format/bytes.js";
import { EXTENT_MAGIC, extentTailOffset, indexAt, leafAt, type LeafExtent } from "../format/extent.js";
import type { Inode } from "../format/inode.js";
import type { Handle } from "../journal/handle.js";
import { bumpExtentSeq, extentsChanged, extentTreeChanged, type ExtPath, type ExtPathLevel, findExtent, pathNode, releasePath } from "./extents.js";
import { ES } from "./extents-status.js";
import { markInodeDirty } from "./inode-write.js";
import { ALLOC, defaultFreeFlags, freeBlocks, goalForInode, newMetaBlock } from "./mballoc.js";
import type { Ext4 } from "./super.js";

export type Extent = LeafExtent;

/** ee_len limits: a written extent up to 32768 blocks, an unwritten one (length with the high bit) up to 32767. */
export const EXT_INIT_MAX_LEN = 32768;
export const EXT_UNWRITTEN_MAX_LEN = 32767;
/** Entries of the root node in i_block (60 bytes: header + 4). */
export const EXT_ROOT_MAX = 4;
/** Largest logical block + 1 (EXT_MAX_BLOCKS). */
export const EXT_MAX_BLOCKS = 0xffffffff;
const MAX_DEPTH = 5;

export interface TreeOptions {
  /** Metadata blocks for splits may use the reserved pool (EXT4_GET_BLOCKS_METADATA_NOFAIL). */
  nofail?: boolean;
}

// ---- node bytes ----

const entriesOf = (node: Uint8Array) => u16(node, 2);
const maxOf = (node: Uint8Array) => u16(node, 4);
const depthOf = (node: Uint8Array) => u16(node, 6);
const entryOff = (i: number) => 12 + i * 12;

function writeLeaf(node: Uint8Array, i: number, e: Extent): void {
  const o = entryOff(i);
  setU32(node, o, e.lblk);
  setU16(node, o + 4, e.unwritten ? e.len + EXT_INIT_MAX_LEN : e.len);
  setU16(node, o + 6, Math.floor(e.pblk / 0x100000000));
  setU32(node, o + 8, e.pblk >>> 0);
}

function writeIndex(node: Uint8Array, i: number, lblk: number, child: number): void {
  const o = entryOff(i);
  setU32(node, o, lblk);
  setU32(node, o + 4, child >>> 0);
  setU16(node, o + 8, Math.floor(child / 0x100000000));
  setU16(node, o + 10, 0);
}

function initHeader(node: Uint8Array, max: number, depth: number): void {
  setU16(node, 0, EXTENT_MAGIC);
  setU16(node, 2, 0);
  setU16(node, 4, max);
  setU16(node, 6, depth);
  setU32(node, 8, 0);
}

/** Entries of an extent block: ext4_ext_space_block. */
export const blockCapacity = (fs: Ext4) => Math.floor((fs.sb.blockSize - 12) / 12);

/** Removes entries [from, to) of a node, closing the gap; the freed slots are zeroed. */
function dropEntries(node: Uint8Array, from: number, to: number): void {
  const n = entriesOf(node);
  node.copyWithin(entryOff(from), entryOff(to), entryOff(n));
  node.fill(0, entryOff(n - (to - from)), entryOff(n));
  setU16(node, 2, n - (to - from));
}

/** Opens a slot at i (entries from i move right by one). */
function openSlot(node: Uint8Array, i: number): void {
  const n = entriesOf(node);
  node.copyWithin(entryOff(i + 1), entryOff(i), entryOff(n));
  setU16(node, 2, n + 1);
}

export function canMerge(a: Extent, b: Extent): boolean {
  if (a.unwritten !== b.unwritten) return false;
  if (a.lblk + a.len !== b.lblk || a.pblk + a.len !== b.pblk) return false;
  return a.len + b.len <= (a.unwritten ? EXT_UNWRITTEN_MAX_LEN : EXT_INIT_MAX_LEN);
}

// ---- the handle seam for nodes ----

function getAccess(handle: Handle, level: ExtPathLevel): void {
  if (level.bh) handle.getWriteAccess(level.bh);
}

/** ext4_ext_dirty: a block gets its checksum tail and joins the handle; the root goes with the inode. */
function dirtyNode(handle: Handle, fs: Ext4, inode: Inode, level: ExtPathLevel): void {
  if (!level.bh) {
    markInodeDirty(handle, fs, inode);
    return;
  }
  setExtentTail(fs, inode, level.bh.data);
  handle.dirtyMetadata(level.bh);
}

function setExtentTail(fs: Ext4, inode: Inode, b: Uint8Array): void {
  if (!fs.metadataCsum) return;
  const tail = extentTailOffset(maxOf(b));
  setU32(b, tail, fs.csum.extentBlock(fs.inodeSeed(inode), b, tail));
}

/**
 * ext4_ext_new_meta_block, `n` times: all blocks a change needs are taken
 * before the tree is touched. One request per block, so with bigalloc each
 * node has a cluster of its own (freeing one never frees another's).
 */
function newMetaBlocks(handle: Handle, fs: Ext4, inode: Inode, goal: number, n: number, opts: TreeOptions): number[] {
  const out: number[] = [];
  try {
    while (out.length < n) {
      const b = newMetaBlock(handle, fs, inode, goal, opts.nofail ? ALLOC.NOFAIL : 0);
      out.push(b);
      goal = b + 1;
    }
  } catch (e) {
    for (const b of out) freeBlocks(handle, fs, inode, b, 1, { metadata: true });
    throw e;
  }
  return out;
}

/** Fills a newly allocated extent block: `fill` writes the header and entries into zeroed bytes. */
function createNode(handle: Handle, fs: Ext4, inode: Inode, pblk: number, fill: (node: Uint8Array) => void): void {
  const bh = fs.bcache.getblk(pblk, "extent tree block");
  try {
    handle.getCreateAccess(bh);
    const node = bh.data;
    node.fill(0);
    fill(node);
    setExtentTail(fs, inode, node);
    handle.dirtyMetadata(bh);
    fs.verified.add(inode.ino, pblk);
    bh.set(BH.VERIFIED);
  } finally {
    fs.bcache.brelse(bh);
  }
}

/**
 * ext4_ext_correct_indexes: the first entry of the node at `level` changed,
 * so its index entry in the parent says so, and up the tree while the entry
 * changed is itself a node's first.
 */
function correctIndexes(handle: Handle, fs: Ext4, inode: Inode, path: ExtPath, level: number): void {
  const node = pathNode(inode, path[level]);
  if (entriesOf(node) === 0) return;
  const first = u32(node, 12);
  for (let k = level; k > 0; k--) {
    const parent = path[k - 1];
    if (indexAt(pathNode(inode, parent), parent.pos).lblk !== first) {
      getAccess(handle, parent);
      setU32(pathNode(inode, parent), entryOff(parent.pos), first);
      dirtyNode(handle, fs, inode, parent);
    }
    if (parent.pos !== 0) break;
  }
}

// ---- insert (ext4_ext_insert_extent) ----

/**
 * Inserts a new extent, merged into a neighbour where it continues one
 * (same kind, contiguous on disk, within the length limit) unless `noMerge`
 * (a split inserts its second half unmerged). A full leaf is split, a full
 * root grows the tree a level. The range must be unmapped: an overlap is
 * corruption.
 */
export function insertExtent(handle: Handle, fs: Ext4, inode: Inode, ex: Extent, opts: TreeOptions & { noMerge?: boolean } = {}): void {
  if (ex.len < 1 || ex.len > (ex.unwritten ? EXT_UNWRITTEN_MAX_LEN : EXT_INIT_MAX_LEN) || ex.lblk + ex.len > EXT_MAX_BLOCKS) {
    throw new RangeError(`bad extent ${ex.lblk}+${ex.len}`);
  }
  // The range is forgotten first: if the insert fails part-way, a lookup reads the disk.
  extentsChanged(inode, ex.lblk, ex.len, 0, 0);
  for (let attempt = 0; attempt <= 2 * MAX_DEPTH + 2; attempt++) {
    const path = findExtent(fs, inode, ex.lblk);
    try {
      if (insertInLeaf(handle, fs, inode, path, ex, opts)) break;
      // No room: make some (the path is stale afterwards, so walk again).
      createNewLeaf(handle, fs, inode, path, ex, opts);
    } finally {
      releasePath(fs, path);
    }
    if (attempt === 2 * MAX_DEPTH + 2) throw new Error(`extent insert at ${ex.lblk} found no room`);
  }
  shrinkDepth(handle, fs, inode);
  // ext4_es_insert_extent: the new range is what changed (merging on disk moves no block).
  extentsChanged(inode, ex.lblk, ex.len, ex.pblk, ex.unwritten ? ES.UNWRITTEN : ES.WRITTEN);
}

function insertInLeaf(handle: Handle, fs: Ext4, inode: Inode, path: ExtPath, ex: Extent, opts: { noMerge?: boolean }): boolean {
  const L = path.length - 1;
  const lv = path[L];
  let node = pathNode(inode, lv);
  const n = entriesOf(node);
  const pos = lv.pos;
  const where = { ino: inode.ino, block: lv.pblk };
  const left = pos >= 0 ? leafAt(node, pos) : undefined;
  const right = pos + 1 < n ? leafAt(node, pos + 1) : undefined;
  if (left && left.lblk + left.len > ex.lblk) ext4Error(fs, corrupted(`new extent ${ex.lblk}+${ex.len} overlaps extent ${left.lblk}+${left.len}`, where), "ext4_ext_insert_extent");
  if (right && ex.lblk + ex.len > right.lblk) ext4Error(fs, corrupted(`new extent ${ex.lblk}+${ex.len} overlaps extent ${right.lblk}+${right.len}`, where), "ext4_ext_insert_extent");
  if (!opts.noMerge && left && canMerge(left, ex)) {
    getAccess(handle, lv);
    node = pathNode(inode, lv);
    writeLeaf(node, pos, { ...left, len: left.len + ex.len });
    mergeNeighbours(node, pos);
    dirtyNode(handle, fs, inode, lv);
    return true;
  }
  if (!opts.noMerge && right && canMerge(ex, right)) {
    getAccess(handle, lv);
    writeLeaf(pathNode(inode, lv), pos + 1, { ...ex, len: ex.len + right.len });
    dirtyNode(handle, fs, inode, lv);
    if (pos + 1 === 0) correctIndexes(handle, fs, inode, path, L);
    return true;
  }
  if (n >= maxOf(node)) return false;
  getAccess(handle, lv);
  node = pathNode(inode, lv);
  openSlot(node, pos + 1);
  writeLeaf(node, pos + 1, ex);
  dirtyNode(handle, fs, inode, lv);
  if (pos + 1 === 0) correctIndexes(handle, fs, inode, path, L);
  return true;
}

/** ext4_ext_try_to_merge within one leaf: entry i with its left, then with its right neighbour. Returns i's new index. */
function mergeNeighbours(node: Uint8Array, i: number): number {
  if (i > 0) {
    const l = leafAt(node, i - 1);
    const e = leafAt(node, i);
    if (canMerge(l, e)) {
      writeLeaf(node, i - 1, { ...l, len: l.len + e.len });
      dropEntries(node, i, i + 1);
      i--;
    }
  }
  if (i + 1 < entriesOf(node)) {
    const e = leafAt(node, i);
    const r = leafAt(node, i + 1);
    if (canMerge(e, r)) {
      writeLeaf(node, i, { ...e, len: e.len + r.len });
      dropEntries(node, i + 1, i + 2);
    }
  }
  return i;
}

/**
 * ext4_ext_create_new_leaf: split at the deepest index level that has a free
 * slot (ext4_ext_split); with every level full, grow the tree (the caller
 * walks again and comes back here if the leaf is still full).
 */
function createNewLeaf(handle: Handle, fs: Ext4, inode: Inode, path: ExtPath, ex: Extent, opts: TreeOptions): void {
  const L = path.length - 1;
  let at = L - 1;
  while (at >= 0) {
    const node = pathNode(inode, path[at]);
    if (entriesOf(node) < maxOf(node)) break;
    at--;
  }
  if (at < 0) growInDepth(handle, fs, inode, ex.lblk, opts);
  else splitNodes(handle, fs, inode, path, at, ex, opts);
}

/**
 * ext4_ext_split: new nodes for every level below `at`; each takes the
 * entries right of the path (the leaf: right of the extent found), the new
 * index nodes start with an entry for the new node below them, and `at`
 * gets an index entry for the new subtree, which starts at `border`.
 */
function splitNodes(handle: Handle, fs: Ext4, inode: Inode, path: ExtPath, at: number, ex: Extent, opts: TreeOptions): void {
  const L = path.length - 1;
  const leaf = pathNode(inode, path[L]);
  const p = Math.max(path[L].pos, 0);
  const border = p + 1 < entriesOf(leaf) ? leafAt(leaf, p + 1).lblk : ex.lblk;
  const blocks = newMetaBlocks(handle, fs, inode, goalForInode(fs, inode, ex.lblk), L - at, opts);
  const cap = blockCapacity(fs);
  for (let j = L; j > at; j--) {
    const lv = path[j];
    const from = (j === L ? p : lv.pos) + 1;
    getAccess(handle, lv);
    const oldBytes = pathNode(inode, lv);
    const n = entriesOf(oldBytes);
    const moved = oldBytes.slice(entryOff(from), entryOff(n));
    const head = j < L ? 1 : 0;
    createNode(handle, fs, inode, blocks[j - at - 1], (node) => {
      initHeader(node, cap, lv.depth);
      if (head) writeIndex(node, 0, border, blocks[j - at]);
      node.set(moved, entryOff(head));
      setU16(node, 2, head + (n - from));
    });
    const old = pathNode(inode, lv);
    old.fill(0, entryOff(from), entryOff(n));
    setU16(old, 2, from);
    dirtyNode(handle, fs, inode, lv);
  }
  const lv = path[at];
  getAccess(handle, lv);
  const node = pathNode(inode, lv);
  openSlot(node, lv.pos + 1);
  writeIndex(node, lv.pos + 1, border, blocks[0]);
  dirtyNode(handle, fs, inode, lv);
}

/** ext4_ext_grow_indepth: the root's entries move to a new block; the root becomes an index node over it. */
function growInDepth(handle: Handle, fs: Ext4, inode: Inode, lblk: number, opts: TreeOptions): void {
  const root = inode.iBlock;
  const depth = depthOf(root);
  if (depth >= MAX_DEPTH) ext4Error(fs, corrupted(`extent tree would grow past depth ${MAX_DEPTH}`, { ino: inode.ino }), "ext4_ext_grow_indepth");
  const n = entriesOf(root);
  const entries = root.slice(12, entryOff(n));
  const [b] = newMetaBlocks(handle, fs, inode, goalForInode(fs, inode, lblk), 1, opts);
  createNode(handle, fs, inode, b, (node) => {
    initHeader(node, blockCapacity(fs), depth);
    node.set(entries, 12);
    setU16(node, 2, n);
  });
  const first = n > 0 ? u32(entries, 0) : 0;
  root.fill(0, 12, 60);
  initHeader(root, EXT_ROOT_MAX, depth + 1);
  writeIndex(root, 0, first, b);
  setU16(root, 2, 1);
  markInodeDirty(handle, fs, inode);
}

/**
 * The tree loses levels it no longer needs: a root with one entry whose
 * child fits in the root takes the child's entries and the child block is
 * freed (ext4_ext_try_to_merge_up, at any depth); an index root left without
 * entries is an empty leaf again.
 */
function shrinkDepth(handle: Handle, fs: Ext4, inode: Inode): void {
  for (;;) {
    const root = inode.iBlock;
    const depth = depthOf(root);
    if (depth === 0) return;
    if (entriesOf(root) === 0) {
      initHeader(root, EXT_ROOT_MAX, 0);
      root.fill(0, 12, 60);
      markInodeDirty(handle, fs, inode);
      return;
    }
    if (entriesOf(root) !== 1) return;
    const child = indexAt(root, 0).leaf;
    const path = findExtent(fs, inode, indexAt(root, 0).lblk);
    let bytes: Uint8Array;
    let childDepth: number;
    try {
      const node = pathNode(inode, path[1]);
      if (entriesOf(node) > EXT_ROOT_MAX) return;
      bytes = node.slice(12, entryOff(entriesOf(node)));
      childDepth = depthOf(node);
    } finally {
      releasePath(fs, path);
    }
    root.fill(0, 12, 60);
    initHeader(root, EXT_ROOT_MAX, childDepth);
    root.set(bytes, 12);
    setU16(root, 2, bytes.length / 12);
    freeBlocks(handle, fs, inode, child, 1, { metadata: true });
    markInodeDirty(handle, fs, inode);
    extentTreeChanged(inode);
  }
}

// ---- split and convert (ext4_split_extent_at, ext4_ext_convert_to_initialized) ----

/**
 * ext4_split_extent_at: the extent holding `split` (past its first block)
 * becomes two, [start, split) and [split, end), each keeping its kind. No-op
 * where no extent straddles `split`. On failure the extent is whole again.
 */
export function splitExtentAt(handle: Handle, fs: Ext4, inode: Inode, split: number, opts: TreeOptions = {}): boolean {
  const path = findExtent(fs, inode, split);
  let ex: Extent;
  try {
    const lv = path[path.length - 1];
    if (lv.pos < 0) return false;
    ex = leafAt(pathNode(inode, lv), lv.pos);
    if (split <= ex.lblk || split >= ex.lblk + ex.len) return false;
    getAccess(handle, lv);
    writeLeaf(pathNode(inode, lv), lv.pos, { ...ex, len: split - ex.lblk });
    dirtyNode(handle, fs, inode, lv);
  } finally {
    releasePath(fs, path);
  }
  // [split, end) is forgotten until its re-insert below (which caches it again) succeeds.
  extentsChanged(inode, split, ex.lblk + ex.len - split, 0, 0);
  const right: Extent = { lblk: split, len: ex.lblk + ex.len - split, pblk: ex.pblk + (split - ex.lblk), unwritten: ex.unwritten };
  try {
    insertExtent(handle, fs, inode, right, { ...opts, noMerge: true });
  } catch (e) {
    // fix_extent_len: the first half takes its blocks back.
    const back = findExtent(fs, inode, ex.lblk);
    try {
      const lv = back[back.length - 1];
      getAccess(handle, lv);
      writeLeaf(pathNode(inode, lv), lv.pos, ex);
      dirtyNode(handle, fs, inode, lv);
    } finally {
      releasePath(fs, back);
    }
    extentTreeChanged(inode);
    throw e;
  }
  return true;
}

/**
 * Marks [lblk, lblk+len) of the extent holding lblk written (`unwritten`
 * false: ext4_ext_convert_to_initialized, unwritten extents converted at I/O
 * completion) or unwritten (EXT4_GET_BLOCKS_CONVERT_UNWRITTEN), splitting the
 * extent at the range's ends and merging the result into its neighbours.
 * Returns how many blocks from lblk now have that kind (0: lblk is a hole).
 */
export function setExtentKind(handle: Handle, fs: Ext4, inode: Inode, lblk: number, len: number, unwritten: boolean, opts: TreeOptions = {}): number {
  let ex: Extent | undefined;
  const path = findExtent(fs, inode, lblk);
  try {
    const lv = path[path.length - 1];
    if (lv.pos >= 0) ex = leafAt(pathNode(inode, lv), lv.pos);
  } finally {
    releasePath(fs, path);
  }
  if (!ex || lblk >= ex.lblk + ex.len) return 0;
  let end = Math.min(lblk + len, ex.lblk + ex.len);
  if (ex.unwritten === unwritten) return end - lblk;
  if (unwritten) end = Math.min(end, lblk + EXT_UNWRITTEN_MAX_LEN);
  splitExtentAt(handle, fs, inode, lblk, opts);
  splitExtentAt(handle, fs, inode, end, opts);
  const p2 = findExtent(fs, inode, lblk);
  try {
    const L = p2.length - 1;
    const lv = p2[L];
    const e = leafAt(pathNode(inode, lv), lv.pos);
    if (e.lblk !== lblk || e.len !== end - lblk) throw new Error(`extent split at ${lblk}..${end} left ${e.lblk}+${e.len}`);
    getAccess(handle, lv);
    const node = pathNode(inode, lv);
    writeLeaf(node, lv.pos, { ...e, unwritten });
    // Merging never changes a leaf's first block, so no index entry moves.
    mergeNeighbours(node, lv.pos);
    dirtyNode(handle, fs, inode, lv);
  } finally {
    releasePath(fs, p2);
  }
  shrinkDepth(handle, fs, inode);
  extentsChanged(inode, lblk, end - lblk, ex.pblk + (lblk - ex.lblk), unwritten ? ES.UNWRITTEN : ES.WRITTEN);
  return end - lblk;
}

// ---- remove (ext4_ext_remove_space) ----

/**
 * ext4_ext_remove_space: unmaps logical blocks [start, end] (inclusive; end
 * EXT_MAX_BLOCKS - 1 for a truncate), freeing their blocks; an extent that
 * straddles `end` is split first (punch). Leaves and index nodes left empty
 * are freed as metadata, index entries follow a leaf's new first extent, and
 * the tree shrinks when it can. Works right to left, one leaf per step, with
 * the handle's credits renewed between steps.
 */
export function extRemoveSpace(handle: Handle, fs: Ext4, inode: Inode, start: number, end: number): void {
  // A damaged tree met on the way is an ext4_error (ext4-error.ts), never a partial free that spreads it.
  onCorruption(fs, "ext4_ext_remove_space", () => removeSpace(handle, fs, inode, start, end));
}

function removeSpace(handle: Handle, fs: Ext4, inode: Inode, start: number, end: number): void {
  if (end < start) return;
  end = Math.min(end, EXT_MAX_BLOCKS - 1);
  // What was cached of the range goes first: a handle restart part-way may run writeback, which maps blocks.
  extentsChanged(inode, start, end - start + 1, 0, 0);
  if (end + 1 < EXT_MAX_BLOCKS) splitExtentAt(handle, fs, inode, end + 1, { nofail: true });
  const part = partialClusters(fs, inode, start, end);
  let cur = end;
  for (;;) {
    // A small journal's transactions (a quarter of it) bound the step too.
    const budget = Math.max(8, Math.min(REMOVE_STEP_FREES, Math.floor((fs.journal?.maxTransactionBuffers ?? Infinity) / 2) - removeCredits(inode)));
    const credits = removeCredits(inode) + budget;
    if (!handle.extend(credits)) handle.restart(credits);
    const path = findExtent(fs, inode, cur);
    let next = -1;
    try {
      next = removeInLeaf(handle, fs, inode, path, start, cur, part, budget);
    } finally {
      releasePath(fs, path);
    }
    // i_blocks went down with the frees: the inode goes in the transaction that freed them
    // (the kernel's dquot_free_block marks it dirty), before any restart.
    markInodeDirty(handle, fs, inode);
    if (next < start) break;
    cur = next;
  }
  shrinkDepth(handle, fs, inode);
  markInodeDirty(handle, fs, inode);
  // The whole range is a hole now (its delayed extents, if any, are the caller's: esRemoveExtent).
  extentsChanged(inode, start, end - start + 1, 0, ES.HOLE);
}

/** Blocks one removal step may dirty besides the data frees: the path, nodes freed up the tree with their bitmaps and descriptors, the inode. */
function removeCredits(inode: Inode): number {
  return 4 * (depthOf(inode.iBlock) + 1) + 4 + 1;
}

/**
 * Credits per step for freeing data: a bitmap and a descriptor per group an
 * extent spans (ext4_ext_rm_leaf's 7 + 2 * groups per extent, checked per
 * extent); a step takes extents from the right while they fit, so a leaf of
 * extents all over the disk spans several steps (and transactions).
 */
const REMOVE_STEP_FREES = 64;

function freeCost(fs: Ext4, pblk: number, len: number): number {
  const per = fs.sb.blocksPerGroup;
  const first = Math.floor((pblk - fs.sb.firstDataBlock) / per);
  const last = Math.floor((pblk + len - 1 - fs.sb.firstDataBlock) / per);
  return 2 * (last - first + 1);
}

/**
 * Removes what of [start, cur] the leaf on `path` maps (every extent there
 * ends at or before cur). Returns the block to continue at (below start: done).
 */
function removeInLeaf(handle: Handle, fs: Ext4, inode: Inode, path: ExtPath, start: number, cur: number, part: PartialClusters | undefined, budget: number): number {
  const L = path.length - 1;
  const lv = path[L];
  let node = pathNode(inode, lv);
  if (lv.pos < 0) return -1;
  // Entries [first, pos] go whole; entry first-1 may lose its tail.
  let first = lv.pos + 1;
  let trim: { index: number; keep: number } | undefined;
  const frees: [number, number, number][] = [];
  let cost = 0;
  let cut = false;
  while (first > 0) {
    const e = leafAt(node, first - 1);
    if (e.lblk + e.len - 1 < start) break;
    if (e.lblk + e.len - 1 > cur) throw new Error(`extent ${e.lblk}+${e.len} straddles ${cur} after the split`);
    // The step's credits are spent: the rest of this leaf goes in the next step.
    const c = freeCost(fs, e.pblk, e.len);
    if (frees.length > 0 && cost + c > budget) { cut = true; break; }
    cost += c;
    if (e.lblk < start) {
      const keep = start - e.lblk;
      trim = { index: first - 1, keep };
      frees.push([start, e.pblk + keep, e.len - keep]);
      break;
    }
    frees.push([e.lblk, e.pblk, e.len]);
    first--;
  }
  const removed = lv.pos + 1 - first;
  const lowest = removed > 0 ? leafAt(node, first).lblk : -1;
  const stopped = first > 0 && !cut;
  if (removed > 0 || trim) {
    if (removed === entriesOf(node) && L > 0) {
      removeNode(handle, fs, inode, path, L);
    } else {
      getAccess(handle, lv);
      node = pathNode(inode, lv);
      if (trim) writeLeaf(node, trim.index, { ...leafAt(node, trim.index), len: trim.keep });
      if (removed > 0) dropEntries(node, first, lv.pos + 1);
      dirtyNode(handle, fs, inode, lv);
      if (first === 0 && removed > 0) correctIndexes(handle, fs, inode, path, L);
    }
  }
  for (const [lblk, pblk, len] of frees) freeData(handle, fs, inode, lblk, pblk, len, part);
  extentTreeChanged(inode);
  // Stopped inside this leaf: done. Else everything here up to cur went; go on left of it.
  if (stopped || removed === 0) return -1;
  return lowest - 1;
}

/**
 * Bigalloc: a physical cluster is shared by the blocks of one logical
 * cluster, so a run's first or last cluster stays allocated while blocks of
 * the file outside the removed range still use it, and is freed once only
 * when several removed extents share it (the kernel's partial_cluster).
 */
interface PartialClusters {
  ratio: number;
  /** Blocks before `start` in start's logical cluster are still mapped. */
  leftInUse: boolean;
  /** Blocks after `end` in end's logical cluster are still mapped. */
  rightInUse: boolean;
  start: number;
  end: number;
  /** The lowest physical cluster freed so far (the walk goes right to left). */
  freed: number;
}

function partialClusters(fs: Ext4, inode: Inode, start: number, end: number): PartialClusters | undefined {
  const ratio = fs.sb.clusterSize / fs.sb.blockSize;
  if (ratio <= 1) return undefined;
  const c0 = start - (start % ratio);
  const c1 = end - (end % ratio) + ratio - 1;
  return { ratio, leftInUse: anyMapped(fs, inode, c0, start), rightInUse: end + 1 < EXT_MAX_BLOCKS && anyMapped(fs, inode, end + 1, Math.min(c1 + 1, EXT_MAX_BLOCKS)), start, end, freed: -1 };
}

/** Is any block of [from, to) mapped? */
export function anyMapped(fs: Ext4, inode: Inode, from: number, to: number): boolean {
  for (let b = from; b < to; ) {
    const m = fs.mapBlocks(inode, b, to - b);
    if (m.pblk !== 0) return true;
    b += m.len;
  }
  return false;
}

function freeData(handle: Handle, fs: Ext4, inode: Inode, lblk: number, pblk: number, len: number, part: PartialClusters | undefined): void {
  if (!part) {
    freeBlocks(handle, fs, inode, pblk, len, defaultFreeFlags(inode, fs));
    return;
  }
  const r = part.ratio;
  const lc = (b: number) => Math.floor(b / r);
  const firstPc = lc(pblk);
  const lastPc = lc(pblk + len - 1);
  const noFreeFirstCluster = part.leftInUse && lc(lblk) === lc(part.start);
  const noFreeLastCluster = lastPc === part.freed || (part.rightInUse && lc(lblk + len - 1) === lc(part.end));
  freeBlocks(handle, fs, inode, pblk, len, { ...defaultFreeFlags(inode, fs), noFreeFirstCluster, noFreeLastCluster });
  part.freed = firstPc;
}

/** A node emptied at `level` (> 0) is freed and its index entry removed, up the tree as parents empty too (ext4_ext_rm_idx). */
function removeNode(handle: Handle, fs: Ext4, inode: Inode, path: ExtPath, level: number): void {
  for (let k = level; k > 0; k--) {
    const lv = path[k];
    freeBlocks(handle, fs, inode, lv.pblk!, 1, { metadata: true });
    const parent = path[k - 1];
    const pnode = pathNode(inode, parent);
    if (entriesOf(pnode) > 1 || k - 1 === 0) {
      getAccess(handle, parent);
      const node = pathNode(inode, parent);
      dropEntries(node, parent.pos, parent.pos + 1);
      if (k - 1 === 0 && entriesOf(node) === 0) {
        initHeader(node, EXT_ROOT_MAX, 0);
        node.fill(0, 12, 60);
      }
      dirtyNode(handle, fs, inode, parent);
      if (parent.pos === 0 && entriesOf(pathNode(inode, parent)) > 0) correctIndexes(handle, fs, inode, path, k - 1);
      return;
    }
  }
}

// ---- shift (ext4_ext_shift_extents: collapse and insert range) ----

/** ext4_ext_next_allocated_block: the first block of the leaf after the path's (EXT_MAX_BLOCKS: none). */
function nextLeafStart(inode: Inode, path: ExtPath): number {
  for (let k = path.length - 2; k >= 0; k--) {
    const node = pathNode(inode, path[k]);
    if (path[k].pos + 1 < entriesOf(node)) return indexAt(node, path[k].pos + 1).lblk;
  }
  return EXT_MAX_BLOCKS;
}

/** Credits of one leaf's shift: the leaf, and with its first entry moved the index nodes above it, the inode. */
const shiftCredits = (inode: Inode) => depthOf(inode.iBlock) + 3;

/**
 * ext4_ext_shift_extents: every extent from logical block `start` on moves
 * `shift` blocks left (collapse range: the range before it must be a hole
 * that long) or right (insert range), one leaf per step, merging with the
 * neighbour in the leaf where they now touch; index entries follow each
 * leaf's first extent. The handle is extended or restarted between leaves
 * (a tree consistent at every step). EINVAL where the shift does not fit.
 */
export function extShiftExtents(handle: Handle, fs: Ext4, inode: Inode, start: number, shift: number, dir: "left" | "right"): void {
  if (shift <= 0) return;
  bumpExtentSeq(inode);
  // The last extent, and for a left shift the one before `start`.
  const lastPath = findExtent(fs, inode, EXT_MAX_BLOCKS - 1);
  let stop: number;
  let lastEnd: number;
  try {
    const lv = lastPath[lastPath.length - 1];
    if (lv.pos < 0) return;
    const e = leafAt(pathNode(inode, lv), lv.pos);
    stop = e.lblk;
    lastEnd = e.lblk + e.len;
  } finally {
    releasePath(fs, lastPath);
  }
  if (dir === "left") {
    const p = findExtent(fs, inode, start - 1);
    try {
      const lv = p[p.length - 1];
      const e = lv.pos >= 0 ? leafAt(pathNode(inode, lv), lv.pos) : undefined;
      const exStart = e?.lblk ?? 0;
      const exEnd = e ? e.lblk + e.len : 0;
      if ((start === exStart && shift > exStart) || shift > start - exEnd) throw new Ext4Error("EINVAL", `no hole of ${shift} blocks before block ${start} to collapse into`, { ino: inode.ino });
    } finally {
      releasePath(fs, p);
    }
  } else if (shift > EXT_MAX_BLOCKS - lastEnd) {
    throw new Ext4Error("EINVAL", `shifting the last extent by ${shift} blocks passes the largest logical block`, { ino: inode.ino });
  }
  let iter = dir === "left" ? start : stop;
  for (;;) {
    if (dir === "left" ? iter > stop : iter < start) break;
    if (!handle.extend(shiftCredits(inode))) handle.restart(shiftCredits(inode));
    const path = findExtent(fs, inode, iter);
    let next: number | undefined;
    try {
      const L = path.length - 1;
      const lv = path[L];
      let node = pathNode(inode, lv);
      const n = entriesOf(node);
      if (n === 0) throw corrupted(`unexpected hole at ${iter} while shifting extents`, { ino: inode.ino });
      // Right: this leaf's extents from `start` on move; none here at or before iter means the walk is done.
      // Left: those from iter on (the ones before it in this leaf have moved already, or lie before start).
      if (dir === "right" && leafAt(node, 0).lblk > iter) break;
      const bound = dir === "left" ? iter : start;
      let from = 0;
      while (from < n && leafAt(node, from).lblk < bound) from++;
      if (from === n) {
        // Everything here is before start: on to the next leaf.
        const nx = nextLeafStart(inode, path);
        if (nx === EXT_MAX_BLOCKS) break;
        iter = nx;
        continue;
      }
      const firstOrig = leafAt(node, 0).lblk;
      const lastOrig = leafAt(node, n - 1);
      getAccess(handle, lv);
      node = pathNode(inode, lv);
      if (dir === "left") {
        let i = from;
        while (i < entriesOf(node)) {
          const e = leafAt(node, i);
          writeLeaf(node, i, { ...e, lblk: e.lblk - shift });
          // ext4_ext_try_to_merge_right from the entry before it.
          if (i > 0 && canMerge(leafAt(node, i - 1), leafAt(node, i))) {
            const l = leafAt(node, i - 1);
            writeLeaf(node, i - 1, { ...l, len: l.len + leafAt(node, i).len });
            dropEntries(node, i, i + 1);
          } else {
            i++;
          }
        }
        next = lastOrig.lblk + lastOrig.len;
      } else {
        for (let i = entriesOf(node) - 1; i >= from; i--) {
          const e = leafAt(node, i);
          writeLeaf(node, i, { ...e, lblk: e.lblk + shift });
          if (i + 1 < entriesOf(node) && canMerge(leafAt(node, i), leafAt(node, i + 1))) {
            writeLeaf(node, i, { ...leafAt(node, i), len: leafAt(node, i).len + leafAt(node, i + 1).len });
            dropEntries(node, i + 1, i + 2);
          }
        }
        next = from > 0 || firstOrig === 0 ? undefined : firstOrig - 1;
      }
      dirtyNode(handle, fs, inode, lv);
      if (from === 0) correctIndexes(handle, fs, inode, path, L);
    } finally {
      releasePath(fs, path);
    }
    bumpExtentSeq(inode);
    if (next === undefined) break;
    iter = next;
  }
  markInodeDirty(handle, fs, inode);
  bumpExtentSeq(inode);
}
