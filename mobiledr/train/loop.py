"""The training loop: two-stage transfer learning, class weights, mixed precision, DDP, resume.

Run in one process, or under ``torchrun --nproc_per_node=N -m mobiledr train ...`` (NCCL on GPUs,
gloo on CPUs). Only rank 0 writes. Every epoch ends with an atomic ``last.pt`` holding the
optimizer, scheduler, scaler and RNG state, so ``--resume`` continues exactly where a crash or kill
left off; ``best.pt`` is the epoch with the best validation AUC (QWK for ``icdr-5``), finished with
the temperature, the operating threshold and the out-of-distribution statistics.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from mobiledr.data.cache import Cache
from mobiledr.data.dataset import Augment, CachedDataset
from mobiledr.data.labels import get_scheme
from mobiledr.data.photometric import Photometric
from mobiledr.data.splits import SplitFile
from mobiledr.errors import MobiledrError
from mobiledr.io import atomic_write_csv, atomic_write_json, atomic_write_text
from mobiledr.models import MobileDRNet, build_model
from mobiledr.plots import save_figure
from mobiledr.progress import progress_bar
from mobiledr.train.calibration import fit_temperature
from mobiledr.train.checkpoint import Checkpoint, provenance
from mobiledr.train.config import TrainConfig
from mobiledr.train.inference import Classifier, predict
from mobiledr.train.metrics import auc_scores, quadratic_kappa
from mobiledr.train.ood import fit_ood
from mobiledr.train.threshold import choose_threshold

log = logging.getLogger(__name__)
HISTORY_FIELDS = ["epoch", "stage", "lr", "train_loss", "val_loss", "val_score", "val_accuracy", "images_per_s", "seconds"]


@dataclass(frozen=True)
class Runtime:
    """Where this process runs: its rank in the job and its device."""

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_runtime() -> Runtime:
    """One process, or one rank of a ``torchrun`` job (environment variables set by torchrun)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return Runtime(dist.get_rank() if world > 1 else 0, world, device)


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """fp16 on CUDA for ``auto``; bf16 only where the device supports it; ``None`` = full precision."""
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    if mode == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise MobiledrError("amp=bf16: this GPU does not support bfloat16")
        return torch.bfloat16
    if device.type != "cuda":
        raise MobiledrError("amp=fp16 needs a CUDA GPU; use amp=bf16 or amp=off on the CPU")
    return torch.float16


def validation_score(metric: str, labels: np.ndarray, probs: np.ndarray) -> float:
    """ROC-AUC (binary: positive class; multi-class: one-vs-rest macro), or quadratic weighted kappa."""
    if metric == "qwk":
        return quadratic_kappa(labels, probs.argmax(axis=1))
    return auc_scores(labels, probs).roc_auc


class StageSchedule:
    """Per-epoch LR factor within a stage: linear warm-up, then cosine decay (a picklable callable)."""

    def __init__(self, epochs: int, warmup: int, kind: str) -> None:
        self.epochs, self.warmup, self.kind = epochs, warmup, kind

    def __call__(self, epoch: int) -> float:
        if self.kind == "constant":
            return 1.0
        if epoch < self.warmup:
            return (epoch + 1) / (self.warmup + 1)
        progress = (epoch - self.warmup) / max(1, self.epochs - self.warmup)
        return max(0.01, 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


class Trainer:
    """One training run in ``out``; construct, then :meth:`run`."""

    def __init__(self, config: TrainConfig, cache_dir: Path, splits_path: Path, out: Path, runtime: Runtime) -> None:
        self.config, self.out, self.rt = config, out, runtime
        self.cache = Cache.open(cache_dir)
        if (self.cache.spec.size, self.cache.spec.mode) != (config.preprocess.size, config.preprocess.mode):
            raise MobiledrError(
                f"{cache_dir}: prepared at {self.cache.spec.size}px ({self.cache.spec.mode}), the config wants "
                f"{config.preprocess.size}px ({config.preprocess.mode}); prepare a matching cache or change preprocess.size"
            )
        self.splits = SplitFile.read(splits_path)
        self.provenance = provenance(splits_path, cache_dir)
        if self.splits.scheme != config.scheme:
            raise MobiledrError(f"{splits_path}: made for scheme {self.splits.scheme}, the config uses {config.scheme}")
        self.scheme = get_scheme(config.scheme, self.cache.records, self.splits.positive)
        if len(self.scheme.classes) != config.model.num_classes:
            raise MobiledrError(
                f"scheme {config.scheme} has {len(self.scheme.classes)} classes, the model {config.model.num_classes}; "
                f"--set model.num_classes={len(self.scheme.classes)}"
            )
        self.metric = "qwk" if config.scheme == "icdr-5" else "auc"
        augment = Augment() if config.augment else None
        self.train_set = CachedDataset(self.cache, self.splits, "train", augment, seed=config.seed)
        self.val_set = CachedDataset(self.cache, self.splits, "val")
        counts = np.bincount(self.train_set.labels, minlength=len(self.scheme.classes))
        empty = [self.scheme.classes[c] for c in np.flatnonzero(counts == 0)]
        if empty:
            raise MobiledrError(f"{splits_path}: class {empty[0]!r} has no training images")
        self.class_counts = counts
        weights = counts.sum() / (len(counts) * counts) if config.class_weights else np.ones(len(counts))
        self.criterion = nn.CrossEntropyLoss(torch.tensor(weights, dtype=torch.float32, device=runtime.device), label_smoothing=config.label_smoothing)
        self.eval_criterion = nn.CrossEntropyLoss(torch.tensor(weights, dtype=torch.float32, device=runtime.device))

        torch.manual_seed(config.seed)
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.model: MobileDRNet = build_model(config.model, pretrained=config.pretrained or None).to(runtime.device, memory_format=self.memory_format)
        for module in self.model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = config.bn_momentum
        self.photometric = Photometric(config.preprocess).to(runtime.device)
        self.dtype = amp_dtype(config.amp, runtime.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16)
        groups = [
            {"params": list(self.model.features.parameters()), "lr": 0.0},
            {"params": list(self.model.attention.parameters()) + list(self.model.head.parameters()), "lr": config.head_lr},
        ]
        optimizer_type = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = optimizer_type(groups, weight_decay=config.weight_decay)
        self.scheduler: Any = None
        self.stage = 0
        self.ddp: nn.Module = self.model
        self.history: list[dict[str, Any]] = []
        self.best_score = -math.inf
        self.bad_epochs = 0
        self.start_epoch = 0

    # -- stages -----------------------------------------------------------------------------------
    def enter_stage(self, stage: int) -> None:
        """Stage 1 freezes the backbone (BN in eval mode); stage 2 trains everything at ``lr``."""
        config = self.config
        self.stage = stage
        frozen = stage == 1
        for p in self.model.features.parameters():
            p.requires_grad_(not frozen)
        lrs = (0.0, config.head_lr) if frozen else (config.lr, config.lr)
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = group["initial_lr"] = lr
        epochs = config.freeze_epochs if frozen else config.epochs - config.freeze_epochs
        if config.schedule == "plateau":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, mode="max", factor=0.5, patience=2)
        else:
            schedule = StageSchedule(epochs, min(config.warmup_epochs, max(0, epochs - 1)), config.schedule)
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, [schedule, schedule])
        if self.rt.world > 1:
            device_ids = [self.rt.device.index] if self.rt.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.model, device_ids=device_ids)
        else:
            self.ddp = self.model

    def _stage_of(self, epoch: int) -> int:
        return 1 if epoch < self.config.freeze_epochs else 2

    # -- resume -----------------------------------------------------------------------------------
    def _resume_state(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "history": self.history,
            "best_score": self.best_score,
            "bad_epochs": self.bad_epochs,
        }

    def resume_from(self, checkpoint: Checkpoint) -> None:
        state = checkpoint.resume
        if not state:
            raise MobiledrError(f"{self.out / 'last.pt'}: holds no training state to resume from")
        self.model.load_state_dict(checkpoint.state_dict)
        self.start_epoch = checkpoint.epoch
        if self.start_epoch >= self.config.epochs:
            return
        self.enter_stage(self._stage_of(self.start_epoch))
        fresh_lrs = [group["lr"] for group in self.optimizer.param_groups]
        self.optimizer.load_state_dict(state["optimizer"])  # Adam moments carry across the stage change
        if self._stage_of(self.start_epoch - 1) == self.stage:
            self.scheduler.load_state_dict(state["scheduler"])
        else:  # resuming exactly at the stage change: the new stage starts at its own rates
            for group, lr in zip(self.optimizer.param_groups, fresh_lrs):
                group["lr"] = group["initial_lr"] = lr
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        self.history = list(state["history"])
        self.best_score = float(state["best_score"])
        self.bad_epochs = int(state["bad_epochs"])

    # -- one epoch --------------------------------------------------------------------------------
    def loader(self, dataset: CachedDataset, shuffle: bool) -> tuple[DataLoader, DistributedSampler]:
        sampler = DistributedSampler(dataset, num_replicas=self.rt.world, rank=self.rt.rank, shuffle=shuffle, seed=self.config.seed, drop_last=False)
        loader = DataLoader(dataset, batch_size=self.config.batch_size, sampler=sampler, num_workers=self.config.workers, persistent_workers=False)
        return loader, sampler

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """One optimisation step on a batch of geometric-stage images; returns the loss (a NaN
        or infinite loss is returned before any weight changes)."""
        images = images.to(self.rt.device, non_blocking=True)
        labels = labels.to(self.rt.device, non_blocking=True)
        with torch.autocast(self.rt.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            inputs = self.photometric(images).contiguous(memory_format=self.memory_format)
            loss = self.criterion(self.ddp(inputs).float(), labels)
        value = loss.item()
        if not math.isfinite(value):
            return value
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return value

    def _train_epoch(self, epoch: int) -> tuple[float, float]:
        loader, sampler = self.loader(self.train_set, shuffle=True)
        sampler.set_epoch(epoch)
        self.train_set.set_epoch(epoch)
        self.ddp.train()
        if self.stage == 1:
            self.model.features.eval()
        total_loss, seen, start = 0.0, 0, time.perf_counter()
        with progress_bar(f"epoch {epoch + 1}/{self.config.epochs}", total=len(loader)) as bar:
            for step, (images, labels) in enumerate(loader):
                loss = self.train_step(images, labels)
                if not math.isfinite(loss):
                    last = self.out / "last.pt"
                    kept = f"last good checkpoint: {last}" if last.exists() else "no checkpoint was written yet"
                    raise MobiledrError(f"epoch {epoch + 1}, step {step + 1}: loss is {loss}; training stopped ({kept})")
                total_loss += loss * len(labels)
                seen += len(labels)
                if self.rt.main:
                    bar.advance()
                    bar.describe(f"epoch {epoch + 1}/{self.config.epochs} loss {total_loss / seen:.4f} {seen * self.rt.world / (time.perf_counter() - start):.1f} img/s")
        totals = torch.tensor([total_loss, seen], dtype=torch.float64)
        if self.rt.world > 1:
            dist.all_reduce(totals)
        return float(totals[0] / totals[1]), float(totals[1]) / (time.perf_counter() - start)

    def _validate(self) -> tuple[float, float, float]:
        """Validation loss, score and accuracy over the whole split (each rank a shard, gathered)."""
        loader, _ = self.loader(self.val_set, shuffle=False)
        self.model.eval()
        logits, labels = [], []
        indices = list(iter(loader.sampler))  # this rank's shard, padded with repeats to equal length
        with torch.no_grad():
            for images, targets in loader:
                inputs = self.photometric(images.to(self.rt.device)).contiguous(memory_format=self.memory_format)
                logits.append(self.model(inputs).float().cpu())
                labels.append(targets)
        ordered = torch.cat(logits), torch.cat(labels)
        if self.rt.world > 1:
            shards: list[Any] = [None] * self.rt.world
            dist.all_gather_object(shards, (indices, ordered[0], ordered[1]))
            by_index: dict[int, tuple[torch.Tensor, int]] = {}
            for idx, lg, lb in shards:
                for i, row, label in zip(idx, lg, lb):
                    by_index.setdefault(i, (row, int(label)))  # DistributedSampler pads with repeats
            keys = sorted(by_index)
            ordered = torch.stack([by_index[k][0] for k in keys]), torch.tensor([by_index[k][1] for k in keys])
        all_logits, all_labels = ordered
        loss = float(self.eval_criterion(all_logits.to(self.rt.device), all_labels.to(self.rt.device)))
        probs = torch.softmax(all_logits, dim=1).numpy()
        score = validation_score(self.metric, all_labels.numpy(), probs)
        accuracy = float((probs.argmax(axis=1) == all_labels.numpy()).mean())
        return loss, score, accuracy

    # -- outputs ----------------------------------------------------------------------------------
    def _checkpoint(self, epoch: int, resume: dict[str, Any] | None = None, **extra: Any) -> Checkpoint:
        return Checkpoint(
            model_config=self.config.model,
            preprocess=self.config.preprocess,
            labels=list(self.scheme.classes),
            scheme=self.config.scheme,
            positive=self.scheme.positive,
            state_dict={k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            epoch=epoch,
            metric=self.metric,
            train_config=self.config.to_dict(),
            provenance=self.provenance,
            resume=resume,
            **extra,
        )

    def _write_logs(self) -> None:
        rows = [[row[f] for f in HISTORY_FIELDS] for row in self.history]
        atomic_write_csv(self.out / "metrics.csv", HISTORY_FIELDS, rows)
        atomic_write_text(self.out / "metrics.jsonl", "".join(json.dumps(row) + "\n" for row in self.history))
        epochs = [row["epoch"] for row in self.history]
        fig = Figure(figsize=(10, 3.8))
        ax_loss, ax_score = fig.subplots(1, 2)
        ax_loss.plot(epochs, [r["train_loss"] for r in self.history], "o-", label="train")
        ax_loss.plot(epochs, [r["val_loss"] for r in self.history], "o-", label="validation")
        ax_loss.set(xlabel="epoch", ylabel="weighted cross-entropy", title="loss")
        ax_loss.legend()
        ax_score.plot(epochs, [r["val_score"] for r in self.history], "o-", color="tab:green")
        ax_score.set(xlabel="epoch", ylabel=self.metric.upper(), title=f"validation {self.metric.upper()}")
        for ax in (ax_loss, ax_score):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if 0 < self.config.freeze_epochs < self.config.epochs:
                ax.axvline(self.config.freeze_epochs + 0.5, color="grey", ls="--", lw=1, label="backbone unfrozen")
        save_figure(fig, self.out / "curves.png")

    def _finish_best(self) -> Checkpoint:
        """Calibrate the best epoch on validation: temperature, operating threshold, OOD statistics."""
        best = Checkpoint.load(self.out / "best.pt")
        model = best.build_model().to(self.rt.device)
        classifier = Classifier(model, self.photometric)
        val = predict(classifier, self.val_set, self.config.batch_size, self.rt.device)
        temperature = fit_temperature(val.logits, val.labels)
        probs = val.probabilities(temperature).numpy()
        threshold = None
        if len(self.scheme.classes) == 2:
            threshold = choose_threshold(val.labels.numpy(), probs[:, 1], self.config.threshold_method, self.config.target_sensitivity)
        train_eval = CachedDataset(self.cache, self.splits, "train")
        train = predict(classifier, train_eval, self.config.batch_size, self.rt.device)
        ood = fit_ood(train.features, train.labels, len(self.scheme.classes), val.features, self.config.ood_accept)
        ood_threshold = ood.threshold
        best.temperature, best.threshold = temperature, threshold
        best.ood = ood
        best.save(self.out / "best.pt")
        summary = {
            "best_epoch": best.epoch,
            f"val_{self.metric}": best.score,
            "temperature": temperature,
            "threshold": threshold,
            "threshold_method": self.config.threshold_method,
            "ood_threshold": ood_threshold,
            "ood_whitening": ood.info,
            "train_class_counts": dict(zip(self.scheme.classes, map(int, self.class_counts))),
        }
        atomic_write_json(self.out / "summary.json", summary)
        return best

    # -- the run ----------------------------------------------------------------------------------
    def run(self) -> Path:
        config = self.config
        if self.rt.main:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.out / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
        stopped = bool(config.early_stopping) and self.bad_epochs >= config.early_stopping  # resumed after it stopped early
        if stopped and self.rt.main:
            log.info("the run stopped early after epoch %d (no better validation %s for %d epochs): not training further", self.start_epoch, self.metric, self.bad_epochs)
        for epoch in range(self.start_epoch, self.start_epoch if stopped else config.epochs):
            if self._stage_of(epoch) != self.stage:
                self.enter_stage(self._stage_of(epoch))
            start = time.perf_counter()
            lr = self.optimizer.param_groups[1]["lr"]
            train_loss, throughput = self._train_epoch(epoch)
            val_loss, score, accuracy = self._validate()
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler.step(score)
            else:
                self.scheduler.step()
            improved = score > self.best_score
            self.best_score = max(self.best_score, score) if not math.isnan(score) else self.best_score
            self.bad_epochs = 0 if improved else self.bad_epochs + 1
            row = {
                "epoch": epoch + 1, "stage": self.stage, "lr": lr,
                "train_loss": round(train_loss, 6), "val_loss": round(val_loss, 6), "val_score": round(score, 6),
                "val_accuracy": round(accuracy, 6), "images_per_s": round(throughput, 2), "seconds": round(time.perf_counter() - start, 2),
            }  # fmt: skip
            self.history.append(row)
            if self.rt.main:
                if improved:
                    self._checkpoint(epoch + 1, score=score).save(self.out / "best.pt")
                self._checkpoint(epoch + 1, resume=self._resume_state(), score=score).save(self.out / "last.pt")
                self._write_logs()
                log.info(
                    "epoch %d/%d stage %d: train loss %.4f, val loss %.4f, val %s %.4f%s, %.1f img/s",
                    epoch + 1, config.epochs, self.stage, train_loss, val_loss, self.metric, score, " (best)" if improved else "", throughput,
                )  # fmt: skip
            if config.early_stopping and self.bad_epochs >= config.early_stopping:
                if self.rt.main:
                    log.info("early stopping: no better validation %s for %d epochs", self.metric, self.bad_epochs)
                break
        if self.rt.world > 1:
            dist.barrier()
        if self.rt.main:
            if not (self.out / "best.pt").exists():
                raise MobiledrError(f"{self.out}: no epoch produced a validation score (does the validation split hold every class?)")
            self._finish_best()
        if self.rt.world > 1:
            dist.barrier()
        return self.out / "best.pt"


def train(
    config: TrainConfig | None, cache_dir: str | Path | None, splits_path: str | Path | None, out: str | Path, resume: bool = False
) -> Path:
    """Train into ``out``, or with ``resume`` continue the run there (its saved config, cache and
    split file are used unless others are given); returns ``out/best.pt``."""
    out = Path(out)
    runtime = init_runtime()
    last = out / "last.pt"
    checkpoint = None
    if resume:
        checkpoint = Checkpoint.load(last)
        config = TrainConfig.from_dict(checkpoint.train_config, source=str(last))
        cache_dir = cache_dir or checkpoint.provenance["cache"]
        splits_path = splits_path or checkpoint.provenance["split_file"]
    elif last.exists():
        raise MobiledrError(f"{out}: a run is already there; use --resume to continue it or another --out")
    if config is None or cache_dir is None or splits_path is None:
        raise MobiledrError("training needs a config, a cache (--data) and a split file (--splits)")
    if checkpoint is not None:  # resuming: the split file must be the one the run started with
        SplitFile.read(splits_path, checkpoint.provenance.get("split_sha256"))
    trainer = Trainer(config, Path(cache_dir), Path(splits_path), out, runtime)
    if checkpoint is not None:
        trainer.resume_from(checkpoint)
    try:
        return trainer.run()
    finally:
        if runtime.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
