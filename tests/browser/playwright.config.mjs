// Browser tests: the real `cloudbase-ai` binary (debug build, SQLite in a fresh folder) and the
// distribution's Chromium (`/usr/bin/chromium`, Debian's package; never a downloaded build).
// `.ci/run` builds the binary, installs Chromium when it is missing, and runs these.
import { defineConfig } from '@playwright/test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// BROWSER_PORT lets several runs share a machine (each gets its own server and database).
const port = Number(process.env.BROWSER_PORT || 18931);
export const baseURL = `http://127.0.0.1:${port}`;
export const admin = { email: 'admin@example.com', password: 'change-me-please' };

export default defineConfig({
  testDir: '.',
  testMatch: '*.spec.mjs',
  timeout: 60_000,
  workers: 1,
  reporter: [['list']],
  outputDir: 'results',
  use: {
    baseURL,
    launchOptions: {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      args: ['--no-sandbox'],
    },
  },
  webServer: {
    // SERVER_BIN: another build of the server (a git worktree may share one binary).
    command: process.env.SERVER_BIN || '../../target/debug/cloudbase-ai',
    url: `${baseURL}/readyz`,
    timeout: 60_000,
    reuseExistingServer: false,
    env: {
      CLOUDBASE_ENV: 'dev',
      CLOUDBASE_LISTEN: `127.0.0.1:${port}`,
      CLOUDBASE_DATA_DIR: mkdtempSync(join(tmpdir(), 'cloudbase-browser-')),
      CLOUDBASE_BOOTSTRAP_ADMIN_EMAIL: admin.email,
      CLOUDBASE_BOOTSTRAP_ADMIN_PASSWORD: admin.password,
      CLOUDBASE_LOG: 'warn',
      // The mock provider streams mock-echo a delta every 40 ms, so Stop can land mid-stream.
      CLOUDBASE_PLUGINS__MOCK__PLUGIN: 'mock',
      CLOUDBASE_PLUGINS__MOCK__SETTINGS__DELAY_MS: '40',
      // Notifier instances (`webhook`, `email`) that alert rules can target; they deliver nowhere.
      CLOUDBASE_CONFIG: new URL('./notifiers.toml', import.meta.url).pathname,
      // Set when working on the console: serve its dist/ from disk ([http] console_dir, dev only).
      ...(process.env.CLOUDBASE_HTTP__CONSOLE_DIR ? { CLOUDBASE_HTTP__CONSOLE_DIR: process.env.CLOUDBASE_HTTP__CONSOLE_DIR } : {}),
    },
  },
});
