/* tests/unit/test_pool.c — the kernel thread pool (runtime/pool.c).
 *
 * Checks: every index of [0, extent) is visited exactly once, in chunks of at least `grain`
 * items, for many (threads, extent, grain) combinations (extent 0 and 1, grain > extent,
 * large and huge extents); rt_pool_run_many covers every job of a batch; 8 caller threads
 * sharing one pool with different jobs; the inline path (one thread, extent <= grain, NULL
 * pool) calls fn once on the caller with the whole range; a chunk that calls rt_pool_run
 * on its own pool; creating and freeing pools repeatedly. Timings are printed, never
 * asserted. The last line printed is "N passed, M failed". */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "runtime/pool.h"

/* Per-index visit counts plus the chunk-shape checks of one job. */
typedef struct Visit {
  _Atomic int *count;
  int64_t extent, grain;
  atomic_int bad_chunk; /* chunks out of range, empty, or smaller than the grain */
  atomic_int calls;
  _Atomic int64_t items; /* sum of chunk sizes */
} Visit;

static void visit(void *ctx, int64_t begin, int64_t end) {
  Visit *v = ctx;
  atomic_fetch_add(&v->calls, 1);
  int64_t min = v->grain < v->extent ? v->grain : v->extent;
  if (begin < 0 || end > v->extent || end - begin < (min < 1 ? 1 : min))
    atomic_fetch_add(&v->bad_chunk, 1);
  atomic_fetch_add(&v->items, end - begin);
  if (v->count)
    for (int64_t i = begin; i < end && i >= 0 && i < v->extent; i++)
      atomic_fetch_add_explicit(&v->count[i], 1, memory_order_relaxed);
}

static void visit_init(Visit *v, int64_t extent, int64_t grain, bool counts) {
  memset(v, 0, sizeof *v);
  v->extent = extent;
  v->grain = grain;
  v->count = counts && extent > 0 ? calloc((size_t)extent, sizeof(int)) : NULL;
}

/* Number of indices not visited exactly once, or -1 for a bad chunk. */
static int64_t visit_errors(Visit *v) {
  if (atomic_load(&v->bad_chunk)) return -1;
  int64_t bad = 0;
  if (v->count)
    for (int64_t i = 0; i < v->extent; i++) bad += atomic_load(&v->count[i]) != 1;
  else if (atomic_load(&v->items) != (v->extent > 0 ? v->extent : 0))
    bad = 1;
  if (v->extent <= 0 && atomic_load(&v->calls) != 0) bad++;
  free(v->count);
  v->count = NULL;
  return bad;
}

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void test_coverage(void) {
  static const int threads[] = {1, 2, 3, 4, 8};
  static const int64_t extents[] = {0, 1, 2, 3, 7, 63, 64, 65, 1000, 100003, 1 << 20};
  static const int64_t grains[] = {1, 2, 7, 64, 1000, INT64_C(1) << 40};
  for (size_t t = 0; t < sizeof threads / sizeof *threads; t++) {
    Pool *p = rt_pool_new(threads[t]);
    CHECK(p && rt_pool_threads(p) == threads[t], "threads %d", threads[t]);
    for (size_t e = 0; e < sizeof extents / sizeof *extents; e++)
      for (size_t g = 0; g < sizeof grains / sizeof *grains; g++) {
        Visit v;
        visit_init(&v, extents[e], grains[g], true);
        rt_pool_run(p, visit, &v, extents[e], grains[g]);
        int64_t bad = visit_errors(&v);
        CHECK(bad == 0, "threads %d extent %lld grain %lld: %lld bad", threads[t],
              (long long)extents[e], (long long)grains[g], (long long)bad);
      }
    /* huge extents: only the chunk sizes are summed */
    static const int64_t huge[][2] = {
        {INT64_C(1) << 50, 1}, {INT64_MAX / 2, 12345}, {INT64_MAX, INT64_C(1) << 60}};
    for (int h = 0; h < 3; h++) {
      Visit v;
      visit_init(&v, huge[h][0], huge[h][1], false);
      rt_pool_run(p, visit, &v, huge[h][0], huge[h][1]);
      int calls = atomic_load(&v.calls);
      CHECK(visit_errors(&v) == 0 && calls >= 1 && calls <= 4 * threads[t],
            "threads %d huge extent %lld: %d calls", threads[t], (long long)huge[h][0], calls);
    }
    /* grain < 1 counts as 1 */
    Visit v;
    visit_init(&v, 100, 0, true);
    rt_pool_run(p, visit, &v, 100, 0);
    CHECK(visit_errors(&v) == 0, "grain 0, threads %d", threads[t]);
    rt_pool_free(p);
  }
  Pool *p = rt_pool_new(0);
  CHECK(p && rt_pool_threads(p) == (int)sysconf(_SC_NPROCESSORS_ONLN), "threads 0 -> %d",
        rt_pool_threads(p));
  rt_pool_free(p);
  rt_pool_free(NULL);
  CHECK(rt_pool_threads(NULL) == 1, "NULL pool has one thread");
}

static void test_many(void) {
  static const int threads[] = {1, 2, 4, 8};
  for (size_t t = 0; t < sizeof threads / sizeof *threads; t++) {
    Pool *p = rt_pool_new(threads[t]);
    for (int n = 0; n <= 40; n += n < 3 ? 1 : 9) {
      Visit *v = calloc((size_t)n + 1, sizeof *v);
      PoolJob *jobs = calloc((size_t)n + 1, sizeof *jobs);
      for (int i = 0; i < n; i++) {
        int64_t extent = (i * 7919) % 5003 - 3 * (i % 5 == 4), grain = 1 + (i * 31) % 600;
        visit_init(&v[i], extent, grain, true);
        jobs[i] = (PoolJob){visit, &v[i], extent, grain};
      }
      rt_pool_run_many(p, jobs, n);
      int64_t bad = 0;
      for (int i = 0; i < n; i++) bad += visit_errors(&v[i]) != 0;
      CHECK(bad == 0, "threads %d, %d jobs: %lld jobs wrong", threads[t], n, (long long)bad);
      free(jobs);
      free(v);
    }
    rt_pool_free(p);
  }
}

/* The inline path: fn once, on the caller, with the whole range. */
typedef struct Inline {
  pthread_t caller;
  int calls;
  bool on_caller;
  int64_t begin, end;
} Inline;

static void record(void *ctx, int64_t begin, int64_t end) {
  Inline *in = ctx;
  in->calls++;
  in->on_caller = pthread_equal(pthread_self(), in->caller);
  in->begin = begin;
  in->end = end;
}

static void test_inline(void) {
  Pool *one = rt_pool_new(1), *four = rt_pool_new(4);
  struct {
    Pool *p;
    int64_t extent, grain;
  } cases[] = {{one, 1000000, 1}, {four, 500, 500}, {four, 1, 1}, {four, 7, 100}, {NULL, 99, 1}};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    Inline in = {pthread_self(), 0, false, -1, -1};
    rt_pool_run(cases[c].p, record, &in, cases[c].extent, cases[c].grain);
    CHECK(in.calls == 1 && in.on_caller && in.begin == 0 && in.end == cases[c].extent,
          "case %zu: %d calls, on caller %d, [%lld, %lld)", c, in.calls, in.on_caller,
          (long long)in.begin, (long long)in.end);
  }
  Inline in = {pthread_self(), 0, false, -1, -1};
  rt_pool_run(one, record, &in, 0, 1);
  CHECK(in.calls == 0, "extent 0 calls nothing");
  /* a one-thread pool runs a batch in order on the caller */
  Inline ins[3] = {{pthread_self(), 0, false, -1, -1},
                   {pthread_self(), 0, false, -1, -1},
                   {pthread_self(), 0, false, -1, -1}};
  PoolJob jobs[3] = {{record, &ins[0], 10, 1}, {record, &ins[1], 0, 1}, {record, &ins[2], 5, 1}};
  rt_pool_run_many(one, jobs, 3);
  CHECK(ins[0].calls == 1 && ins[0].on_caller && ins[0].end == 10 && ins[1].calls == 0 &&
            ins[2].calls == 1 && ins[2].end == 5,
        "one-thread batch");
  rt_pool_free(one);
  rt_pool_free(four);
}

/* A chunk that calls rt_pool_run on its own pool. */
typedef struct Nest {
  Pool *p;
  Visit inner[64];
  atomic_int bad;
} Nest;

static void nest_outer(void *ctx, int64_t begin, int64_t end) {
  Nest *n = ctx;
  for (int64_t i = begin; i < end; i++) {
    rt_pool_run(n->p, visit, &n->inner[i], n->inner[i].extent, 3);
  }
}

static void test_nested(void) {
  Pool *p = rt_pool_new(4);
  Nest *n = calloc(1, sizeof *n);
  n->p = p;
  for (int i = 0; i < 64; i++) visit_init(&n->inner[i], 50 + i, 3, true);
  rt_pool_run(p, nest_outer, n, 64, 1);
  int64_t bad = 0;
  for (int i = 0; i < 64; i++) bad += visit_errors(&n->inner[i]) != 0;
  CHECK(bad == 0, "nested runs: %lld wrong", (long long)bad);
  free(n);
  rt_pool_free(p);
}

/* 8 threads share one pool, each with its own jobs. */
typedef struct Caller {
  Pool *p;
  int id;
  int64_t bad, runs;
} Caller;

static void *caller_main(void *arg) {
  Caller *c = arg;
  uint64_t r = 0x9e3779b97f4a7c15u * (uint64_t)(c->id + 1);
  for (int it = 0; it < 150; it++) {
    r = r * 6364136223846793005u + 1442695040888963407u;
    int64_t extent = (int64_t)(r >> 33) % 20000, grain = 1 + (int64_t)(r >> 20) % 300;
    if (it % 3 == 2) {
      Visit v[3];
      PoolJob jobs[3];
      for (int j = 0; j < 3; j++) {
        visit_init(&v[j], extent / (j + 1), grain * (j + 1), true);
        jobs[j] = (PoolJob){visit, &v[j], extent / (j + 1), grain * (j + 1)};
      }
      rt_pool_run_many(c->p, jobs, 3);
      for (int j = 0; j < 3; j++) c->bad += visit_errors(&v[j]) != 0;
    } else {
      Visit v;
      visit_init(&v, extent, grain, true);
      rt_pool_run(c->p, visit, &v, extent, grain);
      c->bad += visit_errors(&v) != 0;
    }
    c->runs++;
  }
  return NULL;
}

static void test_callers(void) {
  for (int threads = 2; threads <= 4; threads += 2) {
    Pool *p = rt_pool_new(threads);
    pthread_t tid[8];
    Caller c[8];
    for (int i = 0; i < 8; i++) {
      c[i] = (Caller){p, i, 0, 0};
      pthread_create(&tid[i], NULL, caller_main, &c[i]);
    }
    int64_t bad = 0, runs = 0;
    for (int i = 0; i < 8; i++) {
      pthread_join(tid[i], NULL);
      bad += c[i].bad;
      runs += c[i].runs;
    }
    CHECK(bad == 0 && runs == 8 * 150, "8 callers, %d threads: %lld wrong of %lld", threads,
          (long long)bad, (long long)runs);
    rt_pool_free(p);
  }
}

static void test_lifecycle(void) {
  int ok = 0;
  for (int i = 0; i < 50; i++) {
    Pool *p = rt_pool_new(1 + i % 5);
    Visit v;
    int64_t extent = i % 2 ? 257 : 0; /* half are freed without ever running */
    visit_init(&v, extent, 4, true);
    if (extent) rt_pool_run(p, visit, &v, extent, 4);
    ok += visit_errors(&v) == 0;
    rt_pool_free(p);
  }
  CHECK(ok == 50, "create/run/free: %d of 50", ok);
}

/* Timing sanity, printed only. */
static void nop(void *ctx, int64_t begin, int64_t end) {
  atomic_fetch_add_explicit((_Atomic int64_t *)ctx, end - begin, memory_order_relaxed);
}

static void sum_chunk(void *ctx, int64_t begin, int64_t end) {
  const float *x = ((const float *const *)ctx)[0];
  float *y = ((float *const *)ctx)[1];
  for (int64_t i = begin; i < end; i++) y[i] = x[i] * 2.0f + 1.0f;
}

static void test_timing(void) {
  _Atomic int64_t sink = 0;
  Pool *one = rt_pool_new(1), *p = rt_pool_new(0);
  enum { REPS = 20000 };
  double t0 = now_us();
  for (int i = 0; i < REPS; i++) rt_pool_run(one, nop, &sink, 1, 1);
  double t1 = now_us();
  for (int i = 0; i < REPS; i++) rt_pool_run(p, nop, &sink, 16, 64);
  double t2 = now_us();
  for (int i = 0; i < REPS; i++) rt_pool_run(p, nop, &sink, 1 << 16, 1);
  double t3 = now_us();
  printf("timing: inline %.1f ns/run, small on %d threads %.1f ns/run, "
         "parallel empty region %.2f us/run\n",
         (t1 - t0) * 1e3 / REPS, rt_pool_threads(p), (t2 - t1) * 1e3 / REPS, (t3 - t2) / REPS);
  int64_t n = 1 << 22;
  float *x = calloc((size_t)n, sizeof *x), *y = calloc((size_t)n, sizeof *y);
  void *bufs[2] = {x, y};
  rt_pool_run(one, sum_chunk, bufs, n, 4096); /* touch the pages first */
  double t4 = now_us();
  for (int i = 0; i < 20; i++) rt_pool_run(one, sum_chunk, bufs, n, 4096);
  double t5 = now_us();
  for (int i = 0; i < 20; i++) rt_pool_run(p, sum_chunk, bufs, n, 4096);
  double t6 = now_us();
  printf("timing: 4M-element axpy: 1 thread %.0f us, %d threads %.0f us\n", (t5 - t4) / 20,
         rt_pool_threads(p), (t6 - t5) / 20);
  free(x);
  free(y);
  rt_pool_free(one);
  rt_pool_free(p);
}

int main(void) {
  test_coverage();
  test_many();
  test_inline();
  test_nested();
  test_callers();
  test_lifecycle();
  test_timing();
  return CHECK_SUMMARY();
}
