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
    // The bar itself ([data-bulk-bar]) only shows once something is selected.
    const bar = document.querySelector("#" + formId + "[data-bulk-bar]");
    const sync = () => {
      const checked = items().filter((item) => item.checked).length;
      all.checked = checked > 0 && checked === items().length;
      all.indeterminate = checked > 0 && !all.checked;
      if (count) count.textContent = checked ? checked + " selected:" : "With the selected tokens:";
      if (bar) bar.hidden = checked === 0;
    };
    all.addEventListener("change", () => {
      items().forEach((item) => { item.checked = all.checked; });
      sync();
    });
    items().forEach((item) => item.addEventListener("change", sync));
    sync();
  }

  // A phone's Filters button ([data-filter-toggle]=id of the fields it folds): the fields
  // fold (data-folded on the form) until it is pressed; its number says how many are set.
  // Wider screens show the fields and CSS hides the button. Without JS the fields stay open.
  function filterToggle(button) {
    const fields = document.getElementById(button.dataset.filterToggle);
    const form = button.form;
    if (!fields || !form) return;
    const count = button.querySelector("[data-filter-count]");
    const set = () => Array.from(fields.querySelectorAll("select, input")).filter(
      (input) => (input.type === "checkbox" ? input.checked : input.value !== ""),
    ).length;
    const open = (on) => {
      button.setAttribute("aria-expanded", on ? "true" : "false");
      form.toggleAttribute("data-folded", !on);
    };
    button.hidden = false;
    open(false);
    button.addEventListener("click", () => open(form.hasAttribute("data-folded")));
    form.addEventListener("change", () => {
      const n = set();
      if (count) count.innerHTML = n ? " (" + n + ')<span class="visually-hidden"> set</span>' : "";
    });
  }

  // Keyboard shortcuts: an element with aria-keyshortcuts="Alt+Shift+N" (the only form used:
  // Alt+Shift and a letter, which no screen reader's commands use, and no single key that
  // would clash with their browse-mode letters) is clicked when they are pressed, unless a
  // modal or in-page question is open. The element's title shows the shortcut.
  function shortcutKeys(event) {
    if (!event.altKey || !event.shiftKey || event.ctrlKey || event.metaKey) return;
    if (!/^Key[A-Z]$/.test(event.code)) return;
    if (document.querySelector(".modal.show, dialog[open]")) return;
    const wanted = "alt+shift+" + event.code.slice(3).toLowerCase();
    const target = Array.from(document.querySelectorAll("[aria-keyshortcuts]")).find(
      (element) => element.getAttribute("aria-keyshortcuts").toLowerCase() === wanted
        && element.getClientRects().length > 0,
    );
    if (!target) return;
    event.preventDefault();
    target.click();
  }
  document.addEventListener("keydown", shortcutKeys);

  // The environments of the token form ([data-choice-summary]=fieldset id): a line under them
  // says which are chosen, or that none is yet (nothing is ever chosen silently).
  function choiceSummary(line) {
    const group = document.getElementById(line.dataset.choiceSummary);
    if (!group) return;
    const sync = () => {
      const chosen = Array.from(group.querySelectorAll("input[type=checkbox]:checked")).map(
        (box) => (box.labels[0] ? box.labels[0].textContent.trim() : box.value),
      );
      line.classList.toggle("is-none", chosen.length === 0);
      line.textContent = chosen.length
        ? "Valid in: " + chosen.join(", ") + "."
        : line.dataset.noneText;
    };
    group.addEventListener("change", sync);
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
    // Arrowing through a closed select changes its value at every step: that is browsing, not a
    // choice, so only a choice made otherwise (a click, Enter in the open list) moves the focus
    // on to Custom days.
    let browsing = false;
    select.addEventListener("keydown", (event) => {
      browsing = ["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight", "Home", "End", "PageUp", "PageDown"]
        .includes(event.key) || (event.key.length === 1 && event.key !== " ");
    });
    select.addEventListener("pointerdown", () => { browsing = false; });
    sync();
    select.addEventListener("change", () => {
      sync();
      const input = custom.querySelector("input");
      if (select.value === "custom" && input && !browsing) input.focus();
      browsing = false;
    });
  }

  // Tabs ([role=tablist] of links): arrow keys, Home and End move between them (one tab stop);
  // Enter follows the link.
  function tabList(list) {
    const tabs = Array.from(list.querySelectorAll("[role=tab]"));
    tabs.forEach((tab) => {
      tab.tabIndex = tab.getAttribute("aria-selected") === "true" ? 0 : -1;
    });
    list.addEventListener("keydown", (event) => {
      const at = tabs.indexOf(document.activeElement);
      if (at < 0) return;
      const next = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: tabs.length - 1 }[event.key];
      if (next === undefined) return;
      event.preventDefault();
      tabs[(next + tabs.length) % tabs.length].focus();
    });
  }

  // The phone drawer is a dialog while open (Bootstrap adds the role): give it its title.
  function drawer(element) {
    element.addEventListener("show.bs.offcanvas", () => {
      element.setAttribute("aria-labelledby", element.dataset.drawerTitle);
    });
    element.addEventListener("hidden.bs.offcanvas", () => element.removeAttribute("aria-labelledby"));
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

  // An input the server re-renders empty but htmx keeps (hx-preserve: the Token Value after an
  // invalid submit) gets the server's verdict on it from its wrapper, and the message under it
  // says whether the typed value is still there.
  function preservedInput(wrapper) {
    const input = document.getElementById(wrapper.dataset.preservedInput);
    if (!input) return;
    if (wrapper.dataset.invalid === "true") input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
    const field = wrapper.parentElement;
    const again = field.querySelector("[data-value-again]");
    const kept = field.querySelector("[data-value-kept]");
    if (again && kept && input.value) {
      again.hidden = true;
      kept.hidden = false;
    }
  }

  // The error summary's links take the focus to their field (a fragment link only scrolls).
  function errorLink(link) {
    link.addEventListener("click", (event) => {
      const field = document.getElementById(link.getAttribute("href").slice(1));
      if (!field) return;
      event.preventDefault();
      revealField(field);
    });
  }

  // Focus a field and bring it into view with its message, which may sit below the modal's
  // fold (the footer used to hide the Expiry Date's).
  function revealField(field) {
    field.focus({ preventScroll: true });
    const block = field.closest("fieldset, [class*=col-]") || field;
    block.scrollIntoView({ block: "nearest" });
  }

  // Expiry preview ([data-expiry-preview]): "Expires on …" from the Expiry Date and the Period
  // as the server computes it (the date's 00:00 UTC, the Period from when the value is set:
  // now, or for an unchanged value when it was set; the earlier wins).
  function expiryPreview(preview) {
    const form = preview.closest("form");
    if (!form) return;
    const date = form.elements.namedItem("expiry_date");
    const period = form.elements.namedItem("period");
    const custom = form.elements.namedItem("period_custom");
    const value = form.elements.namedItem("value");
    const day = 24 * 60 * 60 * 1000;
    const format = (moment) => moment.toLocaleDateString("en-US", {
      timeZone: "UTC", month: "short", day: "numeric", year: "numeric",
    });
    const update = () => {
      const moments = [];
      if (date && /^\d{4}-\d{2}-\d{2}$/.test(date.value)) moments.push(new Date(date.value + "T00:00:00Z"));
      let days = period && period.value && period.value !== "custom" ? Number(period.value) : null;
      if (period && period.value === "custom" && custom && custom.value) days = Number(custom.value);
      if (!period && custom && custom.value) days = Number(custom.value);
      if (days && days > 0 && Number.isInteger(days)) {
        const setAt = form.dataset.valueSetAt && !(value && value.value) ? new Date(form.dataset.valueSetAt) : new Date();
        moments.push(new Date(setAt.getTime() + days * day));
      }
      if (!moments.length) {
        preview.textContent = "Never expires: both fields are empty.";
      } else {
        const first = new Date(Math.min.apply(null, moments.map((m) => m.getTime())));
        const inDays = Math.round((first.getTime() - Date.now()) / day);
        const when = inDays > 1 ? " (in " + inDays + " days)" : inDays === 1 ? " (tomorrow)" : "";
        preview.textContent = "Expires on " + format(first) + " at "
          + first.toISOString().slice(11, 16) + " UTC" + when + ".";
      }
      preview.hidden = false;
    };
    form.addEventListener("input", update);
    form.addEventListener("change", update);
    update();
  }

  // Forms in the modal ([data-guard-changes]) ask before a close would throw away what was
  // typed: "unsaved" (re-rendered after an invalid submit) always, "changed" once it differs
  // from how it opened.
  function snapshot(form) {
    const parts = [];
    Array.from(form.elements).forEach((element) => {
      if (!element.name || element.type === "hidden") return;
      if (element.type === "file") parts.push(element.files.length);
      else if (element.type === "checkbox" || element.type === "radio") parts.push(element.checked);
      else parts.push(element.value);
    });
    return JSON.stringify(parts);
  }
  // Kept in memory, never in the page: the snapshot holds what was typed, secrets included.
  const openedAs = new WeakMap();
  function guardChanges(form) {
    openedAs.set(form, snapshot(form));
  }
  function hasUnsavedWork(form) {
    if (!form || !form.isConnected) return false;
    if (form.dataset.guardChanges === "unsaved") return true;
    return snapshot(form) !== openedAs.get(form);
  }
  // The one in-page question (templates/base.html's <dialog data-ask>; no window.confirm
  // anywhere): ask({title, text, confirm, cancel}) opens it and resolves true for the confirm
  // button, false for the cancel button or Escape. The focus starts on the safe choice and goes
  // back where it was when the dialog closes.
  function ask(question) {
    const dialog = document.querySelector("dialog[data-ask]");
    if (!dialog) return Promise.resolve(true);
    dialog.querySelector("[data-ask-title]").textContent = question.title;
    dialog.querySelector("[data-ask-text]").textContent = question.text || "";
    const confirm = dialog.querySelector("[data-ask-confirm]");
    const cancel = dialog.querySelector("[data-ask-cancel]");
    confirm.textContent = question.confirm || "OK";
    cancel.textContent = question.cancel || "Cancel";
    return new Promise((resolve) => {
      const done = () => {
        dialog.removeEventListener("close", done);
        resolve(dialog.returnValue === "confirm");
      };
      dialog.returnValue = "";
      dialog.addEventListener("close", done);
      // Opened after the event that asked (an Escape keydown would close it at once otherwise:
      // the browser's own Escape handling runs after the listeners).
      setTimeout(() => {
        dialog.showModal();
        cancel.focus();
      }, 0);
    });
  }
  function askDialog(dialog) {
    dialog.querySelector("[data-ask-confirm]").addEventListener("click", () => dialog.close("confirm"));
    dialog.querySelector("[data-ask-cancel]").addEventListener("click", () => dialog.close("cancel"));
    // Escape closes this dialog only, not the modal form under it (Bootstrap listens too).
    dialog.addEventListener("keydown", (event) => {
      if (event.key === "Escape") event.stopPropagation();
    });
  }
  const DISCARD_QUESTION = {
    title: "Discard what you typed?",
    text: "Nothing in this form has been saved.",
    confirm: "Discard",
    cancel: "Keep editing",
  };

  // Content swapped into the modal (a form or a confirmation) opens it; a form re-rendered
  // with errors takes the user to the first one.
  function modalContent(root) {
    if (!root.closest("#modal-content")) return;
    const shell = modalShell();
    if (!shell.classList.contains("show")) modal().show();
    const invalid = root.querySelector('[aria-invalid="true"], .is-invalid input');
    if (invalid) revealField(invalid);
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
    each(root, "[data-filter-toggle]", filterToggle);
    each(root, "[data-choice-summary]", choiceSummary);
    each(root, "[data-expiry-select]", expirySelect);
    each(root, "[data-original-key]", keyInput);
    each(root, "[data-drop-empty]", dropEmpty);
    each(root, "[role=tablist]", tabList);
    each(root, "[data-drawer-title]", drawer);
    each(root, "[data-preserved-input]", preservedInput);
    each(root, "[data-error-link]", errorLink);
    each(root, "[data-expiry-preview]", expiryPreview);
    each(root, "form[data-guard-changes]", guardChanges);
    each(root, "dialog[data-ask]", askDialog);
    modalContent(root);
    highlightPending();
  }

  // --- Page-wide events: the modal shell, server-sent events (HX-Trigger), errors ----------

  // Keyboard users get their place back when the modal closes: the button that opened it, or
  // its successor in the refreshed table (same label), or the changed row's copy button, or
  // (the row was deleted) the row now in its place, or the result count.
  //
  // A change closes the modal and redraws the table at about the same time. If the redraw is
  // still on its way when the modal has closed, the place is found once it has settled (the old
  // button would be replaced under the focus), so the outcome never depends on which came first.
  // The regions that redraw themselves after a change made in the modal: the Tokens table and
  // a token's own page.
  const REFRESHING = ["token-table", "token-detail"];
  const refreshingRegion = () => REFRESHING.some((id) => document.getElementById(id));
  let opener = null;
  let refreshPending = false;
  let focusAfterRefresh = null;
  function rememberOpener(event) {
    const target = event.detail.target;
    const shell = modalShell();
    if (target && target.id === "modal-content" && shell && !shell.classList.contains("show")) {
      const element = event.detail.elt;
      const row = element.closest("tr");
      const rows = row ? Array.from(row.parentElement.children) : [];
      opener = {
        element: element,
        label: element.getAttribute("aria-label"),
        rowIndex: row ? rows.indexOf(row) : -1,
      };
    }
  }
  function focusLost() {
    const active = document.activeElement;
    return !active || active === document.body || !active.isConnected;
  }
  function placeFor(place) {
    const { element, label, rowIndex } = place;
    if (element && element.isConnected) return element;
    let next = label ? document.querySelector('[aria-label="' + CSS.escape(label) + '"]') : null;
    if (!next) next = document.querySelector("tr.row-highlight [data-copy]");
    if (!next && rowIndex >= 0) {
      const rows = document.querySelectorAll("#token-table tbody tr");
      const row = rows[Math.min(rowIndex, rows.length - 1)];
      if (row) next = row.querySelector("[data-copy], a, button");
    }
    if (!next) next = document.querySelector("#token-table [data-announce]");
    // A token's page after a revoke (its Edit and Revoke are gone): its heading.
    if (!next) next = document.querySelector("[data-focus-after-change]");
    return next;
  }
  function restoreFocus(place) {
    if (!place || !focusLost()) return;
    const next = placeFor(place);
    if (next) next.focus({ preventScroll: true });
  }

  // Redrawn regions ([data-announce-for=ID] names the live region of the one with that id) say
  // what they now show: the result count after a sort, a page, a filter or a delete.
  function announce(region) {
    if (!region.id) return;
    const live = document.querySelector('[data-announce-for="' + CSS.escape(region.id) + '"]');
    const source = region.querySelector("[data-announce]");
    if (!live || !source) return;
    live.textContent = "";
    setTimeout(() => { live.textContent = source.dataset.announce; }, 100);
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
    document.addEventListener("htmx:afterSettle", (event) => {
      const region = event.detail.elt;
      if (!region || !REFRESHING.includes(region.id)) return;
      refreshPending = false;
      if (focusAfterRefresh) {
        const place = focusAfterRefresh;
        focusAfterRefresh = null;
        restoreFocus(place);
      }
      announce(region);
    });

    const shell = modalShell();
    let saved = false; // closing because the server accepted the form: nothing to lose
    if (shell) {
      shell.addEventListener("hide.bs.modal", (event) => {
        const form = shell.querySelector("form[data-guard-changes]");
        if (!saved && hasUnsavedWork(form)) {
          event.preventDefault();
          ask(DISCARD_QUESTION).then((discard) => {
            if (!discard) return;
            saved = true; // nothing to keep: close without asking again
            modal().hide();
          });
          return;
        }
        saved = false;
      });
      shell.addEventListener("show.bs.modal", () => { saved = false; });
      // Bootstrap focuses the dialog itself when its fade-in ends. Someone quick (or a slow
      // machine) may already be typing in a field by then: give the focus back to that field
      // rather than lose their keystrokes, and only otherwise start on the first field.
      let lastInside = null;
      shell.addEventListener("focusin", (event) => {
        if (event.target !== shell) {
          lastInside = event.target;
        } else if (lastInside && lastInside.isConnected && shell.contains(lastInside)) {
          lastInside.focus();
        }
      });
      shell.addEventListener("shown.bs.modal", () => {
        if (document.activeElement !== shell && shell.contains(document.activeElement)) return;
        const first = shell.querySelector("[autofocus]")
          || shell.querySelector("input:not([type=hidden]), select, textarea");
        if (first) first.focus();
      });
      shell.addEventListener("hidden.bs.modal", () => {
        lastInside = null;
        const content = document.getElementById("modal-content");
        // Content that changed the page's data (a new access key shown once) names the event
        // that refreshes the table behind it: data-refresh-on-close="accessKeysChanged".
        const refresh = content.querySelector("[data-refresh-on-close]");
        content.innerHTML = "";
        if (refresh) document.body.dispatchEvent(new CustomEvent(refresh.dataset.refreshOnClose));
        const place = opener;
        opener = null;
        if (refreshPending) focusAfterRefresh = place;
        else restoreFocus(place);
      });
    }

    document.addEventListener("closeModal", () => {
      saved = true;
      const instance = modal();
      if (instance) instance.hide();
    });
    document.addEventListener("showToast", (event) => {
      showToast(event.detail.message, event.detail.level);
    });
    document.addEventListener("tokensChanged", (event) => {
      refreshPending = refreshingRegion();
      pendingHighlight = event.detail && event.detail.id ? String(event.detail.id) : null;
    });
    document.addEventListener("tokenHistoryChanged", () => { refreshPending = refreshingRegion(); });
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
