// The login page's script, served at /app.js (no inline script: the page's
// Content-Security-Policy allows scripts from the app's own origin only). Server values are
// only ever written as text (textContent), never as HTML.
//
// The session travels in the HttpOnly cookie that login sets: this script never sees the
// token and keeps nothing in localStorage. The browser adds the page's Origin to every
// POST and DELETE, which is what the server's cross-origin check looks for.
(() => {
  "use strict";
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
    if (body !== undefined) headers["content-type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
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
      li.dataset.sessionId = s.id;
      const device = document.createElement("span");
      device.className = "device";
      device.textContent = s.device || "unknown device";
      const times = document.createElement("span");
      times.className = "times";
      times.textContent = "since " + new Date(s.createdAt * 1000).toLocaleString() +
        ", last seen " + new Date(s.lastSeenAt * 1000).toLocaleString();
      li.append(device, times);
      if (s.current) {
        const mark = document.createElement("span");
        mark.className = "current";
        mark.textContent = "(this browser)";
        li.append(mark);
      } else {
        const end = document.createElement("button");
        end.type = "button";
        end.className = "secondary end-session";
        end.textContent = "Log out";
        end.addEventListener("click", async () => {
          end.disabled = true;
          try {
            await api("DELETE", "/user/sessions/" + encodeURIComponent(s.id));
            notice("That session is logged out.");
            await showProfile();
          } catch (e) {
            if (e.status === 401) showLoggedOut();
            showError(e.message);
            end.disabled = false;
          }
        });
        li.append(end);
      }
      list.append(li);
    }
    $("login-panel").hidden = true;
    $("profile").hidden = false;
  }

  // The account's sign-ins and sign-outs as they happen: GET /user/events (Server-Sent
  // Events). The stream ends with an "ended" event when this session ends anywhere; the
  // page then closes it instead of letting EventSource reconnect.
  const ENDED_BECAUSE = {
    "logged-out": "logged out",
    "ended-from-another-device": "ended from another device",
    "logged-out-everywhere": "logged out everywhere",
    "rotated": "its token was renewed",
    "session-limit": "too many sessions of this account",
    "ended-by-operator": "ended by an operator",
    "expired": "it expired",
    "deleted": "it was deleted",
  };
  let events = null;
  function stopEvents() {
    if (events) {
      events.close();
      events = null;
    }
  }
  function watchEvents() {
    stopEvents();
    const source = new EventSource("/user/events");
    events = source;
    source.addEventListener("login", (e) => {
      const data = JSON.parse(e.data);
      notice("Signed in on another device: " + (data.device || "unknown device") + ".");
      showProfile().catch(() => {});
    });
    for (const kind of ["logout", "session-ended", "logout-all", "rotated", "expired"]) {
      source.addEventListener(kind, () => { showProfile().catch(() => {}); });
    }
    source.addEventListener("ended", (e) => {
      source.close();
      if (events === source) events = null;
      let reason = "";
      try { reason = JSON.parse(e.data).reason; } catch (err) { /* no reason */ }
      showLoggedOut("Signed out: " + (ENDED_BECAUSE[reason] || "the session ended") + ".");
    });
  }

  // Runs an action with its button disabled; shows its failure in the page.
  function action(buttonId, run) {
    $(buttonId).addEventListener("click", async () => {
      const button = $(buttonId);
      button.disabled = true;
      try {
        await run();
      } catch (e) {
        if (e.status === 401 && buttonId !== "login") {
          stopEvents();
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
    await api("POST", "/user/login", { phone: $("phone").value.trim(), code: $("code").value.trim() });
    notice("Logged in.");
    await showProfile();
    watchEvents();
  });

  action("logout", async () => {
    stopEvents();
    await api("POST", "/user/logout");
    showLoggedOut("Logged out.");
  });

  action("logout-all", async () => {
    stopEvents();
    const ended = await api("POST", "/user/logout-all");
    showLoggedOut("Logged out everywhere (" + ended + (ended === 1 ? " session" : " sessions") + " ended).");
  });

  $("code").addEventListener("keydown", (e) => { if (e.key === "Enter") $("login").click(); });
  $("phone").addEventListener("keydown", (e) => { if (e.key === "Enter") $("send-code").click(); });

  // A session cookie from an earlier visit logs the page straight in.
  showProfile().then(watchEvents, (e) => {
    if (e.status === 401) showLoggedOut(); else showError(e.message);
  });
})();
