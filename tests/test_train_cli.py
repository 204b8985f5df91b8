"""`celebface train`'s flags come from the registered model configs (no default typed twice)."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from celebface.cli.main import build_parser
from celebface.cli.train import _SETTINGS, config_from_args, default_help
from celebface.errors import InputError
from celebface.training.registry import MODEL_NAMES, config_class, make_config, model_defaults
from celebface.validate import ConfigError


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
        assert f"{model} {config_class(model)().loop.batch_size}" in batch
    assert "face-resnet 0.9" in actions["lr_decay"].help  # not the 0.95 once typed for all
    assert "logreg 30, svm 1" in actions["C"].help
    assert "inception mobilenet_v2+imagenet 64" in batch


def test_a_pretrained_backbone_defaults_to_its_measured_recipe() -> None:
    from celebface.training.inception import InceptionConfig

    given = _config("--model", "inception", "--backbone", "mobilenet_v2",
                    "--pretrained", "imagenet")
    assert given == {"backbone": "mobilenet_v2", "pretrained": "imagenet"}
    cfg = make_config(InceptionConfig, given, "inception")
    assert (cfg.align, cfg.input_size, cfg.freeze, cfg.loop.lr, cfg.loop.lr_decay,
            cfg.loop.batch_size, cfg.tta) == (True, 96, 4, 3e-4, 0.9, 64, "flip")
    # a flag given wins over the recipe; no recipe without pretrained weights
    mine = make_config(InceptionConfig, _config("--backbone", "mobilenet_v2", "--pretrained",
                                                "imagenet", "--batch-size", "16", "--no-align"),
                       "inception")
    assert (mine.loop.batch_size, mine.align, mine.input_size) == (16, False, 96)
    plain = make_config(InceptionConfig, _config("--backbone", "mobilenet_v2"), "inception")
    assert (plain.loop.batch_size, plain.align, plain.tta) == (128, False, "none")


#: every network config's flat settings before the fit loop's became a nested ``loop`` (the
#: ``model.json`` "config" keys and the run fingerprint's, which old checkpoints carry)
_LOOP = {"device", "amp", "num_workers", "seed", "max_steps_per_epoch", "max_val_steps",
         "progress", "epochs", "batch_size", "lr", "lr_decay", "weight_decay", "patience"}
_OWN = {"inception": {"input_size", "backbone", "pretrained", "weights", "freeze", "align",
                      "chip_padding", "trunk_cache", "cache_dir", "backbone_lr",
                      "label_smoothing", "tta", "augment", "val_fraction", "limit_per_class"},
        "face-resnet": {"head", "scale", "margin", "init_head", "freeze", "trunk_cache",
                        "cache_flip", "pretrained", "augment", "label_smoothing", "tta",
                        "cache_dir", "limit_per_class", "identities", "val_fraction",
                        "backbone_lr"}}


@pytest.mark.parametrize("model", ["inception", "face-resnet", "multi-output", "mlp"])
def test_the_fit_loop_is_one_nested_group_with_the_old_flat_settings(model: str) -> None:
    from celebface.training.loop import LoopConfig, run_fingerprint
    from celebface.validate import flat_names, flat_settings

    cls = config_class(model)
    assert [f.name for f in dataclasses.fields(cls) if f.type in (LoopConfig, "LoopConfig")] \
        == ["loop"]
    listed = flat_names(cls)
    names = set(listed)
    assert len(listed) == len(names)  # no setting both the config's own and its loop's
    if model in _OWN:
        assert names == _OWN[model] | _LOOP
    elif model == "multi-output":
        assert _LOOP | {"optimizer", "monitor", "box_weight", "identity_from"} <= names
    else:
        assert names == {"hidden", "dropout", "holdout", "embedder", "tta", "val_fraction",
                         "epochs", "batch_size", "lr", "weight_decay", "patience",
                         "plateau_patience", "device", "seed", "max_steps_per_epoch", "progress"}
    cfg = make_config(cls, {"epochs": 3, "seed": 7, "batch_size": 5}, model)
    assert (cfg.loop.epochs, cfg.loop.seed, cfg.loop.batch_size) == (3, 7, 5)
    flat = flat_settings(cfg)
    assert set(flat) == names and flat["epochs"] == 3 and "loop" not in flat
    settings = run_fingerprint(cfg, "D", ["a"])["settings"]
    assert "loop" not in settings and settings["batch_size"] == 5
    with pytest.raises(InputError, match=r"unknown setting\(s\) scheduler"):
        make_config(cls, {"scheduler": "none"}, model)  # the trainer's own choice
    with pytest.raises(ConfigError, match="epochs"):
        make_config(cls, {"epochs": 0}, model)  # ranges checked inside the group too


def test_each_network_keeps_its_loop_defaults() -> None:
    want = {"inception": (100, 128, 0.95, 0.0, 2), "face-resnet": (30, 64, 0.9, 5e-4, 0),
            "multi-output": (30, 32, 0.95, 0.0, 0)}
    for model, values in want.items():
        d = model_defaults(model)
        assert (d["epochs"], d["batch_size"], d["lr_decay"], d["weight_decay"],
                d["num_workers"]) == values, model
    mlp = config_class("mlp")().loop
    assert (mlp.epochs, mlp.patience, mlp.scheduler, mlp.plateau_patience, mlp.progress) == (
        200, 15, "plateau", 5, False)
    mo = make_config(config_class("multi-output"), {"monitor": "val_loss"}, "multi-output")
    assert (mo.loop.monitor, mo.loop.mode) == ("val_loss", "min")
    assert config_class("multi-output")().loop.mode == "max"


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
