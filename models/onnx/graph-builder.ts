// A small ONNX graph builder over the ONNX protobuf schema (onnx-proto).
// Model builders (MTCNN, the ResNet embedder) write graphs with it, and the pruning tool of a
// later issue reads a model back (`GraphBuilder.fromBytes`), edits nodes and initializers, and
// writes it again. Only float32/int64/int32 tensors are needed by our networks.
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
type TensorProto = onnxProto.onnx.ITensorProto;
type NodeProto = onnxProto.onnx.INodeProto;
type ValueInfoProto = onnxProto.onnx.IValueInfoProto;
type AttributeProto = onnxProto.onnx.IAttributeProto;

export const DEFAULT_OPSET = 17;

/** A dimension: a fixed size or a symbolic name (dynamic). */
export type Dim = number | string;

export type AttributeValue = number | string | number[] | { float: number } | { floats: number[] };

export interface Initializer {
  name: string;
  dims: number[];
  data: Float32Array | BigInt64Array | Int32Array;
}

export interface GraphNode {
  opType: string;
  inputs: string[];
  outputs: string[];
  name: string;
  attributes: Record<string, AttributeValue>;
}

export interface GraphIO {
  name: string;
  /** null: shape left to the runtime's inference (e.g. debug outputs). */
  shape: Dim[] | null;
  elemType: 'float32' | 'int64';
}

export interface ModelInfo {
  producerName?: string;
  producerVersion?: string;
  docString?: string;
  metadata?: Record<string, string>;
  opset?: number;
}

const ELEM_TYPE = { float32: onnx.TensorProto.DataType.FLOAT, int64: onnx.TensorProto.DataType.INT64 } as const;

export class GraphBuilder {
  readonly inputs: GraphIO[] = [];
  readonly outputs: GraphIO[] = [];
  readonly nodes: GraphNode[] = [];
  readonly initializers = new Map<string, Initializer>();
  private readonly usedNames = new Set<string>();
  private counter = 0;

  constructor(readonly name: string) {}

  /** A fresh value name derived from `hint`, unique in this graph. */
  uniqueName(hint: string): string {
    let candidate = hint;
    while (this.usedNames.has(candidate)) candidate = `${hint}_${++this.counter}`;
    this.usedNames.add(candidate);
    return candidate;
  }

  input(name: string, shape: Dim[], elemType: GraphIO['elemType'] = 'float32'): string {
    this.inputs.push({ name: this.claim(name), shape, elemType });
    return name;
  }

  /** Declares `value` a graph output named `name` (an Identity is inserted when names differ). */
  output(value: string, name: string, shape: Dim[], elemType: GraphIO['elemType'] = 'float32'): void {
    if (value !== name) this.node('Identity', [value], {}, { outputs: [this.claim(name)] });
    this.outputs.push({ name, shape, elemType });
  }

  /** Adds a constant tensor. float32 unless the data says otherwise. */
  initializer(hint: string, data: Float32Array | BigInt64Array | Int32Array, dims: number[]): string {
    const expected = dims.reduce((a, b) => a * b, 1);
    if (expected !== data.length) {
      throw new Error(`initializer ${hint}: dims [${dims.join(',')}] need ${expected} values, got ${data.length}`);
    }
    const name = this.uniqueName(hint);
    this.initializers.set(name, { name, dims: [...dims], data });
    return name;
  }

  constFloat(hint: string, values: number[], dims: number[] = [values.length]): string {
    return this.initializer(hint, Float32Array.from(values), dims);
  }

  constInt64(hint: string, values: number[], dims: number[] = [values.length]): string {
    return this.initializer(hint, BigInt64Array.from(values.map((v) => BigInt(v))), dims);
  }

  /** Adds a node; returns its output names. */
  node(
    opType: string,
    inputs: string[],
    attributes: Record<string, AttributeValue> = {},
    opts: { outputs?: string[]; nOutputs?: number; name?: string } = {},
  ): string[] {
    const nodeName = this.uniqueName(opts.name ?? opType.toLowerCase());
    const outputs =
      opts.outputs ?? Array.from({ length: opts.nOutputs ?? 1 }, (_, i) => this.uniqueName(`${nodeName}_out${i === 0 ? '' : i}`));
    this.nodes.push({ opType, inputs, outputs, name: nodeName, attributes });
    return outputs;
  }

  /** Adds a single-output node and returns its output name. */
  op(opType: string, inputs: string[], attributes: Record<string, AttributeValue> = {}, name?: string): string {
    const [out] = this.node(opType, inputs, attributes, { name });
    return out as string;
  }

  conv(
    x: string,
    weight: string,
    bias: string | undefined,
    opts: { strides?: number[]; pads?: number[]; group?: number; dilations?: number[]; kernelShape: number[] },
    name?: string,
  ): string {
    const attrs: Record<string, AttributeValue> = {
      kernel_shape: opts.kernelShape,
      strides: opts.strides ?? [1, 1],
      pads: opts.pads ?? [0, 0, 0, 0],
    };
    if (opts.group !== undefined) attrs.group = opts.group;
    if (opts.dilations !== undefined) attrs.dilations = opts.dilations;
    return this.op('Conv', bias ? [x, weight, bias] : [x, weight], attrs, name);
  }

  /** Removes initializers no node reads (after an edit). */
  pruneUnusedInitializers(): void {
    const read = new Set(this.nodes.flatMap((n) => n.inputs));
    for (const name of [...this.initializers.keys()]) if (!read.has(name)) this.initializers.delete(name);
  }

  toBytes(info: ModelInfo = {}): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: info.producerName ?? 'facegate',
      producerVersion: info.producerVersion ?? '0',
      docString: info.docString ?? '',
      opsetImport: [{ domain: '', version: info.opset ?? DEFAULT_OPSET }],
      metadataProps: Object.entries(info.metadata ?? {}).map(([key, value]) => ({ key, value })),
      graph: {
        name: this.name,
        input: this.inputs.map(valueInfo),
        output: this.outputs.map(valueInfo),
        initializer: [...this.initializers.values()].map(tensorProto),
        node: this.nodes.map(nodeProto),
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }

  /** Reads a model written by any ONNX producer (float32/int64/int32 initializers). */
  static fromBytes(bytes: Uint8Array): { graph: GraphBuilder; info: ModelInfo } {
    const model = onnx.ModelProto.decode(bytes);
    const g = model.graph;
    if (!g) throw new Error('ONNX model has no graph');
    const graph = new GraphBuilder(g.name ?? 'graph');
    for (const init of g.initializer ?? []) {
      const parsed = parseTensor(init);
      graph.usedNames.add(parsed.name);
      graph.initializers.set(parsed.name, parsed);
    }
    const initNames = graph.initializers;
    for (const vi of g.input ?? []) if (!initNames.has(vi.name ?? '')) graph.inputs.push(parseValueInfo(vi));
    for (const vi of g.output ?? []) graph.outputs.push(parseValueInfo(vi));
    for (const n of g.node ?? []) {
      const node: GraphNode = {
        opType: n.opType ?? '',
        inputs: [...(n.input ?? [])],
        outputs: [...(n.output ?? [])],
        name: n.name ?? '',
        attributes: Object.fromEntries((n.attribute ?? []).map((a) => [a.name ?? '', parseAttribute(a)])),
      };
      node.outputs.forEach((o) => graph.usedNames.add(o));
      graph.usedNames.add(node.name);
      graph.nodes.push(node);
    }
    for (const io of graph.inputs) graph.usedNames.add(io.name);
    const metadata = Object.fromEntries((model.metadataProps ?? []).map((p) => [p.key ?? '', p.value ?? '']));
    const opset = model.opsetImport?.find((o) => !o.domain)?.version;
    return {
      graph,
      info: {
        producerName: model.producerName ?? undefined,
        producerVersion: model.producerVersion ?? undefined,
        docString: model.docString ?? undefined,
        metadata,
        opset: opset === undefined || opset === null ? undefined : Number(opset),
      },
    };
  }

  private claim(name: string): string {
    if (this.usedNames.has(name)) throw new Error(`value name ${name} is already used in graph ${this.name}`);
    this.usedNames.add(name);
    return name;
  }
}

function valueInfo(io: GraphIO): ValueInfoProto {
  return {
    name: io.name,
    type: {
      tensorType: {
        elemType: ELEM_TYPE[io.elemType],
        ...(io.shape ? { shape: { dim: io.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } : {}),
      },
    },
  };
}

function parseValueInfo(vi: ValueInfoProto): GraphIO {
  const tt = vi.type?.tensorType;
  const shape: Dim[] | null = tt?.shape ? (tt.shape.dim ?? []).map((d) => (d.dimParam ? d.dimParam : Number(d.dimValue ?? 0))) : null;
  const elemType = tt?.elemType === onnx.TensorProto.DataType.INT64 ? 'int64' : 'float32';
  return { name: vi.name ?? '', shape, elemType };
}

function tensorProto(init: Initializer): TensorProto {
  const bytes = new Uint8Array(init.data.buffer, init.data.byteOffset, init.data.byteLength);
  const dataType =
    init.data instanceof Float32Array
      ? onnx.TensorProto.DataType.FLOAT
      : init.data instanceof BigInt64Array
        ? onnx.TensorProto.DataType.INT64
        : onnx.TensorProto.DataType.INT32;
  return { name: init.name, dims: init.dims, dataType, rawData: bytes };
}

function parseTensor(t: TensorProto): Initializer {
  const name = t.name ?? '';
  const dims = (t.dims ?? []).map(Number);
  const raw = t.rawData && t.rawData.length > 0 ? t.rawData : undefined;
  // Copy raw bytes into an aligned buffer of their own: protobuf slices may sit at odd offsets,
  // and in Node they are Buffers, whose slice() is a view on the whole input (no copy).
  const aligned = raw ? copyBytes(raw).buffer : undefined;
  switch (t.dataType) {
    case onnx.TensorProto.DataType.FLOAT:
      return { name, dims, data: aligned ? new Float32Array(aligned) : Float32Array.from(t.floatData ?? []) };
    case onnx.TensorProto.DataType.INT64:
      return {
        name,
        dims,
        data: aligned ? new BigInt64Array(aligned) : BigInt64Array.from((t.int64Data ?? []).map((v) => BigInt(v.toString()))),
      };
    case onnx.TensorProto.DataType.INT32:
      return { name, dims, data: aligned ? new Int32Array(aligned) : Int32Array.from(t.int32Data ?? []) };
    default:
      throw new Error(`initializer ${name}: data type ${String(t.dataType)} is not supported`);
  }
}

function copyBytes(src: Uint8Array): Uint8Array {
  const out = new Uint8Array(src.byteLength);
  out.set(src);
  return out;
}

function nodeProto(n: GraphNode): NodeProto {
  return {
    opType: n.opType,
    input: n.inputs,
    output: n.outputs,
    name: n.name,
    attribute: Object.entries(n.attributes).map(([name, v]) => attributeProto(name, v)),
  };
}

function attributeProto(name: string, v: AttributeValue): AttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`attribute ${name}: use { float } for non-integer ${v}`);
    return { name, type: T.INT, i: v };
  }
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if ('float' in v) return { name, type: T.FLOAT, f: v.float };
  return { name, type: T.FLOATS, floats: v.floats };
}

function parseAttribute(a: AttributeProto): AttributeValue {
  const T = onnx.AttributeProto.AttributeType;
  switch (a.type) {
    case T.INT:
      return Number(a.i ?? 0);
    case T.FLOAT:
      return { float: a.f ?? 0 };
    case T.STRING:
      return new TextDecoder().decode(a.s ?? new Uint8Array());
    case T.INTS:
      return (a.ints ?? []).map(Number);
    case T.FLOATS:
      return { floats: [...(a.floats ?? [])] };
    default:
      throw new Error(`attribute ${a.name}: type ${String(a.type)} is not supported`);
  }
}
