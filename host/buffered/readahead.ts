// Readahead state per open file (after mm/readahead.c): a sequential stream
// keeps a window of data read ahead; when a read reaches the second half of
// that window (the kernel marks a folio there, PG_readahead) the next window,
// twice as large up to the maximum, is read asynchronously. A random read
// resets the stream. Each read costs nothing extra while it stays inside the
// window.

export const RA_INITIAL = 128 << 10;
export const RA_MAX = 2 << 20;

export interface ReadaheadPlan {
  /** Readahead to issue beyond the read itself: [from, to), empty when from >= to. */
  from: number;
  to: number;
}

export class ReadaheadState {
  private prevEnd = -1;
  /** End of the readahead already issued for the current stream. */
  private issuedEnd = 0;
  private window = 0;

  plan(pos: number, len: number, size: number): ReadaheadPlan {
    const end = pos + len;
    const sequential = pos === this.prevEnd;
    this.prevEnd = end;
    if (!sequential) {
      // New stream: read the request plus an initial window sized from it.
      this.window = Math.min(Math.max(len * 4, 16 << 10), RA_INITIAL);
      this.issuedEnd = Math.min(size, end + this.window);
      return { from: end, to: this.issuedEnd };
    }
    // Inside the window and before its marker: nothing to issue.
    if (end <= this.issuedEnd - this.window / 2) return { from: 0, to: 0 };
    this.window = Math.min(this.window * 2, RA_MAX);
    const from = Math.max(this.issuedEnd, end);
    this.issuedEnd = Math.min(size, from + this.window);
    return { from, to: this.issuedEnd };
  }
}
