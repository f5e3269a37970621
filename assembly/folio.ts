// The folio cache: an arena of folios in linear memory.
//
// A folio is 2^order contiguous 4 KiB pages caching bytes of one mapping
// (mapping 0 = the block device, for metadata; other ids are handed out by
// the host, one per in-core inode) at page index `index` (aligned to
// 2^order). Indexes are u64, so devices and files past 16 TiB index exactly;
// the host passes them as f64 (exact below 2^53). The arena is carved by a
// buddy allocator; a folio's id ("slot") is the arena page number of its
// head. Per-block uptodate and dirty bits live in two arena-wide bitmaps, so a
// folio of any order costs no extra allocation.
//
// Two indexes over the same folios:
// - a hash of (mapping, index, order) for point lookups (a lookup by any page
//   index probes each order that is present);
// - per mapping, a search tree of its folios in page-index order (what the
//   xarray is to an address_space), whose nodes are the slots themselves. Each
//   node carries marks (DIRTY, WRITEBACK, TOWRITE: the xarray's marks) and the
//   OR of its subtree's marks, so "next folio tagged T at or after index i"
//   descends only into subtrees holding T: O(log n) per step, never a walk of
//   the mapping, the LRU or the arena. The tree is a treap keyed by index with
//   a hash of the slot as priority (expected depth ~2 ln n; no rebalancing
//   state to keep).
// Per mapping the cache counts folios and pages, dirty and writeback ones, and
// keeps two lists of mappings: those with DIRTY-tagged folios (oldest first,
// for sync and background writeback) and those with folios under writeback.
//
// Reclaim walks an LRU list from the cold end, skipping folios that are pinned,
// dirty or under writeback. The whole budget is reserved when the cache is set
// up: linear memory never grows afterwards, so host views never detach in the
// middle of an operation (untouched pages cost no resident memory).

export const PAGE_SHIFT: u32 = 12;
export const MAX_ORDER: u32 = 9; // 2 MiB folios
const CHUNK_PAGES: u32 = 1 << MAX_ORDER;
const NIL: u32 = 0xffffffff;
/** The mapping of a folio cut loose from its mapping while pinned (see detachFolio). */
const NO_MAPPING: u32 = 0xffffffff;

// Folio flags (aFlags).
const F_USED: u8 = 1;
const F_DIRTY: u8 = 2; // PG_dirty
const F_WRITEBACK: u8 = 4; // PG_writeback
const F_DROPBEHIND: u8 = 8; // PG_dropbehind: free once clean and not under writeback
const F_ERROR: u8 = 16; // the folio's last writeback failed

// Marks in the per-mapping tree (aMarks own, aAgg subtree OR).
export const MARK_DIRTY: u32 = 1; // PAGECACHE_TAG_DIRTY
export const MARK_WRITEBACK: u32 = 2; // PAGECACHE_TAG_WRITEBACK
export const MARK_TOWRITE: u32 = 4; // PAGECACHE_TAG_TOWRITE
const MARK_PRESENT: u32 = 0x80; // every node: "any folio" searches use it

// The two mapping lists.
const LIST_DIRTY: u32 = 0;
const LIST_WRITEBACK: u32 = 1;

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
let aEnt: usize = 0; // u32 mapping entry of the folio (NIL once detached)
let aLeft: usize = 0; // u32 tree links
let aRight: usize = 0;
let aParent: usize = 0;
let aMarks: usize = 0; // u8 own marks
let aAgg: usize = 0; // u8 marks of the subtree
let hashHeads: usize = 0; // u32 * (hashMask+1)
let upBits: usize = 0; // uptodate bit per arena block
let dirtyBits: usize = 0; // dirty bit per arena block
let freeHeads: usize = 0; // u32 * (MAX_ORDER+1)

// Mapping entries: one per mapping that has folios (so at most nPages).
let maxEnts: u32 = 0;
let entBump: u32 = 0;
let entFree: u32 = NIL;
let eId: usize = 0; // u32 mapping id
let eRoot: usize = 0; // u32 tree root slot
let eHashNext: usize = 0; // u32 (free-list next when free)
let eFolios: usize = 0; // u32
let ePages: usize = 0;
let eDirtyFolios: usize = 0;
let eDirtyPages: usize = 0;
let eWbFolios: usize = 0;
let eWbPages: usize = 0;
let eListed: usize = 0; // u8: bit k set if on list k
let eListNext: usize = 0; // u32 * 2 per entry
let eListPrev: usize = 0;
let entHashHeads: usize = 0; // u32 * (hashMask+1)
let lists: usize = 0; // u32 head[2], tail[2] (in the metadata: no heap under the stub runtime)
@inline function listHeadOf(k: u32): u32 { return u32at(lists, k); }
@inline function listTailOf(k: u32): u32 { return u32at(lists, k + 2); }
@inline function setListHead(k: u32, e: u32): void { setU32(lists, k, e); }
@inline function setListTail(k: u32, e: u32): void { setU32(lists, k + 2, e); }

let lruHead: u32 = NIL; // most recently used
let lruTail: u32 = NIL;
let ordersPresent: u32 = 0; // bit o set if any folio of order o exists
let orderCount: usize = 0; // u32 * (MAX_ORDER+1)
let usedPages: u32 = 0;
let nFolios: u32 = 0;
let evictions: u32 = 0;
let dirtyPages: u32 = 0; // NR_FILE_DIRTY
let dirtyFolios: u32 = 0;
let wbPages: u32 = 0; // NR_WRITEBACK
let wbFolios: u32 = 0;

@inline function u32at(base: usize, i: u32): u32 { return load<u32>(base + (<usize>i << 2)); }
@inline function setU32(base: usize, i: u32, v: u32): void { store<u32>(base + (<usize>i << 2), v); }
@inline function u64at(base: usize, i: u32): u64 { return load<u64>(base + (<usize>i << 3)); }
@inline function setU64(base: usize, i: u32, v: u64): void { store<u64>(base + (<usize>i << 3), v); }
@inline function u8at(base: usize, i: u32): u8 { return load<u8>(base + <usize>i); }
@inline function setU8(base: usize, i: u32, v: u8): void { store<u8>(base + <usize>i, v); }
@inline function addU32(base: usize, i: u32, d: i32): void { setU32(base, i, u32at(base, i) + <u32>d); }

/** Grows linear memory to cover `end` (only at set-up: the arena is reserved whole). */
function ensureMemory(end: usize): bool {
  const have = <usize>memory.size() << 16;
  if (end <= have) return true;
  return memory.grow(<i32>((end - have + 0xffff) >>> 16)) >= 0;
}

function alignUp(v: usize, a: usize): usize { return (v + a - 1) & ~(a - 1); }

/**
 * Sets up the cache at `base` with a budget of `budgetBytes` for folio data
 * and a filesystem block size of 2^bshift, reserving the whole arena. Returns
 * the arena base, or 0 if memory could not be reserved. Fresh linear memory is
 * zero, so only what must not be zero is written (untouched pages stay out of
 * the resident set).
 */
export function folioInit(base: usize, budgetBytes: u32, bshift: u32): usize {
  blockShift = bshift;
  let pages = budgetBytes >>> PAGE_SHIFT;
  pages = (pages + CHUNK_PAGES - 1) & ~(CHUNK_PAGES - 1);
  if (pages == 0) pages = CHUNK_PAGES;
  nPages = pages;
  maxEnts = pages;
  let hs: u32 = 1024;
  while (hs < pages) hs <<= 1;
  hashMask = hs - 1;
  metaBase = alignUp(base, 8);
  const np = <usize>pages;
  let p = metaBase;
  aIndex = p; p += np * 8;
  aMapping = p; p += np * 4;
  aGen = p; p += np * 4;
  aNext = p; p += np * 4;
  aPrev = p; p += np * 4;
  aHashNext = p; p += np * 4;
  aEnt = p; p += np * 4;
  aLeft = p; p += np * 4;
  aRight = p; p += np * 4;
  aParent = p; p += np * 4;
  hashHeads = p; p += <usize>hs * 4;
  entHashHeads = p; p += <usize>hs * 4;
  eId = p; p += np * 4;
  eRoot = p; p += np * 4;
  eHashNext = p; p += np * 4;
  eFolios = p; p += np * 4;
  ePages = p; p += np * 4;
  eDirtyFolios = p; p += np * 4;
  eDirtyPages = p; p += np * 4;
  eWbFolios = p; p += np * 4;
  eWbPages = p; p += np * 4;
  eListNext = p; p += np * 8;
  eListPrev = p; p += np * 8;
  lists = p; p += 16;
  freeHeads = p; p += 4 * (MAX_ORDER + 1);
  orderCount = p; p += 4 * (MAX_ORDER + 1);
  aRef = p; p += np * 2;
  aOrder = p; p += np;
  aFlags = p; p += np;
  aFree = p; p += np;
  aMarks = p; p += np;
  aAgg = p; p += np;
  eListed = p; p += np;
  const bitBytes = ((np << PAGE_SHIFT) >>> 10) >>> 3; // bits per 1 KiB block, enough for any block size
  upBits = alignUp(p, 8); p = upBits + bitBytes;
  dirtyBits = alignUp(p, 8); p = dirtyBits + bitBytes;
  arenaBase = alignUp(p, 1 << 16);
  if (!ensureMemory(arenaBase + (np << PAGE_SHIFT))) return 0;
  memory.fill(hashHeads, 0xff, <usize>hs * 4);
  memory.fill(entHashHeads, 0xff, <usize>hs * 4);
  memory.fill(freeHeads, 0xff, 4 * (MAX_ORDER + 1));
  memory.fill(lists, 0xff, 16);
  lruHead = NIL; lruTail = NIL;
  ordersPresent = 0; usedPages = 0; nFolios = 0; carvedPages = 0; evictions = 0;
  dirtyPages = 0; dirtyFolios = 0; wbPages = 0; wbFolios = 0;
  entBump = 0; entFree = NIL;
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

// ---- mapping entries ------------------------------------------------------

@inline function entHashOf(id: u32): u32 {
  let h = id * 0x9E3779B1;
  h ^= h >>> 16;
  return h & hashMask;
}

function entFind(id: u32): u32 {
  let e = u32at(entHashHeads, entHashOf(id));
  while (e != NIL) {
    if (u32at(eId, e) == id) return e;
    e = u32at(eHashNext, e);
  }
  return NIL;
}

/** The entry of mapping `id`, made if it has none (a mapping gets one with its first folio). */
function entGet(id: u32): u32 {
  let e = entFind(id);
  if (e != NIL) return e;
  if (entFree != NIL) {
    e = entFree;
    entFree = u32at(eHashNext, e);
  } else {
    e = entBump++; // never exceeds maxEnts: every entry holds at least one page
  }
  setU32(eId, e, id);
  setU32(eRoot, e, NIL);
  setU32(eFolios, e, 0); setU32(ePages, e, 0);
  setU32(eDirtyFolios, e, 0); setU32(eDirtyPages, e, 0);
  setU32(eWbFolios, e, 0); setU32(eWbPages, e, 0);
  setU8(eListed, e, 0);
  const h = entHashOf(id);
  setU32(eHashNext, e, u32at(entHashHeads, h));
  setU32(entHashHeads, h, e);
  return e;
}

/** Frees an entry whose last folio went away (it holds no marks, so it is on no list). */
function entPut(e: u32): void {
  const h = entHashOf(u32at(eId, e));
  let cur = u32at(entHashHeads, h);
  let prev = NIL;
  while (cur != NIL) {
    if (cur == e) {
      const n = u32at(eHashNext, cur);
      if (prev == NIL) setU32(entHashHeads, h, n); else setU32(eHashNext, prev, n);
      break;
    }
    prev = cur;
    cur = u32at(eHashNext, cur);
  }
  for (let k: u32 = 0; k < 2; k++) listRemove(k, e);
  setU32(eHashNext, e, entFree);
  entFree = e;
}

@inline function lnext(k: u32, e: u32): u32 { return u32at(eListNext, (e << 1) + k); }
@inline function lprev(k: u32, e: u32): u32 { return u32at(eListPrev, (e << 1) + k); }

function listAppend(k: u32, e: u32): void {
  const bit = <u8>(<u32>1 << k);
  if (u8at(eListed, e) & bit) return;
  setU8(eListed, e, u8at(eListed, e) | bit);
  const t = listTailOf(k);
  setU32(eListPrev, (e << 1) + k, t);
  setU32(eListNext, (e << 1) + k, NIL);
  if (t != NIL) setU32(eListNext, (t << 1) + k, e); else setListHead(k, e);
  setListTail(k, e);
}

function listRemove(k: u32, e: u32): void {
  const bit = <u8>(<u32>1 << k);
  if (!(u8at(eListed, e) & bit)) return;
  setU8(eListed, e, u8at(eListed, e) & ~bit);
  const n = lnext(k, e);
  const p = lprev(k, e);
  if (p != NIL) setU32(eListNext, (p << 1) + k, n); else setListHead(k, n);
  if (n != NIL) setU32(eListPrev, (n << 1) + k, p); else setListTail(k, p);
}

/** Keeps the mapping on the dirty / writeback list exactly while its tree holds that mark. */
function syncLists(e: u32): void {
  const r = u32at(eRoot, e);
  const m: u32 = r == NIL ? 0 : u8at(aAgg, r);
  if (m & MARK_DIRTY) listAppend(LIST_DIRTY, e); else listRemove(LIST_DIRTY, e);
  if (m & MARK_WRITEBACK) listAppend(LIST_WRITEBACK, e); else listRemove(LIST_WRITEBACK, e);
}

// ---- the per-mapping tree -------------------------------------------------

@inline function left(s: u32): u32 { return u32at(aLeft, s); }
@inline function right(s: u32): u32 { return u32at(aRight, s); }
@inline function parent(s: u32): u32 { return u32at(aParent, s); }
@inline function aggOf(s: u32): u32 { return s == NIL ? 0 : <u32>u8at(aAgg, s); }
@inline function marksOf(s: u32): u32 { return u8at(aMarks, s); }
@inline function endOf(s: u32): u64 { return u64at(aIndex, s) + (<u64>1 << u8at(aOrder, s)); }

/** Treap priority: a mix of the slot number (slots come out of the buddy allocator in no index order). */
@inline function prio(s: u32): u32 {
  let h = s * 0x9E3779B1;
  h ^= h >>> 16; h *= 0x85EBCA6B; h ^= h >>> 13; h *= 0xC2B2AE35; h ^= h >>> 16;
  return h;
}
@inline function above(a: u32, b: u32): bool { const pa = prio(a), pb = prio(b); return pa > pb || (pa == pb && a > b); }

@inline function pull(s: u32): void { setU8(aAgg, s, <u8>(marksOf(s) | aggOf(left(s)) | aggOf(right(s)))); }

function replaceChild(e: u32, p: u32, old: u32, c: u32): void {
  if (p == NIL) setU32(eRoot, e, c);
  else if (left(p) == old) setU32(aLeft, p, c);
  else setU32(aRight, p, c);
}

/** Rotates x above its parent. */
function rotateUp(e: u32, x: u32): void {
  const p = parent(x);
  const g = parent(p);
  if (left(p) == x) {
    const b = right(x);
    setU32(aLeft, p, b);
    if (b != NIL) setU32(aParent, b, p);
    setU32(aRight, x, p);
  } else {
    const b = left(x);
    setU32(aRight, p, b);
    if (b != NIL) setU32(aParent, b, p);
    setU32(aLeft, x, p);
  }
  setU32(aParent, p, x);
  setU32(aParent, x, g);
  replaceChild(e, g, p, x);
  pull(p);
  pull(x);
}

function treeInsert(e: u32, s: u32): void {
  setU32(aLeft, s, NIL);
  setU32(aRight, s, NIL);
  setU8(aMarks, s, <u8>MARK_PRESENT);
  setU8(aAgg, s, <u8>MARK_PRESENT);
  let cur = u32at(eRoot, e);
  if (cur == NIL) {
    setU32(aParent, s, NIL);
    setU32(eRoot, e, s);
    return;
  }
  const key = u64at(aIndex, s);
  for (;;) {
    if (key < u64at(aIndex, cur)) {
      const l = left(cur);
      if (l == NIL) { setU32(aLeft, cur, s); break; }
      cur = l;
    } else {
      const r = right(cur);
      if (r == NIL) { setU32(aRight, cur, s); break; }
      cur = r;
    }
  }
  setU32(aParent, s, cur);
  // Ancestors already hold MARK_PRESENT, the new node's only mark: only rotated pairs change.
  while (parent(s) != NIL && above(s, parent(s))) rotateUp(e, s);
}

function treeRemove(e: u32, s: u32): void {
  for (;;) {
    const l = left(s), r = right(s);
    if (l == NIL || r == NIL) break;
    rotateUp(e, above(l, r) ? l : r);
  }
  const c = left(s) != NIL ? left(s) : right(s);
  let p = parent(s);
  if (c != NIL) setU32(aParent, c, p);
  replaceChild(e, p, s, c);
  // The subtrees above lost s's marks: recompute until nothing changes.
  while (p != NIL) {
    const old = aggOf(p);
    pull(p);
    if (aggOf(p) == old) break;
    p = parent(p);
  }
}

function markSet(s: u32, m: u32): void {
  if ((marksOf(s) & m) || u32at(aEnt, s) == NIL) return;
  setU8(aMarks, s, <u8>(marksOf(s) | m));
  let x = s;
  while (x != NIL && (aggOf(x) & m) != m) {
    setU8(aAgg, x, <u8>(aggOf(x) | m));
    x = parent(x);
  }
  syncLists(u32at(aEnt, s));
}

function markClear(s: u32, m: u32): void {
  if ((marksOf(s) & m) == 0 || u32at(aEnt, s) == NIL) return;
  setU8(aMarks, s, <u8>(marksOf(s) & ~m));
  let x = s;
  while (x != NIL) {
    const old = aggOf(x);
    pull(x);
    if (aggOf(x) == old) break;
    x = parent(x);
  }
  syncLists(u32at(aEnt, s));
}

/** Leftmost node of subtree n holding mark m (n's subtree is known to hold it, or NIL). */
function leftmost(n: u32, m: u32): u32 {
  while (n != NIL) {
    if (aggOf(left(n)) & m) { n = left(n); continue; }
    if (marksOf(n) & m) return n;
    n = (aggOf(right(n)) & m) ? right(n) : NIL;
  }
  return NIL;
}

/** First node (in index order) of subtree n that ends after `start` and holds mark m. */
function findFirst(n: u32, start: u64, m: u32): u32 {
  while (n != NIL && (aggOf(n) & m)) {
    if (endOf(n) <= start) { n = right(n); continue; }
    // n ends after start, so all of its right subtree does too.
    const l = findFirst(left(n), start, m);
    if (l != NIL) return l;
    if (marksOf(n) & m) return n;
    return leftmost(right(n), m);
  }
  return NIL;
}

/** The next node after s in index order holding mark m. */
function nextMarked(s: u32, m: u32): u32 {
  const r = right(s);
  if (aggOf(r) & m) return leftmost(r, m);
  let c = s;
  let p = parent(c);
  while (p != NIL) {
    if (left(p) == c) {
      if (marksOf(p) & m) return p;
      const pr = right(p);
      if (aggOf(pr) & m) return leftmost(pr, m);
    }
    c = p;
    p = parent(p);
  }
  return NIL;
}

@inline function markOrAny(tag: u32): u32 { return tag == 0 ? MARK_PRESENT : tag & 0x7f; }

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

// ---- accounting -----------------------------------------------------------

@inline function flagsOf(s: u32): u8 { return u8at(aFlags, s); }
@inline function pinsOf(s: u32): u16 { return load<u16>(aRef + (<usize>s << 1)); }
/** What reclaim may take: used, not pinned, not dirty, not under writeback. */
@inline function idle(s: u32): bool {
  return (flagsOf(s) & (F_USED | F_DIRTY | F_WRITEBACK)) == F_USED && pinsOf(s) == 0;
}

function accountDirty(s: u32, d: i32): void {
  const pages = <u32>1 << u8at(aOrder, s);
  dirtyFolios += <u32>d;
  dirtyPages += <u32>(d * <i32>pages);
  const e = u32at(aEnt, s);
  if (e != NIL) { addU32(eDirtyFolios, e, d); addU32(eDirtyPages, e, d * <i32>pages); }
}

function accountWriteback(s: u32, d: i32): void {
  const pages = <u32>1 << u8at(aOrder, s);
  wbFolios += <u32>d;
  wbPages += <u32>(d * <i32>pages);
  const e = u32at(aEnt, s);
  if (e != NIL) { addU32(eWbFolios, e, d); addU32(eWbPages, e, d * <i32>pages); }
}

/** Cleans a dirty folio without writing it (cancel_dirty: truncate, drop). */
function cancelDirty(s: u32): void {
  if (flagsOf(s) & F_DIRTY) {
    setU8(aFlags, s, flagsOf(s) & ~F_DIRTY);
    accountDirty(s, -1);
  }
  bitsFill(dirtyBits, bitOf(s, 0), folioBlocks(s), false);
}

// ---- the public operations ------------------------------------------------

/**
 * Takes the folio out of its mapping: the hash, the tree and the mapping's
 * counts. Dirty state is cancelled. The slot itself stays allocated.
 */
function detachFolio(s: u32): void {
  const e = u32at(aEnt, s);
  if (e == NIL) return;
  cancelDirty(s);
  if (flagsOf(s) & F_WRITEBACK) {
    // Only a forced folioRemove gets here (range removal refuses writeback folios).
    accountWriteback(s, -1);
    setU8(aFlags, s, flagsOf(s) & ~F_WRITEBACK);
  }
  hashRemove(s);
  treeRemove(e, s);
  setU32(aEnt, s, NIL);
  setU32(aMapping, s, NO_MAPPING);
  addU32(eFolios, e, -1);
  addU32(ePages, e, -(<i32>1 << u8at(aOrder, s)));
  if (u32at(eFolios, e) == 0) entPut(e); else syncLists(e);
}

function removeFolio(s: u32): void {
  detachFolio(s);
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
 * Evicts idle folios (see idle()) from the cold end until a free block of
 * `order` exists or `max` were evicted. Returns how many.
 */
function reclaim(max: u32, order: u32): u32 {
  let n: u32 = 0;
  let s = lruTail;
  while (s != NIL && n < max) {
    const prev = u32at(aPrev, s);
    if (idle(s)) {
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
  const e = entGet(mapping);
  setU32(aEnt, s, e);
  treeInsert(e, s);
  addU32(eFolios, e, 1);
  addU32(ePages, e, <i32>1 << o);
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
  const e = entFind(mapping);
  if (e == NIL) return -1;
  const index = <u64>pageIndex;
  const s = findFirst(u32at(eRoot, e), index, MARK_PRESENT);
  if (s == NIL) return -1;
  const at = u64at(aIndex, s);
  if (at <= index) return 0;
  return at - index < <u64>n ? <i32>(at - index) : -1;
}

/** Removes the folio, whatever its state (dirty state is cancelled). */
export function folioRemove(s: u32): void { if (flagsOf(s) & F_USED) removeFolio(s); }
/** Removes the folio if reclaim could take it (not pinned, dirty or under writeback); 1 if it did. Drop-behind uses it. */
export function folioDropIfIdle(s: u32): u32 {
  if (!idle(s)) return 0;
  removeFolio(s);
  return 1;
}
export function folioAddr(s: u32): usize { return arenaBase + (<usize>s << PAGE_SHIFT); }
export function folioIndex(s: u32): f64 { return <f64>u64at(aIndex, s); }
export function folioOrder(s: u32): u32 { return u8at(aOrder, s); }
export function folioMapping(s: u32): u32 { return u32at(aMapping, s); }
export function folioGen(s: u32): u32 { return u32at(aGen, s); }
/**
 * Where the per-slot arrays the host reads most live, written to `out` as
 * u32s: index (u64 per slot), mapping, generation (u32), order (u8), and the
 * arena base. Fixed at set-up (memory never grows afterwards), so the host
 * reads these fields from memory instead of calling in for each.
 */
export function folioLayout(out: usize): void {
  store<u32>(out, <u32>aIndex);
  store<u32>(out + 4, <u32>aMapping);
  store<u32>(out + 8, <u32>aGen);
  store<u32>(out + 12, <u32>aOrder);
  store<u32>(out + 16, <u32>arenaBase);
}
export function folioPin(s: u32): void { const p = aRef + (<usize>s << 1); store<u16>(p, load<u16>(p) + 1); }
/** Drops a pin; the last pin of a dropbehind folio that is clean and not under writeback frees it. */
export function folioUnpin(s: u32): void {
  const p = aRef + (<usize>s << 1);
  const v = load<u16>(p);
  if (v == 0) return;
  store<u16>(p, v - 1);
  if (v == 1 && (flagsOf(s) & F_DROPBEHIND) && idle(s)) removeFolio(s);
  else if (v == 1 && u32at(aEnt, s) == NIL && (flagsOf(s) & F_USED)) removeFolio(s); // detached while pinned
}
export function folioPins(s: u32): u32 { return pinsOf(s); }

export function folioSetUptodate(s: u32, blk: u32, n: u32): void { bitsFill(upBits, bitOf(s, blk), n, true); }
export function folioClearUptodate(s: u32, blk: u32, n: u32): void { bitsFill(upBits, bitOf(s, blk), n, false); }
/** First block in [blk, blk+n) that is not uptodate (relative to blk), or -1. */
export function folioFindNotUptodate(s: u32, blk: u32, n: u32): i32 { return bitsFind(upBits, bitOf(s, blk), n, 0); }
/** First block in [blk, blk+n) that is uptodate (relative to blk), or -1. */
export function folioFindUptodate(s: u32, blk: u32, n: u32): i32 { return bitsFind(upBits, bitOf(s, blk), n, 1); }

/**
 * Marks blocks dirty; the folio becomes dirty (folio_mark_dirty): counted,
 * tagged DIRTY in its mapping, the mapping put on the dirty list.
 */
export function folioSetDirty(s: u32, blk: u32, n: u32): void {
  bitsFill(dirtyBits, bitOf(s, blk), n, true);
  if (flagsOf(s) & F_DIRTY) return;
  if (u32at(aEnt, s) == NIL) return; // detached: nothing may dirty it again
  setU8(aFlags, s, flagsOf(s) | F_DIRTY);
  accountDirty(s, 1);
  markSet(s, MARK_DIRTY);
}
/**
 * Clears dirty bits without writing (cancel): once none remain the folio is
 * clean, uncounted and its DIRTY tag cleared.
 */
export function folioClearDirty(s: u32, blk: u32, n: u32): void {
  bitsFill(dirtyBits, bitOf(s, blk), n, false);
  if (!(flagsOf(s) & F_DIRTY)) return;
  if (bitsFind(dirtyBits, bitOf(s, 0), folioBlocks(s), 1) >= 0) return;
  setU8(aFlags, s, flagsOf(s) & ~F_DIRTY);
  accountDirty(s, -1);
  markClear(s, MARK_DIRTY | MARK_TOWRITE); // nothing left to write: TOWRITE only ever marks DIRTY-tagged folios
}
/**
 * folio_clear_dirty_for_io: the folio is about to be written. Clears the
 * dirty flag and its count; the per-block dirty bits stay for the writer to
 * read (and clear), and the DIRTY tag stays until folioStartWriteback, as in
 * the kernel. Returns 1 if the folio was dirty.
 */
export function folioClearDirtyForIo(s: u32): u32 {
  if (!(flagsOf(s) & F_DIRTY)) return 0;
  setU8(aFlags, s, flagsOf(s) & ~F_DIRTY);
  accountDirty(s, -1);
  return 1;
}
export function folioFindDirty(s: u32, blk: u32, n: u32): i32 { return bitsFind(dirtyBits, bitOf(s, blk), n, 1); }
export function folioIsDirty(s: u32): u32 { return (flagsOf(s) & F_DIRTY) ? 1 : 0; }

/**
 * __folio_start_writeback: sets writeback (counted, tagged WRITEBACK), clears
 * the DIRTY tag unless the folio was redirtied, and clears TOWRITE. Returns 0
 * if the folio is already under writeback or detached (nothing changed).
 */
export function folioStartWriteback(s: u32): u32 {
  if ((flagsOf(s) & F_WRITEBACK) || u32at(aEnt, s) == NIL) return 0;
  setU8(aFlags, s, flagsOf(s) | F_WRITEBACK);
  accountWriteback(s, 1);
  markSet(s, MARK_WRITEBACK);
  if (!(flagsOf(s) & F_DIRTY)) markClear(s, MARK_DIRTY);
  markClear(s, MARK_TOWRITE);
  return 1;
}
/**
 * folio_end_writeback: clears writeback (count and tag), records whether it
 * failed (F_ERROR), and frees a dropbehind folio that is now clean and
 * unpinned. Returns 0 if the folio was not under writeback, 2 if it was
 * freed, else 1.
 */
export function folioEndWriteback(s: u32, failed: u32): u32 {
  if (!(flagsOf(s) & F_WRITEBACK)) return 0;
  accountWriteback(s, -1);
  setU8(aFlags, s, failed ? (flagsOf(s) & ~F_WRITEBACK) | F_ERROR : flagsOf(s) & ~(F_WRITEBACK | F_ERROR));
  markClear(s, MARK_WRITEBACK);
  if ((flagsOf(s) & F_DROPBEHIND) && idle(s)) { removeFolio(s); return 2; }
  return 1;
}
export function folioSetDropbehind(s: u32): void { setU8(aFlags, s, flagsOf(s) | F_DROPBEHIND); }
export function folioClearDropbehind(s: u32): void { setU8(aFlags, s, flagsOf(s) & ~F_DROPBEHIND); }
/** The folio's flags: 1 used, 2 dirty, 4 writeback, 8 dropbehind, 16 error. */
export function folioFlags(s: u32): u32 { return flagsOf(s); }
/** The folio's own marks in its mapping (1 dirty, 2 writeback, 4 towrite). */
export function folioMarks(s: u32): u32 { return marksOf(s) & 0x7f; }

// ---- per-mapping walks ----------------------------------------------------

/**
 * filemap_get_folios(_tag): writes up to `max` (slot, generation) u32 pairs to
 * `out` for the folios of `mapping` that overlap pages [start, end), in index
 * order, only those tagged `tag` when tag != 0. Returns how many. O(log n + k).
 */
export function mappingGetFolios(mapping: u32, start: f64, end: f64, tag: u32, out: usize, max: u32): u32 {
  const e = entFind(mapping);
  if (e == NIL) return 0;
  const m = markOrAny(tag);
  const endIdx = <u64>end;
  let s = findFirst(u32at(eRoot, e), <u64>start, m);
  let n: u32 = 0;
  while (s != NIL && n < max && u64at(aIndex, s) < endIdx) {
    store<u32>(out + (<usize>n << 3), s);
    store<u32>(out + (<usize>n << 3) + 4, u32at(aGen, s));
    n++;
    s = nextMarked(s, m);
  }
  return n;
}

/** The first folio of `mapping` ending after page `start` (tagged `tag` if != 0), or -1. */
export function mappingFindFolio(mapping: u32, start: f64, tag: u32): i32 {
  const e = entFind(mapping);
  if (e == NIL) return -1;
  const s = findFirst(u32at(eRoot, e), <u64>start, markOrAny(tag));
  return s == NIL ? -1 : <i32>s;
}

/** tag_pages_for_writeback: tags TOWRITE every DIRTY-tagged folio overlapping [start, end). Returns how many. */
export function mappingTagForWriteback(mapping: u32, start: f64, end: f64): u32 {
  const e = entFind(mapping);
  if (e == NIL) return 0;
  const endIdx = <u64>end;
  let s = findFirst(u32at(eRoot, e), <u64>start, MARK_DIRTY);
  let n: u32 = 0;
  while (s != NIL && u64at(aIndex, s) < endIdx) {
    const next = nextMarked(s, MARK_DIRTY);
    markSet(s, MARK_TOWRITE);
    n++;
    s = next;
  }
  return n;
}

/**
 * truncate_inode_pages_range: removes every folio of `mapping` lying wholly in
 * pages [start, end), dirty ones included (their dirty state is cancelled);
 * folios straddling an edge are the caller's. A pinned folio is detached from
 * the mapping (never found again) and freed at its last unpin. Refuses (-1,
 * nothing removed) if a folio overlapping the range is under writeback: the
 * caller must end it first. Returns how many folios went.
 */
export function mappingRemoveRange(mapping: u32, start: f64, end: f64): i32 {
  const e = entFind(mapping);
  if (e == NIL) return 0;
  const startIdx = <u64>start, endIdx = <u64>end;
  const wb = findFirst(u32at(eRoot, e), startIdx, MARK_WRITEBACK);
  if (wb != NIL && u64at(aIndex, wb) < endIdx) return -1;
  let s = findFirst(u32at(eRoot, e), startIdx, MARK_PRESENT);
  let n: i32 = 0;
  while (s != NIL && u64at(aIndex, s) < endIdx) {
    const next = nextMarked(s, MARK_PRESENT);
    if (u64at(aIndex, s) >= startIdx && endOf(s) <= endIdx) {
      if (pinsOf(s) == 0) removeFolio(s); else detachFolio(s);
      n++;
    }
    s = next;
  }
  return n;
}

/**
 * Per-mapping counts: 0 folios, 1 pages, 2 dirty folios, 3 dirty pages,
 * 4 writeback folios, 5 writeback pages, 6 the marks its tree holds.
 */
export function mappingStat(mapping: u32, what: u32): u32 {
  const e = entFind(mapping);
  if (e == NIL) return 0;
  switch (what) {
    case 0: return u32at(eFolios, e);
    case 1: return u32at(ePages, e);
    case 2: return u32at(eDirtyFolios, e);
    case 3: return u32at(eDirtyPages, e);
    case 4: return u32at(eWbFolios, e);
    case 5: return u32at(eWbPages, e);
    case 6: return aggOf(u32at(eRoot, e)) & 0x7f;
  }
  return 0;
}

/**
 * Writes up to `max` mapping ids of list `list` (0: mappings with DIRTY-tagged
 * folios, oldest first; 1: mappings with folios under writeback) to `out` as
 * u32s, starting after mapping `after` (0xffffffff: from the head). Returns how many.
 */
export function mappingList(list: u32, after: u32, out: usize, max: u32): u32 {
  let e = listHeadOf(list & 1);
  if (after != NIL) {
    // Resume after mapping `after` (a walk longer than one batch); from the head if it left the list.
    const a = entFind(after);
    if (a != NIL && (u8at(eListed, a) & <u8>(<u32>1 << (list & 1)))) e = lnext(list & 1, a);
  }
  let n: u32 = 0;
  while (e != NIL && n < max) {
    store<u32>(out + (<usize>n << 2), u32at(eId, e));
    n++;
    e = lnext(list & 1, e);
  }
  return n;
}

/** Depth of the mapping's tree (tests check the treap stays shallow). */
export function mappingTreeDepth(mapping: u32): u32 {
  const e = entFind(mapping);
  if (e == NIL) return 0;
  return depthOf(u32at(eRoot, e));
}
function depthOf(n: u32): u32 {
  if (n == NIL) return 0;
  const l = depthOf(left(n)), r = depthOf(right(n));
  return 1 + (l > r ? l : r);
}

/** Drops every idle folio of `mapping` (all mappings if mapping == NIL). */
export function folioDropMapping(mapping: u32): u32 {
  let n: u32 = 0;
  if (mapping != NIL) {
    const e = entFind(mapping);
    if (e == NIL) return 0;
    let s = findFirst(u32at(eRoot, e), 0, MARK_PRESENT);
    while (s != NIL) {
      const next = nextMarked(s, MARK_PRESENT); // before removal; removal keeps the order of the others
      if (idle(s)) { removeFolio(s); n++; }
      s = next;
    }
    return n;
  }
  let s = lruHead;
  while (s != NIL) {
    const next = u32at(aNext, s);
    if (idle(s)) {
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
export function cacheDirtyBytes(): u32 { return dirtyPages << PAGE_SHIFT; }
export function cacheWritebackBytes(): u32 { return wbPages << PAGE_SHIFT; }
export function cacheDirtyFolios(): u32 { return dirtyFolios; }
export function cacheWritebackFolios(): u32 { return wbFolios; }
