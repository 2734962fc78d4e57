// Configuration of the event side (issue 7 §2–§4): the durable outbox, MQTT commands, Home
// Assistant discovery and the graceful-shutdown bound. Kept apart from schema.ts so the blocks stay
// readable; schema.ts mounts them. `prefault({})` parses the empty object, so every inner default applies.
import { z } from 'zod';

export const outboxSchema = z
  .object({
    /** Most events kept while the broker is unreachable; beyond it the oldest are dropped (counted, logged). */
    maxEvents: z.number().int().positive().default(10_000),
    /** Events older than this are dropped undelivered (a day-old "unlock" is worthless); 0 = no age limit. */
    maxAgeHours: z.number().min(0).default(24),
    /** Events published and not yet acknowledged at a time (1 = strictly one by one). */
    inFlight: z.number().int().positive().max(100).default(10),
  })
  .strict();

export const commandsSchema = z
  .object({
    /** Listen on <prefix>/<agent>/request/<verb>. */
    enabled: z.boolean().default(true),
    /** Larger request payloads are refused with an error response (enrollment images are base64). */
    maxPayloadBytes: z.number().int().positive().default(8 * 1024 * 1024),
    /** Requests handled or waiting at once; more get a "busy" error. */
    maxPending: z.number().int().positive().max(1000).default(4),
    /** Allow `snapshot` (a camera's current frame as JPEG over MQTT). Off: pictures of people leave the box only when asked for. */
    snapshot: z.boolean().default(false),
    /** How long `snapshot` waits for the camera's next frame. */
    snapshotTimeoutSeconds: z.number().positive().default(5),
  })
  .strict();

export const homeAssistantSchema = z
  .object({
    enabled: z.boolean().default(false),
    discoveryPrefix: z.string().regex(/^[^#+]+$/).default('homeassistant'),
    /** "Known person present" turns off this long after the last recognised person. */
    presenceTimeoutSeconds: z.number().positive().default(30),
  })
  .strict();

export const shutdownTimeoutSchema = z.number().positive().max(300).default(10);

export type OutboxSettings = z.infer<typeof outboxSchema>;
export type CommandsSettings = z.infer<typeof commandsSchema>;
export type HomeAssistantSettings = z.infer<typeof homeAssistantSchema>;
