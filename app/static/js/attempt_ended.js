// The result of an ended attempt: nothing of it is kept on this device any longer.
import { forgetAttempt } from "./unsaved_answers.js";

for (const element of document.querySelectorAll("[data-ended-attempt]")) {
  forgetAttempt(element.dataset.endedAttempt);
}
