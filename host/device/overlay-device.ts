// A read-only view of a device with some blocks replaced: how a read-only
// mount sees a journal that needs recovery without writing the image.

import { Ext4Error } from "../errors.js";
import type { BlockDevice } from "./block-device.js";

export class OverlayDevice implements BlockDevice {
  readonly readOnly = true;
  constructor(private readonly inner: BlockDevice, private readonly blockSize: number, private readonly blocks: Map<number, Uint8Array>) {}
  get size(): number { return this.inner.size; }
  read(pos: number, dst: Uint8Array): void {
    this.inner.read(pos, dst);
    if (this.blocks.size === 0) return;
    const bs = this.blockSize;
    const first = Math.floor(pos / bs);
    const last = Math.floor((pos + dst.length - 1) / bs);
    if (last - first + 1 < this.blocks.size) {
      for (let b = first; b <= last; b++) this.patch(b, pos, dst);
    } else {
      for (const b of this.blocks.keys()) if (b >= first && b <= last) this.patch(b, pos, dst);
    }
  }
  private patch(b: number, pos: number, dst: Uint8Array): void {
    const data = this.blocks.get(b);
    if (!data) return;
    const start = b * this.blockSize;
    const from = Math.max(start, pos);
    const to = Math.min(start + this.blockSize, pos + dst.length);
    dst.set(data.subarray(from - start, to - start), from - pos);
  }
  write(): void { throw new Ext4Error("EROFS", "read-only mount", { syscall: "write" }); }
  flush(): void {}
  close(): void { this.inner.close(); }
}
