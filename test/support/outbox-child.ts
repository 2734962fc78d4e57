// A child process running the real event path of the agent — durable outbox (SQLite) → relay →
// MqttPublisher — fed with synthetic identity events (faces "arriving" every intervalMs), for
// tests that kill it with SIGKILL. argv: <broker url> <data dir> <agent id> <first index> <count (0 = endless)> <interval ms> [reconnect ms]
// Prints "enqueued <index> <eventId>" once each event is durably written; on SIGTERM flushes,
// publishes 'offline' and prints "depth <n>" before exiting. A line "reconnect" on stdin makes it
// try the broker at once (tests give a long reconnect period to choose when it comes back).
import { createInterface } from 'node:readline';
import { buildIdentityEvent } from '../../agent/events/identity-event.js';
import { MqttPublisher } from '../../agent/events/mqtt-publisher.js';
import { Outbox } from '../../agent/events/outbox.js';
import { OutboxRelay } from '../../agent/events/outbox-relay.js';
import { stampPublishTime } from '../../agent/events/event-services.js';

const [url, dataDir, agentId, first, count, interval, reconnect] = process.argv.slice(2);
if (!url || !dataDir || !agentId || first === undefined || count === undefined || interval === undefined) {
  throw new Error('usage: outbox-child.ts <url> <dataDir> <agentId> <firstIndex> <count> <intervalMs>');
}
const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

const publisher = MqttPublisher.start({ url, agentId, prefix: 'fgbox', reconnectPeriodMs: Number(reconnect ?? 200), keepaliveSeconds: 5 });
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() === 'reconnect' && !publisher.isConnected) publisher.client.reconnect();
});
const outbox = Outbox.open(dataDir, { maxEvents: 10_000, maxAgeHours: 24 });
const relay = new OutboxRelay(outbox, publisher.client, { inFlight: 5, stamp: stampPublishTime });
say(`started depth ${outbox.depth}`);

let index = Number(first);
const last = Number(count) > 0 ? Number(first) + Number(count) - 1 : Number.POSITIVE_INFINITY;
const timer = setInterval(() => {
  if (index > last) return;
  const event = buildIdentityEvent({
    agent: agentId,
    camera: index % 2 === 0 ? 'cam-a' : 'cam-b',
    trackId: index,
    identity: `person-${index}`,
    unknown: false,
    score: 0.9,
    distance: 0.4,
    box: { x: 1, y: 2, w: 3, h: 4 },
    frameTime: Date.now(),
    model: 'synthetic',
  });
  relay.enqueue(event.eventId, publisher.topics.identity(event.camera), JSON.stringify(event));
  say(`enqueued ${index} ${event.eventId}`);
  index++;
}, Number(interval));

process.once('SIGTERM', () => {
  clearInterval(timer);
  void (async () => {
    await relay.flush(3000);
    relay.stop();
    await publisher.stop(1000);
    say(`depth ${outbox.depth}`);
    outbox.close();
    process.exit(0);
  })();
});
