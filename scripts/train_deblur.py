"""Train and evaluate the deblurring network (the second task on the unfolding engine).

    python scripts/train_deblur.py                       # the documented run (about 15 min on 2 CPU cores)
    python scripts/train_deblur.py --steps 50 --out runs/deblur_try

Data: clean images from ``--clean`` (default: the shared Rain100L backgrounds; images 0001-0180 train,
0181-0200 test).  Each training crop gets a random anisotropic Gaussian blur (9x9, sigma 0.6-2.4 px)
and Gaussian noise (std ``--noise``); the test set uses fixed, seeded kernels on 256x256 centre crops.
Loss: L1 over every stage's estimate (deep supervision), AdamW, cosine learning rate.  Writes
``model.pt``, ``log.jsonl`` and ``result.json`` (PSNR of the blurry input and of every stage's output).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import attrs
import click
import torch
import torch.nn.functional as F

from padm.data.images import read_image, to_tensor
from padm.data.layouts import list_images
from padm.engine.checkpoint import atomic_save
from padm.engine.metrics import score
from padm.unfolding.deblur import DeblurConfig, DeblurNet, degrade, random_kernels

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CLEAN = REPO.parent / "shared" / "data" / "Rain100L_train" / "norain"


def load_split(folder: Path, n_train: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    paths, _skipped = list_images(folder)
    if len(paths) <= n_train:
        raise click.ClickException(f"{folder}: need more than {n_train} images, found {len(paths)}")
    images = [to_tensor(read_image(p).pixels) for p in paths]  # (3, H, W) each
    return images[:n_train], images[n_train:]


def random_crops(images, batch: int, patch: int, g: torch.Generator) -> torch.Tensor:
    crops = []
    for _ in range(batch):
        img = images[int(torch.randint(len(images), (1,), generator=g))]
        h, w = img.shape[-2:]
        top = int(torch.randint(h - patch + 1, (1,), generator=g))
        left = int(torch.randint(w - patch + 1, (1,), generator=g))
        crop = img[:, top:top + patch, left:left + patch]
        if torch.rand(1, generator=g) < 0.5:
            crop = crop.flip(-1)
        crops.append(crop)
    return torch.stack(crops)  # (B, 3, patch, patch)


def centre(img: torch.Tensor, size: int) -> torch.Tensor:
    h, w = img.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return img[:, top:top + size, left:left + size]


@torch.no_grad()
def evaluate(model: DeblurNet, test: list[torch.Tensor], noise: float, size: int = 256) -> dict:
    g = torch.Generator().manual_seed(1234)
    psnr_in, psnr_out = [], [[] for _ in range(model.config.stages + 1)]
    model.eval()
    for img in test:
        x = centre(img, size)[None]
        k = random_kernels(1, generator=g)
        y = degrade(x, k, noise, generator=g).clamp(0, 1)
        outs = model(y, k)
        psnr_in.append(float(score(y, x, "rgb")[0][0]))
        for j, o in enumerate(outs):
            psnr_out[j].append(float(score(o.clamp(0, 1), x, "rgb")[0][0]))
    model.train()
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    return {"psnr_blurry": mean(psnr_in), "psnr_stages": [mean(v) for v in psnr_out], "images": len(test)}


@click.command()
@click.option("--clean", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_CLEAN,
              show_default="../shared/data/Rain100L_train/norain")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/deblur"), show_default=True)
@click.option("--n-train", default=180, show_default=True)
@click.option("--steps", default=600, show_default=True)
@click.option("--batch", default=8, show_default=True)
@click.option("--patch", default=64, show_default=True)
@click.option("--lr", default=1e-3, show_default=True)
@click.option("--noise", default=0.01, show_default=True)
@click.option("--n-feat", default=8, show_default=True)
@click.option("--stages", default=2, show_default=True)
@click.option("--seed", default=0, show_default=True)
def main(clean, out, n_train, steps, batch, patch, lr, noise, n_feat, stages, seed):
    """Train the unfolded deblurring network and report its PSNR gain over the blurry input."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    train_imgs, test_imgs = load_split(clean, n_train)
    cfg = DeblurConfig(n_feat=n_feat, stages=stages)
    model = DeblurNet(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    out.mkdir(parents=True, exist_ok=True)
    log = (out / "log.jsonl").open("w")
    start = time.perf_counter()
    for step in range(1, steps + 1):
        for group in opt.param_groups:  # cosine from lr to lr/100
            group["lr"] = lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * (step - 1) / steps)))
        x = random_crops(train_imgs, batch, patch, g)
        k = random_kernels(batch, generator=g)
        y = degrade(x, k, noise, generator=g)
        outs = model(y, k)
        loss = sum(F.l1_loss(o, x) for o in outs)  # every stage supervised
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 25 == 0 or step == steps:
            rec = {"step": step, "loss": loss.item(), "lr": opt.param_groups[0]["lr"],
                   "seconds": round(time.perf_counter() - start, 1)}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            click.echo(f"step {step}/{steps}  loss {rec['loss']:.4f}  {rec['seconds']:.0f} s")
    train_seconds = time.perf_counter() - start
    result = evaluate(model, test_imgs, noise)
    result.update(train_seconds=round(train_seconds, 1), steps=steps, config=attrs.asdict(cfg),
                  threads=torch.get_num_threads())
    atomic_save({"config": attrs.asdict(cfg), "model": model.state_dict()}, out / "model.pt")
    (out / "result.json").write_text(json.dumps(result, indent=2))
    stages_str = ", ".join(f"{p:.2f}" for p in result["psnr_stages"])
    click.echo(f"test PSNR (RGB, {result['images']} images 256x256): blurry {result['psnr_blurry']:.2f} dB -> "
               f"stages [{stages_str}] dB; gain {result['psnr_stages'][-1] - result['psnr_blurry']:+.2f} dB; "
               f"trained {train_seconds / 60:.1f} min")


if __name__ == "__main__":
    main()
