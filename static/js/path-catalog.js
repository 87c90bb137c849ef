/*
 * Path autocomplete of the task and chain forms (loaded by templates/tasks/form.html and
 * templates/chains/form.html).
 *
 *   <input list="exec-path-options" data-catalog-check>
 *
 * The <datalist> is loaded and reloaded by htmx (#path-options, ranked for the request in the
 * request field). While the catalog lists paths, a value that is not among them gets a warning
 * under the field; the form still accepts it (the server warns again on preview). Options with
 * data-source="request" are the request's own paths, offered but not part of the catalog.
 *
 * The chain form's request field sits in step rows that htmx replaces, so #path-options names it
 * (data-request-field, a selector) and is told here when it changes ("request-changed").
 */
(function () {
  "use strict";

  const MESSAGE = "Not in the path catalog: check that it exists on CVMFS (it can still be used).";

  function catalogPaths(input) {
    const list = document.getElementById(input.getAttribute("list"));
    if (!list) {
      return [];
    }
    return Array.from(list.options)
      .filter(function (option) {
        return option.dataset.source !== "request";
      })
      .map(function (option) {
        return option.value;
      });
  }

  function check(input) {
    const known = catalogPaths(input);
    const value = input.value.trim().replace(/(.)\/+$/, "$1");
    const unknown = value !== "" && known.length > 0 && known.indexOf(value) === -1;
    let note = input.parentElement.querySelector(".catalog-warning");
    if (unknown && !note) {
      note = document.createElement("div");
      note.className = "form-text text-warning-emphasis catalog-warning";
      note.setAttribute("role", "status");
      note.textContent = MESSAGE;
      input.parentElement.appendChild(note);
    }
    if (note) {
      note.hidden = !unknown;
    }
  }

  function checkAll() {
    document.querySelectorAll("input[data-catalog-check][list]").forEach(check);
  }

  document.addEventListener("input", function (event) {
    if (event.target.matches && event.target.matches("input[data-catalog-check][list]")) {
      check(event.target);
    }
  });
  document.addEventListener("change", function (event) {
    const options = document.getElementById("path-options");
    const field = options && options.dataset.requestField;
    if (field && event.target.matches && event.target.matches(field)) {
      window.htmx.trigger(options, "request-changed");
    }
  });
  // The datalists arrived or changed (another request chosen), or the chain form's rows were
  // replaced (a step added with its paths): check the values again.
  document.addEventListener("htmx:afterSettle", checkAll);
})();
