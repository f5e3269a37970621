// Damaged images mounted read-write and written to (issue 6, "Damaged images
// mounted read-write"): the corruption suite's seeded mutants
// (helpers/robust-mutate.ts) and the e2fsprogs f_* corpus, each mounted with
// errors=remount-ro and given a small workload through the fs layer
// (helpers/robust-write.ts: create with data blocks, add entries in
// subdirectories, extend files, unlink and free, setxattr, sync) in a worker
// that is cut off if it hangs. For each image:
//   - every step succeeds or fails with a typed Ext4Error; never a crash, a
//     hang, a foreign exception or a wasm trap, and unmount does not throw;
//   - if the volume turned read-only, the superblock records the error
//     (dumpe2fs -h: "with errors", an error count) and a later write got EROFS;
//   - e2fsck -fn (both images replayed first with e2fsck -E journal_only)
//     finds no problem class after the writes that it did not find before,
//     beyond the summary counters (a class: the message with numbers, lists,
//     names and times taken out). A damaged inode that claims blocks its
//     bitmap calls free can still meet our new blocks there ("multiply
//     claimed", a class it already had): nothing short of a full scan, which
//     the kernel does not do either, can see that.
// WRITE_FUZZ_SEEDS=<n> sets the mutants per variant (default 10);
// WRITE_FUZZ_CORPUS=<n> how many corpus images (default all).

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { missingTools, runSync } from "./helpers/exec.js";
import { mkfsEnv } from "./helpers/images.js";
import { WalkRunner, type WriteOutcome } from "./helpers/robust-pool.js";
import { buildTree, discoverMetadata, mutate, type ImageInfo, type Variant } from "./helpers/robust-mutate.js";
import type { WriteResult } from "./helpers/robust-write.js";

const missing = missingTools(["mkfs.ext4", "e2fsck", "dumpe2fs", "setfattr"], "e2fsprogs and attr");
if (missing) console.log(`damaged-rw: skipped: ${missing}`);
const d = missing ? describe.skip : describe;

const SEEDS = Number(process.env.WRITE_FUZZ_SEEDS ?? 10);
const PER_JOB_MS = 30_000; // a hang bound on a loaded 2-core machine, not a speed target
const VARIANTS: Variant[] = [
  { name: "ext4-4k", args: ["-b", "4096", "-g", "1024"], csum: true },
  { name: "ext4-1k", args: ["-b", "1024"], csum: true },
  { name: "no-csum", args: ["-b", "4096", "-g", "1024", "-O", "^metadata_csum,uninit_bg"], csum: false },
  { name: "no-extents", args: ["-b", "4096", "-g", "1024", "-O", "^extent,^64bit,^flex_bg"], csum: true },
];
const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const corpusDir = path.resolve(repoRoot, "../shared/corpus/e2fsprogs-f");
const corpus = fs.existsSync(corpusDir) ? fs.readdirSync(corpusDir).filter((n) => n.endsWith(".img.gz")).sort() : [];
const CORPUS_N = Number(process.env.WRITE_FUZZ_CORPUS ?? corpus.length);
if (!corpus.length) console.log(`damaged-rw: corpus part skipped: no *.img.gz under ${corpusDir} (../shared/corpus beside the checkout)`);

/** Summary counters: a workload changes them by design, and e2fsck reports any mismatch it finds. */
const COUNTERS = /^Free (blocks|inodes) count wrong|^Directories count wrong|^Padding at end of (inode|block) bitmap/;

/** e2fsck -fn's problem classes on a replayed copy of `bytes`: its messages with numbers, names and answers taken out. */
function fsckClasses(dir: string, name: string, bytes: Uint8Array): { classes: Set<string>; out: string } {
  const file = path.join(dir, name);
  fs.writeFileSync(file, bytes);
  try {
    runSync("e2fsck", ["-E", "journal_only", "-y", file], { okCodes: [0, 1, 2, 4, 8, 12] });
    const r = runSync("e2fsck", ["-fn", file], { okCodes: [0, 1, 2, 4, 8, 12] });
    const out = `${r.stdout}\n${r.stderr}`;
    const classes = new Set<string>();
    for (const raw of out.split("\n")) {
      const l = raw.trim();
      if (!l || /^Pass \d|^e2fsck \d|^\S+: \d+\/\d+ files|^\S+: \*+ WARNING|^(Fix|Clear|Ignore|Recreate|Relocate|Salvage|Abort|Connect to \/lost\+found|Delete file|Clone multiply-claimed blocks|Truncate|Optimize)\?/.test(l)) continue;
      if (COUNTERS.test(l)) continue;
      // Bitmap differences are one class each, whatever blocks they list.
      const bitmap = /^(Block|Inode) bitmap differences:/.exec(l);
      if (bitmap) { classes.add(bitmap[0]); continue; }
      classes.add(l.replace(/'[^']*'/g, "'…'").replace(/\([^)]*\)/g, "(…)").replace(/(^|\s)(\/\S*|\?\?\?|<[^>]*>)/g, " <file>")
        .replace(/0x[0-9a-f]+|\d+/gi, "#").replace(/#(?:[\s,-]*#)+/g, "#").replace(/[?.]\s*(no|yes)$/, "").replace(/\s+/g, " ").trim());
    }
    return { classes, out };
  } finally {
    fs.rmSync(file, { force: true });
  }
}

/**
 * Corpus images where e2fsck does find a new class after our writes, and why that is
 * not this suite's to fix (each is printed when met; every other check still applies).
 */
const KNOWN_WORSE: Record<string, string> = {
  "f_clear_orphan_file.img.gz": "orphans pending at mount: orphan cleanup at read-write mount is h-orphan's (not in this branch), and the clean unmount drops ORPHAN_PRESENT",
  "f_orphan_extents_inode.img.gz": "an orphan pending at mount (s_last_orphan): orphan cleanup is h-orphan's; e2fsck then truncates a file we extended",
  "f_orphan_indirect_inode.img.gz": "an orphan pending at mount (s_last_orphan): orphan cleanup is h-orphan's; e2fsck then truncates a file we extended",
  "f_h_reindex.img.gz": "an htree indexed with another hash seed than the superblock's: inserts go by the superblock's seed, as the kernel's do",
};

interface Tally { [outcome: string]: number }

d("damaged images mounted read-write", () => {
  let tmp = "";
  const infos = new Map<string, ImageInfo>();
  const runner = new WalkRunner();
  const tally: Tally = {};
  const started = Date.now();

  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-damaged-rw-"));
    const tree = path.join(tmp, "tree");
    fs.mkdirSync(tree);
    buildTree(tree);
    for (const v of VARIANTS) {
      const file = path.join(tmp, `${v.name}.img`);
      runSync("mkfs.ext4", ["-q", "-F", "-t", "ext4", "-I", "256", ...v.args, "-d", tree, file, "16M"], { env: mkfsEnv(tmp) });
      runSync("e2fsck", ["-fyD", file], { okCodes: [0, 1] });
      runSync("e2fsck", ["-fn", file]);
      infos.set(v.name, discoverMetadata(v, file));
    }
  });

  afterAll(async () => {
    await runner.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    console.log(`\ndamaged images read-write: ${(Date.now() - started) / 1000} s  ${Object.entries(tally).sort().map(([k, n]) => `${k}:${n}`).join("  ")}\n`);
  });

  /** Runs the workload on `image` and returns what is wrong with the outcome (empty: as required). */
  async function judge(where: string, image: Uint8Array): Promise<string[]> {
    const problems: string[] = [];
    const before = fsckClasses(tmp, "before.img", image);
    const out: WriteOutcome = await runner.runWrite({ kind: "write", image: image.slice(), mountOptions: "errors=remount-ro" }, PER_JOB_MS);
    if (out.kind !== "done") {
      tally[out.kind.toUpperCase()] = (tally[out.kind.toUpperCase()] ?? 0) + 1;
      return [`${where}: ${out.kind === "hang" ? `no answer within ${out.ms} ms` : out.message}`];
    }
    const r: WriteResult = out.result;
    const key = !r.mounted ? `refused:${r.mountError ?? "?"}` : r.turnedReadOnly ? "remounted-ro" : r.steps.some((s) => s.code) ? "ops-failed" : "all-ok";
    tally[key] = (tally[key] ?? 0) + 1;
    for (const b of r.bugs) problems.push(`${where}: ${b}`);
    if (!r.mounted) return problems;
    if (r.turnedReadOnly) {
      if (r.afterCode !== "EROFS") problems.push(`${where}: a write after remount-ro got ${r.afterCode}, not EROFS`);
      const file = path.join(tmp, "after-sb.img");
      fs.writeFileSync(file, r.image);
      const sb = runSync("dumpe2fs", ["-h", file], { okCodes: [0, 1] }).stdout;
      fs.rmSync(file, { force: true });
      if (!/^Filesystem state:.*with errors/m.test(sb) || !/^FS Error count:\s+[1-9]/m.test(sb)) {
        problems.push(`${where}: turned read-only but the superblock records no error:\n${sb.split("\n").filter((l) => /state|rror/.test(l)).join("\n")}`);
      }
    }
    const after = fsckClasses(tmp, "after.img", r.image);
    const worse = [...after.classes].filter((c) => !before.classes.has(c));
    if (worse.length && KNOWN_WORSE[where]) {
      console.log(`damaged-rw: ${where}: e2fsck finds ${worse.join(" | ")}: known, ${KNOWN_WORSE[where]}`);
    } else if (worse.length) {
      problems.push(`${where}: e2fsck finds new problems after the writes: ${worse.join(" | ")}\nsteps: ${r.steps.map((s) => `${s.op}${s.code ? `=${s.code}` : ""}`).join(", ")}\nwarnings: ${r.warnings.join(" | ")}\n--- before\n${before.out}\n--- after\n${after.out}`);
    }
    return problems;
  }

  it.each(VARIANTS.map((v) => v.name))("%s: seeded mutants written read-write: typed errors, the error recorded, nothing worse for e2fsck", async (name) => {
    const info = infos.get(name)!;
    // The pristine image first: the workload itself leaves e2fsck with nothing to say.
    const problems: string[] = await judge(`${name} pristine`, info.image.slice());
    for (let seed = 0; seed < SEEDS; seed++) {
      const m = mutate(info, 1000 + seed);
      problems.push(...await judge(`${name} seed ${seed} (${m.description})`, m.image));
    }
    expect(problems, problems.join("\n\n")).toEqual([]);
  }, 600_000);

  it.runIf(corpus.length > 0)("the e2fsprogs f_* corpus written read-write: typed errors, the error recorded, nothing worse for e2fsck", async () => {
    const problems: string[] = [];
    for (const name of corpus.slice(0, CORPUS_N)) {
      problems.push(...await judge(name, new Uint8Array(gunzipSync(fs.readFileSync(path.join(corpusDir, name))))));
    }
    expect(problems, problems.join("\n\n")).toEqual([]);
  }, 1_200_000);
});
