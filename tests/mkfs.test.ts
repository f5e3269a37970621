// mkfs: for a matrix of sizes, block sizes and feature sets, the image is
// e2fsck-clean, dumpe2fs shows mke2fs's superblock and group layout for the
// same options, our reader mounts it, and where loop mounts work the kernel
// writes to it and e2fsck and we agree afterwards. Also determinism, lazy
// zeroing over old content, and typed errors for bad options.

import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Ext4Error, MemoryDevice, mkfs, mount, type MkfsOptions } from "../host/index.js";
import { runSync } from "./helpers/exec.js";
import { MKE2FS_CONF } from "./helpers/mke2fs-conf.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";

const UUID = "0b7d5e5c-0c0e-4c6f-9a3e-6c1f2d2b8a11";
const SEED = "5d3c0a9e-8f41-4b7a-9d2c-1e6f7a8b9c0d";
const TIME = 1700000000;


let work: string;
let env: NodeJS.ProcessEnv;
beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-mkfs-"));
  fs.writeFileSync(path.join(work, "mke2fs.conf"), MKE2FS_CONF);
  env = { ...process.env, MKE2FS_CONFIG: path.join(work, "mke2fs.conf"), E2FSPROGS_FAKE_TIME: String(TIME) };
  delete env.SOURCE_DATE_EPOCH;
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

interface Case {
  name: string;
  size: string;
  /** mke2fs arguments (besides -U, -E hash_seed=). */
  args: string[];
  opts: MkfsOptions;
  /** Extra -E for mke2fs. */
  ext?: string;
}

const CASES: Case[] = [
  { name: "8M (floppy-small: 1k blocks)", size: "8M", args: [], opts: {} },
  { name: "2M (floppy)", size: "2M", args: [], opts: {} },
  { name: "256M (small)", size: "256M", args: [], opts: {} },
  { name: "4G", size: "4G", args: [], opts: {} },
  { name: "odd size, last group trimmed", size: "114989k", args: [], opts: {} },
  { name: "a plain size counts 1k blocks", size: "300000", args: [], opts: {} },
  { name: "2k blocks", size: "300M", args: ["-b", "2048"], opts: { blockSize: 2048 } },
  { name: "1k blocks, 2G", size: "2G", args: ["-b", "1024"], opts: { blockSize: 1024 } },
  { name: "64k blocks", size: "2G", args: ["-b", "65536"], opts: { blockSize: 65536 } },
  { name: "1k blocks, a journal of 5 extents (so an extent leaf)", size: "1G", args: ["-b", "1024", "-J", "size=128"], opts: { blockSize: 1024, journalSize: 128 } },
  { name: "^has_journal", size: "512M", args: ["-O", "^has_journal"], opts: { features: "^has_journal" } },
  { name: "^metadata_csum", size: "1G", args: ["-O", "^metadata_csum"], opts: { features: "^metadata_csum" } },
  { name: "^metadata_csum,uninit_bg", size: "1G", args: ["-O", "^metadata_csum,uninit_bg"], opts: { features: ["^metadata_csum", "uninit_bg"] } },
  { name: "^64bit", size: "1G", args: ["-O", "^64bit"], opts: { features: "^64bit" } },
  { name: "^resize_inode", size: "1G", args: ["-O", "^resize_inode"], opts: { features: "^resize_inode" } },
  { name: "^flex_bg", size: "1G", args: ["-O", "^flex_bg"], opts: { features: "^flex_bg" } },
  { name: "ext3-like (^extent ...)", size: "600M", args: ["-O", "^extent,^64bit,^flex_bg,^huge_file,^metadata_csum,^dir_nlink,^extra_isize"], opts: { features: "^extent,^64bit,^flex_bg,^huge_file,^metadata_csum,^dir_nlink,^extra_isize" } },
  { name: "orphan_file", size: "1G", args: ["-O", "orphan_file"], opts: { features: "orphan_file" } },
  { name: "metadata_csum_seed", size: "1G", args: ["-O", "metadata_csum_seed"], opts: { features: "metadata_csum_seed" } },
  { name: "inline_data", size: "1G", args: ["-O", "inline_data"], opts: { features: "inline_data" } },
  { name: "inline_data, 1k", size: "100M", args: ["-O", "inline_data"], opts: { features: "inline_data" } },
  { name: "large_dir", size: "1G", args: ["-O", "large_dir"], opts: { features: "large_dir" } },
  { name: "bigalloc", size: "2G", args: ["-O", "bigalloc"], opts: { features: "bigalloc" } },
  { name: "bigalloc -C 64k, orphan_file", size: "4G", args: ["-O", "bigalloc,orphan_file", "-C", "65536"], opts: { features: "bigalloc,orphan_file", clusterSize: 65536 } },
  { name: "bigalloc, 1k blocks", size: "200M", args: ["-O", "bigalloc", "-b", "1024", "-C", "16384"], opts: { features: "bigalloc", blockSize: 1024, clusterSize: 16384 } },
  { name: "-I 128 -N 5000 -m 0", size: "1G", args: ["-I", "128", "-N", "5000", "-m", "0"], opts: { inodeSize: 128, inodes: 5000, reservedRatio: 0 } },
  { name: "-i 65536 -J size=100 -L label", size: "1G", args: ["-i", "65536", "-J", "size=100", "-L", "mylabel"], opts: { inodeRatio: 65536, journalSize: 100, label: "mylabel" } },
  { name: "root_owner, lazy_itable_init=0, -e remount-ro", size: "200M", args: ["-e", "remount-ro"], ext: "root_owner=1000:100,lazy_itable_init=0", opts: { rootOwner: "1000:100", lazyItableInit: false, errors: "remount-ro" } },
];

/** dumpe2fs output with the lines we document as differing left out: Lifetime writes (what each tool wrote) and the superblock checksum over it. */
function dumpe2fs(img: string, header: boolean): string {
  const out = runSync("dumpe2fs", [...(header ? ["-h"] : []), img], { okCodes: [0] }).stdout;
  return out.split("\n").filter((l) => !/^(Lifetime writes|Checksum):/.test(l)).join("\n");
}

/**
 * The metadata blocks of the reference (every superblock and descriptor copy,
 * reserved GDT, bitmaps, inode tables, directories, the resize inode's and the
 * orphan file's blocks, the journal superblock and extent leaf), compared
 * byte for byte; only s_kbytes_written and the checksum over it may differ.
 */
function compareMetadata(mine: string, ref: string): void {
  const bs = Number(/^Block size:\s+(\d+)$/m.exec(runSync("dumpe2fs", ["-h", ref]).stdout)![1]);
  const ranges: [number, number][] = [];
  const groups = runSync("dumpe2fs", [ref]).stdout;
  for (const m of groups.matchAll(/(?:superblock|descriptors|GDT blocks|bitmap|table) at (\d+)(?:-(\d+))?/g)) {
    ranges.push([Number(m[1]), Number(m[2] ?? m[1])]);
  }
  const dbg = (cmd: string) => runSync("debugfs", ["-R", cmd, ref]).stdout;
  for (const ino of [2, 11, 12]) for (const b of dbg(`blocks <${ino}>`).trim().split(/\s+/).filter(Boolean)) ranges.push([Number(b), Number(b)]);
  for (const m of (dbg("stat <7>") + dbg("stat <8>")).matchAll(/\((?:DIND|ETB0)\):(\d+)/g)) ranges.push([Number(m[1]), Number(m[1])]);
  const j = Number(dbg("bmap <8> 0").trim());
  if (j) ranges.push([j, j]);
  const fa = fs.openSync(mine, "r");
  const fb = fs.openSync(ref, "r");
  try {
    const diffs: string[] = [];
    for (const [lo, hi] of ranges) {
      for (let blk = lo; blk <= hi; blk += 256) {
        const n = Math.min(256, hi - blk + 1) * bs;
        const a = Buffer.alloc(n), b = Buffer.alloc(n);
        fs.readSync(fa, a, 0, n, blk * bs);
        fs.readSync(fb, b, 0, n, blk * bs);
        if (a.equals(b)) continue;
        for (let i = 0; i < n; i++) {
          if (a[i] === b[i]) continue;
          const pos = blk * bs + i;
          // Superblock copies: at 1024 in block 0, else at the start of their block.
          const sbStart = pos < 2048 ? 1024 : pos - (pos % bs);
          const off = pos - sbStart;
          const isSb = pos < 2048 || groups.includes(`superblock at ${Math.floor(pos / bs)},`);
          if (isSb && ((off >= 0x178 && off < 0x180) || off >= 0x3fc && off < 0x400)) continue;
          diffs.push(`byte ${pos} (block ${Math.floor(pos / bs)} + ${pos % bs}): ours ${a[i]}, mke2fs ${b[i]}`);
          if (diffs.length > 20) break;
        }
      }
    }
    expect(diffs).toEqual([]);
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
}

function e2fsckClean(img: string): void {
  const r = runSync("e2fsck", ["-fn", img], { okCodes: [0, 1, 2, 4, 8] });
  if (r.code !== 0) throw new Error(`e2fsck -fn ${img} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
}

function ours(img: string, c: Case): void {
  fs.rmSync(img, { force: true });
  const size = /^\d+$/.test(c.size) ? Number(c.size) * (c.opts.blockSize ?? 1024) : c.size;
  mkfs(img, { ...c.opts, size, uuid: UUID, hashSeed: SEED, time: TIME });
}

function reference(img: string, c: Case): void {
  fs.rmSync(img, { force: true });
  const ext = [`hash_seed=${SEED}`, ...(c.ext ? [c.ext] : [])].join(",");
  runSync("mkfs.ext4", ["-q", "-F", ...c.args, "-U", UUID, "-E", ext, img, c.size], { env });
}

describe("mkfs against mke2fs", () => {
  for (const c of CASES) {
    it(`${c.name}: e2fsck clean, dumpe2fs equal, metadata bytes equal, our mount lists the root`, () => {
      const mine = path.join(work, "ours.img");
      const ref = path.join(work, "ref.img");
      ours(mine, c);
      reference(ref, c);
      try {
        e2fsckClean(mine);
        expect(dumpe2fs(mine, true)).toBe(dumpe2fs(ref, true));
        expect(dumpe2fs(mine, false)).toBe(dumpe2fs(ref, false));
        compareMetadata(mine, ref);
        const v = mount(mine, { readOnly: true });
        try {
          expect(v.readdirSync("/")).toEqual(["lost+found"]);
          expect(v.statSync("/lost+found").isDirectory()).toBe(true);
          const names = v.readdirInode(v.inodeOf("/")).map((e) => Buffer.from(e.name).toString());
          expect(names).toEqual(["lost+found"]);
        } finally {
          v.unmount();
        }
      } finally {
        fs.rmSync(mine, { force: true });
        fs.rmSync(ref, { force: true });
      }
    });
  }

  it("the same inodes as mke2fs writes them (debugfs stat of 1, 2, 7, 8, 11)", () => {
    const c: Case = { name: "default", size: "1G", args: [], opts: {} };
    const mine = path.join(work, "ino-ours.img");
    const ref = path.join(work, "ino-ref.img");
    ours(mine, c);
    reference(ref, c);
    try {
      for (const ino of [1, 2, 3, 7, 8, 11]) {
        const stat = (img: string) => runSync("debugfs", ["-R", `stat <${ino}>`, img]).stdout;
        expect(stat(mine), `inode ${ino}`).toBe(stat(ref));
      }
      const ls = (img: string) => runSync("debugfs", ["-R", "ls -l /lost+found", img]).stdout;
      expect(ls(mine)).toBe(ls(ref));
    } finally {
      fs.rmSync(mine, { force: true });
      fs.rmSync(ref, { force: true });
    }
  });
});

describe("mkfs output", () => {
  const sha = (f: string) => createHash("sha256").update(fs.readFileSync(f)).digest("hex");

  it("is byte-identical for the same options, -U, -E hash_seed= and SOURCE_DATE_EPOCH", () => {
    const a = path.join(work, "a.img");
    const b = path.join(work, "b.img");
    const old = process.env.SOURCE_DATE_EPOCH;
    process.env.SOURCE_DATE_EPOCH = String(TIME);
    try {
      for (const f of [a, b]) {
        fs.rmSync(f, { force: true });
        mkfs(f, { size: "64M", uuid: UUID, hashSeed: SEED, features: "orphan_file" });
      }
      expect(sha(a)).toBe(sha(b));
      // In memory too, and the same bytes as the file.
      const dev = MemoryDevice.ofSize(64 << 20);
      mkfs(dev, { uuid: UUID, hashSeed: SEED, features: "orphan_file" });
      expect(createHash("sha256").update(dev.bytes).digest("hex")).toBe(sha(a));
      // A different time gives a different image: the time is really used.
      mkfs(b, { size: "64M", uuid: UUID, hashSeed: SEED, features: "orphan_file", time: TIME + 1 });
      expect(sha(b)).not.toBe(sha(a));
    } finally {
      if (old === undefined) delete process.env.SOURCE_DATE_EPOCH; else process.env.SOURCE_DATE_EPOCH = old;
      fs.rmSync(a, { force: true });
      fs.rmSync(b, { force: true });
    }
  });

  it("a new image is sparse: a 4 GiB filesystem allocates a few MiB (mke2fs: its whole 64 MiB journal)", () => {
    const img = path.join(work, "sparse.img");
    try {
      const r = mkfs(img, { size: "4G", uuid: UUID, hashSeed: SEED, time: TIME });
      expect(r.written.zeroedBytes).toBe(0);
      const allocated = fs.statSync(img).blocks * 512;
      expect(fs.statSync(img).size).toBe(4 * 2 ** 30);
      expect(allocated).toBeLessThan(4 << 20);
      e2fsckClean(img);
    } finally {
      fs.rmSync(img, { force: true });
    }
  });

  it("over old content: the journal, the used inode table blocks and lost+found read as zeros; e2fsck clean", () => {
    const img = path.join(work, "old.img");
    try {
      const junk = Buffer.alloc(1 << 20, 0xa5);
      const fd = fs.openSync(img, "w");
      for (let i = 0; i < 64; i++) fs.writeSync(fd, junk);
      fs.closeSync(fd);
      const r = mkfs(img, { uuid: UUID, hashSeed: SEED, time: TIME, lazyItableInit: false });
      expect(r.written.zeroedBytes).toBeGreaterThan(4 << 20); // the 4 MiB journal at least
      e2fsckClean(img);
      // The kernel would otherwise find stale journal blocks; check them and an unused inode.
      const v = mount(img, { readOnly: true });
      try {
        expect(v.readdirSync("/lost+found")).toEqual([]);
      } finally {
        v.unmount();
      }
      const jfile = path.join(work, "journal.bin");
      runSync("debugfs", ["-R", `dump <8> ${jfile}`, img]);
      const j = fs.readFileSync(jfile);
      fs.rmSync(jfile);
      expect(j.length).toBe(4 << 20);
      expect(j.readUInt32BE(0)).toBe(0xc03b3998);
      expect(j.subarray(1024).every((b) => b === 0)).toBe(true); // 1 KiB blocks: all past the jbd2 superblock
      expect(runSync("debugfs", ["-R", "stat <20>", img]).stdout).toMatch(/Mode:\s+0000/);
      // lazy_itable_init=0: every group's table is zeroed and marked so.
      expect(runSync("dumpe2fs", [img]).stdout.match(/ITABLE_ZEROED/g)?.length).toBe(r.groupCount);
      // And the same layout as on a fresh file.
      const fresh = path.join(work, "fresh.img");
      mkfs(fresh, { size: 64 << 20, uuid: UUID, hashSeed: SEED, time: TIME, lazyItableInit: false });
      expect(dumpe2fs(img, false)).toBe(dumpe2fs(fresh, false));
      fs.rmSync(fresh);
    } finally {
      fs.rmSync(img, { force: true });
    }
  });
});

describe("mkfs on a MemoryDevice", () => {
  it("a fresh one gets only metadata; one with old bytes gets its journal zeroed and checks clean", () => {
    const fresh = MemoryDevice.ofSize(32 << 20);
    expect(mkfs(fresh, { uuid: UUID, hashSeed: SEED, time: TIME }).written.zeroedBytes).toBe(0);
    const dirty = new MemoryDevice(new Uint8Array(32 << 20).fill(0x5a));
    const r = mkfs(dirty, { uuid: UUID, hashSeed: SEED, time: TIME });
    expect(r.written.zeroedBytes).toBeGreaterThanOrEqual((r.journalBlocks - 1) * r.blockSize);
    const img = path.join(work, "mem.img");
    try {
      fs.writeFileSync(img, dirty.bytes);
      e2fsckClean(img);
      // Everything e2fsck and dumpe2fs look at is as on the fresh device.
      fs.writeFileSync(path.join(work, "mem-fresh.img"), fresh.bytes);
      expect(dumpe2fs(img, false)).toBe(dumpe2fs(path.join(work, "mem-fresh.img"), false));
    } finally {
      fs.rmSync(img, { force: true });
      fs.rmSync(path.join(work, "mem-fresh.img"), { force: true });
    }
  });
});

describe("mkfs errors", () => {
  const dev = () => MemoryDevice.ofSize(16 << 20);
  const bad: [string, MkfsOptions, RegExp, string?][] = [
    ["block size", { blockSize: 3000 }, /block size \(-b\)/],
    ["block size too big", { blockSize: 131072 }, /block size \(-b\)/],
    ["unknown feature", { features: "^has_journal,frobnicate" }, /unknown filesystem feature 'frobnicate' \(-O\)/],
    ["a feature this mkfs does not build", { features: "meta_bg" }, /meta_bg/, "EOPNOTSUPP"],
    ["size too small", { size: "8k" }, /too small/],
    ["size not a size", { size: "12Q" }, /invalid size/],
    ["inode size", { inodeSize: 100 }, /inode size \(-I\)/],
    ["inode ratio", { inodeRatio: 10 }, /inode ratio \(-i\)/],
    ["too many inodes", { inodes: 1 << 20 }, /-N|-i/],
    ["reserved ratio", { reservedRatio: 60 }, /reserved blocks percent \(-m\)/],
    ["cluster size without bigalloc", { clusterSize: 65536 }, /bigalloc/],
    ["uuid", { uuid: "not-a-uuid" }, /UUID \(-U\)/],
    ["hash seed", { hashSeed: "1234" }, /hash seed \(-E hash_seed=\)/],
    ["label", { label: "x".repeat(17) }, /label \(-L\)/],
    ["journal too small", { blockSize: 4096, journalSize: 1 }, /journal size \(-J size=\)/],
    ["journal size zero", { journalSize: 0 }, /journal size \(-J size=\)/],
    ["journal too big", { journalSize: 15 }, /journal \(-J size=\)/],
    ["orphan_file without journal", { features: "^has_journal,orphan_file" }, /orphan_file/],
    ["root owner", { rootOwner: "root" }, /root_owner/],
    ["inline_data with 128-byte inodes", { features: "inline_data", inodeSize: 128 }, /inline_data/],
  ];
  for (const [what, opts, msg, code] of bad) {
    it(`${what}: ${code ?? "EINVAL"} naming the option`, () => {
      let err: unknown;
      try {
        mkfs(dev(), opts);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(Ext4Error);
      expect((err as Ext4Error).code).toBe(code ?? "EINVAL");
      expect((err as Ext4Error).message).toMatch(msg);
    });
  }

  it("a filesystem larger than the device: EINVAL, nothing written", () => {
    const d = dev();
    expect(() => mkfs(d, { size: "32M" })).toThrow(/larger than the device/);
    expect(d.bytes.every((b) => b === 0)).toBe(true);
  });

  it("a read-only device: EROFS", () => {
    expect(() => mkfs(new MemoryDevice(new Uint8Array(16 << 20), { readOnly: true }))).toThrow(expect.objectContaining({ code: "EROFS" }));
  });

  it("a failed mkfs of a new path leaves no file behind", () => {
    const img = path.join(work, "never.img");
    expect(() => mkfs(img, { size: "4k" })).toThrow(Ext4Error);
    expect(fs.existsSync(img)).toBe(false);
  });
});

describe("mkfs images in the kernel", () => {
  const kernelCases: [string, MkfsOptions][] = [
    ["default 4k", { size: "256M", blockSize: 4096 }],
    ["1k blocks", { size: "64M" }],
    ["2k blocks, orphan_file", { size: "128M", blockSize: 2048, features: "orphan_file" }],
    ["bigalloc", { size: "512M", features: "bigalloc" }],
    ["inline_data, metadata_csum_seed, large_dir", { size: "256M", features: "inline_data,metadata_csum_seed,large_dir" }],
    ["no journal, no metadata_csum, uninit_bg", { size: "256M", features: "^has_journal,^metadata_csum,uninit_bg" }],
    ["ext3-like", { size: "256M", features: "^extent,^64bit,^flex_bg,^huge_file,^metadata_csum,^dir_nlink,^extra_isize" }],
  ];
  for (const [what, opts] of kernelCases) {
    it(`${what}: the kernel mounts it rw and writes a file; e2fsck clean after; we read the file`, ({ skip }) => {
      const loop = loopMountSupport();
      if (!loop.ok) {
        console.warn(`skipping kernel mkfs case '${what}': ${loop.reason}`);
        skip(`loop mounts unavailable: ${loop.reason}`);
      }
      const img = path.join(work, "kernel.img");
      fs.rmSync(img, { force: true });
      mkfs(img, { ...opts, uuid: UUID, hashSeed: SEED, time: TIME });
      try {
        const data = Buffer.alloc(300000);
        for (let i = 0; i < data.length; i++) data[i] = (i * 7 + 3) & 0xff;
        withLoopMountSync(img, (mnt) => {
          expect(fs.readdirSync(mnt)).toEqual(["lost+found"]);
          fs.mkdirSync(path.join(mnt, "dir"));
          fs.writeFileSync(path.join(mnt, "dir", "file"), data);
          fs.writeFileSync(path.join(mnt, "small"), "tiny");
        });
        e2fsckClean(img);
        const v = mount(img, { readOnly: true });
        try {
          expect(v.readdirSync("/")).toEqual(["dir", "lost+found", "small"]);
          expect(Buffer.compare(v.readFileSync("/dir/file") as Buffer, data)).toBe(0);
          expect(v.readFileSync("/small", "utf8")).toBe("tiny");
        } finally {
          v.unmount();
        }
      } finally {
        fs.rmSync(img, { force: true });
      }
    });
  }
});
