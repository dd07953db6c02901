// Loads MathJax 3 for the pages that contain math (Sphinx's `mathjax_path` points here).
// First choice: the copy that `bash .ci/setup` vendors into book/_static/mathjax/, so that the
// math renders offline, in a classroom without a network and in the browser test.
// Where that copy is missing (a build without npm), the same version comes from the CDN.
(function () {
  "use strict";
  var MATHJAX_VERSION = "3.2.2";
  var BUNDLE = "tex-svg-full.js";  // TeX input, every TeX extension and SVG output in one file
  var localCopy = new URL("mathjax/" + BUNDLE, document.currentScript.src).href;
  var cdnCopy = "https://cdn.jsdelivr.net/npm/mathjax@" + MATHJAX_VERSION + "/es5/" + BUNDLE;

  function addScript(src, onError) {
    var script = document.createElement("script");
    script.src = src;
    script.async = true;
    script.onerror = onError || null;
    document.head.appendChild(script);
  }

  addScript(localCopy, function () { addScript(cdnCopy); });
})();
