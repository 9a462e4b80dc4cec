// The admin overview and the cost dashboard as an admin uses them: a chat made by another client
// (a second user, over HTTP, through the priced `mock` provider) shows up in the overview's live
// feed and in the dashboard's per-user spend within 2 s with its exact cost; the monthly statement
// downloads as CSV (with the bearer token) and its total is the GraphQL statement's; both pages
// render in English and Chinese, pass axe-core, and are screenshotted per language.
import { test, expect } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { apiLogin, consoleLogin, expectAccessible, gql, newUser, openConsole, screenshot, watch } from './support.mjs';
import { money as formatMoney } from './support.mjs';

// Usage days are counted in the server's configured time zone (`budgets.timezone`, by default
// Asia/Shanghai). The browser runs 19 hours behind it, so a page that took "today" from the
// browser would ask for the wrong day most of the time: the console must take the server's.
const ZONE = 'Asia/Shanghai';
test.use({ timezoneId: 'Pacific/Pago_Pago' });

const CHAT = `mutation($input: ChatInput!) { chat(input: $input) { aiCall { id status costMicros currency } } }`;

async function chatAs(request, token, message) {
  const data = await gql(request, CHAT, { input: { provider: 'mock', model: 'mock-echo', message } }, token);
  const call = data.chat.aiCall;
  expect(call.status).toBe('SUCCEEDED');
  expect(BigInt(call.costMicros)).toBeGreaterThan(0n);
  expect(call.currency).toMatch(/^[A-Z]{3}$/);
  return call;
}

/** A CSV decimal amount (`0.000036`) as micro-units. */
function decimalToMicros(text) {
  const [whole, fraction = ''] = text.split('.');
  return BigInt(whole) * 1_000_000n + BigInt(fraction.padEnd(6, '0').slice(0, 6));
}

function thisMonth() {
  return new Date().toLocaleString('sv-SE', { timeZone: ZONE }).slice(0, 7);
}

/** Records the subscriptions the page has started over its sockets (graphql-ws `subscribe`). */
function watchSubscriptions(page) {
  const started = new Set();
  page.on('websocket', (ws) => {
    ws.on('framesent', (frame) => {
      try {
        const msg = JSON.parse(frame.payload);
        if (msg.type === 'subscribe' && msg.payload?.operationName) started.add(msg.payload.operationName);
      } catch {
        // not JSON
      }
    });
  });
  return async (name) => {
    await expect.poll(() => started.has(name), { timeout: 10_000, message: `subscription ${name}` }).toBe(true);
    // The server registers the subscription as it reads the frame; give it a moment.
    await page.waitForTimeout(300);
  };
}

test('another client’s chat shows live in the overview and the cost dashboard, with its cost; the CSV statement matches', async ({
  page,
  request,
}) => {
  test.setTimeout(45_000);
  const problems = watch(page);
  const subscribed = watchSubscriptions(page);
  const adminTokens = await apiLogin(request);
  const other = await newUser(request, adminTokens.accessToken, 'spender');
  const otherTokens = await apiLogin(request, other);

  // The overview.
  await openConsole(page, 'en', '#/overview');
  await consoleLogin(page);
  await expect(page.getByRole('heading', { level: 1, name: 'Overview' })).toBeVisible();
  await expect(page.getByRole('heading', { name: 'Provider health' })).toBeVisible();
  await expect(page.getByRole('row').filter({ hasText: /^mock/ }).first()).toBeVisible();
  const callsTile = page.locator('.tile').filter({ has: page.locator('.tile-label', { hasText: /^Calls$/ }) });
  await expect(callsTile.locator('.tile-value')).toHaveText(/^\d+$/);
  const callsBefore = Number(await callsTile.locator('.tile-value').textContent());
  await subscribed('OverviewCalls');

  const first = await chatAs(request, otherTokens.accessToken, 'hello from another client');
  const item = page.locator(`[data-call-id="${first.id}"]`);
  const cost = formatMoney(first.costMicros, first.currency, 'en-US');
  await expect(item).toContainText('Succeeded', { timeout: 2_000 });
  await expect(item).toContainText(cost, { timeout: 2_000 });
  await expect(item).toContainText('mock/mock-echo');
  await expect(item).toContainText(other.email);
  // PENDING then SUCCEEDED: one item, updated in place.
  await expect(page.locator(`[data-call-id="${first.id}"]`)).toHaveCount(1);
  // The tiles refresh (debounced) once the call has finished.
  await expect(callsTile.locator('.tile-value')).toHaveText(String(callsBefore + 1), { timeout: 3_000 });
  // Spend today is an amount in the call's currency (its symbol: ¥ for CNY).
  const symbol = formatMoney(0, first.currency, 'en-US').replace(/[\d.,\s]/g, '');
  await expect(page.locator('.tile').filter({ hasText: 'Spend today' })).toContainText(symbol);
  await expectAccessible(page, 'overview (en)');
  await screenshot(page, 'overview-en');

  // A monthly budget for the other user, in the currency of its calls.
  // Room for the worst case the gateway reserves per call (a few thousand micro-units).
  const limit = '10000';
  await gql(
    request,
    `mutation($input: CreateBudgetInput!) { createBudget(input: $input) { id } }`,
    { input: { userId: other.id, period: 'MONTH', currency: first.currency, limitMicros: limit } },
    adminTokens.accessToken,
  );

  // The cost dashboard: a second chat moves the per-user spend and the budget.
  await page.getByRole('link', { name: 'Costs', exact: true }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Costs' })).toBeVisible();
  const byUser = page.getByTestId('costs-by-user');
  const userRow = byUser.getByRole('row').filter({ hasText: other.email });
  await expect(userRow).toContainText(cost);
  await subscribed('CostsCalls');
  const second = await chatAs(request, otherTokens.accessToken, 'and once more');
  expect(second.currency).toBe(first.currency);
  const both = (BigInt(first.costMicros) + BigInt(second.costMicros)).toString();
  const bothText = formatMoney(both, first.currency, 'en-US');
  await expect(userRow).toContainText(bothText, { timeout: 2_000 });
  await expect(userRow.getByRole('cell').nth(2)).toHaveText('2');
  const budgetRow = page.getByTestId('costs-budgets').getByRole('row').filter({ hasText: other.email });
  const cells = budgetRow.getByRole('cell');
  await expect(cells.nth(1)).toHaveText('Monthly');
  await expect(cells.nth(2)).toHaveText(formatMoney(limit, first.currency, 'en-US'));
  // The budget counts what was settled since it was made: the second call only.
  const spent = second.costMicros;
  await expect(cells.nth(3)).toHaveText(formatMoney(spent, first.currency, 'en-US'), { timeout: 2_000 });
  await expect(cells.nth(4)).toHaveText(formatMoney('0', first.currency, 'en-US'));
  await expect(cells.nth(5)).toHaveText(formatMoney(BigInt(limit) - BigInt(spent), first.currency, 'en-US'));
  // Spent of limit, in tenths of a percent (nothing is reserved once both calls are settled).
  const permille = (BigInt(spent) * 1000n) / BigInt(limit);
  expect(permille).toBeGreaterThan(0n);
  const meter = budgetRow.getByRole('meter');
  await expect(meter).toHaveAttribute('aria-valuenow', String(Number(permille) / 10));
  await expect(meter).toHaveAttribute('aria-label', `${Number(permille) / 10}% of the limit spent or reserved`);
  await expect(page.getByTestId('costs-by-day').locator('canvas')).toBeVisible();
  await expect(page.getByTestId('costs-by-model').getByRole('row').filter({ hasText: 'mock/mock-echo' })).toBeVisible();

  // The range lives in the URL: a preset sets it, a reload keeps it.
  await page.getByRole('button', { name: 'Last 7 days' }).click();
  await expect(page).toHaveURL(/#\/costs\?.*from=\d{4}-\d{2}-\d{2}.*to=\d{4}-\d{2}-\d{2}/);
  await page.reload();
  await expect(page.getByRole('button', { name: 'Last 7 days' })).toHaveAttribute('aria-pressed', 'true');
  await expect(byUser.getByRole('row').filter({ hasText: other.email })).toContainText(bothText);

  // The monthly statement of the other user: on the page, then as CSV.
  const month = thisMonth();
  const statement = (
    await gql(
      request,
      `query($userId: ID, $month: String!) { statement(userId: $userId, month: $month) { totals { currency costMicros requests } } }`,
      { userId: other.id, month },
      adminTokens.accessToken,
    )
  ).statement;
  expect(statement.totals).toEqual([{ currency: first.currency, costMicros: both, requests: 2 }]);
  const statementCard = page.getByTestId('costs-statement');
  await expect(statementCard.getByLabel('Month')).toHaveValue(month);
  await statementCard.getByLabel('User').selectOption(other.id);
  await expect(page).toHaveURL(new RegExp(`user=${other.id}`));
  await expect(page.getByTestId('statement-totals')).toContainText(bothText);
  const [download] = await Promise.all([
    page.waitForEvent('download', { timeout: 10_000 }),
    statementCard.getByRole('button', { name: 'Download CSV' }).click(),
  ]);
  expect(download.suggestedFilename()).toBe(`statement-${other.id}-${month}.csv`);
  const csv = readFileSync(await download.path(), 'utf8').trim().split('\n');
  expect(csv[0]).toBe('month,provider,model,currency,requests,prompt_tokens,cached_prompt_tokens,completion_tokens,cost');
  const totals = csv.slice(1).map((l) => l.split(',')).filter((f) => f[1] === 'TOTAL');
  expect(totals.map((f) => ({ currency: f[3], costMicros: decimalToMicros(f[8]).toString(), requests: Number(f[4]) }))).toEqual(
    statement.totals,
  );

  // The access token has expired by the time of the download: the server refuses it once (401,
  // answered here for the first try), and the page refreshes the session and tries again.
  expect(problems()).toEqual([]);
  const statuses = [];
  page.on('response', (r) => {
    if (r.url().includes('/statements/')) statuses.push(r.status());
  });
  const stale = await page.evaluate(() => JSON.parse(localStorage.getItem('cloudbase.console.session')).accessToken);
  let refused = 0;
  await page.route('**/statements/**', (route) => {
    if (refused++ > 0) return route.continue();
    return route.fulfill({
      status: 401,
      contentType: 'application/json',
      body: JSON.stringify({ errors: [{ message: 'access token expired', extensions: { code: 'UNAUTHENTICATED' } }] }),
    });
  });
  const [again] = await Promise.all([
    page.waitForEvent('download', { timeout: 10_000 }),
    statementCard.getByRole('button', { name: 'Download CSV' }).click(),
  ]);
  expect(readFileSync(await again.path(), 'utf8').trim().split('\n')).toEqual(csv);
  expect(statuses).toEqual([401, 200]);
  const renewed = await page.evaluate(() => JSON.parse(localStorage.getItem('cloudbase.console.session')).accessToken);
  expect(renewed).not.toBe(stale);
  // The browser logs the refused request itself; nothing else may be logged.
  expect(problems()).toEqual(['Failed to load resource: the server responded with a status of 401 (Unauthorized)']);
  problems().length = 0;
  await expectAccessible(page, 'costs (en)');
  await screenshot(page, 'costs-en');

  expect(problems().filter((p) => /Content Security Policy|Refused to/.test(p))).toEqual([]);
  expect(problems()).toEqual([]);
});

test('both pages in Chinese, and a bad range is refused', async ({ page, request }) => {
  const problems = watch(page);
  const adminTokens = await apiLogin(request);
  const other = await newUser(request, adminTokens.accessToken, 'zh');
  const otherTokens = await apiLogin(request, other);
  const call = await chatAs(request, otherTokens.accessToken, '你好');

  await openConsole(page, 'zh', '#/overview');
  await consoleLogin(page);
  await expect(page.getByRole('heading', { level: 1, name: '总览' })).toBeVisible();
  await expect(page.getByRole('heading', { name: '服务商健康状况' })).toBeVisible();
  await expect(page.locator('.tile-label', { hasText: '本月花费' })).toBeVisible();
  await expect(page.getByRole('heading', { name: '实时调用' })).toBeVisible();
  // The window is kept in the URL and asks the server for that window.
  const asked = page.waitForRequest((r) => r.url().endsWith('/graphql') && r.postDataJSON()?.variables?.windowMinutes === 1440);
  await page.getByLabel('时间窗口').selectOption('1440');
  await asked;
  await expect(page).toHaveURL(/#\/overview\?window=1440$/);
  await expect(page.getByLabel('时间窗口')).toHaveValue('1440');
  await expectAccessible(page, 'overview (zh)');
  await screenshot(page, 'overview-zh');

  await page.getByRole('link', { name: '费用', exact: true }).click();
  await expect(page.getByRole('heading', { level: 1, name: '费用' })).toBeVisible();
  await expect(page.getByRole('heading', { name: '每日花费' })).toBeVisible();
  await expect(page.getByRole('heading', { name: '月度账单' })).toBeVisible();
  await expect(page.getByTestId('costs-by-user').getByRole('row').filter({ hasText: other.email })).toContainText(
    formatMoney(call.costMicros, call.currency, 'zh-CN'),
  );
  await expectAccessible(page, 'costs (zh)');
  await screenshot(page, 'costs-zh');

  // A range that ends before it starts is refused on the page, without asking the server.
  await page.goto('/console#/costs?from=2026-03-10&to=2026-03-01');
  await expect(page.getByRole('alert')).toHaveText('开始日期不能晚于结束日期。');
  await page.goto('/console#/costs?from=2024-01-01&to=2026-03-01');
  await expect(page.getByRole('alert')).toHaveText('日期范围最多 366 天。');

  expect(problems()).toEqual([]);
});
