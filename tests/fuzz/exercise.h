/* tests/fuzz/exercise.h — what the fuzz targets do with a graph that parsed: compile it in
 * every tier and, when its values are small at the symbol values picked from the input,
 * run it there. Any status is fine (bad graphs and bad bindings are errors); a crash, a
 * sanitizer report, a leak or a hang is the finding. */
#ifndef DVM_FUZZ_EXERCISE_H
#define DVM_FUZZ_EXERCISE_H

#include <stddef.h>
#include <stdint.h>

#include "dvm.h"

/* The context the targets share, made on first use and remade every few hundred inputs
 * (its kernel cache keeps every kernel compiled, which would grow without bound). */
dvm_context *fz_context(void);
/* Compile g in the ref, vm and llvm tiers and run each once at symbol values drawn from
 * seed (1 to 4), inputs and params filled at random (a graph's own param values, ONNX
 * initializers, where it has them). */
void fz_exercise(const dvm_graph *g, uint64_t seed);
/* A 64-bit hash of n bytes (FNV-1a): the seed of an input. */
uint64_t fz_hash(const uint8_t *data, size_t n);

#endif
