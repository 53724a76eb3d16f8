() => {
  const skip = 'script,style,noscript,template,code,pre,kbd,samp,[translate="no"],[lang="en"],[hidden]';
  const out = [];
  const path = (el) => {
    const bits = [];
    for (let e = el; e && e !== document.body && bits.length < 4; e = e.parentElement) {
      let s = e.tagName.toLowerCase();
      if (e.id) { s += '#' + e.id; bits.unshift(s); break; }
      const cls = [...e.classList].slice(0, 2).join('.');
      if (cls) s += '.' + cls;
      bits.unshift(s);
    }
    return bits.join(' > ');
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const text = n.textContent.replace(/\s+/g, ' ').trim();
    const el = n.parentElement;
    if (!text || !el || el.closest(skip)) continue;
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    if (box.width === 0 || box.height === 0 || style.visibility === 'hidden') continue;
    if (el.closest('.visually-hidden, .sr-only')) {
      out.push({text, where: path(el)});  // read aloud: still UI
      continue;
    }
    out.push({text, where: path(el)});
  }
  // What controls say without a text node: placeholders, values of buttons, labels.
  for (const el of document.querySelectorAll('input[placeholder], textarea[placeholder],'
      + ' input[type=submit], input[type=button], [aria-label], [title]')) {
    if (el.closest(skip)) continue;
    for (const attr of ['placeholder', 'aria-label', 'title']) {
      const v = el.getAttribute(attr);
      if (v && v.trim()) out.push({text: v.trim(), where: path(el) + '@' + attr});
    }
    if ((el.type === 'submit' || el.type === 'button') && el.tagName === 'INPUT' && el.value)
      out.push({text: el.value.trim(), where: path(el) + '@value'});
  }
  return out;
}
