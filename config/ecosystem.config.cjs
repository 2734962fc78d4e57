// pm2 process file: the alternative to systemd/facegate.service where pm2 manages node apps.
//   npm ci && npm run build
//   pm2 start config/ecosystem.config.cjs && pm2 save && pm2 startup
// Config file: env FACEGATE_CONFIG (default /etc/facegate/facegate.yaml); logs: logs/ in the
// checkout (or FACEGATE_LOG_DIR), JSON lines from pino; rotate them with pm2-logrotate.
const path = require('node:path');

const root = path.join(__dirname, '..');
const logDir = process.env.FACEGATE_LOG_DIR || path.join(root, 'logs');
/** The agent's graceful-shutdown budget (stop cameras, flush events, publish offline): 10 s by default. */
const GRACEFUL_SHUTDOWN_MS = 10_000;

module.exports = {
  apps: [
    {
      name: 'facegate',
      cwd: root,
      script: path.join(root, 'dist', 'agent', 'main.js'),
      args: ['run', '--config', process.env.FACEGATE_CONFIG || '/etc/facegate/facegate.yaml'],
      interpreter: 'node',
      exec_mode: 'fork',
      instances: 1,
      // The agent watches its config file itself (hot reload); pm2 must not restart it on edits.
      watch: false,
      autorestart: true,
      // Wait before restarting a crashed agent (a broken camera never crashes it; this is for the rest).
      restart_delay: 5_000,
      min_uptime: '30s',
      max_restarts: 100,
      // pm2 sends kill_signal, then SIGKILL after kill_timeout: the graceful shutdown plus a margin.
      kill_signal: 'SIGTERM',
      kill_timeout: GRACEFUL_SHUTDOWN_MS + 2_000,
      // A health restart: the agent's memory is bounded; growth beyond this is a fault.
      max_memory_restart: '2G',
      out_file: path.join(logDir, 'facegate.out.log'),
      error_file: path.join(logDir, 'facegate.err.log'),
      merge_logs: true,
      // pino writes its own timestamps.
      time: false,
      env: {
        NODE_ENV: 'production',
        FACEGATE_DATA_DIR: process.env.FACEGATE_DATA_DIR || path.join(root, '.facegate-data'),
      },
    },
  ],
};
