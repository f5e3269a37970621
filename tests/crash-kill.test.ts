// Real process kills: tests/helpers/crash-kill-child.mjs runs a workload
// through the built package on a file-backed image (its free space holding
// a marker) and reports each fsync that returned; we SIGKILL it at a seeded
// random moment, several rounds in each data mode. Then (a) our replay (a
// read-write mount) must leave an e2fsck-clean image with every reported
// fsync'd byte and, in data=ordered and data=journal, no marker in any
// file; and (b) the kernel replays a copy of the same killed image (a loop
// mount) and must show the same durable content (skipped with a printed
// reason without loop mounts).

import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import * as nfs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkfs, mount } from "../host/index.js";
import { expectClean, FIXED, rmrf } from "./helpers/bh-write.js";
import { ensureBuilt, ROOT } from "./helpers/built-package.js";
import { findMarker, MARKER } from "./helpers/crash-sweep.js";
import { missingTools } from "./helpers/exec.js";
import { loopMountSupport, withLoopMountSync } from "./helpers/kernel.js";
import { mulberry32 } from "./helpers/random.js";

const CHILD = path.join(ROOT, "tests/helpers/crash-kill-child.mjs");
const missing = missingTools(["e2fsck"], "e2fsprogs");
if (missing) console.log(`crash-kill: skipped: ${missing}`);
const loop = loopMountSupport();
if (!missing && !loop.ok) console.log(`crash-kill: kernel replays skipped: ${loop.reason}`);
const d = missing ? describe.skip : describe;

let work: string;
beforeAll(() => {
  if (missing) return;
  ensureBuilt();
  work = nfs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-crashkill-"));
});
afterAll(() => { if (work) rmrf(work); });

const SIZE = 32 << 20;
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

interface Report { kind: "ready" | "prefix" | "intent" | "durable"; path?: string; size?: number; sha?: string }

/** Runs the child on `img` and kills it `delayMs` after it is ready; returns its complete report lines. */
function runAndKill(img: string, seed: number, mountOptions: string, delayMs: number): Promise<Report[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, img, String(seed), mountOptions], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    let timer: NodeJS.Timeout | undefined;
    const guard = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (s: string) => {
      out += s;
      if (!timer && out.includes('"ready"')) timer = setTimeout(() => child.kill("SIGKILL"), delayMs);
    });
    child.stderr.on("data", (s: Buffer) => { err += s.toString(); });
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(guard);
      if (timer) clearTimeout(timer);
      if (signal !== "SIGKILL") return reject(new Error(`the workload ended by itself (code ${code}, signal ${signal}):\n${err}`));
      // A line cut by the kill is no report.
      const lines = out.split("\n").slice(0, -1);
      resolve(lines.map((l) => JSON.parse(l) as Report));
    });
  });
}

interface FileView { exists(p: string): boolean; read(p: string): Buffer; files(): string[] }

/** Every reported fsync holds in the view; in the no-stale modes no file holds the marker. Returns the durable content seen. */
function checkView(v: FileView, reports: Report[], noStale: boolean, label: string): Record<string, string> {
  const seen: Record<string, string> = {};
  const last = new Map<string, Report>();
  const docs = new Map<string, Set<string>>();
  for (const r of reports) {
    if (r.kind === "prefix") last.set(r.path!, r);
    if (r.kind === "durable") docs.set(r.path!, new Set([r.sha!]));
    if (r.kind === "intent") docs.get(r.path!)?.add(r.sha!) ?? docs.set(r.path!, new Set(["absent", r.sha!]));
  }
  for (const [p, r] of last) {
    expect(v.exists(p), `${label}: ${p} was fsync'd`).toBe(true);
    const b = v.read(p);
    expect(b.length, `${label}: ${p} size`).toBeGreaterThanOrEqual(r.size!);
    expect(sha(b.subarray(0, r.size)), `${label}: ${p}: its first ${r.size} bytes were fsync'd`).toBe(r.sha);
    seen[p] = `${r.size} ${sha(b.subarray(0, r.size))}`;
  }
  for (const [p, ok] of docs) {
    const got = v.exists(p) ? sha(v.read(p)) : "absent";
    expect(ok.has(got), `${label}: ${p} holds neither its last durable content nor a later one`).toBe(true);
    seen[p] = got;
  }
  if (noStale) {
    for (const p of v.files()) {
      const at = findMarker(v.read(p));
      if (at >= 0) throw new Error(`${label}: ${p} shows stale data (the marker) at ${at}`);
    }
  }
  return seen;
}

function ourView(img: string): { view: FileView; done: () => void } {
  const vol = mount(img, { readOnly: true, cacheSize: 16 << 20 });
  const files = (dir: string): string[] => (vol.readdirSync(dir) as string[]).flatMap((n) => {
    const p = `${dir === "/" ? "" : dir}/${n}`;
    const st = vol.lstatSync(p);
    return st.isDirectory() ? files(p) : st.isFile() ? [p] : [];
  });
  return {
    view: { exists: (p) => vol.existsSync(p), read: (p) => vol.readFileSync(p) as Buffer, files: () => files("/") },
    done: () => vol.unmount(),
  };
}

function kernelView(mnt: string): FileView {
  const files = (dir: string): string[] => nfs.readdirSync(path.join(mnt, dir)).flatMap((n) => {
    const p = `${dir === "/" ? "" : dir}/${n}`;
    const st = nfs.lstatSync(path.join(mnt, p));
    return st.isDirectory() ? (p === "/lost+found" ? [] : files(p)) : st.isFile() ? [p] : [];
  });
  return { exists: (p) => nfs.existsSync(path.join(mnt, p)), read: (p) => nfs.readFileSync(path.join(mnt, p)), files: () => files("/") };
}

const modes: [string, string, boolean][] = [
  ["data=ordered", "", true],
  ["data=journal", "data=journal", true],
  ["data=writeback", "data=writeback", false],
];
const ROUNDS = Number(process.env.CRASH_KILL_ROUNDS ?? 3);

d("SIGKILL at a random moment: we and the kernel replay every fsync'd byte", () => {
  it.each(modes)("%s", async (name, opts, noStale) => {
    const rnd = mulberry32(4242 + name.length);
    let kernelChecks = 0;
    let reportsSeen = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const img = path.join(work, "kill.img");
      const marked = Buffer.alloc(SIZE);
      for (let i = 0; i < SIZE; i += 8) MARKER.copy(marked, i);
      nfs.writeFileSync(img, marked);
      mkfs(img, { size: SIZE, blockSize: round % 2 ? 1024 : 4096, ...FIXED });
      const seed = 1 + Math.floor(rnd() * 1e9);
      const delay = 150 + Math.floor(rnd() * 1500);
      const reports = await runAndKill(img, seed, opts, delay);
      const label = `${name} round ${round} (seed ${seed}, killed ${delay} ms after ready, ${reports.length} reports)`;
      reportsSeen += reports.filter((r) => r.kind === "prefix" || r.kind === "durable").length;
      const copy = path.join(work, "kill-kernel.img");
      nfs.copyFileSync(img, copy);
      // (a) our replay in place, e2fsck, then the reported content.
      mount(img, { cacheSize: 16 << 20 }).unmount();
      expectClean(img);
      const ours = ourView(img);
      let mine: Record<string, string>;
      try {
        mine = checkView(ours.view, reports, noStale, `${label}, our replay`);
      } finally {
        ours.done();
      }
      // (b) the kernel's replay of the same killed image.
      if (loop.ok) {
        const theirs = withLoopMountSync(copy, (mnt) => checkView(kernelView(mnt), reports, noStale, `${label}, the kernel's replay`));
        expect(theirs, `${label}: the durable content the kernel's replay and ours show`).toEqual(mine);
        expectClean(copy);
        kernelChecks++;
      }
    }
    console.log(`crash-kill ${name}: ${ROUNDS} kills, ${reportsSeen} fsync reports checked, kernel replays ${kernelChecks}${loop.ok ? "" : ` (skipped: ${loop.reason})`}`);
    expect(reportsSeen).toBeGreaterThan(0);
  }, 150_000);
});
