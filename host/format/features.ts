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

function names(table: Record<string, number>, bits: number): string[] {
  const out: string[] = [];
  for (const [name, bit] of Object.entries(table)) if (bits & bit) out.push(name.toLowerCase());
  let rest = bits;
  for (const bit of Object.values(table)) rest &= ~bit;
  for (let i = 0; i < 32; i++) if (rest & (1 << i)) out.push(`0x${((1 << i) >>> 0).toString(16)}`);
  return out;
}

const PRETTY: Record<string, string> = {
  has_journal: "has_journal", ext_attr: "ext_attr", resize_inode: "resize_inode", dir_index: "dir_index",
  bit64: "64bit", csum_seed: "metadata_csum_seed", gdt_csum: "uninit_bg", extents: "extent",
};

/** Feature names as dumpe2fs prints them. */
export function featureNames(compat: number, incompat: number, roCompat: number): string[] {
  return [...names(COMPAT, compat), ...names(INCOMPAT, incompat), ...names(RO_COMPAT, roCompat)].map((n) => PRETTY[n] ?? n);
}
