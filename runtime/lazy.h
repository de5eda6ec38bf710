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

/* A context's lazy state (rt_context_lazy), made on first use. */
typedef struct Lazy {
  dvm_context *ctx;
  pthread_mutex_t lock;   /* the traces list, the options */
  pthread_key_t key;      /* this thread's Trace */
  struct Trace *traces;   /* every trace, of live threads and of exited ones (orphans) */
  dvm_lazy_options opt;
  TraceCache *cache;
  _Atomic int64_t ops, flushes; /* ops recorded, flushes that ran a graph */
} Lazy;

/* The trace cache (trace.c). */
TraceCache *rt_trace_cache_new(void); /* NULL if out of memory */
void rt_trace_cache_free(TraceCache *c);
/* Drop entries beyond the limits (entries, bytes), least recently used first. */
void rt_trace_cache_trim(TraceCache *c, int64_t max_entries, int64_t max_bytes);
void rt_trace_cache_stats(TraceCache *c, dvm_lazy_stats *out);

/* Run the part of trace graph tg that outputs outs[0..nouts) need (op values of tg, whose
 * inputs are concrete: leaf[v] is the tensor of input node v, its dims constants), through
 * the trace cache: a hit runs a cached model, a miss compiles the needed part as a graph
 * symbolic in its inputs' dims (1 stays 1) and keeps it. results[i] receives a new tensor
 * for outs[i]. */
dvm_status rt_trace_run(Lazy *lz, const Graph *tg, const uint32_t *outs, uint32_t nouts,
                        Tensor *const *leaf, Tensor **results, Err *err);

#endif /* DVM_RUNTIME_LAZY_H */
