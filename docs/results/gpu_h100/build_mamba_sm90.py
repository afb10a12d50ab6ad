"""Build mamba-ssm's selective_scan_cuda for sm_90 only (device check helper; not part of padm)."""
import os, sys, time
os.environ["MAX_JOBS"] = "16"
os.environ["TORCH_CUDA_ARCH_LIST"] = "9.0"
from torch.utils.cpp_extension import load
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
d = os.path.join(src, "csrc", "selective_scan")
names = ["selective_scan.cpp"] + [f"selective_scan_fwd_{t}.cu" for t in ("fp32", "fp16", "bf16")] + [
    f"selective_scan_bwd_{t}_{k}.cu" for t in ("fp32", "fp16", "bf16") for k in ("real", "complex")]
t = time.time()
load(name="selective_scan_cuda", sources=[os.path.join(d, n) for n in names], build_directory=out,
     extra_cflags=["-O3", "-std=c++17"], extra_include_paths=[d],
     extra_cuda_cflags=["-O3", "-std=c++17", "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__",
                        "-U__CUDA_NO_BFLOAT16_OPERATORS__", "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
                        "-U__CUDA_NO_BFLOAT162_OPERATORS__", "-U__CUDA_NO_BFLOAT162_CONVERSIONS__",
                        "--expt-relaxed-constexpr", "--expt-extended-lambda", "--use_fast_math", "-lineinfo"],
     verbose=True)
print(f"built in {time.time() - t:.0f} s", os.listdir(out))
