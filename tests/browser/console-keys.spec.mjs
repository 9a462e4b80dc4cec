// The console's API keys page against the real server: a user makes a key on the page, reads its
// secret there (once), and the secret works at the OpenAI-compatible `/v1` door within the key's
// model list; the page then shows the key's last use; rotating shows a new secret that works while
// the old one is refused; revoking refuses the new one too. An admin sees everyone's keys, revokes
// another user's key, and finds a key's calls in the AI calls explorer. In English and Chinese,
// with axe-core checks.
import { test, expect } from '@playwright/test';
import { admin, apiLogin, baseURL, consoleLogin, expectAccessible, gql, newUser, openConsole, screenshot, watch } from './support.mjs';

/** Signs in through the page (in `lang`) and opens `hash` afresh, as a pasted link would. */
async function signIn(page, who, hash, lang = 'en') {
  await openConsole(page, lang);
  await consoleLogin(page, who);
  await expect(page.locator('header.topbar button')).toBeVisible();
  await page.goto(`/console${hash}`);
}

function noProblems(problems) {
  expect(problems().filter((p) => /Content Security Policy|Refused to/.test(p)), 'CSP').toEqual([]);
  expect(problems(), 'console errors').toEqual([]);
}

/** A chat completion at `/v1` with a key; returns the response. */
function complete(request, secret, model, content = 'hi') {
  return request.post('/v1/chat/completions', {
    headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
    data: { model, messages: [{ role: 'user', content }] },
  });
}

const KEYS = `query($userId: ID, $all: Boolean!) { apiKeys(userId: $userId, all: $all) {
  id userId name prefix scope allowedModels state requestsPerMinute tokensPerMinute expiresAt revokedAt lastUsedAt lastUsedIp
  budget { period currency limitMicros } } }`;

test('a user creates a key on the page, uses it at /v1 within its models, edits, rotates and revokes it', async ({ page, request, context }) => {
  const problems = watch(page);
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: baseURL });
  const root = await apiLogin(request);
  const user = await newUser(request, root.accessToken, 'keys');
  const userToken = (await apiLogin(request, user)).accessToken;
  const keysOf = async () => (await gql(request, KEYS, { all: false }, userToken)).apiKeys;

  await signIn(page, user, '#/keys');
  await expect(page.getByRole('heading', { name: 'API keys', level: 1 })).toBeVisible();
  await expect(page.getByRole('link', { name: 'API keys' })).toHaveAttribute('aria-current', 'page');
  const table = page.getByRole('table', { name: 'API keys, working ones first' });
  await expect(table.getByRole('cell', { name: 'Nothing here yet.' })).toBeVisible();

  // Create: the name is required; the key is limited to mock/mock-fast, with limits and a budget.
  await page.getByRole('button', { name: 'Create key' }).click();
  const dialog = page.getByRole('dialog', { name: 'Create an API key' });
  await expect(dialog.getByRole('radio', { name: /^Chat/ })).toBeChecked();
  await dialog.getByRole('button', { name: 'Create' }).click();
  await expect(dialog.getByRole('alert')).toContainText('Enter a name');
  const name = `Billing app ${Date.now().toString(36)}`;
  await dialog.getByLabel('Name').fill(name);
  await dialog.getByRole('checkbox', { name: 'mock/mock-fast' }).check();
  await dialog.getByLabel('Calls per minute').fill('120');
  await dialog.getByRole('checkbox', { name: 'Give this key a spend limit' }).check();
  await dialog.getByLabel('Limit (amount)').fill('12.5');
  await expectAccessible(page, 'api keys create dialog (en)');
  await dialog.getByRole('button', { name: 'Create' }).click();
  await expect(dialog).toBeHidden();

  // The secret, once, with the examples.
  const panel = page.getByTestId('key-secret');
  await expect(panel).toContainText('you will not see it again');
  const secret = await panel.getByLabel(`Secret of ${name}`).inputValue();
  expect(secret).toMatch(/^cb-[A-Za-z0-9_-]{20,}$/);
  await expect(panel.getByRole('region', { name: 'Python (pip install openai)' })).toContainText(
    `OpenAI(base_url="${baseURL}/v1", api_key="${secret}")`,
  );
  await expect(panel.getByRole('region', { name: 'Python (pip install openai)' })).toContainText('model="mock/mock-fast"');
  await expect(panel.getByRole('region', { name: 'curl' })).toContainText(`Authorization: Bearer ${secret}`);
  await panel.getByRole('button', { name: 'Copy the secret' }).click();
  await expect(panel.getByText('Copied.')).toBeVisible();
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(secret);
  await expectAccessible(page, 'api keys secret (en)');
  await screenshot(page, 'keys-secret-en');

  const [made] = await keysOf();
  expect(made).toMatchObject({
    name,
    scope: 'CHAT',
    allowedModels: ['mock/mock-fast'],
    state: 'ACTIVE',
    requestsPerMinute: 120,
    tokensPerMinute: null,
    expiresAt: null,
    budget: { period: 'MONTH', currency: 'CNY', limitMicros: '12500000' },
  });
  expect(secret.startsWith(made.prefix)).toBe(true);
  await expect(table.getByRole('row').filter({ hasText: name })).toContainText(`${made.prefix}…`);

  // The secret works at /v1 for the model it may call, and not for another one.
  const ok = await complete(request, secret, 'mock/mock-fast');
  expect(ok.status()).toBe(200);
  expect((await ok.json()).choices[0].message.content).toBe('Mock reply: hi');
  expect((await complete(request, secret, 'mock/mock-echo')).status()).toBe(403);

  await panel.getByRole('button', { name: 'I have saved it' }).click();
  await expect(panel).toBeHidden();

  // After a reload (no secret anywhere), the row shows when and from where it was last used.
  const row = table.getByRole('row').filter({ hasText: name });
  await expect(async () => {
    await page.reload();
    await expect(row.getByTestId('key-last-used')).toBeVisible({ timeout: 2_000 });
  }).toPass({ timeout: 15_000 });
  await expect(row.getByTestId('key-last-used')).toContainText('from 127.0.0.1');
  await expect(page.getByTestId('key-secret')).toHaveCount(0);
  await expect(row).toContainText('mock/mock-fast');
  await expect(row).toContainText('120/min calls');
  await expect(row.getByRole('meter', { name: `Budget ${name}` })).toBeVisible();

  // Edit: a tokens-per-minute limit and a higher budget; the rest stays.
  await page.getByRole('button', { name: `Edit ${name}` }).click();
  const edit = page.getByRole('dialog', { name: `Edit ${name}` });
  await expect(edit.getByRole('checkbox', { name: 'mock/mock-fast' })).toBeChecked();
  await expect(edit.getByLabel('Currency')).toBeDisabled();
  await edit.getByLabel('Tokens per minute').fill('5000');
  await edit.getByLabel('Limit (amount)').fill('20');
  await edit.getByRole('button', { name: 'Save' }).click();
  await expect(edit).toBeHidden();
  await expect(page.getByRole('status').filter({ hasText: `Saved ${name}.` })).toBeVisible();
  expect((await keysOf())[0]).toMatchObject({
    allowedModels: ['mock/mock-fast'],
    requestsPerMinute: 120,
    tokensPerMinute: 5000,
    budget: { limitMicros: '20000000' },
  });

  // Rotate, the old secret ending now: the new one works, the old one is refused.
  await page.getByRole('button', { name: `Rotate ${name}` }).click();
  const rotate = page.getByRole('dialog', { name: `Rotate ${name}` });
  await rotate.getByRole('radio', { name: 'Now' }).check();
  await rotate.getByRole('button', { name: 'Rotate' }).click();
  await expect(rotate).toBeHidden();
  await expect(panel.getByRole('heading', { name: `The new secret of ${name}, rotated` })).toBeVisible();
  const rotated = await panel.getByLabel(`Secret of ${name}`).inputValue();
  expect(rotated).toMatch(/^cb-/);
  expect(rotated).not.toBe(secret);
  await expect(panel.getByTestId('key-rotated-old')).toContainText(`${made.prefix}… no longer works`);
  const again = await complete(request, rotated, 'mock/mock-fast', 'again');
  expect(again.status()).toBe(200);
  expect((await again.json()).choices[0].message.content).toBe('Mock reply: again');
  expect((await complete(request, secret, 'mock/mock-fast')).status()).toBe(401);
  await panel.getByRole('button', { name: 'I have saved it' }).click();

  // The old key is listed only with the toggle, greyed, after the working one.
  await expect(table.getByRole('row').filter({ hasText: name })).toHaveCount(1);
  await page.getByRole('checkbox', { name: /Show revoked and expired keys \(1\)/ }).check();
  await expect(page).toHaveURL(/inactive=1/);
  const rows = table.getByRole('row').filter({ hasText: name });
  await expect(rows).toHaveCount(2);
  await expect(rows.nth(0)).toContainText('Active');
  await expect(rows.nth(1)).toContainText('Revoked');
  await expect(rows.nth(1)).toHaveClass(/keys-inactive/);

  // Revoke, confirmed: the new secret is refused too.
  await page.getByRole('button', { name: `Revoke ${name}` }).click();
  const confirm = page.getByRole('dialog', { name: 'Revoke the key?' });
  await expect(confirm).toContainText(name);
  await confirm.getByRole('button', { name: 'Revoke' }).click();
  await expect(confirm).toBeHidden();
  await expect(page.getByRole('status').filter({ hasText: `Revoked ${name}.` })).toBeVisible();
  expect((await complete(request, rotated, 'mock/mock-fast')).status()).toBe(401);
  expect((await keysOf()).map((k) => k.state)).toEqual(['REVOKED', 'REVOKED']);
  await expect(page.getByRole('button', { name: `Revoke ${name}` })).toHaveCount(0);
  await expectAccessible(page, 'api keys list (en)');
  await screenshot(page, 'keys-en');
  noProblems(problems);
});

test('the API keys page in Chinese: the list, the create dialog and a new secret pass axe', async ({ page, request }) => {
  const problems = watch(page);
  const root = await apiLogin(request);
  const user = await newUser(request, root.accessToken, 'keyszh');
  const token = (await apiLogin(request, user)).accessToken;
  // Keys made over the API: one with a budget and an expiry, one revoked.
  const tomorrow = new Date(Date.now() + 2 * 86_400_000).toISOString();
  await gql(
    request,
    `mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { apiKey { id } } }`,
    { input: { name: '报表脚本', scope: 'FULL', expiresAt: tomorrow, budget: { period: 'DAY', currency: 'CNY', limitMicros: '3000000' } } },
    token,
  );
  const gone = await gql(request, `mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { apiKey { id } } }`, { input: { name: '旧密钥' } }, token);
  await gql(request, `mutation($id: ID!) { revokeApiKey(id: $id) { id } }`, { id: gone.createApiKey.apiKey.id }, token);

  await signIn(page, user, '#/keys?inactive=1', 'zh');
  await expect(page.getByRole('heading', { name: 'API 密钥', level: 1 })).toBeVisible();
  const table = page.getByRole('table', { name: 'API 密钥，可用的在前' });
  await expect(table.getByRole('row').filter({ hasText: '报表脚本' })).toContainText('可用');
  await expect(table.getByRole('row').filter({ hasText: '报表脚本' })).toContainText('完全');
  await expect(table.getByRole('row').filter({ hasText: '报表脚本' })).toContainText('每日');
  await expect(table.getByRole('row').filter({ hasText: '旧密钥' })).toContainText('已吊销');
  await expectAccessible(page, 'api keys list (zh)');
  await screenshot(page, 'keys-zh');

  await page.getByRole('button', { name: '创建密钥' }).click();
  const dialog = page.getByRole('dialog', { name: '创建 API 密钥' });
  await dialog.getByLabel('名称').fill('测试密钥');
  await dialog.getByRole('checkbox', { name: 'mock/mock-echo' }).check();
  await dialog.getByRole('checkbox', { name: '为此密钥设置花费上限' }).check();
  await expectAccessible(page, 'api keys create dialog (zh)');
  await screenshot(page, 'keys-create-zh');
  await dialog.getByRole('checkbox', { name: '为此密钥设置花费上限' }).uncheck();
  await dialog.getByRole('button', { name: '创建' }).click();
  const panel = page.getByTestId('key-secret');
  await expect(panel).toContainText('密钥只显示这一次');
  const secret = await panel.getByLabel('测试密钥 的密钥').inputValue();
  const reply = await complete(request, secret, 'mock/mock-echo', '你好');
  expect(reply.status()).toBe(200);
  expect((await reply.json()).choices[0].message.content).toBe('Mock reply: 你好');
  await expectAccessible(page, 'api keys secret (zh)');
  await screenshot(page, 'keys-secret-zh');
  noProblems(problems);
});

test('an admin lists everyone’s keys, revokes another user’s key, and finds its calls in the explorer', async ({ page, request }) => {
  const problems = watch(page);
  const root = await apiLogin(request);
  const user = await newUser(request, root.accessToken, 'keysadm');
  const token = (await apiLogin(request, user)).accessToken;
  const made = await gql(
    request,
    `mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { id prefix } } }`,
    { input: { name: 'Support bot', allowedModels: ['mock/mock-fast'] } },
    token,
  );
  const { secret, apiKey } = made.createApiKey;
  expect((await complete(request, secret, 'mock/mock-fast', 'from the bot')).status()).toBe(200);

  // The explorer: the call shows its key, and the key filter narrows to it.
  await signIn(page, admin, `#/calls?key=${apiKey.id}`);
  const calls = page.getByRole('table', { name: 'Call records, newest first, 50 per page' });
  const callRows = calls.getByRole('row').filter({ hasText: 'mock-fast' });
  await expect(callRows).toHaveCount(1);
  await expect(callRows.first()).toContainText(`${apiKey.prefix}…`);
  await expect(page.getByTestId('calls-key-chip')).toContainText(`${apiKey.prefix}… Support bot`);
  await callRows.first().click();
  await expect(page.getByTestId('detail-api-key')).toContainText(`${apiKey.prefix}… Support bot`);
  await expectAccessible(page, 'calls filtered by key (en)');
  await screenshot(page, 'calls-key-en');
  await page.getByRole('button', { name: 'Clear the API key filter' }).click();
  await expect(page).not.toHaveURL(/key=/);

  // Everyone's keys, with the owner's email; the admin revokes the user's key.
  await page.goto('/console#/keys');
  await expect(page.getByRole('heading', { name: 'API keys', level: 1 })).toBeVisible();
  const table = page.getByRole('table', { name: 'API keys, working ones first' });
  await expect(table.getByRole('row').filter({ hasText: 'Support bot' })).toHaveCount(0);
  await page.getByRole('checkbox', { name: 'All users’ keys' }).check();
  await expect(page).toHaveURL(/all=1/);
  const row = table.getByRole('row').filter({ hasText: 'Support bot' });
  await expect(row).toContainText(user.email);
  await expect(row.getByRole('button', { name: 'Rotate Support bot' })).toHaveCount(0);
  await expect(row.getByRole('link', { name: 'Calls made with Support bot' })).toHaveAttribute('href', `#/calls?key=${apiKey.id}`);
  await expectAccessible(page, 'api keys, all users (en)');
  await screenshot(page, 'keys-all-en');
  await row.getByRole('button', { name: 'Revoke Support bot' }).click();
  await page.getByRole('dialog', { name: 'Revoke the key?' }).getByRole('button', { name: 'Revoke' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Revoked Support bot.' })).toBeVisible();
  await expect(row).toHaveCount(0);
  expect((await complete(request, secret, 'mock/mock-fast')).status()).toBe(401);
  const keys = (await gql(request, KEYS, { all: false }, token)).apiKeys;
  expect(keys.map((k) => k.state)).toEqual(['REVOKED']);
  noProblems(problems);
});
