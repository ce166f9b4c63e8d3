// End-to-end test of the Spotify login in a real browser (Chromium through
// playwright-core): the static page served by nginx, baa behind it over
// FastCGI, and the fake Spotify. tests/e2e/run.py starts all of that and runs
// this file; it can also be run by hand against a running stack:
//
//   BAA_E2E_URL=https://127.0.0.1:8443 BAA_E2E_DISPLAY_NAME="Demo User" \
//     node tests/e2e/login.spec.mjs [SCREENSHOT_DIR]
//
// Environment:
//   BAA_E2E_URL           base URL of nginx (required), e.g. https://127.0.0.1:8443
//   BAA_E2E_FAKE_URL      base URL of the fake Spotify (checked in the redirect chain)
//   BAA_E2E_DISPLAY_NAME  the display name the fake approves (default "Demo User")
//   BAA_E2E_SCREENSHOTS   where screenshots go (or argv[2]; default a new temp dir)
//   BAA_E2E_USER_DATA_DIR the browser profile dir (default a new temp dir, removed);
//                         the second device's is DIR-device-b, removed
//   BAA_E2E_RESULTS       file to write the results to, as JSON (optional)
//   BAA_E2E_CHROMIUM      browser binary (default /usr/bin/chromium)
//   BAA_E2E_HOOKS_URL     run.py's hooks (tests/e2e/hooks.py): age the user's
//                         grant, turn the stand-in's development mode on/off.
//                         Without it the steps that need them fail.
//
// Prints "ok NAME" / "FAIL NAME" (+ indented details) per step, the
// screenshot paths as "# screenshot: PATH", then "N passed, N failed".
// A failed step stops the test: the later steps are reported as failed
// ("not run"), as they depend on the earlier ones. Exit status 0 iff all
// passed.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const STEP_TIMEOUT_MS = 15_000; // a whole step
const WAIT_TIMEOUT_MS = 10_000; // one wait or action inside a step (so it fails first, saying what)
const TOTAL_TIMEOUT_MS = 100_000;

const base = (process.env.BAA_E2E_URL || '').replace(/\/+$/, '');
const fakeUrl = (process.env.BAA_E2E_FAKE_URL || '').replace(/\/+$/, '');
const displayName = process.env.BAA_E2E_DISPLAY_NAME || 'Demo User';
const executablePath = process.env.BAA_E2E_CHROMIUM || '/usr/bin/chromium';
const resultsFile = process.env.BAA_E2E_RESULTS || '';
const hooksUrl = (process.env.BAA_E2E_HOOKS_URL || '').replace(/\/+$/, '');
const shotDir = process.argv[2] || process.env.BAA_E2E_SCREENSHOTS ||
  fs.mkdtempSync(path.join(os.tmpdir(), 'baa-e2e-screenshots-'));
let userDataDir = process.env.BAA_E2E_USER_DATA_DIR || '';
const ownUserDataDir = !userDataDir;

if (!base.startsWith('https://')) {
  console.error('login.spec.mjs: set BAA_E2E_URL to the https base URL of nginx');
  process.exit(2);
}
fs.mkdirSync(shotDir, { recursive: true });

// The steps, in order. Each gets the shared state object `t`.
const steps = [];
const step = (name, fn) => steps.push({ name, fn });

const results = [];
const screenshots = [];

class StepFailure extends Error {}
function check(cond, message) {
  if (!cond) throw new StepFailure(message);
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new StepFailure(`${what}: no result within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// What the page shows: which section is visible, the name, the error line.
async function pageState(page) {
  return page.evaluate(() => {
    const visible = (id) => {
      const e = document.getElementById(id);
      return !!e && !e.hidden && e.getClientRects().length > 0;
    };
    return {
      url: location.href,
      loading: visible('loading'),
      anonymous: visible('anonymous'),
      user: visible('user'),
      name: document.getElementById('name')?.textContent ?? null,
      greeting: document.getElementById('greeting')?.textContent ?? null,
      error: visible('error') ? document.getElementById('error').textContent : null,
      loginText: document.getElementById('login')?.textContent ?? null,
      text: (document.body?.innerText ?? '').slice(0, 300),
    };
  });
}

async function shoot(page, name) {
  const file = path.join(shotDir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true, timeout: WAIT_TIMEOUT_MS });
  screenshots.push(file);
  return file;
}

// GET /me from the page itself (same origin, the browser's cookies).
async function fetchMe(page) {
  return page.evaluate(async () => {
    const r = await fetch('/me', { credentials: 'same-origin', cache: 'no-store' });
    return { status: r.status, body: await r.text() };
  });
}

async function expectAnonymous(page, what) {
  const login = page.locator('#login');
  await login.waitFor({ state: 'visible' });
  const text = (await login.textContent()).trim();
  check(text === 'Log in with Spotify', `${what}: login link reads ${JSON.stringify(text)}`);
  const s = await pageState(page);
  check(s.anonymous && !s.user && !s.loading, `${what}: wrong sections visible: ${JSON.stringify(s)}`);
  check(s.error === null, `${what}: the page shows an error: ${JSON.stringify(s.error)}`);
  return s;
}

async function expectLoggedIn(page, what) {
  await page.locator('#user').waitFor({ state: 'visible' });
  const s = await pageState(page);
  check(s.user && !s.anonymous && !s.loading, `${what}: wrong sections visible: ${JSON.stringify(s)}`);
  check(s.name === displayName,
        `${what}: name is ${JSON.stringify(s.name)}, expected ${JSON.stringify(displayName)}`);
  const greeting = (s.greeting || '').replace(/\s+/g, ' ').trim();
  check(greeting === `Logged in as ${displayName}`, `${what}: greeting is ${JSON.stringify(greeting)}`);
  check(s.error === null, `${what}: the page shows an error: ${JSON.stringify(s.error)}`);
  const logout = (await page.locator('#logout').textContent()).trim();
  check(logout === 'Log out', `${what}: logout button reads ${JSON.stringify(logout)}`);
  return s;
}

// The cookies' names: __Host- makes the browser refuse one set with a
// Domain, without Secure or off Path=/ (so a sibling subdomain cannot
// plant one). baa still reads the old names but never writes them.
const SESSION_COOKIE = '__Host-baa_session';
const OAUTH_COOKIE = '__Host-baa_oauth';
const LEGACY_COOKIES = ['baa_session', 'baa_oauth'];

async function sessionCookies(context) {
  return (await context.cookies(base + '/')).filter((c) => c.name === SESSION_COOKIE);
}

// ---------------------------------------------------------------------------
// the steps

step('anonymous_page_offers_login', async (t) => {
  const resp = await t.page.goto(base + '/', { waitUntil: 'load' });
  check(resp && resp.status() === 200, `GET / -> ${resp && resp.status()}`);
  await expectAnonymous(t.page, 'GET /');
  const href = await t.page.locator('#login').getAttribute('href');
  check(href === '/login', `login link points to ${JSON.stringify(href)}`);
  const me = await fetchMe(t.page);
  check(me.status === 401, `GET /me before login -> ${me.status} ${me.body}`);
  check((await sessionCookies(t.context)).length === 0, `a ${SESSION_COOKIE} cookie exists before login`);
});

step('login_through_spotify_shows_user', async (t) => {
  await Promise.all([
    t.page.waitForURL(base + '/', { waitUntil: 'load' }),
    t.page.locator('#login').click(),
  ]);
  await expectLoggedIn(t.page, 'after login');
  // The main frame went /login -> fake /authorize -> /callback -> /, by redirects.
  const chain = t.navigations.map((n) => `${n.status} ${n.url}`);
  const where = (i) => new URL(t.navigations[i].url);
  const describe = `navigations:\n    ${chain.join('\n    ')}`;
  check(t.navigations.length === 4, `expected 4 document responses; ${describe}`);
  check(where(0).href === base + '/login' && t.navigations[0].status === 302, `first is not 302 /login; ${describe}`);
  check(where(1).pathname === '/authorize' && t.navigations[1].status === 302,
        `second is not a 302 from /authorize; ${describe}`);
  if (fakeUrl) check(where(1).origin === new URL(fakeUrl).origin, `/authorize is not the fake's; ${describe}`);
  check(where(1).searchParams.get('code_challenge_method') === 'S256', `no PKCE at /authorize; ${describe}`);
  check(where(2).origin + where(2).pathname === base + '/callback' && t.navigations[2].status === 302 &&
        where(2).searchParams.get('code') && where(2).searchParams.get('state') ===
        where(1).searchParams.get('state'), `third is not a 302 /callback with code and state; ${describe}`);
  check(where(3).href === base + '/' && [200, 304].includes(t.navigations[3].status),
        `last is not 200 (or 304) /; ${describe}`);
  const me = await fetchMe(t.page);
  check(me.status === 200, `GET /me after login -> ${me.status} ${me.body}`);
  check(JSON.parse(me.body).display_name === displayName, `GET /me: ${me.body}`);
  t.loggedInShot = await shoot(t.page, 'logged-in');
});

step('reload_keeps_session', async (t) => {
  const resp = await t.page.reload({ waitUntil: 'load' });
  check(resp && [200, 304].includes(resp.status()), `reload -> ${resp && resp.status()}`);
  await expectLoggedIn(t.page, 'after reload');
});

step('session_cookie_is_httponly_secure_lax', async (t) => {
  const all = await t.context.cookies(base + '/');
  const cookies = all.filter((c) => c.name === SESSION_COOKIE);
  check(cookies.length === 1, `expected one ${SESSION_COOKIE} cookie, have ${JSON.stringify(all)}`);
  const c = cookies[0];
  t.sessionCookie = c;
  check(c.value.length > 0, `${SESSION_COOKIE} is empty`);
  check(c.httpOnly === true, `${SESSION_COOKIE} is not HttpOnly: ${JSON.stringify(c)}`);
  check(c.secure === true, `${SESSION_COOKIE} is not Secure: ${JSON.stringify(c)}`);
  check(c.sameSite === 'Lax', `${SESSION_COOKIE} is SameSite=${c.sameSite}, not Lax`);
  check(c.path === '/', `${SESSION_COOKIE} has path ${c.path}`);
  check(c.domain === '127.0.0.1', `${SESSION_COOKIE} has domain ${c.domain} (expected a host-only cookie)`);
  check(c.expires > Date.now() / 1000, `${SESSION_COOKIE} is a session cookie or expired: expires=${c.expires}`);
  check(!all.some((x) => x.name === OAUTH_COOKIE && x.value !== ''),
        `the login cookie ${OAUTH_COOKIE} is still set after the callback`);
  const legacy = all.filter((x) => LEGACY_COOKIES.includes(x.name));
  check(legacy.length === 0, `baa wrote a cookie under an old name: ${JSON.stringify(legacy)}`);
  const visible = await t.page.evaluate(() => document.cookie);
  check(!visible.includes('baa_session') && !visible.includes(c.value),
        `document.cookie exposes the session: ${JSON.stringify(visible)}`);
});

step('logout_shows_login_again', async (t) => {
  await t.page.locator('#logout').click();
  await expectAnonymous(t.page, 'after logout');
  const me = await fetchMe(t.page);
  check(me.status === 401, `GET /me after logout -> ${me.status} ${me.body}`);
  const left = await sessionCookies(t.context);
  check(left.length === 0, `${SESSION_COOKIE} still in the browser after logout: ${JSON.stringify(left)}`);
  t.loggedOutShot = await shoot(t.page, 'logged-out');
  // Reloading does not bring the session back.
  await t.page.reload({ waitUntil: 'load' });
  await expectAnonymous(t.page, 'after logout and reload');
});

step('old_session_cookie_is_revoked', async (t) => {
  check(t.sessionCookie, 'no session cookie was captured');
  // Put the pre-logout cookie back, as a copy of it would be: the server must refuse it.
  const c = t.sessionCookie;
  await t.context.addCookies([{ name: c.name, value: c.value, domain: c.domain, path: c.path,
                                expires: c.expires, httpOnly: c.httpOnly, secure: c.secure,
                                sameSite: c.sameSite }]);
  const me = await fetchMe(t.page);
  check(me.status === 401, `GET /me with the logged-out cookie -> ${me.status} ${me.body}`);
  await t.context.clearCookies();
});

// Devices: the same user on two browsers, each with its own session. A
// persistent context is the only one its browser has, so device B is a
// second Chromium with a profile of its own, next to A's (run.py's
// clean-up finds it by A's profile path, which B's starts with). B calls
// itself Firefox on Windows, so the two rows differ in more than "this
// device".

const DEVICE_B_USER_AGENT =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0';
const DEVICE_B_LABEL = 'Firefox on Windows';

async function logIn(page, what) {
  await page.goto(base + '/', { waitUntil: 'load' });
  await expectAnonymous(page, `${what}, before logging in`);
  await Promise.all([
    page.waitForURL(base + '/', { waitUntil: 'load' }),
    page.locator('#login').click(),
  ]);
  await expectLoggedIn(page, `${what}, after logging in`);
}

async function fetchJson(page, url) {
  const r = await page.evaluate(async (u) => {
    const res = await fetch(u, { credentials: 'same-origin', cache: 'no-store' });
    return { status: res.status, body: await res.text() };
  }, url);
  check(r.status === 200, `GET ${url} -> ${r.status} ${r.body}`);
  return JSON.parse(r.body);
}

// The rows of a list on the page, as the user reads them.
async function listRows(page, list) {
  return page.locator(`#${list} li`).evaluateAll((lis) => lis.map((li) => ({
    text: li.innerText.replace(/\s+/g, ' ').trim(),
    current: li.dataset.current ?? null,
    button: li.querySelector('button')?.textContent.trim() ?? null,
  })));
}

// The lists arrive after the page shows the user: wait for n rows.
async function waitForRows(page, list, n, what) {
  try {
    await page.waitForFunction(([id, count]) => document.querySelectorAll(`#${id} li`).length === count,
                               [list, n], { timeout: WAIT_TIMEOUT_MS });
  } catch (e) {
    throw new StepFailure(`${what}: expected ${n} rows in #${list}, the page shows ` +
                          JSON.stringify(await listRows(page, list)));
  }
  return listRows(page, list);
}

function checkDeviceRow(row, label, current, what) {
  const describe = `${what}: ${JSON.stringify(row)}`;
  check(row.text.includes(label), `${describe} does not name ${label}`);
  check(row.text.includes('(this device)') === current && row.current === (current ? 'yes' : 'no'),
        `${describe} is ${current ? 'not ' : ''}marked as this device`);
  check(/Network 127\.0\.0\.0\/24/.test(row.text), `${describe} shows no network 127.0.0.0/24`);
  check(/Logged in .+ · last seen .+/.test(row.text), `${describe} shows no times`);
  check(row.button === 'End session', `${describe} has no "End session" button`);
}

step('second_device_logs_in_as_the_same_user', async (t) => {
  await logIn(t.page, 'device A');
  t.deviceB = await launchDevice(`${userDataDir}-device-b`, { userAgent: DEVICE_B_USER_AGENT });
  t.deviceB.page.on('pageerror', (e) => t.pageErrors.push(`device B: ${e}`));
  await logIn(t.deviceB.page, 'device B');
  const a = await meJson(t.page);
  const b = await meJson(t.deviceB.page);
  check(a.spotify_id === b.spotify_id, `A is ${a.spotify_id}, B is ${b.spotify_id}`);
});

step('device_list_shows_both_devices', async (t) => {
  await t.page.reload({ waitUntil: 'load' });
  await expectLoggedIn(t.page, 'device A');
  const rows = await waitForRows(t.page, 'devices', 2, 'device A');
  const { sessions } = await fetchJson(t.page, '/me/sessions');
  check(sessions.length === 2, `GET /me/sessions: ${JSON.stringify(sessions)}`);
  const mine = sessions.find((x) => x.current);
  const other = sessions.find((x) => !x.current);
  check(mine && other && other.device === DEVICE_B_LABEL, `GET /me/sessions: ${JSON.stringify(sessions)}`);
  t.deviceALabel = mine.device;
  t.deviceBSession = other.id;
  const a = rows.find((r) => r.current === 'yes');
  const b = rows.find((r) => r.current === 'no');
  check(a && b, `device A lists ${JSON.stringify(rows)}`);
  checkDeviceRow(a, t.deviceALabel, true, 'device A\'s own row');
  checkDeviceRow(b, DEVICE_B_LABEL, false, 'device B\'s row on A');
  await shoot(t.page, 'devices');
  // B sees the same two, itself as this device.
  await t.deviceB.page.reload({ waitUntil: 'load' });
  await expectLoggedIn(t.deviceB.page, 'device B');
  const onB = await waitForRows(t.deviceB.page, 'devices', 2, 'device B');
  checkDeviceRow(onB.find((r) => r.current === 'yes') || onB[0], DEVICE_B_LABEL, true, 'device B\'s own row');
});

step('ending_the_other_device_logs_only_it_out', async (t) => {
  await t.page.locator('#devices li', { hasText: DEVICE_B_LABEL }).getByRole('button').click();
  const rows = await waitForRows(t.page, 'devices', 1, 'device A after ending B\'s session');
  checkDeviceRow(rows[0], t.deviceALabel, true, 'device A\'s remaining row');
  await expectLoggedIn(t.page, 'device A after ending B\'s session');
  // B's next request finds its session gone; baa clears B's cookie.
  await t.deviceB.page.reload({ waitUntil: 'load' });
  await expectAnonymous(t.deviceB.page, 'device B after A ended its session');
  const meB = await fetchMe(t.deviceB.page);
  check(meB.status === 401, `GET /me on device B -> ${meB.status} ${meB.body}`);
  const left = await sessionCookies(t.deviceB.context);
  check(left.length === 0, `device B still has ${JSON.stringify(left)}`);
  // A is still logged in, on its own, after a reload too.
  await t.page.reload({ waitUntil: 'load' });
  await expectLoggedIn(t.page, 'device A reloaded');
  await waitForRows(t.page, 'devices', 1, 'device A reloaded');
  const meA = await fetchMe(t.page);
  check(meA.status === 200, `GET /me on device A -> ${meA.status} ${meA.body}`);
});

step('activity_shows_the_ended_session', async (t) => {
  const { events } = await fetchJson(t.page, '/me/activity');
  check(events.length > 0 && events[0].event === 'session_revoked' &&
        events[0].session_id === t.deviceBSession && events[0].device === t.deviceALabel,
        `GET /me/activity starts with ${JSON.stringify(events[0])}`);
  // The page shows the newest ten.
  const rows = await waitForRows(t.page, 'activity', Math.min(events.length, 10), 'device A');
  check(rows[0].text.startsWith('Ended a session') && rows[0].text.includes(t.deviceALabel),
        `the newest activity reads ${JSON.stringify(rows[0].text)}`);
  check(rows.some((r) => r.text.startsWith('Logged in') && r.text.includes(DEVICE_B_LABEL)),
        `no login of device B in ${JSON.stringify(rows.map((r) => r.text))}`);
  await shoot(t.page, 'activity');
});

step('ending_this_device_from_its_own_list_logs_it_out', async (t) => {
  await logIn(t.deviceB.page, 'device B again');
  const rows = await waitForRows(t.deviceB.page, 'devices', 2, 'device B');
  check(rows.filter((r) => r.current === 'yes').length === 1, `device B lists ${JSON.stringify(rows)}`);
  await t.deviceB.page.locator('#devices li[data-current="yes"]').getByRole('button').click();
  await expectAnonymous(t.deviceB.page, 'device B after ending its own session');
  check((await listRows(t.deviceB.page, 'devices')).length === 0, 'device B still lists devices');
  const left = await sessionCookies(t.deviceB.context);
  check(left.length === 0, `device B still has ${JSON.stringify(left)}`);
  await t.page.reload({ waitUntil: 'load' });
  await expectLoggedIn(t.page, 'device A');
  await waitForRows(t.page, 'devices', 1, 'device A after B ended its own session');
});

step('log_out_everywhere_ends_every_device', async (t) => {
  await logIn(t.deviceB.page, 'device B a third time');
  await t.page.reload({ waitUntil: 'load' });
  await expectLoggedIn(t.page, 'device A');
  await waitForRows(t.page, 'devices', 2, 'device A with B back');
  const everywhere = t.page.locator('#logout-everywhere');
  const text = (await everywhere.textContent()).trim();
  check(text === 'Log out everywhere', `the button reads ${JSON.stringify(text)}`);
  await everywhere.click();
  await expectAnonymous(t.page, 'device A after logging out everywhere');
  check((await listRows(t.page, 'devices')).length === 0, 'device A still lists devices');
  const meA = await fetchMe(t.page);
  check(meA.status === 401, `GET /me on device A -> ${meA.status} ${meA.body}`);
  check((await sessionCookies(t.context)).length === 0, `device A still has a ${SESSION_COOKIE}`);
  await t.deviceB.page.reload({ waitUntil: 'load' });
  await expectAnonymous(t.deviceB.page, 'device B after A logged out everywhere');
  const meB = await fetchMe(t.deviceB.page);
  check(meB.status === 401, `GET /me on device B -> ${meB.status} ${meB.body}`);
  await closeDeviceB(t);
});

// Spotify as it is in 2026: consent that runs out, development mode, and a
// deletion that baa cannot finish at Spotify by itself.

async function hook(method, pathAndQuery) {
  check(hooksUrl, 'BAA_E2E_HOOKS_URL is not set: run this through tests/e2e/run.py');
  const r = await fetch(hooksUrl + pathAndQuery, { method });
  check(r.status === 204, `hook ${method} ${pathAndQuery} -> ${r.status}`);
}

async function meJson(page) {
  const me = await fetchMe(page);
  check(me.status === 200, `GET /me -> ${me.status} ${me.body}`);
  return JSON.parse(me.body);
}

const DAY_MS = 86_400_000;

step('renewal_link_shows_when_consent_runs_out_soon', async (t) => {
  await t.page.goto(base + '/', { waitUntil: 'load' });
  await expectAnonymous(t.page, 'before the second login');
  await Promise.all([
    t.page.waitForURL(base + '/', { waitUntil: 'load' }),
    t.page.locator('#login').click(),
  ]);
  await expectLoggedIn(t.page, 'after the second login');
  check(await t.page.locator('#renew').isHidden(), 'the renewal notice shows right after a login');
  // Spotify's consent lasts 180 days: at 170, baa recommends renewing it.
  await hook('POST', '/grant-age?days=170');
  await t.page.reload({ waitUntil: 'load' });
  await expectLoggedIn(t.page, 'with consent 170 days old');
  await t.page.locator('#renew').waitFor({ state: 'visible' });
  const text = (await t.page.locator('#renew-text').textContent()).trim();
  check(/runs out on/.test(text), `renewal notice reads ${JSON.stringify(text)}`);
  const link = t.page.locator('#renew-link');
  check((await link.textContent()).trim() === 'Renew your Spotify connection',
        `renewal link reads ${JSON.stringify(await link.textContent())}`);
  check(await link.getAttribute('href') === '/login?next=%2F',
        `renewal link points to ${await link.getAttribute('href')}`);
  const me = await meJson(t.page);
  check(me.reauth_recommended === true, `GET /me: ${JSON.stringify(me)}`);
  const due = Date.parse(me.reauth_due_at);
  check(due > Date.now() + 5 * DAY_MS && due < Date.now() + 15 * DAY_MS,
        `reauth_due_at ${me.reauth_due_at} is not about 10 days ahead`);
  await shoot(t.page, 'renewal');
});

step('renewing_starts_six_months_again', async (t) => {
  await Promise.all([
    t.page.waitForURL(base + '/', { waitUntil: 'load' }),
    t.page.locator('#renew-link').click(),
  ]);
  await expectLoggedIn(t.page, 'after renewing');
  check(await t.page.locator('#renew').isHidden(), 'the renewal notice still shows after renewing');
  const me = await meJson(t.page);
  check(me.reauth_recommended === false, `GET /me after renewing: ${JSON.stringify(me)}`);
  check(Date.parse(me.reauth_due_at) > Date.now() + 170 * DAY_MS,
        `reauth_due_at ${me.reauth_due_at} did not move to six months ahead`);
});

// Scopes asked for when needed: the page's "Allow playlist access" asks
// baa for a token that can read playlists, gets 403 insufficient_scope and
// follows its login, which asks Spotify for the scope; back on the page,
// the same button finds the grant.
step('scope_step_up_from_the_page', async (t) => {
  await t.page.goto(base + '/', { waitUntil: 'load' });
  await expectLoggedIn(t.page, 'before the step-up');
  const before = await meJson(t.page);
  check(!(before.scope || '').split(' ').includes('playlist-read-private'),
        `GET /me before the step-up: ${JSON.stringify(before)}`);
  const scopeText = (await t.page.locator('#scope').textContent()).trim();
  check(scopeText === (before.scope || 'none beyond your profile'),
        `the page shows the grant as ${JSON.stringify(scopeText)}`);
  t.navigations.length = 0;
  // The button fetches first and navigates after, so the page is still at
  // "/" when the click returns (waitForURL would be satisfied at once):
  // wait for the chain's last document, "/" loaded again.
  const home = t.page.waitForResponse(
    (r) => r.request().isNavigationRequest() && r.url() === base + '/');
  await t.page.locator('#allow-playlists').click();
  await home;
  await t.page.waitForLoadState('load');
  await expectLoggedIn(t.page, 'after the step-up');
  const chain = t.navigations.map((n) => `${n.status} ${n.url}`);
  const describe = `navigations:\n    ${chain.join('\n    ')}`;
  check(t.navigations.length === 4, `expected 4 document responses; ${describe}`);
  const login = new URL(t.navigations[0].url);
  check(login.pathname === '/login' && login.searchParams.get('scope') === 'playlist-read-private' &&
        login.searchParams.get('next') === '/', `first is not /login?scope=...; ${describe}`);
  const authorize = new URL(t.navigations[1].url);
  check(authorize.pathname === '/authorize' &&
        (authorize.searchParams.get('scope') || '').split(' ').includes('playlist-read-private'),
        `Spotify was not asked for playlist-read-private; ${describe}`);
  const after = await meJson(t.page);
  check(after.scope.split(' ').includes('playlist-read-private'), `GET /me after: ${JSON.stringify(after)}`);
  await t.page.locator('#scope').filter({ hasText: 'playlist-read-private' }).waitFor();
  t.navigations.length = 0;
  await t.page.locator('#allow-playlists').click();
  await t.page.locator('#playlists-status').waitFor({ state: 'visible' });
  check(t.navigations.length === 0, `the granted scope still navigated: ${JSON.stringify(t.navigations)}`);
  await shoot(t.page, 'scope-step-up');
});

step('deleting_shows_where_to_remove_access_at_spotify', async (t) => {
  t.page.once('dialog', (d) => d.accept());
  await t.page.locator('#delete').click();
  await t.page.locator('#deleted').waitFor({ state: 'visible' });
  const href = await t.page.locator('#revoke-link').getAttribute('href');
  check(href === 'https://www.spotify.com/account/apps/', `revoke link points to ${href}`);
  const s = await pageState(t.page);
  check(!s.user && !s.anonymous && s.error === null, `after deletion: ${JSON.stringify(s)}`);
  const me = await fetchMe(t.page);
  check(me.status === 401, `GET /me after deletion -> ${me.status} ${me.body}`);
  check((await sessionCookies(t.context)).length === 0, `${SESSION_COOKIE} is still set after deletion`);
  await shoot(t.page, 'deleted');
});

step('development_mode_refusal_is_explained', async (t) => {
  await hook('POST', '/development-mode?allow=somebody-else');
  try {
    await t.page.goto(base + '/', { waitUntil: 'load' });
    await expectAnonymous(t.page, 'before the refused login');
    t.navigations.length = 0;
    await t.page.locator('#login').click();
    await t.page.locator('#error').waitFor({ state: 'visible' });
    const s = await pageState(t.page);
    check(/development mode/.test(s.error) && /Ask the owner/.test(s.error),
          `the page says ${JSON.stringify(s.error)}`);
    check(s.anonymous && !s.user, `wrong sections visible: ${JSON.stringify(s)}`);
    // The code is taken off the address, so a reload does not repeat it.
    check(s.url === base + '/', `the address still reads ${s.url}`);
    const chain = t.navigations.map((n) => `${n.status} ${new URL(n.url).pathname}`);
    check(chain.length === 4 && chain[2] === '303 /callback' &&
          new URL(t.navigations[3].url).searchParams.get('login_error') === 'spotify_access_denied',
          `navigations: ${chain.join(', ')}`);
    const me = await fetchMe(t.page);
    check(me.status === 401, `GET /me after the refusal -> ${me.status} ${me.body}`);
    check((await sessionCookies(t.context)).length === 0, `a refused login left a ${SESSION_COOKIE}`);
    await shoot(t.page, 'development-mode-refusal');
    await t.page.reload({ waitUntil: 'load' });
    await expectAnonymous(t.page, 'reloaded after the refusal');
  } finally {
    await hook('DELETE', '/development-mode');
  }
});

// ---------------------------------------------------------------------------
// runner

function record(name, ok, detail, ms) {
  results.push({ name, ok, detail: detail || '', ms });
  console.log(`${ok ? 'ok' : 'FAIL'} ${name}`);
  if (detail) console.log(detail.replace(/^/gm, '  '));
}

function finish() {
  const passed = results.filter((r) => r.ok).length;
  const failed = results.length - passed;
  for (const s of screenshots) console.log(`# screenshot: ${s}`);
  if (resultsFile) {
    fs.writeFileSync(resultsFile, JSON.stringify({ results, screenshots, shotDir }, null, 2));
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 && results.length === steps.length ? 0 : 1;
}

// A browser with its profile in dir: one device.
async function launchDevice(dir, options = {}) {
  fs.mkdirSync(dir, { recursive: true });
  const context = await chromium.launchPersistentContext(dir, {
    executablePath,
    headless: true,
    timeout: STEP_TIMEOUT_MS,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    ignoreHTTPSErrors: true,
    viewport: { width: 800, height: 600 },
    ...options,
  });
  context.setDefaultTimeout(WAIT_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(WAIT_TIMEOUT_MS);
  const page = context.pages()[0] || await context.newPage();
  return { context, page, dir };
}

// Device B's browser and profile go as soon as its steps are done, or
// when a step failed.
async function closeDeviceB(t) {
  const b = t.deviceB;
  if (!b) return;
  t.deviceB = null;
  try {
    await withTimeout(b.context.close(), 10_000, 'closing device B\'s browser');
  } finally {
    fs.rmSync(b.dir, { recursive: true, force: true });
  }
}

async function main() {
  const t = { navigations: [], pageErrors: [] };
  let context;
  const watchdog = setTimeout(() => {
    const done = new Set(results.map((r) => r.name));
    for (const s of steps) {
      if (!done.has(s.name)) record(s.name, false, `not finished: the whole test exceeded ${TOTAL_TIMEOUT_MS} ms`);
    }
    const code = finish();
    // Playwright kills the browser it launched when the process exits.
    process.exit(code || 1);
  }, TOTAL_TIMEOUT_MS);

  if (!userDataDir) userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'baa-e2e-profile-'));
  try {
    try {
      ({ context, page: t.page } = await launchDevice(userDataDir));
    } catch (e) {
      record('browser_starts', false, `could not launch ${executablePath}: ${e.message}`);
      for (const s of steps) record(s.name, false, 'not run: the browser did not start');
      return;
    }
    t.context = context;
    t.page.on('pageerror', (e) => t.pageErrors.push(String(e)));
    t.page.on('response', (r) => {
      const req = r.request();
      if (req.isNavigationRequest() && req.frame() === t.page.mainFrame()) {
        t.navigations.push({ url: r.url(), status: r.status() });
      }
    });

    let failedStep = null;
    for (const s of steps) {
      if (failedStep) {
        record(s.name, false, `not run: step ${failedStep} failed`);
        continue;
      }
      const start = Date.now();
      t.navigations.length = 0;
      try {
        const before = t.pageErrors.length;
        await withTimeout(s.fn(t), STEP_TIMEOUT_MS, s.name);
        check(t.pageErrors.length === before,
              `JavaScript errors on the page: ${t.pageErrors.slice(before).join('; ')}`);
        record(s.name, true, '', Date.now() - start);
      } catch (e) {
        failedStep = s.name;
        let detail = e instanceof StepFailure ? e.message : (e && e.message) || String(e);
        if (t.navigations.length) {
          detail += `\ndocuments loaded in this step:\n${t.navigations.map((n) => `  ${n.status} ${n.url}`).join('\n')}`;
        }
        try {
          const st = await withTimeout(pageState(t.page), 3000, 'page state');
          detail += `\npage: ${JSON.stringify(st)}`;
          detail += `\nscreenshot: ${await withTimeout(shoot(t.page, `failed-${s.name}`), 5000, 'screenshot')}`;
        } catch (e2) {
          detail += `\n(could not inspect the page: ${e2.message})`;
        }
        if (t.deviceB) {
          try {
            const st = await withTimeout(pageState(t.deviceB.page), 3000, 'page state');
            detail += `\ndevice B's page: ${JSON.stringify(st)}`;
            detail += `\nscreenshot: ${await withTimeout(shoot(t.deviceB.page, `failed-${s.name}-device-b`),
                                                         5000, 'screenshot')}`;
          } catch (e2) {
            detail += `\n(could not inspect device B's page: ${e2.message})`;
          }
        }
        record(s.name, false, detail, Date.now() - start);
      }
    }
  } finally {
    clearTimeout(watchdog);
    await closeDeviceB(t).catch(() => {});
    if (context) await withTimeout(context.close(), 10_000, 'closing the browser').catch(() => {});
    if (ownUserDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

main().then(() => process.exit(finish()), (e) => {
  record('login.spec.mjs', false, (e && e.stack) || String(e));
  process.exit(finish() || 1);
});
