// The user's side of the console: sign-up, a streamed reply with its cost, the history (reload,
// rename, delete), Stop (the call ends CANCELLED), and a disabled account sent back to login.
import { test, expect } from '@playwright/test';
import {
  apiLogin,
  consoleLogin,
  expectAccessible,
  gql,
  newUser,
  openConsole,
  screenshot,
  watch,
} from './support.mjs';
import { money as shown } from './support.mjs';

const LAST_CALL = `{ aiCalls(first: 1) { nodes { id status costMicros currency completionTokens } } }`;
const CONVERSATIONS = `{ conversations(first: 10) { nodes { id title } } }`;

/** Picks the mock provider's echo model (it streams a delta every 40 ms in these tests). */
async function pickEcho(page) {
  const select = page.locator('.chat-model select');
  await expect(select.locator('option', { hasText: 'mock-echo' }).or(select.locator('option', { hasText: 'Mock echo' })).first()).toBeAttached();
  const value = await select.evaluate((el) => [...el.options].find((o) => /mock echo/i.test(o.text))?.value);
  expect(value).toBeTruthy();
  await select.selectOption(value);
}

test('a user registers, streams a reply, sees its cost, and keeps, renames and deletes the conversation', async ({ page, request }) => {
  const problems = watch(page);
  const suffix = Date.now().toString(36);
  const who = { email: `reg-${suffix}@example.com`, password: `Quiet-Meadow-Lantern-${suffix}` };

  await openConsole(page, 'en', '#/register');
  await expect(page.getByRole('heading', { name: /Create an account/ })).toBeVisible();
  await page.getByLabel('Email').fill(who.email);
  await page.getByLabel('Display name').fill('Reggie');
  await page.getByLabel('Password').fill(who.password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page).toHaveURL(/#\/chat/);
  await pickEcho(page);

  // A message long enough to stream for a while: the reply grows delta by delta.
  const words = Array.from({ length: 30 }, (_, i) => `word${i}`).join(' ');
  await page.getByLabel('Message').fill(words);
  await page.getByRole('button', { name: 'Send' }).click();
  const reply = page.locator('.msg-assistant .msg-text').last();
  await expect(page.getByRole('button', { name: 'Stop' })).toBeVisible();
  await expect(reply).not.toBeEmpty();
  const early = await reply.innerText();
  await expect(page.getByTestId('call-cost')).toBeVisible({ timeout: 15_000 });
  const full = await reply.innerText();
  expect(early.length, 'the first text seen is a part of the reply').toBeLessThan(full.length);
  expect(full).toContain('word29');

  // The cost shown is the recorded one.
  const me = await apiLogin(request, who);
  const call = (await gql(request, LAST_CALL, {}, me.accessToken)).aiCalls.nodes[0];
  expect(call.status).toBe('SUCCEEDED');
  expect(BigInt(call.costMicros) > 0n, 'the mock has a demo price').toBe(true);
  await expect(page.getByTestId('call-cost')).toHaveText(shown(call.costMicros, call.currency));
  expect(call.currency, "the mock's demo prices").toBe('CNY');
  await expect(page.getByTestId('call-cost')).toHaveText(/^¥0\.\d{2,6}$/);
  await screenshot(page, 'chat-en');
  await expectAccessible(page, 'chat');

  // The conversation is in the history and comes back from the server after a reload.
  const history = page.getByRole('complementary', { name: 'Conversations' });
  await expect(history.getByRole('link', { name: /word0 word1/ })).toBeVisible();
  await page.reload();
  await expect(page.locator('.msg-user .msg-text')).toHaveText(words);
  await expect(page.locator('.msg-assistant .msg-text')).toHaveText(full);

  // Rename it.
  await history.getByRole('button', { name: /^Rename:/ }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByLabel('Title').fill('Counting words');
  await dialog.getByRole('button', { name: 'Save' }).click();
  await expect(history.getByRole('link', { name: 'Counting words' })).toBeVisible();
  const renamed = (await gql(request, CONVERSATIONS, {}, me.accessToken)).conversations.nodes;
  expect(renamed.map((c) => c.title)).toEqual(['Counting words']);

  // Delete it.
  page.once('dialog', (d) => d.accept());
  await history.getByRole('button', { name: /^Delete:/ }).click();
  await expect(history.getByRole('link', { name: 'Counting words' })).toHaveCount(0);
  expect((await gql(request, CONVERSATIONS, {}, me.accessToken)).conversations.nodes).toEqual([]);
  expect(problems()).toEqual([]);
});

test('Stop cancels the stream, and the call is recorded CANCELLED', async ({ page, request }) => {
  const problems = watch(page);
  const admin = await apiLogin(request);
  const who = await newUser(request, admin.accessToken, 'stopper');
  await openConsole(page, 'zh');
  await consoleLogin(page, who);
  await expect(page).toHaveURL(/#\/chat/);
  await expect(page.getByRole('heading', { name: '对话' })).toBeVisible();
  await pickEcho(page);

  // 200 words at a delta every 40 ms: several seconds of stream.
  const words = Array.from({ length: 200 }, (_, i) => `w${i}`).join(' ');
  await page.getByLabel('消息').fill(words);
  await page.getByRole('button', { name: '发送' }).click();
  const reply = page.locator('.msg-assistant .msg-text').last();
  await expect(reply).not.toBeEmpty();
  await page.getByRole('button', { name: '停止' }).click();
  await expect(page.getByText('已停止：本次调用已取消。')).toBeVisible();
  await expect(page.getByRole('button', { name: '发送' })).toBeVisible();

  const me = await apiLogin(request, who);
  await expect
    .poll(async () => (await gql(request, LAST_CALL, {}, me.accessToken)).aiCalls.nodes[0]?.status, { timeout: 10_000 })
    .toBe('CANCELLED');
  expect((await reply.innerText()).includes('w199'), 'stopped before the end').toBe(false);
  await screenshot(page, 'chat-zh');
  await expectAccessible(page, 'chat (zh)');
  expect(problems()).toEqual([]);
});

test("a disabled user's open console is refused at once or on its next request, and sent to login", async ({ page, request }) => {
  const admin = await apiLogin(request);
  const who = await newUser(request, admin.accessToken, 'disabled');
  await openConsole(page, 'en');
  await consoleLogin(page, who);
  await expect(page).toHaveURL(/#\/chat/);
  await expect(page.getByLabel('Message')).toBeVisible();

  await gql(request, `mutation($id: ID!) { disableUser(userId: $id) { disabled } }`, { id: who.id }, admin.accessToken);
  // The console's live socket is closed by the server at once, so the console may already be on
  // its way to sign-in; if the chat is still there, sending is its next request, refused.
  const stillOpen = await page.getByLabel('Message').isVisible();
  if (stillOpen) {
    await page.getByLabel('Message').fill('are you still there?', { timeout: 5_000 }).catch(() => {});
    await page.getByRole('button', { name: 'Send' }).click({ timeout: 5_000 }).catch(() => {});
  }
  await expect(page.getByRole('heading', { name: /Sign in/ })).toBeVisible();
  await expect(page.getByText('Your session ended. Please sign in again.')).toBeVisible();
  // Signing in again is refused too.
  await consoleLoginAttempt(page, who);
  await expect(page.getByRole('alert')).toContainText('UNAUTHENTICATED');
});

async function consoleLoginAttempt(page, who) {
  await page.locator('input[type=email]').fill(who.email);
  await page.locator('input[type=password]').fill(who.password);
  await page.locator('form button[type=submit]').click();
}

test('the sign-in and sign-up pages in English and Chinese', async ({ page }) => {
  const problems = watch(page);
  for (const [lang, signIn, signUp] of [
    ['en', 'CloudBase AI · Sign in', 'CloudBase AI · Create an account'],
    ['zh', 'CloudBase AI · 登录', 'CloudBase AI · 注册账号'],
  ]) {
    await openConsole(page, lang);
    await expect(page.getByRole('heading', { name: signIn })).toBeVisible();
    await expect(page.locator('html')).toHaveAttribute('lang', lang === 'zh' ? 'zh-CN' : 'en');
    await expectAccessible(page, `login (${lang})`);
    await screenshot(page, `login-${lang}`);
    await page.goto(`/console#/register`);
    await expect(page.getByRole('heading', { name: signUp })).toBeVisible();
    await expectAccessible(page, `register (${lang})`);
    await screenshot(page, `register-${lang}`);
  }
  expect(problems()).toEqual([]);
});

test('the language picked in the top bar follows the account to a browser that has none picked', async ({ browser, request }) => {
  const admin = await apiLogin(request);
  const who = await newUser(request, admin.accessToken, 'polyglot');
  const first = await browser.newContext();
  const page = await first.newPage();
  await openConsole(page, 'en');
  await consoleLogin(page, who);
  await expect(page.getByRole('heading', { name: 'Chat' })).toBeVisible();
  await page.getByRole('combobox', { name: 'Language' }).selectOption('zh');
  await expect(page.getByRole('heading', { name: '对话' })).toBeVisible();
  const me = await apiLogin(request, who);
  await expect
    .poll(async () => (await gql(request, '{ me { settings } }', {}, me.accessToken)).me.settings.lang)
    .toBe('zh');
  await first.close();

  // Another browser (in English, where no language was picked yet) signs in to Chinese.
  const second = await browser.newContext({ locale: 'en-US' });
  const other = await second.newPage();
  await other.goto('/console');
  await expect(other.getByRole('heading', { name: 'CloudBase AI · Sign in' })).toBeVisible();
  await consoleLogin(other, who);
  await expect(other.getByRole('heading', { name: '对话' })).toBeVisible();
  await expect(other.locator('html')).toHaveAttribute('lang', 'zh-CN');
  await second.close();
});

test('on a phone, in Chinese: sign in, chat, and read usage, with nothing wider than the screen', async ({ browser, request }) => {
  const admin = await apiLogin(request);
  const who = await newUser(request, admin.accessToken, 'phone');
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const page = await context.newPage();
  const problems = watch(page);
  const fits = async (what) =>
    expect(await page.evaluate(() => document.documentElement.scrollWidth), `${what}: no sideways scrolling`).toBeLessThanOrEqual(390);
  await openConsole(page, 'zh');
  await fits('sign-in');
  await consoleLogin(page, who);
  await expect(page.getByRole('heading', { name: '对话' })).toBeVisible();
  await pickEcho(page);
  await page.getByLabel('消息').fill('你好，手机');
  await page.getByRole('button', { name: '发送' }).tap();
  await expect(page.getByTestId('call-cost')).toBeVisible({ timeout: 15_000 });
  await expect(page.getByTestId('call-cost')).toHaveText(/^¥/);
  await fits('chat');
  await expectAccessible(page, 'chat on a phone');
  await screenshot(page, 'chat-phone-zh');
  await page.getByRole('link', { name: '用量与预算' }).tap();
  await expect(page.getByRole('heading', { name: '用量与预算', level: 1 })).toBeVisible();
  await fits('usage');
  await screenshot(page, 'usage-phone-zh');
  expect(problems()).toEqual([]);
  await context.close();
});
