// docs/api.md lists every public method the volume has (and those of its
// promises, Dir and read stream): a method added without a line there fails here.

import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { mount } from "../host/index.js";
import { ROOT } from "./cli-helpers.js";

const doc = fs.readFileSync(path.join(ROOT, "docs/api.md"), "utf8");

/** Members declared `private` in a source file (TypeScript's private members are still on the prototype). */
function privates(rel: string): Set<string> {
  const src = fs.readFileSync(path.join(ROOT, rel), "utf8");
  return new Set([...src.matchAll(/^\s+private (?:readonly )?(\w+)/gm)].map((m) => m[1]));
}

/** A member is documented where its whole name (or vol.name) opens a code span: `name(`, `name`` or `name[`, not as the prefix of a longer name. */
const documented = (n: string): boolean => new RegExp("`(vol\\.)?" + n.replace(/[$]/g, "\\$") + "[(`\\[ ,]").test(doc);

function undocumented(proto: object, hidden: Set<string>): string[] {
  return Object.getOwnPropertyNames(proto)
    .filter((n) => n !== "constructor" && !n.startsWith("_") && !hidden.has(n))
    .filter((n) => !documented(n));
}

describe("docs/api.md", () => {
  it("names every public member of Volume, vol.promises, Dir and the read stream", () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "ext4wasm-apidocs-"));
    try {
      const img = path.join(work, "a.img");
      execFileSync("mkfs.ext4", ["-q", "-F", img, "2M"]);
      const vol = mount(img, { readOnly: true });
      try {
        const hidden = new Set([...privates("host/vfs/volume.ts"), ...privates("host/vfs/opendir.ts"), ...privates("host/vfs/read-stream.ts")]);
        const dir = vol.opendirSync("/");
        const stream = vol.createReadStream("/lost+found");
        stream.destroy();
        expect({
          volume: undocumented(Object.getPrototypeOf(vol), hidden),
          own: Object.keys(vol).filter((k) => !hidden.has(k) && !documented(k)),
          promises: undocumented(Object.getPrototypeOf(vol.promises), hidden),
          dir: undocumented(Object.getPrototypeOf(dir), hidden),
          stream: undocumented(Object.getPrototypeOf(stream), hidden),
        }).toEqual({ volume: [], own: [], promises: [], dir: [], stream: [] });
      } finally {
        vol.unmount();
      }
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });
});
