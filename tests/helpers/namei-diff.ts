// The namespace operations, ours against the kernel's: one seeded sequence of
// create, mkdir, mknod, symlink, link, unlink, rmdir and rename (with its
// flags) is applied through host/fs/namei-ops.ts on an image and through the
// kernel's system calls (python3: os.*, renameat2 by ctypes) on a loop mount
// of an identical copy. Every operation must give the same error code; the
// trees are then compared as the kernel sees them (names, types, modes, link
// counts and hard-link groups, uids, rdevs, symlink targets, ACLs).

import { Ext4Error } from "../../host/errors.js";
import { lookup } from "../../host/fs/dir.js";
import type { Ext4Inode } from "../../host/fs/inode.js";
import * as ops from "../../host/fs/namei-ops.js";
import type { Ext4 } from "../../host/fs/super.js";
import { isDir, S_IFBLK, S_IFCHR, S_IFIFO, S_IFSOCK } from "../../host/format/inode.js";
import { mulberry32 } from "./random.js";
import { runSync } from "./exec.js";
import { withLoopMountSync } from "./kernel.js";

export type NsOp =
  | { op: "create" | "mkdir"; path: string; mode: number }
  | { op: "mknod"; path: string; mode: number; rdev: number }
  | { op: "symlink"; path: string; target: string }
  | { op: "link"; path: string; path2: string }
  | { op: "unlink" | "rmdir"; path: string }
  | { op: "rename"; path: string; path2: string; flags: number };

export const RENAME_NOREPLACE = 1;
export const RENAME_EXCHANGE = 2;
export const RENAME_WHITEOUT = 4;

const enc = (s: string) => new TextEncoder().encode(s);

function fail(code: string): never {
  throw new Ext4Error(code, "path walk");
}

/** path_parentat: the parent directory (referenced) and the last name. */
function parentOf(f: Ext4, p: string): { dir: Ext4Inode; name: Uint8Array } {
  const parts = p.split("/");
  const name = enc(parts.pop()!);
  let cur = f.iget(2);
  try {
    for (const c of parts) {
      if (!isDir(cur)) fail("ENOTDIR");
      if (c.length > 255) fail("ENAMETOOLONG");
      const ino = lookup(f, cur, enc(c));
      if (!ino) fail("ENOENT");
      const next = f.iget(ino);
      f.iput(cur);
      cur = next;
    }
    if (!isDir(cur)) fail("ENOTDIR");
  } catch (e) {
    f.iput(cur);
    throw e;
  }
  return { dir: cur, name };
}

function withParent<T>(f: Ext4, p: string, fn: (dir: Ext4Inode, name: Uint8Array) => T): T {
  const { dir, name } = parentOf(f, p);
  try {
    return fn(dir, name);
  } finally {
    f.iput(dir);
  }
}

const cred = { uid: 0, gid: 0, umask: 0 };

/** Applies one operation through namei-ops; null or the error code. */
export function applyOurs(f: Ext4, o: NsOp): string | null {
  try {
    switch (o.op) {
      case "create": withParent(f, o.path, (d, n) => f.iput(ops.ext4Create(f, d, n, o.mode, cred))); break;
      case "mkdir": withParent(f, o.path, (d, n) => f.iput(ops.ext4Mkdir(f, d, n, o.mode, cred))); break;
      case "mknod": withParent(f, o.path, (d, n) => f.iput(ops.ext4Mknod(f, d, n, o.mode, o.rdev, cred))); break;
      case "symlink": withParent(f, o.path, (d, n) => f.iput(ops.ext4Symlink(f, d, n, enc(o.target), cred))); break;
      case "link":
        withParent(f, o.path, (sd, sn) => {
          if (sn.length > 255) fail("ENAMETOOLONG");
          const ino = lookup(f, sd, sn);
          if (!ino) fail("ENOENT");
          const src = f.iget(ino);
          try {
            withParent(f, o.path2, (d, n) => f.iput(ops.ext4Link(f, src, d, n)));
          } finally {
            f.iput(src);
          }
        });
        break;
      case "unlink": withParent(f, o.path, (d, n) => { const i = ops.ext4Unlink(f, d, n); if (i) f.iput(i); }); break;
      case "rmdir": withParent(f, o.path, (d, n) => { const i = ops.ext4Rmdir(f, d, n); if (i) f.iput(i); }); break;
      case "rename": {
        const flags = { noreplace: (o.flags & RENAME_NOREPLACE) !== 0, exchange: (o.flags & RENAME_EXCHANGE) !== 0, whiteout: (o.flags & RENAME_WHITEOUT) !== 0 };
        ops.checkRenameFlags(flags);
        withParent(f, o.path, (od, on) => withParent(f, o.path2, (nd, nn) => ops.ext4Rename(f, od, on, nd, nn, flags)));
        break;
      }
    }
    return null;
  } catch (e) {
    if (!(e instanceof Ext4Error)) throw e;
    return e.code;
  }
}

const KERNEL_RUNNER = String.raw`
import ctypes, errno, json, os, sys
os.chdir(sys.argv[1]); os.umask(0)
libc = ctypes.CDLL(None, use_errno=True)
libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
AT = -100
out = []
for o in json.load(sys.stdin):
    try:
        k = o["op"]; p = o["path"].encode()
        if k == "create":
            os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, o["mode"]))
        elif k == "mkdir": os.mkdir(p, o["mode"])
        elif k == "mknod": os.mknod(p, o["mode"], o["rdev"])
        elif k == "symlink": os.symlink(o["target"].encode(), p)
        elif k == "link": os.link(p, o["path2"].encode(), follow_symlinks=False)
        elif k == "unlink": os.unlink(p)
        elif k == "rmdir": os.rmdir(p)
        elif k == "rename":
            if libc.renameat2(AT, p, AT, o["path2"].encode(), o["flags"]) != 0:
                e = ctypes.get_errno(); raise OSError(e, os.strerror(e))
        out.append(None)
    except OSError as e:
        out.append(errno.errorcode[e.errno])
print(json.dumps(out))
`;

const TREE_DUMPER = String.raw`
import json, os, stat, sys
root = sys.argv[1]; out = []; inos = {}
def walk(rel):
    for n in sorted(os.listdir(os.path.join(root, rel) if rel else root)):
        if not rel and n == "lost+found": continue
        p = os.path.join(rel, n) if rel else n
        st = os.lstat(os.path.join(root, p))
        grp = inos.setdefault(st.st_ino, p)
        e = [p, stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_nlink, st.st_uid, st.st_gid, grp]
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode): e.append([os.major(st.st_rdev), os.minor(st.st_rdev)])
        if stat.S_ISLNK(st.st_mode): e.append(os.readlink(os.fsencode(os.path.join(root, p))).hex())
        if stat.S_ISREG(st.st_mode): e.append(st.st_size)
        acl = []
        if not stat.S_ISLNK(st.st_mode):
            for x in ("system.posix_acl_access", "system.posix_acl_default"):
                try: acl.append([x, os.getxattr(os.path.join(root, p), x).hex()])
                except OSError: pass
        e.append(acl)
        out.append(e)
        if stat.S_ISDIR(st.st_mode): walk(p)
walk("")
print(json.dumps(out))
`;

export function applyKernel(image: string, seq: NsOp[]): (string | null)[] {
  return withLoopMountSync(image, (mnt) => JSON.parse(runSync("python3", ["-c", KERNEL_RUNNER, mnt], { input: JSON.stringify(seq) }).stdout) as (string | null)[]);
}

/** The tree as the kernel sees it, read-only. */
export function kernelTree(image: string): unknown[] {
  return withLoopMountSync(image, (mnt) => JSON.parse(runSync("python3", ["-c", TREE_DUMPER, mnt]).stdout) as unknown[], { readOnly: true });
}

// ---- the generator ----

type Kind = "file" | "dir" | "symlink" | "special";

export interface GenOptions {
  seed: number;
  count: number;
  /** Operations to draw (default all). */
  ops?: NsOp["op"][];
  /** Bursts that fill one directory past a block and empty it again. */
  bursts?: number;
  burstSize?: number;
  /** Directories the image starts with. */
  initialDirs?: string[];
}

/**
 * Draws operations against a model of the tree that the caller keeps true by
 * feeding back each result (`step` returns the next op given the last result).
 */
export class NsGenerator {
  private rnd: () => number;
  private model = new Map<string, Kind>();
  private pending: NsOp[] = [];
  private last: NsOp | undefined;
  private made = 0;
  private readonly allowed: Set<string>;
  private burstsLeft: number;

  constructor(private readonly o: GenOptions) {
    this.rnd = mulberry32(o.seed);
    this.allowed = new Set(o.ops ?? ["create", "mkdir", "mknod", "symlink", "link", "unlink", "rmdir", "rename"]);
    this.burstsLeft = o.bursts ?? 0;
    for (const d of o.initialDirs ?? []) this.model.set(d, "dir");
  }

  private pick<T>(a: T[]): T { return a[Math.floor(this.rnd() * a.length)]; }
  private chance(p: number): boolean { return this.rnd() < p; }

  dirs(): string[] { return ["", ...[...this.model].filter(([, k]) => k === "dir").map(([p]) => p)]; }
  private of(kind?: Kind): string[] { return [...this.model].filter(([, k]) => !kind || k === kind).map(([p]) => p); }

  private name(): string {
    const r = this.rnd();
    const len = r < 0.02 ? 256 : r < 0.05 ? 200 + Math.floor(this.rnd() * 56) : 1 + Math.floor(this.rnd() * 24);
    let s = "";
    const abc = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789_-.";
    while (s.length < len) s += abc[Math.floor(this.rnd() * abc.length)];
    if (s === "." || s === "..") s = "x" + s;
    return s;
  }

  private join(dir: string, n: string): string { return dir ? `${dir}/${n}` : n; }

  /** A path: mostly a new name in an existing directory; sometimes an existing entry, "." / "..", or under a file. */
  private target(existing = 0.3): string {
    const r = this.rnd();
    if (r < existing && this.model.size) return this.pick(this.of());
    if (r < existing + 0.02) return this.join(this.pick(this.dirs()), this.chance(0.5) ? "." : "..");
    if (r < existing + 0.04 && this.of("file").length) return this.join(this.pick(this.of("file")), "x");
    if (r < existing + 0.05) return this.join(this.join(this.pick(this.dirs()), "nonexistent"), "x");
    return this.join(this.pick(this.dirs()), this.name());
  }

  next(): NsOp | undefined {
    if (this.made >= this.o.count && !this.pending.length) return undefined;
    if (this.pending.length) return (this.last = this.pending.shift()!);
    this.made++;
    if (this.burstsLeft > 0 && this.chance(this.o.count ? (this.o.bursts! / this.o.count) * 2 : 0)) {
      this.burstsLeft--;
      const dir = this.pick(this.dirs());
      const n = this.o.burstSize ?? 200;
      const names = Array.from({ length: n }, (_, i) => this.join(dir, `b${i}-${"q".repeat(8 + (i % 40))}`));
      for (const p of names) this.pending.push({ op: "create", path: p, mode: 0o644 });
      // Most go again, in another order: the directory shrinks (an htree stays indexed).
      for (const p of names.filter(() => this.chance(0.85)).sort(() => this.rnd() - 0.5)) this.pending.push({ op: "unlink", path: p });
      return (this.last = this.pending.shift()!);
    }
    const all = [...this.allowed];
    for (;;) {
      const k = this.pick(all) as NsOp["op"];
      const op = this.make(k);
      if (op) return (this.last = op);
    }
  }

  private make(k: NsOp["op"]): NsOp | undefined {
    switch (k) {
      case "create": return { op: "create", path: this.target(), mode: this.pick([0o644, 0o600, 0o4755, 0o2644, 0o1777]) };
      case "mkdir": return { op: "mkdir", path: this.target(), mode: this.pick([0o755, 0o700, 0o2775, 0o1777]) };
      case "mknod": {
        const t = this.pick([S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK]);
        const major = this.pick([1, 8, 200, 300, 4095]);
        const minor = this.pick([3, 255, 256, 70000]);
        const rdev = ((major & 0xfff) << 8) | (minor & 0xff) | ((minor & 0xfff00) << 12);
        return { op: "mknod", path: this.target(), mode: t | 0o640, rdev: t === S_IFCHR || t === S_IFBLK ? rdev >>> 0 : 0 };
      }
      case "symlink": {
        const len = this.pick([1, 10, 58, 59, 60, 61, 200, 1000, 3000]);
        let t = "";
        while (t.length < len) t += this.pick(["a", "b/", "../", "c"]);
        return { op: "symlink", path: this.target(), target: t.slice(0, len) };
      }
      case "link": {
        if (!this.model.size) return undefined;
        const src = this.chance(0.9) ? this.pick(this.of()) : this.target(0);
        return { op: "link", path: src, path2: this.target(0.15) };
      }
      case "unlink": case "rmdir": {
        if (!this.model.size) return undefined;
        const kinds = this.of(k === "rmdir" ? "dir" : undefined);
        const p = this.chance(0.85) && kinds.length ? this.pick(kinds) : this.target(0.5);
        return { op: k, path: p };
      }
      case "rename": {
        if (!this.model.size) return undefined;
        const src = this.chance(0.9) ? this.pick(this.of()) : this.target(0.2);
        const r = this.rnd();
        const flags = r < 0.6 ? 0 : r < 0.72 ? RENAME_NOREPLACE : r < 0.87 ? RENAME_EXCHANGE : r < 0.97 ? RENAME_WHITEOUT : RENAME_EXCHANGE | RENAME_WHITEOUT;
        // Into a subdirectory of itself now and then (EINVAL), or onto an ancestor (ENOTEMPTY).
        let dst = this.target(0.45);
        if (this.chance(0.05) && this.model.get(src) === "dir") dst = this.join(src, this.name());
        if (this.chance(0.03) && src.includes("/")) dst = src.slice(0, src.lastIndexOf("/"));
        return { op: "rename", path: src, path2: dst, flags };
      }
    }
  }

  /** The result of the last op, to keep the model true. */
  result(res: string | null): void {
    const o = this.last!;
    if (res !== null) return;
    const kindOf: Record<string, Kind> = { create: "file", mkdir: "dir", mknod: "special", symlink: "symlink" };
    switch (o.op) {
      case "create": case "mkdir": case "mknod": case "symlink": this.model.set(o.path, kindOf[o.op]); break;
      case "link": this.model.set(o.path2, this.model.get(o.path)!); break;
      case "unlink": case "rmdir": this.model.delete(o.path); break;
      case "rename": {
        if (o.path === o.path2 || this.model.get(o.path) === undefined) break;
        const move = (from: string, to: string, into: Map<string, Kind>) => {
          for (const [p, k] of [...this.model]) {
            if (p === from || p.startsWith(`${from}/`)) into.set(to + p.slice(from.length), k);
          }
        };
        const moved = new Map<string, Kind>();
        move(o.path, o.path2, moved);
        if (o.flags & RENAME_EXCHANGE) move(o.path2, o.path, moved);
        for (const p of [...this.model.keys()]) if (p === o.path || p.startsWith(`${o.path}/`) || p === o.path2 || p.startsWith(`${o.path2}/`)) this.model.delete(p);
        for (const [p, k] of moved) this.model.set(p, k);
        if (o.flags & RENAME_WHITEOUT) this.model.set(o.path, "special");
        break;
      }
    }
  }
}

export { isDir };
