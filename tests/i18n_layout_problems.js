() => {
  const problems = [];
  const doc = document.documentElement;
  const width = doc.clientWidth;
  if (doc.scrollWidth > width + 1)
    problems.push(`the page scrolls sideways (${doc.scrollWidth}px wide in ${width}px)`);
  const name = (el) => {
    let s = el.tagName.toLowerCase();
    if (el.id) s += '#' + el.id;
    else if (el.classList.length) s += '.' + [...el.classList].slice(0, 2).join('.');
    const text = (el.innerText || el.value || el.getAttribute('aria-label') || '')
      .replace(/\s+/g, ' ').trim().slice(0, 60);
    return `${s} "${text}"`;
  };
  const visible = (el) => {
    const r = el.getBoundingClientRect();
    const st = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && st.visibility !== 'hidden' && st.display !== 'none'
      && !el.closest('.visually-hidden, .sr-only, [hidden]');
  };
  // Inside a box that scrolls on purpose (a wide table's wrapper, the viewer's canvas)
  // content may pass the window's edge: the reader scrolls that box.
  const inScroller = (el) => {
    for (let e = el.parentElement; e && e !== document.body; e = e.parentElement) {
      const st = getComputedStyle(e);
      if (['auto', 'scroll'].includes(st.overflowX)) return true;
    }
    return false;
  };
  const controls = 'button, a, input, select, label, th, nav li, summary, .button, textarea';
  for (const el of document.querySelectorAll(controls)) {
    if (!visible(el)) continue;
    const st = getComputedStyle(el);
    const clips = ['hidden', 'clip'].includes(st.overflowX) || ['hidden', 'clip'].includes(st.overflowY)
      || st.textOverflow === 'ellipsis';
    if (clips && (el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1)
        && el.tagName !== 'INPUT' && el.tagName !== 'TEXTAREA' && el.tagName !== 'SELECT')
      problems.push(`clipped text: ${name(el)} (${el.scrollWidth}x${el.scrollHeight} in ${el.clientWidth}x${el.clientHeight})`);
    if (el.tagName === 'SELECT') {
      // A closed list shows its chosen option: cut when the option is wider than the box.
      const option = el.options[el.selectedIndex];
      if (option) {
        const probe = document.createElement('span');
        probe.style.cssText = `font:${st.font};white-space:pre;position:absolute;visibility:hidden`;
        probe.textContent = option.text;
        document.body.appendChild(probe);
        const room = el.clientWidth - parseFloat(st.paddingLeft) - parseFloat(st.paddingRight) - 16;
        if (probe.offsetWidth > room + 1)
          problems.push(`clipped choice: ${name(el)} shows "${option.text.slice(0, 50)}" (${probe.offsetWidth}px in ${Math.round(room)}px)`);
        probe.remove();
      }
    }
    if (['BUTTON', 'A', 'LABEL', 'TH', 'SUMMARY'].includes(el.tagName) || el.classList.contains('button')) {
      // Text running out of a box that does not grow with it (fixed width or height).
      const r = el.getBoundingClientRect();
      // The visible text's extent (a visually hidden name is positioned off on purpose).
      let left = Infinity, right = -Infinity;
      const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
      for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        if (!n.textContent.trim() || n.parentElement.closest('.visually-hidden, .sr-only, [hidden]')) continue;
        const range = document.createRange();
        range.selectNodeContents(n);
        const t = range.getBoundingClientRect();
        if (t.width > 0) { left = Math.min(left, t.left); right = Math.max(right, t.right); }
      }
      const t = {width: right - left, left, right};
      if (t.width > 0 && (t.right > r.right + 2 || t.left < r.left - 2) && st.display !== 'inline')
        problems.push(`text overflows its box: ${name(el)} (text ${Math.round(t.width)}px, box ${Math.round(r.width)}px)`);
    }
    const r = el.getBoundingClientRect();
    if ((r.right > width + 1 || r.left < -1) && !inScroller(el))
      problems.push(`past the window's edge: ${name(el)} (${Math.round(r.left)}..${Math.round(r.right)} of ${width})`);
  }
  return [...new Set(problems)];
}
