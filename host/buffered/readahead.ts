// Readahead window per open file, after mm/readahead.c in spirit: a random
// read gets a small window, each sequential read doubles it up to the max.

export const RA_INITIAL = 128 << 10;
export const RA_MAX = 2 << 20;

export class ReadaheadState {
  private nextPos = -1;
  private window = 0;

  /** Bytes to make uptodate for a read of [pos, pos+len): at least the read, more when sequential. */
  advise(pos: number, len: number): number {
    if (pos === this.nextPos) this.window = Math.min(Math.max(this.window * 2, RA_INITIAL), RA_MAX);
    else this.window = Math.min(Math.max(len * 4, 16 << 10), RA_INITIAL);
    this.nextPos = pos + len;
    return Math.max(len, this.window);
  }
}
