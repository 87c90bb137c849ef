// The API docs page: Swagger UI (vendored) renders /api/v1/openapi.json. Trying calls out is off:
// the panel's own session and CSRF header are not wired into it, and a token pasted here could leak.
(function () {
  "use strict";
  const root = document.getElementById("swagger-ui");
  if (!root || typeof window.SwaggerUIBundle !== "function") return;
  window.SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    deepLinking: true,
    supportedSubmitMethods: [],
    validatorUrl: null,
  });
})();
