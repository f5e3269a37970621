// `ext4wasm ls [-l] [-R] [-a] IMAGE [PATH]`: directory listings, names as the
// raw bytes the image holds, sorted bytewise (as LC_ALL=C ls sorts them).

import type { Inode } from "../../format/inode.js";
import type { BigIntStats } from "../../vfs/stats.js";
import type { Volume } from "../../vfs/volume.js";
import { HELP_OPTION, IMAGE_OPTIONS, JSON_OPTION, type CommandSpec, type ParsedArgs } from "../args.js";
import { CliError, EXIT_OK } from "../errors.js";
import { fileType, isUtf8, joinPath, lsTime, majorMinor, modeString, type FileType } from "../format.js";
import { imageOptions, WALK_CACHE_SIZE, withImage } from "../image.js";
import { Output, toJson } from "../output.js";

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

interface Entry {
  name: Buffer;
  path: Buffer;
  st: BigIntStats;
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

function entryOf(vol: Volume, inode: Inode, path: Buffer, name: Buffer): Entry {
  const st = vol.statOf(inode, true) as BigIntStats;
  const e: Entry = { name, path, st };
  if (st.isSymbolicLink()) e.target = vol.readlinkInode(inode, path.toString("utf8"));
  return e;
}

/** A directory's entries, sorted bytewise, each stated through the inode its entry names (no lookups). */
function children(vol: Volume, dir: Inode, dirPath: Buffer, all: boolean): { entry: Entry; inode: Inode }[] {
  return vol.readdirInode(dir, dirPath.toString("utf8"))
    .filter((d) => all || d.name[0] !== 0x2e)
    .sort((a, b) => Buffer.compare(a.name, b.name))
    .map((d) => {
      const p = joinPath(dirPath, d.name);
      const inode = vol.inodeByNumber(d.ino, p.toString("utf8"));
      return { entry: entryOf(vol, inode, p, Buffer.from(d.name)), inode };
    });
}

function jsonEntry(e: Entry): LsJsonEntry {
  const st = e.st;
  const mode = Number(st.mode);
  const j: LsJsonEntry = {
    name: e.name.toString("utf8"),
    path: e.path.toString("utf8"),
    type: fileType(mode),
    mode,
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: Number(st.size),
    nlink: Number(st.nlink),
    ino: Number(st.ino),
    mtimeNs: st.mtimeNs.toString(),
  };
  if (!isUtf8(e.name)) j.nameHex = e.name.toString("hex");
  if (st.isCharacterDevice() || st.isBlockDevice()) j.rdev = majorMinor(Number(st.rdev));
  if (e.target) j.target = e.target.toString("utf8");
  return j;
}

function writeLong(out: Output, entries: Entry[], withTotal: boolean): void {
  if (withTotal) {
    const kib = entries.reduce((s, e) => s + Math.ceil(Number(e.st.blocks) / 2), 0);
    out.line(`total ${kib}`);
  }
  const sizeText = (e: Entry) => {
    if (e.st.isCharacterDevice() || e.st.isBlockDevice()) {
      const { major, minor } = majorMinor(Number(e.st.rdev));
      return `${major}, ${minor}`;
    }
    return e.st.size.toString();
  };
  const cols = entries.map((e) => [modeString(Number(e.st.mode)), e.st.nlink.toString(), e.st.uid.toString(), e.st.gid.toString(), sizeText(e), lsTime(e.st.mtimeNs)]);
  const w = [0, 1, 2, 3, 4].map((k) => Math.max(0, ...cols.map((c) => c[k].length)));
  entries.forEach((e, i) => {
    const c = cols[i];
    out.write(`${c[0]} ${c[1].padStart(w[1])} ${c[2].padEnd(w[2])} ${c[3].padEnd(w[3])} ${c[4].padStart(w[4])} ${c[5]} `);
    out.write(e.name);
    if (e.target) {
      out.write(" -> ");
      out.write(e.target);
    }
    out.write("\n");
  });
}

export function run(args: ParsedArgs, out: Output): number {
  const long = args.flags.has("long");
  const recursive = args.flags.has("recursive");
  const all = args.flags.has("all");
  const json = args.flags.has("json");
  const start = Buffer.from(args.positionals[1] ?? "/");

  withImage(args.positionals[0], { ...imageOptions(args), cacheSize: WALK_CACHE_SIZE }, (vol) => {
    const jsonOut: LsJsonEntry[] = [];
    // A symlink named on the command line is followed, except by -l (as ls does).
    const topInode = vol.inodeOf(start);
    const top = entryOf(vol, topInode, start, start);
    const followTop = top.st.isSymbolicLink() && !long && vol.statSync(start, { throwIfNoEntry: false })?.isDirectory() === true;
    if (!top.st.isDirectory() && !followTop) {
      if (json) jsonOut.push(jsonEntry({ ...top, name: baseName(start) })); // name as in a listing; path as given
      else if (long) writeLong(out, [top], false);
      else out.line(start);
      if (json) out.line(toJson(jsonOut));
      return;
    }
    // Depth first by directory inode, not by path: a tree of any depth lists (no PATH_MAX).
    const stack: { dir: Inode; path: Buffer; parent: () => Inode; depth: number }[] = [
      { dir: followTop ? vol.inodeOf(start, true) : topInode, path: start, parent: () => vol.inodeOf(joinPath(start, DOTDOT), true), depth: 0 },
    ];
    // Directories on the way down from the start: meeting one again is a loop (a corrupt image).
    const ancestors: number[] = [];
    let first = true;
    while (stack.length > 0) {
      const { dir, path: dirPath, parent, depth } = stack.pop()!;
      ancestors.length = depth;
      if (ancestors.includes(dir.ino)) throw new CliError("EFSCORRUPTED", `directory inode ${dir.ino} is its own ancestor (a directory loop), scandir '${dirPath.toString("utf8")}'`);
      ancestors.push(dir.ino);
      const kids = children(vol, dir, dirPath, all);
      if (json) {
        for (const k of kids) jsonOut.push(jsonEntry(k.entry));
      } else {
        if (recursive) {
          if (!first) out.write("\n");
          out.line(dirPath, ":");
        }
        const shown = kids.map((k) => k.entry);
        if (all) {
          const dot = (name: string, inode: Inode): Entry => ({ name: Buffer.from(name), path: dirPath, st: vol.statOf(inode, true) as BigIntStats });
          shown.unshift(dot(".", dir), dot("..", parent()));
        }
        if (long) writeLong(out, shown, true);
        else for (const k of shown) out.line(k.name);
      }
      first = false;
      if (!recursive) break;
      for (let i = kids.length - 1; i >= 0; i--) {
        const k = kids[i];
        if (k.entry.st.isDirectory()) stack.push({ dir: k.inode, path: k.entry.path, parent: () => dir, depth: depth + 1 });
      }
    }
    if (json) out.line(toJson(jsonOut));
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
