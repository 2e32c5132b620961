// Progressive enhancement only: every page works without this file.
"use strict";

// Timestamps in the viewer's own time zone; the UTC value stays in the title.
function localTimes(root) {
  for (const node of root.querySelectorAll("time[datetime]")) {
    const when = new Date(node.getAttribute("datetime"));
    if (!Number.isNaN(when.getTime())) {
      node.textContent = when.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
    }
  }
}

// A batch being graded: progress, status and ETA follow the server without a reload.
function followProgress(section) {
  const url = section.getAttribute("data-live");
  const bar = section.querySelector("[data-progress]");
  const counts = section.querySelector("[data-counts]");
  const status = section.querySelector("[data-status]");
  const eta = section.querySelector("[data-eta]");
  async function refresh() {
    let batch;
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if (!response.ok) return schedule();
      batch = await response.json();
    } catch (error) {
      return schedule();
    }
    const total = batch.total_items || 0;
    const share = (n) => (total ? (100 * n) / total : 0);
    bar.querySelector(".done").style.width = share(batch.completed_items) + "%";
    bar.querySelector(".failed").style.width = share(batch.failed_items) + "%";
    bar.setAttribute("aria-valuenow", String(Math.round(share(batch.completed_items + batch.failed_items))));
    counts.textContent = `${batch.completed_items} graded${batch.failed_items ? `, ${batch.failed_items} failed` : ""} of ${total}`;
    status.textContent = (batch.status || "pending").replaceAll("_", " ");
    if (batch.estimated_completion) {
      eta.innerHTML = "";
      const time = document.createElement("time");
      time.setAttribute("datetime", batch.estimated_completion);
      time.title = batch.estimated_completion + " (UTC)";
      eta.appendChild(time);
      localTimes(eta);
    }
    if (["pending", "processing"].includes(batch.status)) schedule();
  }
  function schedule() {
    window.setTimeout(refresh, 3000);
  }
  schedule();
}

// A deadline typed in local time: send the browser's offset so the server stores UTC.
function sendTimezone(form) {
  const field = form.querySelector("[data-tz-offset]");
  if (field) form.addEventListener("submit", () => { field.value = String(new Date().getTimezoneOffset()); });
}

// Files dropped anywhere on the documents field set go into its file input.
function dropFiles(input) {
  const zone = input.closest("fieldset") || input;
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("dropping"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("dropping"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dropping");
    if (event.dataTransfer && event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      input.dispatchEvent(new Event("change", { bubbles: true }));
    }
  });
}

// Dollars as the pages write them (web/shell.py's usd filter): to the cent; under a
// cent to two significant digits, at least four decimals, never a non-zero amount as
// zero; a dash when unknown.
function usd(amount) {
  if (amount === null || amount === undefined) return "—";
  const size = Math.abs(amount);
  if (size >= 0.01 || amount === 0) {
    return "$" + amount.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }
  if (size < 0.0000005) return "under $0.000001";
  const digits = Math.min(6, Math.max(4, 1 - Math.floor(Math.log10(size))));
  const text = amount.toFixed(digits);
  return "$" + (digits > 4 ? text.replace(/0+$/, "") : text);
}

function element(name, text, attributes = {}) {
  const node = document.createElement(name);
  if (text !== undefined) node.textContent = text;
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  return node;
}

// The new-batch form: what the batch would cost (POST /api/batches/estimate), asked
// again a moment after its documents, models, prompt, scheme, budget or trust choice
// change; a newer question cancels the one still on its way. Drawn as
// _draft_estimate.html draws it.
//
// Each question sends the chosen documents, as the estimate reads them as an upload
// would. For a few that is nothing; for a class set (150 files, megabytes) sending them
// again at every key typed in the prompt is too much. So past MANY_FILES files or
// MANY_BYTES in all, only choosing other documents asks at once (they have to go up
// anyway); any other change marks the estimate shown out of date, and "Estimate cost"
// asks. (Re-pricing kept token counts would also be cheap, but needs a second way
// into the endpoint that must agree with the first; a click does not.) Pressing the
// button asks here in any case, so the chosen files stay in the browser; without
// JavaScript it posts the form (web/draft_estimate_page.py).
const MANY_FILES = 20;
const MANY_BYTES = 2 * 1024 * 1024;

function liveEstimate(output) {
  const form = output.closest("form");
  const url = output.getAttribute("data-estimate-output");
  const watched = new Set(["files", "models", "other_models", "prompt", "saved_prompt_id",
    "saved_marking_scheme_id", "marking_scheme", "template_id", "delivery", "budget",
    "hidden_instructions"]);
  const button = form.querySelector('button[name="action"][value="estimate"]');
  let timer = null;
  let pending = null;

  function many() {
    const files = Array.from(form.elements.files ? form.elements.files.files : []);
    return files.length > MANY_FILES || files.reduce((sum, file) => sum + file.size, 0) > MANY_BYTES;
  }

  function question() {
    const fields = new FormData(form);
    const data = new FormData();
    for (const name of ["prompt", "saved_prompt_id", "saved_marking_scheme_id", "template_id", "delivery", "hidden_instructions"]) {
      const value = String(fields.get(name) || "").trim();
      if (value) data.append(name, value);
    }
    const budget = String(fields.get("budget") || "").replace(/[$,\s]/g, "");
    if (budget) data.append("budget", budget);
    for (const model of fields.getAll("models")) data.append("models", model);
    for (const line of String(fields.get("other_models") || "").split("\n")) {
      if (line.trim()) data.append("models", line.trim());
    }
    for (const file of fields.getAll("files")) if (file && file.name) data.append("files", file);
    const scheme = fields.get("marking_scheme");
    if (scheme && scheme.name) data.append("marking_scheme", scheme);
    return data;
  }

  function say(text, kind = "hint") {
    output.replaceChildren(element("p", text, { class: kind }));
  }

  function draw(estimate) {
    const nodes = [];
    if (estimate.totals.to_grade) {
      const table = element("table");
      const head = element("tr");
      for (const title of ["Model", "Documents to grade", "Input tokens (cached)", "Output tokens", "Live", "Batch API"]) {
        head.appendChild(element("th", title, { scope: "col" }));
      }
      table.appendChild(element("thead")).appendChild(head);
      const body = table.appendChild(element("tbody"));
      const tokens = (n) => n.toLocaleString("en-US");
      const row = (first, figures) => {
        const tr = element("tr");
        tr.appendChild(first);
        const documents = tr.appendChild(element("td", String(figures.to_grade)));
        if (figures.held) documents.append(" ", element("small", `(and ${figures.held} held)`));
        tr.appendChild(element("td", `${tokens(figures.input_tokens)} (${tokens(figures.cached_input_tokens)})`));
        tr.appendChild(element("td", tokens(figures.output_tokens)));
        tr.appendChild(element("td", usd(figures.cost_live_usd)));
        tr.appendChild(element("td", usd(figures.cost_batch_api_usd)));
        return tr;
      };
      for (const model of estimate.models) {
        const name = element("td", model.model);
        if (model.note) { name.appendChild(element("br")); name.appendChild(element("small", model.note)); }
        body.appendChild(row(name, model));
      }
      table.appendChild(element("tfoot")).appendChild(row(element("th", "Total", { scope: "row" }), estimate.totals));
      nodes.push(table);
      const partial = estimate.totals.complete ? "" : " for the models with a price";
      nodes.push(element("p", `Tokens at about 4 characters each; prices are estimates. Delivery: ${estimate.delivery.replaceAll("_", " ")}, expected ${usd(estimate.totals.expected_cost_usd)}${partial}.`, { class: "hint" }));
    } else {
      nodes.push(element("p", "No document that can be graded yet: choose the documents to see what grading them will cost."));
    }
    const refused = estimate.files.filter((file) => !file.counted);
    if (refused.length) {
      nodes.push(element("p", "Left out, as they cannot be graded:"));
      const list = element("ul");
      for (const file of refused) list.appendChild(element("li", file.error));
      nodes.push(list);
    }
    const held = estimate.files.filter((file) => file.held).map((file) => file.filename);
    if (held.length) {
      nodes.push(element("p", `Held for review, so not counted, as hidden instructions were found in them: ${held.join(", ")}. They are sent, and paid for, only if a person grades them anyway.`));
    }
    if (estimate.within_budget === false) {
      nodes.push(element("p", `The expected cost, ${usd(estimate.totals.expected_cost_usd)}, passes the budget of ${usd(estimate.budget_usd)}: the batch would pause when the next call would pass it.`, { class: "notice" }));
    }
    output.replaceChildren(...nodes);
  }

  async function ask() {
    if (pending) pending.abort();
    const data = question();
    // Without documents, or a model (a template may name some), there is nothing to ask.
    const missing = !data.getAll("files").length ? "the documents"
      : !data.getAll("models").length && !data.get("template_id") ? "at least one model" : null;
    if (missing) {
      pending = null;
      output.removeAttribute("aria-busy");
      return say(`Choose ${missing} to see what grading will cost.`);
    }
    const asking = new AbortController();
    pending = asking;
    output.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(url, {
        method: "POST",
        body: data,
        headers: { Accept: "application/json", "X-CSRF-Token": form.elements.csrf_token.value },
        credentials: "same-origin",
        signal: asking.signal,
      });
      const answer = await response.json();
      if (pending !== asking) return;
      if (response.ok) draw(answer);
      else say(typeof answer.detail === "string" ? answer.detail : "The estimate is not available.", "error");
    } catch (error) {
      if (pending === asking) say("The estimate is not available: the server did not answer.", "error");
    } finally {
      if (pending === asking) { pending = null; output.removeAttribute("aria-busy"); }
    }
  }

  function outdated() {
    if (pending) { pending.abort(); pending = null; output.removeAttribute("aria-busy"); }
    if (output.querySelector("[data-outdated]")) return;
    output.prepend(element("p", "The form changed: press “Estimate cost” to see what it would cost (with this many documents it is not redone at every change, as each estimate sends them all).", { class: "notice", "data-outdated": "" }));
  }

  function changed(event) {
    if (!watched.has(event.target.name)) return;
    window.clearTimeout(timer);
    if (event.target.name !== "files" && many()) return outdated();
    timer = window.setTimeout(ask, 400);
  }
  form.addEventListener("input", changed);
  form.addEventListener("change", changed);
  if (button) {
    button.addEventListener("click", (event) => {
      event.preventDefault();
      window.clearTimeout(timer);
      ask();
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  for (const form of document.querySelectorAll("form[data-upload]")) sendTimezone(form);
  for (const input of document.querySelectorAll("input[data-drop]")) dropFiles(input);
  for (const section of document.querySelectorAll("[data-live]")) followProgress(section);
  for (const output of document.querySelectorAll("[data-estimate-output]")) liveEstimate(output);
});
