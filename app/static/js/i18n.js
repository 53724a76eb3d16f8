// The page scripts' texts in the reader's language. The portal renders the page's catalogue
// (the server's gettext catalogue, same message ids, only the scripts' messages) into
// <script type="application/json" id="js-messages">; without it the English stands.
// Placeholders are gettext's: _("Case %(number)s", { number: 3 }).
const node = document.getElementById("js-messages");
const messages = node ? JSON.parse(node.textContent) : {};

export function _(message, values = {}) {
  const text = messages[message] || message;
  return text.replace(/%\((\w+)\)[sd]/g, (whole, name) => (name in values ? String(values[name]) : whole));
}
