/* tests/lazy/lazy_replay.c — graphs replayed op by op through the lazy API, against the
 * reference executor, at every binding of each graph in one process, with the trace
 * cache's counters checked.
 *
 * usage: lazy_replay [--tier vm|auto|llvm] FILE_OR_DIR...
 *
 * For every .dvm file with `# bind:` lines (tests/graphs, the workloads, random graphs):
 * inputs and params get seeded random data per binding; the reference tier runs the
 * graph as a model, and dvm_lazy_apply records it op by op over lazy values wrapping the
 * same tensors, whose outputs are read and compared (rtol 1e-4, f16/bf16 2e-3; atol the
 * larger of 1e-5 x the output's RMS and the file's `# tol: NAME X`), or, where the graph
 * compiled as a model in the same tier is not that close either (W7's attention), must
 * equal that model's outputs bit for bit. Where the reference
 * run fails, the lazy one must fail too. Every binding is then run a second time: those
 * flushes must all hit the trace cache (no compile). The number of compiles over the
 * first pass is printed per graph, and how many graphs compiled once for all their
 * sizes. Ends with "N passed, M failed". */
#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dvm.h"
#include "tests/unit/check.h"

enum { MAX_BINDS = 8, MAX_SYMS = 8, MAX_DECL = 64, MAX_OUT = 32 };

typedef struct Bind {
  int n;
  char name[MAX_SYMS][32];
  int64_t value[MAX_SYMS];
} Bind;

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  if (s && fread(s, 1, (size_t)n, f) != (size_t)n) n = 0;
  if (s) s[n] = 0;
  fclose(f);
  return s;
}

static int parse_binds(const char *text, Bind *b) {
  int nb = 0;
  for (const char *p = strstr(text, "# bind:"); p && nb < MAX_BINDS; p = strstr(p + 1, "# bind:")) {
    Bind *x = &b[nb++];
    x->n = 0;
    const char *q = p + 7;
    while (*q && *q != '\n' && x->n < MAX_SYMS) {
      while (*q == ' ') q++;
      char name[32];
      long long v;
      int used;
      if (sscanf(q, "%31[A-Za-z0-9_]=%lld%n", name, &v, &used) != 2) break;
      snprintf(x->name[x->n], sizeof x->name[x->n], "%s", name);
      x->value[x->n++] = v;
      q += used;
    }
  }
  return nb;
}

static double file_tol(const char *text, const char *out) {
  char key[96];
  snprintf(key, sizeof key, "# tol: %s ", out);
  const char *p = strstr(text, key);
  return p ? atof(p + strlen(key)) : 0.0;
}

static uint64_t seed_of(const char *name, int bind) {
  uint64_t h = 1469598103934665603ull;
  for (const char *c = name; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ull;
  return h + (uint64_t)bind * 7919;
}

/* Does got match want within the tolerances? Prints the first difference. */
static bool close_enough(const char *file, const char *out, const dvm_tensor *got, const dvm_tensor *want,
                         double tol) {
  if (dvm_tensor_dtype(got) != dvm_tensor_dtype(want) || dvm_tensor_rank(got) != dvm_tensor_rank(want)) {
    printf("%s: %s: dtype or rank differs\n", file, out);
    return false;
  }
  for (int k = 0; k < dvm_tensor_rank(got); k++)
    if (dvm_tensor_shape(got)[k] != dvm_tensor_shape(want)[k]) {
      printf("%s: %s: shape differs at axis %d\n", file, out, k);
      return false;
    }
  int64_t n = dvm_tensor_numel(want);
  double ss = 0;
  for (int64_t i = 0; i < n; i++) {
    double w = dvm_tensor_get_f64(want, i);
    if (isfinite(w)) ss += w * w;
  }
  double rms = n ? sqrt(ss / (double)n) : 0;
  dvm_dtype dt = dvm_tensor_dtype(want);
  double rtol = dt == DVM_F16 || dt == DVM_BF16 ? 2e-3 : 1e-4;
  double atol = fmax(1e-5 * fmax(1.0, rms), tol);
  for (int64_t i = 0; i < n; i++) {
    double g = dvm_tensor_get_f64(got, i), w = dvm_tensor_get_f64(want, i);
    if (isnan(g) && isnan(w)) continue;
    if (g == w) continue;
    if (!(fabs(g - w) <= atol + rtol * fabs(w))) {
      printf("%s: %s: element %lld is %.9g, reference %.9g (atol %.3g, rtol %.3g)\n", file, out,
             (long long)i, g, w, atol, rtol);
      return false;
    }
  }
  return true;
}

static int graphs, once, skipped, identical, compared;

static void replay(dvm_context *ctx, const char *path, dvm_tier tier) {
  char *text = slurp(path);
  Bind binds[MAX_BINDS];
  int nb = text ? parse_binds(text, binds) : 0;
  dvm_graph *g = NULL;
  dvm_model *ref = NULL;
  dvm_model *tiered = NULL;
  dvm_compile_options ro = {DVM_TIER_REF, 1}, to = {tier, 1};
  if (!text || dvm_graph_load(ctx, path, &g) || dvm_model_compile(ctx, g, &ro, &ref) ||
      dvm_model_compile(ctx, g, &to, &tiered)) {
    dvm_model_destroy(ref);
    skipped += text != NULL; /* graphs that need registered extern functions */
    dvm_graph_destroy(g);
    free(text);
    return;
  }
  for (bool none = !nb; none && nb < 2; nb++) { /* no `# bind:` lines: every free symbol 3, then 16 */
    binds[nb].n = dvm_model_num_symbols(ref) < MAX_SYMS ? dvm_model_num_symbols(ref) : MAX_SYMS;
    for (int k = 0; k < binds[nb].n; k++) {
      snprintf(binds[nb].name[k], sizeof binds[nb].name[k], "%s", dvm_model_symbol_name(ref, k));
      binds[nb].value[k] = nb ? 16 : 3;
    }
  }
  int ni = dvm_model_num_inputs(ref), np = dvm_model_num_params(ref), no = dvm_model_num_outputs(ref);
  if (ni + np > MAX_DECL || no > MAX_OUT) {
    dvm_model_destroy(tiered), dvm_model_destroy(ref), dvm_graph_destroy(g), free(text);
    return;
  }
  graphs++;
  dvm_lazy_stats s0, s1;
  dvm_lazy_stats_get(ctx, &s0);
  int64_t first_pass_misses = 0;
  dvm_tensor *kept[MAX_DECL] = {0}; /* the last binding's tensors: the models hold its params */
  for (int pass = 0; pass < 2; pass++) {
    for (int b = 0; b < nb; b++) {
      const char *sn[MAX_SYMS];
      for (int k = 0; k < binds[b].n; k++) sn[k] = binds[b].name[k];
      dvm_tensor *decl[MAX_DECL] = {0}, *want[MAX_OUT] = {0};
      dvm_lazy *args[MAX_DECL] = {0}, *res[MAX_OUT] = {0};
      const char *in_names[MAX_DECL];
      bool ok = true;
      for (int i = 0; i < ni + np && ok; i++) {
        const char *name = i < ni ? dvm_model_input_name(ref, i) : dvm_model_param_name(ref, i - ni);
        int rank;
        int64_t shape[DVM_MAX_RANK];
        ok = !dvm_model_shape(ref, name, 0, NULL, NULL, binds[b].n, sn, binds[b].value, &rank, shape) &&
             !dvm_tensor_create((dvm_dtype)dvm_model_value_dtype(ref, name), rank, shape, &decl[i]);
        if (ok) dvm_tensor_fill_random(decl[i], seed_of(name, b));
        if (ok && i >= ni) ok = !dvm_model_set_param(ref, name, decl[i]);
        in_names[i] = name;
      }
      if (!ok) { /* the binding cannot be made (a file's own bad-size case) */
        for (int i = 0; i < ni + np; i++) /* params the reference model holds now stay */
          if (i < ni || !decl[i]) dvm_tensor_destroy(decl[i]);
          else dvm_tensor_destroy(kept[i]), kept[i] = decl[i];
        continue;
      }
      dvm_status rs = dvm_model_run(ref, ni, in_names, decl, want);
      dvm_tensor *same[MAX_OUT] = {0}; /* the graph compiled in the lazy tier */
      bool tier_ok = !rs;
      for (int i = ni; i < ni + np && tier_ok; i++) tier_ok = !dvm_model_set_param(tiered, in_names[i], decl[i]);
      if (tier_ok) tier_ok = !dvm_model_run(tiered, ni, in_names, decl, same);
      char why[256];
      snprintf(why, sizeof why, "%s", dvm_last_error());
      dvm_status ls = DVM_OK;
      for (int i = 0; i < ni + np && !ls; i++) /* params as constants: bound and packed per binding */
        ls = i < ni ? dvm_lazy_wrap(ctx, decl[i], &args[i]) : dvm_lazy_wrap_const(ctx, decl[i], &args[i]);
      if (!ls) ls = dvm_lazy_apply(ctx, g, ni + np, args, res);
      dvm_tensor *got[MAX_OUT] = {0};
      for (int k = 0; k < no && !ls; k++) ls = dvm_lazy_tensor(res[k], &got[k]);
      if (rs) {
        CHECK(ls != DVM_OK, "%s bind %d: the reference fails (%s), the lazy replay does not", path, b, why);
      } else {
        CHECK(ls == DVM_OK, "%s bind %d: %s", path, b, dvm_last_error());
        for (int k = 0; k < no && !ls; k++) { /* as close as the graph's own tier is */
          const char *out = dvm_model_output_name(ref, k);
          size_t bytes = (size_t)dvm_tensor_numel(got[k]) * dvm_dtype_size(dvm_tensor_dtype(got[k]));
          bool bitwise = tier_ok && dvm_tensor_numel(got[k]) == dvm_tensor_numel(same[k]) &&
                         !memcmp(dvm_tensor_data(got[k]), dvm_tensor_data(same[k]), bytes);
          identical += bitwise, compared++;
          CHECK(close_enough(path, out, got[k], want[k], file_tol(text, out)) ||
                    (bitwise && !close_enough(path, out, same[k], want[k], file_tol(text, out))),
                "%s bind %d output %s", path, b, out);
        }
      }
      for (int k = 0; k < no; k++)
        dvm_lazy_destroy(res[k]), dvm_tensor_destroy(rs ? NULL : want[k]), dvm_tensor_destroy(same[k]);
      for (int i = 0; i < ni + np; i++) dvm_lazy_destroy(args[i]);
      if (dvm_lazy_sync(ctx)) { /* nothing is pending: a no-op */
        CHECK(0, "%s: sync: %s", path, dvm_last_error());
      }
      for (int i = 0; i < ni + np; i++) dvm_tensor_destroy(kept[i]), kept[i] = decl[i]; /* the models' params */
    }
    dvm_lazy_stats_get(ctx, &s1);
    if (pass == 0) first_pass_misses = s1.misses - s0.misses;
    else
      CHECK(s1.misses - s0.misses == first_pass_misses, "%s: the second pass over its sizes compiled %lld more",
            path, (long long)(s1.misses - s0.misses - first_pass_misses));
  }
  printf("%s: %d sizes, %lld compiles\n", path, nb, (long long)first_pass_misses);
  once += first_pass_misses <= 1;
  dvm_model_destroy(tiered);
  dvm_model_destroy(ref);
  for (int i = 0; i < MAX_DECL; i++) dvm_tensor_destroy(kept[i]);
  dvm_graph_destroy(g);
  free(text);
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
  dvm_tier tier = DVM_TIER_VM;
  dvm_context *ctx;
  if (dvm_context_create(&ctx)) return fprintf(stderr, "%s\n", dvm_last_error()), 1;
  int a = 1;
  if (a + 1 < argc && !strcmp(argv[a], "--tier")) {
    const char *t = argv[a + 1];
    tier = !strcmp(t, "auto") ? DVM_TIER_AUTO : !strcmp(t, "llvm") ? DVM_TIER_LLVM : DVM_TIER_VM;
    a += 2;
  }
  dvm_lazy_options lo = {.tier = tier, .threads = 1};
  if (dvm_context_set_lazy_options(ctx, &lo)) return fprintf(stderr, "%s\n", dvm_last_error()), 1;
  for (; a < argc; a++) {
    DIR *d = opendir(argv[a]);
    if (!d) {
      FILE *f = fopen(argv[a], "r");
      CHECK(f != NULL, "%s: no such graph or directory", argv[a]);
      if (f) fclose(f), replay(ctx, argv[a], tier);
      continue;
    }
    char *names[4096];
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < 4096;) {
      size_t l = strlen(e->d_name);
      if (l > 4 && !strcmp(e->d_name + l - 4, ".dvm")) {
        names[n] = malloc(strlen(argv[a]) + l + 2);
        sprintf(names[n++], "%s/%s", argv[a], e->d_name);
      }
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, by_name);
    for (int i = 0; i < n; i++) replay(ctx, names[i], tier), free(names[i]);
  }
  dvm_lazy_stats s;
  dvm_lazy_stats_get(ctx, &s);
  printf("%d graphs (%d skipped: extern calls), %d compiled once for all their sizes; %d of %d outputs bit "
         "for bit those of the graph compiled in the same tier; %lld ops, %lld flushes, %lld hits, %lld misses, "
         "%lld variants\n",
         graphs, skipped, once, identical, compared, (long long)s.ops, (long long)s.flushes, (long long)s.hits, (long long)s.misses,
         (long long)s.variants);
  CHECK(graphs > 0, "no graph replayed");
  dvm_context_destroy(ctx);
  return CHECK_SUMMARY();
}
