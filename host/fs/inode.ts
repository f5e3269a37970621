// The in-core inode (struct ext4_inode_info): one object per inode number,
// reference-counted by iget / iput, carrying what the on-disk inode does not:
// i_size apart from i_disksize, state bits, delalloc reservations, the
// transaction ids fsync waits for, and the extent status tree.
//
// The cache keeps every referenced or pinned inode (dirty, dirty folios,
// delayed extents, reservations) and idle ones in an LRU: while an inode is
// referenced, iget returns that one object. An unreferenced object can be
// evicted and a later lookup reads a new one, so whoever keeps an inode past
// the call that found it (an open file) or changes it holds an iget
// reference; changing an evicted object once a newer one exists is refused.
// (Not WeakRefs: a WeakRef keeps its target alive until the synchronous job
// ends, and a tree walk is one job.)

import { LruMap } from "../cache/lru.js";
import { INODE_FLAGS, type Inode, isReg, type Timespec } from "../format/inode.js";
import { ExtentStatusTree, type EsShrinker } from "./extents-status.js";
import type { Ext4 } from "./super.js";

/** ext4_inode_info state bits (EXT4_STATE_*). */
export const STATE = {
  /** Never written: the first write zeroes the whole on-disk inode, in-inode xattr area included. */
  NEW: 1 << 0,
  /** Buffered I/O goes through iomap (EXT4_STATE_BUFFERED_IOMAP); clear: buffer heads. */
  BUFFERED_IOMAP: 1 << 1,
  /** Freed (ext4_free_inode): the object is dead, the cache has forgotten it. */
  FREED: 1 << 2,
  /** On the orphan file, in slot `orphanIdx` (EXT4_STATE_ORPHAN_FILE); the legacy list is fs/orphan.ts's. */
  ORPHAN_FILE: 1 << 3,
  /**
   * Truncated to 0 with auto_da_alloc (EXT4_STATE_DA_ALLOC_CLOSE): the close
   * allocates its delayed blocks, for programs that rewrite a file in place
   * with O_TRUNC and expect the new bytes after a crash as the old ext3 gave.
   */
  DA_ALLOC_CLOSE: 1 << 4,
} as const;

export class Ext4Inode implements Inode {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  /** i_size: what stat and reads see. */
  size: number;
  atime: Timespec;
  ctime: Timespec;
  mtime: Timespec;
  crtime: Timespec | null;
  dtime: number;
  linksCount: number;
  blocks512: number;
  flags: number;
  generation: number;
  fileAcl: number;
  extraIsize: number;
  projid: number;
  version: number;
  iBlock: Uint8Array;
  raw: Uint8Array;

  /** i_disksize: the size the on-disk inode records (encodeInode writes this, not `size`). */
  disksize: number;
  /** EXT4_STATE_* bits. */
  state = 0;
  /** References held through iget (i_count). */
  count = 0;
  /** In-core fields changed and not yet written with markInodeDirty (keeps the inode cached). */
  dirty = false;
  /** Dirty folios of this inode's mapping; the buffered write path keeps it (keeps the inode cached, freezes the path bit). */
  dirtyFolios = 0;
  /** i_reserved_data_blocks: delalloc blocks reserved and not yet allocated. */
  reservedDataBlocks = 0;
  /** i_sync_tid / i_datasync_tid: the transactions fsync / fdatasync must see committed. */
  syncTid = 0;
  datasyncTid = 0;
  /** i_block_group. */
  readonly blockGroup: number;
  /** i_last_alloc_group (-1: none yet): where the last inode created in this directory went. */
  lastAllocGroup = -1;
  /** i_orphan_idx: the orphan file slot (block * entries per block + entry) while STATE.ORPHAN_FILE is set. */
  orphanIdx = -1;
  /**
   * S_NOSEC: a write found nothing to remove (no suid or sgid to kill, no
   * security.capability), so the next ones skip the check; any attribute or
   * xattr change clears it.
   */
  noSec = false;
  private esTree: ExtentStatusTree | undefined;

  constructor(d: Inode, inodesPerGroup: number, private readonly shrinker?: EsShrinker) {
    this.ino = d.ino;
    this.mode = d.mode;
    this.uid = d.uid;
    this.gid = d.gid;
    this.size = d.size;
    this.atime = d.atime;
    this.ctime = d.ctime;
    this.mtime = d.mtime;
    this.crtime = d.crtime;
    this.dtime = d.dtime;
    this.linksCount = d.linksCount;
    this.blocks512 = d.blocks512;
    this.flags = d.flags;
    this.generation = d.generation;
    this.fileAcl = d.fileAcl;
    this.extraIsize = d.extraIsize;
    this.projid = d.projid;
    this.version = d.version;
    this.iBlock = d.iBlock;
    this.raw = d.raw;
    this.disksize = d.disksize ?? d.size;
    this.blockGroup = Math.floor((d.ino - 1) / inodesPerGroup);
  }

  /** The extent status tree (i_es_tree) and its change counter `es.seq`; made on first use (a tree walk never needs one). */
  get es(): ExtentStatusTree {
    return (this.esTree ??= new ExtentStatusTree(this.shrinker));
  }

  /** Delayed blocks in the extent status tree. */
  get delayedBlocks(): number { return this.esTree?.delayedBlocks ?? 0; }

  /** Forgets every extent, delayed ones included (the inode is freed). */
  dropAllExtents(): void { this.esTree?.clear(); }

  /** Drops the cached (non-delayed) extents, as eviction does. */
  dropCachedExtents(): void { this.esTree?.shrink(true); }

  testState(bit: number): boolean { return (this.state & bit) !== 0; }
  setState(bit: number): void { this.state |= bit; }
  clearState(bit: number): void { this.state &= ~bit; }

  /** Whether the cache must keep this inode (referenced, dirty, or holding unwritten-back data). */
  get pinned(): boolean {
    return this.count > 0 || this.dirty || this.dirtyFolios > 0 || this.delayedBlocks > 0 || this.reservedDataBlocks > 0;
  }

  /** True when buffered I/O takes the iomap path (the state bit). */
  get bufferedIomap(): boolean { return (this.state & STATE.BUFFERED_IOMAP) !== 0; }

  /**
   * Fixes the buffered path. Never while the mapping has dirty folios: they
   * were made by one path and must be written back by it.
   */
  setBufferedIomap(on: boolean): void {
    if (on === this.bufferedIomap) return;
    if (this.dirtyFolios > 0) throw new Error(`inode ${this.ino}: the buffered I/O path cannot change while ${this.dirtyFolios} folios are dirty`);
    if (on) this.state |= STATE.BUFFERED_IOMAP;
    else this.state &= ~STATE.BUFFERED_IOMAP;
  }
}

/**
 * ext4_should_use_buffered_iomap: iomap when the mount asks for it
 * (buffered_iomap) and the inode has nothing iomap does not support; the
 * series' fallback rules send the rest to buffer heads.
 */
export function shouldUseBufferedIomap(fs: Ext4, inode: Inode): boolean {
  if (!fs.config.options.bufferedIomap) return false;
  if (!isReg(inode)) return false;
  if (fs.config.options.data === "journal" || inode.flags & INODE_FLAGS.JOURNAL_DATA) return false;
  if (!(inode.flags & INODE_FLAGS.EXTENTS)) return false;
  if (inode.flags & (INODE_FLAGS.INLINE_DATA | INODE_FLAGS.VERITY | INODE_FLAGS.ENCRYPT)) return false;
  return true;
}

/** ext4_update_inode_size: i_size grows, and i_disksize with it. Returns true if i_disksize changed. */
export function updateInodeSize(inode: Ext4Inode, newSize: number): boolean {
  if (newSize > inode.size) inode.size = newSize;
  if (newSize > inode.disksize) {
    inode.disksize = newSize;
    return true;
  }
  return false;
}

/** i_size and i_disksize both set (truncate, and files whose size is always on disk: directories, symlinks). */
export function setInodeSize(inode: Ext4Inode, size: number): void {
  inode.size = size;
  inode.disksize = size;
}

/**
 * The inode cache (the inode hash + LRU of fs/inode.c). `load` reads an inode
 * from its table; the cache never calls it for an inode it already has.
 *
 * Every cached inode is in exactly one of two places. The LRU holds the
 * recently used ones, referenced or not: as the kernel's inode LRU it is kept
 * lazily, so iget and iput of an inode in it only touch its recency (a walk
 * that opens each file once moves no entry between maps). When the LRU
 * pushes an inode out, a pinned one (referenced, dirty, delayed data) moves to
 * `busy` instead of being dropped, and goes back to the LRU when its last pin
 * goes.
 */
export class InodeCache {
  /** Pinned inodes the LRU pushed out (and new ones, referenced from the start). */
  private readonly busy = new Map<number, Ext4Inode>();
  /** Recently used inodes, least recently used pushed out first. */
  private readonly idle: LruMap<number, Ext4Inode>;
  /**
   * ext4_evict_inode for the final iput of an inode without links (iput_final:
   * i_nlink 0 means delete); a read-write mount sets it (fs/evict.ts).
   */
  evict: ((inode: Ext4Inode) => void) | undefined;

  constructor(idleCapacity: number, private readonly load: (ino: number) => Ext4Inode) {
    this.idle = new LruMap(idleCapacity, (_ino, inode) => this.evicted(inode));
  }

  /** iget: the inode, referenced. */
  iget(ino: number): Ext4Inode {
    const inode = this.busy.get(ino) ?? this.idle.get(ino) ?? this.loadNew(ino);
    inode.count++;
    return inode;
  }

  /** iput: drops a reference; an unpinned inode becomes idle (evictable). */
  iput(inode: Ext4Inode): void {
    if (inode.count <= 0) throw new Error(`iput of inode ${inode.ino} without a reference`);
    inode.count--;
    if (inode.count === 0 && inode.linksCount === 0 && this.evict && !(inode.state & STATE.FREED)) {
      try {
        this.evict(inode);
      } finally {
        this.settle(inode);
      }
      return;
    }
    this.settle(inode);
  }

  /**
   * The inode without a reference, for use within the current call (the read
   * path's lookups): it may be evicted once nothing references it.
   */
  peekOrLoad(ino: number): Ext4Inode {
    return this.busy.get(ino) ?? this.idle.get(ino) ?? this.loadNew(ino);
  }

  /**
   * Before an inode is changed: it must be its number's cached object. One
   * evicted while unreferenced is taken back if no newer one was read since;
   * otherwise changing it would fork the inode, and that is refused.
   */
  assertCurrent(inode: Ext4Inode): void {
    if (inode.state & STATE.FREED) throw new Error(`inode ${inode.ino} changed after it was freed`);
    const cur = this.cached(inode.ino);
    if (cur === inode) return;
    if (cur) throw new Error(`inode ${inode.ino} changed through a stale in-core object (evicted while unreferenced): hold it with iget`);
    this.idle.set(inode.ino, inode);
  }

  /** Re-files an inode whose pins changed (after markInodeDirty, writeback, a reservation released). */
  settle(inode: Ext4Inode): void {
    if (inode.state & STATE.FREED) return;
    // In the LRU, pinned or not, it stays: eviction looks at its pins then.
    if (this.idle.has(inode.ino)) return;
    const cur = this.busy.get(inode.ino);
    if (cur !== undefined && cur !== inode) return;
    if (inode.pinned) {
      if (cur === undefined) this.busy.set(inode.ino, inode);
    } else {
      if (cur !== undefined) this.busy.delete(inode.ino);
      this.idle.set(inode.ino, inode);
    }
  }

  /** Adds a newly created inode (ialloc): no object of its number may be in use. Returned referenced. */
  insertNew(inode: Ext4Inode): Ext4Inode {
    const old = this.cached(inode.ino);
    if (old) {
      if (old.pinned) throw new Error(`inode ${inode.ino} allocated while its in-core inode is still in use`);
      this.forget(old);
    }
    inode.count++;
    this.busy.set(inode.ino, inode);
    return inode;
  }

  /** Drops an inode from the cache for good (it was freed). */
  forget(inode: Ext4Inode): void {
    if (this.busy.get(inode.ino) === inode) this.busy.delete(inode.ino);
    if (this.idle.has(inode.ino) && this.idle.peek(inode.ino) === inode) this.idle.delete(inode.ino);
    inode.dropAllExtents();
  }

  /** The cached object of `ino` if any, without loading or referencing. */
  cached(ino: number): Ext4Inode | undefined {
    return this.busy.get(ino) ?? this.idle.peek(ino);
  }

  /** The referenced or pinned inodes, wherever they are cached (the LRU holds referenced ones too). */
  busyInodes(): Ext4Inode[] {
    const out = [...this.busy.values()];
    this.idle.forEach((i) => { if (i.pinned) out.push(i); });
    return out;
  }

  /** Pinned (busy) and unpinned (idle) inodes cached. */
  get stats(): { busy: number; idle: number } {
    let pinnedInLru = 0;
    this.idle.forEach((i) => { if (i.pinned) pinnedInLru++; });
    return { busy: this.busy.size + pinnedInLru, idle: this.idle.size - pinnedInLru };
  }

  /** Everything forgotten (journal replay changed the device under the cache). */
  clear(): void {
    const check = (i: Ext4Inode) => {
      if (i.dirty || i.dirtyFolios > 0 || i.delayedBlocks > 0) throw new Error(`dropping the inode cache with inode ${i.ino} dirty`);
    };
    this.busy.forEach(check);
    this.idle.forEach(check);
    this.busy.clear();
    this.idle.clear();
  }

  private loadNew(ino: number): Ext4Inode {
    const inode = this.load(ino);
    this.idle.set(ino, inode);
    return inode;
  }

  /** Pushed out of the LRU: a pinned inode stays cached in busy; an idle one's cached (non-delayed) extents go, the object may live on with whoever holds it. */
  private evicted(inode: Ext4Inode): void {
    if (inode.pinned) this.busy.set(inode.ino, inode);
    else inode.dropCachedExtents();
  }
}
