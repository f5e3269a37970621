// A writeback error cookie per mapping, after lib/errseq.c: the latest error
// and a counter that moves only once somebody has seen the previous error.
// Each opener samples a cookie (errseq_sample); its fsync reports an error
// recorded since that cookie exactly once (errseq_check_and_advance), and
// several failures nobody has seen yet report as one.

import type { Ext4ErrorCode as ErrorCode } from "../errors.js";

export class ErrSeq {
  private counter = 0;
  private code: ErrorCode | undefined;
  private seen = false;

  /** errseq_set: records a writeback failure. */
  set(code: ErrorCode): void {
    // A new cookie only when the last error was seen (or there was none): unseen failures coalesce.
    if (this.code === undefined || this.seen) this.counter++;
    this.code = code;
    this.seen = false;
  }

  /** The current cookie; with an error nobody has seen, the "before it" cookie 0, so a new opener still sees it. */
  sample(): number {
    if (this.code !== undefined && !this.seen) return 0;
    return this.counter;
  }

  /** The error recorded since `since`, if any, without consuming it. */
  check(since: number): ErrorCode | undefined {
    return this.counter !== since && this.code !== undefined ? this.code : undefined;
  }

  /** errseq_check_and_advance: reports the error recorded since `since` once, and the cookie to keep. */
  checkAndAdvance(since: number): { error: ErrorCode | undefined; since: number } {
    if (this.code === undefined || this.counter === since) return { error: undefined, since };
    this.seen = true;
    return { error: this.code, since: this.counter };
  }
}
