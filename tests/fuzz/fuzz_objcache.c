/* tests/fuzz/fuzz_objcache.c — libFuzzer target for the object cache's file check
 * (jit/objcache.c oc_check), from memory: any bytes are a file of some kernel's entry. An
 * input the check accepts must be exactly what storing its body writes: stored again under
 * the key and loaded back, it gives the same body. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jit/jit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ObjCache *cache;
static const uint8_t key[16] = {0xd, 0x1, 0x5, 0xc, 0xa, 0xc, 0x4, 0xe, 1, 2, 3, 4, 5, 6, 7, 8};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!cache) { /* a private directory, under TMPDIR or the C library's temporary one */
    static char dir[4096];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/dvm-fuzz-cache-XXXXXX", tmp && *tmp ? tmp : P_tmpdir);
    if (!mkdtemp(dir) || !(cache = oc_open(dir, "fuzz"))) abort();
  }
  if (!oc_check(cache, key, data, size)) return 0;
  enum { HEADER = 72 };
  oc_store(cache, key, data + HEADER, size - HEADER);
  size_t n;
  uint8_t *back = oc_load(cache, key, &n);
  if (!back || n != size - HEADER || memcmp(back, data + HEADER, n)) abort();
  free(back);
  return 0;
}
