// .ci/run's closing line must count every failure: a failed test, a failed
// hook, a file that fails to load, an unhandled error, and a run that never
// reported at all. The fixture run makes each of these happen for real.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
// @ts-expect-error plain ESM script without typings
import { summarize } from "../scripts/ci-summary.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));

describe("ci summary", () => {
  it("the count reporter counts failed tests, hooks, load failures and unhandled errors", () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-counts-"));
    try {
      const counts = path.join(tmp, "counts.json");
      const r = spawnSync("npx", ["vitest", "run", "--root", "tests/fixtures/count-reporter", `--reporter=${path.join(root, "scripts/count-reporter.mjs")}`], {
        cwd: root, encoding: "utf8", env: { ...process.env, EXT4WASM_COUNTS: counts },
      });
      expect(r.status).not.toBe(0);
      const c = JSON.parse(fs.readFileSync(counts, "utf8"));
      expect({ passed: c.passed, failedTests: c.failedTests, suiteErrors: c.suiteErrors, unhandledErrors: c.unhandledErrors, failed: c.failed })
        .toEqual({ passed: 3, failedTests: 1, suiteErrors: 2, unhandledErrors: 1, failed: 4 });
      expect(summarize(JSON.stringify(c), r.status).line).toBe("3 passed, 4 failed, 2 skipped");
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }, 60_000);

  it("a run that never reported, or failed with nothing counted, is not '0 failed'", () => {
    expect(summarize("", 0).line).toBe("0 passed, 1 failed");
    expect(summarize(JSON.stringify({ finished: false }), 1).line).toBe("0 passed, 1 failed");
    const clean = { finished: true, passed: 5, failed: 0, skipped: 0 };
    expect(summarize(JSON.stringify(clean), 0).line).toBe("5 passed, 0 failed");
    expect(summarize(JSON.stringify(clean), 1).line).toBe("5 passed, 1 failed");
  });
});
