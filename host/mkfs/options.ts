// mkfs options: the caller's choices checked and completed with the defaults
// mke2fs takes from this machine's /etc/mke2fs.conf for ext4 (its fs_types
// "ext4" plus the size type floppy / small / default / big / huge), in the
// order mke2fs's PRS() applies them. Everything that needs the group layout is
// left to layout.ts.

import { Ext4Error } from "../errors.js";
import { COMPAT, INCOMPAT, RO_COMPAT } from "../format/features.js";

export interface MkfsOptions {
  /** -t: ext2, ext3 or ext4 (the default): which of mke2fs.conf's feature sets to start from. */
  fsType?: "ext2" | "ext3" | "ext4";
  /** Filesystem size: bytes, or a string with a K/M/G/T suffix ("256M"). Default: the device's or file's size. */
  size?: number | string;
  /** -b: 1024, 2048, 4096 ... 65536. Default 4096, 1024 below 512 MiB. */
  blockSize?: number;
  /** -O: "^has_journal,inline_data" or a list of such names; applied over the ext4 defaults. */
  features?: string | string[];
  /** -N: at least this many inodes. */
  inodes?: number;
  /** -i: bytes per inode. */
  inodeRatio?: number;
  /** -I: inode size in bytes (128 ... block size, a power of two). Default 256. */
  inodeSize?: number;
  /** -J size=: journal size in MiB. Default by filesystem size (ext2fs_default_journal_size). */
  journalSize?: number;
  /** -L: volume label (at most 16 bytes). */
  label?: string;
  /** -U: a UUID, or "null" / "clear" for all zeros, or "random" (the default). */
  uuid?: string;
  /** -m: percentage of blocks reserved for root (0 ... 50). Default 5. */
  reservedRatio?: number;
  /** -C: bigalloc cluster size in bytes. Default 16 blocks. */
  clusterSize?: number;
  /** -E hash_seed=: the htree hash seed as a UUID. Default random. */
  hashSeed?: string;
  /** -E root_owner=: owner of the root directory, "uid:gid" or numbers. Default 0:0. */
  rootOwner?: string | { uid: number; gid: number };
  /** -E lazy_itable_init: leave inode tables for the kernel to zero (ITABLE_ZEROED clear). Default true, as mke2fs here. */
  lazyItableInit?: boolean;
  /** -E lazy_journal_init: skip zeroing the journal on a device that is not known to be zero. Default false. */
  lazyJournalInit?: boolean;
  /** -E orphan_file_size=: bytes. Default by filesystem size. */
  orphanFileSize?: number | string;
  /** -e: errors behaviour. Default "continue". */
  errors?: "continue" | "remount-ro" | "panic";
  /** Creation time, seconds since the epoch. Default $SOURCE_DATE_EPOCH, else $E2FSPROGS_FAKE_TIME, else now. */
  time?: number;
}

export const einval = (what: string): Ext4Error => new Ext4Error("EINVAL", what, { syscall: "mkfs" });

/** Sizes as mke2fs reads them (parse_num_blocks2): a number with an optional K/M/G/T suffix, in bytes here. */
export function parseSize(v: number | string, what: string, unit = 1): number {
  if (typeof v === "number") {
    if (!Number.isSafeInteger(v) || v <= 0) throw einval(`invalid ${what} ${v}`);
    return v * unit;
  }
  const m = /^(0x[0-9a-f]+|[0-9]+)([kmgts]?)$/i.exec(v.trim());
  if (!m) throw einval(`invalid ${what} '${v}'`);
  const n = Number(m[1]);
  const suffix = m[2].toLowerCase();
  const bytes = suffix === "" ? n * unit : suffix === "s" ? n * 512 : n * 2 ** { k: 10, m: 20, g: 30, t: 40 }[suffix as "k" | "m" | "g" | "t"];
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw einval(`invalid ${what} '${v}'`);
  return bytes;
}

type Kind = "C" | "I" | "R";
/** Feature names mke2fs -O accepts (lib/e2p/feature.c names and aliases), with the bits they set. */
const FEATURES: Record<string, [Kind, number]> = {
  has_journal: ["C", COMPAT.HAS_JOURNAL], ext_attr: ["C", COMPAT.EXT_ATTR], resize_inode: ["C", COMPAT.RESIZE_INODE],
  dir_index: ["C", COMPAT.DIR_INDEX], sparse_super2: ["C", COMPAT.SPARSE_SUPER2], fast_commit: ["C", COMPAT.FAST_COMMIT],
  stable_inodes: ["C", COMPAT.STABLE_INODES], orphan_file: ["C", COMPAT.ORPHAN_FILE],
  filetype: ["I", INCOMPAT.FILETYPE], extent: ["I", INCOMPAT.EXTENTS], extents: ["I", INCOMPAT.EXTENTS],
  journal_dev: ["I", INCOMPAT.JOURNAL_DEV], meta_bg: ["I", INCOMPAT.META_BG], flex_bg: ["I", INCOMPAT.FLEX_BG],
  ea_inode: ["I", INCOMPAT.EA_INODE], mmp: ["I", INCOMPAT.MMP], "64bit": ["I", INCOMPAT.BIT64],
  inline_data: ["I", INCOMPAT.INLINE_DATA], encrypt: ["I", INCOMPAT.ENCRYPT], casefold: ["I", INCOMPAT.CASEFOLD],
  fname_encoding: ["I", INCOMPAT.CASEFOLD], metadata_csum_seed: ["I", INCOMPAT.CSUM_SEED], large_dir: ["I", INCOMPAT.LARGEDIR],
  large_file: ["R", RO_COMPAT.LARGE_FILE], huge_file: ["R", RO_COMPAT.HUGE_FILE], dir_nlink: ["R", RO_COMPAT.DIR_NLINK],
  extra_isize: ["R", RO_COMPAT.EXTRA_ISIZE], sparse_super: ["R", RO_COMPAT.SPARSE_SUPER], uninit_bg: ["R", RO_COMPAT.GDT_CSUM],
  gdt_csum: ["R", RO_COMPAT.GDT_CSUM], bigalloc: ["R", RO_COMPAT.BIGALLOC], quota: ["R", RO_COMPAT.QUOTA],
  metadata_csum: ["R", RO_COMPAT.METADATA_CSUM], project: ["R", RO_COMPAT.PROJECT], verity: ["R", RO_COMPAT.VERITY],
};

/** Features mke2fs knows but this mkfs does not build (their metadata is not written here). */
const NOT_BUILT = new Set(["sparse_super2", "journal_dev", "meta_bg", "mmp", "casefold", "fname_encoding", "quota", "project", "fast_commit"]);

export interface FeatureSet { compat: number; incompat: number; roCompat: number }

const has = (f: FeatureSet, name: string): boolean => {
  const [k, bit] = FEATURES[name];
  return ((k === "C" ? f.compat : k === "I" ? f.incompat : f.roCompat) & bit) !== 0;
};
const set = (f: FeatureSet, name: string, on: boolean): void => {
  const [k, bit] = FEATURES[name];
  const key = k === "C" ? "compat" : k === "I" ? "incompat" : "roCompat";
  f[key] = on ? (f[key] | bit) >>> 0 : (f[key] & ~bit) >>> 0;
};
export { has as hasFeature, set as setFeature };

/** e2p_edit_feature2: comma or space separated names, ^name clears, "none" / "clear" clears all. */
function editFeatures(f: FeatureSet, list: string): void {
  for (const raw of list.split(/[\s,]+/)) {
    if (!raw) continue;
    const off = raw.startsWith("^") || raw.startsWith("-");
    const name = (off || raw.startsWith("+") ? raw.slice(1) : raw).toLowerCase();
    if (name === "none" || name === "clear") { f.compat = f.incompat = f.roCompat = 0; continue; }
    if (!(name in FEATURES)) throw einval(`unknown filesystem feature '${name}' (-O)`);
    if (!off && NOT_BUILT.has(name)) throw new Ext4Error("EOPNOTSUPP", `feature '${name}' is not supported by this mkfs (-O)`, { syscall: "mkfs" });
    set(f, name, !off);
  }
}

/** Everything layout.ts needs, in mke2fs's units. */
export interface MkfsParams {
  blockSize: number;
  logBlockSize: number; // log2(blockSize / 1024)
  clusterSize: number;
  /** Requested blocks (before initialize() trims the last group). */
  blocksCount: number;
  inodesCount: number;
  inodeSize: number;
  reservedBlocks: number;
  features: FeatureSet;
  logGroupsPerFlex: number;
  /** Journal blocks when has_journal; 0 otherwise. */
  journalBlocks: number;
  /** -J size= given (checked against the free space once the layout is known). */
  journalExplicit: boolean;
  orphanFileBlocks: number;
  label: Uint8Array;
  uuid: Uint8Array;
  hashSeed: Uint8Array;
  rootUid: number;
  rootGid: number;
  lazyItableInit: boolean;
  lazyJournalInit: boolean;
  errors: number;
  time: number;
}

// /etc/mke2fs.conf as shipped (and on this machine): [defaults] and [fs_types].
const BASE_FEATURES = "sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr";
const EXT4_FEATURES = "has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize";
const SIZE_TYPES: Record<string, { blockSize?: number; inodeRatio: number }> = {
  floppy: { blockSize: 1024, inodeRatio: 8192 },
  small: { blockSize: 1024, inodeRatio: 4096 },
  default: { inodeRatio: 16384 },
  big: { inodeRatio: 32768 },
  huge: { inodeRatio: 65536 },
};

/** parse_fs_type's size type, from the size in bytes. */
function sizeType(bytes: number): string {
  const MiB = 1 << 20;
  if (bytes < 3 * MiB) return "floppy";
  if (bytes < 512 * MiB) return "small";
  if (bytes < 4 * 2 ** 40) return "default";
  if (bytes < 16 * 2 ** 40) return "big";
  return "huge";
}

export function parseUuid(s: string, what: string): Uint8Array {
  const hex = s.replace(/-/g, "");
  if (!/^[0-9a-f]{32}$/i.test(hex) || !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s)) {
    throw einval(`invalid ${what} '${s}'`);
  }
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

function randomUuid(): Uint8Array {
  const u = new Uint8Array(16);
  globalThis.crypto.getRandomValues(u);
  u[6] = (u[6] & 0x0f) | 0x40; // version 4
  u[8] = (u[8] & 0x3f) | 0x80; // RFC 4122 variant
  return u;
}

function uuidOption(v: string | undefined, what: string): Uint8Array {
  if (v === undefined || v.toLowerCase() === "random" || v.toLowerCase() === "time") return randomUuid();
  if (v.toLowerCase() === "null" || v.toLowerCase() === "clear") return new Uint8Array(16);
  return parseUuid(v, what);
}

function positiveInt(v: number | undefined, what: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isSafeInteger(v) || v < min || v > max) throw einval(`invalid ${what} ${v} (${min} to ${max})`);
  return v;
}

const isPow2 = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;
const log2 = (n: number): number => Math.round(Math.log2(n));

/** The default time: SOURCE_DATE_EPOCH (reproducible builds), E2FSPROGS_FAKE_TIME (as mke2fs 1.47.0 reads it), else now. */
function defaultTime(): number {
  const env = typeof process !== "undefined" ? process.env : {};
  for (const k of ["SOURCE_DATE_EPOCH", "E2FSPROGS_FAKE_TIME"]) {
    const v = env[k];
    if (v !== undefined && v !== "") {
      const n = Number(v);
      if (!Number.isSafeInteger(n) || n < 0 || n > 0xffffffff) throw einval(`invalid ${k} '${v}'`);
      return n;
    }
  }
  return Math.floor(Date.now() / 1000);
}

/** default journal size in blocks by filesystem blocks (ext2fs_default_journal_size); -1 too small. */
export function defaultJournalBlocks(blocks: number): number {
  if (blocks < 2048) return -1;
  if (blocks < 32768) return 1024;
  if (blocks < 256 * 1024) return 4096;
  if (blocks < 512 * 1024) return 8192;
  if (blocks < 4096 * 1024) return 16384;
  if (blocks < 8192 * 1024) return 32768;
  if (blocks < 16384 * 1024) return 65536;
  if (blocks < 32768 * 1024) return 131072;
  return 262144;
}

/**
 * mke2fs's PRS(): checks the options and fills in the defaults. `deviceBytes`
 * is the size of the target when no size is given.
 */
export function resolveParams(o: MkfsOptions, deviceBytes: number | undefined): MkfsParams {
  if (o === null || typeof o !== "object") throw einval("options must be an object");
  let blockSize = positiveInt(o.blockSize, "block size (-b)", 1024, 65536);
  if (blockSize !== undefined && !isPow2(blockSize)) throw einval(`invalid block size (-b) ${blockSize}`);

  let bytes: number;
  if (o.size !== undefined) bytes = parseSize(o.size, "size");
  else if (deviceBytes !== undefined && deviceBytes > 0) bytes = deviceBytes - (deviceBytes % 4096); // rounded to the page size, as mke2fs
  else throw einval("no size given and the image is empty");

  const type = sizeType(bytes);
  const profile = SIZE_TYPES[type];

  const features: FeatureSet = { compat: 0, incompat: 0, roCompat: 0 };
  const fsType = o.fsType ?? "ext4";
  if (!["ext2", "ext3", "ext4"].includes(fsType)) throw einval(`unknown filesystem type '${fsType}' (-t)`);
  editFeatures(features, BASE_FEATURES);
  if (fsType === "ext3") editFeatures(features, "has_journal");
  if (fsType === "ext4") editFeatures(features, EXT4_FEATURES);
  const userFeatures = o.features === undefined ? "" : Array.isArray(o.features) ? o.features.join(",") : o.features;
  if (typeof userFeatures !== "string") throw einval("features (-O) must be a string or a list of strings");
  editFeatures(features, userFeatures);

  blockSize ??= profile.blockSize ?? 4096;
  const logBlockSize = log2(blockSize / 1024);
  let blocksCount = Math.floor(bytes / blockSize);

  if (blocksCount > 0xffffffff) {
    if (has(features, "64bit")) set(features, "resize_inode", false);
    else throw einval(`size of ${blocksCount} blocks too big to be expressed in 32 bits using a block size of ${blockSize} (enable 64bit)`);
  }
  if (blocksCount > 2 ** (log2(blockSize) + 3 + 32) - 1) throw einval(`size too big to create a filesystem with ${blockSize}-byte blocks`);
  if (has(features, "64bit") && !has(features, "extent")) throw einval("extents must be enabled for a 64-bit filesystem (-O extent)");

  let clusterSize = blockSize;
  if (has(features, "bigalloc")) {
    if (!has(features, "extent")) throw einval("bigalloc needs the extent feature (-O)");
    clusterSize = positiveInt(o.clusterSize, "cluster size (-C)", 2048, 2 ** 29) ?? blockSize * 16;
    if (!isPow2(clusterSize)) throw einval(`invalid cluster size (-C) ${clusterSize}`);
    if (clusterSize < blockSize) throw einval("the cluster size (-C) may not be smaller than the block size");
  } else if (o.clusterSize !== undefined) {
    throw einval("a cluster size (-C) needs the bigalloc feature");
  }

  let inodeRatio = positiveInt(o.inodeRatio, "inode ratio (-i)", 1024, 65536 * 1024);
  if (inodeRatio === undefined) inodeRatio = Math.max(profile.inodeRatio, blockSize, clusterSize);

  // metadata_csum and uninit_bg are exclusive: metadata_csum wins (mke2fs).
  if (has(features, "metadata_csum") && has(features, "gdt_csum")) set(features, "gdt_csum", false);
  if (has(features, "metadata_csum_seed") && !has(features, "metadata_csum")) {
    throw einval("the metadata_csum_seed feature needs metadata_csum (-O)");
  }
  if (has(features, "resize_inode") && !has(features, "sparse_super")) throw einval("resize_inode needs sparse_super (-O)");
  if (has(features, "orphan_file") && !has(features, "has_journal")) throw einval("the orphan_file feature needs a journal (-O)");

  const logGroupsPerFlex = has(features, "flex_bg") ? 4 : 0;

  const inodeSize = positiveInt(o.inodeSize, "inode size (-I)", 128, blockSize) ?? 256;
  if (!isPow2(inodeSize)) throw einval(`invalid inode size (-I) ${inodeSize}`);
  if (has(features, "inline_data") && inodeSize === 128) throw einval("128-byte inodes are too small for inline_data (-I)");

  let inodesCount = positiveInt(o.inodes, "inode count (-N)", 1, 0xffffffff);
  if (inodesCount === undefined) {
    const n = Math.floor((blocksCount * blockSize) / inodeRatio);
    if (n > 0xffffffff) {
      if (has(features, "64bit")) inodesCount = 0xffffffff;
      else throw einval(`too many inodes (${n}), raise the inode ratio (-i)`);
    } else inodesCount = n;
  }
  if (inodesCount * inodeSize >= blocksCount * blockSize) {
    throw einval(`inode_size (${inodeSize}) * inodes_count (${inodesCount}) too big for a filesystem with ${blocksCount} blocks (-i, -N)`);
  }

  const reservedRatio = o.reservedRatio ?? 5;
  if (typeof reservedRatio !== "number" || !(reservedRatio >= 0 && reservedRatio <= 50)) throw einval(`invalid reserved blocks percent (-m) ${reservedRatio}`);
  const reservedBlocks = Math.floor((reservedRatio * blocksCount) / 100);

  let journalBlocks = 0;
  const journalExplicit = o.journalSize !== undefined;
  if (journalExplicit) {
    const mib = positiveInt(o.journalSize, "journal size (-J size=)", 1, 10240000);
    journalBlocks = Math.floor((mib! * 1024) / (blockSize / 1024));
    if (journalBlocks < 1024 || journalBlocks > 10240000) {
      throw einval(`the journal size (-J size=) is ${journalBlocks} blocks; it must be between 1024 and 10240000 blocks`);
    }
    set(features, "has_journal", true);
  }

  let label = new Uint8Array(0);
  if (o.label !== undefined) {
    if (typeof o.label !== "string") throw einval("label (-L) must be a string");
    label = new TextEncoder().encode(o.label);
    if (label.length > 16) throw einval(`label (-L) '${o.label}' is longer than 16 bytes`);
  }

  let rootUid = 0, rootGid = 0;
  if (o.rootOwner !== undefined) {
    if (typeof o.rootOwner === "string") {
      const m = /^(\d+):(\d+)$/.exec(o.rootOwner);
      if (!m) throw einval(`invalid root_owner '${o.rootOwner}' (-E root_owner=uid:gid)`);
      rootUid = Number(m[1]); rootGid = Number(m[2]);
    } else { rootUid = o.rootOwner.uid; rootGid = o.rootOwner.gid; }
    if (![rootUid, rootGid].every((v) => Number.isSafeInteger(v) && v >= 0 && v <= 0xffffffff)) throw einval("invalid root_owner (-E root_owner=)");
  }

  const errorsMap = { continue: 1, "remount-ro": 2, panic: 3 } as const;
  const errors = o.errors === undefined ? 1 : errorsMap[o.errors];
  if (errors === undefined) throw einval(`bad error behavior (-e) '${o.errors}'`);

  const time = o.time ?? defaultTime();
  if (!Number.isSafeInteger(time) || time < 0 || time > 0xffffffff) throw einval(`invalid time ${time}`);

  let orphanFileBlocks = 0;
  if (o.orphanFileSize !== undefined) {
    orphanFileBlocks = Math.floor(parseSize(o.orphanFileSize, "orphan file size (-E orphan_file_size=)") / blockSize);
    if (orphanFileBlocks === 0) throw einval(`invalid orphan file size (-E orphan_file_size=) ${o.orphanFileSize}`);
  }

  if (blocksCount === 0) throw einval(`size ${bytes} is too small for a filesystem`);
  return {
    blockSize, logBlockSize, clusterSize, blocksCount, inodesCount, inodeSize, reservedBlocks,
    features, logGroupsPerFlex, journalBlocks, journalExplicit, orphanFileBlocks, label,
    uuid: uuidOption(o.uuid, "UUID (-U)"),
    hashSeed: o.hashSeed === undefined ? randomUuid() : parseUuid(o.hashSeed, "hash seed (-E hash_seed=)"),
    rootUid, rootGid,
    lazyItableInit: o.lazyItableInit ?? true,
    lazyJournalInit: o.lazyJournalInit ?? false,
    errors, time,
  };
}
