// A device that logs every write and flush passing through it, in order (the
// dm-log-writes / CrashMonkey model), so a test can rebuild what the device
// could hold after a crash at any moment: everything before a flush, plus any
// subset of the writes issued after it and before the next one.

import { BlockDevice, readScatter, totalLength, writeGather } from "./block-device.js";

export type DeviceEvent =
  | { kind: "write"; pos: number; data: Uint8Array }
  | { kind: "flush" };

export class RecordingDevice implements BlockDevice {
  readonly events: DeviceEvent[] = [];

  constructor(private readonly inner: BlockDevice) {}

  get size(): number { return this.inner.size; }
  get readOnly(): boolean { return this.inner.readOnly; }

  read(pos: number, dst: Uint8Array): void { this.inner.read(pos, dst); }
  readv(pos: number, dsts: Uint8Array[]): void { readScatter(this.inner, pos, dsts); }

  write(pos: number, src: Uint8Array): void {
    this.inner.write(pos, src);
    this.events.push({ kind: "write", pos, data: src.slice() });
  }

  /** A gathered write is one request: logged as one write of the views' bytes. */
  writev(pos: number, srcs: Uint8Array[]): void {
    writeGather(this.inner, pos, srcs);
    const data = new Uint8Array(totalLength(srcs));
    let o = 0;
    for (const s of srcs) {
      data.set(s, o);
      o += s.length;
    }
    this.events.push({ kind: "write", pos, data });
  }

  flush(): void {
    this.inner.flush();
    this.events.push({ kind: "flush" });
  }

  close(): void { this.inner.close(); }

  /** Indexes into `events` of the flushes, in order. */
  flushPoints(): number[] {
    const out: number[] = [];
    this.events.forEach((e, i) => { if (e.kind === "flush") out.push(i); });
    return out;
  }

  /**
   * Event indexes of the writes a crash right after event `at` may or may not
   * have kept: those after the last flush at or before `at`, up to `at`.
   */
  inFlight(at: number): number[] {
    const out: number[] = [];
    for (let i = Math.min(at, this.events.length - 1); i >= 0 && this.events[i].kind !== "flush"; i--) out.unshift(i);
    return out;
  }

  /**
   * The device bytes after a crash following event `at` (-1: before any):
   * `base` (the device when recording began) with every write up to the last
   * flush at or before `at` applied, then those of the in-flight writes that
   * `keep` selects (all of them when omitted), in issue order.
   */
  crashImage(base: Uint8Array, at: number, keep?: (eventIndex: number) => boolean): Uint8Array {
    if (base.length !== this.size) throw new RangeError(`base is ${base.length} bytes, the device ${this.size}`);
    const img = base.slice();
    const last = Math.min(at, this.events.length - 1);
    const flight = new Set(this.inFlight(last));
    for (let i = 0; i <= last; i++) {
      const e = this.events[i];
      if (e.kind !== "write") continue;
      if (flight.has(i) && keep && !keep(i)) continue;
      img.set(e.data, e.pos);
    }
    return img;
  }
}
