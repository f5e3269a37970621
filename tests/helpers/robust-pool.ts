// Runs robustness walks in a worker thread with a wall-clock bound: a
// synchronous hang (an endless loop over corrupt metadata) cannot be caught
// from inside the thread running it, so the walk lives in a worker that is
// terminated when its time is up. The worker runs a bundle of the TypeScript
// sources made here with esbuild (vitest's own transformer does not reach
// worker threads), loaded from a data: URL so no file is left behind.

import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { buildSync } from "esbuild";
import type { WalkJob, WalkResult } from "./robust-walk.js";
import type { WriteJob, WriteResult } from "./robust-write.js";

let bundled: URL | undefined;

/** Bundles robust-worker.ts (and the engine sources it imports) once per process. */
function workerBundle(): URL {
  if (bundled) return bundled;
  const out = buildSync({
    entryPoints: [fileURLToPath(new URL("./robust-worker.ts", import.meta.url))],
    bundle: true, platform: "node", format: "esm", target: "node20", write: false, logLevel: "error",
  });
  bundled = new URL(`data:text/javascript;base64,${Buffer.from(out.outputFiles[0].contents).toString("base64")}`);
  return bundled;
}

export type WriteOutcome =
  | { kind: "done"; result: WriteResult }
  | { kind: "hang"; ms: number }
  | { kind: "crash"; message: string };

export type JobOutcome =
  | { kind: "done"; result: WalkResult }
  | { kind: "hang"; ms: number }
  | { kind: "crash"; message: string };

interface Pending { id: number; worker: Worker; resolve: (o: JobOutcome) => void; timer: NodeJS.Timeout }

/** One worker, one job at a time; a hung or crashed worker is replaced for the next job. */
export class WalkRunner {
  private worker: Worker | undefined;
  private pending: Pending | undefined;
  private nextId = 1;

  private spawn(): Worker {
    const w = new Worker(workerBundle(), { resourceLimits: { maxOldGenerationSizeMb: 2048 } });
    w.on("message", (m: { id: number; result?: WalkResult; crash?: string }) => {
      const p = this.pending;
      if (!p || p.id !== m.id) return;
      this.settle(w, m.result ? { kind: "done", result: m.result } : { kind: "crash", message: m.crash ?? "no result" });
    });
    w.on("error", (e) => { this.discard(w); this.settle(w, { kind: "crash", message: `worker died: ${e.message}` }); });
    w.on("exit", (code) => { this.discard(w); this.settle(w, { kind: "crash", message: `worker exited with code ${code}` }); });
    return w;
  }

  private discard(w: Worker): void {
    if (this.worker === w) this.worker = undefined;
  }

  /** Resolves the pending job if it was sent to worker `w` (a terminated worker's late events are ignored). */
  private settle(w: Worker, o: JobOutcome): void {
    const p = this.pending;
    if (!p || p.worker !== w) return;
    this.pending = undefined;
    clearTimeout(p.timer);
    p.resolve(o);
  }

  /** Walks one image; the image's buffer is transferred (not copied) when `transfer` is set. */
  run(job: WalkJob, timeoutMs: number, transfer = false): Promise<JobOutcome> {
    return this.post(job, timeoutMs, transfer) as Promise<JobOutcome>;
  }

  /** Writes to one damaged image read-write (robust-write.ts); the outcome carries the image after unmount. */
  runWrite(job: WriteJob, timeoutMs: number): Promise<WriteOutcome> {
    return this.post(job, timeoutMs, true) as Promise<WriteOutcome>;
  }

  private post(job: WalkJob | WriteJob, timeoutMs: number, transfer: boolean): Promise<JobOutcome | WriteOutcome> {
    if (this.pending) throw new Error("WalkRunner runs one job at a time");
    this.worker ??= this.spawn();
    const w = this.worker;
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.discard(w);
        this.settle(w, { kind: "hang", ms: timeoutMs });
        void w.terminate();
      }, timeoutMs);
      this.pending = { id, worker: w, resolve, timer };
      w.postMessage({ id, job }, transfer ? [job.image.buffer as ArrayBuffer] : []);
    });
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) {
      w.removeAllListeners("exit");
      await w.terminate();
    }
  }
}
