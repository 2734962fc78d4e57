// Intermediate activations of an ONNX model: a copy of the graph whose outputs are the wanted
// tensors, cut down to the nodes they need, run with onnxruntime on batches of face chips.
import { createSession, type ModelSession } from '../../agent/inference/onnx-session.js';
import { GraphBuilder } from '../onnx/graph-builder.js';

/** A set of aligned chips: RGB, HWC, 0..255, `count` chips of width×height back to back. */
export interface ChipSet {
  width: number;
  height: number;
  count: number;
  data: Uint8Array;
}

/** Chips [start, end) as the NCHW float32 batch the embedders take (raw 0..255). */
export function chipBatch(set: ChipSet, start: number, end: number): Float32Array {
  const { width: w, height: h } = set;
  const plane = w * h;
  const out = new Float32Array((end - start) * 3 * plane);
  for (let n = start; n < end; n++) {
    const src = n * plane * 3;
    const dst = (n - start) * 3 * plane;
    for (let p = 0; p < plane; p++) {
      out[dst + p] = set.data[src + 3 * p] as number;
      out[dst + plane + p] = set.data[src + 3 * p + 1] as number;
      out[dst + 2 * plane + p] = set.data[src + 3 * p + 2] as number;
    }
  }
  return out;
}

/** A subset of a chip set (by chip index). */
export function selectChips(set: ChipSet, indices: readonly number[]): ChipSet {
  const size = set.width * set.height * 3;
  const data = new Uint8Array(indices.length * size);
  indices.forEach((i, k) => data.set(set.data.subarray(i * size, (i + 1) * size), k * size));
  return { width: set.width, height: set.height, count: indices.length, data };
}

/** Chips concatenated. */
export function concatChips(sets: readonly ChipSet[]): ChipSet {
  const first = sets[0];
  if (!first) throw new Error('concatChips: no chip sets');
  const total = sets.reduce((n, s) => n + s.data.length, 0);
  const data = new Uint8Array(total);
  let off = 0;
  for (const s of sets) {
    if (s.width !== first.width || s.height !== first.height) throw new Error('concatChips: chip sizes differ');
    data.set(s.data, off);
    off += s.data.length;
  }
  return { width: first.width, height: first.height, count: sets.reduce((n, s) => n + s.count, 0), data };
}

/** The model with `outputs` (value names) as its only outputs and only the nodes they need. */
export function tapModel(bytes: Uint8Array, outputs: readonly string[]): Uint8Array {
  const { graph, info } = GraphBuilder.fromBytes(bytes);
  const producer = new Map<string, number>();
  graph.nodes.forEach((n, i) => n.outputs.forEach((o) => producer.set(o, i)));
  const needed = new Set<number>();
  const stack = [...outputs];
  for (const o of outputs) if (!producer.has(o) && !graph.inputs.some((i) => i.name === o)) throw new Error(`tapModel: no value named ${o}`);
  while (stack.length) {
    const v = stack.pop() as string;
    const i = producer.get(v);
    if (i === undefined || needed.has(i)) continue;
    needed.add(i);
    stack.push(...(graph.nodes[i]?.inputs ?? []));
  }
  const kept = graph.nodes.filter((_, i) => needed.has(i));
  graph.nodes.splice(0, graph.nodes.length, ...kept);
  graph.outputs.splice(0, graph.outputs.length, ...outputs.map((name) => ({ name, shape: null, elemType: 'float32' as const })));
  graph.pruneUnusedInitializers();
  return graph.toBytes(info);
}

export interface Tap {
  run(batch: Float32Array, n: number): Promise<Record<string, { data: Float32Array; dims: readonly number[] }>>;
  release(): Promise<void>;
}

/** An ORT session over tapModel(bytes, outputs). */
export async function openTap(bytes: Uint8Array, outputs: readonly string[], chip: { width: number; height: number }): Promise<Tap> {
  const session: ModelSession = await createSession('tap', tapModel(bytes, outputs));
  return {
    run: (batch, n) => session.run({ input: { data: batch, dims: [n, 3, chip.height, chip.width] } }),
    release: () => session.release(),
  };
}
