// Caches of what has already been worked out, as the kernel keeps them: the
// dentry cache (directory inode + name -> inode, negative entries included),
// whole directories read in one scan (so a walk that lists a directory and
// then looks each name up costs one scan, not one per name), where the last
// linear lookup in a directory found its name (i_dir_start_lookup), and the
// set of metadata blocks whose checksum was already verified (the
// buffer_verified bit). All are dropped whenever the block device's contents
// may have changed under them (journal replay). The name caches are sized
// from the folio cache budget, so a mount made small to walk a tree (the CLI)
// keeps its JS heap small too.

import { LruMap } from "../cache/lru.js";

/** Dentries kept: one per 4 KiB of cache budget (65536 for the default 256 MiB), about 100 bytes each. */
const DENTRY_BYTES_PER_ENTRY = 4096;
const DENTRY_MIN = 1024;
const VERIFIED_BYTES_PER_MARK = 1024;
const VERIFIED_MIN = 4096;
/** Budget for whole-directory indexes, in estimated bytes (name + map overhead): a sixteenth of the cache budget. */
const DIR_INDEX_SHARE = 16;
/** Measured: a Map entry with its key string costs about this much more than the name. */
const DIR_INDEX_ENTRY_OVERHEAD = 96;
const START_HINTS_MAX = 1 << 12;

/** The name's bytes as a flat one-byte string (names are at most 255 bytes; += would build a rope per byte). */
function nameKey(name: Uint8Array): string {
  return String.fromCharCode.apply(null, name as unknown as number[]);
}

export class Dcache {
  private readonly entries: LruMap<string, number>;
  /** Directories read in full: every name they hold (so a miss is a true negative). LRU by directory. */
  private dirs = new Map<number, { names: Map<string, number>; cost: number }>();
  private dirBytes = 0;
  private startHints = new Map<number, number>();
  /**
   * Directories not kept whole: a full read failed (a bad block further on) or
   * they are bigger than the budget. Their lookups scan from the start hint
   * rather than read the whole directory again each time.
   */
  private scanOnly = new Set<number>();

  private readonly dirIndexMaxBytes: number;

  constructor(cacheBytes: number) {
    this.entries = new LruMap(Math.max(DENTRY_MIN, Math.floor(cacheBytes / DENTRY_BYTES_PER_ENTRY)));
    this.dirIndexMaxBytes = Math.floor(cacheBytes / DIR_INDEX_SHARE);
  }

  private static key(dirIno: number, name: Uint8Array): string {
    return `${dirIno}/${nameKey(name)}`;
  }

  /** The cached answer: an inode number, 0 for a known-absent name, undefined if unknown. */
  get(dirIno: number, name: Uint8Array): number | undefined {
    const dir = this.dirs.get(dirIno);
    if (dir) return dir.names.get(nameKey(name)) ?? 0;
    return this.entries.get(Dcache.key(dirIno, name));
  }

  set(dirIno: number, name: Uint8Array, ino: number): void {
    this.entries.set(Dcache.key(dirIno, name), ino);
  }

  /** Has the directory been read in full (and is still remembered)? Refreshes its recency. */
  hasDir(dirIno: number): boolean {
    const d = this.dirs.get(dirIno);
    if (!d) return false;
    this.dirs.delete(dirIno);
    this.dirs.set(dirIno, d);
    return true;
  }

  /** Remembers every entry of a directory just read in full. A directory bigger than the budget is not kept, and its lookups scan. */
  setDir(dirIno: number, all: { ino: number; name: Uint8Array }[]): void {
    let cost = 0;
    for (const e of all) cost += e.name.length + DIR_INDEX_ENTRY_OVERHEAD;
    if (cost > this.dirIndexMaxBytes / 2) {
      this.markScanOnly(dirIno);
      return;
    }
    this.dropDir(dirIno);
    while (this.dirBytes + cost > this.dirIndexMaxBytes) this.dropDir(this.dirs.keys().next().value!);
    const names = new Map<string, number>();
    for (const e of all) {
      const k = nameKey(e.name);
      if (!names.has(k)) names.set(k, e.ino); // the first of duplicate names is what a scan finds
    }
    this.dirs.set(dirIno, { names, cost });
    this.dirBytes += cost;
  }

  /**
   * A name was added to a directory (`ino`) or removed from it (0): the next
   * lookup and a directory kept whole must see it, as d_instantiate / d_delete.
   */
  update(dirIno: number, name: Uint8Array, ino: number): void {
    const d = this.dirs.get(dirIno);
    if (d) {
      const k = nameKey(name);
      if (ino) {
        if (!d.names.has(k)) { d.cost += k.length + DIR_INDEX_ENTRY_OVERHEAD; this.dirBytes += k.length + DIR_INDEX_ENTRY_OVERHEAD; }
        d.names.set(k, ino);
      } else d.names.delete(k);
    }
    this.entries.set(Dcache.key(dirIno, name), ino);
  }

  /** Forgets a directory read whole (it became indexed: its lookups go by hash from now on). */
  forgetDir(dirIno: number): void { this.dropDir(dirIno); }

  private dropDir(dirIno: number): void {
    const d = this.dirs.get(dirIno);
    if (!d) return;
    this.dirs.delete(dirIno);
    this.dirBytes -= d.cost;
  }

  markScanOnly(dirIno: number): void {
    if (this.scanOnly.size >= START_HINTS_MAX) this.scanOnly.clear();
    this.scanOnly.add(dirIno);
  }

  isScanOnly(dirIno: number): boolean { return this.scanOnly.has(dirIno); }

  /** The block where the last linear lookup in this directory found its name (0 if none). */
  startHint(dirIno: number): number { return this.startHints.get(dirIno) ?? 0; }

  setStartHint(dirIno: number, lblk: number): void {
    if (this.startHints.size >= START_HINTS_MAX) this.startHints.clear();
    this.startHints.set(dirIno, lblk);
  }

  clear(): void {
    this.entries.clear();
    this.dirs.clear();
    this.dirBytes = 0;
    this.startHints.clear();
    this.scanOnly.clear();
  }
}

/**
 * Verified marks, one per block (the owner it was verified for), LRU. A mark
 * only saves a crc32c of a block read again, so it is worth keeping about as
 * long as the cache keeps the block: one per KiB of cache budget. (A set per
 * owner, as before, cost a Set per directory of a walk and grew to 2^20 marks.)
 * A block asked for under another owner (a cross-linked block) is verified
 * again under that owner, which then holds the mark.
 */
export class VerifiedBlocks {
  private readonly owners: LruMap<number, number>;
  constructor(cacheBytes: number) {
    this.owners = new LruMap(Math.max(VERIFIED_MIN, Math.floor(cacheBytes / VERIFIED_BYTES_PER_MARK)));
  }
  /** Was `pblk` verified as metadata of inode `owner` (0 for filesystem-wide metadata)? */
  has(owner: number, pblk: number): boolean { return this.owners.get(pblk) === owner; }
  add(owner: number, pblk: number): void { this.owners.set(pblk, owner); }
  clear(): void { this.owners.clear(); }
}
