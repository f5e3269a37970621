// `ext4wasm mkfs`: mke2fs's option names reach mkfs() with mke2fs's meanings
// (the result equals mkfs.ext4 with the same arguments), --json prints the
// geometry, SIZE is read as mke2fs reads it, and mistakes are one line and
// a non-zero exit.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt, runCli } from "./cli-helpers.js";
import { runSync } from "./helpers/exec.js";
import { MKE2FS_CONF } from "./helpers/mke2fs-conf.js";

const UUID = "0b7d5e5c-0c0e-4c6f-9a3e-6c1f2d2b8a11";
const SEED = "5d3c0a9e-8f41-4b7a-9d2c-1e6f7a8b9c0d";
let work: string;

beforeAll(() => {
  ensureBuilt();
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-mkfs-cli-"));
  fs.writeFileSync(path.join(work, "mke2fs.conf"), MKE2FS_CONF);
}, 120_000);
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const header = (img: string) => runSync("dumpe2fs", ["-h", img]).stdout.split("\n").filter((l) => !/^(Lifetime writes|Checksum):/.test(l)).join("\n");

describe("ext4wasm mkfs", () => {
  it("takes mke2fs's options: the same filesystem as mkfs.ext4 with the same arguments", () => {
    const args = ["-b", "2048", "-O", "^has_journal,inline_data", "-N", "3000", "-I", "512", "-L", "cli", "-m", "1", "-U", UUID, "-E", `hash_seed=${SEED},root_owner=7:8`];
    const args2 = ["-b", "2048", "-O", "inline_data", "-J", "size=8", "-i", "8192", "-U", UUID, "-E", `hash_seed=${SEED}`];
    for (const a of [args, args2]) {
      const mine = path.join(work, "mine.img");
      const ref = path.join(work, "ref.img");
      fs.rmSync(mine, { force: true });
      fs.rmSync(ref, { force: true });
      // A plain SIZE counts blocks of -b's size, as mke2fs counts them.
      const r = runCli(["mkfs", "-q", ...a, mine, "65536"], { SOURCE_DATE_EPOCH: "1700000000" });
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      expect(r.stdout.length).toBe(0);
      runSync("mkfs.ext4", ["-q", "-F", ...a, ref, "65536"], { env: { ...process.env, MKE2FS_CONFIG: path.join(work, "mke2fs.conf"), E2FSPROGS_FAKE_TIME: "1700000000" } });
      expect(header(mine)).toBe(header(ref));
      const fsck = runSync("e2fsck", ["-fn", mine], { okCodes: [0, 1, 4] });
      expect(fsck.code, fsck.stdout).toBe(0);
    }
  });

  it("--json prints the geometry; without SIZE an existing file keeps its size", () => {
    const img = path.join(work, "json.img");
    fs.rmSync(img, { force: true });
    fs.writeFileSync(img, "");
    fs.truncateSync(img, 300 << 20);
    const r = runCli(["mkfs", "--json", "-U", UUID, img]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const g = JSON.parse(r.stdout.toString());
    expect(g).toMatchObject({ blockSize: 1024, blocksCount: 307200, uuid: UUID, journalBlocks: 8192, groupCount: 38, reservedGdtBlocks: 256, flexBgSize: 16 });
    expect(g.backups).toEqual([8193, 24577, 40961, 57345, 73729, 204801, 221185]);
    expect(g.features).toContain("metadata_csum");
    expect(header(img)).toMatch(/^Block count:\s+307200$/m);
  });

  it("prints what it made, like mke2fs; refuses to overwrite a filesystem without -F", () => {
    const img = path.join(work, "text.img");
    fs.rmSync(img, { force: true });
    const r = runCli(["mkfs", img, "256M"]);
    expect(r.status).toBe(0);
    expect(r.stdout.toString()).toMatch(/^Creating filesystem with 262144 1k blocks and 65536 inodes\nFilesystem UUID: [0-9a-f-]{36}\nSuperblock backups stored on blocks: \n\t8193, 24577/);
    expect(fs.statSync(img).size).toBe(256 << 20);
    // Our reader lists the new root as ls -a does: its own ".", "..", and lost+found.
    const ls = runCli(["ls", "-a", img, "/"]);
    expect(ls.stdout.toString()).toBe(".\n..\nlost+found\n");
    const again = runCli(["mkfs", img, "256M"]);
    expect(again.status).toBe(1);
    expect(again.stderr).toBe(`ext4wasm: EEXIST: the image already holds an ext2/3/4 filesystem (use -F to overwrite it), mkfs '${img}'\n`);
    expect(runCli(["mkfs", "-F", "-q", img, "256M"]).status).toBe(0);
  });

  it("bad options: one line naming the option, exit 1 (2 for usage)", () => {
    const img = path.join(work, "bad.img");
    const cases: [string[], RegExp, number][] = [
      [["-O", "^has_journal,bogus"], /EINVAL: unknown filesystem feature 'bogus' \(-O\)/, 1],
      [["-E", "stride=4"], /EINVAL: unknown extended option 'stride' \(-E\)/, 1],
      [["-J", "device=/dev/sdb"], /EINVAL: unsupported journal option 'device=\/dev\/sdb'/, 1],
      [["-b", "x"], /bad block size \(-b\) 'x'/, 2],
      [["-m", "70"], /invalid reserved blocks percent \(-m\)/, 1],
      [["-E", "hash_seed"], /extended option 'hash_seed' needs a value/, 1],
    ];
    for (const [args, msg, status] of cases) {
      fs.rmSync(img, { force: true });
      const r = runCli(["mkfs", ...args, img, "64M"]);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr.split("\n").length).toBe(2);
      expect(r.status).toBe(status);
      expect(fs.existsSync(img)).toBe(false);
    }
    const tiny = runCli(["mkfs", img, "4k"]);
    expect(tiny.stderr).toMatch(/EINVAL: .*too small/);
    expect(tiny.status).toBe(1);
    const noSize = runCli(["mkfs", img]);
    expect(noSize.stderr).toMatch(/EINVAL: no size given/);
    expect(fs.existsSync(img)).toBe(false);
  });
});
