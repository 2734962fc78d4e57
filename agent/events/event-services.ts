// The agent's services on the MQTT connection beyond availability and stats: the durable event
// outbox and its relay, the command router and Home Assistant discovery. The agent starts them
// once the publisher exists and stops them before the publisher says 'offline'. Each one failing
// to start is logged and leaves the others running.
import type { FacegateConfig } from '../config/schema.js';
import type { Logger } from '../logging.js';
import { type CommandContext, buildCommandHandlers } from './command-handlers.js';
import { CommandRouter } from './command-router.js';
import { HomeAssistantDiscovery } from './homeassistant.js';
import type { IdentityEvent } from './identity-event.js';
import type { MqttPublisher } from './mqtt-publisher.js';
import { Outbox, type OutboxStats } from './outbox.js';
import { OutboxRelay } from './outbox-relay.js';

export interface EventServicesDeps {
  config: FacegateConfig;
  dataDir: string;
  publisher: MqttPublisher;
  log: Logger;
  version: string;
  commands: CommandContext;
  /** Cameras Home Assistant is told about. */
  cameras: () => string[];
}

/** Sets `publishTime` to the moment of each (re)publish: it says when the event went out. */
export function stampPublishTime(payload: string): string {
  const event = JSON.parse(payload) as IdentityEvent;
  return JSON.stringify({ ...event, publishTime: new Date().toISOString() });
}

export class EventServices {
  private router: CommandRouter | undefined;
  private homeAssistant: HomeAssistantDiscovery | undefined;

  private constructor(
    readonly outbox: Outbox,
    readonly relay: OutboxRelay,
    private readonly deps: EventServicesDeps,
  ) {}

  /** Opens the outbox (a failure here is fatal: without it events could be lost) and starts the rest. */
  static async start(deps: EventServicesDeps): Promise<EventServices> {
    const { config, log, publisher } = deps;
    const outbox = Outbox.open(deps.dataDir, {
      maxEvents: config.outbox.maxEvents,
      maxAgeHours: config.outbox.maxAgeHours,
      onDrop: (count, reason, total) =>
        log.warn(
          { count, reason, totalDropped: total, maxEvents: config.outbox.maxEvents, maxAgeHours: config.outbox.maxAgeHours },
          reason === 'full' ? `event outbox full: dropped the ${count} oldest undelivered event(s)` : `event outbox: dropped ${count} undelivered event(s) older than ${config.outbox.maxAgeHours} h`,
        ),
    });
    const relay = new OutboxRelay(outbox, publisher.client, {
      inFlight: config.outbox.inFlight,
      stamp: stampPublishTime,
      log: (level, message) => log[level](message),
    });
    const services = new EventServices(outbox, relay, deps);
    await services.startOptional();
    return services;
  }

  private async startOptional(): Promise<void> {
    const { config, log, publisher } = this.deps;
    if (config.commands.enabled) {
      try {
        this.router = new CommandRouter(publisher.client, {
          base: publisher.topics.base,
          handlers: buildCommandHandlers(this.deps.commands),
          maxPayloadBytes: config.commands.maxPayloadBytes,
          maxPending: config.commands.maxPending,
          log: (level, message) => log[level](message),
        });
        // Not awaited: while the broker is down the subscription waits in mqtt.js (one packet).
        this.router.start().catch((err: Error) => log.error({ err: err.message }, 'MQTT commands: subscribing failed'));
        log.info({ topic: `${this.router.requestPrefix}#` }, 'MQTT commands enabled');
      } catch (err) {
        log.error({ err: (err as Error).message }, 'MQTT commands not started');
      }
    }
    if (config.homeassistant.enabled) {
      try {
        this.homeAssistant = new HomeAssistantDiscovery(publisher.client, {
          discoveryPrefix: config.homeassistant.discoveryPrefix,
          base: publisher.topics.base,
          availabilityTopic: publisher.topics.availability,
          agentId: publisher.agentId,
          version: this.deps.version,
          cameras: this.deps.cameras,
          presenceTimeoutMs: config.homeassistant.presenceTimeoutSeconds * 1000,
          log: (level, message) => log[level](message),
        });
        this.homeAssistant.start().catch((err: Error) => log.error({ err: err.message }, 'Home Assistant discovery: subscribing to its status failed'));
        log.info({ discoveryPrefix: config.homeassistant.discoveryPrefix }, 'Home Assistant MQTT discovery enabled');
      } catch (err) {
        log.error({ err: (err as Error).message }, 'Home Assistant discovery not started');
      }
    }
  }

  /** Writes the event to the outbox (durable before this returns), then publishes it in order. */
  publishIdentity(event: IdentityEvent): void {
    this.relay.enqueue(event.eventId, this.deps.publisher.topics.identity(event.camera), JSON.stringify(event));
    try {
      this.homeAssistant?.onIdentity(event);
    } catch (err) {
      this.deps.log.warn({ err: (err as Error).message }, 'Home Assistant state not updated');
    }
  }

  /** Events waiting in the outbox for a broker acknowledgement. */
  get outboxDepth(): number {
    return this.outbox.isOpen ? this.outbox.depth : 0;
  }

  stats(): { outbox: OutboxStats & { delivered: number }; commands: { ok: number; error: number } | null } {
    const outbox = this.outbox.isOpen ? this.outbox.stats() : { depth: 0, dropped: this.outbox.droppedTotal, oldestAgeSeconds: null };
    return { outbox: { ...outbox, delivered: this.relay.delivered }, commands: this.router ? { ...this.router.counts } : null };
  }

  /** Delivers what the broker accepts within `timeoutMs`; true when nothing is left waiting. */
  flush(timeoutMs: number): Promise<boolean> {
    return this.relay.flush(timeoutMs);
  }

  /** Stops commands, discovery and publishing; the outbox stays open for late acknowledgements until close(). */
  stop(): void {
    this.router?.stop();
    this.homeAssistant?.stop();
    this.relay.stop();
  }

  close(): void {
    this.stop();
    this.outbox.close();
  }
}
