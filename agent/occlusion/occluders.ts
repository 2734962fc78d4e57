// Occluders as SVG shapes placed by the face's landmarks: face masks from the nose bridge to the
// chin, sunglasses over the eyes, scarves, hands and objects, and FROM's random rectangles
// covering 40% of the face box. Each is drawn twice by render.ts: in colour onto the photo, and
// in white on black to measure what it covers. Randomness comes only from the `random` passed in,
// so a seed fixes every shape, colour and texture.
import type { Box } from '../vision/geometry.js';
import type { FaceFrame } from './face-frame.js';

export const OCCLUDER_KINDS = ['random40', 'mask', 'sunglasses', 'scarf', 'hand', 'object'] as const;
export type OccluderKind = (typeof OCCLUDER_KINDS)[number];

/** A PNG patch cut from another photo, used as a fill. */
export interface Texture {
  png: Buffer;
  width: number;
  height: number;
}

/** Where textures come from: a background patch and a skin patch of some other photo. */
export interface TextureSource {
  background(random: () => number): Texture;
  skin(random: () => number): Texture;
}

export interface Shape {
  element: 'path' | 'ellipse' | 'rect' | 'line';
  attrs: Record<string, string | number>;
  /** A colour, `url(#id)` of a def, or 'none'. */
  fill: string;
  stroke?: string;
  /** In the occluder's own units (face units, or pixels for image-space occluders). */
  strokeWidth?: number;
  opacity?: number;
  /** Shading drawn over another shape: adds no coverage of its own. */
  overlay?: boolean;
}

export interface Occluder {
  kind: OccluderKind;
  /** Which shape/colour family was drawn, e.g. "surgical/light-blue". */
  variant: string;
  /** 'face': shapes in face units (FaceFrame); 'image': shapes in image pixels. */
  space: 'face' | 'image';
  /** SVG <defs> content: gradients and texture patterns referenced by the shapes. */
  defs: string[];
  shapes: Shape[];
}

export interface OccluderContext {
  frame: FaceFrame;
  /** The detector's face box, image pixels. */
  box: Box;
  random: () => number;
  textures: TextureSource;
}

const pick = <T>(random: () => number, items: readonly T[]): T => items[Math.min(items.length - 1, Math.floor(random() * items.length))] as T;
const between = (random: () => number, lo: number, hi: number): number => lo + (hi - lo) * random();
const f = (v: number): string => v.toFixed(3);

let idCounter = 0;
const newId = (prefix: string): string => `${prefix}${++idCounter}`;

/** A texture as an SVG pattern, tiled at the photo's own pixel size within the occluder's units. */
function texturePattern(texture: Texture, unitsPerPixel: number, random: () => number): { id: string; def: string } {
  const id = newId('tex');
  const w = texture.width * unitsPerPixel;
  const h = texture.height * unitsPerPixel;
  const href = `data:image/png;base64,${texture.png.toString('base64')}`;
  const def =
    `<pattern id="${id}" patternUnits="userSpaceOnUse" width="${f(w)}" height="${f(h)}" x="${f(-w * random())}" y="${f(-h * random())}">` +
    `<image href="${href}" width="${f(w)}" height="${f(h)}" preserveAspectRatio="none"/></pattern>`;
  return { id, def };
}

const MASK_COLOURS: Record<'surgical' | 'cloth' | 'kn95', readonly (readonly [string, string])[]> = {
  surgical: [['light-blue', '#9cc7e4'], ['white', '#f2f2ef'], ['green', '#9fd8c5'], ['pink', '#f2c4cf'], ['black', '#202124']],
  cloth: [['black', '#1d1d1f'], ['navy', '#23304f'], ['grey', '#8a8d91'], ['red', '#a8323a'], ['beige', '#d8c7a8'], ['camo', '#6b6b3f']],
  kn95: [['white', '#f4f4f1'], ['grey', '#cfd2d4'], ['black', '#232323']],
};

/** A face mask: top edge over the nose bridge, bottom under the chin, straps to the ears. */
function faceMask({ frame, random }: OccluderContext): Occluder {
  const style = pick(random, ['surgical', 'cloth', 'kn95'] as const);
  const [colourName, colour] = pick(random, MASK_COLOURS[style]);
  const w = between(random, 1.0, 1.15);
  const top = frame.nose.y * between(random, 0.35, 0.55);
  const chin = frame.chinY + between(random, 0.0, 0.12);
  const sideTop = top + 0.15;
  const sideBottom = frame.mouth.y + between(random, -0.05, 0.1);
  const shade = newId('shade');
  const defs = [
    `<linearGradient id="${shade}" x1="0" y1="0" x2="1" y2="0"><stop offset="0" stop-color="#000" stop-opacity="0.18"/>` +
      `<stop offset="0.5" stop-color="#000" stop-opacity="0"/><stop offset="1" stop-color="#000" stop-opacity="0.18"/></linearGradient>`,
  ];
  let outline: string;
  if (style === 'kn95') {
    // Folded down the middle: a peak over the nose, another under the chin.
    outline = `M ${f(-w)} ${f(sideTop)} L 0 ${f(top - 0.08)} L ${f(w)} ${f(sideTop)} L ${f(w * 0.92)} ${f(sideBottom)} L 0 ${f(chin + 0.08)} L ${f(-w * 0.92)} ${f(sideBottom)} Z`;
  } else {
    const round = style === 'cloth' ? 0.25 : 0.12;
    outline =
      `M ${f(-w)} ${f(sideTop)} Q 0 ${f(top - round)} ${f(w)} ${f(sideTop)} L ${f(w * 0.95)} ${f(sideBottom)} ` +
      `Q ${f(w * 0.7)} ${f(chin + 0.1)} 0 ${f(chin)} Q ${f(-w * 0.7)} ${f(chin + 0.1)} ${f(-w * 0.95)} ${f(sideBottom)} Z`;
  }
  const shapes: Shape[] = [
    { element: 'path', attrs: { d: outline }, fill: colour, stroke: '#00000033', strokeWidth: 0.02 },
    { element: 'path', attrs: { d: outline }, fill: `url(#${shade})`, overlay: true },
  ];
  if (style === 'surgical') {
    // Pleats.
    for (let k = 1; k <= 3; k++) {
      const y = top + ((sideBottom - top) * k) / 4 + 0.05;
      shapes.push({ element: 'path', attrs: { d: `M ${f(-w * 0.93)} ${f(y)} Q 0 ${f(y - 0.06)} ${f(w * 0.93)} ${f(y)}` }, fill: 'none', stroke: '#0000002e', strokeWidth: 0.025 });
    }
  }
  // Ear loops.
  for (const s of [-1, 1]) {
    shapes.push({ element: 'path', attrs: { d: `M ${f(s * w)} ${f(sideTop + 0.05)} L ${f(s * (w + 0.22))} ${f(0.15)}` }, fill: 'none', stroke: colour, strokeWidth: 0.04 });
    shapes.push({ element: 'path', attrs: { d: `M ${f(s * w * 0.95)} ${f(sideBottom - 0.05)} L ${f(s * (w + 0.22))} ${f(0.3)}` }, fill: 'none', stroke: colour, strokeWidth: 0.04 });
  }
  return { kind: 'mask', variant: `${style}/${colourName}`, space: 'face', defs, shapes };
}

/** Sunglasses: two dark lenses centred on the eyes, a bridge and temples. */
function sunglasses({ random }: OccluderContext): Occluder {
  const style = pick(random, ['round', 'aviator', 'wayfarer'] as const);
  const tint = pick(random, [['black', '#0b0b0d'], ['brown', '#2e1f14'], ['green', '#17251b'], ['mirror', '#3a4a5c']] as const);
  const rx = between(random, 0.36, 0.46);
  const ry = style === 'round' ? rx : rx * between(random, 0.7, 0.85);
  const cy = between(random, -0.02, 0.06);
  const shine = newId('shine');
  const defs = [
    `<linearGradient id="${shine}" x1="0" y1="0" x2="0.6" y2="1"><stop offset="0" stop-color="#fff" stop-opacity="0.22"/>` +
      `<stop offset="0.45" stop-color="#fff" stop-opacity="0"/></linearGradient>`,
  ];
  const shapes: Shape[] = [];
  for (const cx of [-0.5, 0.5]) {
    let d: string;
    if (style === 'aviator') {
      // Teardrop: wide on top, deeper towards the nose-far side.
      d = `M ${f(cx - rx)} ${f(cy - ry * 0.7)} Q ${f(cx)} ${f(cy - ry * 1.1)} ${f(cx + rx)} ${f(cy - ry * 0.7)} Q ${f(cx + rx * 1.05)} ${f(cy + ry * 1.2)} ${f(cx)} ${f(cy + ry * 1.1)} Q ${f(cx - rx * 1.05)} ${f(cy + ry * 1.2)} ${f(cx - rx)} ${f(cy - ry * 0.7)} Z`;
    } else if (style === 'wayfarer') {
      d = `M ${f(cx - rx)} ${f(cy - ry)} L ${f(cx + rx)} ${f(cy - ry)} L ${f(cx + rx * 0.9)} ${f(cy + ry * 0.8)} Q ${f(cx)} ${f(cy + ry * 1.05)} ${f(cx - rx * 0.9)} ${f(cy + ry * 0.8)} Z`;
    } else {
      d = `M ${f(cx - rx)} ${f(cy)} a ${f(rx)} ${f(ry)} 0 1 0 ${f(2 * rx)} 0 a ${f(rx)} ${f(ry)} 0 1 0 ${f(-2 * rx)} 0 Z`;
    }
    shapes.push({ element: 'path', attrs: { d }, fill: tint[1], stroke: '#111', strokeWidth: 0.05 });
    shapes.push({ element: 'path', attrs: { d }, fill: `url(#${shine})`, overlay: true });
  }
  shapes.push({ element: 'path', attrs: { d: `M ${f(-0.5 + rx)} ${f(cy - ry * 0.4)} Q 0 ${f(cy - ry * 0.8)} ${f(0.5 - rx)} ${f(cy - ry * 0.4)}` }, fill: 'none', stroke: '#111', strokeWidth: 0.05 });
  for (const s of [-1, 1]) {
    shapes.push({ element: 'line', attrs: { x1: f(s * (0.5 + rx)), y1: f(cy - ry * 0.5), x2: f(s * 1.15), y2: f(cy - 0.05) }, fill: 'none', stroke: '#111', strokeWidth: 0.06 });
  }
  return { kind: 'sunglasses', variant: `${style}/${tint[0]}`, space: 'face', defs, shapes };
}

/** A scarf pulled up over the mouth (sometimes the nose), wider than the face, with folds. */
function scarf({ frame, random }: OccluderContext): Occluder {
  const [colourName, base, stripe] = pick(random, [
    ['red-check', '#8e1d22', '#2b2b2b'],
    ['grey-knit', '#7d7f83', '#96989c'],
    ['navy-stripe', '#1f2a44', '#c9ccd3'],
    ['camel', '#b88a55', '#9c7040'],
    ['green', '#2f5d3a', '#24462c'],
  ] as const);
  const top = between(random, 0, 1) < 0.35 ? frame.nose.y * between(random, 0.55, 0.8) : (frame.nose.y + frame.mouth.y) / 2;
  const w = between(random, 1.2, 1.45);
  const bottom = frame.chinY + between(random, 0.35, 0.6);
  const pattern = newId('scarf');
  const period = between(random, 0.12, 0.22);
  const defs = [
    `<pattern id="${pattern}" patternUnits="userSpaceOnUse" width="${f(period)}" height="${f(period)}" patternTransform="rotate(${f(between(random, -20, 20))})">` +
      `<rect width="${f(period)}" height="${f(period)}" fill="${base}"/><rect width="${f(period)}" height="${f(period * 0.35)}" fill="${stripe}"/></pattern>`,
  ];
  const sag = between(random, 0.05, 0.15);
  const outline = `M ${f(-w)} ${f(top + 0.1)} Q 0 ${f(top - sag)} ${f(w)} ${f(top + 0.1)} L ${f(w * 1.05)} ${f(bottom)} L ${f(-w * 1.05)} ${f(bottom)} Z`;
  const shapes: Shape[] = [{ element: 'path', attrs: { d: outline }, fill: `url(#${pattern})`, stroke: '#00000040', strokeWidth: 0.03 }];
  for (let k = 1; k <= 3; k++) {
    const y = top + ((bottom - top) * k) / 4;
    shapes.push({ element: 'path', attrs: { d: `M ${f(-w)} ${f(y)} Q 0 ${f(y + between(random, -0.1, 0.1))} ${f(w)} ${f(y)}` }, fill: 'none', stroke: '#00000035', strokeWidth: 0.05 });
  }
  return { kind: 'scarf', variant: colourName, space: 'face', defs, shapes };
}

/** A hand over the mouth or a cheek: palm and four fingers, skin cut from another photo. */
function hand(ctx: OccluderContext): Occluder {
  const { frame, random } = ctx;
  const where = pick(random, ['mouth', 'left-cheek', 'right-cheek', 'chin'] as const);
  const centre =
    where === 'mouth' ? { x: 0, y: frame.mouth.y } : where === 'chin' ? { x: 0, y: frame.chinY - 0.1 } : { x: where === 'left-cheek' ? -0.55 : 0.55, y: frame.nose.y + 0.15 };
  const size = between(random, 0.9, 1.2);
  const angle = between(random, -50, 50) + (where === 'left-cheek' ? -25 : where === 'right-cheek' ? 25 : 0);
  const skin = ctx.textures.skin(random);
  // One tile spans the whole hand: a cheek patch tiled at its own size shows seams.
  const tex = texturePattern(skin, (2.2 * size) / skin.width, random);
  const palmRx = 0.42 * size;
  const palmRy = 0.5 * size;
  const g = `translate(${f(centre.x)} ${f(centre.y)}) rotate(${f(angle)})`;
  const parts: string[] = [`M ${f(-palmRx)} 0 a ${f(palmRx)} ${f(palmRy)} 0 1 0 ${f(2 * palmRx)} 0 a ${f(palmRx)} ${f(palmRy)} 0 1 0 ${f(-2 * palmRx)} 0 Z`];
  // Fingers point up from the palm, the middle ones longest.
  const lengths = [0.55, 0.68, 0.64, 0.5].map((l) => l * size);
  const fw = 0.2 * size;
  lengths.forEach((len, k) => {
    const x = -palmRx + fw / 2 + (k * (2 * palmRx - fw)) / 3 - fw / 2;
    const y0 = -palmRy * 0.55;
    parts.push(`M ${f(x)} ${f(y0)} L ${f(x)} ${f(y0 - len + fw / 2)} a ${f(fw / 2)} ${f(fw / 2)} 0 0 1 ${f(fw)} 0 L ${f(x + fw)} ${f(y0)} Z`);
  });
  // Thumb, to the side.
  parts.push(`M ${f(palmRx * 0.7)} ${f(palmRy * 0.1)} L ${f(palmRx + 0.35 * size)} ${f(-palmRy * 0.35)} L ${f(palmRx + 0.45 * size)} ${f(-palmRy * 0.2)} L ${f(palmRx * 0.95)} ${f(palmRy * 0.45)} Z`);
  const shade = newId('handshade');
  const defs = [
    tex.def,
    `<radialGradient id="${shade}" cx="0.5" cy="0.5" r="0.6"><stop offset="0.6" stop-color="#000" stop-opacity="0"/><stop offset="1" stop-color="#000" stop-opacity="0.25"/></radialGradient>`,
  ];
  const shapes: Shape[] = parts.flatMap((d) => [
    { element: 'path' as const, attrs: { d, transform: g }, fill: `url(#${tex.id})`, stroke: '#5a3a2a55', strokeWidth: 0.02 },
    { element: 'path' as const, attrs: { d, transform: g }, fill: `url(#${shade})`, overlay: true },
  ]);
  return { kind: 'hand', variant: where, space: 'face', defs, shapes };
}

/** An object (cup, phone, card, bag) with a texture cut from another photo's background. */
function object(ctx: OccluderContext): Occluder {
  const { frame, random } = ctx;
  const what = pick(random, ['cup', 'phone', 'card', 'round'] as const);
  const cx = between(random, -0.6, 0.6);
  const cy = between(random, frame.nose.y, frame.chinY);
  const size = between(random, 0.7, 1.1);
  const background = ctx.textures.background(random);
  const tex = texturePattern(background, (1.8 * size) / background.width, random);
  const angle = between(random, -30, 30);
  const g = `translate(${f(cx)} ${f(cy)}) rotate(${f(angle)})`;
  let d: string;
  if (what === 'cup') {
    const w = 0.5 * size;
    const h = 0.75 * size;
    d = `M ${f(-w)} ${f(-h)} L ${f(w)} ${f(-h)} L ${f(w * 0.8)} ${f(h)} Q 0 ${f(h * 1.1)} ${f(-w * 0.8)} ${f(h)} Z`;
  } else if (what === 'phone' || what === 'card') {
    const w = (what === 'phone' ? 0.42 : 0.6) * size;
    const h = (what === 'phone' ? 0.85 : 0.38) * size;
    const r = 0.08 * size;
    d = `M ${f(-w + r)} ${f(-h)} L ${f(w - r)} ${f(-h)} Q ${f(w)} ${f(-h)} ${f(w)} ${f(-h + r)} L ${f(w)} ${f(h - r)} Q ${f(w)} ${f(h)} ${f(w - r)} ${f(h)} L ${f(-w + r)} ${f(h)} Q ${f(-w)} ${f(h)} ${f(-w)} ${f(h - r)} L ${f(-w)} ${f(-h + r)} Q ${f(-w)} ${f(-h)} ${f(-w + r)} ${f(-h)} Z`;
  } else {
    const r = 0.55 * size;
    d = `M ${f(-r)} 0 a ${f(r)} ${f(r * 0.85)} 0 1 0 ${f(2 * r)} 0 a ${f(r)} ${f(r * 0.85)} 0 1 0 ${f(-2 * r)} 0 Z`;
  }
  return {
    kind: 'object',
    variant: what,
    space: 'face',
    defs: [tex.def],
    shapes: [{ element: 'path', attrs: { d, transform: g }, fill: `url(#${tex.id})`, stroke: '#00000066', strokeWidth: 0.03 }],
  };
}

/** FROM's Occ-LFW: one rectangle covering `fraction` of the face box, anywhere inside it. */
export function randomRectangle(ctx: OccluderContext, fraction = 0.4): Occluder {
  const { box, random } = ctx;
  const bw = box.x2 - box.x1;
  const bh = box.y2 - box.y1;
  const area = fraction * bw * bh;
  // Aspect ratio w/h between 1:2 and 2:1, limited so the rectangle fits in the box.
  const lo = Math.max(0.5, area / (bh * bh));
  const hi = Math.min(2, (bw * bw) / area);
  const ratio = lo <= hi ? Math.exp(between(random, Math.log(lo), Math.log(hi))) : 1;
  const w = Math.min(bw, Math.sqrt(area * ratio));
  const h = Math.min(bh, area / w);
  const x = box.x1 + (bw - w) * random();
  const y = box.y1 + (bh - h) * random();
  const solid = random() < 0.3;
  const defs: string[] = [];
  let fill: string;
  let variant: string;
  if (solid) {
    const grey = Math.round(between(random, 0, 255));
    fill = `rgb(${grey},${Math.round(between(random, 0, 255))},${Math.round(between(random, 0, 255))})`;
    variant = 'solid';
  } else {
    const tex = texturePattern(ctx.textures.background(random), 1, random);
    defs.push(tex.def);
    fill = `url(#${tex.id})`;
    variant = 'texture';
  }
  return {
    kind: 'random40',
    variant: `${variant}/${Math.round(fraction * 100)}%`,
    space: 'image',
    defs,
    shapes: [{ element: 'rect', attrs: { x: f(x), y: f(y), width: f(w), height: f(h) }, fill }],
  };
}

export function makeOccluder(kind: OccluderKind, ctx: OccluderContext): Occluder {
  switch (kind) {
    case 'random40':
      return randomRectangle(ctx, 0.4);
    case 'mask':
      return faceMask(ctx);
    case 'sunglasses':
      return sunglasses(ctx);
    case 'scarf':
      return scarf(ctx);
    case 'hand':
      return hand(ctx);
    case 'object':
      return object(ctx);
  }
}

export function parseOccluderKind(value: string): OccluderKind {
  if ((OCCLUDER_KINDS as readonly string[]).includes(value)) return value as OccluderKind;
  throw new Error(`unknown occluder kind "${value}"; expected one of ${OCCLUDER_KINDS.join(', ')}`);
}
