// Dirty accounting and writeback, after mm/page-writeback.c and
// fs/fs-writeback.c, for a synchronous engine: there is no flusher thread, so
// the writer that crosses the dirty threshold writes back itself
// (balance_dirty_pages) down to the background threshold, through a callback
// the upper layer registers (its ->writepages). Folio creation that finds
// everything dirty or under writeback writes back through the same callback
// before it gives up, so a writer that fills the cache goes on.

import { Ext4Error } from "../errors.js";
import type { FolioCache } from "./folio-cache.js";
import { MAX_INDEX } from "./mappings.js";

/**
 * Writes back the dirty folios of `mapping` in pages [start, end) and clears
 * their dirty state (writeCachePages does the folio state machine for it).
 * I/O errors are recorded on the mapping (endWriteback with an error), not
 * thrown: writeback never fails the writer that triggered it.
 */
export type WritebackFn = (mapping: number, start: number, end: number) => void;

export interface DirtyLimits {
  /** vm.dirty_ratio: past this fraction of the cache budget dirty, a writer writes back. */
  dirtyRatio: number;
  /** vm.dirty_background_ratio: writeback started by a writer goes down to this fraction. */
  backgroundRatio: number;
}

/** MAX_WRITEBACK_PAGES: pages written from one mapping before moving on to the next. */
export const WRITEBACK_CHUNK_PAGES = 1024;

export class Writeback {
  private fn: WritebackFn | undefined;
  private limits: DirtyLimits = { dirtyRatio: 0.2, backgroundRatio: 0.1 };
  /** Set while the callback runs: writeback does not recurse into itself (the kernel's PF_MEMALLOC). */
  private active = false;
  /** Pages written back by balanceDirty and by folio creation (statistics). */
  writtenPages = 0;
  /** The cache budget in bytes (fixed at set-up). */
  private capacity = 0;

  constructor(private readonly cache: FolioCache) {}

  /** Registers the upper layer's writeback (undefined: none; dirty folios then only wait for sync). */
  setCallback(fn: WritebackFn | undefined): void { this.fn = fn; }

  setLimits(limits: Partial<DirtyLimits>): void {
    const l = { ...this.limits, ...limits };
    if (!(l.backgroundRatio > 0 && l.backgroundRatio <= l.dirtyRatio && l.dirtyRatio <= 1)) {
      throw new Ext4Error("EINVAL", `dirty limits need 0 < backgroundRatio <= dirtyRatio <= 1 (got ${l.backgroundRatio}, ${l.dirtyRatio})`);
    }
    this.limits = l;
  }

  /** The two thresholds in bytes of the cache budget. */
  thresholds(): { dirty: number; background: number } {
    const cap = this.cache.x.cacheCapacityBytes() >>> 0;
    return { dirty: Math.floor(cap * this.limits.dirtyRatio), background: Math.floor(cap * this.limits.backgroundRatio) };
  }

  /** Dirty and writeback bytes together, as balance_dirty_pages counts them. */
  private dirtyNow(): number {
    return (this.cache.x.cacheDirtyBytes() >>> 0) + (this.cache.x.cacheWritebackBytes() >>> 0);
  }

  /**
   * balance_dirty_pages: call after dirtying folios. Past the dirty threshold,
   * writes back (oldest dirty mapping first, a chunk from each in turn) until
   * dirty and writeback bytes are down to the background threshold or nothing
   * more can be written. Returns the pages written back.
   */
  balanceDirty(): number {
    if (!this.fn || this.active) return 0;
    // Called after every folio a writer dirties: the common case, below the threshold, is two counters and a product.
    this.capacity ||= this.cache.x.cacheCapacityBytes() >>> 0;
    if (this.dirtyNow() <= Math.floor(this.capacity * this.limits.dirtyRatio)) return 0;
    const { background } = this.thresholds();
    let written = 0;
    while (this.dirtyNow() > background) {
      const n = this.writeRound(background);
      if (n === 0) break;
      written += n;
    }
    return written;
  }

  /**
   * sync_filesystem's data half (writeback_inodes_sb + sync_inodes_sb): every
   * dirty mapping but the device's written back whole through the callback.
   * Returns the pages written.
   */
  syncAll(): number {
    if (!this.fn || this.active) return 0;
    let written = 0;
    for (const id of this.cache.dirtyMappings()) {
      if (id === 0) continue; // metadata: the journal checkpoint's, or the buffer cache's without one
      const before = this.cache.x.mappingStat(id, 3);
      this.active = true;
      try {
        this.fn(id, 0, MAX_INDEX);
      } finally {
        this.active = false;
      }
      written += Math.max(0, before - this.cache.x.mappingStat(id, 3));
    }
    this.writtenPages += written;
    return written;
  }

  /**
   * Folio creation found nothing to reclaim: writes back one chunk of the
   * oldest dirty mapping that makes progress. False if nothing could be written.
   */
  writebackForReclaim(): boolean {
    if (!this.fn || this.active) return false;
    for (const id of this.cache.dirtyMappings()) if (this.writeChunk(id) > 0) return true;
    return false;
  }

  /** One pass over the dirty mappings, oldest first, until dirty bytes reach `target`. */
  private writeRound(target: number): number {
    let written = 0;
    for (const id of this.cache.dirtyMappings()) {
      written += this.writeChunk(id);
      if (this.dirtyNow() <= target) break;
    }
    return written;
  }

  /**
   * Writes up to WRITEBACK_CHUNK_PAGES dirty pages of one mapping, cyclically
   * from where its last writeback stopped (writeback_index). Returns the dirty
   * pages that went away.
   */
  private writeChunk(id: number): number {
    const st = this.cache.mappings.get(id);
    const x = this.cache.x;
    let from = st ? st.writebackIndex : 0;
    let first = x.mappingFindFolio(id, from, 1 /* DIRTY */);
    if (first < 0 && from > 0) { from = 0; first = x.mappingFindFolio(id, 0, 1); }
    if (first < 0) return 0;
    const start = this.cache.index(first);
    let end = start;
    let pages = 0;
    for (const slot of this.cache.folios(id, start, MAX_INDEX, 1)) {
      end = this.cache.index(slot) + (1 << this.cache.order(slot));
      pages += 1 << this.cache.order(slot);
      if (pages >= WRITEBACK_CHUNK_PAGES) break;
    }
    const before = x.mappingStat(id, 3);
    this.active = true;
    try {
      this.fn!(id, start, end);
    } finally {
      this.active = false;
    }
    if (st) st.writebackIndex = end;
    const done = Math.max(0, before - x.mappingStat(id, 3));
    this.writtenPages += done;
    return done;
  }
}

/**
 * write_cache_pages / writeback_iter for a WritebackFn: walks the folios of
 * `mapping` in pages [start, end) that are to be written (DIRTY-tagged; for an
 * integrity pass, `sync`, those tagged TOWRITE up front, so folios dirtied
 * meanwhile cannot livelock it), and for each one still dirty: clear dirty
 * for I/O, start writeback, `writeFolio(slot)`, end writeback. The folio's
 * per-block dirty bits tell writeFolio which blocks to write; they are cleared
 * after it unless the folio was redirtied. A writeFolio that throws an
 * Ext4Error marks the writeback failed (mapping_set_error); background
 * writeback stops at the first failure, an integrity pass goes on. Returns the
 * first error, or undefined.
 */
export function writeCachePages(
  cache: FolioCache, mapping: number, start: number, end: number, sync: boolean, writeFolio: (slot: number) => void,
): Ext4Error | undefined {
  if (sync) cache.x.mappingTagForWriteback(mapping, start, end);
  let first: Ext4Error | undefined;
  for (const slot of cache.folios(mapping, start, end, sync ? 4 /* TOWRITE */ : 1 /* DIRTY */)) {
    if (cache.isUnderWriteback(slot)) {
      if (!sync) continue;
      // folio_wait_writeback: all I/O here completes before its call returns, so this is a caller's bug.
      throw new Ext4Error("EBUSY", `folio at page ${cache.index(slot)} of mapping ${mapping} is still under writeback`);
    }
    if (!cache.x.folioClearDirtyForIo(slot)) continue;
    cache.startWriteback(slot);
    let err: Ext4Error | undefined;
    try {
      writeFolio(slot);
    } catch (e) {
      if (!(e instanceof Ext4Error)) {
        cache.endWriteback(slot, "EIO");
        throw e;
      }
      err = e;
    }
    // Written (or lost: a failed write is reported, not retried, as in the kernel) unless redirtied meanwhile.
    if (!cache.x.folioIsDirty(slot)) cache.x.folioClearDirty(slot, 0, cache.blocks(slot));
    cache.endWriteback(slot, err?.code);
    if (err) {
      first ??= err;
      if (!sync) break;
    }
  }
  return first;
}
