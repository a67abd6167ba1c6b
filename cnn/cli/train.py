"""``cnn train``: train a named network (or continue a saved one) and write what a user looks at.

Into ``--out`` go the model (``model.h5``), its history (``history.json``, ``history.csv``),
the accuracy and loss curves (``accuracy.png``, ``loss.png``), the confusion matrix on the
test set (``confusion.png``) and a grid of misclassified test images (``misclassified.png``).

Training validates after each epoch on a held-out part of the training images
(``--validation-split``, 10% by default, drawn with ``--seed``); the test set is scored once,
at the end, so nothing is ever chosen on it. The model file records the data set it was
trained on (``cnn evaluate`` then picks it). The plots are drawn by ``cnn.cli.figures``, in
processes of their own that import matplotlib while the network trains; this process never
imports it.
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import numpy as np

import cnn
from cnn import distributed, networks, optimizers
from cnn.cli.data import load_dataset
from cnn.cli.figures import start_figures
from cnn.cli.modelfile import check_fits, class_names, read_model
from cnn.saving.h5_format import save_model
from cnn.utils.fileio import atomic_write


def run(args) -> int:
    check_out_directory(args)
    with start_figures() as figures:  # figures' process imports matplotlib while we train
        return train_and_write(args, figures)


def train_and_write(args, figures) -> int:
    """Train as ``args`` say, then write the model, the history and (through ``figures``, a
    ``cnn.cli.figures.FigureProcess`` or ``InlineFigures``) the plots; return 0."""
    dataset = load_dataset(args.dataset, args.verbose).limited(args.limit)
    cnn.set_seed(args.seed)
    model, names, label, model_file = _model(args, dataset)
    out = model_file.parent
    check_fits(model, dataset, label)
    (x_train, y_train), validation = split_validation(dataset.x_train, dataset.y_train,
                                                      args.validation_split, args.seed)
    first_epoch = model.epoch
    files = {
        "model": model_file,
        "history": out / "history.json",
        "history table": out / "history.csv",
        "accuracy plot": out / "accuracy.png",
        "loss plot": out / "loss.png",
        "confusion matrix": out / "confusion.png",
        "misclassified": out / "misclassified.png",
    }

    print(f"training {label} on {dataset.name}: {len(x_train)} images {dataset.input_shape}, "
          f"{len(names)} classes, {args.epochs} epoch(s) from epoch {first_epoch + 1}, "
          f"optimizer {model.optimizer.get_config()['name']} (learning rate {model.lr:g})")
    if validation is not None:
        print(f"validating on {len(validation[0])} held-out training images "
              f"({args.validation_split:.0%}) after each epoch")
    model.summary()
    start = time.perf_counter()
    chief = distributed.is_chief()  # under MPI, rank 0 writes the files
    try:  # the worker processes of fit (if any) also score the test set
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run: NonFiniteLossError
            history = model.fit(x_train, y_train, batch_size=args.batch_size,
                                epochs=args.epochs, verbose=args.verbose, seed=args.seed,
                                workers=args.workers, validation_data=validation)
        seconds = time.perf_counter() - start
        if chief:  # the curves are drawn while the test images are scored
            record = _continued_history(files["history"], history, first_epoch)
            figures.draw("history_show", [files["accuracy plot"], files["loss plot"]], record,
                         files["accuracy plot"], files["loss plot"], show=False)
        results = model.evaluate(dataset.x_test, dataset.y_test, return_dict=True,
                                 workers=args.workers)
        predicted = model.predict_classes(dataset.x_test, workers=args.workers)
    finally:
        model.close_workers()
    accuracy, loss = results["accuracy"], results["loss"]
    if not chief:
        return 0

    figures.draw("confusion_show", [files["confusion matrix"]], names, predicted, dataset.y_test,
                 confusion_file=files["confusion matrix"], show=False)
    figures.draw("misclassified_show", [files["misclassified"]], dataset.x_test, predicted,
                 dataset.y_test, names, file=files["misclassified"], show=False)
    model.class_names = list(names)
    save_model(model, files["model"], metadata={"dataset": args.dataset})
    write_history(record, files["history"], files["history table"])
    figures.wait()

    print(f"trained {model.epoch - first_epoch} epoch(s) in {seconds:.1f} s; on the "
          f"{len(dataset.x_test)} test images: accuracy {accuracy:.4f}, loss {loss:.4f}")
    for what, path in files.items():
        print(f"{what:>17}: {path}")
    return 0


def check_out_directory(args) -> None:
    """Refuse, before anything is loaded or trained, an output directory (``--out``, or
    ``runs/<network>`` by default) that is a file, or that cannot be created (a parent is a
    file); create it."""
    if args.out is None and args.model not in networks.NAMES:
        return  # continuing a saved model in place: its directory exists
    out = Path(args.out) if args.out is not None else Path("runs") / args.model
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: --out must be a directory, and this is a file")
    if (out / "model.h5").is_dir():
        raise ValueError(f"{out / 'model.h5'}: a directory is in the way of the model file")
    out.mkdir(parents=True, exist_ok=True)  # an OSError naming the path if it cannot be


def split_validation(x, y, fraction: float, seed: int):
    """``(x_train, y_train), (x_val, y_val)``: a random ``fraction`` of the samples (drawn
    from ``seed``) held out for validation; ``(x, y), None`` when ``fraction`` is 0.

    Raises:
        ValueError: the fraction leaves no sample to validate on, or none to train on.
    """
    if not fraction:
        return (x, y), None
    count = int(round(fraction * len(x)))
    if not 1 <= count < len(x):
        raise ValueError(f"--validation-split {fraction:g} of {len(x)} training images holds out "
                         f"{count}; it must leave at least one to validate on and one to train on")
    order = np.random.default_rng(seed).permutation(len(x))
    held_out, kept = np.sort(order[:count]), np.sort(order[count:])
    return (x[kept], y[kept]), (x[held_out], y[held_out])


def _model(args, dataset):
    """(model, class names, a label for messages, the model file to write).

    The model file is ``--out``/model.h5; without ``--out``, ``runs/<network>/model.h5`` for a
    new network and the file itself for a saved model (training continues in place).
    """
    if args.model in networks.NAMES:
        model = networks.build(args.model, dataset.input_shape, len(dataset.class_names))
        model.compile(optimizer=networks.default_optimizer(args.model, args.optimizer, args.lr),
                      loss="categorical_crossentropy", metrics=["accuracy"])
        out = Path(args.out) if args.out else Path("runs") / args.model
        return model, dataset.class_names, f"network {args.model!r}", out / "model.h5"

    path = Path(args.model)
    if path.suffix.lower() not in (".h5", ".hdf5") and not path.is_file():
        raise ValueError(f"unknown model {args.model!r}: expected one of {', '.join(networks.NAMES)} "
                         f"or a saved .h5 file")
    model = read_model(path)
    if args.optimizer is not None or model.loss is None:
        optimizer = optimizers.get(args.optimizer or "sgd", args.lr)
        model.compile(optimizer=optimizer, loss=model.loss or "categorical_crossentropy",
                      metrics=model.metrics or ["accuracy"])
        print(f"{path}: training continues with a new {optimizer.get_config()['name']} optimizer")
    elif args.lr is not None:
        model.optimizer.learning_rate = args.lr  # the optimizer keeps its state (momenta, steps)
    names = class_names(model, dataset.class_names)
    return model, names, str(path), (Path(args.out) / "model.h5" if args.out else path)


def _continued_history(history_file: Path, history, first_epoch: int) -> dict:
    """This run's history, after the earlier epochs' when ``history_file`` holds exactly the
    epochs 1..first_epoch with the same keys (training continued in the same directory)."""
    record = {"epoch": [epoch + 1 for epoch in history.epoch], **{k: list(v) for k, v in history.items()}}
    if first_epoch == 0 or not history_file.is_file():
        return record
    try:
        earlier = json.loads(history_file.read_text())
    except (OSError, ValueError):
        return record
    if (isinstance(earlier, dict) and set(earlier) == set(record)
            and earlier.get("epoch") == list(range(1, first_epoch + 1))):
        return {key: list(earlier[key]) + record[key] for key in record}
    return record


def write_history(record: dict, json_file, csv_file) -> None:
    """The per-epoch record as JSON (a dict of lists) and as CSV (a row per epoch)."""
    with atomic_write(json_file, "w") as stream:
        json.dump(record, stream, indent=2)
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(list(record))
    writer.writerows(zip(*record.values()))
    with atomic_write(csv_file, "w") as stream:
        stream.write(table.getvalue())
