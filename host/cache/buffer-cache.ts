// Metadata blocks, cached in the folio arena under the device's own mapping
// (as the kernel caches buffer heads in the block device's page cache).

import { corrupted, Ext4Error } from "../errors.js";
import { readScatter, type BlockDevice } from "../device/block-device.js";
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

export class BufferCache {
  constructor(readonly cache: FolioCache, readonly device: BlockDevice, readonly blocksCount: number) {}

  get blockSize(): number { return this.cache.blockSize; }

  /**
   * The bytes of filesystem block `pblk`, read through the cache. The view is
   * valid until the next cache call; copy what must outlive that.
   */
  read(pblk: number, what = "metadata block"): Uint8Array {
    if (!Number.isSafeInteger(pblk) || pblk < 0 || pblk >= this.blocksCount) {
      throw corrupted(`${what} number ${pblk} is outside the filesystem (${this.blocksCount} blocks)`, { block: pblk });
    }
    const bs = this.cache.blockSize;
    const byte = pblk * bs;
    const page = Math.floor(byte / PAGE_SIZE);
    let slot = this.cache.lookup(DEVICE_MAPPING, page);
    if (slot < 0) slot = this.cache.create(DEVICE_MAPPING, page, this.cache.minOrder);
    const folioStart = this.cache.index(slot) * PAGE_SIZE;
    const blkInFolio = Math.floor((byte - folioStart) / bs);
    const off = byte - folioStart;
    if (!this.cache.isUptodate(slot, blkInFolio, 1)) {
      readDevice(this.device, byte, this.cache.wasm.view(this.cache.addr(slot) + off, bs), bs);
      this.cache.setUptodate(slot, blkInFolio, 1);
    }
    return this.cache.wasm.view(this.cache.addr(slot) + off, bs);
  }

  /** Reads `pblk` and copies it out (for data that must outlive other cache calls). */
  readCopy(pblk: number, what?: string): Uint8Array {
    return this.read(pblk, what).slice();
  }
}
