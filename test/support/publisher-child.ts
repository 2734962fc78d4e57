// A child process running an MqttPublisher, for tests that kill it abruptly (SIGKILL) to check the
// last will. argv: <broker url> <agent id>. Prints "connected" once connected.
import { MqttPublisher } from '../../agent/events/mqtt-publisher.js';

const [url, agentId] = process.argv.slice(2);
if (!url || !agentId) throw new Error('usage: publisher-child.ts <url> <agentId>');
const publisher = MqttPublisher.start({ url, agentId, keepaliveSeconds: 5 });
await publisher.connected();
process.stdout.write('connected\n');
setInterval(() => {}, 1000);
