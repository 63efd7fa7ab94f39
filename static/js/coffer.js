// Coffer's few behaviours. No inline scripts anywhere: each behaviour hooks on data- attributes
// (or on htmx and Bootstrap events), so the strict Content-Security-Policy holds.
//
// enhance(root) is the one entry point. htmx fires htmx:load on <body> once the page is ready
// and on every element it swaps in; enhance hands that element to each behaviour, which binds
// its listeners to the hooks it finds there. Swapped-in content is always enhanced, and an
// element is never bound twice by the same behaviour.
(function () {
  "use strict";

  const boundBy = new Map(); // behaviour -> WeakSet of the elements it has bound

  // Call `bind(element)` for `root` and each element under it matching `selector`, once each.
  function each(root, selector, bind) {
    if (!boundBy.has(bind)) boundBy.set(bind, new WeakSet());
    const bound = boundBy.get(bind);
    const found = Array.from(root.querySelectorAll(selector));
    if (root.matches(selector)) found.unshift(root);
    found.forEach((element) => {
      if (bound.has(element)) return;
      bound.add(element);
      bind(element);
    });
  }

  function modalShell() {
    return document.getElementById("modal");
  }

  function modal() {
    const shell = modalShell();
    return shell ? bootstrap.Modal.getOrCreateInstance(shell) : null;
  }

  function showToast(message, level) {
    const template = document.getElementById("toast-template");
    const container = document.getElementById("toasts");
    if (!template || !container) return;
    const toast = template.content.firstElementChild.cloneNode(true);
    toast.classList.add("text-bg-" + (level === "error" ? "danger" : level || "success"));
    toast.querySelector(".toast-body").textContent = message;
    container.appendChild(toast);
    toast.addEventListener("hidden.bs.toast", () => toast.remove());
    bootstrap.Toast.getOrCreateInstance(toast, { delay: 4000 }).show();
  }

  // --- Behaviours: one per hook -----------------------------------------------------------

  // Messages rendered with the page (after a plain POST and redirect): data-autoshow.
  function autoshowToast(toast) {
    bootstrap.Toast.getOrCreateInstance(toast, { delay: 5000 }).show();
  }

  // Copy buttons: data-copy="$Secret{KEY}". data-copy-label names what is copied in the toast
  // instead of the text itself (an access key must not be repeated on the page).
  function copyButton(button) {
    button.addEventListener("click", (event) => {
      event.preventDefault();
      const text = button.dataset.copy;
      const label = button.dataset.copyLabel || text;
      const done = () => {
        showToast("Copied " + label + " to the clipboard", "success");
        button.setAttribute("data-copied", "true");
        setTimeout(() => { button.removeAttribute("data-copied"); }, 2000);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, () => fallbackCopy(text) && done());
      } else if (fallbackCopy(text)) {
        done();
      }
    });
  }

  function fallbackCopy(text) {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    let ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    area.remove();
    return ok;
  }

  // Show/hide toggles for password inputs: data-toggle-password="input-id" (hidden without JS).
  function passwordToggle(toggle) {
    toggle.hidden = false;
    toggle.addEventListener("click", () => {
      const input = document.getElementById(toggle.dataset.togglePassword);
      if (!input) return;
      const show = input.type === "password";
      input.type = show ? "text" : "password";
      toggle.setAttribute("aria-pressed", show ? "true" : "false");
      toggle.setAttribute("aria-label", show ? "Hide value" : "Show value");
      const icon = toggle.querySelector("i");
      if (icon) icon.className = show ? "bi bi-eye-slash" : "bi bi-eye";
    });
  }

  // Confirmation inputs: data-confirm-match="KEY" enables its form's [data-confirm-submit]
  // only while the typed text matches.
  function confirmInput(input) {
    const sync = () => {
      const button = input.form && input.form.querySelector("[data-confirm-submit]");
      if (button) button.disabled = input.value !== input.dataset.confirmMatch;
    };
    sync();
    input.addEventListener("input", sync);
  }

  // Bulk selection: [data-bulk-all] ("Select all on this page") checks or clears the rows'
  // [data-bulk-item] boxes of its form; a row's box keeps it (and [data-bulk-count]) in step.
  // Without JS the boxes still post: all_on_page makes the server take the page's tokens.
  function bulkSelectAll(all) {
    const formId = all.getAttribute("form");
    const items = () => Array.from(document.querySelectorAll('[data-bulk-item][form="' + formId + '"]'));
    const count = document.querySelector("#" + formId + " [data-bulk-count]");
    const sync = () => {
      const checked = items().filter((item) => item.checked).length;
      all.checked = checked > 0 && checked === items().length;
      all.indeterminate = checked > 0 && !all.checked;
      if (count) count.textContent = checked ? checked + " selected:" : "With the selected tokens:";
    };
    all.addEventListener("change", () => {
      items().forEach((item) => { item.checked = all.checked; });
      sync();
    });
    items().forEach((item) => item.addEventListener("change", sync));
    sync();
  }

  // Period: the custom number of days ([data-period-custom]) is only asked for with "Custom"
  // in the [data-period-select] (without JS both show).
  function periodSelect(select) {
    const custom = select.form && select.form.querySelector("[data-period-custom]");
    if (!custom) return;
    const sync = () => {
      const on = select.value === "custom";
      custom.hidden = !on;
      custom.querySelectorAll("input").forEach((input) => { input.disabled = !on; });
    };
    sync();
    select.addEventListener("change", () => {
      sync();
      const input = custom.querySelector("input");
      if (select.value === "custom" && input) input.focus();
    });
  }

  // Access key expiry: the date input ([data-expiry-date]) only for "On a date", the warning
  // ([data-expiry-never-warning]) only for "Never", in the [data-expiry-select] (without JS
  // both show).
  function expirySelect(select) {
    const form = select.form;
    if (!form) return;
    const date = form.querySelector("[data-expiry-date]");
    const warning = form.querySelector("[data-expiry-never-warning]");
    const sync = () => {
      if (date) {
        date.hidden = select.value !== "date";
        date.querySelectorAll("input").forEach((input) => { input.disabled = date.hidden; });
      }
      if (warning) warning.hidden = select.value !== "never";
    };
    sync();
    select.addEventListener("change", sync);
  }

  // Editing a token's key (data-original-key): warn that $Secret{OLD_KEY} references will stop
  // resolving ([data-key-change-warning]).
  function keyInput(input) {
    input.addEventListener("input", () => {
      const warning = input.form && input.form.querySelector("[data-key-change-warning]");
      if (warning) warning.hidden = input.value.trim() === input.dataset.originalKey;
    });
  }

  // GET requests from or inside [data-drop-empty] leave empty fields out of the URL they
  // request and push.
  function dropEmpty(element) {
    element.addEventListener("htmx:configRequest", (event) => {
      if (event.detail.verb !== "get") return;
      const data = event.detail.formData;
      Array.from(new Set(data.keys())).forEach((name) => {
        if (data.getAll(name).every((value) => value === "")) data.delete(name);
      });
    });
  }

  // Content swapped into the modal (a form or a confirmation) opens it; a form re-rendered
  // with errors takes the user to the first one.
  function modalContent(root) {
    if (!root.closest("#modal-content")) return;
    const shell = modalShell();
    if (!shell.classList.contains("show")) modal().show();
    const invalid = root.querySelector('[aria-invalid="true"], .is-invalid input');
    if (invalid) invalid.focus();
  }

  // The row a modal just created or changed flashes once the table has refreshed: the server
  // names it in the tokensChanged event (see listen below), the new table has the row.
  let pendingHighlight = null;
  function highlightPending() {
    if (!pendingHighlight) return;
    const row = document.querySelector('[data-token-id="' + CSS.escape(pendingHighlight) + '"]');
    if (!row) return;
    pendingHighlight = null;
    row.classList.remove("row-highlight");
    void row.offsetWidth; // restart the animation
    row.classList.add("row-highlight");
    row.scrollIntoView({ block: "nearest" });
  }

  function enhance(root) {
    if (!root || !root.querySelectorAll) return;
    each(root, ".toast[data-autoshow]", autoshowToast);
    each(root, "[data-copy]", copyButton);
    each(root, "[data-toggle-password]", passwordToggle);
    each(root, "[data-confirm-match]", confirmInput);
    each(root, "[data-period-select]", periodSelect);
    each(root, "[data-bulk-all]", bulkSelectAll);
    each(root, "[data-expiry-select]", expirySelect);
    each(root, "[data-original-key]", keyInput);
    each(root, "[data-drop-empty]", dropEmpty);
    modalContent(root);
    highlightPending();
  }

  // --- Page-wide events: the modal shell, server-sent events (HX-Trigger), errors ----------

  // Keyboard users get their place back when the modal closes: the button that opened it, or
  // its successor in the refreshed table (same label), or the changed row's copy button.
  let opener = null;
  function rememberOpener(event) {
    const target = event.detail.target;
    const shell = modalShell();
    if (target && target.id === "modal-content" && shell && !shell.classList.contains("show")) {
      opener = { element: event.detail.elt, label: event.detail.elt.getAttribute("aria-label") };
    }
  }
  function restoreFocus() {
    if (!opener) return;
    const { element, label } = opener;
    opener = null;
    if (document.activeElement && document.activeElement !== document.body) return;
    let next = element && element.isConnected ? element : null;
    if (!next && label) next = document.querySelector('[aria-label="' + CSS.escape(label) + '"]');
    if (!next) next = document.querySelector("tr.row-highlight [data-copy]");
    if (next) next.focus({ preventScroll: true });
  }

  function errorMessage(status) {
    return status === 403 ? "You do not have permission to do that."
      : status === 404 ? "That no longer exists. The page will refresh."
      : status === 503 ? "Coffer is temporarily unavailable. Nothing was lost; try again in a minute."
      : "Something went wrong (" + status + "). Please try again.";
  }

  function listen() {
    document.addEventListener("htmx:load", (event) => enhance(event.detail.elt));
    document.addEventListener("htmx:beforeRequest", rememberOpener);

    const shell = modalShell();
    if (shell) {
      shell.addEventListener("shown.bs.modal", () => {
        const first = shell.querySelector("[autofocus], input:not([type=hidden]), select, textarea");
        if (first) first.focus();
      });
      shell.addEventListener("hidden.bs.modal", () => {
        const content = document.getElementById("modal-content");
        // Content that changed the page's data (a new access key shown once) names the event
        // that refreshes the table behind it: data-refresh-on-close="accessKeysChanged".
        const refresh = content.querySelector("[data-refresh-on-close]");
        content.innerHTML = "";
        if (refresh) document.body.dispatchEvent(new CustomEvent(refresh.dataset.refreshOnClose));
        restoreFocus();
      });
    }

    document.addEventListener("closeModal", () => {
      const instance = modal();
      if (instance) instance.hide();
    });
    document.addEventListener("showToast", (event) => {
      showToast(event.detail.message, event.detail.level);
    });
    document.addEventListener("tokensChanged", (event) => {
      pendingHighlight = event.detail && event.detail.id ? String(event.detail.id) : null;
    });
    document.addEventListener("htmx:responseError", (event) => {
      const status = event.detail.xhr.status;
      showToast(errorMessage(status), "error");
      // Deleted meanwhile (or no longer shared): the page shows something stale, reload it
      // once the message has been read.
      if (status === 404) setTimeout(() => window.location.reload(), 2000);
    });
    document.addEventListener("htmx:sendError", () => {
      showToast("Coffer could not be reached. Check your connection and try again.", "error");
    });
  }

  listen();
})();
