// Coffer's few behaviours. No inline scripts anywhere: everything hooks on data- attributes
// and htmx events, so the strict Content-Security-Policy holds.
(function () {
  "use strict";

  function modal() {
    const element = document.getElementById("modal");
    return element ? bootstrap.Modal.getOrCreateInstance(element) : null;
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

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll(".toast[data-autoshow]").forEach((toast) => {
      bootstrap.Toast.getOrCreateInstance(toast, { delay: 5000 }).show();
    });
    const modalElement = document.getElementById("modal");
    if (modalElement) {
      modalElement.addEventListener("hidden.bs.modal", () => {
        document.getElementById("modal-content").innerHTML = "";
      });
      modalElement.addEventListener("shown.bs.modal", () => {
        const first = modalElement.querySelector("[autofocus], input:not([type=hidden]), select, textarea");
        if (first) first.focus();
      });
    }
  });

  // A form (or confirmation) swapped into the modal: open it.
  document.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target && event.detail.target.id === "modal-content") {
      const instance = modal();
      if (instance && !document.getElementById("modal").classList.contains("show")) instance.show();
    }
  });

  // Server-sent events (HX-Trigger).
  document.addEventListener("closeModal", () => {
    const instance = modal();
    if (instance) instance.hide();
  });
  document.addEventListener("showToast", (event) => {
    showToast(event.detail.message, event.detail.level);
  });
  document.addEventListener("htmx:responseError", (event) => {
    const status = event.detail.xhr.status;
    const message = status === 403 ? "You do not have permission to do that."
      : status === 404 ? "That no longer exists. The page will refresh."
      : status === 503 ? "Coffer is temporarily unavailable. Nothing was lost; try again in a minute."
      : "Something went wrong (" + status + "). Please try again.";
    showToast(message, "error");
  });
  document.addEventListener("htmx:sendError", () => {
    showToast("Coffer could not be reached. Check your connection and try again.", "error");
  });

  document.addEventListener("click", (event) => {
    // Copy buttons: data-copy="$Secret{KEY}"
    const copy = event.target.closest("[data-copy]");
    if (copy) {
      event.preventDefault();
      const text = copy.dataset.copy;
      const done = () => {
        showToast("Copied " + text + " to the clipboard", "success");
        copy.setAttribute("data-copied", "true");
        setTimeout(() => { copy.removeAttribute("data-copied"); }, 2000);
        const label = copy.querySelector(".copy-label");
        if (label) {
          if (!label.dataset.original) label.dataset.original = label.textContent;
          label.textContent = "Copied";
          setTimeout(() => { label.textContent = label.dataset.original; }, 2000);
        }
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, () => fallbackCopy(text) && done());
      } else if (fallbackCopy(text)) {
        done();
      }
      return;
    }
    // Show/hide toggles for password inputs: data-toggle-password="input-id"
    const toggle = event.target.closest("[data-toggle-password]");
    if (toggle) {
      const input = document.getElementById(toggle.dataset.togglePassword);
      if (!input) return;
      const show = input.type === "password";
      input.type = show ? "text" : "password";
      toggle.setAttribute("aria-pressed", show ? "true" : "false");
      toggle.setAttribute("aria-label", show ? "Hide value" : "Show value");
      const icon = toggle.querySelector("i");
      if (icon) icon.className = show ? "bi bi-eye-slash" : "bi bi-eye";
    }
  });

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

  // Confirmation inputs: enable the submit button only when the typed text matches.
  document.addEventListener("input", (event) => {
    const input = event.target.closest("[data-confirm-match]");
    if (!input) return;
    const form = input.form;
    const button = form && form.querySelector("[data-confirm-submit]");
    if (button) button.disabled = input.value !== input.dataset.confirmMatch;
  });

  // --- Tokens page ----------------------------------------------------------------------
  // GET forms marked [data-drop-empty] leave empty fields out of the URL they request and push.
  document.addEventListener("htmx:configRequest", (event) => {
    const elt = event.detail.elt;
    if (event.detail.verb !== "get" || !elt.closest("[data-drop-empty]")) return;
    const data = event.detail.formData;
    Array.from(new Set(data.keys())).forEach((name) => {
      if (data.getAll(name).every((value) => value === "")) data.delete(name);
    });
  });

  // Period: the custom number of days is only asked for with "Custom" (without JS both show).
  function syncPeriod(select) {
    const custom = select.form && select.form.querySelector("[data-period-custom]");
    if (!custom) return;
    const on = select.value === "custom";
    custom.hidden = !on;
    custom.querySelectorAll("input").forEach((input) => { input.disabled = !on; });
  }

  function syncConfirm(input) {
    const button = input.form && input.form.querySelector("[data-confirm-submit]");
    if (button) button.disabled = input.value !== input.dataset.confirmMatch;
  }

  // Highlight the row a modal just created or changed, once the table has refreshed.
  let pendingHighlight = null;
  document.addEventListener("tokensChanged", (event) => {
    pendingHighlight = event.detail && event.detail.id ? String(event.detail.id) : null;
  });
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
    root.querySelectorAll("[data-period-select]").forEach(syncPeriod);
    root.querySelectorAll("[data-confirm-match]").forEach(syncConfirm);
    root.querySelectorAll("[data-toggle-password][hidden]").forEach((button) => { button.hidden = false; });
    // A form re-rendered with errors inside the modal: take the user to the first one.
    if (root.closest && root.closest("#modal-content")) {
      const invalid = root.querySelector('[aria-invalid="true"], .is-invalid input');
      if (invalid) invalid.focus();
    }
    highlightPending();
  }
  document.addEventListener("htmx:load", (event) => enhance(event.detail.elt));
  document.addEventListener("DOMContentLoaded", () => enhance(document.body));

  document.addEventListener("change", (event) => {
    const select = event.target.closest("[data-period-select]");
    if (!select) return;
    syncPeriod(select);
    if (select.value === "custom") {
      const input = select.form.querySelector("[data-period-custom] input");
      if (input) input.focus();
    }
  });

  // Keyboard users get their place back when the modal closes: the button that opened it, or
  // its successor in the refreshed table (same label), or the changed row's copy button.
  let opener = null;
  document.addEventListener("htmx:beforeRequest", (event) => {
    const target = event.detail.target;
    const shell = document.getElementById("modal");
    if (target && target.id === "modal-content" && shell && !shell.classList.contains("show")) {
      opener = { element: event.detail.elt, label: event.detail.elt.getAttribute("aria-label") };
    }
  });
  document.addEventListener("hidden.bs.modal", () => {
    if (!opener) return;
    const { element, label } = opener;
    opener = null;
    if (document.activeElement && document.activeElement !== document.body) return;
    let next = element && element.isConnected ? element : null;
    if (!next && label) next = document.querySelector('[aria-label="' + CSS.escape(label) + '"]');
    if (!next) next = document.querySelector("tr.row-highlight [data-copy]");
    if (next) next.focus({ preventScroll: true });
  });

  // Editing a token's key: warn that $Secret{OLD_KEY} references will stop resolving.
  document.addEventListener("input", (event) => {
    const input = event.target.closest("[data-original-key]");
    if (!input || !input.form) return;
    const warning = input.form.querySelector("[data-key-change-warning]");
    if (warning) warning.hidden = input.value.trim() === input.dataset.originalKey;
  });

  window.Coffer = { showToast: showToast };
})();
