// createReadStream as node's fs.ReadStream behaves: the file is opened
// lazily (or an fd is taken over), 'open' and 'ready' are emitted, and a
// failure to open arrives as an 'error' event, never as a throw.

import { Buffer } from "node:buffer";
import { Readable } from "node:stream";
import type { PathLike } from "./path-walk.js";

export interface ReadStreamOptions {
  /** Read from this open file descriptor instead of opening the path. */
  fd?: number;
  flags?: string;
  encoding?: BufferEncoding | null;
  /** First byte to read (default 0). */
  start?: number;
  /** Last byte to read, inclusive (default: to the end). */
  end?: number;
  highWaterMark?: number;
  /** Close the fd on end or error (default true). */
  autoClose?: boolean;
  emitClose?: boolean;
  signal?: AbortSignal;
}

/** The fd-level calls the stream needs from a volume. */
export interface StreamSource {
  openSync(path: PathLike, flags?: string | number): number;
  readSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number | null): number;
  closeSync(fd: number): void;
}

function outOfRange(name: string, range: string, got: unknown): RangeError {
  return Object.assign(new RangeError(`The value of "${name}" is out of range. It must be ${range}. Received ${String(got)}`), { code: "ERR_OUT_OF_RANGE" });
}

function checkPosition(name: string, v: unknown): void {
  if (v === undefined) return;
  if (typeof v !== "number") {
    throw Object.assign(new TypeError(`The "${name}" argument must be of type number. Received type ${typeof v} (${String(v)})`), { code: "ERR_INVALID_ARG_TYPE" });
  }
  if (!Number.isInteger(v) || v < 0) throw outOfRange(name, ">= 0 && <= 9007199254740991", v);
}

export class VolumeReadStream extends Readable {
  fd: number | null;
  bytesRead = 0;
  readonly path: PathLike | undefined;
  readonly start: number | undefined;
  readonly end: number;
  private pos: number | undefined;
  private readonly autoClose: boolean;

  constructor(private readonly src: StreamSource, path: PathLike | undefined, opts: ReadStreamOptions = {}) {
    checkPosition("start", opts.start);
    checkPosition("end", opts.end);
    if (opts.start !== undefined && opts.end !== undefined && opts.start > opts.end) {
      throw outOfRange("start", `<= "end" (here: ${opts.end})`, opts.start);
    }
    super({ highWaterMark: opts.highWaterMark ?? 64 * 1024, encoding: opts.encoding ?? undefined, emitClose: opts.emitClose ?? true, autoDestroy: true, signal: opts.signal });
    this.path = path;
    this.fd = opts.fd ?? null;
    this.start = opts.start;
    this.end = opts.end ?? Infinity;
    this.pos = opts.start;
    this.autoClose = opts.autoClose ?? true;
    this.flags = opts.flags ?? "r";
  }

  private readonly flags: string;

  // Runs on the next tick (Readable defers it), so an open failure is an 'error' event.
  override _construct(cb: (err?: Error | null) => void): void {
    if (this.fd !== null || this.destroyed) return cb(); // destroyed before it opened: nothing to open
    try {
      this.fd = this.src.openSync(this.path!, this.flags);
    } catch (e) {
      return cb(e as Error);
    }
    cb();
    this.emit("open", this.fd);
    this.emit("ready");
  }

  /** True until the file is open, as node's ReadStream.pending. */
  get pending(): boolean { return this.fd === null; }

  override _read(size: number): void {
    try {
      const at = this.pos ?? this.bytesRead;
      const want = Math.min(Math.max(size, 1), this.end - at + 1);
      if (want <= 0) return void this.push(null);
      const buf = Buffer.allocUnsafe(want);
      // Without start, read at the fd's own position, as node does.
      const n = this.src.readSync(this.fd!, buf, 0, want, this.pos === undefined ? null : this.pos);
      if (this.pos !== undefined) this.pos += n;
      this.bytesRead += n;
      this.push(n === 0 ? null : buf.subarray(0, n));
    } catch (e) {
      this.destroy(e as Error);
    }
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    if (this.autoClose && this.fd !== null) {
      try { this.src.closeSync(this.fd); } catch { /* already closed */ }
      this.fd = null;
    }
    cb(err);
  }

  /** node's ReadStream.close(cb): destroy, then call back on 'close'. */
  close(cb?: (err?: Error | null) => void): void {
    if (cb) this.once("close", () => cb(null));
    this.destroy();
  }
}
