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

const t0 = Date.now();
function step(msg) { process.stderr.write(`[console-e2e] +${((Date.now() - t0) / 1000).toFixed(1)}s ${msg}\n`); }

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
  // A fresh profile in USER_DATA_DIR (playwright passes it as
  // --user-data-dir); never a downloaded browser.
  const ctx = await chromium.launchPersistentContext(env("USER_DATA_DIR"), {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
    ignoreHTTPSErrors: true,
    viewport: { width: 1440, height: 900 },
  });
  try {
    // The approver.
    const page = ctx.pages()[0] || await ctx.newPage();
    page.on("pageerror", (e) => step(`page error: ${e.message}`));
    page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") step(`browser console: ${m.text()}`); });
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
    let timer;
    const res = await Promise.race([kubectl, new Promise((_, rej) => { timer = setTimeout(() => rej(new Error("kubectl never finished after the approval")), timeout); })]);
    clearTimeout(timer);
    step(`kubectl exited ${res.code}: ${res.out.trim()}`);
    if (res.code !== 0 || !res.out.includes(`configmap "${cm}" deleted`)) throw new Error(`kubectl after approval: exit ${res.code}: ${res.out}`);
    const row = page.locator("#decided-table tr", { hasText: `"${cm}"` });
    await row.waitFor({ timeout });
    const rowText = await row.textContent();
    if (!rowText.includes("approved") || !rowText.includes(env("APPROVER_EMAIL"))) throw new Error(`decision row: ${rowText}`);
    await page.locator("#pending [data-request]", { hasText: `"${cm}"` }).waitFor({ state: "detached", timeout });
    // A decision made elsewhere (the CLI) shows up without a reload too.
    const cm2 = env("CONFIGMAP") + "-cli";
    step(`agent: kubectl delete configmap ${cm2} -n prod (held); the approver denies it with the CLI`);
    const kubectl2 = run(env("KUBECTL"), ["--kubeconfig", env("AGENT_KUBECONFIG"), "delete", "configmap", cm2, "-n", "prod"]);
    const card2 = page.locator("#pending [data-request]", { hasText: `"${cm2}"` });
    await card2.waitFor({ timeout });
    const id2 = await card2.getAttribute("data-request");
    const cli = await run(env("KUBEGATE"), ["deny", "--kubeconfig", env("APPROVER_KUBECONFIG"), "--reason", "not during the freeze", id2]);
    if (cli.code !== 0) throw new Error(`kubegate deny: ${cli.out}`);
    const denied = page.locator("#decided-table tr", { hasText: `"${cm2}"` });
    await denied.waitFor({ timeout });
    const deniedText = await denied.textContent();
    if (!deniedText.includes("denied") || !deniedText.includes("not during the freeze")) throw new Error(`denial row: ${deniedText}`);
    await card2.waitFor({ state: "detached", timeout });
    const res2 = await kubectl2;
    if (res2.code === 0 || !res2.out.includes("not during the freeze")) throw new Error(`kubectl after the CLI's denial: exit ${res2.code}: ${res2.out}`);
    await shot(page, "03-approvals-decided");

    // The recording of the exec -it session.
    step("opening the sessions page");
    await page.click("a[data-nav=sessions]");
    const recID = env("RECORDING_ID");
    const rec = page.locator(`#recorded-table tr[data-recording="${recID}"]`);
    await rec.waitFor({ timeout });
    // Search: a pod that matches nothing, then the agent's sessions of the last hour.
    await page.fill("#session-search input[name=pod]", "no-such-pod");
    await page.click("#session-search button[type=submit]");
    await page.locator("text=No recordings match.").waitFor({ timeout });
    await page.fill("#session-search input[name=pod]", "toolbox");
    await page.fill("#session-search input[name=user]", "agent@");
    await page.fill("#session-search input[name=since]", "1h");
    await page.click("#session-search button[type=submit]");
    await rec.waitFor({ timeout });
    if (!page.url().includes("user=agent%40") || !page.url().includes("since=1h")) throw new Error(`search URL ${page.url()}`);
    await shot(page, "04-sessions");
    await rec.click();
    await page.waitForSelector(".ap-player", { timeout });
    await page.selectOption("#speed", "4");
    await page.waitForSelector(".ap-player", { timeout });
    await page.click(".ap-player");
    const typed = env("TYPED");
    const printed = env("PRINTED");
    step(`playing; waiting for "${typed}" and "${printed}" on the terminal`);
    await page.waitForFunction(([a, b]) => {
      const t = document.querySelector(".ap-term");
      return t && t.textContent.includes(a) && t.textContent.includes(b);
    }, [typed, printed], { timeout });
    const marks = await page.textContent("#markers");
    if (!marks.includes(typed) || !marks.includes("exit 3")) throw new Error(`markers: ${marks}`);
    const approvals = await page.textContent("#approvals");
    if (!approvals.includes(env("APPROVER_EMAIL")) || !approvals.includes(env("EXEC_APPROVAL"))) throw new Error(`approvals beside the player: ${approvals}`);
    const facts = await page.textContent("#session-facts");
    if (!facts.includes(env("EXIT_CODE"))) throw new Error(`session facts lack exit code ${env("EXIT_CODE")}: ${facts}`);
    await page.waitForSelector("#player[data-state=ended]", { timeout });
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
    const create = page.locator("#timeline-table tr", { hasText: env("TIMELINE_CONFIGMAP") }).first();
    await create.locator("details summary", { hasText: "request" }).click();
    const body = await create.locator("pre.json").first().textContent();
    if (!body.includes(`"name": "${env("TIMELINE_CONFIGMAP")}"`)) throw new Error(`the create's request body: ${body}`);
    await shot(page, "07-timeline");

    // A live session: watched as it happens, then killed.
    step("watching the live session");
    await page.click("a[data-nav=sessions]");
    const liveRow = page.locator("#live-table tr[data-session]", { hasText: "console-live" });
    await liveRow.waitFor({ timeout });
    await shot(page, "08-sessions-live");
    await liveRow.locator("a", { hasText: "Watch" }).click();
    await page.waitForSelector(".ap-player", { timeout });
    await page.waitForSelector(".ap-term", { timeout });
    const tmux = (...args) => run("tmux", ["-L", env("TMUX_SOCKET"), ...args]);
    await tmux("send-keys", "-t", "e2e", "echo live-$((5*5))", "Enter");
    await page.waitForFunction(() => { const t = document.querySelector(".ap-term"); return t && t.textContent.includes("live-25"); }, null, { timeout });
    await shot(page, "09-live-watch");
    step("killing the live session");
    page.once("dialog", (d) => d.accept());
    await page.click("button:has-text('Kill session')");
    const deadline = Date.now() + timeout;
    let screen = "";
    while (Date.now() < deadline) {
      screen = (await tmux("capture-pane", "-p", "-J", "-t", "e2e")).out;
      if (screen.includes("kubectl-exit=")) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    if (!screen.includes("kubectl-exit=") || !screen.includes("killed by " + env("APPROVER_EMAIL"))) throw new Error(`the killed session's terminal:\n${screen}`);
    await shot(page, "10-live-killed");
    step("signing out");
    await page.click("#logout");
    await page.waitForSelector("input[name=login]", { timeout });
    await page.close();

    // Someone in neither role is refused. Dex's own session goes too.
    step("signing in as the agent, who is no approver");
    await ctx.clearCookies();
    const page2 = await ctx.newPage();
    await signIn(page2, env("AGENT_EMAIL"), env("AGENT_PASSWORD"));
    await page2.waitForSelector("#auth-title", { timeout });
    const title = await page2.textContent("#auth-title");
    if (title !== "Access refused") throw new Error(`the agent saw "${title}", not a refusal`);
    const api = await page2.evaluate(async () => (await fetch("/ui/api/requests")).status);
    if (api !== 401) throw new Error(`the refused agent's API call got ${api}, want 401`);
    await shot(page2, "11-refused");
  } catch (e) {
    // What the browser showed when it failed.
    for (const [i, p] of ctx.pages().entries()) {
      await p.screenshot({ path: path.join(artifacts, `failure-${i}.png`), fullPage: true }).catch(() => {});
      step(`failure screenshot of ${p.url()}: ${path.join(artifacts, `failure-${i}.png`)}`);
    }
    throw e;
  } finally {
    await ctx.close();
  }
  step("all steps passed");
}

main().catch((e) => {
  process.stderr.write(`[console-e2e] FAILED: ${e.stack || e}\n`);
  process.exit(1);
});
