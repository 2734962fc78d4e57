// Draws an occluder onto a photo (sharp composites the SVG with librsvg: anti-aliased edges,
// gradients, texture patterns) and renders the same shapes white-on-black to know exactly which
// pixels it covers.
import sharp from 'sharp';
import type { Box } from '../vision/geometry.js';
import type { RgbImage } from '../vision/image.js';
import { type FaceFrame, frameTransform } from './face-frame.js';
import type { Occluder, Shape } from './occluders.js';

export interface RenderedOcclusion {
  image: RgbImage;
  /** Per pixel 0..255: how much the occluder covers it. */
  coverage: Uint8Array;
}

function shapeSvg(s: Shape, mode: 'paint' | 'mask'): string {
  const attrs = Object.entries(s.attrs).map(([k, v]) => `${k}="${v}"`);
  const fill = s.fill === 'none' ? 'none' : mode === 'mask' ? '#fff' : s.fill;
  attrs.push(`fill="${fill}"`);
  if (s.stroke) attrs.push(`stroke="${mode === 'mask' ? '#fff' : s.stroke}"`, `stroke-width="${s.strokeWidth ?? 1}"`, 'stroke-linecap="round"');
  if (s.opacity !== undefined && mode === 'paint') attrs.push(`opacity="${s.opacity}"`);
  return `<${s.element} ${attrs.join(' ')}/>`;
}

export function occluderSvg(occ: Occluder, frame: FaceFrame, width: number, height: number, mode: 'paint' | 'mask'): string {
  // In mask mode shading layers add nothing, and no texture or gradient is needed.
  const shapes = occ.shapes.filter((s) => mode === 'paint' || !s.overlay);
  const body = shapes.map((s) => shapeSvg(s, mode)).join('');
  const group = occ.space === 'face' ? `<g transform="${frameTransform(frame)}">${body}</g>` : body;
  const defs = mode === 'paint' && occ.defs.length ? `<defs>${occ.defs.join('')}</defs>` : '';
  const background = mode === 'mask' ? `<rect width="${width}" height="${height}" fill="#000"/>` : '';
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">${defs}${background}${group}</svg>`;
}

export async function renderOcclusion(image: RgbImage, occ: Occluder, frame: FaceFrame): Promise<RenderedOcclusion> {
  const { width, height } = image;
  const paint = Buffer.from(occluderSvg(occ, frame, width, height, 'paint'));
  const mask = Buffer.from(occluderSvg(occ, frame, width, height, 'mask'));
  const [painted, covered] = await Promise.all([
    sharp(image.data, { raw: { width, height, channels: 3 } })
      .composite([{ input: paint, top: 0, left: 0 }])
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true }),
    sharp(mask).removeAlpha().extractChannel(0).raw().toBuffer({ resolveWithObject: true }),
  ]);
  if (painted.info.width !== width || painted.info.height !== height || painted.info.channels !== 3) {
    throw new Error(`occlusion render gave ${painted.info.width}×${painted.info.height}×${painted.info.channels}, expected ${width}×${height}×3`);
  }
  if (covered.info.width !== width || covered.info.height !== height) throw new Error('occlusion mask render has the wrong size');
  return { image: { width, height, data: new Uint8Array(painted.data.buffer, painted.data.byteOffset, painted.data.length) }, coverage: new Uint8Array(covered.data) };
}

/** Fraction of `box` (clipped to the image) the occluder covers. */
export function coveredFraction(coverage: Uint8Array, width: number, height: number, box: Box): number {
  const x1 = Math.max(0, Math.floor(box.x1));
  const y1 = Math.max(0, Math.floor(box.y1));
  const x2 = Math.min(width, Math.ceil(box.x2));
  const y2 = Math.min(height, Math.ceil(box.y2));
  let sum = 0;
  for (let y = y1; y < y2; y++) for (let x = x1; x < x2; x++) sum += coverage[y * width + x] as number;
  const n = Math.max(1, (x2 - x1) * (y2 - y1));
  return sum / (255 * n);
}
