// Metadata blocks, cached in the folio arena under the device's own mapping
// (as the kernel caches buffer heads in the block device's page cache).

import { corrupted, Ext4Error } from "../errors.js";
import { readScatter, type BlockDevice } from "../device/block-device.js";
import { BufferHead, type BufferHeadOwner } from "./buffer-head.js";
import { DEVICE_MAPPING, FolioCache, PAGE_SIZE } from "./folio-cache.js";

/**
 * Reads device bytes into one buffer or, in order, several. A failure of the
 * device itself (anything but an Ext4Error) is reported as EIO, the device's
 * own error kept as the cause. Bytes past the device's end (a truncated
 * image) are EIO naming the block, when `blockSize` says what a block is.
 */
export function readDevice(device: BlockDevice, pos: number, dst: Uint8Array | Uint8Array[], blockSize?: number): void {
  const len = Array.isArray(dst) ? dst.reduce((n, d) => n + d.length, 0) : dst.length;
  if (pos + len > device.size) throw pastDeviceEnd(device, pos, len, blockSize);
  try {
    if (Array.isArray(dst)) readScatter(device, pos, dst);
    else device.read(pos, dst);
  } catch (e) {
    if (e instanceof Ext4Error) throw e;
    throw new Ext4Error("EIO", `device read failed at offset ${pos}: ${e instanceof Error ? e.message : String(e)}`, { syscall: "read", cause: e });
  }
}

/** The kernel's "attempt to access beyond end of device", as EIO naming the first missing block. */
export function pastDeviceEnd(device: BlockDevice, pos: number, len: number, blockSize?: number): Ext4Error {
  const size = device.size;
  if (!blockSize) {
    return new Ext4Error("EIO", `read of ${len} bytes at offset ${pos} is past the end of the device (${size} bytes): the image is truncated`, { syscall: "read" });
  }
  const block = Math.floor(Math.max(pos, size) / blockSize);
  return new Ext4Error("EIO", `block ${block} is past the end of the device (${size} bytes, ${Math.floor(size / blockSize)} blocks): the image is truncated`, { syscall: "read", block });
}

export class BufferCache implements BufferHeadOwner {
  /** Buffer heads in use: held, dirty, or known to the journal. Clean idle ones are dropped. */
  private readonly heads = new Map<number, BufferHead>();
  /** Buffers waiting to be written home. */
  private readonly dirtyHeads = new Set<BufferHead>();

  constructor(readonly cache: FolioCache, readonly device: BlockDevice, readonly blocksCount: number) {}

  get blockSize(): number { return this.cache.blockSize; }

  private checkBlock(pblk: number, what: string): void {
    if (!Number.isSafeInteger(pblk) || pblk < 0 || pblk >= this.blocksCount) {
      throw corrupted(`${what} number ${pblk} is outside the filesystem (${this.blocksCount} blocks)`, { block: pblk });
    }
  }

  /** The folio slot holding `pblk` and the block's index in it, creating the folio if needed. */
  private folioOf(pblk: number): { slot: number; blk: number; off: number } {
    const bs = this.cache.blockSize;
    const byte = pblk * bs;
    const page = Math.floor(byte / PAGE_SIZE);
    let slot = this.cache.lookup(DEVICE_MAPPING, page);
    if (slot < 0) slot = this.cache.create(DEVICE_MAPPING, page, this.cache.minOrder);
    const off = byte - this.cache.index(slot) * PAGE_SIZE;
    return { slot, blk: off / bs, off };
  }

  /**
   * The bytes of filesystem block `pblk`, read through the cache. The view is
   * valid until the next cache call; copy what must outlive that.
   */
  read(pblk: number, what = "metadata block"): Uint8Array {
    this.checkBlock(pblk, what);
    const bs = this.cache.blockSize;
    const { slot, blk, off } = this.folioOf(pblk);
    if (!this.cache.isUptodate(slot, blk, 1)) {
      readDevice(this.device, pblk * bs, this.cache.wasm.view(this.cache.addr(slot) + off, bs), bs);
      this.cache.setUptodate(slot, blk, 1);
    }
    return this.cache.wasm.view(this.cache.addr(slot) + off, bs);
  }

  /** Reads `pblk` and copies it out (for data that must outlive other cache calls). */
  readCopy(pblk: number, what?: string): Uint8Array {
    return this.read(pblk, what).slice();
  }

  // ---- buffer heads (fs/buffer.c: __getblk, __bread, brelse, bforget) ----

  /** The buffer head of `pblk`, referenced; its bytes are not read (see bread). */
  getblk(pblk: number, what = "metadata block"): BufferHead {
    this.checkBlock(pblk, what);
    let bh = this.heads.get(pblk);
    if (bh && !this.stillCached(bh)) {
      // Only an idle clean head can lose its folio; find the block's folio again.
      const f = this.folioOf(pblk);
      bh.slot = f.slot;
      bh.gen = this.cache.gen(f.slot);
      bh.blkInFolio = f.blk;
    }
    if (!bh) {
      const f = this.folioOf(pblk);
      bh = new BufferHead(pblk, f.slot, this.cache.gen(f.slot), f.blk, this);
      this.heads.set(pblk, bh);
    }
    if (bh.count++ === 0) this.cache.x.folioPin(bh.slot);
    return bh;
  }

  /** getblk, then the block's bytes from the device unless cached. */
  bread(pblk: number, what = "metadata block"): BufferHead {
    const bh = this.getblk(pblk, what);
    if (!this.bufferUptodate(bh)) {
      try {
        readDevice(this.device, pblk * this.blockSize, this.bufferData(bh), this.blockSize);
      } catch (e) {
        this.brelse(bh);
        throw e;
      }
      this.cache.setUptodate(bh.slot, bh.blkInFolio, 1);
    }
    return bh;
  }

  /** Drops a reference; an idle clean buffer the journal does not know is forgotten. */
  brelse(bh: BufferHead): void {
    if (bh.count <= 0) throw new Error(`brelse of unreferenced buffer ${bh.blocknr}`);
    if (--bh.count === 0) {
      this.cache.x.folioUnpin(bh.slot);
      this.maybeDrop(bh);
    }
  }

  /** Marks the whole block's bytes valid (a new block its writer fills completely). */
  setUptodate(bh: BufferHead): void { this.cache.setUptodate(bh.slot, bh.blkInFolio, 1); }

  /**
   * mark_buffer_dirty. Only a journal handle (host/journal/handle.ts) or the
   * checkpoint of a committed transaction may call this: it is the seam that
   * keeps metadata from reaching the device around the journal.
   */
  markDirty(bh: BufferHead): void {
    if (!this.bufferUptodate(bh)) throw new Error(`dirtying buffer ${bh.blocknr} that is not uptodate`);
    this.cache.x.folioSetDirty(bh.slot, bh.blkInFolio, 1);
    this.dirtyHeads.add(bh);
  }

  clearDirty(bh: BufferHead): void {
    if (!this.dirtyHeads.delete(bh)) return;
    this.cache.x.folioClearDirty(bh.slot, bh.blkInFolio, 1);
    if (bh.count === 0) this.maybeDrop(bh);
  }

  /** Writes one dirty buffer home (no flush) and marks it clean. */
  writeBuffer(bh: BufferHead): void {
    if (!this.dirtyHeads.has(bh)) return;
    writeDevice(this.device, bh.blocknr * this.blockSize, this.bufferData(bh));
    this.clearDirty(bh);
  }

  /** Every dirty buffer home, in block order, then the caller flushes (sync_blockdev). */
  writeDirty(filter?: (bh: BufferHead) => boolean): number {
    const list = [...this.dirtyHeads].filter((bh) => !filter || filter(bh)).sort((a, b) => a.blocknr - b.blocknr);
    for (const bh of list) this.writeBuffer(bh);
    return list.length;
  }

  get dirtyCount(): number { return this.dirtyHeads.size; }

  /** After an error turned the volume read-only: every dirty buffer dropped unwritten (what was not committed never lands). */
  discardDirty(): void {
    for (const bh of [...this.dirtyHeads]) this.clearDirty(bh);
  }

  /** The buffer head of `pblk` if one is in use (held, dirty or journaled), without a reference. */
  peek(pblk: number): BufferHead | undefined { return this.heads.get(pblk); }

  /**
   * clean_bdev_aliases: blocks now allocated as file data lose any cached
   * metadata copy, dirty or not, so nothing writes an old metadata block over
   * the new data. A block the journal still holds is the journal's to forget
   * (jbd2_journal_forget / revoke) first: that would be an engine bug.
   */
  forgetRange(pblk: number, count: number): void {
    for (let b = pblk; b < pblk + count; b++) {
      const bh = this.heads.get(b);
      if (bh) {
        if (bh.jh !== undefined) throw new Error(`block ${b} allocated as data while the journal still holds it`);
        if (bh.count > 0) throw new Error(`block ${b} allocated as data while its metadata buffer is held`);
        if (this.dirtyHeads.delete(bh)) this.cache.x.folioClearDirty(bh.slot, bh.blkInFolio, 1);
        this.heads.delete(b);
      }
      const slot = this.cache.lookup(DEVICE_MAPPING, Math.floor((b * this.blockSize) / PAGE_SIZE));
      if (slot >= 0) {
        const blk = (b * this.blockSize - this.cache.index(slot) * PAGE_SIZE) / this.blockSize;
        if (this.cache.x.folioFindDirty(slot, blk, 1) >= 0) this.cache.x.folioClearDirty(slot, blk, 1);
        this.cache.x.folioClearUptodate(slot, blk, 1);
      }
    }
  }

  /** Drops every idle buffer head (the folio cache is being emptied). Held or dirty buffers are a bug here. */
  dropAll(): void {
    if (this.dirtyHeads.size) throw new Error(`dropping the buffer cache with ${this.dirtyHeads.size} dirty buffers`);
    this.heads.clear();
  }

  // ---- BufferHeadOwner ----

  bufferData(bh: BufferHead): Uint8Array {
    const bs = this.blockSize;
    return this.cache.wasm.view(this.cache.addr(bh.slot) + bh.blkInFolio * bs, bs);
  }
  bufferUptodate(bh: BufferHead): boolean {
    return this.stillCached(bh) && this.cache.isUptodate(bh.slot, bh.blkInFolio, 1);
  }
  bufferDirty(bh: BufferHead): boolean { return this.dirtyHeads.has(bh); }

  private stillCached(bh: BufferHead): boolean {
    return this.cache.gen(bh.slot) === bh.gen && this.cache.mappingOfSlot(bh.slot) === DEVICE_MAPPING;
  }

  private maybeDrop(bh: BufferHead): void {
    if (bh.count === 0 && bh.jh === undefined && !this.dirtyHeads.has(bh)) this.heads.delete(bh.blocknr);
  }
}

/** Writes device bytes; a failure of the device itself is EIO with the cause kept. */
export function writeDevice(device: BlockDevice, pos: number, src: Uint8Array): void {
  if (pos + src.length > device.size) {
    throw new Ext4Error("EIO", `write of ${src.length} bytes at offset ${pos} is past the end of the device (${device.size} bytes)`, { syscall: "write" });
  }
  try {
    device.write(pos, src);
  } catch (e) {
    if (e instanceof Ext4Error) throw e;
    throw new Ext4Error("EIO", `device write failed at offset ${pos}: ${e instanceof Error ? e.message : String(e)}`, { syscall: "write", cause: e });
  }
}
