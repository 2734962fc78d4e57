// Commands over MQTT, in zigbee2mqtt's bridge/request convention: a request on
// `<prefix>/<agent>/request/<verb>` with a JSON object `{ transaction?, ...arguments }` is answered on
// `<prefix>/<agent>/response/<verb>` with `{ status: "ok"|"error", data?, error?, transaction }`
// (the request's transaction, null when it had none). Each verb has one handler and one zod schema
// for its arguments. Whatever arrives — bad JSON, an unknown verb, an oversized payload, a handler
// that throws — gets an error response; nothing here can take the agent down. At most `maxPending`
// requests are handled at once (no unbounded queue): more are answered "busy".
import type { MqttClient } from 'mqtt';
import { z } from 'zod';

export interface CommandHandler {
  /** Arguments of the request, without `transaction`; strict, so a misspelt key is an error. */
  schema: z.ZodType;
  /** The `data` of an ok response; a thrown Error becomes the `error` of an error response. */
  run(args: unknown): Promise<unknown> | unknown;
}

export type CommandHandlers = Record<string, CommandHandler>;

/** Defines a handler with its arguments typed by its schema. */
export function command<S extends z.ZodType>(schema: S, run: (args: z.output<S>) => Promise<unknown> | unknown): CommandHandler {
  return { schema, run: (args) => run(args as z.output<S>) };
}

export interface CommandResponse {
  status: 'ok' | 'error';
  data?: unknown;
  error?: string;
  transaction: string | number | null;
}

export interface CommandRouterOptions {
  /** `<prefix>/<agent>`. */
  base: string;
  handlers: CommandHandlers;
  /** Larger payloads are refused (default 8 MiB). */
  maxPayloadBytes?: number;
  /** Requests in progress at once (default 4). */
  maxPending?: number;
  log?: (level: 'info' | 'warn' | 'error', message: string) => void;
}

const transactionSchema = z.union([z.string().max(200), z.number().finite()]);

/** zod issues as one line: `name: Required; images.0: Invalid input`. */
export const describeIssues = (error: z.ZodError): string =>
  error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(arguments)'}: ${i.message}`).join('; ');

export class CommandRouter {
  readonly requestPrefix: string;
  readonly responsePrefix: string;
  private readonly maxPayloadBytes: number;
  private readonly maxPending: number;
  private pending = 0;
  private started = false;
  /** Requests answered since start, by status. */
  readonly counts = { ok: 0, error: 0 };
  private readonly onMessage = (topic: string, payload: Buffer): void => {
    if (topic.startsWith(this.requestPrefix)) void this.handle(topic.slice(this.requestPrefix.length), payload);
  };

  constructor(
    private readonly client: MqttClient,
    private readonly options: CommandRouterOptions,
  ) {
    this.requestPrefix = `${options.base}/request/`;
    this.responsePrefix = `${options.base}/response/`;
    this.maxPayloadBytes = options.maxPayloadBytes ?? 8 * 1024 * 1024;
    this.maxPending = options.maxPending ?? 4;
  }

  /** Subscribes to the request topics (mqtt.js re-subscribes after every reconnect). */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.client.on('message', this.onMessage);
    await this.client.subscribeAsync(`${this.requestPrefix}#`, { qos: 1 });
  }

  stop(): void {
    this.started = false;
    this.client.off('message', this.onMessage);
    if (this.client.connected) this.client.unsubscribe(`${this.requestPrefix}#`, () => {});
  }

  /** Handles one request; never rejects. Exposed for tests. */
  async handle(verb: string, payload: Buffer): Promise<CommandResponse> {
    const response = await this.answer(verb, payload).catch(
      (err: unknown): CommandResponse => ({ status: 'error', error: `${verb}: ${(err as Error)?.message ?? String(err)}`, transaction: null }),
    );
    this.counts[response.status]++;
    if (response.status === 'error') this.options.log?.('warn', `MQTT command ${verb}: ${response.error}`);
    this.respond(verb, response);
    return response;
  }

  private async answer(verb: string, payload: Buffer): Promise<CommandResponse> {
    const error = (message: string, transaction: string | number | null = null): CommandResponse => ({ status: 'error', error: message, transaction });
    if (payload.length > this.maxPayloadBytes) {
      return error(`request payload is ${payload.length} bytes; the limit is ${this.maxPayloadBytes} (commands.maxPayloadBytes)`);
    }
    let body: unknown = {};
    const text = payload.toString('utf8').trim();
    if (text.length > 0) {
      try {
        body = JSON.parse(text);
      } catch (err) {
        return error(`malformed JSON: ${(err as Error).message}`);
      }
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return error(`the request must be a JSON object, got ${Array.isArray(body) ? 'an array' : typeof body}`);
    const { transaction: rawTransaction, ...args } = body as Record<string, unknown>;
    let transaction: string | number | null = null;
    if (rawTransaction !== undefined) {
      const t = transactionSchema.safeParse(rawTransaction);
      if (!t.success) return error('transaction must be a string (at most 200 characters) or a number');
      transaction = t.data;
    }
    const handler = Object.hasOwn(this.options.handlers, verb) ? this.options.handlers[verb] : undefined;
    if (!handler) return error(`unknown command "${verb}"; known: ${Object.keys(this.options.handlers).sort().join(', ')}`, transaction);
    const parsed = handler.schema.safeParse(args);
    if (!parsed.success) return error(`invalid arguments: ${describeIssues(parsed.error)}`, transaction);
    if (this.pending >= this.maxPending) return error(`busy: ${this.pending} requests in progress (commands.maxPending); try again`, transaction);
    this.pending++;
    try {
      const data = await handler.run(parsed.data);
      return { status: 'ok', ...(data === undefined ? {} : { data }), transaction };
    } catch (err) {
      return error((err as Error)?.message ?? String(err), transaction);
    } finally {
      this.pending--;
    }
  }

  private respond(verb: string, response: CommandResponse): void {
    // "+" and "#" never arrive in a PUBLISH topic, so the verb is a valid topic suffix as it is.
    const topic = `${this.responsePrefix}${verb}`;
    if (!this.client.connected) return; // the requester is gone with the connection; do not queue
    this.client.publish(topic, JSON.stringify(response), { qos: 1, retain: false }, (err) => {
      if (err) this.options.log?.('warn', `MQTT command ${verb}: response not sent: ${err.message}`);
    });
  }
}
