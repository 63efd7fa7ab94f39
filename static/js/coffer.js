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
        const label = copy.querySelector(".copy-label");
        if (label) {
          label.textContent = "Copied";
          setTimeout(() => { label.textContent = "Copy"; }, 2000);
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

  window.Coffer = { showToast: showToast };
})();
