// Robustness walk: mount an image read-only on a device that refuses writes,
// then touch every object the way a backup tool would (readdir, lstat,
// readFile, readlink, xattrs), classifying every failure. A failure is fine
// when it is a plain Ext4Error; anything else (a foreign exception, a bounds
// failure the facade had to retype, a wasm trap, a write, a wrong length) is a
// bug. Runs inside a worker (robust-worker.ts) so a hang can be cut off.

import { createHash } from "node:crypto";
import { Ext4Error, MemoryDevice, mount, type MountOptions, type Volume } from "../../host/index.js";

/** A MemoryDevice whose write() counts and throws: a read-only mount must never call it. */
export class WriteRefusingDevice extends MemoryDevice {
  writes: string[] = [];
  constructor(bytes: Uint8Array) {
    // Not readOnly at the device level: the mount's own readOnly must be what keeps writes away.
    super(bytes, { readOnly: false });
  }
  override write(pos: number, src: Uint8Array): void {
    this.writes.push(`${src.length} bytes at ${pos}`);
    throw new Error(`write of ${src.length} bytes at offset ${pos} during a read-only mount`);
  }
}

export type Outcome = { code: string } | { bug: string };

/** Ext4Error with its own code, or a bug (foreign exception, or a bounds failure retyped by the facade). */
export function classify(e: unknown): Outcome {
  if (e instanceof Ext4Error) {
    const cause = (e as Error & { cause?: unknown }).cause;
    if (cause instanceof RangeError || cause instanceof TypeError) return { bug: `retyped ${cause.name}: ${cause.message} [${e.message}]\n${stackHead(cause)}` };
    return { code: e.code };
  }
  if (e instanceof Error) return { bug: `${e.name}: ${e.message}\n${stackHead(e)}` };
  return { bug: `non-Error thrown: ${String(e)}` };
}

const stackHead = (e: Error) => (e.stack ?? "").split("\n").slice(1, 7).map((l) => l.trim()).join(" | ");

export interface WalkLimits {
  /** Whole-file reads up to this size; larger files are sampled with readSync. */
  readWholeMax: number;
  /** Stop after this many operations (a corrupt image can claim a lot). */
  maxOps: number;
  /** Fail when resident memory grows more than this during one job. */
  maxRssGrowth: number;
}

export const DEFAULT_LIMITS: WalkLimits = { readWholeMax: 16 << 20, maxOps: 50_000, maxRssGrowth: 512 << 20 };

export interface WalkResult {
  mounted: boolean;
  /** Code of the mount failure, when it failed with an Ext4Error. */
  mountError?: string;
  mountMessage?: string;
  files: number;
  dirs: number;
  symlinks: number;
  others: number;
  bytes: number;
  xattrs: number;
  ops: number;
  truncated: boolean;
  /** Failed operations by Ext4Error code. */
  errors: Record<string, number>;
  /** First few failure messages, for the log. */
  samples: string[];
  bugs: string[];
  /** Symlinks followed by stat: what they resolved to, or why not (ENOENT, ELOOP ...). */
  resolved: Record<string, number>;
  /** sha256 over everything observed: equal digests mean equal answers. */
  digest: string;
  /** With WalkJob.collectFiles: per path (latin1), a file's data digest (see dataDigest) or "!CODE" where lstat or the read failed. */
  fileOutcomes?: Record<string, string>;
  writes: number;
  peakRssGrowth: number;
  ms: number;
}

export interface WalkJob {
  image: Uint8Array;
  options: MountOptions;
  /** Re-read every file through a second mount with these options and compare the bytes. */
  crossCheck?: MountOptions;
  limits?: Partial<WalkLimits>;
  /** Fill WalkResult.fileOutcomes (for comparing with the kernel's reads of the same image). */
  collectFiles?: boolean;
}

/** The offsets a file larger than readWholeMax is sampled at (64 KiB each), so two readers sample alike. */
export function sampleOffsets(size: number): number[] {
  return [0, Math.floor(size / 2), Math.max(0, size - 65536)];
}

/** Short digest of file data as both walks record it. */
export const dataDigest = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex").slice(0, 16);

const SLASH = 0x2f;

export function walkImage(job: WalkJob): WalkResult {
  const limits = { ...DEFAULT_LIMITS, ...job.limits };
  const t0 = performance.now();
  const rss0 = process.memoryUsage().rss;
  const r: WalkResult = {
    mounted: false, files: 0, dirs: 0, symlinks: 0, others: 0, bytes: 0, xattrs: 0, ops: 0, truncated: false,
    errors: {}, samples: [], bugs: [], resolved: {}, digest: "", writes: 0, peakRssGrowth: 0, ms: 0,
    ...(job.collectFiles ? { fileOutcomes: {} } : {}),
  };
  const sampleRss = () => { r.peakRssGrowth = Math.max(r.peakRssGrowth, process.memoryUsage().rss - rss0); };
  const record: string[] = [];
  const dev = new WriteRefusingDevice(job.image);
  const altDev = job.crossCheck ? new WriteRefusingDevice(job.image) : undefined;
  let vol: Volume | undefined;
  let alt: Volume | undefined;

  const fail = (what: string, e: unknown): void => {
    const o = classify(e);
    if ("bug" in o) r.bugs.push(`${what}: ${o.bug}`);
    else {
      r.errors[o.code] = (r.errors[o.code] ?? 0) + 1;
      if (r.samples.length < 8) r.samples.push(`${what}: ${(e as Error).message}`);
    }
    record.push(`${what}\t!${"bug" in o ? "bug" : o.code}`);
  };
  /** Runs one operation; undefined when it failed (already recorded). */
  const attempt = <T>(what: string, fn: () => T): T | undefined => {
    r.ops++;
    try {
      return fn();
    } catch (e) {
      fail(what, e);
      return undefined;
    }
  };

  try {
    try {
      vol = mount(dev, job.options);
      r.mounted = true;
    } catch (e) {
      const o = classify(e);
      if ("bug" in o) r.bugs.push(`mount: ${o.bug}`);
      else { r.mountError = o.code; r.mountMessage = (e as Error).message; }
      record.push(`mount\t!${"bug" in o ? "bug" : o.code}`);
    }
    if (vol && job.crossCheck && altDev) {
      try {
        alt = mount(altDev, job.crossCheck);
      } catch (e) {
        r.bugs.push(`cross-check mount failed where the first mount succeeded: ${(e as Error).message}`);
      }
    }
    if (vol) walkTree(vol, alt, limits, r, record, attempt, sampleRss);
  } finally {
    for (const v of [vol, alt]) {
      try { v?.unmount(); } catch (e) { r.bugs.push(`unmount threw: ${(e as Error).message}`); }
    }
  }
  r.writes = dev.writes.length + (altDev?.writes.length ?? 0);
  if (r.writes) r.bugs.push(`read-only mount wrote to the device: ${[...dev.writes, ...(altDev?.writes ?? [])].slice(0, 4).join("; ")}`);
  sampleRss();
  if (r.peakRssGrowth > limits.maxRssGrowth) r.bugs.push(`resident memory grew by ${(r.peakRssGrowth / 2 ** 20).toFixed(0)} MiB`);
  r.digest = createHash("sha256").update(record.join("\n")).digest("hex");
  r.ms = performance.now() - t0;
  return r;
}

type Attempt = <T>(what: string, fn: () => T) => T | undefined;

function walkTree(vol: Volume, alt: Volume | undefined, limits: WalkLimits, r: WalkResult, record: string[], attempt: Attempt, sampleRss: () => void): void {
  const visitedDirs = new Set<number>();
  const show = (p: Buffer) => JSON.stringify(p.toString("latin1"));
  const sha = dataDigest;
  const outcomes = r.fileOutcomes;
  const lastCode = () => /\t!(\S+)$/.exec(record[record.length - 1] ?? "")?.[1] ?? "?";

  const readFile = (v: Volume, p: Buffer, size: number): Uint8Array => {
    if (size <= limits.readWholeMax) return v.readFileSync(p) as Buffer;
    // Sample a huge (usually corrupt) size: head, middle and tail through a descriptor.
    const fd = v.openSync(p);
    try {
      const parts: Uint8Array[] = [];
      for (const at of sampleOffsets(size)) {
        const buf = Buffer.alloc(65536);
        const n = v.readSync(fd, buf, 0, buf.length, at);
        parts.push(buf.subarray(0, n));
      }
      return Buffer.concat(parts);
    } finally {
      v.closeSync(fd);
    }
  };

  const visit = (p: Buffer, isRoot: boolean): void => {
    if (r.ops >= limits.maxOps) { r.truncated = true; return; }
    const where = isRoot ? "/" : show(p);
    const st = attempt(`lstat ${where}`, () => vol.lstatSync(p, { bigint: true }));
    if (!st) { if (outcomes) outcomes[p.toString("latin1")] = `!${lastCode()}`; return; }
    const kind = st.isFile() ? "file" : st.isDirectory() ? "dir" : st.isSymbolicLink() ? "symlink" : "other";
    record.push(`${where}\t${kind}\t${st.mode}\t${st.uid}\t${st.gid}\t${st.nlink}\t${st.size}\t${st.mtimeNs}\t${st.ctimeNs}\t${st.ino}`);
    const size = Number(st.size);

    if (kind === "file") {
      r.files++;
      const data = attempt(`readFile ${where}`, () => readFile(vol, p, size));
      if (outcomes) outcomes[p.toString("latin1")] = data ? sha(data) : `!${lastCode()}`;
      if (data) {
        const want = size <= limits.readWholeMax ? size : -1;
        if (want >= 0 && data.length !== want) r.bugs.push(`readFile ${where}: ${data.length} bytes for a size of ${size}`);
        r.bytes += data.length;
        record.push(`${where}\tdata\t${sha(data)}`);
        if (alt) {
          let other: Uint8Array | undefined;
          try { other = readFile(alt, p, size); } catch (e) { r.bugs.push(`readFile ${where}: the cross-check mount failed (${(e as Error).message}) where the first read succeeded`); }
          if (other && !Buffer.from(other).equals(Buffer.from(data))) r.bugs.push(`readFile ${where}: the two buffered I/O paths returned different bytes`);
        }
      }
      sampleRss();
    } else if (kind === "symlink") {
      r.symlinks++;
      const target = attempt(`readlink ${where}`, () => vol.readlinkSync(p, { encoding: "buffer" }) as Buffer);
      if (target) {
        if (target.length !== size) r.bugs.push(`readlink ${where}: ${target.length} bytes for a size of ${size}`);
        record.push(`${where}\ttarget\t${sha(target)}`);
        // Follow it: dangling or looping links are normal outcomes, counted apart from failures.
        r.ops++;
        let outcome: string;
        try {
          const t = vol.statSync(p);
          outcome = t.isDirectory() ? "dir" : t.isFile() ? "file" : "other";
        } catch (e) {
          const o = classify(e);
          if ("bug" in o) { r.bugs.push(`stat ${where}: ${o.bug}`); outcome = "bug"; } else outcome = o.code;
        }
        r.resolved[outcome] = (r.resolved[outcome] ?? 0) + 1;
        record.push(`${where}\tresolves\t${outcome}`);
      }
    } else if (kind === "other") {
      r.others++;
    }

    const xnames = attempt(`listxattr ${where}`, () => vol.listxattr(p, { noFollow: true }));
    for (const name of xnames ?? []) {
      const value = attempt(`getxattr ${where} ${name}`, () => vol.getxattr(p, name, { noFollow: true }));
      if (value) { r.xattrs++; record.push(`${where}\txattr\t${name}\t${sha(value)}`); }
    }

    if (kind !== "dir") return;
    r.dirs++;
    // A corrupt entry can point back up the tree: walk each directory inode once.
    const ino = Number(st.ino);
    if (visitedDirs.has(ino)) { record.push(`${where}\tseen`); return; }
    visitedDirs.add(ino);
    const names = attempt(`readdir ${where}`, () => vol.readdirSync(p, { encoding: "buffer" }) as Buffer[]);
    if (!names) return;
    const sorted = names.map((n) => Buffer.from(n)).sort(Buffer.compare);
    record.push(`${where}\tentries\t${sha(Buffer.concat(sorted.flatMap((n) => [n, Buffer.of(0)])))}`);
    for (const name of sorted) {
      // A name no path can reach: a caller joining it to a path would reach another file.
      if (name.length === 0 || name.includes(SLASH) || name.includes(0)) { r.bugs.push(`readdir ${where} returned the name ${show(name)}`); continue; }
      if (name.equals(Buffer.from(".")) || name.equals(Buffer.from(".."))) { r.bugs.push(`readdir ${where} returned '${name}'`); continue; }
      visit(isRoot ? Buffer.concat([Buffer.from("/"), name]) : Buffer.concat([p, Buffer.from("/"), name]), false);
      if (r.truncated) return;
    }
  };
  visit(Buffer.from("/"), true);
  // The facade's own recursive listing must survive the same damage (loops included).
  const all = attempt("readdir -r /", () => vol.readdirSync("/", { recursive: true, encoding: "buffer" }));
  if (all) record.push(`recursive\t${all.length}`);
}
