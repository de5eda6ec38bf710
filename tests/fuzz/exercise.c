/* tests/fuzz/exercise.c — see exercise.h. */
#include "exercise.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"

enum {
  MAX_VALUE = 1 << 16,  /* elements of any one value of a run (inputs, intermediates, outputs) */
  MAX_TOTAL = 1 << 20,  /* elements of all of them */
  REMAKE = 256          /* inputs per context */
};

static dvm_context *ctx;
static int uses;

dvm_context *fz_context(void) {
  if (ctx && ++uses >= REMAKE) dvm_context_destroy(ctx), ctx = NULL;
  if (!ctx) {
    uses = 0;
    if (dvm_context_create(&ctx) != DVM_OK || dvm_context_set_cache_dir(ctx, "off") != DVM_OK) {
      fprintf(stderr, "fuzz: no context: %s\n", dvm_last_error());
      abort();
    } /* (no object cache: millions of one-off kernels would fill it) */
  }
  return ctx;
}

uint64_t fz_hash(const uint8_t *data, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ data[i]) * 1099511628211ull;
  return h;
}

/* The run's tensors: inputs then params, by name (copies), made for the symbol values. */
typedef struct Args {
  int n, ninputs;
  const char **names;
  dvm_tensor **t;
} Args;

static void args_free(Args *a) {
  for (int i = 0; i < a->n; i++) dvm_tensor_destroy(a->t[i]), free((char *)a->names[i]);
  free(a->names), free(a->t);
  memset(a, 0, sizeof *a);
}

/* Make m's inputs and params (those g has no value for) at the symbol values; false if a
 * shape is not determined, or if some value of the graph would be too large to run. */
static bool make_args(const dvm_model *m, const dvm_graph *g, uint64_t seed, Args *a) {
  int ns = dvm_model_num_symbols(m);
  const char **sn = calloc((size_t)ns + 1, sizeof *sn);
  int64_t *sv = calloc((size_t)ns + 1, sizeof *sv);
  int ni = dvm_model_num_inputs(m), np = dvm_model_num_params(m);
  a->ninputs = ni;
  a->names = calloc((size_t)(ni + np) + 1, sizeof *a->names);
  a->t = calloc((size_t)(ni + np) + 1, sizeof *a->t);
  const Graph *ir = rt_graph_ir(g);
  Tensor **given = calloc((size_t)ir->nodes.n + 1, sizeof *given);
  bool ok = sn && sv && a->names && a->t && given;
  for (int i = 0; ok && i < ns; i++) sn[i] = dvm_model_symbol_name(m, i), sv[i] = 1 + (int64_t)(seed >> (2 * (i % 32)) & 3);
  for (int i = 0; ok && i < ni + np; i++) {
    const char *name = i < ni ? dvm_model_input_name(m, i) : dvm_model_param_name(m, i - ni);
    dvm_tensor *own = i < ni ? NULL : dvm_graph_param_value(g, name);
    int32_t id = dvm_graph_find(g, name);
    if (own) {
      if (id >= 0) given[id] = own;
      continue;
    }
    int rank;
    int64_t shape[DVM_MAX_RANK];
    int dt = dvm_model_value_dtype(m, name);
    if (dvm_model_shape(m, name, 0, NULL, NULL, ns, sn, sv, &rank, shape) != DVM_OK || dt < 0) {
      ok = false;
      break;
    }
    int64_t numel = 1;
    for (int d = 0; d < rank && numel <= MAX_VALUE; d++) numel = shape[d] > MAX_VALUE ? MAX_VALUE + 1 : numel * shape[d];
    dvm_tensor *t = NULL;
    if (numel > MAX_VALUE || dvm_tensor_create((dvm_dtype)dt, rank, shape, &t) != DVM_OK) {
      ok = false;
      break;
    }
    dvm_tensor_fill_random(t, seed + (uint64_t)i);
    int64_t vals[64]; /* an input declared with values: its elements are the dims' */
    int nv = 0;
    if (i < ni && dvm_model_values(m, name, 0, NULL, NULL, ns, sn, sv, vals, 64, &nv) == DVM_OK)
      for (int e = 0; e < nv; e++) dvm_tensor_set_i64(t, e, vals[e]);
    a->names[a->n] = strdup(name), a->t[a->n++] = t; /* names outlive the model they came from */
    if (id >= 0) given[id] = t;
  }
  /* every value's size at this binding, intermediates included */
  Binding b = {0};
  Err err = {0};
  if (ok && rt_bind(ir, given, NULL, &b, &err) == DVM_OK) {
    int64_t total = 0;
    for (uint32_t v = 0; v < ir->nodes.n && ok; v++) {
      ok = b.numel[v] >= 0 && b.numel[v] <= MAX_VALUE;
      total += b.numel[v];
    }
    ok = ok && total <= MAX_TOTAL;
  }
  rt_binding_free(&b);
  free(sn), free(sv), free(given);
  return ok;
}

void fz_exercise(const dvm_graph *g, uint64_t seed) {
  static const dvm_tier tiers[] = {DVM_TIER_REF, DVM_TIER_VM, DVM_TIER_LLVM};
  Args a = {0};
  bool made = false, runnable = false;
  for (size_t k = 0; k < sizeof tiers / sizeof *tiers; k++) {
    dvm_compile_options opt = {.tier = tiers[k], .threads = 1};
    dvm_model *m = NULL;
    if (dvm_model_compile(fz_context(), g, &opt, &m) != DVM_OK) continue;
    if (!made) made = true, runnable = make_args(m, g, seed, &a);
    if (runnable && dvm_model_set_graph_params(m, g) == DVM_OK) {
      bool bound = true;
      for (int i = a.ninputs; i < a.n && bound; i++) bound = dvm_model_set_param(m, a.names[i], a.t[i]) == DVM_OK;
      int no = dvm_model_num_outputs(m);
      dvm_tensor **out = calloc((size_t)no + 1, sizeof *out);
      if (bound && out && dvm_model_run(m, a.ninputs, a.names, a.t, out) == DVM_OK)
        for (int o = 0; o < no; o++) dvm_tensor_destroy(out[o]);
      free(out);
    }
    dvm_model_destroy(m);
  }
  args_free(&a);
}
