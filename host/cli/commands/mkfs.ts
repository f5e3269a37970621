// `ext4wasm mkfs [options] IMAGE [SIZE]`: mke2fs's options, mke2fs's result.
// A new image file is created sparse at SIZE.

import * as fs from "node:fs";
import { Ext4Error } from "../../errors.js";
import { mkfs, type MkfsOptions, type MkfsResult } from "../../mkfs/mkfs.js";
import { HELP_OPTION, JSON_OPTION, type CommandSpec, type ParsedArgs } from "../args.js";
import { EXIT_OK, UsageError } from "../errors.js";
import { Output, toJson } from "../output.js";

export const spec: CommandSpec = {
  name: "mkfs",
  usage: "IMAGE [SIZE]",
  summary: "Make an ext4 filesystem, as mke2fs -t ext4 makes it (a new IMAGE is created sparse at SIZE).",
  options: [
    { long: "block-size", short: "b", value: "BYTES", help: "block size: 1024, 2048, 4096 (default; 1024 below 512 MiB) ... 65536" },
    { long: "features", short: "O", value: "LIST", help: "features to add or (^name) remove, e.g. ^has_journal,inline_data" },
    { long: "type", short: "t", value: "TYPE", help: "ext2, ext3 or ext4 (default): the feature set to start from" },
    { long: "inodes", short: "N", value: "COUNT", help: "at least this many inodes" },
    { long: "inode-ratio", short: "i", value: "BYTES", help: "bytes per inode (default 16384; 4096 below 512 MiB)" },
    { long: "inode-size", short: "I", value: "BYTES", help: "inode size (default 256)" },
    { long: "journal", short: "J", value: "size=MiB", help: "journal size in MiB (default by filesystem size)" },
    { long: "label", short: "L", value: "LABEL", help: "volume label (up to 16 bytes)" },
    { long: "uuid", short: "U", value: "UUID", help: "filesystem UUID (or null, random)" },
    { long: "reserved", short: "m", value: "PERCENT", help: "blocks reserved for root, in percent (default 5)" },
    { long: "cluster-size", short: "C", value: "BYTES", help: "bigalloc cluster size (default 16 blocks)" },
    { long: "errors", short: "e", value: "BEHAVIOUR", help: "continue, remount-ro or panic" },
    { long: "extended", short: "E", value: "OPTS", help: "hash_seed=UUID, root_owner[=uid:gid], lazy_itable_init[=0|1], lazy_journal_init[=0|1], orphan_file_size=SIZE" },
    { long: "force", short: "F", help: "overwrite an image that already holds an ext2/3/4 filesystem" },
    { long: "quiet", short: "q", help: "print nothing on success" },
    JSON_OPTION, HELP_OPTION,
  ],
  minArgs: 1,
  maxArgs: 2,
  notes: [
    "SIZE: bytes with a K/M/G/T suffix (256M, 4G), 512-byte sectors (2048s), or a plain count of blocks",
    "(of -b's size, else of 1 KiB, as mke2fs counts). Without SIZE, the size of the existing IMAGE.",
    "Times come from SOURCE_DATE_EPOCH when set: with -U and -E hash_seed= the image is reproducible.",
    "",
    "example:",
    "  ext4wasm mkfs disk.img 4G",
    "  ext4wasm mkfs -b 1024 -O ^has_journal -L boot -U 0b7d5e5c-0c0e-4c6f-9a3e-6c1f2d2b8a11 boot.img 64M",
  ].join("\n"),
};

const int = (v: string, what: string): number => {
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(v)) throw new UsageError(`mkfs: bad ${what} '${v}'`, "mkfs");
  return Number(v);
};
const bool01 = (v: string | undefined): boolean => v === undefined || !/^0+$/.test(v);

/** -E as mke2fs parses it: comma-separated, NAME or NAME=VALUE. */
function extendedOptions(text: string, o: MkfsOptions): void {
  for (const token of text.split(",")) {
    if (!token) continue;
    const eq = token.indexOf("=");
    const name = eq < 0 ? token : token.slice(0, eq);
    const arg = eq < 0 ? undefined : token.slice(eq + 1);
    const need = (): string => {
      if (arg === undefined) throw new Ext4Error("EINVAL", `extended option '${name}' needs a value (-E ${name}=...)`, { syscall: "mkfs" });
      return arg;
    };
    switch (name) {
      case "hash_seed": o.hashSeed = need(); break;
      case "root_owner":
        o.rootOwner = arg ?? `${process.getuid?.() ?? 0}:${process.getgid?.() ?? 0}`;
        break;
      case "lazy_itable_init": o.lazyItableInit = bool01(arg); break;
      case "lazy_journal_init": o.lazyJournalInit = bool01(arg); break;
      case "orphan_file_size": o.orphanFileSize = need(); break;
      case "discard": case "nodiscard": break; // an image file has nothing to discard
      default: throw new Ext4Error("EINVAL", `unknown extended option '${name}' (-E)`, { syscall: "mkfs" });
    }
  }
}

function journalOptions(text: string, o: MkfsOptions): void {
  for (const token of text.split(",")) {
    const m = /^size=(\d+)$/.exec(token);
    if (!m) throw new Ext4Error("EINVAL", `unsupported journal option '${token}' (-J size=MiB)`, { syscall: "mkfs" });
    o.journalSize = Number(m[1]);
  }
}

/** The options object for mkfs() from mke2fs-style arguments. */
export function optionsFromArgs(args: ParsedArgs): MkfsOptions {
  const f = args.flags;
  const s = (k: string) => f.get(k) as string | undefined;
  const o: MkfsOptions = {};
  if (s("block-size") !== undefined) o.blockSize = int(s("block-size")!, "block size (-b)");
  if (s("features") !== undefined) o.features = s("features");
  if (s("type") !== undefined) o.fsType = s("type") as MkfsOptions["fsType"];
  if (s("inodes") !== undefined) o.inodes = int(s("inodes")!, "inode count (-N)");
  if (s("inode-ratio") !== undefined) o.inodeRatio = int(s("inode-ratio")!, "inode ratio (-i)");
  if (s("inode-size") !== undefined) o.inodeSize = int(s("inode-size")!, "inode size (-I)");
  if (s("journal") !== undefined) journalOptions(s("journal")!, o);
  if (s("label") !== undefined) o.label = s("label");
  if (s("uuid") !== undefined) o.uuid = s("uuid");
  if (s("reserved") !== undefined) {
    const v = s("reserved")!;
    if (!/^\d+(\.\d+)?$/.test(v)) throw new Ext4Error("EINVAL", `invalid reserved blocks percent (-m) '${v}'`, { syscall: "mkfs" });
    o.reservedRatio = Number(v);
  }
  if (s("cluster-size") !== undefined) o.clusterSize = int(s("cluster-size")!, "cluster size (-C)");
  if (s("errors") !== undefined) o.errors = s("errors") as MkfsOptions["errors"];
  if (s("extended") !== undefined) extendedOptions(s("extended")!, o);
  const size = args.positionals[1];
  if (size !== undefined) o.size = /^\d+$/.test(size) ? Number(size) * (o.blockSize ?? 1024) : size;
  return o;
}

/** An existing ext2/3/4 superblock in the file (mke2fs asks before overwriting one; we want -F). */
function holdsFilesystem(path: string): boolean {
  let fd: number;
  try {
    fd = fs.openSync(path, "r");
  } catch {
    return false;
  }
  try {
    const b = new Uint8Array(2);
    return fs.readSync(fd, b, 0, 2, 1024 + 0x38) === 2 && b[0] === 0x53 && b[1] === 0xef;
  } finally {
    fs.closeSync(fd);
  }
}

function text(r: MkfsResult): string {
  const kb = r.blockSize >= 1024 ? `${r.blockSize / 1024}k` : `${r.blockSize}`;
  const lines = [
    `Creating filesystem with ${r.blocksCount} ${kb} blocks and ${r.inodesCount} inodes`,
    `Filesystem UUID: ${r.uuid}`,
  ];
  if (r.backups.length) lines.push("Superblock backups stored on blocks: ", `\t${r.backups.join(", ")}`);
  lines.push(`Features: ${r.features.join(" ")}`);
  if (r.journalBlocks) lines.push(`Journal: ${r.journalBlocks} blocks`);
  return lines.join("\n") + "\n";
}

export function run(args: ParsedArgs, out: Output): number {
  const image = args.positionals[0];
  const options = optionsFromArgs(args);
  if (!args.flags.has("force") && holdsFilesystem(image)) {
    throw new Ext4Error("EEXIST", "the image already holds an ext2/3/4 filesystem (use -F to overwrite it)", { syscall: "mkfs", path: image });
  }
  const r = mkfs(image, options);
  if (args.flags.has("json")) out.write(toJson(r) + "\n");
  else if (!args.flags.has("quiet")) out.write(text(r));
  return EXIT_OK;
}
