// Fused selective scan for the CPU: forward and backward, never materialising (L, D, N) tensors.
// (Further down, the other fused CPU kernels: causal conv1d, gated depthwise 3x3, LayerNorm of rows,
// dropout added to a residual.)
//
// Recurrence (one channel d, state size N, time t = 0..L-1, h_{-1} = 0 or a given initial state):
//     a_t[n] = exp(delta_t * A[n])                       (zero-order-hold discretisation of A)
//     h_t[n] = a_t[n] * h_{t-1}[n] + delta_t * B_t[n] * u_t
//     y_t    = sum_n C_t[n] * h_t[n]
// Fused around it, as in mamba-ssm's kernel (each optional):
//     delta_t = softplus(delta_raw_t + delta_bias)      out_t = (y_t + D u_t) * silu(z_t)
// so a forward pass reads each input once and writes `out` once.
//
// Layouts: u, delta, z, out and their gradients are strided (batch, dim, len) views and B, C strided
//     (batch, groups, N, len) views (channel d uses group d / (dim / groups)), so the Mamba block can
//     pass its (batch, len, dim) activations without copies;  A: (dim, N) contiguous;
//     ckpt: (batch, dim, nchunks, N) = h_{t0-1} at the start of every chunk of T steps (forward writes it
//     when gradients are needed, backward restarts from it);  last: (batch, dim, N) = h_{L-1}.
//
// Backward, with G_t = dL/dh_t (G_t = dy_t C_t + a_{t+1} G_{t+1}), swept from t = L-1 down to 0:
//     dy_t = dout_t silu(z_t),  dz_t = dout_t (y_t + D u_t) silu'(z_t),  dD += dy_t u_t
//     dC_t[n]  += dy_t h_t[n]                      dB_t[n] += G_t[n] delta_t u_t
//     du_t      = delta_t sum_n G_t[n] B_t[n]       dA[n]   += G_t[n] a_t[n] h_{t-1}[n] delta_t
//     ddelta_t  = sum_n G_t[n] (a_t[n] h_{t-1}[n] A[n] + B_t[n] u_t)
//     ddelta_raw_t = ddelta_t sigmoid(delta_raw_t + bias)   (softplus'; 1 above 20 as torch), dbias += it
// (du_t also gets D dy_t.)
// Each chunk's states are recomputed from its checkpoint into a small buffer (T x N x W values), so memory
// stays O(len * dim * N / T).  dB and dC sum over the channels of a group: each thread accumulates into
// its own slice of a (threads, batch, groups, len, N) buffer that the wrapper sums (time-major, as the
// Mamba block's B and C are stored: their gradients then need no transposing copy).
//
// Vectorisation: a task is W = 16 consecutive channels of one group, held in one GCC/Clang vector
// (`vector_size`, one AVX-512 register of floats, two AVX2 registers elsewhere); every arithmetic line
// below works on all 16 channels at once, so the forward pass needs no horizontal sums.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <type_traits>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace {

constexpr int W = 16;  // channels per task (vector lanes)
constexpr int T = 64;  // time steps per tile == checkpoint chunk
constexpr int EK = 4;  // decays exp(delta A) evaluated side by side (vexp2_nonpos_k)

template <typename S>
struct Lanes;
template <>
struct Lanes<float> {
    typedef float V __attribute__((vector_size(W * sizeof(float))));
    typedef int32_t I __attribute__((vector_size(W * sizeof(int32_t))));
};
template <>
struct Lanes<double> {
    typedef double V __attribute__((vector_size(W * sizeof(double))));
    typedef int64_t I __attribute__((vector_size(W * sizeof(int64_t))));
};

using VF = Lanes<float>::V;
using VIF = Lanes<float>::I;
using VD = Lanes<double>::V;

// exp(x) on 16 floats: Cody-Waite range reduction x = k ln2 + r (|r| <= ln2/2), a degree-6 polynomial
// for e^r, and 2^k assembled in the exponent bits.  k = round(x / ln2) comes from adding 1.5 * 2^23:
// the sum's low mantissa bits then hold k itself, so no float/int conversions are needed.
// About 1 ulp over the clamped range.
inline VF vexp(VF x) {
    const VF lo = VF{} - 87.3f, hi = VF{} + 88.7f;
    x = x < lo ? lo : x;
    x = x > hi ? hi : x;
    const float magic = 12582912.0f;  // 1.5 * 2^23
    const VF t = x * 1.44269504088896341f + magic;
    const VF k = t - magic;  // round(x / ln2) as a float
    VF r = x - k * 0.693359375f;
    r = r - k * (-2.12194440e-4f);
    VF p = VF{} + 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    // bits of t = bits of magic + k (|k| < 2^22), so (bits(t) - bits(magic) + 127) << 23 is 2^k
    const VIF bits = (reinterpret_cast<const VIF&>(t) - 0x4B400000 + 127) << 23;
    return p * reinterpret_cast<const VF&>(bits);
}

// 2^x on 16 floats for x <= 0 (the scan's decays exp(delta A) = 2^(delta A log2 e), delta >= 0, A < 0):
// x = k + r with k = round(x), |r| <= 1/2, 2^r by its degree-7 Taylor polynomial in r ln2 (relative
// error below 6e-9 before rounding), times 2^k: vscalefps with AVX-512 (k from vrndscaleps), else 2^k
// assembled in the exponent bits (k from adding 1.5 * 2^23); both give the same bits.  Base 2 needs no
// Cody-Waite reduction, and x <= 0 only one clamp: the hottest line of the scan.
//
// vexp2_nonpos_k: K vectors in place, each step of the evaluation done for all K before the next: the same
// operations on every lane (the same bits), K independent dependency chains (one exp is about 12 dependent
// operations) side by side.  With K = 4 the scan's backward, which recomputes the decays of a chunk,
// ran 1.05-1.06x faster (forward and backward of D = 32, L = 16384); its forward, which interleaves the
// decays with the state updates anyway, did not change.
template <int K>
inline void vexp2_nonpos_k(VF* x) {
    const VF lo = VF{} - 126.0f;
    VF r[K], p[K];
#if defined(__AVX512F__)
    __m512 k[K];
    for (int j = 0; j < K; ++j) x[j] = x[j] < lo ? lo : x[j];
    for (int j = 0; j < K; ++j)
        k[j] = _mm512_roundscale_ps(reinterpret_cast<const __m512&>(x[j]), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    for (int j = 0; j < K; ++j) r[j] = x[j] - reinterpret_cast<const VF&>(k[j]);
#else
    const float magic = 12582912.0f;  // 1.5 * 2^23
    VF t[K];
    for (int j = 0; j < K; ++j) x[j] = x[j] < lo ? lo : x[j];
    for (int j = 0; j < K; ++j) t[j] = x[j] + magic;
    for (int j = 0; j < K; ++j) r[j] = x[j] - (t[j] - magic);
#endif
    for (int j = 0; j < K; ++j) p[j] = VF{} + 1.5252733804059840e-5f;
    for (int j = 0; j < K; ++j) p[j] = p[j] * r[j] + 1.5403530393381608e-4f;
    for (int j = 0; j < K; ++j) p[j] = p[j] * r[j] + 1.3333558146428443e-3f;
    for (int j = 0; j < K; ++j) p[j] = p[j] * r[j] + 9.6181291076284772e-3f;
    for (int j = 0; j < K; ++j) p[j] = p[j] * r[j] + 5.5504108664821580e-2f;
    for (int j = 0; j < K; ++j) p[j] = p[j] * r[j] + 2.4022650695910071e-1f;
    for (int j = 0; j < K; ++j) p[j] = p[j] * r[j] + 6.9314718055994531e-1f;
    for (int j = 0; j < K; ++j) p[j] = p[j] * r[j] + 1.0f;
#if defined(__AVX512F__)
    for (int j = 0; j < K; ++j) {
        const __m512 e = _mm512_scalef_ps(reinterpret_cast<const __m512&>(p[j]), k[j]);
        x[j] = reinterpret_cast<const VF&>(e);
    }
#else
    for (int j = 0; j < K; ++j) {
        const VIF bits = (reinterpret_cast<const VIF&>(t[j]) - 0x4B400000 + 127) << 23;
        x[j] = p[j] * reinterpret_cast<const VF&>(bits);
    }
#endif
}
inline VF vexp2_nonpos(VF x) {
    vexp2_nonpos_k<1>(&x);
    return x;
}

// float64 is for gradient checks, not speed: the libm exp lane by lane.
inline VD vexp(VD x) {
    VD r;
    for (int j = 0; j < W; ++j) r[j] = std::exp(x[j]);
    return r;
}

inline VD vexp2_nonpos(VD x) {
    VD r;
    for (int j = 0; j < W; ++j) r[j] = std::exp2(x[j]);
    return r;
}
template <int K>
inline void vexp2_nonpos_k(VD* x) {
    for (int j = 0; j < K; ++j) x[j] = vexp2_nonpos(x[j]);
}

// Sum of the 16 lanes by halving.
template <typename V>
inline auto hsum(V v) {
    v = v + __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
    v = v + __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
    v = v + __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
    v = v + __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
    return v[0];
}

// r[n] = sum of the 16 lanes of v[n], for 16 vectors at once: four butterfly rounds, each adding the two
// halves of pairs of vectors (two shuffles and an add per output), 45 operations instead of 16 hsum's 128.
// Round k leaves vector i holding, in consecutive runs of 8 >> k lanes, partial sums of vectors i, i + 8 >> k, ...
template <typename V>
inline V reduce16(const V* v) {
    V w[8], x[4], y[2];
    for (int i = 0; i < 8; ++i) {
        const V a = v[i], b = v[i + 8];
        w[i] = __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
               __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    }
    for (int i = 0; i < 4; ++i) {
        const V a = w[i], b = w[i + 4];
        x[i] = __builtin_shufflevector(a, b, 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27) +
               __builtin_shufflevector(a, b, 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
    }
    for (int i = 0; i < 2; ++i) {
        const V a = x[i], b = x[i + 2];
        y[i] = __builtin_shufflevector(a, b, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29) +
               __builtin_shufflevector(a, b, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
    }
    return __builtin_shufflevector(y[0], y[1], 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30) +
           __builtin_shufflevector(y[0], y[1], 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
}

// log(y) for y >= 1 on 16 floats: y = m 2^e with m in [sqrt(1/2), sqrt(2)), log(m) = log1p(m - 1) by a
// polynomial in f = m - 1 (Cephes logf coefficients), plus e ln2.
inline VF vlog(VF y) {
    VIF bits = reinterpret_cast<const VIF&>(y);
    VIF e = ((bits >> 23) & 0xff) - 126;
    bits = (bits & 0x807fffff) | 0x3f000000;  // mantissa in [0.5, 1)
    VF m = reinterpret_cast<const VF&>(bits);
    const VIF small = m < 0.707106781186547524f;  // -1 where m < sqrt(1/2): use 2m and e - 1
    e = e + small;
    const VF f = (small != 0 ? m + m : m) - 1.0f, z = f * f;
    VF p = VF{} + 7.0376836292e-2f;
    p = p * f - 1.1514610310e-1f;
    p = p * f + 1.1676998740e-1f;
    p = p * f - 1.2420140846e-1f;
    p = p * f + 1.4249322787e-1f;
    p = p * f - 1.6668057665e-1f;
    p = p * f + 2.0000714765e-1f;
    p = p * f - 2.4999993993e-1f;
    p = p * f + 3.3333331174e-1f;
    const VF ef = __builtin_convertvector(e, VF);
    VF r = f * z * p - 0.5f * z + f;
    return r + ef * 0.693147180559945309f;
}

// softplus(x) = log(1 + e^x), exactly x above 20 (as torch); log1p via log(y) - ((y - 1) - e) / y.
inline VF vsoftplus(VF x) {
    const VF e = vexp(x), y = 1.0f + e;
    const VF lp = vlog(y) - ((y - 1.0f) - e) / y;
    return x > 20.0f ? x : lp;
}
inline VF vsigmoid(VF x) { return 1.0f / (1.0f + vexp(-x)); }

inline VD vsoftplus(VD x) {
    VD r;
    for (int j = 0; j < W; ++j) r[j] = x[j] > 20.0 ? x[j] : std::log1p(std::exp(x[j]));
    return r;
}
inline VD vsigmoid(VD x) {
    VD r;
    for (int j = 0; j < W; ++j) r[j] = 1.0 / (1.0 + std::exp(-x[j]));
    return r;
}

struct Dims {
    int64_t batch, dim, len, nstate, groups;
    int64_t per_group() const { return dim / groups; }
    int64_t blocks_per_group() const { return (per_group() + W - 1) / W; }
    int64_t tasks() const { return batch * groups * blocks_per_group(); }
    int64_t chunks() const { return (len + T - 1) / T; }
};

// One task: batch b, group g, channels d0 .. d0 + lanes - 1 (lanes <= W; missing lanes are zero-padded:
// delta = 0 gives a = 1 and no input, so they stay zero and are never written back).
struct Task {
    int64_t b, g, d0, lanes;
};

inline Task task_of(const Dims& s, int64_t i) {
    const int64_t bpg = s.blocks_per_group();
    const int64_t blk = i % bpg, g = (i / bpg) % s.groups, b = i / (bpg * s.groups);
    const int64_t d0 = g * s.per_group() + blk * W;
    return {b, g, d0, std::min<int64_t>(W, s.per_group() - blk * W)};
}

// fn(tid, i) for i < ntasks on up to nthreads threads, tid < nthreads, tasks handed out one at a time.
// Built with OpenMP (the default), the threads are those of the OpenMP runtime PyTorch already loaded
// (libgomp is found by its soname, so the library binds to torch's copy): its intra-op workers, still
// spinning after the previous PyTorch op, start at once and no second set of threads competes with them
// for the cores.  (With a fresh std::thread per call, the fused gated convolution ran 6 % slower than
// PyTorch's ops in a two-thread training step while being 2x faster alone.)  Without OpenMP: std::thread.
template <typename F>
void parallel_tasks(int64_t ntasks, int nthreads, F&& fn) {
    nthreads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(nthreads, ntasks)));
    std::atomic<int64_t> next{0};
    auto worker = [&](int tid) {
        for (int64_t i = next++; i < ntasks; i = next++) fn(tid, i);
    };
    if (nthreads == 1) {
        worker(0);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads)
    worker(omp_get_thread_num());
    return;
#endif
    std::vector<std::thread> pool;
    for (int t = 1; t < nthreads; ++t) pool.emplace_back(worker, t);
    worker(0);
    for (auto& th : pool) th.join();
}

// A strided (batch, dim, len) view and a strided (batch, groups, N, len) view.
template <typename S>
struct Seq {
    S* p;
    int64_t sb, sd, sl;
};
template <typename S>
struct Grp {
    const S* p;
    int64_t sb, sg, sn, sl;
};

// Load steps t0 .. t0 + tl - 1 of the task's channels into dst[t] (one vector per step), walking memory
// along whichever of (channel, time) has the smaller stride.
template <typename S, typename V>
inline void load_tile(V* dst, Seq<const S> src, const Task& k, int64_t t0, int64_t tl) {
    const S* base = src.p + k.b * src.sb + k.d0 * src.sd + t0 * src.sl;
    if (src.sd == 1 && k.lanes == W) {  // the Mamba block's (batch, len, dim) activations: one vector load a step
        for (int64_t t = 0; t < tl; ++t) std::memcpy(&dst[t], base + t * src.sl, sizeof(V));
        return;
    }
    for (int64_t t = 0; t < tl; ++t) dst[t] = V{};
    if (src.sd <= src.sl) {
        for (int64_t t = 0; t < tl; ++t)
            for (int64_t j = 0; j < k.lanes; ++j) dst[t][j] = base[t * src.sl + j * src.sd];
    } else {
        for (int64_t j = 0; j < k.lanes; ++j)
            for (int64_t t = 0; t < tl; ++t) dst[t][j] = base[j * src.sd + t * src.sl];
    }
}

template <typename S, typename V>
inline void store_tile(Seq<S> dst, const V* src, const Task& k, int64_t t0, int64_t tl) {
    S* base = dst.p + k.b * dst.sb + k.d0 * dst.sd + t0 * dst.sl;
    if (dst.sd == 1 && k.lanes == W) {  // one vector store a step
        for (int64_t t = 0; t < tl; ++t) std::memcpy(base + t * dst.sl, &src[t], sizeof(V));
        return;
    }
    if (dst.sd <= dst.sl) {
        for (int64_t t = 0; t < tl; ++t)
            for (int64_t j = 0; j < k.lanes; ++j) base[t * dst.sl + j * dst.sd] = src[t][j];
    } else {
        for (int64_t j = 0; j < k.lanes; ++j)
            for (int64_t t = 0; t < tl; ++t) base[j * dst.sd + t * dst.sl] = src[t][j];
    }
}

// Load B or C of the task's group for steps t0 .. t0 + tl - 1 into dst[t * N + n].
template <typename S>
inline void load_bc(S* dst, Grp<S> src, int64_t N, const Task& k, int64_t t0, int64_t tl) {
    const S* base = src.p + k.b * src.sb + k.g * src.sg + t0 * src.sl;
    if (src.sn <= src.sl) {
        for (int64_t t = 0; t < tl; ++t)
            for (int64_t n = 0; n < N; ++n) dst[t * N + n] = base[t * src.sl + n * src.sn];
    } else {
        for (int64_t n = 0; n < N; ++n)
            for (int64_t t = 0; t < tl; ++t) dst[t * N + n] = base[n * src.sn + t * src.sl];
    }
}

// A[d0 + j, n] as one vector per n (zero in padded lanes)
template <typename S, typename V>
inline void load_A(std::vector<V>& At, const S* A, const Dims& s, const Task& k) {
    for (int64_t n = 0; n < s.nstate; ++n) {
        At[n] = V{};
        for (int64_t j = 0; j < k.lanes; ++j) At[n][j] = A[(k.d0 + j) * s.nstate + n];
    }
}

// a per-channel parameter p[d0 + j] as one vector (zero if absent or in padded lanes)
template <typename S, typename V>
inline V load_channels(const S* p, const Task& k) {
    V v = V{};
    if (p)
        for (int64_t j = 0; j < k.lanes; ++j) v[j] = p[k.d0 + j];
    return v;
}

// Δ for one tile, in place: softplus(raw + bias) (each optional)
template <typename V>
inline void prepare_delta(V* dl, int64_t tl, V bias, bool softplus) {
    for (int64_t t = 0; t < tl; ++t) dl[t] = softplus ? vsoftplus(dl[t] + bias) : dl[t] + bias;
}

template <typename S>
void scan_forward(Seq<const S> u, Seq<const S> delta, const S* A, Grp<S> B, Grp<S> C, const S* Dp, Seq<const S> z,
                  const S* bias, bool softplus, Seq<S> out, S* last, S* ckpt, const S* h_init, const Dims& s,
                  int nthreads) {
    using V = typename Lanes<S>::V;
    const int64_t N = s.nstate, nch = s.chunks();
    parallel_tasks(s.tasks(), nthreads, [&](int, int64_t i) {
        const Task k = task_of(s, i);
        std::vector<V> At(N), h(N, V{});
        std::vector<S> Bt(T * N), Ct(T * N);
        std::vector<V> dl(T), uu(T), zt(T), yt(T);
        load_A(At, A, s, k);
        for (int64_t n = 0; n < N; ++n) At[n] *= S(1.44269504088896340736);  // A log2 e: exp(ΔA) = 2^(ΔA log2 e)
        if (h_init)  // h_{-1}: the state a previous call ended in (a sequence scanned in pieces)
            for (int64_t j = 0; j < k.lanes; ++j)
                for (int64_t n = 0; n < N; ++n) h[n][j] = h_init[(k.b * s.dim + k.d0 + j) * N + n];
        const V Dv = load_channels<S, V>(Dp, k), bv = load_channels<S, V>(bias, k);
        for (int64_t c = 0; c < nch; ++c) {
            const int64_t t0 = c * T, tl = std::min<int64_t>(T, s.len - t0);
            if (ckpt)  // state entering this chunk
                for (int64_t j = 0; j < k.lanes; ++j)
                    for (int64_t n = 0; n < N; ++n) ckpt[((k.b * s.dim + k.d0 + j) * nch + c) * N + n] = h[n][j];
            load_tile(dl.data(), delta, k, t0, tl);
            prepare_delta(dl.data(), tl, bv, softplus);
            load_tile(uu.data(), u, k, t0, tl);
            load_bc(Bt.data(), B, N, k, t0, tl);
            load_bc(Ct.data(), C, N, k, t0, tl);
            for (int64_t t = 0; t < tl; ++t) {
                const V d = dl[t], du = d * uu[t];  // Δ_t, Δ_t u_t
                const S* bt = &Bt[t * N];
                const S* ct = &Ct[t * N];
                V acc = Dv * uu[t];  // D u_t
                int64_t n = 0;
                for (; n + EK <= N; n += EK) {  // EK states at a time: their decays side by side
                    V a[EK];
                    for (int j = 0; j < EK; ++j) a[j] = d * At[n + j];
                    vexp2_nonpos_k<EK>(a);  // exp(Δ A)
                    for (int j = 0; j < EK; ++j) {
                        const V hv = a[j] * h[n + j] + du * bt[n + j];  // h_t = exp(Δ A) h_{t-1} + Δ B u
                        h[n + j] = hv;
                        acc += hv * ct[n + j];  // y_t = <C_t, h_t> + D u_t, summed in the order of n
                    }
                }
                for (; n < N; ++n) {
                    const V hv = vexp2_nonpos(d * At[n]) * h[n] + du * bt[n];
                    h[n] = hv;
                    acc += hv * ct[n];
                }
                yt[t] = acc;
            }
            if (z.p) {
                load_tile(zt.data(), z, k, t0, tl);
                for (int64_t t = 0; t < tl; ++t) yt[t] *= zt[t] * vsigmoid(zt[t]);  // y silu(z)
            }
            store_tile(out, yt.data(), k, t0, tl);
        }
        if (last)
            for (int64_t j = 0; j < k.lanes; ++j)
                for (int64_t n = 0; n < N; ++n) last[(k.b * s.dim + k.d0 + j) * N + n] = h[n][j];
    });
}

template <typename S>
void scan_backward(Seq<const S> u, Seq<const S> delta, const S* A, Grp<S> B, Grp<S> C, const S* Dp,
                   Seq<const S> z, const S* bias, bool softplus, const S* ckpt, Seq<const S> dout, Seq<S> du_out,
                   Seq<S> ddelta_out, S* dA_part, S* dD_part, Seq<S> dz_out, S* dbias_part, S* dB_buf, S* dC_buf,
                   S* dh_init, const Dims& s, int nthreads) {
    using V = typename Lanes<S>::V;
    const int64_t N = s.nstate, nch = s.chunks();
    const int64_t buf_stride = s.batch * s.groups * N * s.len;  // one thread's slice of dB_buf / dC_buf
    parallel_tasks(s.tasks(), nthreads, [&](int tid, int64_t i) {
        const Task k = task_of(s, i);
        std::vector<V> At(N), A2(N), h0(N), G(N, V{}), dA(N, V{}), hs(T * N), as(T * N);
        std::vector<V> xt(T), dl(T), uu(T), gy(T), zt(T), dzt(T), dut(T), ddt(T);
        std::vector<S> Bt(T * N), Ct(T * N), dBt(T * N), dCt(T * N);
        load_A(At, A, s, k);
        for (int64_t n = 0; n < N; ++n) A2[n] = At[n] * S(1.44269504088896340736);  // as in the forward
        const V Dv = load_channels<S, V>(Dp, k), bv = load_channels<S, V>(bias, k);
        V dD = V{}, dbias = V{};
        S* dBg = dB_buf + tid * buf_stride + (k.b * s.groups + k.g) * N * s.len;
        S* dCg = dC_buf + tid * buf_stride + (k.b * s.groups + k.g) * N * s.len;

        for (int64_t c = nch - 1; c >= 0; --c) {
            const int64_t t0 = c * T, tl = std::min<int64_t>(T, s.len - t0);
            load_tile(xt.data(), delta, k, t0, tl);
            for (int64_t t = 0; t < tl; ++t) {
                xt[t] += bv;  // x = Δ_raw + bias
                dl[t] = softplus ? vsoftplus(xt[t]) : xt[t];
            }
            load_tile(uu.data(), u, k, t0, tl);
            load_tile(gy.data(), dout, k, t0, tl);
            if (z.p) load_tile(zt.data(), z, k, t0, tl);
            load_bc(Bt.data(), B, N, k, t0, tl);
            load_bc(Ct.data(), C, N, k, t0, tl);
            for (int64_t n = 0; n < N; ++n) {
                h0[n] = V{};
                for (int64_t j = 0; j < k.lanes; ++j) h0[n][j] = ckpt[((k.b * s.dim + k.d0 + j) * nch + c) * N + n];
            }
            // 1. recompute a_t, h_t (and y_t for the gate) inside the chunk, from the checkpointed state
            for (int64_t t = 0; t < tl; ++t) {
                const V d = dl[t], du = d * uu[t];
                const V* hp = t > 0 ? &hs[(t - 1) * N] : h0.data();
                V y = Dv * uu[t];
                int64_t n = 0;
                for (; n + EK <= N; n += EK) {  // as in the forward, EK states at a time
                    V a[EK];
                    for (int j = 0; j < EK; ++j) a[j] = d * A2[n + j];
                    vexp2_nonpos_k<EK>(a);  // the forward's a_t, bit for bit
                    for (int j = 0; j < EK; ++j) {
                        const V hv = a[j] * hp[n + j] + du * Bt[t * N + n + j];
                        as[t * N + n + j] = a[j];
                        hs[t * N + n + j] = hv;
                        y += hv * Ct[t * N + n + j];
                    }
                }
                for (; n < N; ++n) {
                    const V a = vexp2_nonpos(d * A2[n]);
                    const V hv = a * hp[n] + du * Bt[t * N + n];
                    as[t * N + n] = a;
                    hs[t * N + n] = hv;
                    y += hv * Ct[t * N + n];
                }
                if (z.p) {  // out = y silu(z):  dz = dout y silu'(z),  dy = dout silu(z)
                    const V sg = vsigmoid(zt[t]);
                    dzt[t] = gy[t] * y * sg * (1 + zt[t] * (1 - sg));
                    gy[t] = gy[t] * zt[t] * sg;
                }
                dD += gy[t] * uu[t];
            }
            // 2. reverse sweep; G[n] holds a_{t+1} G_{t+1} on entry to step t and a_t G_t on exit
            for (int64_t t = tl - 1; t >= 0; --t) {
                const V d = dl[t], ut = uu[t], du = d * ut, g_y = gy[t];
                const V* hp = t > 0 ? &hs[(t - 1) * N] : h0.data();
                const V* hv = &hs[t * N];
                const V* av = &as[t * N];
                V du_acc = V{}, dd_acc = V{};
                V pc[W], pb[W];  // N == W: the lanes' terms of dC_t[n], dB_t[n], summed 16 at a time below
                for (int64_t n = 0; n < N; ++n) {
                    const S bn = Bt[t * N + n], cn = Ct[t * N + n];
                    const V g = G[n] + g_y * cn;  // G_t = dy_t C_t + a_{t+1} G_{t+1}
                    const V ahp = av[n] * hp[n];   // a_t h_{t-1}
                    if (N == W) {
                        pc[n] = g_y * hv[n];
                        pb[n] = g * du;
                    } else {
                        dCt[t * N + n] = hsum(g_y * hv[n]);
                        dBt[t * N + n] = hsum(g * du);
                    }
                    du_acc += g * bn;
                    dd_acc += g * (ahp * At[n] + ut * bn);
                    dA[n] += g * ahp * d;
                    G[n] = av[n] * g;
                }
                if (N == W) {
                    const V rc = reduce16(pc), rb = reduce16(pb);
                    std::memcpy(&dCt[t * N], &rc, sizeof(V));
                    std::memcpy(&dBt[t * N], &rb, sizeof(V));
                }
                dut[t] = du_acc * d + Dv * g_y;
                if (softplus) dd_acc *= xt[t] > 20 ? V{} + 1 : vsigmoid(xt[t]);
                ddt[t] = dd_acc;
                dbias += dd_acc;
            }
            store_tile(du_out, dut.data(), k, t0, tl);
            store_tile(ddelta_out, ddt.data(), k, t0, tl);
            if (z.p) store_tile(dz_out, dzt.data(), k, t0, tl);
            {  // the buffers are (len, N) per group, as the tiles: one contiguous run of tl * N values each
                S* rb = dBg + t0 * N;
                S* rc = dCg + t0 * N;
                for (int64_t i = 0; i < tl * N; ++i) {
                    rb[i] += dBt[i];
                    rc[i] += dCt[i];
                }
            }
        }
        for (int64_t j = 0; j < k.lanes; ++j) {
            const int64_t bd = k.b * s.dim + k.d0 + j;
            for (int64_t n = 0; n < N; ++n) dA_part[bd * N + n] = dA[n][j];
            if (dh_init)  // G = a_0 G_0 = dL/dh_{-1} after the sweep
                for (int64_t n = 0; n < N; ++n) dh_init[bd * N + n] = G[n][j];
            dD_part[bd] = dD[j];
            dbias_part[bd] = dbias[j];
        }
    });
}


// ------------------------------------------------------------------------------------------------------
// Causal depthwise conv1d (+ optional SiLU) over channel-last (batch, len, E) activations:
//     pre_t[e] = bias[e] + sum_k w[k][e] x_{t-K+1+k}[e]   (x = 0 before t = 0),   out_t = silu(pre_t) or pre_t
// Backward, with g_t = dout_t silu'(pre_t) (pre_t recomputed):
//     dx_t[e] = sum_k w[k][e] g_{t+K-1-k}[e],   dw[k][e] += g_t[e] x_{t-K+1+k}[e],   dbias[e] += g_t[e]
// Tasks are chunks of CT time steps of one batch element; every loop runs over 16 channels at a time.

constexpr int CT = 256;  // time steps per conv task

template <typename S, typename V>
inline V load_lanes(const S* p, int64_t stride, int64_t n) {
    V v = V{};
    if (stride == 1 && n == W) {
        std::memcpy(&v, p, sizeof(V));
    } else {
        for (int64_t j = 0; j < n; ++j) v[j] = p[j * stride];
    }
    return v;
}

template <typename S, typename V>
inline void store_lanes(S* p, V v, int64_t n) {
    if (n == W) {
        std::memcpy(p, &v, sizeof(V));
    } else {
        for (int64_t j = 0; j < n; ++j) p[j] = v[j];
    }
}

template <typename S, typename V>
inline V vload(const S* p) {  // W contiguous values
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
}

template <typename S, typename V>
inline void vstore(S* p, V v) {
    std::memcpy(p, &v, sizeof(V));
}

template <typename V>
inline V silu_grad(V pre) {  // d/dx x sigmoid(x) = s (1 + x (1 - s))
    const V sg = vsigmoid(pre);
    return sg * (1 + pre * (1 - sg));
}

// pre-activation of step t for lanes e0 .. e0 + n - 1
template <typename S, typename V>
inline V conv_pre(const S* x, int64_t sl, int64_t se, const S* wT, const S* bias, int64_t E, int64_t K, int64_t t,
                  int64_t e0, int64_t n) {
    V acc = bias ? load_lanes<S, V>(bias + e0, 1, n) : V{};
    for (int64_t k = 0; k < K; ++k) {
        const int64_t ts = t - K + 1 + k;
        if (ts >= 0) acc += load_lanes<S, V>(wT + k * E + e0, 1, n) * load_lanes<S, V>(x + ts * sl + e0 * se, se, n);
    }
    return acc;
}

template <typename S>
void conv_forward(const S* x, int64_t sb, int64_t sl, int64_t se, const S* wT, const S* bias, S* out, bool silu,
                  int64_t batch, int64_t len, int64_t E, int64_t K, int nthreads) {
    using V = typename Lanes<S>::V;
    const int64_t chunks = (len + CT - 1) / CT;
    parallel_tasks(batch * chunks, nthreads, [&](int, int64_t i) {
        const int64_t b = i / chunks, t0 = (i % chunks) * CT, t1 = std::min(len, t0 + CT);
        const S* xb = x + b * sb;
        S* ob = out + b * len * E;
        for (int64_t t = t0; t < t1; ++t)
            for (int64_t e0 = 0; e0 < E; e0 += W) {
                const int64_t n = std::min<int64_t>(W, E - e0);
                V v = conv_pre<S, V>(xb, sl, se, wT, bias, E, K, t, e0, n);
                if (silu) v = v * vsigmoid(v);
                store_lanes(ob + t * E + e0, v, n);
            }
    });
}

template <typename S>
void conv_backward(const S* x, int64_t sb, int64_t sl, int64_t se, const S* wT, const S* bias, const S* dout,
                   int64_t db_, int64_t dl_, int64_t de_, bool silu, S* dx, S* dw_buf, S* dbias_buf, int64_t batch,
                   int64_t len, int64_t E, int64_t K, int nthreads) {
    using V = typename Lanes<S>::V;
    const int64_t chunks = (len + CT - 1) / CT;
    parallel_tasks(batch * chunks, nthreads, [&](int tid, int64_t i) {
        const int64_t b = i / chunks, t0 = (i % chunks) * CT, t1 = std::min(len, t0 + CT);
        const int64_t t2 = std::min(len, t1 + K - 1);  // g is needed up to t1 + K - 2
        const S* xb = x + b * sb;
        const S* gb = dout + b * db_;
        S* dxb = dx + b * len * E;
        S* dw = dw_buf + tid * K * E;
        S* dbias = dbias_buf + tid * E;
        std::vector<S> g((t2 - t0) * E);
        for (int64_t t = t0; t < t2; ++t)  // g_t = dout_t silu'(pre_t)
            for (int64_t e0 = 0; e0 < E; e0 += W) {
                const int64_t n = std::min<int64_t>(W, E - e0);
                V gt = load_lanes<S, V>(gb + t * dl_ + e0 * de_, de_, n);
                if (silu) gt *= silu_grad(conv_pre<S, V>(xb, sl, se, wT, bias, E, K, t, e0, n));
                store_lanes(&g[(t - t0) * E + e0], gt, n);
            }
        for (int64_t t = t0; t < t1; ++t)
            for (int64_t e0 = 0; e0 < E; e0 += W) {
                const int64_t n = std::min<int64_t>(W, E - e0);
                const V gt = load_lanes<S, V>(&g[(t - t0) * E + e0], 1, n);
                V acc = V{};
                for (int64_t k = 0; k < K; ++k) {
                    const int64_t tf = t + K - 1 - k;  // the output step that read x_t through tap k
                    if (tf < len)
                        acc += load_lanes<S, V>(wT + k * E + e0, 1, n) * load_lanes<S, V>(&g[(tf - t0) * E + e0], 1, n);
                    const int64_t ts = t - K + 1 + k;  // the input step tap k read for output t
                    if (ts >= 0) {
                        const V xs = load_lanes<S, V>(xb + ts * sl + e0 * se, se, n);
                        store_lanes(dw + k * E + e0, load_lanes<S, V>(dw + k * E + e0, 1, n) + gt * xs, n);
                    }
                }
                store_lanes(dxb + t * E + e0, acc, n);
                store_lanes(dbias + e0, load_lanes<S, V>(dbias + e0, 1, n) + gt, n);
            }
    });
}


// ------------------------------------------------------------------------------------------------------
// Gated depthwise 3x3 (the feed-forward network's middle), forward, channels-last (backward further down):
//     v = dw3x3(u) (zero padding),  out[c] = gelu(v[c]) * v[c + h]   for c < h, u with 2h channels.
// One pass over u instead of three (conv, gelu, product) over tensors of 2h channels.
// gelu(a) = a/2 (1 + erf(a / sqrt 2)), erf by Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7).

inline VF verf(VF x) {
    const VF ax = x < 0 ? -x : x;
    const VF t = 1.0f / (1.0f + 0.3275911f * ax);
    VF p = VF{} + 1.061405429f;
    p = p * t - 1.453152027f;
    p = p * t + 1.421413741f;
    p = p * t - 0.284496736f;
    p = p * t + 0.254829592f;
    const VF y = 1.0f - p * t * vexp(-ax * ax);
    return x < 0 ? -y : y;
}
inline VD verf(VD x) {
    VD r;
    for (int j = 0; j < W; ++j) r[j] = std::erf(x[j]);
    return r;
}
template <typename V>
inline V vgelu(V a) {
    using S = std::remove_cv_t<std::remove_reference_t<decltype(a[0])>>;
    return S(0.5) * a * (S(1) + verf(a * S(0.70710678118654752440)));
}

// Channel blocks of W lanes over [0, n): full blocks at 0, W, 2W, ...; a ragged end is covered by one more
// full block that ends at n and overlaps the one before (it recomputes and rewrites the same values) when
// n >= W, else by one partial block (lane-by-lane loads).  Full blocks load and store whole vectors: with
// lane-by-lane tails the kernel ran slower than PyTorch's three passes for the small model's 42 channels.
struct Block {
    int64_t c0, lanes;
};

inline std::vector<Block> channel_blocks(int64_t n) {
    std::vector<Block> out;
    if (n < W) {
        if (n > 0) out.push_back({0, n});
        return out;
    }
    int64_t c0 = 0;
    for (; c0 + W <= n; c0 += W) out.push_back({c0, W});
    if (c0 < n) out.push_back({n - W, W});
    return out;
}

template <bool Full, typename S, typename V>
inline V ldb(const S* p, int64_t n) {
    if constexpr (Full) return vload<S, V>(p);
    else return load_lanes<S, V>(p, 1, n);
}

template <bool Full, typename S, typename V>
inline void stb(S* p, V v, int64_t n) {
    if constexpr (Full) vstore(p, v);
    else store_lanes(p, v, n);
}

// fn(std::true_type / std::false_type, block): whole vectors or lane by lane, chosen once per block
template <typename F>
inline void for_blocks(const std::vector<Block>& blocks, F&& fn) {
    for (const Block& blk : blocks) {
        if (blk.lanes == W) fn(std::true_type{}, blk);
        else fn(std::false_type{}, blk);
    }
}

// fn(k, p) for every tap k = (di + 1) * 3 + (dj + 1) of pixel (i, j) whose neighbour (i + di, j + dj) lies in
// the H x Wd image, p = that neighbour's pixel index; taps outside are skipped (zero padding)
template <typename F>
inline void for_taps(int64_t H, int64_t Wd, int64_t i, int64_t j, F&& fn) {
    for (int di = -1; di <= 1; ++di) {
        const int64_t ii = i + di;
        if (ii < 0 || ii >= H) continue;
        for (int dj = -1; dj <= 1; ++dj) {
            const int64_t jj = j + dj;
            if (jj < 0 || jj >= Wd) continue;
            fn((di + 1) * 3 + (dj + 1), ii * Wd + jj);
        }
    }
}

// The 9 tap weights of channel block [c0, c0 + n) of the first half (a) and of the second half (g) of w9
// (9, C), loaded once per block and row and held in vector registers while the row is swept
template <bool Full, typename S, typename V>
struct PairTaps {
    V a[9], g[9];
    PairTaps(const S* w9, int64_t C, int64_t h, int64_t c0, int64_t n) {
        for (int k = 0; k < 9; ++k) {
            a[k] = ldb<Full, S, V>(w9 + k * C + c0, n);
            g[k] = ldb<Full, S, V>(w9 + k * C + h + c0, n);
        }
    }
};

// v = dw3x3(u) at pixel (i, j) for channels c0 .. c0 + n - 1 (a) and h + c0 .. (g); zero padding
template <bool Full, typename S, typename V>
inline void dw_pair(const S* ub, const PairTaps<Full, S, V>& w, int64_t H, int64_t Wd, int64_t C, int64_t h, int64_t i,
                    int64_t j, int64_t c0, int64_t n, V& a, V& g) {
    a = V{};
    g = V{};
    for_taps(H, Wd, i, j, [&](int k, int64_t p) {
        const S* px = ub + p * C;
        a += w.a[k] * ldb<Full, S, V>(px + c0, n);
        g += w.g[k] * ldb<Full, S, V>(px + h + c0, n);
    });
}

template <typename S>
void gated_dw3x3(const S* u, const S* w9, S* out, int64_t batch, int64_t H, int64_t Wd, int64_t h, int nthreads) {
    using V = typename Lanes<S>::V;
    const int64_t C = 2 * h;  // channels of u; w9: (9, C) contiguous, tap-major
    const auto blocks = channel_blocks(h);
    parallel_tasks(batch * H, nthreads, [&](int, int64_t row) {
        const int64_t b = row / H, i = row % H;
        const S* ub = u + b * H * Wd * C;
        S* ob = out + (b * H + i) * Wd * h;
        // a channel block at a time along the row, its weights in registers
        for_blocks(blocks, [&](auto full, const Block& blk) {
            constexpr bool Full = decltype(full)::value;
            const int64_t c0 = blk.c0, n = blk.lanes;
            const PairTaps<Full, S, V> w(w9, C, h, c0, n);
            for (int64_t j = 0; j < Wd; ++j) {
                V a, g;
                dw_pair<Full, S, V>(ub, w, H, Wd, C, h, i, j, c0, n, a, g);
                stb<Full>(ob + j * h + c0, vgelu(a) * g, n);
            }
        });
    });
}

// d/da gelu(a) = Phi(a) + a phi(a), with Phi(a) = (1 + erf(a / sqrt 2)) / 2 and phi the normal density
template <typename V>
inline void vgelu_and_grad(V a, V& gelu, V& grad) {
    using S = std::remove_cv_t<std::remove_reference_t<decltype(a[0])>>;
    const V cdf = S(0.5) * (S(1) + verf(a * S(0.70710678118654752440)));
    const V pdf = vexp(S(-0.5) * a * a) * S(0.39894228040143267794);
    gelu = a * cdf;
    grad = cdf + a * pdf;
}

// Lanes of a channel block that are its own (1) and not also covered by the block before (0): the ragged
// end's block overlaps the previous one, and sums over pixels must count each channel once.
template <typename S, typename V>
inline V own_lanes(const Block& blk, int64_t n) {
    const int64_t first_own = blk.lanes == W && blk.c0 % W != 0 ? (n / W) * W - blk.c0 : 0;
    V m;
    for (int j = 0; j < W; ++j) m[j] = j >= first_own ? S(1) : S(0);
    return m;
}

// ------------------------------------------------------------------------------------------------------
// Backward of the gated depthwise 3x3 (training), channels-last, with y = dw3x3(u) recomputed:
//     gy[c] = g[c] y[c + h] gelu'(y[c]),   gy[c + h] = g[c] gelu(y[c])           (c < h; gy = dL/dy)
//     dw[k][c] = sum_p gy[p][c] u[p + off_k][c],   du[q][c] = sum_k w[k][c] gy[q - off_k][c]
// A task is a band of rows of one image.  It computes gy row by row into a ring of three rows (plus one
// halo row above and below the band, whose dw terms belong to the neighbouring bands), adds its rows' dw
// terms to the thread's (9, 2h) slice of dw_buf, and writes du row i - 1 as soon as gy row i exists, so
// gy (2h channels at full resolution) never goes to memory.
// u (batch, H, W, 2h), g (batch, H, W, h), du (batch, H, W, 2h) contiguous; dw_buf zeroed (nthreads, 9, 2h).

// gy of row i (all W pixels) into dst; with accumulate, its dw terms into dwt.  A channel block at a time:
// first gy along the row (the block's weights in registers, PairTaps), then the row's dw terms from the
// gy just written, so neither loop needs more vector registers than there are.
template <typename S, typename V>
void gated_gy_row(const S* ub, const S* gb, const S* w9, S* dst, S* dwt, const std::vector<Block>& blocks, int64_t H,
                  int64_t Wd, int64_t h, int64_t i, bool accumulate) {
    const int64_t C = 2 * h;
    for_blocks(blocks, [&](auto full, const Block& blk) {
        constexpr bool Full = decltype(full)::value;
        const int64_t c0 = blk.c0, n = blk.lanes;
        {
            const PairTaps<Full, S, V> w(w9, C, h, c0, n);
            for (int64_t j = 0; j < Wd; ++j) {
                V a, v;
                dw_pair<Full, S, V>(ub, w, H, Wd, C, h, i, j, c0, n, a, v);
                V ge, dge;
                vgelu_and_grad(a, ge, dge);
                const V gg = ldb<Full, S, V>(gb + (i * Wd + j) * h + c0, n);
                stb<Full>(dst + j * C + c0, gg * v * dge, n);  // dL/da
                stb<Full>(dst + j * C + h + c0, gg * ge, n);   // dL/dv
            }
        }
        if (!accumulate) return;
        const V mask = own_lanes<S, V>(blk, h);
        V acc_a[9], acc_b[9];
        for (int k = 0; k < 9; ++k) acc_a[k] = acc_b[k] = V{};
        for (int64_t j = 0; j < Wd; ++j) {
            const V ma = ldb<Full, S, V>(dst + j * C + c0, n) * mask, mv = ldb<Full, S, V>(dst + j * C + h + c0, n) * mask;
            for_taps(H, Wd, i, j, [&](int k, int64_t p) {  // the same taps as dw_pair's
                acc_a[k] += ma * ldb<Full, S, V>(ub + p * C + c0, n);
                acc_b[k] += mv * ldb<Full, S, V>(ub + p * C + h + c0, n);
            });
        }
        for (int k = 0; k < 9; ++k) {
            S* da = dwt + k * C + c0;
            S* dv = dwt + k * C + h + c0;
            stb<Full>(da, ldb<Full, S, V>(da, n) + acc_a[k], n);
            stb<Full>(dv, ldb<Full, S, V>(dv, n) + acc_b[k], n);
        }
    });
}

// du row q from gy rows q - 1, q, q + 1 (rows[0..2]; null outside the image): the adjoint of the depthwise
// 3x3 with zero padding, du[q][j] = sum_{di,dj} w[di][dj] gy[q - di][j - dj]; a channel block at a time, its
// 9 weight vectors in registers
template <typename S, typename V>
void dw_adjoint_row(const S* const rows[3], const S* w9, S* dst, const std::vector<Block>& blocks, int64_t Wd,
                    int64_t C) {
    for_blocks(blocks, [&](auto full, const Block& blk) {
        constexpr bool Full = decltype(full)::value;
        const int64_t c0 = blk.c0, n = blk.lanes;
        V wk[9];
        for (int k = 0; k < 9; ++k) wk[k] = ldb<Full, S, V>(w9 + k * C + c0, n);
        for (int64_t j = 0; j < Wd; ++j) {
            V acc = V{};
            for (int di = -1; di <= 1; ++di) {
                const S* src = rows[1 - di];  // gy row q - di
                if (!src) continue;
                for (int dj = -1; dj <= 1; ++dj) {
                    const int64_t jj = j - dj;
                    if (jj < 0 || jj >= Wd) continue;
                    acc += wk[(di + 1) * 3 + (dj + 1)] * ldb<Full, S, V>(src + jj * C + c0, n);
                }
            }
            stb<Full>(dst + j * C + c0, acc, n);
        }
    });
}

template <typename S>
void gated_dw3x3_bwd(const S* u, const S* w9, const S* g, S* du, S* dw_buf, int64_t batch, int64_t H, int64_t Wd,
                     int64_t h, int nthreads) {
    using V = typename Lanes<S>::V;
    const int64_t C = 2 * h;
    const auto half = channel_blocks(h), whole = channel_blocks(C);
    // one band per image on one thread; else about four bands per thread (two halo rows each)
    const int64_t bands = nthreads == 1 ? 1 : std::max<int64_t>(1, std::min<int64_t>(H / 8, 4 * nthreads));
    const int64_t rows_per = (H + bands - 1) / bands;
    parallel_tasks(batch * bands, nthreads, [&](int tid, int64_t task) {
        const int64_t b = task / bands, r0 = (task % bands) * rows_per, r1 = std::min(H, r0 + rows_per);
        if (r0 >= r1) return;
        const S* ub = u + b * H * Wd * C;
        const S* gb = g + b * H * Wd * h;
        S* db = du + b * H * Wd * C;
        S* dwt = dw_buf + tid * 9 * C;
        std::vector<S> ring(3 * Wd * C);
        auto slot = [&](int64_t row) -> const S* {
            return row < 0 || row >= H ? nullptr : ring.data() + (row % 3) * Wd * C;
        };
        auto adjoint = [&](int64_t q) {
            const S* rows[3] = {slot(q - 1), slot(q), slot(q + 1)};
            dw_adjoint_row<S, V>(rows, w9, db + q * Wd * C, whole, Wd, C);
        };
        const int64_t first = std::max<int64_t>(r0 - 1, 0), last = std::min<int64_t>(r1, H - 1);
        for (int64_t i = first; i <= last; ++i) {
            gated_gy_row<S, V>(ub, gb, w9, ring.data() + (i % 3) * Wd * C, dwt, half, H, Wd, h, i,
                               i >= r0 && i < r1);
            if (i - 1 >= r0 && i - 1 < r1) adjoint(i - 1);
        }
        if (r1 == H) adjoint(H - 1);
    });
}

// ------------------------------------------------------------------------------------------------------
// LayerNorm over the last dimension of contiguous rows (the channels of channels-last pixels, tokens):
//     mu = mean_c x[c],   rstd = 1 / sqrt(mean_c (x[c] - mu)^2 + eps),   y[c] = (x[c] - mu) rstd w[c] + b[c]
// (two passes over the row; the same values as torch's kernel to rounding).  Backward, with
// xhat = (x - mu) rstd and gw = g w:
//     dx = rstd (gw - mean_c(gw) - xhat mean_c(gw xhat)),   dw[c] += g[c] xhat[c],   db[c] += g[c]
// PyTorch's CPU kernels walk a row of the small model's 16 or 32 channels with too little work per call to
// pay for their set-up; here a row is one or a few vectors.  A task is a run of LR rows; a row's channels
// are channel_blocks (a ragged end's overlapping block rewrites the same outputs and counts only its own
// lanes in the sums: row_masks).

constexpr int64_t LR = 256;  // rows per task

// per channel block: 1 in the lanes that are its own (see own_lanes) and inside the row, else 0
template <typename S, typename V>
std::vector<V> row_masks(const std::vector<Block>& blocks, int64_t C) {
    std::vector<V> out;
    for (const Block& blk : blocks) {
        V m = own_lanes<S, V>(blk, C);
        for (int64_t j = blk.lanes; j < W; ++j) m[j] = S(0);
        out.push_back(m);
    }
    return out;
}

// sqrt lane by lane (vectorised by the compiler: -fno-math-errno)
template <typename V>
inline V vsqrt(V v) {
    for (int j = 0; j < W; ++j) v[j] = std::sqrt(v[j]);
    return v;
}

// Rows go sixteen at a time (a group): each row's partial sums are one vector, and reduce16 turns the
// sixteen into one vector of row sums (lane k: row k), so no row waits on its own horizontal sum.
// Rows of NB whole vectors (C = 16 NB, NB <= 4: the small model's 16, 32, 64 channels) take a path with
// the block loop unrolled and no masks; any other C the general one (masked ragged blocks).

// A row's channel blocks for the LayerNorm kernels: NB > 0 fixed whole blocks (C = 16 NB, no masks), else
// channel_blocks(C) with row_masks.  each(fn) calls fn(block index, c0, whole) for every block.
template <int NB, typename S>
struct RowBlocks {
    using V = typename Lanes<S>::V;
    std::vector<Block> blocks;
    std::vector<V> masks;
    S inv;  // 1 / C
    explicit RowBlocks(int64_t C) : blocks(channel_blocks(C)), masks(row_masks<S, V>(blocks, C)), inv(S(1) / S(C)) {}
    V mask(int i) const {
        if constexpr (NB > 0) return V{} + S(1);
        else return masks[i];
    }
    int64_t lanes(int i) const {
        if constexpr (NB > 0) return W;
        else return blocks[i].lanes;
    }
    template <typename F>
    void each(F&& fn) const {
        if constexpr (NB > 0) {
            for (int i = 0; i < NB; ++i) fn(i, int64_t(i) * W, std::true_type{});
        } else {
            for (size_t i = 0; i < blocks.size(); ++i) {
                if (blocks[i].lanes == W) fn(int(i), blocks[i].c0, std::true_type{});
                else fn(int(i), blocks[i].c0, std::false_type{});
            }
        }
    }
};

template <int NB, typename S>
void layer_norm_rows_nb(const S* x, const S* w, const S* b, S* y, S* mean, S* rstd, int64_t rows, int64_t C, S eps,
                        int nthreads) {
    using V = typename Lanes<S>::V;
    const RowBlocks<NB, S> rb(C);
    parallel_tasks((rows + LR - 1) / LR, nthreads, [&](int, int64_t task) {
        const int64_t end = std::min(rows, (task + 1) * LR);
        for (int64_t r0 = task * LR; r0 < end; r0 += W) {
            const int64_t nr = std::min<int64_t>(W, end - r0);  // rows of this group
            V s[W];
            for (int k = 0; k < W; ++k) s[k] = V{};
            for (int k = 0; k < nr; ++k) {
                const S* xr = x + (r0 + k) * C;
                rb.each([&](int i, int64_t c0, auto full) {
                    s[k] += ldb<decltype(full)::value, S, V>(xr + c0, rb.lanes(i)) * rb.mask(i);
                });
            }
            const V mu = reduce16(s) * rb.inv;  // lane k: the mean of row r0 + k
            for (int k = 0; k < nr; ++k) {
                const S* xr = x + (r0 + k) * C;
                V acc = V{};
                rb.each([&](int i, int64_t c0, auto full) {
                    const V d = (ldb<decltype(full)::value, S, V>(xr + c0, rb.lanes(i)) - mu[k]) * rb.mask(i);
                    acc += d * d;
                });
                s[k] = acc;
            }
            const V rs = S(1) / vsqrt(reduce16(s) * rb.inv + eps);
            for (int k = 0; k < nr; ++k) {
                const S* xr = x + (r0 + k) * C;
                S* yr = y + (r0 + k) * C;
                rb.each([&](int i, int64_t c0, auto full) {
                    constexpr bool Full = decltype(full)::value;
                    const V xv = ldb<Full, S, V>(xr + c0, rb.lanes(i));
                    const V wv = ldb<Full, S, V>(w + c0, rb.lanes(i)), bv = ldb<Full, S, V>(b + c0, rb.lanes(i));
                    stb<Full>(yr + c0, (xv - mu[k]) * rs[k] * wv + bv, rb.lanes(i));
                });
            }
            store_lanes(mean + r0, mu, nr);  // whole vectors when nr == W
            store_lanes(rstd + r0, rs, nr);
        }
    });
}

// dw_buf, db_buf: zeroed (nthreads, C), each thread adds its rows' terms to its own row
template <int NB, typename S>
void layer_norm_rows_bwd_nb(const S* x, const S* w, const S* g, const S* mean, const S* rstd, S* dx, S* dw_buf,
                            S* db_buf, int64_t rows, int64_t C, int nthreads) {
    using V = typename Lanes<S>::V;
    const RowBlocks<NB, S> rb(C);
    parallel_tasks((rows + LR - 1) / LR, nthreads, [&](int tid, int64_t task) {
        std::vector<V> accw(rb.blocks.size(), V{}), accb(rb.blocks.size(), V{});
        const int64_t end = std::min(rows, (task + 1) * LR);
        for (int64_t r0 = task * LR; r0 < end; r0 += W) {
            const int64_t nr = std::min<int64_t>(W, end - r0);
            const V mu = load_lanes<S, V>(mean + r0, 1, nr), rs = load_lanes<S, V>(rstd + r0, 1, nr);
            V s1[W], s2[W];
            for (int k = 0; k < W; ++k) s1[k] = s2[k] = V{};
            for (int k = 0; k < nr; ++k) {
                const S* xr = x + (r0 + k) * C;
                const S* gr = g + (r0 + k) * C;
                V a1 = V{}, a2 = V{};
                rb.each([&](int i, int64_t c0, auto full) {
                    constexpr bool Full = decltype(full)::value;
                    const V xh = (ldb<Full, S, V>(xr + c0, rb.lanes(i)) - mu[k]) * rs[k];
                    const V gv = ldb<Full, S, V>(gr + c0, rb.lanes(i)) * rb.mask(i);
                    const V gw = gv * ldb<Full, S, V>(w + c0, rb.lanes(i));
                    a1 += gw;
                    a2 += gw * xh;
                    accw[i] += gv * xh;
                    accb[i] += gv;
                });
                s1[k] = a1;
                s2[k] = a2;
            }
            const V m1 = reduce16(s1) * rb.inv, m2 = reduce16(s2) * rb.inv;  // lane k: row r0 + k
            for (int k = 0; k < nr; ++k) {
                const S* xr = x + (r0 + k) * C;
                const S* gr = g + (r0 + k) * C;
                S* dxr = dx + (r0 + k) * C;
                rb.each([&](int i, int64_t c0, auto full) {
                    constexpr bool Full = decltype(full)::value;
                    const V xh = (ldb<Full, S, V>(xr + c0, rb.lanes(i)) - mu[k]) * rs[k];
                    const V gw = ldb<Full, S, V>(gr + c0, rb.lanes(i)) * ldb<Full, S, V>(w + c0, rb.lanes(i));
                    stb<Full>(dxr + c0, rs[k] * (gw - m1[k] - xh * m2[k]), rb.lanes(i));
                });
            }
        }
        // the thread's sums (masked lanes hold zeros: each channel counted once)
        for (size_t i = 0; i < rb.blocks.size(); ++i) {
            const Block& blk = rb.blocks[i];
            for (int64_t j = 0; j < blk.lanes; ++j) {
                dw_buf[tid * C + blk.c0 + j] += accw[i][j];
                db_buf[tid * C + blk.c0 + j] += accb[i][j];
            }
        }
    });
}

template <typename S>
void layer_norm_rows(const S* x, const S* w, const S* b, S* y, S* mean, S* rstd, int64_t rows, int64_t C, S eps,
                     int nthreads) {
    switch (C % W == 0 ? C / W : 0) {
        case 1: return layer_norm_rows_nb<1>(x, w, b, y, mean, rstd, rows, C, eps, nthreads);
        case 2: return layer_norm_rows_nb<2>(x, w, b, y, mean, rstd, rows, C, eps, nthreads);
        case 3: return layer_norm_rows_nb<3>(x, w, b, y, mean, rstd, rows, C, eps, nthreads);
        case 4: return layer_norm_rows_nb<4>(x, w, b, y, mean, rstd, rows, C, eps, nthreads);
        default: return layer_norm_rows_nb<0>(x, w, b, y, mean, rstd, rows, C, eps, nthreads);
    }
}

template <typename S>
void layer_norm_rows_bwd(const S* x, const S* w, const S* g, const S* mean, const S* rstd, S* dx, S* dw_buf,
                         S* db_buf, int64_t rows, int64_t C, int nthreads) {
    switch (C % W == 0 ? C / W : 0) {
        case 1: return layer_norm_rows_bwd_nb<1>(x, w, g, mean, rstd, dx, dw_buf, db_buf, rows, C, nthreads);
        case 2: return layer_norm_rows_bwd_nb<2>(x, w, g, mean, rstd, dx, dw_buf, db_buf, rows, C, nthreads);
        case 3: return layer_norm_rows_bwd_nb<3>(x, w, g, mean, rstd, dx, dw_buf, db_buf, rows, C, nthreads);
        case 4: return layer_norm_rows_bwd_nb<4>(x, w, g, mean, rstd, dx, dw_buf, db_buf, rows, C, nthreads);
        default: return layer_norm_rows_bwd_nb<0>(x, w, g, mean, rstd, dx, dw_buf, db_buf, rows, C, nthreads);
    }
}

// ------------------------------------------------------------------------------------------------------
// Dropout added to a residual, out = x + y keep / (1 - p), keep_i = [hash(i) >= p 2^32], with a counter-based
// hash of the element's memory index i (two rounds of MurmurHash3's 32-bit finaliser, keyed by two seeds):
// the backward, dy = g keep / (1 - p), recomputes the mask instead of storing it, and any thread can draw any
// element.  padm/ops/dropout.py:dropout_mask is the same hash in PyTorch (the reference).  x null: out = y keep
// / (1 - p) (the backward).  PyTorch's CPU dropout draws a Bernoulli variable per element from its Mersenne
// twister: 1.5-2 ms for one 16 x 128 x 128 map, about 4 % of a `small` training step.

typedef uint32_t VU __attribute__((vector_size(W * sizeof(uint32_t))));

inline VU fmix32(VU h) {
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

// the hashes of elements i0 .. i0 + 15
inline VU drop_hash(uint32_t i0, uint32_t s0, uint32_t s1) {
    const VU idx = VU{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15} + i0;
    return fmix32(fmix32(idx ^ s0) + s1);
}

// keep / (1 - p) per lane: scale where hash >= thr, else 0
template <typename S, typename V>
inline V drop_scale(VU h, uint32_t thr, S scale) {
    return __builtin_convertvector(-(h >= thr), V) * scale;  // (h >= thr) is -1 (true) or 0 per lane
}

template <typename S>
void dropout_add(const S* x, const S* y, S* out, int64_t n, uint32_t s0, uint32_t s1, uint32_t thr, S scale,
                 int nthreads) {
    using V = typename Lanes<S>::V;
    constexpr int64_t CH = 16384;  // elements per task
    parallel_tasks((n + CH - 1) / CH, nthreads, [&](int, int64_t task) {
        const int64_t a = task * CH, b = std::min(n, a + CH);
        for (int64_t i = a; i < b; i += W) {
            const int64_t r = std::min<int64_t>(W, b - i);
            const V k = drop_scale<S, V>(drop_hash(uint32_t(i), s0, s1), thr, scale);
            const V v = load_lanes<S, V>(y + i, 1, r) * k;
            store_lanes(out + i, x ? load_lanes<S, V>(x + i, 1, r) + v : v, r);
        }
    });
}

}  // namespace

// ------------------------------------------------------------------------------------------------------
// C interface: one pointer array, one stride array, one dims array (batch, dim, len, N, groups).
//   forward  pointers: u delta A B C D z bias out last ckpt h_init     (D, z, bias, last, ckpt, h_init may be null)
//            strides : u delta z out (3 each: batch, dim, len), B C (4 each: batch, group, n, len)
//   backward pointers: u delta A B C D z bias ckpt dout du ddelta dA_part dD_part dz dbias_part dB_buf dC_buf dh_init
//            strides : u delta z dout du ddelta dz (3 each), B C (4 each)
// dA_part: (batch, dim, N); dD_part, dbias_part: (batch, dim); dB_buf, dC_buf: zeroed contiguous
// (nthreads, batch, groups, len, N); ckpt: contiguous (batch, dim, ceil(len / T), N); h_init (the state before
// step 0, zero when null) and its gradient dh_init (written when not null): contiguous (batch, dim, N).

namespace {

template <typename S>
Seq<const S> cseq(const void* p, const int64_t* st) {
    return {static_cast<const S*>(p), st[0], st[1], st[2]};
}
template <typename S>
Seq<S> mseq(void* p, const int64_t* st) {
    return {static_cast<S*>(p), st[0], st[1], st[2]};
}
template <typename S>
Grp<S> grp(const void* p, const int64_t* st) {
    return {static_cast<const S*>(p), st[0], st[1], st[2], st[3]};
}

template <typename S>
void forward_api(void* const* p, const int64_t* st, const int64_t* dm, int softplus, int nthreads) {
    scan_forward<S>(cseq<S>(p[0], st), cseq<S>(p[1], st + 3), static_cast<const S*>(p[2]), grp<S>(p[3], st + 12),
                    grp<S>(p[4], st + 16), static_cast<const S*>(p[5]), cseq<S>(p[6], st + 6),
                    static_cast<const S*>(p[7]), softplus != 0, mseq<S>(p[8], st + 9), static_cast<S*>(p[9]),
                    static_cast<S*>(p[10]), static_cast<const S*>(p[11]), Dims{dm[0], dm[1], dm[2], dm[3], dm[4]},
                    nthreads);
}

template <typename S>
void backward_api(void* const* p, const int64_t* st, const int64_t* dm, int softplus, int nthreads) {
    scan_backward<S>(cseq<S>(p[0], st), cseq<S>(p[1], st + 3), static_cast<const S*>(p[2]), grp<S>(p[3], st + 21),
                     grp<S>(p[4], st + 25), static_cast<const S*>(p[5]), cseq<S>(p[6], st + 6),
                     static_cast<const S*>(p[7]), softplus != 0, static_cast<const S*>(p[8]), cseq<S>(p[9], st + 9),
                     mseq<S>(p[10], st + 12), mseq<S>(p[11], st + 15), static_cast<S*>(p[12]), static_cast<S*>(p[13]),
                     mseq<S>(p[14], st + 18), static_cast<S*>(p[15]), static_cast<S*>(p[16]), static_cast<S*>(p[17]),
                     static_cast<S*>(p[18]), Dims{dm[0], dm[1], dm[2], dm[3], dm[4]}, nthreads);
}

}  // namespace

extern "C" {

int padm_scan_chunk() { return T; }
// 1: dB_buf, dC_buf are (nthreads, batch, groups, len, N); libraries without this function wrote (..., N, len)
int padm_scan_bc_grad_time_major() { return 1; }

void padm_scan_fwd_f32(void* const* p, const int64_t* st, const int64_t* dm, int softplus, int nthreads) {
    forward_api<float>(p, st, dm, softplus, nthreads);
}
void padm_scan_fwd_f64(void* const* p, const int64_t* st, const int64_t* dm, int softplus, int nthreads) {
    forward_api<double>(p, st, dm, softplus, nthreads);
}
void padm_scan_bwd_f32(void* const* p, const int64_t* st, const int64_t* dm, int softplus, int nthreads) {
    backward_api<float>(p, st, dm, softplus, nthreads);
}
void padm_scan_bwd_f64(void* const* p, const int64_t* st, const int64_t* dm, int softplus, int nthreads) {
    backward_api<double>(p, st, dm, softplus, nthreads);
}

// Causal conv1d on channel-last activations.  x: strided (batch, len, E) with strides xs[0..2];
// wT: (K, E) contiguous; bias may be null; out, dx: contiguous (batch, len, E); dout: strided, strides gs;
// dw_buf: zeroed (nthreads, K, E); dbias_buf: zeroed (nthreads, E).  dm = (batch, len, E, K).
#define PADM_CONV_API(S, SUFFIX)                                                                           \
    void padm_conv_fwd_##SUFFIX(const S* x, const int64_t* xs, const S* wT, const S* bias, S* out, int silu,  \
                                const int64_t* dm, int nthreads) {                                          \
        conv_forward<S>(x, xs[0], xs[1], xs[2], wT, bias, out, silu != 0, dm[0], dm[1], dm[2], dm[3], nthreads); \
    }                                                                                                      \
    void padm_conv_bwd_##SUFFIX(const S* x, const int64_t* xs, const S* wT, const S* bias, const S* dout,     \
                                const int64_t* gs, int silu, S* dx, S* dw_buf, S* dbias_buf, const int64_t* dm, \
                                int nthreads) {                                                             \
        conv_backward<S>(x, xs[0], xs[1], xs[2], wT, bias, dout, gs[0], gs[1], gs[2], silu != 0, dx, dw_buf,    \
                         dbias_buf, dm[0], dm[1], dm[2], dm[3], nthreads);                                  \
    }

PADM_CONV_API(float, f32)
PADM_CONV_API(double, f64)

// Gated depthwise 3x3: u (batch, H, W, 2h) and out (batch, H, W, h) contiguous, w9 (9, 2h).
void padm_gated_dw_f32(const float* u, const float* w9, float* out, int64_t batch, int64_t H, int64_t Wd, int64_t h,
                       int nthreads) {
    gated_dw3x3<float>(u, w9, out, batch, H, Wd, h, nthreads);
}
void padm_gated_dw_f64(const double* u, const double* w9, double* out, int64_t batch, int64_t H, int64_t Wd,
                       int64_t h, int nthreads) {
    gated_dw3x3<double>(u, w9, out, batch, H, Wd, h, nthreads);
}

// Its backward: g (batch, H, W, h), du (batch, H, W, 2h) contiguous; dw_buf zeroed (nthreads, 9, 2h).
void padm_gated_dw_bwd_f32(const float* u, const float* w9, const float* g, float* du, float* dw_buf, int64_t batch,
                           int64_t H, int64_t Wd, int64_t h, int nthreads) {
    gated_dw3x3_bwd<float>(u, w9, g, du, dw_buf, batch, H, Wd, h, nthreads);
}
void padm_gated_dw_bwd_f64(const double* u, const double* w9, const double* g, double* du, double* dw_buf,
                           int64_t batch, int64_t H, int64_t Wd, int64_t h, int nthreads) {
    gated_dw3x3_bwd<double>(u, w9, g, du, dw_buf, batch, H, Wd, h, nthreads);
}

// LayerNorm over rows: x, y, g, dx (rows, C) contiguous; w, b (C); mean, rstd (rows); dw_buf, db_buf zeroed
// (nthreads, C).
void padm_layer_norm_f32(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd,
                         int64_t rows, int64_t C, double eps, int nthreads) {
    layer_norm_rows<float>(x, w, b, y, mean, rstd, rows, C, static_cast<float>(eps), nthreads);
}
void padm_layer_norm_f64(const double* x, const double* w, const double* b, double* y, double* mean, double* rstd,
                         int64_t rows, int64_t C, double eps, int nthreads) {
    layer_norm_rows<double>(x, w, b, y, mean, rstd, rows, C, eps, nthreads);
}
void padm_layer_norm_bwd_f32(const float* x, const float* w, const float* g, const float* mean, const float* rstd,
                             float* dx, float* dw_buf, float* db_buf, int64_t rows, int64_t C, int nthreads) {
    layer_norm_rows_bwd<float>(x, w, g, mean, rstd, dx, dw_buf, db_buf, rows, C, nthreads);
}
void padm_layer_norm_bwd_f64(const double* x, const double* w, const double* g, const double* mean,
                             const double* rstd, double* dx, double* dw_buf, double* db_buf, int64_t rows, int64_t C,
                             int nthreads) {
    layer_norm_rows_bwd<double>(x, w, g, mean, rstd, dx, dw_buf, db_buf, rows, C, nthreads);
}

// Dropout added to a residual: x (may be null), y, out contiguous (n); thr = p 2^32, scale = 1 / (1 - p).
void padm_dropout_add_f32(const float* x, const float* y, float* out, int64_t n, uint32_t s0, uint32_t s1,
                          uint32_t thr, double scale, int nthreads) {
    dropout_add<float>(x, y, out, n, s0, s1, thr, static_cast<float>(scale), nthreads);
}
void padm_dropout_add_f64(const double* x, const double* y, double* out, int64_t n, uint32_t s0, uint32_t s1,
                          uint32_t thr, double scale, int nthreads) {
    dropout_add<double>(x, y, out, n, s0, s1, thr, scale, nthreads);
}

}  // extern "C"
