"""A model soup: the weights of several fine-tunes of one model averaged into one model.

Fine-tunes that start from the same weights and differ only in their data (or seed) stay in one basin of the loss,
so the plain average of their parameters is a model too, usually better than each, and better still on data unlike
the training data (Wortsman et al., "Model soups: averaging weights of multiple fine-tuned models improves accuracy
without increasing inference time", ICML 2022, the "uniform soup"). For a detector trained on simulated streets and
run on a real sensor that is the case that matters; the soup costs nothing at inference.

``average_checkpoints`` averages every floating-point tensor of the checkpoints' state dicts 1:1 (in fp32; fp16
bundled weights are widened first); integer buffers (BatchNorm's batch counters) come from the first. Averaged
BatchNorm running statistics do not describe the averaged weights, so ``sparsekd-soup`` recomputes them over
training batches as the training loop feeds them (Trainer.training_batchnorm; BEV windows for models that train on
windows, or whole frames on request). Weights of different models (classes, inputs, grid, layers) are refused.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from ..checkpoint import CheckpointError, config_from_payload, make_payload, read_checkpoint
from ..inference import resolve_checkpoint

# config fields that may differ between fine-tunes of one model: how each was trained, and post-processing
_FREE_FIELDS = ("name", "description", "train")


def _architecture(config: dict) -> dict:
    """An embedded config without the fields fine-tunes of one model may differ in."""
    arch = {k: v for k, v in config.items() if k not in _FREE_FIELDS}
    arch["head"] = {k: v for k, v in arch["head"].items() if k != "post"}
    return arch


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    """The dotted path of the first field where two config dicts differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else key)
    return f"{path} ({a!r} against {b!r})"


def average_checkpoints(sources: Sequence[str | Path]) -> dict[str, Any]:
    """The uniform soup of ``sources`` (checkpoint paths or bundled model names): a checkpoint payload (fp32) with
    the first source's config, without its operating point (chosen for those weights, not the soup's), and
    ``meta["soup_of"]`` naming the ingredients (and ``meta["ground_z"]`` where they all record the same). Raises
    CheckpointError when there are fewer than two or they are not weights of one model: the same classes, inputs,
    grid and layers (their training settings and post-processing may differ)."""
    if len(sources) < 2:
        raise CheckpointError(f"a soup needs at least two checkpoints, got {len(sources)}")
    paths = [resolve_checkpoint(s) for s in sources]
    payloads = [read_checkpoint(p) for p in paths]
    first, first_sd = paths[0], payloads[0]["state_dict"]
    for path, payload in zip(paths[1:], payloads[1:]):
        if list(payload["class_names"]) != list(payloads[0]["class_names"]):
            raise CheckpointError(f"{path} detects {payload['class_names']}, {first} {payloads[0]['class_names']}: "
                                  "a soup averages fine-tunes of one model")
        ours, theirs = _architecture(payloads[0]["config"]), _architecture(payload["config"])
        if ours != theirs:
            raise CheckpointError(f"{path} is not the model {first} is: their configs differ in "
                                  f"{_first_difference(theirs, ours)}; a soup averages fine-tunes of one model")
        sd = payload["state_dict"]
        if set(sd) != set(first_sd):
            diff = sorted(set(sd) ^ set(first_sd))
            raise CheckpointError(f"{path} and {first} hold different tensors ({', '.join(diff[:3])}"
                                  f"{' ...' if len(diff) > 3 else ''}): not the same architecture")
        for key, value in sd.items():
            if value.shape != first_sd[key].shape:
                raise CheckpointError(f"{key} is {tuple(value.shape)} in {path} but {tuple(first_sd[key].shape)} in "
                                      f"{first}: not the same architecture")
    averaged = {}
    for key, value in first_sd.items():
        if value.is_floating_point():
            averaged[key] = torch.stack([p["state_dict"][key].float() for p in payloads]).mean(dim=0)
        else:
            averaged[key] = value.clone()
    cfg = config_from_payload(payloads[0], source=str(first))
    cfg.head.post.operating_thresholds = {}
    meta: dict[str, Any] = {"soup_of": [str(s) for s in sources],
                            "tag": f"uniform soup of {len(sources)} checkpoints"}
    grounds = {p.get("meta", {}).get("ground_z") for p in payloads}
    if len(grounds) == 1 and None not in grounds:
        meta["ground_z"] = grounds.pop()
    return make_payload(cfg, averaged, meta=meta)
