// `ext4wasm info IMAGE`: the superblock summary, in the spirit of dumpe2fs -h,
// plus what this mount did (journal recovery, I/O path).

import { u32, u8, uuidString } from "../../format/bytes.js";
import { featureNames, COMPAT, RO_COMPAT, INCOMPAT } from "../../format/features.js";
import { groupCount, SB_FLAGS, type Superblock } from "../../format/superblock.js";
import type { Volume } from "../../vfs/volume.js";
import { HELP_OPTION, IMAGE_OPTIONS, JSON_OPTION, type CommandSpec, type ParsedArgs } from "../args.js";
import { EXIT_OK } from "../errors.js";
import { isoSeconds } from "../format.js";
import { imageOptions, withImage } from "../image.js";
import { Output, toJson } from "../output.js";

export const spec: CommandSpec = {
  name: "info",
  usage: "IMAGE",
  summary: "Print a summary of the filesystem (like dumpe2fs -h) and what mounting it involved.",
  options: [...IMAGE_OPTIONS, JSON_OPTION, HELP_OPTION],
  minArgs: 1,
  maxArgs: 1,
  notes: "example:\n  ext4wasm info disk.img\n  ext4wasm info --json -o noload,ro disk.img",
};

const HASH_NAMES = ["legacy", "half_md4", "tea", "legacy_unsigned", "half_md4_unsigned", "tea_unsigned", "siphash"];
const OS_NAMES = ["Linux", "Hurd", "Masix", "FreeBSD", "Lites"];
const ERRORS_NAMES: Record<number, string> = { 1: "Continue", 2: "Remount read-only", 3: "Panic" };
const DEFAULT_MOUNT_OPTS: [number, string][] = [
  [0x0001, "debug"], [0x0002, "bsdgroups"], [0x0004, "user_xattr"], [0x0008, "acl"], [0x0010, "uid16"],
  [0x0100, "nobarrier"], [0x0200, "block_validity"], [0x0400, "discard"], [0x0800, "nodelalloc"],
];
const JOURNAL_MODES: Record<number, string> = { 0x20: "journal_data", 0x40: "journal_data_ordered", 0x60: "journal_data_writeback" };

/** A 32-bit superblock time widened by its high byte (s_*_hi, for dates after 2106). */
const sbTime = (sb: Superblock, lo: number, hiOff: number) => u32(sb.raw, lo) + u8(sb.raw, hiOff) * 2 ** 32;

function stateText(state: number): string {
  let s = state & 0x1 ? "clean" : "not clean";
  if (state & 0x2) s += " with errors";
  if (state & 0x4) s += ", orphans being recovered";
  return s;
}

function recoveryText(vol: Volume): string {
  const r = vol.fs.recovery;
  if (!r || !r.needed) return "not needed";
  const what = `${r.transactions} transaction${r.transactions === 1 ? "" : "s"}, ${r.blocks} block${r.blocks === 1 ? "" : "s"}`;
  switch (r.mode) {
    case "overlay": return `needed: replayed ${what} into an in-memory overlay (image untouched)`;
    case "disk": return `needed: replayed ${what} into the image`;
    case "skipped": return "needed: skipped (noload/norecovery), reading the unrecovered image";
    default: return "needed: nothing to replay";
  }
}

/** What the image itself says is wrong with it, beyond the superblock's own state. */
function deviceWarnings(vol: Volume): string[] {
  const sb = vol.fs.sb;
  const have = vol.fs.device.size;
  const want = sb.blocksCount * sb.blockSize;
  if (have >= want) return [];
  return [`device is ${have} bytes, shorter than the filesystem (${sb.blocksCount} blocks of ${sb.blockSize}, ${want} bytes): ` +
    `the image is truncated; blocks from ${Math.floor(have / sb.blockSize)} on cannot be read`];
}

export function infoReport(vol: Volume) {
  const sb = vol.fs.sb;
  const flex = (sb.featureIncompat & INCOMPAT.FLEX_BG) !== 0;
  const journalIno = sb.featureCompat & COMPAT.HAS_JOURNAL ? sb.journalInum : 0;
  const journalSize = journalIno ? vol.fs.inode(journalIno).size : null;
  const defaults = DEFAULT_MOUNT_OPTS.filter(([bit]) => sb.defaultMountOpts & bit).map(([, n]) => n);
  const jmode = JOURNAL_MODES[sb.defaultMountOpts & 0x60];
  if (jmode) defaults.push(jmode);
  const csum = (sb.featureRoCompat & RO_COMPAT.METADATA_CSUM) !== 0;
  const flags: string[] = [];
  if (sb.flags & SB_FLAGS.SIGNED_HASH) flags.push("signed_directory_hash");
  if (sb.flags & SB_FLAGS.UNSIGNED_HASH) flags.push("unsigned_directory_hash");
  if (sb.flags & SB_FLAGS.TEST_FS) flags.push("test_filesystem");
  const r = vol.fs.recovery;
  return {
    volumeName: sb.volumeName,
    lastMountedOn: sb.lastMounted,
    uuid: sb.uuidText,
    magic: "0xEF53",
    revision: sb.revLevel,
    features: featureNames(sb.featureCompat, sb.featureIncompat, sb.featureRoCompat),
    flags,
    defaultMountOptions: defaults,
    mountOptionsInSuperblock: sb.mountOpts,
    state: stateText(sb.state),
    errorsBehavior: ERRORS_NAMES[sb.errors] ?? `unknown (${sb.errors})`,
    osType: OS_NAMES[sb.creatorOs] ?? `unknown (${sb.creatorOs})`,
    inodeCount: sb.inodesCount,
    blockCount: sb.blocksCount,
    reservedBlockCount: sb.reservedBlocksCount,
    freeBlocks: sb.freeBlocksCount,
    freeInodes: sb.freeInodesCount,
    firstBlock: sb.firstDataBlock,
    blockSize: sb.blockSize,
    clusterSize: sb.clusterSize,
    groupDescriptorSize: sb.descSize,
    reservedGdtBlocks: sb.reservedGdtBlocks,
    blocksPerGroup: sb.blocksPerGroup,
    inodesPerGroup: sb.inodesPerGroup,
    groups: groupCount(sb),
    flexGroupSize: flex ? 2 ** sb.logGroupsPerFlex : null,
    created: isoSeconds(sbTime(sb, 0x108, 0x276)),
    lastMountTime: isoSeconds(sbTime(sb, 0x2c, 0x275)),
    lastWriteTime: isoSeconds(sbTime(sb, 0x30, 0x274)),
    lastChecked: isoSeconds(sbTime(sb, 0x40, 0x277)),
    mountCount: sb.mountCount,
    maxMountCount: (sb.maxMountCount << 16) >> 16,
    lifetimeWritesKiB: sb.kbytesWritten,
    firstInode: sb.firstIno,
    inodeSize: sb.inodeSize,
    requiredExtraIsize: sb.minExtraIsize,
    desiredExtraIsize: sb.wantExtraIsize,
    hashVersion: HASH_NAMES[sb.defHashVersion] ?? `unknown (${sb.defHashVersion})`,
    hashSeed: uuidString(sb.raw, 0xec),
    journal: journalIno || sb.featureCompat & COMPAT.HAS_JOURNAL
      ? {
        inode: journalIno || null,
        device: journalIno ? null : sb.journalDev,
        size: journalSize,
        recoveryNeeded: r?.needed ?? false,
        recoverySummary: recoveryText(vol),
        recovery: r ? { mode: r.mode, transactions: r.transactions, blocks: r.blocks, warnings: r.warnings } : null,
      }
      : null,
    checksumType: csum ? (sb.checksumType === 1 ? "crc32c" : `unknown (${sb.checksumType})`) : null,
    checksumSeed: csum ? `0x${(vol.fs.csum.seed >>> 0).toString(16).padStart(8, "0")}` : null,
    checksum: csum ? `0x${(sb.checksum >>> 0).toString(16).padStart(8, "0")}` : null,
    deviceBytes: vol.fs.device.size,
    warnings: [...vol.fs.warnings, ...deviceWarnings(vol)],
    mount: {
      readOnly: vol.fs.readOnly,
      bufferedIomap: vol.fs.config.options.bufferedIomap,
      noRecovery: vol.fs.config.options.noRecovery,
    },
  };
}

function show(v: unknown): string {
  if (v === null || v === undefined || v === "") return "<none>";
  if (Array.isArray(v)) return v.length ? v.join(" ") : "(none)";
  return String(v);
}

export function renderInfo(rep: ReturnType<typeof infoReport>, out: Output): void {
  const rows: [string, unknown][] = [
    ["Filesystem volume name", rep.volumeName],
    ["Last mounted on", rep.lastMountedOn || "<not available>"],
    ["Filesystem UUID", rep.uuid],
    ["Filesystem magic number", rep.magic],
    ["Filesystem revision #", `${rep.revision} (${rep.revision === 0 ? "original" : "dynamic"})`],
    ["Filesystem features", rep.features],
    ["Filesystem flags", rep.flags],
    ["Default mount options", rep.defaultMountOptions],
    ["Mount options", rep.mountOptionsInSuperblock],
    ["Filesystem state", rep.state],
    ["Errors behavior", rep.errorsBehavior],
    ["Filesystem OS type", rep.osType],
    ["Inode count", rep.inodeCount],
    ["Block count", rep.blockCount],
    ["Reserved block count", rep.reservedBlockCount],
    ["Free blocks", rep.freeBlocks],
    ["Free inodes", rep.freeInodes],
    ["First block", rep.firstBlock],
    ["Block size", rep.blockSize],
    ["Cluster size", rep.clusterSize],
    ["Group descriptor size", rep.groupDescriptorSize],
    ["Reserved GDT blocks", rep.reservedGdtBlocks],
    ["Blocks per group", rep.blocksPerGroup],
    ["Inodes per group", rep.inodesPerGroup],
    ["Block groups", rep.groups],
    ["Flex block group size", rep.flexGroupSize ?? "(no flex_bg)"],
    ["Filesystem created", rep.created ?? "n/a"],
    ["Last mount time", rep.lastMountTime ?? "n/a"],
    ["Last write time", rep.lastWriteTime ?? "n/a"],
    ["Last checked", rep.lastChecked ?? "n/a"],
    ["Mount count", rep.mountCount],
    ["Maximum mount count", rep.maxMountCount],
    ["Lifetime writes", `${rep.lifetimeWritesKiB} kB`],
    ["First inode", rep.firstInode],
    ["Inode size", rep.inodeSize],
    ["Required extra isize", rep.requiredExtraIsize],
    ["Desired extra isize", rep.desiredExtraIsize],
    ["Default directory hash", rep.hashVersion],
    ["Directory Hash Seed", rep.hashSeed],
  ];
  if (rep.journal) {
    if (rep.journal.inode) rows.push(["Journal inode", rep.journal.inode]);
    else rows.push(["Journal device", `0x${(rep.journal.device ?? 0).toString(16).padStart(4, "0")}`]);
    if (rep.journal.size !== null) rows.push(["Journal size", `${Math.round(rep.journal.size / 1024)}k`]);
    rows.push(["Journal recovery", rep.journal.recoverySummary]);
  } else {
    rows.push(["Journal", "(no journal)"]);
  }
  if (rep.checksumType) {
    rows.push(["Checksum type", rep.checksumType], ["Checksum seed", rep.checksumSeed], ["Checksum", rep.checksum]);
  }
  rows.push(["Mounted here as", [rep.mount.readOnly ? "ro" : "rw", rep.mount.bufferedIomap ? "buffered_iomap" : "nobuffered_iomap", ...(rep.mount.noRecovery ? ["noload"] : [])].join(",")]);
  for (const [label, value] of rows) out.line(`${(label + ":").padEnd(26)}${show(value)}`);
  for (const w of rep.warnings) out.line(`${"Warning:".padEnd(26)}${w}`);
  for (const w of rep.journal?.recovery?.warnings ?? []) out.line(`${"Journal warning:".padEnd(26)}${w}`);
}

export function run(args: ParsedArgs, out: Output): number {
  withImage(args.positionals[0], imageOptions(args), (vol) => {
    const rep = infoReport(vol);
    if (args.flags.has("json")) out.line(toJson(rep));
    else renderInfo(rep, out);
  });
  return EXIT_OK;
}
