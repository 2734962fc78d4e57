// End-to-end run on the real clip in ../shared/data/video (not a test: it needs ../shared):
// enroll Lin-Manuel Miranda and Alex Lacamoire from their reference photos, stream the clip over
// the local RTSP server (looped), run the agent, and report every identity event.
//
//   npx tsx models/bench/bench-clip.ts [--video-dir ../shared/data/video] [--seconds 40] [--json out.json]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { FacegateAgent, type AgentEventRecord } from '../../agent/agent.js';
import { validateConfig } from '../../agent/config/load-config.js';
import { createLogger } from '../../agent/logging.js';
import { enrollFromImages } from '../../agent/recognition/enrollment.js';
import { FaceAnalyzer } from '../../agent/recognition/face-analyzer.js';
import { Gallery } from '../../agent/recognition/gallery.js';
import { startRtspServer } from '../../test/support/rtsp-server.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'video-dir': { type: 'string', default: join('..', 'shared', 'data', 'video') },
      seconds: { type: 'string', default: '40' },
      json: { type: 'string' },
    },
  });
  const dir = values['video-dir'] as string;
  const seconds = Number(values.seconds);
  const log = createLogger('warn');
  const dataDir = mkdtempSync(join(tmpdir(), 'facegate-clip-'));
  const analyzer = await FaceAnalyzer.create();
  const gallery = Gallery.open(dataDir);
  try {
    await enrollFromImages(analyzer, gallery, 'Lin-Manuel Miranda', [join(dir, 'lin-manuel-miranda.png')]);
    await enrollFromImages(analyzer, gallery, 'Alex Lacamoire', [join(dir, 'alex-lacamoire.png'), join(dir, 'alex-lacamoire-2.jpg')]);
  } finally {
    gallery.close();
    await analyzer.close();
  }
  const rtsp = await startRtspServer({ video: join(dir, 'short_hamilton_clip.mp4') });
  const events: AgentEventRecord[] = [];
  const config = validateConfig(
    {
      agent: { id: 'clip' },
      dataDir,
      cameras: [{ name: 'stage', url: rtsp.url, fps: 10, width: 640, height: 360 }],
      recognition: { minFaceSize: 20 },
      events: { cooldownSeconds: 5 },
      mqtt: { embeddedBrokerPort: 0, statsIntervalSeconds: 5 },
    },
    'clip bench',
  );
  const agent = new FacegateAgent(config, log, { onEvent: (r) => events.push(r) });
  await agent.start();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const stats = agent.stats() as { cameras: Record<string, { framesIn: number; framesAnalysed: number; framesDropped: number }> };
  await agent.stop();
  await rtsp.stop();
  rmSync(dataDir, { recursive: true, force: true });

  const byIdentity = new Map<string, AgentEventRecord[]>();
  for (const e of events) {
    const key = e.event.identity ?? (e.event.unknown ? '(unknown)' : '(undecided)');
    byIdentity.set(key, [...(byIdentity.get(key) ?? []), e]);
  }
  const lat = events.map((e) => e.latencyMs).sort((a, b) => a - b);
  const pct = (p: number): number => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN;
  console.log(`clip ${join(dir, 'short_hamilton_clip.mp4')} over RTSP, ${seconds} s (${(seconds / 10).toFixed(1)} loops), 640×360 at 10 fps, min face 20 px`);
  console.log(`frames in ${stats.cameras.stage?.framesIn}, analysed ${stats.cameras.stage?.framesAnalysed}, dropped ${stats.cameras.stage?.framesDropped}`);
  console.log('| identity | events | mean distance | first frame time |');
  console.log('|---|---:|---:|---|');
  for (const [k, list] of byIdentity) {
    const d = list.map((e) => e.event.distance ?? NaN);
    console.log(`| ${k} | ${list.length} | ${(d.reduce((a, b) => a + b, 0) / d.length).toFixed(3)} | ${list[0]?.event.frameTime} |`);
  }
  console.log(`frame-to-event latency p50 ${pct(0.5).toFixed(0)} ms, p95 ${pct(0.95).toFixed(0)} ms (${events.length} events)`);
  if (values.json) writeFileSync(values.json, `${JSON.stringify({ seconds, stats, events: events.map((e) => ({ ...e.event, latencyMs: e.latencyMs })) }, null, 2)}\n`);
}

await main();
