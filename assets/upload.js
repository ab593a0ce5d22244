// A small tus 1.0 client for the datasets page: drag and drop, progress, pause and resume, and resumption after a
// dropped connection or a page reload (the upload's URL is remembered by the file's name, size and date, so that
// dropping the same file again goes on from the server's offset).
(() => {
  const TUS = { "Tus-Resumable": "1.0.0" };
  const CHUNK = 8 * 1024 * 1024;
  const RETRY_DELAYS = [500, 1000, 2000, 4000, 8000, 15000];

  const b64 = (text) => btoa(String.fromCharCode(...new TextEncoder().encode(text)));
  const human = (bytes) => {
    const units = ["B", "KB", "MB", "GB", "TB"];
    let value = bytes, unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
    return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
  };

  class Upload {
    constructor(file, options, view) {
      this.file = file;
      this.options = options;
      this.view = view;
      this.key = `lp-tus:${options.user}:${file.name}:${file.size}:${file.lastModified}`;
      this.offset = 0;
      this.paused = false;
      this.controller = null;
      this.token = null;
      this.started = 0;
      this.startOffset = 0;
    }

    async headers(extra = {}) {
      if (!this.token) {
        const response = await fetch(this.options.tokenUrl, { credentials: "same-origin" });
        if (!response.ok) throw new Error(`sign-in expired (${response.status})`);
        this.token = (await response.json()).token;
      }
      return { ...TUS, Authorization: `Bearer ${this.token}`, ...extra };
    }

    async call(method, url, init = {}) {
      let response = await fetch(url, { method, ...init, headers: await this.headers(init.headers) });
      if (response.status === 401) { // the short-lived token ran out: one fresh one
        this.token = null;
        response = await fetch(url, { method, ...init, headers: await this.headers(init.headers) });
      }
      return response;
    }

    async start() {
      this.url = localStorage.getItem(this.key);
      if (this.url) {
        const head = await this.call("HEAD", this.url);
        if (head.ok) {
          this.offset = parseInt(head.headers.get("Upload-Offset"), 10);
        } else {
          this.url = null;
        }
      }
      if (!this.url) {
        const response = await this.call("POST", this.options.endpoint, {
          headers: { "Upload-Length": String(this.file.size), "Upload-Metadata": `filename ${b64(this.file.name)}` },
        });
        if (!response.ok) throw new Error(await this.reason(response));
        this.url = new URL(response.headers.get("Location"), window.location.href).pathname;
        localStorage.setItem(this.key, this.url);
        this.offset = 0;
      }
      this.view.resumed(this.offset > 0);
      return this.send();
    }

    async reason(response) {
      try { return (await response.json()).detail; } catch (error) { return `HTTP ${response.status}`; }
    }

    async send() {
      this.started = performance.now();
      this.startOffset = this.offset;
      let attempt = 0;
      while (this.offset < this.file.size || this.file.size === 0) {
        if (this.paused) return;
        this.controller = new AbortController();
        const chunk = this.file.slice(this.offset, this.offset + CHUNK);
        try {
          const response = await this.call("PATCH", this.url, {
            body: chunk, signal: this.controller.signal,
            headers: { "Upload-Offset": String(this.offset), "Content-Type": "application/offset+octet-stream" },
          });
          if (response.status === 409 || response.status === 423) { // out of step, or an older request still
            await new Promise((resolve) => setTimeout(resolve, 500)); // writing: ask where the server is, calmly
            await this.sync();
            continue;
          }
          if (!response.ok) throw new Error(await this.reason(response));
          this.offset = parseInt(response.headers.get("Upload-Offset"), 10);
          attempt = 0;
          this.view.progress(this.offset, this.file.size, this.speed());
          if (this.file.size === 0) break;
        } catch (error) {
          if (this.paused) return;
          if (attempt >= RETRY_DELAYS.length || (error.message && !/fetch|network|Failed/i.test(error.message))) {
            throw error;
          }
          this.view.retrying(RETRY_DELAYS[attempt] / 1000);
          await new Promise((resolve) => setTimeout(resolve, RETRY_DELAYS[attempt++]));
          await this.sync().catch(() => {});
        }
      }
      localStorage.removeItem(this.key);
      return this.url.split("/").pop();
    }

    async sync() {
      const head = await this.call("HEAD", this.url);
      if (!head.ok) throw new Error(await this.reason(head));
      this.offset = parseInt(head.headers.get("Upload-Offset"), 10);
    }

    speed() {
      const seconds = (performance.now() - this.started) / 1000;
      return seconds > 0 ? (this.offset - this.startOffset) / seconds : 0;
    }

    pause() {
      this.paused = true;
      if (this.controller) this.controller.abort();
    }

    async resume() {
      this.paused = false;
      await this.sync();
      return this.send();
    }
  }

  // The drop zone: a box that takes a file by drag and drop or by click, and shows the upload's progress.
  function attach(id, options) {
    const box = document.getElementById(id);
    if (!box || box.dataset.lpAttached) return;
    box.dataset.lpAttached = "1";
    const t = options.texts;
    box.innerHTML = `
      <input type="file" class="lp-file" accept="${options.accept}" hidden>
      <div class="lp-drop-idle"><div class="lp-drop-icon">⇪</div><div class="lp-drop-title">${t.drop}</div>
        <div class="lp-drop-hint">${t.hint}</div></div>
      <div class="lp-drop-busy" hidden>
        <div class="lp-drop-name"></div>
        <div class="lp-bar"><div class="lp-bar-fill"></div></div>
        <div class="lp-drop-row"><span class="lp-drop-status"></span>
          <button type="button" class="lp-drop-pause">${t.pause}</button></div>
      </div>`;
    const input = box.querySelector(".lp-file");
    const idle = box.querySelector(".lp-drop-idle");
    const busy = box.querySelector(".lp-drop-busy");
    const fill = box.querySelector(".lp-bar-fill");
    const status = box.querySelector(".lp-drop-status");
    const pauseButton = box.querySelector(".lp-drop-pause");
    let current = null;

    const view = {
      resumed: (yes) => { status.textContent = yes ? t.resuming : t.starting; },
      progress: (done, total, speed) => {
        const share = total ? done / total : 1;
        fill.style.width = `${(share * 100).toFixed(1)}%`;
        status.textContent = `${(share * 100).toFixed(0)} % · ${human(done)} / ${human(total)}` +
          (speed ? ` · ${human(speed)}/s` : "");
      },
      retrying: (seconds) => { status.textContent = t.retrying.replace("{s}", seconds); },
    };

    const finish = (uploadId) => {
      pauseButton.hidden = true;
      status.textContent = t.done;
      emitEvent(options.event, { upload_id: uploadId, filename: current.file.name, size: current.file.size });
    };
    const fail = (error) => {
      status.textContent = `${t.failed}: ${error.message}`;
      pauseButton.textContent = t.retry;
      current.paused = true;
    };

    const take = (file) => {
      if (!file || (current && !current.paused)) return;
      if (file.size > options.maxBytes) {
        emitEvent(options.event + "Refused", { filename: file.name, size: file.size });
        return;
      }
      idle.hidden = true;
      busy.hidden = false;
      box.classList.add("lp-drop-active");
      box.querySelector(".lp-drop-name").textContent = `${file.name} (${human(file.size)})`;
      fill.style.width = "0%";
      pauseButton.hidden = false;
      pauseButton.textContent = t.pause;
      current = new Upload(file, options, view);
      current.start().then((uploadId) => uploadId && finish(uploadId)).catch(fail);
    };

    pauseButton.addEventListener("click", () => {
      if (!current) return;
      if (!current.paused) {
        current.pause();
        pauseButton.textContent = t.resume;
        status.textContent = `${t.paused} · ${status.textContent}`;
      } else {
        pauseButton.textContent = t.pause;
        current.resume().then((uploadId) => uploadId && finish(uploadId)).catch(fail);
      }
    });
    idle.addEventListener("click", () => input.click());
    input.addEventListener("change", () => take(input.files[0]));
    box.addEventListener("dragover", (event) => { event.preventDefault(); box.classList.add("lp-drop-over"); });
    box.addEventListener("dragleave", () => box.classList.remove("lp-drop-over"));
    box.addEventListener("drop", (event) => {
      event.preventDefault();
      box.classList.remove("lp-drop-over");
      take(event.dataTransfer.files[0]);
    });
    box.lpReset = () => { current = null; idle.hidden = false; busy.hidden = true; input.value = "";
      box.classList.remove("lp-drop-active"); };
  }

  window.lpUploader = { attach, reset: (id) => document.getElementById(id)?.lpReset?.() };
})();
