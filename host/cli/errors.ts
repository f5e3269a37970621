// How the CLI fails: one line on stderr and an exit status (1 for operational
// errors, 2 for usage errors); the stack only when EXT4WASM_DEBUG=1.

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Bad command line: unknown option, missing argument. */
export class UsageError extends Error {
  constructor(message: string, readonly command?: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** An operational failure raised by the CLI itself, shaped like a node system error. */
export class CliError extends Error {
  constructor(readonly code: string, message: string) {
    super(`${code}: ${message}`);
    this.name = "CliError";
  }
}

/** The reader went away (EPIPE on stdout): stop quietly, as `cat | head` expects. */
export class StdoutClosed extends Error {
  constructor() {
    super("stdout closed");
    this.name = "StdoutClosed";
  }
}

export const debugEnabled = (): boolean => process.env.EXT4WASM_DEBUG === "1";

/** The single line printed for an error: node-style messages already start with their code. */
export function errorLine(e: unknown): string {
  if (e instanceof Error) {
    const first = e.message.split("\n")[0].trim();
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && !first.startsWith(code)) return `${code}: ${first}`;
    return first || e.name;
  }
  return String(e);
}

export function writeStderr(text: string): void {
  try {
    process.stderr.write(text);
  } catch {
    // Nowhere left to report to.
  }
}

export function warn(message: string): void {
  writeStderr(`ext4wasm: warning: ${message}\n`);
}
