/* jit/jit.h — the map of the jit layer: kernels compiled to native code through the LLVM C
 * API, behind the kernel ABI of DESIGN.md, cached by kernel key.
 *
 *   void kernel(void *const *bufs, const int64_t *dims, int64_t begin, int64_t end);
 *
 * bufs: the kernel's inputs then its outputs (fusion order); dims: the values of its
 * symbolic dim parameters (Kernel.dims); [begin, end): the slice of its outer parallel
 * loop (jit_extent) this call covers. Column-mode kernels also read dims[ndims] and, when
 * that is above 1, a scratch buffer after the outputs (jit_col_blocks).
 *
 * A Jit (one per context) owns one long-lived ORC LLJIT, the host target machine, and
 * the kernel cache: one JitEntry per key, compiled at most once however many models and
 * threads ask for it (the first asker compiles, the others wait on the entry). Only files
 * in jit/ include llvm-c.
 *
 * Files: llvm.c (LLJIT, target machine, compile a module, cache), codegen.c (Kernel ->
 * LLVM IR: vector, row and mix kernels), gemm.c (the packed weight layout of mix kernels),
 * extern.c (extern kernels: a direct call of the registered function). */
#ifndef DVM_JIT_H
#define DVM_JIT_H

#include <stdatomic.h>

#include "../fusion/fusion.h"

/* 2^f for f in [-1/2, 1/2]: a degree-5 polynomial, coefficients of f^0..f^5 (relative
 * error 2.1e-7, a Lawson minimax fit rounded to float). gelu_tanh uses it in both tiers,
 * codegen.c gelu_tanh and vm_exec.inc F_(gelu_tanh), which must round alike. */
#define JIT_EXP2_POLY {1.0000001192092896f, 0.6931469440460205f, 0.24022120237350464f, \
                       0.05550713464617729f, 0.009675540030002594f, 0.0013276454992592335f}

typedef void (*KernelFn)(void *const *bufs, const int64_t *dims, int64_t begin, int64_t end);

typedef enum JitState {
  JE_NEW,         /* nobody has asked to compile it yet */
  JE_COMPILING,   /* one thread is compiling; others wait */
  JE_READY,       /* fn is native code */
  JE_UNSUPPORTED, /* codegen does not cover this kernel yet: it runs on the reference path */
  JE_FAILED       /* LLVM failed: `why` says how (a bug) */
} JitState;

typedef struct JitEntry {
  uint8_t key[16];
  _Atomic(KernelFn) fn;   /* published last: a non-NULL fn is ready to call */
  _Atomic int state;      /* JitState */
  double compile_ms;
  char why[256];          /* JE_UNSUPPORTED / JE_FAILED: the reason */
  char *ir;               /* the optimized module as text, for dump --stage llvm */
  char *asm_text;         /* its assembly, for dump --stage asm */
  struct JitEntry *next;  /* hash chain */
} JitEntry;

typedef struct Jit Jit;

typedef struct JitStats {
  int64_t hits, misses, compiles, unsupported;
  double compile_ms;
} JitStats;

/* llvm.c */
/* A new Jit for the host; NULL with err set if LLVM cannot target it. */
Jit *jit_new(Err *err);
void jit_free(Jit *j);
/* The cache entry for kernel k of partition p, compiling it first if needed (blocking:
 * concurrent callers for one key wait for the one compile). Never NULL; the entry's state
 * says whether native code is there. `keep_text` records the IR and assembly when this
 * call compiles (dumps use a Jit of their own). */
JitEntry *jit_get(Jit *j, const Partition *p, const Kernel *k, bool keep_text);
void jit_stats(Jit *j, JitStats *out);
/* Tiering (the auto tier): the entry for kernel k without waiting, and, if nobody has
 * compiled it yet, a request to the background compile thread. `owner` (a model) must
 * call jit_cancel before the partition it passed goes away. Runs read entry->fn
 * atomically: NULL until native code is ready, then the code, swapped in with no lock. */
JitEntry *jit_request(Jit *j, const Partition *p, const Kernel *k, const void *owner);
/* Drop owner's pending requests and wait until none of its kernels is being compiled. */
void jit_cancel(Jit *j, const void *owner);
/* Wait until owner has no pending or running requests. */
void jit_wait(Jit *j, const void *owner);
/* The host's name for the cache key and dumps ("znver5+avx512f ..."). */
const char *jit_target(const Jit *j);

/* codegen.c */
/* The outer parallel extent of kernel k under concrete dim values, for code of `lanes`
 * f32 lanes: rows of its domain (1 for a rank-0 or rank-1 domain); for a kernel that
 * reduces other axes than the last (column mode), chunks of `lanes` columns of each kept
 * row; for a mix kernel on the packed path, products (batches of a batched b, else one)
 * times blocks of jit_tile(lanes).mc rows times panels of its nr output columns
 * (panel-major within a row block). *item (if not NULL): elements one
 * item of the extent covers. */
int64_t jit_extent(const Partition *p, const Kernel *k, const int64_t *dims, int lanes, int64_t *item);
/* Column mode (jit_col_mode) takes one more dim value, dims[ndims]: the blocks P its
 * reduced rows are cut into (1: none). Returns the P that kernel k's native code should
 * use under dims on a pool of `threads`: 1 when it does not split (one thread, enough
 * groups of columns for the threads, too little work, or a kernel that cannot: see
 * codegen.c, col_split_item); else P > 1, with the combine items to run after the
 * extent's (items extent .. extent + *finish, once all of those are done) and the bytes
 * of scratch it reads as bufs[ninputs + noutputs + 2] (*scratch). jit_extent then covers
 * the P blocks of every group. */
int64_t jit_col_blocks(const Partition *p, const Kernel *k, const int64_t *dims, int lanes, int threads,
                       int64_t *finish, size_t *scratch);
/* The f32 lanes of the native code (16 on AVX-512). */
int jit_lanes(const Jit *j);
/* Can codegen emit kernel k? If not, why (for the entry and the dumps). */
bool jit_supported(const Partition *p, const Kernel *k, char *why, size_t n);
/* Row kernel shapes both tiers emit differently: column mode keeps the last axis and
 * reduces others (W6's mean over N); multi mode reduces the last axis and others (a global
 * pool over [H, W]: each row of kept indices folds over the reduced outer indices too). */
bool jit_col_mode(const Graph *g, const Kernel *k);
bool jit_multi_mode(const Graph *g, const Kernel *k);
/* The input of mix kernel k whose packed copy (jit_pack) its native code reads, as the
 * extra buffer bufs[ninputs + noutputs]: a 2-D param weight read as it is (whatever a
 * is); -1 if none (other kernels, and mix kernels that pack b themselves or read it in
 * place). */
int jit_packed_input(const Partition *p, const Kernel *k);
/* Is mix kernel k's a a normalization member (a prologue, docs/fusion.md) that its native
 * code computes while it packs a? */
bool jit_mix_prologue(const Partition *p, const Kernel *k);

/* gemm.c */
/* Register and cache tiles of native mix kernels for code of `lanes` f32 lanes. */
typedef struct JitTile {
  int mr, nr;  /* rows x columns of the micro-kernel's accumulators (nr: whole vectors) */
  int kc, mc;  /* k per block, rows of a per block (a multiple of mr) */
} JitTile;
JitTile jit_tile(int lanes);
/* Floats of b [K, N] packed for code of `lanes` lanes (panels of nr columns, zero-padded). */
size_t jit_packed_floats(int64_t K, int64_t N, int lanes);
/* Pack row-major b [K, N] into out (jit_packed_floats of it). */
void jit_pack(const float *b, int64_t K, int64_t N, int lanes, float *out);

/* extern.c */
/* Where one argument of an extern kernel's call comes from, in kernel-ABI terms. */
typedef enum JxKind {
  JX_BUF,   /* bufs[buf]: a tensor's data */
  JX_LOAD,  /* element 0 of bufs[buf], of dtype `dtype`, converted to the parameter's type */
  JX_CONST, /* bits: the value in the parameter's C type (a literal, a constant dim) */
  JX_DIM    /* dims[q] (i64), narrowed to an i32 parameter by wrapping */
} JxKind;
typedef struct JitExtArg {
  uint8_t kind;  /* JxKind */
  uint8_t dtype; /* JX_LOAD */
  uint32_t buf;  /* JX_BUF, JX_LOAD */
  uint32_t q;    /* JX_DIM */
  int64_t bits;  /* JX_CONST */
} JitExtArg;
/* An extern kernel (one call node; docs/extern.md) as a call: the function, its
 * arguments, and (a scalar result) the output buffer its result is stored to. */
typedef struct JitExt {
  const Extern *e;
  JitExtArg arg[EXT_MAX_PARAMS];
  uint32_t out;  /* the output's buffer index */
  uint8_t odt;   /* the output's dtype */
} JitExt;
/* The call of extern kernel k; false (why says it) if its function is not resolved
 * (dumps, graphs not compiled into a model) or a constant argument does not fit. */
bool jit_extern_plan(const Partition *p, const Kernel *k, JitExt *x, char *why, size_t n);

#endif /* DVM_JIT_H */
