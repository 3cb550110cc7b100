"""Benchmarks of mltrail side by side with MLflow-compatible peers (MLflow, FastTrackML):
``python -m bench [--quick] [--vs mlflow] [--vs fasttrackml]``."""
