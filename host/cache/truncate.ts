// Page-cache truncation (mm/truncate.c): truncate_inode_pages_range for a
// byte range of an inode's mapping. Whole folios in the range go, dirty ones
// too (their dirty accounting goes with them); a folio straddling an edge
// stays, with its bytes inside the range zeroed and their blocks no longer
// dirty, unless it is a clean large folio (dropped whole, as a split would). The buffered layer registers a hook for the per-block state it keeps
// beside a folio (buffer heads: block_invalidate_folio), so this layer never
// imports it.

import type { Ext4Inode } from "../fs/inode.js";
import type { Ext4 } from "../fs/super.js";
import { PAGE_SIZE, type FolioCache } from "./folio-cache.js";
import { MAX_INDEX } from "./mappings.js";

/**
 * invalidate_folio: bytes [offset, offset+length) of folio `slot` are being
 * truncated away (the folio stays cached when the range is partial; with the
 * whole folio, it is about to be dropped).
 */
export type InvalidateFolioHook = (slot: number, offset: number, length: number) => void;

const hooks = new WeakMap<FolioCache, InvalidateFolioHook>();

/** The buffered layer's invalidate_folio for this cache's data mappings (undefined: none). */
export function setInvalidateFolioHook(cache: FolioCache, hook: InvalidateFolioHook | undefined): void {
  if (hook) hooks.set(cache, hook);
  else hooks.delete(cache);
}

/**
 * Keeps inode.dirtyFolios equal to the folios of its mapping with unwritten
 * data (dirty or under writeback), and lets the inode cache re-file it.
 */
export function syncDirtyFolios(fs: Ext4, inode: Ext4Inode): void {
  const x = fs.cache.x;
  const id = fs.cache.mappingOf(inode);
  const n = (x.mappingStat(id, 2) >>> 0) + (x.mappingStat(id, 4) >>> 0);
  if (n !== inode.dirtyFolios) {
    inode.dirtyFolios = n;
    fs.inodeSettled(inode);
  }
}

/**
 * truncate_inode_pages_range: drops the folios of bytes [from, to) of the
 * inode's mapping and zeroes the parts of edge folios inside the range.
 * Writeback here always completes within the call that starts it, so there
 * is none to wait out (a folio still under writeback is EBUSY from the cache).
 */
export function truncateInodePages(fs: Ext4, inode: Ext4Inode, from: number, to = Infinity): void {
  const cache = fs.cache;
  if (!(to > from)) return;
  const id = cache.mappingOf(inode);
  const hook = hooks.get(cache);
  const bs = cache.blockSize;
  const startPage = Math.floor(from / PAGE_SIZE);
  const endPage = to === Infinity ? MAX_INDEX : Math.ceil(to / PAGE_SIZE);
  // Edge folios first (their bytes in the range zeroed), then the whole ones dropped.
  let dropFrom = startPage;
  let dropTo = endPage;
  const cleanEdges: number[] = [];
  for (const slot of cache.folios(id, startPage, endPage)) {
    const fStart = cache.index(slot) * PAGE_SIZE;
    const fEnd = fStart + cache.size(slot);
    if (fStart >= from && fEnd <= to) {
      hook?.(slot, 0, fEnd - fStart);
      continue;
    }
    // A large folio the kernel would split: clean, it goes whole (what a failed split does), so no
    // zeroed copy of the range stays cached over blocks a collapse or insert range maps anew.
    if (cache.order(slot) > 0 && !cache.isDirty(slot) && !cache.isUnderWriteback(slot)) {
      hook?.(slot, 0, fEnd - fStart);
      cleanEdges.push(slot);
      if (fStart < from) dropFrom = Math.max(dropFrom, cache.index(slot) + (1 << cache.order(slot)));
      if (fEnd > to) dropTo = Math.min(dropTo, cache.index(slot));
      continue;
    }
    const zFrom = Math.max(from, fStart);
    const zTo = Math.min(to, fEnd);
    cache.x.zeroRange(cache.addr(slot) + (zFrom - fStart), zTo - zFrom);
    hook?.(slot, zFrom - fStart, zTo - zFrom);
    // Blocks wholly inside the range hold nothing to write any more.
    const b0 = Math.ceil((zFrom - fStart) / bs);
    const b1 = Math.floor((zTo - fStart) / bs);
    if (b1 > b0) cache.x.folioClearDirty(slot, b0, b1 - b0);
    if (fStart < from) dropFrom = Math.max(dropFrom, cache.index(slot) + (1 << cache.order(slot)));
    if (fEnd > to) dropTo = Math.min(dropTo, cache.index(slot));
  }
  if (dropTo > dropFrom) cache.truncate(id, dropFrom, dropTo);
  for (const slot of cleanEdges) cache.truncate(id, cache.index(slot), cache.index(slot) + (1 << cache.order(slot)));
  syncDirtyFolios(fs, inode);
}
