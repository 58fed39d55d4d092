// iap web UI: the little JavaScript the pages need. No build step, no dependencies.
// Reads come rendered from the server; changes go to the JSON API with the session cookie and
// the page's CSRF token (the API refuses cookie-authenticated changes without it).
"use strict";

const csrfToken = () => document.querySelector('meta[name="csrf-token"]').content;

class ApiError extends Error {
  constructor(status, body) {
    super(describeError(status, body));
    this.status = status;
    this.code = body && body.code;
  }
}

function describeError(status, body) {
  if (body && typeof body.detail === "string") return body.detail;
  if (body && Array.isArray(body.detail) && body.detail.length) {
    return body.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
  }
  if (status === 0) return "The server could not be reached; check the connection and retry.";
  return `The server answered ${status}.`;
}

async function api(method, url, body) {
  const headers = { "X-CSRF-Token": csrfToken(), Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch (err) {
    throw new ApiError(0, null);
  }
  if (response.status === 401) {
    window.location.assign("/sign-in?next=" + encodeURIComponent(location.pathname + location.search));
    throw new ApiError(401, { detail: "Your sign-in has ended; sign in again." });
  }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  const item = document.createElement("p");
  item.className = `toast ${kind}`;
  item.textContent = message;
  box.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 9000 : 4000);
}

const STATUS_LABELS = { succeeded: "analysed", none: "not analysed" };

function setBadge(badge, status) {
  badge.className = `badge status-${status}`;
  badge.textContent = STATUS_LABELS[status] || status;
}

// Live analysis events for the signed-in user (Server-Sent Events; the browser reconnects).
function onAnalysisEvents(handler, others = []) {
  if (!("EventSource" in window)) return;
  const source = new EventSource("/events");
  const analysis = ["analysis.queued", "analysis.started", "analysis.succeeded", "analysis.failed"];
  for (const type of [...analysis, ...others]) {
    source.addEventListener(type, (event) => handler(JSON.parse(event.data)));
  }
  window.addEventListener("pagehide", () => source.close());
}

function htmlFragment(html) {
  const template = document.createElement("template");
  template.innerHTML = html.trim();
  return template.content;
}

// ---------------------------------------------------------------------------------------------
// Gallery: upload, infinite scroll, live status.

function initGallery() {
  const grid = document.getElementById("grid");
  const total = document.getElementById("total");

  async function fetchCard(imageId) {
    const response = await fetch(`/gallery/card/${imageId}`, { credentials: "same-origin" });
    if (!response.ok) return null;
    return htmlFragment(await response.text()).firstElementChild;
  }

  async function refreshCard(imageId) {
    const current = grid.querySelector(`[data-image-id="${imageId}"]`);
    if (!current) return;
    const fresh = await fetchCard(imageId);
    if (fresh) current.replaceWith(fresh);
  }

  onAnalysisEvents((event) => {
    const card = grid.querySelector(`[data-image-id="${event.image_id}"]`);
    if (!card) return;
    const status = event.type.split(".")[1];
    card.dataset.status = status;
    setBadge(card.querySelector('[data-role="status"]'), status);
    if (status === "succeeded" || status === "failed") refreshCard(event.image_id);
  });

  // Infinite scroll: the "Load more" link is a plain link without script; with it, the next
  // page's cards are fetched and appended as the link comes into view.
  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (entry.isIntersecting) loadMore(entry.target);
    }
  }, { rootMargin: "600px" });

  async function loadMore(item) {
    if (item.dataset.loading) return;
    item.dataset.loading = "1";
    observer.unobserve(item);
    try {
      const response = await fetch(item.dataset.more, { credentials: "same-origin" });
      if (!response.ok) throw new Error(`status ${response.status}`);
      const fragment = htmlFragment(await response.text());
      const next = fragment.querySelector("[data-more]");
      // Cards already shown (a new upload moved the pages along) are not shown twice.
      for (const card of fragment.querySelectorAll("[data-image-id]")) {
        if (grid.querySelector(`[data-image-id="${card.dataset.imageId}"]`)) card.remove();
      }
      item.replaceWith(fragment);
      if (next) observer.observe(next);
    } catch (err) {
      delete item.dataset.loading;
      toast("More images could not be loaded; use the Load more button to retry.", "error");
    }
  }
  for (const item of grid.querySelectorAll("[data-more]")) observer.observe(item);

  initUploads(async (image) => {
    if (!total) return; // a search's results: a new upload is not one of them until it matches
    const card = await fetchCard(image.id);
    if (card && !grid.querySelector(`[data-image-id="${image.id}"]`)) grid.prepend(card);
    const empty = document.getElementById("empty");
    if (empty) empty.remove();
    total.textContent = String(Number(total.textContent) + 1);
  });
}

function initUploads(onUploaded) {
  const input = document.getElementById("file-input");
  const zone = document.getElementById("dropzone");
  const list = document.getElementById("uploads");
  const waiting = [];
  let running = 0;
  const PARALLEL = 3;

  function enqueue(files) {
    for (const file of files) {
      const row = document.createElement("li");
      row.className = "upload-row";
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = file.name;
      const progress = document.createElement("progress");
      progress.max = 100;
      progress.value = 0;
      progress.setAttribute("aria-label", `Upload of ${file.name}`);
      const state = document.createElement("span");
      state.className = "state";
      state.textContent = "waiting";
      row.append(name, progress, state);
      list.prepend(row);
      waiting.push({ file, row, progress, state });
    }
    pump();
  }

  function pump() {
    while (running < PARALLEL && waiting.length) {
      running += 1;
      send(waiting.shift()).finally(() => {
        running -= 1;
        pump();
      });
    }
  }

  function send({ file, row, progress, state }) {
    return new Promise((resolve) => {
      const form = new FormData();
      form.append("file", file, file.name);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/image/upload");
      xhr.setRequestHeader("X-CSRF-Token", csrfToken());
      xhr.setRequestHeader("Accept", "application/json");
      state.textContent = "uploading";
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) progress.value = Math.round((event.loaded / event.total) * 100);
      });
      xhr.addEventListener("load", () => {
        let body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch (err) {
          body = null;
        }
        if (xhr.status === 201) {
          progress.value = 100;
          row.classList.add("done");
          state.textContent = "uploaded — analysing";
          onUploaded(body);
          setTimeout(() => row.remove(), 6000);
        } else {
          row.classList.add("failed");
          state.textContent = describeError(xhr.status, body);
          state.setAttribute("role", "alert");
        }
        resolve();
      });
      xhr.addEventListener("error", () => {
        row.classList.add("failed");
        state.textContent = describeError(0, null);
        state.setAttribute("role", "alert");
        resolve();
      });
      xhr.send(form);
    });
  }

  input.addEventListener("change", () => {
    enqueue(Array.from(input.files));
    input.value = "";
  });
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    zone.addEventListener(type, () => zone.classList.remove("over"));
  }
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    enqueue(Array.from(event.dataTransfer.files));
  });
}

// ---------------------------------------------------------------------------------------------
// One image: overlays, editing, re-analysis, deletion, live status.

function initImage() {
  const page = document.querySelector(".image-page");
  const imageId = page.dataset.imageId;
  const badge = page.querySelector('[data-role="status"]');

  for (const toggle of document.querySelectorAll("input[data-layer]")) {
    const layer = document.querySelector(`g[data-layer="${toggle.dataset.layer}"]`);
    toggle.addEventListener("change", () => layer.classList.toggle("hidden", !toggle.checked));
  }

  onAnalysisEvents((event) => {
    if (event.type === "people.grouped") {
      // The faces of a fresh analysis are grouped a moment after it: show who they are.
      if ((event.image_ids || []).includes(imageId)) {
        toast("Faces grouped; showing who is in the image.");
        setTimeout(() => window.location.reload(), 800);
      }
      return;
    }
    if (event.image_id !== imageId) return;
    const status = event.type.split(".")[1];
    setBadge(badge, status);
    if (status === "succeeded" || status === "failed") {
      toast(status === "succeeded" ? "Analysis finished; showing the results." : "The analysis failed.");
      setTimeout(() => window.location.reload(), 800);
    }
  }, ["people.grouped"]);

  const form = document.getElementById("edit-form");
  const formStatus = form.querySelector(".form-status");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const tags = form.tags.value.split(",").map((t) => t.trim()).filter(Boolean);
    const description = form.description.value.trim();
    formStatus.textContent = "Saving…";
    try {
      const image = await api("PUT", `/image/${imageId}`, { tags, description: description || null });
      form.tags.value = image.tags.join(", ");
      formStatus.textContent = "Saved.";
    } catch (err) {
      formStatus.textContent = err.message;
    }
  });

  page.querySelector('[data-action="reanalyse"]').addEventListener("click", async () => {
    try {
      const job = await api("POST", `/image/${imageId}/analyze`, {});
      setBadge(badge, job.status);
      toast("Analysis queued; the page updates when it finishes.");
    } catch (err) {
      toast(err.message, "error");
    }
  });

  const dialog = document.getElementById("confirm-delete");
  page.querySelector('[data-action="delete"]').addEventListener("click", () => dialog.showModal());
  dialog.addEventListener("close", async () => {
    if (dialog.returnValue !== "delete") return;
    try {
      await api("DELETE", `/image/${imageId}`);
      window.location.assign("/gallery");
    } catch (err) {
      toast(err.message, "error");
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Account: password and API keys.

function initAccount() {
  const passwordForm = document.getElementById("password-form");
  const passwordStatus = passwordForm.querySelector(".form-status");
  passwordForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    passwordStatus.textContent = "Changing…";
    try {
      await api("PATCH", "/me", {
        current_password: passwordForm.current_password.value,
        password: passwordForm.password.value,
      });
      passwordStatus.textContent = "Password changed. Sign in again with the new one.";
      setTimeout(() => window.location.assign("/sign-in"), 1500);
    } catch (err) {
      passwordStatus.textContent = err.message;
    }
  });

  const keyForm = document.getElementById("key-form");
  const tbody = document.querySelector("#keys tbody");
  keyForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const key = await api("POST", "/me/api-keys", { name: keyForm.name.value });
      document.getElementById("new-key-value").textContent = key.key;
      document.getElementById("new-key").hidden = false;
      const row = document.createElement("tr");
      row.dataset.keyId = key.id;
      for (const text of [key.name, `iap_${key.prefix}…`, "just now", "—"]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      }
      const cell = document.createElement("td");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "button quiet danger";
      button.dataset.action = "delete-key";
      button.textContent = "Delete";
      button.setAttribute("aria-label", `Delete key ${key.name}`);
      cell.append(button);
      row.append(cell);
      const none = tbody.querySelector(".none");
      if (none) none.remove();
      tbody.prepend(row);
      keyForm.reset();
    } catch (err) {
      toast(err.message, "error");
    }
  });
  tbody.addEventListener("click", async (event) => {
    const button = event.target.closest('[data-action="delete-key"]');
    if (!button) return;
    const row = button.closest("tr");
    if (!window.confirm("Delete this API key? Scripts using it stop working at once.")) return;
    try {
      await api("DELETE", `/me/api-keys/${row.dataset.keyId}`);
      row.remove();
      toast("Key deleted.");
    } catch (err) {
      toast(err.message, "error");
    }
  });
  document.querySelector('[data-action="copy-key"]').addEventListener("click", async () => {
    await navigator.clipboard.writeText(document.getElementById("new-key-value").textContent);
    toast("Copied.");
  });
}

// ---------------------------------------------------------------------------------------------
// Administration: retry failed jobs, disable and enable users.

function initAdmin() {
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-action]");
    if (!button) return;
    const row = button.closest("tr");
    try {
      if (button.dataset.action === "retry-job") {
        await api("POST", `/admin/jobs/${row.dataset.jobId}/retry`);
        row.remove();
        toast("Queued again.");
      } else if (button.dataset.action === "retry-all") {
        const result = await api("POST", "/admin/jobs/failed/retry");
        toast(`${result.retried.length} job(s) queued again.`);
        setTimeout(() => window.location.reload(), 800);
      } else if (button.dataset.action === "toggle-user") {
        const active = button.dataset.active === "true";
        const user = await api("PATCH", `/admin/users/${row.dataset.userId}`, { is_active: !active });
        button.dataset.active = String(user.is_active);
        button.textContent = user.is_active ? "Disable" : "Enable";
        button.setAttribute("aria-label", `${button.textContent} ${user.username}`);
        button.classList.toggle("danger", user.is_active);
        toast(user.is_active ? "Account enabled." : "Account disabled; its sign-ins have ended.");
      }
    } catch (err) {
      toast(err.message, "error");
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Duplicates: keep one image of a group, delete the others, in one action.

function initDuplicates() {
  document.querySelector("main").addEventListener("click", async (event) => {
    const button = event.target.closest('[data-action="keep-one"]');
    if (!button) return;
    const group = button.closest(".duplicate-group");
    const copies = group.dataset.copies.split(" ").filter(Boolean);
    button.disabled = true;
    let deleted = 0;
    try {
      for (const id of copies) {
        try {
          await api("DELETE", `/image/${id}`);
        } catch (err) {
          if (err.status !== 404) throw err; // already gone is what was wanted
        }
        group.querySelector(`.card[data-image-id="${id}"]`)?.remove();
        deleted += 1;
      }
      group.remove();
      toast(`Kept one, deleted ${deleted}.`);
    } catch (err) {
      button.disabled = false;
      toast(`${err.message} (${deleted} deleted before it)`, "error");
    }
  });
}

// ---------------------------------------------------------------------------------------------
// People: naming, hiding and merging people; taking a wrongly grouped face out of a person.

const imagesText = (count) => `${count} image${count === 1 ? "" : "s"}`;

// Every place a page shows a person's name or image count follows the person as changed.
function showPerson(person) {
  for (const item of document.querySelectorAll(`[data-name-of="${person.id}"]`)) {
    item.textContent = person.name || "Unnamed";
  }
  for (const item of document.querySelectorAll(`[data-count-of="${person.id}"]`)) {
    item.textContent = imagesText(person.image_count);
  }
  for (const input of document.querySelectorAll(`form.person-name[data-person-id="${person.id}"] input[name="name"]`)) {
    input.value = person.name || "";
  }
  const card = document.querySelector(`.person[data-person-id="${person.id}"]`);
  if (card) {
    card.dataset.hidden = String(person.hidden);
    card.querySelector('[data-role="hidden"]').hidden = !person.hidden;
    card.querySelector('[data-action="toggle-hidden"]').textContent = person.hidden ? "Unhide" : "Hide";
  }
}

function initNaming() {
  document.addEventListener("submit", async (event) => {
    const form = event.target.closest("form.person-name");
    if (!form) return;
    event.preventDefault();
    const status = form.querySelector(".form-status");
    const name = form.querySelector('input[name="name"]').value.trim();
    status.textContent = "Saving…";
    try {
      showPerson(await api("PATCH", `/people/${form.dataset.personId}`, { name: name || null }));
      status.textContent = "Saved.";
    } catch (err) {
      status.textContent = err.message;
    }
  });
}

function initPeople() {
  initNaming();
  const total = document.getElementById("total");
  const dialog = document.getElementById("merge-dialog");
  let merging = null;

  async function toggleHidden(card) {
    const hidden = card.dataset.hidden === "true";
    const person = await api("PATCH", `/people/${card.dataset.personId}`, { hidden: !hidden });
    showPerson(person);
    toast(person.hidden ? "Hidden: left out of the list from now on (see “Hidden ones too”)." : "Shown in the list again.");
  }

  function chooseTarget(card) {
    const others = dialog.querySelectorAll(`[data-target-of]:not([data-target-of="${card.dataset.personId}"])`);
    if (!others.length) {
      toast("There is nobody else on this page to merge with.");
      return;
    }
    merging = card.dataset.personId;
    const name = card.querySelector(`[data-name-of="${merging}"]`).textContent;
    dialog.querySelector('[data-role="merge-source"]').textContent = name === "Unnamed" ? "this person" : name;
    for (const label of dialog.querySelectorAll("[data-target-of]")) {
      const itself = label.dataset.targetOf === merging;
      const input = label.querySelector("input");
      label.hidden = itself;
      input.disabled = itself;
      input.checked = false;
    }
    dialog.returnValue = "";
    dialog.showModal();
  }

  document.querySelector("main").addEventListener("click", async (event) => {
    const button = event.target.closest("[data-action]");
    if (!button) return;
    const card = button.closest(".person");
    try {
      if (button.dataset.action === "toggle-hidden") await toggleHidden(card);
      else if (button.dataset.action === "merge") chooseTarget(card);
    } catch (err) {
      toast(err.message, "error");
    }
  });

  if (!dialog) return;
  dialog.addEventListener("close", async () => {
    const chosen = dialog.querySelector('input[name="into"]:checked');
    if (dialog.returnValue !== "merge" || !chosen || !merging) return;
    const source = merging;
    try {
      const person = await api("POST", `/people/${source}/merge`, { into: chosen.value });
      document.querySelector(`.person[data-person-id="${source}"]`)?.remove();
      dialog.querySelector(`[data-target-of="${source}"]`)?.remove();
      showPerson(person);
      total.textContent = String(Number(total.textContent) - 1);
      toast(`Merged into ${person.name || "the person you chose"}.`);
    } catch (err) {
      toast(err.message, "error");
    }
  });
}

function initPerson() {
  initNaming();
  const page = document.querySelector(".person-page");
  const personId = page.dataset.personId;
  const grid = document.getElementById("images");

  grid.addEventListener("click", async (event) => {
    const button = event.target.closest('[data-action="not-this-person"]');
    if (!button) return;
    const face = button.closest("[data-face-id]");
    const card = button.closest(".card");
    button.disabled = true;
    try {
      await api("DELETE", `/people/${personId}/faces/${face.dataset.faceId}`);
    } catch (err) {
      button.disabled = false;
      toast(err.message, "error");
      return;
    }
    face.remove();
    if (!card.querySelector("[data-face-id]")) {
      card.remove();
      const left = Number(page.dataset.images) - 1;
      page.dataset.images = String(left);
      for (const item of page.querySelectorAll(`[data-count-of="${personId}"]`)) item.textContent = imagesText(left);
    }
    toast("Taken out: that face belongs to nobody now, and stays so.");
    // The page's last image gone: the next ones, or the people if this person is gone too.
    if (!grid.querySelector(".card")) {
      window.location.assign(Number(page.dataset.images) > 0 ? location.pathname : "/gallery/people");
    }
  });
}

const PAGES = {
  gallery: initGallery,
  image: initImage,
  people: initPeople,
  person: initPerson,
  duplicates: initDuplicates,
  account: initAccount,
  admin: initAdmin,
};
const init = PAGES[document.body.dataset.page];
if (init) init();
