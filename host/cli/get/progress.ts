// A one-line progress display on stderr for long copies: only when stderr is
// a terminal, at most every 200 ms, erased when the work ends.

import * as fs from "node:fs";
import * as tty from "node:tty";
import { humanBytes } from "../format.js";

const INTERVAL_MS = 200;

export class Progress {
  files = 0;
  bytes = 0;
  /** Entries expected in all, when known (see tree-size.ts). */
  total = 0;
  /** Starts "now", so a copy shorter than one interval never shows a line. */
  private last = Date.now();
  private shown = false;
  readonly enabled: boolean;

  constructor(quiet: boolean) {
    this.enabled = !quiet && tty.isatty(2);
  }

  file(): void {
    this.files++;
    this.tick();
  }

  addBytes(n: number): void {
    this.bytes += n;
    this.tick();
  }

  private tick(): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.last < INTERVAL_MS) return;
    this.last = now;
    this.shown = true;
    this.put(`\r\x1b[Kext4wasm: ${this.text()}`);
  }

  /** "1234/5678 files (21%), 1.2 GiB"; the percentage stays below 100 until the copy is done. */
  text(): string {
    if (this.total <= 0) return `${this.files} files, ${humanBytes(this.bytes)}`;
    const pct = Math.min(99, Math.floor((this.files * 100) / this.total));
    return `${this.files}/${this.total} files (${pct}%), ${humanBytes(this.bytes)}`;
  }

  done(): void {
    if (this.shown) this.put("\r\x1b[K");
    this.shown = false;
  }

  private put(s: string): void {
    try {
      fs.writeSync(2, s);
    } catch {
      // a progress line is not worth failing for
    }
  }
}
