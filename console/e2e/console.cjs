// console.cjs drives kubegate's web console in Debian's chromium through
// playwright-core, as people would: it is run by e2e/console_test.go, which
// starts the stack and passes everything in the environment. It exits
// non-zero, with the reason on stderr, when any step fails, and saves a
// screenshot of every page to $ARTIFACTS.
"use strict";
const path = require("path");
const fs = require("fs");
const { spawn } = require("child_process");
const { chromium } = require(path.join(process.env.PLAYWRIGHT_DIR, "node_modules", "playwright-core"));

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`environment variable ${k} is not set`);
  return v;
};
const consoleURL = env("CONSOLE_URL"); // https://host:port/ui/
const artifacts = env("ARTIFACTS");
const timeout = 90000;

function step(msg) { process.stderr.write(`[console-e2e] ${msg}\n`); }

async function shot(page, name) {
  const file = path.join(artifacts, name + ".png");
  await page.screenshot({ path: file, fullPage: true });
  step(`screenshot ${file}`);
}

// signIn goes through Dex's login form and returns where it lands.
async function signIn(page, email, password) {
  await page.goto(consoleURL, { waitUntil: "domcontentloaded" });
  await page.waitForSelector("input[name=login]", { timeout });
  await page.fill("input[name=login]", email);
  await page.fill("input[name=password]", password);
  await Promise.all([page.waitForURL((u) => u.href.startsWith(consoleURL), { timeout }), page.click("button[type=submit]")]);
}

// run starts a command and returns a promise of its exit code and output.
function run(cmd, args, extraEnv) {
  const p = spawn(cmd, args, { env: Object.assign({}, process.env, extraEnv) });
  let out = "";
  p.stdout.on("data", (d) => { out += d; });
  p.stderr.on("data", (d) => { out += d; });
  return new Promise((resolve) => p.on("close", (code) => resolve({ code, out })));
}

async function main() {
  fs.mkdirSync(artifacts, { recursive: true });
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", `--user-data-dir=${env("USER_DATA_DIR")}`],
  });
  try {
    const viewport = { width: 1440, height: 900 };
    // The approver.
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport });
    const page = await ctx.newPage();
    page.on("pageerror", (e) => step(`page error: ${e.message}`));
    step("signing in as the approver through Dex");
    await signIn(page, env("APPROVER_EMAIL"), env("APPROVER_PASSWORD"));
    await page.waitForSelector("#live.on", { timeout });
    const who = await page.textContent("#me-name");
    if (!who.includes(env("APPROVER_EMAIL"))) throw new Error(`signed in as ${who}, want ${env("APPROVER_EMAIL")}`);
    if ((await page.textContent("#me-role")) !== "approver") throw new Error("the approver's role is not approver");
    await shot(page, "01-approvals-empty");

    // The agent's held delete appears without a reload.
    const cm = env("CONFIGMAP");
    step(`agent: kubectl delete configmap ${cm} -n prod (held)`);
    const kubectl = run(env("KUBECTL"), ["--kubeconfig", env("AGENT_KUBECONFIG"), "delete", "configmap", cm, "-n", "prod"]);
    let finished = null;
    kubectl.then((r) => { finished = r; });
    const card = page.locator("#pending [data-request]", { hasText: `"${cm}"` });
    await card.waitFor({ timeout });
    if (finished) throw new Error(`kubectl finished before approval: ${finished.out}`);
    if (!(await card.textContent()).includes(env("AGENT_EMAIL"))) throw new Error("the held request does not name the agent");
    await card.locator("input").fill("checked in the change ticket");
    await shot(page, "02-approvals-pending");
    step("approving in the console");
    await card.locator("button[data-action=approve]").click();
    const res = await Promise.race([kubectl, new Promise((_, rej) => setTimeout(() => rej(new Error("kubectl never finished after the approval")), timeout))]);
    step(`kubectl exited ${res.code}: ${res.out.trim()}`);
    if (res.code !== 0 || !res.out.includes(`configmap "${cm}" deleted`)) throw new Error(`kubectl after approval: exit ${res.code}: ${res.out}`);
    const row = page.locator("#decided-table tr", { hasText: `"${cm}"` });
    await row.waitFor({ timeout });
    const rowText = await row.textContent();
    if (!rowText.includes("approved") || !rowText.includes(env("APPROVER_EMAIL"))) throw new Error(`decision row: ${rowText}`);
    await page.locator("#pending [data-request]", { hasText: `"${cm}"` }).waitFor({ state: "detached", timeout });
    await shot(page, "03-approvals-decided");

    // The recording of the exec -it session.
    step("opening the sessions page");
    await page.click("a[data-nav=sessions]");
    const recID = env("RECORDING_ID");
    const rec = page.locator(`#recorded-table tr[data-recording="${recID}"]`);
    await rec.waitFor({ timeout });
    await shot(page, "04-sessions");
    await rec.click();
    await page.waitForSelector(".ap-player", { timeout });
    await page.selectOption("#speed", "4");
    await page.waitForSelector(".ap-player", { timeout });
    await page.waitForFunction(() => window.kubegatePlayer && window.kubegatePlayer.getDuration && window.kubegatePlayer.getDuration() > 0, null, { timeout }).catch(() => {});
    await page.click(".ap-player");
    const typed = env("TYPED");
    const printed = env("PRINTED");
    step(`playing; waiting for "${typed}" and "${printed}" on the terminal`);
    await page.waitForFunction(([a, b]) => {
      const t = document.querySelector(".ap-term");
      return t && t.textContent.includes(a) && t.textContent.includes(b);
    }, [typed, printed], { timeout });
    const facts = await page.textContent("#session-facts");
    if (!facts.includes(env("EXIT_CODE"))) throw new Error(`session facts lack exit code ${env("EXIT_CODE")}: ${facts}`);
    await page.waitForFunction(() => window.kubegatePlayer.getCurrentTime() >= window.kubegatePlayer.getDuration() - 0.5, null, { timeout }).catch(() => {});
    await shot(page, "05-recording");

    // The API timeline of the agent's token.
    step("opening the API timeline");
    await page.click("a[data-nav=timeline]");
    const cred = page.locator("#credential-table tr.clickable", { hasText: env("AGENT_EMAIL") }).first();
    await cred.waitFor({ timeout });
    await shot(page, "06-timeline-sessions");
    await cred.click();
    const del = page.locator("#timeline-table tr", { hasText: "delete" }).first();
    await del.waitFor({ timeout });
    const delText = await del.textContent();
    if (!delText.includes("configmaps") || !delText.includes(cm)) throw new Error(`timeline delete row: ${delText}`);
    await shot(page, "07-timeline");
    await ctx.close();

    // Someone in neither role is refused.
    step("signing in as the agent, who is no approver");
    const ctx2 = await browser.newContext({ ignoreHTTPSErrors: true, viewport });
    const page2 = await ctx2.newPage();
    await signIn(page2, env("AGENT_EMAIL"), env("AGENT_PASSWORD"));
    await page2.waitForSelector("#auth-title", { timeout });
    const title = await page2.textContent("#auth-title");
    if (title !== "Access refused") throw new Error(`the agent saw "${title}", not a refusal`);
    const api = await page2.evaluate(async () => (await fetch("/ui/api/requests")).status);
    if (api !== 401) throw new Error(`the refused agent's API call got ${api}, want 401`);
    await shot(page2, "08-refused");
    await ctx2.close();
  } finally {
    await browser.close();
  }
  step("all steps passed");
}

main().catch((e) => {
  process.stderr.write(`[console-e2e] FAILED: ${e.stack || e}\n`);
  process.exit(1);
});
