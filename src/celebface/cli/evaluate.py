"""`celebface evaluate MODEL_DIR DATA --out REPORT_DIR`."""

from __future__ import annotations

import argparse

from celebface.cli import common as t
from celebface.cli.common import add_device
from celebface.cli.options import add_option, values_from
from celebface.evaluation import evaluate_model, format_summary
from celebface.io import check_output_dir, folder_lock


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Evaluate a trained model on a folder-per-identity of face images (raw crops are fine: "
        "the model's own preprocessing and embedder are applied), a packed folder or an "
        "embeddings folder. Writes metrics.json, classification_report.txt, "
        "confusion_matrix.png, history.png, errors.png, predictions.csv and summary.txt."
    )
    p.add_argument("model_dir", metavar="MODEL_DIR", help="folder written by celebface train")
    p.add_argument("data", metavar="DATA", help="labelled data folder")
    p.add_argument("--out", required=True, metavar="REPORT_DIR", help="folder for the report")
    add_option(p, evaluate_model, "split",
               help="only these rows of DATA's splits.csv (e.g. val, test)")
    add_option(p, evaluate_model, "batch_size", type=t.positive_int,
               help="images per batch (%(default)s)")
    add_option(p, evaluate_model, "max_errors", type=t.nonneg_int,
               help="mistakes shown in errors.png")
    add_device(p)


def run(args: argparse.Namespace) -> int:

    check_output_dir(args.out, [args.data, args.model_dir], flag="--out")
    with folder_lock(args.out, "report folder"):
        metrics = evaluate_model(**values_from(evaluate_model, args))
    print(format_summary(metrics))
    print(f"report: {args.out}")
    return 0
