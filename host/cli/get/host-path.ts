// Host paths of any length. A copy of a deep tree has destination paths past
// PATH_MAX (4096 bytes), which no system call takes, and node has no *at()
// calls. So a long path is used relative to a working directory moved next to
// it (chdir by steps, each step short); short paths stay absolute, so they
// work from wherever the working directory is. The walk goes depth first, so
// consecutive paths share their directory and the moves are short.

import { CliError } from "../errors.js";

/** Longest path handed to a system call; PATH_MAX counts the NUL. */
const LIMIT = 4000;
const SLASH = 0x2f;

export class HostPaths {
  private readonly startCwd = process.cwd();
  /** Where the working directory is (absolute, no trailing slash), or null when it has not moved. */
  private cwd: Buffer | null = null;

  /** A path for `abs` (absolute) that a system call can take now. */
  at(abs: Buffer): Buffer {
    if (abs.length < LIMIT) return abs;
    const cut = abs.lastIndexOf(SLASH);
    this.moveTo(abs.subarray(0, cut));
    return abs.subarray(cut + 1);
  }

  /** Two paths for one call (link): each short one absolute, the long ones relative to one directory. */
  pair(a: Buffer, b: Buffer): [Buffer, Buffer] {
    if (a.length < LIMIT) return [a, this.at(b)];
    if (b.length < LIMIT) return [this.at(a), b];
    let common = 0;
    while (common < a.length && common < b.length && a[common] === b[common]) common++;
    const cut = a.subarray(0, common).lastIndexOf(SLASH);
    if (a.length - cut > LIMIT || b.length - cut > LIMIT) throw new CliError("ENAMETOOLONG", `paths too far apart for one call, link '${b.toString("utf8").slice(0, 80)}...'`);
    this.moveTo(a.subarray(0, cut));
    return [a.subarray(cut + 1), b.subarray(cut + 1)];
  }

  /** Back to where the process started. */
  restore(): void {
    if (this.cwd === null) return;
    process.chdir(this.startCwd);
    this.cwd = null;
  }

  private moveTo(dir: Buffer): void {
    const from = this.cwd;
    if (from !== null && from.equals(dir)) return;
    // Up to the deepest directory both share, then down, in steps a system call takes.
    let rest: Buffer;
    let common = 0;
    if (from !== null) {
      while (common < from.length && common < dir.length && from[common] === dir[common]) common++;
      while (common > 0 && !(boundary(from, common) && boundary(dir, common))) common--;
    }
    let ups = 0;
    if (from !== null) for (let i = common; i < from.length; i++) if (from[i] === SLASH) ups++;
    if (from === null || ups * 3 > dir.length) {
      chdir(Buffer.from("/"));
      rest = dir.subarray(1);
    } else {
      for (; ups > 0; ups -= Math.min(ups, 1000)) chdir(Buffer.from("../".repeat(Math.min(ups, 1000))));
      rest = dir.subarray(Math.min(dir.length, common + 1));
    }
    while (rest.length > 0) {
      let step = rest.length;
      if (step >= LIMIT) step = rest.subarray(0, LIMIT).lastIndexOf(SLASH);
      if (step <= 0) throw new CliError("ENAMETOOLONG", "a path component is too long");
      chdir(rest.subarray(0, step));
      rest = rest.subarray(Math.min(rest.length, step + 1));
    }
    this.cwd = Buffer.from(dir);
  }
}

function boundary(p: Buffer, i: number): boolean {
  return i === p.length || p[i] === SLASH;
}

function chdir(p: Buffer): void {
  // process.chdir takes only strings; names are bytes, and latin1 would re-encode them. Decode as the OS will re-encode: utf8 is
  // lossless only for valid UTF-8, so non-UTF-8 names are a limit of deep paths (rare; reported as an error).
  const s = p.toString("utf8");
  if (!Buffer.from(s, "utf8").equals(p)) throw new CliError("EILSEQ", "a directory name deep in the tree is not valid UTF-8 (chdir takes text)");
  process.chdir(s);
}
