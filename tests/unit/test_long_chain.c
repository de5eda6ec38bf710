/* tests/unit/test_long_chain.c — a graph of 200,000 chained ops (y = x + 1 + 1 + ...),
 * which fuses into one kernel of as many members, compiles and runs in the ref and vm
 * tiers with the right result: nothing on the way may recurse per member (the stack) or
 * scan the kernel per member (quadratic time: numbering operands and literals). */
#include <stdio.h>
#include <stdlib.h>

#include "dvm.h"
#include "check.h"

enum { LEN = 200000 };

int main(void) {
  dvm_context *ctx = NULL;
  dvm_graph *g = NULL;
  CHECK(dvm_context_create(&ctx) == DVM_OK && dvm_graph_create(ctx, "chain", &g) == DVM_OK, "%s", dvm_last_error());
  if (!g) return CHECK_SUMMARY();
  const char *dims[] = {"N"};
  int32_t v = dvm_graph_input(g, "x", DVM_F32, 1, dims);
  for (int i = 0; i < LEN && v >= 0; i++) {
    int32_t ops[2] = {v, dvm_graph_literal(g, 1.0, DVM_F32)}; /* a literal node per op */
    v = dvm_graph_op(g, NULL, "add", 2, ops, NULL);
  }
  CHECK(v >= 0 && dvm_graph_output(g, v) == DVM_OK, "%s", dvm_last_error());
  static const dvm_tier tiers[] = {DVM_TIER_REF, DVM_TIER_VM};
  for (int t = 0; t < 2; t++) {
    dvm_compile_options opt = {.tier = tiers[t], .threads = 1};
    dvm_model *m = NULL;
    dvm_tensor *x = NULL, *y = NULL;
    int64_t n = 5;
    CHECK(dvm_model_compile(ctx, g, &opt, &m) == DVM_OK, "tier %d: %s", (int)tiers[t], dvm_last_error());
    CHECK(dvm_tensor_create(DVM_F32, 1, &n, &x) == DVM_OK, "%s", dvm_last_error());
    if (!m || !x) continue;
    float *xd = dvm_tensor_data(x);
    for (int i = 0; i < n; i++) xd[i] = (float)i;
    const char *names[] = {"x"};
    CHECK(dvm_model_run(m, 1, names, &x, &y) == DVM_OK, "tier %d: %s", (int)tiers[t], dvm_last_error());
    if (y) {
      const float *yd = dvm_tensor_data(y);
      for (int i = 0; i < n; i++) CHECK(yd[i] == (float)(i + LEN), "tier %d: y[%d] = %g", (int)tiers[t], i, yd[i]);
    }
    dvm_stats st;
    dvm_model_stats(m, &st);
    if (tiers[t] == DVM_TIER_VM) CHECK(st.kernels == 1 && st.vm_encodes == 1, "one kernel, encoded: %lld, %lld",
                                       (long long)st.kernels, (long long)st.vm_encodes);
    dvm_tensor_destroy(x), dvm_tensor_destroy(y);
    dvm_model_destroy(m);
  }
  dvm_graph_destroy(g);
  dvm_context_destroy(ctx);
  return CHECK_SUMMARY();
}
