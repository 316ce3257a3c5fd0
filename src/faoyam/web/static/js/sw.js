/* faoyam service worker: makes the web app installable and shows a friendly page offline.
   Pages and API answers are never cached (they are personal); only the static shell is. */
const CACHE = "faoyam-static-v2";
const SHELL = ["/offline", "/static/css/app.css", "/static/js/app.js", "/static/icons/sprite.svg",
               "/static/icons/icon.svg", "/static/icons/icon-192.png", "/static/fonts/sarabun-thai-400-normal.woff2"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  if (req.method !== "GET") return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  if (req.mode === "navigate") {
    // Network first; the offline page only when the network is gone.
    event.respondWith(fetch(req).catch(() => caches.match("/offline")));
    return;
  }
  if (url.pathname.startsWith("/static/")) {
    // Network first so a new version shows at once; the cache serves when offline.
    event.respondWith(
      fetch(req)
        .then((res) => {
          if (res.ok) {
            const copy = res.clone();
            caches.open(CACHE).then((c) => c.put(req, copy));
          }
          return res;
        })
        .catch(() => caches.match(req)),
    );
  }
});
