// The console keeps a session alive by itself. On a server whose access tokens live 8 s, two open
// tabs refresh silently before expiry (under a Web Lock: a refresh token is never spent twice,
// or the server would end the session), the live feed's socket, closed by the server when the
// token it opened with expires, comes back with a fresh one, and the pages keep working.
import { test, expect, request as playwrightRequest } from '@playwright/test';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { admin, consoleLogin, gql, newUser, openConsole, watch } from './support.mjs';

const port = Number(process.env.BROWSER_PORT || 18931) + 1;
const origin = `http://127.0.0.1:${port}`;
let server;

test.beforeAll(async () => {
  const env = {
    ...process.env,
    CLOUDBASE_ENV: 'dev',
    CLOUDBASE_LISTEN: `127.0.0.1:${port}`,
    CLOUDBASE_DATA_DIR: mkdtempSync(join(tmpdir(), 'cloudbase-session-')),
    CLOUDBASE_BOOTSTRAP_ADMIN_EMAIL: admin.email,
    CLOUDBASE_BOOTSTRAP_ADMIN_PASSWORD: admin.password,
    CLOUDBASE_LOG: 'warn',
    CLOUDBASE_AUTH__ACCESS_TOKEN_TTL_SECS: '8',
  };
  server = spawn(process.env.SERVER_BIN || '../../target/debug/cloudbase-ai', [], { env, stdio: 'inherit' });
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      if ((await fetch(`${origin}/readyz`)).ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error('the short-token server did not start');
    await new Promise((r) => setTimeout(r, 200));
  }
});

test.afterAll(() => server?.kill('SIGTERM'));

const token = (page) => page.evaluate(() => JSON.parse(localStorage.getItem('cloudbase.console.session') || 'null')?.accessToken);

test('tokens are refreshed silently in two tabs, and the live feed survives its token', async ({ browser }) => {
  test.setTimeout(90_000);
  const api = await playwrightRequest.newContext({ baseURL: origin });
  const context = await browser.newContext({ baseURL: origin });
  const page = await context.newPage();
  const problems = watch(page);
  await openConsole(page, 'en', '#/overview');
  await consoleLogin(page);
  await expect(page.getByRole('heading', { name: 'Overview' })).toBeVisible();
  const second = await context.newPage();
  await second.goto('/console#/costs');
  await expect(second.getByRole('heading', { name: 'Costs' })).toBeVisible();

  // Three refreshes at least (each token lives 8 s and is renewed at 6 s), with no action.
  const seen = new Set([await token(page)]);
  const started = Date.now();
  while (seen.size < 4 && Date.now() - started < 40_000) {
    await page.waitForTimeout(500);
    seen.add(await token(page));
    seen.add(await token(second));
  }
  expect(seen.size, 'access tokens seen').toBeGreaterThanOrEqual(4);
  // Both tabs are still signed in: no refresh token was spent twice.
  await expect(page.getByRole('heading', { name: 'Overview' })).toBeVisible();
  await expect(second.getByRole('heading', { name: 'Costs' })).toBeVisible();
  await expect(page.getByText('Your session ended')).toHaveCount(0);

  // The feed's first socket was closed when its token expired; a call now still shows live.
  const adminTokens = (await gql(api, `mutation { login(input: {email: "${admin.email}", password: "${admin.password}"}) { accessToken } }`)).login;
  const who = await newUser(api, adminTokens.accessToken, 'late');
  const login = (await gql(api, `mutation($i: LoginInput!) { login(input: $i) { accessToken } }`, { i: { email: who.email, password: who.password } })).login;
  const call = (
    await gql(
      api,
      `mutation { chat(input: {provider: "mock", model: "mock-fast", message: "still live?"}) { aiCall { id } } }`,
      {},
      login.accessToken,
    )
  ).chat.aiCall;
  await expect(page.locator('main')).toContainText(who.email, { timeout: 5_000 });
  expect(call.id).toBeTruthy();

  // And a page's requests go through with the current token.
  await page.goto('/console#/users');
  await expect(page.getByRole('heading', { name: 'Users' })).toBeVisible();
  await expect(page.getByText('Your session ended')).toHaveCount(0);
  expect(problems().filter((p) => !/WebSocket|4401/.test(p))).toEqual([]);
  await context.close();
  await api.dispose();
});
