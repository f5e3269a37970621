// What the bh write path keeps per mount: the shared buffer rings, the mount
// options it obeys, and its registrations with the layers below (the folio
// cache's writeback callback for data mappings, the journal's ordered-data
// hook, the cache's invalidate_folio hook). One per mount, however many
// BhBufferedIO objects are made over it.

import { DEVICE_MAPPING, MAX_INDEX } from "../../cache/folio-cache.js";
import { setInvalidateFolioHook } from "../../cache/truncate.js";
import { type Inode, INODE_FLAGS, isReg } from "../../format/inode.js";
import type { Ext4Inode } from "../../fs/inode.js";
import type { Ext4 } from "../../fs/super.js";
import { buffersOf, type BufferHeads } from "./buffer-head.js";
import { bhWritepages } from "./writepages.js";

export class BhState {
  readonly buffers: BufferHeads;

  constructor(readonly fs: Ext4) {
    this.buffers = buffersOf(fs.cache);
    if (!fs.readOnly) this.register();
  }

  get dataMode(): "ordered" | "writeback" | "journal" { return this.fs.config.options.data; }

  /** test_opt(DELALLOC): off with data=journal, as ext4 turns it off there. */
  get delalloc(): boolean {
    const o = this.fs.config.options;
    return o.delalloc && o.data !== "journal";
  }

  /** ext4_should_dioread_nolock: extent-mapped regular files, delalloc on, data not journaled. */
  dioreadNolock(inode: Inode): boolean {
    return this.fs.config.options.dioreadNolock && isReg(inode) && (inode.flags & INODE_FLAGS.EXTENTS) !== 0
      && !(inode.flags & INODE_FLAGS.JOURNAL_DATA) && this.delalloc;
  }

  /** ext4_should_order_data. */
  orderData(inode: Inode): boolean {
    return this.dataMode === "ordered" && !(inode.flags & INODE_FLAGS.JOURNAL_DATA) && this.fs.journal !== undefined;
  }

  /** The in-core inode whose mapping is `id`, if it is cached (every inode with dirty folios is). */
  inodeOfMapping(id: number): Ext4Inode | undefined {
    const st = this.fs.cache.mappings.get(id);
    if (!st || id === DEVICE_MAPPING) return undefined;
    const inode = this.fs.icache.cached(st.ino);
    return inode && inode.generation === st.generation ? inode : undefined;
  }

  private register(): void {
    const fs = this.fs;
    // Data mappings only: metadata reaches home through the journal checkpoint (or fs.sync without one).
    fs.cache.writeback.setCallback((id, start, end) => {
      if (id === DEVICE_MAPPING) return;
      const inode = this.inodeOfMapping(id);
      if (!inode || inode.bufferedIomap) return;
      bhWritepages(this, inode, start, end, { sync: false, canMap: true });
    });
    // data=ordered: a commit writes and waits on its inodes' mapped data (ext4_normal_submit_inode_data_buffers: no allocation).
    if (fs.journal) {
      fs.journal.writeOrderedData = (inos) => {
        for (const ino of inos) {
          const inode = fs.icache.cached(ino);
          if (inode && !inode.bufferedIomap) bhWritepages(this, inode, 0, MAX_INDEX, { sync: true, canMap: false });
        }
      };
    }
    const bs = fs.sb.blockSize;
    setInvalidateFolioHook(fs.cache, (slot, offset, length) => {
      const first = Math.ceil(offset / bs);
      const last = Math.floor((offset + length) / bs);
      if (last > first) this.buffers.invalidate(slot, first, last - first);
    });
  }
}

const states = new WeakMap<Ext4, BhState>();

/** The mount's bh write-path state, made (and registered) on first use. */
export function bhState(fs: Ext4): BhState {
  let s = states.get(fs);
  if (!s) states.set(fs, (s = new BhState(fs)));
  return s;
}
