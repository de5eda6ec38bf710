/* runtime/lazy.h — the lazy front end's private map (lazy.c, trace.c): eager programs
 * recorded op by op into per-thread traces, fused and run by the pipeline when a value is
 * needed (docs/lazy.md).
 *
 *   lazy.c    dvm_lazy handles, the per-thread traces (recording with concrete inference,
 *             the flush rules), the context's lazy state and its public functions
 *   trace.c   what a flush runs: the needed part of a trace in canonical form, the trace
 *             cache keyed on it (symbolic in the input dims, with specialized variants),
 *             the symbolic graph a miss compiles, and the run */
#ifndef DVM_RUNTIME_LAZY_H
#define DVM_RUNTIME_LAZY_H

#include <stdatomic.h>

#include "runtime.h"

typedef struct TraceCache TraceCache;
typedef struct Canon Canon; /* a trace's canonical form: trace.c's, kept by a trace between flushes */

/* A loop's flushes allocate results of the sizes the last iterations freed: up to
 * LAZY_SPARES blocks, LAZY_SPARE_BYTES in all, are kept for them (no page faults, no
 * zeroing). */
enum { LAZY_SPARES = 32 };
#define LAZY_SPARE_BYTES ((size_t)64 << 20)

/* A context's lazy state (rt_context_lazy), made on first use. */
typedef struct Lazy {
  dvm_context *ctx;
  pthread_mutex_t lock;   /* the traces list (taken before a trace's lock) */
  pthread_mutex_t opt_lock; /* the options (taken with no other lock held after it) */
  pthread_key_t key;      /* this thread's Trace */
  struct Trace *traces;   /* every trace, of live threads and of exited ones (orphans) */
  dvm_lazy_options opt;   /* under opt_lock; flushes take a copy */
  _Atomic int max_ops;    /* opt.max_ops, read as each op is recorded */
  TraceCache *cache;
  _Atomic int64_t ops, flushes; /* ops recorded, flushes that ran a graph */
  pthread_mutex_t spare_lock;   /* results' memory freed, kept for the next flushes' */
  void *spare[LAZY_SPARES];
  size_t spare_size[LAZY_SPARES];
  int nspare;
  size_t spare_bytes;
} Lazy;

/* The trace cache (trace.c). */
TraceCache *rt_trace_cache_new(void); /* NULL if out of memory */
void rt_trace_cache_free(TraceCache *c);
/* Drop entries beyond the limits (entries, bytes), least recently used first. */
void rt_trace_cache_trim(TraceCache *c, int64_t max_entries, int64_t max_bytes);
void rt_trace_cache_stats(TraceCache *c, dvm_lazy_stats *out);

/* Run the part of trace graph tg that outputs outs[0..nouts) need (op values of tg, whose
 * inputs are concrete: leaf[v] is the tensor of input node v, its dims constants), through
 * the trace cache (*scratch: the memory of the trace's last canonical form, made on first
 * use): a hit runs a cached model, a miss compiles the needed part as a graph
 * symbolic in its inputs' dims (1 stays 1) and keeps it. A param node (a constant
 * tensor's) is bound to the model when serial[v], its wrap, is not the one bound last
 * (then packed again). outs[i] is written into
 * results[i], a tensor of its recorded dtype and shape sharing no memory with the leaves. */
dvm_status rt_trace_run(Lazy *lz, Canon **scratch, const Graph *tg, const uint32_t *outs, uint32_t nouts,
                        Tensor *const *leaf, const uint64_t *serial, Tensor *const *results, Err *err);
void rt_trace_scratch_free(Canon *c);
/* Wait for the background compiles of every kept model (dvm_model_wait). */
void rt_trace_cache_wait(TraceCache *c);

#endif /* DVM_RUNTIME_LAZY_H */
