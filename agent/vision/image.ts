// Image decoding and encoding with sharp (libvips): opencv-js has no imdecode. Every decoded image
// is 8-bit RGB, interleaved, EXIF orientation applied.
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';

export interface RgbImage {
  width: number;
  height: number;
  /** width × height × 3 bytes, row-major RGB. */
  data: Uint8Array;
}

/**
 * Mirror image (left ↔ right), for flip-averaged embeddings and the detector's mirrored second
 * pass; written into `out` when it is given and has the image's size (a buffer reused across frames).
 */
export function mirrorImage(image: RgbImage, out?: Uint8Array): RgbImage {
  const { width, height, data } = image;
  const dst = out && out.length === data.length ? out : new Uint8Array(data.length);
  for (let y = 0; y < height; y++) {
    const row = y * width * 3;
    for (let x = 0; x < width; x++) {
      const s = row + x * 3;
      const d = row + (width - 1 - x) * 3;
      dst[d] = data[s] as number;
      dst[d + 1] = data[s + 1] as number;
      dst[d + 2] = data[s + 2] as number;
    }
  }
  return { width, height, data: dst };
}

export class ImageDecodeError extends Error {
  constructor(readonly source: string, reason: string) {
    super(`cannot read image ${source}: ${reason}`);
    this.name = 'ImageDecodeError';
  }
}

/** Decodes a file path or an in-memory JPEG/PNG/WebP/…; `label` names it in errors. */
export async function decodeImage(input: string | Uint8Array, label?: string): Promise<RgbImage> {
  const source = label ?? (typeof input === 'string' ? input : 'image buffer');
  let bytes: Uint8Array;
  if (typeof input === 'string') {
    try {
      bytes = await readFile(input);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new ImageDecodeError(source, code === 'ENOENT' ? 'file not found' : code === 'EISDIR' ? 'is a directory' : String(err));
    }
  } else {
    bytes = input;
  }
  if (bytes.length === 0) throw new ImageDecodeError(source, 'the file is empty (0 bytes)');
  try {
    // failOn 'truncated' rejects cut-off files instead of returning a half-grey picture.
    const { data, info } = await sharp(bytes, { failOn: 'truncated' })
      .rotate()
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new ImageDecodeError(source, `expected 3 channels after conversion, got ${info.channels}`);
    if (info.width === 0 || info.height === 0) throw new ImageDecodeError(source, 'zero-size image');
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
  } catch (err) {
    if (err instanceof ImageDecodeError) throw err;
    const msg = (err as Error).message ?? String(err);
    const reason = /unsupported image format/i.test(msg)
      ? 'not a supported image (JPEG, PNG, WebP, GIF, TIFF, AVIF)'
      : /premature|truncat|end of|corrupt|VipsJpeg|read error/i.test(msg)
        ? `corrupt or truncated image data (${msg.split('\n')[0]})`
        : msg.split('\n')[0] ?? msg;
    throw new ImageDecodeError(source, reason);
  }
}

export async function encodePng(image: RgbImage): Promise<Buffer> {
  return sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } }).png().toBuffer();
}

export async function encodeJpeg(image: RgbImage, quality = 85): Promise<Buffer> {
  return sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } }).jpeg({ quality }).toBuffer();
}
