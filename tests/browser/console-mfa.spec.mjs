// Two-step sign-in in the console against the real server: a user turns it on from the profile
// page (password, QR code or key, the app's code, the recovery codes shown once), signs in again
// with a code from the "app" (computed here, RFC 6238), and with a recovery code in Chinese; a
// wrong code is explained and can be retried; an admin resets it from the Users page. With
// axe-core checks.
import { test, expect } from '@playwright/test';
import { createHmac } from 'node:crypto';
import { apiLogin, consoleLogin, expectAccessible, newUser, openConsole, screenshot, watch } from './support.mjs';

/** RFC 4648 base32 (spaces allowed) to bytes. */
function base32(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const ch of text.replace(/[\s=]/g, '').toUpperCase()) bits += alphabet.indexOf(ch).toString(2).padStart(5, '0');
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

/** The TOTP code (SHA-1, 6 digits, 30 s) of the step `offset` steps from now. */
function totp(secret, offset = 0) {
  const step = Math.floor(Date.now() / 1000 / 30) + offset;
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32(secret)).update(counter).digest();
  const at = mac[mac.length - 1] & 0x0f;
  const value = (mac.readUInt32BE(at) & 0x7fffffff) % 1_000_000;
  return value.toString().padStart(6, '0');
}

function noProblems(problems) {
  expect(problems().filter((p) => /Content Security Policy|Refused to/.test(p)), 'CSP').toEqual([]);
  expect(problems(), 'console errors').toEqual([]);
}

async function signOut(page, name) {
  await page.getByRole('button', { name }).click();
  await expect(page.locator('input[type=email]')).toBeVisible();
}

test('a user turns on two-step sign-in, signs in with a code and a recovery code, and an admin resets it', async ({ page, request }) => {
  const problems = watch(page);
  const root = await apiLogin(request);
  const user = await newUser(request, root.accessToken, 'twostep');
  await openConsole(page, 'en');
  await consoleLogin(page, user);
  await page.getByRole('navigation').getByRole('link', { name: 'Profile' }).click();
  const panel = page.locator('section#two-step');
  await expect(panel.getByRole('heading', { name: /Two-step sign-in/ })).toContainText('Off');
  await expect(page.getByText('Not linked. Link it from the mini-program.')).toBeVisible();

  // The password first; a wrong one is said so.
  await panel.getByRole('button', { name: 'Turn on' }).click();
  await panel.getByLabel('Your password').fill('not my password');
  await panel.getByRole('button', { name: 'Continue' }).click();
  await expect(panel.getByRole('alert')).toContainText('The password is wrong.');
  await panel.getByLabel('Your password').fill(user.password);
  await panel.getByRole('button', { name: 'Continue' }).click();

  // The QR code is drawn (the server's SVG, allowed by the page's policy), and the key is there.
  const qr = panel.getByRole('img', { name: 'QR code for your authenticator app' });
  await expect(qr).toBeVisible();
  expect(await qr.evaluate((img) => img.complete && img.naturalWidth > 0)).toBe(true);
  const key = await panel.getByLabel('Key').inputValue();
  expect(key.replace(/\s/g, '')).toMatch(/^[A-Z2-7]{32}$/);
  await expectAccessible(page, 'profile, enrolling');
  await screenshot(page, 'console-mfa-scan-en');

  // A wrong code is explained; the app's current code turns it on.
  const wrong = totp(key) === '000000' ? '111111' : '000000';
  await panel.getByLabel('The 6-digit code the app shows').fill(wrong);
  await panel.getByRole('button', { name: 'Turn on two-step sign-in' }).click();
  await expect(panel.getByRole('alert')).toContainText('That code is wrong');
  await panel.getByLabel('The 6-digit code the app shows').fill(totp(key));
  await panel.getByRole('button', { name: 'Turn on two-step sign-in' }).click();
  const codes = panel.getByRole('list', { name: 'Your recovery codes' }).getByRole('listitem');
  await expect(codes).toHaveCount(10);
  const recovery = (await codes.allTextContents()).map((c) => c.trim());
  for (const c of recovery) expect(c).toMatch(/^[a-z2-9]{5}-[a-z2-9]{5}$/);
  const download = panel.getByRole('link', { name: 'Download' });
  expect(await download.getAttribute('download')).toBe('cloudbase-recovery-codes.txt');
  expect(decodeURIComponent((await download.getAttribute('href')) ?? '')).toContain(recovery[0]);
  await expectAccessible(page, 'profile, recovery codes');
  await screenshot(page, 'console-mfa-codes-en');
  await panel.getByRole('button', { name: 'I have saved them' }).click();
  await expect(panel.getByRole('heading', { name: /Two-step sign-in/ })).toContainText('On');
  await expect(panel).toContainText('10 recovery codes left.');

  // Signing in now asks for a code after the password; a wrong one can be retried.
  await signOut(page, 'Log out');
  await page.locator('input[type=email]').fill(user.email);
  await page.locator('input[type=password]').fill(user.password);
  await page.locator('form button[type=submit]').click();
  await expect(page.getByRole('heading', { name: /Two-step sign-in/ })).toBeVisible();
  await expectAccessible(page, 'login, code step');
  await screenshot(page, 'console-mfa-login-en');
  const codeField = page.getByLabel('Code');
  await expect(codeField).toBeFocused();
  await codeField.fill(wrong === totp(key, 1) ? '222222' : wrong);
  await page.getByRole('button', { name: 'Verify' }).click();
  await expect(page.getByRole('alert')).toContainText('That code is wrong');
  // (The code that turned it on was used: the next step's code is the one to use now.)
  await codeField.fill(totp(key, 1));
  await page.getByRole('button', { name: 'Verify' }).click();
  await expect(page).toHaveURL(/#\/chat/);

  // In Chinese, with a recovery code, typed in capitals.
  await signOut(page, 'Log out');
  await page.locator('select.lang-corner').selectOption('zh');
  await page.locator('input[type=email]').fill(user.email);
  await page.locator('input[type=password]').fill(user.password);
  await page.locator('form button[type=submit]').click();
  await expect(page.getByRole('heading', { name: /两步验证/ })).toBeVisible();
  await expect(page.getByText('请输入身份验证器应用中的 6 位验证码，或一个恢复码。')).toBeVisible();
  await page.getByLabel('验证码').fill(recovery[0].toUpperCase());
  await page.getByRole('button', { name: '验证' }).click();
  await expect(page).toHaveURL(/#\/chat/);
  await page.getByRole('navigation').getByRole('link', { name: '个人资料' }).click();
  const zhPanel = page.locator('section#two-step');
  await expect(zhPanel).toContainText('剩余 9 个恢复码。');
  await expect(page.getByText('未绑定。请在小程序中绑定。')).toBeVisible();
  await expectAccessible(page, 'profile in Chinese, on');
  await screenshot(page, 'console-mfa-on-zh');

  // The admin resets it from the Users page (in Chinese too), and the password alone signs in.
  const adminPage = await page.context().browser().newPage();
  const adminProblems = watch(adminPage);
  await openConsole(adminPage, 'zh', '#/users');
  await consoleLogin(adminPage);
  await expect(adminPage).toHaveURL(/#\/overview/);
  await adminPage.goto(`/console#/users/${user.id}`);
  const detail = adminPage.getByTestId('user-detail');
  await expect(detail).toContainText('已开启：登录需要用户身份验证器应用中的验证码。');
  await detail.getByRole('button', { name: '重置两步验证' }).click();
  await detail.getByRole('button', { name: '确定重置' }).click();
  await expect(detail.getByRole('status')).toContainText('两步验证已重置。');
  await expect(detail).toContainText('未开启：仅凭密码即可登录。');
  const signIn = await request.post('/graphql', {
    data: {
      query: 'mutation($i: LoginInput!) { login(input: $i) { accessToken mfaChallenge { challenge } } }',
      variables: { i: { email: user.email, password: user.password } },
    },
  });
  const body = await signIn.json();
  expect(body.data.login.mfaChallenge).toBeNull();
  expect(typeof body.data.login.accessToken).toBe('string');
  noProblems(adminProblems);
  await adminPage.close();
  noProblems(problems);
});
