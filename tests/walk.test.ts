// Directory walks on trees as real images have them: big linear directories
// (mkfs.ext4 -d writes no htree), each walk must cost O(entries) directory
// blocks, not a scan per name. Costs are counted (blocks parsed), never timed.

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { INODE_FLAGS } from "../host/format/inode.js";
import { dirStats } from "../host/fs/dir.js";
import { mount } from "../host/index.js";

const N = 20_000;
let work: string;
let image: string;

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
}

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-walk-"));
  const src = path.join(work, "src");
  fs.mkdirSync(path.join(src, "big"), { recursive: true });
  for (let i = 0; i < N; i++) fs.writeFileSync(path.join(src, "big", `entry-${i}`), i % 7 === 0 ? `${i}` : "");
  fs.symlinkSync("entry-1", path.join(src, "big", "link"));
  image = path.join(work, "linear.img");
  sh("mkfs.ext4", ["-q", "-F", "-b", "4096", "-N", String(N + 64), "-d", src, image, "64M"]);
}, 120_000);

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe("a 20 000-entry linear directory", () => {
  it("is linear (mkfs -d writes no index), so the test exercises linear lookups", () => {
    const vol = mount(image, { readOnly: true });
    try {
      expect(vol.inodeOf("/big").flags & INODE_FLAGS.INDEX).toBe(0);
    } finally {
      vol.unmount();
    }
  });

  it("readdirSync({ withFileTypes }) + lstatSync(join) per entry parses each directory block O(1) times", () => {
    const vol = mount(image, { readOnly: true });
    try {
      const blocks = Math.ceil(vol.statSync("/big").size / 4096);
      dirStats.blocksParsed = 0;
      const ents = vol.readdirSync("/big", { withFileTypes: true });
      expect(ents.length).toBe(N + 1);
      let files = 0;
      for (const e of ents) {
        const st = vol.lstatSync(path.posix.join("/big", e.name as string));
        if (st.isFile()) files++;
        expect(st.ino).toBe(e.ino);
      }
      expect(files).toBe(N);
      // One readdir pass plus the root's block: a per-name scan would be ~N * blocks / 2.
      expect(dirStats.blocksParsed).toBeLessThanOrEqual(2 * blocks + 4);
    } finally {
      vol.unmount();
    }
  });

  it("lookups without a readdir first scan the directory once, and misses are still misses", () => {
    const vol = mount(image, { readOnly: true });
    try {
      const blocks = Math.ceil(vol.statSync("/big").size / 4096);
      dirStats.blocksParsed = 0;
      for (let i = N - 1; i >= 0; i -= 3) expect(vol.statSync(`/big/entry-${i}`).size).toBe(i % 7 === 0 ? String(i).length : 0);
      for (let i = 0; i < 1000; i++) expect(vol.existsSync(`/big/absent-${i}`)).toBe(false);
      expect(vol.readlinkSync("/big/link")).toBe("entry-1");
      expect(dirStats.blocksParsed).toBeLessThanOrEqual(2 * blocks + 4);
    } finally {
      vol.unmount();
    }
  });
});
