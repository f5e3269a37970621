// `ext4wasm ls [-l] [-R] [-a] IMAGE [PATH]`: directory listings, names as the
// raw bytes the image holds, sorted bytewise (as LC_ALL=C ls sorts them).

import type { BigIntStats } from "../../vfs/stats.js";
import type { Volume } from "../../vfs/volume.js";
import { HELP_OPTION, IMAGE_OPTIONS, JSON_OPTION, type CommandSpec, type ParsedArgs } from "../args.js";
import { EXIT_OK } from "../errors.js";
import { fileType, isUtf8, joinPath, lsTime, majorMinor, modeString, type FileType } from "../format.js";
import { imageOptions, withImage } from "../image.js";
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

function entryOf(vol: Volume, path: Buffer, name: Buffer): Entry {
  const st = vol.lstatSync(path, { bigint: true });
  const e: Entry = { name, path, st };
  if (st.isSymbolicLink()) e.target = vol.readlinkSync(path, { encoding: "buffer" }) as Buffer;
  return e;
}

function children(vol: Volume, dir: Buffer, all: boolean): Entry[] {
  const names = (vol.readdirSync(dir, { encoding: "buffer" }) as Buffer[])
    .filter((n) => all || n[0] !== 0x2e)
    .sort(Buffer.compare);
  return names.map((n) => entryOf(vol, joinPath(dir, n), n));
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

  withImage(args.positionals[0], imageOptions(args), (vol) => {
    const jsonOut: LsJsonEntry[] = [];
    // A symlink named on the command line is followed, except by -l (as ls does).
    const top = entryOf(vol, start, start);
    const followTop = top.st.isSymbolicLink() && !long && vol.statSync(start, { throwIfNoEntry: false })?.isDirectory() === true;
    if (!top.st.isDirectory() && !followTop) {
      if (json) jsonOut.push(jsonEntry({ ...top, name: baseName(start) })); // name as in a listing; path as given
      else if (long) writeLong(out, [top], false);
      else out.line(start);
      if (json) out.line(toJson(jsonOut));
      return;
    }
    const listDir = (dir: Buffer, first: boolean): void => {
      const kids = children(vol, dir, all);
      if (json) {
        jsonOut.push(...kids.map(jsonEntry));
      } else {
        if (recursive) {
          if (!first) out.write("\n");
          out.line(dir, ":");
        }
        const shown = all ? [dotEntry(vol, dir, "."), dotEntry(vol, dir, ".."), ...kids] : kids;
        if (long) writeLong(out, shown, true);
        else for (const k of shown) out.line(k.name);
      }
      if (recursive) for (const k of kids) if (k.st.isDirectory()) listDir(k.path, false);
    };
    listDir(start, true);
    if (json) out.line(toJson(jsonOut));
  });
  return EXIT_OK;
}

function dotEntry(vol: Volume, dir: Buffer, name: "." | ".."): Entry {
  const p = name === "." ? dir : joinPath(dir, Buffer.from(".."));
  return { name: Buffer.from(name), path: p, st: vol.statSync(p, { bigint: true }) };
}

/** The last component of a path ("/" for the root), trailing slashes ignored. */
function baseName(p: Buffer): Buffer {
  let end = p.length;
  while (end > 1 && p[end - 1] === 0x2f) end--;
  const slash = p.lastIndexOf(0x2f, end - 1);
  const b = p.subarray(slash + 1, end);
  return b.length ? b : p.subarray(0, 1);
}
