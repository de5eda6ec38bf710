/* runtime/pool.c — the thread pool that runs kernels (declared in pool.h).
 *
 * A Pool owns threads - 1 worker threads, the slot array that describes the region in
 * flight, and the locks and condition variables below. No globals: everything hangs off
 * the Pool.
 *
 * A region is one rt_pool_run or rt_pool_run_many call. Each job of a region is split into
 * c = min(extent / grain, CHUNKS_PER_THREAD * threads) contiguous chunks (at least one),
 * so a chunk holds at least `grain` items and each participant gets about four of them:
 * participants take chunks dynamically, and four per head lets the caller, already
 * running, absorb the work of a worker that wakes late or is preempted, at the price of a
 * few more atomic operations per region. The chunks of all jobs are numbered 0..total,
 * the jobs with the most work per chunk first; participants claim them in that order.
 *
 * Regions run one at a time: a caller holds run_lock from publishing its region until
 * every chunk of it is done, so callers from many threads queue on that mutex. A chunk
 * that calls rt_pool_run on its own pool (from the caller or a worker) would wait for
 * itself; that nested job runs serially on its thread instead.
 *
 * Invariants:
 *  - `claim` = seq << LEFT_BITS | chunks of region seq not yet claimed. A participant
 *    claims by compare-and-swap from (seq, left) to (seq, left - 1), which gets it chunk
 *    total - left. Because seq is in the same word, a participant that read the claim
 *    word of an old region can never claim a chunk of a newer one (40-bit seq: a wrap
 *    would need a thread stalled across 2^40 regions).
 *  - slots[], nslots and total describe region seq. The caller writes them before
 *    publishing `claim` (release) and leaves them alone until `done` reaches total;
 *    participants read them only after a successful claim (acquire), so they never see
 *    them change.
 *  - `done` counts finished chunks of the current region; the caller resets it before
 *    publishing. The participant whose chunk brings it to total wakes the caller.
 *  - Waiting, for a new region (workers) or for the join (caller), spins for at most
 *    spin_ns with a pause instruction, then blocks on a condition variable under `m`.
 *    No spinning at all when the pool has more threads than online CPUs. A sleeping
 *    worker counts itself in `sleepers` before rechecking `claim`; the caller publishes
 *    `claim` before reading `sleepers` (both seq_cst), so a wake-up is never lost. */
#include "pool.h"

#include <alloca.h>
#include <assert.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../ir/ir.h"

enum {
  CHUNKS_PER_THREAD = 4,
  POOL_MAX_THREADS = 1024, /* keeps a job's chunks far below LEFT_MAX */
  LEFT_BITS = 24,
};
#define LEFT_MAX ((UINT64_C(1) << LEFT_BITS) - 1)
#define SEQ_MASK ((UINT64_C(1) << (64 - LEFT_BITS)) - 1)
/* 100 us: the next kernel of a model, and the next run of a caller that runs back to back
   (a sleeping vCPU here took tens of us to wake) */
#define POOL_SPIN_NS 100000

/* One job of the region in flight. */
typedef struct Slot {
  void (*fn)(void *ctx, int64_t begin, int64_t end);
  void *ctx;
  int64_t extent;
  uint32_t first, nchunks; /* its chunks are [first, first + nchunks) of the region */
} Slot;

struct Pool {
  int threads;     /* participants, the caller included */
  int nworkers;    /* threads - 1 */
  pthread_t *tids; /* the workers; immutable once rt_pool_new returns */
  int64_t spin_ns; /* spin budget before blocking; 0 when oversubscribed */
  Slot *slots;     /* region in flight (see invariants) */
  int nslots, cap;
  uint32_t total;           /* chunks in the region */
  uint64_t seq;             /* number of the last region, under run_lock; never 0 */
  pthread_mutex_t run_lock; /* held by the caller whose region is in flight */
  atomic_bool owned;        /* run_lock is held by `owner` */
  _Atomic(pthread_t) owner;
  pthread_mutex_t m;      /* guards sleeping only */
  pthread_cond_t work_cv; /* workers wait here for a region */
  pthread_cond_t done_cv; /* the caller waits here for the join */
  atomic_int sleepers;    /* workers blocked (or about to block) on work_cv */
  atomic_bool stop;
  _Alignas(64) _Atomic uint64_t claim; /* seq << LEFT_BITS | chunks left */
  _Alignas(64) _Atomic uint32_t done;  /* chunks finished */
  char pad[64 - sizeof(uint32_t)];     /* keep `done` off the next allocation's line */
};

static inline void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spin-loop bookkeeping: true while the budget lasts. Reads the clock every 16 turns. */
static bool spin_more(const Pool *p, unsigned turn, int64_t *deadline) {
  if (p->spin_ns == 0) return false;
  if ((turn & 15) == 15) {
    int64_t t = now_ns();
    if (*deadline == 0)
      *deadline = t + p->spin_ns;
    else if (t >= *deadline)
      return false;
  }
  relax();
  return true;
}

static uint32_t chunks_of(const Pool *p, const PoolJob *j) {
  if (j->extent <= 0) return 0;
  int64_t grain = j->grain < 1 ? 1 : j->grain;
  int64_t c = j->extent / grain, most = (int64_t)CHUNKS_PER_THREAD * p->threads;
  return (uint32_t)(c < 1 ? 1 : c > most ? most : c);
}

/* Job j's work in grains (0 if it has none). */
static double grains_of(const PoolJob *j) {
  return j->extent > 0 ? (double)j->extent / (double)(j->grain < 1 ? 1 : j->grain) : 0;
}

static void run_serial(const PoolJob *jobs, int n) {
  for (int i = 0; i < n; i++)
    if (jobs[i].extent > 0) jobs[i].fn(jobs[i].ctx, 0, jobs[i].extent);
}

/* Claim and run chunks of region seq until none is left. */
static void work(Pool *p, uint64_t seq, bool caller) {
  int j = 0; /* claims only grow, so the job cursor only moves forward */
  uint64_t v = atomic_load_explicit(&p->claim, memory_order_acquire);
  for (;;) {
    if ((v >> LEFT_BITS) != seq || (v & LEFT_MAX) == 0) return;
    if (!atomic_compare_exchange_weak_explicit(&p->claim, &v, v - 1, memory_order_acquire,
                                               memory_order_acquire))
      continue;
    uint32_t total = p->total, i = total - (uint32_t)(v & LEFT_MAX);
    while (i >= p->slots[j].first + p->slots[j].nchunks) j++;
    const Slot *s = &p->slots[j];
    int64_t k = i - s->first, c = s->nchunks, base = s->extent / c, rem = s->extent % c;
    int64_t begin = k * base + (k < rem ? k : rem), end = begin + base + (k < rem);
    s->fn(s->ctx, begin, end);
    /* after this increment the region may end and slots[] be rewritten */
    if (atomic_fetch_add_explicit(&p->done, 1, memory_order_acq_rel) + 1 == total && !caller) {
      pthread_mutex_lock(&p->m);
      pthread_cond_signal(&p->done_cv);
      pthread_mutex_unlock(&p->m);
    }
    v = atomic_load_explicit(&p->claim, memory_order_acquire);
  }
}

/* A worker's wait for a region newer than `seen`; 0 when the pool stops. */
static uint64_t wait_region(Pool *p, uint64_t seen) {
  int64_t deadline = 0;
  for (unsigned turn = 0;; turn++) {
    if (atomic_load_explicit(&p->stop, memory_order_acquire)) return 0;
    uint64_t seq = atomic_load_explicit(&p->claim, memory_order_acquire) >> LEFT_BITS;
    if (seq != seen) return seq;
    if (!spin_more(p, turn, &deadline)) break;
  }
  uint64_t seq;
  pthread_mutex_lock(&p->m);
  atomic_fetch_add(&p->sleepers, 1);
  while ((seq = atomic_load(&p->claim) >> LEFT_BITS) == seen && !atomic_load(&p->stop))
    pthread_cond_wait(&p->work_cv, &p->m);
  atomic_fetch_sub(&p->sleepers, 1);
  pthread_mutex_unlock(&p->m);
  return atomic_load(&p->stop) ? 0 : seq;
}

enum { STACK_SPARE = 64 << 10 };

__attribute__((noinline)) static void touch_below(size_t n) {
  volatile char *b = alloca(n);
  for (size_t i = 0; i < n; i += 4096) b[i] = 0;
}

/* Room for kernels in `left` bytes of stack (SIZE_MAX: unknown, assumed). */
static bool room(size_t left) { return left > RT_KERNEL_STACK + STACK_SPARE; }

bool rt_stack_room(void) { return room(ir_stack_left()); }

void rt_touch_stack(void) {
  static _Thread_local bool done; /* once per thread */
  if (done) return;
  done = true;
  size_t left = ir_stack_left();
  if (left != SIZE_MAX && room(left)) touch_below(RT_KERNEL_STACK); /* never touch blind */
}

static void *worker(void *arg) {
  Pool *p = arg;
  rt_touch_stack();
  for (uint64_t seen = 0, seq; (seq = wait_region(p, seen)) != 0; seen = seq) work(p, seq, false);
  return NULL;
}

/* Publish the region in slots[0..nslots), take part in it, and wait for it to finish.
 * The caller holds run_lock. */
static void region(Pool *p) {
  uint32_t total = p->total;
  p->seq = (p->seq + 1) & SEQ_MASK;
  if (p->seq == 0) p->seq = 1;
  atomic_store_explicit(&p->done, 0, memory_order_relaxed);
  atomic_store(&p->claim, p->seq << LEFT_BITS | total); /* seq_cst: see invariants */
  int sleeping = atomic_load(&p->sleepers);
  if (sleeping > 0) {
    int64_t want = (int64_t)total - 1 < p->nworkers ? (int64_t)total - 1 : p->nworkers;
    pthread_mutex_lock(&p->m);
    if (want >= sleeping)
      pthread_cond_broadcast(&p->work_cv);
    else
      for (int64_t i = 0; i < want; i++) pthread_cond_signal(&p->work_cv);
    pthread_mutex_unlock(&p->m);
  }
  work(p, p->seq, true);
  int64_t deadline = 0;
  for (unsigned turn = 0;; turn++) {
    if (atomic_load_explicit(&p->done, memory_order_acquire) == total) return;
    if (!spin_more(p, turn, &deadline)) break;
  }
  pthread_mutex_lock(&p->m);
  while (atomic_load_explicit(&p->done, memory_order_acquire) != total)
    pthread_cond_wait(&p->done_cv, &p->m);
  pthread_mutex_unlock(&p->m);
}

/* Is this thread already inside a region of p (its caller, or one of its workers)? */
static bool nested(const Pool *p) {
  pthread_t self = pthread_self();
  if (atomic_load_explicit(&p->owned, memory_order_acquire) &&
      pthread_equal(atomic_load_explicit(&p->owner, memory_order_relaxed), self))
    return true;
  for (int i = 0; i < p->nworkers; i++)
    if (pthread_equal(p->tids[i], self)) return true;
  return false;
}

/* Take run_lock; false (lock not taken) when the call is nested. */
static bool enter(Pool *p) {
  if (pthread_mutex_trylock(&p->run_lock) != 0) {
    if (nested(p)) return false;
    pthread_mutex_lock(&p->run_lock);
  }
  atomic_store_explicit(&p->owner, pthread_self(), memory_order_relaxed);
  atomic_store_explicit(&p->owned, true, memory_order_release);
  return true;
}

static void leave(Pool *p) {
  atomic_store_explicit(&p->owned, false, memory_order_relaxed);
  pthread_mutex_unlock(&p->run_lock);
}

Pool *rt_pool_new(int threads) {
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  if (ncpu < 1) ncpu = 1;
  if (threads == 0) threads = ncpu > POOL_MAX_THREADS ? POOL_MAX_THREADS : (int)ncpu;
  if (threads < 1) threads = 1;
  if (threads > POOL_MAX_THREADS) threads = POOL_MAX_THREADS;
  size_t size = (sizeof(Pool) + 63) / 64 * 64;
  Pool *p = aligned_alloc(64, size);
  if (!p) return NULL;
  memset(p, 0, size);
  p->tids = threads > 1 ? malloc(sizeof(pthread_t) * (size_t)(threads - 1)) : NULL;
  p->slots = malloc(sizeof(Slot) * 4);
  p->cap = p->slots ? 4 : 0;
  p->spin_ns = threads > ncpu ? 0 : POOL_SPIN_NS;
  atomic_init(&p->claim, 0);
  atomic_init(&p->done, 0);
  atomic_init(&p->sleepers, 0);
  atomic_init(&p->stop, false);
  atomic_init(&p->owned, false);
  pthread_mutex_init(&p->run_lock, NULL);
  pthread_mutex_init(&p->m, NULL);
  pthread_cond_init(&p->work_cv, NULL);
  pthread_cond_init(&p->done_cv, NULL);
  /* workers block every signal, so the host's handlers run on the host's threads */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int n = 0;
  if (p->tids)
    while (n < threads - 1 && ir_thread_start(&p->tids[n], worker, p, RT_THREAD_STACK) == 0) n++;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  p->nworkers = n;
  p->threads = n + 1;
  return p;
}

void rt_pool_free(Pool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->m);
  atomic_store(&p->stop, true);
  pthread_cond_broadcast(&p->work_cv);
  pthread_mutex_unlock(&p->m);
  for (int i = 0; i < p->nworkers; i++) pthread_join(p->tids[i], NULL);
  pthread_cond_destroy(&p->done_cv);
  pthread_cond_destroy(&p->work_cv);
  pthread_mutex_destroy(&p->m);
  pthread_mutex_destroy(&p->run_lock);
  free(p->slots);
  free(p->tids);
  free(p);
}

int rt_pool_threads(const Pool *p) { return p ? p->threads : 1; }

void rt_pool_run(Pool *p, void (*fn)(void *ctx, int64_t begin, int64_t end), void *ctx,
                 int64_t extent, int64_t grain) {
  if (extent <= 0) return;
  if (!p || p->threads == 1 || extent <= grain) {
    fn(ctx, 0, extent);
    return;
  }
  PoolJob job = {fn, ctx, extent, grain};
  rt_pool_run_many(p, &job, 1);
}

void rt_pool_run_many(Pool *p, const PoolJob *jobs, int n) {
  if (!p || p->threads == 1 || n <= 0) {
    run_serial(jobs, n);
    return;
  }
  /* serial too when the jobs together hold at most two grains of work: a region of a few
     small independent kernels cost more than it saved (W6 at N = 1 and 16 on 2 threads:
     2.1 and 2.6 us, against 0.5 and 1.0 us on one) */
  uint64_t all = 0;
  double grains = 0;
  for (int i = 0; i < n; i++) {
    all += chunks_of(p, &jobs[i]);
    grains += grains_of(&jobs[i]);
  }
  if (all <= 1 || grains <= 2 || !enter(p)) {
    run_serial(jobs, n);
    return;
  }
  if (p->cap < n) {
    Slot *s = realloc(p->slots, sizeof(Slot) * (size_t)n);
    if (!s) { /* out of memory: still correct, just serial */
      leave(p);
      run_serial(jobs, n);
      return;
    }
    p->slots = s;
    p->cap = n;
  }
  /* the jobs whose chunks hold the most work first (a job that cannot split much, like a
     column fold of one item, started last would run alone at the end) */
  enum { SORTED_MAX = 64 }; /* more jobs than that keep their order */
  int ord[SORTED_MAX];
  double per[SORTED_MAX];
  for (int i = 0; i < n && n <= SORTED_MAX; i++) {
    uint32_t c = chunks_of(p, &jobs[i]);
    per[i] = c ? grains_of(&jobs[i]) / c : 0;
    int at = i;
    for (; at > 0 && per[ord[at - 1]] < per[i]; at--) ord[at] = ord[at - 1];
    ord[at] = i;
  }
  /* one region, unless the chunks overflow the claim word's count (absurdly many jobs) */
  for (int q = 0; q < n;) {
    uint32_t total = 0;
    p->nslots = 0;
    for (; q < n; q++) {
      const PoolJob *jb = &jobs[n <= SORTED_MAX ? ord[q] : q];
      uint32_t c = chunks_of(p, jb);
      if (c == 0) continue;
      if (total + (uint64_t)c > LEFT_MAX) break;
      p->slots[p->nslots++] = (Slot){jb->fn, jb->ctx, jb->extent, total, c};
      total += c;
    }
    p->total = total;
    if (total > 0) region(p);
  }
  leave(p);
}
