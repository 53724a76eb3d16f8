// Starts the vendored Swagger UI on the API's own OpenAPI document (a file, not an inline
// script: the portal's CSP allows scripts from the portal alone).
"use strict";

window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  window.SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    deepLinking: true,
    // The portal's document validates itself in the tests; the public validator would be
    // a request to another site.
    validatorUrl: null,
  });
});
