// The reference read page: one Save stores the form's answers and the viewer's marks. The
// marks travel as JSON in the form's hidden "marks" field, filled just before it is sent;
// left empty when the viewer did not start, which keeps the marks already saved.
const form = document.querySelector(".reference-read-form");
const field = form.querySelector('input[name="marks"]');

form.addEventListener("submit", () => {
  if (!window.cxrViewer) return;
  const marks = window.cxrViewer.state().marks.map(({ status, ...mark }) => mark);
  field.value = JSON.stringify(marks);
});
