// The one I/O boundary: a device moves bytes between a byte offset and a
// buffer. It knows nothing of ext4. Every call is synchronous, so the engine
// runs each operation to completion (see docs/design.md).

import { Ext4Error } from "../errors.js";

export interface BlockDevice {
  /** Size in bytes. */
  readonly size: number;
  readonly readOnly: boolean;
  /** Fills `dst` from byte `pos`; a short read is an EIO error. */
  read(pos: number, dst: Uint8Array): void;
  /**
   * Scatter read: fills each view in turn from contiguous device bytes
   * starting at `pos` (one request, like a bio spanning several folios).
   */
  readv?(pos: number, dsts: Uint8Array[]): void;
  /** Writes all of `src` at byte `pos`. */
  write(pos: number, src: Uint8Array): void;
  /**
   * Gathered write: each view in turn to contiguous device bytes from `pos`
   * (one request, like a bio of several folios). Optional: `writeGather`
   * falls back to one write per view.
   */
  writev?(pos: number, srcs: Uint8Array[]): void;
  /**
   * Makes every earlier write durable: the ordering barrier. The journal
   * relies on it (log blocks, flush, commit block, flush); a device whose
   * writes are durable at once may make it a no-op.
   */
  flush(): void;
  close(): void;
}

export function shortRead(pos: number, want: number, got: number, path?: string): Ext4Error {
  return new Ext4Error("EIO", `short read: ${got} of ${want} bytes at offset ${pos}`, { syscall: "read", path });
}

/** The refusal of anything but a regular file or a block device as an image. */
export function notAnImage(path: string, kind: string): Ext4Error {
  return new Ext4Error("EINVAL", `image must be a regular file or a block device (this is ${kind})`, { syscall: "open", path });
}

export function checkRange(dev: BlockDevice, pos: number, len: number, syscall: string): void {
  if (!Number.isSafeInteger(pos) || pos < 0 || pos + len > dev.size) {
    throw new Ext4Error("EIO", `access beyond the end of the device: ${len} bytes at offset ${pos} (device is ${dev.size} bytes)`, { syscall });
  }
}

/** A window of another device starting at `offset` (a partition in a disk image). */
export class OffsetDevice implements BlockDevice {
  readonly size: number;
  constructor(private readonly inner: BlockDevice, private readonly offset: number, size?: number) {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > inner.size) {
      throw new Ext4Error("EINVAL", `offset ${offset} is outside the device (${inner.size} bytes)`);
    }
    this.size = size ?? inner.size - offset;
    if (this.size < 0 || offset + this.size > inner.size) throw new Ext4Error("EINVAL", `window beyond the device end`);
  }
  get readOnly(): boolean { return this.inner.readOnly; }
  read(pos: number, dst: Uint8Array): void {
    checkRange(this, pos, dst.length, "read");
    this.inner.read(this.offset + pos, dst);
  }
  readv(pos: number, dsts: Uint8Array[]): void {
    checkRange(this, pos, totalLength(dsts), "read");
    readScatter(this.inner, this.offset + pos, dsts);
  }
  write(pos: number, src: Uint8Array): void {
    checkRange(this, pos, src.length, "write");
    this.inner.write(this.offset + pos, src);
  }
  writev(pos: number, srcs: Uint8Array[]): void {
    checkRange(this, pos, totalLength(srcs), "write");
    writeGather(this.inner, this.offset + pos, srcs);
  }
  flush(): void { this.inner.flush(); }
  close(): void { this.inner.close(); }
}

/** readv through a device's own readv when it has one, else one read per view. */
export function readScatter(dev: BlockDevice, pos: number, dsts: Uint8Array[]): void {
  if (dsts.length === 1) return dev.read(pos, dsts[0]);
  if (dev.readv) return dev.readv(pos, dsts);
  let p = pos;
  for (const d of dsts) {
    dev.read(p, d);
    p += d.length;
  }
}

/** writev through a device's own writev when it has one, else one write per view. */
export function writeGather(dev: BlockDevice, pos: number, srcs: Uint8Array[]): void {
  if (srcs.length === 1) return dev.write(pos, srcs[0]);
  if (dev.writev) return dev.writev(pos, srcs);
  let p = pos;
  for (const s of srcs) {
    dev.write(p, s);
    p += s.length;
  }
}

export function totalLength(views: Uint8Array[]): number {
  let n = 0;
  for (const v of views) n += v.length;
  return n;
}
