// Setting and removing extended attributes (fs/ext4/xattr.c,
// ext4_xattr_set_handle). A value goes in the inode body when it fits
// (ext4_xattr_ibody_set), else in the inode's xattr block
// (ext4_xattr_block_set); a value that moves between the two is removed
// from where it was. In-inode entries are unsorted with hash 0, as the
// kernel writes them; block entries stay sorted by (name index, name length,
// name) so the kernel's sorted lookup finds them, each hashed, the header
// hash folded from them. A block with more than one reference is never
// edited: the inode gets its own copy and the old block loses a reference;
// the last reference frees it. An attribute set identical to a block in the
// xattr block cache shares that block (mbcache). Every check that can fail
// runs before the first byte changes.

import { corrupted, Ext4Error } from "../errors.js";
import { setU32, u32 } from "../format/bytes.js";
import { COMPAT, INCOMPAT } from "../format/features.js";
import { GOOD_OLD_INODE_SIZE, type Inode, type Timespec } from "../format/inode.js";
import {
  compareXattrKey, encodeXattrEntries, parseXattrRecords, XATTR_BLOCK_HEADER, XATTR_MAGIC, XATTR_NAME_MAX, XATTR_REFCOUNT_MAX, xattrBlockHash,
  xattrHashEntry, xattrMinLargeEaSize, xattrSize, xattrSpaceUsed, type XattrRecord,
} from "../format/xattr.js";
import type { Handle } from "../journal/handle.js";
import { markInodeDirty } from "./inode-write.js";
import { Geometry, readBlockBitmap } from "./block-bitmap.js";
import { ALLOC, freeBlocks, newBlocks } from "./mballoc.js";
import { xattrBlockCache } from "./xattr-cache.js";
import type { Ext4 } from "./super.js";
import { onCorruption } from "./ext4-error.js";

export interface XattrSetFlags {
  /** XATTR_CREATE: EEXIST if the attribute exists. */
  create?: boolean;
  /** XATTR_REPLACE: ENODATA if it does not. */
  replace?: boolean;
}

/**
 * Journal credits of one set (__ext4_xattr_set_credits): the inode, the old
 * block's refcount, a new block with its bitmap and descriptor, the old
 * block's bitmap and descriptor. No quota and no ea_inode here.
 */
export const XATTR_SET_CREDITS = 7;

const BH_REFCOUNT = 4;
const BH_BLOCKS = 8;
const BH_HASH = 12;
const BH_CHECKSUM = 16;

/** The inode body's xattr area: [first, inode size), its magic at hdr. */
interface Ibody { has: boolean; hdr: number; first: number; records: XattrRecord[] }
interface XattrBlock { pblk: number; refcount: number; hash: number; records: XattrRecord[] }

/**
 * ext4_xattr_set_handle: sets (value) or removes (value null) attribute
 * `name` of index `nameIndex` (1 user, 2/3 POSIX ACLs in ext4's encoding,
 * 4 trusted, 6 security, 7 system). The value is stored as given. The caller
 * holds `handle` (XATTR_SET_CREDITS) and sees ctime, i_version and the
 * checksum updated through markInodeDirty.
 */
export function setXattr(handle: Handle, fs: Ext4, inode: Inode, nameIndex: number, name: string | Uint8Array, value: Uint8Array | null, flags: XattrSetFlags = {}): void {
  // A damaged xattr area or block met here is an ext4_error (ext4-error.ts), as __ext4_xattr_check_block's.
  onCorruption(fs, "ext4_xattr_set_handle", () => setXattrChecked(handle, fs, inode, nameIndex, name, value, flags));
}

function setXattrChecked(handle: Handle, fs: Ext4, inode: Inode, nameIndex: number, name: string | Uint8Array, value: Uint8Array | null, flags: XattrSetFlags): void {
  const where = { ino: inode.ino };
  const nm = typeof name === "string" ? new TextEncoder().encode(name) : name;
  if (nm.length > XATTR_NAME_MAX) throw new Ext4Error("ERANGE", `xattr name of ${nm.length} bytes is longer than ${XATTR_NAME_MAX}`, where);
  if (nm.includes(0)) throw new Ext4Error("EINVAL", "xattr name contains a NUL byte", where);
  if (!Number.isInteger(nameIndex) || nameIndex < 1 || nameIndex > 255) throw new Ext4Error("EINVAL", `xattr name index ${nameIndex}`, where);
  const key = { nameIndex, name: nm };
  const eaInode = (fs.sb.featureIncompat & INCOMPAT.EA_INODE) !== 0;

  // ext4_xattr_ibody_find, then ext4_xattr_block_find only if not in the inode.
  const ibody = readIbody(fs, inode);
  const iAt = ibody.records.findIndex((r) => compareXattrKey(r, key) === 0);
  let block: XattrBlock | undefined;
  let bAt = -1;
  if (iAt < 0 && inode.fileAcl !== 0) {
    block = readBlock(fs, inode);
    bAt = block.records.findIndex((r) => compareXattrKey(r, key) === 0);
  }
  const found = iAt >= 0 ? ibody.records[iAt] : bAt >= 0 ? block!.records[bAt] : undefined;
  if (!found) {
    if (flags.replace) throw new Ext4Error("ENODATA", "no data available", where);
    if (!value) return;
  } else if (flags.create) {
    throw new Ext4Error("EEXIST", "attribute exists", where);
  }
  if (found?.valueInum) throw new Ext4Error("EOPNOTSUPP", "changing an xattr whose value is in an ea_inode is not supported", where);

  let newIbody: XattrRecord[] | undefined;
  let newBlock: XattrRecord[] | undefined;
  if (!value) {
    if (iAt >= 0) newIbody = without(ibody.records, iAt);
    else newBlock = without(block!.records, bAt);
  } else {
    // Xattr value did not change: nothing is written, not even ctime.
    if (found && found.valueSize === value.length && equalBytes(found.value, value)) return;
    // With ea_inode the kernel puts such a value in an inode of its own.
    if (eaInode && xattrSize(value.length) > xattrMinLargeEaSize(fs.sb.blockSize)) {
      throw new Ext4Error("EOPNOTSUPP", `an xattr value of ${value.length} bytes needs an ea_inode, which is not written yet`, where);
    }
    const rec: XattrRecord = { nameIndex, name: nm.slice(), value: value.slice(), valueInum: 0, valueSize: value.length, hash: 0 };
    const inIbody = ibody.has ? replaced(ibody.records, iAt, rec) : undefined;
    if (inIbody && xattrSpaceUsed(inIbody) + 4 <= fs.sb.inodeSize - ibody.first) {
      newIbody = inIbody;
      if (bAt >= 0) newBlock = without(block!.records, bAt);
    } else {
      if (!block && inode.fileAcl !== 0) block = readBlock(fs, inode);
      const cur = block?.records ?? [];
      const at = cur.findIndex((r) => compareXattrKey(r, key) === 0);
      if (cur[at]?.valueInum) throw new Ext4Error("EOPNOTSUPP", "changing an xattr whose value is in an ea_inode is not supported", where);
      rec.hash = xattrHashEntry(rec.name, rec.value);
      const list = sortedWith(cur, at, rec);
      const bs = fs.sb.blockSize;
      if (XATTR_BLOCK_HEADER + xattrSpaceUsed(list) + 4 > bs) {
        if (eaInode && value.length > 0) throw new Ext4Error("EOPNOTSUPP", "the xattr fits only in an ea_inode, which is not written yet", where);
        throw new Ext4Error("ENOSPC", "no space left on device: the xattr fits neither in the inode nor in its block", where);
      }
      // ext4_xattr_set_entry with ea_inode: keep min(bs/8, 1024) bytes of the block for names.
      const values = list.reduce((n, r) => n + (r.valueInum ? 0 : xattrSize(r.valueSize)), 0);
      if (eaInode && value.length > 0 && bs - values < Math.min(bs >> 3, 1024)) {
        throw new Ext4Error("EOPNOTSUPP", "the xattr fits only in an ea_inode, which is not written yet", where);
      }
      newBlock = list;
      if (iAt >= 0) newIbody = without(ibody.records, iAt);
    }
  }

  // The block first: a copy-on-write may fail to allocate, before anything else changed.
  if (newBlock) commitBlock(handle, fs, inode, block, newBlock);
  if (newIbody) writeIbody(fs, inode, ibody, newIbody);
  // ext4_xattr_update_super_block.
  if (!(fs.sb.featureCompat & COMPAT.EXT_ATTR)) {
    fs.sb.featureCompat |= COMPAT.EXT_ATTR;
    fs.markSuperDirty();
  }
  inode.ctime = currentTime();
  inode.version += 1; // inode_inc_iversion
  markInodeDirty(handle, fs, inode);
}

/** removexattr(2): ext4_xattr_set_handle with no value and XATTR_REPLACE (ENODATA if absent). */
export function removeXattr(handle: Handle, fs: Ext4, inode: Inode, nameIndex: number, name: string | Uint8Array): void {
  setXattr(handle, fs, inode, nameIndex, name, null, { replace: true });
}

/**
 * ext4_xattr_delete_inode, for an inode being freed: its xattr block loses
 * the reference (freed with the last one) and i_file_acl is cleared. The
 * caller marks the inode dirty with the rest of its teardown.
 */
export function xattrDeleteInode(handle: Handle, fs: Ext4, inode: Inode): void {
  onCorruption(fs, "ext4_xattr_delete_inode", () => deleteInodeXattrs(handle, fs, inode));
}

function deleteInodeXattrs(handle: Handle, fs: Ext4, inode: Inode): void {
  if (fs.sb.featureIncompat & INCOMPAT.EA_INODE) {
    if (readIbody(fs, inode).records.some((r) => r.valueInum !== 0)) throw new Ext4Error("EOPNOTSUPP", "dropping ea_inode references is not supported", { ino: inode.ino });
  }
  if (inode.fileAcl === 0) return;
  const block = readBlock(fs, inode);
  if (block.records.some((r) => r.valueInum !== 0)) throw new Ext4Error("EOPNOTSUPP", "dropping ea_inode references is not supported", { ino: inode.ino });
  inode.fileAcl = 0;
  releaseBlock(handle, fs, inode, block.pblk);
}

/** The wall clock as a timestamp, fine-grained (ktime_get_real_ts64_mg: it raises the floor). */
export function currentTime(): Timespec {
  const ns = process.hrtime.bigint() - HR_AT_START + EPOCH_NS_AT_START;
  if (ns > floorNs) floorNs = ns;
  return { sec: Number(ns / 1_000_000_000n), nsec: Number(ns % 1_000_000_000n) };
}

/**
 * The coarse clock of multigrain timestamps (ktime_get_coarse_real_ts64_mg):
 * the time of the last tick (HZ=250, as this kernel is built), but never
 * before a fine-grained stamp already handed out, so that a file changed
 * after another never looks changed before it.
 */
export function coarseTime(): Timespec {
  const now = process.hrtime.bigint() - HR_AT_START + EPOCH_NS_AT_START;
  let ns = now - (now % TICK_NS);
  if (ns < floorNs) ns = floorNs;
  return { sec: Number(ns / 1_000_000_000n), nsec: Number(ns % 1_000_000_000n) };
}
const HR_AT_START = process.hrtime.bigint();
const EPOCH_NS_AT_START = BigInt(Date.now()) * 1_000_000n;
const TICK_NS = 4_000_000n;
let floorNs = 0n;

// ---- reading the two areas ----

/** EXT4_INODE_HAS_XATTR_SPACE and the entries there (none without the magic). */
function readIbody(fs: Ext4, inode: Inode): Ibody {
  const size = fs.sb.inodeSize;
  const hdr = GOOD_OLD_INODE_SIZE + inode.extraIsize;
  const has = size > GOOD_OLD_INODE_SIZE && inode.extraIsize !== 0 && hdr + 8 <= size;
  if (!has) return { has, hdr, first: hdr + 4, records: [] };
  const first = hdr + 4;
  const records = u32(inode.raw, hdr) === XATTR_MAGIC ? parseXattrRecords(inode.raw, first, first, size, { ino: inode.ino }) : [];
  return { has, hdr, first, records };
}

/** The inode's xattr block, checked as ext4_xattr_check_block checks it. */
function readBlock(fs: Ext4, inode: Inode): XattrBlock {
  const pblk = inode.fileAcl;
  const where = { ino: inode.ino, block: pblk };
  if (pblk < fs.sb.firstDataBlock || pblk >= fs.sb.blocksCount) throw corrupted(`xattr block ${pblk} is outside the filesystem`, where);
  const bh = fs.bcache.bread(pblk, "xattr block");
  try {
    const b = bh.data;
    if (u32(b, 0) !== XATTR_MAGIC || u32(b, BH_BLOCKS) !== 1) throw corrupted("corrupted xattr block: invalid header", where);
    if (fs.metadataCsum && fs.verifyChecksums && u32(b, BH_CHECKSUM) !== fs.csum.xattrBlock(pblk, b)) {
      throw corrupted("corrupted xattr block: invalid checksum", where);
    }
    const refcount = u32(b, BH_REFCOUNT);
    if (refcount === 0) throw corrupted("xattr block has no references", where);
    const records = parseXattrRecords(b, XATTR_BLOCK_HEADER, 0, b.length, where);
    const hash = u32(b, BH_HASH);
    xattrBlockCache(fs).insert(hash, pblk);
    return { pblk, refcount, hash, records };
  } finally {
    fs.bcache.brelse(bh);
  }
}

// ---- writing them ----

function writeIbody(fs: Ext4, inode: Inode, ibody: Ibody, records: XattrRecord[]): void {
  const raw = inode.raw;
  if (records.length === 0) {
    raw.fill(0, ibody.hdr, fs.sb.inodeSize);
    return;
  }
  setU32(raw, ibody.hdr, XATTR_MAGIC);
  encodeXattrEntries(raw, ibody.first, ibody.first, fs.sb.inodeSize, records);
}

/** Fills a whole xattr block: header (refcount, h_blocks 1, hash), entries, values, checksum. */
function encodeBlock(fs: Ext4, b: Uint8Array, pblk: number, refcount: number, records: XattrRecord[]): void {
  b.fill(0, 0, XATTR_BLOCK_HEADER);
  setU32(b, 0, XATTR_MAGIC);
  setU32(b, BH_REFCOUNT, refcount);
  setU32(b, BH_BLOCKS, 1);
  setU32(b, BH_HASH, xattrBlockHash(records));
  encodeXattrEntries(b, XATTR_BLOCK_HEADER, 0, b.length, records);
  if (fs.metadataCsum) setU32(b, BH_CHECKSUM, fs.csum.xattrBlock(pblk, b));
}

/**
 * ext4_xattr_block_set once the new entry list is known: an identical block
 * in the cache is shared (one more reference); else an unshared block is
 * edited in place; else (a shared block, or none) the inode gets a new
 * block. The old block loses this inode's reference (freed with the last).
 */
function commitBlock(handle: Handle, fs: Ext4, inode: Inode, old: XattrBlock | undefined, records: XattrRecord[]): void {
  const cache = xattrBlockCache(fs);
  if (records.length === 0) {
    inode.fileAcl = 0;
    if (old) releaseBlock(handle, fs, inode, old.pblk);
    return;
  }
  const hash = xattrBlockHash(records);
  const same = findShareable(fs, records, hash, old?.pblk);
  if (same !== undefined) {
    takeReference(handle, fs, inode, same);
    cache.insert(hash, same);
    if (old) releaseBlock(handle, fs, inode, old.pblk);
    return;
  }
  if (old && old.refcount === 1) {
    const bh = fs.bcache.bread(old.pblk, "xattr block");
    try {
      handle.getWriteAccess(bh);
      encodeBlock(fs, bh.data, old.pblk, 1, records);
      handle.dirtyMetadata(bh);
    } finally {
      fs.bcache.brelse(bh);
    }
    cache.delete(old.hash, old.pblk);
    cache.insert(hash, old.pblk);
    return;
  }
  // A copy of a block that names ea_inodes would take a reference on each (ext4_xattr_inode_inc_ref_all).
  if (records.some((r) => r.valueInum !== 0)) throw new Ext4Error("EOPNOTSUPP", "copying an xattr block that references ea_inodes is not supported", { ino: inode.ino });
  const pblk = allocXattrBlock(handle, fs, inode);
  const bh = fs.bcache.getblk(pblk, "xattr block");
  try {
    handle.getCreateAccess(bh);
    bh.data.fill(0);
    encodeBlock(fs, bh.data, pblk, 1, records);
    handle.dirtyMetadata(bh);
  } finally {
    fs.bcache.brelse(bh);
  }
  cache.insert(hash, pblk);
  inode.fileAcl = pblk;
  if (old) releaseBlock(handle, fs, inode, old.pblk);
}

/**
 * ext4_xattr_block_cache_find and ext4_xattr_cmp: a block other than
 * `except` holding exactly `records`, still allocated, with room for one more
 * reference (EXT4_XATTR_REFCOUNT_MAX). Stale cache entries are dropped.
 */
function findShareable(fs: Ext4, records: XattrRecord[], hash: number, except: number | undefined): number | undefined {
  if (hash === 0) return undefined; // never shared
  const cache = xattrBlockCache(fs);
  for (const pblk of cache.candidates(hash)) {
    if (pblk === except) continue;
    let verdict: "same" | "differs" | "stale";
    try {
      verdict = compareBlock(fs, pblk, hash, records);
    } catch (e) {
      if (!(e instanceof Ext4Error)) throw e;
      verdict = "stale";
    }
    if (verdict === "stale") cache.delete(hash, pblk);
    if (verdict === "same") return pblk;
  }
  return undefined;
}

function compareBlock(fs: Ext4, pblk: number, hash: number, records: XattrRecord[]): "same" | "differs" | "stale" {
  if (pblk < fs.sb.firstDataBlock || pblk >= fs.sb.blocksCount || !blockInUse(fs, pblk)) return "stale";
  const bh = fs.bcache.bread(pblk, "xattr block");
  try {
    const b = bh.data;
    if (u32(b, 0) !== XATTR_MAGIC || u32(b, BH_BLOCKS) !== 1 || u32(b, BH_HASH) !== hash || u32(b, BH_REFCOUNT) === 0) return "stale";
    if (fs.metadataCsum && u32(b, BH_CHECKSUM) !== fs.csum.xattrBlock(pblk, b)) return "stale";
    if (u32(b, BH_REFCOUNT) + 1 > XATTR_REFCOUNT_MAX) return "differs";
    const theirs = parseXattrRecords(b, XATTR_BLOCK_HEADER, 0, b.length, { block: pblk });
    return sameRecords(theirs, records) ? "same" : "differs";
  } finally {
    fs.bcache.brelse(bh);
  }
}

/** Entry by entry: hash, index, name, size, inode, value bytes. */
function sameRecords(a: XattrRecord[], b: XattrRecord[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((x, i) => {
    const y = b[i];
    return x.hash === y.hash && x.nameIndex === y.nameIndex && x.valueSize === y.valueSize && x.valueInum === y.valueInum &&
      equalBytes(x.name, y.name) && (x.valueInum !== 0 || equalBytes(x.value, y.value));
  });
}

/** The block's bit in its group's block bitmap (a freed block, even one waiting for a commit, is not shared). */
function blockInUse(fs: Ext4, pblk: number): boolean {
  const geo = new Geometry(fs.sb, fs.groups);
  const g = geo.groupOf(pblk);
  const c = geo.clusterInGroup(pblk);
  const bh = readBlockBitmap(fs, geo, g);
  try {
    return (bh.data[c >> 3] & (1 << (c & 7))) !== 0;
  } finally {
    fs.bcache.brelse(bh);
  }
}

/** One more inode references the block: refcount + 1, and the inode is charged for it (dquot_alloc_block). */
function takeReference(handle: Handle, fs: Ext4, inode: Inode, pblk: number): void {
  const bh = fs.bcache.bread(pblk, "xattr block");
  try {
    handle.getWriteAccess(bh);
    const b = bh.data;
    setU32(b, BH_REFCOUNT, u32(b, BH_REFCOUNT) + 1);
    if (fs.metadataCsum) setU32(b, BH_CHECKSUM, fs.csum.xattrBlock(pblk, b));
    handle.dirtyMetadata(bh);
  } finally {
    fs.bcache.brelse(bh);
  }
  inode.blocks512 += fs.sb.clusterSize / 512;
  inode.fileAcl = pblk;
}

/**
 * ext4_xattr_release_block: the last reference frees the block; otherwise
 * the refcount drops and the inode stops being charged for it.
 */
function releaseBlock(handle: Handle, fs: Ext4, inode: Inode, pblk: number): void {
  const bh = fs.bcache.bread(pblk, "xattr block");
  try {
    handle.getWriteAccess(bh);
    const b = bh.data;
    const ref = u32(b, BH_REFCOUNT);
    if (ref <= 1) {
      xattrBlockCache(fs).delete(u32(b, BH_HASH), pblk);
      freeXattrBlock(handle, fs, inode, pblk);
      return;
    }
    setU32(b, BH_REFCOUNT, ref - 1);
    if (fs.metadataCsum) setU32(b, BH_CHECKSUM, fs.csum.xattrBlock(pblk, b));
    handle.dirtyMetadata(bh);
    inode.blocks512 -= fs.sb.clusterSize / 512; // dquot_free_block(inode, EXT4_C2B(sbi, 1))
  } finally {
    fs.bcache.brelse(bh);
  }
}

// ---- blocks: mballoc's ----

/** ext4_new_meta_blocks with the goal ext4_xattr_block_set gives: the first block of the inode's group. */
function allocXattrBlock(handle: Handle, fs: Ext4, inode: Inode): number {
  const sb = fs.sb;
  const group = Math.floor((inode.ino - 1) / sb.inodesPerGroup);
  const goal = sb.firstDataBlock + group * sb.blocksPerGroup;
  return newBlocks(handle, fs, { inode, goal, len: 1, flags: ALLOC.METADATA }).pblk;
}

/** ext4_free_blocks(METADATA | FORGET): revoked, reusable once the transaction commits; the inode stops being charged. */
function freeXattrBlock(handle: Handle, fs: Ext4, inode: Inode, pblk: number): void {
  freeBlocks(handle, fs, inode, pblk, 1, { metadata: true });
}

// ---- entry lists ----

function without(list: XattrRecord[], at: number): XattrRecord[] {
  return list.filter((_, i) => i !== at);
}

/** In-inode: a replaced entry keeps its place, a new one is appended (the kernel's unsorted search ends there). */
function replaced(list: XattrRecord[], at: number, rec: XattrRecord): XattrRecord[] {
  const out = list.slice();
  if (at >= 0) out[at] = rec;
  else out.push(rec);
  return out;
}

/** In a block: a replaced entry keeps its place, a new one goes before the first greater key. */
function sortedWith(list: XattrRecord[], at: number, rec: XattrRecord): XattrRecord[] {
  const out = list.slice();
  if (at >= 0) {
    out[at] = rec;
    return out;
  }
  let i = out.findIndex((r) => compareXattrKey(r, rec) > 0);
  if (i < 0) i = out.length;
  out.splice(i, 0, rec);
  return out;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
