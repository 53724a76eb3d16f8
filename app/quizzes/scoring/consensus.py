"""Consensus lesions: the outlines several experts drew of one lesion are one lesion.

**Overlap rule.** Two outlines are of the same lesion when

* they are on the same image,
* their findings are the same or declared compatible by the scheme, and
* the centre of either lies inside the other (``geometry.region_centre`` /
  ``geometry.in_region``). A point outline is the ellipse of its point tolerance (10 mm,
  ``Lesion.point_radius``), so two points are one lesion when they are within the
  tolerance of each other, and a point and a region when the point is in the region or the
  region's centre is within the tolerance of the point.

Centre containment rather than an IoU threshold: two experts outlining one opacity draw
regions of different size and shape (a tight ellipse and a generous polygon), whose IoU can
be low although each contains the other's centre; two neighbouring lesions rarely contain
each other's centre. Lesions are the connected groups of the relation, so three experts'
outlines that overlap in a chain are one lesion, whatever the order they were stored in.

A merged lesion is credited once; a mark inside any of its outlines with the finding of any
of them (or a compatible one) localises it (localisation.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from app.quizzes.scoring.geometry import in_region, region_centre
from app.quizzes.scoring.inputs import Lesion
from app.quizzes.scoring.localisation import Compatible, findings_match


def outlines_overlap(a: Lesion, b: Lesion, compatible: Compatible | None) -> bool:
    """Are ``a`` and ``b`` (one or more outlines each) the same lesion by the overlap rule?"""
    if a.image_id != b.image_id:
        return False
    for one in a.outlines:
        for other in b.outlines:
            if not findings_match(one.finding, other.finding, compatible):
                continue
            if in_region(other.shape, other.geometry, *region_centre(one.shape, one.geometry),
                         b.point_radius):
                return True
            if in_region(one.shape, one.geometry, *region_centre(other.shape, other.geometry),
                         a.point_radius):
                return True
    return False


def consensus_lesions(
    outlines: Sequence[Lesion], compatible: Compatible | None
) -> tuple[Lesion, ...]:
    """Merge the reference outlines of one case into lesions by the overlap rule.

    Each merged lesion keeps the id, finding and region of its first outline (in the order
    given) and the others as ``members``; lesions come in the order of their first outline.
    A weight, when outlines carry one, is the largest of the group's."""
    n = len(outlines)
    if n < 2:
        return tuple(outlines)
    # Connected groups by union-find, by hand rather than scipy's connected_components: a
    # case has a handful of outlines, and building scipy's sparse graph cost ~0.4 ms per
    # case, most of the scoring of a 200-case attempt (the groups are the same).
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    linked = False
    for i in range(n):
        for j in range(i + 1, n):
            if outlines_overlap(outlines[i], outlines[j], compatible):
                linked = True
                a, b = root(i), root(j)
                parent[max(a, b)] = min(a, b)
    if not linked:
        return tuple(outlines)
    groups: dict[int, list[int]] = {}
    for index in range(n):
        groups.setdefault(root(index), []).append(index)
    return tuple(_merge([outlines[i] for i in members])
                 for members in sorted(groups.values(), key=min))


def _merge(group: list[Lesion]) -> Lesion:
    first, *rest = group
    if not rest:
        return first
    weights = [lesion.weight for lesion in group if lesion.weight is not None]
    return Lesion(
        id=first.id,
        image_id=first.image_id,
        finding=first.finding,
        shape=first.shape,
        geometry=first.geometry,
        weight=max(weights) if weights else None,
        point_radius=first.point_radius,
        members=(*first.members, *(o for lesion in rest for o in lesion.outlines)),
    )
