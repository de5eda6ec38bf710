/* tests/fuzz/fuzz_onnx.c — libFuzzer target for ONNX import: parse a ModelProto from
 * memory, import it, then compile in every tier and run at small symbol values with its
 * initializers bound (exercise.c). */
#include "exercise.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  dvm_graph *g = NULL;
  if (dvm_graph_parse_onnx(fz_context(), data, size, NULL, &g) != DVM_OK) return 0;
  fz_exercise(g, fz_hash(data, size));
  dvm_graph_destroy(g);
  return 0;
}
