// put's progress bar on stderr: only when stderr is a terminal (nothing at
// all otherwise), first drawn once the put has run for a while (a short put
// shows nothing), redrawn at most every 200 ms, erased when the put ends.
// The fill counts bytes and entries alike (each entry as a block's worth),
// so a tree of small files moves the bar as steadily as one big file.

import * as fs from "node:fs";
import * as tty from "node:tty";
import { humanBytes } from "../format.js";

const FIRST_MS = 500;
const INTERVAL_MS = 200;
const ENTRY_WEIGHT = 4096;

/** Where the bar goes: stderr in the CLI, a recorder in tests. */
export interface ProgressSink {
  isTTY: boolean;
  /** The terminal's width, when known. */
  columns(): number | undefined;
  write(s: string): void;
}

const stderrSink: ProgressSink = {
  isTTY: tty.isatty(2),
  columns: () => process.stderr.columns,
  write(s) {
    try {
      fs.writeSync(2, s);
    } catch {
      // a progress bar is not worth failing for
    }
  },
};

export interface BarState {
  files: number;
  total: number;
  bytes: number;
  totalBytes: number;
  /** What is going on when it is not the copy itself ("writing back"). */
  label?: string;
}

/** One line of at most `width` columns: "ext4wasm: [#####-----]  42% 1234/5678 entries, 1.2 MiB/3.0 MiB". */
export function renderBar(s: BarState, width: number): string {
  const done = s.bytes + s.files * ENTRY_WEIGHT;
  const all = s.totalBytes + s.total * ENTRY_WEIGHT;
  // 100% only once everything is copied and nothing else is going on.
  const frac = all > 0 ? Math.min(1, done / all) : 0;
  const pct = s.label === undefined && done >= all ? 100 : Math.min(99, Math.floor(frac * 100));
  const tail = `${String(pct).padStart(3)}% ${s.files}/${s.total} entries, ${humanBytes(s.bytes)}/${humanBytes(s.totalBytes)}` +
    (s.label ? `, ${s.label}` : "");
  const head = "ext4wasm: ";
  const barWidth = Math.min(40, width - head.length - tail.length - 4);
  if (barWidth < 5) return `${head}${tail}`.slice(0, Math.max(0, width - 1));
  const fill = Math.round(frac * barWidth);
  return `${head}[${"#".repeat(fill)}${"-".repeat(barWidth - fill)}] ${tail}`;
}

export class PutProgress implements BarState {
  files = 0;
  bytes = 0;
  total = 0;
  totalBytes = 0;
  label: string | undefined;
  readonly enabled: boolean;
  private readonly started: number;
  private last = -Infinity;
  private shown = false;

  constructor(quiet: boolean, private readonly sink: ProgressSink = stderrSink, private readonly now: () => number = Date.now) {
    this.enabled = !quiet && sink.isTTY;
    this.started = now();
  }

  /** What the put will copy, once it is planned. */
  start(entries: number, bytes: number): void {
    this.total = entries;
    this.totalBytes = bytes;
  }

  file(): void {
    this.files++;
    this.tick();
  }

  addBytes(n: number): void {
    this.bytes += n;
    this.tick();
  }

  /** A stage after the copy (redrawn at once if the bar is up). */
  stage(label: string): void {
    this.label = label;
    if (this.shown) this.draw(this.now());
    else this.tick();
  }

  private tick(): void {
    if (!this.enabled) return;
    const t = this.now();
    if (t - this.started < FIRST_MS || t - this.last < INTERVAL_MS) return;
    this.draw(t);
  }

  private draw(t: number): void {
    this.last = t;
    this.shown = true;
    this.sink.write(`\r\x1b[K${renderBar(this, this.sink.columns() || 80)}`); // a pty may report 0 columns
  }

  /** Erases the bar (the put has ended, or failed and says why on the next line). */
  done(): void {
    if (this.shown) this.sink.write("\r\x1b[K");
    this.shown = false;
  }
}
