// sprout inspect: the page. Talks only to the local server that served it (/api/...). Every text from the run is
// put in the page as text (textContent), never as markup.
"use strict";

const state = { filters: {}, q: "", mark: null, audit: false, offset: 0, limit: 100, rows: [], selected: -1,
                detail: null, summary: null, total: 0 };
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path, body) {
  const response = await fetch(path, body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function query() {
  const params = new URLSearchParams();
  for (const [facet, values] of Object.entries(state.filters)) for (const v of values) params.append(facet, v);
  if (state.q) params.set("q", state.q);
  if (state.mark) params.set("mark", state.mark);
  if (state.audit) params.set("audit", "1");
  params.set("offset", state.offset);
  params.set("limit", state.limit);
  return params.toString();
}

let loading = 0;
async function load() {
  const ticket = ++loading;
  const data = await api(`/api/rows?${query()}`);
  if (ticket !== loading) return; // a newer request is on its way: drop this answer
  state.rows = data.rows;
  state.total = data.total;
  renderFacets(data.facets);
  renderRows();
  state.selected = state.rows.length ? 0 : -1;
  if (state.selected >= 0) await select(state.selected);
  else $("detail").replaceChildren(el("p", { class: "hint" }, "No rows match."));
  // For tests and the benchmark: the rows of this query and the first one's detail are on the page.
  if (ticket === loading) document.body.dataset.loaded = String(ticket);
}

function renderFacets(facets) {
  const report = (state.summary && state.summary.report) || {};
  const nav = $("facets");
  nav.replaceChildren();
  for (const facet of [...state.summary.facets, "mark"]) {
    nav.append(el("h3", {}, facet));
    for (const [value, n] of facets[facet] || []) {
      const chosen = facet === "mark" ? state.mark === value : (state.filters[facet] || []).includes(value);
      const box = el("input", { type: "checkbox", "data-facet": facet, "data-value": value });
      box.checked = chosen;
      box.addEventListener("change", () => toggleFacet(facet, value));
      let check = null;
      if (facet === "rule" && report.rule && value in report.rule) {
        const ok = !state.q && !state.mark && !state.audit && Object.keys(state.filters).every(
          (f) => f === "rule" || f === "status" && state.filters.status.includes("rejected"));
        check = el("span", { class: "report" + (n === report.rule[value] || !ok ? "" : " off"),
                             title: "drops of this rule in report.json" }, `report ${report.rule[value]}`);
      }
      nav.append(el("label", {}, box, el("span", {}, value), check, el("span", { class: "n" }, n)));
    }
  }
}

function toggleFacet(facet, value) {
  if (facet === "mark") state.mark = state.mark === value ? null : value;
  else {
    const values = new Set(state.filters[facet] || []);
    values.has(value) ? values.delete(value) : values.add(value);
    if (values.size) state.filters[facet] = [...values]; else delete state.filters[facet];
  }
  state.offset = 0;
  load();
}

function renderRows() {
  const body = $("rows");
  body.replaceChildren();
  state.rows.forEach((row, i) => {
    const tr = el("tr", { "data-rowid": row.rowid, onclick: () => select(i) },
      el("td", {}, el("span", { class: `badge ${row.status}` }, row.status)),
      el("td", {}, `${row.generator || ""}${row.operation ? " / " + row.operation : ""}`,
         row.round ? ` · r${row.round}` : ""),
      el("td", {}, row.rule || ""),
      el("td", { class: "text", title: row.instruction }, row.instruction || row.output || "(empty)"),
      el("td", { class: "mark" }, row.mark ? el("span", { class: `badge ${row.mark}` }, row.mark) : ""));
    if (i === state.selected) tr.classList.add("selected");
    body.append(tr);
  });
  const last = Math.min(state.offset + state.rows.length, state.total);
  $("count").textContent = `${state.total} rows`;
  $("page").textContent = state.total ? `${state.offset + 1}–${last} of ${state.total}` : "0 of 0";
  $("prev").disabled = state.offset === 0;
  $("next").disabled = last >= state.total;
}

let showing = 0;
async function show(rowid) {
  // The detail pane shows the last row asked for: an earlier answer that arrives late is dropped, and until the
  // answer is in, state.detail is null, so a mark key pressed meanwhile marks nothing rather than the row before.
  const ticket = ++showing;
  state.detail = null;
  const detail = await api(`/api/row/${rowid}`);
  if (ticket !== showing) return;
  state.detail = detail;
  renderDetail(detail);
}

async function select(i) {
  if (i < 0 || i >= state.rows.length) return;
  state.selected = i;
  for (const tr of $("rows").children) tr.classList.toggle("selected", Number(tr.dataset.rowid) === state.rows[i].rowid);
  $("rows").children[i].scrollIntoView({ block: "nearest" });
  await show(state.rows[i].rowid);
}

function diffView(segments) {
  return el("pre", {}, ...segments.map(([op, text]) => op === "del" ? el("del", {}, text)
    : op === "ins" ? el("ins", {}, text) : document.createTextNode(text)));
}

function walkLink(label, rowid, id) {
  if (rowid === null || rowid === undefined) return el("span", { title: "not in this run's files" }, `${label} (not in this run)`);
  return el("a", { class: "walk", "data-rowid": rowid, onclick: () => openRow(rowid, id) }, label);
}

function renderDetail(d) {
  const pane = $("detail");
  const parts = [el("h2", {}, el("span", { class: `badge ${d.status}` }, d.status), " ", d.id),
    el("div", {}, `${d.generator || ""} ${d.operation ? "/ " + d.operation : ""} · round ${d.round ?? 0}`,
       d.stage ? ` · stage ${d.stage}` : "", d.label ? ` · label ${d.label}` : "")];
  const marks = el("div", { class: "marks" },
    el("button", { id: "mark-good", onclick: () => mark("good") }, "good (g)"),
    el("button", { id: "mark-bad", onclick: () => mark("bad") }, "bad (b)"),
    el("button", { id: "mark-clear", onclick: () => mark(null) }, "unmark (u)"),
    d.mark ? el("span", { class: `badge ${d.mark}`, id: "current-mark" }, d.mark) : null,
    el("textarea", { id: "note", placeholder: "note (n to focus; saved with the mark, g or b)" }));
  parts.push(marks);
  if (d.status === "rejected") {
    parts.push(el("h3", {}, "Why it was dropped"),
      el("div", { id: "why" }, el("b", {}, d.rule), d.score !== null ? ` · score ${d.score.toFixed(3)}` : "",
         el("pre", {}, d.reason || "")));
  }
  if (d.neighbour) {
    parts.push(el("h3", {}, "Compared with"),
      el("div", {}, walkLink(d.neighbour.id ? `row ${d.neighbour.id}` : "a seed or an earlier text",
                             d.neighbour.rowid, d.neighbour.id)));
    for (const [field, diff] of Object.entries(d.neighbour.diffs)) {
      parts.push(el("div", { class: "sides neighbour" }, el("div", {}, el("b", {}, `this ${field}`), diffView(diff.left)),
                    el("div", {}, el("b", {}, `neighbour ${field}`), diffView(diff.right))));
    }
  }
  for (const field of ["instruction", "input", "output"]) {
    if (d[field]) parts.push(el("h3", {}, field), el("pre", { class: `field-${field}` }, d[field]));
  }
  if (d.raw) parts.push(el("h3", {}, "raw model reply"), el("pre", {}, d.raw));
  parts.push(el("h3", {}, "Lineage"));
  const lineage = el("div", { id: "lineage" });
  if (d.chain.length) {
    for (const step of d.chain) {
      lineage.append(el("div", { class: "step" }, `${step.operation || "step"} from `,
        walkLink(step.parent_id, step.in_run ? step.rowid : null, step.parent_id),
        step.in_run ? ` (${step.status}${step.rule ? ": " + step.rule : ""})` : ""));
      if (step.diff) lineage.append(el("div", { class: "sides chain" }, el("div", {}, el("b", {}, "parent"), diffView(step.diff.left)),
                                          el("div", {}, el("b", {}, "child"), diffView(step.diff.right))));
    }
  } else lineage.append(el("div", {}, "No parent in this run (a root: grown from seeds, or a source row)."));
  if (d.children.length) {
    lineage.append(el("div", {}, "Evolved into: "));
    for (const child of d.children) {
      lineage.append(el("div", { class: "child" }, walkLink(child.id, child.rowid, child.id),
        ` ${child.operation || ""} (${child.status}${child.rule ? ": " + child.rule : ""}) `, child.instruction));
    }
  }
  const L = d.lineage || {};
  if (L.seed_ids && L.seed_ids.length) lineage.append(el("div", {}, `seeds: ${L.seed_ids.join(", ")}`));
  if (L.root_id) lineage.append(el("div", {}, "root: ", walkLink(L.root_id, d.root_rowid, L.root_id)));
  if (d.contexts.length) lineage.append(el("div", {}, `shown in its prompt: ${d.contexts.join(", ")}`));
  if (L.prompts) lineage.append(el("div", { class: "prompts" }, "prompts: ",
    Object.entries(L.prompts).map(([name, hash]) => `${name} (${hash})`).join(", ")));
  if (L.model) lineage.append(el("div", {}, `model: ${L.model}`));
  if (L.sampling && Object.keys(L.sampling).length) lineage.append(el("pre", { class: "sampling" }, JSON.stringify(L.sampling)));
  parts.push(lineage);
  pane.replaceChildren(...parts);
  $("note").value = d.note || "";
}

async function openRow(rowid, id) {
  // A row outside the current list (a parent, a child, a neighbour): show it, and find it in the list if it is there.
  const index = state.rows.findIndex((r) => r.rowid === rowid);
  if (index >= 0) return select(index);
  await show(rowid);
}

async function mark(value) {
  const d = state.detail;
  if (!d) return;
  const note = $("note").value;
  await api("/api/mark", { id: d.id, status: d.status, mark: value, note });
  d.mark = value; d.note = note;
  for (const row of state.rows) if (row.id === d.id && row.status === d.status) { row.mark = value; row.note = note; }
  renderRows();
  if (state.detail === d) renderDetail(d); // unless another row was opened meanwhile
  document.body.dataset.marked = `${d.id}:${value}`;
  if (state.audit) refreshAudit();
}

async function refreshAudit() {
  const report = await api("/api/audit");
  const box = $("audit-report");
  box.hidden = !report;
  if (!report) return;
  const table = (title, rows, key) => el("div", {}, el("h3", {}, title), el("table", {},
    el("thead", {}, el("tr", {}, ...["name", "population", "sampled", "marked", "bad", key, "95% CI"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows.map((r) => el("tr", {}, el("td", {}, r.name), el("td", {}, r.population), el("td", {}, r.drawn),
      el("td", {}, r.marked), el("td", {}, r.bad), el("td", {}, r[key] === null ? "–" : `${Math.round(r[key] * 100)}%`),
      el("td", {}, r.ci95 ? `${Math.round(r.ci95[0] * 100)}–${Math.round(r.ci95[1] * 100)}%` : "–"))))));
  box.replaceChildren(el("h2", {}, `Audit: ${report.marked} of ${report.drawn} marked`),
    table("Rule precision (drops marked bad)", report.rules, "precision"),
    table("Accepted rows: error rate per generator", report.generators, "error_rate"));
}

function renderSummary(s) {
  $("run").textContent = s.run_dir;
  $("totals").textContent = `${s.accepted} accepted · ${s.rejected} rejected`;
  const check = $("check");
  if (!s.report || s.report.accepted === undefined) check.textContent = "no report.json";
  else if (s.mismatches.length) { check.textContent = `differs from report.json: ${s.mismatches.join("; ")}`; check.className = "bad"; }
  else check.textContent = "counts match report.json ✓";
  $("audit-toggle").hidden = !s.audit;
}

let searchTimer = null;
function bind() {
  $("search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => { state.q = $("search").value; state.offset = 0; load(); }, 150);
  });
  $("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - state.limit); load(); });
  $("next").addEventListener("click", () => { state.offset += state.limit; load(); });
  $("clear").addEventListener("click", () => { state.filters = {}; state.mark = null; state.q = ""; $("search").value = ""; state.offset = 0; load(); });
  $("audit").addEventListener("change", () => { state.audit = $("audit").checked; state.offset = 0; load(); refreshAudit(); });
  document.addEventListener("keydown", (event) => {
    const typing = ["INPUT", "TEXTAREA"].includes(document.activeElement.tagName);
    if (event.key === "Escape") { document.activeElement.blur(); return; }
    if (typing) {
      if (event.key === "Enter" && document.activeElement.id === "note" && !event.shiftKey) {
        // Enter keeps the note: saved now with the row's mark if it has one, else with the next g or b.
        event.preventDefault(); document.activeElement.blur();
        if (state.detail && state.detail.mark) mark(state.detail.mark);
      }
      return;
    }
    const actions = {
      j: () => select(state.selected + 1), ArrowDown: () => select(state.selected + 1),
      k: () => select(state.selected - 1), ArrowUp: () => select(state.selected - 1),
      g: () => mark("good"), b: () => mark("bad"), u: () => mark(null),
      n: () => $("note").focus(), "/": () => $("search").focus(),
      "[": () => { const step = state.detail && state.detail.chain[0]; if (step && step.in_run) openRow(step.rowid, step.parent_id); },
      "]": () => { const child = state.detail && state.detail.children[0]; if (child) openRow(child.rowid, child.id); },
    };
    if (actions[event.key]) { event.preventDefault(); actions[event.key](); }
  });
}

async function start() {
  bind();
  state.summary = await api("/api/summary");
  renderSummary(state.summary);
  await load();
}

start().catch((error) => { document.body.prepend(el("p", { class: "error" }, String(error))); console.error(error); });
