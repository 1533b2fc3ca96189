// The login page's script, served at /app.js (no inline script: the page's
// Content-Security-Policy allows scripts from the app's own origin only). Server values are
// only ever written as text (textContent), never as HTML.
(() => {
  "use strict";
  const TOKEN_KEY = "keygate.token";
  const $ = (id) => document.getElementById(id);

  function showError(message) {
    $("error").textContent = message;
    $("error").classList.add("shown");
    $("notice").textContent = "";
  }
  function clearError() {
    $("error").textContent = "";
    $("error").classList.remove("shown");
  }
  function notice(message) {
    clearError();
    $("notice").textContent = message;
  }

  // Calls the API and returns the envelope's data; throws an Error with a readable
  // message (the envelope's errorMsg) otherwise.
  async function api(method, path, body) {
    const headers = {};
    const token = localStorage.getItem(TOKEN_KEY);
    if (token) headers["authorization"] = token;
    if (body !== undefined) headers["content-type"] = "application/json";
    let response;
    try {
      response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      throw new Error("The server cannot be reached. Is it running?");
    }
    let envelope = null;
    try { envelope = await response.json(); } catch (e) { /* not JSON */ }
    if (response.ok && envelope && envelope.success) return envelope.data;
    const error = new Error(envelope && envelope.errorMsg ? envelope.errorMsg : "Unexpected answer from the server (HTTP " + response.status + ").");
    error.status = response.status;
    if (response.status === 429 && response.headers.get("retry-after")) {
      error.message += " (try again in " + response.headers.get("retry-after") + " s)";
    }
    throw error;
  }

  function showLoggedOut(message) {
    localStorage.removeItem(TOKEN_KEY);
    $("profile").hidden = true;
    $("login-panel").hidden = false;
    $("code").value = "";
    if (message) notice(message);
  }

  async function showProfile() {
    const user = await api("GET", "/user/me");
    $("nickname").textContent = user.nickName;
    $("user-id").textContent = String(user.id);
    const list = $("sessions");
    list.replaceChildren();
    const sessions = await api("GET", "/user/sessions");
    for (const s of sessions) {
      const li = document.createElement("li");
      li.textContent = "since " + new Date(s.createdAt * 1000).toLocaleString();
      if (s.current) {
        const mark = document.createElement("span");
        mark.className = "current";
        mark.textContent = " (this browser)";
        li.append(mark);
      }
      list.append(li);
    }
    $("login-panel").hidden = true;
    $("profile").hidden = false;
  }

  // Runs an action with its button disabled; shows its failure in the page.
  function action(buttonId, run) {
    $(buttonId).addEventListener("click", async () => {
      const button = $(buttonId);
      button.disabled = true;
      try {
        await run();
      } catch (e) {
        if (e.status === 401 && localStorage.getItem(TOKEN_KEY) && buttonId !== "login") {
          showLoggedOut();
        }
        showError(e.message);
      } finally {
        button.disabled = false;
      }
    });
  }

  action("send-code", async () => {
    const phone = $("phone").value.trim();
    await api("POST", "/user/code?phone=" + encodeURIComponent(phone));
    notice("Code sent. Look for it in the server log (development sender).");
    $("code").focus();
  });

  action("login", async () => {
    const token = await api("POST", "/user/login", { phone: $("phone").value.trim(), code: $("code").value.trim() });
    localStorage.setItem(TOKEN_KEY, token);
    notice("Logged in.");
    await showProfile();
  });

  action("logout", async () => {
    await api("POST", "/user/logout");
    showLoggedOut("Logged out.");
  });

  action("logout-all", async () => {
    const ended = await api("POST", "/user/logout-all");
    showLoggedOut("Logged out everywhere (" + ended + (ended === 1 ? " session" : " sessions") + " ended).");
  });

  $("code").addEventListener("keydown", (e) => { if (e.key === "Enter") $("login").click(); });
  $("phone").addEventListener("keydown", (e) => { if (e.key === "Enter") $("send-code").click(); });

  if (localStorage.getItem(TOKEN_KEY)) {
    showProfile().catch((e) => {
      if (e.status === 401) showLoggedOut(); else showError(e.message);
    });
  }
})();
