// fsstress in TypeScript over the public node:fs-style API: a seeded table of
// namespace and data operations, each checked against a shadow model of the
// tree (names, types, link counts, sizes, contents, symlink targets, xattrs)
// that also predicts the errno every call must fail with. The workload
// function is reusable (crash tests drive it over a RecordingDevice); the
// `checkpoint` hook is where a caller verifies, fscks or remounts.

import type { Volume } from "../../host/index.js";
import { mulberry32 } from "./random.js";

export type Kind = "file" | "dir" | "symlink";

export interface MInode {
  id: number;
  kind: Kind;
  /** Names that link it (files, symlinks); a directory has exactly one. */
  nlink: number;
  data: Buffer; // file bytes; symlink target bytes
  xattrs: Map<string, Buffer>;
  /** Directory entries (dirs only). */
  entries: Map<string, MInode>;
  parent?: MInode; // dirs only
}

/** The shadow tree; paths are "/a/b" strings from the root. */
export class Model {
  private nextId = 1;
  readonly root: MInode;
  constructor() {
    this.root = this.make("dir");
    this.root.parent = this.root;
  }
  make(kind: Kind, data: Buffer = Buffer.alloc(0)): MInode {
    return { id: this.nextId++, kind, nlink: 1, data, xattrs: new Map(), entries: new Map() };
  }
  /** Directory nlink as ext4 keeps it: 2 plus one per subdirectory. */
  dirLinks(d: MInode): number {
    let n = 2;
    for (const c of d.entries.values()) if (c.kind === "dir") n++;
    return n;
  }
  /** Every directory with its path, root first. */
  dirs(): [string, MInode][] {
    const out: [string, MInode][] = [];
    const walk = (p: string, d: MInode) => {
      out.push([p, d]);
      for (const [n, c] of d.entries) if (c.kind === "dir") walk(`${p === "/" ? "" : p}/${n}`, c);
    };
    walk("/", this.root);
    return out;
  }
  /** Every name with its path and inode. */
  all(): [string, MInode][] {
    const out: [string, MInode][] = [];
    const walk = (p: string, d: MInode) => {
      for (const [n, c] of d.entries) {
        const cp = `${p}/${n}`;
        out.push([cp, c]);
        if (c.kind === "dir") walk(cp, c);
      }
    };
    walk("", this.root);
    return out;
  }
  /** Inodes outside the big directory. */
  countInodes(): number {
    return new Set(this.all().filter(([p]) => !p.startsWith("/big/")).map(([, i]) => i.id)).size;
  }
}

/** Lookup result: the parent directory and final name, or the errno path resolution gives. */
type Where = { err: string } | { dir: MInode; name: string; node?: MInode };

/** Resolves every component but the last as Linux would (symlinks here always dangle: ENOENT through them). */
export function locate(m: Model, path: string): Where {
  const parts = path.split("/").filter(Boolean);
  let d = m.root;
  for (let i = 0; i < parts.length - 1; i++) {
    const c = d.entries.get(parts[i]);
    if (!c) return { err: "ENOENT" };
    if (c.kind === "symlink") return { err: "ENOENT" }; // dangling by construction
    if (c.kind !== "dir") return { err: "ENOTDIR" };
    d = c;
  }
  const name = parts[parts.length - 1];
  return { dir: d, name, node: d.entries.get(name) };
}

const isAncestor = (a: MInode, b: MInode): boolean => {
  // a is b or one of b's ancestors
  for (let x = b; ; x = x.parent!) {
    if (x === a) return true;
    if (x.parent === x) return false;
  }
};

export interface FsstressOptions {
  seed: number;
  ops: number;
  /** File system block size (symlink targets stay below it). */
  blockSize: number;
  /** false on block-mapped (ext3) images: fallocate is EOPNOTSUPP there but for punch. */
  extents: boolean;
  /** Called every `checkEvery` ops and at the end with the volume; may return a new one (after a remount). */
  checkpoint?: (vol: Volume, ctx: FsstressRun) => Volume | void;
  checkEvery?: number;
  /** The big-directory phases: grow one directory with long names to `bigDirEntries`, shrink it, re-add. */
  bigDirEntries?: number;
  /** Cap on the data a file may hold (keeps the image from filling). */
  maxFileSize?: number;
  /** Called after every op (crash tests: note what is durable). */
  afterOp?: (op: LoggedOp, vol: Volume, run: FsstressRun) => void;
  /** Weights per op name (0 leaves an op out). */
  weights?: Partial<Record<OpName, number>>;
}

export type OpName = "create" | "mkdir" | "rename" | "link" | "symlink" | "unlink" | "rmdir" | "setxattr" | "removexattr" |
  "write" | "truncate" | "fallocate" | "fsync" | "read";

export interface LoggedOp { n: number; text: string; expect: string; got?: string }

const DEFAULT_WEIGHTS: Record<OpName, number> = {
  create: 10, mkdir: 5, rename: 10, link: 5, symlink: 4, unlink: 8, rmdir: 4, setxattr: 6, removexattr: 3,
  write: 12, truncate: 5, fallocate: 5, fsync: 2, read: 3,
};

export interface FsstressRun {
  model: Model;
  log: LoggedOp[];
  vol: Volume;
  /** The op log's last lines, for failure messages. */
  tail(n?: number): string;
}

class FsstressError extends Error {}

/** Runs the seeded workload; throws with the seed and the op-log tail on the first divergence. */
export function fsstressWorkload(vol: Volume, o: FsstressOptions): FsstressRun {
  const rnd = mulberry32(o.seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = <T>(a: T[]): T => a[int(a.length)];
  const m = new Model();
  const log: LoggedOp[] = [];
  const run: FsstressRun = {
    model: m, log, vol,
    tail: (n = 40) => log.slice(-n).map((l) => `#${l.n} ${short(l.text)} -> expect ${l.expect}${l.got !== undefined && l.got !== l.expect ? ` GOT ${l.got}` : ""}`).join("\n"),
  };
  const fail = (msg: string): never => {
    throw new FsstressError(`fsstress seed=${o.seed} op #${log.length}: ${msg}\n--- op log tail (replay: FSSTRESS_SEED=${o.seed} FSSTRESS_OPS=${o.ops})\n${run.tail()}`);
  };
  // lost+found is in the root of every mkfs'd image: the model knows it as a directory.
  m.root.entries.set("lost+found", Object.assign(m.make("dir"), { parent: m.root }));
  const weights = { ...DEFAULT_WEIGHTS, ...o.weights };
  const table = (Object.keys(weights) as OpName[]).flatMap((k) => Array<OpName>(weights[k]).fill(k));
  const maxFile = o.maxFileSize ?? 192 << 10;
  const POOL = 12;

  /** A path: mostly a random existing directory plus a pool name; now and then through a file or a missing dir. */
  const randomPath = (): string => {
    const dirs = m.dirs().filter(([p]) => p !== "/lost+found" && !p.startsWith("/big"));
    const [dp] = rnd() < 0.1 ? pick(m.dirs()) : pick(dirs);
    const base = dp === "/" ? "" : dp;
    const r = rnd();
    if (r < 0.03) return `${base}/missing${int(3)}/n${int(POOL)}`;
    if (r < 0.06) {
      const files = m.all().filter(([, i]) => i.kind !== "dir");
      if (files.length) return `${pick(files)[0]}/n${int(POOL)}`;
    }
    return `${base}/n${int(POOL)}`;
  };
  /** An existing name of the given kinds (or a random path when there is none). */
  const existing = (...kinds: Kind[]): string => {
    const inBig = rnd() < 0.05;
    const c = m.all().filter(([p, i]) => kinds.includes(i.kind) && p !== "/lost+found" && p !== "/big" && p.startsWith("/big/") === inBig);
    return c.length && rnd() < 0.85 ? pick(c)[0] : randomPath();
  };

  let fillSeq = 0;
  const pattern = (len: number): Buffer => {
    const b = Buffer.alloc(len);
    const s = (++fillSeq * 2654435761) >>> 0;
    for (let i = 0; i < len; i++) b[i] = (s >>> ((i & 3) * 8)) ^ (i * 13) ^ (i >>> 9);
    return b;
  };

  /** Runs one op: `expect` is the model's errno or "ok"; `apply` the model's change on success. */
  const doOp = (text: string, expect: string, call: () => void, apply: () => void): void => {
    const entry: LoggedOp = { n: log.length + 1, text, expect };
    log.push(entry);
    let got = "ok";
    try {
      call();
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (!code || !/^E[A-Z0-9]+$/.test(code)) { entry.got = String(e); fail(`${text}: threw ${(e as Error).stack ?? e}`); }
      got = code!;
    }
    entry.got = got;
    if (got !== expect) fail(`${text}: expected ${expect}, got ${got}`);
    if (got === "ok") apply();
    o.afterOp?.(entry, run.vol, run);
  };

  const withFd = (p: string, flags: string, fn: (fd: number) => void) => {
    const fd = run.vol.openSync(p, flags);
    try { fn(fd); } finally { run.vol.closeSync(fd); }
  };

  /** open(p, "r+") errors: resolution, then the final component (symlinks dangle; directories EISDIR). */
  const openErr = (w: Where): string | undefined => {
    if ("err" in w) return w.err;
    if (!w.node || w.node.kind === "symlink") return "ENOENT";
    if (w.node.kind === "dir") return "EISDIR";
    return undefined;
  };

  const ops: Record<OpName, () => void> = {
    create: () => {
      const p = randomPath();
      const w = locate(m, p);
      const r = rnd();
      const data = r < 0.3 ? pattern(int(120)) : r < 0.6 ? pattern(int(3000)) : Buffer.alloc(0); // tiny ones stay inline where inline_data is on
      const exp = "err" in w ? w.err : w.node ? "EEXIST" : "ok";
      doOp(`create ${p} (${data.length} bytes)`, exp, () => run.vol.writeFileSync(p, data, { flag: "wx" }), () => {
        const ww = w as { dir: MInode; name: string };
        ww.dir.entries.set(ww.name, m.make("file", data));
      });
    },
    mkdir: () => {
      const p = randomPath();
      const w = locate(m, p);
      const exp = "err" in w ? w.err : w.node ? "EEXIST" : "ok";
      doOp(`mkdir ${p}`, exp, () => run.vol.mkdirSync(p), () => {
        const ww = w as { dir: MInode; name: string };
        ww.dir.entries.set(ww.name, Object.assign(m.make("dir"), { parent: ww.dir }));
      });
    },
    rename: () => {
      const src = rnd() < 0.5 ? existing("file", "symlink") : existing("dir", "file", "symlink");
      // Targets: over existing files / empty dirs often, across directories.
      const dst = rnd() < 0.5 ? existing(m.all().find(([q]) => q === src)?.[1].kind ?? "file") : randomPath();
      const a = locate(m, src), b = locate(m, dst);
      let exp = "ok";
      if ("err" in a) exp = a.err;
      else if ("err" in b) exp = b.err; // both parents are resolved before the source is looked up
      else if (!a.node) exp = "ENOENT";
      else if (a.node === b.node) exp = "ok"; // the same inode: nothing to do
      else if (a.node.kind === "dir" && isAncestor(a.node, b.dir)) exp = "EINVAL";
      else if (b.node && b.node.kind === "dir" && isAncestor(b.node, a.dir)) exp = "ENOTEMPTY";
      else if (b.node && a.node.kind === "dir" && b.node.kind !== "dir") exp = "ENOTDIR";
      else if (b.node && a.node.kind !== "dir" && b.node.kind === "dir") exp = "EISDIR";
      else if (b.node && b.node.kind === "dir" && b.node.entries.size) exp = "ENOTEMPTY";
      doOp(`rename ${src} -> ${dst}`, exp, () => run.vol.renameSync(src, dst), () => {
        const aa = a as { dir: MInode; name: string; node: MInode }, bb = b as { dir: MInode; name: string; node?: MInode };
        if (aa.node === bb.node) return;
        if (bb.node && bb.node.kind !== "dir") bb.node.nlink--;
        aa.dir.entries.delete(aa.name);
        bb.dir.entries.set(bb.name, aa.node);
        if (aa.node.kind === "dir") aa.node.parent = bb.dir;
      });
    },
    link: () => {
      const src = existing("file", "symlink", "dir");
      const dst = randomPath();
      const a = locate(m, src), b = locate(m, dst);
      let exp = "ok";
      if ("err" in a) exp = a.err;
      else if (!a.node) exp = "ENOENT";
      else if ("err" in b) exp = b.err;
      else if (b.node) exp = "EEXIST";
      else if (a.node.kind === "dir") exp = "EPERM";
      doOp(`link ${src} -> ${dst}`, exp, () => run.vol.linkSync(src, dst), () => {
        const aa = a as { node: MInode }, bb = b as { dir: MInode; name: string };
        aa.node.nlink++;
        bb.dir.entries.set(bb.name, aa.node);
      });
    },
    symlink: () => {
      const p = randomPath();
      const w = locate(m, p);
      // Relative targets that never resolve ("@..." names are not in the pool); fast and slow ones.
      const len = rnd() < 0.6 ? 1 + int(58) : 60 + int(Math.min(o.blockSize, 4096) - 61);
      // Components stay under NAME_MAX: following a longer one is ENAMETOOLONG, not ENOENT.
      const target = Buffer.from(`@${"t".repeat(len - 1)}`.replace(/(.{200})./g, "$1/"));
      const exp = "err" in w ? w.err : w.node ? "EEXIST" : "ok";
      doOp(`symlink ${p} (${len} bytes)`, exp, () => run.vol.symlinkSync(target.toString(), p), () => {
        const ww = w as { dir: MInode; name: string };
        ww.dir.entries.set(ww.name, m.make("symlink", target));
      });
    },
    unlink: () => {
      const p = existing("file", "symlink", "dir");
      const w = locate(m, p);
      const exp = "err" in w ? w.err : !w.node ? "ENOENT" : w.node.kind === "dir" ? "EISDIR" : "ok";
      doOp(`unlink ${p}`, exp, () => run.vol.unlinkSync(p), () => {
        const ww = w as { dir: MInode; name: string; node: MInode };
        ww.dir.entries.delete(ww.name);
        ww.node.nlink--;
      });
    },
    rmdir: () => {
      const p = existing("dir", "dir", "file");
      const w = locate(m, p);
      const exp = "err" in w ? w.err : !w.node ? "ENOENT" : w.node.kind !== "dir" ? "ENOTDIR" : w.node.entries.size ? "ENOTEMPTY" : "ok";
      doOp(`rmdir ${p}`, exp, () => run.vol.rmdirSync(p), () => {
        const ww = w as { dir: MInode; name: string };
        ww.dir.entries.delete(ww.name);
      });
    },
    setxattr: () => {
      const p = existing("file", "dir", "symlink");
      const w = locate(m, p);
      const name = `user.x${int(5)}`;
      const value = pattern(int(4) === 0 ? 0 : 1 + int(160));
      const flag = pick([undefined, undefined, "create", "replace"] as const);
      const noFollow = rnd() < 0.5;
      let exp = "ok";
      if ("err" in w) exp = w.err;
      else if (!w.node) exp = "ENOENT";
      else if (w.node.kind === "symlink") exp = noFollow ? "EPERM" : "ENOENT"; // user.* on a symlink; or it dangles
      else if (flag === "create" && w.node.xattrs.has(name)) exp = "EEXIST";
      else if (flag === "replace" && !w.node.xattrs.has(name)) exp = "ENODATA";
      doOp(`setxattr ${p} ${name} (${value.length} bytes${flag ? `, ${flag}` : ""}${noFollow ? ", nofollow" : ""})`, exp,
        () => run.vol.setxattr(p, name, value, { flag, noFollow }), () => { (w as { node: MInode }).node.xattrs.set(name, value); });
    },
    removexattr: () => {
      const p = existing("file", "dir");
      const w = locate(m, p);
      const name = `user.x${int(5)}`;
      let exp = "ok";
      if ("err" in w) exp = w.err;
      else if (!w.node) exp = "ENOENT";
      else if (w.node.kind === "symlink") exp = "ENOENT";
      else if (!w.node.xattrs.has(name)) exp = "ENODATA";
      doOp(`removexattr ${p} ${name}`, exp, () => run.vol.removexattr(p, name), () => { (w as { node: MInode }).node.xattrs.delete(name); });
    },
    write: () => {
      const p = existing("file", "file", "dir");
      const w = locate(m, p);
      const bs = o.blockSize;
      const off = rnd() < 0.3 ? int(maxFile - 4096) : int(8) * bs + (rnd() < 0.5 ? int(bs) : 0);
      const len = Math.min(maxFile - off, rnd() < 0.2 ? int(64 << 10) : 1 + int(3 * bs));
      const data = pattern(Math.max(0, len));
      const exp = openErr(w) ?? "ok";
      doOp(`write ${p} @${off} +${data.length}`, exp, () => withFd(p, "r+", (fd) => {
        const n = run.vol.writeSync(fd, data, 0, data.length, off);
        if (n !== data.length) fail(`short write ${n} of ${data.length}`);
      }), () => {
        const node = (w as { node: MInode }).node;
        const end = Math.max(node.data.length, off + data.length);
        const nb = Buffer.alloc(end);
        node.data.copy(nb);
        data.copy(nb, off);
        node.data = nb;
      });
    },
    truncate: () => {
      const p = existing("file", "file", "dir");
      const w = locate(m, p);
      const len = rnd() < 0.3 ? 0 : int(maxFile);
      const exp = openErr(w) ?? "ok";
      doOp(`truncate ${p} ${len}`, exp, () => run.vol.truncateSync(p, len), () => {
        const node = (w as { node: MInode }).node;
        const nb = Buffer.alloc(len);
        node.data.copy(nb, 0, 0, Math.min(len, node.data.length));
        node.data = nb;
      });
    },
    fallocate: () => {
      const p = existing("file");
      const w = locate(m, p);
      const bs = o.blockSize;
      const off = int(maxFile / bs - 8) * bs + (rnd() < 0.3 ? int(bs) : 0);
      const len = 1 + int(8 * bs);
      const mode = pick(["default", "keepSize", "punchHole", "zeroRange", "zeroKeep"] as const);
      const flags = { default: {}, keepSize: { keepSize: true }, punchHole: { punchHole: true, keepSize: true }, zeroRange: { zeroRange: true }, zeroKeep: { zeroRange: true, keepSize: true } }[mode];
      let exp = openErr(w) ?? "ok";
      if (exp === "ok" && !o.extents && mode !== "punchHole") exp = "EOPNOTSUPP";
      doOp(`fallocate ${p} ${mode} @${off} +${len}`, exp, () => withFd(p, "r+", (fd) => run.vol.fallocateSync(fd, off, len, flags)), () => {
        const node = (w as { node: MInode }).node;
        const keep = mode === "keepSize" || mode === "punchHole" || mode === "zeroKeep";
        const size = keep ? node.data.length : Math.max(node.data.length, off + len);
        const nb = Buffer.alloc(size);
        node.data.copy(nb, 0, 0, Math.min(size, node.data.length));
        if (mode === "punchHole" || mode === "zeroRange" || mode === "zeroKeep") nb.fill(0, Math.min(off, size), Math.min(off + len, size));
        node.data = nb;
      });
    },
    fsync: () => {
      const p = existing("file", "dir");
      const w = locate(m, p);
      const exp = "err" in w ? w.err : !w.node || w.node.kind === "symlink" ? "ENOENT" : "ok";
      doOp(`fsync ${p}`, exp, () => withFd(p, "r", (fd) => run.vol.fsyncSync(fd)), () => {});
    },
    read: () => {
      const p = existing("file");
      const w = locate(m, p);
      const exp = openErr(w) ?? "ok";
      doOp(`read ${p}`, exp, () => {
        const got = run.vol.readFileSync(p) as Buffer;
        const want = (w as { node: MInode }).node.data;
        if (!got.equals(want)) fail(`read ${p}: ${diffAt(got, want)}`);
      }, () => {});
    },
  };

  // The big directory: long names, enough for a two-level htree on 1k blocks.
  const bigN = o.bigDirEntries ?? 0;
  const bigName = (i: number) => `${String(i).padStart(5, "0")}-${"L".repeat(200 + (i % 50))}`;
  const phases: { at: number; run: () => void }[] = [];
  if (bigN) {
    const at = (f: number) => Math.floor(o.ops * f);
    phases.push({ at: at(0.1), run: () => {
      doOp("mkdir /big", "ok", () => run.vol.mkdirSync("/big"), () => { m.root.entries.set("big", Object.assign(m.make("dir"), { parent: m.root })); });
      for (let i = 0; i < bigN; i++) bigCreate(i);
    } });
    phases.push({ at: at(0.4), run: () => {
      const big = m.root.entries.get("big")!;
      const names = [...big.entries.keys()];
      for (const n of names) {
        if (int(10) === 0) continue;
        const c = big.entries.get(n)!;
        if (c.kind === "dir" && c.entries.size) continue;
        doOp(`${c.kind === "dir" ? "rmdir" : "unlink"} /big/${n}`, "ok", () => c.kind === "dir" ? run.vol.rmdirSync(`/big/${n}`) : run.vol.unlinkSync(`/big/${n}`),
          () => { c.nlink--; big.entries.delete(n); });
      }
    } });
    phases.push({ at: at(0.6), run: () => {
      const big = m.root.entries.get("big")!;
      for (let i = 0; i < bigN; i++) if (!big.entries.has(bigName(i))) bigCreate(i);
    } });
  }
  function bigCreate(i: number): void {
    const big = m.root.entries.get("big")!;
    const name = bigName(i);
    const kind = i % 7 === 0 ? "dir" : "file";
    doOp(`${kind === "dir" ? "mkdir" : "create"} /big/${name}`, "ok",
      () => kind === "dir" ? run.vol.mkdirSync(`/big/${name}`) : run.vol.writeFileSync(`/big/${name}`, "", { flag: "wx" }),
      () => big.entries.set(name, Object.assign(m.make(kind), kind === "dir" ? { parent: big } : {})));
  }

  const checkEvery = o.checkEvery ?? 0;
  let sinceCheck = 0;
  const checkpoint = () => {
    const next = o.checkpoint?.(run.vol, run);
    if (next) run.vol = next;
  };
  for (let n = 0; n < o.ops; n++) {
    for (const ph of phases) if (ph.at === n) ph.run();
    let name = pick(table);
    // Keep the tree bounded: creation ops turn into removals past a size.
    if (m.countInodes() > 160 && (name === "create" || name === "mkdir" || name === "symlink" || name === "link")) name = pick(["unlink", "rmdir"] as const);
    ops[name]();
    if (checkEvery && ++sinceCheck >= checkEvery) { sinceCheck = 0; checkpoint(); }
  }
  checkpoint();
  return run;
}

function diffAt(got: Buffer, want: Buffer): string {
  let i = 0;
  while (i < got.length && i < want.length && got[i] === want[i]) i++;
  return `size ${got.length} (want ${want.length}), first difference at byte ${i}`;
}

/** What a walk of a real tree (ours or the kernel's) must show. */
export interface TreeView {
  readdir(p: string): string[];
  lstat(p: string): { ino: number | bigint; nlink: number; size: number; isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean };
  readFile(p: string): Buffer;
  readlink(p: string): Buffer;
  /** user.* xattrs of a file or directory, or undefined to skip the comparison. */
  xattrs?(p: string): Map<string, Buffer>;
}

/** Compares the model with a view; returns the differences (empty when they agree). */
export function compareTree(m: Model, v: TreeView, limit = 20): string[] {
  const out: string[] = [];
  const inoOf = new Map<number, number | bigint>(); // model id -> inode number
  const walk = (p: string, d: MInode) => {
    if (out.length >= limit) return;
    const got = v.readdir(p || "/").sort();
    const want = [...d.entries.keys()].sort();
    if (got.join("\0") !== want.join("\0")) {
      const extra = got.filter((n) => !d.entries.has(n)), missing = want.filter((n) => !got.includes(n));
      out.push(`${p || "/"}: names differ: extra [${extra.map(short).join(", ")}] missing [${missing.map(short).join(", ")}]`);
    }
    for (const [n, c] of d.entries) {
      if (!got.includes(n)) continue;
      const cp = `${p}/${n}`;
      let st;
      try { st = v.lstat(cp); } catch (e) { out.push(`${short(cp)}: lstat failed: ${(e as Error).message}`); continue; }
      const kind = st.isDirectory() ? "dir" : st.isSymbolicLink() ? "symlink" : st.isFile() ? "file" : "other";
      if (kind !== c.kind) { out.push(`${short(cp)}: is a ${kind}, want ${c.kind}`); continue; }
      const seen = inoOf.get(c.id);
      if (seen === undefined) inoOf.set(c.id, st.ino);
      else if (seen !== st.ino) out.push(`${short(cp)}: inode ${st.ino}, but its other link has ${seen}`);
      const nlink = c.kind === "dir" ? m.dirLinks(c) : c.nlink;
      if (st.nlink !== nlink) out.push(`${short(cp)}: nlink ${st.nlink}, want ${nlink}`);
      if (c.kind === "file") {
        if (st.size !== c.data.length) out.push(`${short(cp)}: size ${st.size}, want ${c.data.length}`);
        else if (seen === undefined) {
          const data = v.readFile(cp);
          if (!data.equals(c.data)) out.push(`${short(cp)}: content differs: ${diffAt(data, c.data)}`);
        }
      } else if (c.kind === "symlink") {
        const t = v.readlink(cp);
        if (!t.equals(c.data)) out.push(`${short(cp)}: symlink target ${t.length} bytes, want ${c.data.length}`);
      }
      if (c.kind !== "symlink" && v.xattrs && seen === undefined) {
        const xs = v.xattrs(cp);
        const gotX = [...xs.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, val]) => `${k}=${val.toString("hex")}`).join(" ");
        const wantX = [...c.xattrs.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, val]) => `${k}=${val.toString("hex")}`).join(" ");
        if (gotX !== wantX) out.push(`${short(cp)}: xattrs [${gotX.slice(0, 200)}] want [${wantX.slice(0, 200)}]`);
      }
      if (c.kind === "dir") walk(cp, c);
    }
  };
  walk("", m.root);
  return out;
}

const short = (s: string) => s.replace(/L{20,}/g, (x) => `L*${x.length}`);

/** The view of a mounted Volume. */
export function volumeView(vol: Volume): TreeView {
  return {
    readdir: (p) => vol.readdirSync(p) as string[],
    lstat: (p) => vol.lstatSync(p),
    readFile: (p) => vol.readFileSync(p) as Buffer,
    readlink: (p) => vol.readlinkSync(p, { encoding: "buffer" }) as Buffer,
    xattrs: (p) => new Map(vol.listxattr(p).filter((n) => n.startsWith("user.")).map((n) => [n, vol.getxattr(p, n)])),
  };
}
