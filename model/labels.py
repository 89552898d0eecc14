"""The entity label schema: which labels exist, their BIO tags, and how other schemas map onto them."""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

OUTSIDE = "O"

# What a label of a tagger trained on another schema stands for, read from its name: CoNLL's PER/LOC/ORG,
# OntoNotes' GPE/NORP/DATE/CARDINAL, and this schema's own names. Recasing capitalises the names of the first
# four kinds; the guards leave the last three to the number check. A label none of these names (re3d's Weapon,
# a user's "Actor") has no role: it is checked as a name and never recased.
ROLES = {
    "Person": {"person", "per", "persons"},
    "Location": {"location", "loc", "gpe", "geo", "place", "fac", "facility"},
    "Nationality": {"nationality", "norp", "nat"},
    "Organisation": {"organisation", "organization", "org"},
    "Temporal": {"temporal", "date", "time", "tim"},
    "Quantity": {"quantity", "cardinal", "percent", "ordinal", "qty", "number"},
    "Money": {"money"},
}


def label_role(label: str) -> str | None:
    """The role of ``label`` among ``ROLES`` by its name, case and punctuation aside ("GPE" -> "Location")."""
    key = "".join(c for c in label.lower() if c.isalpha())
    return next((role for role, names in ROLES.items() if key in names), None)


class SchemaError(ValueError):
    """A label schema or mapping that cannot be used."""


@dataclass(frozen=True)
class LabelSchema:
    """Entity labels (e.g. ``Location``) and the BIO tags built from them.

    ``mappings`` turn another schema's labels into ours: ``{"conll": {"PER": "Person", "MISC": None}}``.
    A label mapped to ``None`` is one we do not learn from that dataset (see ``allowed_tags``).
    """

    labels: tuple[str, ...]
    descriptions: dict[str, str] = field(default_factory=dict, compare=False)
    mappings: dict[str, dict[str, str | None]] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if not self.labels:
            raise SchemaError("a label schema needs at least one label")
        if len(set(self.labels)) != len(self.labels):
            raise SchemaError(f"duplicate labels in schema: {list(self.labels)}")
        for name, mapping in self.mappings.items():
            for src, dst in mapping.items():
                if dst is not None and dst not in self.labels:
                    raise SchemaError(
                        f"mapping {name!r} sends {src!r} to {dst!r}, which is not a label of the schema "
                        f"{list(self.labels)}"
                    )

    @property
    def tags(self) -> list[str]:
        """BIO tags in id order: O first, then B-/I- per label."""
        return [OUTSIDE] + [f"{p}-{label}" for label in self.labels for p in ("B", "I")]

    @property
    def tag2id(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tags)}

    def map_label(self, label: str, mapping: str | None) -> str | None:
        """Our label for a dataset label, None for an unannotated one; raises for an unknown one."""
        if mapping is None:
            if label not in self.labels:
                hint = [m for m, table in self.mappings.items() if label in table]
                raise SchemaError(f"unknown label {label!r}; the schema has {list(self.labels)}"
                                  + (f" (mapping {hint[0]!r} maps it: --mapping {hint[0]}, or 'mapping: "
                                     f"{hint[0]}' on the data file)" if hint else ""))
            return label
        table = self.mappings.get(mapping)
        if table is None:
            raise SchemaError(f"unknown mapping {mapping!r}; configured mappings: {sorted(self.mappings)}")
        if label not in table:
            raise SchemaError(f"label {label!r} is not in mapping {mapping!r} ({sorted(table)})")
        return table[label]

    def annotated_labels(self, mapping: str | None) -> set[str]:
        """Labels that a dataset read through ``mapping`` annotates (all of ours when unmapped)."""
        if mapping is None:
            return set(self.labels)
        return {dst for dst in self.mappings[mapping].values() if dst is not None}

    def allowed_tags(self, tag: str | None, mapping: str | None) -> list[int]:
        """Tag ids a token may truly have, given its (already mapped) gold tag.

        ``tag`` is a BIO tag of our schema, or None for a token whose source label maps to None.
        A fully annotated dataset allows exactly its gold tag. A partially annotated one (CoNLL has no
        Weapon or Temporal) allows, for an O token, O or any tag of a label it does not annotate: the
        loss then marginalises over those instead of teaching that "missiles" is O.
        """
        ids = self.tag2id
        if tag is not None and tag != OUTSIDE:
            return [ids[tag]]
        missing = [label for label in self.labels if label not in self.annotated_labels(mapping)]
        return [ids[OUTSIDE]] + [ids[f"{p}-{label}"] for label in missing for p in ("B", "I")]

    @classmethod
    def from_yaml(cls, path: str | Path | None = None) -> "LabelSchema":
        """Load a schema file; the packaged ``configs/labels.yaml`` when no path is given."""
        if path is None:
            text = resources.files("conflictbrief.configs").joinpath("labels.yaml").read_text("utf-8")
            where = "conflictbrief/configs/labels.yaml"
        else:
            from conflictbrief.inference.clean import TextFileError, read_utf8

            try:
                text, where = read_utf8(path), str(path)
            except TextFileError as e:  # no such file; not UTF-8 (line and column)
                raise SchemaError(f"label schema {e}") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise SchemaError(f"{where}: not valid YAML: {e}") from None
        labels = data.get("labels")
        if not isinstance(labels, dict) or not labels:
            raise SchemaError(f"{where}: 'labels' must be a mapping of label name to a one-line definition")
        mappings = data.get("mappings") or {}
        if not isinstance(mappings, dict) or not all(isinstance(m, dict) for m in mappings.values()):
            raise SchemaError(f"{where}: 'mappings' must map a mapping name to {{source label: label or null}}")
        return cls(tuple(labels), {k: str(v) for k, v in labels.items()}, mappings)

    @classmethod
    def from_tags(cls, tags: list[str]) -> "LabelSchema":
        """Rebuild the schema from a trained model's id2label (O, B-x, I-x, ...)."""
        labels: list[str] = []
        for tag in tags:
            if tag != OUTSIDE and tag[2:] not in labels:
                labels.append(tag[2:])
        return cls(tuple(labels))


def split_tag(tag: str) -> tuple[str, str | None]:
    """'B-Location' -> ('B', 'Location'); 'O' -> ('O', None). Raises on anything else."""
    if tag == OUTSIDE:
        return OUTSIDE, None
    if len(tag) > 2 and tag[0] in "BIES" and tag[1] in "-_":
        return tag[0], tag[2:]
    raise SchemaError(f"not a BIO tag: {tag!r} (expected O, B-<label> or I-<label>)")
