// fsx in TypeScript: a seeded random workload of file operations over the
// public node:fs-style API (writes at and past EOF, unaligned and block-edge
// writes, truncate up and down, fallocate in every mode, several descriptors
// on one file, close and reopen, fsync, drop_caches, unmount and remount),
// checked against a model (a plain byte array and a size per file) on every
// read and in full at checkpoints. Reusable: the ops are plain data, so a
// failing run replays from its seed, and a shrunk op list replays as is
// (crash tests can run the same workload over a recording device).

import type { Volume } from "../../host/index.js";
import { mulberry32 } from "./random.js";

export type FallocKind = "alloc" | "keep" | "punch" | "zero" | "zeroKeep" | "collapse" | "insert";

/** One operation; `slot` is a descriptor slot (an op on a closed slot does nothing). */
export type FsxOp =
  | { op: "write"; slot: number; off: number; len: number; seed: number }
  | { op: "writev"; slot: number; off: number; lens: number[]; seed: number }
  | { op: "read"; slot: number; off: number; len: number }
  | { op: "truncate"; slot: number; size: number }
  | { op: "falloc"; slot: number; kind: FallocKind; off: number; len: number }
  | { op: "fsync" | "fdatasync" | "close"; slot: number }
  | { op: "open"; slot: number; file: number; append: boolean }
  | { op: "check"; file: number }
  | { op: "dropCaches" | "sync" | "remount" };

export interface FsxOptions {
  seed: number;
  /** How many ops to generate and run. */
  ops: number;
  blockSize: number;
  /** The allocation unit: blockSize, or the bigalloc cluster size (collapse and insert align to it). */
  clusterSize: number;
  /** Files /fsx0 ... (default 3), so allocations interleave. */
  files?: number;
  /** Descriptor slots over the files (default 6: often two on one file). */
  slots?: number;
  /** No op takes a file past this size (default 2 MiB). */
  maxSize?: number;
  /** Unmounts `vol`, checks the image (e2fsck) and mounts it again. Without it, no remount ops. */
  remount?: (vol: Volume) => Volume;
  /** Op kinds left out of the generator (with a reason at the call site). */
  exclude?: (FsxOp["op"] | FallocKind)[];
  /** A full-file compare of every file every this many ops (default 500). */
  checkpointEvery?: number;
  /** Called with each op before it runs (a hang shows its op). */
  trace?: (op: FsxOp, index: number) => void;
}

export interface FsxFile { data: Uint8Array; size: number }
export interface FsxModel { files: FsxFile[] }

export interface FsxResult {
  vol: Volume;
  model: FsxModel;
  log: FsxOp[];
  /** How many ops of each kind ran. */
  counts: Record<string, number>;
}

export const fileName = (i: number) => `/fsx${i}`;

/** Bytes that differ per offset and per seed, never zero (a zero would hide a lost write). */
export function fsxPattern(seed: number, len: number): Uint8Array {
  const b = new Uint8Array(len);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[i] = 1 + (x % 255);
  }
  return b;
}

/** A failed run: the seed, where, and the last ops, so it can be replayed. */
export class FsxFailure extends Error {
  constructor(msg: string, readonly seed: number, readonly index: number, readonly log: FsxOp[], override readonly cause?: unknown) {
    super(`${msg}\n  seed ${seed} (replay: FSX_SEED=${seed}), op #${index}\n  last ops:\n${log.slice(-30).map((o, i) => `    #${log.length - Math.min(log.length, 30) + i} ${JSON.stringify(o)}`).join("\n")}`);
  }
}

// ---- the model --------------------------------------------------------------

function ensure(f: FsxFile, n: number): void {
  if (n <= f.data.length) return;
  const d = new Uint8Array(Math.max(n, f.data.length * 2, 65536));
  d.set(f.data);
  f.data = d;
}

/** Bytes past the size are zero in the model, always: growing the size exposes zeros. */
function setSize(f: FsxFile, size: number): void {
  if (size < f.size) f.data.fill(0, size, f.size);
  else ensure(f, size);
  f.size = size;
}

function modelWrite(f: FsxFile, off: number, bytes: Uint8Array): void {
  ensure(f, off + bytes.length);
  f.data.set(bytes, off);
  if (off + bytes.length > f.size) f.size = off + bytes.length;
}

/** What fallocate does to the bytes and size, or the errno the kernel gives. */
function modelFalloc(f: FsxFile, kind: FallocKind, off: number, len: number, cluster: number): string | undefined {
  const end = off + len;
  switch (kind) {
    case "alloc":
      if (end > f.size) setSize(f, end);
      return;
    case "keep":
      return;
    case "punch":
      f.data.fill(0, off, Math.min(end, f.size));
      return;
    case "zero":
    case "zeroKeep":
      f.data.fill(0, off, Math.min(end, f.size));
      if (kind === "zero" && end > f.size) setSize(f, end);
      return;
    case "collapse": {
      if (off % cluster || len % cluster || end >= f.size) return "EINVAL";
      f.data.copyWithin(off, end, f.size);
      setSize(f, f.size - len);
      return;
    }
    case "insert": {
      if (off % cluster || len % cluster || off >= f.size) return "EINVAL";
      const old = f.size;
      ensure(f, old + len);
      f.data.copyWithin(end, off, old);
      f.data.fill(0, off, end);
      f.size = old + len;
      return;
    }
  }
}

const FALLOC_FLAGS: Record<FallocKind, object> = {
  alloc: {}, keep: { keepSize: true }, punch: { punchHole: true, keepSize: true }, zero: { zeroRange: true },
  zeroKeep: { zeroRange: true, keepSize: true }, collapse: { collapseRange: true }, insert: { insertRange: true },
};

// ---- the generator ----------------------------------------------------------

interface Slot { fd: number; file: number; append: boolean }

const WEIGHTS: [FsxOp["op"] | FallocKind, number][] = [
  ["write", 30], ["writev", 4], ["read", 24], ["truncate", 7],
  ["alloc", 3], ["keep", 3], ["punch", 4], ["zero", 3], ["zeroKeep", 2], ["collapse", 3], ["insert", 3],
  ["fsync", 2], ["fdatasync", 2], ["close", 2], ["open", 3], ["check", 1], ["dropCaches", 1], ["sync", 1], ["remount", 0.15],
];

class Gen {
  private readonly rnd: () => number;
  private readonly table: [string, number][];
  private readonly total: number;
  constructor(seed: number, private readonly o: Required<Omit<FsxOptions, "remount" | "trace">> & { remount: boolean }) {
    this.rnd = mulberry32(seed ^ 0x5f5e100);
    this.table = WEIGHTS.filter(([k]) => !o.exclude.includes(k) && (k !== "remount" || o.remount));
    this.total = this.table.reduce((s, [, w]) => s + w, 0);
  }
  int(n: number): number { return Math.floor(this.rnd() * n); }
  private pickKind(): string {
    let r = this.rnd() * this.total;
    for (const [k, w] of this.table) if ((r -= w) < 0) return k;
    return this.table[0][0];
  }
  /** An offset near an interesting place: EOF, a block or cluster edge, or anywhere. */
  offset(size: number): number {
    const { blockSize: bs, clusterSize: cs, maxSize } = this.o;
    const fuzz = () => this.int(9) - 4;
    let off: number;
    switch (this.int(6)) {
      case 0: off = size + fuzz(); break; // at EOF
      case 1: off = size + this.int(4 * cs); break; // past EOF
      case 2: off = this.int(Math.ceil(maxSize / bs)) * bs + (this.int(2) ? fuzz() : 0); break; // block edge
      case 3: off = this.int(Math.ceil(maxSize / cs)) * cs + (this.int(2) ? fuzz() : 0); break; // cluster edge
      case 4: off = this.int(Math.max(1, size)); break; // inside
      default: off = this.int(maxSize);
    }
    return Math.min(Math.max(0, off), maxSize - 1);
  }
  length(off: number): number {
    const { blockSize: bs, maxSize } = this.o;
    let len: number;
    switch (this.int(5)) {
      case 0: len = 1 + this.int(16); break;
      case 1: len = 1 + this.int(2 * bs); break;
      case 2: len = bs * (1 + this.int(8)) + (this.int(2) ? this.int(9) - 4 : 0); break;
      case 3: len = 1 + this.int(64 << 10); break;
      default: len = 1 + this.int(256 << 10);
    }
    return Math.max(1, Math.min(len, maxSize - off));
  }
  next(model: FsxModel, slots: (Slot | undefined)[]): FsxOp {
    const { clusterSize: cs, maxSize } = this.o;
    const kind = this.pickKind();
    const slot = this.int(slots.length);
    const s = slots[slot];
    const size = s ? model.files[s.file].size : 0;
    switch (kind) {
      case "write": {
        const off = this.offset(size);
        let len = this.length(off);
        if (s?.append) len = Math.max(1, Math.min(len, maxSize - size)); // an O_APPEND write lands at EOF
        return { op: "write", slot, off, len, seed: this.int(2 ** 31) };
      }
      case "writev": {
        const off = this.offset(size);
        const lens = Array.from({ length: 1 + this.int(4) }, () => 1 + this.int(3 * this.o.blockSize));
        let room = maxSize - off;
        for (let i = 0; i < lens.length; i++) { lens[i] = Math.max(0, Math.min(lens[i], room)); room -= lens[i]; }
        return { op: "writev", slot, off, lens: lens.filter((n) => n > 0), seed: this.int(2 ** 31) };
      }
      case "read": {
        const off = this.int(3) === 0 ? this.offset(size) : this.int(Math.max(1, size + 16));
        return { op: "read", slot, off, len: this.length(off) };
      }
      case "truncate": {
        const r = this.int(4);
        const t = r === 0 ? this.int(size + 1) : r === 1 ? size + this.int(64 << 10) : this.offset(size);
        return { op: "truncate", slot, size: Math.min(t, maxSize) };
      }
      case "collapse": case "insert": {
        // Mostly valid (cluster-aligned, inside the file), sometimes not: the kernel's EINVAL is checked too.
        const clusters = Math.floor(size / cs);
        let off = this.int(Math.max(1, clusters)) * cs;
        let len = (1 + this.int(Math.max(1, Math.min(16, clusters)))) * cs;
        if (this.int(10) === 0) off += this.int(cs);
        if (kind === "insert") len = Math.min(len, Math.max(cs, Math.floor((maxSize - size) / cs) * cs));
        if (kind === "insert" && size + len > maxSize) return { op: "read", slot, off: 0, len: 1 };
        return { op: "falloc", slot, kind, off, len };
      }
      case "alloc": case "keep": case "punch": case "zero": case "zeroKeep": {
        const off = this.offset(size);
        return { op: "falloc", slot, kind: kind as FallocKind, off, len: this.length(off) };
      }
      case "fsync": case "fdatasync": case "close": return { op: kind, slot };
      case "open": return { op: "open", slot, file: this.int(this.o.files), append: this.int(5) === 0 };
      case "check": return { op: "check", file: this.int(this.o.files) };
      default: return { op: kind as "dropCaches" | "sync" | "remount" };
    }
  }
}

// ---- running ----------------------------------------------------------------

function firstDiff(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

/** Every file's size and bytes as `vol` reads them, against the model. */
export function checkAll(vol: Volume, model: FsxModel, where = ""): void {
  model.files.forEach((f, i) => checkFile(vol, model, i, where));
}

function checkFile(vol: Volume, model: FsxModel, i: number, where: string): void {
  const f = model.files[i];
  const size = vol.statSync(fileName(i)).size;
  if (size !== f.size) throw new Error(`${fileName(i)}: size ${size}, the model says ${f.size}${where}`);
  const got = vol.readFileSync(fileName(i)) as Buffer;
  const at = firstDiff(got, f.data.subarray(0, f.size));
  if (at >= 0) throw new Error(`${fileName(i)}: byte ${at} is ${got[at]}, the model says ${f.data[at]} (size ${f.size})${where}`);
}

/** Starts a run state: creates the files empty. */
export function newModel(vol: Volume, files: number): FsxModel {
  const model: FsxModel = { files: [] };
  for (let i = 0; i < files; i++) {
    vol.closeSync(vol.openSync(fileName(i), "w"));
    model.files.push({ data: new Uint8Array(65536), size: 0 });
  }
  return model;
}

/** Runs `ops` (generated or replayed) on `vol`; throws FsxFailure at the first difference. */
export class FsxRunner {
  readonly slots: (Slot | undefined)[];
  readonly log: FsxOp[] = [];
  readonly counts: Record<string, number> = {};
  constructor(public vol: Volume, readonly model: FsxModel, readonly o: { seed: number; clusterSize: number; slots: number; remount?: (vol: Volume) => Volume; trace?: (op: FsxOp, index: number) => void }) {
    this.slots = new Array(o.slots).fill(undefined);
  }

  apply(op: FsxOp): void {
    this.o.trace?.(op, this.log.length);
    this.log.push(op);
    const key = op.op === "falloc" ? op.kind : op.op;
    try {
      this.step(op);
    } catch (e) {
      if (e instanceof FsxFailure) throw e;
      throw new FsxFailure(`${key} failed: ${(e as Error).stack ?? e}`, this.o.seed, this.log.length - 1, this.log, e);
    }
    this.counts[key] = (this.counts[key] ?? 0) + 1;
  }

  private step(op: FsxOp): void {
    const { vol, model } = this;
    if (op.op === "check") return checkFile(vol, model, op.file, "");
    if (op.op === "dropCaches") return vol.dropCaches();
    if (op.op === "sync") return vol.sync();
    if (op.op === "remount") {
      if (!this.o.remount) return;
      this.vol = this.o.remount(vol);
      for (const s of this.slots) if (s) s.fd = this.vol.openSync(fileName(s.file), s.append ? "a+" : "r+");
      checkAll(this.vol, model, " (after remount)");
      return;
    }
    if (op.op === "open") {
      const old = this.slots[op.slot];
      if (old) vol.closeSync(old.fd);
      this.slots[op.slot] = { fd: vol.openSync(fileName(op.file), op.append ? "a+" : "r+"), file: op.file, append: op.append };
      return;
    }
    if (!("slot" in op)) return;
    const s = this.slots[op.slot];
    if (!s) return;
    const f = model.files[s.file];
    switch (op.op) {
      case "write": {
        const bytes = fsxPattern(op.seed, op.len);
        const n = vol.writeSync(s.fd, bytes, 0, op.len, op.off);
        if (n !== op.len) throw new Error(`write returned ${n}, not ${op.len}`);
        modelWrite(f, s.append ? f.size : op.off, bytes);
        return;
      }
      case "writev": {
        const all = fsxPattern(op.seed, op.lens.reduce((a, b) => a + b, 0));
        const bufs: Uint8Array[] = [];
        let at = 0;
        for (const n of op.lens) { bufs.push(all.subarray(at, at + n)); at += n; }
        const n = vol.writevSync(s.fd, bufs, op.off);
        if (n !== all.length) throw new Error(`writev returned ${n}, not ${all.length}`);
        modelWrite(f, s.append ? f.size : op.off, all);
        return;
      }
      case "read": {
        const buf = new Uint8Array(op.len);
        const n = vol.readSync(s.fd, buf, 0, op.len, op.off);
        const want = Math.max(0, Math.min(op.len, f.size - op.off));
        if (n !== want) throw new Error(`read of ${op.len} at ${op.off} returned ${n}, the model says ${want} (size ${f.size})`);
        const at = firstDiff(buf.subarray(0, n), f.data.subarray(op.off, op.off + n));
        if (at >= 0) throw new Error(`read at ${op.off}: byte ${op.off + at} is ${buf[at]}, the model says ${f.data[op.off + at]} (size ${f.size})`);
        return;
      }
      case "truncate":
        vol.ftruncateSync(s.fd, op.size);
        setSize(f, op.size);
        return;
      case "falloc": {
        const before = { data: f.data.slice(0, f.size), size: f.size };
        const want = modelFalloc(f, op.kind, op.off, op.len, this.o.clusterSize);
        let got: string | undefined;
        try {
          vol.fallocateSync(s.fd, op.off, op.len, FALLOC_FLAGS[op.kind]);
        } catch (e) {
          got = (e as { code?: string }).code;
          if (got !== want) throw e;
        }
        if (got !== want) throw new Error(`fallocate ${op.kind} gave ${got ?? "success"}, the kernel gives ${want ?? "success"}`);
        if (want) { f.data.fill(0); f.data.set(before.data); f.size = before.size; }
        return;
      }
      case "fsync": return vol.fsyncSync(s.fd);
      case "fdatasync": return vol.fdatasyncSync(s.fd);
      case "close":
        vol.closeSync(s.fd);
        this.slots[op.slot] = undefined;
        return;
    }
  }

  /** Closes every open slot (before an unmount). */
  closeAll(): void {
    for (let i = 0; i < this.slots.length; i++) {
      const s = this.slots[i];
      if (s) this.vol.closeSync(s.fd);
      this.slots[i] = undefined;
    }
  }
}

/**
 * Runs `o.ops` generated ops on a mounted read-write volume, from `o.seed`:
 * creates the files, opens one descriptor per file, then goes. Returns the
 * volume (a remount replaces it), the model and the op log. Descriptors are
 * left closed.
 */
export function runFsx(vol: Volume, o: FsxOptions): FsxResult {
  const opts = {
    files: 3, slots: 6, maxSize: 2 << 20, exclude: [], checkpointEvery: 500, ...o, remount: o.remount !== undefined, trace: undefined,
  };
  const model = newModel(vol, opts.files);
  const r = new FsxRunner(vol, model, { seed: o.seed, clusterSize: o.clusterSize, slots: opts.slots, remount: o.remount, trace: o.trace });
  const gen = new Gen(o.seed, opts);
  for (let i = 0; i < opts.files; i++) r.apply({ op: "open", slot: i, file: i, append: false });
  for (let i = 0; i < o.ops; i++) {
    r.apply(gen.next(model, r.slots));
    if ((i + 1) % opts.checkpointEvery === 0) {
      try { checkAll(r.vol, model, " (checkpoint)"); } catch (e) { throw new FsxFailure((e as Error).message, o.seed, r.log.length - 1, r.log, e); }
    }
  }
  r.closeAll();
  try { checkAll(r.vol, model, " (end of run)"); } catch (e) { throw new FsxFailure((e as Error).message, o.seed, r.log.length - 1, r.log, e); }
  return { vol: r.vol, model, log: r.log, counts: r.counts };
}

/** Replays an explicit op list (a shrunk failure) on a fresh set of files. */
export function replayFsx(vol: Volume, ops: FsxOp[], o: { seed?: number; clusterSize: number; files?: number; slots?: number; remount?: (vol: Volume) => Volume }): FsxResult {
  const model = newModel(vol, o.files ?? 3);
  const r = new FsxRunner(vol, model, { seed: o.seed ?? 0, clusterSize: o.clusterSize, slots: o.slots ?? 6, remount: o.remount });
  for (const op of ops) r.apply(op);
  r.closeAll();
  try { checkAll(r.vol, model, " (end of replay)"); } catch (e) { throw new FsxFailure((e as Error).message, o.seed ?? 0, r.log.length - 1, r.log, e); }
  return { vol: r.vol, model, log: r.log, counts: r.counts };
}

/**
 * Shrinks a failing op list: `fails(ops)` runs a candidate on a fresh image
 * and says whether it still fails. Delta debugging over chunks, then single ops.
 */
export function shrinkOps(ops: FsxOp[], fails: (ops: FsxOp[]) => boolean, budget = 400): FsxOp[] {
  let cur = ops;
  let tries = 0;
  for (let chunk = Math.max(1, cur.length >> 1); chunk >= 1 && tries < budget; chunk = chunk === 1 ? 0 : chunk >> 1) {
    for (let at = cur.length - chunk; at >= 0 && tries < budget; at -= chunk) {
      const cand = [...cur.slice(0, at), ...cur.slice(at + chunk)];
      tries++;
      if (fails(cand)) cur = cand;
    }
  }
  return cur;
}
