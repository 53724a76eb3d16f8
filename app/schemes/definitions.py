"""Reporting schemes as data: a scheme's JSON definition parsed and validated into the read
form (its items, options and groups, the TB decision it implies, its texts in the portal's
languages). Built-in schemes are JSON files in ``builtin/``; trainers add more as database
rows with the same JSON. What readers give in a scheme is checked in answers.py. Pure module.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, TypeGuard

from app.schemes.errors import N_, Phrase, SchemeError, phrase
from app.schemes.parts import Group, Item, Option, Scheme
from app.schemes.translations import (
    GROUP_FIELDS,
    ITEM_FIELDS,
    OPTION_FIELDS,
    SCHEME_FIELDS,
    parse_help,
    parse_official_language,
    parse_translations,
)

ITEM_TYPES = ("choice", "multi", "scale", "text", "criterion")
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# Definition bounds: the built-in schemes have under 20 items of under 40 options.
MAX_SCHEME_VERSION = 1_000_000
MAX_ITEMS = 200
MAX_OPTIONS = 500
MAX_LABEL = 500
MAX_TEXT = 10_000  # the longest free-text answer an item may ask for
MAX_SCALE = 1_000_000


# ---- definitions ------------------------------------------------------------------------


def parse_scheme(data: Any) -> Scheme:
    """Validate a scheme definition (parsed JSON) and build the Scheme."""
    if not isinstance(data, dict):
        raise SchemeError(N_("a scheme is a JSON object"))
    key = data.get("key")
    if not isinstance(key, str) or not _KEY.match(key):
        raise SchemeError(N_("the scheme needs a 'key' of lower-case letters, digits and '_'"))
    version = data.get("version", 1)
    if not _is_int(version) or not 1 <= version <= MAX_SCHEME_VERSION:
        raise SchemeError(N_("'version' must be a whole number from 1 to %(maximum)s"),
                          maximum=MAX_SCHEME_VERSION)
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_LABEL:
        raise SchemeError(N_("the scheme needs a 'name' of at most %(count)s characters"),
                          count=MAX_LABEL)
    raw_items = data.get("items")
    if not isinstance(raw_items, list) or not 1 <= len(raw_items) <= MAX_ITEMS:
        raise SchemeError(N_("the scheme needs a non-empty list of 'items' (at most "
                             "%(count)s)"), count=MAX_ITEMS)
    for field_name in ("audience", "rating", "mark_labels"):
        if data.get(field_name) is not None and not isinstance(data[field_name], str):
            raise SchemeError(N_("%(field)s must be text"), field=repr(field_name))
    items = tuple(_parse_item(raw, n) for n, raw in enumerate(raw_items, 1))
    keys = [i.key for i in items]
    if len(set(keys)) != len(keys):
        raise SchemeError(N_("item keys must be unique"))
    where = phrase(N_("the scheme"))
    help_text = parse_help(data.get("help"), where)
    official = parse_official_language(data.get("official_language"))
    translations = parse_translations(data.get("translations"), where, SCHEME_FIELDS)
    scheme = Scheme(
        key=key,
        version=version,
        name=name.strip(),
        audience=str(data.get("audience", "radiologist")),
        items=items,
        tb_decision=data.get("tb_decision"),
        rating=data.get("rating"),
        mark_labels=None,
        definition=data,
        help=help_text,
        official_language=official,
        translations=translations,
    )
    _check_references(scheme)
    labels = data.get("mark_labels")
    if labels is not None:
        if labels not in keys or scheme.item(labels).type not in ("multi", "choice"):
            raise SchemeError(N_("'mark_labels' must name a choice or multi item"))
        scheme = replace(scheme, mark_labels=scheme.item(labels).options)
    if data.get("compatible_findings") is not None:
        scheme = replace(
            scheme, compatible_findings=_parse_compatible(data["compatible_findings"], scheme)
        )
    return scheme


def _parse_compatible(raw: Any, scheme: Scheme) -> dict[str, frozenset[str]]:
    """``{"finding": ["other finding", ...]}``: each name a mark finding of the scheme. The
    relation is symmetric: declaring a ~ b also makes b ~ a."""
    if scheme.mark_labels is None:
        raise SchemeError(N_("this scheme takes no lesion marks: it has no "
                             "'compatible_findings'"))
    if not isinstance(raw, dict):
        raise SchemeError(N_("'compatible_findings' must be an object of finding: [findings]"))
    labels = {o.value for o in scheme.mark_labels}
    pairs: dict[str, set[str]] = {}
    for finding, others in raw.items():
        if not isinstance(others, list) or not others or not all(
            isinstance(o, str) for o in others
        ):
            raise SchemeError(N_("'compatible_findings': %(finding)s must list findings"),
                              finding=repr(finding))
        for name in (finding, *others):
            if name not in labels:
                raise SchemeError(N_("'compatible_findings': %(finding)s is not a mark finding "
                                     "of this scheme"), finding=repr(name))
        for other in others:
            if other == finding:
                raise SchemeError(N_("'compatible_findings': %(finding)s is compatible with "
                                     "itself already"), finding=repr(finding))
            pairs.setdefault(finding, set()).add(other)
            pairs.setdefault(other, set()).add(finding)
    return {finding: frozenset(others) for finding, others in pairs.items()}


def _parse_item(raw: Any, n: int) -> Item:
    if not isinstance(raw, dict):
        raise SchemeError(N_("item %(number)s is not an object"), number=n)
    key, kind = raw.get("key"), raw.get("type")
    if not isinstance(key, str) or not _KEY.match(key):
        raise SchemeError(N_("item %(number)s needs a 'key' of lower-case letters, digits and "
                             "'_'"), number=n)
    where = _item(key)
    if kind not in ITEM_TYPES:
        raise SchemeError(N_("%(where)s: 'type' must be one of %(types)s"), where=where,
                          types=", ".join(ITEM_TYPES))
    label = raw.get("label")
    if not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL:
        raise SchemeError(N_("%(where)s needs a 'label' of at most %(count)s characters"),
                          where=where, count=MAX_LABEL)
    options: tuple[Option, ...] = ()
    groups = _parse_groups(raw.get("groups", []), key)
    if kind in ("choice", "multi"):
        raw_options = raw.get("options")
        if not isinstance(raw_options, list) or not 1 <= len(raw_options) <= MAX_OPTIONS:
            raise SchemeError(N_("%(where)s needs a list of 1 to %(count)s 'options'"),
                              where=where, count=MAX_OPTIONS)
        options = tuple(_parse_option(o, key) for o in raw_options)
        values = [o.value for o in options]
        if len(set(values)) != len(values):
            raise SchemeError(N_("%(where)s: option values must be unique"), where=where)
        known = {g.key for g in groups}
        if any(o.group and o.group not in known for o in options):
            raise SchemeError(N_("%(where)s: an option names an undeclared group"), where=where)
    minimum = maximum = None
    if kind == "scale":
        low, high = raw.get("min"), raw.get("max")
        if not (_is_int(low) and _is_int(high) and -MAX_SCALE <= low < high <= MAX_SCALE):
            raise SchemeError(N_("%(where)s: a scale needs whole numbers min < max, within "
                                 "±%(limit)s"), where=where, limit=MAX_SCALE)
        minimum, maximum = low, high
    max_length = raw.get("max_length", 500)
    if not _is_int(max_length) or not 1 <= max_length <= MAX_TEXT:
        raise SchemeError(N_("%(where)s: 'max_length' must be a whole number from 1 to "
                             "%(maximum)s"), where=where, maximum=MAX_TEXT)
    anchors = raw.get("anchors") or {}
    if not isinstance(anchors, dict) or not all(isinstance(v, str) for v in anchors.values()):
        raise SchemeError(N_("%(where)s: 'anchors' must be an object of value: text"),
                          where=where)
    help_text = parse_help(raw.get("help"), where)
    translations = parse_translations(raw.get("translations"), where, ITEM_FIELDS,
                                      anchors=[str(k) for k in anchors])
    return Item(
        key=key,
        type=kind,
        label=label.strip(),
        required=bool(raw.get("required", False)),
        options=options,
        groups=groups,
        minimum=minimum,
        maximum=maximum,
        max_length=max_length,
        ordinal=bool(raw.get("ordinal", False)),
        anchors={str(k): v for k, v in anchors.items()},
        help=help_text,
        translations=translations,
    )


def _item(key: str) -> Phrase:
    return phrase(N_("item %(item)s"), item=repr(key))


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_groups(raw: Any, item_key: str) -> tuple[Group, ...]:
    if not isinstance(raw, list) or not all(
        isinstance(g, dict) and isinstance(g.get("key"), str) and isinstance(g.get("label"), str)
        for g in raw
    ):
        raise SchemeError(N_("%(where)s: 'groups' must be a list of {key, label}"),
                          where=_item(item_key))
    if any(len(g["label"]) > MAX_LABEL for g in raw):
        raise SchemeError(N_("%(where)s: a group's 'label' has at most %(count)s characters"),
                          where=_item(item_key), count=MAX_LABEL)
    return tuple(
        Group(g["key"], g["label"], parse_translations(
            g.get("translations"),
            phrase(N_("item %(item)s, group %(group)s"), item=repr(item_key),
                   group=repr(g["key"][:40])),
            GROUP_FIELDS))
        for g in raw)


def _parse_option(raw: Any, item_key: str) -> Option:
    if not isinstance(raw, dict) or not isinstance(raw.get("value"), str) or not raw["value"]:
        raise SchemeError(N_("%(where)s: every option needs a 'value'"),
                          where=_item(item_key))
    if not all(raw.get(name) is None or isinstance(raw[name], str) for name in ("label", "group")):
        raise SchemeError(N_("%(where)s: an option's 'label' and 'group' are text"),
                          where=_item(item_key))
    where = phrase(N_("item %(item)s, option %(option)s"), item=repr(item_key),
                   option=repr(raw["value"][:40]))
    help_text = parse_help(raw.get("help"), where)
    translations = parse_translations(raw.get("translations"), where, OPTION_FIELDS)
    return Option(
        value=raw["value"],
        label=str(raw.get("label") or raw["value"]),
        group=raw.get("group"),
        tb_positive=bool(raw.get("tb_positive", False)),
        help=help_text,
        translations=translations,
    )


def _check_references(scheme: Scheme) -> None:
    keys = {i.key for i in scheme.items}
    decision = scheme.tb_decision
    if decision is not None:
        if (not isinstance(decision, dict) or not isinstance(decision.get("item"), str)
                or decision["item"] not in keys):
            raise SchemeError(N_("'tb_decision' must name an item"))
        item = scheme.item(decision["item"])
        if "positive_group" in decision and decision["positive_group"] not in [
            g.key for g in item.groups
        ]:
            raise SchemeError(N_("'tb_decision.positive_group' is not a group of its item"))
        values = decision.get("positive_values", [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise SchemeError(N_("'tb_decision.positive_values' must be a list of option values"))
        if not set(values) <= set(item.option_values()):
            raise SchemeError(N_("'tb_decision.positive_values' are not options of its item"))
    if scheme.rating is not None and (
        scheme.rating not in keys or scheme.item(scheme.rating).type != "scale"
    ):
        raise SchemeError(N_("'rating' must name a scale item"))
