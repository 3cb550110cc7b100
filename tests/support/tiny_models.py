"""Tiny models and data for the integration tests (Lightning, Transformers): built from code,
nothing downloaded. Import it after ``pytest.importorskip`` of the libraries it needs."""

from __future__ import annotations

import lightning
import torch
import transformers


class TinyRegressor(lightning.LightningModule):
    """A regressor logging ``train_loss`` every step and ``val_loss`` every epoch."""

    def __init__(self, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)
        )

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def loader(seed: int):
    """64 samples in batches of 16: 4 steps an epoch."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 3, generator=gen)
    y = x.sum(dim=1, keepdim=True)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)


class Pairs(torch.utils.data.Dataset):
    """Token ids labelled by their first token."""

    def __init__(self, n: int, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, 50, (n, 6), generator=gen)
        self.labels = (self.ids[:, 0] > 25).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def tiny_bert():
    """A one-layer BERT classifier made from a config (nothing downloaded)."""
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=2,
    )
    return transformers.BertForSequenceClassification(config)


def quiet_trainer(tmp_path: object, epochs: int, **options: object) -> lightning.Trainer:
    """A CPU Lightning trainer logging every step, without checkpoints or progress output."""
    return lightning.Trainer(
        max_epochs=epochs,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        accelerator="cpu",
        **options,
    )


def training_args(tmp_path: object, **options: object) -> transformers.TrainingArguments:
    """Two CPU epochs of batches of 8, logging every step and evaluating every epoch."""
    settings: dict = {
        "num_train_epochs": 2,
        "per_device_train_batch_size": 8,
        "learning_rate": 1e-3,
        "logging_steps": 1,
        "eval_strategy": "epoch",
        "save_strategy": "no",
        "report_to": [],
        "use_cpu": True,
        "disable_tqdm": True,
        "seed": 0,
    }
    return transformers.TrainingArguments(output_dir=str(tmp_path), **{**settings, **options})
