// A device over a file through node:fs synchronous positioned I/O. Bun
// implements node:fs natively (its own Bun.file API has no synchronous
// positioned read), so this class is also the Bun file device.

import * as fs from "node:fs";
import { Ext4Error } from "../errors.js";
import { BlockDevice, checkRange, notAnImage, shortRead, totalLength } from "./block-device.js";

// O_NONBLOCK: should a FIFO be swapped in between stat and open, the open
// returns at once instead of waiting for a writer (no effect on files).
const O_NONBLOCK = fs.constants.O_NONBLOCK ?? 0;

export class NodeFileDevice implements BlockDevice {
  readonly size: number;
  private fd: number;
  constructor(readonly path: string, readonly readOnly: boolean) {
    // stat first: opening a FIFO for reading would wait for a writer.
    checkKind(path, statOrThrow(path));
    try {
      this.fd = fs.openSync(path, (readOnly ? fs.constants.O_RDONLY : fs.constants.O_RDWR) | O_NONBLOCK);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new Ext4Error(err.code ?? "EIO", "cannot open image", { syscall: "open", path, cause: e });
    }
    const st = fs.fstatSync(this.fd);
    try {
      checkKind(path, st);
    } catch (e) {
      fs.closeSync(this.fd);
      throw e;
    }
    this.size = st.isBlockDevice() ? blockDeviceSize(this.fd) : st.size;
  }
  read(pos: number, dst: Uint8Array): void {
    checkRange(this, pos, dst.length, "read");
    let done = 0;
    while (done < dst.length) {
      let n: number;
      try {
        n = fs.readSync(this.fd, dst, done, dst.length - done, pos + done);
      } catch (e) {
        throw new Ext4Error("EIO", `read failed at offset ${pos + done}: ${(e as Error).message}`, { syscall: "read", path: this.path, cause: e });
      }
      if (n === 0) throw shortRead(pos, dst.length, done, this.path);
      done += n;
    }
  }
  readv(pos: number, dsts: Uint8Array[]): void {
    let total = 0;
    for (const d of dsts) total += d.length;
    checkRange(this, pos, total, "read");
    let n: number;
    try {
      n = fs.readvSync(this.fd, dsts, pos);
    } catch (e) {
      throw new Ext4Error("EIO", `read failed at offset ${pos}: ${(e as Error).message}`, { syscall: "read", path: this.path, cause: e });
    }
    if (n === total) return;
    // A short vectored read: finish view by view.
    let p = pos;
    for (const d of dsts) {
      const done = Math.min(Math.max(n - (p - pos), 0), d.length);
      if (done < d.length) this.read(p + done, d.subarray(done));
      p += d.length;
    }
  }
  write(pos: number, src: Uint8Array): void {
    if (this.readOnly) throw new Ext4Error("EROFS", "image opened read-only", { syscall: "write", path: this.path });
    checkRange(this, pos, src.length, "write");
    let done = 0;
    while (done < src.length) {
      done += fs.writeSync(this.fd, src, done, src.length - done, pos + done);
    }
  }
  writev(pos: number, srcs: Uint8Array[]): void {
    if (this.readOnly) throw new Ext4Error("EROFS", "image opened read-only", { syscall: "write", path: this.path });
    const total = totalLength(srcs);
    checkRange(this, pos, total, "write");
    const n = fs.writevSync(this.fd, srcs, pos);
    if (n === total) return;
    // A short vectored write: finish view by view.
    let p = pos;
    for (const s of srcs) {
      const done = Math.min(Math.max(n - (p - pos), 0), s.length);
      if (done < s.length) this.write(p + done, s.subarray(done));
      p += s.length;
    }
  }
  flush(): void { if (!this.readOnly) fs.fsyncSync(this.fd); }
  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

function statOrThrow(path: string): fs.Stats {
  try {
    return fs.statSync(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new Ext4Error(err.code ?? "EIO", "cannot open image", { syscall: "open", path, cause: e });
  }
}

/** Only a regular file or a block device holds an image: a pipe or a terminal has no size and no positions. */
function checkKind(path: string, st: fs.Stats): void {
  if (st.isDirectory()) throw new Ext4Error("EISDIR", "image is a directory", { syscall: "open", path });
  if (st.isFile() || st.isBlockDevice()) return;
  throw notAnImage(path, st.isFIFO() ? "a FIFO or pipe" : st.isCharacterDevice() ? "a character device" : st.isSocket() ? "a socket" : "not a file");
}

/** Size of a block device: seek-free, by probing the end with reads. */
function blockDeviceSize(fd: number): number {
  const one = new Uint8Array(1);
  let lo = 0;
  let hi = 1;
  while (fs.readSync(fd, one, 0, 1, hi * 512 - 1) === 1) { lo = hi; hi *= 2; }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (fs.readSync(fd, one, 0, 1, mid * 512 - 1) === 1) lo = mid; else hi = mid;
  }
  return lo * 512;
}
