// What the dashboard (app.js) and the trading page (trade.js) share: DOM and number helpers.
// Loaded first by both pages; plain browser JS, no build step.
"use strict";

window.ExsimPage = (function () {
  const $ = (sel, root = document) => root.querySelector(sel);
  const el = (tag, attrs = {}, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("data-")) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const kid of kids) if (kid != null) e.append(kid);
    return e;
  };
  const money = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const fmt = (v) => (v == null || !isFinite(v) ? "—" : money.format(v));
  const pct = (r) => (r == null || !isFinite(r) ? "—" : (r * 100).toFixed(2) + "%");
  const timeText = (ms) => new Date(ms).toISOString().slice(11, 19);
  return { $, el, fmt, pct, timeText };
})();
