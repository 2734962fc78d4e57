// The paper's backbone, LResNet50E-IR (SphereFace/CosFace/FROM code bases; insightface "IR" unit),
// built as ONNX with seeded random weights: for its parameter, MAC and latency curve under pruning
// only — it has no trained weights, so its accuracy cannot be measured.
//
//   input `input` float32 [batch,3,112,96] RGB 0..255, normalised (x − 127.5) / 128 in the graph
//   stem  conv3×3·64 /1 + BN + PReLU
//   stages of 3/4/14/3 blocks, widths 64/128/256/512; the first block of each stage has stride 2
//   block: BN – conv3×3 – BN – PReLU – conv3×3 (stride) – BN, + shortcut (identity, or
//          conv1×1/2 + BN where the shape changes)
//   head  BN – dropout (identity at inference, not written) – FC 512 – BN  → `embedding` [batch,512]
//
// BNs that follow a conv or the FC are folded into it (exact); the BN at the start of each block
// (before a zero-padded conv) is kept as a BatchNormalization node. Node naming follows the pruning
// tool's convention: `<block>/conv1`, `<block>/conv1/prelu` (slope `<block>/conv1/prelu/slope`),
// `<block>/conv2`, `<block>/add`, with <block> = stage<s>_<i>.
import { GraphBuilder } from '../onnx/graph-builder.js';
import { seededRandom } from '../../agent/util/seeded-random.js';

export const LRESNET_STAGES: ReadonlyArray<readonly [number, number]> = [
  [3, 64],
  [4, 128],
  [14, 256],
  [3, 512],
];
export const LRESNET_INPUT = { width: 96, height: 112 } as const;

export function buildLResNet50EIR(seed = 2023, embeddingSize = 512): Uint8Array {
  const random = seededRandom(seed);
  const gauss = (): number => {
    const u = Math.max(random(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
  };
  const he = (n: number, fanIn: number, gain = 1): Float32Array => {
    const s = gain * Math.sqrt(2 / fanIn);
    return Float32Array.from({ length: n }, () => gauss() * s);
  };
  const g = new GraphBuilder('lresnet50e_ir_random');

  /** Conv with a BN folded in (random BN statistics, seeded). */
  const conv = (x: string, name: string, cin: number, cout: number, k: number, stride: number, gain = 1): string => {
    const w = he(cout * cin * k * k, cin * k * k, gain);
    const bias = new Float32Array(cout);
    for (let o = 0; o < cout; o++) {
      const scale = 1 + 0.1 * gauss();
      for (let i = 0; i < cin * k * k; i++) w[o * cin * k * k + i] = (w[o * cin * k * k + i] as number) * scale;
      bias[o] = 0.05 * gauss();
    }
    const wn = g.initializer(`${name}/weight`, w, [cout, cin, k, k]);
    const bn = g.initializer(`${name}/bias`, bias, [cout]);
    const p = (k - 1) / 2;
    return g.conv(x, wn, bn, { kernelShape: [k, k], strides: [stride, stride], pads: [p, p, p, p] }, name);
  };
  const prelu = (x: string, name: string, c: number): string => {
    const slope = g.initializer(`${name}/slope`, Float32Array.from({ length: c }, () => 0.25), [c, 1, 1]);
    return g.op('PRelu', [x, slope], {}, name);
  };
  const batchNorm = (x: string, name: string, c: number): string => {
    const scale = g.initializer(`${name}/scale`, Float32Array.from({ length: c }, () => 1 + 0.1 * gauss()), [c]);
    const bias = g.initializer(`${name}/bias`, Float32Array.from({ length: c }, () => 0.05 * gauss()), [c]);
    const mean = g.initializer(`${name}/mean`, Float32Array.from({ length: c }, () => 0.05 * gauss()), [c]);
    const variance = g.initializer(`${name}/var`, Float32Array.from({ length: c }, () => 1 + 0.1 * Math.abs(gauss())), [c]);
    return g.op('BatchNormalization', [x, scale, bias, mean, variance], { epsilon: { float: 2e-5 } }, name);
  };

  const input = g.input('input', ['batch', 3, LRESNET_INPUT.height, LRESNET_INPUT.width]);
  const centred = g.op('Sub', [input, g.constFloat('normalize/mean', [127.5], [])], {}, 'normalize/sub');
  const normalized = g.op('Mul', [centred, g.constFloat('normalize/scale', [1 / 128], [])], {}, 'normalize/mul');
  let x = prelu(conv(normalized, 'stem/conv', 3, 64, 3, 1), 'stem/prelu', 64);
  let channels = 64;
  let h: number = LRESNET_INPUT.height;
  let w: number = LRESNET_INPUT.width;
  LRESNET_STAGES.forEach(([blocks, width], s) => {
    for (let i = 0; i < blocks; i++) {
      const name = `stage${s + 1}_${i + 1}`;
      const stride = i === 0 ? 2 : 1;
      const b = batchNorm(x, `${name}/bn1`, channels);
      const c1 = prelu(conv(b, `${name}/conv1`, channels, width, 3, 1), `${name}/conv1/prelu`, width);
      // Residual branch scaled down at init so that 24 random blocks keep activations bounded.
      const c2 = conv(c1, `${name}/conv2`, width, width, 3, stride, 0.3);
      const shortcut = stride !== 1 || channels !== width ? conv(x, `${name}/shortcut/conv`, channels, width, 1, stride) : x;
      x = g.op('Add', [c2, shortcut], {}, `${name}/add`);
      channels = width;
      if (stride === 2) {
        h = Math.floor((h - 1) / 2) + 1;
        w = Math.floor((w - 1) / 2) + 1;
      }
    }
  });
  const bn = batchNorm(x, 'head/bn1', channels);
  const flat = g.op('Flatten', [bn], { axis: 1 }, 'head/flatten');
  const features = channels * h * w;
  const fcW = g.initializer('head/fc/weight', he(embeddingSize * features, features), [embeddingSize, features]);
  const fcB = g.initializer('head/fc/bias', new Float32Array(embeddingSize), [embeddingSize]);
  const embedding = g.op('Gemm', [flat, fcW, fcB], { transB: 1 }, 'head/fc');
  g.output(embedding, 'embedding', ['batch', embeddingSize]);
  return g.toBytes({
    producerName: 'facegate/models/compress/lresnet50e-ir.ts',
    producerVersion: '1',
    docString: `LResNet50E-IR (stages 3/4/14/3, widths 64/128/256/512), 112×96 input, random weights (seed ${seed}); the head's final BN is folded into the FC.`,
    metadata: { seed: String(seed), weights: 'seeded random (He init): for parameter/MAC/latency measurements only, no accuracy' },
  });
}
