// Hand-vectorised float32 kernels for Unroll's hot loops: elementwise exp / sigmoid / tanh and
// a small-M GEMM against a pre-packed right operand. Every entry point dispatches at run time
// to AVX-512, AVX2+FMA or portable C, picked once from the CPU (see uk_isa_name).
// All matrices are row-major float32. Letters: M rows of A and C, N columns of op(B) and C,
// K the contracted dimension.
#ifndef CKERNELS_H
#define CKERNELS_H
#include <stddef.h>

#pragma clang assume_nonnull begin

/// Instruction-set paths, for uk_force_isa / uk_kernels_for_isa.
enum {
    UK_ISA_AUTO = -1,    ///< the widest path this CPU supports
    UK_ISA_GENERIC = 0,  ///< portable C (whatever the compiler makes of it for baseline x86-64)
    UK_ISA_AVX2 = 1,     ///< AVX2 + FMA
    UK_ISA_AVX512 = 2,   ///< AVX-512 F/DQ/VL
};

/// Name of the instruction set in use ("avx512", "avx2" or "generic").
const char *uk_isa_name(void);

/// The path in use (UK_ISA_GENERIC, UK_ISA_AVX2 or UK_ISA_AVX512).
int uk_active_isa(void);

/// Makes every later call use `isa` (UK_ISA_AUTO restores the automatic choice).
/// Process-wide; meant for experiments and benchmarks, not for concurrent use with other callers
/// that expect a particular path (the packed layout is the same on every path, so results stay
/// correct). Returns 0, or -1 (and changes nothing) if the CPU lacks that instruction set.
int uk_force_isa(int isa);

// MARK: Activations
// Max relative error ≤ 2e-6 against double-precision libm wherever the float result is a normal
// number (measured over every finite float: ≤ 2.1e-7 on all paths); subnormal results are within
// two units of 2^-149. NaN in gives NaN out.

/// y[i] = 1 / (1 + exp(-x[i])) for i < n. `y` may equal `x` (in place); no other overlap.
/// Saturates to exactly 0 or 1 for large |x|, never NaN/Inf for finite x.
void uk_sigmoid(float *y, const float *x, size_t n);

/// y[i] = tanh(x[i]) for i < n. `y` may equal `x` (in place); no other overlap.
/// Saturates to exactly ±1 for |x| ≥ 9.02, never NaN/Inf for finite x; keeps the sign of ±0.
void uk_tanh(float *y, const float *x, size_t n);

/// y[i] = exp(x[i]) for i < n. `y` may equal `x` (in place); no other overlap.
/// Underflows gradually to 0 (exactly 0 for x ≤ -104) and returns +Inf above ln(FLT_MAX) ≈ 88.72,
/// as IEEE rounding of the true value requires.
void uk_exp(float *y, const float *x, size_t n);

// MARK: Reductions (16 lanes, float partial sums per block of 4096 added in double)

/// max over x[0..<n] (−Inf for n = 0; NaN elements are skipped unless all are NaN).
float uk_max(const float *x, size_t n);
/// Σ x[i].
double uk_sum(const float *x, size_t n);
/// Σ x[i]².
double uk_sum_squares(const float *x, size_t n);

// MARK: GEMM with a packed right operand

/// Number of floats uk_pack_b writes for a K×N operand. Zero when k or n is not positive.
size_t uk_packed_floats(int k, int n);

/// Packs op(B) (K×N) for uk_gemm_packed, so that one weight matrix packed once can be used for
/// many products (all time steps of a window).
/// - trans = 0: `b` holds op(B) itself, K×N with row stride `ldb` ≥ n.
/// - trans = 1: `b` holds B, N×K with row stride `ldb` ≥ k, and op(B) = Bᵀ
///   (e.g. W_hh (4H×H) for h · W_hhᵀ).
/// `packed` must have room for uk_packed_floats(k, n) floats; 64-byte alignment is ~3% faster but
/// not required. The layout is private to this library and the same on every ISA path.
void uk_pack_b(float *packed, const float *b, int k, int n, int ldb, int trans);

/// C (M×N, row stride `ldc`) = alpha · A (M×K, row stride `lda`) · op(B) + beta · C, with op(B)
/// packed by uk_pack_b(packed, _, k, n, _, _) using the same k and n. When beta == 0, C is
/// written without being read (NaN or garbage in C is ignored). Single-threaded; the AVX2 path
/// allocates one 960 KiB buffer per calling thread on its first call, shared with uk_gemm (freed
/// when the thread ends; without it, it reads A in place). Does nothing when m or n is not positive; with k ≤ 0,
/// C = beta · C.
/// Requires lda ≥ k, ldc ≥ n, and C not overlapping A or packed.
void uk_gemm_packed(int m, int n, int k, float alpha, const float *a, int lda,
                    const float *packed, float beta, float *c, int ldc);

/// C (M×N) = alpha · A · op(B) + beta · C with op(B) given as for uk_pack_b (trans = 0: K×N,
/// stride ldb; trans = 1: B is N×K, op(B) = Bᵀ): the same bits as uk_pack_b followed by
/// uk_gemm_packed on the active path, and so the same M-stability, without a packed copy of the
/// whole operand. For an operand used once (a weight that changes every step): the AVX2 path
/// packs op(B) a k-block or a strip at a time into cache right before use, which saves writing and
/// re-reading it through memory (B's logits: level with `sgemm`, 0.92–1.08×); the other
/// paths pack it whole into a buffer kept per thread. Single-threaded. Returns 0, or −1 (C
/// untouched) when that buffer cannot be allocated. Requires lda ≥ k, ldc ≥ n, ldb ≥ (trans ? k :
/// n), and C not overlapping A or B.
int uk_gemm(int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
            int trans, float beta, float *c, int ldc);
/// uk_gemm on path `isa` (its bits are uk_pack_b + that path's uk_gemm_packed); −1 also if this
/// CPU cannot run it. For tests.
int uk_gemm_on(int isa, int m, int n, int k, float alpha, const float *a, int lda, const float *b,
               int ldb, int trans, float beta, float *c, int ldc);

// MARK: Weight gradients under fixed reduction groups (group_gemm.c)

/// Floats of scratch uk_group_gemm_tn needs: the packed rows of b and of a (steps·group_size·groups
/// × n, and × m, rounded up to 16 and 6 columns). Zero when a size is not positive.
size_t uk_group_gemm_tn_scratch(int m, int n, int steps, int group_size, int groups);

/// C (m×n, row stride ldc) = C + T, where T is the halving-tree sum (node(lo, hi) = node(lo, mid) +
/// node(mid, hi), mid = lo + (hi − lo)/2) over groups q in [0, groups) of Σ_rows a_rowᵀ · b_row.
/// Group q's rows are (t, u) for t < steps, u < group_size, at row index q·group_stride +
/// t·step_stride + u of `a` (rows of m floats, stride lda) and `b` (rows of n floats, stride ldb);
/// each element of a group's sum is one fmaf chain over its rows in (t, u) order, so the result
/// is the same bits on every ISA path and for a group wherever it sits. `scratch` holds
/// uk_group_gemm_tn_scratch(m, n, steps, group_size, groups) floats. Single-threaded; allocates
/// nothing. Returns 0, or −1 (C untouched) for steps or group_size < 1 or more than 2³⁰ rows.
int uk_group_gemm_tn(int m, int n, int steps, int group_size, int groups, long group_stride,
                     long step_stride, const float *a, int lda, const float *b, int ldb, float *c,
                     int ldc, float *scratch);
/// uk_group_gemm_tn on path `isa` (UK_ISA_GENERIC, or any other for the AVX2 tile); −1 if this
/// CPU cannot run it. For tests: every path gives the same bits.
int uk_group_gemm_tn_on(int isa, int m, int n, int steps, int group_size, int groups,
                        long group_stride, long step_stride, const float *a, int lda,
                        const float *b, int ldb, float *c, int ldc, float *scratch);

/// The same product in two parts, for several products that share a (an LSTM's dW_hh and dW_ih
/// both read ∂L/∂gates): uk_group_gemm_tn_pack_a copies a's rows once into `packed_a`
/// (uk_group_gemm_tn_a_floats floats), and each uk_group_gemm_tn_packed then reads them instead of
/// a, with `scratch` of uk_group_gemm_tn_b_scratch(n, …) floats for b. Same bits as
/// uk_group_gemm_tn; same return values. (uk_group_gemm_tn_scratch is the two sizes added.)
size_t uk_group_gemm_tn_a_floats(int m, int steps, int group_size, int groups);
size_t uk_group_gemm_tn_b_scratch(int n, int steps, int group_size, int groups);
int uk_group_gemm_tn_pack_a(int m, int steps, int group_size, int groups, long group_stride,
                            long step_stride, const float *a, int lda, float *packed_a);
int uk_group_gemm_tn_packed(int m, int n, int steps, int group_size, int groups, long group_stride,
                            long step_stride, const float *packed_a, const float *b, int ldb,
                            float *c, int ldc, float *scratch);
int uk_group_gemm_tn_packed_on(int isa, int m, int n, int steps, int group_size, int groups,
                               long group_stride, long step_stride, const float *packed_a,
                               const float *b, int ldb, float *c, int ldc, float *scratch);

// MARK: Recurrent cell pointwise kernels (one time step, B rows; PyTorch gate order)
// Contracts (shapes, what is read and written) are documented on the Swift wrappers in
// UnrollKernels/CellKernels.swift. No buffer may overlap another unless stated.

/// LSTM step forward: gates (B, 4H) pre-activations in, activations out; c, tanh(c), h (B, H) out.
void uk_lstm_forward(float *gates, const float *c_prev, float *c, float *tanh_c, float *h, int batch,
                     int hidden);
/// LSTM step backward: d_gates (B, 4H) out; dc (B, H) in ∂L/∂c_t, out ∂L/∂c_{t−1}.
void uk_lstm_backward(float *d_gates, float *dc, const float *dh, const float *gates, const float *c_prev,
                      const float *tanh_c, int batch, int hidden);
/// GRU step forward: gates_ih (B, 3H) in pre-activations, out activations [r z n]; hh_n, h (B, H) out.
void uk_gru_forward(float *gates_ih, const float *gates_hh, float *hh_n, const float *h_prev, float *h,
                    int batch, int hidden);
/// GRU step backward: d_gates_ih, d_gates_hh (B, 3H) and dh_prev (B, H, direct part) out.
void uk_gru_backward(float *d_gates_ih, float *d_gates_hh, float *dh_prev, const float *dh,
                     const float *gates, const float *hh_n, const float *h_prev, int batch, int hidden);
/// Leaky-unit step forward: u (B, H) in pre-activations, out tanh; h (B, H) out.
void uk_leaky_forward(float *u, const float *h_prev, const float *alpha, float *h, int batch, int hidden);
/// Leaky-unit step backward: d_pre (B, H) out; dh_prev (B, H) out (direct part); d_rate (B, H) out,
/// per-row ∂L/∂α times rate_scale (H).
void uk_leaky_backward(float *d_pre, float *dh_prev, float *d_rate, const float *dh, const float *u,
                       const float *h_prev, const float *alpha, const float *rate_scale, int batch, int hidden);
/// Binary Tree-LSTM node forward: gates (B, 5H) pre-activations [i fL fR o u] in, activations out;
/// c_children (B, 2H) [c_left c_right]; c, tanh_c, h (B, H) out.
void uk_tree_lstm_forward(float *gates, const float *c_children, float *c, float *tanh_c, float *h, int batch,
                          int hidden);
/// Binary Tree-LSTM node backward: d_gates (B, 5H) out; dc_children (B, 2H) out [∂L/∂c_left ∂L/∂c_right];
/// dc (B, H) in ∂L/∂c from the parent; dh (B, H) in ∂L/∂h.
void uk_tree_lstm_backward(float *d_gates, float *dc_children, const float *dc, const float *dh, const float *gates,
                           const float *c_children, const float *tanh_c, int batch, int hidden);
/// sums[j] += Σ_r x[r·cols + j], rows added in order.
void uk_add_column_sums(float *sums, const float *x, int rows, int cols);

// MARK: Direct access to one path (tests)

/// The kernels of one instruction-set path; the same contracts as the functions above.
typedef struct uk_kernel_table {
    const char *name;
    void (*sigmoid)(float *y, const float *x, size_t n);
    void (*tanh_)(float *y, const float *x, size_t n);
    void (*exp_)(float *y, const float *x, size_t n);
    void (*gemm_packed)(int m, int n, int k, float alpha, const float *a, int lda,
                        const float *packed, float beta, float *c, int ldc);
} uk_kernel_table;

/// The kernels of path `isa` (UK_ISA_GENERIC / UK_ISA_AVX2 / UK_ISA_AVX512), or NULL if this CPU
/// cannot run it. Lets tests exercise every path without touching process-wide state.
const uk_kernel_table *_Nullable uk_kernels_for_isa(int isa);

#pragma clang assume_nonnull end

#endif
