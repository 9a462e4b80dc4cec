// The sessions panel of the console's profile page against the real server: a user signed in from
// a phone and a script sees them beside this browser (marked), signs the phone out on the page and
// its token stops at once, then signs out every other session. In English and in Chinese, with
// axe-core checks.
import { test, expect } from '@playwright/test';
import { apiLogin, consoleLogin, expectAccessible, newUser, openConsole, screenshot, watch } from './support.mjs';

const PHONE = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1';
const SCRIPT = 'nightly-report/0.3';

/** Signs `who` in over the API as a client calling itself `agent`; returns the access token. */
async function signInAs(request, who, agent) {
  const response = await request.post('/graphql', {
    headers: { 'content-type': 'application/json', 'user-agent': agent },
    data: {
      query: 'mutation($input: LoginInput!) { login(input: $input) { accessToken } }',
      variables: { input: { email: who.email, password: who.password } },
    },
  });
  const body = await response.json();
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return body.data.login.accessToken;
}

/** `{ me { id } }` with `token`: the first error's code, or 'OK'. */
async function probe(request, token) {
  const response = await request.post('/graphql', {
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    data: { query: '{ me { id } }' },
  });
  const body = await response.json();
  return body.errors ? body.errors[0].extensions.code : 'OK';
}

async function setUp(request, name) {
  const root = await apiLogin(request);
  const user = await newUser(request, root.accessToken, name);
  const phone = await signInAs(request, user, PHONE);
  const script = await signInAs(request, user, SCRIPT);
  return { user, phone, script };
}

function noProblems(problems) {
  expect(problems().filter((p) => /Content Security Policy|Refused to/.test(p)), 'CSP').toEqual([]);
  expect(problems(), 'console errors').toEqual([]);
}

test('a user sees their sessions on the profile page and signs the phone out, then every other one', async ({ page, request }) => {
  const problems = watch(page);
  const { user, phone, script } = await setUp(request, 'sessions');
  await openConsole(page, 'en');
  await consoleLogin(page, user);
  await page.getByRole('navigation').getByRole('link', { name: 'Profile' }).click();
  const panel = page.locator('section', { has: page.getByRole('heading', { name: 'Sessions' }) });
  const rows = panel.locator('tbody tr');
  await expect(rows).toHaveCount(3);
  await expect(panel.getByRole('row', { name: /This browser/ })).toHaveCount(1);
  await expect(panel.getByRole('row', { name: /Safari · iOS/ })).toContainText('from 127.0.0.1');
  await expect(panel.getByRole('row', { name: new RegExp(SCRIPT) })).toBeVisible();
  // This browser cannot be signed out from its own row (that is what "Sign out" in the menu is for).
  await expect(panel.getByRole('row', { name: /This browser/ }).getByRole('button')).toHaveCount(0);
  await expectAccessible(page, 'sessions (en)');
  await screenshot(page, 'console-sessions-en');

  await panel.getByRole('button', { name: 'Sign out Safari · iOS' }).click();
  await expect(panel.getByRole('status')).toHaveText('Signed out.');
  await expect(rows).toHaveCount(2);
  expect(await probe(request, phone)).toBe('UNAUTHENTICATED');
  expect(await probe(request, script)).toBe('OK');

  await panel.getByRole('button', { name: 'Sign out all other sessions' }).click();
  await expect(panel.getByText('Sign out the other session?')).toBeVisible();
  await panel.getByRole('button', { name: 'Yes, sign out' }).click();
  await expect(panel.getByRole('status')).toHaveText('One other session was signed out.');
  await expect(rows).toHaveCount(1);
  await expect(panel.getByText('This is your only session.')).toBeVisible();
  expect(await probe(request, script)).toBe('UNAUTHENTICATED');
  // The page itself goes on working.
  await page.reload();
  await expect(page.getByRole('heading', { level: 1, name: 'Profile' })).toBeVisible();
  noProblems(problems);
});

test('the sessions panel in Chinese: listed, signed out, and accessible', async ({ page, request }) => {
  const problems = watch(page);
  const { user, phone, script } = await setUp(request, 'sessions-zh');
  await openConsole(page, 'zh');
  await consoleLogin(page, user);
  await page.getByRole('navigation').getByRole('link', { name: '个人资料' }).click();
  const panel = page.locator('section', { has: page.getByRole('heading', { name: '登录会话' }) });
  await expect(panel.locator('tbody tr')).toHaveCount(3);
  await expect(panel.getByRole('row', { name: /当前浏览器/ })).toHaveCount(1);
  await expect(panel.getByRole('row', { name: /Safari · iOS/ })).toContainText('来自 127.0.0.1');
  await expectAccessible(page, 'sessions (zh)');
  await screenshot(page, 'console-sessions-zh');

  await panel.getByRole('button', { name: '退出其他所有会话' }).click();
  await expect(panel.getByText('确定退出其他 2 个会话吗？')).toBeVisible();
  await panel.getByRole('button', { name: '取消' }).click();
  await expect(panel.locator('tbody tr')).toHaveCount(3);
  expect(await probe(request, phone)).toBe('OK');

  await panel.getByRole('button', { name: '退出其他所有会话' }).click();
  await panel.getByRole('button', { name: '确定退出' }).click();
  await expect(panel.getByRole('status')).toHaveText('已退出其他 2 个会话。');
  await expect(panel.getByText('这是你唯一的登录会话。')).toBeVisible();
  expect(await probe(request, phone)).toBe('UNAUTHENTICATED');
  expect(await probe(request, script)).toBe('UNAUTHENTICATED');
  noProblems(problems);
});
