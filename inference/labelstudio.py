"""Label Studio: predictions in its format, for the batch job's ``--format labelstudio`` tasks and for the
service's ML-backend endpoints (``/labelstudio/health``, ``/setup``, ``/predict``; service.py).

A project's labeling config names the controls that predictions fill: the ``<Text>`` tag whose ``value``
("$text") is the task's data field to read, the ``<Labels>`` controls over it (their ``<Label value>``s are
matched to the tagger's labels: the same name, any case, "Organization" for "Organisation", or through a
mapping of configs/labels.yaml, so that the NER template's PER/ORG/LOC work as they are), and the
``<TextArea>``s over it: one named ``headline`` gets the headline, one named as the brief reader of
training/readers.py knows briefs (``brief``, ``abstract``, ``summary``...) or the only other one the brief, a
sentence a line; so that the project's export trains the briefer as it is.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from conflictbrief.training.readers import BRIEF_TARGET_KEYS

log = logging.getLogger("conflictbrief.labelstudio")


class LabelConfigError(ValueError):
    """A labeling config that conflictbrief cannot fill."""


def model_version(models: dict) -> str:
    """The version a prediction carries: the tagger's ref and weights, and a seq2seq briefer's when one is
    loaded. Label Studio asks again for the tasks whose predictions carry another version."""
    tagger = models.get("tagger") or {}
    version = f"conflictbrief {tagger.get('ref', '')} {tagger.get('weights', '')}".strip()
    briefer = models.get("briefer") or {}
    if briefer.get("weights"):
        version += f" briefer {briefer.get('ref', '')} {briefer['weights']}"
    return version


def entity_regions(entities: list[dict], labels: dict[str, tuple[str, str]] | None = None, to_name: str = "text",
                   text: str | None = None) -> list[dict]:
    """Label regions of ``entities`` (results' entity dicts). Offsets into the cleaned text (``start``/``end``),
    or, given ``text``, the input as given, into it (``raw_start``/``raw_end``; the region's text is its slice).
    ``labels``: a tagger label -> (the Labels control's name, the project's label); an entity whose label is
    not in it is left out. Without it, the control ``label`` with the tagger's labels."""
    regions = []
    for e in entities:
        name, label = labels.get(e["label"], (None, None)) if labels is not None else ("label", e["label"])
        if name is None:
            continue
        start, end = (e["raw_start"], e["raw_end"]) if text is not None else (e["start"], e["end"])
        regions.append({"id": f"e{len(regions)}", "from_name": name, "to_name": to_name, "type": "labels",
                        "value": {"start": start, "end": end,
                                  "text": text[start:end] if text is not None else e["text"], "labels": [label]},
                        "score": e.get("score")})
    return regions


def textarea_region(region_id: str, from_name: str, lines: list[str], to_name: str = "text") -> dict:
    return {"id": region_id, "from_name": from_name, "to_name": to_name, "type": "textarea",
            "value": {"text": lines}}


def least_score(regions: list[dict]) -> float:
    """A prediction's score: its least sure entity's (1.0 without one), so that sorting tasks by it puts the
    doubtful ones first."""
    return min((r.get("score") or 0.0 for r in regions if r["type"] == "labels"), default=1.0)


def _norm(label: str) -> str:
    return label.strip().lower().replace("organization", "organisation")


@dataclass
class ProjectConfig:
    """What a labeling config asks of a prediction."""
    text_name: str  # the <Text> tag's name (the regions' to_name)
    text_key: str  # the task data field it shows
    labels: dict[str, tuple[str, str]] = field(default_factory=dict)  # tagger label -> (control, project label)
    brief: str | None = None  # the TextArea for the brief
    headline: str | None = None  # the TextArea for the headline
    unmatched: list[str] = field(default_factory=list)  # project labels no tagger label gives

    @property
    def wants_brief(self) -> bool:
        return self.brief is not None or self.headline is not None

    def prediction(self, result: dict, text: str, version: str) -> dict:
        """One task's prediction from one analysis ``result`` (a result dict) of its ``text``."""
        regions = entity_regions(result.get("entities") or [], self.labels, self.text_name, text)
        if self.brief and result.get("brief"):
            regions.append(textarea_region("brief", self.brief, [s["text"] for s in result["brief"]],
                                           self.text_name))
        if self.headline and result.get("headline"):
            regions.append(textarea_region("headline", self.headline, [result["headline"]], self.text_name))
        return {"result": regions, "score": least_score(regions), "model_version": version}


def read_config(xml: str, tagger_labels: list[str], mappings: dict[str, dict] | None = None) -> ProjectConfig:
    """The ``ProjectConfig`` of a labeling config (XML); LabelConfigError naming the problem when it has no
    plain ``<Text>`` tag, or nothing over it that conflictbrief predicts (no Labels control with a label the
    tagger gives, no TextArea)."""
    import xml.etree.ElementTree as ET

    if "<!doctype" in xml.lower() or "<!entity" in xml.lower():  # a labeling config has no use for entities
        raise LabelConfigError("the labeling config has a <!DOCTYPE> or <!ENTITY> declaration; Label Studio's "
                               "configs have none, and this service does not expand them")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as e:
        raise LabelConfigError(f"the labeling config is not XML ({e})") from None
    tags = list(root.iter())
    texts = [t for t in tags if t.tag.lower() == "text" and t.get("name") and (t.get("value") or "").startswith("$")]
    if not texts:
        other = sorted({t.tag for t in tags if t.tag.lower() in ("hypertext", "paragraphs", "richtext")})
        raise LabelConfigError("the labeling config has no <Text name=... value=\"$field\"/> tag"
                               + (f" (it has <{other[0]}>: conflictbrief pre-annotates plain text)" if other else ""))

    def over(control) -> set[str]:
        return {n.strip() for n in (control.get("toName") or "").split(",")}

    controls = [t for t in tags if t.tag.lower() in ("labels", "textarea") and t.get("name")]
    # the Text that the controls point to (the first Labels' first)
    text = next((t for c in controls for t in texts if t.get("name") in over(c)), texts[0])
    if (text.get("valueType") or "").lower() == "url":
        raise LabelConfigError(f"<Text name=\"{text.get('name')}\"> has valueType=\"url\": conflictbrief reads the "
                               "text itself from the task; import the texts, not links to them")
    config = ProjectConfig(text.get("name"), text.get("value")[1:])
    ours = {_norm(label): label for label in tagger_labels}
    maps = {}
    for mapping in (mappings or {}).values():
        for theirs, label in (mapping or {}).items():
            if label in tagger_labels:
                maps.setdefault(_norm(theirs), label)
    areas = []
    for c in controls:
        if config.text_name not in over(c):
            continue
        if c.tag.lower() == "textarea":
            if (c.get("perRegion") or "").lower() != "true":  # a per-region TextArea comments a region
                areas.append(c.get("name"))
            continue
        for item in c:
            value = item.get("value")
            if item.tag.lower() != "label" or not value:
                continue
            label = ours.get(_norm(value)) or maps.get(_norm(value))
            if label is None:
                config.unmatched.append(value)
            else:
                config.labels.setdefault(label, (c.get("name"), value))
    # named as the brief reader reads an export (readers._Export._answer), so that the export trains as it is
    config.headline = "headline" if "headline" in areas else None
    rest = [a for a in areas if a != "headline"]
    config.brief = next((k for k in BRIEF_TARGET_KEYS if k in rest), rest[0] if len(rest) == 1 else None)
    if config.brief is None and rest:
        log.warning("the labeling config has TextAreas %s and none named as the brief (%s): the brief goes into "
                    "none of them", ", ".join(rest), ", ".join(BRIEF_TARGET_KEYS))
    if not config.labels and not config.wants_brief:
        raise LabelConfigError(
            f"nothing in the labeling config for conflictbrief to predict over <Text name=\"{config.text_name}\">: "
            "no Labels control with a label the tagger gives (" + ", ".join(tagger_labels)
            + (", or PER/ORG/LOC" if maps else "") + ") and no TextArea for the brief (one TextArea, or one named "
            + " or ".join(BRIEF_TARGET_KEYS[:3]) + ")")
    return config


def labelstudio_config(labels: list[str], brief: bool) -> str:
    """A labeling config for the batch job's tasks (``entity_regions`` without ``labels``, and a TextArea
    ``brief``)."""
    from xml.sax.saxutils import quoteattr

    lines = ["<View>", '  <Labels name="label" toName="text">',
             *[f"    <Label value={quoteattr(label)}/>" for label in labels], "  </Labels>",
             '  <Text name="text" value="$text"/>']
    if brief:
        lines += ['  <Header value="Brief: a sentence a line; every number, name and place must be in the text"/>',
                  '  <TextArea name="brief" toName="text" rows="5" editable="true"/>']
    return "\n".join(lines + ["</View>", ""])
