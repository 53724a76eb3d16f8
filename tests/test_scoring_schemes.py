"""Schemes declare which mark findings are compatible (one may stand for the other when a
mark is credited to a lesion); parse_scheme checks the declaration."""

from __future__ import annotations

import copy
import json
from importlib import resources

import pytest

from app.schemes.definitions import parse_scheme
from app.schemes.errors import SchemeError
from app.schemes.registry import builtin_schemes


def tb_screening() -> dict:
    path = resources.files("app.schemes") / "builtin" / "tb_screening.json"
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_builtin_schemes_declare_what_a_radiologist_accepts() -> None:
    schemes = builtin_schemes()
    tb = schemes["tb_screening"].compatible_findings
    # "TB-related lesion, type not specified" stands for any TB-suggestive finding...
    assert tb["tb_lesion"] >= {"infiltrate", "cavitary_lesion", "nodule", "pleural_effusion",
                               "hilar_adenopathy", "miliary", "fibrosis"}
    # ...but not for a calcified (healed) nodule or "other".
    assert not tb["tb_lesion"] & {"calcified_nodule", "other"}
    ds = schemes["ds3030"].compatible_findings
    assert "discrete_nodule" in ds["nodule"]
    assert {"calcified_nodule", "calcified_node"} <= ds["calcified_node_and_nodule"]
    # The distinctions that change the sputum decision are never compatible.
    for finding, others in ds.items():
        assert not ({finding} | others) >= {"pleural_reaction", "smooth_pleural_thickening"}
        assert not ({finding} | others) >= {"nodule", "calcified_nodule"}
    assert schemes["image_quality"].compatible_findings == {}


@pytest.mark.parametrize(
    ("compatible", "message"),
    [
        (["tb_lesion"], "'compatible_findings' must be an object"),
        ({"tb_lesion": "infiltrate"}, "must list findings"),
        ({"tb_lesion": []}, "must list findings"),
        ({"tuberculoma": ["nodule"]}, "'tuberculoma' is not a mark finding of this scheme"),
        ({"tb_lesion": ["nodule", "granuloma"]},
         "'granuloma' is not a mark finding of this scheme"),
        ({"tb_lesion": ["tb_lesion"]}, "'tb_lesion' is compatible with itself already"),
    ],
)
def test_bad_compatibility_declarations_are_refused(compatible, message: str) -> None:
    data = tb_screening()
    data["compatible_findings"] = compatible
    with pytest.raises(SchemeError, match=message):
        parse_scheme(data)


def test_a_scheme_without_marks_cannot_declare_compatible_findings() -> None:
    data = copy.deepcopy(tb_screening())
    data["mark_labels"] = None
    data["compatible_findings"] = {"tb_lesion": ["nodule"]}
    with pytest.raises(SchemeError, match="takes no lesion marks"):
        parse_scheme(data)


def test_a_declaration_is_read_both_ways() -> None:
    data = tb_screening()
    data["compatible_findings"] = {"tb_lesion": ["nodule", "miliary"]}
    scheme = parse_scheme(data)
    assert scheme.compatible_findings == {
        "tb_lesion": frozenset({"nodule", "miliary"}),
        "nodule": frozenset({"tb_lesion"}),
        "miliary": frozenset({"tb_lesion"}),
    }
