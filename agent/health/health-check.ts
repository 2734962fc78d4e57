// /healthz's verdict: healthy when the broker is connected and every enabled camera delivered a
// frame within `staleMs`; otherwise the reasons, one line each, for a technician or a supervisor.
import type { CameraStats } from '../camera/camera-source.js';

export interface HealthInput {
  now: number;
  staleMs: number;
  /** Enabled cameras in the config. */
  enabled: readonly string[];
  /** Stats of the cameras running now. */
  running: readonly CameraStats[];
  broker: { connected: boolean; url: string };
}

export interface HealthVerdict {
  status: 'ok' | 'unhealthy';
  reasons: string[];
  broker: { connected: boolean };
  cameras: Record<string, { state: string; lastFrameAgeSeconds: number | null }>;
}

export function evaluateHealth(input: HealthInput): HealthVerdict {
  const reasons: string[] = [];
  if (!input.broker.connected) reasons.push(`MQTT broker ${input.broker.url} is not connected`);
  const cameras: HealthVerdict['cameras'] = {};
  const byName = new Map(input.running.map((c) => [c.camera, c]));
  for (const name of input.enabled) {
    const c = byName.get(name);
    if (!c) {
      reasons.push(`camera ${name} is enabled but not running`);
      cameras[name] = { state: 'not running', lastFrameAgeSeconds: null };
      continue;
    }
    const age = c.lastFrameAt === null ? null : Math.max(0, input.now - c.lastFrameAt);
    cameras[name] = { state: c.state, lastFrameAgeSeconds: age === null ? null : Math.round(age / 100) / 10 };
    const why = c.lastError ? ` (${c.state}: ${c.lastError})` : ` (${c.state})`;
    if (age === null) reasons.push(`camera ${name} has delivered no frame yet${why}`);
    else if (age > input.staleMs) reasons.push(`camera ${name} delivered no frame for ${Math.round(age / 1000)} s${why}`);
  }
  return { status: reasons.length ? 'unhealthy' : 'ok', reasons, broker: { connected: input.broker.connected }, cameras };
}
