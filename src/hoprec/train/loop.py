"""The training loop every torch model shares: steps, early stopping, checkpoints, a training log.

A model supplies two callables and its module and optimiser:

- ``step(step_number) -> loss``: one optimisation step (the model draws its batch from its own
  seeded ``torch.Generator``, which is checkpointed with everything else);
- ``evaluate() -> float``: the early-stopping score (higher is better, e.g. held-out MAP@K).

:func:`train` runs ``steps`` steps, scores every ``eval_every`` steps, keeps the best weights and
stops after ``patience`` scores without improvement.  With ``checkpoint_dir`` set it writes, after
every evaluation, a checkpoint of the module, the optimiser, the generator and the loop's own
state (tensors as safetensors, the rest as JSON; no pickle), atomically; calling :func:`train`
again with the same directory resumes from it and reaches the same weights as an uninterrupted
run.  The log (``[{step, loss, val_map, seconds}]``; ``val_map`` is the early-stopping score) is
what reports plot as training curves.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import load_file, save_file

from hoprec.atomic import atomic_dir


class LoopConfig(BaseModel):
    """How long to train and when to stop; every default is stated here."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(default=600, ge=1)
    eval_every: int = Field(default=100, ge=1)
    patience: int = Field(default=4, ge=1)  # evaluations without improvement before stopping
    checkpoint_dir: str | None = None  # resume from / write checkpoints here
    fingerprint: str = ""  # what the run is (model, data, cutoff, settings): a checkpoint of another run is refused


@dataclass
class LoopState:
    step: int = 0
    best: float = float("-inf")
    best_step: int = 0
    bad: int = 0
    stopped: bool = False
    log: list[dict[str, float]] = field(default_factory=list)


class Interrupted(RuntimeError):
    """Raised by ``stop_after`` in tests and tools to simulate a killed run."""


def train(
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: Callable[[int], float],
    evaluate: Callable[[], float],
    config: LoopConfig,
    generator: torch.Generator | None = None,
    progress: Callable[[str], None] | None = None,
    stop_after: int | None = None,
) -> LoopState:
    """Train ``module`` in place; on return it holds the best weights seen.  See the module doc."""
    ckpt = Path(config.checkpoint_dir) if config.checkpoint_dir else None
    state = LoopState()
    best_weights: dict[str, torch.Tensor] | None = None
    if ckpt is not None and (ckpt / "loop.json").exists():
        state, best_weights = _load(ckpt, module, optimizer, generator, config.fingerprint)
    t0 = time.perf_counter()
    loss = float("nan")
    while not state.stopped and state.step < config.steps:
        state.step += 1
        module.train()
        loss = float(step(state.step))
        if state.step % config.eval_every and state.step != config.steps:
            continue
        module.eval()
        with torch.no_grad():
            score = float(evaluate())
        state.log.append({"step": state.step, "loss": loss, "val_map": score,
                          "seconds": round(time.perf_counter() - t0, 3)})
        if score > state.best:
            state.best, state.best_step, state.bad = score, state.step, 0
            best_weights = {k: v.detach().clone() for k, v in module.state_dict().items()}
        else:
            state.bad += 1
            state.stopped = state.bad >= config.patience
        if progress:
            progress(f"step {state.step}/{config.steps}: loss {loss:.4f}, validation {score:.4f}")
        if ckpt is not None:
            _save(ckpt, module, optimizer, generator, state, best_weights, config.fingerprint)
        if stop_after is not None and state.step >= stop_after:
            raise Interrupted(f"stopped after step {state.step}")
    if best_weights is not None:
        module.load_state_dict(best_weights)
    return state


# ------------------------------------------------------------------------------ checkpoints
def _flat_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for name, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"opt.{pid}.{name}"] = value.contiguous()
            else:
                scalars[f"{pid}.{name}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _save(path: Path, module, optimizer, generator, state: LoopState, best, fingerprint: str) -> None:
    with atomic_dir(path) as tmp:
        tensors = {f"model.{k}": v.contiguous() for k, v in module.state_dict().items()}
        tensors.update({f"best.{k}": v.contiguous() for k, v in (best or {}).items()})
        opt_t, opt_meta = _flat_optimizer(optimizer)
        tensors.update(opt_t)
        if generator is not None:
            tensors["generator"] = generator.get_state()
        save_file(tensors, str(tmp / "checkpoint.safetensors"))
        meta = {"loop": state.__dict__, "optimizer": opt_meta, "has_best": best is not None,
                "fingerprint": fingerprint}
        (tmp / "loop.json").write_text(json.dumps(meta, default=float))


def _load(path: Path, module, optimizer, generator, fingerprint: str) -> tuple[LoopState, dict | None]:
    meta = json.loads((path / "loop.json").read_text())
    if meta.get("fingerprint", "") != fingerprint:
        raise ValueError(
            f"checkpoint {path} is from another run ({meta.get('fingerprint') or 'unknown'}), not "
            f"this one ({fingerprint or 'unknown'}): remove it or choose another checkpoint_dir")
    tensors = load_file(str(path / "checkpoint.safetensors"))
    module.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")} if meta["has_best"] else None
    opt_state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            opt_state.setdefault(int(pid), {})[name] = value
    for key, value in meta["optimizer"]["scalars"].items():
        pid, name = key.split(".", 1)
        opt_state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": meta["optimizer"]["param_groups"]})
    if generator is not None and "generator" in tensors:
        generator.set_state(tensors["generator"])
    return LoopState(**meta["loop"]), best
