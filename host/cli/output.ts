// Raw stdout for the CLI: synchronous writes to fd 1 (bytes such as non-UTF-8
// names and file data pass through unchanged), buffered in small batches.
// EPIPE ends the command quietly; EAGAIN (a non-blocking pipe) is waited out.

import * as fs from "node:fs";
import { StdoutClosed } from "./errors.js";

const FLUSH_AT = 64 * 1024;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Writes all of `data` to `fd`, retrying short and would-block writes. */
export function writeAllSync(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) {
    try {
      off += fs.writeSync(fd, data, off, data.length - off);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EAGAIN") {
        Atomics.wait(sleeper, 0, 0, 2);
        continue;
      }
      if (code === "EPIPE" && fd === 1) throw new StdoutClosed();
      throw e;
    }
  }
}

export class Output {
  /** One buffer for the whole run: text is encoded straight into it, so a listing allocates nothing per piece. */
  private readonly buf = Buffer.allocUnsafe(FLUSH_AT);
  private pending = 0;

  constructor(private readonly fd = 1) {}

  write(data: string | Uint8Array): void {
    if (typeof data === "string") {
      // Room for any string of n UTF-16 units is 3n bytes; longer text goes through a Buffer of its own.
      if (data.length * 3 <= FLUSH_AT) {
        if (this.pending + data.length * 3 > FLUSH_AT) this.flush();
        this.pending += this.buf.write(data, this.pending, "utf8");
        return;
      }
      data = Buffer.from(data, "utf8");
    }
    if (data.length >= FLUSH_AT) {
      this.flush();
      writeAllSync(this.fd, data);
      return;
    }
    if (this.pending + data.length > FLUSH_AT) this.flush();
    this.buf.set(data, this.pending);
    this.pending += data.length;
  }

  line(...pieces: (string | Uint8Array)[]): void {
    for (const p of pieces) this.write(p);
    this.write("\n");
  }

  flush(): void {
    if (this.pending === 0) return;
    const n = this.pending;
    this.pending = 0;
    writeAllSync(this.fd, this.buf.subarray(0, n));
  }
}

/** JSON with bigints written as decimal strings (times in ns, large sizes). */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v), 2);
}

/**
 * A JSON array written element by element, byte for byte what
 * toJson(array) + "\n" would print, without holding the array.
 */
export class JsonArrayWriter {
  private count = 0;

  constructor(private readonly out: Output) {}

  item(value: unknown): void {
    this.out.write(this.count++ === 0 ? "[\n" : ",\n");
    // Strings in JSON hold no raw newline, so each line of the element is indented as stringify nests it.
    this.out.write(toJson(value).replace(/^/gm, "  "));
  }

  end(): void {
    this.out.write(this.count === 0 ? "[]\n" : "\n]\n");
  }
}
