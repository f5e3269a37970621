// What is given as the image: only a regular file or a block device holds
// one; a FIFO, a pipe or a character device is refused at once with EINVAL
// (opening a FIFO for reading would wait for a writer forever).

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount } from "../host/index.js";
import { BIN, ensureBuilt, ROOT } from "./cli-helpers.js";

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
