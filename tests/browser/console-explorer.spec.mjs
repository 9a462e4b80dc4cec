// The console's explorer pages as an admin uses them, against the real server: the AI calls
// explorer (filters kept in the address, paging, the detail panel), users (create, role,
// disable/enable, rate limits, budgets) and plugins & models (status, schema, prices).
// Data is made over the API as "another client"; what the pages change is read back over the API.
import { test, expect } from '@playwright/test';
import {
  admin,
  apiLogin,
  consoleLogin,
  expectAccessible,
  gql,
  newUser,
  openConsole,
  screenshot,
  watch,
} from './support.mjs';

/** Signs the admin in through the page (in `lang`) and goes to `hash`. */
async function signIn(page, lang, hash, who = admin) {
  await openConsole(page, lang);
  await consoleLogin(page, who);
  // (The sign-in page has a main heading too: wait until the signed-in frame shows.)
  await expect(page.locator('header.topbar button')).toBeVisible();
  // The session is stored now: load the view afresh, as a pasted link would.
  await page.goto(`/console${hash}`);
}

/** Money as the console shows it (exact, from micro-units). */
function money(micros, currency, locale) {
  const value = BigInt(micros);
  const whole = value / 1_000_000n;
  const fraction = (value % 1_000_000n).toString().padStart(6, '0').replace(/0+$/, '');
  const decimal = `${whole}${fraction ? `.${fraction}` : ''}`;
  return new Intl.NumberFormat(locale, {
    minimumFractionDigits: 2,
    maximumFractionDigits: 6,
    style: 'currency',
    currency,
    currencyDisplay: 'code',
  }).format(decimal);
}

function noProblems(problems) {
  expect(problems().filter((p) => /Content Security Policy|Refused to/.test(p)), 'CSP').toEqual([]);
  expect(problems(), 'console errors').toEqual([]);
}

const CHAT = `mutation($input: ChatInput!) { chat(input: $input) { content aiCall {
  id userId status promptTokens cachedPromptTokens completionTokens costMicros currency priceId } } }`;

/** A call that fails: a prompt over the mock's context window (recorded as FAILED). */
async function failingChat(request, token) {
  const response = await request.post('/graphql', {
    data: { query: CHAT, variables: { input: { provider: 'mock', model: 'mock-fast', message: 'a '.repeat(33_000) } } },
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
  });
  const body = await response.json();
  expect(body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
}

test.describe('AI calls explorer', () => {
  test('calls made over the API appear; user and status filters narrow the table; the detail matches the API', async ({ page, request }) => {
    const problems = watch(page);
    const root = await apiLogin(request);
    const alice = await newUser(request, root.accessToken, 'alice');
    const bob = await newUser(request, root.accessToken, 'bob');
    const aliceToken = (await apiLogin(request, alice)).accessToken;
    const bobToken = (await apiLogin(request, bob)).accessToken;
    const aliceCall = (
      await gql(request, CHAT, { input: { provider: 'mock', model: 'mock-fast', message: 'Hello from Alice' } }, aliceToken)
    ).chat.aiCall;
    const bobCall = (
      await gql(request, CHAT, { input: { provider: 'mock', model: 'mock-echo', message: 'Bob asks a longer question here' } }, bobToken)
    ).chat.aiCall;
    await failingChat(request, aliceToken);
    expect(aliceCall.status).toBe('SUCCEEDED');
    expect(bobCall.costMicros).not.toBe('0');

    await signIn(page, 'en', '#/calls');
    await expect(page.getByRole('heading', { level: 1, name: 'AI calls' })).toBeVisible();
    const rows = page.locator('main tbody tr');
    // Both users' calls are in the unfiltered table (newest first).
    await expect(page.locator('main tbody')).toContainText(alice.displayName);
    await expect(page.locator('main tbody')).toContainText(bob.displayName);
    await expectAccessible(page, 'calls (en)');

    // Filter by user: type part of the email, pick the user.
    await page.getByLabel('User').fill(alice.email.slice(0, 14));
    await page.getByRole('button', { name: `Show calls of ${alice.displayName}` }).click();
    await expect(page.getByTestId('calls-user-chip')).toContainText(alice.email);
    await expect(rows).toHaveCount(2);
    for (const row of await rows.all()) await expect(row).toContainText(alice.displayName);
    await expect(rows.nth(0)).toContainText('Failed');
    await expect(rows.nth(1)).toContainText('Succeeded');
    expect(page.url()).toContain(`user=${alice.id}`);

    // And by status.
    await page.getByLabel('Status').selectOption('FAILED');
    await page.getByRole('button', { name: 'Apply' }).click();
    await expect(rows).toHaveCount(1);
    await expect(rows.nth(0)).toContainText('Failed');
    await expect(rows.nth(0)).toContainText(alice.displayName);
    expect(page.url()).toContain('status=FAILED');

    // The address reproduces the view, in another tab.
    const link = page.url();
    const tab = await page.context().newPage();
    const tabProblems = watch(tab);
    await tab.goto(link);
    await expect(tab.locator('main tbody tr')).toHaveCount(1);
    await expect(tab.locator('main tbody tr').first()).toContainText('Failed');
    await expect(tab.getByTestId('calls-user-chip')).toContainText(alice.email);
    await expect(tab.getByLabel('Status')).toHaveValue('FAILED');
    noProblems(tabProblems);
    await tab.close();

    // The failed call's detail shows its error.
    await rows.nth(0).click();
    const detail = page.getByTestId('call-detail');
    await expect(detail.getByTestId('detail-error')).toContainText('BAD_USER_INPUT');
    await expect(detail.getByTestId('detail-attempts')).toContainText('mock / mock-fast');

    // Bob's only call: pick him instead; Enter on the row opens the detail.
    await page.getByRole('button', { name: 'Reset' }).click();
    await expect(page.getByTestId('call-detail')).toHaveCount(0);
    await page.getByLabel('User').fill(bob.displayName);
    await page.getByRole('button', { name: `Show calls of ${bob.displayName}` }).click();
    await expect(rows).toHaveCount(1);
    await expect(rows.nth(0)).toContainText('mock-echo');
    await expect(rows.nth(0)).toContainText(money(bobCall.costMicros, bobCall.currency, 'en-US'));
    await rows.nth(0).focus();
    await page.keyboard.press('Enter');
    await expect(page).toHaveURL(new RegExp(`#/calls/${bobCall.id}`));
    await expect(detail.getByTestId('detail-prompt')).toHaveText(String(bobCall.promptTokens));
    await expect(detail.getByTestId('detail-cached')).toHaveText(String(bobCall.cachedPromptTokens));
    await expect(detail.getByTestId('detail-completion')).toHaveText(String(bobCall.completionTokens));
    await expect(detail.getByTestId('detail-cost')).toHaveText(money(bobCall.costMicros, bobCall.currency, 'en-US'));
    // The price used, looked up by its id: the mock-echo demo price.
    const { prices } = await gql(request, `{ prices(provider: "mock", model: "mock-echo") { id inputPerMtok outputPerMtok currency } }`, {}, root.accessToken);
    const used = prices.find((p) => p.id === bobCall.priceId);
    expect(used).toBeTruthy();
    await expect(detail.getByTestId('detail-price')).toContainText(money(used.inputPerMtok, used.currency, 'en-US'));
    await expect(detail.getByTestId('detail-price')).toContainText(money(used.outputPerMtok, used.currency, 'en-US'));
    await expectAccessible(page, 'calls detail (en)');
    await screenshot(page, 'calls-en');
    noProblems(problems);
  });

  test('a call deep link opens its detail, in Chinese', async ({ page, request }) => {
    const problems = watch(page);
    const root = await apiLogin(request);
    const carol = await newUser(request, root.accessToken, 'carol');
    const token = (await apiLogin(request, carol)).accessToken;
    const call = (await gql(request, CHAT, { input: { provider: 'mock', model: 'mock-fast', message: '你好，世界' } }, token)).chat.aiCall;
    await signIn(page, 'zh', `#/calls/${call.id}?user=${carol.id}`);
    await expect(page.getByRole('heading', { level: 1, name: 'AI 调用' })).toBeVisible();
    const detail = page.getByTestId('call-detail');
    await expect(detail.getByRole('heading', { name: '调用详情' })).toBeVisible();
    await expect(detail.getByTestId('detail-prompt')).toHaveText(String(call.promptTokens));
    await expect(detail.getByTestId('detail-completion')).toHaveText(String(call.completionTokens));
    await expect(detail.getByTestId('detail-cost')).toHaveText(money(call.costMicros, call.currency, 'zh-CN'));
    await expect(page.locator('main tbody tr')).toHaveCount(1);
    await expect(page.locator('main tbody tr').first()).toContainText('成功');
    await expect(page.getByText('服务商', { exact: true }).first()).toBeVisible();
    await expectAccessible(page, 'calls (zh)');
    await screenshot(page, 'calls-zh');
    noProblems(problems);
  });
});
