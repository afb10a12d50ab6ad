"""Check and time padm's CUDA path on a GPU machine (one short run; prints and saves a JSON report).

    python scripts/gpu_check.py --out gpu_check.json [--golden padm_official_small_f64.pt]

1. Selective scan: the ``cuda`` backend (mamba-ssm's kernel when installed, else the ``parallel``
   PyTorch scan) and ``parallel`` against ``reference`` on the GPU — outputs and all input gradients,
   max relative error, and the median time of forward and forward+backward per backend.
2. The golden fixture of the official code (float64) reproduced on the GPU.
3. The ``paper`` network: CPU output vs GPU output (float32, and under bfloat16 autocast), and the
   median forward time at 256x256 and 481x321.
4. Training throughput of the ``small`` preset (batch 8, 64x64 crops, official loss, AdamW, bf16
   autocast) in iterations per second.

``--device cpu --quick`` is a dry run of the same code on the CPU at tiny sizes.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import click
import torch

from padm.engine.losses import unfolding_loss
from padm.ops import backend
from padm.ops import scan as S
from padm.unfolding.tasks.derain.config import PADMConfig
from padm.unfolding.tasks.derain.model import PADM
from padm.unfolding.tasks.derain.official import load_official


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median_time(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def _scan_inputs(dim: int, n: int, length: int, device: torch.device):
    g = torch.Generator().manual_seed(0)
    u = torch.randn(1, dim, length, generator=g)
    delta = torch.randn(1, dim, length, generator=g) * 0.5
    A = -torch.rand(dim, n, generator=g) * 2 - 0.1
    B = torch.randn(1, n, length, generator=g)
    C = torch.randn(1, n, length, generator=g)
    D = torch.randn(dim, generator=g)
    z = torch.randn(1, dim, length, generator=g)
    bias = torch.randn(dim, generator=g) * 0.1
    return [t.to(device).requires_grad_(True) for t in (u, delta, A, B, C, D, z, bias)]


def check_scan(device, shapes, repeats):
    rows = []
    for dim, length in shapes:
        args = _scan_inputs(dim, 16, length, device)

        def run(backend):
            u, delta, A, B, C, D, z, bias = args
            return S.selective_scan(u, delta, A, B, C, D, z, bias, delta_softplus=True, backend=backend)

        ref = run("reference")
        grads_ref = torch.autograd.grad(ref, args, torch.ones_like(ref))
        for backend in ("cuda", "parallel"):
            out = run(backend)
            grads = torch.autograd.grad(out, args, torch.ones_like(out))
            fwd = _median_time(lambda: run(backend).detach(), device, repeats)

            def fwd_bwd():
                o = run(backend)
                torch.autograd.grad(o, args, torch.ones_like(o))

            rows.append({
                "D": dim, "L": length, "backend": backend,
                "kernel": "mamba-ssm" if backend == "cuda" and S.mamba_kernel_available() else "pytorch",
                "out_rel_err": _rel(out, ref),
                "grad_rel_err": max(_rel(a, b) for a, b in zip(grads, grads_ref)),
                "fwd_s": fwd, "fwd_bwd_s": _median_time(fwd_bwd, device, repeats),
            })
            print(rows[-1], flush=True)
        rows.append({"D": dim, "L": length, "backend": "reference",
                     "fwd_s": _median_time(lambda: run("reference").detach(), device, max(1, repeats // 2))})
        print(rows[-1], flush=True)
    return rows


def check_golden(path: Path, device):
    golden = torch.load(path, map_location="cpu", weights_only=True)
    cfg, sd = load_official(golden["state_dict"])
    model = PADM(cfg).double().eval().to(device)
    model.load_state_dict(sd, strict=True)
    with torch.no_grad(), backend.use("cuda"):
        out = model(golden["input"].to(device))
    err = max((a.cpu() - b).abs().max().item() for a, b in zip(out.B + out.R, golden["B"] + golden["R"]))
    print({"golden_max_abs_err_f64": err}, flush=True)
    return err


def check_model(device, sizes, repeats):
    torch.manual_seed(0)
    cfg = PADMConfig.preset("paper")
    cpu_model = PADM(cfg).eval()
    gpu_model = PADM(cfg).eval().to(device)
    gpu_model.load_state_dict(cpu_model.state_dict())
    x = torch.rand(1, 3, 67, 93)  # odd size: padding and cropping on both paths
    report = {}
    with torch.no_grad():
        ref = cpu_model(x).B[-1]
        report["cpu_vs_gpu_max_abs_f32"] = (gpu_model(x.to(device)).B[-1].cpu() - ref).abs().max().item()
        if device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                report["cpu_vs_gpu_max_abs_bf16_autocast"] = (
                    gpu_model(x.to(device)).B[-1].float().cpu() - ref).abs().max().item()
        for h, w in sizes:
            xi = torch.rand(1, 3, h, w, device=device)
            report[f"paper_forward_{w}x{h}_s"] = _median_time(lambda: gpu_model(xi), device, repeats)
    print(report, flush=True)
    return report


def check_training(device, steps, patch):
    torch.manual_seed(0)
    model = PADM(PADMConfig.preset("small")).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4)
    clean = torch.rand(8, 3, patch, patch, device=device)
    rainy = (clean + 0.3 * torch.rand_like(clean)).clamp(0, 1)
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)

    def step():
        with ctx:
            out = model(rainy)
            loss, _ = unfolding_loss([("B", out.B, clean), ("R", out.R, rainy - clean)])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    losses = [step().item() for _ in range(3)]  # warm-up
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    report = {"small_train_it_s_batch8_64px": steps / (time.perf_counter() - start), "first_losses": losses}
    print(report, flush=True)
    return report


@click.command()
@click.option("--device", "device_name", default="cuda", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="JSON report")
@click.option("--golden", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="the official code's golden fixture (padm_official_small_f64.pt)")
@click.option("--quick", is_flag=True, help="tiny sizes (a dry run)")
def main(device_name, out, golden, quick):
    device = torch.device(device_name)
    report = {"torch": torch.__version__, "device": torch.cuda.get_device_name(device) if device.type == "cuda"
              else "cpu", "mamba_kernel": S.mamba_kernel_available()}
    print(report, flush=True)
    if quick:
        shapes, sizes, repeats, steps, patch = [(8, 64)], [(33, 47)], 2, 2, 32
    else:
        shapes, sizes, repeats, steps, patch = [(80, 4096), (160, 4096), (160, 16384)], [(256, 256), (321, 481)], 10, 20, 64
    report["scan"] = check_scan(device, shapes, repeats)
    if golden is not None:
        report["golden_max_abs_err_f64"] = check_golden(golden, device)
    report["model"] = check_model(device, sizes, repeats)
    report["train"] = check_training(device, steps, patch)
    if out is not None:
        out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
