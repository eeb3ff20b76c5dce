// The operations page of `orderflow-dev up` in a real browser (Debian's Chromium, driven
// by Playwright): orders placed through the API appear and move to CONFIRMED, an
// order's timeline opens with every stream's events, and a poison message appears
// under its DLQ with the error its consumer recorded, linked to its order. Writes a
// screenshot of each page. `tests/e2e.rs` starts the stack and runs this with:
//
//   API_URL, TOKEN    the order API and a customer's token, to place orders
//   CUSTOMER          that customer's id
//   OPS_URL           the operations page
//   POISON_ORDER      the order a poison message in DLQ names
//   DLQ               that DLQ's logical id
//   SCREENSHOTS       a directory for ops-page.png and ops-order.png
//   CHROMIUM          the browser (default /usr/bin/chromium)
//
// It prints one JSON line of what it saw and exits 1 on the first thing that is wrong.

import { chromium } from "playwright-core";
import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const [api, token, customer, ops, poisonOrder, dlq, shots] = [
  "API_URL",
  "TOKEN",
  "CUSTOMER",
  "OPS_URL",
  "POISON_ORDER",
  "DLQ",
  "SCREENSHOTS",
].map(env);
const WAIT = { timeout: 90_000 };
mkdirSync(shots, { recursive: true });

async function place() {
  const response = await fetch(`${api}/orders`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
      "idempotency-key": randomUUID(),
    },
    body: JSON.stringify({
      customerId: customer,
      items: [{ sku: "SKU-1", quantity: 1 }],
      paymentToken: "tok_visa",
      shippingAddress: { name: "Ada", line1: "1 Main St", city: "Springfield", postalCode: "12345", country: "US" },
    }),
  });
  const body = await response.json();
  if (response.status !== 201) throw new Error(`POST /orders: ${response.status} ${JSON.stringify(body)}`);
  return body.orderId;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const seen = {};
try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
  const requests = [];
  page.on("request", (request) => requests.push(request.url()));
  await page.goto(`${ops}/`);
  await page.locator("#status[data-state=ok]").waitFor(WAIT);

  // Placed through the API while the page is open: they appear, then confirm.
  const orders = [await place(), await place(), await place()];
  for (const id of orders) {
    const row = page.locator(`tr[data-order-row="${id}"]`);
    await row.waitFor(WAIT);
    await row.locator('[data-status="CONFIRMED"]').waitFor(WAIT);
  }
  seen.confirmed = orders;
  seen.flowConfirmed = Number(await page.locator('[data-step="CONFIRMED"] .now').textContent());
  if (!(seen.flowConfirmed >= orders.length)) throw new Error(`the flow shows ${seen.flowConfirmed} confirmed`);

  // The poison message, under its DLQ, with its recorded error and its order.
  const parked = page.locator(`[data-dlq="${dlq}"] li[data-parked]`).filter({
    has: page.locator(`a[data-order="${poisonOrder}"]`),
  });
  await parked.first().waitFor(WAIT);
  seen.parkedError = (await parked.first().locator(".err").textContent()).trim();
  if (seen.parkedError === "no failure recorded") throw new Error("the parked message has no recorded error");
  await page.screenshot({ path: join(shots, "ops-page.png"), fullPage: true });

  // One order's four streams on one timeline.
  await page.locator(`tr[data-order-row="${orders[0]}"] a[data-order]`).click();
  await page.locator('#timeline tr[data-event="OrderConfirmed"]').waitFor(WAIT);
  seen.timeline = await page.locator("#timeline tbody tr").evaluateAll((rows) =>
    rows.map((r) => `${r.querySelector(".stream").textContent}:${r.dataset.event}`),
  );
  for (const expected of ["order:OrderPlaced", "inventory:StockReserved", "payment:PaymentCaptured", "order:OrderConfirmed"]) {
    if (!seen.timeline.includes(expected)) throw new Error(`the timeline lacks ${expected}: ${seen.timeline}`);
  }
  await page.screenshot({ path: join(shots, "ops-order.png"), fullPage: true });

  // Nothing but the page's own origin was asked for.
  seen.foreign = requests.filter((url) => !url.startsWith(ops));
  if (seen.foreign.length) throw new Error(`requests outside the page's origin: ${seen.foreign}`);
  console.log(JSON.stringify({ ok: true, ...seen }));
} catch (error) {
  console.log(JSON.stringify({ ok: false, error: String(error.message || error), ...seen }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
