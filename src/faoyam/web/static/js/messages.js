/* Messages: live alarms (server-sent events), mark read, delete one or all. */
(function () {
  "use strict";
  const list = document.getElementById("alarms");
  if (!list) return;
  const { api, t, toast } = window.faoyam;
  const empty = document.getElementById("no-messages");
  const filters = document.getElementById("message-filters");
  const labels = {};
  const tpl = document.getElementById("alarm-labels");
  for (const el of tpl.content.querySelectorAll("[data-kind]")) labels[el.dataset.kind] = el.textContent;

  function refreshEmpty() { if (empty) empty.hidden = list.children.length > 0; }

  function matches(m) {
    const f = new FormData(filters);
    if (f.get("device") && f.get("device") !== m.device_id) return false;
    if (f.get("kind") && f.get("kind") !== m.kind) return false;
    if (f.get("day") && !m.at.startsWith(f.get("day"))) return false;
    return true;
  }

  function item(m) {
    const li = document.createElement("li");
    li.className = "list-item alarm unread live";
    li.dataset.alarm = m.alarm_id;
    li.dataset.message = m.id;
    const shot = document.createElement(m.has_snapshot ? "a" : "span");
    shot.className = "alarm-shot";
    if (m.has_snapshot) {
      const src = `/api/v1/devices/${m.device_id}/alarms/${m.alarm_id}/snapshot`;
      shot.href = src; shot.target = "_blank"; shot.rel = "noopener";
      const img = document.createElement("img");
      img.src = src; img.width = 96; img.height = 54; img.alt = t("Picture of the alarm");
      shot.append(img);
    }
    const body = document.createElement("div");
    body.className = "grow";
    const title = document.createElement("div");
    title.className = "title"; title.textContent = labels[m.kind] || labels["*"];
    const sub = document.createElement("div");
    sub.className = "sub";
    const dev = document.createElement("a");
    dev.href = `/devices/${m.device_id}`; dev.textContent = m.device_name;
    sub.append(dev);
    if (m.channel_name) sub.append(` · ${m.channel_name}`);
    const when = document.createElement("div");
    when.className = "sub";
    const time = document.createElement("time");
    time.dateTime = m.at; time.textContent = new Date(m.at).toLocaleString();
    const clip = document.createElement("a");
    clip.className = "clip"; clip.href = m.clip_url; clip.textContent = t("Play the clip");
    when.append(time, " · ", clip);
    body.append(title, sub, when);
    const del = document.createElement("button");
    del.type = "button"; del.className = "btn icon-btn delete-one"; del.textContent = t("Delete");
    del.setAttribute("aria-label", t("Delete"));
    li.append(shot, body, del);
    return li;
  }

  function setUnread(n) {
    const el = document.getElementById("unread-count");
    el.dataset.unread = String(n);
    el.querySelector("b").textContent = String(n);
  }

  const source = new EventSource("/api/v1/alarms/stream");
  source.addEventListener("alarm", (e) => {
    const m = JSON.parse(e.data);
    if (list.querySelector(`[data-alarm="${m.alarm_id}"]`) || !matches(m)) return;
    list.prepend(item(m));
    setUnread(Number(document.getElementById("unread-count").dataset.unread) + 1);
    refreshEmpty();
  });
  window.addEventListener("pagehide", () => source.close());

  list.addEventListener("click", async (e) => {
    const btn = e.target.closest(".delete-one");
    if (!btn) return;
    const li = btn.closest(".alarm");
    const r = await api("DELETE", `/api/v1/alarms/messages/${li.dataset.message}`);
    if (r.ok || r.status === 404) { li.remove(); refreshEmpty(); } else toast(t("Something went wrong. Please try again."));
  });
  document.getElementById("read-all").addEventListener("click", async () => {
    const r = await api("POST", "/api/v1/alarms/messages/read", { json: { ids: null } });
    if (r.ok) { for (const li of list.querySelectorAll(".unread")) li.classList.remove("unread"); setUnread(0); }
  });
  document.getElementById("delete-all").addEventListener("click", async () => {
    if (!window.confirm(t("Delete all messages?"))) return;
    const r = await api("DELETE", "/api/v1/alarms/messages");
    if (r.ok) { list.replaceChildren(); setUnread(0); refreshEmpty(); }
  });
})();
