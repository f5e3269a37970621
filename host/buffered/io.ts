// The interface both buffered I/O paths implement, and the read loop they
// share (filemap_read: make the range uptodate in the cache, copy out, keep
// readahead going).

import { Ext4Error } from "../errors.js";
import { RO_COMPAT } from "../format/features.js";
import { INODE_FLAGS, type Inode } from "../format/inode.js";
import { hasRoCompat } from "../format/superblock.js";
import type { Ext4Inode } from "../fs/inode.js";
import type { Ext4 } from "../fs/super.js";
import { PAGE_SIZE } from "../cache/folio-cache.js";
import type { ReadaheadState } from "./readahead.js";

export interface BufferedIO {
  readonly name: "bh" | "iomap";
  /**
   * Reads file bytes [pos, pos + dst.length) clipped to i_size into dst,
   * through the folio cache. Returns the number of bytes read (0 at EOF).
   */
  read(inode: Inode, pos: number, dst: Uint8Array, ra: ReadaheadState): number;
  /**
   * generic_perform_write: file bytes [pos, pos+src.length) from src through
   * the cache. i_size grows, i_disksize by the path's rules; ENOSPC (typed,
   * with ino) at write time, never at writeback; a failure after some bytes
   * returns the bytes done. The caller has done the VFS checks, holds the
   * inode (iget) and updates mtime/ctime itself.
   */
  write(inode: Ext4Inode, pos: number, src: Uint8Array, opts?: { dontcache?: boolean }): number;
  /** filemap_fdatawrite_range over bytes [from, to), and the wait with `sync` (a recorded error thrown then). */
  writeback(inode: Ext4Inode, from: number, to: number, sync: boolean): void;
  /** ext4_sync_file for a regular file: data written and waited, then the journal commit (or a flush). */
  fsync(inode: Ext4Inode, datasync: boolean): void;
  /** ext4_block_zero_page_range: zeroes [from, to) of mapped or delayed blocks through the cache, dirty. Outside any handle. */
  zeroRange(inode: Ext4Inode, from: number, to: number): void;
  /** ext4_alloc_da_blocks (filemap_flush): auto_da_alloc's forced allocation of delayed blocks. */
  allocDaBlocks(inode: Ext4Inode): void;
}

/** Bytes copied out per round: bounds how much must stay cached between fill and copy. */
const COPY_CHUNK = 2 << 20;

/**
 * filemap_read for either path: `fill(inode, from, to, pins)` is the path's
 * own readahead (it makes [from, to) uptodate and skips what already is); with
 * `pins` it also pins every folio of the range and lists it there.
 */
export function bufferedRead(
  fs: Ext4, inode: Inode, pos: number, dst: Uint8Array, ra: ReadaheadState,
  fill: (inode: Inode, from: number, to: number, pins?: number[]) => void,
): number {
  if (inode.flags & INODE_FLAGS.ENCRYPT) refuseEncrypted(inode);
  // Past s_maxbytes the file ends, whatever a (corrupt) i_size says.
  const size = Math.min(inode.size, maxBytes(fs, inode));
  if (pos >= size || dst.length === 0) return 0;
  const len = Math.min(dst.length, size - pos);
  const plan = ra.plan(pos, len, size);
  for (let done = 0; done < len; ) {
    const p = pos + done;
    const n = Math.min(len - done, COPY_CHUNK - (p % COPY_CHUNK));
    if (!copyIfUptodate(fs, inode, p, dst.subarray(done), n)) {
      // The fill pins what it makes uptodate, so its own later allocations cannot reclaim it before the copy.
      const pins: number[] = [];
      try {
        fill(inode, p, p + n, pins);
        copyFromFolios(fs, inode, p, dst.subarray(done), n);
      } finally {
        for (const slot of pins) fs.cache.x.folioUnpin(slot);
      }
    }
    done += n;
  }
  if (plan.to > plan.from) {
    // Readahead is a hint: an I/O error there (a truncated image) leaves its folios not
    // uptodate, as in the kernel, and only the read that needs them reports it.
    try {
      fill(inode, plan.from, plan.to);
    } catch (e) {
      if (!(e instanceof Ext4Error && e.code === "EIO")) throw e;
    }
  }
  return len;
}

/**
 * s_maxbytes (ext4_max_size, ext4_max_bitmap_size): logical blocks are 32-bit,
 * block maps reach 12 + p + p^2 + p^3 blocks, and without huge_file i_blocks
 * counts at most 2^32 - 1 sectors. filemap_read ends a file there.
 */
export function maxBytes(fs: Ext4, inode: Inode): number {
  const bs = fs.sb.blockSize;
  const per = bs / 4;
  let blocks = 2 ** 32 - 1;
  if (!(inode.flags & INODE_FLAGS.EXTENTS)) blocks = Math.min(blocks, 12 + per + per ** 2 + per ** 3);
  if (!hasRoCompat(fs.sb, RO_COMPAT.HUGE_FILE)) blocks = Math.min(blocks, Math.floor((2 ** 32 - 1) / (bs / 512)));
  return blocks * bs;
}

/**
 * The cheap common case: copies [pos, pos+len) out if every block of it is
 * cached and uptodate, with one lookup per folio. Returns false at the first
 * folio that is missing or not uptodate (what was copied so far is rewritten
 * after the fill).
 */
function copyIfUptodate(fs: Ext4, inode: Inode, pos: number, dst: Uint8Array, len: number): boolean {
  const cache = fs.cache;
  const bs = fs.sb.blockSize;
  const mem = fs.wasm.u8;
  const mapping = cache.mappingOf(inode);
  for (let done = 0; done < len; ) {
    const p = pos + done;
    const slot = cache.lookup(mapping, Math.floor(p / PAGE_SIZE));
    if (slot < 0) return false;
    const fStart = cache.index(slot) * PAGE_SIZE;
    const off = p - fStart;
    const n = Math.min(len - done, cache.size(slot) - off);
    const b0 = Math.floor(off / bs);
    if (!cache.isUptodate(slot, b0, Math.ceil((off + n) / bs) - b0)) return false;
    const at = cache.addr(slot) + off;
    dst.set(mem.subarray(at, at + n), done);
    done += n;
  }
  return true;
}

/** Copies file bytes [pos, pos+len) out of uptodate folios into dst. */
export function copyFromFolios(fs: Ext4, inode: Inode, pos: number, dst: Uint8Array, len: number): void {
  let done = 0;
  const cache = fs.cache;
  const mem = fs.wasm.u8;
  const mapping = cache.mappingOf(inode);
  while (done < len) {
    const p = pos + done;
    const slot = cache.lookup(mapping, Math.floor(p / PAGE_SIZE));
    if (slot < 0) throw new Ext4Error("EIO", `folio for offset ${p} vanished before copy-out`, { ino: inode.ino });
    const fStart = cache.index(slot) * PAGE_SIZE;
    const off = p - fStart;
    const n = Math.min(len - done, cache.size(slot) - off);
    const at = cache.addr(slot) + off;
    dst.set(mem.subarray(at, at + n), done);
    done += n;
  }
}

/** The encrypted-content refusal shared by both paths. */
export function refuseEncrypted(inode: Inode): never {
  throw new Ext4Error("ENOKEY", "file content is encrypted (fscrypt); no key is available", { ino: inode.ino });
}

/**
 * Drop-behind (the kernel's RWF_DONTCACHE / folio dropbehind): releases the
 * cached folios of `inode` from page `fromPage` on that end by byte `to`
 * (or anywhere, at `eof`), for a reader that will not read them again (a copy
 * out of the image). Readahead folios reaching past `to` stay for the next
 * read. Returns the page to start from next time. Dirty folios are kept.
 */
export function dropBehind(fs: Ext4, inode: Pick<Inode, "ino" | "generation">, fromPage: number, to: number, eof: boolean): number {
  const cache = fs.cache;
  const mapping = cache.mappingOf(inode);
  const endPage = Math.ceil(to / PAGE_SIZE);
  let p = fromPage;
  while (p < endPage) {
    const s = cache.lookup(mapping, p);
    if (s < 0) { p++; continue; }
    const next = cache.index(s) + (1 << cache.order(s));
    if (next > endPage && !eof) return p;
    cache.x.folioDropIfIdle(s); // as reclaim would: never a pinned, dirty or writeback folio
    p = next;
  }
  return p;
}
