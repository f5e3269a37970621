// The xattr block cache (fs/mbcache.c as ext4 keeps EA_BLOCK_CACHE): block
// hash -> xattr blocks recently read or written with it, so an inode whose
// new attribute set equals a block already on disk takes a reference to that
// block instead of a block of its own. Entries are hints: a candidate is
// re-read, compared in full, and must still be allocated before it is shared.

import type { Ext4 } from "./super.js";

/** Entries kept per filesystem (the kernel's mbcache shrinks under memory pressure; here a fixed bound). */
const MAX_ENTRIES = 4096;

export class XattrBlockCache {
  /** hash -> blocks, most recently used last. */
  private readonly byHash = new Map<number, number[]>();
  private entries = 0;

  /** ext4_xattr_block_cache_insert. A zero hash marks a block never to share. */
  insert(hash: number, pblk: number): void {
    if (hash === 0) return;
    const list = this.byHash.get(hash);
    if (list) {
      const i = list.indexOf(pblk);
      if (i >= 0) list.splice(i, 1);
      else this.entries++;
      list.push(pblk);
    } else {
      this.byHash.set(hash, [pblk]);
      this.entries++;
    }
    // Map order is insertion order: drop from the oldest hash first.
    while (this.entries > MAX_ENTRIES) {
      const [h, l] = this.byHash.entries().next().value as [number, number[]];
      l.shift();
      this.entries--;
      if (l.length === 0) this.byHash.delete(h);
    }
  }

  /** mb_cache_entry_delete: the block is freed or its contents (and so its hash) change. */
  delete(hash: number, pblk: number): void {
    const list = this.byHash.get(hash);
    const i = list ? list.indexOf(pblk) : -1;
    if (i < 0) return;
    list!.splice(i, 1);
    this.entries--;
    if (list!.length === 0) this.byHash.delete(hash);
  }

  /** mb_cache_entry_find_first/next: the candidates of a hash, most recent first. */
  candidates(hash: number): number[] {
    return [...(this.byHash.get(hash) ?? [])].reverse();
  }
}

const caches = new WeakMap<Ext4, XattrBlockCache>();

/** The mounted filesystem's cache (s_ea_block_cache). */
export function xattrBlockCache(fs: Ext4): XattrBlockCache {
  let c = caches.get(fs);
  if (!c) {
    c = new XattrBlockCache();
    caches.set(fs, c);
  }
  return c;
}
