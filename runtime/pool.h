/* runtime/pool.h — the thread pool that runs kernels (pool.c).
 *
 * A pool of `threads` participants: threads - 1 worker threads plus whichever thread calls
 * rt_pool_run. A job is a function over an index range [0, extent); the pool splits the
 * range into contiguous chunks of at least `grain` items and hands them out dynamically, so
 * every index is passed to fn exactly once. Kernels (kernel/kernel.h, the kernel ABI) are adapted with a
 * small ctx that holds bufs and dims and calls kernel(bufs, dims, begin, end).
 *
 * Threads: any number of threads may call rt_pool_run / rt_pool_run_many on one pool at
 * once; their jobs run one after another (see pool.c). A chunk may itself call
 * rt_pool_run on the same pool: the nested job runs serially on that thread. */
#ifndef DVM_POOL_H
#define DVM_POOL_H

#include <stdbool.h>
#include <stdint.h>

typedef struct Pool Pool;

/* One job of a batch: fn(ctx, begin, end) over chunks of [0, extent). */
typedef struct PoolJob {
  void (*fn)(void *ctx, int64_t begin, int64_t end);
  void *ctx;
  int64_t extent; /* <= 0: nothing to do, fn is not called */
  int64_t grain;  /* minimum items per chunk (values < 1 count as 1) */
} PoolJob;

/* A pool of `threads` participants including the caller (0 = one per online CPU). Starts
 * threads - 1 workers; if some cannot be started the pool runs with fewer (see
 * rt_pool_threads). NULL only when out of memory. */
Pool *rt_pool_new(int threads);
/* Stop and join the workers and free the pool. No run may be in progress. NULL is a no-op. */
void rt_pool_free(Pool *p);
/* Participants per job, the caller included (1 for a NULL pool). */
int rt_pool_threads(const Pool *p);
/* Run fn over [0, extent) and return when every chunk is done. extent <= grain, a
 * one-thread pool or a NULL pool calls fn(ctx, 0, extent) directly on the caller with no
 * synchronization; extent <= 0 calls nothing. */
void rt_pool_run(Pool *p, void (*fn)(void *ctx, int64_t begin, int64_t end), void *ctx,
                 int64_t extent, int64_t grain);
/* Run the n jobs as one parallel region (one wake-up, one join): chunks of different jobs
 * may run at the same time, so the jobs must be independent of one another. */
void rt_pool_run_many(Pool *p, const PoolJob *jobs, int n);

/* The stack a kernel may use below its caller's frame: the bytecode's GEMM driver keeps
 * 358 KB of blocks there, native GEMM 210 KB, column mode up to 160 KB. Threads that run
 * kernels (the pool's workers, runs handed over by callers without that room) get
 * RT_THREAD_STACK. */
enum { RT_KERNEL_STACK = 512 << 10, RT_THREAD_STACK = 4 * RT_KERNEL_STACK };

/* Fault in the pages of the calling thread's stack that kernels use (RT_KERNEL_STACK below
 * the caller's frame), so a first run does not pay for them one fault at a time. Nothing
 * on a stack without that much room to spare. Workers do it when they start. */
void rt_touch_stack(void);
/* Whether the calling thread has room below this frame to run kernels (RT_KERNEL_STACK and
 * a spare); true when its stack cannot be read. */
bool rt_stack_room(void);

#endif /* DVM_POOL_H */
