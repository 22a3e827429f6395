// exchange-sim classroom dashboard: renders the document pushed on /dashboard/ws.
// No build step: plain browser JS; the chart library is TradingView lightweight-charts (global
// `LightweightCharts`), served by the simulator from its installed npm package.
"use strict";

(function () {
  const LWC = window.LightweightCharts;
  const { $, el, fmt, pct, timeText } = window.ExsimPage;
  const fmtQty = (v) => (v == null ? "—" : String(+v.toFixed(8)));
  const signed = (v) => el("b", { class: v > 0 ? "pos" : v < 0 ? "neg" : "", text: (v > 0 ? "+" : "") + fmt(v) });

  const COLORS = { mark: "#ff9f40", last: "#4c8dff", entry: "#b0bec5", liq: "#ef5350", bankrupt: "#8e24aa", mc: "#f5a623" };
  const charts = {};            // symbol -> {chart, mark, last, lines: [], extra: []}
  let state = null;
  const priceHistory = {};           // symbol -> [[t, mark, last], ...], full on connect, then merged tails
  let selected = null;          // account id whose lines are drawn (null = auto)
  const ui = { classFilter: "all" };

  // ------------------------------------------------------------------ connection

  let retry = 500;
  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/dashboard/ws`);
    ws.onopen = () => { retry = 500; setConn(true); };
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.type === "state") { state = msg.state; mergeHistory(state); render(); }
    };
    ws.onclose = () => { setConn(false); setTimeout(connect, retry); retry = Math.min(retry * 2, 8000); };
  }
  function setConn(on) {
    const c = $("#conn");
    c.className = "conn " + (on ? "on" : "off");
    c.textContent = on ? "live" : "disconnected";
    document.body.dataset.connected = on ? "1" : "0";
  }

  function mergeHistory(doc) {
    for (const [sym, s] of Object.entries(doc.symbols)) {
      if (doc.full_history || !priceHistory[sym]) { priceHistory[sym] = s.history.slice(); continue; }
      const h = priceHistory[sym];
      for (const p of s.history) {
        const last = h.length ? h[h.length - 1][0] : -Infinity;
        if (p[0] === last) h[h.length - 1] = p;
        else if (p[0] > last) h.push(p);
      }
      if (h.length > 1800) h.splice(0, h.length - 1800);
    }
  }

  // ------------------------------------------------------------------ render

  function visibleAccounts() {
    if (!state) return [];
    if (ui.classFilter === "all") return state.accounts;
    const cls = state.classes.find((c) => String(c.id) === ui.classFilter);
    if (!cls) return state.accounts;
    return state.accounts.filter((a) => cls.members.includes(a.id));
  }

  function render() {
    renderTickers();
    renderSelectors();
    renderMarkets();
    renderAccounts();
    renderLeaderboard();
    renderTimeline();
    $("#fund").textContent = "insurance fund " + fmt(state.insurance_fund);
    document.body.dataset.seq = String(state.seq);
  }

  // symbols with a price: the lesson instruments (LESSONBTCUSDT...) appear once a lesson plays
  function pricedSymbols() {
    return Object.entries(state.symbols).filter(([, s]) => s.mark != null || s.last != null);
  }

  function renderTickers() {
    const box = $("#tickers");
    box.replaceChildren(...pricedSymbols().map(([sym, s]) =>
      el("span", { class: "ticker" }, el("b", { text: sym }),
        el("span", { text: "mark " + fmt(s.mark) }), " ",
        el("span", { class: "dim", text: "last " + fmt(s.last) }),
        s.stale ? el("span", { class: "stale", text: " stale" }) : null)));
  }

  function syncOptions(select, options) {
    const current = select.value;
    const key = JSON.stringify(options);
    if (select.dataset.key === key) return;
    select.dataset.key = key;
    select.replaceChildren(...options.map(([v, t]) => el("option", { value: v, text: t })));
    if (options.some(([v]) => v === current)) select.value = current;
  }

  function renderSelectors() {
    syncOptions($("#class-select"), [["all", "all accounts"],
      ...state.classes.map((c) => [String(c.id), `class of ${c.name} (${c.members.length})`])]);
    syncOptions($("#lines-select"), [["auto", "auto"], ["none", "none"],
      ...state.accounts.map((a) => [String(a.id), `${a.name} #${a.id}`])]);
    syncOptions($("#shock-symbol"), pricedSymbols().map(([s]) => [s, s]));
  }

  function lineAccounts() {
    const choice = $("#lines-select").value;
    if (choice === "none") return [];
    if (selected != null) return state.accounts.filter((a) => a.id === selected);
    if (choice !== "auto") return state.accounts.filter((a) => String(a.id) === choice);
    const withPos = visibleAccounts().filter((a) => a.positions.length);
    const total = withPos.reduce((n, a) => n + a.positions.length, 0);
    return total <= 4 ? withPos : withPos.slice(0, 1);
  }

  function ensureChart(sym) {
    if (charts[sym]) return charts[sym];
    const box = el("div", { class: "market", "data-symbol": sym },
      el("div", { class: "title" }, el("b", { text: sym }), el("span", { class: "prices" })),
      el("div", { class: "chart" }),
      el("div", { class: "legend" },
        el("i", { style: `background:${COLORS.mark}` }), "mark", el("i", { style: `background:${COLORS.last}` }), "last",
        el("i", { style: `background:${COLORS.entry}` }), "entry", el("i", { style: `background:${COLORS.mc}` }), "margin call",
        el("i", { style: `background:${COLORS.liq}` }), "liquidation", el("i", { style: `background:${COLORS.bankrupt}` }), "bankruptcy"));
    $("#markets").append(box);
    const holder = $(".chart", box);
    const entry = { box, lines: [], extra: [] };
    if (!LWC) {
      holder.append(el("div", { class: "chart-missing",
        text: window.CHART_LIBRARY_MISSING || "chart library (lightweight-charts) not loaded" }));
      charts[sym] = entry;
      return entry;
    }
    const chart = LWC.createChart(holder, {
      autoSize: true,
      layout: { background: { type: "solid", color: "#171d24" }, textColor: "#d8dee6" },
      grid: { vertLines: { color: "#222a33" }, horzLines: { color: "#222a33" } },
      timeScale: { timeVisible: true, secondsVisible: true },
      rightPriceScale: { borderColor: "#2a323c" },
    });
    const addLine = (opts) => (chart.addSeries ? chart.addSeries(LWC.LineSeries, opts) : chart.addLineSeries(opts));
    entry.chart = chart;
    entry.mark = addLine({ color: COLORS.mark, lineWidth: 2, title: "mark",
      autoscaleInfoProvider: (original) => {
        const res = original();
        if (!res || !entry.extra.length) return res;
        let { minValue, maxValue } = res.priceRange;
        for (const p of entry.extra) { minValue = Math.min(minValue, p); maxValue = Math.max(maxValue, p); }
        return { priceRange: { minValue, maxValue }, margins: res.margins };
      } });
    entry.last = addLine({ color: COLORS.last, lineWidth: 1, title: "last" });
    charts[sym] = entry;
    return entry;
  }

  function renderMarkets() {
    const accounts = lineAccounts();
    for (const [sym, s] of pricedSymbols()) {
      const c = ensureChart(sym);
      $(".prices", c.box).textContent = `mark ${fmt(s.mark)} · last ${fmt(s.last)}` + (s.stale ? " · STALE" : "");
      if (!c.chart) continue;
      const points = priceHistory[sym] || [];
      c.mark.setData(points.filter((p) => p[1] != null).map((p) => ({ time: p[0], value: p[1] })));
      c.last.setData(points.filter((p) => p[2] != null).map((p) => ({ time: p[0], value: p[2] })));
      for (const line of c.lines) c.mark.removePriceLine(line);
      c.lines = [];
      c.extra = [];
      const style = LWC.LineStyle || { Solid: 0, Dotted: 1, Dashed: 2 };
      for (const a of accounts) {
        for (const p of a.positions.filter((q) => q.symbol === sym)) {
          const who = `${a.name} ${p.side === "LONG" ? "L" : "S"}${p.leverage}x`;
          const add = (price, color, title, lineStyle, width = 1) => {
            if (price == null) return;
            c.lines.push(c.mark.createPriceLine({ price, color, lineWidth: width, lineStyle, axisLabelVisible: true, title }));
            if (s.mark == null || Math.abs(price / s.mark - 1) < 0.25) c.extra.push(price);
          };
          add(p.entry, COLORS.entry, `${who} entry`, style.Solid);
          add(p.margin_call_price, COLORS.mc, `${who} margin call`, style.Dashed);
          add(p.liquidation_price, COLORS.liq, `${who} liq`, style.Solid, 2);
          add(p.bankruptcy_price, COLORS.bankrupt, `${who} bankrupt`, style.Dotted);
        }
      }
      // what is drawn, for people inspecting the page and for the browser tests
      c.box.dataset.lines = JSON.stringify(c.lines.map((l) => [l.options().title, l.options().price]));
      c.box.dataset.points = String(points.length);
    }
  }

  function gaugeLevel(ratio) {
    if (ratio >= 1) return "red";
    if (ratio >= state.margin_call_ratio) return "amber";
    return "green";
  }

  function parentName(id) {
    const p = state.accounts.find((x) => x.id === id);
    return p ? p.name : `#${id}`;
  }

  function accountCard(a, rank) {
    const level = gaugeLevel(a.gauge_ratio);
    const width = Math.min(100, a.gauge_ratio * 100);
    const gaugeText = a.liquidated && !a.positions.length ? "LIQUIDATED" : "margin ratio " + pct(a.gauge_ratio);
    const card = el("div", { class: "account" + (selected === a.id ? " selected" : ""), "data-account": String(a.id) },
      el("div", { class: "head" },
        el("span", { class: "account-id", text: "#" + a.id, title: "account id" }),
        el("span", { class: "name", text: a.name }),
        el("span", { class: "dim", text: `rank ${rank}`, title: "ranked by margin balance" }),
        a.parent != null ? el("span", { class: "badge child", text: `class of ${parentName(a.parent)}` }) : null,
        a.liquidated ? el("span", { class: "badge liq", text: `liquidated ${a.liquidated.symbol}` }) : null),
      el("div", { class: "nums" },
        el("div", {}, el("span", { text: "wallet" }), el("b", { text: fmt(a.wallet) })),
        el("div", {}, el("span", { text: "margin balance" }), el("b", { class: "equity", text: fmt(a.margin_balance) })),
        el("div", {}, el("span", { text: "unrealized PnL" }), signed(a.upnl)),
        el("div", {}, el("span", { text: "available" }), el("b", { text: fmt(a.available) }))),
      el("div", { class: "gauge", "data-level": level, title: "maintenance margin / margin balance; liquidation at 100%" },
        el("div", { class: "bar" }, el("div", { class: "fill", style: `width:${width}%` }),
          el("div", { class: "mc", style: `left:${state.margin_call_ratio * 100}%`, title: "margin-call level" })),
        el("span", { class: "label", text: gaugeText })));
    card.append(el("div", { class: "section-title", text: "positions" }));
    if (a.positions.length) {
      const t = el("table", { class: "grid positions" }, el("thead", {}, el("tr", {},
        ...["symbol", "side", "qty", "mode", "lev", "entry", "uPnL", "liq. price", "ratio"].map((h) => el("th", { text: h })))));
      const body = el("tbody");
      for (const p of a.positions) {
        body.append(el("tr", { "data-symbol": p.symbol },
          el("td", { text: p.symbol }), el("td", { class: p.side === "LONG" ? "pos" : "neg", text: p.side }),
          el("td", { text: fmtQty(Math.abs(p.qty)) }), el("td", { text: p.mode }), el("td", { text: p.leverage + "x" }),
          el("td", { text: fmt(p.entry) }), el("td", {}, signed(p.upnl)),
          el("td", { class: "liq", text: fmt(p.liquidation_price) }), el("td", { text: pct(p.margin_ratio) })));
      }
      t.append(body);
      card.append(t);
    } else card.append(el("div", { class: "empty", text: "no open positions" }));
    if (a.orders.length) {
      card.append(el("div", { class: "section-title", text: "open orders" }));
      const t = el("table", { class: "grid orders" }, el("thead", {}, el("tr", {},
        ...["id", "symbol", "side", "type", "price", "stop", "qty", "filled"].map((h) => el("th", { text: h })))));
      const body = el("tbody");
      for (const o of a.orders) {
        body.append(el("tr", {}, el("td", { text: o.id }), el("td", { text: o.symbol }), el("td", { text: o.side }),
          el("td", { text: o.type + (o.reduce_only ? " RO" : "") }), el("td", { text: o.price ? fmt(o.price) : "—" }),
          el("td", { text: o.stop_price ? fmt(o.stop_price) : "—" }), el("td", { text: fmtQty(o.qty) }),
          el("td", { text: fmtQty(o.filled) })));
      }
      t.append(body);
      card.append(t);
    }
    if (a.timeline.length) {
      card.append(el("div", { class: "section-title", text: "events" }));
      card.append(el("ul", { class: "events" }, ...a.timeline.slice().reverse().map((e) =>
        el("li", { class: "kind-" + e.kind, text: `${timeText(e.ts)} ${e.kind} ${e.symbol}: ${e.text}` }))));
    }
    card.onclick = () => { selected = selected === a.id ? null : a.id; render(); };
    return card;
  }

  function renderAccounts() {
    const list = visibleAccounts();
    const box = $("#accounts");
    if (!list.length) {
      box.replaceChildren(el("div", { class: "panel empty", text: "no accounts yet: create some with `exchange-sim accounts create` or POST /sim/v1/accounts" }));
      return;
    }
    box.replaceChildren(...list.map((a, i) => accountCard(a, i + 1)));
  }

  function renderLeaderboard() {
    $("#leaderboard tbody").replaceChildren(...(state.leaderboard || []).map((r, i) =>
      el("tr", { "data-account": String(r.id) }, el("td", { text: String(i + 1) }), el("td", { text: "#" + r.id }),
        el("td", { text: r.name }), el("td", { class: "num", text: fmt(r.equity) }),
        el("td", { class: "num" + (r.liquidations ? " neg" : ""), text: String(r.liquidations) }),
        el("td", { text: r.mode }), el("td", { class: "num", text: String(r.open_positions) }))));
  }

  function renderTimeline() {
    const names = Object.fromEntries(state.accounts.map((a) => [a.id, a.name]));
    $("#timeline tbody").replaceChildren(...state.timeline.slice().reverse().map((e) =>
      el("tr", { class: "kind-" + e.kind }, el("td", { text: timeText(e.ts) }),
        el("td", { text: `${names[e.account] || "?"} #${e.account}` }), el("td", { text: e.kind }),
        el("td", { text: e.symbol }), el("td", { text: e.text }))));
  }

  // ------------------------------------------------------------------ instructor actions

  function token() { return $("#admin-token").value.trim(); }
  function say(text, err = false) { const m = $("#instructor-msg"); m.textContent = text; m.className = "msg" + (err ? " err" : ""); }
  async function post(path, body) {
    const res = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json", Authorization: "Bearer " + token() },
      body: JSON.stringify(body) });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(data.error || res.statusText);
    return data;
  }
  $("#shock-button").onclick = async () => {
    try {
      const r = await post("/dashboard/api/shock", { symbol: $("#shock-symbol").value,
        percent: +$("#shock-percent").value, seconds: +$("#shock-seconds").value });
      say(`shock: ${r.symbol} ${fmt(r.from)} → ${fmt(r.to)} over ${r.seconds}s`);
    } catch (e) { say("shock refused: " + e.message, true); }
  };
  $("#reset-button").onclick = async () => {
    try {
      const r = await post("/dashboard/api/reset", { accounts: visibleAccounts().map((a) => a.id) });
      say(`reset ${r.results.filter((x) => x.ok).length} account(s)`);
    } catch (e) { say("reset refused: " + e.message, true); }
  };
  $("#lesson-button").onclick = async () => {
    try {
      const r = await post("/dashboard/api/lesson", { name: $("#lesson-name").value, step_seconds: 1 });
      ui.classFilter = "all";
      say(`lesson ${r.lesson}: ${r.steps} steps, one a second`);
    } catch (e) { say("lesson refused: " + e.message, true); }
  };
  $("#admin-token").onchange = () => sessionStorage.setItem("exsim-admin-token", token());
  $("#class-select").onchange = (e) => { ui.classFilter = e.target.value; render(); };
  $("#lines-select").onchange = () => { selected = null; render(); };

  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  $("#admin-token").value = fromHash || sessionStorage.getItem("exsim-admin-token") || "";
  if (fromHash) { sessionStorage.setItem("exsim-admin-token", fromHash); window.history.replaceState(null, "", location.pathname); }
  connect();
})();
