// The write commands' argument parsers: chmod's MODE (octal and symbolic, as
// coreutils applies them), truncate's SIZE, touch's DATE. chmod's results are
// checked against chmod(1) itself on host files.

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyMode } from "../host/cli/mode-arg.js";
import { parseSizeArg, resolveSize } from "../host/cli/size-arg.js";
import { parseDate } from "../host/cli/commands/touch.js";
import { UsageError } from "../host/cli/errors.js";

let work: string;
beforeAll(() => { work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-cliargs-")); });
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe("chmod MODE", () => {
  it("gives what chmod(1) gives, for files and directories, octal and symbolic", () => {
    const specs = ["755", "0644", "4755", "2750", "1777", "u+x", "go-w", "a=rX", "u=rw,g=r,o=", "+t", "u+s,g+s", "o=u", "g=o", "a-x", "ug+rwX", "=r", "u-s", "a+X", "755,u+s".replace(",u+s", "")];
    const starts = [0o644, 0o755, 0o4711, 0o2770, 0o1700, 0o000, 0o6755];
    for (const dir of [false, true]) {
      for (const start of starts) {
        for (const spec of specs) {
          const p = path.join(work, dir ? "d" : "f");
          fs.rmSync(p, { recursive: true, force: true });
          if (dir) fs.mkdirSync(p); else fs.writeFileSync(p, "");
          fs.chmodSync(p, start);
          const r = spawnSync("chmod", [spec, p]);
          expect(r.status).toBe(0);
          const want = fs.statSync(p).mode & 0o7777;
          const type = dir ? 0o040000 : 0o100000;
          expect([dir, start.toString(8), spec, applyMode(spec, type | start).toString(8)]).toEqual([dir, start.toString(8), spec, want.toString(8)]);
        }
      }
    }
  });

  it("refuses what chmod(1) refuses", () => {
    for (const bad of ["", "8", "77777", "u+q", "z=r", "u+x,", "rwx"]) expect(() => applyMode(bad, 0o100644), bad).toThrow(UsageError);
  });
});

describe("truncate SIZE", () => {
  it("takes truncate(1)'s suffixes and relative forms", () => {
    const cases: [string, number, number][] = [
      ["0", 100, 0], ["4096", 0, 4096], ["1K", 0, 1024], ["1M", 0, 1 << 20], ["2G", 0, 2 * 2 ** 30], ["1KB", 0, 1000], ["3MiB", 0, 3 << 20],
      ["+10", 5, 15], ["-10", 5, 0], ["-2", 5, 3], ["<4", 9, 4], ["<40", 9, 9], [">40", 9, 40], ["/4", 9, 8], ["%4", 9, 12], ["%4", 8, 8],
    ];
    for (const [text, cur, want] of cases) expect([text, resolveSize(parseSizeArg(text), cur)]).toEqual([text, want]);
  });
  it("refuses garbage", () => {
    for (const bad of ["", "x", "1X", "1.5M", "--1", "99999999999999999999"]) expect(() => parseSizeArg(bad), bad).toThrow(UsageError);
  });
});

describe("touch DATE", () => {
  it("keeps nanoseconds of @SECONDS.FRACTION and reads ISO dates", () => {
    expect(parseDate("@1700000000.123456789")).toBe(1700000000123456789n);
    expect(parseDate("@1700000000")).toBe(1700000000000000000n);
    expect(parseDate("@-5.5")).toBe(-5500000000n);
    expect(parseDate("2024-01-01T00:00:00.250Z")).toBe(1704067200250000000n);
    expect(() => parseDate("yesterday-ish")).toThrow(UsageError);
  });
});
