// The `ext4wasm` command line: picks the subcommand, parses its options, runs
// it, and turns any failure into one line on stderr and an exit status.

import { readFileSync } from "node:fs";
import { helpText, parseArgs, type CommandSpec, type ParsedArgs } from "./args.js";
import * as cat from "./commands/cat.js";
import * as chmod from "./commands/chmod.js";
import * as chown from "./commands/chown.js";
import * as demo from "./commands/demo.js";
import * as get from "./commands/get.js";
import * as info from "./commands/info.js";
import * as ln from "./commands/ln.js";
import * as ls from "./commands/ls.js";
import * as mkdir from "./commands/mkdir.js";
import * as mkfsCmd from "./commands/mkfs.js";
import * as mv from "./commands/mv.js";
import * as put from "./commands/put.js";
import * as rm from "./commands/rm.js";
import * as stat from "./commands/stat.js";
import * as touch from "./commands/touch.js";
import * as truncate from "./commands/truncate.js";
import { debugEnabled, errorLine, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, StdoutClosed, UsageError, writeStderr } from "./errors.js";
import { Output } from "./output.js";

interface Command {
  spec: CommandSpec;
  run(args: ParsedArgs, out: Output): number;
}

const COMMANDS: Command[] = [info, ls, cat, stat, get, put, mkdir, rm, mv, ln, truncate, chmod, chown, touch, mkfsCmd, demo];

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.spec.name.length + c.spec.usage.length + 1));
  return [
    "usage: ext4wasm <command> [options] ...",
    "",
    "Read, write and make ext4 images, without the kernel or root.",
    "",
    "commands:",
    ...COMMANDS.map((c) => `  ${`${c.spec.name} ${c.spec.usage}`.padEnd(width)}  ${c.spec.summary}`),
    "",
    "Options come after the command name; `ext4wasm <command> --help` lists them.",
    "Common: -o OPTS (mount options), --offset BYTES (filesystem inside a disk image), --json.",
    "Set EXT4WASM_DEBUG=1 to see stack traces. `ext4wasm --version` prints the version.",
    "",
  ].join("\n");
}

/** package.json's version: beside dist/ when built, two levels up from host/cli/ in the source tree. */
export function version(): string {
  for (const rel of ["../package.json", "../../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "ext4wasm" && pkg.version) return pkg.version;
    } catch {
      // not at this level
    }
  }
  return "unknown";
}

export function main(argv: string[]): number {
  const out = new Output();
  const [name, ...rest] = argv;
  try {
    if (name === undefined) {
      writeStderr(usage());
      return EXIT_USAGE;
    }
    if (name === "--version" || name === "-V") {
      out.write(`ext4wasm ${version()}\n`);
      out.flush();
      return EXIT_OK;
    }
    if (name === "-h" || name === "--help" || name === "help") {
      out.write(usage());
      out.flush();
      return EXIT_OK;
    }
    const cmd = COMMANDS.find((c) => c.spec.name === name);
    if (!cmd) throw new UsageError(`unknown command '${name}'`);
    const args = parseArgs(cmd.spec, rest);
    if (args.flags.has("help")) {
      out.write(helpText(cmd.spec));
      out.flush();
      return EXIT_OK;
    }
    const status = cmd.run(args, out);
    out.flush();
    return status;
  } catch (e) {
    if (e instanceof StdoutClosed) return EXIT_OK;
    try {
      out.flush();
    } catch {
      // stdout is gone too; the error line still goes to stderr
    }
    if (e instanceof UsageError) {
      writeStderr(`ext4wasm: ${e.message} (see 'ext4wasm ${e.command ? `${e.command} ` : ""}--help')\n`);
      return EXIT_USAGE;
    }
    writeStderr(`ext4wasm: ${errorLine(e)}\n`);
    if (debugEnabled() && e instanceof Error) writeStderr(`${e.stack ?? ""}\n${e.cause ? `cause: ${(e.cause as Error).stack ?? e.cause}\n` : ""}`);
    return EXIT_FAILURE;
  }
}
