// `ext4wasm ls [-l] [-R] [-a] IMAGE [PATH]`: directory listings, names as the
// raw bytes the image holds, sorted bytewise (as LC_ALL=C ls sorts them).

import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, type Inode } from "../../format/inode.js";
import type { Stats } from "../../vfs/stats.js";
import type { Volume } from "../../vfs/volume.js";
import { HELP_OPTION, IMAGE_OPTIONS, JSON_OPTION, type CommandSpec, type ParsedArgs } from "../args.js";
import { CliError, EXIT_OK } from "../errors.js";
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
}

const isDevice = (mode: number) => { const f = mode & S_IFMT; return f === S_IFCHR || f === S_IFBLK; };

function entryOf(vol: Volume, inode: Inode, path: Buffer, name: Buffer): Entry {
  const st = vol.statOf(inode, false) as Stats;
  const e: Entry = {
    name, ino: st.ino, mode: st.mode, nlink: st.nlink, uid: st.uid, gid: st.gid, size: st.size, rdev: st.rdev, blocks: st.blocks,
    mtimeNs: BigInt(inode.mtime.sec) * 1_000_000_000n + BigInt(inode.mtime.nsec),
  };
  if (st.isSymbolicLink()) e.target = vol.readlinkInode(inode, path.toString("utf8"));
  return e;
}

/** A directory's entries, sorted bytewise, each stated through the inode its entry names (no lookups). */
function children(vol: Volume, dir: Inode, dirPath: Buffer, all: boolean): Entry[] {
  return vol.readdirInode(dir, dirPath.toString("utf8"))
    .filter((d) => all || d.name[0] !== 0x2e)
    .sort((a, b) => Buffer.compare(a.name, b.name))
    .map((d) => {
      const p = joinPath(dirPath, d.name);
      // The name as a view of the entry's own bytes (readdir hands each entry its own copy).
      return entryOf(vol, vol.inodeByNumber(d.ino, p.toString("utf8")), p, Buffer.from(d.name.buffer, d.name.byteOffset, d.name.length));
    });
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
  return j;
}

function writeLong(out: Output, entries: Entry[], withTotal: boolean): void {
  if (withTotal) {
    const kib = entries.reduce((s, e) => s + Math.ceil(e.blocks / 2), 0);
    out.line(`total ${kib}`);
  }
  const sizeText = (e: Entry) => {
    if (isDevice(e.mode)) {
      const { major, minor } = majorMinor(e.rdev);
      return `${major}, ${minor}`;
    }
    return e.size.toString();
  };
  // Column widths first, then each line as it is written: no table of strings is held for a big directory.
  const w = [0, 0, 0, 0, 0];
  for (const e of entries) {
    w[1] = Math.max(w[1], e.nlink.toString().length);
    w[2] = Math.max(w[2], e.uid.toString().length);
    w[3] = Math.max(w[3], e.gid.toString().length);
    w[4] = Math.max(w[4], sizeText(e).length);
  }
  for (const e of entries) {
    out.write(`${modeString(e.mode)} ${e.nlink.toString().padStart(w[1])} ${e.uid.toString().padEnd(w[2])} ${e.gid.toString().padEnd(w[3])} ${sizeText(e).padStart(w[4])} ${lsTime(e.mtimeNs)} `);
    out.write(e.name);
    if (e.target) {
      out.write(" -> ");
      out.write(e.target);
    }
    out.write("\n");
  }
}

export function run(args: ParsedArgs, out: Output): number {
  const long = args.flags.has("long");
  const recursive = args.flags.has("recursive");
  const all = args.flags.has("all");
  const json = args.flags.has("json");
  const start = Buffer.from(args.positionals[1] ?? "/");

  withImage(args.positionals[0], { ...imageOptions(args), cacheSize: WALK_CACHE_SIZE }, (vol) => {
    // JSON is streamed entry by entry, as text is: nothing is held for the whole tree.
    const jsonOut = json ? new JsonArrayWriter(out) : null;
    // A symlink named on the command line is followed, except by -l (as ls does).
    const topInode = vol.inodeOf(start);
    const top = entryOf(vol, topInode, start, start);
    const followTop = (top.mode & S_IFMT) === S_IFLNK && !long && vol.statSync(start, { throwIfNoEntry: false })?.isDirectory() === true;
    if ((top.mode & S_IFMT) !== S_IFDIR && !followTop) {
      if (jsonOut) jsonOut.item(jsonEntry({ ...top, name: baseName(start) }, start)); // name as in a listing; path as given
      else if (long) writeLong(out, [top], false);
      else out.line(start);
      jsonOut?.end();
      return;
    }
    // Depth first by directory inode number, not by path: a tree of any depth lists (no PATH_MAX).
    // The stack holds numbers and paths only; each directory's inode is read when its turn comes.
    const topDir = followTop ? vol.inodeOf(start, true) : topInode;
    const stack: { ino: number; path: Buffer; parent: number; depth: number }[] = [{ ino: topDir.ino, path: start, parent: 0, depth: 0 }];
    // Directories on the way down from the start: meeting one again is a loop (a corrupt image).
    const ancestors: number[] = [];
    let first = true;
    while (stack.length > 0) {
      const { ino, path: dirPath, parent, depth } = stack.pop()!;
      const dir = depth === 0 ? topDir : vol.inodeByNumber(ino, dirPath.toString("utf8"));
      ancestors.length = depth;
      if (ancestors.includes(dir.ino)) throw new CliError("EFSCORRUPTED", `directory inode ${dir.ino} is its own ancestor (a directory loop), scandir '${dirPath.toString("utf8")}'`);
      ancestors.push(dir.ino);
      const kids = children(vol, dir, dirPath, all);
      if (jsonOut) {
        for (const k of kids) jsonOut.item(jsonEntry(k, joinPath(dirPath, k.name)));
      } else {
        if (recursive) {
          if (!first) out.write("\n");
          out.line(dirPath, ":");
        }
        let shown = kids;
        if (all) {
          const dot = (name: string, inode: Inode): Entry => ({ ...entryOf(vol, inode, dirPath, dirPath), name: Buffer.from(name) });
          const up = depth === 0 ? vol.inodeOf(joinPath(start, DOTDOT), true) : vol.inodeByNumber(parent, dirPath.toString("utf8"));
          shown = [dot(".", dir), dot("..", up), ...kids];
        }
        if (long) writeLong(out, shown, true);
        else for (const k of shown) out.line(k.name);
      }
      first = false;
      if (!recursive) break;
      for (let i = kids.length - 1; i >= 0; i--) {
        const k = kids[i];
        if ((k.mode & S_IFMT) === S_IFDIR) stack.push({ ino: k.ino, path: joinPath(dirPath, k.name), parent: dir.ino, depth: depth + 1 });
      }
    }
    jsonOut?.end();
  });
  return EXIT_OK;
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
