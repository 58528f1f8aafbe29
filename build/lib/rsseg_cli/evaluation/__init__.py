"""Evaluation: a global confusion matrix (confusion.py), metrics from it (metrics.py), report files and the
console table (report.py), and whole-scene evaluation of a predicted mask against labels (scene.py)."""
