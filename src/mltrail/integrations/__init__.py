"""Thin adapters from training frameworks to :mod:`mltrail.sdk`.

- :mod:`mltrail.integrations.lightning`: ``MltrailLogger`` for PyTorch Lightning.
- :mod:`mltrail.integrations.keras`: ``MltrailCallback`` for Keras 3.
- :mod:`mltrail.integrations.transformers`: ``MltrailCallback`` for the Hugging Face ``Trainer``.

Each records metrics per step and per epoch and the weights hash at every epoch end, and turns
a stop request into the framework's own "stop training" flag. Import the module you need; this
package imports none of the frameworks.
"""
