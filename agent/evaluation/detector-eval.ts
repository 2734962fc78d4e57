// Pieces of the detector evaluation (`npm run eval:detector`): what counts as finding the face a
// photo is about, padding for tight face crops, and the frames of a video as RGB images.
import { spawn } from 'node:child_process';
import sharp from 'sharp';
import type { RgbImage } from '../vision/image.js';
import type { DetectedFace } from '../vision/mtcnn.js';

/**
 * Whether `faces` holds the face a centred photo is about (LFW's deep-funnelled photos, padded
 * face crops): a box whose centre is within 20% of the width and 25% of the height of the image
 * centre, and whose width is 25–100% of the shorter image side. Anything else — no face, only a
 * small box on the mask or the background — is a miss.
 */
export function hasCentralFace(faces: readonly Pick<DetectedFace, 'box'>[], width: number, height: number): boolean {
  const side = Math.min(width, height);
  return faces.some((f) => {
    const cx = (f.box.x1 + f.box.x2) / 2;
    const cy = (f.box.y1 + f.box.y2) / 2;
    const w = f.box.x2 - f.box.x1;
    return Math.abs(cx - width / 2) <= 0.2 * width && Math.abs(cy - height / 2) <= 0.25 * height && w >= 0.25 * side && w <= side;
  });
}

/** The image with a plain grey border of `fraction` × its width (left/right) and height (top/bottom). */
export async function padImage(image: RgbImage, fraction: number): Promise<RgbImage> {
  const x = Math.round(fraction * image.width);
  const y = Math.round(fraction * image.height);
  const { data, info } = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .extend({ left: x, right: x, top: y, bottom: y, background: { r: 128, g: 128, b: 128 } })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

/** Every frame of a video file, decoded by ffmpeg to RGB at its own size (given), in order. */
export async function* videoFrames(ffmpeg: string, file: string, width: number, height: number): AsyncGenerator<RgbImage> {
  const child = spawn(ffmpeg, ['-hide_banner', '-nostdin', '-loglevel', 'error', '-i', file, '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-vsync', 'passthrough', '-'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (t: string) => {
    stderr = (stderr + t).slice(-2000);
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  const size = width * height * 3;
  let frame = new Uint8Array(size);
  let filled = 0;
  try {
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
      let at = 0;
      while (at < chunk.length) {
        const n = Math.min(size - filled, chunk.length - at);
        frame.set(chunk.subarray(at, at + n), filled);
        filled += n;
        at += n;
        if (filled === size) {
          yield { width, height, data: frame };
          frame = new Uint8Array(size);
          filled = 0;
        }
      }
    }
    const code = await exited;
    if (code !== 0) throw new Error(`ffmpeg failed (${code}) decoding ${file}: ${stderr.trim()}`);
    if (filled !== 0) throw new Error(`${file}: ${filled} stray bytes after the last ${width}×${height} frame`);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}
