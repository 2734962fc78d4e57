// The embedder's own head, read from its ONNX graph: the fc that turns the pooled feature map into
// the embedding, and whether the graph normalises it. The occlusion tools embed calibration maps
// with it exactly as the network does.
import { readFileSync } from 'node:fs';
import type { FitOptions } from './fit.js';
import { GraphBuilder } from '../onnx/graph-builder.js';

/**
 * The embedder's fc weight ([C × outputs]) from its ONNX graph, when it has one named
 * head/fc/weight, and whether the graph L2-normalises the embedding after it (MobileFaceNet does,
 * dlib's descriptor does not).
 */
export function embedderHead(modelFile: string): { fc: FitOptions['fc']; normalised: boolean } {
  const { graph } = GraphBuilder.fromBytes(readFileSync(modelFile));
  const fc = graph.initializers.get('head/fc/weight');
  // The node making `embedding`, past the Identity the graph builder inserts for output names.
  let producer = graph.nodes.find((n) => n.outputs.includes('embedding'));
  while (producer?.opType === 'Identity') {
    const input = producer.inputs[0];
    producer = graph.nodes.find((n) => input !== undefined && n.outputs.includes(input));
  }
  const normalised = producer?.opType === 'LpNormalization';
  if (!fc || fc.dims.length !== 2 || !(fc.data instanceof Float32Array)) return { fc: undefined, normalised };
  return { fc: { weight: fc.data, channels: fc.dims[0] as number, outputs: fc.dims[1] as number }, normalised };
}

/** x · projection ([F × outputs]): the embedder's own embedding when the projection is its fc (unit length when the graph normalises it). */
export function plainEmbedding(projection: Float32Array, x: Float32Array, outputs: number, normalised: boolean): Float32Array {
  const out = new Float32Array(outputs);
  for (let j = 0; j < x.length; j++) {
    const v = x[j] as number;
    if (v === 0) continue;
    for (let o = 0; o < outputs; o++) out[o] = (out[o] as number) + v * (projection[j * outputs + o] as number);
  }
  if (normalised) {
    const norm = Math.hypot(...out);
    if (norm > 0) for (let o = 0; o < outputs; o++) out[o] = (out[o] as number) / norm;
  }
  return out;
}
