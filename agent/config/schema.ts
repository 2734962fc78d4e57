// The agent's configuration: one schema, validated once at the edge (file, flags, env), strict
// so a misspelt key is an error rather than a setting that silently does nothing.
import { z } from 'zod';
import { commandsSchema, homeAssistantSchema, outboxSchema, shutdownTimeoutSchema } from './events-schema.js';
import { DEFAULT_MTCNN_OPTIONS } from '../vision/mtcnn.js';
import { healthConfigSchema, inferenceConfigSchema } from './health-inference-schema.js';

const score = z.number().min(0).max(1);
const stageThresholds = z.tuple([score, score, score]);
const D = DEFAULT_MTCNN_OPTIONS;

const iou = z.number().gt(0).max(1);

/** MTCNN's per-stage thresholds, second pass and when it runs, landmark check and NMS overlaps (agent/vision/mtcnn.ts). */
export const detectorSchema = z
  .object({
    thresholds: stageThresholds.default([...D.thresholds]),
    secondPass: stageThresholds.nullable().default(D.secondPass ? [...D.secondPass] : null),
    strongFaceScore: score.default(D.strongFaceScore),
    secondPassScaleFactor: z.number().gt(0.1).lt(0.95).default(D.secondPassScaleFactor),
    secondPassMirror: z.boolean().default(D.secondPassMirror),
    mirrorLandmarks: z.boolean().default(D.mirrorLandmarks),
    landmarkCheck: z
      .object({ minEyeDistance: z.number().min(0).max(1), maxRollDegrees: z.number().positive().max(180) })
      .strict()
      .nullable()
      .default(D.landmarkCheck ? { ...D.landmarkCheck } : null),
    nms: z
      .object({
        pnetLevel: iou.default(D.nms.pnetLevel),
        pnetPyramid: iou.default(D.nms.pnetPyramid),
        rnet: iou.default(D.nms.rnet),
        onet: iou.default(D.nms.onet),
        regressBeforePyramid: z.boolean().default(D.nms.regressBeforePyramid),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .prefault({});

const cameraName = z.string().regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, "_" and "-" only (it is an MQTT topic level)');

export const cameraSchema = z
  .object({
    name: cameraName,
    /** rtsp://…, a local video file (looped; add #once to play once), or /dev/videoN. */
    url: z.string().min(1),
    enabled: z.boolean().default(true),
    fps: z.number().positive().max(60).default(5),
    width: z.number().int().positive().default(1280),
    height: z.number().int().positive().default(720),
    transport: z.enum(['tcp', 'udp']).default('tcp'),
  })
  .strict();

export const configSchema = z
  .object({
    agent: z.object({ id: z.string().regex(/^[A-Za-z0-9_.-]+$/).optional() }).strict().default({}),
    dataDir: z.string().optional(),
    ffmpegPath: z.string().optional(),
    cameras: z.array(cameraSchema).default([]),
    mqtt: z
      .object({
        /** Empty: an embedded broker on 127.0.0.1:1883. */
        url: z.string().optional(),
        username: z.string().optional(),
        password: z.string().optional(),
        prefix: z.string().regex(/^[^#+/]+$/).default('facegate'),
        tls: z
          .object({ ca: z.string().optional(), cert: z.string().optional(), key: z.string().optional(), rejectUnauthorized: z.boolean().default(true) })
          .strict()
          .optional(),
        statsIntervalSeconds: z.number().positive().default(30),
        embeddedBrokerPort: z.number().int().min(0).max(65535).default(1883),
      })
      .strict()
      .default({ prefix: 'facegate', statsIntervalSeconds: 30, embeddedBrokerPort: 1883 }),
    recognition: z
      .object({
        embedder: z.string().optional(),
        minFaceSize: z.number().min(12).default(40),
        detector: detectorSchema,
        flipAverage: z.boolean().default(true),
        occlusionMasks: z.boolean().default(true),
        /**
         * A second embedder whose scores are fused with the embedder's: a model name, `auto` (the one
         * a calibrated fusion exists for — mobilefacenet with dlib-resnet — when the embedder runs on
         * a GPU) or `none`.
         */
        fuseWith: z.string().min(1).default('auto'),
        matchThreshold: z.number().positive().optional(),
        unknownThreshold: z.number().positive().optional(),
        maxBatch: z.number().int().positive().max(64).default(8),
        maxWaitMs: z.number().min(0).max(1000).default(15),
      })
      .strict()
      .prefault({}),
    events: z
      .object({
        reportUnknown: z.boolean().default(true),
        cooldownSeconds: z.number().min(0).default(30),
        minVotes: z.number().int().positive().default(3),
      })
      .strict()
      .default({ reportUnknown: true, cooldownSeconds: 30, minVotes: 3 }),
    inference: inferenceConfigSchema,
    health: healthConfigSchema,
    gallery: z.object({ keepPhotos: z.boolean().default(false), pollSeconds: z.number().positive().default(2) }).strict().default({ keepPhotos: false, pollSeconds: 2 }),
    outbox: outboxSchema.prefault({}),
    commands: commandsSchema.prefault({}),
    homeassistant: homeAssistantSchema.prefault({}),
    /** SIGTERM/SIGINT: seconds to stop cameras, flush events and publish 'offline' before exiting anyway. */
    shutdownTimeoutSeconds: shutdownTimeoutSchema,
    /** Log level of `facegate run` (env FACEGATE_LOG_LEVEL wins); applied live on reload. */
    log: z.object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info') }).strict().default({ level: 'info' }),
  })
  .strict();

export type FacegateConfig = z.infer<typeof configSchema>;
export type CameraSettings = z.infer<typeof cameraSchema>;
