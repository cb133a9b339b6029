/**
 * One worker thread of the async API, seen from the calling thread: starts lib/async/worker.js,
 * numbers the requests and settles each one's promise from the worker's reply, forwards sampler
 * steps, and turns a worker that failed or exited into rejections. The worker holds the process
 * open only while a request is pending: an idle one the caller forgot to dispose never keeps Node
 * from exiting.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

import { packageRoot } from '../package_root.js';
import { CLOSE, type Reply, type Request, type WorkerInit } from './protocol.js';

type Ready = Extract<Reply, { type: 'ready' }>;
type StepReply = Extract<Reply, { type: 'step' }>;
type Answer = Exclude<Reply, { type: 'ready' | 'failed' | 'step' | 'error' }>;
/** A request as the caller writes it (the host adds the id). */
export type RequestBody = Request extends infer R ? (R extends Request ? Omit<R, 'id'> : never) : never;

interface Pending {
  resolve: (reply: Answer) => void;
  reject: (e: Error) => void;
  onStep?: (m: StepReply) => void;
}

/** How long dispose() lets the worker finish its request in flight before terminating it. */
const CLOSE_TIMEOUT_MS = 60_000;

/** The compiled worker: beside this file in the package, or dist/ when running from the TypeScript sources. */
function workerScript(name: string): string {
  const sibling = fileURLToPath(new URL('./worker.js', import.meta.url));
  if (existsSync(sibling)) return sibling;
  const built = join(packageRoot(), 'dist', 'lib', 'async', 'worker.js');
  if (existsSync(built)) return built;
  throw new Error(`diffvit.${name}: the worker script is missing (looked for ${sibling} and ${built}); build it with \`npm run build\``);
}

export class WorkerHost {
  /** The worker's 'ready' message; rejects with its error when it could not build its model or trainer. */
  readonly ready: Promise<Ready>;
  private readonly worker: Worker;
  private readonly stop: Int32Array;
  private readonly pending = new Map<number, Pending>();
  private readonly exited: Promise<void>;
  private nextId = 1;
  private started = false;
  /** Why no further request can succeed (disposed, or the worker failed); null while it can. */
  private failure: Error | null = null;
  private closing: Promise<void> | null = null;

  constructor(readonly name: string, init: WorkerInit, transfer: ArrayBuffer[] = []) {
    this.stop = new Int32Array(init.stop);
    this.worker = new Worker(workerScript(name), { workerData: init, transferList: transfer });
    let ready!: (m: Ready) => void, notReady!: (e: Error) => void;
    this.ready = new Promise<Ready>((res, rej) => ((ready = res), (notReady = rej)));
    this.ready.catch(() => {}); // awaited by create(); a failure also rejects every request
    this.worker.on('message', (m: Reply) => {
      if (m.type === 'ready') {
        this.started = true;
        ready(m);
        this.holdOpen();
      } else if (m.type === 'failed') {
        const e = new Error(m.message);
        notReady(e);
        this.fail(e);
      } else {
        const p = this.pending.get(m.id);
        if (!p) return;
        if (m.type === 'step') return p.onStep?.(m);
        this.pending.delete(m.id);
        if (m.type === 'error') p.reject(Object.assign(new Error(m.message), { name: m.name }));
        else p.resolve(m);
        this.holdOpen();
      }
    });
    // An exception the worker did not catch (it then exits).
    this.worker.on('error', (e) => {
      notReady(e);
      this.fail(e);
    });
    this.exited = new Promise((resolve) =>
      this.worker.once('exit', (code) => {
        const e = new Error(`diffvit.${name}: the worker thread exited${code ? ` with code ${code}` : ''}`);
        notReady(e);
        this.fail(e);
        resolve();
      }),
    );
  }

  /** Sends a request; resolves with the worker's answer, rejects with its error (same message). */
  request(body: RequestBody, onStep?: (m: StepReply) => void): Promise<Answer> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<Answer>((resolve, reject) => {
      try {
        this.worker.postMessage({ ...body, id });
      } catch (e) {
        throw new Error(`diffvit.${this.name}: the request cannot be sent to the worker thread (${(e as Error).message})`);
      }
      this.pending.set(id, { resolve, reject, onStep });
      this.holdOpen();
    });
  }

  /**
   * Stops the worker: every request not yet answered is rejected now; the worker skips those it
   * has not started, stops a sampling call at its next step and finishes a training step in
   * flight, then frees its tensors and exits (terminated if it has not after a minute). Idempotent.
   */
  dispose(): Promise<void> {
    this.closing ??= (async () => {
      this.fail(new Error(`diffvit.${this.name}: the worker was disposed`));
      Atomics.store(this.stop, 0, 1);
      this.worker.ref(); // until it has exited
      this.worker.postMessage(CLOSE);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), CLOSE_TIMEOUT_MS)));
      if ((await Promise.race([this.exited, timeout])) === 'timeout') await this.worker.terminate();
      clearTimeout(timer);
    })();
    return this.closing;
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
  }

  /** Keeps the process alive while the worker starts or has requests to answer, not while it idles. */
  private holdOpen(): void {
    if (this.closing) return;
    if (!this.started || this.pending.size) this.worker.ref();
    else this.worker.unref();
  }
}
