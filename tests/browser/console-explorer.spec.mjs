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
import { money } from './support.mjs';

/** Signs the admin in through the page (in `lang`) and goes to `hash`. */
async function signIn(page, lang, hash, who = admin) {
  await openConsole(page, lang);
  await consoleLogin(page, who);
  // (The sign-in page has a main heading too: wait until the signed-in frame shows.)
  await expect(page.locator('header.topbar button')).toBeVisible();
  // The session is stored now: load the view afresh, as a pasted link would.
  await page.goto(`/console${hash}`);
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

  test('pages of 50 by cursor, and the time range', async ({ page, request }) => {
    const problems = watch(page);
    const root = await apiLogin(request);
    const gus = await newUser(request, root.accessToken, 'gus');
    const token = (await apiLogin(request, gus)).accessToken;
    const ids = [];
    for (let i = 0; i < 51; i += 1) {
      const data = await gql(request, CHAT, { input: { provider: 'mock', model: 'mock-fast', message: `n${i}` } }, token);
      ids.push(data.chat.aiCall.id);
    }
    await signIn(page, 'en', `#/calls?user=${gus.id}`);
    const rows = page.locator('main tbody tr');
    await expect(rows).toHaveCount(50);
    await expect(page.getByRole('button', { name: 'First page' })).toBeDisabled();
    await page.getByRole('button', { name: 'Next page' }).click();
    // The oldest call is alone on page 2.
    await expect(rows).toHaveCount(1);
    await expect(page.getByRole('button', { name: 'Next page' })).toBeDisabled();
    await rows.first().click();
    await expect(page).toHaveURL(new RegExp(`#/calls/${ids[0]}`));
    await page.getByRole('button', { name: 'First page' }).click();
    await expect(rows).toHaveCount(50);

    // A range that ends before the calls shows none; one around them shows them all again.
    const before = new Date(Date.now() - 2 * 86_400_000);
    const pad = (n) => String(n).padStart(2, '0');
    const local = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
    await page.getByLabel('To').fill(local(before));
    await page.getByRole('button', { name: 'Apply' }).click();
    await expect(rows).toHaveCount(1);
    await expect(rows.first()).toContainText('Nothing here yet.');
    expect(page.url()).toContain('to=');
    // A start after the end is refused before the server.
    await page.getByLabel('From').fill(local(new Date()));
    await page.getByRole('button', { name: 'Apply' }).click();
    await expect(page.getByRole('alert')).toContainText('The start must be before the end.');
    await page.getByLabel('From').fill(local(before));
    await page.getByLabel('To').fill('');
    await page.getByRole('button', { name: 'Apply' }).click();
    await expect(rows).toHaveCount(50);
    expect(page.url()).toContain('from=');
    // Model: gus only used mock-fast.
    await page.getByLabel('Model').fill('mock-echo');
    await page.getByRole('button', { name: 'Apply' }).click();
    await expect(rows).toHaveCount(1);
    await expect(rows.first()).toContainText('Nothing here yet.');
    await page.getByLabel('Provider').fill('mock');
    await page.getByLabel('Model').fill('mock-fast');
    await page.getByRole('button', { name: 'Apply' }).click();
    await expect(rows).toHaveCount(50);
    expect(page.url()).toContain('provider=mock');
    expect(page.url()).toContain('model=mock-fast');
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

const ME = `{ me { id email } }`;

/** The first error code a request with `token` gets, or null when it succeeds. */
async function errorCode(request, query, token, variables = {}) {
  const response = await request.post('/graphql', {
    data: { query, variables },
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
  });
  const body = await response.json();
  return body.errors?.[0]?.extensions?.code ?? null;
}

test.describe('Users', () => {
  test('create a user through the page (weak password refused), then they log in over the API', async ({ page, request }) => {
    const problems = watch(page);
    await signIn(page, 'en', '#/users');
    await expect(page.getByRole('heading', { level: 1, name: 'Users' })).toBeVisible();
    await expect(page.locator('main tbody')).toContainText(admin.email);
    await expectAccessible(page, 'users (en)');

    const suffix = Date.now().toString(36);
    const who = { email: `dana-${suffix}@example.com`, displayName: `Dana ${suffix}`, password: `Quiet-Violet-Harbor-${suffix}` };
    await page.getByRole('button', { name: 'New user' }).click();
    const dialog = page.getByRole('dialog', { name: 'Create a user' });
    await expect(dialog).toBeVisible();
    await dialog.getByLabel('Email').fill(who.email);
    await dialog.getByLabel('Display name').fill(who.displayName);
    await dialog.getByLabel('Password').fill('password123');
    await dialog.getByRole('button', { name: 'Create' }).click();
    // The server's reason is shown, with the code's meaning.
    await expect(dialog.getByRole('alert')).toContainText('too easy to guess');
    await expect(dialog.getByRole('alert')).toContainText('The input is not valid.');
    await expectAccessible(page, 'users create dialog (en)');
    await dialog.getByLabel('Password').fill(who.password);
    await dialog.getByRole('button', { name: 'Create' }).click();
    await expect(dialog).toBeHidden();
    await expect(page.getByRole('status').filter({ hasText: `Created ${who.email}` })).toBeVisible();

    // They can log in over the API, as a plain user.
    const session = await apiLogin(request, who);
    const me = await gql(request, `{ me { email displayName role } }`, {}, session.accessToken);
    expect(me.me).toEqual({ email: who.email, displayName: who.displayName, role: 'USER' });

    // The search finds them (and only them).
    await page.getByLabel('Search by email or name').fill(who.email);
    await page.getByRole('button', { name: 'Search' }).click();
    await expect(page.locator('main tbody tr')).toHaveCount(1);
    await expect(page.locator('main tbody tr').first()).toContainText(who.displayName);
    expect(page.url()).toContain(`search=${encodeURIComponent(who.email)}`);
    await screenshot(page, 'users-en');
    noProblems(problems);
  });

  test('disable a user through the page: their API requests are refused; enable them again', async ({ page, request }) => {
    const problems = watch(page);
    const root = await apiLogin(request);
    const erin = await newUser(request, root.accessToken, 'erin');
    const token = (await apiLogin(request, erin)).accessToken;
    expect(await errorCode(request, ME, token)).toBeNull();

    await signIn(page, 'en', `#/users?search=${encodeURIComponent(erin.email)}`);
    const row = page.locator('main tbody tr').filter({ hasText: erin.email });
    await expect(row).toContainText('Active');
    // No role change or disabling of yourself.
    await page.getByLabel('Search by email or name').fill(admin.email);
    await page.getByRole('button', { name: 'Search' }).click();
    const self = page.locator('main tbody tr').filter({ hasText: admin.email });
    await expect(self).toContainText('(you)');
    await expect(self.getByRole('button')).toHaveCount(0);
    await expect(self.getByRole('combobox')).toHaveCount(0);
    await page.getByLabel('Search by email or name').fill(erin.email);
    await page.getByRole('button', { name: 'Search' }).click();

    await page.getByRole('button', { name: `Disable ${erin.displayName}` }).click();
    const confirm = page.getByRole('dialog', { name: 'Confirm' });
    await expect(confirm).toContainText(`Disable ${erin.displayName}?`);
    // Cancelling changes nothing.
    await confirm.getByRole('button', { name: 'Cancel' }).click();
    await expect(confirm).toBeHidden();
    expect(await errorCode(request, ME, token)).toBeNull();
    await page.getByRole('button', { name: `Disable ${erin.displayName}` }).click();
    await confirm.getByRole('button', { name: 'Confirm' }).click();
    await expect(confirm).toBeHidden();
    await expect(row).toContainText('Disabled');
    expect(await errorCode(request, ME, token)).toBe('UNAUTHENTICATED');

    await page.getByRole('button', { name: `Enable ${erin.displayName}` }).click();
    await confirm.getByRole('button', { name: 'Confirm' }).click();
    await expect(row).toContainText('Active');
    const again = await apiLogin(request, erin);
    expect(await errorCode(request, ME, again.accessToken)).toBeNull();

    // The role, changed through the page, is read back over the API.
    await row.getByRole('combobox', { name: `Role of ${erin.displayName}` }).selectOption('ADMIN');
    await expect(page.getByRole('status').filter({ hasText: `${erin.displayName} is now: Administrator.` })).toBeVisible();
    const read = await gql(request, `query($id: ID!) { user(id: $id) { role } }`, { id: erin.id }, root.accessToken);
    expect(read.user.role).toBe('ADMIN');
    noProblems(problems);
  });

  test('rate limits and budgets set through the page (in Chinese) are read back over the API', async ({ page, request }) => {
    const problems = watch(page);
    const root = await apiLogin(request);
    const finn = await newUser(request, root.accessToken, 'finn');
    await signIn(page, 'zh', `#/users?search=${encodeURIComponent(finn.email)}`);
    await expect(page.getByRole('heading', { level: 1, name: '用户' })).toBeVisible();
    await page.getByRole('link', { name: `打开 ${finn.displayName}` }).click();
    const detail = page.getByTestId('user-detail');
    await expect(detail.getByRole('heading', { name: '速率限制' })).toBeVisible();
    await expect(detail.getByRole('heading', { name: '预算', exact: true })).toBeVisible();
    await expect(detail).toContainText('没有适用于该用户的预算。');

    // Rate limits: a bad value is refused before the server; then saved and read back.
    const limits = detail.getByTestId('rate-limits');
    await limits.getByLabel('每分钟请求数').fill('abc');
    await limits.getByRole('button', { name: '保存' }).click();
    await expect(limits.getByRole('alert')).toContainText('请输入不小于 1 的整数');
    await limits.getByLabel('每分钟请求数').fill('30');
    await limits.getByLabel('每分钟 Token 数').fill('5000');
    await limits.getByRole('button', { name: '保存' }).click();
    await expect(limits.getByRole('status')).toHaveText('已保存');
    const q = `query($u: ID) { rateLimits(userId: $u) { requestsPerMinute tokensPerMinute } }`;
    expect((await gql(request, q, { u: finn.id }, root.accessToken)).rateLimits).toEqual({ requestsPerMinute: 30, tokensPerMinute: 5000 });
    // Emptied: back to the default (120 a minute, no token limit).
    await limits.getByLabel('每分钟 Token 数').fill('');
    await limits.getByRole('button', { name: '保存' }).click();
    await expect.poll(async () => (await gql(request, q, { u: finn.id }, root.accessToken)).rateLimits).toEqual({
      requestsPerMinute: 30,
      tokensPerMinute: null,
    });

    // A budget: created with a decimal limit, edited, deleted.
    const budgets = detail.getByTestId('budgets');
    await budgets.getByLabel('周期').selectOption('MONTH');
    await budgets.getByLabel('额度（金额）').fill('12.5');
    await budgets.getByRole('button', { name: '创建' }).click();
    await expect(budgets.getByTestId('budget')).toHaveCount(1);
    const bq = `query($u: ID) { budgets(userId: $u) { id scope userId period currency limitMicros } }`;
    let read = (await gql(request, bq, { u: finn.id }, root.accessToken)).budgets;
    expect(read).toHaveLength(1);
    expect(read[0]).toMatchObject({ scope: 'USER', userId: finn.id, period: 'MONTH', currency: 'CNY', limitMicros: '12500000' });
    await expect(budgets.getByTestId('budget-limit')).toHaveText(money('12500000', 'CNY', 'zh-CN'));
    await expectAccessible(page, 'users detail (zh)');
    await screenshot(page, 'users-zh');

    await budgets.getByRole('button', { name: '编辑' }).click();
    await budgets.getByLabel('每月预算的新额度').fill('20.000001');
    await budgets.getByRole('button', { name: '保存' }).click();
    await expect(budgets.getByTestId('budget-limit')).toHaveText(money('20000001', 'CNY', 'zh-CN'));
    read = (await gql(request, bq, { u: finn.id }, root.accessToken)).budgets;
    expect(read[0].limitMicros).toBe('20000001');

    await budgets.getByRole('button', { name: '删除每月预算' }).click();
    const confirm = page.getByRole('dialog', { name: '确认' });
    await expect(confirm).toContainText('确定删除每月预算吗');
    await confirm.getByRole('button', { name: '确认' }).click();
    await expect(budgets.getByTestId('budget')).toHaveCount(0);
    expect((await gql(request, bq, { u: finn.id }, root.accessToken)).budgets).toEqual([]);
    noProblems(problems);
  });
});

test.describe('Plugins & models', () => {
  test('the mock plugin is LOADED, schemas and models show; a price added through the page is read back', async ({ page, request }) => {
    const problems = watch(page);
    const root = await apiLogin(request);
    const { plugins } = await gql(request, `{ plugins { name instance status file reason } }`, {}, root.accessToken);
    const mock = plugins.find((p) => p.instance === 'mock');
    expect(mock.status).toBe('LOADED');

    await signIn(page, 'en', '#/plugins');
    await expect(page.getByRole('heading', { level: 1, name: 'Plugins & models' })).toBeVisible();
    const pluginRows = page.locator('section[aria-labelledby=plugins-title] tbody tr');
    await expect(pluginRows).toHaveCount(plugins.length);
    const mockRow = pluginRows.filter({ hasText: mock.file });
    await expect(mockRow).toContainText('Loaded');
    await expect(mockRow).toContainText('Mock');
    await expect(mockRow).toContainText('AI provider');
    // A plugin that is not loaded says why.
    const off = plugins.find((p) => p.status !== 'LOADED');
    if (off) await expect(pluginRows.filter({ hasText: off.file })).toContainText(off.reason);
    // The settings schema, per row.
    await mockRow.locator('summary').filter({ hasText: 'Settings schema of mock' }).click();
    await expect(mockRow.locator('pre')).toContainText('"delay_ms"');
    const models = page.locator('section[aria-labelledby=models-title] tbody tr');
    await expect(models.filter({ hasText: 'mock-echo' })).toContainText('32,768');

    // Add a price in force since June.
    const form = page.getByTestId('add-price');
    await form.getByLabel('Provider').fill('mock');
    await form.getByLabel('Model').fill('mock-fast');
    await form.getByLabel('Input', { exact: true }).fill('0.75');
    await form.getByLabel('Cached input').fill('0.1x');
    await form.getByLabel('Output').fill('1.5');
    await form.getByLabel('In force from').fill('2026-06-01T00:00');
    await form.getByLabel('Note').fill('browser test price');
    await form.getByRole('button', { name: 'Add a price' }).click();
    await expect(form.getByRole('alert')).toContainText('Amounts are decimals');
    await form.getByLabel('Cached input').fill('0.125');
    await form.getByRole('button', { name: 'Add a price' }).click();
    await expect(page.getByRole('status').filter({ hasText: 'Price added for mock / mock-fast.' })).toBeVisible();

    const { prices } = await gql(
      request,
      `{ prices(provider: "mock", model: "mock-fast") { id inputPerMtok cachedInputPerMtok outputPerMtok currency effectiveFrom note } }`,
      {},
      root.accessToken,
    );
    const added = prices.find((p) => p.note === 'browser test price');
    expect(added).toMatchObject({ inputPerMtok: '750000', cachedInputPerMtok: '125000', outputPerMtok: '1500000', currency: 'CNY' });
    expect(Date.parse(added.effectiveFrom)).toBe(new Date('2026-06-01T00:00').getTime());
    // Shown first in its group, marked in force; the demo price under it superseded.
    const group = page.getByTestId('price-group').filter({ hasText: 'mock-fast' });
    const rows = group.locator('tbody tr');
    await expect(rows.first()).toContainText('browser test price');
    await expect(rows.first()).toContainText('In force');
    await expect(rows.first()).toContainText(money('750000', 'CNY', 'en-US'));
    await expect(rows.nth(1)).toContainText('Superseded');
    await expect(group.getByText('In force', { exact: true })).toHaveCount(1);
    await expectAccessible(page, 'plugins (en)');
    await screenshot(page, 'plugins-en');
    noProblems(problems);
  });

  test('the page in Chinese', async ({ page, request }) => {
    const problems = watch(page);
    await signIn(page, 'zh', '#/plugins');
    await expect(page.getByRole('heading', { level: 1, name: '插件与模型' })).toBeVisible();
    await expect(page.getByRole('heading', { level: 2, name: '价格' })).toBeVisible();
    const mockRow = page.locator('section[aria-labelledby=plugins-title] tbody tr').filter({ hasText: 'libcloudbase_plugin_mock' });
    await expect(mockRow).toContainText('已加载');
    await expect(mockRow).toContainText('AI 服务商');
    const form = page.getByTestId('add-price');
    await form.getByLabel('服务商').fill('mock');
    await form.getByLabel('模型').fill('mock-echo');
    await form.getByLabel('输入', { exact: true }).fill('1');
    await form.getByLabel('缓存输入').fill('0.5');
    await form.getByLabel('输出').fill('2');
    await form.getByLabel('币种').fill('C1');
    await form.getByLabel('生效时间').fill('2026-06-01T00:00');
    await form.getByRole('button', { name: '添加价格' }).click();
    await expect(form.getByRole('alert')).toContainText('请输入三位字母的币种代码');
    // Refused before the server: no price was added.
    const root = await apiLogin(request);
    const { prices } = await gql(request, `{ prices(provider: "mock", model: "mock-echo") { id } }`, {}, root.accessToken);
    expect(prices).toHaveLength(1);
    await expectAccessible(page, 'plugins (zh)');
    await screenshot(page, 'plugins-zh');
    noProblems(problems);
  });
});
