// The write path under each runtime: tests/runtime-smoke/write-smoke.mjs
// writes a tree into an empty image through the built bundle under node,
// deno and bun (each where installed; a missing runtime is reported), then
// e2fsck -fn must be clean, our reader must see the tree and bytes the
// script wrote, and so must the kernel where loop mounts work.

import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mount } from "../host/index.js";
import { ensureBuilt } from "./helpers/built-package.js";
import { missingTools, runSync } from "./helpers/exec.js";
import { mkfsEnv } from "./helpers/images.js";
import { loopMountSupport, withLoopMount } from "./helpers/kernel.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SMOKE = path.join(ROOT, "tests/runtime-smoke/write-smoke.mjs");
const missing = missingTools(["mkfs.ext4", "e2fsck"], "e2fsprogs");
if (missing) console.log(`runtimes-write: skipped: ${missing}`);

function findBinary(name: string): string | undefined {
  const local = path.join(ROOT, "node_modules/.bin", name);
  if (fs.existsSync(local)) return local;
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    const p = path.join(dir, name);
    if (dir && fs.existsSync(p)) return p;
  }
  return undefined;
}
const denoBin = findBinary("deno");
const bunBin = findBinary("bun");
if (!denoBin) console.warn("runtimes-write.test: SKIPPING deno: no deno binary in node_modules/.bin or PATH");
if (!bunBin) console.warn("runtimes-write.test: SKIPPING bun: no bun binary in node_modules/.bin or PATH");

/** The script's bytes(). */
function bytes(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

let work: string;
beforeAll(() => {
  if (missing) return;
  ensureBuilt();
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-rtwrite-"));
});
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

function run(argv: string[]): Promise<{ runtime: string; steps: string[] }> {
  return new Promise((resolve, reject) => {
    execFile(argv[0], argv.slice(1), { cwd: ROOT, encoding: "utf8", timeout: 90_000, env: { ...process.env, NO_COLOR: "1" } }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${argv.join(" ")} failed: ${err.message}\n${stdout}\n${stderr}`));
      try { resolve(JSON.parse(stdout)); } catch { reject(new Error(`no JSON report:\n${stdout}\n${stderr}`)); }
    });
  });
}

/** What the script leaves: path -> sha256, symlink targets, modes, nlinks. */
function listing(f: { readdirSync: Function; lstatSync: Function; readFileSync: Function; readlinkSync: Function }, root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const name of (f.readdirSync(root + rel) as string[]).sort()) {
      const r = `${rel}/${name}`;
      const st = f.lstatSync(root + r);
      if (st.isDirectory()) { out[r] = `dir ${st.mode.toString(8)}`; walk(r); }
      else if (st.isSymbolicLink()) out[r] = `-> ${f.readlinkSync(root + r)}`;
      else out[r] = `${st.mode.toString(8)} n${st.nlink} ${st.size} ${sha(f.readFileSync(root + r))}${r === "/tree/hello.txt" ? ` m${st.mtimeMs}` : ""}`;
    }
  };
  walk("/tree");
  return out;
}

async function check(argv: string[], runtime: string): Promise<void> {
  const img = path.join(work, `${runtime}.img`);
  runSync("mkfs.ext4", ["-q", "-F", img, "32M"], { env: mkfsEnv(work) });
  const report = await run([...argv, img]);
  expect(report).toEqual({ runtime, steps: ["written"] });
  const fsck = runSync("e2fsck", ["-fn", img], { okCodes: [0, 1, 4, 8] });
  expect(fsck.code, fsck.stdout + fsck.stderr).toBe(0);
  const hello = Buffer.from(`hello from ${runtime}\n`);
  const want = {
    "/tree/a": "dir 40755", "/tree/a/b": "dir 40755",
    "/tree/a/b/hard": `100644 n2 ${hello.length} ${sha(hello)}`,
    "/tree/a/b/log": `100640 n1 8 ${sha(Buffer.from("one\ntwo\n"))}`,
    "/tree/a/big.bin": `100600 n1 ${3 * 1024 * 1024 + 123} ${sha(bytes(3 * 1024 * 1024 + 123, 7))}`,
    "/tree/a/link": "-> ../hello.txt",
    "/tree/hello.txt": `100644 n2 ${hello.length} ${sha(hello)} m1000000001000`,
    "/tree/renamed": `100644 n1 7 ${sha(Buffer.from("replace"))}`,
  };
  const vol = mount(img, { readOnly: true });
  try {
    expect(listing(vol, "")).toEqual(want);
  } finally {
    vol.unmount();
  }
  if (loopMountSupport().ok) expect(await withLoopMount(img, (mnt) => listing(fs, mnt), { readOnly: true })).toEqual(want);
}

describe.skipIf(!!missing)("the write path under each runtime", () => {
  it("node writes a tree, fsyncs and unmounts clean", async () => { await check([process.execPath, SMOKE], "node"); }, 120_000);
  it.skipIf(!denoBin)("deno writes a tree with read and write access to the image", async () => {
    await check([denoBin!, "run", `--allow-read=${work},${ROOT}`, `--allow-write=${work}`, SMOKE], "deno");
  }, 120_000);
  it.skipIf(!bunBin)("bun writes a tree", async () => { await check([bunBin!, "run", SMOKE], "bun"); }, 120_000);
});
