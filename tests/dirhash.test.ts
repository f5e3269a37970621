// Checks dirHash against independent implementations: e2fsprogs (debugfs
// dx_hash and htree_dump) and, where loop mounts are allowed, the running
// kernel's own readdir cookies, which encode each entry's major/minor hash.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ext4Error } from "../host/errors.js";
import {
  DX_HASH_HALF_MD4, DX_HASH_HALF_MD4_UNSIGNED, DX_HASH_LEGACY, DX_HASH_LEGACY_UNSIGNED,
  DX_HASH_SIPHASH, DX_HASH_TEA, DX_HASH_TEA_UNSIGNED, dirHash,
} from "../host/format/dirhash.js";

const ALL_VERSIONS = [
  DX_HASH_LEGACY, DX_HASH_HALF_MD4, DX_HASH_TEA,
  DX_HASH_LEGACY_UNSIGNED, DX_HASH_HALF_MD4_UNSIGNED, DX_HASH_TEA_UNSIGNED,
];
const ALG_NAME = ["legacy", "half_md4", "tea"];
const ZERO_UUID = "00000000-0000-0000-0000-000000000000";
const DIR_ENTRIES = 3000;

// Names (found by brute force) whose pre-remap major is 0xfffffffe with the
// default IV: the kernel moves these to 0xfffffffc, e2fsprogs does not.
const EOF_NAMES: Array<[string, number[]]> = [
  ["LfkE7caa", [DX_HASH_LEGACY, DX_HASH_LEGACY_UNSIGNED]],
  ["Gl0QAbaa", [DX_HASH_HALF_MD4, DX_HASH_HALF_MD4_UNSIGNED]],
  ["mjby9baa", [DX_HASH_TEA, DX_HASH_TEA_UNSIGNED]],
];

/** Small deterministic PRNG (mulberry32) so failures reproduce. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomUuid(rand: () => number): { text: string; seed: Uint32Array } {
  const bytes = Buffer.alloc(16);
  for (let i = 0; i < 16; i++) bytes[i] = Math.floor(rand() * 256);
  const hex = bytes.toString("hex");
  const text = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  return { text, seed: uuidSeed(text) };
}

/** s_hash_seed words as the superblock stores them: the UUID bytes read as little-endian u32s. */
function uuidSeed(text: string): Uint32Array {
  const b = Buffer.from(text.replace(/-/g, ""), "hex");
  return new Uint32Array([b.readUInt32LE(0), b.readUInt32LE(4), b.readUInt32LE(8), b.readUInt32LE(12)]);
}

/** e2fsprogs never remaps the EOF major; the kernel (and dirHash) does. */
function kernelMajor(e2fsprogsMajor: number): number {
  return e2fsprogsMajor === 0xfffffffe ? 0xfffffffc : e2fsprogsMajor;
}

const hex = (n: number) => `0x${n.toString(16).padStart(8, "0")}`;

/** Bytes debugfs's command parser passes through inside a quoted argument: all but NUL, LF, CR. */
function parserSafeByte(rand: () => number, highBias: number): number {
  if (rand() < highBias) return 0x80 + Math.floor(rand() * 128);
  for (;;) {
    const b = 1 + Math.floor(rand() * 255);
    if (b !== 0x0a && b !== 0x0d) return b;
  }
}

function makeName(rand: () => number, len: number, pick: () => number): Buffer {
  const name = Buffer.alloc(len);
  for (let i = 0; i < len; i++) name[i] = pick();
  return name;
}

/** ~430 names for the dx_hash comparison: chunk-boundary lengths, ASCII, high bytes. */
function dxHashNames(rand: () => number): Buffer[] {
  const names: Buffer[] = [];
  const printable = () => 0x20 + Math.floor(rand() * 95);
  const mixed = () => parserSafeByte(rand, 0.3);
  const mostlyHigh = () => parserSafeByte(rand, 0.8);
  for (let len = 1; len <= 40; len++) names.push(makeName(rand, len, mixed));
  for (const len of [15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64, 65, 127, 128, 129, 254, 255]) {
    names.push(makeName(rand, len, printable), makeName(rand, len, mixed), makeName(rand, len, mostlyHigh));
  }
  const randomLen = () => (rand() < 0.5 ? 1 + Math.floor(rand() * 24) : 1 + Math.floor(rand() * 255));
  for (let i = 0; i < 140; i++) names.push(makeName(rand, randomLen(), printable));
  for (let i = 0; i < 140; i++) names.push(makeName(rand, randomLen(), mostlyHigh));
  for (let b = 0x80; b <= 0xff; b += 4) names.push(Buffer.from([b]), Buffer.from([0x41, b, 0x42]));
  names.push(Buffer.from('say "hi"'), Buffer.from("tab\there"), Buffer.from("-leading-dash"));
  for (const [text] of EOF_NAMES) names.push(Buffer.from(text));
  return names;
}

/** Names a Linux directory can hold that htree_dump prints unambiguously (no whitespace, no '/'). */
function dirEntryNames(rand: () => number, count: number): Buffer[] {
  const pick = () => {
    if (rand() < 0.5) return 0x80 + Math.floor(rand() * 128);
    for (;;) {
      const b = 0x21 + Math.floor(rand() * 94);
      if (b !== 0x2f) return b;
    }
  };
  const seen = new Set<string>();
  const names: Buffer[] = [];
  for (const [text] of EOF_NAMES) {
    seen.add(Buffer.from(text).toString("latin1"));
    names.push(Buffer.from(text));
  }
  while (names.length < count) {
    const len = rand() < 0.75 ? 1 + Math.floor(rand() * 40) : 41 + Math.floor(rand() * 215);
    const name = makeName(rand, len, pick);
    const key = name.toString("latin1");
    if (key === "." || key === ".." || seen.has(key)) continue;
    seen.add(key);
    names.push(name);
  }
  return names;
}

function quoteForDebugfs(name: Buffer): Buffer {
  // ss_parse: inside double quotes everything is literal except "" for one quote.
  const parts: number[] = [0x22];
  for (const b of name) {
    if (b === 0x22) parts.push(0x22);
    parts.push(b);
  }
  parts.push(0x22);
  return Buffer.from(parts);
}

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, {
    encoding: "latin1",
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, PAGER: "__none__", DEBUGFS_PAGER: "__none__" },
    maxBuffer: 256 << 20,
  });
}

function debugfsWrite(image: string, commands: string[]): void {
  const file = `${image}.cmds`;
  writeFileSync(file, commands.join("\n") + "\n");
  run("debugfs", ["-w", "-f", file, image]);
}

interface LeafEntry { name: Buffer; major: number; minor: number }
interface Leaf { lowHash: number; firstInNode: boolean; entries: LeafEntry[] }

/** Parses `htree_dump` output into leaves (in tree order) with the hashes e2fsprogs printed for each entry. */
function parseHtreeDump(text: string): { hashVersion: number; leaves: Leaf[] } {
  const version = /Hash Version: (\d+)/.exec(text);
  if (!version) throw new Error(`not an htree dump:\n${text.slice(0, 500)}`);
  const lines = text.split("\n");
  const leaves: Leaf[] = [];
  const entryRe = /(?:^|(?<=   ))(\d+) 0x([0-9a-f]{8})-([0-9a-f]{8}) \((\d+)\) ([^ \n]+)   /gm;
  for (let i = 0; i < lines.length; i++) {
    const ptr = /^Entry #(\d+): Hash 0x([0-9a-f]{8}), block \d+$/.exec(lines[i]!);
    if (!ptr || !lines[i + 1]?.startsWith("Reading directory block")) continue;
    let j = i + 2;
    const body: string[] = [];
    while (j < lines.length && !/^(Entry #|-----|Number of entries|Reading directory block)/.test(lines[j]!)) {
      body.push(lines[j]!);
      j++;
    }
    const entries: LeafEntry[] = [];
    for (const m of body.join("\n").matchAll(entryRe)) {
      entries.push({ name: Buffer.from(m[5]!, "latin1"), major: parseInt(m[2]!, 16), minor: parseInt(m[3]!, 16) });
    }
    leaves.push({ lowHash: parseInt(ptr[2]!, 16), firstInNode: ptr[1] === "0", entries });
    i = j - 1;
  }
  return { hashVersion: Number(version[1]), leaves };
}

/**
 * Checks one htree directory dump: every entry's printed hash equals ours,
 * and every entry sits in the leaf its (our) major hash selects.
 */
function checkHtreeDump(text: string, version: number, seed: Uint32Array, expectedNames: Buffer[]): void {
  const { hashVersion, leaves } = parseHtreeDump(text);
  expect(hashVersion).toBe(version % 3);
  expect(leaves.length).toBeGreaterThan(10);
  const found = new Set<string>();
  const mismatches: string[] = [];
  for (let li = 0; li < leaves.length; li++) {
    const leaf = leaves[li]!;
    const next = leaves[li + 1];
    for (const e of leaf.entries) {
      found.add(e.name.toString("latin1"));
      const ours = dirHash(e.name, version, seed);
      if (ours.major !== kernelMajor(e.major) || ours.minor !== e.minor) {
        mismatches.push(`${e.name.toString("hex")}: e2fsprogs ${hex(e.major)}/${hex(e.minor)} ours ${hex(ours.major)}/${hex(ours.minor)}`);
      }
      // A leaf's lower bound (bit 0 = "continued collision chain") bounds its names from below,
      // the next leaf's bound from above; the first pointer of a node prints 0, so skip those.
      if (!leaf.firstInNode && ours.major < (leaf.lowHash & ~1) >>> 0) mismatches.push(`${e.name.toString("hex")} below its leaf`);
      if (next && !next.firstInNode) {
        const hi = next.lowHash;
        const inside = hi & 1 ? ours.major <= (hi & ~1) >>> 0 : ours.major < hi;
        if (!inside) mismatches.push(`${e.name.toString("hex")} above its leaf`);
      }
    }
  }
  expect(mismatches).toEqual([]);
  expect(found.size).toBe(expectedNames.length);
  for (const n of expectedNames) expect(found.has(n.toString("latin1"))).toBe(true);
}

let work = "";
let mounted = "";

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "ext4wasm-dirhash-"));
});

afterAll(() => {
  if (mounted) spawnSync("umount", [mounted]);
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("dirHash API", () => {
  it("rejects unknown versions as corruption", () => {
    for (const v of [7, 8, 255, -1, 1.5, Number.NaN]) {
      let err: unknown;
      try {
        dirHash(Buffer.from("x"), v, null);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(Ext4Error);
      expect((err as Ext4Error).code).toBe("EFSCORRUPTED");
    }
  });

  it("refuses siphash (needs the directory's encryption key)", () => {
    expect(() => dirHash(Buffer.from("x"), DX_HASH_SIPHASH, null)).toThrowError(
      expect.objectContaining({ code: "EOPNOTSUPP" }),
    );
  });

  it("treats an all-zero seed like no seed, and always returns u32 with bit 0 of major clear", () => {
    const rand = prng(7);
    const zero = new Uint32Array(4);
    for (let i = 0; i < 200; i++) {
      const name = makeName(rand, 1 + Math.floor(rand() * 255), () => Math.floor(rand() * 256));
      for (const v of ALL_VERSIONS) {
        const a = dirHash(name, v, null);
        expect(dirHash(name, v, zero)).toEqual(a);
        expect(a.major & 1).toBe(0);
        expect(a.major).toBeGreaterThanOrEqual(0);
        expect(a.minor).toBeGreaterThanOrEqual(0);
        expect(Number.isInteger(a.major) && a.major <= 0xffffffff).toBe(true);
      }
    }
  });

  it("remaps the reserved EOF major 0xfffffffe to 0xfffffffc, as the kernel does", () => {
    for (const [text, versions] of EOF_NAMES) {
      for (const v of versions) expect(hex(dirHash(Buffer.from(text), v, null).major)).toBe(hex(0xfffffffc));
    }
  });

  it("legacy ignores the seed; signed and unsigned agree on ASCII and differ on high bytes", () => {
    const seed = new Uint32Array([1, 2, 3, 4]);
    const ascii = Buffer.from("Makefile.am");
    expect(dirHash(ascii, DX_HASH_LEGACY, seed)).toEqual(dirHash(ascii, DX_HASH_LEGACY, null));
    for (const base of [DX_HASH_LEGACY, DX_HASH_HALF_MD4, DX_HASH_TEA]) {
      expect(dirHash(ascii, base, seed)).toEqual(dirHash(ascii, base + 3, seed));
      const high = Buffer.from("caf\xe9", "latin1");
      expect(dirHash(high, base, seed).major).not.toBe(dirHash(high, base + 3, seed).major);
    }
  });
});

describe("dirHash vs debugfs dx_hash", () => {
  it("matches e2fsprogs for all six versions, zero and random seeds", () => {
    const rand = prng(0xd1ec7);
    const names = dxHashNames(rand);
    const random = randomUuid(rand);
    const seeds = [{ text: ZERO_UUID, seed: new Uint32Array(4) }, random];

    const image = join(work, "dxhash.img");
    run("mkfs.ext4", ["-q", "-F", image, "4M"]);
    const lines: Buffer[] = [];
    const expected: Array<{ name: Buffer; version: number; seed: Uint32Array }> = [];
    for (const version of ALL_VERSIONS) {
      for (const s of seeds) {
        for (const name of names) {
          // "--" keeps names starting with '-' away from getopt.
          lines.push(Buffer.concat([Buffer.from(`dx_hash -h ${version} -s ${s.text} -- `), quoteForDebugfs(name), Buffer.from("\n")]));
          expected.push({ name, version, seed: s.seed });
        }
      }
    }
    const cmdFile = join(work, "dxhash.cmds");
    writeFileSync(cmdFile, Buffer.concat(lines));
    const out = run("debugfs", ["-f", cmdFile, image]);
    const results = [...out.matchAll(/^Hash of .* is 0x([0-9a-f]+) \(minor 0x([0-9a-f]+)\)$/gm)];
    expect(results.length).toBe(expected.length);

    const mismatches: string[] = [];
    let remapped = 0;
    results.forEach((m, i) => {
      const { name, version, seed } = expected[i]!;
      const theirs = { major: parseInt(m[1]!, 16), minor: parseInt(m[2]!, 16) };
      if (theirs.major === 0xfffffffe) remapped++;
      const ours = dirHash(name, version, seed);
      if (ours.major !== kernelMajor(theirs.major) || ours.minor !== theirs.minor) {
        mismatches.push(`v${version} ${name.toString("hex")}: debugfs ${hex(theirs.major)}/${hex(theirs.minor)} ours ${hex(ours.major)}/${hex(ours.minor)}`);
      }
    });
    expect(mismatches).toEqual([]);
    // The EOF names really do hit the reserved value in e2fsprogs (zero seed, 2 versions each).
    expect(remapped).toBeGreaterThanOrEqual(EOF_NAMES.length * 2);
    expect(names.filter((n) => n.some((b) => b >= 0x80)).length).toBeGreaterThan(150);
  });
});

describe("dirHash vs htree directories", () => {
  const rand = prng(0x417ee);
  const names = dirEntryNames(rand, DIR_ENTRIES);

  function populate(dir: string): void {
    mkdirSync(dir);
    const dirBytes = Buffer.from(dir + "/");
    for (const name of names) writeFileSync(Buffer.concat([dirBytes, name]), "");
  }

  it("matches htree_dump of e2fsck-built indexes (mkfs -d, e2fsck -fD) for all six versions", () => {
    const root = join(work, "root");
    mkdirSync(root);
    populate(join(root, "d"));
    const image = join(work, "htree.img");
    run("mkfs.ext4", ["-q", "-F", "-N", "8192", "-d", root, image, "64M"]);
    for (const version of ALL_VERSIONS) {
      const uuid = randomUuid(rand);
      debugfsWrite(image, [
        `ssv def_hash_version ${ALG_NAME[version % 3]}`,
        `ssv flags ${version >= 3 ? 2 : 1}`,
        `ssv hash_seed ${uuid.text}`,
      ]);
      const fsck = spawnSync("e2fsck", ["-fyD", image], { encoding: "latin1" });
      expect(fsck.status === 0 || fsck.status === 1, fsck.stdout + fsck.stderr).toBe(true);
      checkHtreeDump(run("debugfs", ["-R", "htree_dump /d", image]), version, uuid.seed, names);
    }
  });

  it("matches the running kernel's readdir cookies and index layout for all six versions", (ctx) => {
    const getdents = getdentsSyscall();
    const image = join(work, "kernel.img");
    const mnt = join(work, "mnt");
    mkdirSync(mnt);
    run("mkfs.ext4", ["-q", "-F", "-N", "8192", image, "64M"]);
    const probe = spawnSync("mount", ["-o", "loop", image, mnt], { encoding: "utf8" });
    if (probe.status === 0) spawnSync("umount", [mnt]);
    if (probe.status !== 0 || getdents === undefined) ctx.skip();

    // Every version with a random seed, plus the seeded ones again with the
    // default IV so the EOF-remap names hit 0xfffffffe inside the kernel.
    const runs = [
      ...ALL_VERSIONS.map((version) => ({ version, uuid: randomUuid(rand) })),
      ...[DX_HASH_HALF_MD4, DX_HASH_TEA_UNSIGNED].map((version) => ({ version, uuid: { text: ZERO_UUID, seed: new Uint32Array(4) } })),
    ];
    for (const { version, uuid } of runs) {
      run("mkfs.ext4", ["-q", "-F", "-N", "8192", image, "64M"]);
      debugfsWrite(image, [
        `ssv def_hash_version ${ALG_NAME[version % 3]}`,
        `ssv flags ${version >= 3 ? 2 : 1}`,
        `ssv hash_seed ${uuid.text}`,
      ]);
      run("mount", ["-o", "loop", image, mnt]);
      mounted = mnt;
      let cookies: string;
      try {
        populate(join(mnt, "d"));
        cookies = readdirCookies(join(mnt, "d"), getdents!);
      } finally {
        run("umount", [mnt]);
        mounted = "";
      }
      const remapped = checkKernelCookies(cookies, version, uuid.seed);
      const legacy = version % 3 === DX_HASH_LEGACY;
      if (legacy || uuid.text === ZERO_UUID) expect(remapped, `v${version} EOF name`).toBeGreaterThanOrEqual(1);
      checkHtreeDump(run("debugfs", ["-R", "htree_dump /d", image]), version, uuid.seed, names);
    }
  });
});

/** getdents64 syscall number for python's ctypes, on the architectures we know. */
function getdentsSyscall(): number | undefined {
  const nr = ({ x64: 217, arm64: 61 } as Record<string, number>)[process.arch];
  if (nr === undefined) return undefined;
  return spawnSync("python3", ["-c", "import ctypes"]).status === 0 ? nr : undefined;
}

/** Lists `dir` with raw getdents64, printing "d_off name-hex" per entry in kernel order. */
function readdirCookies(dir: string, syscallNr: number): string {
  const script = `
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
buf = ctypes.create_string_buffer(1 << 16)
out = []
while True:
    n = libc.syscall(${syscallNr}, fd, buf, len(buf))
    if n < 0:
        raise OSError(ctypes.get_errno(), "getdents64")
    if n == 0:
        break
    raw = buf.raw[:n]
    pos = 0
    while pos < n:
        _ino, off, reclen, _type = struct.unpack_from("<QqHB", raw, pos)
        name = raw[pos + 19:pos + reclen].split(b"\\0", 1)[0]
        out.append("%x %s" % (off & 0xffffffffffffffff, name.hex()))
        pos += reclen
print("\\n".join(out))
`;
  return execFileSync("python3", ["-c", script, dir], { encoding: "utf8", maxBuffer: 64 << 20 });
}

/**
 * Returns how many names the kernel placed at the remapped EOF major.
 * In an indexed directory ext4 returns entries in hash order, and each
 * entry's d_off is the next entry's position: (major >> 1) << 32 | minor
 * for 64-bit callers. So every name's kernel hash is its predecessor's d_off.
 */
function checkKernelCookies(listing: string, version: number, seed: Uint32Array): number {
  const rows = listing.trim().split("\n").map((line) => {
    const [off, nameHex] = line.split(" ");
    return { off: BigInt(`0x${off}`), name: Buffer.from(nameHex ?? "", "hex") };
  });
  expect(rows.length).toBe(DIR_ENTRIES + 2);
  const mismatches: string[] = [];
  let remapped = 0;
  for (let i = 1; i < rows.length; i++) {
    const name = rows[i]!.name;
    if (name.equals(Buffer.from(".")) || name.equals(Buffer.from(".."))) continue;
    const pos = rows[i - 1]!.off;
    const kernel = { major: Number(pos >> 32n) * 2, minor: Number(pos & 0xffffffffn) };
    const ours = dirHash(name, version, seed);
    if (ours.major !== kernel.major || ours.minor !== kernel.minor) {
      mismatches.push(`${name.toString("hex")}: kernel ${hex(kernel.major)}/${hex(kernel.minor)} ours ${hex(ours.major)}/${hex(ours.minor)}`);
    }
    if (kernel.major === 0xfffffffc) remapped++;
  }
  expect(mismatches).toEqual([]);
  // Final cookie is the kernel's 64-bit htree EOF marker.
  expect(rows[rows.length - 1]!.off).toBe(0x7fffffffffffffffn);
  return remapped;
}
