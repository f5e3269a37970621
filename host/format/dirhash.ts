// Directory-index (htree) name hash: maps a file name to the 32-bit major
// hash that orders dx_entry keys, plus the minor hash used to break ties.
// Must agree bit-for-bit with the kernel, or indexed lookups miss entries.

import { Ext4Error } from "../errors.js";

export const DX_HASH_LEGACY = 0, DX_HASH_HALF_MD4 = 1, DX_HASH_TEA = 2,
  DX_HASH_LEGACY_UNSIGNED = 3, DX_HASH_HALF_MD4_UNSIGNED = 4, DX_HASH_TEA_UNSIGNED = 5, DX_HASH_SIPHASH = 6;

// The kernel reserves major 0xfffffffe (EXT4_HTREE_EOF_32BIT << 1) as the
// readdir end-of-directory cookie, so a name hashing there is moved one step
// down. e2fsprogs (1.47) does not do this; the kernel does, and it decides
// where entries live on disk.
const HTREE_EOF_MAJOR = 0xfffffffe;
const HTREE_EOF_REMAPPED = 0xfffffffc;

// MD4 initial chaining values, used whenever the superblock seed is all zero.
const IV0 = 0x67452301, IV1 = 0xefcdab89, IV2 = 0x98badcfe, IV3 = 0x10325476;

const MD4_ROUND2 = 0x5a827999;
const MD4_ROUND3 = 0x6ed9eba1;
const TEA_DELTA = 0x9e3779b9;

// Scratch shared by every call; hashing is synchronous, so reuse is safe.
const state = new Uint32Array(4);
const block = new Uint32Array(8);

/** seed: the superblock's s_hash_seed as 4 little-endian u32 words (all zero = use the default MD4 IV). */
export function dirHash(name: Uint8Array, version: number, seed: Uint32Array | null): { major: number; minor: number } {
  let major: number;
  let minor = 0;
  switch (version) {
    case DX_HASH_LEGACY:
    case DX_HASH_LEGACY_UNSIGNED:
      major = legacyHash(name, version === DX_HASH_LEGACY_UNSIGNED);
      break;
    case DX_HASH_HALF_MD4:
    case DX_HASH_HALF_MD4_UNSIGNED: {
      const unsigned = version === DX_HASH_HALF_MD4_UNSIGNED;
      loadSeed(seed);
      for (let off = 0; off < name.length; off += 32) {
        packChunk(name, off, 8, unsigned);
        halfMd4Transform();
      }
      major = state[1]!;
      minor = state[2]!;
      break;
    }
    case DX_HASH_TEA:
    case DX_HASH_TEA_UNSIGNED: {
      const unsigned = version === DX_HASH_TEA_UNSIGNED;
      loadSeed(seed);
      for (let off = 0; off < name.length; off += 16) {
        packChunk(name, off, 4, unsigned);
        teaTransform();
      }
      major = state[0]!;
      minor = state[1]!;
      break;
    }
    case DX_HASH_SIPHASH:
      // Keyed by the directory's encryption key, which we never hold.
      throw new Ext4Error("EOPNOTSUPP", "siphash directory hash (casefolded + encrypted directory) is not supported");
    default:
      throw new Ext4Error("EFSCORRUPTED", `unknown directory hash version ${version}`);
  }
  major = (major & ~1) >>> 0;
  if (major === HTREE_EOF_MAJOR) major = HTREE_EOF_REMAPPED;
  return { major, minor: minor >>> 0 };
}

function loadSeed(seed: Uint32Array | null): void {
  if (seed !== null) {
    if (seed.length < 4) throw new Ext4Error("EINVAL", `hash seed needs 4 words, got ${seed.length}`);
    if ((seed[0]! | seed[1]! | seed[2]! | seed[3]!) !== 0) {
      state[0] = seed[0]!; state[1] = seed[1]!; state[2] = seed[2]!; state[3] = seed[3]!;
      return;
    }
  }
  state[0] = IV0; state[1] = IV1; state[2] = IV2; state[3] = IV3;
}

/** The original ext3 "dx_hack" hash: unseeded, no minor hash. */
function legacyHash(name: Uint8Array, unsigned: boolean): number {
  let h0 = 0x12a3fe2d, h1 = 0x37abe8f9;
  for (let i = 0; i < name.length; i++) {
    const c = unsigned ? name[i]! : (name[i]! << 24) >> 24;
    let h = (h1 + (h0 ^ Math.imul(c, 7152373))) >>> 0;
    // Keeps the running value within 31 bits (0x80000000 itself can survive).
    if (h >= 0x80000000) h = (h - 0x7fffffff) >>> 0;
    h1 = h0;
    h0 = h;
  }
  return (h0 << 1) >>> 0;
}

/**
 * Packs up to words*4 name bytes starting at `off` into big-endian-ish
 * 32-bit words, seeding every word with a pad derived from the bytes still
 * left (not the full length), and filling unused words with that pad.
 * Signed variants sign-extend each byte before adding, as C `char` does on x86.
 */
function packChunk(name: Uint8Array, off: number, words: number, unsigned: boolean): void {
  const left = name.length - off;
  let pad = (left | (left << 8)) >>> 0;
  pad = (pad | (pad << 16)) >>> 0;
  const take = left < words * 4 ? left : words * 4;
  let val = pad;
  let w = 0;
  for (let i = 0; i < take; i++) {
    const b = name[off + i]!;
    const c = unsigned ? b : (b << 24) >> 24;
    val = (c + (val << 8)) | 0;
    if ((i & 3) === 3) {
      block[w++] = val;
      val = pad;
    }
  }
  if (w < words) block[w++] = val;
  while (w < words) block[w++] = pad;
}

function rotl(x: number, s: number): number {
  return (x << s) | (x >>> (32 - s));
}

/** MD4 with round 1-3 over 8 words instead of 16; only the state update matters. */
function halfMd4Transform(): void {
  let a = state[0]! | 0, b = state[1]! | 0, c = state[2]! | 0, d = state[3]! | 0;
  const x0 = block[0]! | 0, x1 = block[1]! | 0, x2 = block[2]! | 0, x3 = block[3]! | 0;
  const x4 = block[4]! | 0, x5 = block[5]! | 0, x6 = block[6]! | 0, x7 = block[7]! | 0;

  // Round 1: F = select(x ? y : z)
  a = rotl((a + (d ^ (b & (c ^ d))) + x0) | 0, 3);
  d = rotl((d + (c ^ (a & (b ^ c))) + x1) | 0, 7);
  c = rotl((c + (b ^ (d & (a ^ b))) + x2) | 0, 11);
  b = rotl((b + (a ^ (c & (d ^ a))) + x3) | 0, 19);
  a = rotl((a + (d ^ (b & (c ^ d))) + x4) | 0, 3);
  d = rotl((d + (c ^ (a & (b ^ c))) + x5) | 0, 7);
  c = rotl((c + (b ^ (d & (a ^ b))) + x6) | 0, 11);
  b = rotl((b + (a ^ (c & (d ^ a))) + x7) | 0, 19);

  // Round 2: G = majority, written as (x&y) + ((x^y)&z) like the reference.
  a = rotl((a + (((b & c) + ((b ^ c) & d)) | 0) + x1 + MD4_ROUND2) | 0, 3);
  d = rotl((d + (((a & b) + ((a ^ b) & c)) | 0) + x3 + MD4_ROUND2) | 0, 5);
  c = rotl((c + (((d & a) + ((d ^ a) & b)) | 0) + x5 + MD4_ROUND2) | 0, 9);
  b = rotl((b + (((c & d) + ((c ^ d) & a)) | 0) + x7 + MD4_ROUND2) | 0, 13);
  a = rotl((a + (((b & c) + ((b ^ c) & d)) | 0) + x0 + MD4_ROUND2) | 0, 3);
  d = rotl((d + (((a & b) + ((a ^ b) & c)) | 0) + x2 + MD4_ROUND2) | 0, 5);
  c = rotl((c + (((d & a) + ((d ^ a) & b)) | 0) + x4 + MD4_ROUND2) | 0, 9);
  b = rotl((b + (((c & d) + ((c ^ d) & a)) | 0) + x6 + MD4_ROUND2) | 0, 13);

  // Round 3: H = parity
  a = rotl((a + (b ^ c ^ d) + x3 + MD4_ROUND3) | 0, 3);
  d = rotl((d + (a ^ b ^ c) + x7 + MD4_ROUND3) | 0, 9);
  c = rotl((c + (d ^ a ^ b) + x2 + MD4_ROUND3) | 0, 11);
  b = rotl((b + (c ^ d ^ a) + x6 + MD4_ROUND3) | 0, 15);
  a = rotl((a + (b ^ c ^ d) + x1 + MD4_ROUND3) | 0, 3);
  d = rotl((d + (a ^ b ^ c) + x5 + MD4_ROUND3) | 0, 9);
  c = rotl((c + (d ^ a ^ b) + x0 + MD4_ROUND3) | 0, 11);
  b = rotl((b + (c ^ d ^ a) + x4 + MD4_ROUND3) | 0, 15);

  state[0] = state[0]! + a;
  state[1] = state[1]! + b;
  state[2] = state[2]! + c;
  state[3] = state[3]! + d;
}

/** 16 TEA cycles keyed by the 4-word chunk, fed forward into state[0..1] (Davies-Meyer). */
function teaTransform(): void {
  let v0 = state[0]! | 0, v1 = state[1]! | 0;
  const k0 = block[0]! | 0, k1 = block[1]! | 0, k2 = block[2]! | 0, k3 = block[3]! | 0;
  let sum = 0;
  for (let n = 0; n < 16; n++) {
    sum = (sum + TEA_DELTA) | 0;
    v0 = (v0 + ((((v1 << 4) + k0) | 0) ^ ((v1 + sum) | 0) ^ (((v1 >>> 5) + k1) | 0))) | 0;
    v1 = (v1 + ((((v0 << 4) + k2) | 0) ^ ((v0 + sum) | 0) ^ (((v0 >>> 5) + k3) | 0))) | 0;
  }
  state[0] = state[0]! + v0;
  state[1] = state[1]! + v1;
}
