// Prints .ci/run's closing line, "N passed, N failed[, N skipped]", from the
// counts that scripts/count-reporter.mjs wrote. Whatever went wrong is a
// failure: a missing or unfinished count (the build or type-check failed, or
// vitest died), or a non-zero exit of the test command with nothing counted.
import { readFileSync } from "node:fs";

export function summarize(countsText, exitStatus) {
  let c;
  try { c = JSON.parse(countsText); } catch { c = null; }
  if (!c || !c.finished) return { line: "0 passed, 1 failed", failed: 1, why: "the test run did not finish (build, type-check or vitest failed before reporting)" };
  let failed = c.failed;
  let why = "";
  if (exitStatus !== 0 && failed === 0) { failed = 1; why = `npm test exited ${exitStatus} with no failure counted`; }
  const line = `${c.passed} passed, ${failed} failed` + (c.skipped ? `, ${c.skipped} skipped` : "");
  return { line, failed, why };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [file, status] = [process.argv[2] ?? "build/test-counts.json", Number(process.argv[3] ?? 0)];
  let text = "";
  try { text = readFileSync(file, "utf8"); } catch { /* missing: counted as a failure */ }
  const s = summarize(text, status);
  try {
    const c = JSON.parse(text);
    for (const f of c.failures ?? []) console.log(`failed: ${f}`);
  } catch { /* nothing to list */ }
  if (s.why) console.log(`failed: ${s.why}`);
  console.log(s.line);
  process.exitCode = s.failed ? 1 : 0;
}
