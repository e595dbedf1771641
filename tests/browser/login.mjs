// Signs in and allows an application through the real login and consent pages in headless
// Chromium. Prints the URL the browser lands on (the redirect URI with the code).
// Env: AUTHORIZE_URL, REDIRECT_URI, OCLOUD_USER, OCLOUD_PASSWORD, SCREENSHOT_DIR (optional).
import { chromium } from 'playwright-core';

const { AUTHORIZE_URL, REDIRECT_URI, OCLOUD_USER, OCLOUD_PASSWORD, SCREENSHOT_DIR } = process.env;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage();
  // Nothing listens on the redirect URI: answer it here, as the app's listener would.
  await page.route(`${REDIRECT_URI}**`, (route) => route.fulfill({ status: 200, contentType: 'text/plain', body: 'ok' }));
  await page.goto(AUTHORIZE_URL);
  if (SCREENSHOT_DIR) await page.screenshot({ path: `${SCREENSHOT_DIR}/login.png` });
  await page.fill('#username', OCLOUD_USER);
  await page.fill('#password', OCLOUD_PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForSelector('button[value=allow]');
  if (SCREENSHOT_DIR) await page.screenshot({ path: `${SCREENSHOT_DIR}/consent.png` });
  await page.click('button[value=allow]');
  await page.waitForURL(`${REDIRECT_URI}**`);
  console.log(page.url());
} finally {
  await browser.close();
}
