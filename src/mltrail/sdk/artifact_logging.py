"""``exp.log_artifact`` and ``exp.log_checkpoint``: the training thread's side of uploads.

Each call does one local write (a copy of the file, or the model saved once; a PyTorch model on
the CPU is copied in memory instead and written by the uploader) and queues the upload for :class:`~mltrail.sdk.uploads.Uploader`; hashing and sending happen in its thread.
"""

from __future__ import annotations

import os
from concurrent.futures import Future
from typing import Any

from mltrail.sdk.uploads import Uploader, queue_checkpoint, queue_files


class ArtifactLogging:
    """The artifact methods of :class:`mltrail.sdk.experiment.Experiment`."""

    _uploads: Uploader
    _ended: bool

    def _warn_after_end(self) -> None:
        raise NotImplementedError

    def _point(self, iteration: int | None, epoch: int | None) -> tuple[int, int | None]:
        raise NotImplementedError

    def log_artifact(
        self, path: str | os.PathLike[str], name: str | None = None, *, copy: bool = True
    ) -> list[str]:
        """Store a file, or every file under a folder, with the experiment.

        The file is copied locally (one write) and uploaded by a background thread, spooled
        while the store is unreachable; the training loop never waits for the network.

        Args:
            path: a local file or folder.
            name: its path in the experiment's tree (``reports/confusion.png``); the file or
                folder's own name by default. A folder's files keep their relative paths.
            copy: False uploads the file in place, without the local copy (it must then not
                change until uploaded).

        Returns:
            The artifact paths queued.

        Raises:
            ValidationError: no such file or folder, or a name with ``..``, a leading ``/`` ...
        """
        if self._ended:
            self._warn_after_end()
            return []
        return queue_files(self._uploads, os.fspath(path), name, copy=copy)

    def log_checkpoint(
        self,
        model_or_path: Any,
        iteration: int | None = None,
        epoch: int | None = None,
        *,
        name: str | None = None,
    ) -> Future[str]:
        """Store a checkpoint and link its weights hash to this point of the experiment.

        A model (PyTorch module or state_dict, Keras model, numpy arrays) is saved once to a
        local file (``torch.save(state_dict)``: it loads with ``torch.load(weights_only=True)``);
        a checkpoint file (``.pt``, ``.ckpt``, ``.safetensors``, ``.keras``, ``.npz`` ...) is
        copied once. The weights hash (as :func:`mltrail.weights_hash` defines it) is then read
        from that file and the file uploaded, both in a background thread. A PyTorch model on
        the CPU is copied in memory instead (the weights as they are at this call) and saved,
        hashed and uploaded by that thread, one copy held at most; ``mltrail models
        download --weights-hash H`` fetches it back.

        Args:
            model_or_path: the model, or a checkpoint file's path.
            iteration / epoch: the point it belongs to; the current ones by default.
            name: its path in the tree; ``checkpoints/epoch-0003.pt`` (or the file's name under
                ``checkpoints/``) by default.

        Returns:
            A future resolving to the weights hash once it is computed.

        Raises:
            ValidationError: an unknown kind of model or file, or a bad name.
        """
        if self._ended:
            self._warn_after_end()
            done: Future[str] = Future()
            done.cancel()
            return done
        model = (
            os.fspath(model_or_path) if isinstance(model_or_path, os.PathLike) else model_or_path
        )
        return queue_checkpoint(self._uploads, model, self._point(iteration, epoch), name)
