/* bench/encode_loop.c — how long a graph takes from its fused kernels to bytecode: the
 * pipeline's lower and encode stages (dvm_stats lower_us + encode_us), per kernel, in one
 * process:
 *
 *   first   the process's first compile of the graph (caches and predictors cold: what a
 *           server's first model pays)
 *   steady  the median over REPS more compiles of it (warm)
 *
 * usage: encode_loop REPS GRAPH...   (symbols stay symbolic: nothing runs)
 *
 * Built against a tree whose dvm_stats has no lower_us (before the lowered kernel: its
 * encode_us was the whole way to bytecode), compile it with -DDVM_STATS_NO_LOWER. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "dvm.h"

static double to_bytecode(const dvm_stats *s) {
#ifdef DVM_STATS_NO_LOWER
  return s->encode_us;
#else
  return s->lower_us + s->encode_us;
#endif
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  int reps = argc > 2 ? atoi(argv[1]) : 0;
  if (reps < 1) {
    fprintf(stderr, "usage: encode_loop REPS GRAPH...\n");
    return 2;
  }
  dvm_context *ctx;
  if (dvm_context_create(&ctx)) return fprintf(stderr, "%s\n", dvm_last_error()), 1;
  double *t = malloc((size_t)reps * sizeof *t), first_sum = 0, steady_sum = 0;
  long kernels = 0;
  if (!t) return 1;
  for (int a = 2; a < argc; a++) {
    dvm_graph *g;
    if (dvm_graph_load(ctx, argv[a], &g)) return fprintf(stderr, "%s\n", dvm_last_error()), 1;
    dvm_compile_options o = {DVM_TIER_VM, 1};
    double first = 0;
    int64_t k = 0;
    for (int r = -1; r < reps; r++) {
      dvm_model *m;
      if (dvm_model_compile(ctx, g, &o, &m)) return fprintf(stderr, "%s\n", dvm_last_error()), 1;
      dvm_stats s;
      dvm_model_stats(m, &s);
      k = s.kernels > 0 ? s.kernels : 1;
      if (r < 0) first = to_bytecode(&s) / (double)k;
      else t[r] = to_bytecode(&s) / (double)k;
      dvm_model_destroy(m);
    }
    qsort(t, (size_t)reps, sizeof *t, cmp);
    printf("%s: %lld kernels, first %.2f us, steady %.3f us per kernel\n", argv[a], (long long)k, first,
           t[reps / 2]);
    first_sum += first * (double)k, steady_sum += t[reps / 2] * (double)k, kernels += k;
    dvm_graph_destroy(g);
  }
  printf("all: %ld kernels, first %.2f us, steady %.3f us per kernel\n", kernels, first_sum / (double)kernels,
         steady_sum / (double)kernels);
  free(t);
  dvm_context_destroy(ctx);
  return 0;
}
