"use strict";
// Grace's trial viewer. The data is inside this file (gzip, base64); filters live in the address after '#',
// so a link can open exactly the trials behind a number (grace/view/links.py writes such links).
(function () {
  const PAGE = 100;
  const STATUS_OK = new Set(["ok"]);
  // filter name -> [label, value of a row]
  const FILTERS = [
    ["run", "run", r => r.run],
    ["model", "model", r => r.model],
    ["study", "study", r => r.study],
    ["phase", "phase", r => r.phase],
    ["cond", "condition", r => r.cond],
    ["variant", "variant", r => r.variant],
    ["exp1", "Exp 1 status", r => r.exp1 && r.exp1.status],
    ["finish", "finish reason", r => r.exp1 && r.exp1.finish],
    ["ext", "extraction status", r => r.extracted && r.extracted.status],
    ["method", "read by", r => r.extracted && r.extracted.method],
    ["exp2", "Exp 2 status", r => r.exp2 && r.exp2.status],
  ];
  const COLUMNS = [  // key, header, sort value, cell, width (px; the reply takes the rest)
    ["run", "run", r => r.run, r => text(r.run), 110],
    ["model", "model", r => r.model, r => text(r.model), 96],
    ["study", "study", r => r.study, r => text(r.study), 58],
    ["trial", "trial · condition", r => r.trial + "#" + String(r.replicate).padStart(4, "0"), trialCell, 150],
    ["variant", "variant", r => r.variant, r => text(r.variant || ""), 76],
    ["exp1", "Exp 1", r => r.exp1 && r.exp1.status, r => r.exp1 ? statusBadge(r.exp1.status, r.exp1.finish) : none(), 86],
    ["reply", "reply", r => r.exp1 && (r.exp1.response || "").length, r => preview(r), null],
    ["ext", "read", r => r.extracted && r.extracted.status, r => r.extracted ? statusBadge(r.extracted.status) : none(), 84],
    ["mass", "Exp 2 argmax · mass", r => r.exp2 ? r.exp2.option_mass : null, exp2Cell, 124],
  ];
  function exp2Cell(r) {
    if (!r.exp2) return none();
    return el("span", {}, exp2Text(r), r.exp2.option_mass != null ? el("div", {class: "muted small"}, "mass " + num(r.exp2.option_mass)) : null);
  }
  function trialCell(r) {
    return el("span", {}, r.trial + (r.replicate ? " #" + r.replicate : ""),
              r.phase !== "study" ? el("span", {class: "badge s-none phase"}, r.phase) : null,
              r.cond ? el("div", {class: "muted small"}, r.cond) : null);
  }
  let DATA = null, ROWS = [], shown = [], state = {};

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const k of kids) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
    return e;
  }
  const text = s => document.createTextNode(s === null || s === undefined ? "" : String(s));
  const none = () => el("span", {class: "s-none"}, "—");
  function num(x) {
    if (x === null || x === undefined || x === "") return "";
    if (typeof x !== "number") return String(x);
    if (x === 0) return "0";
    if (Number.isInteger(x)) return String(x);
    const a = Math.abs(x);
    return a >= 1e-3 && a < 1e6 ? String(Number(x.toPrecision(3))) : x.toExponential(2);
  }
  const pct = x => (x === null || x === undefined) ? "" : (100 * x).toPrecision(3).replace(/\.?0+$/, "") + "%";
  function statusClass(s) {
    if (!s) return "s-none";
    if (STATUS_OK.has(s)) return "s-ok";
    return ["error", "empty", "unparseable", "refused", "reasoning_truncated", "rejected", "no_logprobs",
            "bad_option", "context_overflow"].includes(s) ? "s-bad" : "s-warn";
  }
  function statusBadge(s, finish) {
    const label = s + (finish && finish !== "stop" && s !== "truncated" ? " (" + finish + ")" : "");
    return el("span", {class: "badge " + statusClass(s)}, label);
  }
  function fieldsText(r) {
    if (!r.extracted) return "";
    return Object.entries(r.extracted.fields || {}).filter(([k, v]) => v !== null && k !== "notes" && k !== "reasoning")
      .map(([k, v]) => k + ": " + (typeof v === "object" ? Object.entries(v).map(([a, b]) => a + " " + num(b)).join(", ") : v))
      .join("; ");
  }
  function exp2Text(r) {
    if (!r.exp2) return "";
    if (r.exp2.status !== "ok") return r.exp2.status;
    return Object.entries(r.exp2.questions).map(([q, v]) => q + ": " + v.argmax).join("; ");
  }
  function preview(r) {
    if (!r.exp1) return none();
    const s = r.exp1.response || "";
    return el("span", {class: "reply-preview"}, s.length > 400 ? s.slice(0, 400) + " …" : s);
  }

  // --- the address: filters, sort, page and the open trial -------------------------------------------
  function readHash() {
    const p = new URLSearchParams(location.hash.replace(/^#/, ""));
    const s = {};
    for (const [k, v] of p.entries()) s[k] = v;
    return s;
  }
  function writeHash(s) {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(s)) if (v !== undefined && v !== null && v !== "") p.set(k, v);
    const h = p.toString().replace(/\+/g, "%20");
    if (("#" + h) !== location.hash && !(h === "" && location.hash === "")) history.replaceState(null, "", "#" + h);
  }
  function matches(want, value) {
    if (want === undefined || want === "") return true;
    if (want.startsWith("!")) return (value || "") !== want.slice(1);
    return (value || "") === want;
  }
  // a trial in one wording is a row of its own (grace.view.rows): the wording is part of its id
  function rowId(r) { return [r.run, r.model, r.study, r.phase, r.trial, r.replicate, r.variant || ""].join("|"); }

  // --- drawing -------------------------------------------------------------------------------------------
  function drawVerdicts() {
    const box = document.getElementById("verdicts");
    box.replaceChildren();
    for (const run of DATA.runs) {
      if (!run.verdicts.length) continue;
      box.append(el("h2", {}, (DATA.runs.length > 1 ? "Run " + run.name + ": " : "") + "verdict"));
      const ul = el("ul");
      for (const v of run.verdicts) {
        const li = el("li", {}, el("span", {class: v.fit ? "fit" : "unfit"}, (v.fit ? "✓ fit" : "✗ not fit")), " ",
                      el("a", {href: v.link}, v.model + (v.study === "all" ? "" : " / " + v.study)));
        if (v.reasons.length) {
          li.append(": ");
          v.reasons.forEach((x, i) => { if (i) li.append("; "); li.append(el("a", {href: x.link}, x.text)); });
        }
        ul.append(li);
      }
      box.append(ul);
    }
    if (DATA.unreadable && DATA.unreadable.length) {
      box.append(el("p", {class: "warn"}, "Lines that are not records, left out: " +
        DATA.unreadable.map(u => u.path + " (line " + u.lines.join(", ") + ")").join("; ")));
    }
  }
  function present(key) {
    const f = FILTERS.find(x => x[0] === key);
    return f ? new Set(ROWS.map(f[2]).filter(v => v !== null && v !== undefined && v !== "")).size > 0 : true;
  }
  function drawFilters() {
    const box = document.getElementById("filters");
    box.replaceChildren();
    for (const [key, label, get] of FILTERS) {
      const counts = new Map();
      for (const r of ROWS) { const v = get(r); if (v !== null && v !== undefined && v !== "") counts.set(v, (counts.get(v) || 0) + 1); }
      if (!counts.size || (counts.size === 1 && (key === "run" || key === "phase"))) continue;
      const sel = el("select", {"data-filter": key, onchange: e => { state[key] = e.target.value; state.page = ""; update(); }},
                     el("option", {value: ""}, "any"));
      const values = [...counts.keys()].sort();
      for (const v of values) sel.append(el("option", {value: v}, v + " (" + counts.get(v) + ")"));
      for (const v of values) if (key !== "run" && key !== "model" && key !== "study" && key !== "cond")
        sel.append(el("option", {value: "!" + v}, "not " + v));
      const want = state[key] || "";
      if (want && ![...sel.options].some(o => o.value === want)) sel.append(el("option", {value: want}, want));
      sel.value = want;
      box.append(el("label", {}, label, sel));
    }
    const q = el("input", {type: "search", placeholder: "words in the prompt or reply", "data-filter": "q",
                           value: state.q || "", oninput: e => { state.q = e.target.value; state.page = ""; update(false); }});
    box.append(el("label", {}, "search", q));
    box.append(el("button", {type: "button", onclick: () => { state = {}; update(); }}, "clear"));
  }
  function filtered() {
    const q = (state.q || "").toLowerCase();
    let rows = ROWS.filter(r => FILTERS.every(([key, , get]) => matches(state[key], get(r))));
    if (q) rows = rows.filter(r => r.search.includes(q));
    const sort = state.sort || "";
    const col = COLUMNS.find(c => c[0] === sort.replace(/^-/, ""));
    if (col) {
      const dir = sort.startsWith("-") ? -1 : 1;
      rows = rows.map((r, i) => [r, i]).sort((a, b) => {
        const x = col[2](a[0]), y = col[2](b[0]);
        if (x === y) return a[1] - b[1];
        if (x === null || x === undefined || x === "") return 1;
        if (y === null || y === undefined || y === "") return -1;
        return (x < y ? -1 : 1) * dir;
      }).map(p => p[0]);
    }
    return rows;
  }
  function drawTable() {
    shown = filtered();
    const many = key => new Set(ROWS.map(r => r[key])).size > 1;  // a column of one value says nothing
    const cols = COLUMNS.filter(c => (c[0] !== "run" || DATA.runs.length > 1) && (c[0] !== "variant" || present("variant")) &&
                                     (c[0] !== "model" || many("model")));
    const thead = document.querySelector("#trials thead"), tbody = document.querySelector("#trials tbody");
    const sort = state.sort || "";
    thead.replaceChildren(el("tr", {}, ...cols.map(c => {
      const th = el("th", {scope: "col", "data-col": c[0], ...(c[4] ? {style: "width:" + c[4] + "px"} : {}),
                           onclick: () => { state.sort = sort === c[0] ? "-" + c[0] : c[0]; update(); }}, c[1]);
      if (sort.replace(/^-/, "") === c[0]) th.setAttribute("aria-sort", sort.startsWith("-") ? "descending" : "ascending");
      return th;
    })));
    const pages = Math.max(1, Math.ceil(shown.length / PAGE));
    const page = Math.min(Math.max(1, parseInt(state.page || "1", 10) || 1), pages);
    tbody.replaceChildren(...shown.slice((page - 1) * PAGE, page * PAGE).map(r => {
      const tr = el("tr", {"data-id": rowId(r), onclick: () => { state.trial = rowId(r); update(false); }},
                    ...cols.map(c => el("td", {class: c[0]}, c[3](r))));
      if (state.trial === rowId(r)) tr.classList.add("selected");
      return tr;
    }));
    document.getElementById("count").textContent = shown.length + " of " + ROWS.length + " trials" +
      (shown.length ? " (page " + page + " of " + pages + ")" : "");
    const pager = document.getElementById("pager");
    pager.replaceChildren();
    if (pages > 1) {
      const go = n => () => { state.page = String(n); update(false); };
      pager.append(el("button", {type: "button", onclick: go(page - 1), ...(page === 1 ? {disabled: ""} : {})}, "previous"),
                   el("span", {}, page + " / " + pages),
                   el("button", {type: "button", onclick: go(page + 1), ...(page === pages ? {disabled: ""} : {})}, "next"));
    }
  }
  function kv(pairs) {
    const dl = el("dl", {class: "kv"});
    for (const [k, v] of pairs) if (v !== null && v !== undefined && v !== "") dl.append(el("dt", {}, k), el("dd", {}, v instanceof Node ? v : String(v)));
    return dl;
  }
  function dist(q) {
    const t = el("table", {class: "dist"});
    const top = q.argmax;
    for (const o of q.options) {
      const p = q.probs[o];
      t.append(el("tr", {class: o === top ? "top" : ""}, el("td", {class: "opt"}, o), el("td", {class: "p"}, pct(p)),
                  el("td", {}, el("div", {class: "bar", style: "width:" + Math.max(0, Math.min(100, 100 * (p || 0))).toFixed(1) + "%"}))));
    }
    return t;
  }
  // A question scored under each rotation of its option list: one line per rotation, as sent. A top choice that
  // is the option listed first in most rotations is the layout speaking, not the model's preference.
  function rotationTable(rots) {
    const firstWins = rots.filter(x => x.argmax != null && x.argmax === x.first).length;
    const head = el("tr", {}, ...["rotation", "listed first", "top choice", "p", "mass"].map(h => el("th", {}, h)));
    const body = rots.map((x, i) => el("tr", {class: x.argmax === x.first ? "first-wins" : ""},
      el("td", {}, String(i + 1)), el("td", {}, x.first || ""), el("td", {}, x.argmax || ""),
      el("td", {class: "num"}, num(x.p_argmax)), el("td", {class: "num"}, num(x.option_mass))));
    return el("details", {class: "rotations", open: ""},
      el("summary", {}, "the " + rots.length + " rotations as sent: the top choice was the option listed first in " + firstWins + " of " + rots.length),
      el("table", {class: "rot"}, el("thead", {}, head), el("tbody", {}, ...body)));
  }
  function drawDetail() {
    const box = document.getElementById("detail");
    const r = ROWS.find(x => rowId(x) === state.trial);
    if (!r) { box.replaceChildren(el("p", {class: "hint"}, "Choose a trial to read it: the prompt as sent, the reply, what was read from it and the Exp 2 distribution.")); return; }
    const parts = [el("h2", {}, r.model + " / " + r.study + " / " + r.trial + (r.replicate ? " #" + r.replicate : "") + (r.phase !== "study" ? " (" + r.phase + ")" : "")),
                   kv([["run", DATA.runs.length > 1 ? r.run : ""], ["condition", r.cond], ["variant", r.variant]])];
    if (r.exp1) {
      const e = r.exp1;
      parts.push(el("h3", {}, "Prompt (the messages as sent)"));
      for (const m of e.messages) parts.push(el("div", {class: "msg"}, el("div", {class: "role"}, m.role), el("div", {class: "text"}, m.content)));
      parts.push(el("h3", {}, "Reply"), kv([["status", statusBadge(e.status)], ["finish reason", e.finish],
        ["tokens", [e.prompt_tokens != null ? e.prompt_tokens + " in" : "", e.completion_tokens != null ? e.completion_tokens + " out" : "",
                    e.reasoning_tokens != null ? e.reasoning_tokens + " reasoning" : ""].filter(Boolean).join(", ")],
        ["latency", e.latency_s != null ? num(e.latency_s) + " s" : ""], ["error", e.error]]));
      parts.push(el("div", {class: "reply-box" + (e.finish === "length" ? " cut" : "")}, el("div", {class: "text reply-text"}, e.response || "(no reply)")));
      if (e.finish === "length") parts.push(el("p", {class: "warn"}, "Cut here: the reply reached max_tokens (" + ((e.sampling || {}).max_tokens || "?") + ")."));
      if (e.reasoning) parts.push(el("h3", {}, "Reasoning"), el("div", {class: "reply-box"}, el("div", {class: "text"}, e.reasoning)));
    }
    if (r.extracted) {
      const x = r.extracted;
      parts.push(el("h3", {}, "Read from the reply"), kv([["status", statusBadge(x.status)], ["read by", x.method + (x.model ? " (" + x.model + ")" : "")], ["error", x.error]]));
      parts.push(kv(Object.entries(x.fields || {}).map(([k, v]) => [k, v === null ? "— (not read)" : (typeof v === "object" ? JSON.stringify(v) : v)])));
    }
    if (r.exp2) {
      const d = r.exp2;
      parts.push(el("h3", {}, "Exp 2: the options' probabilities"), kv([["status", statusBadge(d.status)], ["error", d.error], ["scoring path", d.path]]));
      for (const [name, q] of Object.entries(d.questions)) {
        parts.push(el("p", {}, el("b", {}, name), " — option mass " + num(q.option_mass) + (q.entropy != null ? ", entropy " + num(q.entropy) + " nats" : "")), dist(q));
        const rots = (d.rotations || {})[name] || [];
        if (rots.length) parts.push(rotationTable(rots));
        if (q.prompt) parts.push(el("details", {}, el("summary", {}, "the scored prompt"), el("pre", {}, q.prompt)));
      }
    }
    const more = Object.assign({}, r.exp1 ? r.exp1.more : {}, r.exp2 ? r.exp2.more : {}, r.extracted ? r.extracted.more : {});
    parts.push(el("h3", {}, "Record"), kv([["prompt version", r.exp1 ? r.exp1.prompt_version : r.exp2 && r.exp2.prompt_version],
      ["sampling", r.exp1 ? JSON.stringify(r.exp1.sampling) : ""], ["attempts", r.exp1 && r.exp1.attempts],
      ...Object.entries(more).map(([k, v]) => [k, typeof v === "object" ? JSON.stringify(v) : v])]));
    box.replaceChildren(...parts);
  }
  function update(redrawFilters = true) {
    writeHash(state);
    if (redrawFilters) drawFilters();
    drawTable();
    drawDetail();
  }

  async function load() {
    const raw = document.getElementById("grace-data").textContent.trim();
    const bytes = Uint8Array.from(atob(raw), c => c.charCodeAt(0));
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return JSON.parse(await new Response(stream).text());
  }
  load().then(data => {
    DATA = data;
    ROWS = data.rows;
    for (const r of ROWS) {
      r.cond = Object.entries(r.condition || {}).map(([k, v]) => k + " " + v).join(", ");
      r.search = [r.trial, r.exp1 ? r.exp1.response : "", r.exp1 ? r.exp1.reasoning : "",
                  ...(r.exp1 ? r.exp1.messages.map(m => m.content) : [])].join("\n").toLowerCase();
    }
    document.getElementById("subtitle").textContent = data.subtitle;
    state = readHash();
    drawVerdicts();
    update();
    window.addEventListener("hashchange", () => { state = readHash(); update(); });
    document.body.dataset.ready = "1";
  }).catch(err => {
    document.getElementById("count").textContent = "Could not read the trials inside this file: " + err;
    document.body.dataset.ready = "error";
  });
})();
