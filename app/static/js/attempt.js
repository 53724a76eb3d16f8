// Autosave of an exercise read: the form's answers and the viewer's marks go to the server on
// every change and at least every 15 s. Only an acknowledged save is shown as "saved"; until
// then the read is kept in memory and on this device (unsaved_answers.js), a failed save says
// so and retries with a growing pause, leaving the case asks first, and a reload puts the
// kept read back. Each save names the revision it is based on: when another window or device
// saved a newer one, the server refuses it and the page shows the newer answer. The time
// limit is the server's: the clock only displays it.
import { _ } from "./i18n.js";
import { forget, forgetAttempt, keep, kept, keptOf, send } from "./unsaved_answers.js";

const root = document.getElementById("attempt");
const form = root.querySelector(".attempt-form");
const state = root.querySelector(".save-state");
const token = document.querySelector('meta[name="csrf-token"]').content;
const HEARTBEAT_MS = 15000;
const MAX_RETRY_MS = 30000;
const attemptId = root.dataset.attemptId;
const position = root.dataset.position;
const NOTICE = "cxr-academy:notice"; // a sentence for the next page of this tab

let dirty = false;
let saving = null;
let retryDelay = 1000;
let retryTimer = null;
let timer = null;
let attemptEnded = false; // a save was refused because the attempt is over
let leaving = false; // the page is going away on purpose: no "unsaved" question
let revision = Number(root.dataset.revision || 0); // the saved answer this page is based on
let unsaved = null; // the read not yet acknowledged: {answers, marks, revision}
let edits = 0; // changes made on this page; an acknowledgement covers those sent with it

function answers() {
  // Field names as rendered by quizzes/_read_form.html (see app/quizzes/readform.py).
  const data = new FormData(form);
  const out = {};
  for (const fieldset of form.querySelectorAll("fieldset[data-item]")) {
    const key = fieldset.dataset.item;
    if (fieldset.classList.contains("read-multi")) {
      const values = data.getAll(key);
      if (values.length) out[key] = values;
    } else if (fieldset.classList.contains("read-criterion")) {
      const verdict = data.get(`${key}.pass`);
      if (verdict) out[key] = { pass: verdict === "pass", reason: data.get(`${key}.reason`) || "" };
    } else {
      const value = (data.get(key) || "").trim();
      if (value) out[key] = value;
    }
  }
  return out;
}

// The inverse of answers(): put a kept read back into the form.
function fill(values) {
  for (const fieldset of form.querySelectorAll("fieldset[data-item]")) {
    const key = fieldset.dataset.item;
    const value = values[key];
    for (const input of fieldset.querySelectorAll("input")) {
      if (fieldset.classList.contains("read-criterion")) {
        if (input.type === "radio") input.checked = Boolean(value) && input.value === (value.pass ? "pass" : "fail");
        else input.value = value ? value.reason || "" : "";
      } else if (input.type === "checkbox") {
        input.checked = Array.isArray(value) && value.map(String).includes(input.value);
      } else if (input.type === "radio") {
        input.checked = value !== undefined && String(value) === input.value;
      } else {
        input.value = value === undefined ? "" : String(value);
      }
    }
  }
}

function marks() {
  return window.cxrViewer ? window.cxrViewer.state().marks.map(({ status, ...m }) => m) : [];
}

function read() {
  return { answers: answers(), marks: marks(), revision };
}

function show(text, kind = "") {
  state.textContent = text;
  state.className = `save-state ${kind}`;
}

// A case whose feedback has been seen is final: nothing more to save for it.
const finalAnswer = root.dataset.final === "1";

// The viewer starts in its own module; marks are read and put back once it is there.
const viewerReady = new Promise((resolve) => {
  const started = Date.now();
  const look = () => {
    if (window.cxrViewer || Date.now() - started > 10000) resolve(window.cxrViewer || null);
    else setTimeout(look, 50);
  };
  look();
});

// Reading the page changed nothing on the server: tell it that this case is now on screen,
// which starts its reading clock (and stops the previous case's). Saves wait for it, so that
// the time is counted to the case in the order the trainee read them.
const opened = (async () => {
  try {
    const response = await fetch(root.dataset.openedUrl, {
      method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": token },
    });
    const body = await response.json().catch(() => ({}));
    if (response.status === 409 && body.ended) {
      forgetAttempt(attemptId);
      leaving = true;
      window.location = root.dataset.resultUrl;
    }
  } catch {
    // Offline: the next acknowledged save still records the answer; only this case's
    // reading time since the last event is lost.
  }
})();

function retryLater(seconds = 0) {
  clearTimeout(retryTimer);
  retryTimer = setTimeout(save, Math.max(retryDelay, seconds * 1000));
  retryDelay = Math.min(retryDelay * 2, MAX_RETRY_MS);
}

async function save() {
  if (finalAnswer || attemptEnded) return null;
  await opened;
  if (saving) { dirty = true; return saving; }
  dirty = false;
  clearTimeout(retryTimer);
  const sent = read();
  const upTo = edits;
  show("saving…", "pending");
  saving = (async () => {
    const { outcome, body, retryAfter } = await send(root.dataset.saveUrl, token, attemptId, position, sent);
    saving = null;
    if (outcome === "saved") {
      retryDelay = 1000;
      revision = body.revision;
      if (edits === upTo) {
        unsaved = null;
        forget(attemptId, position);
      } else { // changed while this save was on its way: kept, now based on the new revision
        unsaved = read();
        keep(attemptId, position, unsaved);
        dirty = true;
      }
      clockFromServer(body.seconds_left);
      showAnswered(body.answered);
      show(_("saved %(time)s (revision %(revision)s)", {
        time: new Date(body.saved_at).toLocaleTimeString(document.documentElement.lang),
        revision: body.revision }));
      if (dirty) setTimeout(save, 0);
    } else if (outcome === "ended") {
      attemptEnded = true;
      leaving = true;
      window.location = root.dataset.resultUrl;
    } else if (outcome === "stale") {
      // Another window or device saved a newer answer: it wins, shown after the reload.
      unsaved = null;
      sessionStorage.setItem(NOTICE, body.message || _("A newer answer was saved elsewhere: it is shown."));
      leaving = true;
      window.location.reload();
    } else if (outcome === "refused") {
      show(_("not saved: %(reason)s", { reason: body.message || _("the server refused this answer") }), "failing");
    } else {
      show(_("not saved — retrying"), "failing");
      if (unsaved || dirty) retryLater(retryAfter);
    }
  })();
  return saving;
}

function changed() {
  edits += 1;
  dirty = true;
  unsaved = read();
  keep(attemptId, position, unsaved); // survives a reload or a closed tab until acknowledged
  show(_("not saved yet"), "pending");
  clearTimeout(timer);
  timer = setTimeout(save, 400);
}

form.addEventListener("change", changed);
form.addEventListener("input", (e) => { if (e.target.type === "text") changed(); });
document.getElementById("viewer").addEventListener("marks-changed", changed);
setInterval(() => { save(); }, HEARTBEAT_MS); // also keeps the reading time on the server

// A sentence left by the previous page of this tab (a refused stale save), read out once.
const notice = sessionStorage.getItem(NOTICE);
if (notice) {
  sessionStorage.removeItem(NOTICE);
  show(notice, "failing");
}

// A read kept on this device from before a reload (or a failed save on leaving) goes back
// into the page and to the server, if the server still has the answer it was based on.
const restored = finalAnswer ? null : kept(attemptId, position);
if (restored && restored.revision === revision) {
  viewerReady.then((viewer) => {
    fill(restored.answers || {});
    if (viewer && Array.isArray(restored.marks)) viewer.setMarks(restored.marks);
    edits += 1;
    unsaved = restored;
    show(_("not saved yet: your answer kept on this device is sent now"), "pending");
    save();
  });
} else if (restored) {
  forget(attemptId, position); // a newer answer was saved meanwhile: the page shows it
  if (JSON.stringify(restored.answers) !== JSON.stringify(answers())) {
    show(_("A newer answer to this case was saved in another window or on another device: it is shown."), "failing");
  }
}

// Answers of other cases of this attempt that were left unacknowledged go now, and again
// with every heartbeat until the server has them.
let sendingElsewhere = false;
async function sendKeptElsewhere() {
  if (sendingElsewhere || attemptEnded) return;
  sendingElsewhere = true;
  try {
    for (const { position: other, read: keptRead } of keptOf(attemptId)) {
      if (String(other) === String(position)) continue;
      const url = root.dataset.saveUrl.replace(/\/\d+\/answer$/, `/${other}/answer`);
      const { outcome } = await send(url, token, attemptId, other, keptRead);
      if (outcome === "saved") forget(attemptId, other);
    }
  } finally {
    sendingElsewhere = false;
  }
}
opened.then(sendKeptElsewhere);
setInterval(sendKeptElsewhere, HEARTBEAT_MS);

// Leave a case only after its answers are acknowledged: previous/next, the navigator's tiles,
// the way to the submission summary. Without an acknowledgement (no connection, a server
// error) the trainee is asked; the answer stays kept on this device either way.
const UNSAVED_QUESTION = _("Your answer to this case is not saved yet: the server could not be reached. Leave anyway? It stays on this device and is sent when the connection is back.");

async function acknowledged() {
  clearTimeout(timer);
  if (unsaved || dirty) await save();
  if (!unsaved || finalAnswer) return true;
  if (window.confirm(UNSAVED_QUESTION)) return true;
  show(_("not saved — retrying: the answer is kept until the server has it"), "failing");
  return false;
}

async function leave(href) {
  if (!(await acknowledged())) return;
  leaving = true;
  window.location = href;
}
for (const link of root.querySelectorAll(".attempt-nav a, .case-navigator a")) {
  link.addEventListener("click", (e) => {
    if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return; // new tab
    e.preventDefault();
    leave(link.href);
  });
}
// Going to the summary (or checking a practice answer) waits for the last save too.
for (const finalForm of root.querySelectorAll(".attempt-submit, .attempt-check")) {
  finalForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!(await acknowledged())) return;
    leaving = true;
    if (finalForm.method === "get") window.location = finalForm.action; // the summary, no "?"
    else finalForm.submit();
  });
}
// Closing the tab or reloading with an unacknowledged answer: the browser asks.
window.addEventListener("beforeunload", (e) => {
  if (leaving || !unsaved || finalAnswer) return;
  e.preventDefault();
  e.returnValue = "";
});

// ---- the case navigator ------------------------------------------------------------------
// Tiles say in words (their accessible name) and marks what a case is: answered as the scoring
// counts it, flagged for review, the current one. After each acknowledged save the server says
// whether this case is answered; the flag button asks the server and shows its answer.
const tile = root.querySelector(`.case-navigator a[data-position="${position}"]`);
const answeredCount = root.querySelector(".answered-count");

function describeTile(t) {
  const words = [t.classList.contains("answered") ? _("answered") : _("not answered")];
  if (t.classList.contains("flagged")) words.push(_("flagged for review"));
  if (t.classList.contains("current")) words.push(_("current case"));
  const label = _("Case %(number)s: %(status)s", { number: t.dataset.position, status: words.join(", ") });
  t.setAttribute("aria-label", label);
  t.title = label;
}

function showAnswered(answered) {
  if (!tile || typeof answered !== "boolean") return;
  tile.classList.toggle("answered", answered);
  describeTile(tile);
  if (answeredCount) answeredCount.textContent = String(root.querySelectorAll(".case-navigator a.answered").length);
}

const flagForm = root.querySelector(".attempt-flag");
function showFlag(flagged) {
  const button = flagForm.querySelector("button");
  button.setAttribute("aria-pressed", flagged ? "true" : "false");
  button.textContent = flagged ? _("Flagged for review: remove the flag") : _("Flag for review");
  flagForm.querySelector('input[name="flagged"]').value = flagged ? "0" : "1";
  if (tile) { tile.classList.toggle("flagged", flagged); describeTile(tile); }
}
if (flagForm) {
  flagForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const response = await fetch(flagForm.action, {
        method: "POST", credentials: "same-origin", body: new FormData(flagForm),
        headers: { "X-CSRFToken": token, Accept: "application/json" },
      });
      const body = await response.json().catch(() => ({}));
      if (response.status === 409 && body.ended) { leaving = true; window.location = root.dataset.resultUrl; return; }
      if (!response.ok) { show(_("flag not changed: %(reason)s", { reason: body.message || `HTTP ${response.status}` }), "failing"); return; }
      showFlag(Boolean(body.flagged));
    } catch {
      show(_("flag not changed: no connection — try again"), "failing");
    }
  });
}

// ---- keyboard shortcuts ------------------------------------------------------------------
// N next case, B previous case, Shift+1..9 the options of the main classification question.
// None of them is one of the viewer's keys (tools are letters, 1 and 0 zoom, ? its help), and
// none works while typing in a text box.
function typing(target) {
  if (!(target instanceof Element)) return false;
  if (target.isContentEditable || target.matches("textarea, select")) return true;
  return target.matches("input") && !["radio", "checkbox", "button", "submit", "reset"].includes(target.type);
}
const classification = form.dataset.classification
  ? form.querySelector(`fieldset[data-item="${form.dataset.classification}"]`) : null;
document.addEventListener("keydown", (e) => {
  if (e.defaultPrevented || e.isComposing || e.ctrlKey || e.metaKey || e.altKey) return;
  if (typing(e.target)) return;
  const key = e.key.toLowerCase();
  if (!e.shiftKey && (key === "n" || key === "b")) {
    const link = root.querySelector(`.attempt-nav [data-testid="${key === "n" ? "next" : "previous"}"]`);
    e.preventDefault();
    if (link) leave(link.href);
    return;
  }
  const digit = /^Digit([1-9])$/.exec(e.code);
  if (e.shiftKey && digit && classification && !finalAnswer) {
    const radio = classification.querySelectorAll('input[type="radio"]')[Number(digit[1]) - 1];
    if (!radio) return;
    e.preventDefault();
    radio.checked = true;
    radio.dispatchEvent(new Event("change", { bubbles: true }));
  }
});

// ---- the time limit ------------------------------------------------------------------------
// The deadline is the server's. The page gives it as a date; every acknowledged save says how
// many whole seconds the server still counts, which corrects a wrong clock on this computer (a
// fast clock must not end an exam early). When the time is up the last answers are saved: past
// the deadline the server refuses the save and we go to the result (see save); otherwise (the
// server rounds down, so up to a second remains) the submit form is posted just after the
// deadline, and the server times the attempt out and shows the result.
const clock = root.querySelector(".attempt-clock");
const GRACE_MS = 1500;
let deadline = root.dataset.deadline ? new Date(root.dataset.deadline).getTime() : null;
let endingTime = false;

function clockFromServer(secondsLeft) {
  if (deadline !== null && typeof secondsLeft === "number") deadline = Date.now() + secondsLeft * 1000;
}

async function timeUp() {
  if (endingTime) return;
  endingTime = true;
  clearTimeout(timer);
  await save();
  if (attemptEnded || Date.now() < deadline) { endingTime = false; return; } // more time by the server
  await new Promise((resolve) => setTimeout(resolve, GRACE_MS));
  const submitForm = root.querySelector(".attempt-timeup");
  leaving = true; // the server ends the attempt with the answers it has
  if (submitForm) submitForm.submit();
  else window.location = root.dataset.resultUrl;
}

// Warnings at 5 and at 1 minute left: shown on the panel, and announced once each to screen
// readers (a live region), even when a save moves the deadline back and forth around one.
const warning = root.querySelector(".time-warning");
const announcer = root.querySelector("[data-testid=time-announcer]");
const THRESHOLDS = [[60, _("1 minute left: your answers are submitted when the time is up.")],
                    [300, _("5 minutes left.")]];
const announced = new Set();
function warn(left) {
  const hit = THRESHOLDS.find(([seconds]) => left <= seconds);
  if (!warning) return;
  if (!hit) { warning.hidden = true; return; }
  const [seconds, text] = hit;
  warning.hidden = false;
  warning.textContent = text;
  warning.classList.toggle("last-minute", seconds === 60);
  if (!announced.has(seconds)) {
    announced.add(seconds);
    if (seconds === 60) announced.add(300); // past both at once: the nearer one is news
    announcer.textContent = text;
  }
}

if (clock && deadline !== null) {
  const tick = () => {
    const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
    clock.textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
    warn(left);
    if (Date.now() >= deadline) timeUp();
  };
  tick();
  setInterval(tick, 1000);
}
