// A compact seeded workload for crash-consistency tests over the public Volume
// API: data ops (writes at, inside and past EOF, truncate up and down,
// fallocate with keep-size, punch and zero range, fsync, fdatasync) mixed with
// namespace ops (create, mkdir, rename over targets, link, symlink, unlink,
// rmdir, setxattr, directory fsync). While it runs it records what the kernel
// promises is durable, and from which flush on:
//  - a data fact at each fsync / fdatasync of a file: its exact bytes and size;
//  - name facts at each fsync of a directory: every entry in it (file, dir or
//    symlink, with its inode number), and the absence of names removed from it.
// A fact holds in a crash state whose last complete flush is at or after the
// fact's flush, as long as no op that could change it (a write to the file, a
// name op on the path or an ancestor) started before the state's last event.

import { createHash } from "node:crypto";
import type { RecordingDevice } from "../../host/index.js";
import type { Volume } from "../../host/vfs/volume.js";
import { mulberry32 } from "./random.js";

export type Kind = "file" | "dir" | "symlink";

export interface NameFact { path: string; flush: number; taken: number; kind: Kind | "absent"; ino?: number; id?: number; target?: string }
export interface DataFact { id: number; flush: number; taken: number; data: Buffer }
/** An op that may change a fact: a data op on file `id`, or a name op on `path` and everything under it. */
export interface Touch { start: number; id?: number; path?: string }

export interface Trace {
  names: NameFact[];
  data: DataFact[];
  touches: Touch[];
  /** One line per op, for a failing state's report. */
  log: string[];
  /** The model's files: id -> inode number. */
  inos: Map<number, number>;
}

interface FileNode { kind: "file"; id: number }
interface DirNode { kind: "dir"; ino: number }
interface LinkNode { kind: "symlink"; ino: number; target: string }
type Node = FileNode | DirNode | LinkNode;

/** Bytes that differ per seed and offset (so a block in the wrong place shows). */
export function bytes(seed: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  let x = (seed * 2654435761 + 1) >>> 0;
  for (let i = 0; i < len; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

export const sha = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex").slice(0, 16);

export interface WorkloadOptions {
  seed: number;
  ops: number;
  /** Largest file the generator grows (bytes). */
  maxFile?: number;
}

/**
 * Runs the workload on `vol` (mounted on `rec`) and returns its trace. The
 * volume is left mounted and dirty: the caller decides whether to unmount.
 */
export function runWorkload(vol: Volume, rec: RecordingDevice, o: WorkloadOptions): Trace {
  const rnd = mulberry32(o.seed);
  const pick = <T>(a: T[]): T => a[Math.floor(rnd() * a.length)];
  const int = (n: number): number => Math.floor(rnd() * n);
  const maxFile = o.maxFile ?? 300_000;
  const tree = new Map<string, Node>([["", { kind: "dir", ino: 2 }]]);
  const files = new Map<number, Buffer>();
  const inos = new Map<number, number>();
  const seen = new Map<string, Set<string>>([["", new Set()]]); // names ever made in a dir
  const trace: Trace = { names: [], data: [], touches: [], log: [], inos };
  let nextId = 1;
  let nameSeq = 0;
  // Descriptors held open across ops (an unlinked file stays alive while one is: the orphan list after a crash).
  const held: { fd: number; id: number }[] = [];

  const lastFlush = (): number => {
    for (let i = rec.events.length - 1; i >= 0; i--) if (rec.events[i].kind === "flush") return i;
    return -1;
  };
  const start = (): number => rec.events.length;
  const abs = (p: string): string => `/${p}`;
  const parentOf = (p: string): string => (p.includes("/") ? p.slice(0, p.lastIndexOf("/")) : "");
  const baseOf = (p: string): string => p.slice(p.lastIndexOf("/") + 1);
  const join = (d: string, n: string): string => (d ? `${d}/${n}` : n);
  const of = (kind: Kind): string[] => [...tree].filter(([p, n]) => p && n.kind === kind).map(([p]) => p);
  const dirs = (): string[] => [...tree].filter(([, n]) => n.kind === "dir").map(([p]) => p);
  const newName = (): string => {
    const d = pick(dirs());
    const p = join(d, `n${nameSeq++}${"x".repeat(int(3) === 0 ? int(40) : 0)}`);
    seen.get(d)!.add(baseOf(p));
    return p;
  };
  const touchPath = (s: number, p: string): void => { trace.touches.push({ start: s, path: p }); };
  const touchId = (s: number, id: number): void => { trace.touches.push({ start: s, id }); };
  const withFd = <T>(p: string, flags: string, fn: (fd: number) => T): T => {
    const fd = vol.openSync(abs(p), flags);
    try { return fn(fd); } finally { vol.closeSync(fd); }
  };
  const removeName = (p: string): void => {
    const n = tree.get(p)!;
    tree.delete(p);
    if (n.kind === "file" && ![...tree.values()].some((m) => m.kind === "file" && m.id === n.id) && !held.some((x) => x.id === n.id)) files.delete(n.id);
  };
  const setSize = (id: number, size: number): void => {
    const d = files.get(id)!;
    files.set(id, size <= d.length ? Buffer.from(d.subarray(0, size)) : Buffer.concat([d, Buffer.alloc(size - d.length)]));
  };
  const fileIno = (p: string): number => Number(vol.lstatSync(abs(p)).ino);

  const ops: [number, () => string | undefined][] = [
    [6, () => { // create, with some data
      const p = newName();
      const s = start();
      touchPath(s, p);
      const id = nextId++;
      const data = bytes(o.seed * 7919 + id, int(4) === 0 ? 0 : 1 + int(20_000));
      withFd(p, "wx", (fd) => { if (data.length) vol.writeSync(fd, data, 0, data.length, 0); });
      tree.set(p, { kind: "file", id });
      files.set(id, data);
      inos.set(id, fileIno(p));
      return `create ${p} #${id} ${data.length}`;
    }],
    [14, () => { // write: inside, at or past EOF
      const fs = of("file");
      if (!fs.length) return undefined;
      const p = pick(fs);
      const id = (tree.get(p) as FileNode).id;
      const cur = files.get(id)!;
      const r = rnd();
      const pos = r < 0.35 ? cur.length : r < 0.7 ? int(cur.length + 1) : cur.length + int(70_000);
      const len = 1 + (rnd() < 0.5 ? int(5000) : int(90_000));
      if (pos + len > maxFile) return undefined;
      const data = bytes(o.seed * 31 + trace.log.length, len);
      touchId(start(), id);
      withFd(p, "r+", (fd) => vol.writeSync(fd, data, 0, len, pos));
      if (pos + len > cur.length) setSize(id, pos + len);
      data.copy(files.get(id)!, pos);
      return `write ${p} #${id} @${pos}+${len}`;
    }],
    [4, () => { // truncate up or down
      const fs = of("file");
      if (!fs.length) return undefined;
      const p = pick(fs);
      const id = (tree.get(p) as FileNode).id;
      const size = rnd() < 0.5 ? int(files.get(id)!.length + 1) : int(maxFile / 2);
      touchId(start(), id);
      withFd(p, "r+", (fd) => vol.ftruncateSync(fd, size));
      setSize(id, size);
      return `truncate ${p} #${id} ${size}`;
    }],
    [4, () => { // fallocate: preallocate, punch, zero range
      const fs = of("file");
      if (!fs.length) return undefined;
      const p = pick(fs);
      const id = (tree.get(p) as FileNode).id;
      const cur = files.get(id)!.length;
      const off = int(cur + 20_000);
      const len = 1 + int(60_000);
      if (off + len > maxFile) return undefined;
      const r = rnd();
      const flags = r < 0.3 ? { keepSize: rnd() < 0.5 } : r < 0.65 ? { punchHole: true, keepSize: true } : { zeroRange: true, keepSize: rnd() < 0.5 };
      touchId(start(), id);
      withFd(p, "r+", (fd) => vol.fallocateSync(fd, off, len, flags));
      const end = off + len;
      if (!flags.keepSize && end > cur) setSize(id, end);
      if ("punchHole" in flags || "zeroRange" in flags) files.get(id)!.fill(0, Math.min(off, cur), Math.min(end, files.get(id)!.length));
      return `fallocate ${p} #${id} @${off}+${len} ${JSON.stringify(flags)}`;
    }],
    [7, () => { // fsync or fdatasync of a file: its bytes and size are durable
      const fs = of("file");
      if (!fs.length) return undefined;
      const p = pick(fs);
      const id = (tree.get(p) as FileNode).id;
      const datasync = rnd() < 0.4;
      withFd(p, "r", (fd) => (datasync ? vol.fdatasyncSync(fd) : vol.fsyncSync(fd)));
      // What the volume reads now must be the model (else the facts below would be wrong).
      const now = vol.readFileSync(abs(p)) as Buffer;
      const model = files.get(id)!;
      if (!now.equals(model)) {
        let i = 0;
        while (i < now.length && now[i] === model[i]) i++;
        throw new Error(`${p} #${id} reads back ${now.length} bytes, differing from the model (${model.length}) at ${i}`);
      }
      trace.data.push({ id, flush: lastFlush(), taken: rec.events.length, data: Buffer.from(files.get(id)!) });
      return `${datasync ? "fdatasync" : "fsync"} ${p} #${id}`;
    }],
    [5, () => { // fsync of a directory: its entries (and removals) are durable
      const d = pick(dirs());
      withFd(d, "r", (fd) => vol.fsyncSync(fd));
      const flush = lastFlush();
      const taken = rec.events.length;
      for (const name of seen.get(d)!) {
        const p = join(d, name);
        const n = tree.get(p);
        if (!n) trace.names.push({ path: p, flush, taken, kind: "absent" });
        else if (n.kind === "file") trace.names.push({ path: p, flush, taken, kind: "file", ino: inos.get(n.id), id: n.id });
        else trace.names.push({ path: p, flush, taken, kind: n.kind, ino: n.ino, ...(n.kind === "symlink" ? { target: n.target } : {}) });
      }
      return `fsync dir /${d}`;
    }],
    [3, () => { // mkdir
      const p = newName();
      touchPath(start(), p);
      vol.mkdirSync(abs(p));
      tree.set(p, { kind: "dir", ino: fileIno(p) });
      seen.set(p, new Set());
      return `mkdir ${p}`;
    }],
    [2, () => { // rmdir of an empty directory
      const empty = of("dir").filter((d) => ![...tree.keys()].some((q) => parentOf(q) === d && q !== d));
      if (!empty.length) return undefined;
      const p = pick(empty);
      touchPath(start(), p);
      vol.rmdirSync(abs(p));
      tree.delete(p);
      seen.delete(p);
      return `rmdir ${p}`;
    }],
    [5, () => { // rename a file or symlink to a new name or over an existing file
      const src = pick([...of("file"), ...of("symlink")]);
      if (!src) return undefined;
      const targets = [...of("file"), ...of("symlink")].filter((q) => q !== src);
      const dst = targets.length && rnd() < 0.5 ? pick(targets) : newName();
      const s = start();
      touchPath(s, src);
      touchPath(s, dst);
      vol.renameSync(abs(src), abs(dst));
      const n = tree.get(src)!;
      const same = tree.get(dst);
      if (same && same.kind === "file" && n.kind === "file" && same.id === n.id) { // hard links of one inode: rename does nothing
        return `rename ${src} -> ${dst} (same inode)`;
      }
      if (tree.has(dst)) removeName(dst);
      tree.delete(src);
      tree.set(dst, n);
      return `rename ${src} -> ${dst}`;
    }],
    [1, () => { // rename a directory (to a new name, never into itself)
      const ds = of("dir");
      if (!ds.length) return undefined;
      const src = pick(ds);
      const dst = newName();
      if (dst.startsWith(`${src}/`)) { seen.get(parentOf(dst))!.delete(baseOf(dst)); return undefined; }
      const s = start();
      touchPath(s, src);
      touchPath(s, dst);
      vol.renameSync(abs(src), abs(dst));
      for (const [p, n] of [...tree]) {
        if (p !== src && !p.startsWith(`${src}/`)) continue;
        tree.delete(p);
        tree.set(dst + p.slice(src.length), n);
      }
      for (const [p, names] of [...seen]) {
        if (p !== src && !p.startsWith(`${src}/`)) continue;
        seen.delete(p);
        seen.set(dst + p.slice(src.length), names);
      }
      return `rename dir ${src} -> ${dst}`;
    }],
    [3, () => { // hard link
      const fs = of("file");
      if (!fs.length) return undefined;
      const src = pick(fs);
      const dst = newName();
      touchPath(start(), dst);
      vol.linkSync(abs(src), abs(dst));
      tree.set(dst, { ...(tree.get(src) as FileNode) });
      return `link ${src} ${dst}`;
    }],
    [3, () => { // symlink, fast or slow
      const p = newName();
      const target = rnd() < 0.6 ? `t${int(1000)}` : "T".repeat(60 + int(900));
      touchPath(start(), p);
      vol.symlinkSync(target, abs(p));
      tree.set(p, { kind: "symlink", ino: fileIno(p), target });
      return `symlink ${p} (${target.length})`;
    }],
    [5, () => { // unlink
      const ps = [...of("file"), ...of("symlink")];
      if (!ps.length) return undefined;
      const p = pick(ps);
      touchPath(start(), p);
      vol.unlinkSync(abs(p));
      removeName(p);
      return `unlink ${p}`;
    }],
    [3, () => { // setxattr (in the inode or in a block)
      const ps = [...of("file"), ...of("dir")];
      if (!ps.length) return undefined;
      const p = pick(ps);
      const value = bytes(int(1000), rnd() < 0.7 ? 1 + int(60) : 200 + int(600));
      try {
        vol.setxattr(abs(p), `user.k${int(4)}`, value);
      } catch (e) {
        // The value fits neither the inode nor the xattr block (no ea_inode): refused, as the kernel does.
        if ((e as { code?: string }).code !== "ENOSPC") throw e;
        return `setxattr ${p} ${value.length}: ENOSPC`;
      }
      return `setxattr ${p} ${value.length}`;
    }],
  ];
  ops.push(
    [2, () => { // hold a descriptor open
      const fs = of("file");
      if (!fs.length || held.length >= 4) return undefined;
      const p = pick(fs);
      held.push({ fd: vol.openSync(abs(p), "r+"), id: (tree.get(p) as FileNode).id });
      return `hold ${p} #${held[held.length - 1].id}`;
    }],
    [2, () => { // write through a held descriptor (its file may be unlinked by now)
      if (!held.length) return undefined;
      const h = pick(held);
      const cur = files.get(h.id)!;
      const pos = int(cur.length + 10_000);
      const len = 1 + int(30_000);
      if (pos + len > maxFile) return undefined;
      const data = bytes(o.seed * 17 + trace.log.length, len);
      touchId(start(), h.id);
      vol.writeSync(h.fd, data, 0, len, pos);
      if (pos + len > cur.length) setSize(h.id, pos + len);
      data.copy(files.get(h.id)!, pos);
      return `held write #${h.id} @${pos}+${len}`;
    }],
    [1, () => { // close a held descriptor (the last one of an unlinked file frees it)
      if (!held.length) return undefined;
      const [h] = held.splice(int(held.length), 1);
      vol.closeSync(h.fd);
      if (![...tree.values()].some((m) => m.kind === "file" && m.id === h.id) && !held.some((x) => x.id === h.id)) files.delete(h.id);
      return `close held #${h.id}`;
    }],
    [1, () => { // many names in one directory (it grows past a block: an htree)
      const d = pick(dirs());
      const n = 15 + int(30);
      const s = start();
      for (let i = 0; i < n; i++) {
        const p = join(d, `m${nameSeq++}-${"y".repeat(10 + int(30))}`);
        seen.get(d)!.add(baseOf(p));
        touchPath(s, p);
        const data = bytes(nameSeq, int(3) === 0 ? 0 : int(300));
        vol.writeFileSync(abs(p), data);
        const id = nextId++;
        tree.set(p, { kind: "file", id });
        files.set(id, data);
        inos.set(id, fileIno(p));
      }
      return `bulk create ${n} in /${d}`;
    }],
  );
  const total = ops.reduce((a, [w]) => a + w, 0);
  while (trace.log.length < o.ops) {
    let r = rnd() * total;
    const op = ops.find(([w]) => (r -= w) < 0)![1];
    let line: string | undefined;
    const s0 = rec.events.length;
    try {
      line = op();
    } catch (e) {
      (e as Error).message += `\nafter ops (seed ${o.seed}):\n${trace.log.slice(-15).join("\n")}`;
      throw e;
    }
    if (line) trace.log.push(`${s0}..${rec.events.length}: ${line}`);
  }
  return trace;
}

/** A crash state: every write up to flush `flush` (an event index), and some of those after it up to event `upto`. */
export interface CrashPoint { flush: number; upto: number }

/** The facts that must hold in a crash state: names to check, and files' exact bytes (by model id: inode numbers are reused). */
export function expectations(t: Trace, c: CrashPoint): { names: NameFact[]; data: Map<number, Buffer> } {
  const touchedPath = (p: string, since: number): boolean => t.touches.some((x) => x.path !== undefined && x.start >= since && x.start <= c.upto
    && (x.path === p || p.startsWith(`${x.path}/`)));
  const touchedId = (id: number, since: number): boolean => t.touches.some((x) => x.id === id && x.start >= since && x.start <= c.upto);
  const latest = new Map<string, NameFact>();
  for (const f of t.names) if (f.flush <= c.flush) latest.set(f.path, f);
  const names = [...latest.values()].filter((f) => !touchedPath(f.path, f.taken));
  // A name counts only while every ancestor's name holds too (else the path may not resolve).
  const held = new Set(names.map((f) => f.path));
  const valid = names.filter((f) => {
    const parts = f.path.split("/");
    for (let i = 1; i < parts.length; i++) if (!held.has(parts.slice(0, i).join("/"))) return false;
    return true;
  });
  const lastData = new Map<number, DataFact>();
  for (const f of t.data) if (f.flush <= c.flush) lastData.set(f.id, f);
  const data = new Map<number, Buffer>();
  for (const f of lastData.values()) if (!touchedId(f.id, f.taken)) data.set(f.id, f.data);
  return { names: valid, data };
}
