// The embedder's own head, read from its ONNX graph: the fc that turns the pooled feature map into
// the embedding, and whether the graph normalises it. The occlusion tools embed calibration maps
// with it exactly as the network does.
import { readFileSync } from 'node:fs';
import type { CalibrationVariant, OcclusionCalibration } from './calibration.js';
import { type FitOptions, plainProjection } from './fit.js';
import { GraphBuilder } from '../onnx/graph-builder.js';

/**
 * The embedder's fc weight ([C × outputs]) from its ONNX graph, when it has one named
 * head/fc/weight, and whether the graph L2-normalises the embedding after it (MobileFaceNet does,
 * dlib's descriptor does not).
 */
export function embedderHead(modelFile: string): { fc: FitOptions['fc']; normalised: boolean; fcMakesEmbedding: boolean } {
  const { graph } = GraphBuilder.fromBytes(readFileSync(modelFile));
  const fc = graph.initializers.get('head/fc/weight');
  // The node making `embedding`, past the Identity the graph builder inserts for output names.
  let producer = graph.nodes.find((n) => n.outputs.includes('embedding'));
  while (producer?.opType === 'Identity') {
    const input = producer.inputs[0];
    producer = graph.nodes.find((n) => input !== undefined && n.outputs.includes(input));
  }
  const normalised = producer?.opType === 'LpNormalization';
  // Whether the embedding is the fc of the pooled map (then normalised): not so for a refitted head.
  const beforeNorm = normalised ? graph.nodes.find((n) => producer?.inputs[0] !== undefined && n.outputs.includes(producer.inputs[0])) : producer;
  const fcMakesEmbedding = beforeNorm?.opType === 'MatMul' && beforeNorm.inputs.includes('head/fc/weight');
  if (!fc || fc.dims.length !== 2 || !(fc.data instanceof Float32Array)) return { fc: undefined, normalised, fcMakesEmbedding };
  return { fc: { weight: fc.data, channels: fc.dims[0] as number, outputs: fc.dims[1] as number }, normalised, fcMakesEmbedding };
}

/**
 * The plain embedding of calibration face `face` under `variant`, as the embedder makes it: the fc
 * on the oriented map where the fc makes the embedding, else (a refitted head, mobilefacenet-occ)
 * the embedder's own output stored by the calibration pass.
 */
export function calibrationPlainEmbedder(cal: OcclusionCalibration, modelFile: string, model: string): (variant: CalibrationVariant, face: number) => Float32Array {
  const { fc, normalised, fcMakesEmbedding } = embedderHead(modelFile);
  if (fcMakesEmbedding && fc) {
    const { projection } = plainProjection(cal.featureShape, fc);
    const f = cal.featureShape[0] * cal.featureShape[1] * cal.featureShape[2];
    return (variant, face) => plainEmbedding(projection, (cal.features.get(variant) as Float32Array).subarray(face * f, (face + 1) * f), fc.outputs, normalised);
  }
  const stored = cal.embeddings;
  if (!stored) throw new Error(`${model}: its embedding is not the fc of its features, and the calibration cache holds no embeddings (written before they were stored): delete the cache (models/compress/lfw.ts CACHE_DIR, occlusion-${model}-*) and rerun`);
  const outputs = (stored.get('clean') as Float32Array).length / cal.files.length;
  return (variant, face) => (stored.get(variant) as Float32Array).slice(face * outputs, (face + 1) * outputs);
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
