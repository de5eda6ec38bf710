/* vm/run.c — the tile interpreter (vm/vm.h), built once per host ISA.
 *
 * exec.inc holds the interpreter and the drivers; it is included three times, under
 * `#pragma GCC target` (clang, which builds the fuzz targets: a pushed target attribute)
 * for x86-64-v4 (AVX-512, 16 f32 lanes), x86-64-v3 (AVX2 + FMA, 8) and the baseline
 * (SSE2, 4), and the copy for the host is chosen once, by the same rule
 * as the native tier's width (jit/llvm.c: avx512f -> 16, avx2 -> 8, else 4), so that both
 * tiers compute exp with the same sequence and call libmvec at the same width. libmvec is
 * resolved with dlsym (as the native tier finds it through the process's symbols); if it
 * is missing, the scalar libm function is used per lane.
 *
 * Other than x86-64: the baseline copy with GCC's generic vectors (no intrinsics) is not
 * written yet; vm_isa reports "none" and the runtime does not use the VM. */
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vm.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* clang (the fuzz build, tests/fuzz) takes the targets as a function attribute */
#ifdef __clang__
#pragma clang attribute push(__attribute__((target("arch=x86-64-v4"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v4")
#endif
#define VW 16
#define SFX _v4
#include "exec.inc"
#undef VW
#undef SFX
#ifdef __clang__
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#ifdef __clang__
#pragma clang attribute push(__attribute__((target("arch=x86-64-v3"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")
#endif
#define VW 8
#define SFX _v3
#include "exec.inc"
#undef VW
#undef SFX
#ifdef __clang__
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#define VW 4
#define SFX _v1
#include "exec.inc"
#undef VW
#undef SFX

typedef void (*Exec)(const VmCode *, void *const *, const int64_t *, int64_t, int64_t);
static Exec exec_fn;
static const char *isa_name = "none";
static int isa_lanes;

static void *mvec(void *lib, const char *prefix, const char *name) {
  char sym[64];
  snprintf(sym, sizeof sym, "%s%s", prefix, name);
  return lib ? dlsym(lib, sym) : NULL;
}

/* Resolve one copy's libmvec functions (object pointers to function pointers through
 * memcpy: ISO C has no conversion between them, POSIX guarantees it works). */
#define RESOLVE(sfx, prefix)                                                              \
  do {                                                                                    \
    void *p;                                                                              \
    p = mvec(lib, prefix "v_", "logf"), memcpy(&mv_logf##sfx, &p, sizeof p);              \
    p = mvec(lib, prefix "v_", "tanhf"), memcpy(&mv_tanhf##sfx, &p, sizeof p);            \
    p = mvec(lib, prefix "v_", "erff"), memcpy(&mv_erff##sfx, &p, sizeof p);              \
    p = mvec(lib, prefix "v_", "sinf"), memcpy(&mv_sinf##sfx, &p, sizeof p);              \
    p = mvec(lib, prefix "v_", "cosf"), memcpy(&mv_cosf##sfx, &p, sizeof p);              \
    p = mvec(lib, prefix "vv_", "powf"), memcpy(&mv_powf##sfx, &p, sizeof p);             \
  } while (0)

static void init(void) {
#ifdef __clang__
  /* clang passes a vector_size argument by the translation unit's ABI, not the function's
     target: the copies' 256- and 512-bit vectors go through memory where libmvec takes
     them in ymm0 / zmm0 (the AVX-512 copy's tanh had lanes 8-15 wrong). The clang build
     (tests/fuzz) computes those lanes with libm instead. */
  void *lib = NULL;
#else
  void *lib = dlopen("libmvec.so.1", RTLD_NOW | RTLD_GLOBAL);
#endif
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")) {
    RESOLVE(_v4, "_ZGVeN16");
    exec_fn = exec_v4, isa_name = "avx512", isa_lanes = 16;
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    RESOLVE(_v3, "_ZGVdN8");
    exec_fn = exec_v3, isa_name = "avx2", isa_lanes = 8;
  } else {
    RESOLVE(_v1, "_ZGVbN4");
    exec_fn = exec_v1, isa_name = "sse2", isa_lanes = 4;
  }
  if (getenv("DVM_VM_ISA") && !strcmp(getenv("DVM_VM_ISA"), "sse2")) /* for testing the copies */
  {
    RESOLVE(_v1, "_ZGVbN4");
    exec_fn = exec_v1, isa_name = "sse2", isa_lanes = 4;
  } else if (getenv("DVM_VM_ISA") && !strcmp(getenv("DVM_VM_ISA"), "avx2") && isa_lanes >= 8) {
    RESOLVE(_v3, "_ZGVdN8");
    exec_fn = exec_v3, isa_name = "avx2", isa_lanes = 8;
  }
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

const char *vm_isa(int *lanes) {
  pthread_once(&once, init);
  if (lanes) *lanes = isa_lanes;
  return isa_name;
}

void vm_exec(const VmCode *c, void *const *bufs, const int64_t *dims, int64_t begin, int64_t end) {
  if (c->mode == VMM_EXTERN) vm_call(c, bufs, dims, begin, end); /* no program: a call */
  else exec_fn(c, bufs, dims, begin, end); /* vm_isa ran when the runtime chose the VM */
}
#else
const char *vm_isa(int *lanes) {
  if (lanes) *lanes = 0;
  return "none";
}
void vm_exec(const VmCode *c, void *const *bufs, const int64_t *dims, int64_t begin, int64_t end) {
  (void)c, (void)bufs, (void)dims, (void)begin, (void)end;
}
#endif

int64_t vm_extent(const VmCode *c, const int64_t *dims, int64_t *item) {
  int64_t rows = 1, reduced = 1, last = 1;
  if (c->mode == VMM_EXTERN) { /* one call, never split */
    if (item) *item = 1;
    return 1;
  }
  for (int i = 0; i < c->r; i++) {
    VmDim d = c->dimtab[i];
    int64_t v = d.q >= 0 ? dims[d.q] : d.c;
    if (i + 1 == c->r) last = v;
    else if (c->mode == VMM_COLS && (c->axes >> i & 1)) reduced *= v;
    else rows *= v;
  }
  if (c->mode == VMM_COLS) {
    if (item) *item = reduced * VM_T;
    return rows * ((last + VM_T - 1) / VM_T);
  }
  if (c->mode == VMM_MIX) { /* blocks of VM_MC rows by tiles of VM_T columns (exec.inc) */
    if (item) *item = (rows < VM_MC ? rows : VM_MC) * VM_T;
    return (rows + VM_MC - 1) / VM_MC * ((last + VM_T - 1) / VM_T);
  }
  if (item) *item = last;
  return rows;
}
