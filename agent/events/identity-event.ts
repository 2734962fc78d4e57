// The identity event published on `<prefix>/<agent>/<camera>/identity` (schema:
// config/identity-event.schema.json, documented in README "Events over MQTT").
import { randomUUID } from 'node:crypto';

export interface FrameBox {
  /** Left edge, frame pixels. */
  x: number;
  /** Top edge, frame pixels. */
  y: number;
  w: number;
  h: number;
}

export interface IdentityEvent {
  /** Unique id of this event (UUID v4): subscribers de-duplicate QoS 1 redeliveries with it. */
  eventId: string;
  agent: string;
  camera: string;
  trackId: string;
  /** The recognised identity, or null for an unknown face. */
  identity: string | null;
  /** True for a confident unknown face (distance ≥ the unknown threshold). */
  unknown: boolean;
  /** Confidence of the track's identity vote, 0..1. */
  score: number;
  /** Euclidean distance to the nearest gallery embedding; null when the gallery has none for the model. */
  distance: number | null;
  box: FrameBox;
  /** When the frame that decided the event was captured (ISO 8601, UTC). */
  frameTime: string;
  /** When the event was published (ISO 8601, UTC). */
  publishTime: string;
  /** Embedder model that produced the embedding. */
  model: string;
  /**
   * The occlusion the agent predicted on the face (occlusion-aware matching): its pattern
   * (`clean`, `lower-face`, `eyes`, `upper-face`, `right-side`, `left-side`), the face regions it
   * covers and the classifier's confidence 0..1. Absent when the embedder has no occlusion masks.
   */
  occlusion?: EventOcclusion;
  /** A face mask (or scarf) over nose and mouth was detected; the face was matched with that pattern's mask. */
  masked: boolean;
}

export interface EventOcclusion {
  pattern: string;
  regions: string[];
  score: number;
}

export interface IdentityEventInput {
  agent: string;
  camera: string;
  trackId: string | number;
  identity: string | null;
  unknown: boolean;
  score: number;
  distance: number | null;
  box: FrameBox;
  frameTime: Date | number | string;
  model: string;
  occlusion?: EventOcclusion;
  /** Default false. */
  masked?: boolean;
  /** Default: now. */
  publishTime?: Date | number | string;
  /** Default: a fresh random UUID. */
  eventId?: string;
}

const iso = (t: Date | number | string, what: string): string => {
  const d = t instanceof Date ? t : new Date(t);
  if (Number.isNaN(d.getTime())) throw new Error(`identity event: ${what} is not a valid time: ${String(t)}`);
  return d.toISOString();
};

const finite = (v: number, what: string): number => {
  if (!Number.isFinite(v)) throw new Error(`identity event: ${what} is not a finite number: ${v}`);
  return v;
};

const round = (v: number, digits: number): number => Number(v.toFixed(digits));

export function buildIdentityEvent(input: IdentityEventInput): IdentityEvent {
  if (input.identity !== null && input.unknown) throw new Error('identity event: an event with an identity cannot be unknown');
  return {
    eventId: input.eventId ?? randomUUID(),
    agent: input.agent,
    camera: input.camera,
    trackId: String(input.trackId),
    identity: input.identity,
    unknown: input.unknown,
    score: round(Math.min(1, Math.max(0, finite(input.score, 'score'))), 4),
    distance: input.distance === null || !Number.isFinite(input.distance) ? null : round(input.distance, 4),
    box: {
      x: round(finite(input.box.x, 'box.x'), 1),
      y: round(finite(input.box.y, 'box.y'), 1),
      w: round(finite(input.box.w, 'box.w'), 1),
      h: round(finite(input.box.h, 'box.h'), 1),
    },
    frameTime: iso(input.frameTime, 'frameTime'),
    publishTime: iso(input.publishTime ?? new Date(), 'publishTime'),
    model: input.model,
    ...(input.occlusion
      ? { occlusion: { pattern: input.occlusion.pattern, regions: [...input.occlusion.regions], score: round(Math.min(1, Math.max(0, finite(input.occlusion.score, 'occlusion.score'))), 4) } }
      : {}),
    masked: input.masked ?? false,
  };
}
