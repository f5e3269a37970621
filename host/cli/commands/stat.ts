// `ext4wasm stat IMAGE PATH`: one inode in detail, like stat(1), plus what
// only the image knows: inode flags, crtime, the buffered I/O path, xattrs.

import { INODE_FLAGS } from "../../format/inode.js";
import type { Volume } from "../../vfs/volume.js";
import { HELP_OPTION, IMAGE_OPTIONS, JSON_OPTION, type CommandSpec, type ParsedArgs } from "../args.js";
import { EXIT_OK } from "../errors.js";
import { fileType, fileTypeText, isoNs, majorMinor, modeString, octalMode, statTime } from "../format.js";
import { imageOptions, withImage } from "../image.js";
import { Output, toJson } from "../output.js";

export const spec: CommandSpec = {
  name: "stat",
  usage: "IMAGE PATH",
  summary: "Show an inode like stat(1): times in UTC with nanoseconds, inode flags, I/O path, xattr names.",
  options: [
    { long: "dereference", short: "L", help: "follow a symlink at PATH (default: describe the link itself)" },
    ...IMAGE_OPTIONS, JSON_OPTION, HELP_OPTION,
  ],
  minArgs: 2,
  maxArgs: 2,
  notes: "example:\n  ext4wasm stat disk.img /bin/sh\n  ext4wasm stat --json -o buffered_iomap disk.img /var/lib/db",
};

/** Inode flag names (lsattr's long names where it has one). */
const FLAG_NAMES: [number, string][] = [
  [INODE_FLAGS.SECRM, "secure_deletion"], [INODE_FLAGS.UNRM, "undelete"], [INODE_FLAGS.COMPR, "compressed"],
  [INODE_FLAGS.SYNC, "sync"], [INODE_FLAGS.IMMUTABLE, "immutable"], [INODE_FLAGS.APPEND, "append_only"],
  [INODE_FLAGS.NODUMP, "no_dump"], [INODE_FLAGS.NOATIME, "no_atime"], [INODE_FLAGS.ENCRYPT, "encrypted"],
  [INODE_FLAGS.INDEX, "htree"], [INODE_FLAGS.IMAGIC, "imagic"], [INODE_FLAGS.JOURNAL_DATA, "journal_data"],
  [INODE_FLAGS.NOTAIL, "no_tailmerging"], [INODE_FLAGS.DIRSYNC, "dirsync"], [INODE_FLAGS.TOPDIR, "top_of_dir_hierarchy"],
  [INODE_FLAGS.HUGE_FILE, "huge_file"], [INODE_FLAGS.EXTENTS, "extents"], [INODE_FLAGS.VERITY, "verity"],
  [INODE_FLAGS.EA_INODE, "ea_inode"], [INODE_FLAGS.INLINE_DATA, "inline_data"], [INODE_FLAGS.PROJINHERIT, "project_inherit"],
  [INODE_FLAGS.CASEFOLD, "casefold"],
];

export function flagNames(flags: number): string[] {
  const names = FLAG_NAMES.filter(([bit]) => flags & bit).map(([, n]) => n);
  let rest = flags >>> 0;
  for (const [bit] of FLAG_NAMES) rest &= ~bit;
  for (let i = 0; i < 32; i++) if (rest & (1 << i)) names.push(`0x${((1 << i) >>> 0).toString(16)}`);
  return names;
}

export function statReport(vol: Volume, path: string, follow: boolean) {
  const st = follow ? vol.statSync(path, { bigint: true }) : vol.lstatSync(path, { bigint: true });
  const inode = vol.inodeOf(path, follow);
  const mode = Number(st.mode);
  const isDev = st.isCharacterDevice() || st.isBlockDevice();
  const ns = (t: { sec: number; nsec: number }) => BigInt(t.sec) * 1_000_000_000n + BigInt(t.nsec);
  const crtimeNs = inode.crtime ? ns(inode.crtime) : null;
  return {
    path,
    type: fileType(mode),
    target: st.isSymbolicLink() ? (vol.readlinkSync(path, { encoding: "buffer" }) as Buffer).toString("utf8") : undefined,
    size: Number(st.size),
    blocks: Number(st.blocks),
    blockSize: Number(st.blksize),
    ino: Number(st.ino),
    nlink: Number(st.nlink),
    mode,
    modeOctal: octalMode(mode),
    modeString: modeString(mode),
    uid: Number(st.uid),
    gid: Number(st.gid),
    rdev: isDev ? majorMinor(Number(st.rdev)) : undefined,
    atimeNs: st.atimeNs.toString(),
    mtimeNs: st.mtimeNs.toString(),
    ctimeNs: st.ctimeNs.toString(),
    crtimeNs: crtimeNs === null ? null : crtimeNs.toString(),
    atime: isoNs(st.atimeNs),
    mtime: isoNs(st.mtimeNs),
    ctime: isoNs(st.ctimeNs),
    crtime: crtimeNs === null ? null : isoNs(crtimeNs),
    flags: flagNames(inode.flags),
    flagsHex: `0x${(inode.flags >>> 0).toString(16)}`,
    generation: inode.generation,
    xattrBlock: inode.fileAcl || null,
    ioPath: st.isFile() ? vol.ioPathOf(path) : null,
    xattrs: vol.listxattr(path, { noFollow: !follow }),
  };
}

export function run(args: ParsedArgs, out: Output): number {
  const path = args.positionals[1];
  withImage(args.positionals[0], imageOptions(args), (vol) => {
    const r = statReport(vol, path, args.flags.has("dereference"));
    if (args.flags.has("json")) {
      out.line(toJson(r));
      return;
    }
    out.write(`  File: `);
    out.write(Buffer.from(path));
    if (r.target !== undefined) out.write(` -> ${r.target}`);
    out.write("\n");
    out.line(`  Size: ${String(r.size).padEnd(15)} Blocks: ${String(r.blocks).padEnd(10)} IO Block: ${String(r.blockSize).padEnd(6)} ${fileTypeText(r.mode)}`);
    out.line(` Inode: ${String(r.ino).padEnd(15)} Links: ${r.nlink}${r.rdev ? `     Device type: ${r.rdev.major},${r.rdev.minor}` : ""}`);
    out.line(`Access: (${r.modeOctal}/${r.modeString})  Uid: (${String(r.uid).padStart(5)})   Gid: (${String(r.gid).padStart(5)})`);
    out.line(`Access: ${statTime(BigInt(r.atimeNs))}`);
    out.line(`Modify: ${statTime(BigInt(r.mtimeNs))}`);
    out.line(`Change: ${statTime(BigInt(r.ctimeNs))}`);
    out.line(` Birth: ${r.crtimeNs === null ? "-" : statTime(BigInt(r.crtimeNs))}`);
    out.line(` Flags: ${r.flags.length ? r.flags.join(", ") : "(none)"} (${r.flagsHex})`);
    if (r.ioPath) out.line(`    IO: ${r.ioPath === "iomap" ? "iomap (buffered_iomap read path)" : "bh (buffer_head read path)"}`);
    out.line(`Xattrs: ${r.xattrs.length ? r.xattrs.join(", ") : "(none)"}`);
  });
  return EXIT_OK;
}
