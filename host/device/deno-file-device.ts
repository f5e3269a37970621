// A device over a file through Deno's own synchronous file API.

import { Ext4Error } from "../errors.js";
import { BlockDevice, checkRange, notAnImage, shortRead } from "./block-device.js";

// Minimal typing of the Deno globals this device uses.
interface DenoFile {
  seekSync(offset: number, whence: number): number;
  readSync(p: Uint8Array): number | null;
  writeSync(p: Uint8Array): number;
  syncSync(): void;
  statSync(): { size: number; isDirectory: boolean };
  close(): void;
}
interface DenoFileInfo {
  isFile: boolean; isDirectory: boolean; isBlockDevice: boolean | null; isCharDevice: boolean | null; isFifo: boolean | null; isSocket: boolean | null;
}
interface DenoNs {
  openSync(path: string, opts: { read: boolean; write: boolean }): DenoFile;
  statSync(path: string): DenoFileInfo;
  SeekMode: { Start: number };
}
const Deno = (globalThis as unknown as { Deno?: DenoNs }).Deno;

export const isDeno = Deno !== undefined;

export class DenoFileDevice implements BlockDevice {
  readonly size: number;
  private file: DenoFile | undefined;
  constructor(readonly path: string, readonly readOnly: boolean) {
    if (!Deno) throw new Ext4Error("EOPNOTSUPP", "DenoFileDevice needs the Deno runtime");
    const fail = (e: unknown): Ext4Error => {
      const name = (e as Error).name;
      // Deno 2 reports a missing --allow-read/--allow-write as NotCapable.
      const code = name === "NotFound" ? "ENOENT" : name === "PermissionDenied" || name === "NotCapable" ? "EACCES" : "EIO";
      return new Ext4Error(code, `cannot open image: ${(e as Error).message}`, { syscall: "open", path, cause: e });
    };
    // stat first: opening a FIFO for reading would wait for a writer.
    let info: DenoFileInfo;
    try {
      info = Deno.statSync(path);
    } catch (e) {
      throw fail(e);
    }
    if (!info.isFile && !info.isDirectory && !info.isBlockDevice) {
      throw notAnImage(path, info.isFifo ? "a FIFO or pipe" : info.isCharDevice ? "a character device" : info.isSocket ? "a socket" : "not a file");
    }
    try {
      this.file = Deno.openSync(path, { read: true, write: !readOnly });
    } catch (e) {
      throw fail(e);
    }
    const st = this.file.statSync();
    if (st.isDirectory) throw new Ext4Error("EISDIR", "image is a directory", { syscall: "open", path });
    this.size = st.size;
  }
  private get f(): DenoFile {
    if (!this.file) throw new Ext4Error("EBADF", "device is closed");
    return this.file;
  }
  read(pos: number, dst: Uint8Array): void {
    checkRange(this, pos, dst.length, "read");
    this.f.seekSync(pos, Deno!.SeekMode.Start);
    let done = 0;
    while (done < dst.length) {
      const n = this.f.readSync(dst.subarray(done));
      if (!n) throw shortRead(pos, dst.length, done, this.path);
      done += n;
    }
  }
  write(pos: number, src: Uint8Array): void {
    if (this.readOnly) throw new Ext4Error("EROFS", "image opened read-only", { syscall: "write", path: this.path });
    checkRange(this, pos, src.length, "write");
    this.f.seekSync(pos, Deno!.SeekMode.Start);
    let done = 0;
    while (done < src.length) done += this.f.writeSync(src.subarray(done));
  }
  flush(): void { if (!this.readOnly) this.f.syncSync(); }
  close(): void {
    this.file?.close();
    this.file = undefined;
  }
}
