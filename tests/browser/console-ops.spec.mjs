// The console's operations pages (alerts, logs, audit) and the user's own pages (usage, my
// alerts, profile), each in English and Chinese, against the real server: data made over the API
// shows on the page, and what the page does is read back over the API.
import { test, expect } from '@playwright/test';
import { admin, apiLogin, consoleLogin, expectAccessible, gql, newUser, openConsole, screenshot, watch } from './support.mjs';
import { money } from './support.mjs';

/** Switches the console's language with the top bar's selector. */
async function switchLang(page, lang) {
  await page.getByLabel(lang === 'zh' ? 'Language' : '语言', { exact: true }).selectOption(lang);
}

/** Signs in through the page, then opens a view. */
async function open(page, who, hash, lang = 'en') {
  await openConsole(page, lang, hash);
  await consoleLogin(page, who);
  // Signed in: the shell is up (the login page has gone to the home view).
  await expect(page.locator('header.topbar')).toBeVisible();
  await page.evaluate((h) => {
    location.hash = h;
  }, hash);
  await expect(page).toHaveURL(new RegExp(`${hash.replace(/[?]/g, '\\?')}$`));
}

function expectClean(problems) {
  const seen = problems();
  expect(seen.filter((p) => /Content Security Policy|Refused to/.test(p))).toEqual([]);
  expect(seen).toEqual([]);
}

test('alerts: an admin creates a rule in the dialog, sends a test notification and disables the rule', async ({ page, request }) => {
  const problems = watch(page);
  const { accessToken: token } = await apiLogin(request);
  const { plugins } = await gql(request, '{ plugins { instance kind status } }', {}, token);
  const webhook = plugins.find((p) => p.instance === 'webhook' && p.kind === 'NOTIFIER' && p.status === 'LOADED');
  expect(webhook, 'the browser tests configure a `webhook` notifier instance (notifiers.toml)').toBeTruthy();

  await open(page, admin, '#/alerts');
  await expect(page.getByRole('heading', { name: 'Alert rules' })).toBeVisible();
  const name = `Errors ${Date.now().toString(36)}`;
  await page.getByRole('button', { name: 'New rule' }).click();
  const dialog = page.getByRole('dialog');
  await expect(dialog.getByRole('heading', { name: 'New rule' })).toBeVisible();
  // Validation before the server: no target picked.
  await dialog.getByLabel('Name').fill(name);
  await dialog.getByLabel('What it watches').selectOption('ERROR_RATE');
  await dialog.getByLabel('Threshold (%)').fill('25');
  await dialog.getByLabel('Window (seconds)').fill('120');
  await dialog.getByRole('button', { name: 'Create' }).click();
  await expect(dialog.getByRole('alert')).toContainText('Pick at least one notifier');
  await dialog.getByRole('checkbox', { name: 'webhook' }).check();
  await dialog.getByLabel('Cooldown (seconds)').fill('300');
  await dialog.getByRole('button', { name: 'Create' }).click();
  await expect(dialog).toBeHidden();
  await expect(page.getByRole('cell', { name, exact: true })).toBeVisible();

  const rules = async () =>
    (
      await gql(
        request,
        '{ alertRules { id name kind enabled cooldownSecs targets { channel to } params { thresholdPercent windowSecs minCalls } } }',
        {},
        token,
      )
    ).alertRules;
  const rule = (await rules()).find((r) => r.name === name);
  expect(rule).toMatchObject({
    kind: 'ERROR_RATE',
    enabled: true,
    cooldownSecs: 300,
    targets: [{ channel: 'webhook', to: null }],
    // minCalls left empty: the server's default.
    params: { thresholdPercent: 25, windowSecs: 120, minCalls: 5 },
  });

  // Edit: the kind is fixed, the threshold changes.
  await page.getByRole('button', { name: `Edit ${name}` }).click();
  await expect(dialog.getByLabel('What it watches')).toBeDisabled();
  await dialog.getByLabel('Threshold (%)').fill('40');
  await dialog.getByRole('button', { name: 'Save' }).click();
  await expect(dialog).toBeHidden();
  await expect.poll(async () => (await rules()).find((r) => r.id === rule.id).params.thresholdPercent).toBe(40);

  await page.getByRole('button', { name: `Disable ${name}` }).click();
  await expect(page.getByRole('button', { name: `Enable ${name}` })).toBeVisible();
  expect((await rules()).find((r) => r.id === rule.id).enabled).toBe(false);

  // A test message to the webhook instance, which points at a closed port.
  const test = page.getByRole('region', { name: 'Send a test notification' });
  await test.getByLabel('Notifier').selectOption('webhook');
  await test.getByRole('button', { name: 'Send' }).click();
  await expect(test.getByRole('status')).toContainText('Not delivered');
  await expect(test.getByRole('status')).toContainText('webhook');

  await expectAccessible(page, 'alerts (en)');
  await screenshot(page, 'alerts-en');

  await switchLang(page, 'zh');
  await expect(page.getByRole('heading', { name: '告警规则' })).toBeVisible();
  await expect(page.getByRole('cell', { name: '错误率' }).first()).toBeVisible();
  await expectAccessible(page, 'alerts (zh)');
  await screenshot(page, 'alerts-zh');

  // Delete, confirmed.
  page.once('dialog', (d) => void d.accept());
  await page.getByRole('button', { name: `删除 ${name}` }).click();
  await expect(page.getByRole('cell', { name, exact: true })).toBeHidden();
  expect((await rules()).find((r) => r.id === rule.id)).toBeUndefined();
  expectClean(problems);
});

test('logs: a failed login shows, the text filter narrows to it, and a row opens its fields', async ({ page, request }) => {
  const problems = watch(page);
  const { accessToken: token } = await apiLogin(request);
  // Two different events: an account made by the admin, and a failed login.
  await newUser(request, token, 'logs');
  const response = await request.post('/graphql', {
    data: { query: 'mutation($input: LoginInput!) { login(input: $input) { accessToken } }', variables: { input: { email: 'nobody@example.com', password: 'not-the-password' } } },
  });
  expect((await response.json()).errors[0].extensions.code).toBe('UNAUTHENTICATED');

  await open(page, admin, '#/logs');
  await expect(page.getByRole('heading', { name: 'Logs', level: 1 })).toBeVisible();
  const table = page.getByRole('table', { name: 'Logs' });
  await expect(table.getByRole('cell', { name: 'login failed' }).first()).toBeVisible();
  await expect(table.getByRole('cell', { name: 'user created by an admin' }).first()).toBeVisible();

  await page.getByLabel('Message contains').fill('LOGIN FAILED');
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page).toHaveURL(/text=LOGIN\+FAILED/);
  await expect(table.getByRole('cell', { name: 'user created by an admin' })).toHaveCount(0);
  await expect(table.getByRole('cell', { name: 'login failed' }).first()).toBeVisible();

  await table.getByRole('cell', { name: 'login failed' }).first().click();
  const detail = page.getByRole('complementary', { name: 'Entry' });
  await expect(detail).toContainText('cloudbase::event::auth');
  await expect(detail).toContainText('client_ip');
  await expect(detail.locator('dd code').last()).toHaveText(/^[0-9a-f-]{36}$/);

  // Live tail: a new failed login appears on top without a reload.
  await page.getByLabel('Live tail').check();
  await expect(page.getByRole('status').filter({ hasText: 'Live' })).toBeVisible();
  const before = await table.getByRole('cell', { name: 'login failed' }).count();
  await page.waitForTimeout(300);
  await request.post('/graphql', {
    data: { query: 'mutation($input: LoginInput!) { login(input: $input) { accessToken } }', variables: { input: { email: 'nobody2@example.com', password: 'still-not-it' } } },
  });
  await expect(table.getByRole('cell', { name: 'login failed' })).toHaveCount(before + 1);
  await expect(page.getByText('1 new since the tail started')).toBeVisible();

  await page.getByLabel('Message contains').fill('no such message anywhere');
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(table.getByRole('cell', { name: 'Nothing here yet.' })).toBeVisible();

  await page.getByRole('button', { name: 'Clear' }).click();
  await expect(table.getByRole('cell', { name: 'user created by an admin' }).first()).toBeVisible();
  await expectAccessible(page, 'logs (en)');
  await screenshot(page, 'logs-en');
  await switchLang(page, 'zh');
  await expect(page.getByRole('heading', { name: '日志', level: 1 })).toBeVisible();
  await expect(page.getByLabel('消息包含')).toBeVisible();
  await expectAccessible(page, 'logs (zh)');
  await screenshot(page, 'logs-zh');
  expectClean(problems);
});

test('audit: a mutation made over the API is listed with its redacted arguments, and the chain status shows', async ({ page, request }) => {
  const problems = watch(page);
  const { accessToken: token } = await apiLogin(request);
  const user = await newUser(request, token, 'audit');
  await gql(
    request,
    'mutation($id: ID!) { setRateLimits(userId: $id, requestsPerMinute: 77, tokensPerMinute: 7777) { userId } }',
    { id: user.id },
    token,
  );

  await open(page, admin, '#/audit');
  await expect(page.getByRole('heading', { name: 'Hash chain' })).toBeVisible();
  const table = page.getByRole('table', { name: 'Audit' });
  // The newest setRateLimits row is this test's (the detail below shows its arguments).
  const row = table.getByRole('row').filter({ hasText: 'setRateLimits' }).first();
  await expect(row).toBeVisible();
  await expect(row).toContainText('OK');
  await expect(row).toContainText('127.0.0.1');

  // Filter by field (kept in the address).
  await page.getByLabel('Mutation').fill('createUser');
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page).toHaveURL(/field=createUser/);
  await expect(table.getByRole('row').filter({ hasText: 'setRateLimits' })).toHaveCount(0);
  const created = table.getByRole('row').filter({ hasText: 'createUser' });
  await expect(created.first()).toBeVisible();
  await created.first().click();
  const detail = page.getByRole('dialog', { name: 'Audit row' });
  await expect(detail).toContainText(user.email);
  await expect(detail).toContainText('[REDACTED]');
  await expect(detail).not.toContainText(user.password);
  await detail.getByRole('button', { name: 'Close' }).click();
  await expect(detail).toBeHidden();

  await page.getByLabel('Mutation').fill('setRateLimits');
  await page.getByRole('button', { name: 'Apply' }).click();
  // Keyboard: a row opens with Enter, the dialog closes with Escape.
  await table.getByRole('row').filter({ hasText: 'setRateLimits' }).first().focus();
  await page.keyboard.press('Enter');
  await expect(detail).toContainText('"requestsPerMinute": 77');
  await expect(detail).toContainText(user.id);
  await expect(detail).toContainText(/Hash\s*[0-9a-f]{64}/);
  await page.keyboard.press('Escape');
  await expect(detail).toBeHidden();

  // The chain links rows moments after they are written: once linked, the row shows it, with its hash.
  await expect
    .poll(async () => (await gql(request, '{ auditChain { unchainedRows } }', {}, token)).auditChain.unchainedRows, { timeout: 10_000 })
    .toBe(0);
  await page.getByRole('button', { name: 'Refresh' }).click();
  await expect(table.getByRole('row').filter({ hasText: 'setRateLimits' }).first().getByText('Chained', { exact: true })).toBeVisible();
  const chain = (await gql(request, '{ auditChain { chainedRows headHash } }', {}, token)).auditChain;
  expect(chain.chainedRows).toBeGreaterThan(2);
  await expect(page.getByText(chain.headHash)).toBeVisible();

  // Verify chain: the server re-checks every linked row; the page shows how far and the verdict.
  await page.getByRole('button', { name: 'Verify chain' }).click();
  const verdict = page.locator('.verdict');
  await expect(verdict).toHaveText(/^Intact: \d+ rows checked, every hash matches\.$/);
  const checked = Number((await verdict.textContent()).match(/\d+/)[0]);
  const head = (await gql(request, '{ verifyAuditChain { headSeq intact done } }', {}, token)).verifyAuditChain;
  expect(head.intact).toBe(true);
  expect(checked).toBeGreaterThanOrEqual(chain.chainedRows);
  expect(checked).toBeLessThanOrEqual(head.headSeq);
  await expect(page.getByText(new RegExp(`^Checked up to row \\d+ of \\d+$`))).toBeVisible();
  await expect(page.locator('progress')).toHaveAttribute('value', /\d+/);
  await expectAccessible(page, 'audit (en)');
  await screenshot(page, 'audit-en');
  await switchLang(page, 'zh');
  await expect(page.getByRole('heading', { name: '哈希链' })).toBeVisible();
  await expect(page.getByText('已入链记录')).toBeVisible();
  await expect(page.getByRole('button', { name: '校验哈希链' })).toBeVisible();
  await expect(page.locator('.verdict')).toHaveText(/^完好：已校验 \d+ 条，哈希全部一致。$/);
  await expectAccessible(page, 'audit (zh)');
  await screenshot(page, 'audit-zh');
  expectClean(problems);
});

/** Today in the server's budget time zone (the default, Asia/Shanghai), as the API dates calls. */
function serverDay(offsetDays = 0) {
  const d = new Date(Date.now() + offsetDays * 86_400_000);
  return new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Shanghai', year: 'numeric', month: '2-digit', day: '2-digit' }).format(d);
}

test('usage: a chat made over the API shows by model and in the statement with its exact cost, and the budget meter', async ({ page, request }) => {
  const problems = watch(page);
  const { accessToken: adminToken } = await apiLogin(request);
  const user = await newUser(request, adminToken, 'usage');
  const { accessToken: token } = await apiLogin(request, user);
  await gql(
    request,
    'mutation($input: CreateBudgetInput!) { createBudget(input: $input) { id } }',
    { input: { userId: user.id, period: 'MONTH', currency: 'CNY', limitMicros: '5000000' } },
    adminToken,
  );
  const { chat } = await gql(
    request,
    'mutation($input: ChatInput!) { chat(input: $input) { aiCall { costMicros currency promptTokens completionTokens } } }',
    { input: { provider: 'mock', model: 'mock-echo', message: 'How much does this cost?' } },
    token,
  );
  const { costMicros, currency } = chat.aiCall;
  expect(BigInt(costMicros)).toBeGreaterThan(0n);
  expect(currency).toBe('CNY');

  const month = serverDay().slice(0, 7);
  await open(page, user, `#/usage?from=${serverDay(-3)}&to=${serverDay(1)}&month=${month}`);
  await expect(page.getByRole('heading', { name: 'By model' })).toBeVisible();
  const cost = money(costMicros, currency, 'en-US');
  const byModel = page.getByRole('region', { name: 'By model' });
  const row = byModel.getByRole('row').filter({ hasText: 'mock-echo' });
  await expect(row).toContainText(cost);
  await expect(row.getByRole('cell').nth(1)).toHaveText('1');
  await expect(page.locator('.tile').filter({ hasText: 'Cost in range' })).toContainText(cost);

  const statement = page.getByRole('region', { name: 'Monthly statement' });
  await expect(statement.getByRole('row').filter({ hasText: 'mock-echo' })).toContainText(cost);
  await expect(statement.getByRole('table', { name: 'Totals' }).getByRole('row').filter({ hasText: currency })).toContainText(cost);

  const budgets = page.getByRole('region', { name: 'My budgets' });
  await expect(budgets).toContainText(`${cost} of ${money('5000000', currency, 'en-US')}`);
  await expect(budgets.getByRole('status').filter({ hasText: 'Live' })).toBeVisible();
  // Another call settles: the meter moves without a reload.
  const second = await gql(
    request,
    'mutation($input: ChatInput!) { chat(input: $input) { aiCall { costMicros } } }',
    { input: { provider: 'mock', model: 'mock-echo', message: 'And again?' } },
    token,
  );
  const both = (BigInt(costMicros) + BigInt(second.chat.aiCall.costMicros)).toString();
  await expect(budgets).toContainText(`${money(both, currency, 'en-US')} of`);
  // ...and so do the reports.
  await expect(row).toContainText(money(both, currency, 'en-US'));
  await expect(row.getByRole('cell').nth(1)).toHaveText('2');
  await expect(statement.getByRole('table', { name: 'Totals' }).getByRole('row').filter({ hasText: currency })).toContainText(money(both, currency, 'en-US'));

  await expect(page.getByRole('region', { name: 'My rate limits' })).toContainText('120');
  await expectAccessible(page, 'usage (en)');
  await screenshot(page, 'usage-en');
  await switchLang(page, 'zh');
  await expect(page.getByRole('heading', { name: '按模型' })).toBeVisible();
  await expect(page.getByRole('heading', { name: '月度账单' })).toBeVisible();
  await expectAccessible(page, 'usage (zh)');
  await screenshot(page, 'usage-zh');
  expectClean(problems);
});

test('my alerts: a user opts in to a budget alert by email, turns it off and deletes it', async ({ page, request }) => {
  const problems = watch(page);
  const { accessToken: adminToken } = await apiLogin(request);
  const user = await newUser(request, adminToken, 'alerts');
  const { accessToken: token } = await apiLogin(request, user);
  const mine = async () => (await gql(request, '{ alertRules { id kind enabled cooldownSecs params { thresholdPercent } targets { channel to } } }', {}, token)).alertRules;

  await open(page, user, '#/my-alerts');
  await expect(page.getByRole('heading', { name: 'Alert me about my budgets' })).toBeVisible();
  const form = page.getByRole('region', { name: 'Alert me about my budgets' });
  await form.getByLabel('Threshold (% of the limit)').fill('150');
  await form.getByRole('button', { name: 'Create' }).click();
  await expect(form.getByRole('alert')).toContainText('1 to 100');
  await form.getByLabel('Threshold (% of the limit)').fill('75');
  // A webhook must be public: the server refuses a loopback address, and the page says why.
  await form.getByLabel('How').selectOption('WEBHOOK');
  await form.getByLabel('Webhook URL (http or https)').fill('http://127.0.0.1:9/hook');
  await form.getByRole('button', { name: 'Create' }).click();
  await expect(form.getByRole('alert')).toContainText('BAD_USER_INPUT');
  expect(await mine()).toEqual([]);

  await form.getByLabel('How').selectOption('EMAIL');
  await form.getByLabel('Email address').fill('me-alerts@example.com');
  await form.getByLabel('Cooldown (seconds)').fill('900');
  await form.getByRole('button', { name: 'Create' }).click();
  await expect(form.getByRole('status')).toHaveText('Alert created.');
  const rules = await mine();
  expect(rules).toHaveLength(1);
  expect(rules[0]).toMatchObject({
    kind: 'BUDGET_THRESHOLD',
    enabled: true,
    cooldownSecs: 900,
    params: { thresholdPercent: 75 },
    targets: [{ channel: 'email', to: 'me-alerts@example.com' }],
  });
  const table = page.getByRole('region', { name: 'My rules' });
  await expect(table).toContainText('email → me-alerts@example.com');

  // The rule fires: a budget of 100 micro-CNY, and two small calls spend more than 75% of it. The
  // alert arrives live (no reload), with its delivery to the address given (which fails: nothing
  // listens there).
  await gql(
    request,
    'mutation($input: CreateBudgetInput!) { createBudget(input: $input) { id } }',
    { input: { userId: user.id, period: 'MONTH', currency: 'CNY', limitMicros: '100' } },
    adminToken,
  );
  let spent = 0n;
  while (spent < 75n) {
    const { chat } = await gql(
      request,
      'mutation($input: ChatInput!) { chat(input: $input) { aiCall { costMicros } } }',
      { input: { provider: 'mock', model: 'mock-echo', message: 'hi', maxTokens: 8 } },
      token,
    );
    spent += BigInt(chat.aiCall.costMicros);
  }
  const sent = page.getByRole('region', { name: 'Alerts sent to me' });
  const fired = sent.getByRole('row').filter({ hasText: 'My budgets at 75%' });
  await expect(fired).toBeVisible({ timeout: 10_000 });
  await expect(fired).toContainText('me-alerts@example.com');
  await expect(fired).toContainText('Firing · Warning');
  // The delivery's attempts and last error show once the list is read again.
  await page.reload();
  await expect(fired).toContainText(/Connection refused|SMTP/, { timeout: 10_000 });
  await expect(fired).toContainText(/\d+ attempts?/);

  await table.getByRole('button', { name: /^Disable / }).click();
  await expect(table.getByRole('button', { name: /^Enable / })).toBeVisible();
  expect((await mine())[0].enabled).toBe(false);

  await expectAccessible(page, 'my alerts (en)');
  await screenshot(page, 'my-alerts-en');
  await switchLang(page, 'zh');
  await expect(page.getByRole('heading', { name: '发给我的告警' })).toBeVisible();
  await expect(page.getByRole('region', { name: '发给我的告警' })).toContainText('触发中 · 警告');
  await expectAccessible(page, 'my alerts (zh)');
  await screenshot(page, 'my-alerts-zh');

  const zhTable = page.getByRole('region', { name: '我的规则' });
  page.once('dialog', (d) => void d.accept());
  await zhTable.getByRole('button', { name: /^删除 / }).click();
  await expect(zhTable.getByRole('cell', { name: '暂无数据。' })).toBeVisible();
  expect(await mine()).toEqual([]);
  expectClean(problems);
});

test('profile: a user changes their name, language and password; the new password logs in', async ({ page, request }) => {
  const problems = watch(page);
  const { accessToken: adminToken } = await apiLogin(request);
  const user = await newUser(request, adminToken, 'profile');
  const { accessToken: token } = await apiLogin(request, user);
  await gql(request, 'mutation($input: UpdateProfileInput!) { updateProfile(input: $input) { id } }', { input: { settings: { theme: 'dark' } } }, token);

  await open(page, user, '#/profile');
  await expect(page.getByRole('heading', { name: 'Profile details' })).toBeVisible();
  await expect(page.getByText(user.email)).toBeVisible();
  await expectAccessible(page, 'profile (en)');
  await screenshot(page, 'profile-en');

  await page.getByLabel('Display name').fill('Ada Renamed');
  await page.getByLabel('Preferred language').selectOption('zh');
  await page.getByRole('button', { name: 'Save' }).click();
  // Saved, and the console switched to Chinese.
  await expect(page.getByRole('status').filter({ hasText: '资料已保存。' })).toBeVisible();
  await expect(page.getByRole('heading', { name: '个人资料', level: 1 })).toBeVisible();
  await expect(page.locator('.whoami')).toContainText('Ada Renamed');
  const { me } = await gql(request, '{ me { displayName settings } }', {}, token);
  expect(me).toEqual({ displayName: 'Ada Renamed', settings: { theme: 'dark', lang: 'zh' } });
  await expectAccessible(page, 'profile (zh)');
  await screenshot(page, 'profile-zh');

  // A wrong current password: the server's BAD_USER_INPUT, said plainly; nothing changes.
  await page.getByLabel('当前密码').fill('not-my-password');
  await page.getByLabel('新密码', { exact: true }).fill('Brand-New-Password-42');
  await page.getByLabel('再次输入新密码').fill('Brand-New-Password-42');
  await page.getByRole('button', { name: '修改密码' }).click();
  await expect(page.getByText('当前密码不正确。')).toBeVisible();
  await expect(page.getByRole('alert').filter({ hasText: 'BAD_USER_INPUT' })).toBeVisible();

  await page.getByLabel('当前密码').fill(user.password);
  await page.getByRole('button', { name: '修改密码' }).click();
  await expect(page.getByRole('status').filter({ hasText: '密码已修改' })).toBeVisible();

  const relogin = await apiLogin(request, { email: user.email, password: 'Brand-New-Password-42' });
  expect(relogin.accessToken).toBeTruthy();
  const old = await request.post('/graphql', {
    data: { query: 'mutation($input: LoginInput!) { login(input: $input) { accessToken } }', variables: { input: { email: user.email, password: user.password } } },
  });
  expect((await old.json()).errors[0].extensions.code).toBe('UNAUTHENTICATED');
  // The page's own session goes on.
  await page.reload();
  await expect(page.getByRole('heading', { name: '个人资料', level: 1 })).toBeVisible();
  expectClean(problems);
});
