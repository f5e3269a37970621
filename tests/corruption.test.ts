// Seeded corruption of metadata: small images made at run time with
// `mkfs.ext4 -d` (an htree directory, a depth >= 1 extent tree, fast and slow
// symlinks, xattrs in the inode and in a block; inline_data, 1 KiB block,
// no-metadata_csum, block-mapped, bigalloc and meta_bg variants), then for
// each seed 1-8 bytes or
// fields of one metadata block are changed (superblock, group descriptors, an
// inode, a directory or htree block, an extent or indirect block, an xattr
// block, a slow symlink's block) and the image is mounted and walked with and
// without checksum verification. Every failure must be a typed Ext4Error:
// no hang, no trap, no foreign exception, no write, bounded memory. On
// metadata_csum images a walk that reports nothing wrong must also give the
// pristine answer, since every byte that feeds it is checksummed.
//
// A second set of mutants (metadata_csum variants) has the damaged structure's
// checksum rewritten (helpers/recsum.ts), so only the structure is wrong, as
// the kernel's structural checks expect; a sample of them is also mounted by
// the kernel (ro,noload), and wherever the kernel reads a file we must read the
// same bytes or fail typed, and never return bytes for a file it refuses
// (helpers/robust-kernel.ts).
//
// FUZZ_SEEDS=<n> sets the seeds per image variant (default 50), or
// FUZZ_SEEDS=<from>-<to> a range of them for a longer campaign;
// FUZZ_RESUM_SEEDS=<n> the checksum-rewritten mutants per variant (default 24)
// and FUZZ_KERNEL=<n> how many of those the kernel reads too (default 6);
// FUZZ_ONLY=<variant>:<seed> (or <variant>+:<seed> for a rewritten one) reruns
// one seed and prints what each walk saw (with FUZZ_DUMP=<file>, the mutated
// image is written there too).

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Ext4Error, MemoryDevice, mount, type BlockDevice, type MountOptions } from "../host/index.js";
import { INODE_FLAGS } from "../host/format/inode.js";
import { compareVolumeWithTree } from "./helpers/compare.js";
import { runSync } from "./helpers/exec.js";
import { mkfsEnv } from "./helpers/images.js";
import { WalkRunner, type JobOutcome } from "./helpers/robust-pool.js";
import { compareWithKernel, kernelWalk } from "./helpers/robust-kernel.js";
import { walkImage, type WalkResult } from "./helpers/robust-walk.js";
import { loopMountSupport } from "./helpers/kernel.js";
import { buildTree, CHECKSUMMED, discoverMetadata, mutate, resum, type ImageInfo, type Variant } from "./helpers/robust-mutate.js";

const SEED_RANGE = /^(\d+)-(\d+)$/.exec(process.env.FUZZ_SEEDS ?? "");
const [SEED_FROM, SEED_TO] = SEED_RANGE ? [Number(SEED_RANGE[1]), Number(SEED_RANGE[2])] : [0, Number(process.env.FUZZ_SEEDS ?? 50)];
const ONLY = /^([\w+-]+):(\d+)$/.exec(process.env.FUZZ_ONLY ?? "");
const PER_WALK_MS = 30_000; // a hang bound, not a speed target: generous for a loaded 2-core machine
// Mutants whose checksums are rewritten (metadata_csum variants), and how many of them the kernel also reads.
const RESUM_SEEDS = Number(process.env.FUZZ_RESUM_SEEDS ?? 24);
const KERNEL_SAMPLE = Number(process.env.FUZZ_KERNEL ?? 6);
const IMAGE_MIB = 16;

const VARIANTS: Variant[] = [
  { name: "ext4-4k", args: ["-b", "4096", "-g", "1024"], csum: true },
  { name: "inline-data", args: ["-b", "4096", "-g", "1024", "-O", "inline_data"], csum: true },
  { name: "ext4-1k", args: ["-b", "1024"], csum: true },
  { name: "no-csum", args: ["-b", "4096", "-g", "1024", "-O", "^metadata_csum,uninit_bg"], csum: false },
  { name: "no-extents", args: ["-b", "4096", "-g", "1024", "-O", "^extent,^64bit,^flex_bg"], csum: true },
  { name: "bigalloc-1k", args: ["-b", "1024", "-O", "bigalloc", "-C", "16384"], csum: true },
  { name: "meta-bg", args: ["-b", "1024", "-g", "256", "-O", "meta_bg,^resize_inode"], csum: true },
];


/** Does the mutated superblock still ask for metadata checksums? (Clearing the bit is undetectable.) */
const keepsCsum = (img: Uint8Array) => (new DataView(img.buffer, img.byteOffset).getUint32(1024 + 0x64, true) & 0x400) !== 0;

// ---- the suite ---------------------------------------------------------------

interface ModeTally { outcomes: Record<string, number> }

/** A walk's outcome as the tallies name it; hangs, crashes and untyped failures are recorded in `failures`. */
function classifyOutcome(out: JobOutcome, where: string, failures: string[]): string {
  if (out.kind === "hang") { failures.push(`${where}: no answer within ${out.ms} ms`); return "HANG"; }
  if (out.kind === "crash") { failures.push(`${where}: ${out.message}`); return "CRASH"; }
  const r = out.result;
  if (r.bugs.length) { failures.push(`${where}: ${r.bugs.slice(0, 3).join(" || ")}`); return "BUG"; }
  return !r.mounted ? `refused:${r.mountError ?? "?"}` : Object.keys(r.errors).length ? "walked-with-errors" : "walked-clean";
}

describe("seeded metadata corruption", () => {
  // Temporary files are made in beforeAll: a describe body also runs when -t filters every test out.
  let tmp = "";
  let tree = "";
  const infos = new Map<string, ImageInfo>();
  const runner = new WalkRunner();
  const tallies = new Map<string, ModeTally>();
  let seedsRun = 0;
  const started = Date.now();

  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-corrupt-"));
    tree = path.join(tmp, "tree");
    fs.mkdirSync(tree);
    buildTree(tree);
    for (const v of VARIANTS) {
      const file = path.join(tmp, `${v.name}.img`);
      runSync("mkfs.ext4", ["-q", "-F", "-t", "ext4", "-I", "256", ...v.args, "-d", tree, file, `${IMAGE_MIB}M`], { env: mkfsEnv(tmp) });
      // mkfs -d writes linear directories; e2fsck -D indexes the big one (exit 1: it changed something).
      runSync("e2fsck", ["-fyD", file], { okCodes: [0, 1] });
      runSync("e2fsck", ["-fn", file]);
      infos.set(v.name, discoverMetadata(v, file));
    }
  });

  afterAll(async () => {
    await runner.close();
    fs.rmSync(tmp, { recursive: true, force: true });
    const lines = [...tallies].map(([k, t]) => `${k.padEnd(34)} ${Object.entries(t.outcomes).sort().map(([o, n]) => `${o}:${n}`).join("  ")}`);
    console.log(`\nseeded corruption: ${seedsRun} seeds, ${(Date.now() - started) / 1000} s\n${lines.join("\n")}\n`);
  });

  it.each(VARIANTS.map((v) => v.name))("%s: pristine image reads like its source", (name) => {
    const info = infos.get(name)!;
    expect(info.regions.get("dir")?.length ?? 0).toBeGreaterThan(3);
    if (name !== "no-extents") expect(info.regions.get("extent")?.length ?? 0).toBeGreaterThan(0);
    else expect(info.regions.get("indirect")?.length ?? 0).toBeGreaterThan(0);
    expect(info.regions.get("xattr")?.length ?? 0).toBeGreaterThan(0);
    expect(info.regions.get("gdt")?.length ?? 0).toBeGreaterThan(name === "meta-bg" ? 3 : 0);
    for (const mountOptions of [undefined, "buffered_iomap"]) {
      const vol = mount(info.image.slice(), { readOnly: true, mountOptions });
      try {
        // The shapes the mutations are meant to hit are really there.
        expect(vol.inodeOf("/bigdir").flags & INODE_FLAGS.INDEX, "bigdir has an htree").toBeTruthy();
        if (name === "inline-data") expect(vol.inodeOf("/tiny").flags & INODE_FLAGS.INLINE_DATA, "tiny is inline").toBeTruthy();
        else expect(info.regions.get("symlink")?.length ?? 0, "slow-link has a block").toBeGreaterThan(0);
        compareVolumeWithTree(vol, tree, { timePolicy: { keepsNsec: false, range: "wrap32" }, checkAtime: false });
      } finally {
        vol.unmount();
      }
    }
  });

  it.each(VARIANTS.map((v) => v.name))("%s: corrupt metadata gives typed errors only", async (name) => {
    const info = infos.get(name)!;
    const modes: { label: string; options: MountOptions }[] = [
      { label: "verify", options: { readOnly: true } },
      { label: "ignoreChecksums", options: { readOnly: true, ignoreChecksums: true } },
    ];
    // The answers of the pristine image, per mode and I/O path.
    const pristine = new Map<string, WalkResult>();
    for (const m of modes) {
      for (const io of ["", "buffered_iomap"]) {
        const r = walkImage({ image: info.image.slice(), options: { ...m.options, mountOptions: io } });
        expect({ errors: r.errors, bugs: r.bugs }).toEqual({ errors: {}, bugs: [] });
        pristine.set(`${m.label}/${io}`, r);
      }
    }
    const failures: string[] = [];
    if (ONLY && ONLY[1] !== name) return;
    for (let seed = ONLY ? Number(ONLY[2]) : SEED_FROM; seed < (ONLY ? Number(ONLY[2]) + 1 : SEED_TO); seed++) {
      const io = seed % 2 === 1 ? "buffered_iomap" : "";
      const mut = mutate(info, seed);
      for (const m of modes) {
        const key = `${name}/${m.label}`;
        const tally = tallies.get(key) ?? { outcomes: {} };
        tallies.set(key, tally);
        const image = mut.image.slice();
        const out: JobOutcome = await runner.run({ image, options: { ...m.options, mountOptions: io } }, PER_WALK_MS, true);
        const where = `seed ${seed} ${m.label}${io ? " iomap" : ""} [${mut.category}] ${mut.description}`;
        let outcome = classifyOutcome(out, where, failures);
        if (out.kind === "done") {
          const r = out.result;
          // Silent damage: a checksummed image read without complaint must read as before.
          const watched = info.variant.csum && m.label === "verify" && CHECKSUMMED.has(mut.category) && keepsCsum(mut.image);
          if (watched && r.mounted && outcome === "walked-clean" && r.digest !== pristine.get(`${m.label}/${io}`)!.digest) {
            outcome = "SILENT";
            failures.push(`${where}: read without error but the answers differ from the pristine image's`);
          }
        }
        tally.outcomes[outcome] = (tally.outcomes[outcome] ?? 0) + 1;
        if (ONLY) console.log(`${where}\n  -> ${outcome}`, out.kind === "done" ? { ...out.result, digest: undefined } : out);
        if (ONLY && process.env.FUZZ_DUMP) fs.writeFileSync(process.env.FUZZ_DUMP, mut.image);
      }
      seedsRun++;
    }
    if (failures.length) console.log(`${name}: ${failures.length} failure(s)\n${failures.join("\n")}`);
    expect(failures, `${failures.length} seed(s) misbehaved; rerun one with FUZZ_ONLY=${name}:<seed>`).toEqual([]);
  }, 60_000 + (SEED_TO - SEED_FROM) * 2 * PER_WALK_MS);

  const CSUM_VARIANTS = VARIANTS.filter((v) => v.csum).map((v) => v.name);

  it.each(CSUM_VARIANTS)("%s: rewriting the pristine checksums changes nothing", (name) => {
    const info = infos.get(name)!;
    const img = info.image.slice();
    for (const regions of info.regions.values()) for (const r of regions) resum(info, r, img);
    expect(Buffer.compare(img, info.image), "the rewriter agrees with every checksum e2fsprogs wrote").toBe(0);
  });

  // Valid checksums, bad structure: what the kernel's structural checks are for. Every failure must be
  // typed, and on a sample the kernel reads the same image: where it reads a file we read the same
  // bytes or fail typed; where it refuses a file (or the mount) we must not return bytes either.
  it.each(CSUM_VARIANTS)("%s: mutants with rewritten checksums give typed errors and never more than the kernel", async (name) => {
    const info = infos.get(name)!;
    const loop = loopMountSupport();
    if (!loop.ok) console.log(`seeded corruption: kernel comparison for ${name} skipped: ${loop.reason}`);
    const failures: string[] = [];
    const findings: string[] = [];
    const tally = tallies.get(`${name}/resummed`) ?? { outcomes: {} };
    tallies.set(`${name}/resummed`, tally);
    const step = Math.max(1, Math.floor(RESUM_SEEDS / Math.max(1, KERNEL_SAMPLE)));
    let compared = 0;
    let agreed = 0;
    for (let seed = 0; seed < RESUM_SEEDS; seed++) {
      if (ONLY && (ONLY[1] !== `${name}+` || Number(ONLY[2]) !== seed)) continue;
      const io = seed % 2 === 1 ? "buffered_iomap" : "";
      const mut = mutate(info, seed, true);
      const withKernel = loop.ok && (ONLY !== null || (seed % step === 0 && compared < KERNEL_SAMPLE));
      const file = path.join(tmp, `${name}-resummed-${seed}.img`);
      if (withKernel) fs.writeFileSync(file, mut.image);
      const out = await runner.run({ image: mut.image.slice(), options: { readOnly: true, mountOptions: io }, collectFiles: withKernel }, PER_WALK_MS, true);
      const where = `seed ${seed}${io ? " iomap" : ""} [${mut.category}] ${mut.description}`;
      const outcome = classifyOutcome(out, where, failures);
      if (out.kind === "done") {
        const r = out.result;
        if (withKernel) {
          const k = kernelWalk(file);
          const c = compareWithKernel(r, k);
          compared++;
          agreed += c.agree;
          for (const d of c.differ) failures.push(`${where}: different bytes from the kernel's: ${d}`);
          for (const d of c.oursOnly) findings.push(`${where}: ${d}`);
          if (ONLY) console.log({ kernel: k, ours: r.fileOutcomes, comparison: c });
        }
      }
      if (withKernel) fs.rmSync(file, { force: true });
      tally.outcomes[outcome] = (tally.outcomes[outcome] ?? 0) + 1;
      if (ONLY) console.log(`${where}\n  -> ${outcome}`, out.kind === "done" ? { ...out.result, digest: undefined, fileOutcomes: undefined } : out);
      if (ONLY && process.env.FUZZ_DUMP) fs.writeFileSync(process.env.FUZZ_DUMP, mut.image);
      seedsRun++;
    }
    if (loop.ok && !ONLY) console.log(`${name}: ${compared} checksummed mutants compared with the kernel, ${agreed} files read alike, ${findings.length} read by us only`);
    if (findings.length) console.log(`${name}: bytes we returned where the kernel returned none:\n${findings.join("\n")}`);
    if (failures.length) console.log(`${name}: ${failures.length} failure(s)\n${failures.join("\n")}`);
    expect(failures, `rerun one with FUZZ_ONLY=${name}+:<seed>`).toEqual([]);
    expect(findings, `rerun one with FUZZ_ONLY=${name}+:<seed>`).toEqual([]);
  }, 60_000 + RESUM_SEEDS * (PER_WALK_MS + 5_000));
});

// ---- sizes past what the page cache indexes ---------------------------------------

describe("file sizes near the 16 TiB limit", () => {
  let tmp = "";
  const runner = new WalkRunner();
  beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-hugefile-")); });
  afterAll(async () => {
    await runner.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("reads a sparse file of s_maxbytes (16 TiB less a block) as holes, in bounded time, through both paths; refuses one a byte larger", async () => {
    const src = path.join(tmp, "src");
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, "huge"), "head");
    const file = path.join(tmp, "img");
    runSync("mkfs.ext4", ["-q", "-F", "-t", "ext4", "-d", src, file, "8M"], { env: mkfsEnv(tmp) });
    // s_maxbytes, (2^32 - 1) blocks: page indexes pass 2^31 halfway (signed wasm returns).
    // One byte more and __ext4_iget refuses the inode (bad i_size value), as we must.
    const over = path.join(tmp, "over");
    fs.copyFileSync(file, over);
    runSync("debugfs", ["-w", "-R", "sif /huge size 0xffffffff001", over]);
    const overVol = mount(new Uint8Array(fs.readFileSync(over)), { readOnly: true });
    try {
      expect(() => overVol.lstatSync("/huge")).toThrow(expect.objectContaining({ code: "EFSCORRUPTED" }));
    } finally {
      overVol.unmount();
    }
    runSync("debugfs", ["-w", "-R", "sif /huge size 0xffffffff000", file]);
    const image = new Uint8Array(fs.readFileSync(file));
    for (const mountOptions of [undefined, "buffered_iomap"]) {
      // The walk samples head, middle (8 TiB) and tail of files this large.
      const out = await runner.run({ image, options: { readOnly: true, mountOptions } }, PER_WALK_MS);
      expect(out.kind).toBe("done");
      if (out.kind !== "done") return;
      expect({ bugs: out.result.bugs, errors: out.result.errors, files: out.result.files }).toEqual({ bugs: [], errors: {}, files: 1 });
    }
    const vol = mount(image, { readOnly: true });
    try {
      const fd = vol.openSync("/huge");
      const buf = Buffer.alloc(8192, 0xaa);
      expect(vol.readSync(fd, buf, 0, buf.length, 2 ** 43 + 5)).toBe(8192);
      expect(buf.every((b) => b === 0)).toBe(true);
      // The file ends at s_maxbytes, 2^44 - 4096.
      expect(vol.readSync(fd, buf, 0, buf.length, 2 ** 44 - 6000)).toBe(6000 - 4096);
      expect(vol.readSync(fd, buf, 0, buf.length, 2 ** 44 - 4096)).toBe(0);
      expect(vol.readSync(fd, buf, 0, 4, 0)).toBe(4);
      expect(buf.subarray(0, 4).toString()).toBe("head");
    } finally {
      vol.unmount();
    }
  });
});

// ---- devices that are too short, empty or failing ------------------------------

describe("bad devices at mount", () => {
  let image: Uint8Array;
  let tmp = "";
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-baddev-"));
    const src = path.join(tmp, "src");
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, "file"), "x".repeat(10_000));
    const file = path.join(tmp, "img");
    runSync("mkfs.ext4", ["-q", "-F", "-t", "ext4", "-d", src, file, "8M"], { env: mkfsEnv(tmp) });
    image = fs.readFileSync(file);
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  const typed = (fn: () => unknown): string => {
    try {
      fn();
    } catch (e) {
      expect(e, (e as Error).stack).toBeInstanceOf(Ext4Error);
      return (e as Ext4Error).code;
    }
    return "mounted";
  };

  it("refuses truncated images and a zero-filled device with typed errors", () => {
    expect(typed(() => mount(image.slice(0, 2048), { readOnly: true }))).toMatch(/^(EINVAL|EFSCORRUPTED|EIO)$/);
    expect(typed(() => mount(new Uint8Array(image.length), { readOnly: true }))).toBe("EINVAL");
    expect(typed(() => mount(new Uint8Array(100), { readOnly: true }))).toBe("EINVAL");
    // Half the image: read-only mounts may salvage what is there, but every read must fail typed.
    const half = image.slice(0, image.length / 2);
    const code = typed(() => {
      const vol = mount(half, { readOnly: true });
      try {
        vol.readFileSync("/file");
      } finally {
        vol.unmount();
      }
    });
    expect(["mounted", "EIO", "EFSCORRUPTED"]).toContain(code);
    expect(typed(() => mount(image.slice(0, image.length / 2)))).toBe("EINVAL");
  });

  it("turns a device whose read() throws into a typed error", () => {
    const failing = (failAfter: number): { dev: BlockDevice; reads: () => number } => {
      let reads = 0;
      const inner = new MemoryDevice(image, { readOnly: true });
      const dev: BlockDevice = {
        size: image.length,
        readOnly: true,
        read(pos, dst) {
          if (reads++ >= failAfter) throw new Error(`simulated media error at ${pos}`);
          inner.read(pos, dst);
        },
        write() { throw new Error("no writes expected"); },
        flush() {},
        close() {},
      };
      return { dev, reads: () => reads };
    };
    const mountAndRead = (dev: BlockDevice) => typed(() => {
      const vol = mount(dev, { readOnly: true });
      try {
        vol.readFileSync("/file");
      } finally {
        vol.unmount();
      }
    });
    // How many device reads mount + one file read take, then fail each of them in turn.
    const healthy = failing(Infinity);
    expect(mountAndRead(healthy.dev)).toBe("mounted");
    const needed = healthy.reads();
    expect(needed).toBeGreaterThan(3);
    for (let failAfter = 0; failAfter < needed; failAfter++) {
      const code = mountAndRead(failing(failAfter).dev);
      expect(code, `read() failing after ${failAfter} calls`).toBe("EIO");
    }
  });
});
