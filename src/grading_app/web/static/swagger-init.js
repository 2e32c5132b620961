// Starts Swagger UI on /docs. A file of ours rather than the inline script FastAPI's page
// carries, so the Content-Security-Policy can refuse every inline script.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // No badge fetched from validator.swagger.io: the policy allows no other origin, and
    // the schema's address is nobody else's business.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
})();
