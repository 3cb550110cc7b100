"""Benchmarks of mltrail side by side with MLflow: ``python -m bench [--quick] [--vs mlflow]``."""
