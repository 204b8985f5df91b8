"""`celebface evaluate MODEL_DIR DATA --out REPORT_DIR`."""

from __future__ import annotations

import argparse

from celebface.cli import common as t
from celebface.cli.common import add_device


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
    p.add_argument("--split", help="only these rows of DATA's splits.csv (e.g. val, test)")
    p.add_argument("--batch-size", type=t.positive_int, default=64, help="images per batch (64)")
    p.add_argument("--max-errors", type=t.nonneg_int,
                   default=24, help="mistakes shown in errors.png")
    add_device(p)


def run(args: argparse.Namespace) -> int:
    from celebface.evaluation import evaluate_model, format_summary
    from celebface.io import check_output_dir, folder_lock

    check_output_dir(args.out, [args.data, args.model_dir], flag="--out")
    with folder_lock(args.out, "report folder"):
        metrics = evaluate_model(args.model_dir, args.data, args.out, split=args.split,
                                 device=args.device, batch_size=args.batch_size,
                                 max_errors=args.max_errors)
    print(format_summary(metrics))
    print(f"report: {args.out}")
    return 0
