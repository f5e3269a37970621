// ext4 feature bits and the sets this engine understands.

export const COMPAT = {
  DIR_PREALLOC: 0x1, IMAGIC_INODES: 0x2, HAS_JOURNAL: 0x4, EXT_ATTR: 0x8, RESIZE_INODE: 0x10,
  DIR_INDEX: 0x20, LAZY_BG: 0x40, EXCLUDE_BITMAP: 0x100, SPARSE_SUPER2: 0x200, FAST_COMMIT: 0x400,
  STABLE_INODES: 0x800, ORPHAN_FILE: 0x1000,
} as const;

export const RO_COMPAT = {
  SPARSE_SUPER: 0x1, LARGE_FILE: 0x2, BTREE_DIR: 0x4, HUGE_FILE: 0x8, GDT_CSUM: 0x10,
  DIR_NLINK: 0x20, EXTRA_ISIZE: 0x40, HAS_SNAPSHOT: 0x80, QUOTA: 0x100, BIGALLOC: 0x200,
  METADATA_CSUM: 0x400, REPLICA: 0x800, READONLY: 0x1000, PROJECT: 0x2000, SHARED_BLOCKS: 0x4000,
  VERITY: 0x8000, ORPHAN_PRESENT: 0x10000,
} as const;

export const INCOMPAT = {
  COMPRESSION: 0x1, FILETYPE: 0x2, RECOVER: 0x4, JOURNAL_DEV: 0x8, META_BG: 0x10, EXTENTS: 0x40,
  BIT64: 0x80, MMP: 0x100, FLEX_BG: 0x200, EA_INODE: 0x400, DIRDATA: 0x1000, CSUM_SEED: 0x2000,
  LARGEDIR: 0x4000, INLINE_DATA: 0x8000, ENCRYPT: 0x10000, CASEFOLD: 0x20000,
} as const;

/** INCOMPAT bits we can read. Anything else refuses the mount. */
export const INCOMPAT_READ_SUPPORTED =
  INCOMPAT.FILETYPE | INCOMPAT.RECOVER | INCOMPAT.META_BG | INCOMPAT.EXTENTS | INCOMPAT.BIT64 |
  INCOMPAT.MMP | INCOMPAT.FLEX_BG | INCOMPAT.EA_INODE | INCOMPAT.CSUM_SEED | INCOMPAT.LARGEDIR |
  INCOMPAT.INLINE_DATA | INCOMPAT.ENCRYPT | INCOMPAT.CASEFOLD;

/** RO_COMPAT bits we know. Anything else allows a read-only mount only. */
export const RO_COMPAT_KNOWN =
  RO_COMPAT.SPARSE_SUPER | RO_COMPAT.LARGE_FILE | RO_COMPAT.BTREE_DIR | RO_COMPAT.HUGE_FILE |
  RO_COMPAT.GDT_CSUM | RO_COMPAT.DIR_NLINK | RO_COMPAT.EXTRA_ISIZE | RO_COMPAT.QUOTA |
  RO_COMPAT.BIGALLOC | RO_COMPAT.METADATA_CSUM | RO_COMPAT.PROJECT | RO_COMPAT.VERITY |
  RO_COMPAT.ORPHAN_PRESENT | RO_COMPAT.READONLY;

// Names as e2fsprogs 1.47 (lib/e2p/feature.c) prints them; bits it has no name for
// print as FEATURE_<C|I|R><bit>.
const E2P_NAMES: Record<"C" | "I" | "R", Record<number, string>> = {
  C: {
    0x1: "dir_prealloc", 0x2: "imagic_inodes", 0x4: "has_journal", 0x8: "ext_attr", 0x10: "resize_inode",
    0x20: "dir_index", 0x40: "lazy_bg", 0x100: "snapshot_bitmap", 0x200: "sparse_super2", 0x400: "fast_commit",
    0x800: "stable_inodes", 0x1000: "orphan_file",
  },
  I: {
    0x1: "compression", 0x2: "filetype", 0x4: "needs_recovery", 0x8: "journal_dev", 0x10: "meta_bg", 0x40: "extent",
    0x80: "64bit", 0x100: "mmp", 0x200: "flex_bg", 0x400: "ea_inode", 0x1000: "dirdata", 0x2000: "metadata_csum_seed",
    0x4000: "large_dir", 0x8000: "inline_data", 0x10000: "encrypt", 0x20000: "casefold",
  },
  R: {
    0x1: "sparse_super", 0x2: "large_file", 0x8: "huge_file", 0x10: "uninit_bg", 0x20: "dir_nlink", 0x40: "extra_isize",
    0x100: "quota", 0x200: "bigalloc", 0x400: "metadata_csum", 0x800: "replica", 0x2000: "project",
    0x4000: "shared_blocks", 0x8000: "verity", 0x10000: "orphan_present",
  },
};

function names(kind: "C" | "I" | "R", bits: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < 32; i++) {
    const bit = (1 << i) >>> 0;
    if ((bits >>> 0) & bit) out.push(E2P_NAMES[kind][bit] ?? `FEATURE_${kind}${i}`);
  }
  return out;
}

/** Feature names as dumpe2fs prints them, in its order (compat, incompat, ro_compat). */
export function featureNames(compat: number, incompat: number, roCompat: number): string[] {
  return [...names("C", compat), ...names("I", incompat), ...names("R", roCompat)];
}
