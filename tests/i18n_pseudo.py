"""Pseudo-localisation for the browser tests: a made-up language whose every translation is
the English with its letters accented and ~35 % longer, inside ⟦ ⟧ brackets
("Sign in" -> "⟦Šíĝñ íñ ···⟧"). A page in it shows at a glance (and to a script) which texts
went through the catalogue (bracketed) and which are English typed into a page or a script
(not bracketed), and whether the layout holds texts longer than the English.

The catalogue is built at test time from the messages `pybabel extract` finds (babel.cfg, the
README's keywords) and the French catalogue's ids, compiled into a temporary translations
folder that the test app adds to BABEL_TRANSLATION_DIRECTORIES, under a real CLDR locale
that no clinic uses (Esperanto: dates and numbers are formatted by Babel as for any
language). The portal's own catalogues and languages are untouched: the fixture adds the
language to app.i18n.LANGUAGES for the test's duration only (the switcher then offers it).

Also here: the checks that read a page's visible text (English left, the words of the
catalogue's English) and its layout (overflow, clipped controls), shared by
test_browser_pseudo_locale.py and test_browser_i18n_walks.py."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "app" / "translations"
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None, "N_": None}

# Esperanto: in CLDR (Babel formats its dates and numbers), spoken by none of the clinics.
PSEUDO_LANGUAGE = "eo"
OPEN, CLOSE, PAD = "⟦", "⟧", "·"
GROWTH = 0.35  # French and Spanish run 15-35 % longer than English; the pad takes the upper end

# What a translation must keep as it is: gettext and JS placeholders, %% (a literal % in a
# python-format message), HTML tags and entities.
KEEP = re.compile(r"(%\(\w+\)[sdif]|%%|%[sdif]|\{\w*\}|</?[a-zA-Z][^>]*>|&#?\w+;)")
ACCENTS = str.maketrans(
    "abcdeghiklnorstuyzABCDEGHIKLNORSTUYZ",
    "áƀçđéĝĥíķĺñóŕšţúýžÁƁÇĐÉĜĤÍĶĹÑÓŘŠŢÚÝŽ")


def pseudo(english: str) -> str:
    """The pseudo translation of ``english``: letters accented, placeholders and markup kept,
    padded ~35 % inside brackets (a message with nothing to translate stays as it is)."""
    if not english.strip() or not re.search(r"[A-Za-z]", KEEP.sub("", english)):
        return english
    parts = KEEP.split(english)
    accented = "".join(part if KEEP.fullmatch(part) else part.translate(ACCENTS)
                       for part in parts)
    visible = len(KEEP.sub("", english))
    pad = " " + PAD * max(1, round(visible * GROWTH) - 3)  # the brackets and space count too
    return f"{OPEN}{accented}{pad}{CLOSE}"


def say(message: str, **params: Any) -> str:
    """The text a pseudo page shows for ``message`` with ``params`` (for locators)."""
    translated = pseudo(message)
    return translated % params if params else translated


def _ids(message: Any) -> tuple[str, ...]:
    return tuple(message) if isinstance(message, (tuple, list)) else (message,)


@cache
def english_messages() -> tuple[tuple[str, ...], ...]:
    """Every message id (a plural as (singular, plural)): what `pybabel extract` finds now
    (a text wrapped since the last `pybabel update` too) and what the catalogue holds."""
    found: set[tuple[str, ...]] = set()
    with (ROOT / "babel.cfg").open() as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=KEYWORDS):
        found.add(_ids(message))
    with (TRANSLATIONS / "fr" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        found.update(_ids(m.id) for m in read_po(fh) if m.id)
    return tuple(sorted(found))


def write_pseudo_catalogue(folder: Path) -> Path:
    """Compiles the pseudo catalogue into ``folder``/eo/LC_MESSAGES/messages.mo; returns
    ``folder`` (a translations directory for BABEL_TRANSLATION_DIRECTORIES)."""
    catalogue = Catalog(locale=PSEUDO_LANGUAGE)
    for ids in english_messages():
        if len(ids) == 1:
            catalogue.add(ids[0], pseudo(ids[0]))
        else:
            catalogue.add(ids, tuple(pseudo(ids[min(n, len(ids) - 1)])
                                     for n in range(catalogue.num_plurals)))
    target = folder / PSEUDO_LANGUAGE / "LC_MESSAGES"
    target.mkdir(parents=True, exist_ok=True)
    with (target / "messages.mo").open("wb") as fh:
        write_mo(fh, catalogue)
    return folder


def pseudo_config(folder: Path) -> dict[str, str]:
    """The app configuration that serves the pseudo catalogue beside the real ones."""
    return {"BABEL_TRANSLATION_DIRECTORIES": f"{TRANSLATIONS};{folder}"}


def pseudo_language_offered() -> Iterator[None]:
    """For a fixture: the switcher and settings offer the pseudo language while it runs."""
    from app import i18n

    i18n.LANGUAGES[PSEUDO_LANGUAGE] = pseudo("Pseudo")
    try:
        yield
    finally:
        i18n.LANGUAGES.pop(PSEUDO_LANGUAGE, None)


# ---- what a page shows ------------------------------------------------------------------

# Visible text nodes, each with the element that holds it (a short CSS-like path). Text in
# a part marked lang="en" (the official form's wording, the English beside a certificate's
# words) or translate="no", and code/keyboard samples, are not the page's UI language.
VISIBLE_TEXTS_JS = r"""
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
"""


def visible_texts(page: Any) -> list[dict[str, str]]:
    return list(page.evaluate(VISIBLE_TEXTS_JS))


@cache
def english_vocabulary() -> frozenset[str]:
    """The words (3+ letters, lower case) of the English messages: text on a pseudo page
    that still holds one of them outside brackets reads as English to a user."""
    words: set[str] = set()
    for ids in english_messages():
        for text in ids:
            words.update(w.lower() for w in re.findall(r"[A-Za-z]{3,}", KEEP.sub(" ", text)))
    return frozenset(words)


# Names that are never translated, wherever they show.
PROPER_NAMES = ("CXR Academy", "DS-3030", "RADPEER", "WCAG", "DICOM", "PACS", "Orthanc",
                "WebAuthn", "OpenAPI", "JSON", "CSV", "XLSX", "PDF", "PNG", "JPEG", "QR")
# User data: what a role's pages show of the seeded world (names, titles, codes, e-mails),
# numbers, dates and times, file names and paths.
DATA_PATTERNS = re.compile(
    r"[\w.+-]+@[\w-]+(\.[\w-]+)+"          # e-mail addresses
    r"|https?://\S+|/[\w./{}<>-]*"          # addresses and paths
    r"|\b[\w-]+\.(dcm|zip|csv|xlsx|pdf|png|json)\b"  # file names
    r"|\b[A-Z0-9]+(-[A-Z0-9]+)+\b"         # codes (certificate, case, accession)
    r"|GMT[+-]\d\d:\d\d|UTC")


def english_left(texts: Iterable[dict[str, str]], user_data: Iterable[str]) -> list[str]:
    """The texts of a pseudo page that hold English UI words outside the pseudo brackets,
    once the allowed parts (user data, proper names, data patterns) are taken out."""
    vocabulary = english_vocabulary()
    data = sorted({d for d in user_data if len(d) >= 3}, key=len, reverse=True)
    left: list[str] = []
    for item in texts:
        rest = re.sub(re.escape(OPEN) + r".*?" + re.escape(CLOSE), " ", item["text"])
        for value in data:
            if value in rest:
                rest = rest.replace(value, " ")
        for name in PROPER_NAMES:
            rest = rest.replace(name, " ")
        rest = DATA_PATTERNS.sub(" ", rest)
        words = [w for w in re.findall(r"[A-Za-z]{3,}", rest) if w.lower() in vocabulary]
        if words:
            entry = f"{item['where']}: {item['text'][:120]!r}"
            if entry not in left:
                left.append(entry)
    return left


# ---- layout ------------------------------------------------------------------------------

# Horizontal scroll of the document, controls whose text is cut (overflow hidden/clip with
# more content than room, or text running out of its box), elements past the window's edge.
LAYOUT_PROBLEMS_JS = r"""
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
      const range = document.createRange();
      range.selectNodeContents(el);
      const t = range.getBoundingClientRect();
      if (t.width > 0 && (t.right > r.right + 2 || t.left < r.left - 2) && st.display !== 'inline')
        problems.push(`text overflows its box: ${name(el)} (text ${Math.round(t.width)}px, box ${Math.round(r.width)}px)`);
    }
    const r = el.getBoundingClientRect();
    if ((r.right > width + 1 || r.left < -1) && !inScroller(el))
      problems.push(`past the window's edge: ${name(el)} (${Math.round(r.left)}..${Math.round(r.right)} of ${width})`);
  }
  return [...new Set(problems)];
}
"""


def layout_problems(page: Any) -> list[str]:
    return list(page.evaluate(LAYOUT_PROBLEMS_JS))
