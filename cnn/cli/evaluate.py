"""``cnn evaluate`` (accuracy, loss and a per-class report on a test set) and ``cnn summary``."""

from __future__ import annotations

from cnn.cli.data import load_dataset
from cnn.cli.modelfile import check_classes, check_fits, class_names, read_model, trained_dataset
from cnn.saving.h5_format import read_metadata
from cnn.utils.report import classification_report, format_report


def run(args) -> int:
    model = read_model(args.model)
    spec = args.dataset or trained_dataset(args.model, model)
    dataset = load_dataset(spec, verbose=1)
    check_fits(model, dataset, str(args.model))
    check_classes(model, dataset, str(args.model))
    names = class_names(model, dataset.class_names)
    if model.loss is None:
        model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    try:
        results = model.evaluate(dataset.x_test, dataset.y_test, batch_size=args.batch_size,
                                 return_dict=True, workers=args.workers)
        predicted = model.predict_classes(dataset.x_test, batch_size=args.batch_size,
                                          workers=args.workers)
    finally:
        model.close_workers()
    report = classification_report(dataset.y_test, predicted, names)
    print(f"{args.model} on the {len(dataset.x_test)} test images of {dataset.name}:")
    print(f"accuracy {report['accuracy']:.4f}, loss {results['loss']:.4f}")
    print()
    print(format_report(report))
    return 0


def summary(args) -> int:
    model = read_model(args.model)
    model.summary()
    names = class_names(model)
    print(f"classes: {', '.join(names)}")
    dataset = read_metadata(args.model).get("dataset")
    if dataset:
        print(f"trained on: {dataset}")
    print(f"trained epochs: {model.epoch}")
    return 0
