// What is given as the image: only a regular file or a block device holds
// one; a FIFO, a pipe or a character device is refused at once with EINVAL
// (opening a FIFO for reading would wait for a writer forever).

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount } from "../host/index.js";
import { BIN, ensureBuilt, ROOT } from "./cli-helpers.js";
import { globalSyncStuck } from "./helpers/exec.js";

let work: string;
let image: string;

beforeAll(() => {
  ensureBuilt();
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-input-"));
  image = path.join(work, "small.img");
  spawnSync("mkfs.ext4", ["-q", "-F", image, "8M"]);
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** Runs a shell command line with the CLI as $CLI; a hang is a timeout, not a stuck test. */
function shell(script: string): { status: number | null; stderr: string; timedOut: boolean } {
  const r = spawnSync("bash", ["-c", script], {
    cwd: work, env: { ...process.env, CLI: `${process.execPath} ${BIN}`, DIST: path.join(ROOT, "dist/index.mjs") }, encoding: "utf8", timeout: 20_000,
  });
  return { status: r.status, stderr: r.stderr, timedOut: (r.error as NodeJS.ErrnoException | undefined)?.code === "ETIMEDOUT" };
}

const REFUSED = /EINVAL: image must be a regular file or a block device \(this is a FIFO or pipe\), open '/;

describe("an image that is not a regular file or a block device", () => {
  it("a FIFO: `info` fails at once with EINVAL naming the path (no hang)", () => {
    const r = shell("rm -f fifo && mkfifo fifo && $CLI info fifo");
    expect(r.timedOut).toBe(false);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(REFUSED);
    expect(r.stderr).toContain("'fifo'");
  });

  it("a FIFO through the API: mount() throws EINVAL (no hang)", () => {
    const r = shell(`rm -f fifo2 && mkfifo fifo2 && node --input-type=module -e '
      const { mount } = await import(process.env.DIST);
      try { mount("fifo2", { readOnly: true }); console.error("mounted?"); process.exit(2); }
      catch (e) { console.error(e.code, e.message); process.exit(e.code === "EINVAL" ? 0 : 3); }'`);
    expect(r.timedOut).toBe(false);
    expect(r.stderr).toMatch(REFUSED);
    expect(r.status).toBe(0);
  });

  it("a pipe (`<(cat img)`): says it must be a file, not 'device too small'", () => {
    const r = shell("$CLI info <(cat small.img)");
    expect(r.timedOut).toBe(false);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(REFUSED);
    expect(r.stderr).not.toMatch(/too small/);
  });

  it("a character device: EINVAL", () => {
    expect(() => mount("/dev/null", { readOnly: true })).toThrow(/EINVAL: image must be a regular file or a block device \(this is a character device\), open '\/dev\/null'/);
  });

  it("a regular file still mounts, read-only and read-write", () => {
    for (const readOnly of [true, false]) {
      const v = mount(image, { readOnly });
      expect(v.readdirSync("/")).toContain("lost+found");
      v.unmount();
    }
  });
});

// ---- a whole disk given without --offset ------------------------------------

/** mkfs.ext4 of `bytes` bytes at byte `offset` of `disk` (mke2fs -E offset). */
function mkfsAt(disk: string, offset: number, bytes: number): void {
  const r = spawnSync("mkfs.ext4", ["-q", "-F", "-E", `offset=${offset}`, disk, `${bytes >> 10}k`], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`mkfs.ext4 failed: ${r.stderr}`);
}

/** An MBR with the given primary entries [type, startLba, sectors]. */
function writeMbr(fd: number, entries: [number, number, number][]): void {
  const mbr = Buffer.alloc(512);
  entries.forEach(([type, lba, n], i) => {
    const e = 446 + i * 16;
    mbr[e + 4] = type;
    mbr.writeUInt32LE(lba, e + 8);
    mbr.writeUInt32LE(n, e + 12);
  });
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  fs.writeSync(fd, mbr, 0, 512, 0);
}

/** GUID text to its on-disk bytes (first three fields little-endian). */
function guidBytes(g: string): Buffer {
  const h = g.replace(/-/g, "");
  const b = Buffer.from(h, "hex");
  b.subarray(0, 4).reverse();
  b.subarray(4, 6).reverse();
  b.subarray(6, 8).reverse();
  return b;
}

/** A GPT (protective MBR, header at LBA 1, 128 entries at LBA 2) with entries [typeGuid, firstLba, lastLba, name]. */
function writeGpt(fd: number, diskSectors: number, parts: [string, number, number, string][]): void {
  writeMbr(fd, [[0xee, 1, Math.min(diskSectors - 1, 0xffffffff)]]);
  const entries = Buffer.alloc(128 * 128);
  parts.forEach(([type, first, last, name], i) => {
    const e = entries.subarray(i * 128, (i + 1) * 128);
    guidBytes(type).copy(e, 0);
    guidBytes(`00000000-0000-4000-8000-00000000000${i + 1}`).copy(e, 16);
    e.writeBigUInt64LE(BigInt(first), 32);
    e.writeBigUInt64LE(BigInt(last), 40);
    Buffer.from(name, "utf16le").copy(e, 56);
  });
  const h = Buffer.alloc(92);
  h.write("EFI PART", 0, "latin1");
  h.writeUInt32LE(0x10000, 8);
  h.writeUInt32LE(92, 12);
  h.writeBigUInt64LE(1n, 24);
  h.writeBigUInt64LE(BigInt(diskSectors - 1), 32);
  h.writeBigUInt64LE(34n, 40);
  h.writeBigUInt64LE(BigInt(diskSectors - 34), 48);
  h.writeBigUInt64LE(2n, 72);
  h.writeUInt32LE(128, 80);
  h.writeUInt32LE(128, 84);
  h.writeUInt32LE(zlib.crc32(entries), 88);
  h.writeUInt32LE(zlib.crc32(h), 16);
  fs.writeSync(fd, h, 0, 92, 512);
  fs.writeSync(fd, entries, 0, entries.length, 1024);
}

const LINUX_FS = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
const ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";

function newDisk(name: string, bytes: number): { disk: string; fd: number } {
  const disk = path.join(work, name);
  fs.rmSync(disk, { force: true });
  const fd = fs.openSync(disk, "w+");
  fs.ftruncateSync(fd, bytes);
  return { disk, fd };
}

const cli = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { cwd: work, encoding: "utf8", timeout: 30_000 });

describe("a partitioned disk given without --offset", () => {
  it("GPT: the error names the scheme and every partition (index, type, offset, size); the named offset then mounts", () => {
    const { disk, fd } = newDisk("gpt.img", 64 << 20);
    writeGpt(fd, (64 << 20) / 512, [[ESP, 2048, 10239, "esp"], [LINUX_FS, 10240, 131038, "root"]]);
    fs.closeSync(fd);
    mkfsAt(disk, 10240 * 512, (131039 - 10240) * 512);
    const r = cli("info", "gpt.img");
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("EINVAL: 'gpt.img' is a partitioned disk (GPT), not a filesystem; pass --offset");
    expect(r.stderr).toContain(`partition 1 (EFI System "esp") at offset 1048576 (2048s), ${8192 * 512} bytes;`);
    expect(r.stderr).toContain(`partition 2 (Linux filesystem "root") at offset 5242880 (10240s), ${(131039 - 10240) * 512} bytes, ext2/3/4`);
    const ok = cli("ls", "--offset", "10240s", "gpt.img", "/");
    expect(ok.stderr).toBe("");
    expect(ok.stdout).toContain("lost+found");
  });

  it("the library's mount() names the partitions too (EINVAL), and mounts the one at the named offset", () => {
    const { disk, fd } = newDisk("gpt-api.img", 64 << 20);
    writeGpt(fd, (64 << 20) / 512, [[ESP, 2048, 10239, "esp"], [LINUX_FS, 10240, 131038, "root"]]);
    fs.closeSync(fd);
    mkfsAt(disk, 10240 * 512, (131039 - 10240) * 512);
    let err: (Error & { code?: string; partitionTable?: { partitions: { start: number }[] } }) | undefined;
    try {
      mount(disk, { readOnly: true }).unmount();
    } catch (e) {
      err = e as typeof err;
    }
    expect(err?.code).toBe("EINVAL");
    expect(err?.message).toContain("partitioned disk (GPT), not a filesystem");
    expect(err?.message).toContain("partition 2 (Linux filesystem \"root\") at offset 5242880");
    expect(err?.partitionTable?.partitions.map((p) => p.start)).toEqual([1048576, 5242880]);
    const vol = mount(disk, { readOnly: true, offset: 5242880 });
    try {
      expect(vol.readdirSync("/")).toContain("lost+found");
    } finally {
      vol.unmount();
    }
  });

  it("MBR with logical partitions: primaries and logicals, in order, with offsets", () => {
    const { disk, fd } = newDisk("mbr.img", 64 << 20);
    writeMbr(fd, [[0x0c, 2048, 8192], [0x05, 10240, 40960], [0x83, 51200, 79872]]);
    // One logical partition in the extended one: its EBR at the extended start.
    const ebr = Buffer.alloc(512);
    ebr[446 + 4] = 0x83;
    ebr.writeUInt32LE(2048, 446 + 8);
    ebr.writeUInt32LE(20480, 446 + 12);
    ebr[510] = 0x55;
    ebr[511] = 0xaa;
    fs.writeSync(fd, ebr, 0, 512, 10240 * 512);
    fs.closeSync(fd);
    mkfsAt(disk, 51200 * 512, 79872 * 512);
    const r = cli("info", "mbr.img");
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/'mbr\.img' is a partitioned disk \(MBR\)/);
    const order = [...r.stderr.matchAll(/partition (\d+) \(([^)]*)\) at offset (\d+)/g)].map((m) => [Number(m[1]), m[2], Number(m[3])]);
    expect(order).toEqual([[1, "W95 FAT32 LBA", 2048 * 512], [2, "Extended", 10240 * 512], [3, "Linux", 51200 * 512], [5, "Linux", 12288 * 512]]);
    expect(r.stderr).toContain(`at offset ${51200 * 512} (51200s), ${79872 * 512} bytes, ext2/3/4`);
  });

  it("a table made by sfdisk reads the same way (skipped without sfdisk)", (ctx) => {
    if (spawnSync("sfdisk", ["--version"]).status !== 0) {
      console.warn("[image-input] sfdisk missing (util-linux fdisk package): skipped");
      ctx.skip();
    }
    // sfdisk calls sync(2) on exit.
    const stuck = globalSyncStuck();
    if (stuck) {
      console.warn(`[image-input] sfdisk skipped: ${stuck}`);
      ctx.skip();
    }
    const { disk, fd } = newDisk("sfdisk.img", 64 << 20);
    fs.closeSync(fd);
    const s = spawnSync("sfdisk", ["-q", disk], { input: `label: gpt\nstart=2048, size=8192, type=${ESP}\nstart=10240, type=${LINUX_FS}\n`, encoding: "utf8" });
    expect(s.status, s.stderr).toBe(0);
    const dump = spawnSync("sfdisk", ["-J", disk], { encoding: "utf8" });
    const parts = (JSON.parse(dump.stdout) as { partitiontable: { partitions: { start: number; size: number }[] } }).partitiontable.partitions;
    mkfsAt(disk, parts[1].start * 512, parts[1].size * 512);
    const r = cli("info", "sfdisk.img");
    expect(r.status).toBe(1);
    for (const [i, p] of parts.entries()) expect(r.stderr).toContain(`partition ${i + 1} (${i === 0 ? "EFI System" : "Linux filesystem"}) at offset ${p.start * 512} (${p.start}s), ${p.size * 512} bytes`);
    expect(cli("info", "--offset", `${parts[1].start}s`, "sfdisk.img").status).toBe(0);
  });

  it("a whole-disk filesystem with a stale MBR signature still mounts; a disk with no table keeps the plain error", () => {
    const { disk, fd } = newDisk("stale.img", 16 << 20);
    fs.closeSync(fd);
    mkfsAt(disk, 0, 16 << 20);
    const fd2 = fs.openSync(disk, "r+");
    writeMbr(fd2, [[0x83, 2048, 4096]]); // ext4 leaves the first 1024 bytes alone
    fs.closeSync(fd2);
    expect(cli("info", "stale.img").status).toBe(0);
    const { fd: fd3 } = newDisk("blank.img", 4 << 20);
    fs.closeSync(fd3);
    const r = cli("info", "blank.img");
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/bad superblock magic/);
    expect(r.stderr).not.toMatch(/partitioned/);
  });
});
