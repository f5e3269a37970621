// fs.Dir as node's opendir returns it: entries one at a time in directory
// order (as getdents gives them, unsorted), by sync call, promise, callback
// or async iteration, until closed.

import { defer } from "./defer.js";
import type { Dirent } from "./types.js";

function dirClosed(): Error {
  return Object.assign(new Error("Directory handle was closed"), { code: "ERR_DIR_CLOSED" });
}

export class Dir implements AsyncIterable<Dirent> {
  private next = 0;
  private closed = false;

  /** `entries` are read when the directory is opened (the image does not change under a mount). */
  constructor(readonly path: string, private readonly entries: Dirent[]) {}

  readSync(): Dirent | null {
    if (this.closed) throw dirClosed();
    return this.next < this.entries.length ? this.entries[this.next++] : null;
  }

  read(): Promise<Dirent | null>;
  read(cb: (err: Error | null, dirent: Dirent | null) => void): void;
  read(cb?: (err: Error | null, dirent: Dirent | null) => void): Promise<Dirent | null> | void {
    if (this.closed) throw dirClosed(); // node throws here, in both forms
    if (!cb) return new Promise((resolve, reject) => this.read((err, d) => (err ? reject(err) : resolve(d))));
    let d: Dirent | null = null;
    let err: Error | null = null;
    try { d = this.readSync(); } catch (e) { err = e as Error; }
    defer(() => cb(err, d));
  }

  closeSync(): void {
    if (this.closed) throw dirClosed();
    this.closed = true;
  }

  close(): Promise<void>;
  close(cb: (err: Error | null) => void): void;
  close(cb?: (err: Error | null) => void): Promise<void> | void {
    if (!cb) return new Promise((resolve, reject) => this.close((err) => (err ? reject(err) : resolve())));
    let err: Error | null = null;
    try { this.closeSync(); } catch (e) { err = e as Error; }
    defer(() => cb(err));
  }

  /** Yields every entry, then closes the Dir (also when the loop is left early), as node's does. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Dirent> {
    try {
      for (;;) {
        const d = this.readSync();
        if (d === null) break;
        yield d;
      }
    } finally {
      if (!this.closed) this.closeSync();
    }
  }

  async [Symbol.asyncDispose](): Promise<void> { if (!this.closed) this.closeSync(); }
}
