// A job's page: asks the status endpoint every second for the results not shown yet and
// adds them to the table, moving the progress bar, until the job ends. Polling, not a
// socket: one small request a second while the page is open, through any proxy.
import { _ } from "./i18n.js";

const section = document.getElementById("job");
const statusUrl = section.dataset.statusUrl;
const caseUrl = section.dataset.caseUrl.replace(/0$/, "");
// Absent for jobs without per-file results (re-scoring, export, reminders): their outcome
// is a summary the server renders, so the page reloads once when they end.
const rows = section.querySelector("[data-testid=job-results]");
const bar = section.querySelector("[data-testid=job-progress]");
const count = section.querySelector("[data-testid=job-count]");
const status = section.querySelector("[data-testid=job-status]");
const error = section.querySelector("[data-testid=job-error]");
const summary = section.querySelector("[data-testid=import-summary]");
let shown = Number(section.dataset.shown);
const counts = { imported: 0, duplicate: 0, rejected: 0 };
for (const row of rows ? rows.querySelectorAll("tr") : []) {
  const kind = row.className.replace("result-", "");
  if (kind in counts) counts[kind] += 1;
}

// A job's stored status as the page shows it (the server's words for the same values).
const STATUSES = { queued: _("queued"), running: _("running"), done: _("done"),
  failed: _("failed"), cancelled: _("cancelled") };

// A translated sentence with a link in place of its %(link)s placeholder.
function appendWithLink(parent, sentence, link) {
  const [before, after = ""] = sentence.split("%(link)s");
  parent.append(before, link, after);
}

function cell(row, text) {
  const td = document.createElement("td");
  if (text !== undefined) td.textContent = text;
  row.append(td);
  return td;
}

function caseLink(id) {
  const a = document.createElement("a");
  a.href = caseUrl + id;
  a.textContent = _("Case %(number)s", { number: id });
  return a;
}

function addRow(item) {
  const row = document.createElement("tr");
  row.className = `result-${item.status}`;
  row.dataset.testid = "file-result";
  cell(row, item.name);
  const result = cell(row);
  if (item.status === "imported") {
    if (item.case_id) appendWithLink(result, _("imported as %(link)s"), caseLink(item.case_id));
    else result.append(_("imported as a case since removed"));
  } else if (item.status === "duplicate") {
    if (item.case_id) appendWithLink(result, _("duplicate of %(link)s"), caseLink(item.case_id));
    else result.append(_("duplicate"));
  } else {
    result.append(_("refused"));
  }
  const details = cell(row);
  if (item.reason) {
    const span = document.createElement("span");
    span.className = "reason";
    span.textContent = item.reason;
    details.append(span);
  }
  if (item.pixel_review_needed) {
    const badge = document.createElement("span");
    badge.className = "badge warn";
    badge.textContent = _("pixel review needed");
    details.append(" ", badge);
  }
  rows.append(row);
  counts[item.status] += 1;
  summary.textContent = _("%(imported)s imported · %(duplicate)s already in the library · %(refused)s refused",
    { imported: counts.imported, duplicate: counts.duplicate, refused: counts.rejected });
}

async function poll() {
  let data;
  try {
    const response = await fetch(`${statusUrl}?after=${shown}`, {
      headers: { Accept: "application/json" }, credentials: "same-origin",
    });
    if (!response.ok) throw new Error(String(response.status));
    data = await response.json();
  } catch {
    setTimeout(poll, 5000); // the server is restarting or the network dropped: try again
    return;
  }
  for (const item of rows ? data.items : []) {
    if (item.position >= shown) {
      addRow(item);
      shown = item.position + 1;
    }
  }
  if (data.total !== null) {
    bar.max = Math.max(data.total, 1);
    bar.value = data.done;
  }
  count.textContent = `${data.done} / ${data.total ?? "…"}`;
  status.dataset.status = data.status;
  status.textContent = STATUSES[data.status] || data.status;
  if (data.error) {
    error.textContent = data.error;
    error.hidden = false;
  }
  if (!data.finished) setTimeout(poll, 1000);
  else if ("reloadWhenFinished" in section.dataset) window.location.reload();
}

if (!["done", "failed", "cancelled"].includes(status.dataset.status)) poll();
