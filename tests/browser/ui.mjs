// The web interface in headless Chromium (Debian's) through playwright-core: each step is one
// thing a person does, checked on the page. Prints one JSON line of facts for the Rust test
// (crates/ocloud-cli/tests/e2e/ui.rs) to check further (downloads, first paint, axe).
// Env: BASE_URL, OCLOUD_USER, OCLOUD_PASSWORD, WORK (a scratch dir with the files to upload),
// BIG_FOLDER (the id of a folder of 10,000 entries), SHOTS (where screenshots go).
import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const { BASE_URL, OCLOUD_USER, OCLOUD_PASSWORD, WORK, BIG_FOLDER, SHOTS } = process.env;
const require = createRequire(import.meta.url);
const facts = {};
const errors = [];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

async function step(name, fn) {
  try {
    await fn();
  } catch (e) {
    console.error(`step "${name}" failed: ${e.stack || e}`);
    console.error(`page errors: ${errors.join(' | ')}`);
    await browser.close();
    process.exit(1);
  }
}

const names = async (page) => page.$$eval('#list .item .name', (els) => els.map((e) => e.textContent));
const item = (page, name) => page.locator('#list .item', { has: page.locator('.name', { hasText: new RegExp(`^${name.replace(/[.()]/g, '\\$&')}$`) }) });
// Waits (up to 10 s) until the names listed satisfy `pred` (checked from here: the page's
// CSP forbids evaluating strings in it).
async function waitNames(page, pred, what) {
  const end = Date.now() + 10000;
  let ns = [];
  while (Date.now() < end) {
    ns = await names(page);
    if (pred(ns)) return;
    await page.waitForTimeout(50);
  }
  throw new Error(`${what}: the list shows ${JSON.stringify(ns)}`);
}
// Waits (up to 10 s) for the page's title, polled from here like waitNames.
async function waitTitle(page, want, what) {
  const end = Date.now() + 10000;
  let t = '';
  while (Date.now() < end) {
    t = await page.title();
    if (t === want) return;
    await page.waitForTimeout(50);
  }
  throw new Error(`check failed: ${what}: the title is ${JSON.stringify(t)}`);
}
async function dialog(page, value) {
  await page.waitForSelector('#dialog[open]');
  if (value !== undefined) await page.fill('#dialog-body input', value);
  await page.click('#dialog-ok');
  await page.waitForFunction(() => !document.querySelector('#dialog').open);
}
async function select(page, ...ns) {
  await item(page, ns[0]).click();
  for (const n of ns.slice(1)) await item(page, n).click({ modifiers: ['Control'] });
}

const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 800 } });
const page = await context.newPage();
page.on('pageerror', (e) => errors.push(String(e)));
// Confirmations (Revoke) are accepted, as the person would.
page.on('dialog', (d) => d.accept());
page.on('response', (r) => { if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) errors.push(`${r.status()} ${r.request().method()} ${r.url()}`); });

await step('sign in', async () => {
  await page.goto(`${BASE_URL}/`);
  await page.fill('#username', OCLOUD_USER);
  await page.fill('#password', OCLOUD_PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForURL(`${BASE_URL}/`);
  await page.waitForSelector('#space[aria-valuetext]');
  // The title is the folder's name, set when its first page arrives; the free space gauge is
  // asked for at the same time and may be answered first.
  await waitTitle(page, 'My files · ocloud', 'the file page');
});

await step('new folder', async () => {
  await page.click('#new-folder');
  await dialog(page, 'Photos');
  await waitNames(page, (ns) => ns.includes('Photos'), 'the new folder');
});

await step('upload a folder through the directory input', async () => {
  await page.setInputFiles('#pick-folder', path.join(WORK, 'tree'));
  await page.waitForSelector('#queue:not([hidden]) progress');
  await page.waitForFunction(() => document.querySelectorAll('#queue-list .job.done').length === 2, null, { timeout: 15000 });
  await waitNames(page, (ns) => ns.includes('tree'), 'the uploaded folder');
});

await step('upload through a synthetic drag-and-drop of a folder', async () => {
  await page.evaluate(() => {
    const dt = new DataTransfer();
    for (const [p, text] of [['dropped/one.txt', 'one'], ['dropped/inner/two.txt', 'two']]) {
      const f = new File([text], p.split('/').pop(), { type: 'text/plain' });
      Object.defineProperty(f, 'webkitRelativePath', { value: p });
      dt.items.add(f);
    }
    document.dispatchEvent(new DragEvent('dragenter', { dataTransfer: dt, bubbles: true }));
    document.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  });
  await page.waitForFunction(() => document.querySelectorAll('#queue-list .job.done').length === 4, null, { timeout: 15000 });
  await waitNames(page, (ns) => ns.includes('dropped'), 'the dropped folder');
  await item(page, 'dropped').dblclick();
  await waitNames(page, (ns) => ns.includes('inner') && ns.includes('one.txt'), 'the dropped tree');
  await page.click('#crumbs a');
  await waitNames(page, (ns) => ns.includes('Photos'), 'back at the root');
});

await step('upload files, a name clash shown as renamed', async () => {
  await page.setInputFiles('#pick-files', [path.join(WORK, 'a.png'), path.join(WORK, 'b.png'), path.join(WORK, 'note.txt')]);
  await waitNames(page, (ns) => ns.includes('a.png') && ns.includes('b.png') && ns.includes('note.txt'), 'the files');
  await page.setInputFiles('#pick-files', [path.join(WORK, 'note.txt')]);
  await page.waitForSelector('#queue-list .job.renamed');
  const status = await page.textContent('#queue-list .job.renamed .status');
  check(status.includes('note(1).txt'), `the clash says its new name: ${status}`);
  await waitNames(page, (ns) => ns.includes('note(1).txt'), 'the renamed copy');
});

await step('rename in place', async () => {
  await select(page, 'note(1).txt');
  await page.keyboard.press('F2');
  await page.fill('#list input.rename', 'renamed.txt');
  await page.keyboard.press('Enter');
  await waitNames(page, (ns) => ns.includes('renamed.txt') && !ns.includes('note(1).txt'), 'the rename');
});

await step('move a multi-selection', async () => {
  await select(page, 'renamed.txt', 'b.png');
  await page.click('#move');
  await page.waitForSelector('#dialog[open] ul.picker');
  await page.click('#dialog[open] button[aria-label="Open Photos"]');
  await page.waitForSelector('#dialog[open] .where:text("Into: Photos")');
  await dialog(page);
  await waitNames(page, (ns) => !ns.includes('renamed.txt') && !ns.includes('b.png'), 'moved away');
});

await step('copy', async () => {
  await select(page, 'a.png');
  await page.click('#copy');
  await page.waitForSelector('#dialog[open] ul.picker');
  await page.click('#dialog[open] button[aria-label="Open Photos"]');
  await page.waitForSelector('#dialog[open] .where:text("Into: Photos")');
  await dialog(page);
  await item(page, 'Photos').dblclick();
  await waitNames(page, (ns) => ['renamed.txt', 'b.png', 'a.png'].every((n) => ns.includes(n)), 'the moved and copied files');
});

await step('lightbox with arrow keys', async () => {
  await item(page, 'a.png').dblclick();
  await page.waitForSelector('#viewer[open] img');
  const first = await page.textContent('#viewer-title');
  await page.keyboard.press('ArrowRight');
  await page.waitForFunction((f) => document.querySelector('#viewer-title').textContent !== f, first);
  facts.lightbox = [first, await page.textContent('#viewer-title')];
  await page.keyboard.press('Escape');
  await page.waitForFunction(() => !document.querySelector('#viewer').open);
});

await step('delete a multi-selection', async () => {
  await select(page, 'a.png', 'renamed.txt');
  await page.click('#delete');
  await dialog(page);
  await waitNames(page, (ns) => !ns.includes('a.png') && !ns.includes('renamed.txt') && ns.includes('b.png'), 'the deletion');
});

await step('download a file and a zip', async () => {
  await page.click('#crumbs a');
  await waitNames(page, (ns) => ns.includes('note.txt'), 'the root');
  await select(page, 'note.txt');
  let [dl] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
  await dl.saveAs(path.join(WORK, 'got-note.txt'));
  await select(page, 'tree', 'note.txt');
  [dl] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
  facts.zip_name = dl.suggestedFilename();
  await dl.saveAs(path.join(WORK, 'got.zip'));
});

await step('search in the folder tree', async () => {
  await page.fill('#search', 'two');
  await waitNames(page, (ns) => ns.length === 1 && ns[0] === 'two.txt', 'the search finds a file two levels down');
  await page.fill('#search', '');
  await waitNames(page, (ns) => ns.includes('Photos'), 'the search cleared');
});

await step('every key of the ? overlay', async () => {
  await page.evaluate(() => document.activeElement?.blur());
  await page.keyboard.press('?');
  await page.waitForSelector('#help[open]');
  const keys = await page.$$eval('#help-keys kbd', (els) => els.map((e) => e.textContent));
  facts.keys = keys;
  await page.keyboard.press('Escape');
  const focusList = async () => { await page.click('#files', { position: { x: 5, y: 5 } }).catch(() => {}); await page.evaluate(() => document.activeElement?.blur()); };
  const open = async (sel) => {
    await page.waitForSelector(`${sel}[open]`);
    await page.keyboard.press('Escape');
    await page.waitForFunction((q) => !document.querySelector(q).open, sel);
  };
  const effects = {
    '?': async () => open('#help'),
    '/': async () => { await page.waitForFunction(() => document.activeElement?.id === 'search'); await page.keyboard.press('Escape'); },
    n: async () => open('#dialog'),
    u: async () => {},
    F2: async () => { await page.waitForSelector('#list input.rename'); await page.keyboard.press('Escape'); await page.waitForSelector('#list input.rename', { state: 'detached' }); },
    m: async () => open('#dialog'),
    c: async () => open('#dialog'),
    Delete: async () => open('#dialog'),
    d: async () => {},
    i: async () => open('#dialog'),
    g: async () => page.waitForSelector('#list.grid'),
    t: async () => page.waitForFunction(() => document.documentElement.dataset.theme),
    'Ctrl+a': async () => page.waitForFunction(() => document.querySelectorAll('#list .item.selected').length === document.querySelectorAll('#list .item').length),
    Escape: async () => page.waitForFunction(() => !document.querySelector('#list .item.selected')),
    ArrowDown: async () => page.waitForFunction(() => document.querySelector('#list .item.focus')),
    ArrowUp: async () => page.waitForFunction(() => document.querySelector('#list .item.focus')),
    Enter: async () => page.waitForFunction(() => document.querySelector('#crumbs [aria-current]')),
    Backspace: async () => page.waitForFunction(() => !document.querySelector('#crumbs [aria-current]')),
    ArrowRight: async () => {},
    ArrowLeft: async () => {},
  };
  for (const k of keys) {
    check(effects[k], `a check for the listed key ${k}`);
    await focusList();
    // Keys that act on a selection get one (the first item, a folder for Enter).
    if (['F2', 'm', 'c', 'Delete', 'd', 'i', 'Enter'].includes(k)) await select(page, 'Photos');
    if (k === 'ArrowUp') await page.keyboard.press('ArrowDown');
    if (k === 'Escape') await select(page, 'Photos');
    if (k === 'ArrowRight' || k === 'ArrowLeft') {
      // Bound in the viewer: from the picture to the text file, shown inline.
      await select(page, 'a.png');
      await page.keyboard.press('Enter');
      await page.waitForSelector('#viewer[open] img');
      await page.keyboard.press(k);
      await page.waitForFunction(() => document.querySelector('#viewer-title').textContent === 'note.txt');
      const text = await page.frameLocator('#viewer-body iframe').locator('body').textContent({ timeout: 5000 });
      check(text.includes('a note'), `the text file in the viewer: ${text}`);
      await page.keyboard.press('Escape');
      await page.waitForFunction(() => !document.querySelector('#viewer').open);
      continue;
    }
    if (k === 'u') {
      // The key's effect is a click on the page's multiple-file input, counted here. Whether
      // Chromium then shows its chooser is Chromium's: on loaded CI machines it sometimes
      // showed none for 30 s (three presses), so the chooser is checked only when it comes.
      await page.evaluate(() => {
        const input = document.querySelector('#pick-files');
        window.pickerClicks = 0;
        input.addEventListener('click', () => { window.pickerClicks += 1; });
      });
      const [chooser] = await Promise.all([
        page.waitForEvent('filechooser', { timeout: 5000 }).catch(() => null),
        page.keyboard.press('u'),
      ]);
      const picker = await page.evaluate(() => ({ clicks: window.pickerClicks, multiple: document.querySelector('#pick-files').multiple }));
      facts.upload_chooser_shown = Boolean(chooser);
      check(picker.clicks === 1 && picker.multiple, `the upload picker: ${JSON.stringify(picker)}`);
      check(!chooser || chooser.isMultiple(), 'the upload chooser takes several files');
      continue;
    }
    if (k === 'd') {
      await select(page, 'note.txt');
      const [dl] = await Promise.all([page.waitForEvent('download'), page.keyboard.press('d')]);
      check(dl.suggestedFilename() === 'note.txt', 'the download key');
      continue;
    }
    await page.keyboard.press(k === 'Ctrl+a' ? 'Control+a' : k);
    await effects[k]();
    if (k === 'g') await page.keyboard.press('g');
  }
  await page.evaluate(() => localStorage.removeItem('ocloud-theme'));
});

await step('screenshots: desktop, dark, phone', async () => {
  await page.goto(`${BASE_URL}/`);
  await waitNames(page, (ns) => ns.includes('Photos'), 'the root');
  await page.screenshot({ path: path.join(SHOTS, 'desktop.png') });
  await page.emulateMedia({ colorScheme: 'dark' });
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  check(bg === 'rgb(21, 21, 21)', `dark background from prefers-color-scheme: ${bg}`);
  await page.screenshot({ path: path.join(SHOTS, 'dark.png') });
  await page.emulateMedia({ colorScheme: 'light' });
  const phone = await context.newPage();
  await phone.setViewportSize({ width: 375, height: 740 });
  await phone.goto(`${BASE_URL}/`);
  await phone.waitForSelector('#list .item');
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth);
  check(overflow <= 375, `no sideways scrolling at 375 px (${overflow} px wide)`);
  await phone.screenshot({ path: path.join(SHOTS, 'phone.png') });
  await phone.close();
});

await step('first paint of a 10,000-entry folder', async () => {
  const t0 = Date.now();
  await page.goto(`${BASE_URL}/#${BIG_FOLDER}`);
  await page.waitForSelector('#list .item');
  facts.first_paint_ms = Date.now() - t0;
  facts.big_first_page = (await names(page)).length;
});

await step('axe-core finds no serious or critical violation', async () => {
  const axeContext = await browser.newContext({ bypassCSP: true, storageState: await context.storageState() });
  const results = [];
  for (const url of ['/', '/ui/account']) {
    const p = await axeContext.newPage();
    await p.goto(`${BASE_URL}${url}`);
    if (url === '/') await p.waitForSelector('#list .item');
    await p.addScriptTag({ path: require.resolve('axe-core/axe.min.js') });
    const r = await p.evaluate(async () => (await window.axe.run()).violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length })));
    results.push(...r.map((v) => ({ url, ...v })));
    await p.close();
  }
  facts.axe = results.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  await axeContext.close();
});

await step('a quota-exceeded upload says why', async () => {
  await page.goto(`${BASE_URL}/`);
  await waitNames(page, (ns) => ns.includes('Photos'), 'the root');
  await page.setInputFiles('#pick-files', path.join(WORK, 'too-big.bin'));
  await page.waitForSelector('#queue-list .job.failed');
  facts.quota_message = await page.textContent('#queue-list .job.failed .status');
  facts.quota_toast = await page.textContent('#toast');
  // That refusal was the point: not a page error.
  for (let i = errors.length - 1; i >= 0; i--) if (errors[i].startsWith('413 POST')) errors.splice(i, 1);
});

await step('the account page revokes an application', async () => {
  await page.goto(`${BASE_URL}/ui/account`);
  const apps = await page.$$eval('ul.grants .app-name', (els) => els.map((e) => e.textContent));
  facts.grants_before = apps;
  if (apps.length) {
    await page.click('ul.grants button.revoke');
    await page.waitForFunction((n) => document.querySelectorAll('ul.grants li').length === n - 1, apps.length);
  }
  facts.signed_out_page = true;
});

await step('sign out', async () => {
  await page.goto(`${BASE_URL}/`);
  await page.click('button[aria-label="Sign out"]');
  await page.waitForSelector('text=You are signed out.');
  await page.goto(`${BASE_URL}/`);
  await page.waitForSelector('#username');
});

check(errors.length === 0, `no script errors: ${errors.join(' | ')}`);
console.log(JSON.stringify(facts));
await browser.close();
