// fs.promises' FileHandle over a volume descriptor: the same calls as the
// fd functions, with node's result shapes ({ bytesRead, buffer },
// { bytesWritten, buffer }, { bytesWritten, buffers }).

import type { Buffer } from "node:buffer";
import type { Stats, BigIntStats } from "./stats.js";
import type { FallocateFlags } from "./file-write.js";
import { isBufferView } from "./write-args.js";

type Encoding = BufferEncoding | "buffer" | null | undefined;

/** What a FileHandle needs of the volume. */
export interface HandleTarget {
  readSync(fd: number, buffer: Uint8Array, offset?: number, length?: number, position?: number | null): number;
  readFileSync(fd: number, opts?: unknown): string | Buffer;
  writeSync(fd: number, buffer: unknown, offsetOrOptions?: unknown, length?: unknown, position?: unknown): number;
  writevSync(fd: number, buffers: readonly ArrayBufferView[], position?: number | null): number;
  writeFileSync(fd: number, data: unknown, opts?: unknown): void;
  appendFileSync(fd: number, data: unknown, opts?: unknown): void;
  ftruncateSync(fd: number, len?: number): void;
  fsyncSync(fd: number): void;
  fdatasyncSync(fd: number): void;
  fchmodSync(fd: number, mode: number | string): void;
  fchownSync(fd: number, uid: number, gid: number): void;
  futimesSync(fd: number, atime: unknown, mtime: unknown): void;
  fstatSync(fd: number, opts?: { bigint?: boolean }): Stats | BigIntStats;
  fallocateSync(fd: number, offset: number, length: number, opts?: FallocateFlags): void;
  closeSync(fd: number): void;
}

export class FileHandle {
  private closed = false;
  constructor(private readonly vol: HandleTarget, private readonly fdNum: number) {}

  /** The descriptor (-1 once closed, as node's). */
  get fd(): number { return this.closed ? -1 : this.fdNum; }

  async read(buffer: Uint8Array, offset = 0, length = buffer.length - offset, position: number | null = null) {
    const bytesRead = this.vol.readSync(this.fd, buffer, offset, length, position);
    return { bytesRead, buffer };
  }
  async readFile(opts?: Encoding | { encoding?: Encoding }) { return this.vol.readFileSync(this.fd, opts); }

  /** write(buffer, offset?, length?, position?), write(buffer, { offset, length, position }) or write(string, position?, encoding?). */
  async write<T extends ArrayBufferView | string>(buffer: T, offsetOrOptions?: unknown, length?: unknown, position?: unknown): Promise<{ bytesWritten: number; buffer: T }> {
    if (isBufferView(buffer) && (offsetOrOptions === undefined || offsetOrOptions === null)) offsetOrOptions = 0;
    const bytesWritten = this.vol.writeSync(this.fd, buffer, offsetOrOptions, length, position);
    return { bytesWritten, buffer };
  }
  async writev<T extends ArrayBufferView[]>(buffers: T, position: number | null = null): Promise<{ bytesWritten: number; buffers: T }> {
    const bytesWritten = this.vol.writevSync(this.fd, buffers, position);
    return { bytesWritten, buffers };
  }
  async writeFile(data: unknown, opts?: unknown) { this.vol.writeFileSync(this.fd, data, opts); }
  async appendFile(data: unknown, opts?: unknown) { this.vol.appendFileSync(this.fd, data, opts); }
  async truncate(len = 0) { this.vol.ftruncateSync(this.fd, len); }
  async sync() { this.vol.fsyncSync(this.fd); }
  async datasync() { this.vol.fdatasyncSync(this.fd); }
  async chmod(mode: number | string) { this.vol.fchmodSync(this.fd, mode); }
  async chown(uid: number, gid: number) { this.vol.fchownSync(this.fd, uid, gid); }
  async utimes(atime: unknown, mtime: unknown) { this.vol.futimesSync(this.fd, atime, mtime); }
  async stat(opts: { bigint?: boolean } = {}) { return this.vol.fstatSync(this.fd, opts); }
  /** Extension: fallocate(2) with { keepSize, punchHole, zeroRange, collapseRange, insertRange }. */
  async fallocate(offset: number, length: number, opts: FallocateFlags = {}) { this.vol.fallocateSync(this.fd, offset, length, opts); }
  async close() {
    if (this.closed) return;
    this.vol.closeSync(this.fdNum);
    this.closed = true;
  }
  async [Symbol.asyncDispose]() { await this.close(); }
}
