// The zero-setup demo behind `npm start`: a looped video built from the photos shipped in
// @vladmandic/face-api, the people of one photo enrolled from portrait crops of it, the embedded
// broker, and identity events printed as an MQTT subscriber receives them.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import sharp from 'sharp';
import { FacegateAgent } from './agent.js';
import { resolveFfmpeg } from './camera/ffmpeg-binary.js';
import { faceApiSamplePath, makeVideo } from './camera/slideshow-video.js';
import { validateConfig } from './config/load-config.js';
import { resolveDataDir } from './data-dir.js';
import type { Logger } from './logging.js';
import { enrollFromImages } from './recognition/enrollment.js';
import { FaceAnalyzer } from './recognition/face-analyzer.js';
import { Gallery } from './recognition/gallery.js';
import { decodeImage } from './vision/image.js';

/** Names given to the people of sample1.jpg, left to right. */
export const DEMO_PEOPLE = ['Ava', 'Bea', 'Cleo'];

/** Crops each face of sample1.jpg as a portrait (the box grown 2.2×) and enrolls it. */
export async function enrollDemoPeople(analyzer: FaceAnalyzer, gallery: Gallery, dir: string): Promise<string[]> {
  const photo = faceApiSamplePath(1);
  const image = await decodeImage(photo);
  const faces = (await analyzer.detect(image)).sort((a, b) => a.box.x1 - b.box.x1);
  if (faces.length !== DEMO_PEOPLE.length) throw new Error(`demo: expected ${DEMO_PEOPLE.length} faces in ${photo}, found ${faces.length}`);
  const enrolled: string[] = [];
  for (const [i, face] of faces.entries()) {
    const name = DEMO_PEOPLE[i] as string;
    const side = 2.2 * Math.max(face.box.x2 - face.box.x1, face.box.y2 - face.box.y1);
    const cx = (face.box.x1 + face.box.x2) / 2;
    const cy = (face.box.y1 + face.box.y2) / 2;
    const left = Math.max(0, Math.round(cx - side / 2));
    const top = Math.max(0, Math.round(cy - side / 2));
    const width = Math.min(image.width - left, Math.round(side));
    const height = Math.min(image.height - top, Math.round(side));
    const file = join(dir, `${name}.jpg`);
    writeFileSync(file, await sharp(photo).extract({ left, top, width, height }).jpeg().toBuffer());
    await enrollFromImages(analyzer, gallery, name, [file]);
    enrolled.push(name);
  }
  return enrolled;
}

/** Enrolls the demo people into the gallery of `dataDir` with a recognition core of its own. */
export async function prepareDemoGallery(dataDir: string, photosDir = dataDir, embedder?: string): Promise<string[]> {
  // Enrolled for the agent's default score fusion as well (recognition.fuseWith: auto), with the
  // embedder the agent will run (recognition.embedder; the default one when not given).
  const analyzer = await FaceAnalyzer.create({ fuseWith: 'auto', ...(embedder ? { embedder } : {}) });
  const gallery = Gallery.open(dataDir);
  try {
    return await enrollDemoPeople(analyzer, gallery, photosDir);
  } finally {
    gallery.close();
    await analyzer.close();
  }
}

export async function runDemo(log: Logger, options: { dataDir?: string } = {}): Promise<void> {
  const dataDir = resolveDataDir(options.dataDir ?? join(resolveDataDir(), 'demo'));
  const photosDir = join(dataDir, 'enrollment-photos');
  mkdirSync(photosDir, { recursive: true });
  const ffmpeg = resolveFfmpeg({ logger: log });
  // Known people (sample1), strangers (sample6), then sample3, with grey gaps between visits.
  const video = await makeVideo({
    segments: [1, 6, 3].flatMap((n) => [{ image: null, seconds: 2 }, { image: faceApiSamplePath(n), seconds: 5 }]),
    width: 1280,
    height: 720,
    fps: 10,
    dir: join(dataDir, 'video'),
    ffmpegPath: ffmpeg.path,
  });
  log.info({ video: video.path, seconds: video.duration }, 'demo video ready (photos from @vladmandic/face-api, looped)');

  const config = validateConfig(
    {
      dataDir,
      cameras: [{ name: 'demo', url: video.path, fps: 5, width: 1280, height: 720 }],
      events: { cooldownSeconds: 20 },
      mqtt: { statsIntervalSeconds: 60 },
    },
    'demo defaults',
  );
  const agent = new FacegateAgent(config, log);
  await agent.start();
  const analyzer = agent.faceAnalyzer;
  const gallery = Gallery.open(dataDir);
  try {
    if (gallery.list().length === 0) log.info({ people: await enrollDemoPeople(analyzer, gallery, photosDir) }, 'enrolled the people of sample1.jpg');
  } finally {
    gallery.close();
  }

  // Print what a building system subscribed to the broker receives.
  const topic = `${config.mqtt.prefix}/${agent.agentId}/+/identity`;
  const subscriber = mqtt.connect(agent.brokerUrl, { clientId: `facegate-demo-subscriber-${process.pid}` });
  subscriber.on('connect', () => {
    subscriber.subscribe(topic, { qos: 1 });
    log.info({ topic, broker: agent.brokerUrl }, 'demo subscriber listening (Ctrl-C to stop)');
  });
  subscriber.on('message', (t, payload) => process.stdout.write(`${t} ${payload.toString()}\n`));

  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  log.info('stopping');
  subscriber.end(true);
  await agent.stop();
}
