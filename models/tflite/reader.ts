// A minimal TFLite flatbuffer reader in plain TypeScript (no flatbuffers dependency).
// Covers the subset of tensorflow/lite/schema/schema.fbs that float32 CNNs such as the MTCNN
// nets use: Model, OperatorCode, SubGraph, Tensor, Operator, Buffer and a few builtin options.
// Field ids follow schema.fbs (a union field takes two ids: `<name>_type` then `<name>`).

// ---------------------------------------------------------------------------------------------
// FlatBuffers primitives

class FbTable {
  private readonly vtable: number;
  private readonly vtableSize: number;

  constructor(
    private readonly view: DataView,
    readonly pos: number,
  ) {
    this.vtable = pos - view.getInt32(pos, true);
    this.vtableSize = view.getUint16(this.vtable, true);
  }

  /** Absolute byte position of field `id`, or 0 when the field is absent. */
  private field(id: number): number {
    const entry = 4 + 2 * id;
    if (entry >= this.vtableSize) return 0;
    const rel = this.view.getUint16(this.vtable + entry, true);
    return rel === 0 ? 0 : this.pos + rel;
  }

  has(id: number): boolean {
    return this.field(id) !== 0;
  }

  uint8(id: number, def = 0): number {
    const p = this.field(id);
    return p ? this.view.getUint8(p) : def;
  }

  int8(id: number, def = 0): number {
    const p = this.field(id);
    return p ? this.view.getInt8(p) : def;
  }

  bool(id: number, def = false): boolean {
    const p = this.field(id);
    return p ? this.view.getUint8(p) !== 0 : def;
  }

  int32(id: number, def = 0): number {
    const p = this.field(id);
    return p ? this.view.getInt32(p, true) : def;
  }

  uint32(id: number, def = 0): number {
    const p = this.field(id);
    return p ? this.view.getUint32(p, true) : def;
  }

  float32(id: number, def = 0): number {
    const p = this.field(id);
    return p ? this.view.getFloat32(p, true) : def;
  }

  /** Follows an offset field (table, vector or string); returns its absolute position or 0. */
  private deref(id: number): number {
    const p = this.field(id);
    return p ? p + this.view.getUint32(p, true) : 0;
  }

  table(id: number): FbTable | undefined {
    const p = this.deref(id);
    return p ? new FbTable(this.view, p) : undefined;
  }

  string(id: number): string | undefined {
    const p = this.deref(id);
    if (!p) return undefined;
    const len = this.view.getUint32(p, true);
    return new TextDecoder().decode(new Uint8Array(this.view.buffer, this.view.byteOffset + p + 4, len));
  }

  /** A vector of scalars/structs: returns [start, length] (start = first element). */
  private vector(id: number): [number, number] | undefined {
    const p = this.deref(id);
    return p ? [p + 4, this.view.getUint32(p, true)] : undefined;
  }

  int32Vector(id: number): number[] | undefined {
    const v = this.vector(id);
    if (!v) return undefined;
    return Array.from({ length: v[1] }, (_, i) => this.view.getInt32(v[0] + 4 * i, true));
  }

  floatVector(id: number): number[] | undefined {
    const v = this.vector(id);
    if (!v) return undefined;
    return Array.from({ length: v[1] }, (_, i) => this.view.getFloat32(v[0] + 4 * i, true));
  }

  /** A [ubyte] vector as a view into the file (no copy). */
  bytes(id: number): Uint8Array | undefined {
    const v = this.vector(id);
    return v ? new Uint8Array(this.view.buffer, this.view.byteOffset + v[0], v[1]) : undefined;
  }

  tableVector(id: number): FbTable[] {
    const v = this.vector(id);
    if (!v) return [];
    return Array.from({ length: v[1] }, (_, i) => {
      const slot = v[0] + 4 * i;
      return new FbTable(this.view, slot + this.view.getUint32(slot, true));
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Schema subset

/** BuiltinOperator enum values (schema.fbs), only the names we may meet. */
const BUILTIN_OPERATORS: Record<number, string> = {
  0: 'ADD', 1: 'AVERAGE_POOL_2D', 2: 'CONCATENATION', 3: 'CONV_2D', 4: 'DEPTHWISE_CONV_2D',
  9: 'FULLY_CONNECTED', 14: 'LOGISTIC', 17: 'MAX_POOL_2D', 18: 'MUL', 19: 'RELU', 21: 'RELU6',
  22: 'RESHAPE', 25: 'SOFTMAX', 28: 'TANH', 34: 'PAD', 39: 'TRANSPOSE', 40: 'MEAN', 41: 'SUB',
  42: 'DIV', 43: 'SQUEEZE', 45: 'STRIDED_SLICE', 47: 'EXP', 54: 'PRELU', 55: 'MAXIMUM',
  57: 'MINIMUM', 59: 'NEG', 101: 'ABS', 74: 'SUM', 82: 'REDUCE_MAX', 89: 'REDUCE_MIN', 98: 'LEAKY_RELU',
};

/** BuiltinOptions union member indices (1-based; 0 = NONE). */
const OPTIONS = {
  Conv2DOptions: 1,
  DepthwiseConv2DOptions: 2,
  Pool2DOptions: 5,
  FullyConnectedOptions: 8,
  SoftmaxOptions: 9,
  ConcatenationOptions: 10,
  AddOptions: 11,
  ReshapeOptions: 17,
  MulOptions: 21,
  TransposeOptions: 26,
  ReducerOptions: 27,
  SubOptions: 28,
  DivOptions: 29,
  SqueezeOptions: 30,
  MaximumMinimumOptions: 39,
  NegOptions: 42,
} as const;

const TENSOR_TYPES = ['FLOAT32', 'FLOAT16', 'INT32', 'UINT8', 'INT64', 'STRING', 'BOOL', 'INT16', 'COMPLEX64', 'INT8'];
const ACTIVATIONS = ['NONE', 'RELU', 'RELU_N1_TO_1', 'RELU6', 'TANH', 'SIGN_BIT'] as const;

export type Activation = (typeof ACTIVATIONS)[number];
export type Padding = 'SAME' | 'VALID';

export type OperatorOptions =
  | { kind: 'none' }
  | {
      kind: 'conv2d';
      padding: Padding;
      strideW: number;
      strideH: number;
      activation: Activation;
      dilationW: number;
      dilationH: number;
    }
  | {
      kind: 'depthwiseConv2d';
      padding: Padding;
      strideW: number;
      strideH: number;
      depthMultiplier: number;
      activation: Activation;
      dilationW: number;
      dilationH: number;
    }
  | { kind: 'pool2d'; padding: Padding; strideW: number; strideH: number; filterW: number; filterH: number; activation: Activation }
  | { kind: 'fullyConnected'; activation: Activation; weightsFormat: number; keepNumDims: boolean }
  | { kind: 'softmax'; beta: number }
  | { kind: 'concatenation'; axis: number; activation: Activation }
  | { kind: 'reshape'; newShape: number[] | undefined }
  | { kind: 'reducer'; keepDims: boolean }
  | { kind: 'squeeze'; squeezeDims: number[] }
  | { kind: 'activation'; activation: Activation } // Add/Sub/Mul/Div options
  | { kind: 'empty' }; // option tables without fields (Neg, Maximum, Transpose, ...)

export interface TfliteTensor {
  index: number;
  name: string;
  /** Shape as stored (NHWC for 4-D activations). Empty = scalar. */
  shape: number[];
  type: 'FLOAT32' | 'INT32';
  /** Constant data (weights) when the tensor has a non-empty buffer. */
  data?: Float32Array | Int32Array;
}

export interface TfliteOperator {
  /** BuiltinOperator name, e.g. 'CONV_2D'. */
  opcode: string;
  inputs: number[];
  outputs: number[];
  options: OperatorOptions;
}

export interface TfliteGraph {
  version: number;
  description: string;
  tensors: TfliteTensor[];
  inputs: number[];
  outputs: number[];
  operators: TfliteOperator[];
}

function activation(code: number): Activation {
  const a = ACTIVATIONS[code];
  if (a === undefined) throw new Error(`TFLite: unknown fused activation ${code}`);
  return a;
}

function padding(code: number): Padding {
  if (code === 0) return 'SAME';
  if (code === 1) return 'VALID';
  throw new Error(`TFLite: unknown padding ${code}`);
}

function parseOptions(type: number, t: FbTable | undefined, opcode: string): OperatorOptions {
  if (type === 0) return { kind: 'none' };
  if (!t) throw new Error(`TFLite: ${opcode} declares options type ${type} without a table`);
  switch (type) {
    case OPTIONS.Conv2DOptions:
      return {
        kind: 'conv2d',
        padding: padding(t.int8(0)),
        strideW: t.int32(1),
        strideH: t.int32(2),
        activation: activation(t.int8(3)),
        dilationW: t.int32(4, 1),
        dilationH: t.int32(5, 1),
      };
    case OPTIONS.DepthwiseConv2DOptions:
      return {
        kind: 'depthwiseConv2d',
        padding: padding(t.int8(0)),
        strideW: t.int32(1),
        strideH: t.int32(2),
        depthMultiplier: t.int32(3, 1),
        activation: activation(t.int8(4)),
        dilationW: t.int32(5, 1),
        dilationH: t.int32(6, 1),
      };
    case OPTIONS.Pool2DOptions:
      return {
        kind: 'pool2d',
        padding: padding(t.int8(0)),
        strideW: t.int32(1),
        strideH: t.int32(2),
        filterW: t.int32(3),
        filterH: t.int32(4),
        activation: activation(t.int8(5)),
      };
    case OPTIONS.FullyConnectedOptions:
      return { kind: 'fullyConnected', activation: activation(t.int8(0)), weightsFormat: t.int8(1), keepNumDims: t.bool(2) };
    case OPTIONS.SoftmaxOptions:
      return { kind: 'softmax', beta: t.float32(0) };
    case OPTIONS.ConcatenationOptions:
      return { kind: 'concatenation', axis: t.int32(0), activation: activation(t.int8(1)) };
    case OPTIONS.ReshapeOptions:
      return { kind: 'reshape', newShape: t.int32Vector(0) };
    case OPTIONS.ReducerOptions:
      return { kind: 'reducer', keepDims: t.bool(0) };
    case OPTIONS.SqueezeOptions:
      return { kind: 'squeeze', squeezeDims: t.int32Vector(0) ?? [] };
    case OPTIONS.AddOptions:
    case OPTIONS.SubOptions:
    case OPTIONS.MulOptions:
    case OPTIONS.DivOptions:
      return { kind: 'activation', activation: activation(t.int8(0)) };
    case OPTIONS.TransposeOptions:
    case OPTIONS.MaximumMinimumOptions:
    case OPTIONS.NegOptions:
      return { kind: 'empty' };
    default:
      throw new Error(`TFLite: ${opcode} uses builtin options type ${type}, which this reader does not support`);
  }
}

/** Parses a .tflite flatbuffer (main subgraph only). Float32 models only. */
export function readTflite(bytes: Uint8Array): TfliteGraph {
  if (bytes.length < 8) throw new Error('TFLite: file too short');
  const ident = new TextDecoder().decode(bytes.subarray(4, 8));
  if (ident !== 'TFL3') throw new Error(`TFLite: bad file identifier "${ident}" (expected TFL3)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const model = new FbTable(view, view.getUint32(0, true));

  const version = model.uint32(0);
  const opcodes = model.tableVector(1).map((oc, i) => {
    const custom = oc.string(1);
    if (custom !== undefined) throw new Error(`TFLite: custom operator "${custom}" is not supported`);
    // deprecated_builtin_code (int8, id 0) holds codes < 127; builtin_code (int32, id 3) newer ones.
    const code = Math.max(oc.int8(0), oc.int32(3));
    const name = BUILTIN_OPERATORS[code];
    if (name === undefined) throw new Error(`TFLite: operator code #${i} = builtin ${code} is not supported by this reader`);
    return name;
  });
  const subgraphs = model.tableVector(2);
  const sg = subgraphs[0];
  if (!sg) throw new Error('TFLite: model has no subgraph');
  if (subgraphs.length > 1) throw new Error(`TFLite: ${subgraphs.length} subgraphs; only single-subgraph models are supported`);
  const description = model.string(3) ?? '';
  const buffers = model.tableVector(4);

  const tensors: TfliteTensor[] = sg.tableVector(0).map((t, index) => {
    const name = t.string(3) ?? `tensor_${index}`;
    const typeCode = t.int8(1);
    const typeName = TENSOR_TYPES[typeCode] ?? `type ${typeCode}`;
    if (typeName !== 'FLOAT32' && typeName !== 'INT32') {
      throw new Error(`TFLite: tensor ${name} is ${typeName}; only FLOAT32 models (INT32 shape constants) are supported`);
    }
    const q = t.table(4);
    if (q && (q.floatVector(2)?.length ?? 0) > 0) throw new Error(`TFLite: tensor ${name} is quantized; not supported`);
    const shape = t.int32Vector(0) ?? [];
    const bufIndex = t.uint32(2);
    const raw = bufIndex > 0 ? buffers[bufIndex]?.bytes(0) : undefined;
    const tensor: TfliteTensor = { index, name, shape, type: typeName };
    if (raw && raw.length > 0) {
      const copy = raw.slice(); // aligned copy
      const count = shape.reduce((a, b) => a * b, 1);
      if (copy.byteLength !== count * 4) {
        throw new Error(`TFLite: tensor ${name} shape [${shape.join(',')}] needs ${count * 4} bytes, buffer has ${copy.byteLength}`);
      }
      tensor.data = typeName === 'FLOAT32' ? new Float32Array(copy.buffer) : new Int32Array(copy.buffer);
    }
    return tensor;
  });

  const operators: TfliteOperator[] = sg.tableVector(3).map((op) => {
    const opcode = opcodes[op.uint32(0)];
    if (opcode === undefined) throw new Error(`TFLite: operator references missing opcode ${op.uint32(0)}`);
    return {
      opcode,
      inputs: op.int32Vector(1) ?? [],
      outputs: op.int32Vector(2) ?? [],
      options: parseOptions(op.uint8(3), op.table(4), opcode),
    };
  });

  return {
    version,
    description,
    tensors,
    inputs: sg.int32Vector(1) ?? [],
    outputs: sg.int32Vector(2) ?? [],
    operators,
  };
}
