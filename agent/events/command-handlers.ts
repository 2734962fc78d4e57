// One handler per MQTT command verb (documented in README "MQTT commands"). The handlers reach the
// running agent only through CommandContext, so they can be read — and tested — on their own.
import { z } from 'zod';
import type { Frame } from '../camera/camera-source.js';
import type { CameraSettings, FacegateConfig } from '../config/schema.js';
import { embedEnrollmentInputs } from '../recognition/enrollment.js';
import type { FaceAnalyzer } from '../recognition/face-analyzer.js';
import { type Gallery, validateIdentityName } from '../recognition/gallery.js';
import { encodeJpeg } from '../vision/image.js';
import { type CommandHandlers, command } from './command-router.js';

export interface CommandContext {
  config(): FacegateConfig;
  analyzer(): FaceAnalyzer;
  gallery(): Gallery;
  /** Reloads the matcher at once after an enrollment or a removal. */
  galleryChanged(): void;
  runningCameras(): string[];
  startCamera(camera: CameraSettings): boolean;
  stopCamera(name: string): Promise<boolean>;
  /** The camera's next frame (its freshest), or an error after `timeoutMs`. */
  nextFrame(camera: string, timeoutMs: number): Promise<Frame>;
}

/** At most this many images per enroll request. */
export const MAX_ENROLL_IMAGES = 20;

const SECRET_KEY = /pass(word)?|secret|token|^key$/i;

/** A deep copy with secrets replaced by "***": password-like keys, and passwords inside URLs. */
export function redactSecrets(value: unknown, key = ''): unknown {
  if (value === undefined || value === null) return value;
  if (key && SECRET_KEY.test(key)) return '***';
  if (typeof value === 'string') return value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/]*):[^@/]*@/i, '$1:***@');
  if (Array.isArray(value)) return value.map((v) => redactSecrets(v));
  if (typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactSecrets(v, k)]));
  return value;
}

const name = z.string().min(1, 'must not be empty');
const cameraArgs = z.object({ name }).strict();
const base64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** A base64 image: a bare string, a data: URL, or `{ name?, data }` (name labels it in errors). */
const enrollImage = z.union([z.string(), z.object({ name: z.string().max(200).optional(), data: z.string() }).strict()]);

/** Decodes one image argument; errors name the image. */
function imageBytes(image: z.infer<typeof enrollImage>, index: number): { label: string; bytes: Buffer } {
  const given = typeof image === 'string' ? { data: image } : image;
  const label = given.name ? `images[${index}] (${given.name})` : `images[${index}]`;
  const text = given.data.replace(/^data:[^;,]*;base64,/, '').replace(/\s+/g, '');
  if (text.length === 0) throw new Error(`${label}: empty image data`);
  if (!base64.test(text)) throw new Error(`${label}: not base64 data`);
  return { label, bytes: Buffer.from(text, 'base64') };
}

function configuredCamera(ctx: CommandContext, cameraName: string): CameraSettings | undefined {
  return ctx.config().cameras.find((c) => c.name === cameraName);
}

function unknownCamera(ctx: CommandContext, cameraName: string): Error {
  const known = ctx.config().cameras.map((c) => c.name);
  return new Error(`no camera named "${cameraName}" in the configuration (cameras: ${known.length ? known.join(', ') : 'none'})`);
}

export function buildCommandHandlers(ctx: CommandContext): CommandHandlers {
  return {
    enroll: command(z.object({ name, images: z.array(enrollImage).min(1, 'give at least one image').max(MAX_ENROLL_IMAGES) }).strict(), async (args) => {
      const identity = validateIdentityName(args.name);
      const inputs = args.images.map((img, i) => {
        const { label, bytes } = imageBytes(img, i);
        return { label, input: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
      });
      const analyzer = ctx.analyzer();
      const gallery = ctx.gallery();
      // Same rules as `facegate enroll`: exactly one face per image, else nothing is written.
      const { items, images } = await embedEnrollmentInputs(analyzer, inputs, gallery.keepPhotos);
      gallery.enroll(identity, items);
      ctx.galleryChanged();
      const summary = gallery.list().find((i) => i.name === identity);
      const round = (v: number): number => Math.round(v * 100) / 100;
      return {
        name: identity,
        model: analyzer.embedder.entry.name,
        fusedWith: analyzer.fusedWith,
        images: images.map((e) => ({ image: e.file, box: { x: round(e.box.x), y: round(e.box.y), w: round(e.box.w), h: round(e.box.h) }, score: Math.round(e.score * 1e4) / 1e4 })),
        embeddings: summary?.models ?? {},
      };
    }),

    'identities/list': command(z.object({}).strict(), () => {
      const model = ctx.analyzer().embedder.entry.name;
      const gallery = ctx.gallery();
      const stale = new Set(gallery.needsReenrollment(model));
      return { model, identities: gallery.list().map((i) => ({ ...i, needsReenrollment: stale.has(i.name) })) };
    }),

    'identities/remove': command(z.object({ name }).strict(), (args) => {
      if (!ctx.gallery().remove(args.name)) throw new Error(`no identity named "${args.name.trim()}"`);
      ctx.galleryChanged();
      return { name: args.name.trim(), removed: true };
    }),

    'config/get': command(z.object({}).strict(), () => redactSecrets(ctx.config())),

    'camera/enable': command(cameraArgs, (args) => {
      const cam = configuredCamera(ctx, args.name);
      if (!cam) throw unknownCamera(ctx, args.name);
      if (ctx.runningCameras().includes(cam.name)) return { name: cam.name, running: true, changed: false };
      if (!ctx.startCamera(cam)) throw new Error(`camera "${cam.name}" did not start (see the agent's log)`);
      return { name: cam.name, running: true, changed: true };
    }),

    'camera/disable': command(cameraArgs, async (args) => {
      const running = ctx.runningCameras().includes(args.name);
      if (!running && !configuredCamera(ctx, args.name)) throw unknownCamera(ctx, args.name);
      const changed = running ? await ctx.stopCamera(args.name) : false;
      return { name: args.name, running: false, changed };
    }),

    snapshot: command(z.object({ camera: name }).strict(), async (args) => {
      const settings = ctx.config().commands;
      if (!settings.snapshot) throw new Error('snapshots are disabled (set commands.snapshot: true in the configuration to allow them)');
      if (!ctx.runningCameras().includes(args.camera)) {
        throw configuredCamera(ctx, args.camera) ? new Error(`camera "${args.camera}" is not running`) : unknownCamera(ctx, args.camera);
      }
      const frame = await ctx.nextFrame(args.camera, settings.snapshotTimeoutSeconds * 1000);
      const jpeg = await encodeJpeg({ width: frame.width, height: frame.height, data: frame.data });
      return { camera: args.camera, width: frame.width, height: frame.height, capturedAt: new Date(frame.capturedAt).toISOString(), contentType: 'image/jpeg', image: jpeg.toString('base64') };
    }),
  };
}
