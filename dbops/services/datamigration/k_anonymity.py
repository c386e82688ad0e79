"""k-anonymity of an export: for each entity that declares quasi-identifiers (fields that together could
single someone out: a birth month, a postcode, a job), the size of the smallest group of exported
records sharing the same values of all of them, after the masking rules. An export asked for k refuses,
writing nothing, when any group is smaller."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from dbops.exceptions import DataMigrationError, KAnonymityTooLow
from dbops.services.datamigration.entities import Entity


@dataclass
class KAnonymityReport:
    k: int
    quasi_identifiers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    groups: dict[str, Counter] = field(default_factory=dict)

    def add(self, entity: str, record: dict) -> None:
        names = self.quasi_identifiers.get(entity)
        if names:
            self.groups[entity][tuple(repr(record.get(name)) for name in names)] += 1

    def smallest(self) -> dict[str, int]:
        """The smallest group size of each entity (0 when it exported no record)."""
        return {entity: min(groups.values(), default=0) for entity, groups in self.groups.items()}

    def check(self) -> None:
        below = {entity: size for entity, size in self.smallest().items() if 0 < size < self.k}
        if below:
            described = "; ".join(
                f"{entity}: a group of {size} on {', '.join(self.quasi_identifiers[entity])}"
                for entity, size in below.items()
            )
            raise KAnonymityTooLow(
                f"The export is not {self.k}-anonymous ({described}), so nothing was written. Generalize the "
                "quasi-identifiers further (generalize:month, generalize:year, generalize:range:N).",
                parameter="k_anonymity",
            )


def k_anonymity_report(*, k: int, selected: list[Entity]) -> KAnonymityReport:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise DataMigrationError(f"k must be a whole number of 1 or more, got {k!r}.", parameter="k_anonymity")
    declared = {entity.name: entity.quasi_identifiers for entity in selected if entity.quasi_identifiers}
    if not declared:
        raise DataMigrationError(
            "None of the exported entities declares quasi-identifiers ('quasi_identifiers' in DBOPS['ENTITIES']), "
            "so there is nothing to measure k-anonymity on.",
            parameter="k_anonymity",
        )
    return KAnonymityReport(k=k, quasi_identifiers=declared, groups={name: Counter() for name in declared})
