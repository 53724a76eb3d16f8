// Autosave of an exercise read: the form's answers and the viewer's marks go to the server on
// every change and at least every 15 s. Only an acknowledged save is shown as "saved"; a failed
// one says so and retries. The time limit is the server's: the clock only displays it.
const root = document.getElementById("attempt");
const form = root.querySelector(".attempt-form");
const state = root.querySelector(".save-state");
const token = document.querySelector('meta[name="csrf-token"]').content;
const HEARTBEAT_MS = 15000;

let dirty = false;
let saving = null;
let retryDelay = 1000;
let timer = null;
let attemptEnded = false; // a save was refused because the attempt is over

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

function marks() {
  return window.cxrViewer ? window.cxrViewer.state().marks.map(({ status, ...m }) => m) : [];
}

function show(text, kind = "") {
  state.textContent = text;
  state.className = `save-state ${kind}`;
}

// A case whose feedback has been seen is final: nothing more to save for it.
const finalAnswer = root.dataset.final === "1";

// Reading the page changed nothing on the server: tell it that this case is now on screen,
// which starts its reading clock (and stops the previous case's). Saves wait for it, so that
// the time is counted to the case in the order the trainee read them.
const opened = (async () => {
  try {
    const response = await fetch(root.dataset.openedUrl, {
      method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": token },
    });
    const body = await response.json().catch(() => ({}));
    if (response.status === 409 && body.ended) window.location = root.dataset.resultUrl;
  } catch {
    // Offline: the next acknowledged save still records the answer; only this case's
    // reading time since the last event is lost.
  }
})();

async function save() {
  if (finalAnswer) return null;
  await opened;
  if (saving) { dirty = true; return saving; }
  dirty = false;
  show("saving…", "pending");
  saving = (async () => {
    try {
      const response = await fetch(root.dataset.saveUrl, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": token },
        body: JSON.stringify({ answers: answers(), marks: marks() }),
      });
      const body = await response.json().catch(() => ({}));
      if (response.status === 409 && body.ended) {
        attemptEnded = true;
        window.location = root.dataset.resultUrl;
        return;
      }
      if (!response.ok) {
        show(`not saved: ${body.message || `HTTP ${response.status}`}`, "failing");
        return; // bad input: retrying the same data would fail again
      }
      retryDelay = 1000;
      clockFromServer(body.seconds_left);
      show(`saved ${new Date(body.saved_at).toLocaleTimeString()} (revision ${body.revision})`);
    } catch {
      dirty = true;
      show("not saved — retrying", "failing");
      setTimeout(save, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 30000);
    } finally {
      saving = null;
      // Changes made while this save was on its way go in the next one.
      if (dirty && state.className.indexOf("failing") < 0) setTimeout(save, 0);
    }
  })();
  return saving;
}

function changed() {
  dirty = true;
  show("not saved yet", "pending");
  clearTimeout(timer);
  timer = setTimeout(save, 400);
}

form.addEventListener("change", changed);
form.addEventListener("input", (e) => { if (e.target.type === "text") changed(); });
document.getElementById("viewer").addEventListener("marks-changed", changed);
setInterval(() => { save(); }, HEARTBEAT_MS); // also keeps the reading time on the server

// Leave a case only after its answers are acknowledged.
for (const link of root.querySelectorAll(".attempt-nav a")) {
  link.addEventListener("click", async (e) => {
    e.preventDefault();
    clearTimeout(timer);
    await save();
    window.location = link.href;
  });
}
// Submitting (or checking a practice answer) waits for the last save to be acknowledged.
for (const finalForm of root.querySelectorAll(".attempt-submit, .attempt-check")) {
  finalForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearTimeout(timer);
    await save();
    e.target.submit();
  });
}

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
  const submitForm = root.querySelector(".attempt-submit");
  if (submitForm) submitForm.submit();
  else window.location = root.dataset.resultUrl;
}

if (clock && deadline !== null) {
  const tick = () => {
    const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
    clock.textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
    if (Date.now() >= deadline) timeUp();
  };
  tick();
  setInterval(tick, 1000);
}
