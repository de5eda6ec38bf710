/* tools/limits.c — the machine's limits, measured in the bench's own process so that
 * dvm's numbers can be read against them: a STREAM-style triad (a = b + s·c) over arrays
 * sized for DRAM and for L2, and sgemm through OpenBLAS.
 *
 * The triad counts 3 arrays × 4 bytes per element (two reads, one write; write-allocate
 * traffic is not counted, as in STREAM) and reports the best of several trials. OpenBLAS
 * is loaded with dlopen, so dvm does not link it; OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
 * (set for another core, they halve its speed) are removed from the environment before it is
 * loaded, as the bench is meant to compare against OpenBLAS at its best.
 *
 * sgemm runs in a child process. OpenBLAS's pthreads keep spinning after a call (about
 * 2^28 cycles, a tenth of a second), and on two cores a spinning thread took the core
 * that dvm's pool worker needed: the bench's first workloads ran up to 1.6x slower on two
 * threads (W1 at N = 64: medians 10.8-13.2 us with the threads spinning, 8.1-10.2 with
 * OPENBLAS_THREAD_TIMEOUT=4). With the library loaded only in the child, its threads end
 * with it. */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tool.h"

typedef struct TriadJob {
  float *a, *b, *c;
  size_t n;
  int reps;
  pthread_barrier_t *bar;
  double seconds;
} TriadJob;

/* The kernel, compiled for the widest vector ISA the CPU has. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
triad(float *restrict a, const float *restrict b, const float *restrict c, size_t n, float s) {
  for (size_t i = 0; i < n; i++) a[i] = b[i] + s * c[i];
}

static void *triad_worker(void *arg) {
  TriadJob *j = arg;
  for (size_t i = 0; i < j->n; i++) j->a[i] = 0, j->b[i] = 1, j->c[i] = 2; /* first touch */
  pthread_barrier_wait(j->bar);
  double t0 = tool_now_us();
  for (int r = 0; r < j->reps; r++) triad(j->a, j->b, j->c, j->n, 0.5f + (float)r);
  pthread_barrier_wait(j->bar);
  j->seconds = (tool_now_us() - t0) / 1e6;
  return NULL;
}

double limit_triad_gbps(int threads, size_t bytes_per_array) {
  if (threads < 1) threads = 1;
  size_t n = bytes_per_array / sizeof(float) / (size_t)threads;
  n = (n + 63) & ~(size_t)63;
  /* enough repetitions for ~50 ms per trial at 50 GB/s */
  int reps = (int)(2.5e9 / (3.0 * 4.0 * (double)n * threads));
  reps = reps < 2 ? 2 : reps > 100000 ? 100000 : reps;
  double best = 0;
  for (int trial = 0; trial < 5; trial++) {
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)threads);
    TriadJob jobs[64];
    pthread_t tid[64];
    int t;
    for (t = 0; t < threads && t < 64; t++) {
      jobs[t] = (TriadJob){.n = n, .reps = reps, .bar = &bar};
      if (posix_memalign((void **)&jobs[t].a, 64, n * 4) || posix_memalign((void **)&jobs[t].b, 64, n * 4) ||
          posix_memalign((void **)&jobs[t].c, 64, n * 4))
        return -1;
    }
    for (t = 1; t < threads && t < 64; t++) pthread_create(&tid[t], NULL, triad_worker, &jobs[t]);
    triad_worker(&jobs[0]);
    for (t = 1; t < threads && t < 64; t++) pthread_join(tid[t], NULL);
    double secs = 0;
    for (t = 0; t < threads && t < 64; t++) {
      secs = jobs[t].seconds > secs ? jobs[t].seconds : secs;
      free(jobs[t].a), free(jobs[t].b), free(jobs[t].c);
    }
    pthread_barrier_destroy(&bar);
    double gbps = 3.0 * 4.0 * (double)n * threads * reps / secs / 1e9;
    best = gbps > best ? gbps : best;
  }
  return best;
}

typedef void (*SgemmFn)(int, int, int, int, int, int, float, const float *, int, const float *,
                        int, float, float *, int);
typedef void (*SetThreadsFn)(int);

/* The measurement itself, in the child. */
static double sgemm_gflops(int threads, int n, const char **why) {
  unsetenv("OPENBLAS_CORETYPE");
  unsetenv("OPENBLAS_L2_SIZE");
  void *lib = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
  if (!lib) lib = dlopen("libopenblas.so", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    *why = "OpenBLAS is not installed: apt-get install libopenblas0-pthread";
    return -1;
  }
  SgemmFn sgemm = (SgemmFn)(uintptr_t)dlsym(lib, "cblas_sgemm");
  SetThreadsFn set_threads = (SetThreadsFn)(uintptr_t)dlsym(lib, "openblas_set_num_threads");
  if (!sgemm) {
    *why = "libopenblas has no cblas_sgemm";
    return -1;
  }
  if (set_threads) set_threads(threads);
  size_t nn = (size_t)n * (size_t)n;
  float *a = malloc(nn * 4), *b = malloc(nn * 4), *c = malloc(nn * 4);
  if (!a || !b || !c) {
    free(a), free(b), free(c);
    *why = "out of memory";
    return -1;
  }
  for (size_t i = 0; i < nn; i++) a[i] = (float)(i % 7) * 0.1f, b[i] = (float)(i % 5) * 0.1f, c[i] = 0;
  enum { ROW_MAJOR = 101, NO_TRANS = 111 };
  sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n); /* warm-up */
  double t[15];
  int reps = 15;
  for (int r = 0; r < reps; r++) {
    double t0 = tool_now_us();
    sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    t[r] = tool_now_us() - t0;
  }
  free(a), free(b), free(c);
  return 2.0 * n * (double)n * n / (tool_quantile(t, (size_t)reps, 0.5) * 1e3);
}

/* What the child sends back: `why` points at a string literal, which has the same
 * address in the parent (a fork of the same image). */
typedef struct SgemmResult {
  double gflops;
  const char *why;
} SgemmResult;

double limit_sgemm_gflops(int threads, int n, const char **why) {
  int fd[2];
  if (pipe(fd)) {
    *why = "cannot make a pipe for the sgemm measurement";
    return -1;
  }
  fflush(NULL); /* nothing buffered is written twice */
  pid_t pid = fork();
  if (pid < 0) {
    close(fd[0]), close(fd[1]);
    *why = "cannot fork for the sgemm measurement";
    return -1;
  }
  if (pid == 0) {
    SgemmResult r = {0, NULL};
    r.gflops = sgemm_gflops(threads, n, &r.why);
    ssize_t w = write(fd[1], &r, sizeof r);
    _exit(w == (ssize_t)sizeof r ? 0 : 1);
  }
  close(fd[1]);
  SgemmResult r = {-1, "the sgemm measurement ended without a result"};
  SgemmResult got;
  ssize_t k;
  do k = read(fd[0], &got, sizeof got);
  while (k < 0 && errno == EINTR);
  if (k == (ssize_t)sizeof got) r = got;
  close(fd[0]);
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
  }
  if (r.gflops > 0) return r.gflops;
  *why = r.why ? r.why : "the sgemm measurement failed";
  return -1;
}
