// A model session shared by every camera whose concurrent runs are merged into one: R-Net and
// O-Net get a batch of candidate crops per frame, and while one camera's batch runs the others'
// wait and then go together, concatenated along the batch dimension, and their outputs are split
// back by rows. An idle session runs a request at once (no added wait). Built on the same
// BatchScheduler as the embedder, so it is bounded the same way.
import { BatchScheduler } from '../pipeline/batch-scheduler.js';
import type { ModelSession } from './onnx-session.js';

type Inputs = Parameters<ModelSession['run']>[0];
type Outputs = Awaited<ReturnType<ModelSession['run']>>;

export interface BatchedSessionOptions {
  /** Most requests (frames) merged into one run. */
  maxRequests: number;
  onBatch?: (requests: number, ms: number) => void;
}

/** Rows (first dimension) of every input; inputs of one request must agree. */
function rowsOf(inputs: Inputs): number {
  const first = Object.values(inputs)[0];
  if (!first) throw new Error('a run needs at least one input');
  return Number(first.dims[0]);
}

function sameShape(a: Inputs, b: Inputs): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => {
    const x = a[k]?.dims;
    const y = b[k]?.dims;
    return !!x && !!y && x.length === y.length && x.every((d, i) => i === 0 || d === y[i]);
  });
}

async function runMerged(session: ModelSession, requests: Inputs[]): Promise<Outputs[]> {
  const first = requests[0] as Inputs;
  if (requests.length === 1 || !requests.every((r) => sameShape(first, r))) {
    const out: Outputs[] = [];
    for (const r of requests) out.push(await session.run(r));
    return out;
  }
  const rows = requests.map(rowsOf);
  const total = rows.reduce((a, b) => a + b, 0);
  const merged: Inputs = {};
  for (const [name, t] of Object.entries(first)) {
    const per = t.data.length / Number(t.dims[0]);
    const data = new Float32Array(total * per);
    let offset = 0;
    for (const r of requests) {
      const part = (r[name] as (typeof r)[string]).data;
      data.set(part, offset);
      offset += part.length;
    }
    merged[name] = { data, dims: [total, ...t.dims.slice(1)] };
  }
  const out = await session.run(merged);
  const results: Outputs[] = requests.map(() => ({}));
  for (const [name, t] of Object.entries(out)) {
    const outRows = Number(t.dims[0]);
    if (outRows !== total) throw new Error(`model ${session.name}: output ${name} has ${outRows} rows for ${total} input rows; cannot split a merged batch`);
    const per = t.data.length / total;
    let row = 0;
    rows.forEach((n, i) => {
      (results[i] as Outputs)[name] = { data: t.data.slice(row * per, (row + n) * per), dims: [n, ...t.dims.slice(1)] };
      row += n;
    });
  }
  return results;
}

export function batchedSession(session: ModelSession, options: BatchedSessionOptions): ModelSession & { readonly scheduler: BatchScheduler<Inputs, Outputs> } {
  const scheduler = new BatchScheduler<Inputs, Outputs>(session.name, (requests) => runMerged(session, requests), {
    maxBatch: options.maxRequests,
    maxWaitMs: 0,
    // Never wait for company: requests that arrive while a run is in flight form the next batch.
    moreComing: () => false,
    onBatch: options.onBatch ? (n, ms) => options.onBatch?.(n, ms) : undefined,
  });
  return {
    name: session.name,
    provider: session.provider,
    skipped: session.skipped,
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    scheduler,
    run: (inputs) => scheduler.submit(inputs),
    release: () => session.release(),
  };
}
