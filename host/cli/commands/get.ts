// `ext4wasm get IMAGE PATH DEST`: copy a file or a whole tree out of the image.

import * as fs from "node:fs";
import * as path from "node:path";
import { HELP_OPTION, IMAGE_OPTIONS, type CommandSpec, type ParsedArgs } from "../args.js";
import { EXIT_FAILURE, EXIT_OK, warn, writeStderr } from "../errors.js";
import { TreeCopier } from "../get/copy-tree.js";
import { Progress } from "../get/progress.js";
import { treeSize } from "../get/tree-size.js";
import { imageOptions, WALK_CACHE_SIZE, withImage } from "../image.js";
import { toJson, type Output } from "../output.js";

export const spec: CommandSpec = {
  name: "get",
  usage: "IMAGE PATH DEST",
  summary: "Copy PATH (a file or a whole tree) out of the image to DEST, preserving what tar -p does.",
  options: [
    { long: "force", short: "f", help: "replace existing files at DEST (directories are always merged into)" },
    { long: "quiet", short: "q", help: "no progress line on stderr" },
    ...IMAGE_OPTIONS, { long: "json", help: "print a JSON summary (entries, bytes, failures, warnings) on stdout" }, HELP_OPTION,
  ],
  minArgs: 3,
  maxArgs: 3,
  notes: [
    "If DEST is an existing directory the copy goes inside it (DEST/<name of PATH>; for PATH / the",
    "contents of the image go straight into DEST). Kept: bytes, holes, all 12 mode bits, symlinks,",
    "hard links, FIFOs, device nodes (as root), owners (as root), user.* xattrs (via setfattr),",
    "atime/mtime to the microsecond (node's utimes limit), non-UTF-8 names byte for byte.",
    "An entry that cannot be read (a damaged inode) is reported on stderr with its path and",
    "skipped; the copy goes on and exits 1 at the end, after a summary line.",
    "",
    "example:",
    "  ext4wasm get disk.img /etc ./etc-copy",
    "  ext4wasm get -f disk.img / ./rootfs",
  ].join("\n"),
};

export function run(args: ParsedArgs, out: Output): number {
  const [image, src, dest] = args.positionals;
  const json = args.flags.has("json");
  const destInfo = fs.statSync(dest, { throwIfNoEntry: false });
  // Like cp: into an existing directory, else the copy is DEST itself.
  const target = destInfo?.isDirectory() ? path.join(dest, path.posix.basename(src)) : dest;
  const progress = new Progress(args.flags.has("quiet"));
  const result = withImage(image, { ...imageOptions(args), cacheSize: WALK_CACHE_SIZE }, (vol) => {
    const srcPath = Buffer.from(src);
    if (progress.enabled) progress.total = treeSize(vol, vol.inodeOf(srcPath));
    return new TreeCopier(vol, {
      force: args.flags.has("force"),
      stagingParent: path.dirname(path.resolve(target)),
      progress,
      onFailure: (f) => {
        progress.done();
        writeStderr(`ext4wasm: cannot copy '${f.path}': ${f.message}\n`);
      },
    }).run(srcPath, Buffer.from(path.resolve(target)));
  });
  const failed = result.failures.length;
  if (json) {
    out.line(toJson({ entries: result.entries, bytes: result.bytes, failed, failures: result.failures, warnings: result.warnings }));
  } else {
    for (const w of result.warnings) warn(w);
    if (failed) writeStderr(`ext4wasm: get: ${failed} of ${result.entries} entries not copied (${result.entries - failed} copied, ${result.bytes} bytes)\n`);
  }
  return failed ? EXIT_FAILURE : EXIT_OK;
}
