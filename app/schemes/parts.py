"""The parts of a reporting scheme as parsed from its JSON (definitions.py parses and
validates them; errors.py says why one is refused). Pure module: no Flask or database
imports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.schemes.translations import Translatable


# Texts in other languages are not part of what a scheme part is (compare=False): answers
# and scores are keyed by values, never by labels.
@dataclass(frozen=True)
class Option(Translatable):
    value: str
    label: str
    group: str | None = None
    tb_positive: bool = False
    help: str = ""
    translations: dict[str, dict[str, Any]] = field(
        default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Group(Translatable):
    key: str
    label: str
    translations: dict[str, dict[str, Any]] = field(
        default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Item(Translatable):
    key: str
    type: str
    label: str
    required: bool = False
    options: tuple[Option, ...] = ()
    groups: tuple[Group, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    max_length: int = 500
    ordinal: bool = False
    anchors: dict[str, str] = field(default_factory=dict)
    help: str = ""
    translations: dict[str, dict[str, Any]] = field(
        default_factory=dict, compare=False, repr=False)

    def option_values(self) -> list[str]:
        return [o.value for o in self.options]

    def anchor_in(self, value: str, language: str | None) -> str:
        """A scale anchor's text in ``language`` (English where none is given)."""
        translated = self.translations.get(language or "", {}).get("anchors", {}).get(value)
        return str(translated or self.anchors.get(value, ""))


@dataclass(frozen=True)
class Scheme(Translatable):
    key: str
    version: int
    name: str
    audience: str
    items: tuple[Item, ...]
    tb_decision: dict[str, Any] | None
    rating: str | None
    mark_labels: tuple[Option, ...] | None
    definition: dict[str, Any]
    # Mark findings that may stand for one another when a mark is credited to a reference
    # lesion (and when experts' outlines merge into one lesion), read both ways.
    compatible_findings: dict[str, frozenset[str]] = field(default_factory=dict)
    help: str = ""
    # "en" when the English labels are an official form's wording (kept beside translations).
    official_language: str | None = None
    translations: dict[str, dict[str, Any]] = field(
        default_factory=dict, compare=False, repr=False)

    def name_in(self, language: str | None) -> str:
        return self.text_in("name", language)

    def item(self, key: str) -> Item:
        for item in self.items:
            if item.key == key:
                return item
        raise KeyError(key)

    @property
    def ref(self) -> str:
        return f"{self.key}@{self.version}"
