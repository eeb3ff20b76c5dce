// The operations page of `orderflow-dev up`: reads /api/overview (or /api/orders/{id})
// every two seconds and draws it. No framework and nothing fetched from elsewhere.
"use strict";

const EVERY_MS = 2000;
// The saga's steps in order, and where a cancelled order ends.
const STEPS = ["PENDING", "CONFIRMED", "PREPARING", "READY", "OUT_FOR_DELIVERY", "DELIVERED"];

const $ = (selector) => document.querySelector(selector);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function orderLink(id) {
  return el("a", { href: `#/orders/${id}`, class: "mono", "data-order": id }, id.slice(0, 8) + "…" + id.slice(-4));
}

function badge(status) {
  return el("span", { class: `badge ${status}`, "data-status": status }, status);
}

function seconds(ms) {
  if (ms === undefined || ms === null) return "—";
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function setStatus(text, state) {
  const status = $("#status");
  status.textContent = text;
  status.dataset.state = state;
}

async function getJson(path) {
  const response = await fetch(path, { cache: "no-store" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${path}: HTTP ${response.status}`);
  return body;
}

function drawCards(data) {
  const cards = [["orders", data.orders]];
  for (const status of [...STEPS, "CANCELLED"]) cards.push([status, data.byStatus[status] || 0]);
  cards.push(["AWS calls", data.calls]);
  $("#cards").replaceChildren(
    ...cards.map(([label, n]) =>
      el("div", { class: "card", "data-card": label }, el("div", { class: "n" }, n), el("div", { class: "l" }, label)),
    ),
  );
}

function drawFlow(data) {
  const nodes = [];
  STEPS.forEach((step, i) => {
    if (i > 0) nodes.push(el("span", { class: "arrow" }, "→"));
    nodes.push(
      el(
        "div",
        { class: "step", "data-step": step },
        el("div", { class: "now" }, data.byStatus[step] || 0),
        el("div", { class: "name" }, step),
        el("div", { class: "past" }, `${data.reached[step] || 0} reached`),
      ),
    );
  });
  const reasons = Object.entries(data.cancelledBy)
    .map(([reason, n]) => `${reason} ${n}`)
    .join(" · ");
  nodes.push(el("span", { class: "arrow" }, "⤳"));
  nodes.push(
    el(
      "div",
      { class: "step cancelled", "data-step": "CANCELLED" },
      el("div", { class: "now" }, data.byStatus.CANCELLED || 0),
      el("div", { class: "name" }, "CANCELLED"),
      el("div", { class: "past" }, reasons || "none"),
    ),
  );
  $("#flow").replaceChildren(...nodes);
}

function drawLatest(data) {
  const rows = data.latest.map((order) =>
    el(
      "tr",
      { "data-order-row": order.orderId },
      el("td", {}, orderLink(order.orderId)),
      el("td", { class: "mono" }, order.customerId),
      el("td", {}, badge(order.status), order.cancellationReason ? ` ${order.cancellationReason}` : ""),
      el("td", { class: "num" }, order.total),
      el(
        "td",
        {},
        el(
          "div",
          { class: "steps" },
          Object.entries(order.timeline)
            .sort((a, b) => a[1] - b[1])
            .map(([status, ms]) => el("span", {}, `${status} +${ms}`)),
        ),
      ),
    ),
  );
  $("#latest tbody").replaceChildren(
    ...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 5, class: "empty" }, "no orders yet"))]),
  );
}

function drawQueues(data) {
  const objective = data.lagObjectiveSeconds ? data.lagObjectiveSeconds * 1000 : null;
  const rows = data.queues
    .filter((q) => q.kind === "queue")
    .map((q) => {
      const age = q.lastBatch ? q.lastBatch.ageMs : null;
      const late = objective !== null && age !== null && age > objective;
      return el(
        "tr",
        { "data-queue": q.logicalId },
        el("td", {}, q.logicalId),
        el("td", { class: "num" }, q.visible),
        el("td", { class: "num" }, q.inFlight),
        el("td", { class: late ? "num late" : "num" }, seconds(age)),
      );
    });
  $("#queues tbody").replaceChildren(...rows);
  const relay = data.relay;
  $("#relay").textContent = relay
    ? `Relay: the oldest record of its last batch was ${seconds(relay.ageMs)} old` +
      (objective ? ` (objective ${data.lagObjectiveSeconds} s)` : "")
    : "Relay: no batch yet";
}

function drawDlqs(data) {
  const depth = Object.fromEntries(data.queues.map((q) => [q.logicalId, q.visible + q.inFlight]));
  const boxes = data.dlqs.map((dlq) => {
    const n = depth[dlq.logicalId] || 0;
    const parked = dlq.parked.map((p) =>
      el(
        "li",
        { "data-parked": p.messageId },
        el("span", { class: "mono" }, p.eventType || "unreadable"),
        " ",
        p.orderId ? orderLink(p.orderId) : "",
        ` · received ${p.receiveCount || "?"}×`,
        el("div", { class: "err" }, p.lastError || "no failure recorded"),
      ),
    );
    return el(
      "div",
      { class: n ? "dlq full" : "dlq", "data-dlq": dlq.logicalId },
      el("h3", {}, `${dlq.logicalId}: ${n}`),
      el("div", { class: "relay" }, `for ${dlq.source}`),
      parked.length ? el("ul", {}, parked) : null,
    );
  });
  $("#dlqs").replaceChildren(...boxes);
}

function drawOrder(data) {
  $("#order-title").replaceChildren("Order ", el("span", { class: "mono" }, data.orderId));
  const view = data.view;
  $("#order-summary").replaceChildren(
    ...(view
      ? [
          badge(view.status),
          el("span", {}, `customer ${view.customerId}`),
          el("span", {}, `total ${view.total.amount} ${view.total.currency}`),
          el("span", {}, `stock ${view.stock}`),
          el("span", {}, `payment ${view.payment ? view.payment.status : "—"}`),
          el("span", {}, `shipment ${view.shipment ? view.shipment.status : "—"}`),
        ]
      : [el("span", { class: "empty" }, "not projected yet")]),
  );
  const start = data.events.length ? Date.parse(data.events[0].occurredAt) : 0;
  const rows = data.events.map((e) =>
    el(
      "tr",
      { class: e.stream, "data-event": e.eventType },
      el("td", { class: "num" }, Date.parse(e.occurredAt) - start),
      el("td", { class: "mono" }, e.occurredAt),
      el("td", { class: "stream" }, e.stream),
      el("td", { class: "num" }, e.version),
      el("td", {}, e.eventType),
      el("td", { class: "mono" }, e.actor),
      el("td", { class: "mono" }, String(e.correlationId || "").slice(0, 13)),
      el("td", { class: "mono" }, String(e.causationId || "").slice(0, 13)),
    ),
  );
  $("#timeline tbody").replaceChildren(...rows);
}

function route() {
  const match = location.hash.match(/^#\/orders\/([0-9a-fA-F-]{36})$/);
  return match ? { order: match[1] } : {};
}

let timer = null;

async function refresh() {
  clearTimeout(timer);
  const { order } = route();
  $("#overview").hidden = Boolean(order);
  $("#order").hidden = !order;
  try {
    if (order) drawOrder(await getJson(`/api/orders/${order}`));
    else {
      const data = await getJson("/api/overview");
      drawCards(data);
      drawFlow(data);
      drawLatest(data);
      drawQueues(data);
      drawDlqs(data);
    }
    setStatus(`updated ${new Date().toLocaleTimeString()}`, "ok");
  } catch (error) {
    setStatus(error.message, "error");
  }
  timer = setTimeout(refresh, EVERY_MS);
}

window.addEventListener("hashchange", refresh);
refresh();
