"""`celebface train`'s flags come from the registered model configs (no default typed twice)."""

from __future__ import annotations

import argparse

import pytest

from celebface.cli.main import build_parser
from celebface.cli.train import _SETTINGS, config_from_args, default_help
from celebface.training.registry import MODEL_NAMES, config_class, make_config, model_defaults


def _train_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["train"]


def _config(*flags: str) -> dict:
    args = build_parser().parse_args(["train", "DATA", "--out", "M", *flags])
    return config_from_args(args)


def test_every_flag_default_is_unset_and_its_help_comes_from_the_configs() -> None:
    actions = {a.dest: a for a in _train_parser()._actions}
    for setting, *_ in _SETTINGS:
        assert actions[setting].default is None, setting  # unset: the model's own default
        assert default_help(setting) in actions[setting].help
        assert any(setting in model_defaults(m) for m in MODEL_NAMES), setting
    batch = actions["batch_size"].help
    for model in ("inception", "face-resnet", "multi-output", "mlp"):
        assert f"{model} {config_class(model)().batch_size}" in batch
    assert "face-resnet 0.9" in actions["lr_decay"].help  # not the 0.95 once typed for all
    assert "logreg 30, svm 1" in actions["C"].help
    assert "inception mobilenet_v2+imagenet 64" in batch


def test_a_pretrained_backbone_defaults_to_its_measured_recipe() -> None:
    from celebface.training.inception import InceptionConfig

    given = _config("--model", "inception", "--backbone", "mobilenet_v2",
                    "--pretrained", "imagenet")
    assert given == {"backbone": "mobilenet_v2", "pretrained": "imagenet"}
    cfg = make_config(InceptionConfig, given, "inception")
    assert (cfg.align, cfg.input_size, cfg.freeze, cfg.lr, cfg.lr_decay, cfg.batch_size,
            cfg.tta) == (True, 96, 4, 3e-4, 0.9, 64, "flip")
    # a flag given wins over the recipe; no recipe without pretrained weights
    mine = make_config(InceptionConfig, _config("--backbone", "mobilenet_v2", "--pretrained",
                                                "imagenet", "--batch-size", "16", "--no-align"),
                       "inception")
    assert (mine.batch_size, mine.align, mine.input_size) == (16, False, 96)
    plain = make_config(InceptionConfig, _config("--backbone", "mobilenet_v2"), "inception")
    assert (plain.batch_size, plain.align, plain.tta) == (128, False, "none")


def test_multi_output_face_options_reach_the_config() -> None:
    from celebface.training.multi_output import MultiOutputConfig

    given = _config("--model", "multi-output", "--face-freeze", "3", "--landmark-head",
                    "regress", "--hidden", "64")
    cfg = make_config(MultiOutputConfig, given, "multi-output")
    assert (cfg.face_freeze, cfg.landmark_head, cfg.hidden) == (3, "regress", 64)
    with pytest.raises(SystemExit):
        _config("--face-freeze", "6")


def test_reading_the_configs_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = ("import sys; from celebface.cli.main import build_parser; build_parser(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
