// Names in encrypted (fscrypt) directories, shown without the key exactly as
// the kernel shows them ("no-key names"): unpadded base64url of the entry's
// htree hash pair (zeros where readdir does not hash) followed by the
// ciphertext, or by its first 149 bytes and the SHA-256 of the rest when it
// is longer. Lookups match by encoding each on-disk name the same way.

import { createHash } from "node:crypto";
import { Buffer } from "node:buffer";
import { dirHash, DX_HASH_TEA } from "../format/dirhash.js";
import { COMPAT } from "../format/features.js";
import { Inode, INODE_FLAGS } from "../format/inode.js";
import { SB_FLAGS } from "../format/superblock.js";
import { MapKind } from "../fs/mapping.js";
import type { Ext4 } from "../fs/super.js";

const NOKEY_BYTES = 149;

/** The hash version readdir uses for this directory, or -1 when it does not hash (linear readdir). */
export function readdirHashVersion(fs: Ext4, dir: Inode): number {
  if (!(fs.sb.featureCompat & COMPAT.DIR_INDEX)) return -1;
  if (dir.flags & INODE_FLAGS.CASEFOLD) return -1; // siphash with a key-derived seed: not reproducible without the key
  let version: number;
  if (dir.flags & INODE_FLAGS.INDEX) {
    const m = fs.mapBlocks(dir, 0, 1);
    if (m.kind !== MapKind.Mapped) return -1;
    version = fs.bcache.read(m.pblk, "directory block")[24 + 4];
  } else if (dir.size === fs.sb.blockSize || dir.flags & INODE_FLAGS.INLINE_DATA) {
    version = fs.sb.defHashVersion;
  } else {
    return -1;
  }
  if (version <= DX_HASH_TEA && fs.sb.flags & SB_FLAGS.UNSIGNED_HASH) version += 3;
  return version;
}

export function nokeyName(fs: Ext4, hashVersion: number, cipher: Uint8Array): Uint8Array {
  let major = 0;
  let minor = 0;
  if (hashVersion >= 0) {
    const seed = fs.sb.hashSeed.some((w) => w !== 0) ? fs.sb.hashSeed : null;
    ({ major, minor } = dirHash(cipher, hashVersion, seed));
  }
  const long = cipher.length > NOKEY_BYTES;
  const body = Buffer.alloc(8 + (long ? NOKEY_BYTES + 32 : cipher.length));
  body.writeUInt32LE(major >>> 0, 0);
  body.writeUInt32LE(minor >>> 0, 4);
  body.set(long ? cipher.subarray(0, NOKEY_BYTES) : cipher, 8);
  if (long) body.set(createHash("sha256").update(cipher.subarray(NOKEY_BYTES)).digest(), 8 + NOKEY_BYTES);
  return new Uint8Array(Buffer.from(body.toString("base64url"), "latin1"));
}

