"""The resumable training loop that the briefer and `train mlm` share, and its checkpoints.

Checkpoints hold weights, optimizer state and torch's random-number state (dropout) as safetensors (no
pickle); the data order of an epoch is a function of the seed, so ``--resume`` continues with the very batch
where a run stopped and, on the same machine, ends with the weights an uninterrupted run ends with.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file

from conflictbrief.training.config import ConfigError

# Config keys that say only how a run is watched, stopped or written: free to change between --resume runs.
RUN_KEYS = frozenset({"output_dir", "time_limit_minutes", "log_every", "save_every", "threads"})
# Keys that change only the evaluations (which step's model is kept), not the weights the steps reach.
EVAL_KEYS = frozenset({"eval", "eval_every", "eval_limit", "eval_batch_size", "select_metric", "average_epochs",
                       "num_beams", "max_new_tokens", "no_repeat_ngram_size", "length_penalty"})
# Keys that make a checkpoint another model's (other weights, other shapes): --resume refuses a change.
MODEL_KEYS = frozenset({"base_model", "tiny_model", "labels", "warm_start", "tie_encoder_decoder", "case_feature",
                        "freeze_word_embeddings"})


def optimizer_step(params, optimizer, scheduler):
    """Clip, step, schedule, reset: the same update for every trainer."""
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()


class LossScaling:
    """float16 mixed precision's loss scaling (``torch.amp.GradScaler``): without it the small gradients of a
    float16 forward pass flush to zero. The loss is scaled up before the backward pass, the gradients are
    unscaled before clipping, a step whose gradients overflowed (inf/NaN) is skipped, and then the learning-
    rate schedule does not advance either (as accelerate does). Inactive for bf16 and float32: a plain
    backward pass and ``optimizer_step``."""

    def __init__(self, mixed_precision: str, device: torch.device):
        self.scaler = torch.amp.GradScaler(device.type) if mixed_precision == "fp16" else None

    def backward(self, loss: torch.Tensor, backward: Callable[[torch.Tensor], None] | None = None) -> None:
        scaled = self.scaler.scale(loss) if self.scaler else loss
        scaled.backward() if backward is None else backward(scaled)

    def update(self, params, optimizer, scheduler) -> None:
        if self.scaler is None:
            optimizer_step(params, optimizer, scheduler)
            return
        self.scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        before = self.scaler.get_scale()
        self.scaler.step(optimizer)
        self.scaler.update()
        if self.scaler.get_scale() >= before:  # the scale backs off only when this step was skipped
            scheduler.step()
        optimizer.zero_grad()

    def state(self) -> dict | None:
        return self.scaler.state_dict() if self.scaler else None

    def load(self, state: dict | None) -> None:
        if self.scaler and state:
            self.scaler.load_state_dict(state)


def epoch_end_steps(total: int, steps_per_epoch: int, n: int) -> list[int]:
    """The steps at which the last ``n`` epochs of a run of ``total`` steps end (a last part-epoch counts)."""
    return sorted({*range(steps_per_epoch, total, steps_per_epoch), total})[-n:] if n > 0 else []


class WeightAverage:
    """The mean of a model's trainable weights at the given steps (the ends of the last epochs: weight
    averaging). Each step's weights go to ``folder/step-N.safetensors`` as the run passes it, so that a run
    stopped and resumed averages the same weights as one that was not."""

    def __init__(self, folder: Path, steps: list[int]):
        self.folder, self.steps = Path(folder), list(steps)

    def path(self, step: int) -> Path:
        return self.folder / f"step-{step}.safetensors"

    def snapshot(self, model, step: int) -> None:
        if step not in self.steps:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        tensors = {n: p.detach().float().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}
        save_file(tensors, str(self.path(step).with_suffix(".tmp")))
        self.path(step).with_suffix(".tmp").replace(self.path(step))

    def missing(self) -> list[int]:
        return [s for s in self.steps if not self.path(s).is_file()]

    def load_into(self, model) -> None:
        """Set the model's trainable weights to the mean of the snapshots (all of them must be there)."""
        total: dict[str, torch.Tensor] = {}
        for step in self.steps:
            for name, tensor in load_file(str(self.path(step))).items():
                total[name] = total[name] + tensor if name in total else tensor
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, tensor in total.items():
                params[name].copy_((tensor / len(self.steps)).to(params[name].dtype))

    def clear(self) -> None:
        for step in self.steps:
            self.path(step).unlink(missing_ok=True)
        if self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()


def save_checkpoint(path: Path, model, optimizer, scheduler, step: int, best: dict | None, best_score: float,
                    seconds: float = 0.0, config=None, config_changes: list[str] | tuple = (),
                    scaling: LossScaling | None = None):
    """Weights, optimiser state and random state to ``state.safetensors``; step, scheduler, best score, the
    config of the run that wrote it, the config changes of earlier ``--resume`` runs and fp16's loss scale
    to ``state.json``."""
    path.mkdir(parents=True, exist_ok=True)
    # Cloned: tied weights share storage, which safetensors refuses to write twice.
    tensors = {f"model.{k}": v.detach().cpu().clone() for k, v in model.state_dict().items()}
    names = {id(p): n for n, p in model.named_parameters()}
    groups = []
    for g in optimizer.param_groups:
        groups.append({k: v for k, v in g.items() if k != "params"} | {"params": [names[id(p)] for p in g["params"]]})
        for p in g["params"]:
            for key, value in optimizer.state.get(p, {}).items():
                tensors[f"optim.{names[id(p)]}.{key}"] = torch.as_tensor(value).detach().cpu().clone()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    save_file(tensors, str(path / "state.safetensors"))
    meta = {"step": step, "scheduler": scheduler.state_dict(), "param_groups": groups, "best": best,
            "best_score": best_score, "train_seconds": round(seconds, 1),
            "config": dataclasses.asdict(config) if config is not None else None,
            "config_changes": list(config_changes), "loss_scaling": scaling.state() if scaling else None}
    (path / "state.json").write_text(json.dumps(meta))


def load_checkpoint(path: Path, model, optimizer, scheduler,
                    scaling: LossScaling | None = None) -> tuple[int, dict | None, float, float]:
    """(step, best metrics, best score, training seconds of all runs so far)."""
    tensors = load_file(str(path / "state.safetensors"))
    meta = json.loads((path / "state.json").read_text())
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(model_state, strict=False)
    params = dict(model.named_parameters())
    for group, saved in zip(optimizer.param_groups, meta["param_groups"]):
        for k, v in saved.items():
            if k != "params":
                group[k] = v
        for name in saved["params"]:
            # On the parameter's device (a GPU run's checkpoint is read to the CPU); AdamW's "step" stays on
            # the CPU, as torch keeps it.
            state = {key.rsplit(".", 1)[1]: t if key.endswith(".step") else t.to(params[name].device)
                     for key, t in tensors.items()
                     if key.startswith(f"optim.{name}.") and key.count(".") == name.count(".") + 2}
            if state:
                optimizer.state[params[name]] = state
    scheduler.load_state_dict(meta["scheduler"])
    if "rng.torch" in tensors:  # checkpoints written before 2026-12-05 have none
        torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    if scaling:
        scaling.load(meta.get("loss_scaling"))
    return meta["step"], meta["best"], meta["best_score"], meta.get("train_seconds", 0.0)


def make_optimizer(model, config, total: int):
    """(trainable parameters, AdamW without decay on biases and norms, linear warm-up then decay), as every
    trainer here uses them."""
    from transformers import get_linear_schedule_with_warmup

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([{"params": [p for p in params if p.ndim > 1], "weight_decay": config.weight_decay},
                                   {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}],
                                  lr=config.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total * config.warmup_ratio), total)
    return params, optimizer, scheduler


@dataclasses.dataclass
class Trainee:
    """A model set up by accelerate for training (on its device: the CPU, one GPU or Apple's MPS), with its
    optimiser, learning-rate schedule and loss scaling: the same set-up for every trainer."""
    accelerator: object
    model: torch.nn.Module  # as accelerate prepared it: what the forward pass runs
    params: list
    optimizer: object  # accelerate's wrapper, which steps
    raw_optimizer: torch.optim.Optimizer  # torch's, which checkpoints hold
    scheduler: object
    scaling: LossScaling

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def unwrapped(self) -> torch.nn.Module:
        """The model itself, to save, evaluate or checkpoint."""
        return self.accelerator.unwrap_model(self.model)

    def backward(self, loss: torch.Tensor) -> None:
        self.scaling.backward(loss, self.accelerator.backward)

    def update(self) -> None:
        self.scaling.update(self.params, self.optimizer, self.scheduler)


def prepare_training(model, config, total: int) -> Trainee:
    """``model`` with AdamW and its schedule (``make_optimizer``) on accelerate's device, and loss scaling for
    ``config.mixed_precision``."""
    from accelerate import Accelerator

    accelerator = Accelerator()
    params, raw_optimizer, scheduler = make_optimizer(model, config, total)
    prepared, optimizer = accelerator.prepare(model, raw_optimizer)
    return Trainee(accelerator, prepared, params, optimizer, raw_optimizer, scheduler,
                   LossScaling(config.mixed_precision, accelerator.device))

def check_resume(ckpt: Path, resume: bool, error=ValueError, config=None) -> list[str]:
    """With ``--resume``, stop at once (before data is read) when ``ckpt`` holds no checkpoint, or when
    ``config`` changes a key of ``MODEL_KEYS`` against the config that wrote the checkpoint (ConfigError).
    Returns the run's config changes, earlier resumes' first: ``"at step 200: epochs: 3.0 -> 5.0"``, with
    ``(evaluation only)`` for a key of ``EVAL_KEYS``; keys of ``RUN_KEYS`` are not listed."""
    if not resume:
        return []
    if not (ckpt / "state.json").is_file():
        raise error(f"--resume: no checkpoint in {ckpt}")
    meta = json.loads((ckpt / "state.json").read_text())
    earlier = list(meta.get("config_changes") or [])
    if config is None or not meta.get("config"):  # checkpoints written before this check hold no config
        return earlier
    # Through JSON, as the checkpoint's copy went, so that a tuple and a list or 3 and 3.0 compare alike.
    saved, now = meta["config"], json.loads(json.dumps(dataclasses.asdict(config)))
    changed = [k for k in now if k in saved and k not in RUN_KEYS and saved[k] != now[k]]
    refused = [k for k in changed if k in MODEL_KEYS]
    if refused:
        raise ConfigError(f"--resume: the checkpoint in {ckpt} belongs to another model: "
                          + "; ".join(f"{k} was {_shown(saved[k])}, now {_shown(now[k])}" for k in refused)
                          + ". Put it back, or train into another --output")
    return earlier + [f"at step {meta['step']}: {k}: {_shown(saved[k])} -> {_shown(now[k])}"
                      + (" (evaluation only)" if k in EVAL_KEYS else "") for k in changed]


def _shown(value, width: int = 120) -> str:
    text = json.dumps(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def log_config_changes(changes: list[str], log=print) -> None:
    """Say, when a resumed run was given another config, what changed since the run began and what it means."""
    if not changes:
        return
    steps_changed = any(not c.endswith("(evaluation only)") for c in changes)
    log("config changes since this run began: " + "; ".join(changes) + (
        ". The weights are not those one uninterrupted run with either config reaches" if steps_changed else
        ". The steps are one run's; the evaluations that pick the kept model are not") + " (model card)")


def config_changes_card(changes: list[str]) -> list[str]:
    """Model-card lines that list a resumed run's config changes (none when there were none)."""
    if not changes:
        return []
    return ["## Config changes on --resume", "",
            "`training_config.yaml` is the last run's config; steps before a change ran with the value before it:",
            "", *[f"- {c}" for c in changes], ""]


def start_or_resume(ckpt: Path, model, optimizer, scheduler, resume: bool, start_score: float, log=print,
                    error=ValueError, scaling: LossScaling | None = None) -> tuple[int, dict | None, float, float]:
    """(step, best metrics, best score, training seconds so far): a fresh start, or the checkpoint's with
    ``--resume`` (``error`` when there is none)."""
    if not resume:
        return 0, None, start_score, 0.0
    check_resume(ckpt, resume, error)
    state = load_checkpoint(ckpt, model, optimizer, scheduler, scaling)
    log(f"resumed from {ckpt} at step {state[0]}")
    return state


def fresh_history(path: Path, resume: bool) -> Path:
    """The run's ``history.jsonl``: continued with ``--resume``, emptied on a fresh start (a run in an output
    directory used before listed the old run's evaluations too until 2026-12-05)."""
    if not resume:
        path.unlink(missing_ok=True)
    return path


def last_evaluated_step(history: Path) -> int | None:
    """The step of the last evaluation in ``history.jsonl``: a run that ends where it was last evaluated (a
    finished run resumed again, or an ``eval_every`` evaluation on the last step) is not evaluated twice."""
    if not history.is_file():
        return None
    lines = history.read_text(encoding="utf-8").splitlines()
    return json.loads(lines[-1]).get("step") if lines else None


def run_steps(step: int, total: int, epoch_batches: Callable[[int], list],
              loss_of: Callable[[object, int], torch.Tensor], update: Callable[[], None], steps_per_epoch: int, config, save: Callable[[int, float], None],
              evaluate: Callable[[int], None], log=print, each_epoch: bool = False,
              backward: Callable[[torch.Tensor], None] | None = None) -> tuple[int, bool]:
    """Optimiser steps from ``step`` to ``total``: ``epoch_batches(epoch)`` lists the batches of an epoch (a
    function of the seed), ``loss_of(batch, step)`` computes a loss, ``update()`` applies the gradients.
    Logs every ``config.log_every`` steps, calls ``save(step, seconds of this run)`` every ``save_every`` and
    ``evaluate(step)`` every ``eval_every`` (and, with ``each_epoch``, at the end of every epoch but the
    last), and stops cleanly after ``time_limit_minutes``. ``backward(loss)`` replaces ``loss.backward()``
    (``Trainee.backward``: fp16's scaled loss, through accelerate's backward).
    Returns (last step, whether the time limit stopped it)."""
    from conflictbrief.training.tagger import progress_line

    started, running, seen_steps = time.time(), 0.0, 0
    deadline = started + config.time_limit_minutes * 60 if config.time_limit_minutes else None
    while step < total:
        epoch, offset = divmod(step, steps_per_epoch)
        for batch in epoch_batches(epoch)[offset:]:
            loss = loss_of(batch, step)
            if backward is None:
                loss.backward()
            else:
                backward(loss)
            update()
            step += 1
            seen_steps += 1
            running += loss.item()
            if step % config.log_every == 0:
                log(progress_line(step, total, running / config.log_every, seen_steps / (time.time() - started)))
                running = 0.0
            if step % config.save_every == 0:
                save(step, time.time() - started)
            if config.eval_every and step % config.eval_every == 0:
                evaluate(step)
            elif each_epoch and step % steps_per_epoch == 0 and step < total:
                evaluate(step)
            if deadline and time.time() > deadline:
                log(f"time limit reached at step {step}; resume with --resume")
                return step, True
            if step >= total:
                break
    return step, False
