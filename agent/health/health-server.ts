// The HTTP side of health: GET /healthz (200 or 503 with the reasons as JSON) and GET /metrics
// (Prometheus text). node:http is enough for two read-only routes; it binds to loopback by
// default. A listen failure (port in use, bad address) is returned as a clear error: the agent
// logs and publishes it and keeps running without the endpoint.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HealthVerdict } from './health-check.js';

export interface HealthRoutes {
  health(): HealthVerdict;
  metrics(): Promise<{ contentType: string; body: string }>;
}

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:]+)\]|([^:]+)):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) throw new Error(`health.listen "${listen}" is not host:port (e.g. 127.0.0.1:9120)`);
  return { host: (m[1] ?? m[2]) as string, port };
}

export class HealthServer {
  private constructor(private readonly server: Server) {}

  static start(listen: string, routes: HealthRoutes): Promise<HealthServer> {
    const { host, port } = parseListen(listen);
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
        return;
      }
      if (path === '/healthz') {
        let verdict: HealthVerdict;
        try {
          verdict = routes.health();
        } catch (err) {
          verdict = { status: 'unhealthy', reasons: [`health check failed: ${(err as Error).message}`], broker: { connected: false }, cameras: {} };
        }
        res.writeHead(verdict.status === 'ok' ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(`${JSON.stringify(verdict)}\n`);
      } else if (path === '/metrics') {
        routes.metrics().then(
          ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(body),
          (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${(err as Error).message}\n`),
        );
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /healthz or /metrics\n');
      }
    });
    return new Promise((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        const why = err.code === 'EADDRINUSE' ? 'the port is in use by another process' : err.code === 'EACCES' ? 'permission denied' : err.code === 'EADDRNOTAVAIL' ? 'no such local address' : err.message;
        reject(new Error(`health server cannot listen on ${listen}: ${why}; set health.listen to a free host:port or health.enabled to false`));
      });
      server.listen(port, host, () => resolve(new HealthServer(server)));
    });
  }

  get address(): { host: string; port: number } {
    const a = this.server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
