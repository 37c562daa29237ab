// Result captions: the full text on hover (ids may be cut on narrow screens), and a green frame on the
// ground truth whatever its kind (an image target is also framed in its file; a video cannot be).
() => {
  const mark = () => {
    document.querySelectorAll(".thumbnail-item, .gallery-item, button.thumbnail-item").forEach((item) => {
      const label = item.querySelector(".caption-label, .caption");
      const text = (label ? label.textContent : item.getAttribute("aria-label") || "").trim();
      if (!text) return;
      if (item.title !== text) item.title = text;
      if (label && label.title !== text) label.title = text;
      item.classList.toggle("covr-target", text.includes("✔ target"));
    });
  };
  new MutationObserver(mark).observe(document.body, { childList: true, subtree: true, characterData: true });
  mark();
}
