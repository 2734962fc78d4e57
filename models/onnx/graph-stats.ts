// Parameter and multiply-accumulate counts, taken from the graph itself. Shapes come from running
// the model once with every Conv/Gemm/MatMul output exposed, so the counts use the real shapes.
import ort from 'onnxruntime-node';
import { GraphBuilder } from './graph-builder.js';

export interface GraphStats {
  params: number;
  /** Multiply-accumulates for one input (batch 1). */
  macs: number;
  perNode: { name: string; opType: string; macs: number }[];
}

export async function graphStats(bytes: Uint8Array, concreteInput: Record<string, number[]>): Promise<GraphStats> {
  const { graph, info } = GraphBuilder.fromBytes(bytes);
  let params = 0;
  for (const init of graph.initializers.values()) if (init.data instanceof Float32Array) params += init.data.length;
  const counted = graph.nodes.filter((n) => n.opType === 'Conv' || n.opType === 'Gemm' || n.opType === 'MatMul');
  const outputNames = new Set(graph.outputs.map((o) => o.name));
  for (const n of counted) {
    const out = n.outputs[0] as string;
    if (!outputNames.has(out)) graph.outputs.push({ name: out, shape: null, elemType: 'float32' });
  }
  const session = await ort.InferenceSession.create(graph.toBytes(info));
  try {
    const feeds: Record<string, ort.Tensor> = {};
    for (const input of graph.inputs) {
      const dims = concreteInput[input.name];
      if (!dims) throw new Error(`graphStats: no concrete shape given for input ${input.name}`);
      feeds[input.name] = new ort.Tensor('float32', new Float32Array(dims.reduce((a, b) => a * b, 1)), dims);
    }
    const results = await session.run(feeds);
    const perNode = counted.map((n) => {
      const outDims = results[n.outputs[0] as string]?.dims ?? [];
      const weight = graph.initializers.get(n.inputs[1] as string);
      let macs = 0;
      if (n.opType === 'Conv' && weight) {
        // out elements × (Cin/group × kh × kw): weight dims are [Cout, Cin/group, kh, kw].
        const [, cinPerGroup = 1, kh = 1, kw = 1] = weight.dims;
        macs = outDims.reduce((a, b) => a * b, 1) * cinPerGroup * kh * kw;
      } else if (weight) {
        const inner = n.opType === 'Gemm' && n.attributes.transB === 1 ? weight.dims[1] : weight.dims[0];
        macs = outDims.reduce((a, b) => a * b, 1) * (inner ?? 1);
      }
      return { name: n.name, opType: n.opType, macs };
    });
    return { params, macs: perNode.reduce((s, n) => s + n.macs, 0), perNode };
  } finally {
    await session.release();
  }
}
