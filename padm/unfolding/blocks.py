r"""Building blocks of the SFPM proximal network and the APGD step-size network.

=================  ===========================================================================
block              role
=================  ===========================================================================
``LayerNorm2d``    LayerNorm over the channels of every pixel (biased variance, eps 1e-5)
``TokenNorm``      ``nn.LayerNorm`` over the channels of tokens (N, L, C), through the fused op
``MambaMixer``     the selective state-space model over a token sequence (Mamba, one direction)
``GDRSS``          the dual-branch CNN × SSM block: a gated local conv branch times the SSM
                   branch over the row-major pixel sequence, then a gated feed-forward network
``GatedFFN``       1×1 expand, depthwise 3×3, GELU gate, 1×1 project
``CAB``            channel-attention residual block (shallow features of image-domain nets)
``FourierFusion``  amplitude of the previous encoder features × phase of the previous decoder
                   features (:func:`padm.ops.fourier.amplitude_phase_fuse`), modulating ``x``
``StepNet``        :math:`S_\beta`: predicts non-negative pixel-wise step sizes from features
``ScalarStep``     ablation: one learned step size, the classic scalar PGD step
=================  ===========================================================================

Shapes are written ``(N, C, H, W)`` for images and ``(N, L, C)`` for token sequences.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from padm.ops.dropout import dropout_add
from padm.ops.fourier import amplitude_phase_fuse
from padm.ops.gated import gated_dwconv
from padm.ops.norm import layer_norm
from padm.ops.scan import causal_conv1d, selective_scan


def conv(c_in: int, c_out: int, k: int, bias: bool = False, groups: int = 1) -> nn.Conv2d:
    """k×k convolution with 'same' zero padding (k odd)."""
    return nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=bias, groups=groups)


class LayerNorm2d(nn.Module):
    """LayerNorm over channels at every pixel: (N, C, H, W) -> (N, C, H, W)."""

    def __init__(self, c: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)  # (N, H, W, C), contiguous rows when x is channels-last
        x = layer_norm(x, self.weight, self.bias, self.eps)  # padm.ops.norm: F.layer_norm, fused on the CPU
        return x.permute(0, 3, 1, 2)


class TokenNorm(nn.LayerNorm):
    """``nn.LayerNorm(c)`` over tokens (N, L, c) -> (N, L, c), the same parameters and state-dict keys,
    computed by :func:`padm.ops.norm.layer_norm` (the fused CPU kernels where they apply)."""

    def forward(self, x: Tensor) -> Tensor:
        return layer_norm(x, self.weight, self.bias, self.eps)


class MambaMixer(nn.Module):
    r"""Mamba's selective SSM over a sequence (N, L, c) -> (N, L, c), as ``mamba_ssm.Mamba``.

    With :math:`E = \text{expand}\cdot c` and :math:`r = \lceil c/16 \rceil`:

    .. math::

        [x, z] &= W_{in} t, \qquad x \leftarrow \operatorname{SiLU}(\operatorname{conv1d}_{causal}(x)) \\
        [\delta, B, C] &= W_x x, \qquad \Delta = \operatorname{softplus}(W_\Delta \delta + b_\Delta),
        \qquad A = -e^{A_{log}} \\
        y &= \operatorname{scan}(x, \Delta, A, B, C) + D x, \qquad
        \text{out} = W_{out}\,(y \cdot \operatorname{SiLU}(z))

    Without gradients on the CPU, a sequence whose 2E-channel projection would exceed :attr:`band_bytes`
    runs in pieces of tokens: each piece's scan starts from the state the previous one ended in, and its
    causal conv1d sees the previous ``d_conv - 1`` tokens, so the numbers are those of the whole sequence,
    while the (N, L, 2E) activations are never allocated (a fresh, page-faulted ``mmap`` of glibc for
    every block over 32 MB: a ``paper`` level-0 projection took 8x longer whole than in pieces).
    """

    band_bytes = 8 << 20  # the 2E-channel activations of one piece, at most (CPU inference)

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2):
        super().__init__()
        self.d_inner = expand * d_model  # E
        self.d_state = d_state  # N
        self.dt_rank = math.ceil(d_model / 16)  # r
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        # A_log[e, n] = log(n + 1): filled from a CPU row, so that a build on the meta device (counting
        # a checkpoint's parameters) needs no Python decomposition of arange
        self.A_log = nn.Parameter(torch.empty(self.d_inner, d_state))  # (E, N)
        with torch.no_grad():
            self.A_log.copy_(torch.arange(1, d_state + 1, dtype=torch.float32, device="cpu").log())
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)
        self._init_dt()

    @torch.no_grad()
    def _init_dt(self, dt_min: float = 1e-3, dt_max: float = 0.1, dt_floor: float = 1e-4) -> None:
        """Mamba's initialisation: Δ = softplus(bias) log-uniform in [dt_min, dt_max]."""
        std = self.dt_rank**-0.5
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        if self.dt_proj.bias.is_meta:  # counting parameters (checkpoint.model_size): no values to draw
            return
        dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_floor)
        self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus

    def forward(self, t: Tensor) -> Tensor:
        n, length, _ = t.shape
        piece = self.band_bytes // max(1, n * 2 * self.d_inner * t.element_size())
        if torch.is_grad_enabled() or t.device.type != "cpu" or piece >= length:
            return self._mix(t)[0]
        piece = max(piece, 256)
        k = self.conv1d.kernel_size[0] - 1  # tokens of conv context before a piece
        out = t.new_empty(n, length, self.out_proj.out_features)  # (N, L, c)
        h = None  # the scan state between pieces (N, E, N_s)
        for l0 in range(0, length, piece):
            l1 = min(length, l0 + piece)
            a = max(0, l0 - k)
            y, h = self._mix(t[:, a:l1], h, skip=l0 - a, last=True)
            out[:, l0:l1] = y
        return out

    def _mix(self, t: Tensor, h0: Tensor | None = None, skip: int = 0,
             last: bool = False) -> tuple[Tensor, Tensor | None]:
        """The block on tokens (N, L, c) whose first ``skip`` are conv context only, the scan starting in
        state ``h0`` (None: zero); returns (out for the tokens after ``skip``, the scan's last state if
        ``last``, else None)."""
        # Activations stay (N, L, E) in memory; the scan reads (N, E, L) transposed views, so no copies.
        xz = self.in_proj(t)  # (N, L, 2E)
        x, z = xz.chunk(2, dim=-1)  # (N, L, E) each
        x = causal_conv1d(x.transpose(1, 2), self.conv1d.weight, self.conv1d.bias, activation="silu")  # (N, E, L)
        x, z = x[:, :, skip:], z[:, skip:]  # the context tokens were only the conv's past
        x_dbl = self.x_proj(x.transpose(1, 2))  # (N, L, r + 2 N_s)
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.linear(dt, self.dt_proj.weight)  # (N, L, E); its bias is added inside the scan
        A = -torch.exp(self.A_log)  # (E, N_s), negative: a stable, decaying state
        y = selective_scan(
            x, dt.transpose(1, 2), A, B.transpose(1, 2), C.transpose(1, 2), self.D, z=z.transpose(1, 2),
            delta_bias=self.dt_proj.bias, delta_softplus=True, return_last_state=last, initial_state=h0,
        )  # (N, E, L), computed in float32 at least, on the run-time backend (padm.ops.backend)
        y, h = y if last else (y, None)
        return self.out_proj(y.transpose(1, 2)), h  # (N, L, c)


class GatedFFN(nn.Module):
    """(N, c, H, W): 1×1 to 2h, depthwise 3×3, GELU(a)·b, 1×1 back to c; h = int(expansion · c).

    Without gradients, an input whose 2h-channel expansion would exceed :attr:`band_bytes` is processed
    in bands of rows (each with one row of context above and below for the 3×3): the same numbers,
    but the large intermediate stays in cache instead of being allocated (and page-faulted in) whole.
    """

    band_bytes = 8 << 20  # the expanded activations of one band, at most (inference)

    def __init__(self, c: int, expansion: float = 2.66):
        super().__init__()
        hidden = int(c * expansion)
        self.project_in = nn.Conv2d(c, 2 * hidden, 1, bias=False)
        self.dwconv = conv(2 * hidden, 2 * hidden, 3, groups=2 * hidden)
        self.project_out = nn.Conv2d(hidden, c, 1, bias=False)

    def _gated(self, x: Tensor) -> Tensor:
        return gated_dwconv(self.project_in(x), self.dwconv.weight)  # (N, h, H, W): GELU(a)·b

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        rows = self.band_bytes // max(1, n * self.project_in.out_channels * w * x.element_size())
        if torch.is_grad_enabled() or rows >= h:
            return self.project_out(self._gated(x))
        rows = max(rows, 8)
        out = torch.empty_like(x)  # (N, c, H, W)
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            a, b = max(0, r0 - 1), min(h, r1 + 1)  # the band and its context rows
            out[:, :, r0:r1] = self.project_out(self._gated(x[:, :, a:b])[:, :, r0 - a:r1 - a])
        return out


class GDRSS(nn.Module):
    r"""The CNN × SSM block (``RSSB`` in the official code), width c, (N, c, H, W) -> same.

    .. math::

        n &= \mathrm{LN}_1(x), \qquad
        m = \mathrm{Mixer}\big(\mathrm{LN}_{blk}(\mathrm{LN}_{tok}(\operatorname{flatten}_{hw}(n)))\big) \\
        x &\leftarrow x + \mathrm{Drop}\big(\mathrm{DW}(n) \odot \operatorname{unflatten}(m)\big)
            \qquad \text{(local conv branch gated by the global SSM branch)} \\
        x &\leftarrow x + \mathrm{Drop}\big(\mathrm{FFN}(\mathrm{LN}_2(x))\big)

    The SSM scans the H·W pixels in row-major order, one direction.  ``ssm=False`` (ablation) drops the
    SSM branch: the local branch alone, ungated.
    """

    def __init__(self, c: int, *, d_state: int = 16, d_conv: int = 4, expand: int = 2, ffn_expansion: float = 2.66,
                 dropout: float = 0.0, ssm: bool = True):
        super().__init__()
        self.norm1 = LayerNorm2d(c)
        self.ssm = ssm
        if ssm:
            self.token_norm = TokenNorm(c)
            self.mixer_norm = TokenNorm(c)
            self.mixer = MambaMixer(c, d_state, d_conv, expand)
        self.local = nn.Sequential(nn.Conv2d(c, c, 1), conv(c, c, 3, bias=True, groups=c))
        self.norm2 = LayerNorm2d(c)
        self.ffn = GatedFFN(c, ffn_expansion)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        n = self.norm1(x)
        branch = self.local(n)  # (N, c, H, W)
        if self.ssm:
            tokens = rearrange(n, "b c h w -> b (h w) c")  # row-major pixel sequence (N, HW, c)
            m = self.mixer(self.mixer_norm(self.token_norm(tokens)))
            branch = branch * rearrange(m, "b (h w) c -> b c h w", h=h, w=w)
        # x + Drop(·): padm.ops.dropout, one pass with a hashed mask on the CPU (x + self.drop(·) elsewhere)
        x = dropout_add(x, branch, self.drop.p, self.training)
        return dropout_add(x, self.ffn(self.norm2(x)), self.drop.p, self.training)


class CAB(nn.Module):
    """Channel-attention block: x + CA(conv → PReLU → conv)(x), CA = sigmoid(1×1(ReLU(1×1(avgpool))))."""

    def __init__(self, c: int, k: int = 3, reduction: int = 4):
        super().__init__()
        self.body = nn.Sequential(conv(c, c, k), nn.PReLU(), conv(c, c, k))
        self.CA = _ChannelAttention(c, reduction)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.CA(self.body(x))


class _ChannelAttention(nn.Module):
    def __init__(self, c: int, reduction: int):
        super().__init__()
        self.conv_du = nn.Sequential(
            nn.Conv2d(c, c // reduction, 1, bias=False), nn.ReLU(), nn.Conv2d(c // reduction, c, 1, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.conv_du(x.mean(dim=(-2, -1), keepdim=True))


class FourierFusion(nn.Module):
    r"""Stage feature fusion in the Fourier domain, width c, all maps depthwise 3×3 with bias.

    .. math::

        x_{rec} = \mathcal{F}^{-1}\big(\phi_A(|\mathcal{F}F_{enc}|)\, e^{i\,\phi_P(\angle \mathcal{F}F_{dec})}\big),
        \qquad \text{out} = \gamma(x_{rec}) \odot x + \varphi(x_{rec}) + x
    """

    def __init__(self, c: int):
        super().__init__()
        self.amp = conv(c, c, 3, bias=True, groups=c)
        self.pha = conv(c, c, 3, bias=True, groups=c)
        self.gamma = conv(c, c, 3, bias=True, groups=c)
        self.phi = conv(c, c, 3, bias=True, groups=c)

    def forward(self, x: Tensor, enc_prev: Tensor, dec_prev: Tensor) -> Tensor:
        # The FFTs return (N, c, H, W)-contiguous tensors; the depthwise convolutions and everything after
        # the fusion (the rest of the network follows its output's layout) run much faster channels-last.
        x_rec = amplitude_phase_fuse(enc_prev, dec_prev, _channels_last(self.amp), _channels_last(self.pha))
        x_rec = x_rec.contiguous(memory_format=torch.channels_last)  # (N, c, H, W), channels-last in memory
        return self.gamma(x_rec) * x + self.phi(x_rec) + x


def _channels_last(f: nn.Module):
    """``f`` applied to its input converted to channels-last memory (same values)."""
    return lambda t: f(t.contiguous(memory_format=torch.channels_last))


class StepNet(nn.Module):
    r""":math:`S_\beta`, pixel-wise step sizes (N, n_in, H, W) -> (N, n_out, H, W), all >= 0.

    ``ReLU(W_out (x + body(x)))`` with body twice [1×1, GELU, depthwise 3×3 (bias), GELU, 1×1].
    """

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(2):
            layers += [nn.Conv2d(n_in, n_in, 1, bias=False), nn.GELU(), conv(n_in, n_in, 3, bias=True, groups=n_in),
                       nn.GELU(), nn.Conv2d(n_in, n_in, 1, bias=False)]
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(n_in, n_out, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.out(x + self.body(x)))


class ScalarStep(nn.Module):
    """Ablation: one learned step size per stage (classic unfolded PGD), broadcast to (N, n_out, H, W)."""

    def __init__(self, n_in: int, n_out: int, init: float = 0.5):
        super().__init__()
        self.n_out = n_out
        self.log_step = nn.Parameter(torch.tensor(math.log(init)))

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        return self.log_step.exp().to(x.dtype).expand(n, self.n_out, h, w)
