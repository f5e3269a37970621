// A vitest reporter that counts every way a run can fail, for .ci/run's
// summary line. vitest's JSON report counts only failed test cases: a throwing
// beforeAll, a file that fails to import, or an unhandled error after a test
// leaves numFailedTests at 0. Here each of those counts as one failure.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

const OUT = process.env.EXT4WASM_COUNTS ?? "build/test-counts.json";

export default class CountReporter {
  onInit() {
    // A stale file from an earlier run must never be read as this run's result.
    mkdirSync(dirname(OUT), { recursive: true });
    writeFileSync(OUT, JSON.stringify({ finished: false }));
  }

  onFinished(files = [], errors = []) {
    const c = { finished: true, passed: 0, failed: 0, skipped: 0, failedTests: 0, suiteErrors: 0, unhandledErrors: errors.length, failures: [] };
    const walk = (task, where) => {
      const name = where ? `${where} > ${task.name}` : task.name;
      if (task.type === "test" || task.type === "custom") {
        const state = task.result?.state;
        if (state === "pass") c.passed++;
        else if (state === "fail") { c.failedTests++; c.failures.push(name); }
        else c.skipped++; // skip, todo, or never run (mode only)
        return;
      }
      // A suite or file with errors of its own: a hook threw or collection failed.
      if (task.result?.state === "fail" && task.result.errors?.length) {
        c.suiteErrors++;
        c.failures.push(`${name} (suite: ${String(task.result.errors[0]?.message ?? "error").split("\n")[0]})`);
      }
      for (const t of task.tasks ?? []) walk(t, name);
    };
    for (const f of files) walk(f, "");
    for (const e of errors) c.failures.push(`unhandled error: ${String(e?.message ?? e).split("\n")[0]}`);
    c.failed = c.failedTests + c.suiteErrors + c.unhandledErrors;
    writeFileSync(OUT, JSON.stringify(c, null, 1));
  }
}
