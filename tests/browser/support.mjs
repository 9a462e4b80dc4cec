// What the console's browser tests share: GraphQL calls from the test itself (as "another
// client"), signing in through the page, switching the language, the axe-core check and the
// screenshots for review (into the git-ignored screenshots/ folder).
import { expect } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { mkdirSync } from 'node:fs';
import { admin, baseURL } from './playwright.config.mjs';

export { admin, baseURL };

/**
 * What the console must show for an amount of micro-units: exact (a decimal string, no float),
 * 2 to 6 decimals, and the currency's symbol (¥ for CNY, as Chinese readers expect; the
 * locale's own symbol for the others).
 */
export function money(micros, currency, locale = 'en-US') {
  const value = BigInt(micros);
  const negative = value < 0n;
  const abs = negative ? -value : value;
  const whole = abs / 1_000_000n;
  const fraction = (abs % 1_000_000n).toString().padStart(6, '0').replace(/0+$/, '');
  return new Intl.NumberFormat(locale, {
    style: 'currency',
    currency,
    currencyDisplay: currency === 'CNY' ? 'narrowSymbol' : 'symbol',
    minimumFractionDigits: 2,
    maximumFractionDigits: 6,
  }).format(`${negative ? '-' : ''}${whole}${fraction ? `.${fraction}` : ''}`);
}

/** Runs a GraphQL operation over HTTP; fails the test on any error. */
export async function gql(request, query, variables = {}, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await request.post('/graphql', { data: { query, variables }, headers });
  const body = await response.json();
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return body.data;
}

/** Signs in over the API and returns the tokens. */
export async function apiLogin(request, who = admin) {
  const data = await gql(
    request,
    `mutation($input: LoginInput!) { login(input: $input) { accessToken refreshToken user { id } } }`,
    { input: { email: who.email, password: who.password } },
  );
  return data.login;
}

/** A new user, made by the admin over the API, with a password that passes the strength rule. */
export async function newUser(request, adminToken, name = 'user') {
  const suffix = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 7)}`;
  const who = { email: `${name}-${suffix}@example.com`, password: `Tall-Orange-Kettle-${suffix}`, displayName: `${name} ${suffix}` };
  const data = await gql(
    request,
    `mutation($input: CreateUserInput!) { createUser(input: $input) { id } }`,
    { input: who },
    adminToken,
  );
  return { ...who, id: data.createUser.id };
}

/** Collects console errors and CSP violations; call `problems()` at the end and expect none. */
export function watch(page) {
  const seen = [];
  page.on('console', (m) => {
    if (m.type() === 'error') seen.push(m.text());
  });
  page.on('pageerror', (e) => seen.push(String(e)));
  return () => seen;
}

/** Opens the console in a language (set before the page's scripts run). */
export async function openConsole(page, lang = 'en', hash = '') {
  await page.addInitScript((l) => localStorage.setItem('cloudbase.console.lang', l), lang);
  await page.goto(`/console${hash}`);
}

/** Signs in through the login page. */
export async function consoleLogin(page, who = admin) {
  await page.locator('input[type=email]').fill(who.email);
  await page.locator('input[type=password]').fill(who.password);
  await page.locator('form button[type=submit]').click();
  await expect(page.locator('main h1, main .page h1').first()).toBeVisible();
}

/** axe-core: no serious or critical violation on what the page shows now. */
export async function expectAccessible(page, what) {
  const results = await new AxeBuilder({ page }).analyze();
  const bad = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  expect(
    bad.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')}`),
    `${what}: accessibility`,
  ).toEqual([]);
}

/** Saves a full-page screenshot into screenshots/ (git-ignored) for review. */
export async function screenshot(page, name) {
  mkdirSync('screenshots', { recursive: true });
  await page.screenshot({ path: `screenshots/${name}.png`, fullPage: true });
}
