/* tests/onnx/onnx_api.c — the ONNX C API in one process: load a model with
 * dvm_graph_load_onnx, compile it once (native tier: every kernel compiled before the first
 * run), bind its initializers with dvm_model_set_graph_params, then run it on several input
 * files in turn, writing each output. Prints one JSON line per run with the model's
 * counters, so the caller (torch_models.py) can check the outputs against torch and that
 * no binding after the first compiled anything.
 *
 *   onnx_api MODEL.onnx IN1.npy OUT1.npy [IN2.npy OUT2.npy ...] */
#include <stdio.h>
#include <stdlib.h>

#include "dvm.h"

static int fail(const char *what) {
  fprintf(stderr, "onnx_api: %s: %s\n", what, dvm_last_error());
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 4 || argc % 2) {
    fprintf(stderr, "usage: onnx_api MODEL.onnx IN.npy OUT.npy [IN.npy OUT.npy ...]\n");
    return 2;
  }
  dvm_context *ctx = NULL;
  dvm_graph *g = NULL;
  dvm_model *m = NULL;
  int rc = 1;
  dvm_compile_options opt = {.tier = DVM_TIER_LLVM, .threads = 1};
  if (dvm_context_create(&ctx)) return fail("context");
  if (dvm_graph_load_onnx(ctx, argv[1], &g)) {
    rc = fail("load");
    goto out;
  }
  if (dvm_model_compile(ctx, g, &opt, &m) || dvm_model_set_graph_params(m, g)) {
    rc = fail("compile");
    goto out;
  }
  if (dvm_model_num_inputs(m) != 1 || dvm_model_num_outputs(m) != 1) {
    fprintf(stderr, "onnx_api: expected one input and one output\n");
    goto out;
  }
  const char *in = dvm_model_input_name(m, 0);
  for (int i = 2; i + 1 < argc; i += 2) {
    dvm_tensor *x = NULL, *y = NULL;
    if (dvm_tensor_load_npy(argv[i], &x) || dvm_model_run(m, 1, &in, &x, &y) ||
        dvm_tensor_save_npy(argv[i + 1], y)) {
      dvm_tensor_destroy(x);
      dvm_tensor_destroy(y);
      rc = fail(argv[i]);
      goto out;
    }
    dvm_stats s;
    dvm_model_stats(m, &s);
    printf("{\"input\": \"%s\", \"kernels\": %lld, \"native_kernels\": %lld, \"llvm_compiles\": %lld, "
           "\"cache_misses\": %lld, \"runs\": %lld}\n",
           argv[i], (long long)s.kernels, (long long)s.native_kernels, (long long)s.llvm_compiles,
           (long long)s.cache_misses, (long long)s.runs);
    dvm_tensor_destroy(x);
    dvm_tensor_destroy(y);
  }
  rc = 0;
out:
  dvm_model_destroy(m);
  dvm_graph_destroy(g);
  dvm_context_destroy(ctx);
  return rc;
}
