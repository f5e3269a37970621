// Every image of the e2fsprogs f_* corpus (deliberately damaged or unusual
// filesystems): mount read-only, walk everything, and require that each
// failure is a typed Ext4Error, that nothing is written, that nothing hangs,
// and that images e2fsck calls clean read without a single error. Prints a
// summary table (image -> mounted, objects, errors by code) at the end.

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Ext4Error, mount } from "../host/index.js";
import { WalkRunner } from "./helpers/robust-pool.js";
import type { WalkResult } from "./helpers/robust-walk.js";

const repoRoot = fileURLToPath(new URL("..", import.meta.url));
const corpusDir = path.resolve(repoRoot, "../shared/corpus/e2fsprogs-f");
// A hang bound, not a speed target (the runner kills a walk past it): each walk
// takes well under a second alone; the bound leaves room for a loaded machine.
const PER_IMAGE_MS = 30_000;
/** Failures a clean image may still give: features we refuse, content without a key. */
const ALLOWED_ON_CLEAN = new Set(["EOPNOTSUPP", "ENOKEY"]);

const images = fs.existsSync(corpusDir) ? fs.readdirSync(corpusDir).filter((n) => n.endsWith(".img.gz")).sort() : [];
// The corpus lives outside the checkout (../shared/corpus, laid beside it for
// developers and CI; README, "Tests"). Where it is absent the suite skips and
// says so, in the log and in the skipped count: never a pass with nothing walked.
const skipReason = images.length ? "" : `corpus.test.ts skipped: the e2fsprogs corpus is absent (no *.img.gz under ${corpusDir}; it is ../shared/corpus beside the checkout)`;
if (skipReason) console.log(skipReason);

interface Row { image: string; fsck: string; result?: WalkResult; failure?: string }

const FSCK_MS = 20_000;
/**
 * Damage that e2fsck 1.47.0 passes as clean but e2fsprogs' own expect.1 for the
 * test (a newer e2fsck) reports; the kernel refuses these values too.
 */
const DAMAGE_NEWER_FSCK_SEES: Record<string, string> = {
  "f_ea_inode_no_feature.img.gz": "xattr entry with e_value_inum on a filesystem without ea_inode",
  "f_ea_zero_size.img.gz": "xattr entry of value size 0 whose value inode holds 4096 bytes",
};

/**
 * e2fsck -fn on a private copy. Clean means exit 0 with nothing declined and no
 * fallback to backup superblocks (with -n, e2fsck can exit 0 after answering
 * "no" to a fix). Nothing is cached between runs. Time and output are bounded:
 * with -n, e2fsck loops printing forever on some images (f_illitable_flexbg).
 */
function fsckVerdict(image: Uint8Array, tmp: string): { clean: boolean; verdict: string } {
  const copy = path.join(tmp, "fsck.img");
  fs.writeFileSync(copy, image);
  try {
    const r = spawnSync("e2fsck", ["-fn", copy], { encoding: "latin1", timeout: FSCK_MS, maxBuffer: 4 << 20 });
    const code = (r.error as NodeJS.ErrnoException | undefined)?.code;
    if (code === "ETIMEDOUT") return { clean: false, verdict: "t/o" };
    if (code === "ENOBUFS") return { clean: false, verdict: "spew" };
    if (r.error) throw r.error;
    if (r.status !== 0) return { clean: false, verdict: `x${r.status}` };
    const declined = /\? no$|IGNORED|backup blocks/m.test(`${r.stdout}\n${r.stderr}`);
    return declined ? { clean: false, verdict: "x0-no" } : { clean: true, verdict: "clean" };
  } finally {
    fs.rmSync(copy, { force: true });
  }
}

const fmtErrors = (e: Record<string, number>) => Object.entries(e).sort().map(([k, v]) => `${k}:${v}`).join(" ") || "-";

function printSummary(rows: Row[], totalMs: number): void {
  const lines = [`${"image".padEnd(36)} ${"fsck".padEnd(5)} ${"mount".padEnd(13)} ${"files".padStart(6)} ${"dirs".padStart(5)} ${"links".padStart(5)} ${"ms".padStart(6)}  errors`];
  const mountCodes: Record<string, number> = {};
  const errorCodes: Record<string, number> = {};
  const resolved: Record<string, number> = {};
  let mounted = 0, files = 0, dirs = 0, links = 0, others = 0, ops = 0, bytes = 0;
  for (const r of rows) {
    const w = r.result;
    if (!w) { lines.push(`${r.image.padEnd(36)} ${r.fsck.padEnd(5)} ${r.failure}`); continue; }
    if (w.mounted) mounted++;
    else mountCodes[w.mountError ?? "bug"] = (mountCodes[w.mountError ?? "bug"] ?? 0) + 1;
    for (const [k, v] of Object.entries(w.errors)) errorCodes[k] = (errorCodes[k] ?? 0) + v;
    for (const [k, v] of Object.entries(w.resolved)) resolved[k] = (resolved[k] ?? 0) + v;
    files += w.files; dirs += w.dirs; links += w.symlinks; others += w.others; ops += w.ops; bytes += w.bytes;
    lines.push(`${r.image.replace(/\.img\.gz$/, "").padEnd(36)} ${r.fsck.padEnd(5)} ${(w.mounted ? "yes" : w.mountError ?? "BUG").padEnd(13)} ${String(w.files).padStart(6)} ${String(w.dirs).padStart(5)} ${String(w.symlinks).padStart(5)} ${w.ms.toFixed(0).padStart(6)}  ${fmtErrors(w.errors)}${w.bugs.length ? `  BUGS:${w.bugs.length}` : ""}`);
  }
  lines.push("");
  lines.push(`images: ${rows.length}, mounted: ${mounted}, refused at mount: ${fmtErrors(mountCodes)}`);
  lines.push(`objects walked: ${files} files, ${dirs} dirs, ${links} symlinks, ${others} other; ${ops} operations, ${(bytes / 2 ** 20).toFixed(1)} MiB read`);
  lines.push(`failed operations by code: ${fmtErrors(errorCodes)}`);
  lines.push(`symlinks followed: ${fmtErrors(resolved)}`);
  lines.push(`clean per e2fsck -fn: ${rows.filter((r) => r.fsck === "clean").length} (clean*: damage only a newer e2fsck reports); wall time ${(totalMs / 1000).toFixed(1)} s`);
  console.log(`\ne2fsprogs corpus walk\n${lines.join("\n")}\n`);
}

/** Paths e2fsck -fn reports as "Symlink <path> (inode #N) is invalid." */
function invalidSymlinks(image: Uint8Array, tmp: string): string[] {
  const copy = path.join(tmp, "links.img");
  fs.writeFileSync(copy, image);
  try {
    const r = spawnSync("e2fsck", ["-fn", copy], { encoding: "latin1", timeout: FSCK_MS, maxBuffer: 4 << 20 });
    return [...`${r.stdout}`.matchAll(/^Symlink (.+) \(inode #\d+\) is invalid\.$/gm)].map((m) => m[1]);
  } finally {
    fs.rmSync(copy, { force: true });
  }
}

describe("symlinks e2fsck calls invalid", () => {
  const images = ["f_badsymlinks", "f_badsymlinks2", "f_quota_deallocate_inode", "f_inlinedir_bad_symlink"];
  if (skipReason) {
    it.skip(skipReason, () => {});
    return;
  }
  // Made in beforeAll: a describe body also runs when -t filters every test out.
  let tmp = "";
  beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-links-")); });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  // A target with a NUL inside, or of another length than i_size, is not returned as if it were fine.
  it.each(images)("%s: readlink refuses each of them", (name) => {
    const image = gunzipSync(fs.readFileSync(path.join(corpusDir, `${name}.img.gz`)));
    const invalid = invalidSymlinks(image, tmp);
    expect(invalid.length).toBeGreaterThan(0);
    const vol = mount(image, { readOnly: true });
    try {
      const answers = invalid.map((p) => {
        try {
          return `${p}: returned ${JSON.stringify((vol.readlinkSync(p, { encoding: "buffer" }) as Buffer).toString("latin1"))}`;
        } catch (e) {
          return e instanceof Ext4Error && (e.code === "EFSCORRUPTED" || e.code === "ENOKEY") ? `${p}: refused` : `${p}: ${String(e)}`;
        }
      });
      expect(answers).toEqual(invalid.map((p) => `${p}: refused`));
    } finally {
      vol.unmount();
    }
  });
});

describe("e2fsprogs f_* corpus", () => {
  if (skipReason) {
    it.skip(skipReason, () => {});
    return;
  }
  const runner = new WalkRunner();
  const rows: Row[] = [];
  let tmp = "";
  const started = Date.now();
  beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-corpus-")); });
  afterAll(async () => {
    await runner.close();
    fs.rmSync(tmp, { recursive: true, force: true });
    printSummary(rows, Date.now() - started);
  });

  it.each(images)("%s: typed errors only, no writes, no hang", async (name) => {
    const image = gunzipSync(fs.readFileSync(path.join(corpusDir, name)));
    const fsck = fsckVerdict(image, tmp);
    const row: Row = { image: name, fsck: fsck.clean && DAMAGE_NEWER_FSCK_SEES[name] ? "clean*" : fsck.verdict };
    rows.push(row);
    const out = await runner.run({
      image, options: { readOnly: true }, crossCheck: { readOnly: true, mountOptions: "buffered_iomap" },
    }, PER_IMAGE_MS);
    if (out.kind !== "done") {
      row.failure = out.kind === "hang" ? `HANG (> ${out.ms} ms)` : `CRASH ${out.message.split("\n")[0]}`;
      expect.fail(`${name}: ${out.kind === "hang" ? `walk did not finish within ${out.ms} ms` : out.message}`);
      return;
    }
    const w = out.result;
    row.result = w;
    expect(w.bugs, `${name}: untyped failures, wrong lengths or writes`).toEqual([]);
    expect(w.writes).toBe(0);
    expect(w.mounted || w.mountError !== undefined).toBe(true);
    if (fsck.clean && !DAMAGE_NEWER_FSCK_SEES[name]) {
      const unexpected = Object.keys(w.errors).filter((c) => !ALLOWED_ON_CLEAN.has(c));
      const mountOk = w.mounted || ALLOWED_ON_CLEAN.has(w.mountError ?? "");
      expect({ mountOk, unexpected, samples: unexpected.length || !mountOk ? [w.mountMessage, ...w.samples] : [] },
        `${name} is clean per e2fsck -fn, so the walk should not fail`).toEqual({ mountOk: true, unexpected: [], samples: [] });
    }
  });
});
