// Host side of the folio cache: typed access to folios that live in the wasm
// arena. Mapping 0 is the block device (metadata); mapping N is inode N.

import { Ext4Error } from "../errors.js";
import type { Ext4Wasm } from "../wasm/module.js";

export const PAGE_SIZE = 4096;
export const PAGE_SHIFT = 12;
export const MAX_FOLIO_ORDER = 9;
export const DEVICE_MAPPING = 0;

export class FolioCache {
  readonly x: Ext4Wasm["x"];
  constructor(readonly wasm: Ext4Wasm, readonly blockSize: number) {
    this.x = wasm.x;
  }

  /** Smallest folio order that holds a whole block. */
  get minOrder(): number {
    return this.blockSize > PAGE_SIZE ? Math.log2(this.blockSize / PAGE_SIZE) : 0;
  }

  /** The cached folio holding page `index` of `mapping`, or -1. */
  lookup(mapping: number, index: number): number {
    checkIndex(mapping, index);
    return this.x.folioLookup(mapping, index);
  }

  /** A new folio at `index` (rounded down to its order); falls back to smaller orders under pressure. */
  create(mapping: number, index: number, order: number): number {
    checkIndex(mapping, index);
    const min = this.minOrder;
    const slot = this.x.folioCreate(mapping, index, Math.max(order, min), min);
    if (slot < 0) throw new Ext4Error("ENOMEM", "folio cache exhausted: every folio is pinned or dirty");
    return slot;
  }

  /** Folio bytes as a view into wasm memory. Valid until the next create(). */
  bytes(slot: number): Uint8Array {
    return this.wasm.view(this.addr(slot), PAGE_SIZE << this.x.folioOrder(slot));
  }

  // wasm returns u32 as a signed i32: addresses past 2 GiB of cache would come
  // back negative. Page indexes are u64 in wasm and cross as f64.
  addr(slot: number): number { return this.x.folioAddr(slot) >>> 0; }
  index(slot: number): number { return this.x.folioIndex(slot); }
  order(slot: number): number { return this.x.folioOrder(slot); }
  size(slot: number): number { return PAGE_SIZE << this.x.folioOrder(slot); }
  blocks(slot: number): number { return this.x.folioBlocks(slot); }
  gen(slot: number): number { return this.x.folioGen(slot); }

  isUptodate(slot: number, blk: number, n: number): boolean {
    return this.x.folioFindNotUptodate(slot, blk, n) < 0;
  }
  setUptodate(slot: number, blk: number, n: number): void { this.x.folioSetUptodate(slot, blk, n); }

  dropAll(): void { this.x.folioDropMapping(0xffffffff); }

  stats(): { usedBytes: number; folios: number; evictions: number; capacityBytes: number } {
    return {
      usedBytes: this.x.cacheUsedBytes() >>> 0,
      folios: this.x.cacheFolios(),
      evictions: this.x.cacheEvictions() >>> 0,
      capacityBytes: this.x.cacheCapacityBytes() >>> 0,
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
    throw new Ext4Error("EOVERFLOW", `page index ${index} of ${mapping === DEVICE_MAPPING ? "the device" : `inode ${mapping}`} cannot be cached`, mapping === DEVICE_MAPPING ? {} : { ino: mapping });
  }
}
