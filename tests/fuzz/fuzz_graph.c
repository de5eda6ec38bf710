/* tests/fuzz/fuzz_graph.c — libFuzzer target for the text graph format: parse; print and
 * parse the print again, which must print the same (the round trip of docs/format.md);
 * then compile in every tier and run at small symbol values (exercise.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exercise.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  dvm_context *ctx = fz_context();
  dvm_graph *g = NULL, *g2 = NULL;
  if (dvm_graph_parse(ctx, (const char *)data, size, "fuzz.dvm", &g) != DVM_OK) return 0;
  char *p1 = dvm_graph_print(g), *p2 = NULL;
  if (!p1) abort(); /* printing a parsed graph cannot fail but for memory */
  if (dvm_graph_parse(ctx, p1, strlen(p1), "printed.dvm", &g2) != DVM_OK) {
    fprintf(stderr, "fuzz: the print of a parsed graph does not parse: %s\n%s", dvm_last_error(), p1);
    abort();
  }
  p2 = dvm_graph_print(g2);
  if (!p2 || strcmp(p1, p2)) {
    fprintf(stderr, "fuzz: the round trip changed the graph:\n%s---\n%s", p1, p2 ? p2 : "(null)");
    abort();
  }
  fz_exercise(g, fz_hash(data, size));
  free(p1), free(p2);
  dvm_graph_destroy(g2);
  dvm_graph_destroy(g);
  return 0;
}
