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
    if (event.dataTransfer && event.dataTransfer.files.length) input.files = event.dataTransfer.files;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  for (const form of document.querySelectorAll("form[data-upload]")) sendTimezone(form);
  for (const input of document.querySelectorAll("input[data-drop]")) dropFiles(input);
  for (const section of document.querySelectorAll("[data-live]")) followProgress(section);
});
