"""The whole import: an OpenPCDet / SparseKD checkpoint and its YAML config -> one of our checkpoints.

    report = import_checkpoint("cp-voxel_6429.pth", "tools/cfgs/waymo_models/cp-voxel/cp-voxel.yaml", "cp_voxel.pth")

The result holds our config, the converted weights and, in ``meta["imported_from"]``, where they came from and
what the import did (spconv layout and why, folded biases, keys left out, notes), so the file alone runs the
model anywhere a sparsekd checkpoint runs: the node, sparsekd-detect, sparsekd-eval, sparsekd-train --teacher.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional


from ..checkpoint import save_checkpoint
from ..config import ModelConfig
from ..models.detector import build_detector
from .checkpoint import read_reference_checkpoint
from .model_config import model_config_from_openpcdet, model_name_for
from .spconv_layout import LayoutDecision
from .weights import convert_state_dict
from .yaml_config import load_openpcdet_config


@dataclass
class ImportReport:
    """What an import produced and did; ``lines()`` is the summary sparsekd-import prints."""

    output: Path
    config: ModelConfig
    version: Optional[str]
    layout: LayoutDecision
    ignored: list[tuple[str, str]] = field(default_factory=list)
    folded: list[str] = field(default_factory=list)
    zero_biases: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        c = self.config
        kind = "anchor-head" if c.is_anchor else "CenterPoint"
        out = [f"wrote {self.output}: {c.name}, {'pillar' if c.is_pillar else c.backbone3d.type} {kind} model, "
               f"classes {', '.join(c.class_names)}, point features {' '.join(c.point_features)}",
               f"  checkpoint: {self.version or 'no version recorded'}; spconv layout {self.layout.layout} "
               f"({self.layout.reason})"]
        if self.folded:
            out.append(f"  {len(self.folded)} sparse-conv biases folded into the following BatchNorm's running mean "
                       f"(e.g. {self.folded[0]})")
        if self.zero_biases:
            out.append(f"  {len(self.zero_biases)} head conv biases set to zero (the reference's convs have none)")
        if self.ignored:
            groups: dict[str, list[str]] = {}
            for key, why in self.ignored:
                groups.setdefault(why, []).append(key)
            for why, keys in groups.items():
                out.append(f"  left out {len(keys)} key(s), {why}: {', '.join(keys[:4])}"
                           + (", ..." if len(keys) > 4 else ""))
        out += [f"  note: {n}" for n in self.notes]
        return out


def import_checkpoint(checkpoint: str | Path, config: str | Path, out: str | Path, *,
                      spconv_layout: Optional[str] = None, intensity_max: Optional[float] = None,
                      name: Optional[str] = None, cwd: str | Path | None = None, fp16: bool = False) -> ImportReport:
    """Convert and write; raises OpenPCDetConfigError / OpenPCDetCheckpointError / SpconvLayoutError / WeightsError
    (all ValueError) with a message naming the file, key or module at fault."""
    ref = read_reference_checkpoint(checkpoint)
    imported = model_config_from_openpcdet(load_openpcdet_config(config, cwd), name or model_name_for(config),
                                           source=str(config), intensity_max=intensity_max)
    model = build_detector(imported.model).eval()
    converted = convert_state_dict(ref.model_state, model, pcdet_version=ref.pcdet_version(),
                                   spconv_layout=spconv_layout, intensity_max=imported.intensity_max)
    model.load_state_dict(converted.state_dict, strict=True)
    notes = ref.notes + imported.notes
    if imported.block_biases and not converted.folded:
        notes.append("the config's residual blocks have biases but the checkpoint holds none (USE_BIAS false?)")
    provenance = {
        "checkpoint": str(Path(checkpoint).name), "config": str(config), "version": ref.version,
        "epoch": ref.epoch, "it": ref.it, "spconv_layout": converted.layout.layout,
        "spconv_layout_reason": converted.layout.reason, "intensity_max": imported.intensity_max,
        "folded_biases": converted.folded, "zero_biases": converted.zero_biases,
        "ignored_keys": [k for k, _ in converted.ignored], "notes": notes,
    }
    meta = {"imported_from": provenance}
    if imported.ground_z is not None:  # the node's mounting check compares the ground it sees with this
        meta["ground_z"] = imported.ground_z
    path = save_checkpoint(out, model, meta=meta, fp16=fp16)
    return ImportReport(path, imported.model, ref.version, converted.layout, converted.ignored, converted.folded,
                        converted.zero_biases, notes)
