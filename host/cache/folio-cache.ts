// Host side of the folio cache: typed access to folios that live in the wasm
// arena. Mapping 0 is the block device (metadata); every other mapping id
// comes from `mappings` (one per in-core inode: see mappings.ts), never from
// an inode number directly.

import { Ext4Error, type Ext4ErrorCode } from "../errors.js";
import type { Ext4Wasm } from "../wasm/module.js";
import { DEVICE_MAPPING, Mappings, MAX_INDEX } from "./mappings.js";
import { Writeback } from "./writeback.js";

export { DEVICE_MAPPING, MAX_INDEX } from "./mappings.js";
export const PAGE_SIZE = 4096;
export const PAGE_SHIFT = 12;
export const MAX_FOLIO_ORDER = 9;

/** The xarray marks of a mapping's folios (PAGECACHE_TAG_*). */
export const TAG = { DIRTY: 1, WRITEBACK: 2, TOWRITE: 4 } as const;
/** Folio flags as folioFlags reports them. */
export const FOLIO = { USED: 1, DIRTY: 2, WRITEBACK: 4, DROPBEHIND: 8, ERROR: 16 } as const;

/** Folios fetched per wasm call by folios() (a folio_batch). */
const BATCH = 64;

export interface MappingCounts {
  folios: number;
  pages: number;
  dirtyFolios: number;
  dirtyPages: number;
  writebackFolios: number;
  writebackPages: number;
  /** Marks some folio of the mapping holds (TAG bits): mapping_tagged. */
  tags: number;
}

export class FolioCache {
  readonly x: Ext4Wasm["x"];
  readonly mappings: Mappings;
  readonly writeback: Writeback;
  /** Smallest folio order that holds a whole block. */
  readonly minOrder: number;
  // A folio's index, mapping, generation and order are read from the slot arrays in wasm memory, where the
  // hot paths ask for them several times a folio: a call into wasm for each costs more than the read, and
  // more again where call sites see the exports of many mounts' instances.
  private readonly mem32: Uint32Array;
  private readonly mem8: Uint8Array;
  private readonly aIndex32: number;
  private readonly aMapping32: number;
  private readonly aGen32: number;
  private readonly aOrder: number;
  private readonly arenaBase: number;
  private readonly pageBlocksShift: number;
  constructor(readonly wasm: Ext4Wasm, readonly blockSize: number) {
    this.x = wasm.x;
    this.mappings = new Mappings(wasm);
    this.writeback = new Writeback(this);
    this.minOrder = blockSize > PAGE_SIZE ? Math.log2(blockSize / PAGE_SIZE) : 0;
    this.pageBlocksShift = PAGE_SHIFT - Math.log2(blockSize);
    const out = wasm.scratchPtr;
    wasm.x.folioLayout(out);
    // Memory never grows after set-up (module.ts), so these views stay attached.
    const buf = wasm.u8.buffer;
    const lay = new Uint32Array(buf, out, 5);
    this.aIndex32 = lay[0] >>> 2;
    this.aMapping32 = lay[1] >>> 2;
    this.aGen32 = lay[2] >>> 2;
    this.aOrder = lay[3];
    this.arenaBase = lay[4];
    this.mem32 = new Uint32Array(buf);
    this.mem8 = new Uint8Array(buf);
  }

  /** The mapping id the read paths use for an inode (see Mappings.idFor). */
  mappingOf(inode: { ino: number; generation: number }): number {
    return this.mappings.idFor(inode.ino, inode.generation);
  }

  /** The cached folio holding page `index` of `mapping`, or -1. */
  lookup(mapping: number, index: number): number {
    checkIndex(mapping, index);
    return this.x.folioLookup(mapping, index);
  }

  /**
   * A new folio at `index` (rounded down to its order); falls back to smaller
   * orders under pressure. With every folio dirty, under writeback or pinned,
   * writes back through the registered callback and retries; ENOMEM only when
   * that frees nothing.
   */
  create(mapping: number, index: number, order: number): number {
    checkIndex(mapping, index);
    const min = this.minOrder;
    for (;;) {
      const slot = this.x.folioCreate(mapping, index, Math.max(order, min), min);
      if (slot >= 0) return slot;
      if (!this.writeback.writebackForReclaim()) {
        throw new Ext4Error("ENOMEM", "folio cache exhausted: every folio is pinned, dirty or under writeback");
      }
    }
  }

  /** Folio bytes as a view into wasm memory (memory never grows after set-up; the view lasts while the folio does). */
  bytes(slot: number): Uint8Array {
    return this.wasm.view(this.addr(slot), this.size(slot));
  }

  // wasm returns u32 as a signed i32: addresses past 2 GiB of cache would come
  // back negative. Page indexes are u64 in wasm and cross as f64.
  addr(slot: number): number { return this.arenaBase + slot * PAGE_SIZE; }
  index(slot: number): number {
    const i = this.aIndex32 + slot * 2;
    return this.mem32[i] + this.mem32[i + 1] * 0x100000000;
  }
  order(slot: number): number { return this.mem8[this.aOrder + slot]; }
  size(slot: number): number { return PAGE_SIZE << this.mem8[this.aOrder + slot]; }
  blocks(slot: number): number {
    const sh = this.mem8[this.aOrder + slot] + this.pageBlocksShift;
    return sh > 0 ? 1 << sh : 1;
  }
  gen(slot: number): number { return this.mem32[this.aGen32 + slot]; }
  mappingOfSlot(slot: number): number { return this.mem32[this.aMapping32 + slot]; }
  flags(slot: number): number { return this.x.folioFlags(slot); }
  /** The folio's own marks (TAG bits). */
  marks(slot: number): number { return this.x.folioMarks(slot); }

  isUptodate(slot: number, blk: number, n: number): boolean {
    return this.x.folioFindNotUptodate(slot, blk, n) < 0;
  }
  setUptodate(slot: number, blk: number, n: number): void { this.x.folioSetUptodate(slot, blk, n); }

  // ---- the write side's folio state machine ----

  /** folio_mark_dirty for blocks [blk, blk+n) (all of them by default). */
  markDirty(slot: number, blk = 0, n = this.blocks(slot)): void { this.x.folioSetDirty(slot, blk, n); }
  isDirty(slot: number): boolean { return this.x.folioIsDirty(slot) !== 0; }
  isUnderWriteback(slot: number): boolean { return (this.x.folioFlags(slot) & FOLIO.WRITEBACK) !== 0; }

  /** __folio_start_writeback; the folio must not already be under writeback. */
  startWriteback(slot: number): void {
    if (!this.x.folioStartWriteback(slot)) {
      throw new Ext4Error("EINVAL", `folio ${slot} cannot start writeback: already under writeback, or not in a mapping`);
    }
  }

  /**
   * folio_end_writeback; with `error` the write failed: the folio is marked
   * so and the error is recorded on its mapping (mapping_set_error) for fsync.
   * A dropbehind folio, clean and unpinned, is freed: returns true then.
   */
  endWriteback(slot: number, error?: Ext4ErrorCode): boolean {
    const mapping = this.mappingOfSlot(slot);
    const r = this.x.folioEndWriteback(slot, error ? 1 : 0);
    if (r === 0) throw new Ext4Error("EINVAL", `folio ${slot} is not under writeback`);
    if (error) this.mappings.setError(mapping, error);
    return r === 2;
  }

  /** Uncached I/O (RWF_DONTCACHE): the folio goes once it is clean and no longer under writeback or pinned. */
  setDropbehind(slot: number, on = true): void {
    if (on) this.x.folioSetDropbehind(slot); else this.x.folioClearDropbehind(slot);
  }

  // ---- per-mapping walks and range operations ----

  /**
   * The folios of `mapping` overlapping pages [start, end), in index order
   * (only those tagged `tag` if given): filemap_get_folios(_tag), a batch at a
   * time. A folio freed or reused while the walk is suspended is skipped, so
   * the caller may write, end writeback or drop folios as it goes.
   */
  *folios(mapping: number, start = 0, end = MAX_INDEX, tag = 0): Generator<number, void, undefined> {
    const out = this.wasm.scratchPtr;
    let from = start;
    while (from < end) {
      const n = this.x.mappingGetFolios(mapping, from, end, tag, out, BATCH);
      if (n === 0) return;
      const mem = new Uint32Array(this.wasm.u8.buffer, out, n * 2);
      const batch = Array.from(mem);
      const last = batch[(n - 1) * 2];
      from = this.index(last) + (1 << this.order(last));
      for (let i = 0; i < n; i++) {
        const slot = batch[i * 2];
        if (this.gen(slot) !== batch[i * 2 + 1] || this.mappingOfSlot(slot) !== mapping) continue;
        if (tag && !(this.marks(slot) & tag)) continue;
        yield slot;
      }
      // Refill even after a short batch, as writeback_get_folio does: folios added meanwhile ahead of the walk count.
    }
  }

  /** The first folio of `mapping` ending after page `start` (tagged `tag` if given), or -1. */
  findFolio(mapping: number, start: number, tag = 0): number {
    return this.x.mappingFindFolio(mapping, start, tag);
  }

  /** tag_pages_for_writeback: TOWRITE on every DIRTY-tagged folio in [start, end). Returns how many. */
  tagForWriteback(mapping: number, start = 0, end = MAX_INDEX): number {
    return this.x.mappingTagForWriteback(mapping, start, end);
  }

  /**
   * truncate_inode_pages_range: drops the folios lying wholly in pages
   * [start, end), dirty ones included; a folio straddling either edge is the
   * caller's to zero. EBUSY (nothing dropped) if one is under writeback.
   */
  truncate(mapping: number, start: number, end = MAX_INDEX): number {
    const n = this.x.mappingRemoveRange(mapping, start, end);
    if (n < 0) throw new Ext4Error("EBUSY", `mapping ${mapping}: a folio in pages [${start}, ${end}) is under writeback`);
    return n;
  }

  /**
   * Starts writeback of every dirty folio in pages [start, end) (clear dirty
   * for I/O, then start writeback: a caller that submits one bio for a range
   * does this first) and returns their slots in index order. Folios already
   * under writeback are left alone.
   */
  startWritebackRange(mapping: number, start: number, end = MAX_INDEX): number[] {
    const started: number[] = [];
    for (const slot of this.folios(mapping, start, end, TAG.DIRTY)) {
      if (this.isUnderWriteback(slot) || !this.x.folioClearDirtyForIo(slot)) continue;
      this.startWriteback(slot);
      started.push(slot);
    }
    return started;
  }

  /**
   * Ends writeback of every folio under writeback in pages [start, end) (the
   * bio's completion), failed with `error` if given. Returns how many.
   */
  endWritebackRange(mapping: number, start: number, end = MAX_INDEX, error?: Ext4ErrorCode): number {
    let n = 0;
    for (const slot of this.folios(mapping, start, end, TAG.WRITEBACK)) {
      if (!this.isDirty(slot)) this.x.folioClearDirty(slot, 0, this.blocks(slot)); // written: its block bits too
      this.endWriteback(slot, error);
      n++;
    }
    return n;
  }

  /**
   * filemap_fdatawait_range: all writeback here completes before the call
   * that started it returns, so nothing is waited for; a folio still under
   * writeback in the range is a broken state machine (EBUSY). Then reports
   * the mapping's error bits once (filemap_check_errors).
   */
  waitWriteback(mapping: number, start = 0, end = MAX_INDEX): Ext4ErrorCode | undefined {
    const s = this.x.mappingFindFolio(mapping, start, TAG.WRITEBACK);
    if (s >= 0 && this.index(s) < end) {
      throw new Ext4Error("EBUSY", `mapping ${mapping}: folio at page ${this.index(s)} is still under writeback`);
    }
    return this.mappings.checkErrors(mapping);
  }

  mappingCounts(mapping: number): MappingCounts {
    const st = (w: number) => this.x.mappingStat(mapping, w) >>> 0;
    return { folios: st(0), pages: st(1), dirtyFolios: st(2), dirtyPages: st(3), writebackFolios: st(4), writebackPages: st(5), tags: st(6) };
  }

  /** Mappings with DIRTY-tagged folios, the longest dirty first (what sync walks). */
  dirtyMappings(): number[] { return this.mappingList(0); }
  /** Mappings with folios under writeback. */
  writebackMappings(): number[] { return this.mappingList(1); }

  private mappingList(list: number): number[] {
    const out = this.wasm.scratchPtr;
    const max = 4096;
    const ids: number[] = [];
    let after = 0xffffffff;
    for (;;) {
      const n = this.x.mappingList(list, after, out, max);
      const mem = new Uint32Array(this.wasm.u8.buffer, out, n);
      for (let i = 0; i < n; i++) ids.push(mem[i]);
      if (n < max) return ids;
      after = ids[ids.length - 1];
    }
  }

  /** balance_dirty_pages: see Writeback.balanceDirty. */
  balanceDirty(): number { return this.writeback.balanceDirty(); }

  dropAll(): void { this.x.folioDropMapping(0xffffffff); }

  stats(): { usedBytes: number; folios: number; evictions: number; capacityBytes: number; dirtyBytes: number; writebackBytes: number } {
    return {
      usedBytes: this.x.cacheUsedBytes() >>> 0,
      folios: this.x.cacheFolios(),
      evictions: this.x.cacheEvictions() >>> 0,
      capacityBytes: this.x.cacheCapacityBytes() >>> 0,
      dirtyBytes: this.x.cacheDirtyBytes() >>> 0,
      writebackBytes: this.x.cacheWritebackBytes() >>> 0,
    };
  }
}

/**
 * Page indexes cross into wasm as f64 and are stored as u64: exact for every
 * integer up to 2^53, far beyond any byte offset a JS number holds exactly.
 * Anything else would be truncated to some other page, so it is refused.
 */
function checkIndex(mapping: number, index: number): void {
  if (!Number.isSafeInteger(index) || index < 0) {
    throw new Ext4Error("EOVERFLOW", `page index ${index} of ${mapping === DEVICE_MAPPING ? "the device" : `mapping ${mapping}`} cannot be cached`);
  }
}
