// Lookups in indexed directories go through the dx tree for every hash
// version (legacy, half_md4, tea; signed and unsigned), reading only a few
// blocks per name, and agree with the directory's full listing.

import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemoryDevice, mount } from "../host/index.js";

class CountingDevice extends MemoryDevice {
  reads = 0;
  override read(pos: number, dst: Uint8Array): void { this.reads++; super.read(pos, dst); }
}

let work: string;
let src: string;
const N = 3000;
// Names with high bytes exercise the signed/unsigned distinction.
const nameOf = (i: number) => Buffer.concat([Buffer.from(`entry-${i}-`), Buffer.from([0x80 + (i % 120), 0xc3, 0xa9])]);

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-htree-"));
  src = path.join(work, "src");
  fs.mkdirSync(path.join(src, "big"), { recursive: true });
  for (let i = 0; i < N; i++) fs.writeFileSync(Buffer.concat([Buffer.from(path.join(src, "big") + "/"), nameOf(i)]), `${i}\n`);
});

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const VARIANTS = [
  { hash: "legacy", flags: 1, expectVersion: 0 },
  { hash: "half_md4", flags: 1, expectVersion: 1 },
  { hash: "tea", flags: 1, expectVersion: 2 },
  { hash: "legacy", flags: 2, expectVersion: 0 },
  { hash: "half_md4", flags: 2, expectVersion: 1 },
  { hash: "tea", flags: 2, expectVersion: 2 },
  { hash: "half_md4", flags: 1, expectVersion: 1, blockSize: 1024 },
];

describe.each(VARIANTS)("htree $hash (s_flags $flags) $blockSize", ({ hash, flags, expectVersion, blockSize }) => {
  let image: Uint8Array;
  beforeAll(() => {
    const img = path.join(work, `${hash}-${flags}-${blockSize ?? 4096}.img`);
    execFileSync("mkfs.ext4", ["-q", "-F", ...(blockSize ? ["-b", String(blockSize)] : []), "-d", src, img, "32M"]);
    // Re-index every directory with the chosen hash and signedness.
    execFileSync("debugfs", ["-w", "-R", `ssv def_hash_version ${hash}`, img], { stdio: "ignore" });
    execFileSync("debugfs", ["-w", "-R", `ssv flags ${flags}`, img], { stdio: "ignore" });
    const r = execFileSync("sh", ["-c", `e2fsck -fyD ${img} >/dev/null 2>&1; e2fsck -fn ${img} >/dev/null 2>&1; echo $?`], { encoding: "utf8" });
    expect(r.trim()).toBe("0");
    const dump = execFileSync("debugfs", ["-R", "htree_dump /big", img], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    expect(dump).toContain(`Hash Version: ${expectVersion}`);
    image = new Uint8Array(fs.readFileSync(img));
  });

  it("finds every name through the index with a handful of block reads", () => {
    const dev = new CountingDevice(image.slice(), { readOnly: true });
    const v = mount(dev, { readOnly: true });
    v.lstatSync("/big"); // warm the path to the directory itself
    let maxReads = 0;
    for (let i = 0; i < N; i += 7) {
      v.dropCaches();
      v.lstatSync("/big"); // the directory inode again, from a cold cache
      const before = dev.reads;
      const p = Buffer.concat([Buffer.from("/big/"), nameOf(i)]);
      expect(v.readFileSync(p, "utf8")).toBe(`${i}\n`);
      maxReads = Math.max(maxReads, dev.reads - before);
    }
    // dx root + (interior) + leaf + inode table + file data: a linear scan would read dozens.
    expect(maxReads).toBeLessThanOrEqual(6);
    v.unmount();
  });

  it("agrees with the listing and says ENOENT for absent names", () => {
    const v = mount(image, { readOnly: true });
    const listed = v.readdirSync("/big", { encoding: "buffer" }) as Buffer[];
    expect(listed.length).toBe(N);
    const want = new Set(Array.from({ length: N }, (_, i) => nameOf(i).toString("latin1")));
    for (const n of listed) expect(want.has(n.toString("latin1"))).toBe(true);
    for (let i = N; i < N + 200; i++) {
      expect(v.existsSync(Buffer.concat([Buffer.from("/big/"), nameOf(i)]))).toBe(false);
    }
    v.unmount();
  });
});
