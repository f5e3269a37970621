// Small CLI behaviours: --version, `ls --json` of one non-directory, `cat`
// of a device or FIFO.

import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt, ROOT, runCli } from "./cli-helpers.js";

let work: string;
let img: string;
const isRoot = process.getuid?.() === 0;

beforeAll(() => {
  ensureBuilt();
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-cli-small-"));
  const src = path.join(work, "src");
  fs.mkdirSync(path.join(src, "etc"), { recursive: true });
  fs.writeFileSync(path.join(src, "etc/hostname"), "box\n");
  execFileSync("mkfifo", [path.join(src, "pipe")]);
  if (isRoot) execFileSync("mknod", [path.join(src, "null"), "c", "1", "3"]);
  else console.log("cli-small: not root, so no device node in the image (mknod needs root)");
  img = path.join(work, "a.img");
  execFileSync("mkfs.ext4", ["-q", "-F", "-d", src, img, "8M"]);
}, 120_000);

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe("ext4wasm --version", () => {
  it("prints package.json's version", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as { version: string };
    const r = runCli(["--version"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout.toString()).toBe(`ext4wasm ${pkg.version}\n`);
  });
});

describe("ls --json of a single non-directory", () => {
  it("names it by its basename, as in a listing, and keeps the path as given", () => {
    const r = runCli(["ls", "--json", img, "/etc/hostname"]);
    expect(r.status).toBe(0);
    const [e] = JSON.parse(r.stdout.toString()) as { name: string; path: string; type: string }[];
    expect(e).toMatchObject({ name: "hostname", path: "/etc/hostname", type: "file" });
    // The same name the listing of its directory gives it.
    const listed = (JSON.parse(runCli(["ls", "--json", img, "/etc"]).stdout.toString()) as { name: string }[]).map((x) => x.name);
    expect(listed).toEqual(["hostname"]);
  });
});

describe("cat of something with no data", () => {
  it("a FIFO: says so and fails", () => {
    const r = runCli(["cat", img, "/pipe"]);
    expect(r.status).toBe(1);
    expect(r.stdout.length).toBe(0);
    expect(r.stderr).toBe("ext4wasm: EINVAL: '/pipe' is a fifo: the image holds no data for it, cat\n");
  });

  it("a character device: says so, with its numbers, and fails", ({ skip }) => {
    if (!isRoot) skip("mknod needs root");
    const r = runCli(["cat", img, "/null"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe("ext4wasm: EINVAL: '/null' is a character special file 1, 3: the image holds no data for it, cat\n");
  });
});
