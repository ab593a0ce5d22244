// Chat: copying text, and a copy button on every code block of a rendered answer.
window.lpCopy = async (text) => {
  try {
    await navigator.clipboard.writeText(text);
  } catch (error) {
    // Pages served over plain HTTP have no Clipboard API: fall back to a selected textarea.
    const area = document.createElement("textarea");
    area.value = text;
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
};

(() => {
  const label = () => window.lpCopyLabel || "Copy";
  const addButtons = () => {
    document.querySelectorAll(".lp-markdown pre:not([data-lp-copy])").forEach((pre) => {
      pre.dataset.lpCopy = "1";
      const button = document.createElement("button");
      button.type = "button";
      button.className = "lp-copy-code";
      button.textContent = label();
      button.addEventListener("click", async () => {
        const code = pre.querySelector("code");
        await window.lpCopy((code ? code.innerText : pre.innerText).trimEnd());
        button.textContent = "✓";
        setTimeout(() => (button.textContent = label()), 1200);
      });
      pre.appendChild(button);
    });
  };
  new MutationObserver(addButtons).observe(document.body, { childList: true, subtree: true });
  addButtons();
})();

// Follow a streaming answer down the page, unless the reader has scrolled up to read something.
(() => {
  const stuck = new WeakMap();
  document.addEventListener("scroll", (event) => {
    const box = event.target;
    if (box instanceof Element && box.classList.contains("lp-autoscroll")) {
      stuck.set(box, box.scrollHeight - box.scrollTop - box.clientHeight < 40);
    }
  }, true);
  new MutationObserver(() => {
    document.querySelectorAll(".lp-autoscroll").forEach((box) => {
      if (stuck.get(box) !== false) box.scrollTop = box.scrollHeight;
    });
  }).observe(document.body, { childList: true, subtree: true, characterData: true });
})();
