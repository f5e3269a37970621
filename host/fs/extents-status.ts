// The extent status tree (fs/ext4/extents_status.c): per inode, what is known
// about its logical blocks, as non-overlapping extents that are WRITTEN,
// UNWRITTEN, DELAYED (allocation deferred: these exist only here and are the
// authority for delalloc reservations) or HOLE. Kept as a sorted array with
// binary search: per-inode trees are small and an insert moves a few pointers
// (bench/extents-status.mjs measures it against a balanced tree).
//
// `seq` is i_es_seq: bumped by every change of what the tree says (insert,
// remove), never by lookups, by caching what the on-disk tree already says,
// or by the shrinker dropping such cached answers. The iomap path uses it as
// its validity cookie.

export const ES = { WRITTEN: 1, UNWRITTEN: 2, DELAYED: 4, HOLE: 8 } as const;
export const ES_ALL = ES.WRITTEN | ES.UNWRITTEN | ES.DELAYED | ES.HOLE;
const ES_MAPPED = ES.WRITTEN | ES.UNWRITTEN;

/** Largest logical block + 1 (ext4_lblk_t is 32 bits). */
export const EXT_MAX_BLOCKS = 0x100000000;

export interface ExtentStatus {
  readonly lblk: number;
  readonly len: number;
  /** First physical block for WRITTEN / UNWRITTEN; 0 for DELAYED and HOLE. */
  readonly pblk: number;
  readonly status: number;
}

/** A stored extent; `ref` is the shrinker's second chance (EXTENT_STATUS_REFERENCED). */
interface Node extends ExtentStatus { ref: boolean }

function node(lblk: number, len: number, pblk: number, status: number): Node {
  return { lblk, len, pblk: status & ES_MAPPED ? pblk : 0, status, ref: false };
}

/** ext4_es_can_be_merged: same kind, adjacent, and for mapped kinds contiguous on disk. */
function canMerge(a: ExtentStatus, b: ExtentStatus): boolean {
  if (a.status !== b.status || a.lblk + a.len !== b.lblk) return false;
  if (a.len + b.len >= EXT_MAX_BLOCKS) return false;
  return !(a.status & ES_MAPPED) || a.pblk + a.len === b.pblk;
}

function joined(a: ExtentStatus, b: ExtentStatus): Node {
  return node(a.lblk, a.len + b.len, a.pblk, a.status);
}

/** Part [from, to) of extent `e`, physical start moved along for mapped kinds. */
function slice(e: ExtentStatus, from: number, to: number): Node {
  return node(from, to - from, e.status & ES_MAPPED ? e.pblk + (from - e.lblk) : 0, e.status);
}

function checkRange(lblk: number, len: number): void {
  if (!Number.isInteger(lblk) || !Number.isInteger(len) || lblk < 0 || len < 1 || lblk + len > EXT_MAX_BLOCKS) {
    throw new RangeError(`extent status range ${lblk}+${len} is invalid`);
  }
}

export class ExtentStatusTree {
  /** i_es_seq. */
  seq = 0;
  private ex: Node[] = [];
  private delayed = 0;
  /** Non-delayed extents (what the shrinker may drop). */
  private reclaimable = 0;
  /** ext4_es_tree.cache_es: the last extent found, tried before the search. */
  private last = -1;
  /** The shrinker's list of trees holding reclaimable extents (i_es_list): neighbours, and whether on it. */
  esPrev: ExtentStatusTree | undefined = undefined;
  esNext: ExtentStatusTree | undefined = undefined;
  onEsList = false;

  constructor(private readonly shrinker?: EsShrinker) {}

  /** Extents held. */
  get count(): number { return this.ex.length; }
  /** Delayed blocks in the whole tree (what i_reserved_data_blocks must cover). */
  get delayedBlocks(): number { return this.delayed; }
  /** Extents the shrinker may drop. */
  get reclaimableCount(): number { return this.reclaimable; }
  /** The mount's cap on cached extents (the shrinker's), for callers sizing what they cache. */
  get cap(): number { return this.shrinker?.cap ?? Infinity; }

  /** Index of the first extent ending after `lblk` (ex.length if none). */
  private firstEndingAfter(lblk: number): number {
    const ex = this.ex;
    let lo = 0;
    let hi = ex.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ex[mid].lblk + ex[mid].len <= lblk) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** ext4_es_lookup_extent: the extent containing `lblk`, or undefined. Never changes `seq`. */
  lookup(lblk: number): ExtentStatus | undefined {
    const ex = this.ex;
    const c = this.last;
    if (c >= 0 && c < ex.length) {
      const e = ex[c];
      if (lblk >= e.lblk && lblk < e.lblk + e.len) { e.ref = true; return e; }
    }
    const i = this.firstEndingAfter(lblk);
    if (i < ex.length && ex[i].lblk <= lblk) {
      this.last = i;
      ex[i].ref = true;
      return ex[i];
    }
    return undefined;
  }

  /**
   * ext4_es_find_extent_range: the first extent of a kind in `mask` that
   * overlaps [lblk, end] (end inclusive), or undefined.
   */
  findExtentRange(mask: number, lblk: number, end: number): ExtentStatus | undefined {
    const ex = this.ex;
    for (let i = this.firstEndingAfter(lblk); i < ex.length && ex[i].lblk <= end; i++) {
      if (ex[i].status & mask) return ex[i];
    }
    return undefined;
  }

  /** The first delayed extent at or after `lblk` (ext4_find_delalloc_range / next delayed). */
  nextDelayed(lblk: number): ExtentStatus | undefined {
    return this.findExtentRange(ES.DELAYED, lblk, EXT_MAX_BLOCKS - 1);
  }

  /** Blocks of the kinds in `mask` within [lblk, lblk+len) (ext4_es_delayed_clu for DELAYED, without bigalloc). */
  countBlocks(mask: number, lblk: number, len: number): number {
    const end = lblk + len;
    let n = 0;
    const ex = this.ex;
    for (let i = this.firstEndingAfter(lblk); i < ex.length && ex[i].lblk < end; i++) {
      const e = ex[i];
      if (e.status & mask) n += Math.min(end, e.lblk + e.len) - Math.max(lblk, e.lblk);
    }
    return n;
  }

  /**
   * ext4_es_insert_extent: [lblk, lblk+len) becomes this one extent, replacing
   * whatever it overlaps and merging with neighbours of the same kind.
   */
  insert(lblk: number, len: number, pblk: number, status: number): void {
    checkRange(lblk, len);
    if (status !== ES.WRITTEN && status !== ES.UNWRITTEN && status !== ES.DELAYED && status !== ES.HOLE) {
      throw new RangeError(`extent status ${status} is not one kind`);
    }
    this.replace(lblk, len, node(lblk, len, pblk, status));
    this.seq++;
  }

  /**
   * ext4_es_cache_extent: records what the on-disk tree says where nothing is
   * known yet (never over a delayed or otherwise known extent). The mapping
   * does not change, so `seq` does not either.
   */
  cache(lblk: number, len: number, pblk: number, status: number): void {
    checkRange(lblk, len);
    if (status & ES.DELAYED) throw new RangeError("delayed extents are inserted, never cached");
    const i = this.firstEndingAfter(lblk);
    const ex = this.ex;
    // Only the part of the range before the first known extent is filled (the kernel skips overlaps too).
    const stop = i < ex.length ? Math.min(ex[i].lblk, lblk + len) : lblk + len;
    if (stop <= lblk) return;
    this.replace(lblk, stop - lblk, node(lblk, stop - lblk, pblk, status));
    this.shrinker?.balance(this);
  }

  /**
   * The on-disk mapping of [lblk, lblk+len) changed (the es updates of
   * ext4_map_blocks and the extent code): its non-delayed parts now say
   * `status` (WRITTEN or UNWRITTEN from `pblk` on, or HOLE), or are forgotten
   * (status 0). Delayed extents in the range stay as they are: they are the
   * write path's own record, turned into allocations or dropped by it, with
   * their reservations. `seq` moves on.
   */
  diskChanged(lblk: number, len: number, pblk: number, status: number): void {
    checkRange(lblk, len);
    if (status !== 0 && status !== ES.WRITTEN && status !== ES.UNWRITTEN && status !== ES.HOLE) {
      throw new RangeError(`extent status ${status} is not a disk mapping`);
    }
    const end = lblk + len;
    let at = lblk;
    while (at < end) {
      const d = this.findExtentRange(ES.DELAYED, at, end - 1);
      const stop = d ? Math.max(at, d.lblk) : end;
      if (stop > at) {
        const p = status & ES_MAPPED ? pblk + (at - lblk) : 0;
        this.replace(at, stop - at, status ? node(at, stop - at, p, status) : undefined);
      }
      if (!d) break;
      at = d.lblk + d.len;
    }
    this.seq++;
  }

  /** The on-disk tree changed without changing the mapping (a split, a level gained or lost): only `seq` moves on. */
  treeChanged(): void {
    this.seq++;
  }

  /** ext4_es_remove_extent: forgets [lblk, lblk+len). Returns the delayed blocks removed. */
  remove(lblk: number, len: number): number {
    checkRange(lblk, len);
    const before = this.delayed;
    this.replace(lblk, len, undefined);
    this.seq++;
    return before - this.delayed;
  }

  /** Every extent, in order (copies). */
  extents(): ExtentStatus[] {
    return this.ex.map(({ lblk, len, pblk, status }) => ({ lblk, len, pblk, status }));
  }

  /**
   * Drops cached non-delayed extents (es_reclaim_extents): the unreferenced
   * ones, giving referenced ones a second chance, or all with `all`. Returns
   * how many were dropped. Delayed extents always stay.
   */
  shrink(all = false): number {
    if (this.reclaimable === 0) return 0;
    const keep: Node[] = [];
    let dropped = 0;
    for (const e of this.ex) {
      if (e.status & ES.DELAYED || (!all && e.ref)) {
        e.ref = false;
        keep.push(e);
      } else {
        dropped++;
      }
    }
    this.ex = keep;
    this.last = -1;
    this.account(0, -dropped);
    return dropped;
  }

  /** The mapping changed under what was cached (the caller dropped it): a new sequence. */
  invalidate(): void {
    this.last = -1;
    this.seq++;
  }

  /** Forgets everything, delayed extents included (the inode is being evicted or freed). */
  clear(): void {
    this.account(-this.delayed, -this.reclaimable);
    this.ex = [];
    this.last = -1;
    this.seq++;
  }

  /** Removes [lblk, lblk+len) and puts `add` (covering exactly that range) there, merging neighbours. */
  private replace(lblk: number, len: number, add: Node | undefined): void {
    const ex = this.ex;
    const end = lblk + len;
    let i = this.firstEndingAfter(lblk);
    let j = i;
    while (j < ex.length && ex[j].lblk < end) j++;
    // ex[i..j) overlap the range; their parts outside it stay.
    let left = i < j && ex[i].lblk < lblk ? slice(ex[i], ex[i].lblk, lblk) : undefined;
    let right = i < j && ex[j - 1].lblk + ex[j - 1].len > end ? slice(ex[j - 1], end, ex[j - 1].lblk + ex[j - 1].len) : undefined;
    if (add) {
      // ext4_es_try_to_merge_left / _right, with what is left of an overlapped extent or the neighbour.
      if (left && canMerge(left, add)) {
        add = joined(left, add);
        left = undefined;
      } else if (!left && i > 0 && canMerge(ex[i - 1], add)) {
        add = joined(ex[--i], add);
      }
      if (right && canMerge(add, right)) {
        add = joined(add, right);
        right = undefined;
      } else if (!right && j < ex.length && canMerge(add, ex[j])) {
        add = joined(add, ex[j++]);
      }
    }
    let dDelayed = 0;
    let dReclaim = 0;
    for (let k = i; k < j; k++) {
      if (ex[k].status & ES.DELAYED) dDelayed -= ex[k].len; else dReclaim--;
    }
    let n = 0;
    for (const e of [left, add, right]) {
      if (!e) continue;
      n++;
      if (e.status & ES.DELAYED) dDelayed += e.len; else dReclaim++;
    }
    if (n === 1 && ex.length === 0) {
      this.ex = [(left ?? add ?? right)!]; // a first extent: an array of one, not push's seventeen slots (one per cached inode)
    } else if (n === 1 && j === ex.length && i === j) {
      ex.push((left ?? add ?? right)!); // appending: the common case as a file grows
    } else if (n === j - i) {
      let k = i;
      if (left) ex[k++] = left;
      if (add) ex[k++] = add;
      if (right) ex[k++] = right;
    } else {
      const out: Node[] = [];
      if (left) out.push(left);
      if (add) out.push(add);
      if (right) out.push(right);
      ex.splice(i, j - i, ...out);
    }
    this.last = -1;
    this.account(dDelayed, dReclaim);
  }

  private account(dDelayed: number, dReclaim: number): void {
    this.delayed += dDelayed;
    this.reclaimable += dReclaim;
    this.shrinker?.adjust(this, dReclaim);
  }
}

/**
 * The mount's cap on cached non-delayed extents (ext4_es_scan, the shrinker):
 * past `cap`, trees are scanned round-robin, oldest registered first, and
 * their unreferenced cached extents dropped until the count is back under
 * seven eighths of the cap. Delayed extents are never dropped. Trees with
 * reclaimable extents are on an intrusive list (s_es_list), so joining and
 * leaving it, once per inode a walk maps, allocates nothing.
 */
export class EsShrinker {
  private head: ExtentStatusTree | undefined = undefined;
  private tail: ExtentStatusTree | undefined = undefined;
  private total = 0;
  /** Extents dropped so far (statistics, tests). */
  reclaimed = 0;

  constructor(readonly cap: number) {}

  get cached(): number { return this.total; }

  adjust(tree: ExtentStatusTree, delta: number): void {
    this.total += delta;
    if (tree.reclaimableCount > 0) {
      if (!tree.onEsList) this.append(tree);
    } else if (tree.onEsList) {
      this.unlink(tree);
    }
  }

  /** Called after caching: shrinks the other trees first, `current` last. */
  balance(current: ExtentStatusTree): void {
    if (this.total <= this.cap) return;
    const target = Math.floor((this.cap * 7) / 8);
    for (let pass = 0; pass < 3 && this.total > target; pass++) {
      // One round over the trees listed now; a scanned tree goes to the back (round-robin).
      let n = this.length();
      for (let t = this.head; t && n > 0 && this.total > target; n--) {
        const next = t.esNext;
        if (t !== current || pass >= 2) {
          this.unlink(t);
          this.reclaimed += t.shrink(pass === 2);
          if (t.reclaimableCount > 0 && !t.onEsList) this.append(t);
        }
        t = next;
      }
    }
  }

  forget(tree: ExtentStatusTree): void {
    tree.clear();
    if (tree.onEsList) this.unlink(tree);
  }

  clear(): void {
    for (let t = this.head; t; ) {
      const next = t.esNext;
      this.unlink(t);
      t.shrink(true);
      t = next;
    }
    this.head = this.tail = undefined;
    this.total = 0;
  }

  private length(): number {
    let n = 0;
    for (let t = this.head; t; t = t.esNext) n++;
    return n;
  }

  private append(t: ExtentStatusTree): void {
    t.onEsList = true;
    t.esPrev = this.tail;
    t.esNext = undefined;
    if (this.tail) this.tail.esNext = t; else this.head = t;
    this.tail = t;
  }

  private unlink(t: ExtentStatusTree): void {
    if (t.esPrev) t.esPrev.esNext = t.esNext; else this.head = t.esNext;
    if (t.esNext) t.esNext.esPrev = t.esPrev; else this.tail = t.esPrev;
    t.esPrev = t.esNext = undefined;
    t.onEsList = false;
  }
}
