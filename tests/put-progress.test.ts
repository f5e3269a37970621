// put's progress bar: drawn on stderr only when it is a terminal, first after
// half a second, at most every 200 ms, erased at the end. The drawing rules
// with a fake clock and sink; the terminal detection end to end under a
// pseudo-terminal (script -qfc), with a put long enough to draw (a 1 GiB
// sparse file: every block is read and found zero), and without one.

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PutProgress, renderBar, type ProgressSink } from "../host/cli/put/progress.js";
import { humanBytes } from "../host/cli/format.js";
import { BIN, ensureBuilt, runCli } from "./cli-helpers.js";
import { missingTools } from "./helpers/exec.js";

function fakeSink(isTTY: boolean, columns = 80) {
  const out: string[] = [];
  const sink: ProgressSink = { isTTY, columns: () => columns, write: (s) => void out.push(s) };
  return { sink, out };
}

describe("PutProgress", () => {
  it("draws nothing when stderr is not a terminal, or with -q", () => {
    for (const [tty, quiet] of [[false, false], [true, true]] as const) {
      let t = 0;
      const { sink, out } = fakeSink(tty);
      const p = new PutProgress(quiet, sink, () => t);
      p.start(10, 1000);
      for (let i = 0; i < 10; i++) { t += 1000; p.file(); p.addBytes(100); }
      p.stage("writing back");
      p.done();
      expect(out).toEqual([]);
    }
  });

  it("on a terminal: nothing for a short put, then a bar at most every 200 ms, erased at the end", () => {
    let t = 0;
    const { sink, out } = fakeSink(true);
    const p = new PutProgress(false, sink, () => t);
    p.start(4, 3 * 4096);
    t = 499; p.file();
    expect(out).toEqual([]); // under half a second: a short put shows nothing
    t = 500; p.addBytes(4096);
    expect(out.length).toBe(1);
    t = 650; p.file(); p.addBytes(4096);
    expect(out.length).toBe(1); // within 200 ms of the last draw
    t = 700; p.file();
    expect(out.length).toBe(2);
    for (const line of out) {
      expect(line.startsWith("\r\x1b[Kext4wasm: [")).toBe(true);
      expect(line.length - 4).toBeLessThanOrEqual(80);
    }
    expect(out[1]).toContain(`3/4 entries, ${humanBytes(8192)}/${humanBytes(12288)}`);
    p.stage("writing back"); // a stage redraws at once while the bar is up
    expect(out[2]).toMatch(/ 71% 3\/4 entries, .*, writing back$/); // (3 entries + 8 KiB) of (4 + 12 KiB), entries as 4 KiB each
    p.done();
    expect(out[3]).toBe("\r\x1b[K");
    p.done();
    expect(out.length).toBe(4);
  });

  it("renderBar: the fill and the percentage count bytes and entries; 100% only when all is done", () => {
    const s = { files: 0, total: 10, bytes: 0, totalBytes: 10 * 4096 };
    expect(renderBar(s, 80)).toMatch(/^ext4wasm: \[-+\]   0% 0\/10 entries/);
    const half = renderBar({ ...s, files: 5, bytes: 5 * 4096 }, 80);
    const bar = /\[(#*)(-*)\]/.exec(half)!;
    expect(bar[1].length).toBe(bar[2].length);
    expect(half).toContain(" 50% 5/10 entries");
    expect(renderBar({ ...s, files: 10, bytes: 10 * 4096 }, 80)).toMatch(/\[#+\] 100% 10\/10/);
    expect(renderBar({ ...s, files: 10, bytes: 10 * 4096, label: "writing back" }, 80)).toContain(" 99% ");
    // A narrow terminal: no bar, the text cut to fit.
    expect(renderBar(s, 30).length).toBeLessThan(30);
    expect(renderBar(s, 30)).not.toContain("[");
  });
});

const missing = missingTools(["script", "mkfs.ext4"], "util-linux, e2fsprogs");
if (missing) console.log(`put-progress: the pseudo-terminal test skipped: ${missing}`);
const d = missing ? describe.skip : describe;

let work: string;
beforeAll(() => {
  if (missing) return;
  ensureBuilt();
  work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-put-progress-"));
  fs.mkdirSync(path.join(work, "src"));
  fs.writeFileSync(path.join(work, "src", "small"), "x");
  fs.writeFileSync(path.join(work, "src", "sparse"), "");
  fs.truncateSync(path.join(work, "src", "sparse"), 2 ** 30);
}, 300_000);
afterAll(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

function image(name: string): string {
  const img = path.join(work, name);
  const r = spawnSync("mkfs.ext4", ["-q", "-F", "-b", "4096", img, "64M"]);
  if (r.status !== 0) throw new Error(`mkfs.ext4: ${r.stderr}`);
  return img;
}

d("ext4wasm put on a terminal", () => {
  it("draws the bar on stderr under a pseudo-terminal, erases it, and draws nothing when stderr is a pipe", () => {
    const img = image("tty.img");
    const q = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;
    // script gives the child a pty for stdin/stdout/stderr and copies what it writes to our stdout.
    const cmd = [process.execPath, BIN, "put", img, path.join(work, "src"), "/src"].map(q).join(" ");
    const r = spawnSync("script", ["-qfec", cmd, "/dev/null"], { encoding: "latin1", env: { ...process.env, COLUMNS: "100" } });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\r\x1b\[Kext4wasm: \[[#-]+\] +\d+% \d+\/3 entries/);
    expect(r.stdout.endsWith("\r\x1b[K")).toBe(true); // erased: the terminal is left clean

    const piped = runCli(["put", image("pipe.img"), path.join(work, "src"), "/src"]);
    expect(piped.status).toBe(0);
    expect(piped.stderr).toBe("");
  }, 120_000);
});
