/* tests/fuzz/fuzz_npy.c — libFuzzer target for the .npy reader, from memory: a file that
 * reads must have a tensor whose bytes are the input's after its header, and write back
 * to a file that reads as the same tensor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/runtime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Tensor *t = NULL, *back = NULL;
  Err err = {0};
  if (rt_npy_read_mem(data, size, "fuzz.npy", &t, &err) != DVM_OK) {
    if (t || !err.msg[0]) abort(); /* a failure names itself and makes nothing */
    return 0;
  }
  size_t bytes = (size_t)t->numel * ir_dtype_size(t->dtype);
  if (bytes > size) abort();
  if (t->dtype != DT_BOOL && bytes && memcmp(t->data, data + size - bytes, bytes)) abort();
  char path[4096];
  const char *dir = getenv("TMPDIR");
  snprintf(path, sizeof path, "%s/dvm-fuzz-XXXXXX.npy", dir && *dir ? dir : P_tmpdir);
  int fd = mkstemps(path, 4);
  if (fd < 0) abort();
  close(fd);
  if (rt_npy_write(path, t, &err) != DVM_OK || rt_npy_read(path, &back, &err) != DVM_OK) {
    fprintf(stderr, "fuzz: a tensor read from a .npy does not write and read back: %s\n", err.msg);
    abort();
  }
  unlink(path);
  if (back->dtype != t->dtype || back->rank != t->rank || memcmp(back->shape, t->shape, (size_t)t->rank * sizeof *t->shape) ||
      (bytes && memcmp(back->data, t->data, bytes)))
    abort();
  rt_tensor_free(back);
  rt_tensor_free(t);
  return 0;
}
