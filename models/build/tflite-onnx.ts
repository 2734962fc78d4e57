// Pieces shared by the TFLite → ONNX converters (mtcnn.ts, mobilefacenet.ts).
import type { GraphBuilder } from '../onnx/graph-builder.js';
import type { TfliteGraph, TfliteOperator, TfliteTensor } from '../tflite/reader.js';

/**
 * PReLU(x) = a·x + (1 − a)·Relu(x), written with Mul/Relu/Add: onnxruntime's CPU PRelu kernel
 * with per-channel slopes was the slowest op of all three MTCNN stages (more time than the
 * convolutions), while its Mul with a [C,1,1] operand is vectorised. Exact up to float
 * rounding. max(x, a·x) would need one op less but fails for slopes above 1, which MTCNN has.
 */
export function emitPrelu(g: GraphBuilder, x: string, alpha: Float32Array, rank: number, name: string): string {
  const dims = rank === 4 ? [alpha.length, 1, 1] : [alpha.length];
  const slope = g.initializer(`${name}_slope`, alpha, dims);
  const keep = g.initializer(`${name}_keep`, alpha.map((a) => 1 - a), dims);
  const linear = g.op('Mul', [x, slope], {}, `${name}_linear`);
  const positive = g.op('Mul', [g.op('Relu', [x], {}, `${name}_relu`), keep], {}, `${name}_positive`);
  return g.op('Add', [linear, positive], {}, name);
}

/** A readable ONNX node name from a TFLite tensor path (two path parts, ASCII word characters). */
export function tfliteShortName(tfliteName: string, from = 1): string {
  return (
    tfliteName
      .split('/')
      .filter((p) => !['read', 'weights', 'alpha', 'BiasAdd', 'transpose'].includes(p))
      .slice(from, from + 2)
      .join('_')
      .replace(/[^A-Za-z0-9_]/g, '_') || 'op'
  );
}

/**
 * The first operator after `from` (within `window` ops) with `opcode` that satisfies `pred` and is
 * not yet consumed: TOCO writes a decomposed op's parts close together, but they are found by
 * dataflow rather than by position.
 */
export function findFollowing(
  ops: readonly TfliteOperator[],
  from: number,
  window: number,
  consumed: ReadonlySet<number>,
  opcode: string,
  pred: (op: TfliteOperator) => boolean,
): [number, TfliteOperator] | undefined {
  for (let j = from + 1; j < Math.min(ops.length, from + window); j++) {
    const op = ops[j] as TfliteOperator;
    if (!consumed.has(j) && op.opcode === opcode && pred(op)) return [j, op];
  }
  return undefined;
}

export function tensorAt(graph: TfliteGraph, index: number): TfliteTensor {
  const t = graph.tensors[index];
  if (!t) throw new Error(`TFLite tensor #${index} does not exist`);
  return t;
}

/** A constant float32 input of an operator (weights, biases, slopes); `what` names it in the error. */
export function floatConstant(graph: TfliteGraph, index: number | undefined, what: string): { t: TfliteTensor; data: Float32Array } {
  if (index === undefined || index < 0) throw new Error(`${what}: missing constant input`);
  const t = tensorAt(graph, index);
  if (!(t.data instanceof Float32Array)) throw new Error(`${what}: ${t.name} is not a float32 constant`);
  return { t, data: t.data };
}
