"""Per-class precision, recall, F1 and support, and their macro averages, as data and as text."""

from __future__ import annotations

import numpy as np

from cnn.utils.confusion import confusion_matrix


def classification_report(y_true, y_pred, class_names) -> dict:
    """Scores of each class from true and predicted class ids.

    Args:
        y_true, y_pred: (m,) integer class ids in ``range(len(class_names))``.
        class_names: ``class_names[i]`` names class i.
    Returns:
        ``{"classes": [{"name", "precision", "recall", "f1", "support"}, ...],
        "macro avg": {"precision", "recall", "f1", "support"}, "accuracy": float,
        "support": m}``. A score whose denominator is 0 (a class never predicted, or with
        no samples) is 0; the macro average is the plain mean over all classes.
    """
    names = [str(name) for name in class_names]
    matrix = confusion_matrix(y_pred, y_true, len(names))
    hits = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    precision = _ratio(hits, predicted)
    recall = _ratio(hits, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    classes = [
        {"name": name, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(names, precision, recall, f1, support)
    ]
    total = int(support.sum())
    return {
        "classes": classes,
        "macro avg": {"precision": float(precision.mean()), "recall": float(recall.mean()),
                      "f1": float(f1.mean()), "support": total},
        "accuracy": float(hits.sum() / total) if total else 0.0,
        "support": total,
    }


def format_report(report: dict, digits: int = 4) -> str:
    """The report as a table, one row per class, then accuracy and the macro average."""
    width = max([len(c["name"]) for c in report["classes"]] + [len("macro avg")])
    number = max(digits + 3, len("precision"))
    header = f"{'':>{width}}  {'precision':>{number}}  {'recall':>{number}}  {'f1-score':>{number}}  support"
    lines = [header]

    def row(name, scores):
        return (f"{name:>{width}}  {scores['precision']:>{number}.{digits}f}  "
                f"{scores['recall']:>{number}.{digits}f}  {scores['f1']:>{number}.{digits}f}  "
                f"{scores['support']:>7}")

    lines += [row(c["name"], c) for c in report["classes"]]
    lines.append("")
    blank = " " * number
    lines.append(f"{'accuracy':>{width}}  {blank}  {blank}  {report['accuracy']:>{number}.{digits}f}  "
                 f"{report['support']:>7}")
    lines.append(row("macro avg", report["macro avg"]))
    return "\n".join(lines)


def _ratio(numerator, denominator) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)
