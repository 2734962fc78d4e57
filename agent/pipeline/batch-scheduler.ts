// One scheduler per model, shared by every camera: requests are collected into one batch up to
// `maxBatch` items or `maxWaitMs`, whichever comes first, so N cameras cost fewer, larger runs.
// Bounded: beyond `maxPending` waiting items a request is refused at once (the caller drops that
// frame's work), never queued.

export interface BatchSchedulerOptions {
  maxBatch: number;
  maxWaitMs: number;
  /** Most items waiting for a run; default 4 × maxBatch. */
  maxPending?: number;
  /** Whether more requests are about to come; when false, a partial batch runs at once. */
  moreComing?: () => boolean;
  /** Called after every run with its size and duration (metrics). */
  onBatch?: (size: number, ms: number, ok: boolean) => void;
}

export interface BatchStats {
  runs: number;
  items: number;
  refused: number;
  /** Histogram: batch size → runs. */
  sizes: Record<number, number>;
  lastRunMs: number;
}

export class SchedulerFullError extends Error {
  constructor(name: string, pending: number) {
    super(`${name}: ${pending} requests already waiting; request refused`);
    this.name = 'SchedulerFullError';
  }
}

interface Waiting<I, O> {
  item: I;
  resolve: (o: O) => void;
  reject: (e: unknown) => void;
}

export class BatchScheduler<I, O> {
  private queue: Waiting<I, O>[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  readonly stats: BatchStats = { runs: 0, items: 0, refused: 0, sizes: {}, lastRunMs: 0 };
  private readonly maxPending: number;
  private batchLimit: number;

  constructor(
    readonly name: string,
    private readonly runBatch: (items: I[]) => Promise<O[]>,
    private readonly options: BatchSchedulerOptions,
  ) {
    if (!(options.maxBatch >= 1)) throw new Error(`${name}: maxBatch must be ≥ 1`);
    this.maxPending = options.maxPending ?? options.maxBatch * 4;
    this.batchLimit = options.maxBatch;
  }

  /** The largest batch a run takes now (lowered under GPU memory pressure). */
  get maxBatch(): number {
    return this.batchLimit;
  }

  /** Changes the largest batch, between 1 and the configured maxBatch; the queue bound stays. */
  setMaxBatch(n: number): void {
    this.batchLimit = Math.max(1, Math.min(this.options.maxBatch, Math.floor(n)));
  }

  submit(item: I): Promise<O> {
    return this.enqueue([item])[0] as Promise<O>;
  }

  /** Submits several items that belong together (one frame's faces): they join one batch. */
  submitAll(items: readonly I[]): Promise<O[]> {
    return Promise.all(this.enqueue(items));
  }

  private enqueue(items: readonly I[]): Promise<O>[] {
    if (items.length === 0) return [];
    if (this.queue.length + items.length > this.maxPending) {
      this.stats.refused += items.length;
      const err = new SchedulerFullError(this.name, this.queue.length);
      return items.map(() => Promise.reject(err));
    }
    const promises = items.map((item) => new Promise<O>((resolve, reject) => this.queue.push({ item, resolve, reject })));
    this.schedule();
    return promises;
  }

  private schedule(): void {
    if (this.running) return; // the running batch re-schedules when it ends
    if (this.queue.length >= this.batchLimit || (this.options.moreComing && !this.options.moreComing())) {
      this.flush();
    } else if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), this.options.maxWaitMs);
    }
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.running || this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.batchLimit);
    this.running = true;
    const started = performance.now();
    let ok = false;
    this.runBatch(batch.map((w) => w.item)).then(
      (outputs) => {
        if (outputs.length !== batch.length) throw new Error(`${this.name}: batch of ${batch.length} returned ${outputs.length} results`);
        ok = true;
        batch.forEach((w, i) => w.resolve(outputs[i] as O));
      },
      (err: unknown) => batch.forEach((w) => w.reject(err)),
    ).catch((err: unknown) => batch.forEach((w) => w.reject(err))).finally(() => {
      this.options.onBatch?.(batch.length, performance.now() - started, ok);
      this.stats.runs++;
      this.stats.items += batch.length;
      this.stats.sizes[batch.length] = (this.stats.sizes[batch.length] ?? 0) + 1;
      this.stats.lastRunMs = performance.now() - started;
      this.running = false;
      if (this.queue.length > 0) this.schedule();
    });
  }
}
