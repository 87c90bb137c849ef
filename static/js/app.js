/*
 * prodpanel front-end glue. Loaded on every page after htmx and Bootstrap (see templates/base.html).
 *
 * The CSP allows only script-src 'self', so nothing here uses eval, inline handlers or inline
 * styles, and every behaviour is opted into with data-* attributes:
 *
 *   <meta name="csrf-token" content="…">     X-CSRFToken header on every htmx request
 *   <form data-confirm="Abort 3 tasks?">      ask before submitting (also on a submit button,
 *   <button data-confirm="…">                 a link, or any element with hx-post/hx-get …)
 *   <input type="checkbox" data-select-all="task_id">
 *                                             toggles every checkbox name="task_id" in the same
 *                                             table (or form); shows the indeterminate state
 *   <button data-requires-selection="task_id"> disabled while no such checkbox is ticked
 *   <div class="alert" data-autodismiss="5000"> closes itself after N ms (default 5000)
 *   <time datetime="2026-11-28T12:00:00Z" data-local>
 *                                             rewritten into the browser's time zone
 *   <select data-browser-zone>                set to the browser's time zone (when it is an
 *                                             option) unless the user chose one before
 *   <input type="radio" name="launch_when"> with <div data-shown-when="launch_when=at"> in the
 *                                             same form: shown only while that choice is checked
 *   <div id="flash-messages">                 where htmx request errors are reported
 *   <select data-step-kinds='{"SIM": "generation"}'> with <div data-for-kind="processing">
 *                                             in the same form: shown only while the selected
 *                                             step is of that kind
 *
 * Everything also works on content that htmx swaps in later (htmx.onLoad / event delegation).
 */
(function () {
  "use strict";

  // --- htmx configuration -------------------------------------------------------------------
  // base.html sets the same through <meta name="htmx-config">; repeating it here keeps a strict
  // CSP working even if that tag is ever dropped. htmx merges the meta tag on DOMContentLoaded.
  if (window.htmx) {
    Object.assign(window.htmx.config, {
      includeIndicatorStyles: false, // htmx would inject a <style> element (blocked by the CSP)
      allowEval: false, // no hx-on / js: expressions (would need 'unsafe-eval')
      allowScriptTags: false, // never run <script> found in swapped HTML
      selfRequestsOnly: true, // htmx talks to this origin only
      historyCacheSize: 0, // pages may be sensitive: keep no HTML copies in localStorage
      refreshOnHistoryMiss: true, // … so "back" reloads from the server instead
    });
  }

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : null;
  }

  // Flask-WTF's CSRFProtect reads the X-CSRFToken header for requests that carry no form token.
  document.addEventListener("htmx:configRequest", function (event) {
    const token = csrfToken();
    if (token) {
      event.detail.headers["X-CSRFToken"] = token;
    }
  });

  // --- flash messages ----------------------------------------------------------------------
  function showFlash(message, category) {
    const area = document.getElementById("flash-messages");
    if (!area) {
      return;
    }
    const alert = document.createElement("div");
    alert.className = "alert alert-" + (category || "danger") + " alert-dismissible fade show";
    alert.setAttribute("role", "alert");
    alert.textContent = message; // textContent: server text is never parsed as HTML
    const close = document.createElement("button");
    close.type = "button";
    close.className = "btn-close";
    close.setAttribute("data-bs-dismiss", "alert");
    close.setAttribute("aria-label", "Close");
    alert.appendChild(close);
    area.appendChild(alert);
  }

  function closeAlert(el) {
    if (window.bootstrap && window.bootstrap.Alert) {
      window.bootstrap.Alert.getOrCreateInstance(el).close();
    } else {
      el.remove();
    }
  }

  // root itself plus its descendants: htmx.onLoad passes the swapped element, which may be the match.
  function within(root, selector) {
    const found = Array.from(root.querySelectorAll(selector));
    if (root.matches && root.matches(selector)) {
      found.unshift(root);
    }
    return found;
  }

  function armAutodismiss(root) {
    within(root, "[data-autodismiss]").forEach(function (el) {
      if (el.dataset.autodismissArmed) {
        return;
      }
      el.dataset.autodismissArmed = "1";
      const delay = parseInt(el.dataset.autodismiss, 10) || 5000;
      window.setTimeout(function () {
        closeAlert(el);
      }, delay);
    });
  }

  // htmx 2 does not swap 4xx/5xx responses; tell the user instead of failing silently.
  document.addEventListener("htmx:responseError", function (event) {
    const status = event.detail.xhr ? event.detail.xhr.status : 0;
    if (status === 400 || status === 403) {
      showFlash("The request was refused (" + status + "). Reload the page; your session may have expired.");
    } else {
      showFlash("The request failed (HTTP " + status + ").");
    }
  });
  document.addEventListener("htmx:sendError", function () {
    showFlash("The server could not be reached.");
  });

  // --- confirm before acting ---------------------------------------------------------------
  // Capture phase: runs before htmx's own listeners, so stopping the event here also stops
  // hx-post requests, not just plain form submissions.
  document.addEventListener(
    "submit",
    function (event) {
      const form = event.target;
      const message =
        (event.submitter && event.submitter.dataset.confirm) || (form.dataset && form.dataset.confirm);
      if (message && !window.confirm(message)) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true,
  );

  document.addEventListener(
    "click",
    function (event) {
      const el = event.target.closest("[data-confirm]");
      if (!el || el.tagName === "FORM") {
        return;
      }
      // Submit buttons of a form are handled by the submit listener (event.submitter).
      const isSubmit = (el.tagName === "BUTTON" || el.tagName === "INPUT") && el.type === "submit" && el.form;
      if (isSubmit) {
        return;
      }
      if (!window.confirm(el.dataset.confirm)) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true,
  );

  // --- select-all checkboxes ---------------------------------------------------------------
  function scopeOf(el) {
    return el.closest("table") || el.closest("form") || document;
  }

  function rowBoxes(scope, name) {
    return Array.from(scope.querySelectorAll('input[type="checkbox"]')).filter(function (box) {
      return box.name === name && !box.disabled;
    });
  }

  function syncSelection(name) {
    document.querySelectorAll('[data-select-all="' + CSS.escape(name) + '"]').forEach(function (master) {
      const boxes = rowBoxes(scopeOf(master), name);
      const ticked = boxes.filter(function (box) {
        return box.checked;
      }).length;
      master.checked = boxes.length > 0 && ticked === boxes.length;
      master.indeterminate = ticked > 0 && ticked < boxes.length;
    });
    const anyTicked = Array.from(document.querySelectorAll('input[type="checkbox"]')).some(function (box) {
      return box.name === name && box.checked;
    });
    document.querySelectorAll('[data-requires-selection="' + CSS.escape(name) + '"]').forEach(function (el) {
      el.disabled = !anyTicked;
    });
  }

  document.addEventListener("change", function (event) {
    const el = event.target;
    if (!(el instanceof HTMLInputElement) || el.type !== "checkbox") {
      return;
    }
    if (el.dataset.selectAll) {
      rowBoxes(scopeOf(el), el.dataset.selectAll).forEach(function (box) {
        box.checked = el.checked;
      });
      syncSelection(el.dataset.selectAll);
    } else if (el.name) {
      syncSelection(el.name);
    }
  });

  function syncAllSelections(root) {
    const names = new Set();
    within(root, "[data-select-all], [data-requires-selection]").forEach(function (el) {
      names.add(el.dataset.selectAll || el.dataset.requiresSelection);
    });
    names.forEach(syncSelection);
  }

  // --- local times ---------------------------------------------------------------------------
  const pad = function (n) {
    return String(n).padStart(2, "0");
  };

  function localizeTimes(root) {
    within(root, "time[data-local][datetime]").forEach(function (el) {
      const when = new Date(el.getAttribute("datetime"));
      if (Number.isNaN(when.getTime()) || el.dataset.localized) {
        return;
      }
      el.dataset.localized = "1";
      el.title = el.getAttribute("datetime").replace("T", " ").replace(/\+00:00$|Z$/, " UTC");
      el.textContent =
        when.getFullYear() + "-" + pad(when.getMonth() + 1) + "-" + pad(when.getDate()) + " " +
        pad(when.getHours()) + ":" + pad(when.getMinutes());
    });
  }

  // --- fields of one kind of step ------------------------------------------------------------
  function syncStepKind(select) {
    let kinds = {};
    try {
      kinds = JSON.parse(select.dataset.stepKinds || "{}");
    } catch (error) {
      return;
    }
    const kind = kinds[select.value];
    (select.form || document).querySelectorAll("[data-for-kind]").forEach(function (el) {
      el.hidden = el.dataset.forKind !== kind;
    });
  }

  document.addEventListener("change", function (event) {
    if (event.target instanceof HTMLSelectElement && event.target.dataset.stepKinds) {
      syncStepKind(event.target);
    }
  });

  // --- the launch schedule fields ------------------------------------------------------------
  function browserZone(root) {
    let zone = "";
    try {
      zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (error) {
      return;
    }
    within(root, "select[data-browser-zone]").forEach(function (select) {
      const offered = Array.from(select.options).some(function (option) {
        return option.value === zone;
      });
      if (offered) {
        select.value = zone;
      }
    });
  }

  function syncShownWhen(scope) {
    scope.querySelectorAll("[data-shown-when]").forEach(function (el) {
      const parts = el.dataset.shownWhen.split("=");
      const checked = scope.querySelector('input[type="radio"][name="' + CSS.escape(parts[0]) + '"]:checked');
      el.hidden = !checked || parts[1].split("|").indexOf(checked.value) < 0;
    });
  }

  document.addEventListener("change", function (event) {
    if (event.target instanceof HTMLInputElement && event.target.type === "radio") {
      syncShownWhen(event.target.form || document);
    }
  });

  // --- wiring ----------------------------------------------------------------------------------
  function init(root) {
    armAutodismiss(root);
    syncAllSelections(root);
    localizeTimes(root);
    browserZone(root);
    within(root, "form").forEach(syncShownWhen);
  }

  if (window.htmx) {
    // Called for document.body once htmx is ready, then for every piece of swapped-in content.
    window.htmx.onLoad(init);
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () {
      init(document.body);
    });
  } else {
    init(document.body);
  }

  window.prodpanel = { showFlash: showFlash };
})();
