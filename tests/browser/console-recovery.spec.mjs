// Getting back in, in the console against the real server: "Forgot your password?" sends a link
// by email (caught here by a small SMTP sink on loopback, as the `reset-mail` notifier of
// notifiers.toml is set up), the link's page sets a new password once, and in Chinese an admin
// requires a new password from the Users page, after which the user's next sign-in leads to the
// profile's password form and nothing else works until it is changed. With axe-core checks.
import { test, expect } from '@playwright/test';
import { createServer } from 'node:net';
import { apiLogin, consoleLogin, expectAccessible, newUser, openConsole, screenshot, watch } from './support.mjs';

/** A minimal SMTP server on 127.0.0.1:18925 that keeps every message's data. */
function smtpSink() {
  const messages = [];
  const server = createServer((socket) => {
    let buffer = '';
    let data = false;
    socket.write('220 sink ESMTP\r\n');
    socket.on('data', (chunk) => {
      buffer += chunk.toString('utf8');
      for (;;) {
        if (data) {
          const end = buffer.indexOf('\r\n.\r\n');
          if (end < 0) return;
          messages.push(buffer.slice(0, end));
          buffer = buffer.slice(end + 5);
          data = false;
          socket.write('250 queued\r\n');
          continue;
        }
        const line = buffer.indexOf('\r\n');
        if (line < 0) return;
        const command = buffer.slice(0, line).toUpperCase();
        buffer = buffer.slice(line + 2);
        if (command.startsWith('EHLO') || command.startsWith('HELO')) socket.write('250 sink\r\n');
        else if (command.startsWith('DATA')) {
          data = true;
          socket.write('354 go on\r\n');
        } else if (command.startsWith('QUIT')) {
          socket.end('221 bye\r\n');
          return;
        } else socket.write('250 ok\r\n');
      }
    });
    socket.on('error', () => {});
  });
  return new Promise((resolve) => server.listen(18925, '127.0.0.1', () => resolve({ messages, close: () => server.close() })));
}

/** Quoted-printable decoded: soft breaks joined, `=XX` restored. */
function decoded(text) {
  const joined = text.replace(/=\r?\n/g, '');
  return Buffer.from(joined.replace(/=([0-9A-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16))), 'latin1').toString('utf8');
}

function noProblems(problems) {
  expect(problems().filter((p) => /Content Security Policy|Refused to/.test(p)), 'CSP').toEqual([]);
  expect(problems(), 'console errors').toEqual([]);
}

test('a forgotten password is reset through a link by email, once', async ({ page, request }) => {
  const sink = await smtpSink();
  try {
    const problems = watch(page);
    const root = await apiLogin(request);
    const user = await newUser(request, root.accessToken, 'forgot');
    await openConsole(page, 'en');
    await page.getByRole('link', { name: 'Forgot your password?' }).click();
    await expect(page.getByRole('heading', { name: /Forgot your password\?/ })).toBeVisible();
    await expectAccessible(page, 'forgot password');
    // Any address gets the same answer; only the account's gets mail.
    await page.getByLabel('Email').fill('nobody-at-all@example.com');
    await page.getByRole('button', { name: 'Send the link' }).click();
    const sent = page.getByRole('status');
    await expect(sent).toContainText('If an account uses this address, a link is on its way.');
    await page.getByLabel('Email').fill(user.email);
    await page.getByRole('button', { name: 'Send the link' }).click();
    await expect(sent).toContainText('If an account uses this address, a link is on its way.');
    await expect.poll(() => sink.messages.length, { timeout: 10_000 }).toBe(1);
    const message = decoded(sink.messages[0]);
    expect(message).toContain(`To: ${user.email}`);
    const link = /http:\/\/127\.0\.0\.1:\d+\/console#\/reset-password\?token=cbp_[A-Za-z0-9_-]+/.exec(message)?.[0];
    expect(link, message).toBeTruthy();

    // The link's page: a mismatch is caught here, then the new password is set.
    await page.goto(link);
    await expect(page.getByRole('heading', { name: /Choose a new password/ })).toBeVisible();
    await expectAccessible(page, 'reset password');
    await screenshot(page, 'console-reset-en');
    const fresh = `Brand-New-Walrus-${Date.now().toString(36)}`;
    await page.getByLabel('New password').first().fill(fresh);
    await page.getByLabel('New password again').fill(`${fresh}x`);
    await page.getByRole('button', { name: 'Set the new password' }).click();
    await expect(page.getByRole('alert')).toContainText('The two passwords do not match.');
    await page.getByLabel('New password again').fill(fresh);
    await page.getByRole('button', { name: 'Set the new password' }).click();
    await expect(page.getByRole('status')).toContainText('Your password was changed.');
    await page.getByRole('link', { name: 'Sign in' }).click();
    await consoleLogin(page, { email: user.email, password: fresh });
    await expect(page).toHaveURL(/#\/chat/);

    // The link works once.
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.goto(link);
    await page.getByLabel('New password').first().fill(`${fresh}-again`);
    await page.getByLabel('New password again').fill(`${fresh}-again`);
    await page.getByRole('button', { name: 'Set the new password' }).click();
    await expect(page.getByRole('alert')).toContainText('This link is invalid, used or expired.');
    await expect(page.getByRole('link', { name: 'Ask for a new link' })).toBeVisible();
    noProblems(problems);
  } finally {
    sink.close();
  }
});

test('in Chinese, an admin requires a new password and the next sign-in leads to the password form', async ({ page, request, browser }) => {
  const problems = watch(page);
  const root = await apiLogin(request);
  const user = await newUser(request, root.accessToken, 'stale');

  // The admin, on the Users page in Chinese.
  const adminContext = await browser.newContext();
  const adminPage = await adminContext.newPage();
  const adminProblems = watch(adminPage);
  await openConsole(adminPage, 'zh');
  await consoleLogin(adminPage);
  await expect(adminPage).toHaveURL(/#\/overview/);
  await adminPage.goto(`/console#/users/${user.id}`);
  const detail = adminPage.getByTestId('user-detail');
  await expect(detail).toContainText('无需设置新密码。');
  await detail.getByRole('button', { name: '要求设置新密码' }).click();
  await expect(detail).toContainText('用户将立即在所有设备上退出登录');
  await detail.getByRole('button', { name: '确定要求' }).click();
  await expect(detail.getByRole('status')).toContainText('已要求设置新密码，用户已退出登录。');
  await expect(detail).toContainText('需要设置新密码：用户登录后只能修改密码。');
  await expectAccessible(adminPage, 'user detail, password required (zh)');
  noProblems(adminProblems);
  await adminContext.close();

  // The user signs in: every page says why it cannot work, and points to the profile.
  await openConsole(page, 'zh');
  await consoleLogin(page, user);
  await expect(page).toHaveURL(/#\/chat/);
  await page.getByRole('navigation').getByRole('link', { name: '用量与预算' }).click();
  const why = page.getByRole('alert').filter({ hasText: '管理员要求你的账户设置新密码。' }).first();
  await expect(why).toBeVisible();
  await screenshot(page, 'console-password-required-zh');
  await why.getByRole('link', { name: '在个人资料中修改' }).click();
  await expect(page).toHaveURL(/#\/profile/);
  const fresh = `Quiet-Harbor-Lantern-${Date.now().toString(36)}`;
  const form = page.locator('section', { has: page.getByRole('heading', { name: '修改密码' }) });
  await form.getByLabel('当前密码').fill(user.password);
  await form.getByLabel('新密码', { exact: true }).fill(fresh);
  await form.getByLabel('再次输入新密码').fill(fresh);
  await form.getByRole('button', { name: '修改密码' }).click();
  await expect(form.getByRole('status')).toContainText('密码已修改');
  // Now the rest works, with the same session.
  await page.getByRole('navigation').getByRole('link', { name: '用量与预算' }).click();
  await expect(page.getByRole('heading', { level: 1, name: '用量与预算' })).toBeVisible();
  await expect(page.getByText('管理员要求你的账户设置新密码。')).toHaveCount(0);
  noProblems(problems);
});
