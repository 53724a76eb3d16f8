// The submission summary: answers of this attempt still kept on this device (their save
// failed and the trainee left the case anyway) are sent before submitting; while any is
// not acknowledged, submitting asks first, as they would not count.
import { _ } from "./i18n.js";
import { forget, keptOf, send } from "./unsaved_answers.js";

const root = document.getElementById("attempt-summary");
const token = document.querySelector('meta[name="csrf-token"]').content;
const attemptId = root.dataset.attemptId;
const state = root.querySelector(".unsaved-state");
const submitForm = root.querySelector(".confirm-submit");

function urlOf(position) {
  return root.dataset.saveUrl.replace(/\/0\/answer$/, `/${position}/answer`);
}

function positions() {
  return keptOf(attemptId).map(({ position }) => position);
}

function describe(left) {
  state.hidden = left.length === 0;
  state.textContent = left.length
    ? _("Not saved — retrying: your answer to case %(cases)s is kept on this device and is sent when the server can be reached.", { cases: left.join(", ") })
    : "";
}

async function sendKept() {
  let saved = 0;
  for (const { position, read } of keptOf(attemptId)) {
    const { outcome } = await send(urlOf(position), token, attemptId, position, read);
    if (outcome === "saved") {
      forget(attemptId, position);
      saved += 1;
    }
  }
  return saved;
}

let delay = 1000;
async function retry() {
  if (!positions().length) return;
  const saved = await sendKept();
  // The counts above come from the server: show them again with the answers it now has.
  if (saved && !positions().length) { window.location.reload(); return; }
  describe(positions());
  if (positions().length) {
    setTimeout(retry, delay);
    delay = Math.min(delay * 2, 30000);
  }
}
describe(positions());
retry();

submitForm.addEventListener("submit", async (e) => {
  if (!positions().length) return;
  e.preventDefault();
  await sendKept();
  const left = positions();
  describe(left);
  if (left.length && !window.confirm(_("Your answer to case %(cases)s is not saved: it would not count. Submit anyway?", { cases: left.join(", ") }))) return;
  submitForm.submit();
});
