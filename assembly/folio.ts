// The folio cache: an arena of folios in linear memory.
//
// A folio is 2^order contiguous 4 KiB pages caching bytes of one mapping
// (mapping 0 = the block device, for metadata; mapping N = inode N) at page
// index `index` (aligned to 2^order). Indexes are u64, so devices and files
// past 16 TiB index exactly; the host passes them as f64 (exact below 2^53).
// The arena is carved by a buddy allocator; a folio's id ("slot") is the
// arena page number of its head. Per-block uptodate and dirty bits live in
// two arena-wide bitmaps, so a folio of any order costs no extra allocation. Lookups go through a hash of
// (mapping, index, order); a lookup by any page index probes each order that
// is present. Reclaim walks an LRU list from the cold end, skipping folios
// that are pinned or dirty. Memory grows lazily, one top-level chunk at a time,
// up to the byte budget set at init.

export const PAGE_SHIFT: u32 = 12;
export const MAX_ORDER: u32 = 9; // 2 MiB folios
const CHUNK_PAGES: u32 = 1 << MAX_ORDER;
const NIL: u32 = 0xffffffff;

const F_USED: u8 = 1;
const F_DIRTY: u8 = 2;

let metaBase: usize = 0;
let arenaBase: usize = 0;
let nPages: u32 = 0; // arena capacity in pages (multiple of CHUNK_PAGES)
let carvedPages: u32 = 0; // pages handed to the buddy allocator so far
let blockShift: u32 = 12; // filesystem block size
let hashMask: u32 = 0;

// Per-page arrays (indexed by arena page number).
let aMapping: usize = 0; // u32
let aIndex: usize = 0; // u64
let aOrder: usize = 0; // u8 (folio order, or free-block order)
let aFlags: usize = 0; // u8
let aFree: usize = 0; // u8: 1 if head of a free buddy block
let aRef: usize = 0; // u16 pins
let aGen: usize = 0; // u32 generation, bumped when the slot is reused
let aNext: usize = 0; // u32 LRU / free-list next
let aPrev: usize = 0; // u32 LRU / free-list prev
let aHashNext: usize = 0; // u32
let hashHeads: usize = 0; // u32 * (hashMask+1)
let upBits: usize = 0; // uptodate bit per arena block
let dirtyBits: usize = 0; // dirty bit per arena block
let freeHeads: usize = 0; // u32 * (MAX_ORDER+1)

let lruHead: u32 = NIL; // most recently used
let lruTail: u32 = NIL;
let ordersPresent: u32 = 0; // bit o set if any folio of order o exists
let orderCount: usize = 0; // u32 * (MAX_ORDER+1)
let usedPages: u32 = 0;
let nFolios: u32 = 0;
let evictions: u32 = 0;

@inline function u32at(base: usize, i: u32): u32 { return load<u32>(base + (<usize>i << 2)); }
@inline function setU32(base: usize, i: u32, v: u32): void { store<u32>(base + (<usize>i << 2), v); }
@inline function u64at(base: usize, i: u32): u64 { return load<u64>(base + (<usize>i << 3)); }
@inline function setU64(base: usize, i: u32, v: u64): void { store<u64>(base + (<usize>i << 3), v); }
@inline function u8at(base: usize, i: u32): u8 { return load<u8>(base + <usize>i); }
@inline function setU8(base: usize, i: u32, v: u8): void { store<u8>(base + <usize>i, v); }

/**
 * Grows linear memory to cover `end`. Growth is geometric (at least doubling,
 * capped at the arena's end) because each grow can cost a copy of the whole
 * memory in some engines.
 */
function ensureMemory(end: usize): bool {
  const have = <usize>memory.size() << 16;
  if (end <= have) return true;
  let target = max<usize>(end, have << 1);
  const cap = arenaBase + (<usize>nPages << PAGE_SHIFT);
  if (arenaBase != 0 && target > cap) target = max<usize>(end, cap);
  const need = <i32>((target - have + 0xffff) >>> 16);
  if (memory.grow(need) >= 0) return true;
  return memory.grow(<i32>((end - have + 0xffff) >>> 16)) >= 0;
}

function alignUp(v: usize, a: usize): usize { return (v + a - 1) & ~(a - 1); }

/** Bytes of metadata the cache needs for a budget of `pages` pages. */
function metaBytes(pages: u32, hashSize: u32): usize {
  const p = <usize>pages;
  return p * (8 + 4 * 5 + 1 * 3 + 2) + <usize>hashSize * 4 + (p * 2) /* bitmaps, worst case 1k blocks: 4 bits/page each */ + 4 * (MAX_ORDER + 1) * 2 + 64;
}

/**
 * Sets up the cache at `base` with a budget of `budgetBytes` for folio data
 * and a filesystem block size of 2^bshift. Returns the arena base, or 0 if
 * memory could not be reserved.
 */
export function folioInit(base: usize, budgetBytes: u32, bshift: u32): usize {
  blockShift = bshift;
  let pages = budgetBytes >>> PAGE_SHIFT;
  pages = (pages + CHUNK_PAGES - 1) & ~(CHUNK_PAGES - 1);
  if (pages == 0) pages = CHUNK_PAGES;
  nPages = pages;
  let hs: u32 = 1024;
  while (hs < pages) hs <<= 1;
  hashMask = hs - 1;
  metaBase = alignUp(base, 8);
  let p = metaBase;
  aIndex = p; p += <usize>pages * 8;
  aMapping = p; p += <usize>pages * 4;
  aGen = p; p += <usize>pages * 4;
  aNext = p; p += <usize>pages * 4;
  aPrev = p; p += <usize>pages * 4;
  aHashNext = p; p += <usize>pages * 4;
  hashHeads = p; p += <usize>hs * 4;
  freeHeads = p; p += 4 * (MAX_ORDER + 1);
  orderCount = p; p += 4 * (MAX_ORDER + 1);
  aRef = p; p += <usize>pages * 2;
  aOrder = p; p += <usize>pages;
  aFlags = p; p += <usize>pages;
  aFree = p; p += <usize>pages;
  const bitBytes = ((<usize>pages << PAGE_SHIFT) >>> 10) >>> 3; // bits per 1 KiB block, enough for any block size
  upBits = alignUp(p, 8); p = upBits + bitBytes;
  dirtyBits = alignUp(p, 8); p = dirtyBits + bitBytes;
  arenaBase = alignUp(p, 1 << 16);
  if (!ensureMemory(arenaBase)) return 0;
  memory.fill(metaBase, 0, arenaBase - metaBase);
  memory.fill(hashHeads, 0xff, <usize>hs * 4);
  memory.fill(freeHeads, 0xff, 4 * (MAX_ORDER + 1));
  lruHead = NIL; lruTail = NIL;
  ordersPresent = 0; usedPages = 0; nFolios = 0; carvedPages = 0; evictions = 0;
  return arenaBase;
}

// ---- buddy allocator ------------------------------------------------------

function freePush(pfn: u32, order: u32): void {
  const head = u32at(freeHeads, order);
  setU32(aNext, pfn, head);
  setU32(aPrev, pfn, NIL);
  if (head != NIL) setU32(aPrev, head, pfn);
  setU32(freeHeads, order, pfn);
  setU8(aFree, pfn, 1);
  setU8(aOrder, pfn, <u8>order);
}

function freeUnlink(pfn: u32, order: u32): void {
  const n = u32at(aNext, pfn);
  const p = u32at(aPrev, pfn);
  if (p != NIL) setU32(aNext, p, n); else setU32(freeHeads, order, n);
  if (n != NIL) setU32(aPrev, n, p);
  setU8(aFree, pfn, 0);
}

function carveChunk(): bool {
  if (carvedPages >= nPages) return false;
  const end = arenaBase + ((<usize>carvedPages + CHUNK_PAGES) << PAGE_SHIFT);
  if (!ensureMemory(end)) return false;
  freePush(carvedPages, MAX_ORDER);
  carvedPages += CHUNK_PAGES;
  return true;
}

function buddyAlloc(order: u32): u32 {
  let o = order;
  while (o <= MAX_ORDER && u32at(freeHeads, o) == NIL) o++;
  if (o > MAX_ORDER) {
    if (!carveChunk()) return NIL;
    o = MAX_ORDER;
  }
  const pfn = u32at(freeHeads, o);
  freeUnlink(pfn, o);
  while (o > order) {
    o--;
    freePush(pfn + (1 << o), o);
  }
  return pfn;
}

function buddyFree(pfn: u32, order: u32): void {
  let o = order;
  let p = pfn;
  while (o < MAX_ORDER) {
    const buddy = p ^ (1 << o);
    if (buddy >= carvedPages || u8at(aFree, buddy) == 0 || <u32>u8at(aOrder, buddy) != o) break;
    freeUnlink(buddy, o);
    p = p < buddy ? p : buddy;
    o++;
  }
  freePush(p, o);
}

// ---- hash index -----------------------------------------------------------

@inline function hashOf(mapping: u32, index: u64, order: u32): u32 {
  // Hash the high word too, so indexes past 2^32 spread like low ones.
  let h = mapping * 0x9E3779B1 ^ (<u32>index * 0x85EBCA77) ^ (<u32>(index >>> 32) * 0x27D4EB2F) ^ (order * 0xC2B2AE3D);
  h ^= h >>> 15;
  return h & hashMask;
}

function hashFind(mapping: u32, index: u64, order: u32): u32 {
  let s = u32at(hashHeads, hashOf(mapping, index, order));
  while (s != NIL) {
    if (u32at(aMapping, s) == mapping && u64at(aIndex, s) == index && <u32>u8at(aOrder, s) == order) return s;
    s = u32at(aHashNext, s);
  }
  return NIL;
}

function hashInsert(s: u32): void {
  const h = hashOf(u32at(aMapping, s), u64at(aIndex, s), u8at(aOrder, s));
  setU32(aHashNext, s, u32at(hashHeads, h));
  setU32(hashHeads, h, s);
}

function hashRemove(s: u32): void {
  const h = hashOf(u32at(aMapping, s), u64at(aIndex, s), u8at(aOrder, s));
  let cur = u32at(hashHeads, h);
  let prev = NIL;
  while (cur != NIL) {
    if (cur == s) {
      const n = u32at(aHashNext, cur);
      if (prev == NIL) setU32(hashHeads, h, n); else setU32(aHashNext, prev, n);
      return;
    }
    prev = cur;
    cur = u32at(aHashNext, cur);
  }
}

// ---- LRU ------------------------------------------------------------------

function lruUnlink(s: u32): void {
  const n = u32at(aNext, s);
  const p = u32at(aPrev, s);
  if (p != NIL) setU32(aNext, p, n); else lruHead = n;
  if (n != NIL) setU32(aPrev, n, p); else lruTail = p;
}

function lruPushHead(s: u32): void {
  setU32(aPrev, s, NIL);
  setU32(aNext, s, lruHead);
  if (lruHead != NIL) setU32(aPrev, lruHead, s);
  lruHead = s;
  if (lruTail == NIL) lruTail = s;
}

// ---- per-block bits -------------------------------------------------------

/** Arena-wide bit number of block `blk` of the folio at slot s. */
@inline function bitOf(s: u32, blk: u32): u32 {
  if (blockShift <= PAGE_SHIFT) return (s << (PAGE_SHIFT - blockShift)) + blk;
  return (s >>> (blockShift - PAGE_SHIFT)) + blk;
}

export function folioBlocks(s: u32): u32 {
  const bytesShift = PAGE_SHIFT + <u32>u8at(aOrder, s);
  return bytesShift >= blockShift ? 1 << (bytesShift - blockShift) : 1;
}

function bitsFill(bits: usize, from: u32, n: u32, v: bool): void {
  for (let i = from, e = from + n; i < e; i++) {
    const p = bits + (<usize>i >>> 3);
    const m = <u8>(<u32>1 << (i & 7));
    store<u8>(p, v ? load<u8>(p) | m : load<u8>(p) & ~m);
  }
}

function bitsFind(bits: usize, from: u32, n: u32, v: u32): i32 {
  for (let i: u32 = 0; i < n; i++) {
    const b = from + i;
    if (((load<u8>(bits + (<usize>b >>> 3)) >>> (b & 7)) & 1) == v) return <i32>i;
  }
  return -1;
}

// ---- the public operations ------------------------------------------------

function removeFolio(s: u32): void {
  hashRemove(s);
  lruUnlink(s);
  const order = <u32>u8at(aOrder, s);
  bitsFill(upBits, bitOf(s, 0), folioBlocks(s), false);
  bitsFill(dirtyBits, bitOf(s, 0), folioBlocks(s), false);
  setU8(aFlags, s, 0);
  setU32(aGen, s, u32at(aGen, s) + 1);
  const c = u32at(orderCount, order) - 1;
  setU32(orderCount, order, c);
  if (c == 0) ordersPresent &= ~(1 << order);
  usedPages -= 1 << order;
  nFolios--;
  buddyFree(s, order);
}

/**
 * Evicts clean, unpinned folios from the cold end until a free block of
 * `order` exists or `max` were evicted. Returns how many.
 */
function reclaim(max: u32, order: u32): u32 {
  let n: u32 = 0;
  let s = lruTail;
  while (s != NIL && n < max) {
    const prev = u32at(aPrev, s);
    if (load<u16>(aRef + (<usize>s << 1)) == 0 && (u8at(aFlags, s) & F_DIRTY) == 0) {
      removeFolio(s);
      evictions++;
      n++;
      // Stop as soon as a block of the wanted order exists: take no more than needed.
      if (hasFreeBlock(order)) break;
    }
    s = prev;
  }
  return n;
}

function hasFreeBlock(order: u32): bool {
  for (let o = order; o <= MAX_ORDER; o++) if (u32at(freeHeads, o) != NIL) return true;
  return false;
}

/** The folio holding page `index` of `mapping`, or -1. Marks it recently used. */
export function folioLookup(mapping: u32, pageIndex: f64): i32 {
  const index = <u64>pageIndex;
  let orders = ordersPresent;
  while (orders) {
    const o = <u32>ctz(orders);
    orders &= orders - 1;
    const s = hashFind(mapping, index & ~((<u64>1 << o) - 1), o);
    if (s != NIL) {
      if (s != lruHead) { lruUnlink(s); lruPushHead(s); }
      return <i32>s;
    }
  }
  return -1;
}

/**
 * Creates a folio for `mapping` at page `index` (the caller has checked that
 * no cached folio overlaps [index, index + 2^order)). Tries `order` first and
 * falls back to smaller orders down to `minOrder` when memory is short,
 * reclaiming cold folios as needed. The new folio's blocks are not uptodate.
 * Returns the slot, or -1 if nothing can be reclaimed.
 */
export function folioCreate(mapping: u32, pageIndex: f64, order: u32, minOrder: u32): i32 {
  let index = <u64>pageIndex;
  if (order > MAX_ORDER) order = MAX_ORDER;
  if (minOrder > order) minOrder = order;
  let o = order;
  let s = NIL;
  // Folios we may reclaim while trying this order before settling for a smaller
  // one: enough to free a block of the order a few times over, not the cache.
  let allowance: u32 = 4 << o;
  for (;;) {
    s = buddyAlloc(o);
    if (s != NIL) break;
    const batch: u32 = max<u32>(8, 1 << o);
    const n = reclaim(o == minOrder ? batch : min<u32>(batch, allowance), o);
    if (o == minOrder) {
      if (n == 0) return -1;
      continue;
    }
    allowance = n < allowance ? allowance - n : 0;
    if (n == 0 || allowance == 0) {
      o--;
      allowance = 4 << o;
    }
  }
  index &= ~((<u64>1 << o) - 1);
  setU32(aMapping, s, mapping);
  setU64(aIndex, s, index);
  setU8(aOrder, s, <u8>o);
  setU8(aFlags, s, F_USED);
  store<u16>(aRef + (<usize>s << 1), 0);
  hashInsert(s);
  lruPushHead(s);
  setU32(orderCount, o, u32at(orderCount, o) + 1);
  ordersPresent |= 1 << o;
  usedPages += 1 << o;
  nFolios++;
  return <i32>s;
}

/**
 * Offset (from index) of the first page in [index, index + n) of `mapping`
 * that some cached folio holds, or -1: how far a new large folio may extend.
 */
export function folioFirstCached(mapping: u32, pageIndex: f64, n: u32): i32 {
  if (ordersPresent == 0) return -1;
  const index = <u64>pageIndex;
  for (let i: u32 = 0; i < n; i++) {
    const page = index + i;
    let orders = ordersPresent;
    while (orders) {
      const o = <u32>ctz(orders);
      orders &= orders - 1;
      if (hashFind(mapping, page & ~((<u64>1 << o) - 1), o) != NIL) return <i32>i;
    }
  }
  return -1;
}

export function folioRemove(s: u32): void { if (u8at(aFlags, s) & F_USED) removeFolio(s); }
/** Removes the folio if reclaim could take it (not pinned, not dirty); 1 if it did. Drop-behind uses it. */
export function folioDropIfIdle(s: u32): u32 {
  if (!(u8at(aFlags, s) & F_USED) || load<u16>(aRef + (<usize>s << 1)) != 0 || (u8at(aFlags, s) & F_DIRTY) != 0) return 0;
  removeFolio(s);
  return 1;
}
export function folioAddr(s: u32): usize { return arenaBase + (<usize>s << PAGE_SHIFT); }
export function folioIndex(s: u32): f64 { return <f64>u64at(aIndex, s); }
export function folioOrder(s: u32): u32 { return u8at(aOrder, s); }
export function folioMapping(s: u32): u32 { return u32at(aMapping, s); }
export function folioGen(s: u32): u32 { return u32at(aGen, s); }
export function folioPin(s: u32): void { const p = aRef + (<usize>s << 1); store<u16>(p, load<u16>(p) + 1); }
export function folioUnpin(s: u32): void { const p = aRef + (<usize>s << 1); const v = load<u16>(p); if (v) store<u16>(p, v - 1); }

export function folioSetUptodate(s: u32, blk: u32, n: u32): void { bitsFill(upBits, bitOf(s, blk), n, true); }
export function folioClearUptodate(s: u32, blk: u32, n: u32): void { bitsFill(upBits, bitOf(s, blk), n, false); }
/** First block in [blk, blk+n) that is not uptodate (relative to blk), or -1. */
export function folioFindNotUptodate(s: u32, blk: u32, n: u32): i32 { return bitsFind(upBits, bitOf(s, blk), n, 0); }
/** First block in [blk, blk+n) that is uptodate (relative to blk), or -1. */
export function folioFindUptodate(s: u32, blk: u32, n: u32): i32 { return bitsFind(upBits, bitOf(s, blk), n, 1); }

export function folioSetDirty(s: u32, blk: u32, n: u32): void {
  bitsFill(dirtyBits, bitOf(s, blk), n, true);
  setU8(aFlags, s, u8at(aFlags, s) | F_DIRTY);
}
/** Clears dirty bits; the folio is clean once none remain. */
export function folioClearDirty(s: u32, blk: u32, n: u32): void {
  bitsFill(dirtyBits, bitOf(s, blk), n, false);
  if (bitsFind(dirtyBits, bitOf(s, 0), folioBlocks(s), 1) < 0) setU8(aFlags, s, u8at(aFlags, s) & ~F_DIRTY);
}
export function folioFindDirty(s: u32, blk: u32, n: u32): i32 { return bitsFind(dirtyBits, bitOf(s, blk), n, 1); }
export function folioIsDirty(s: u32): u32 { return (u8at(aFlags, s) & F_DIRTY) ? 1 : 0; }

/** Drops every clean, unpinned folio of `mapping` (all mappings if mapping == NIL). */
export function folioDropMapping(mapping: u32): u32 {
  let n: u32 = 0;
  let s = lruHead;
  while (s != NIL) {
    const next = u32at(aNext, s);
    if ((mapping == NIL || u32at(aMapping, s) == mapping) && load<u16>(aRef + (<usize>s << 1)) == 0 && (u8at(aFlags, s) & F_DIRTY) == 0) {
      removeFolio(s);
      n++;
    }
    s = next;
  }
  return n;
}

export function cacheUsedBytes(): u32 { return usedPages << PAGE_SHIFT; }
export function cacheFolios(): u32 { return nFolios; }
export function cacheEvictions(): u32 { return evictions; }
export function cacheCapacityBytes(): u32 { return nPages << PAGE_SHIFT; }
