// exchange-sim trading page: a student's desk, talking to the simulator's Binance-compatible API
// exactly as a bot does. Every private request is signed here, in the browser, with the venue's
// scheme (HMAC-SHA256 of the query string, WebCrypto); the secret never leaves this tab.
// Data: REST (exchangeInfo, klines, account, positionRisk, openOrders, openAlgoOrders, userTrades)
// polled once a second, the market stream (kline_1m, markPrice@1s) for the chart, and the
// user-data stream (listenKey) for fills, margin calls and liquidations as they happen.
// Off a secure origin (a classroom's http://<address>) browsers hide WebCrypto: see hmacSha256.
// No build step; the chart is TradingView lightweight-charts (global `LightweightCharts`).
"use strict";

(function () {
  const LWC = window.LightweightCharts;
  const { $, el, fmt, pct, timeText } = window.ExsimPage;
  const COLORS = { entry: "#b0bec5", liq: "#ef5350", bankrupt: "#8e24aa", tp: "#26a69a", sl: "#f5a623" };

  // ------------------------------------------------------------------ the venue's errors, in plain words

  const PLAIN = {
    "-1021": "Your computer's clock and the simulator's disagree; reload the page.",
    "-1022": "The secret does not match this API key (the signature is wrong). Check the secret you typed.",
    "-1102": "Something is missing from the order (a quantity or a price?).",
    "-1111": "Too many decimals: round the price to the tick size and the quantity to the lot size.",
    "-2010": "The order was refused.",
    "-2011": "That order is not open any more (filled or cancelled already).",
    "-2013": "That order does not exist.",
    "-2014": "That API key is not valid. Ask your teacher for your key.",
    "-2015": "That API key is not valid, or it may not do this. Ask your teacher for your key.",
    "-2019": "Not enough margin: your available balance cannot pay the initial margin of this order. "
      + "Lower the quantity or raise the leverage.",
    "-2021": "The trigger price is already reached, so the order would fire at once. A stop-loss of a long "
      + "goes below the mark price, a take-profit above it (the other way round for a short).",
    "-2022": "This order would not reduce your position (reduce-only).",
    "-2027": "The position would be larger than this leverage allows: lower the leverage or the quantity.",
    "-4003": "The quantity must be above zero.",
    "-4014": "The price must be a multiple of the tick size.",
    "-4016": "The limit price is too far from the mark price.",
    "-4023": "The quantity must be a multiple of the lot size.",
    "-4028": "This leverage is not allowed for this symbol.",
    "-4046": "The margin mode already is what you chose.",
    "-4047": "Cancel your open orders of this symbol before changing the margin mode.",
    "-4048": "Close your position of this symbol before changing the margin mode.",
    "-4061": "The order's position side does not match your position mode.",
    "-4131": "There is not enough liquidity near the price for a market order.",
    "-4164": "The order is too small: its value (quantity × price) must be at least the minimum notional.",
  };
  class VenueError extends Error {
    constructor(code, msg, status) { super(msg); this.code = code; this.status = status; }
    get plain() {
      const words = PLAIN[String(this.code)];
      return words ? `${words} (venue: ${this.code} ${this.message})` : `${this.message} (venue: ${this.code})`;
    }
  }

  // ------------------------------------------------------------------ signing (WebCrypto)

  const session = { key: "", secret: "", hmacKey: null, offset: 0 };

  // Browsers offer WebCrypto only on secure origins (https, localhost). A classroom that opens the
  // page as http://<teacher's address>:8765 gets this small HMAC-SHA256 instead (FIPS 180-4 SHA-256,
  // RFC 2104 HMAC), written here; the browser test checks it signs exactly as WebCrypto does.
  const K256 = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2]);
  function sha256(bytes) {
    const bitLength = bytes.length * 8;
    const padded = new Uint8Array(Math.ceil((bytes.length + 9) / 64) * 64);
    padded.set(bytes);
    padded[bytes.length] = 0x80;
    const view = new DataView(padded.buffer);
    view.setUint32(padded.length - 8, Math.floor(bitLength / 2 ** 32));
    view.setUint32(padded.length - 4, bitLength >>> 0);
    const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
    const w = new Uint32Array(64);
    const rotr = (x, n) => (x >>> n) | (x << (32 - n));
    for (let off = 0; off < padded.length; off += 64) {
      for (let t = 0; t < 16; t++) w[t] = view.getUint32(off + 4 * t);
      for (let t = 16; t < 64; t++) {
        const s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >>> 3);
        const s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >>> 10);
        w[t] = (w[t - 16] + s0 + w[t - 7] + s1) >>> 0;
      }
      let [a, b, c, d, e, f, g, k] = h;
      for (let t = 0; t < 64; t++) {
        const t1 = (k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K256[t] + w[t]) >>> 0;
        const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
        k = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
      }
      [a, b, c, d, e, f, g, k].forEach((v, i) => { h[i] = (h[i] + v) >>> 0; });
    }
    const out = new Uint8Array(32);
    const outView = new DataView(out.buffer);
    h.forEach((v, i) => outView.setUint32(4 * i, v));
    return out;
  }
  function hmacSha256(key, message) {
    const k = key.length > 64 ? sha256(key) : key;
    const block = new Uint8Array(64);
    block.set(k);
    const inner = new Uint8Array(64 + message.length);
    const outer = new Uint8Array(64 + 32);
    for (let i = 0; i < 64; i++) { inner[i] = block[i] ^ 0x36; outer[i] = block[i] ^ 0x5c; }
    inner.set(message, 64);
    outer.set(sha256(inner), 64);
    return sha256(outer);
  }
  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  window.exsimSign = { hmacSha256Hex: (secret, text) => hex(hmacSha256(new TextEncoder().encode(secret), new TextEncoder().encode(text))) };

  async function signature(text) {
    if (!window.crypto || !crypto.subtle) {  // not a secure origin: the page's own HMAC-SHA256
      return window.exsimSign.hmacSha256Hex(session.secret, text);
    }
    if (!session.hmacKey) {
      session.hmacKey = await crypto.subtle.importKey("raw", new TextEncoder().encode(session.secret),
        { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    }
    return hex(new Uint8Array(await crypto.subtle.sign("HMAC", session.hmacKey, new TextEncoder().encode(text))));
  }

  async function answer(res) {
    const data = await res.json().catch(() => ({}));
    if (!res.ok || (data && typeof data.code === "number" && data.code < 0)) {
      throw new VenueError(data.code ?? res.status, data.msg || res.statusText, res.status);
    }
    return data;
  }

  async function signed(method, path, params = {}) {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v != null && v !== "") query.append(k, String(v));
    query.append("timestamp", String(Date.now() + session.offset));
    query.append("recvWindow", "10000");
    const text = query.toString();
    const res = await fetch(`${path}?${text}&signature=${await signature(text)}`,
      { method, headers: { "X-MBX-APIKEY": session.key } });
    return answer(res);
  }

  async function keyed(method, path) {
    return answer(await fetch(path, { method, headers: { "X-MBX-APIKEY": session.key } }));
  }

  async function pub(path) { return answer(await fetch(path)); }

  // ------------------------------------------------------------------ state

  const desk = {
    symbols: {},          // symbol -> {tick, step, minNotional, maxLeverage}
    symbol: "BTCUSDT",
    account: null,        // GET /fapi/v2/account
    risk: [],             // GET /fapi/v2/positionRisk (every symbol; leverage and margin type)
    orders: [],           // openOrders + openAlgoOrders, one shape
    fills: [],
    mark: {},             // symbol -> last mark from the stream
    chart: null, candles: null, lines: [],
  };

  function say(box, text, err = false) { const m = $(box); m.textContent = text; m.className = "msg" + (err ? " err" : " ok"); }

  function logEvent(kind, text, ts = Date.now()) {
    const list = $("#events");
    list.prepend(el("li", { class: "kind-" + kind, "data-kind": kind, text: `${timeText(ts)} ${kind.replace(/_/g, " ")}: ${text}` }));
    while (list.children.length > 200) list.lastChild.remove();
  }

  // ------------------------------------------------------------------ sign in

  async function signIn(key, secret) {
    session.key = key.trim();
    session.secret = secret.trim();
    session.hmacKey = null;
    try {
      const t = await pub("/fapi/v1/time");
      session.offset = t.serverTime - Date.now();  // the API's clock (a replay may keep its own dates)
      const info = await pub("/fapi/v1/exchangeInfo");
      for (const s of info.symbols) {
        const f = Object.fromEntries(s.filters.map((x) => [x.filterType, x]));
        desk.symbols[s.symbol] = { tick: +f.PRICE_FILTER.tickSize, step: +f.LOT_SIZE.stepSize,
          minNotional: +(f.MIN_NOTIONAL?.notional || 0) };
      }
      desk.account = await signed("GET", "/fapi/v2/account");
    } catch (e) {
      say("#signin-msg", "cannot sign in: " + (e.plain || e.message), true);
      return false;
    }
    sessionStorage.setItem("exsim-key", session.key);
    sessionStorage.setItem("exsim-secret", session.secret);
    $("#signin").hidden = true;
    $("#desk").hidden = false;
    $("#who").textContent = `key ${session.key.slice(0, 8)}…`;
    const select = $("#symbol");
    select.replaceChildren(...Object.keys(desk.symbols).map((s) => el("option", { value: s, text: s })));
    select.value = desk.symbols.BTCUSDT ? "BTCUSDT" : Object.keys(desk.symbols)[0];
    desk.symbol = select.value;
    buildChart();
    await loadCandles();
    connectMarket();
    connectUser();
    await refresh();
    setInterval(refresh, 1000);
    document.body.dataset.ready = "1";
    return true;
  }

  // ------------------------------------------------------------------ chart

  function buildChart() {
    const holder = $("#chart");
    if (!LWC) { holder.append(el("div", { class: "chart-missing", text: window.CHART_LIBRARY_MISSING || "chart library not loaded" })); return; }
    desk.chart = LWC.createChart(holder, {
      autoSize: true,
      layout: { background: { type: "solid", color: "#171d24" }, textColor: "#d8dee6" },
      grid: { vertLines: { color: "#222a33" }, horzLines: { color: "#222a33" } },
      timeScale: { timeVisible: true, secondsVisible: false, barSpacing: 12, rightOffset: 6 },
      rightPriceScale: { borderColor: "#2a323c" },
    });
    const opts = { upColor: "#26a69a", downColor: "#ef5350", borderVisible: false, wickUpColor: "#26a69a", wickDownColor: "#ef5350",
      priceLineVisible: false, lastValueVisible: false,  // the mark line says where the price is
      autoscaleInfoProvider: (original) => {
        const res = original();
        const extra = desk.lines.map((l) => l.options().price).filter((p) => desk.mark[desk.symbol] == null
          || Math.abs(p / desk.mark[desk.symbol] - 1) < 0.3);
        if (!res || !extra.length) return res;
        return { priceRange: { minValue: Math.min(res.priceRange.minValue, ...extra),
          maxValue: Math.max(res.priceRange.maxValue, ...extra) }, margins: res.margins };
      } };
    desk.candles = desk.chart.addSeries ? desk.chart.addSeries(LWC.CandlestickSeries, opts) : desk.chart.addCandlestickSeries(opts);
    // the mark price as a moving line across the candles (a one-second series would squeeze the candles)
    desk.markLine = desk.candles.createPriceLine({ price: 0, color: "#ff9f40", lineWidth: 1, lineStyle: 2,
      axisLabelVisible: false, title: "" });
  }

  const candle = (k) => ({ time: Math.floor(k[0] / 1000), open: +k[1], high: +k[2], low: +k[3], close: +k[4] });

  async function loadCandles() {
    $("#chart-symbol").textContent = desk.symbol;
    if (!desk.candles) return;
    const rows = await pub(`/fapi/v1/klines?symbol=${desk.symbol}&interval=1m&limit=240`);
    desk.candles.setData(rows.map(candle));
    $("#chart").dataset.candles = String(rows.length);
    if (rows.length) $("#chart").dataset.lastCandle = String(rows[rows.length - 1][0]);
  }

  function drawLines(position, orders) {
    if (!desk.candles) return;
    for (const l of desk.lines) desk.candles.removePriceLine(l);
    desk.lines = [];
    const style = LWC.LineStyle || { Solid: 0, Dotted: 1, Dashed: 2 };
    const add = (price, color, title, lineStyle, width = 1) => {
      if (price == null || !isFinite(price) || price <= 0) return;
      desk.lines.push(desk.candles.createPriceLine({ price, color, lineWidth: width, lineStyle, axisLabelVisible: true, title }));
    };
    if (position) {
      add(position.entry, COLORS.entry, "entry", style.Solid);
      add(position.liquidation, COLORS.liq, "liquidation", style.Solid, 2);
      add(position.bankruptcy, COLORS.bankrupt, "bankruptcy", style.Dotted);
    }
    for (const o of orders.filter((x) => x.symbol === desk.symbol)) {
      if (o.kind === "TAKE_PROFIT_MARKET" || o.kind === "TAKE_PROFIT") add(o.trigger, COLORS.tp, "take-profit", style.Dashed);
      else if (o.trigger) add(o.trigger, COLORS.sl, "stop-loss", style.Dashed);
      else if (o.price) add(o.price, COLORS.sl, `limit ${o.side.toLowerCase()}`, style.Dashed);
    }
    $("#chart").dataset.lines = JSON.stringify(desk.lines.map((l) => [l.options().title, l.options().price]));
  }

  // ------------------------------------------------------------------ streams

  let marketWs = null;
  function connectMarket() {
    if (marketWs) { marketWs.onclose = null; marketWs.close(); }
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const low = desk.symbol.toLowerCase();
    const ws = marketWs = new WebSocket(`${proto}//${location.host}/stream?streams=${low}@kline_1m/${low}@markPrice@1s`);
    ws.onmessage = (ev) => {
      const { data } = JSON.parse(ev.data);
      if (!data) return;
      if (data.e === "kline" && data.s === desk.symbol && desk.candles) {
        const k = data.k;
        desk.candles.update({ time: Math.floor(k.t / 1000), open: +k.o, high: +k.h, low: +k.l, close: +k.c });
        $("#chart").dataset.lastCandle = String(k.t);
      } else if (data.e === "markPriceUpdate") {
        desk.mark[data.s] = +data.p;
        if (desk.markLine && data.s === desk.symbol) {
          desk.markLine.applyOptions({ price: +data.p, axisLabelVisible: true, title: "mark" });
        }
        $("#chart-prices").textContent = `mark ${fmt(+data.p)}`;
        $("#ticker").textContent = `${data.s} mark ${fmt(+data.p)}`;
      }
    };
    ws.onclose = () => { if (marketWs === ws) setTimeout(connectMarket, 1000); };
  }

  let userWs = null;
  async function connectUser() {
    try {
      const { listenKey } = await keyed("POST", "/fapi/v1/listenKey");
      const proto = location.protocol === "https:" ? "wss:" : "ws:";
      const ws = userWs = new WebSocket(`${proto}//${location.host}/ws/${listenKey}`);
      ws.onopen = () => { setConn(true); };
      ws.onmessage = (ev) => onUserEvent(JSON.parse(ev.data));
      ws.onclose = () => { setConn(false); if (userWs === ws) setTimeout(connectUser, 1000); };
    } catch (e) { setConn(false); setTimeout(connectUser, 2000); }
  }
  setInterval(() => { if (session.key) keyed("PUT", "/fapi/v1/listenKey").catch(() => {}); }, 30 * 60 * 1000);

  function setConn(on) {
    const c = $("#conn");
    c.className = "conn " + (on ? "on" : "off");
    c.textContent = on ? "live" : "reconnecting…";
  }

  function onUserEvent(e) {
    if (e.e === "MARGIN_CALL") {
      const cross = (e.p || []).filter((p) => p.mt !== "ISOLATED");
      const crossLeft = +(e.cw || 0) + cross.reduce((n, p) => n + +p.up, 0);
      const crossRatio = cross.reduce((n, p) => n + +p.mm, 0) / crossLeft;
      for (const p of e.p || []) {
        const isolated = p.mt === "ISOLATED";
        const left = isolated ? +p.iw + +p.up : null;
        const ratio = isolated ? +p.mm / left : crossRatio;
        logEvent("MARGIN_CALL", `${p.s} ${isolated ? "isolated" : "cross"} position ${p.pa} at mark ${fmt(+p.mp)}: `
          + (isolated ? `margin left ${fmt(left)} against a maintenance margin of ${fmt(+p.mm)} (ratio ${pct(ratio)}). `
            : `margin ratio ${pct(ratio)} of your cross margin balance. `)
          + "At 100% it is liquidated: add margin or reduce the position.", e.E);
      }
    } else if (e.e === "ORDER_TRADE_UPDATE") {
      const o = e.o;
      const liquidation = o.o === "LIQUIDATION" || String(o.c || "").startsWith("autoclose");
      if (liquidation && o.x === "TRADE") {
        logEvent("LIQUIDATION", `${o.s} position closed by the liquidation engine: ${o.S} ${o.l} @ ${fmt(+o.L)}, `
          + `realized PnL ${fmt(+o.rp)}, fee ${fmt(+(o.n || 0))}`, e.T);
        refreshFills();
      } else if (String(o.c || "").startsWith("adl_autoclose") && o.x === "TRADE") {
        logEvent("ADL", `${o.s} auto-deleveraged ${o.l} @ ${fmt(+o.L)}`, e.T);
        refreshFills();
      } else if (o.x === "TRADE") {
        logEvent("FILL", `${o.S} ${o.l} ${o.s} @ ${fmt(+o.L)} (${o.X === "FILLED" ? "filled" : "partly filled"})`, e.T);
        refreshFills();
      } else if (!liquidation) {
        logEvent("ORDER", `${o.o} ${o.S} ${o.q} ${o.s}: ${o.X.toLowerCase()}`, e.T);
      }
    } else if (e.e === "ALGO_UPDATE") {
      const o = e.o;
      logEvent("ORDER", `${o.o === "TAKE_PROFIT_MARKET" ? "take-profit" : "stop-loss"} ${o.S} ${o.s} at ${fmt(+o.tp)}: ${o.X.toLowerCase()}`, e.T);
    }
    refresh();
  }

  // ------------------------------------------------------------------ reading the account

  let refreshing = false;
  async function refresh() {
    if (refreshing || !session.key) return;
    refreshing = true;
    try {
      const [account, risk, orders, algos] = await Promise.all([signed("GET", "/fapi/v2/account"),
        signed("GET", "/fapi/v2/positionRisk"), signed("GET", "/fapi/v1/openOrders"), signed("GET", "/fapi/v1/openAlgoOrders")]);
      desk.account = account;
      desk.risk = risk;
      desk.orders = [
        ...orders.map((o) => ({ id: o.orderId, algo: false, symbol: o.symbol, side: o.side, kind: o.type, qty: +o.origQty,
          price: +o.price || null, trigger: +o.stopPrice || null })),
        ...algos.map((o) => ({ id: o.algoId, algo: true, symbol: o.symbol, side: o.side, kind: o.orderType,
          qty: o.closePosition ? null : +o.quantity, price: +o.price || null, trigger: +o.triggerPrice || null }))];
      render();
      if (!desk.fills.length) await refreshFills();
    } catch (e) {
      say("#order-msg", e.plain || e.message, true);
    } finally { refreshing = false; }
  }

  async function refreshFills() {
    try {
      desk.fills = await signed("GET", "/fapi/v1/userTrades", { symbol: desk.symbol, limit: 50 });
      renderFills();
    } catch (e) { /* shown by the next refresh */ }
  }

  function positionOf(symbol) {
    const a = desk.account;
    const row = desk.risk.find((r) => r.symbol === symbol && +r.positionAmt !== 0);
    if (!row || !a) return null;
    const q = +row.positionAmt, ep = +row.entryPrice, upnl = +row.unRealizedProfit;
    const isolated = row.marginType === "isolated";
    let wallet, ratio;
    if (isolated) {
      wallet = +row.isolatedWallet;                                   // W′ of margin-rules.md
      ratio = +row.maintMargin / (wallet + upnl);
    } else {
      const cross = desk.risk.filter((r) => r.marginType === "cross" && +r.positionAmt !== 0);
      wallet = +a.totalCrossWalletBalance + cross.filter((r) => r !== row).reduce((n, r) => n + +r.unRealizedProfit, 0);
      const crossBalance = +a.totalCrossWalletBalance + cross.reduce((n, r) => n + +r.unRealizedProfit, 0);
      ratio = cross.reduce((n, r) => n + +r.maintMargin, 0) / crossBalance;
    }
    return { symbol, qty: q, side: q > 0 ? "LONG" : "SHORT", entry: ep, mark: +row.markPrice, upnl, isolated,
      leverage: +row.leverage, liquidation: +row.liquidationPrice || null,
      bankruptcy: ep - wallet / q,                                   // where the position's equity reaches 0
      ratio: ratio > 0 ? ratio : 0, margin: isolated ? +row.isolatedWallet : +row.initialMargin };
  }

  function render() {
    const a = desk.account;
    $("#wallet").textContent = `wallet ${fmt(+a.totalWalletBalance)} · margin balance ${fmt(+a.totalMarginBalance)} · `
      + `available ${fmt(+a.availableBalance)} USDT`;
    const setting = desk.risk.find((r) => r.symbol === desk.symbol);
    if (setting) {
      for (const b of document.querySelectorAll(".mode")) {
        b.classList.toggle("active", (b.dataset.mode === "ISOLATED") === (setting.marginType === "isolated"));
      }
      if (document.activeElement !== $("#leverage")) $("#leverage").value = setting.leverage;
      document.body.dataset.marginType = setting.marginType;
      document.body.dataset.leverage = setting.leverage;
    }
    const pos = positionOf(desk.symbol);
    const box = $("#position");
    if (!pos) {
      box.className = "empty";
      box.replaceChildren("no open position in " + desk.symbol);
      box.dataset.open = "0";
    } else {
      const level = pos.ratio >= 1 ? "red" : pos.ratio >= 0.8 ? "amber" : "green";
      box.className = "position";
      box.dataset.open = "1";
      box.replaceChildren(
        el("div", { class: "nums" },
          ...[["position", `${pos.side} ${Math.abs(pos.qty)} ${pos.symbol.replace(/USDT$/, "")}`],
            ["mode", `${pos.isolated ? "isolated" : "cross"} ${pos.leverage}x`], ["entry", fmt(pos.entry)],
            ["mark", fmt(pos.mark)], ["unrealized PnL", (pos.upnl > 0 ? "+" : "") + fmt(pos.upnl)],
            [pos.isolated ? "isolated margin" : "initial margin", fmt(pos.margin)],
            ["liquidation price", pos.liquidation ? fmt(pos.liquidation) : "none: the wallet covers it"],
            ["bankruptcy price", pos.bankruptcy > 0 ? fmt(pos.bankruptcy) : "none"]]
            .map(([k, v]) => el("div", { "data-field": k }, el("span", { text: k }), el("b", { text: v })))),
        el("div", { class: "gauge", "data-level": level, title: "maintenance margin / margin balance; liquidation at 100%" },
          el("div", { class: "bar" }, el("div", { class: "fill", style: `width:${Math.min(100, pos.ratio * 100)}%` }),
            el("div", { class: "mc", style: "left:80%" })),
          el("span", { class: "label", "data-field": "margin ratio", text: "margin ratio " + pct(pos.ratio) })));
    }
    drawLines(pos, desk.orders);
    const body = $("#orders tbody");
    const key = JSON.stringify(desk.orders);
    if (body.dataset.key === key) return;  // unchanged: keep the rows (and a Cancel button being clicked)
    body.dataset.key = key;
    body.replaceChildren(...desk.orders.map((o) => {
      const cancel = el("button", { type: "button", class: "cancel", text: "Cancel" });
      cancel.onclick = () => cancelOrder(o);
      const name = { STOP_MARKET: "stop-loss", TAKE_PROFIT_MARKET: "take-profit", LIMIT: "limit" }[o.kind] || o.kind;
      return el("tr", { "data-order": String(o.id), "data-kind": o.kind }, el("td", { text: String(o.id) }),
        el("td", { text: o.symbol }), el("td", { text: o.side }), el("td", { text: name }),
        el("td", { class: "num", text: o.qty == null ? "whole position" : String(o.qty) }),
        el("td", { class: "num", text: fmt(o.price) }), el("td", { class: "num", text: fmt(o.trigger) }), el("td", {}, cancel));
    }));
  }

  function renderFills() {
    $("#fills tbody").replaceChildren(...desk.fills.slice().reverse().map((f) =>
      el("tr", {}, el("td", { text: timeText(f.time) }), el("td", { text: f.symbol }), el("td", { text: f.side }),
        el("td", { class: "num", text: f.qty }), el("td", { class: "num", text: fmt(+f.price) }),
        el("td", { class: "num", text: fmt(+f.commission) }), el("td", { class: "num", text: fmt(+f.realizedPnl) }))));
  }

  // ------------------------------------------------------------------ actions

  async function act(box, what, fn) {
    try { const out = await fn(); say(box, what); await refresh(); return out; }
    catch (e) { say(box, e.plain || e.message, true); return null; }
  }

  async function setMode(mode) {
    await act("#order-msg", `${desk.symbol}: ${mode === "ISOLATED" ? "isolated" : "cross"} margin`, async () => {
      try { await signed("POST", "/fapi/v1/marginType", { symbol: desk.symbol, marginType: mode }); }
      catch (e) { if (e.code !== -4046) throw e; }
    });
  }

  async function setLeverage() {
    const lev = Math.round(+$("#leverage").value);
    await act("#order-msg", `${desk.symbol}: leverage ${lev}x`, () =>
      signed("POST", "/fapi/v1/leverage", { symbol: desk.symbol, leverage: lev }));
  }

  async function place(side) {
    const type = $("#order-type").value;
    const qty = $("#qty").value.trim();
    if (type === "MARKET" || type === "LIMIT") {
      const params = { symbol: desk.symbol, side, type, quantity: qty };
      if (type === "LIMIT") Object.assign(params, { price: $("#price").value.trim(), timeInForce: "GTC" });
      await act("#order-msg", `${type.toLowerCase()} ${side.toLowerCase()} ${qty} ${desk.symbol} sent`, () =>
        signed("POST", "/fapi/v1/order", params));
      return;
    }
    const pos = positionOf(desk.symbol);
    if (!pos) { say("#order-msg", "A stop-loss or take-profit closes a position: open one first.", true); return; }
    const closing = pos.qty > 0 ? "SELL" : "BUY";
    const name = type === "STOP_MARKET" ? "stop-loss" : "take-profit";
    await act("#order-msg", `${name} at ${$("#trigger").value} placed (closes the ${pos.side.toLowerCase()})`, () =>
      signed("POST", "/fapi/v1/algoOrder", { algoType: "CONDITIONAL", symbol: desk.symbol, side: closing, type,
        triggerPrice: $("#trigger").value.trim(), closePosition: "true", workingType: "MARK_PRICE" }));
  }

  async function cancelOrder(o) {
    await act("#order-msg", `order ${o.id} cancelled`, () => o.algo
      ? signed("DELETE", "/fapi/v1/algoOrder", { symbol: o.symbol, algoId: o.id })
      : signed("DELETE", "/fapi/v1/order", { symbol: o.symbol, orderId: o.id }));
  }

  function showFields() {
    const type = $("#order-type").value;
    $("#price-row").hidden = type !== "LIMIT";
    $("#trigger-row").hidden = !(type === "STOP_MARKET" || type === "TAKE_PROFIT_MARKET");
    $("#qty").disabled = $("#trigger-row").hidden === false;
  }

  $("#order-type").onchange = showFields;
  $("#buy").onclick = () => place("BUY");
  $("#sell").onclick = () => place("SELL");
  $("#leverage-button").onclick = setLeverage;
  for (const b of document.querySelectorAll(".mode")) b.onclick = () => setMode(b.dataset.mode);
  $("#symbol").onchange = async (e) => { desk.symbol = e.target.value; desk.fills = []; await loadCandles(); connectMarket(); refresh(); };
  $("#signin-button").onclick = () => signIn($("#api-key").value, $("#api-secret").value);
  showFields();

  // a join link: /trade#key=...&secret=... (the hash never reaches the server); else this tab's last sign-in
  const hash = new URLSearchParams(location.hash.slice(1));
  const key = hash.get("key") || sessionStorage.getItem("exsim-key");
  const secret = hash.get("secret") || sessionStorage.getItem("exsim-secret");
  if (hash.get("key")) window.history.replaceState(null, "", location.pathname);
  if (key && secret) { $("#api-key").value = key; $("#api-secret").value = secret; signIn(key, secret); }
})();
