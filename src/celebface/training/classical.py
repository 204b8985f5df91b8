"""Classical classifiers on face embeddings: ``logreg`` (multinomial logistic regression),
``svm`` (linear SVM), ``knn`` (k nearest neighbours by cosine) and ``centroid`` (cosine to each
identity's mean embedding, the reference's live method).

scikit-learn fits them; the fitted parameters are saved as plain arrays (``classifier.npz``)
and prediction is a few numpy lines, so a saved model needs no pickle and reloads exactly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from celebface.errors import InputError
from celebface.io import atomic_write
from celebface.recognition.base import l2_normalize
from celebface.recognition.spec import DEFAULT_EMBEDDER, DEFAULT_TTA, EmbedderSpec
from celebface.training.embedding import (
    EmbeddingModel,
    embedder_settings,
    prepare_embeddings,
    softmax,
)
from celebface.training.registry import make_config, register_model_kind

log = logging.getLogger(__name__)

CLASSIFIERS = ("logreg", "svm", "knn", "centroid")
WEIGHTS = "classifier.npz"
#: C when none is given: the 3-fold CV pick on the pins105-dev train rows (flip TTA embeddings,
#: benchmarks/accuracy.py)
DEFAULT_C = {"logreg": 30.0, "svm": 1.0}


@dataclass
class ClassicalConfig:
    """Settings of the classical classifiers (defaults tuned by cross-validation on the
    pins105-dev train rows, see ``benchmarks/accuracy.py``)."""

    model: str = "logreg"
    C: float | None = None  # inverse regularisation: logreg 30, svm 1 when not given
    k: int = 10  # neighbours (knn)
    max_iter: int = 3000
    embedder: str = DEFAULT_EMBEDDER  # used when DATA holds images, not embeddings
    tta: str = DEFAULT_TTA
    device: str = "auto"
    seed: int = 0
    val_fraction: float = 0.15  # stratified split when DATA has no splits.csv

    @property
    def spec(self) -> EmbedderSpec:
        """The embedder of images given as data."""
        return EmbedderSpec.from_config(self)

    @staticmethod
    def per_model(model: str) -> dict[str, Any]:
        """The settings whose default depends on the model (``C`` of logreg and svm)."""
        return {"C": DEFAULT_C[model]} if model in DEFAULT_C else {}


def _fit_temperature(scores: np.ndarray, labels: np.ndarray) -> float:
    """The softmax temperature (scale) that minimises the NLL of ``scores`` on ``labels``."""
    best_t, best_nll = 1.0, np.inf
    rows = np.arange(len(labels))
    for t in np.geomspace(0.1, 1000, 61):
        p = softmax(scores * t)[rows, labels]
        nll = -np.log(np.clip(p, 1e-12, None)).mean()
        if nll < best_nll:
            best_t, best_nll = float(t), nll
    return best_t


def _linear_params(coef: np.ndarray, intercept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sklearn's binary (1, d) form to the two-class (2, d) form."""
    if coef.shape[0] == 1:
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    return coef.astype(np.float32), intercept.astype(np.float32)


def fit_arrays(
    name: str, x: np.ndarray, y: np.ndarray, num_classes: int, config: ClassicalConfig
) -> dict[str, np.ndarray]:
    """Fit classifier ``name`` on embeddings ``x`` and labels ``y``; its parameters as arrays."""
    x = l2_normalize(x)
    c = config.C if config.C is not None else DEFAULT_C.get(name, 1.0)
    if name == "logreg":
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=c, max_iter=config.max_iter)
        clf.fit(x, y)
        coef, intercept = _linear_params(clf.coef_, clf.intercept_)
        return {"coef": coef, "intercept": intercept, "classes": clf.classes_}
    if name == "svm":
        from sklearn.svm import LinearSVC

        clf = LinearSVC(C=c, max_iter=config.max_iter, random_state=config.seed)
        clf.fit(x, y)
        coef, intercept = _linear_params(clf.coef_, clf.intercept_)
        params = {"coef": coef, "intercept": intercept, "classes": clf.classes_}
        scores = x @ coef.T + intercept
        params["temperature"] = np.asarray(_fit_temperature(scores, np.searchsorted(
            clf.classes_, y)), np.float32)
        return params
    if name == "knn":
        return {"train": x.astype(np.float32), "train_labels": y.astype(np.int64),
                "k": np.asarray(config.k, np.int64)}
    if name == "centroid":
        classes = np.unique(y)
        centroids = l2_normalize(np.stack([x[y == c].mean(0) for c in classes]))
        scores = x @ centroids.T
        t = _fit_temperature(scores, np.searchsorted(classes, y))
        return {"centroids": centroids, "classes": classes,
                "temperature": np.asarray(t, np.float32)}
    raise InputError(f"unknown classifier {name!r}: choose one of {', '.join(CLASSIFIERS)}")


def predict_arrays(
    name: str, params: dict[str, np.ndarray], x: np.ndarray, num_classes: int
) -> np.ndarray:
    """``(N, num_classes)`` probabilities of classifier ``name`` with ``params``."""
    x = l2_normalize(x)
    out = np.zeros((len(x), num_classes), dtype=np.float64)
    if name == "knn":
        train, train_labels, k = params["train"], params["train_labels"], int(params["k"])
        k = min(k, len(train))
        sims = x @ train.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        rows = np.arange(len(x))[:, None]
        # votes weighted by similarity (shifted to be positive), a tie goes to the closer
        weights = np.clip(sims[rows, top], 0, None) + 1e-6
        np.add.at(out, (np.repeat(rows, k, 1), train_labels[top]), weights)
        return out / out.sum(1, keepdims=True)
    if name in ("logreg", "svm"):
        scores = x @ params["coef"].T + params["intercept"]
        if name == "svm":
            scores = scores * float(params["temperature"])
    elif name == "centroid":
        scores = (x @ params["centroids"].T) * float(params["temperature"])
    else:
        raise InputError(f"unknown classifier {name!r}")
    out[:, params["classes"]] = softmax(scores.astype(np.float64))
    return out


class ClassicalModel(EmbeddingModel):
    """One of :data:`CLASSIFIERS` on embeddings, saved as ``classifier.npz``."""

    kind: ClassVar[str] = "classical"

    def __init__(self, name: str, params: dict[str, np.ndarray], label_names: Sequence[str],
                 meta: dict[str, Any] | None = None, device: str = "auto"):
        super().__init__(label_names, meta, device)
        if name not in CLASSIFIERS:
            raise InputError(f"unknown classifier {name!r}")
        self.name = name
        self.kind = name  # type: ignore[misc]  # model.json kind is the classifier name
        self.params = params

    def predict_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        return predict_arrays(self.name, self.params, embeddings, self.num_classes)

    def save_weights(self, model_dir: Path) -> dict[str, Any]:
        with atomic_write(model_dir / WEIGHTS, "wb") as fh:
            arrays: dict[str, Any] = self.params  # numpy's stub checks allow_pickle too
            np.savez(fh, **arrays)
        return {"weights": WEIGHTS}

    @classmethod
    def load(cls, model_dir: Path, meta: dict[str, Any], device: str = "auto") -> ClassicalModel:
        with np.load(model_dir / meta.get("weights", WEIGHTS)) as z:
            params = {k: z[k] for k in z.files}
        return cls(meta["kind"], params, meta["label_names"], meta, device)


def train(data: str | Path, out: str | Path, **config: Any) -> ClassicalModel:
    """Fit a classical classifier (``config["model"]``) on the train rows of ``data``, save it
    in ``out``; logs its accuracy on the val rows when there are any."""
    cfg: ClassicalConfig = make_config(ClassicalConfig, config, "classical model")
    emb = prepare_embeddings(data, out, spec=cfg.spec, device=cfg.device,
                             seed=cfg.seed, val_fraction=cfg.val_fraction)
    tr, va = emb.indices("train"), emb.indices("val")
    if len(tr) == 0:
        raise InputError(f"{data}: no train rows")
    t0 = time.perf_counter()
    params = fit_arrays(cfg.model, emb.embeddings[tr], emb.labels[tr], len(emb.label_names), cfg)
    fit_s = time.perf_counter() - t0
    history: dict[str, Any] = {"fit_s": round(fit_s, 3), "train_count": len(tr),
                               "val_count": len(va)}
    model = ClassicalModel(cfg.model, params, emb.label_names, {
        "embedder": embedder_settings(emb.embedder, cfg.spec),
        "config": asdict(cfg),
        "data": str(Path(data).resolve()),
        "history": history,
    }, cfg.device)
    for split, idx in (("train", tr), ("val", va)):
        if len(idx):
            pred = model.predict_embeddings(emb.embeddings[idx]).argmax(1)
            history[f"{split}_accuracy"] = float((pred == emb.labels[idx]).mean())
    log.info("%s: fit in %.1fs, train accuracy %.4f%s", cfg.model, fit_s,
             history["train_accuracy"],
             f", val accuracy {history['val_accuracy']:.4f}" if "val_accuracy" in history else "")
    model.save(out)
    return model


for _name in CLASSIFIERS:
    register_model_kind(_name, ClassicalModel)
