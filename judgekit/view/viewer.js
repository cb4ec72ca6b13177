// judgekit viewer: filters, sorting and the item detail. Candidate text only ever goes through
// textContent (el()), never innerHTML: it is data, not markup.
"use strict";
const model = JSON.parse(document.getElementById("data").textContent);
const runs = model.runs;
const items = runs[0].items;
const second = runs.length > 1 ? Object.fromEntries(runs[1].items.map((e) => [e.id, e])) : null;
const changes = model.changes || {};
const $ = (id) => document.getElementById(id);
let selected = null;

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}
const fmt = (x, d = 3) => (x === null || x === undefined ? "–" : Number(x).toFixed(d));
const signed = (x) => (x === null || x === undefined ? "–" : (x > 0 ? "+" : "") + Number(x).toFixed(3));
const probs = (p) => (p ? Object.entries(p).map(([k, v]) => `${k} ${fmt(v, 2)}`).join(" · ") : "invalid");

// one select per meta column of the items file (model, category...): "" = any value
const metaColumns = runs[0].meta_columns || [];
const metaText = (v) => (v === null || v === undefined ? "(none)" : String(v));
metaColumns.forEach((column) => {
  const label = el("label", column + " ");
  const select = el("select");
  select.dataset.column = column;
  select.appendChild(el("option", "any"));
  select.options[0].value = "";
  [...new Set(items.map((e) => metaText(e.meta[column])))].sort().forEach((v) => {
    const option = el("option", v);
    option.value = v;
    select.appendChild(option);
  });
  select.addEventListener("change", renderList);
  label.appendChild(select);
  $("meta-filters").appendChild(label);
});
const metaMatch = (e) => [...$("meta-filters").querySelectorAll("select")].every(
  (s) => s.value === "" || metaText(e.meta[s.dataset.column]) === s.value);

function visible() {
  let out = items.filter((e) =>
    (!$("f-invalid").checked || !e.valid) &&
    (!$("f-flip").checked || e.flip === true) &&
    (!$("f-human").checked || e.disagrees === true) &&
    metaMatch(e));
  const key = $("sort").value;
  const by = {
    id: (a, b) => (a.id < b.id ? -1 : 1),
    margin: (a, b) => a.margin - b.margin,
    entropy: (a, b) => b.entropy - a.entropy,
    change: (a, b) => Math.abs(changes[b.id] ?? -1) - Math.abs(changes[a.id] ?? -1),
  }[key];
  return out.slice().sort(by);
}

function renderList() {
  const head = $("list").tHead;
  head.replaceChildren();
  const cols = ["id", "label", "score", "flip", "mass", "entropy", "human"];
  if (second) cols.push("score 2", "change");
  const tr = el("tr");
  cols.forEach((c) => tr.appendChild(el("th", c)));
  head.appendChild(tr);
  const body = $("list").tBodies[0];
  body.replaceChildren();
  const shown = visible();
  shown.forEach((e) => {
    const row = el("tr", null, "row" + (e.id === selected ? " selected" : ""));
    row.dataset.id = e.id;
    row.appendChild(el("td", e.id));
    row.appendChild(el("td", e.valid ? e.label : "invalid", e.valid ? "" : "bad"));
    row.appendChild(el("td", fmt(e.score)));
    row.appendChild(el("td", e.flip === null ? "–" : e.flip ? "flip" : "", e.flip ? "warn" : ""));
    row.appendChild(el("td", fmt(e.label_mass, 2)));
    row.appendChild(el("td", fmt(e.entropy, 2)));
    row.appendChild(el("td", e.human ?? "–", e.disagrees ? "bad" : ""));
    if (second) {
      row.appendChild(el("td", second[e.id] ? fmt(second[e.id].score) : "–"));
      const change = changes[e.id];
      row.appendChild(el("td", signed(change), change < 0 ? "bad" : ""));
    }
    row.addEventListener("click", () => { selected = e.id; renderList(); renderDetail(); });
    body.appendChild(row);
  });
  $("count").textContent = `${shown.length} of ${items.length} items`;
}

function runDetail(run, e, own) {
  const box = el("div");
  box.appendChild(el("h3", run.path));
  if (own) {  // two runs: each shows the answers it judged (a candidate run has its own)
    Object.entries(e.answers).forEach(([k, v]) => {
      box.appendChild(el("h4", `${k === "answer" ? "Answer" : "Answer " + k} (${e.lengths[k]} characters)`));
      box.appendChild(el("pre", v, "answer"));
    });
  }
  const table = el("table");
  const facts = [
    ["final score", fmt(e.score)], ["label", e.valid ? e.label : "invalid"],
    ["label distribution", probs(e.label_probs)], ["flip with order", e.flip ?? "–"],
    ["P(A) in AB / BA", `${fmt(e.p_a_ab)} / ${fmt(e.p_a_ba)}`],
    ["mean label mass", fmt(e.label_mass)], ["entropy", fmt(e.entropy)],
    ["distance to boundary", fmt(e.margin)], ["human label", e.human ?? "–"],
    ["controls", Object.entries(e.controls).map(([k, v]) => `${k}=${v}`).join(", ")],
  ];
  facts.forEach(([k, v]) => {
    const tr = el("tr");
    tr.appendChild(el("th", k));
    tr.appendChild(el("td", v));
    table.appendChild(tr);
  });
  box.appendChild(table);
  const criteria = Object.entries(e.criteria || {});
  if (criteria.length) {
    box.appendChild(el("h4", e.pass_ratio === null ? "Per criterion" : `Checks (pass ratio ${fmt(e.pass_ratio, 2)})`));
    const crit = el("table", null, "judgments");
    criteria.forEach(([name, c]) => {
      const tr = el("tr");
      [name, c.check ?? "", c.valid ? c.label ?? "tie" : "invalid", fmt(c.score)].forEach((x) => tr.appendChild(el("td", x)));
      crit.appendChild(tr);
    });
    box.appendChild(crit);
  }
  box.appendChild(el("h4", "Per variant and order"));
  const per = el("table", null, "judgments");
  const hr = el("tr");
  ["variant", "order", "criterion", "distribution", "label", "mass", "invalid reason"].forEach((c) => hr.appendChild(el("th", c)));
  per.appendChild(hr);
  e.judgments.forEach((j) => {
    const tr = el("tr");
    [j.variant, j.order ?? "–", j.criterion ?? "–", probs(j.label_probs), j.label ?? "–", fmt(j.label_mass, 2), j.invalid_reason ?? ""]
      .forEach((c) => tr.appendChild(el("td", c)));
    per.appendChild(tr);
  });
  box.appendChild(per);
  const reasoned = e.judgments.filter((j) => j.rationale != null);
  if (reasoned.length) {
    box.appendChild(el("h4", "Rationales (reasoning mode: written before the label was read)"));
    reasoned.forEach((j) => {
      const details = el("details", null, "rationale");
      details.appendChild(el("summary", [j.variant, j.order, j.criterion].filter((x) => x != null).join(" · ")));
      details.appendChild(el("pre", j.rationale));
      box.appendChild(details);
    });
  }
  if (run.mode === "pairwise") {
    box.appendChild(el("p", "BA rows show labels as the judge saw them: there A is the original answer B.", "hint"));
  }
  box.appendChild(el("h4", "Exact prompts"));
  Object.entries(e.prompts).forEach(([key, messages]) => {
    const details = el("details");
    details.appendChild(el("summary", key));
    messages.forEach((m) => details.appendChild(el("pre", `[${m.role}]\n${m.content}`)));
    box.appendChild(details);
  });
  return box;
}

function renderDetail() {
  const e = items.find((x) => x.id === selected);
  const detail = $("detail");
  detail.replaceChildren();
  if (!e) return;
  detail.appendChild(el("h2", e.id, "item-id"));
  detail.appendChild(el("h4", "Question"));
  detail.appendChild(el("pre", e.question, "question"));
  if (e.context) { detail.appendChild(el("h4", "Context")); detail.appendChild(el("pre", e.context)); }
  if (e.conversation && e.conversation.length) {
    detail.appendChild(el("h4", "Conversation before the judged reply"));
    e.conversation.forEach((t) => detail.appendChild(el("pre", `[${t.role}]\n${t.content}`, "turn")));
  }
  if (e.reference) { detail.appendChild(el("h4", "Reference")); detail.appendChild(el("pre", e.reference)); }
  const meta = Object.entries(e.meta || {});
  if (meta.length) detail.appendChild(el("p", meta.map(([k, v]) => `${k}: ${metaText(v)}`).join(" · "), "hint"));
  if (!second) {
    Object.entries(e.answers).forEach(([k, v]) => {
      detail.appendChild(el("h4", `${k === "answer" ? "Answer" : "Answer " + k} (${e.lengths[k]} characters)`));
      detail.appendChild(el("pre", v, "answer"));
    });
  }
  const sides = el("div", null, "runs");
  sides.appendChild(runDetail(runs[0], e, !!second));
  if (second && second[e.id]) sides.appendChild(runDetail(runs[1], second[e.id], true));
  detail.appendChild(sides);
}

["f-invalid", "f-flip", "f-human", "sort"].forEach((id) => $(id).addEventListener("change", renderList));
if (!second) $("sort").querySelector('option[value="change"]').disabled = true;
const linked = location.hash.match(/^#item=(.+)$/);  // the calibration report links items
if (linked) selected = decodeURIComponent(linked[1]);
renderList();
renderDetail();
