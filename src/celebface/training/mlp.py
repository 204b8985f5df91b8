"""``mlp``: the reference's embedding classifier (Dense + Dropout layers, Adam, early stopping,
reduce-LR-on-plateau) in torch, trained with :func:`celebface.training.loop.fit`.

Early stopping watches a holdout carved from the train rows (``holdout`` fraction, stratified),
so the val rows stay untouched for evaluation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from celebface.errors import InputError
from celebface.io import atomic_write, atomic_write_json
from celebface.recognition.base import l2_normalize
from celebface.recognition.spec import DEFAULT_EMBEDDER, DEFAULT_TTA, EmbedderSpec
from celebface.training.data import stratified_split
from celebface.training.embedding import EmbeddingModel, embedder_settings, prepare_embeddings
from celebface.training.loop import LoopConfig, fit, run_fingerprint
from celebface.training.registry import make_config, register_model_kind
from celebface.validate import flat_settings, settings_group

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

WEIGHTS = "mlp.pt"


@dataclass
class MLPConfig:
    """Settings of ``celebface train --model mlp``."""

    hidden: tuple[int, ...] = (512,)
    dropout: float = 0.5
    holdout: float = 0.1
    embedder: str = DEFAULT_EMBEDDER
    tta: str = DEFAULT_TTA
    val_fraction: float = 0.15
    #: fit loop, reduce-LR-on-plateau; ``device`` is the embedder's (the MLP trains on the CPU)
    loop: LoopConfig = field(
        default_factory=lambda: LoopConfig(epochs=200, weight_decay=1e-4, patience=15,
                                           scheduler="plateau", plateau_patience=5,
                                           progress=False),
        metadata=settings_group(("epochs", "batch_size", "lr", "weight_decay", "patience",
                                 "plateau_patience", "device", "seed", "max_steps_per_epoch",
                                 "progress")))

    @property
    def spec(self) -> EmbedderSpec:
        """The embedder of images given as data."""
        return EmbedderSpec.from_config(self)


def build_mlp(dim: int, num_classes: int, hidden: Sequence[int], dropout: float) -> nn.Module:
    """``[Linear, ReLU, Dropout] * len(hidden) + Linear`` (logits)."""
    from torch import nn

    layers: list[nn.Module] = []
    prev = dim
    for width in hidden:
        layers += [nn.Linear(prev, width), nn.ReLU(), nn.Dropout(dropout)]
        prev = width
    layers.append(nn.Linear(prev, num_classes))
    return nn.Sequential(*layers)


class MLPModel(EmbeddingModel):
    kind: ClassVar[str] = "mlp"

    def __init__(self, net: nn.Module, label_names: Sequence[str],
                 meta: dict[str, Any] | None = None, device: str = "auto"):
        super().__init__(label_names, meta, device)
        self.net = net.cpu().eval()

    def predict_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(l2_normalize(embeddings))
        with torch.inference_mode():
            logits = torch.cat([self.net(chunk) for chunk in x.split(4096)]) if len(x) else \
                torch.zeros(0, self.num_classes)
        return torch.softmax(logits.double(), 1).numpy()

    def save_weights(self, model_dir: Path) -> dict[str, Any]:
        import torch


        with atomic_write(model_dir / WEIGHTS, "wb") as fh:
            torch.save(self.net.state_dict(), fh)
        return {"weights": WEIGHTS}

    @classmethod
    def load(cls, model_dir: Path, meta: dict[str, Any], device: str = "auto") -> MLPModel:
        import torch

        arch = meta["architecture"]
        net = build_mlp(arch["dim"], len(meta["label_names"]), arch["hidden"], arch["dropout"])
        net.load_state_dict(torch.load(model_dir / meta.get("weights", WEIGHTS),
                                       map_location="cpu", weights_only=True))
        return cls(net, meta["label_names"], meta, device)


def train(data: str | Path, out: str | Path, **config: Any) -> MLPModel:
    """Train the MLP on the train rows of ``data`` (embeddings, or images embedded first)."""
    import torch
    from torch.utils.data import TensorDataset

    cfg: MLPConfig = make_config(MLPConfig, config, "mlp")
    cfg.hidden = tuple(int(h) for h in cfg.hidden)
    out = Path(out)
    emb = prepare_embeddings(data, out, spec=cfg.spec, device=cfg.loop.device,
                             seed=cfg.loop.seed, val_fraction=cfg.val_fraction)
    tr = emb.indices("train")
    if len(tr) == 0:
        raise InputError(f"{data}: no train rows")
    x = torch.from_numpy(l2_normalize(emb.embeddings[tr]))
    y = torch.from_numpy(emb.labels[tr])
    inner = stratified_split(emb.labels[tr], cfg.holdout, cfg.loop.seed)
    fit_idx, hold_idx = np.flatnonzero(inner == "train"), np.flatnonzero(inner == "val")
    train_ds = TensorDataset(x[fit_idx], y[fit_idx])
    hold_ds = TensorDataset(x[hold_idx], y[hold_idx]) if len(hold_idx) else None
    dim, n = emb.embeddings.shape[1], len(emb.label_names)
    torch.manual_seed(cfg.loop.seed)
    net = build_mlp(dim, n, cfg.hidden, cfg.dropout)
    result = fit(net, train_ds, hold_ds, out / "checkpoints", replace(cfg.loop, device="cpu"),
                 fingerprint=run_fingerprint(cfg, data, emb.label_names))
    model = MLPModel(net, emb.label_names, {
        "embedder": embedder_settings(emb.embedder, cfg.spec),
        "architecture": {"dim": dim, "hidden": list(cfg.hidden), "dropout": cfg.dropout},
        "config": flat_settings(cfg),
        "data": str(Path(data).resolve()),
        "best_epoch": result.best_epoch,
    }, cfg.loop.device)

    atomic_write_json(out / "history.json", result.history)
    model.save(out)
    return model


register_model_kind("mlp", MLPModel)
