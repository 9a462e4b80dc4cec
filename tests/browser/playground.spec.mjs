// The playground as a person uses it: the schema loads (Docs shows `Query`), the Login example
// runs, the token is saved, and `me` runs with it. Nothing the page does may break its
// Content-Security-Policy.
import { test, expect } from '@playwright/test';
import { admin } from './playwright.config.mjs';

/** The text of GraphiQL's result pane, parsed. */
async function result(page) {
  const text = await page.locator('.result-window .CodeMirror').evaluate((el) => el.CodeMirror.getValue());
  return JSON.parse(text);
}

async function run(page) {
  await page.getByRole('button', { name: /Execute query/ }).click();
}

test('the playground loads the schema, logs in, saves the token and runs me', async ({ page }) => {
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(String(e)));

  await page.goto('/playground');
  // Docs: the root types appear only once introspection has loaded the schema.
  await page.getByRole('button', { name: /Show Documentation Explorer/ }).click();
  const docs = page.locator('.graphiql-doc-explorer');
  await expect(docs.getByText('Query', { exact: true }).first()).toBeVisible();
  await docs.getByText('Query', { exact: true }).first().click();
  await expect(docs.getByText('systemStats').first()).toBeVisible();

  // The default editor content is the Login example, with the bootstrap admin's credentials here.
  await run(page);
  await expect(page.locator('.result-window')).toContainText('accessToken');
  const login = await result(page);
  expect(login.errors).toBeUndefined();
  const token = login.data.login.accessToken;
  expect(token).toBeTruthy();

  await page.locator('#cb-token').fill(token);
  await page.getByRole('button', { name: 'Save' }).click();
  await expect(page.locator('.cb-status')).toHaveText('Token saved');

  const me_query = 'query Me { me { email role } }';
  await page
    .locator('.graphiql-query-editor .CodeMirror')
    .evaluate((el, text) => el.CodeMirror.setValue(text), me_query);
  // GraphiQL takes in an edit (and the operation to run) after a short debounce, and stores the
  // editor's text when it has; run only then.
  await page.waitForFunction((text) => localStorage.getItem('graphiql:query') === text, me_query);
  await run(page);
  await expect(page.locator('.result-window')).toContainText('ADMIN');
  const me = await result(page);
  expect(me.data.me).toEqual({ email: admin.email, role: 'ADMIN' });

  await page.screenshot({ path: 'screenshots/playground.png', fullPage: true });
  expect(problems.filter((p) => /Content Security Policy|Refused to/.test(p))).toEqual([]);
  expect(problems).toEqual([]);
});
