"""Is the synthetic data learnable, and not by a shortcut? A small CNN on "any DR" (grade 0 vs >= 1).

    python benchmarks/synth_learnability.py [--n 400] [--size 128] [--budget-s 150]

Generates an APTOS-layout data set (``make_dataset``), splits it by patient (no patient in both train
and test), trains a small CNN on CPU for a fixed number of epochs or the time budget, whichever comes
first, and reports the held-out ROC-AUC. As a shortcut check it also reports the AUC of a logistic
regression on each image's mean RGB inside the field: if global colour or brightness gave the
answer away, that number would be close to the CNN's.
Writes ``benchmarks/results/synth_learnability.{json,md}`` with the machine it ran on.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupShuffleSplit
from torch import nn

from mobiledr import __version__
from mobiledr.bench.machine import machine_facts
from mobiledr.bench.results import write_result
from mobiledr.data.synth import make_dataset

RESULTS = Path(__file__).parent / "results"


def circle_crop(img: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Crop to the non-black field (grey > 7), pad to a square, resize; also the field's mean RGB."""
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    mask = grey > 7
    ys, xs = np.nonzero(mask)
    crop = img[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = crop.shape[:2]
    top, left = (max(h, w) - h) // 2, (max(h, w) - w) // 2
    square = cv2.copyMakeBorder(crop, top, max(h, w) - h - top, left, max(h, w) - w - left, cv2.BORDER_CONSTANT, value=0)
    return cv2.resize(square, (side, side), interpolation=cv2.INTER_AREA), img[mask].mean(axis=0)


def load(csv_path: Path, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Images (N, 3, side, side) uint8, grades, patient ids and mean RGB of the field, from the CSV."""
    with csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    images, means = [], []
    for row in rows:
        bgr = cv2.imread(str(csv_path.parent / "train_images" / f"{row['id_code']}.png"), cv2.IMREAD_COLOR)
        crop, mean = circle_crop(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), side)
        images.append(crop.transpose(2, 0, 1))
        means.append(mean)
    grades = np.array([int(r["diagnosis"]) for r in rows])
    return np.stack(images), grades, np.array([r["patient_id"] for r in rows]), np.array(means)


class SmallCNN(nn.Module):
    """Four conv blocks and global max + average pooling: lesions are small, local and few."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        chans = [3, width, 2 * width, 4 * width, 4 * width]
        blocks: list[nn.Module] = []
        for i in range(4):
            blocks += [nn.Conv2d(chans[i], chans[i + 1], 3, padding=1, bias=False), nn.BatchNorm2d(chans[i + 1]), nn.ReLU(inplace=True)]
            if i < 3:
                blocks.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(2 * chans[-1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        pooled = torch.cat([f.amax(dim=(2, 3)), f.mean(dim=(2, 3))], dim=1)
        return self.head(pooled).squeeze(1)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random flips and 90-degree rotations (a fundus has no preferred orientation for DR)."""
    k = int(torch.randint(0, 4, (1,), generator=gen))
    x = torch.rot90(x, k, dims=(2, 3))
    if torch.rand(1, generator=gen) < 0.5:
        x = torch.flip(x, dims=(3,))
    return x


def train(x: torch.Tensor, y: torch.Tensor, epochs: int, budget_s: float, seed: int) -> tuple[SmallCNN, int, float]:
    """Adam with a one-cycle schedule; stops early at the time budget. Returns model, epochs, seconds."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = SmallCNN()
    batch = 32
    steps = epochs * ((len(x) + batch - 1) // batch)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    loss_fn = nn.BCEWithLogitsLoss()
    start, done = time.perf_counter(), 0
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch):
            idx = order[i : i + batch]
            opt.zero_grad()
            loss = loss_fn(model(augment(x[idx], gen)), y[idx])
            loss.backward()
            opt.step()
            sched.step()
        done = epoch + 1
        print(f"epoch {done}: loss {loss.item():.3f}, {time.perf_counter() - start:.0f} s", flush=True)
        if time.perf_counter() - start > budget_s:
            break
    return model, done, time.perf_counter() - start


def predict(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Scores averaged over the 8 flips/rotations of each image."""
    model.eval()
    with torch.inference_mode():
        views = [torch.rot90(v, k, dims=(2, 3)) for v in (x, torch.flip(x, dims=(3,))) for k in range(4)]
        return torch.stack([torch.sigmoid(model(v)) for v in views]).mean(0).numpy()


def bootstrap_ci(labels: np.ndarray, scores: np.ndarray, seed: int, rounds: int = 1000) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of the ROC-AUC (the test set is small)."""
    rng = np.random.default_rng(seed)
    aucs = []
    for _ in range(rounds):
        pick = rng.integers(0, len(labels), len(labels))
        if 0 < labels[pick].sum() < len(pick):
            aucs.append(roc_auc_score(labels[pick], scores[pick]))
    low, high = np.percentile(aucs, [2.5, 97.5])
    return round(float(low), 3), round(float(high), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--size", type=int, default=128, help="frame height of the generated images")
    parser.add_argument("--side", type=int, default=128, help="CNN input side after the circle crop")
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--budget-s", type=float, default=180.0, help="training time limit (a safety net: the epochs should finish first)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        csv_path = make_dataset(Path(tmp), n=args.n, size=args.size, seed=args.seed)
        gen_s = time.perf_counter() - start
        images, grades, patients, means = load(csv_path, args.side)
    labels = (grades >= 1).astype(np.float32)
    train_idx, test_idx = next(GroupShuffleSplit(n_splits=1, test_size=0.25, random_state=args.seed).split(images, labels, patients))
    assert not set(patients[train_idx]) & set(patients[test_idx])

    x = torch.from_numpy(images).float().div_(255)
    mean, std = x[train_idx].mean(dim=(0, 2, 3), keepdim=True), x[train_idx].std(dim=(0, 2, 3), keepdim=True)
    x = (x - mean) / std
    y = torch.from_numpy(labels)
    model, epochs, train_s = train(x[train_idx], y[train_idx], args.epochs, args.budget_s, args.seed)
    scores = predict(model, x[test_idx])
    cnn_auc = roc_auc_score(labels[test_idx], scores)

    rgb = LogisticRegression(max_iter=1000).fit(means[train_idx], labels[train_idx])
    rgb_scores = rgb.predict_proba(means[test_idx])[:, 1]
    rgb_auc = roc_auc_score(labels[test_idx], rgb_scores)

    test_grades = grades[test_idx]
    per_grade = {}
    for g in range(1, 5):
        pick = (test_grades == 0) | (test_grades == g)
        if (test_grades == g).any():
            per_grade[str(g)] = round(float(roc_auc_score(test_grades[pick] == g, scores[pick])), 3)
    report = {
        "mobiledr": __version__,
        "task": "any DR (grade 0 vs >= 1), split by patient",
        "n_images": args.n,
        "frame": f"{round(args.size * 4 / 3)}x{args.size}",
        "cnn_input": f"{args.side}x{args.side} after a grey > 7 circle crop",
        "seed": args.seed,
        "train_images": len(train_idx),
        "test_images": len(test_idx),
        "test_patients": len(set(patients[test_idx])),
        "grade_counts": {str(g): int((grades == g).sum()) for g in range(5)},
        "test_positive_rate": round(float(labels[test_idx].mean()), 3),
        "generate_s": round(gen_s, 1),
        "epochs": epochs,
        "train_s": round(train_s, 1),
        "threads": args.threads,
        "cnn_auc": round(float(cnn_auc), 3),
        "cnn_auc_95ci": bootstrap_ci(labels[test_idx], scores, args.seed),
        "cnn_auc_grade0_vs_grade": per_grade,
        "mean_rgb_logreg_auc": round(float(rgb_auc), 3),
        "mean_rgb_logreg_auc_95ci": bootstrap_ci(labels[test_idx], rgb_scores, args.seed),
        "machine": machine_facts(),
    }
    print(json.dumps(report, indent=2))
    m = report["machine"]
    lines = [
        "# Learnability of the synthetic fundus data (any DR, split by patient)",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} (CPU, {args.threads} threads)",
        "",
        f"- Data: {args.n} images, frame {report['frame']}, seed {args.seed}; images per grade: "
        + ", ".join(f"{g}: {c}" for g, c in report["grade_counts"].items()),
        f"- Split by patient: {len(train_idx)} train / {len(test_idx)} test images ({report['test_patients']} test patients), "
        f"{report['test_positive_rate']:.0%} of test images have DR",
        f"- Small CNN ({sum(p.numel() for p in model.parameters()):,} parameters), input {report['cnn_input']}, "
        f"{epochs} epochs in {report['train_s']} s (limit: {args.epochs} epochs or {args.budget_s:.0f} s)",
        "",
        "| model | held-out ROC-AUC | 95 % bootstrap CI |",
        "|---|---:|---|",
        f"| small CNN | **{report['cnn_auc']}** | {report['cnn_auc_95ci'][0]}-{report['cnn_auc_95ci'][1]} |",
        f"| logistic regression on mean RGB (shortcut check) | {report['mean_rgb_logreg_auc']} | "
        f"{report['mean_rgb_logreg_auc_95ci'][0]}-{report['mean_rgb_logreg_auc_95ci'][1]} |",
        "",
        "CNN AUC of grade 0 against each grade alone (test set): "
        + ", ".join(f"grade {g}: {auc}" for g, auc in per_grade.items())
        + ".",
        "",
    ]
    write_result(RESULTS, "synth_learnability", report, lines)


if __name__ == "__main__":
    main()
