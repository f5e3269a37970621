// Caches of what has already been worked out, as the kernel keeps them: the
// dentry cache (directory inode + name -> inode, negative entries included)
// and the set of metadata blocks whose checksum was already verified (the
// buffer_verified bit). Both are dropped whenever the block device's contents
// may have changed under them (journal replay).

const DENTRY_MAX = 1 << 16;
const VERIFIED_MAX = 1 << 20;

export class Dcache {
  private entries = new Map<string, number>();

  private static key(dirIno: number, name: Uint8Array): string {
    let k = `${dirIno}/`;
    for (let i = 0; i < name.length; i++) k += String.fromCharCode(name[i]);
    return k;
  }

  /** The cached answer: an inode number, 0 for a known-absent name, undefined if unknown. */
  get(dirIno: number, name: Uint8Array): number | undefined {
    const k = Dcache.key(dirIno, name);
    const v = this.entries.get(k);
    if (v !== undefined) {
      // Refresh recency: Map iteration order is insertion order.
      this.entries.delete(k);
      this.entries.set(k, v);
    }
    return v;
  }

  set(dirIno: number, name: Uint8Array, ino: number): void {
    if (this.entries.size >= DENTRY_MAX) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(Dcache.key(dirIno, name), ino);
  }

  clear(): void { this.entries.clear(); }
}

export class VerifiedBlocks {
  private byOwner = new Map<number, Set<number>>();
  private size = 0;
  /** Was `pblk` verified as metadata of inode `owner` (0 for filesystem-wide metadata)? */
  has(owner: number, pblk: number): boolean { return this.byOwner.get(owner)?.has(pblk) ?? false; }
  add(owner: number, pblk: number): void {
    if (this.size >= VERIFIED_MAX) this.clear();
    let set = this.byOwner.get(owner);
    if (!set) this.byOwner.set(owner, (set = new Set()));
    if (!set.has(pblk)) {
      set.add(pblk);
      this.size++;
    }
  }
  clear(): void {
    this.byOwner.clear();
    this.size = 0;
  }
}
