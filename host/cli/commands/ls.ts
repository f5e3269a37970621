// `ext4wasm ls [-l] [-R] [-a] IMAGE [PATH]`: directory listings, names as the
// raw bytes the image holds, sorted bytewise (as LC_ALL=C ls sorts them).

import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK, type Inode } from "../../format/inode.js";
import type { Stats } from "../../vfs/stats.js";
import { FT } from "../../format/dirent.js";
import type { DirEntryInfo, Volume } from "../../vfs/volume.js";
import { HELP_OPTION, IMAGE_OPTIONS, JSON_OPTION, type CommandSpec, type ParsedArgs } from "../args.js";
import { errorLine, EXIT_FAILURE, EXIT_OK, writeStderr } from "../errors.js";
import { fileType, isUtf8, joinPath, lsTime, majorMinor, modeString, type FileType } from "../format.js";
import { imageOptions, WALK_CACHE_SIZE, withImage } from "../image.js";
import { JsonArrayWriter, Output } from "../output.js";

export const spec: CommandSpec = {
  name: "ls",
  usage: "IMAGE [PATH]",
  summary: "List a directory of the image (default /). Times are UTC.",
  options: [
    { long: "long", short: "l", help: "long format: mode, links, uid, gid, size (or major, minor), mtime, name -> target" },
    { long: "recursive", short: "R", help: "list subdirectories too, each under a 'path:' header" },
    { long: "all", short: "a", help: "include names starting with '.' (and . and .. in text output)" },
    ...IMAGE_OPTIONS, JSON_OPTION, HELP_OPTION,
  ],
  minArgs: 1,
  maxArgs: 2,
  notes: "examples:\n  ext4wasm ls -l disk.img /etc\n  ext4wasm ls -R --json disk.img /home > listing.json",
};

/**
 * What a listing shows of one entry, copied out of its stat: a walk holds one
 * of these per entry of the directory being listed, so neither the decoded
 * inode nor a BigIntStats (four Dates, eighteen bigints) is kept.
 */
interface Entry {
  name: Buffer;
  ino: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  rdev: number;
  blocks: number;
  mtimeNs: bigint;
  target?: Buffer;
  /** Why its inode could not be read: listed as ls lists it then, "?" for every field. */
  error?: string;
  /** Why a symlink's target could not be read. */
  linkError?: string;
}

export interface LsJsonEntry {
  name: string;
  /** Hex of the name's bytes, present only when the name is not valid UTF-8. */
  nameHex?: string;
  path: string;
  type: FileType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  ino: number;
  mtimeNs: string;
  rdev?: { major: number; minor: number };
  target?: string;
  /** A symlink whose target could not be read: why, and syscall "readlink". */
  error?: string;
  syscall?: string;
}

/**
 * A failure in the JSON listing: an entry whose inode cannot be read
 * (syscall "lstat": name, type and ino from its directory entry), or a
 * directory that cannot be listed ("opendir", "scandir": only its path).
 */
export interface LsJsonError {
  name?: string;
  nameHex?: string;
  path: string;
  type?: FileType;
  ino?: number;
  syscall: string;
  error: string;
}

/** Exit status of ls for "serious trouble" (the command-line argument, a directory loop), as GNU ls. */
const EXIT_SERIOUS = 2;

/** The mode type bits a directory entry's file type stands for. */
const FT_TO_S: Record<number, number> = {
  [FT.REG]: S_IFREG, [FT.DIR]: S_IFDIR, [FT.CHR]: S_IFCHR, [FT.BLK]: S_IFBLK, [FT.FIFO]: S_IFIFO, [FT.SOCK]: S_IFSOCK, [FT.SYMLINK]: S_IFLNK,
};

const isDevice = (mode: number) => { const f = mode & S_IFMT; return f === S_IFCHR || f === S_IFBLK; };

/** onBadLink: a symlink whose target cannot be read is still listed, without "-> target" (as ls does). */
function entryOf(vol: Volume, inode: Inode, path: Buffer, name: Buffer, onBadLink?: (e: unknown) => void): Entry {
  const st = vol.statOf(inode, false) as Stats;
  const e: Entry = {
    name, ino: st.ino, mode: st.mode, nlink: st.nlink, uid: st.uid, gid: st.gid, size: st.size, rdev: st.rdev, blocks: st.blocks,
    mtimeNs: BigInt(inode.mtime.sec) * 1_000_000_000n + BigInt(inode.mtime.nsec),
  };
  if (st.isSymbolicLink()) {
    try {
      e.target = vol.readlinkInode(inode, path.toString("utf8"));
    } catch (err) {
      if (!onBadLink) throw err;
      onBadLink(err);
      e.linkError = reason(err);
    }
  }
  return e;
}

function jsonEntry(e: Entry, path: Buffer): LsJsonEntry {
  const j: LsJsonEntry = {
    name: e.name.toString("utf8"),
    path: path.toString("utf8"),
    type: fileType(e.mode),
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    size: e.size,
    nlink: e.nlink,
    ino: e.ino,
    mtimeNs: e.mtimeNs.toString(),
  };
  if (!isUtf8(e.name)) j.nameHex = e.name.toString("hex");
  if (isDevice(e.mode)) j.rdev = majorMinor(e.rdev);
  if (e.target) j.target = e.target.toString("utf8");
  if (e.linkError) { j.error = e.linkError; j.syscall = "readlink"; }
  return j;
}

/** Width of lsTime's "YYYY-MM-DD HH:MM". */
const TIME_WIDTH = 16;

function writeLong(out: Output, entries: Entry[], withTotal: boolean): void {
  if (withTotal) {
    const kib = entries.reduce((s, e) => s + Math.ceil(e.blocks / 2), 0);
    out.line(`total ${kib}`);
  }
  const sizeText = (e: Entry) => {
    if (e.error) return "?";
    if (isDevice(e.mode)) {
      const { major, minor } = majorMinor(e.rdev);
      return `${major}, ${minor}`;
    }
    return e.size.toString();
  };
  // Column widths first, then each line as it is written: no table of strings is held for a big directory.
  const w = [0, 0, 0, 0, 0];
  const nlinkText = (e: Entry) => (e.error ? "?" : e.nlink.toString());
  const uidText = (e: Entry) => (e.error ? "?" : e.uid.toString());
  const gidText = (e: Entry) => (e.error ? "?" : e.gid.toString());
  for (const e of entries) {
    w[1] = Math.max(w[1], nlinkText(e).length);
    w[2] = Math.max(w[2], uidText(e).length);
    w[3] = Math.max(w[3], gidText(e).length);
    w[4] = Math.max(w[4], sizeText(e).length);
  }
  for (const e of entries) {
    // An unreadable inode: GNU ls's "l????????? ? ? ? ? ? name", the type from the directory entry.
    const mode = e.error ? `${modeString(e.mode)[0]}?????????` : modeString(e.mode);
    const time = e.error ? "?".padStart(TIME_WIDTH) : lsTime(e.mtimeNs);
    out.write(`${mode} ${nlinkText(e).padStart(w[1])} ${uidText(e).padEnd(w[2])} ${gidText(e).padEnd(w[3])} ${sizeText(e).padStart(w[4])} ${time} `);
    out.write(e.name);
    if (e.target) {
      out.write(" -> ");
      out.write(e.target);
    }
    out.write("\n");
  }
}

/** `ls -l`'s "?" line for an entry whose inode could not be read: the type from its directory entry. */
function unreadable(name: Buffer, ino: number, ft: number, error: string): Entry {
  return { name, ino, mode: FT_TO_S[ft] ?? 0, nlink: 0, uid: 0, gid: 0, size: 0, rdev: 0, blocks: 0, mtimeNs: 0n, error };
}

/** What failed, without the ", lstat 'path'" the message ends with (the CLI's own line names the path). */
function reason(e: unknown): string {
  const line = errorLine(e);
  const { syscall, path } = e as { syscall?: unknown; path?: unknown };
  if (typeof syscall !== "string") return line;
  const where = `, ${syscall}${typeof path === "string" ? ` '${path}'` : ""}`;
  return line.endsWith(where) ? line.slice(0, -where.length) : line;
}

/**
 * As GNU ls: one bad entry or directory is reported on stderr and the listing
 * goes on. Exit 1 for trouble below the command-line argument, 2 for the
 * argument itself (and for a directory loop, as ls counts it).
 */
export function run(args: ParsedArgs, out: Output): number {
  const long = args.flags.has("long");
  const recursive = args.flags.has("recursive");
  const all = args.flags.has("all");
  const json = args.flags.has("json");
  const start = Buffer.from(args.positionals[1] ?? "/");
  // Names alone need no inode: getdents' name, number and type are enough (ls stats only for -l).
  const needStat = long || json;
  let status = EXIT_OK;
  const problem = (serious: boolean, message: string) => {
    out.flush(); // what was listed before it comes first, as on a terminal
    writeStderr(`ext4wasm: ${message}\n`);
    status = serious ? EXIT_SERIOUS : Math.max(status, EXIT_FAILURE);
  };

  withImage(args.positionals[0], { ...imageOptions(args), cacheSize: WALK_CACHE_SIZE }, (vol) => {
    // JSON is streamed entry by entry, as text is: nothing is held for the whole tree.
    const jsonOut = json ? new JsonArrayWriter(out) : null;
    const failed = (path: Buffer, syscall: string, error: string, name?: Buffer, ino?: number, mode?: number) => {
      if (!jsonOut) return;
      const j: LsJsonError = { path: path.toString("utf8"), syscall, error };
      if (name) {
        j.name = name.toString("utf8");
        if (!isUtf8(name)) j.nameHex = name.toString("hex");
      }
      if (mode !== undefined) j.type = fileType(mode);
      if (ino !== undefined) j.ino = ino;
      jsonOut.item(j);
    };
    // An entry stated through the inode its entry names; one that cannot be read is reported and listed as "?".
    const statEntry = (d: DirEntryInfo, path: Buffer, name: Buffer): Entry => {
      const shown = path.toString("utf8");
      try {
        return entryOf(vol, vol.inodeByNumber(d.ino, shown), path, name,
          (e) => problem(false, `cannot read symbolic link '${shown}': ${reason(e)}`));
      } catch (e) {
        problem(false, `cannot access '${shown}': ${reason(e)}`);
        return unreadable(name, d.ino, d.fileType, reason(e));
      }
    };
    const topShown = start.toString("utf8");
    let top: Entry;
    let topDir: Inode | null = null;
    try {
      // A symlink named on the command line is followed, except by -l (as ls does).
      const topInode = vol.inodeOf(start);
      top = entryOf(vol, topInode, start, start, (e) => problem(true, `cannot read symbolic link '${topShown}': ${reason(e)}`));
      let followTop = false;
      if ((top.mode & S_IFMT) === S_IFLNK && !long) {
        try { followTop = vol.statSync(start, { throwIfNoEntry: false })?.isDirectory() === true; } catch { /* listed as the link */ }
      }
      if ((top.mode & S_IFMT) === S_IFDIR || followTop) topDir = followTop ? vol.inodeOf(start, true) : topInode;
    } catch (e) {
      problem(true, `cannot access '${topShown}': ${reason(e)}`);
      failed(start, "lstat", reason(e), baseName(start));
      jsonOut?.end();
      return;
    }
    if (!topDir) {
      if (jsonOut) jsonOut.item(jsonEntry({ ...top, name: baseName(start) }, start)); // name as in a listing; path as given
      else if (long) writeLong(out, [top], false);
      else out.line(start);
      jsonOut?.end();
      return;
    }
    // Depth first by directory inode number, not by path: a tree of any depth lists (no PATH_MAX).
    // The stack holds numbers and paths only; each directory's inode is read when its turn comes.
    const stack: { ino: number; path: Buffer; parent: number; depth: number }[] = [{ ino: topDir.ino, path: start, parent: 0, depth: 0 }];
    // Directories on the way down from the start: meeting one again is a loop (a corrupt image).
    const ancestors: number[] = [];
    let first = true;
    while (stack.length > 0) {
      const { ino, path: dirPath, parent, depth } = stack.pop()!;
      const shown = dirPath.toString("utf8");
      const isArg = depth === 0;
      let dir: Inode;
      try {
        dir = depth === 0 ? topDir : vol.inodeByNumber(ino, shown);
      } catch (e) {
        problem(isArg, `cannot open directory '${shown}': ${reason(e)}`);
        failed(dirPath, "opendir", reason(e));
        continue;
      }
      ancestors.length = depth;
      if (ancestors.includes(dir.ino)) {
        problem(true, `${shown}: not listing already-listed directory`);
        failed(dirPath, "opendir", "not listing already-listed directory");
        continue;
      }
      ancestors.push(dir.ino);
      if (recursive && !jsonOut) {
        if (!first) out.write("\n");
        out.line(dirPath, ":");
      }
      first = false;
      let list: DirEntryInfo[] = [];
      // "." and ".." are entries of the first block: a directory that cannot be read shows neither, as on the kernel.
      let dots = all;
      try {
        list = vol.readdirInode(dir, shown, true);
      } catch (e) {
        dots = false;
        problem(isArg, `reading directory '${shown}': ${reason(e)}`);
        failed(dirPath, "scandir", reason(e));
      }
      // The name as a view of the entry's own bytes (readdir hands each entry its own copy).
      const kids = list.filter((d) => all || d.name[0] !== 0x2e).sort((a, b) => Buffer.compare(a.name, b.name));
      const nameOf = (d: DirEntryInfo) => Buffer.from(d.name.buffer, d.name.byteOffset, d.name.length);
      const subdirs: { ino: number; path: Buffer }[] = [];
      if (needStat) {
        const entries = kids.map((d) => statEntry(d, joinPath(dirPath, d.name), nameOf(d)));
        if (jsonOut) {
          for (const e of entries) {
            const p = joinPath(dirPath, e.name);
            if (e.error) failed(p, "lstat", e.error, e.name, e.ino, e.mode);
            else jsonOut.item(jsonEntry(e, p));
          }
        } else {
          let shownEntries = entries;
          if (dots) {
            const dot = (name: string, inodeOf: () => Inode, parentIno: number): Entry => {
              const p = joinPath(dirPath, Buffer.from(name));
              try {
                return { ...entryOf(vol, inodeOf(), dirPath, dirPath), name: Buffer.from(name) };
              } catch (e) {
                problem(false, `cannot access '${p.toString("utf8")}': ${reason(e)}`);
                return unreadable(Buffer.from(name), parentIno, FT.DIR, reason(e));
              }
            };
            const up = depth === 0 ? () => vol.inodeOf(joinPath(start, DOTDOT), true) : () => vol.inodeByNumber(parent, shown);
            shownEntries = [dot(".", () => dir, dir.ino), dot("..", up, parent), ...entries];
          }
          if (long) writeLong(out, shownEntries, true);
        }
        // A directory whose inode cannot be read is still gone into by its entry's type, as ls does (and fails to open).
        for (const e of entries) if ((e.mode & S_IFMT) === S_IFDIR) subdirs.push({ ino: e.ino, path: joinPath(dirPath, e.name) });
      } else {
        for (const d of kids) {
          let isDir = d.fileType === FT.DIR;
          if (recursive && (d.fileType === FT.UNKNOWN || d.fileType > FT.SYMLINK)) {
            // No type in the entry (no filetype feature): ls stats it to know.
            const p = joinPath(dirPath, d.name);
            try {
              isDir = (vol.inodeByNumber(d.ino, p.toString("utf8")).mode & S_IFMT) === S_IFDIR;
            } catch (e) {
              problem(false, `cannot access '${p.toString("utf8")}': ${reason(e)}`);
            }
          }
          if (isDir) subdirs.push({ ino: d.ino, path: joinPath(dirPath, d.name) });
        }
        if (dots) out.line(".\n..");
        for (const d of kids) out.line(d.name);
      }
      if (!recursive) break;
      for (let i = subdirs.length - 1; i >= 0; i--) stack.push({ ...subdirs[i], parent: dir.ino, depth: depth + 1 });
    }
    jsonOut?.end();
  });
  return status;
}

const DOTDOT = Buffer.from("..");

/** The last component of a path ("/" for the root), trailing slashes ignored. */
function baseName(p: Buffer): Buffer {
  let end = p.length;
  while (end > 1 && p[end - 1] === 0x2f) end--;
  const slash = p.lastIndexOf(0x2f, end - 1);
  const b = p.subarray(slash + 1, end);
  return b.length ? b : p.subarray(0, 1);
}
