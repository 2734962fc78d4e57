// Reused NCHW float32 input buffers for the embedder. A buffer is taken for one ORT run and given
// back after it, so concurrent runs (the CLI next to the scheduler) never share one; it grows to
// the largest batch seen and is then reused, so steady-state embedding allocates no input memory.
import type { ModelSession } from '../inference/onnx-session.js';

type ModelInput = Parameters<ModelSession['run']>[0][string]['data'];

export interface PackedInput {
  /** The first `count` images of the buffer (a view, no copy). */
  readonly view: ModelInput;
  /** Writes an HWC RGB chip (optionally mirrored left↔right) as CHW float32 at batch index `n`. */
  pack(n: number, hwc: Uint8Array, mirror: boolean): void;
}

export type TakenInput = PackedInput & { readonly buffer: Float32Array };

export interface InputPool {
  take(count: number): TakenInput;
  give(input: TakenInput): void;
  /** Buffers allocated so far (a steady state stops growing). */
  readonly allocations: number;
}

/** At most this many idle buffers are kept (one per concurrent caller is enough). */
const MAX_IDLE = 4;

export function chwInputPool(width: number, height: number): InputPool {
  const per = 3 * width * height;
  const plane = width * height;
  const idle: Float32Array[] = [];
  let allocations = 0;
  return {
    get allocations() {
      return allocations;
    },
    take(count) {
      const need = count * per;
      let buffer = idle.pop();
      if (!buffer || buffer.length < need) {
        // Grow to the next power of two of images so a few batch sizes settle on one buffer.
        const images = 2 ** Math.ceil(Math.log2(Math.max(1, count)));
        buffer = new Float32Array(images * per);
        allocations++;
      }
      const buf = buffer;
      return {
        buffer: buf,
        view: buf.length === need ? buf : buf.subarray(0, need),
        pack(n, hwc, mirror) {
          const base = n * per;
          for (let y = 0; y < height; y++) {
            const row = y * width;
            for (let x = 0; x < width; x++) {
              const s = (row + (mirror ? width - 1 - x : x)) * 3;
              const p = base + row + x;
              buf[p] = hwc[s] as number;
              buf[p + plane] = hwc[s + 1] as number;
              buf[p + 2 * plane] = hwc[s + 2] as number;
            }
          }
        },
      };
    },
    give(input) {
      if (idle.length < MAX_IDLE) idle.push(input.buffer);
    },
  };
}
