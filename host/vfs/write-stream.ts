// createWriteStream as node's fs.WriteStream behaves: the file is opened
// lazily (flags "w" and mode 0o666 by default, or an fd taken over), 'open'
// and 'ready' are emitted, writes go at `start` and on (or at the fd's own
// position), 'finish' after the last write, then the fd closed (autoClose)
// and 'close'. A failure to open arrives as an 'error' event.

import { Buffer } from "node:buffer";
import { Writable } from "node:stream";
import type { PathLike } from "./path-walk.js";
import { outOfRange, argType } from "./write-args.js";

export interface WriteStreamOptions {
  fd?: number;
  flags?: string | number;
  encoding?: BufferEncoding | null;
  mode?: number;
  /** First byte to write at (default: the file's position, 0 for a new open). */
  start?: number;
  highWaterMark?: number;
  autoClose?: boolean;
  emitClose?: boolean;
  /** fsync before the fd is closed (node's flush option). */
  flush?: boolean;
  signal?: AbortSignal;
}

/** The fd-level calls the stream needs from a volume. */
export interface StreamSink {
  openSync(path: PathLike, flags?: string | number, mode?: number): number;
  writeSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number | null): number;
  writevSync(fd: number, buffers: Uint8Array[], position: number | null): number;
  fsyncSync(fd: number): void;
  closeSync(fd: number): void;
}

export class VolumeWriteStream extends Writable {
  fd: number | null;
  bytesWritten = 0;
  readonly path: PathLike | undefined;
  readonly start: number | undefined;
  readonly flags: string | number;
  readonly mode: number;
  private pos: number | undefined;
  private readonly autoClose: boolean;
  private readonly flush: boolean;

  constructor(private readonly sink: StreamSink, path: PathLike | undefined, opts: WriteStreamOptions = {}) {
    if (opts.start !== undefined) {
      if (typeof opts.start !== "number") throw argType("start", "of type number", opts.start);
      if (!Number.isInteger(opts.start) || opts.start < 0) throw outOfRange("start", ">= 0 && <= 9007199254740991", opts.start);
    }
    super({
      highWaterMark: opts.highWaterMark, decodeStrings: true, defaultEncoding: opts.encoding ?? "utf8",
      emitClose: opts.emitClose ?? true, autoDestroy: true, signal: opts.signal,
    });
    this.path = path;
    this.fd = opts.fd ?? null;
    this.start = opts.start;
    this.pos = opts.start;
    this.flags = opts.flags ?? "w";
    this.mode = opts.mode ?? 0o666;
    this.autoClose = opts.autoClose ?? true;
    this.flush = opts.flush ?? false;
  }

  // Runs on the next tick (Writable defers it), so an open failure is an 'error' event.
  override _construct(cb: (err?: Error | null) => void): void {
    if (this.fd !== null || this.destroyed) return cb();
    try {
      this.fd = this.sink.openSync(this.path!, this.flags, this.mode);
    } catch (e) {
      return cb(e as Error);
    }
    cb();
    this.emit("open", this.fd);
    this.emit("ready");
  }

  /** True until the file is open, as node's WriteStream.pending. */
  get pending(): boolean { return this.fd === null; }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    try {
      let done = 0;
      while (done < chunk.length) {
        const n = this.sink.writeSync(this.fd!, chunk, done, chunk.length - done, this.pos === undefined ? null : this.pos);
        if (this.pos !== undefined) this.pos += n;
        this.bytesWritten += n;
        done += n;
        if (n === 0) break;
      }
    } catch (e) {
      return cb(e as Error);
    }
    cb();
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    this._write(Buffer.concat(chunks.map((c) => c.chunk)), "binary", cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.flush || this.fd === null) return cb();
    try {
      this.sink.fsyncSync(this.fd);
    } catch (e) {
      return cb(e as Error);
    }
    cb();
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    if (this.autoClose && this.fd !== null) {
      const fd = this.fd;
      this.fd = null;
      try {
        this.sink.closeSync(fd);
      } catch (e) {
        return cb(err ?? (e as Error));
      }
    }
    cb(err);
  }

  /** node's WriteStream.close(cb): end the stream, then call back on 'close'. */
  close(cb?: (err?: Error | null) => void): void {
    if (cb) {
      if (this.closed) { process.nextTick(cb); return; }
      this.on("close", cb);
    }
    if (!this.autoClose) this.on("finish", () => this.destroy());
    this.end();
  }

  /** node's alias. */
  destroySoon(): void { this.end(); }
}
