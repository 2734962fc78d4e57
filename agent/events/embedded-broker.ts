// The embedded MQTT broker (aedes) the agent starts when no broker URL is configured, so a fresh
// machine needs no broker: 127.0.0.1:1883 by default (loopback only), MQTT 3.1.1, no auth,
// in-memory persistence (retained messages are lost when the agent stops).
import { createServer, type Server } from 'node:net';
import { Aedes } from 'aedes';

export interface EmbeddedBrokerOptions {
  host?: string;
  /** Default 1883; 0 picks a free port. */
  port?: number;
  log?: (message: string) => void;
}

export class EmbeddedBroker {
  private constructor(
    private readonly aedes: Aedes,
    private readonly server: Server,
    readonly host: string,
    readonly port: number,
  ) {}

  get url(): string {
    return `mqtt://${this.host}:${this.port}`;
  }

  static async start(options: EmbeddedBrokerOptions = {}): Promise<EmbeddedBroker> {
    const host = options.host ?? '127.0.0.1';
    const aedes = await Aedes.createBroker();
    const server = createServer(aedes.handle);
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        aedes.close();
        reject(new Error(`embedded MQTT broker: cannot listen on ${host}:${options.port ?? 1883}: ${err.code === 'EADDRINUSE' ? 'the port is in use (another broker? configure its URL instead)' : err.message}`));
      });
      server.listen(options.port ?? 1883, host, () => resolve());
    });
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : (options.port ?? 1883);
    const broker = new EmbeddedBroker(aedes, server, host, port);
    options.log?.(`no MQTT broker URL configured: started the embedded MQTT broker (aedes) on ${broker.url}`);
    return broker;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.aedes.close(() => resolve()));
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * The broker URL to publish to: the configured one, or the embedded broker's (started here) when
 * none is configured. `stop` stops the embedded broker (a no-op for a configured URL).
 */
export async function resolveBroker(url: string | undefined, options: EmbeddedBrokerOptions = {}): Promise<{ url: string; embedded: EmbeddedBroker | null; stop: () => Promise<void> }> {
  if (url) return { url, embedded: null, stop: async () => {} };
  const embedded = await EmbeddedBroker.start(options);
  return { url: embedded.url, embedded, stop: () => embedded.stop() };
}
