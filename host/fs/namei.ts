// Adding and removing directory entries (fs/ext4/namei.c): linear blocks
// (add_dirent_to_buf, ext4_generic_delete_entry), growth by ext4_append, the
// one-block directory turned into an htree (make_indexed_dir), and htree
// inserts with leaf splits (do_split) and index splits (ext4_dx_add_entry).
// Every block changes under a journal handle; checksum tails are set as
// ext4_handle_dirty_dirblock and ext4_handle_dirty_dx_node set them. The
// read side (dir.ts) checks the blocks we read; the dcache is told of every
// name added or removed.

import type { BufferHead } from "../cache/buffer-head.js";
import { corrupted, Ext4Error } from "../errors.js";
import { setU16, setU32, u16, u32, u8 } from "../format/bytes.js";
import { dirHash, DX_HASH_TEA } from "../format/dirhash.js";
import { DIRENT_TAIL_FT, DIRENT_TAIL_SIZE, DX_ROOT_INFO_OFFSET, hasDirentTail, recLenAt } from "../format/dirent.js";
import { COMPAT, INCOMPAT, RO_COMPAT } from "../format/features.js";
import { type Inode, INODE_FLAGS, isDir } from "../format/inode.js";
import { SB_FLAGS } from "../format/superblock.js";
import type { Handle } from "../journal/handle.js";
import {
  badIndexError, dirBlocks, dxNodeLimit, dxRootLimit, isBadIndex, isCasefolded, isDxNode, isIndexed, lookup,
  readDxEntries, searchDx, verifyDxNode, verifyDxRoot, verifyLeaf,
} from "./dir.js";
import { markInodeDirty } from "./inode-write.js";
import { currentTime, setXattr } from "./xattr-write.js";
import { inlineDirRegions } from "./inline.js";
import { maxInlineSize } from "./inline-write.js";
import { appendDirBlock } from "./namei-alloc.js";
import { MapKind } from "./mapping.js";
import type { Ext4 } from "./super.js";
import { onCorruption } from "./ext4-error.js";

export const EXT4_NAME_LEN = 255;
/** EXT4_LINK_MAX: the most links an inode (and subdirectories a linear directory) may have. */
export const EXT4_LINK_MAX = 65000;

/** EXT4_DIR_REC_LEN: an entry's record for a name of this length, rounded to 4. */
export function dirRecLen(nameLen: number): number { return (nameLen + 8 + 3) & ~3; }

/** ext4_rec_len_to_disk (as e2fsprogs writes it: 64 KiB blocks keep the low bits). */
function setRecLen(b: Uint8Array, off: number, len: number, bs: number): void {
  let v = len;
  if (len >= 65536) v = len === bs ? (bs === 65536 ? 65535 : 0) : (len & 65532) | ((len >> 16) & 3);
  setU16(b, off + 4, v);
}

function csumSize(fs: Ext4): number { return fs.metadataCsum ? DIRENT_TAIL_SIZE : 0; }

/** ext4_initialize_dirent_tail. */
function initDirentTail(b: Uint8Array, bs: number): void {
  const t = bs - DIRENT_TAIL_SIZE;
  b.fill(0, t, bs);
  setRecLen(b, t, DIRENT_TAIL_SIZE, bs);
  b[t + 7] = DIRENT_TAIL_FT;
}

/** ext4_handle_dirty_dirblock: the leaf's checksum, then the buffer joins the handle's transaction. */
function dirtyDirblock(handle: Handle, fs: Ext4, dir: Inode, bh: BufferHead): void {
  const b = bh.data;
  const bs = fs.sb.blockSize;
  if (fs.metadataCsum && hasDirentTail(b, bs)) setU32(b, bs - 4, fs.csum.dirBlock(fs.inodeSeed(dir), b));
  handle.dirtyMetadata(bh);
}

/** ext4_handle_dirty_dx_node: the root's or an interior node's dx_tail checksum, then dirty. */
function dirtyDxNode(handle: Handle, fs: Ext4, dir: Inode, bh: BufferHead): void {
  const b = bh.data;
  const bs = fs.sb.blockSize;
  if (fs.metadataCsum) {
    const co = recLenAt(b, 0, bs) === bs ? 8 : DX_ROOT_INFO_OFFSET + u8(b, DX_ROOT_INFO_OFFSET + 5);
    const limit = u16(b, co);
    const count = u16(b, co + 2);
    const tail = co + limit * 8;
    if (tail + 8 <= bs) setU32(b, tail + 4, fs.csum.dxNode(fs.inodeSeed(dir), b, co, count, tail));
  }
  handle.dirtyMetadata(bh);
}

function sameName(b: Uint8Array, off: number, name: Uint8Array): boolean {
  if (u8(b, off + 6) !== name.length) return false;
  for (let i = 0; i < name.length; i++) if (b[off + 8 + i] !== name[i]) return false;
  return true;
}

/** ext4_check_dir_entry for an entry of a leaf buffer ending at `end`. */
function checkDirEntry(fs: Ext4, dir: Inode, b: Uint8Array, off: number, end: number, pblk: number): number {
  const bs = fs.sb.blockSize;
  const rlen = recLenAt(b, off, bs);
  const where = { ino: dir.ino, block: pblk };
  if (off + 8 > end) throw corrupted(`directory entry header runs past the block at offset ${off}`, where);
  if (rlen < dirRecLen(1)) throw corrupted(`directory entry rec_len ${rlen} is smaller than minimal at offset ${off}`, where);
  if (rlen % 4) throw corrupted(`directory entry rec_len ${rlen} is not a multiple of 4 at offset ${off}`, where);
  if (rlen < dirRecLen(u8(b, off + 6))) throw corrupted(`directory entry rec_len ${rlen} is too small for its name at offset ${off}`, where);
  if (off + rlen > end) throw corrupted(`directory entry rec_len ${rlen} runs past the block at offset ${off}`, where);
  if (u32(b, off) > fs.sb.inodesCount) throw corrupted(`directory entry points to inode ${u32(b, off)} beyond the inode count`, where);
  return rlen;
}

interface NewEntry { name: Uint8Array; ino: number; fileType: number }

/** Current time for mtime/ctime (current_time), in nanoseconds: two changes a microsecond apart must differ, as the kernel's multigrain stamps do. */
const now = currentTime;

/** The directory changed: mtime, ctime, i_version (add_dirent_to_buf, ext4_unlink). */
function touchDir(dir: Inode): void {
  const t = now();
  dir.mtime = t;
  dir.ctime = { ...t };
  dir.version += 1;
}

/** i_disksize follows i_size for directories (ext4_append); the in-core inode keeps it apart once it has it. */
function setDisksize(dir: Inode): void {
  const d = dir as Inode & { disksize?: number };
  if (d.disksize !== undefined) d.disksize = dir.size;
}

/** ext4_update_dx_flag: an INDEX flag without the dir_index feature is dropped. */
function updateDxFlag(fs: Ext4, dir: Inode): void {
  if (!(fs.sb.featureCompat & COMPAT.DIR_INDEX) && dir.flags & INODE_FLAGS.INDEX) dir.flags &= ~INODE_FLAGS.INDEX;
}

// ---- leaf blocks ----

interface Leaf { bh: BufferHead; lblk: number; end: number }

/** Directory block `lblk` read for writing (ext4_read_dirblock, DIRENT): checksum verified; null for a hole. */
function readLeaf(fs: Ext4, dir: Inode, lblk: number): Leaf | null {
  const m = fs.mapBlocks(dir, lblk, 1);
  // Directories have no preallocated blocks: an unwritten extent is damage (e2fsck clears the flag), never room.
  if (m.kind === MapKind.Unwritten) throw corrupted(`directory block ${lblk} is in an unwritten extent`, { ino: dir.ino });
  if (m.kind !== MapKind.Mapped) return null;
  const bh = fs.bcache.bread(m.pblk, "directory block");
  try {
    return { bh, lblk, end: verifyLeaf(fs, dir, bh.data, m.pblk) };
  } catch (e) {
    fs.bcache.brelse(bh);
    throw e;
  }
}

/**
 * ext4_find_dest_de: the offset of an entry whose slack (or, unused, whole
 * record) holds `need` bytes; -1 if the block is full. EEXIST for the name.
 */
function findDestDe(fs: Ext4, dir: Inode, b: Uint8Array, end: number, name: Uint8Array, pblk: number, start = 0): number {
  const need = dirRecLen(name.length);
  for (let off = start; off < end;) {
    const rlen = checkDirEntry(fs, dir, b, off, end, pblk);
    const ino = u32(b, off);
    if (ino && sameName(b, off, name)) throw new Ext4Error("EEXIST", "file exists", { ino: dir.ino });
    const free = ino ? rlen - dirRecLen(u8(b, off + 6)) : rlen;
    if (free >= need) return off;
    off += rlen;
  }
  return -1;
}

/** ext4_insert_dentry: a live entry gives up its slack to the new one; an unused one is taken whole. */
function insertDentry(fs: Ext4, b: Uint8Array, off: number, e: NewEntry): void {
  const bs = fs.sb.blockSize;
  if (u32(b, off)) {
    const nlen = dirRecLen(u8(b, off + 6));
    const rlen = recLenAt(b, off, bs);
    setRecLen(b, off + nlen, rlen - nlen, bs);
    setRecLen(b, off, nlen, bs);
    off += nlen;
  }
  setU32(b, off, e.ino);
  b[off + 6] = e.name.length;
  b[off + 7] = fs.sb.featureIncompat & INCOMPAT.FILETYPE ? e.fileType : 0;
  b.set(e.name, off + 8);
}

/**
 * add_dirent_to_buf: the entry into this leaf (at `at`, an entry with room, or
 * wherever it fits); false if the leaf is full. The directory's times change.
 */
function addDirentToBuf(handle: Handle, fs: Ext4, dir: Inode, leaf: Leaf, e: NewEntry, at?: number): boolean {
  let off = at ?? findDestDe(fs, dir, leaf.bh.data, leaf.end, e.name, leaf.bh.blocknr);
  if (off >= 0 && at !== undefined) {
    // do_split's entry has room by construction; check anyway rather than overrun the block.
    const b = leaf.bh.data;
    const rlen = recLenAt(b, off, fs.sb.blockSize);
    if ((u32(b, off) ? rlen - dirRecLen(u8(b, off + 6)) : rlen) < dirRecLen(e.name.length)) off = findDestDe(fs, dir, b, leaf.end, e.name, leaf.bh.blocknr);
  }
  if (off < 0) return false;
  handle.getWriteAccess(leaf.bh);
  insertDentry(fs, leaf.bh.data, off, e);
  touchDir(dir);
  updateDxFlag(fs, dir);
  markInodeDirty(handle, fs, dir);
  dirtyDirblock(handle, fs, dir, leaf.bh);
  return true;
}

/**
 * ext4_append: a new block at the directory's end (i_size), zeroed, with
 * i_size and i_disksize grown by a block. Held: the caller brelse()s it.
 */
export function ext4Append(handle: Handle, fs: Ext4, dir: Inode): { bh: BufferHead; lblk: number } {
  const bs = fs.sb.blockSize;
  const lblk = Math.floor(dir.size / bs);
  // A block already there past i_size would be overwritten: the directory is damaged.
  if (fs.mapBlocks(dir, lblk, 1).kind !== MapKind.Hole) throw corrupted(`directory block ${lblk} past i_size is already allocated`, { ino: dir.ino });
  const bh = appendDirBlock(handle, fs, dir, lblk);
  try {
    dir.size += bs;
    setDisksize(dir);
    markInodeDirty(handle, fs, dir);
    handle.getWriteAccess(bh);
  } catch (e) {
    fs.bcache.brelse(bh);
    throw e;
  }
  return { bh, lblk };
}

/** A fresh leaf: one unused entry spanning the block, and the checksum tail. */
function initEmptyLeaf(fs: Ext4, b: Uint8Array): number {
  const bs = fs.sb.blockSize;
  const end = bs - csumSize(fs);
  setU32(b, 0, 0);
  setRecLen(b, 0, end, bs);
  if (fs.metadataCsum) initDirentTail(b, bs);
  return end;
}

// ---- names and hashes ----

function isDotOrDotDot(name: Uint8Array): boolean {
  return (name.length === 1 && name[0] === 0x2e) || (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e);
}

function isAscii(name: Uint8Array): boolean {
  for (const c of name) if (c >= 0x80) return false;
  return true;
}

interface HashInfo { version: number; seed: Uint32Array | null; fold: boolean }

/** The hash the index orders by: the dx_root's version (+3 for unsigned), the filesystem's seed. */
function hashInfo(fs: Ext4, dir: Inode, rootVersion: number): HashInfo {
  let version = rootVersion;
  if (version <= DX_HASH_TEA && fs.sb.flags & SB_FLAGS.UNSIGNED_HASH) version += 3;
  const seed = fs.sb.hashSeed.some((w) => w !== 0) ? fs.sb.hashSeed : null;
  return { version, seed, fold: isCasefolded(fs, dir) };
}

/**
 * ext4fs_dirhash's major hash. A casefolded directory hashes the folded name:
 * for ASCII that is the lower-case name (utf8_casefold); other names we cannot
 * fold as the kernel does, so nothing that needs their hash is done.
 */
function nameHash(h: HashInfo, name: Uint8Array): number {
  if (!h.fold) return dirHash(name, h.version, h.seed).major;
  if (!isAscii(name)) throw new Ext4Error("EOPNOTSUPP", "hashing a non-ASCII name of a casefolded directory");
  const folded = name.map((c) => (c >= 0x41 && c <= 0x5a ? c + 0x20 : c));
  return dirHash(folded, h.version, h.seed).major;
}

/** Before a name is added (ext4_create and the rest may call it before they allocate): ENOKEY, EOPNOTSUPP, ENAMETOOLONG... */
export function checkNewName(fs: Ext4, dir: Inode, name: Uint8Array): void {
  if (!isDir(dir)) throw new Ext4Error("ENOTDIR", "not a directory", { ino: dir.ino });
  if (name.length === 0) throw new Ext4Error("ENOENT", "empty name", { ino: dir.ino });
  if (name.length > EXT4_NAME_LEN) throw new Ext4Error("ENAMETOOLONG", "file name too long", { ino: dir.ino });
  if (name.includes(0x2f) || name.includes(0)) throw new Ext4Error("EINVAL", "a name may not contain '/' or NUL", { ino: dir.ino });
  if (isDotOrDotDot(name)) throw new Ext4Error("EEXIST", "file exists", { ino: dir.ino });
  // No key, no names: the kernel refuses new names in a locked encrypted directory too.
  if (dir.flags & INODE_FLAGS.ENCRYPT) throw new Ext4Error("ENOKEY", "required key not available (encrypted directory)", { ino: dir.ino });
  if (isCasefolded(fs, dir) && !isAscii(name)) {
    throw new Ext4Error("EOPNOTSUPP", "only ASCII names are added to casefolded directories (Unicode folding as the kernel's is not implemented)", { ino: dir.ino });
  }
}

// ---- the API ----

/**
 * ext4_add_entry: links `name` to inode `ino` in `dir` (the caller counts the
 * link). EEXIST if the name is there. Linear directories take it where it
 * fits or grow by a block; a one-block directory that is full becomes an
 * htree when dir_index is on; an indexed directory inserts by hash.
 */
export function addEntry(handle: Handle, fs: Ext4, dir: Inode, name: Uint8Array, ino: number, fileType: number): void {
  // A directory block that fails its checks here is an ext4_error (ext4-error.ts).
  onCorruption(fs, "ext4_add_entry", () => addEntryChecked(handle, fs, dir, name, ino, fileType));
}

function addEntryChecked(handle: Handle, fs: Ext4, dir: Inode, name: Uint8Array, ino: number, fileType: number): void {
  checkNewName(fs, dir, name);
  if (!Number.isInteger(ino) || ino < 1 || ino > fs.sb.inodesCount) throw new Ext4Error("EINVAL", `inode ${ino} is outside the filesystem`, { ino: dir.ino });
  if (lookup(fs, dir, name)) throw new Ext4Error("EEXIST", "file exists", { ino: dir.ino });
  const e: NewEntry = { name: name.slice(), ino, fileType };
  if (dir.flags & INODE_FLAGS.INLINE_DATA && addInlineEntry(handle, fs, dir, e)) return nameAdded(fs, dir, e);
  updateDxFlag(fs, dir);
  let dxFallback = false;
  if (isIndexed(fs, dir)) {
    try {
      dxAddEntry(handle, fs, dir, e);
      return nameAdded(fs, dir, e);
    } catch (err) {
      if (!isBadIndex(err)) throw err;
      // ERR_BAD_DX_DIR: with checksums the index must be right; without, ignore it and go linear.
      if (fs.metadataCsum) throw corrupted("directory has a corrupted htree index", { ino: dir.ino });
      dir.flags &= ~INODE_FLAGS.INDEX;
      dxFallback = true;
      markInodeDirty(handle, fs, dir);
      fs.dcache.forgetDir(dir.ino);
    }
  }
  const bs = fs.sb.blockSize;
  const blocks = Math.floor(dir.size / bs);
  for (let lblk = 0; lblk < blocks; lblk++) {
    const leaf = readLeaf(fs, dir, lblk);
    if (!leaf) {
      // Block 0 holds "." and "..": a hole there is damage, not room (the kernel would fill it, leaving no ".").
      if (lblk === 0) throw corrupted("directory block 0 is a hole", { ino: dir.ino });
      // A hole inside i_size (ext4_bread with CREATE there).
      const bh = appendDirBlock(handle, fs, dir, lblk);
      try {
        handle.getWriteAccess(bh);
        const end = initEmptyLeaf(fs, bh.data);
        addDirentToBuf(handle, fs, dir, { bh, lblk, end }, e, 0);
      } finally {
        fs.bcache.brelse(bh);
      }
      return nameAdded(fs, dir, e);
    }
    try {
      if (addDirentToBuf(handle, fs, dir, leaf, e)) return nameAdded(fs, dir, e);
      if (blocks === 1 && !dxFallback && fs.sb.featureCompat & COMPAT.DIR_INDEX) {
        makeIndexedDir(handle, fs, dir, e, leaf);
        return nameAdded(fs, dir, e);
      }
    } finally {
      fs.bcache.brelse(leaf.bh);
    }
  }
  const { bh, lblk } = ext4Append(handle, fs, dir);
  try {
    const end = initEmptyLeaf(fs, bh.data);
    addDirentToBuf(handle, fs, dir, { bh, lblk, end }, e, 0);
  } finally {
    fs.bcache.brelse(bh);
  }
  nameAdded(fs, dir, e);
}

function nameAdded(fs: Ext4, dir: Inode, e: NewEntry): void {
  // A casefolded directory's negative entries may name the new one by another case: forget them all.
  if (isCasefolded(fs, dir)) fs.dcache.clear();
  else fs.dcache.update(dir.ino, e.name, e.ino);
}

/**
 * ext4_delete_entry with what its callers do to the directory (mtime, ctime):
 * removes `name` from `dir` and returns the inode it named (the caller drops
 * the link). The record goes to the entry before it, or, first in its block,
 * becomes unused. ENOENT if absent. An htree index is never shrunk.
 */
export function deleteEntry(handle: Handle, fs: Ext4, dir: Inode, name: Uint8Array): number {
  return onCorruption(fs, "ext4_delete_entry", () => deleteEntryChecked(handle, fs, dir, name));
}

function deleteEntryChecked(handle: Handle, fs: Ext4, dir: Inode, name: Uint8Array): number {
  if (!isDir(dir)) throw new Ext4Error("ENOTDIR", "not a directory", { ino: dir.ino });
  if (isDotOrDotDot(name)) throw new Ext4Error("EINVAL", "'.' and '..' are not removed by name", { ino: dir.ino });
  if (name.length > EXT4_NAME_LEN) throw new Ext4Error("ENAMETOOLONG", "file name too long", { ino: dir.ino });
  if (dir.flags & INODE_FLAGS.ENCRYPT) throw new Ext4Error("ENOKEY", "required key not available (encrypted directory)", { ino: dir.ino });
  let ino: number;
  if (dir.flags & INODE_FLAGS.INLINE_DATA) {
    ino = deleteInlineEntry(handle, fs, dir, name);
  } else {
    updateDxFlag(fs, dir);
    const found = findEntry(fs, dir, name);
    if (!found) throw new Ext4Error("ENOENT", "no such file or directory", { ino: dir.ino });
    const { leaf, off } = found;
    try {
      handle.getWriteAccess(leaf.bh);
      ino = u32(leaf.bh.data, off);
      genericDeleteEntry(fs, dir, leaf.bh.data, 0, leaf.end, off, leaf.bh.blocknr);
      dirtyDirblock(handle, fs, dir, leaf.bh);
    } finally {
      fs.bcache.brelse(leaf.bh);
    }
  }
  touchDir(dir);
  markInodeDirty(handle, fs, dir);
  if (isCasefolded(fs, dir)) fs.dcache.clear();
  else fs.dcache.update(dir.ino, name, 0);
  return ino;
}

/**
 * ext4_generic_delete_entry: the entry at `off` of the buffer [start, end)
 * goes into the record of the entry before it, or, first, becomes unused
 * (inode 0); its bytes are wiped but for the record length it keeps.
 */
function genericDeleteEntry(fs: Ext4, dir: Inode, b: Uint8Array, start: number, end: number, off: number, pblk: number): void {
  const bs = fs.sb.blockSize;
  let prev = -1;
  for (let p = start; p < off;) {
    const rlen = checkDirEntry(fs, dir, b, p, end, pblk);
    if (p + rlen > off) throw corrupted("directory entry overlaps the one being removed", { ino: dir.ino, block: pblk });
    if (p + rlen === off) prev = p;
    p += rlen;
  }
  const rlen = recLenAt(b, off, bs);
  if (prev >= 0) {
    setRecLen(b, prev, recLenAt(b, prev, bs) + rlen, bs);
    b.fill(0, off, off + rlen);
  } else {
    setU32(b, off, 0);
    b.fill(0, off + 6, off + rlen);
  }
}

// ---- inline directories (i_block: the parent's inode number, then entries to byte 60) ----

const INLINE_DOTDOT_SIZE = 4;
const INLINE_IBLOCK_SIZE = 60;

const SYSTEM_DATA_INDEX = 7;

/** The system.data value (where an inline directory's entries continue past i_block), a copy; empty if none. */
function inlineXattrPart(fs: Ext4, dir: Inode): Uint8Array {
  return inlineDirRegions(fs, dir)[1]?.bytes ?? new Uint8Array(0);
}

/**
 * ext4_try_add_inline_entry: into i_block, else into the system.data part,
 * first grown into the inode's free xattr space when it is empty
 * (ext4_update_inline_dir), else the directory is converted to a block
 * (ext4_convert_inline_data_nolock) and false says the caller adds the name there.
 */
function addInlineEntry(handle: Handle, fs: Ext4, dir: Inode, e: NewEntry): boolean {
  const b = dir.iBlock;
  const off = findDestDe(fs, dir, b, INLINE_IBLOCK_SIZE, e.name, 0, INLINE_DOTDOT_SIZE);
  if (off >= 0) {
    insertDentry(fs, b, off, e);
    touchDir(dir);
    markInodeDirty(handle, fs, dir);
    return true;
  }
  let part = inlineXattrPart(fs, dir);
  if (!part.length) part = updateInlineDir(handle, fs, dir);
  if (part.length) {
    const at = findDestDe(fs, dir, part, part.length, e.name, 0);
    if (at >= 0) {
      insertDentry(fs, part, at, e);
      setXattr(handle, fs, dir, SYSTEM_DATA_INDEX, "data", part);
      touchDir(dir);
      markInodeDirty(handle, fs, dir);
      return true;
    }
  }
  convertInlineDir(handle, fs, dir);
  return false;
}

/**
 * ext4_update_inline_dir: an inline directory with an empty system.data takes
 * all the in-inode xattr space there is (if it holds more than a one-byte
 * name's entry) as one empty entry; i_size grows with it. Returns the new
 * part, or nothing when there is no room.
 */
function updateInlineDir(handle: Handle, fs: Ext4, dir: Inode): Uint8Array {
  const max = maxInlineSize(fs, dir);
  const size = max > INLINE_IBLOCK_SIZE ? max - INLINE_IBLOCK_SIZE : 0;
  // EXT4_DIR_REC_LEN(1).
  if (size <= 12) return new Uint8Array(0);
  const part = new Uint8Array(size);
  setRecLen(part, 0, size, fs.sb.blockSize);
  setXattr(handle, fs, dir, SYSTEM_DATA_INDEX, "data", part);
  dir.size = INLINE_IBLOCK_SIZE + size;
  setDisksize(dir);
  markInodeDirty(handle, fs, dir);
  return part;
}

/**
 * ext4_convert_inline_data_nolock for a directory: block 0 gets "." and ".."
 * (12 bytes each), then the inline entries as they were, the last one
 * stretched to the block's end (ext4_finish_convert_inline_dir); system.data
 * goes, i_block becomes an empty extent root, i_size one block.
 */
function convertInlineDir(handle: Handle, fs: Ext4, dir: Inode): void {
  const bs = fs.sb.blockSize;
  const csum = csumSize(fs);
  const part = inlineXattrPart(fs, dir);
  const buf = new Uint8Array(INLINE_IBLOCK_SIZE + part.length);
  buf.set(dir.iBlock.subarray(0, INLINE_IBLOCK_SIZE));
  buf.set(part, INLINE_IBLOCK_SIZE);
  // ext4_check_all_de: nothing moves unless every entry is sound.
  for (const [from, to] of [[INLINE_DOTDOT_SIZE, INLINE_IBLOCK_SIZE], [INLINE_IBLOCK_SIZE, buf.length]]) {
    for (let off = from; off < to;) off += checkDirEntry(fs, dir, buf, off, to, 0);
  }
  const parent = u32(buf, 0);
  if (24 + buf.length - INLINE_DOTDOT_SIZE > bs - csum) throw corrupted(`inline directory of ${buf.length} bytes does not fit a block`, { ino: dir.ino });
  // ext4_destroy_inline_data_nolock.
  setXattr(handle, fs, dir, SYSTEM_DATA_INDEX, "data", null);
  dir.iBlock.fill(0);
  dir.flags &= ~INODE_FLAGS.INLINE_DATA;
  if (fs.sb.featureIncompat & INCOMPAT.EXTENTS) {
    dir.flags |= INODE_FLAGS.EXTENTS;
    // ext4_ext_tree_init: an empty root of 4 entries.
    setU16(dir.iBlock, 0, 0xf30a);
    setU16(dir.iBlock, 4, 4);
  }
  dir.size = 0;
  const bh = appendDirBlock(handle, fs, dir, 0);
  try {
    handle.getWriteAccess(bh);
    const b = bh.data;
    // ext4_init_dot_dotdot with the real length of "..".
    setU32(b, 0, dir.ino); setRecLen(b, 0, 12, bs); b[6] = 1; b[7] = fs.sb.featureIncompat & INCOMPAT.FILETYPE ? 2 : 0; b[8] = 0x2e;
    setU32(b, 12, parent); setRecLen(b, 12, 12, bs); b[18] = 2; b[19] = b[7]; b[20] = 0x2e; b[21] = 0x2e;
    b.set(buf.subarray(INLINE_DOTDOT_SIZE), 24);
    // ext4_update_final_de: the last entry takes the rest of the block.
    const used = 24 + buf.length - INLINE_DOTDOT_SIZE;
    let last = 0;
    for (let off = 0; off < used; off += recLenAt(b, off, bs)) last = off;
    setRecLen(b, last, bs - csum - last, bs);
    if (csum) initDirentTail(b, bs);
    dir.size = bs;
    setDisksize(dir);
    markInodeDirty(handle, fs, dir);
    dirtyDirblock(handle, fs, dir, bh);
  } finally {
    fs.bcache.brelse(bh);
  }
}

/** ext4_delete_inline_entry: a name in i_block or in the system.data part (the caller marks the inode dirty). */
function deleteInlineEntry(handle: Handle, fs: Ext4, dir: Inode, name: Uint8Array): number {
  const b = dir.iBlock;
  for (let off = INLINE_DOTDOT_SIZE; off < INLINE_IBLOCK_SIZE;) {
    const rlen = checkDirEntry(fs, dir, b, off, INLINE_IBLOCK_SIZE, 0);
    const ino = u32(b, off);
    if (ino && sameName(b, off, name)) {
      genericDeleteEntry(fs, dir, b, INLINE_DOTDOT_SIZE, INLINE_IBLOCK_SIZE, off, 0);
      return ino;
    }
    off += rlen;
  }
  const part = inlineXattrPart(fs, dir);
  for (let off = 0; off < part.length;) {
    const rlen = checkDirEntry(fs, dir, part, off, part.length, 0);
    const ino = u32(part, off);
    if (ino && sameName(part, off, name)) {
      genericDeleteEntry(fs, dir, part, 0, part.length, off, 0);
      setXattr(handle, fs, dir, SYSTEM_DATA_INDEX, "data", part);
      return ino;
    }
    off += rlen;
  }
  throw new Ext4Error("ENOENT", "no such file or directory", { ino: dir.ino });
}

/** ext4_find_entry for writing: the leaf (held) and offset of `name`, or null. */
function findEntry(fs: Ext4, dir: Inode, name: Uint8Array): { leaf: Leaf; off: number } | null {
  if (isIndexed(fs, dir) && (!isCasefolded(fs, dir) || isAscii(name))) {
    try {
      return dxFindEntry(fs, dir, name);
    } catch (e) {
      if (!isBadIndex(e)) throw e; // ERR_BAD_DX_DIR: search the old-fashioned way
    }
  }
  const indexed = isIndexed(fs, dir);
  const n = dirBlocks(fs, dir);
  for (let lblk = indexed ? 1 : 0; lblk < n; lblk++) {
    if (indexed) {
      const m = fs.mapBlocks(dir, lblk, 1);
      if (m.kind !== MapKind.Mapped) continue;
      if (isDxNode(fs, fs.bcache.read(m.pblk, "directory block"))) continue;
    }
    const leaf = readLeaf(fs, dir, lblk);
    if (!leaf) continue;
    const off = searchLeaf(fs, dir, leaf, name);
    if (off >= 0) return { leaf, off };
    fs.bcache.brelse(leaf.bh);
  }
  return null;
}

function searchLeaf(fs: Ext4, dir: Inode, leaf: Leaf, name: Uint8Array): number {
  const b = leaf.bh.data;
  for (let off = 0; off < leaf.end;) {
    const rlen = checkDirEntry(fs, dir, b, off, leaf.end, leaf.bh.blocknr);
    if (u32(b, off) && sameName(b, off, name)) return off;
    off += rlen;
  }
  return -1;
}

// ---- htree ----

/** One level of a dx_probe path: the node's buffer (held), where its count/limit are, the entry taken. */
interface Frame { bh: BufferHead; lblk: number; co: number; at: number }

interface Probe { frames: Frame[]; hash: number; hinfo: HashInfo; levels: number }

const count = (f: Frame) => u16(f.bh.data, f.co + 2);
const limit = (f: Frame) => u16(f.bh.data, f.co);
const entryBlock = (f: Frame, i: number) => u32(f.bh.data, f.co + i * 8 + 4);
const entryHash = (f: Frame, i: number) => u32(f.bh.data, f.co + i * 8);

function release(fs: Ext4, frames: Frame[]): void {
  for (const f of frames) fs.bcache.brelse(f.bh);
  frames.length = 0;
}

/** A directory block as an index node: held, mapped, checked (limit, checksum). */
function readDxNode(fs: Ext4, dir: Inode, lblk: number): BufferHead {
  const m = fs.mapBlocks(dir, lblk, 1);
  if (m.kind !== MapKind.Mapped) throw corrupted("htree index points at a hole", { ino: dir.ino });
  const bh = fs.bcache.bread(m.pblk, "directory block");
  try {
    const b = bh.data;
    if (!isDxNode(fs, b)) throw corrupted("htree interior node expected", { ino: dir.ino, block: m.pblk });
    verifyDxNode(fs, dir, b, m.pblk, 8);
    if (u16(b, 8) !== dxNodeLimit(fs)) throw badIndexError(`htree node limit ${u16(b, 8)}, expected ${dxNodeLimit(fs)}`, { ino: dir.ino, block: m.pblk });
  } catch (e) {
    fs.bcache.brelse(bh);
    throw e;
  }
  return bh;
}

/** dx_probe: the path from the root to the leaf whose range holds the name's hash. */
function dxProbe(fs: Ext4, dir: Inode, name: Uint8Array): Probe {
  const m = fs.mapBlocks(dir, 0, 1);
  if (m.kind !== MapKind.Mapped) throw corrupted("htree directory has a hole at its root", { ino: dir.ino });
  const frames: Frame[] = [];
  let bh: BufferHead | undefined = fs.bcache.bread(m.pblk, "directory block");
  try {
    const root = verifyDxRoot(fs, dir, bh.data, m.pblk);
    if (root.hashVersion > DX_HASH_TEA) throw badIndexError(`htree hash version ${root.hashVersion} unusable here`, { ino: dir.ino, block: m.pblk });
    const hinfo = hashInfo(fs, dir, root.hashVersion);
    const hash = nameHash(hinfo, name);
    const nblocks = dirBlocks(fs, dir);
    let lblk = 0;
    let co = root.countOffset;
    for (let level = 0; ; level++) {
      const entries = readDxEntries(fs, dir, bh.data, bh.blocknr, co, nblocks);
      const at = searchDx(entries, hash);
      frames.push({ bh, lblk, co, at });
      bh = undefined;
      const child = entries[at].block;
      if (child === 0 || frames.some((f) => f.lblk === child)) throw badIndexError(`htree cycle: block ${child} points back up the tree`, { ino: dir.ino });
      if (level === root.levels) return { frames, hash, hinfo, levels: root.levels };
      bh = readDxNode(fs, dir, child);
      lblk = child;
      co = 8;
    }
  } catch (e) {
    if (bh) fs.bcache.brelse(bh);
    release(fs, frames);
    throw e;
  }
}

/** ext4_htree_next_block: on to the next leaf if it continues this hash (collision bit). */
function nextLeaf(fs: Ext4, dir: Inode, p: Probe): boolean {
  const frames = p.frames;
  let l = frames.length - 1;
  while (l >= 0 && frames[l].at + 1 >= count(frames[l])) l--;
  if (l < 0) return false;
  frames[l].at++;
  if ((entryHash(frames[l], frames[l].at) & ~1) >>> 0 !== p.hash) return false;
  for (let k = l + 1; k < frames.length; k++) {
    const child = entryBlock(frames[k - 1], frames[k - 1].at);
    const bh = readDxNode(fs, dir, child);
    fs.bcache.brelse(frames[k].bh);
    frames[k] = { bh, lblk: child, co: 8, at: 0 };
  }
  return true;
}

function dxFindEntry(fs: Ext4, dir: Inode, name: Uint8Array): { leaf: Leaf; off: number } | null {
  const p = dxProbe(fs, dir, name);
  try {
    for (let guard = 0; guard <= dirBlocks(fs, dir); guard++) {
      const f = p.frames[p.frames.length - 1];
      const leaf = readLeaf(fs, dir, entryBlock(f, f.at));
      if (leaf) {
        const off = searchLeaf(fs, dir, leaf, name);
        if (off >= 0) return { leaf, off };
        fs.bcache.brelse(leaf.bh);
      }
      if (!nextLeaf(fs, dir, p)) return null;
    }
    throw corrupted("htree continuation chain does not end", { ino: dir.ino });
  } finally {
    release(fs, p.frames);
  }
}

/** ext4_dir_htree_level: index levels allowed (root included). */
function maxLevels(fs: Ext4): number { return fs.sb.featureIncompat & INCOMPAT.LARGEDIR ? 3 : 2; }

/** dx_insert_block: a new (hash, block) right after the frame's entry. */
function dxInsertBlock(f: Frame, hash: number, block: number): void {
  const b = f.bh.data;
  const n = u16(b, f.co + 2);
  if (n >= u16(b, f.co)) throw new Error(`dx_insert_block into a full node (block ${f.bh.blocknr})`);
  const at = f.co + (f.at + 1) * 8;
  b.copyWithin(at + 8, at, f.co + n * 8);
  setU32(b, at, hash);
  setU32(b, at + 4, block);
  setU16(b, f.co + 2, n + 1);
}

/** ext4_dx_add_entry: into the leaf the hash leads to, splitting leaf and index nodes as they fill. */
function dxAddEntry(handle: Handle, fs: Ext4, dir: Inode, e: NewEntry): void {
  // Each index split changes the path: probe again (as the kernel's restart does); a split makes room, so this settles.
  for (let attempt = 0; attempt < 2 * maxLevels(fs) + 2; attempt++) {
    const p = dxProbe(fs, dir, e.name);
    let leaf: Leaf | null = null;
    let fresh: BufferHead | undefined;
    try {
      const f = p.frames[p.frames.length - 1];
      leaf = readLeaf(fs, dir, entryBlock(f, f.at));
      if (!leaf) throw corrupted("htree leaf is a hole", { ino: dir.ino });
      if (addDirentToBuf(handle, fs, dir, leaf, e)) return;
      if (count(f) === limit(f)) {
        splitIndex(handle, fs, dir, p);
        continue;
      }
      const s = doSplit(handle, fs, dir, leaf, f, p.hinfo, p.hash);
      fresh = s.leaf.bh;
      const target = s.intoNew ? s.leaf : leaf;
      if (!addDirentToBuf(handle, fs, dir, target, e, s.off)) throw new Ext4Error("ENOSPC", "no room for the entry after a leaf split", { ino: dir.ino });
      return;
    } finally {
      if (fresh) fs.bcache.brelse(fresh);
      if (leaf) fs.bcache.brelse(leaf.bh);
      release(fs, p.frames);
    }
  }
  throw new Error(`htree insert into directory ${dir.ino} did not settle`);
}

/**
 * The index half of ext4_dx_add_entry: the lowest full node's nearest
 * ancestor with room takes a new sibling holding half its entries; if all up
 * to the root are full, the root's entries move into a new node one level
 * down (a new level, up to ext4_dir_htree_level).
 */
function splitIndex(handle: Handle, fs: Ext4, dir: Inode, p: Probe): void {
  const frames = p.frames;
  const levels = frames.length;
  let fi = levels - 1;
  let addLevel = true;
  while (fi > 0) {
    if (count(frames[fi - 1]) < limit(frames[fi - 1])) { addLevel = false; break; }
    fi--;
  }
  if (addLevel && levels === maxLevels(fs)) {
    const hint = maxLevels(fs) < 3 ? " (large_dir is off)" : "";
    throw new Ext4Error("ENOSPC", `directory index full at its ${levels} levels${hint}`, { ino: dir.ino });
  }
  const f = frames[fi];
  const icount = count(f);
  const nodeLimit = dxNodeLimit(fs);
  const { bh: bh2, lblk: newblock } = ext4Append(handle, fs, dir);
  try {
    handle.getWriteAccess(f.bh);
    if (!addLevel) handle.getWriteAccess(frames[fi - 1].bh);
    const b = f.bh.data;
    const d2 = bh2.data;
    // The new node: a fake empty dirent over the whole block, then limit/count.
    setU32(d2, 0, 0);
    setRecLen(d2, 0, fs.sb.blockSize, fs.sb.blockSize);
    d2[6] = 0;
    d2[7] = 0;
    if (!addLevel) {
      const icount1 = icount >>> 1;
      const hash2 = u32(b, f.co + icount1 * 8);
      d2.set(b.subarray(f.co + icount1 * 8, f.co + icount * 8), 8);
      setU16(d2, 8, nodeLimit);
      setU16(d2, 10, icount - icount1);
      setU16(b, f.co + 2, icount1);
      dxInsertBlock(frames[fi - 1], hash2, newblock);
      dirtyDxNode(handle, fs, dir, bh2);
      dirtyDxNode(handle, fs, dir, frames[fi - 1].bh);
      dirtyDxNode(handle, fs, dir, f.bh);
    } else {
      // f is the root: all of its entries go one level down.
      d2.set(b.subarray(f.co, f.co + icount * 8), 8);
      setU16(d2, 8, nodeLimit);
      setU16(b, f.co + 2, 1);
      setU32(b, f.co + 4, newblock);
      b[DX_ROOT_INFO_OFFSET + 6] += 1;
      dirtyDxNode(handle, fs, dir, f.bh);
      dirtyDxNode(handle, fs, dir, bh2);
    }
  } finally {
    fs.bcache.brelse(bh2);
  }
}

interface MapEntry { hash: number; offs: number; size: number }

/** dx_make_map: hash, offset and record length of each live entry of a leaf. */
function makeMap(fs: Ext4, dir: Inode, leaf: Leaf, h: HashInfo): MapEntry[] {
  const b = leaf.bh.data;
  const map: MapEntry[] = [];
  for (let off = 0; off < leaf.end;) {
    const rlen = checkDirEntry(fs, dir, b, off, leaf.end, leaf.bh.blocknr);
    const nl = u8(b, off + 6);
    if (u32(b, off) && nl) map.push({ hash: nameHash(h, b.subarray(off + 8, off + 8 + nl)), offs: off, size: rlen });
    off += rlen;
  }
  return map;
}

/**
 * do_split: a full leaf's entries sorted by hash, the upper ones (no more than
 * half the block) moved to a new leaf, whose hash (with the continuation bit
 * when a hash straddles the split) goes into the index after the frame's
 * entry. Says which leaf the new name (hash `hash`) belongs in, and the entry
 * there to append after. The new leaf is held: the caller brelse()s it.
 */
function doSplit(handle: Handle, fs: Ext4, dir: Inode, leaf: Leaf, f: Frame, h: HashInfo, hash: number): { leaf: Leaf; intoNew: boolean; off: number } {
  const bs = fs.sb.blockSize;
  const end = bs - csumSize(fs);
  // Hash everything first: a name we cannot hash must stop us before any change.
  const map = makeMap(fs, dir, leaf, h);
  if (map.length < 2) throw corrupted("full htree leaf with fewer than two entries", { ino: dir.ino, block: leaf.bh.blocknr });
  map.sort((x, y) => x.hash - y.hash);
  const { bh: bh2, lblk: newblock } = ext4Append(handle, fs, dir);
  try {
    handle.getWriteAccess(leaf.bh);
    handle.getWriteAccess(f.bh);
    const n = map.length;
    let size = 0;
    let move = 0;
    let i: number;
    // Neither half may end up over half full.
    for (i = n - 1; i >= 0; i--) {
      if (size + (map[i].size >>> 1) > bs >>> 1) break;
      size += map[i].size;
      move++;
    }
    const split = i > 0 ? n - move : n >>> 1;
    const hash2 = map[split].hash;
    const continued = hash2 === map[split - 1].hash ? 1 : 0;
    const b = leaf.bh.data;
    const d2 = bh2.data;
    // dx_move_dirents: the upper entries, tight, in hash order; their old records wiped but for rec_len.
    let to = 0;
    let last2 = 0;
    for (let k = split; k < n; k++) {
      const o = map[k].offs;
      const rl = dirRecLen(u8(b, o + 6));
      d2.set(b.subarray(o, o + rl), to);
      setRecLen(d2, to, rl, bs);
      setU32(b, o, 0);
      b.fill(0, o + 6, o + recLenAt(b, o, bs));
      last2 = to;
      to += rl;
    }
    // dx_pack_dirents: what stays, tight, in its old order.
    let last1 = 0;
    let at = 0;
    for (let off = 0; off < end;) {
      const rlen = recLenAt(b, off, bs);
      const nl = u8(b, off + 6);
      if (u32(b, off) && nl) {
        const rl = dirRecLen(nl);
        if (off > at) b.copyWithin(at, off, off + rl);
        setRecLen(b, at, rl, bs);
        last1 = at;
        at += rl;
      }
      off += rlen;
    }
    setRecLen(b, last1, end - last1, bs);
    setRecLen(d2, last2, end - last2, bs);
    if (fs.metadataCsum) {
      initDirentTail(b, bs);
      initDirentTail(d2, bs);
    }
    const intoNew = hash >>> 0 >= hash2 >>> 0;
    dxInsertBlock(f, (hash2 + continued) >>> 0, newblock);
    const fresh: Leaf = { bh: bh2, lblk: newblock, end };
    // The leaf that does not take the new name is done; the other is dirtied by add_dirent_to_buf.
    dirtyDirblock(handle, fs, dir, intoNew ? leaf.bh : bh2);
    dirtyDxNode(handle, fs, dir, f.bh);
    return { leaf: fresh, intoNew, off: intoNew ? last2 : last1 };
  } catch (e) {
    fs.bcache.brelse(bh2);
    throw e;
  }
}

/**
 * make_indexed_dir: block 0 keeps "." and ".." and becomes the dx root; its
 * other entries move to a new block 1, which is then split by hash, and the
 * new name goes where its hash says.
 */
function makeIndexedDir(handle: Handle, fs: Ext4, dir: Inode, e: NewEntry, leaf: Leaf): void {
  const bs = fs.sb.blockSize;
  const csum = csumSize(fs);
  const where = { ino: dir.ino, block: leaf.bh.blocknr };
  let b = leaf.bh.data;
  if (u8(b, 6) !== 1 || b[8] !== 0x2e || recLenAt(b, 0, bs) !== 12) throw corrupted("directory does not begin with '.'", where);
  if (u8(b, 12 + 6) !== 2 || b[20] !== 0x2e || b[21] !== 0x2e) throw corrupted("directory's second entry is not '..'", where);
  const deOff = 12 + recLenAt(b, 12, bs);
  if (deOff >= bs - csum) throw corrupted("invalid rec_len for '..'", where);
  const len = bs - csum - deOff;
  const h = hashInfo(fs, dir, fs.sb.defHashVersion);
  if (h.version > DX_HASH_TEA + 3) throw new Ext4Error("EOPNOTSUPP", `default hash version ${fs.sb.defHashVersion} cannot index a directory`, { ino: dir.ino });
  // Every name moved is hashed by do_split: one we cannot hash must stop us before any change.
  if (h.fold) {
    for (let off = deOff; off < bs - csum;) {
      const rlen = checkDirEntry(fs, dir, b, off, bs - csum, leaf.bh.blocknr);
      if (u32(b, off)) nameHash(h, b.subarray(off + 8, off + 8 + u8(b, off + 6)));
      off += rlen;
    }
  }
  handle.getWriteAccess(leaf.bh);
  const moved = b.slice(deOff, deOff + len);
  const { bh: bh2, lblk } = ext4Append(handle, fs, dir);
  const second: Leaf = { bh: bh2, lblk, end: bs - csum };
  let fresh: BufferHead | undefined;
  try {
    dir.flags |= INODE_FLAGS.INDEX;
    markInodeDirty(handle, fs, dir);
    fs.dcache.forgetDir(dir.ino);
    b = leaf.bh.data;
    const d2 = bh2.data;
    d2.set(moved, 0);
    b.fill(0, deOff, deOff + len);
    let last = 0;
    for (let off = 0; off < len;) {
      const rlen = checkDirEntry(fs, dir, d2, off, len, bh2.blocknr);
      last = off;
      off += rlen;
    }
    setRecLen(d2, last, bs - csum - last, bs);
    if (csum) initDirentTail(d2, bs);
    // The root: ".." spans the block, then dx_root_info and the one entry (block 1).
    setRecLen(b, 12, bs - 12, bs);
    b.fill(0, DX_ROOT_INFO_OFFSET, DX_ROOT_INFO_OFFSET + 8);
    b[DX_ROOT_INFO_OFFSET + 4] = fs.sb.defHashVersion;
    b[DX_ROOT_INFO_OFFSET + 5] = 8;
    const co = DX_ROOT_INFO_OFFSET + 8;
    const rootLimit = dxRootLimit(fs, 8);
    setU16(b, co, rootLimit);
    setU16(b, co + 2, 1);
    setU32(b, co + 4, lblk);
    if (csum) b.fill(0, co + rootLimit * 8, co + rootLimit * 8 + 8);
    const frame: Frame = { bh: leaf.bh, lblk: 0, co, at: 0 };
    dirtyDxNode(handle, fs, dir, leaf.bh);
    dirtyDirblock(handle, fs, dir, bh2);
    const hash = nameHash(h, e.name);
    const s = doSplit(handle, fs, dir, second, frame, h, hash);
    fresh = s.leaf.bh;
    if (!addDirentToBuf(handle, fs, dir, s.intoNew ? s.leaf : second, e, s.off)) throw new Ext4Error("ENOSPC", "no room for the entry after a leaf split", { ino: dir.ino });
  } finally {
    if (fresh) fs.bcache.brelse(fresh);
    fs.bcache.brelse(bh2);
  }
}

// ---- link counts of directories ----

/** EXT4_DIR_LINK_MAX: no further subdirectory (EMLINK), unless an indexed directory with dir_nlink. */
export function dirLinkMax(fs: Ext4, dir: Inode): boolean {
  return dir.linksCount >= EXT4_LINK_MAX && !((fs.sb.featureRoCompat & RO_COMPAT.DIR_NLINK) !== 0 && isIndexed(fs, dir));
}

/**
 * ext4_inc_count for a directory gaining a subdirectory (mkdir, rename): EMLINK
 * past EXT4_LINK_MAX in a linear directory; an indexed one goes to i_nlink 1
 * ("many") instead. The caller marks the inode dirty.
 */
export function incDirLinks(fs: Ext4, dir: Inode): void {
  if (dirLinkMax(fs, dir)) throw new Ext4Error("EMLINK", "too many links", { ino: dir.ino });
  dir.linksCount++;
  if (isIndexed(fs, dir) && (dir.linksCount > EXT4_LINK_MAX || dir.linksCount === 2)) dir.linksCount = 1;
}

/** ext4_dec_count: a directory at i_nlink 1 (or 2) stays there. The caller marks the inode dirty. */
export function decDirLinks(_fs: Ext4, inode: Inode): void {
  if (!isDir(inode) || inode.linksCount > 2) inode.linksCount--;
}

// ---- journal credits ----

/** EXT4_DATA_TRANS_BLOCKS: one block's worth of mapping changes, xattrs and quota. */
function dataTransBlocks(fs: Ext4): number {
  const singleData = fs.sb.featureIncompat & INCOMPAT.EXTENTS ? 20 : 8;
  const quota = fs.sb.featureRoCompat & RO_COMPAT.QUOTA ? 3 : 0;
  return singleData + 6 - 2 + quota;
}

/** Credits for one addEntry (ext4_link: EXT4_DATA_TRANS_BLOCKS + EXT4_INDEX_EXTRA_TRANS_BLOCKS), splits included. */
export function addEntryCredits(fs: Ext4): number { return dataTransBlocks(fs) + 12; }

/** Credits for one deleteEntry (ext4_unlink's EXT4_DATA_TRANS_BLOCKS). */
export function deleteEntryCredits(fs: Ext4): number { return dataTransBlocks(fs); }

// ---- rename's in-place edits ----

/**
 * ext4_setent: the existing entry `name` of `dir` is pointed at inode `ino`
 * (the file type too, with the filetype feature), in place; the directory's
 * mtime and ctime change. Returns the inode the entry named before. ENOENT if absent.
 */
export function setEntry(handle: Handle, fs: Ext4, dir: Inode, name: Uint8Array, ino: number, fileType: number): number {
  return onCorruption(fs, "ext4_setent", () => setEntryChecked(handle, fs, dir, name, ino, fileType));
}

function setEntryChecked(handle: Handle, fs: Ext4, dir: Inode, name: Uint8Array, ino: number, fileType: number): number {
  if (!isDir(dir)) throw new Ext4Error("ENOTDIR", "not a directory", { ino: dir.ino });
  const ft = fs.sb.featureIncompat & INCOMPAT.FILETYPE;
  let old = 0;
  if (dir.flags & INODE_FLAGS.INLINE_DATA) {
    const set = (b: Uint8Array, from: number, to: number): boolean => {
      for (let off = from; off < to;) {
        const rlen = checkDirEntry(fs, dir, b, off, to, 0);
        if (u32(b, off) && sameName(b, off, name)) {
          old = u32(b, off);
          setU32(b, off, ino);
          if (ft) b[off + 7] = fileType;
          return true;
        }
        off += rlen;
      }
      return false;
    };
    if (!set(dir.iBlock, INLINE_DOTDOT_SIZE, INLINE_IBLOCK_SIZE)) {
      const part = inlineXattrPart(fs, dir);
      if (!set(part, 0, part.length)) throw new Ext4Error("ENOENT", "no such file or directory", { ino: dir.ino });
      setXattr(handle, fs, dir, SYSTEM_DATA_INDEX, "data", part);
    }
  } else {
    const found = findEntry(fs, dir, name);
    if (!found) throw new Ext4Error("ENOENT", "no such file or directory", { ino: dir.ino });
    const { leaf, off } = found;
    try {
      handle.getWriteAccess(leaf.bh);
      const b = leaf.bh.data;
      old = u32(b, off);
      setU32(b, off, ino);
      if (ft) b[off + 7] = fileType;
      dirtyDirblock(handle, fs, dir, leaf.bh);
    } finally {
      fs.bcache.brelse(leaf.bh);
    }
  }
  touchDir(dir);
  markInodeDirty(handle, fs, dir);
  if (isCasefolded(fs, dir)) fs.dcache.clear();
  else fs.dcache.update(dir.ino, name, ino);
  return old;
}

/**
 * The directory's ".." (ext4_get_first_dir_block: the second entry of block
 * 0, or an inline directory's first four bytes). EFSCORRUPTED if block 0 does
 * not start with "." and "..".
 */
export function readDotDot(fs: Ext4, dir: Inode): number {
  if (dir.flags & INODE_FLAGS.INLINE_DATA) return u32(dir.iBlock, 0);
  const { bh } = dotDotBlock(fs, dir);
  try {
    return u32(bh.data, 12);
  } finally {
    fs.bcache.brelse(bh);
  }
}

/** ext4_rename_dir_finish: a moved directory's ".." now names `parent`. */
export function setDotDot(handle: Handle, fs: Ext4, dir: Inode, parent: number): void {
  onCorruption(fs, "ext4_rename_dir_finish", () => setDotDotChecked(handle, fs, dir, parent));
}

function setDotDotChecked(handle: Handle, fs: Ext4, dir: Inode, parent: number): void {
  if (dir.flags & INODE_FLAGS.INLINE_DATA) {
    setU32(dir.iBlock, 0, parent);
    markInodeDirty(handle, fs, dir);
  } else {
    const { bh } = dotDotBlock(fs, dir);
    try {
      handle.getWriteAccess(bh);
      setU32(bh.data, 12, parent);
      if (isIndexed(fs, dir)) dirtyDxNode(handle, fs, dir, bh);
      else dirtyDirblock(handle, fs, dir, bh);
    } finally {
      fs.bcache.brelse(bh);
    }
  }
  fs.dcache.update(dir.ino, Uint8Array.of(0x2e, 0x2e), parent);
}

function dotDotBlock(fs: Ext4, dir: Inode): { bh: BufferHead } {
  const m = fs.mapBlocks(dir, 0, 1);
  if (m.kind !== MapKind.Mapped) throw corrupted("directory has no block 0", { ino: dir.ino });
  const bh = fs.bcache.bread(m.pblk, "directory block");
  const b = bh.data;
  const bs = fs.sb.blockSize;
  try {
    // ext4_read_dirblock: the block's checksum (a dx root's, or a leaf's) first.
    if (isIndexed(fs, dir)) verifyDxRoot(fs, dir, b, m.pblk);
    else verifyLeaf(fs, dir, b, m.pblk);
  } catch (e) {
    if (!isBadIndex(e)) {
      fs.bcache.brelse(bh);
      throw e;
    }
  }
  const ok = u32(b, 0) === dir.ino && u8(b, 6) === 1 && b[8] === 0x2e && recLenAt(b, 0, bs) === 12 &&
    u8(b, 18) === 2 && b[20] === 0x2e && b[21] === 0x2e;
  if (!ok) {
    fs.bcache.brelse(bh);
    throw corrupted("directory block 0 does not begin with '.' and '..'", { ino: dir.ino, block: m.pblk });
  }
  return { bh };
}

/** The credits of one rename (ext4_rename: two directories' entries, one index insert). */
export function renameCredits(fs: Ext4, exchange: boolean): number {
  return 2 * dataTransBlocks(fs) + (exchange ? 24 : 12) + 2;
}
