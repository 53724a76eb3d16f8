// Starts the viewer on a page that has <div id="viewer" data-case-url="...">.
import { _ } from "../../../static/js/i18n.js";
import { Viewer } from "./viewer.js";

const root = document.getElementById("viewer");
async function caseData() {
  // Embedded in the page (JSON, never executed); fetched when a page does not embed it.
  const embedded = document.getElementById("viewer-data");
  if (embedded) return JSON.parse(embedded.textContent);
  const response = await fetch(root.dataset.caseUrl, { credentials: "same-origin" });
  if (!response.ok) throw new Error(_("The case could not be loaded (%(status)s).", { status: response.status }));
  return response.json();
}

if (root) {
  const params = new URLSearchParams(window.location.search);
  try {
    const data = await caseData();
    // Exposed for the pages that embed the viewer (and for browser tests).
    window.cxrViewer = new Viewer(root, data, {
      renderer: params.get("renderer") === "canvas2d" ? "canvas2d" : "webgl2",
      review: Boolean(data.review) || (params.get("review") === "1" && Boolean(data.reference_marks)),
    });
  } catch (error) {
    root.querySelector(".vw-status").textContent = error.message;
  }
}
