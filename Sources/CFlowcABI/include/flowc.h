/*
 * flowc.h — the C ABI of a model compiled by `flowc compile`.
 *
 * A compiled model is a shared object exporting the functions below. Entry points are
 * reentrant: they keep no global mutable state (only the optional flowc_set_parallel hook,
 * which the host sets); the caller supplies a workspace of
 * flowc_workspace_size(entry, batch) bytes (64-byte aligned) per concurrent call.
 * Arrays are float32, batch-first, C order; "per sample" shapes are in the metadata.
 * Outputs must not overlap the inputs, each other or the workspace, nor inputs the workspace
 * (FLOWC_ERROR_OVERLAP); inputs may share memory.
 *
 * `weights`: NULL when the weights are embedded (the default). A model compiled with
 * --external-weights lists its weights in the metadata ("external_weights": file size,
 * FNV-1a 64 checksum, and each tensor's name and shape, in order); the caller passes a table of
 * pointers to their float32 data in that order, read from the checked .safetensors file.
 */
#ifndef FLOWC_H
#define FLOWC_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI this header describes; flowc_abi_version() of a loadable artifact must equal it. */
#define FLOWC_ABI_VERSION 3

/* Entry point identifiers (flowc_workspace_size's `entry`). */
#define FLOWC_ENTRY_FORWARD 0   /* x -> (z, logdet) */
#define FLOWC_ENTRY_LOG_PROB 1  /* x -> log p(x) */
#define FLOWC_ENTRY_INVERSE 2   /* z -> (x, logdet of the inverse) */
#define FLOWC_ENTRY_SAMPLE 3    /* standard noise -> x (base density applied) */
#define FLOWC_ENTRY_FIELD 4     /* packed (state, times, label) rows -> the network's output */
#define FLOWC_ENTRY_SCORE 5     /* x -> the gradient of log p(x) with respect to x */

/* Return codes of the entry points. */
#define FLOWC_OK 0
#define FLOWC_ERROR_NONFINITE_INPUT 1   /* an input value is NaN or infinite */
#define FLOWC_ERROR_BAD_BATCH 2         /* batch < 1 */
#define FLOWC_ERROR_NONFINITE_OUTPUT 3  /* a result overflowed or left an op's domain (NaN or infinite) */
#define FLOWC_ERROR_NO_ENTRY 4          /* the model has no such entry point (see "entries" in the metadata) */
#define FLOWC_ERROR_OVERLAP 5           /* an output overlaps an input, another output or the workspace, or an input the workspace */

uint32_t flowc_abi_version(void);

/* JSON: {"name", "dtype", "input_shape", "latent_shape", "entries", "kind", "base", "weight_bytes", "abi_version"[, "external_weights"]}.
 * "weight_bytes" is the size of the model's constants (weights, packed and folded at compile time).
 * "kind" is "flow", "velocity", "mean_velocity" or "flow_map"; "classes" is the number of labels
 * of a class-conditional model (null: unconditional). A class-conditional flow's entry points take
 * packed rows: the input_shape (or latent_shape) values, then the label (0..K-1, or K for the
 * unconditional model); "guidance" records classifier-free guidance compiled into flowc_sample.
 * The last three kinds also have
 * "noise_at" (0 or 1: the time where the path is noise), "field_width" and "sampler" ({"method", "steps", "grid"}: the fixed-step
 * sampler compiled into flowc_sample, whose logdet output is 0); their entries are "sample",
 * "field" and, for velocities, "log_prob" (the exact continuous-flow likelihood). */
const char *flowc_metadata(void);

/* Bytes of workspace one call of `entry` needs for `batch` samples. */
uint64_t flowc_workspace_size(int32_t entry, int64_t batch);

int32_t flowc_forward(const float *x, float *z, float *logdet, int64_t batch, void *workspace, const float *const *weights);
int32_t flowc_log_prob(const float *x, float *log_prob, int64_t batch, void *workspace, const float *const *weights);
int32_t flowc_inverse(const float *z, float *x, float *logdet, int64_t batch, void *workspace, const float *const *weights);
int32_t flowc_sample(const float *noise, float *x, float *logdet, int64_t batch, void *workspace, const float *const *weights);

/* The standard normal noise flowc_sample takes, drawn as Flowc draws it (the same for every
 * model): entries 4*first_block .. 4*(first_block + blocks) - 1 of seed's stream, each times
 * `scale` (a temperature), written to out[0 .. 4*blocks - 1]. Entry k of an N x D noise matrix is
 * row k / D, column k % D; it is Box-Muller on Philox4x32-10 block k / 4 (counter (k/4 low 32 bits,
 * k/4 high 32 bits, 0, 0), key (seed low, seed high)): lanes (0, 1) and (2, 3) are two pairs,
 * u = (lane + 0.5) / 2^32, r = sqrt(-2 ln u1), cos(2 pi u2) * r for the even entry and sin for
 * the odd one, rounded to float. Reentrant; no workspace. */
void flowc_noise(uint64_t seed, int64_t first_block, int64_t blocks, float scale, float *out);

/* Flows compiled with --score: the score ∇x log p(x) (reverse-mode derivative of log_prob), one
 * input-shaped row per row (FLOWC_ERROR_NO_ENTRY otherwise). */
int32_t flowc_score(const float *x, float *score, int64_t batch, void *workspace, const float *const *weights);

/* Optional threads for small batches: a product of at most FLOWC_SPLIT_MAXIMUM_ROWS rows, 256 or
 * more output columns and enough work for two threads (a batch-1 MLP layer) can run as two
 * column halves, and at a batch of at most FLOWC_SPLIT_MAXIMUM_ROWS a run of row-wise kernels
 * (a Transformer layer between two attentions) as two row halves. From inside an entry point the
 * model calls hook(2, task, context); the hook either runs task(context, 0) and
 * task(context, 1) — concurrently, on any threads, both finished before it returns — and
 * returns 1, or runs nothing and returns 0 (the entry point then computes the product itself).
 * The results are bit-identical either way. NULL (the default) keeps every call on its own
 * thread. One setting per loaded artifact, read at each call: set it before calling. The Swift
 * runtime (CompiledModel) installs its worker pool. */
#define FLOWC_SPLIT_MAXIMUM_ROWS 16
typedef int32_t (*flowc_parallel_hook)(int64_t tasks, void (*task)(void *context, int64_t index), void *context);
void flowc_set_parallel(flowc_parallel_hook hook);

/* One network evaluation per row, for your own solver. A row of `in` has "field_width" values:
 * the state (input_shape, flattened), then the times (velocity: t; mean_velocity: r, t;
 * flow_map: s, t), then the class label when "classes" is K (0..K-1, or K for the null label).
 * `out` receives the network's output, one state per row. */
int32_t flowc_field(const float *in, float *out, int64_t batch, void *workspace, const float *const *weights);

#ifdef __cplusplus
}
#endif
#endif
