// A device over bytes in memory: for tests, benchmarks and images built in RAM.

import { Ext4Error } from "../errors.js";
import { BlockDevice, checkRange, totalLength } from "./block-device.js";

export class MemoryDevice implements BlockDevice {
  readonly readOnly: boolean;
  constructor(readonly bytes: Uint8Array, opts: { readOnly?: boolean } = {}) {
    this.readOnly = opts.readOnly ?? false;
  }
  static ofSize(size: number): MemoryDevice {
    return new MemoryDevice(new Uint8Array(size));
  }
  get size(): number { return this.bytes.length; }
  read(pos: number, dst: Uint8Array): void {
    checkRange(this, pos, dst.length, "read");
    dst.set(this.bytes.subarray(pos, pos + dst.length));
  }
  write(pos: number, src: Uint8Array): void {
    if (this.readOnly) throw new Ext4Error("EROFS", "device is read-only", { syscall: "write" });
    checkRange(this, pos, src.length, "write");
    this.bytes.set(src, pos);
  }
  writev(pos: number, srcs: Uint8Array[]): void {
    if (this.readOnly) throw new Ext4Error("EROFS", "device is read-only", { syscall: "write" });
    checkRange(this, pos, totalLength(srcs), "write");
    let p = pos;
    for (const s of srcs) {
      this.bytes.set(s, p);
      p += s.length;
    }
  }
  flush(): void {}
  close(): void {}
}
