// Starts the viewer on a page that has <div id="viewer" data-case-url="...">.
import { Viewer } from "./viewer.js";

const root = document.getElementById("viewer");
if (root) {
  const params = new URLSearchParams(window.location.search);
  const response = await fetch(root.dataset.caseUrl, { credentials: "same-origin" });
  if (response.ok) {
    const data = await response.json();
    // Exposed for the pages that embed the viewer (and for browser tests).
    window.cxrViewer = new Viewer(root, data, {
      renderer: params.get("renderer") === "canvas2d" ? "canvas2d" : "webgl2",
      review: params.get("review") === "1" && Boolean(data.reference_marks),
    });
  } else {
    root.querySelector(".vw-status").textContent = `The case could not be loaded (${response.status}).`;
  }
}
