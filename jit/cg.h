/* jit/cg.h — the native emitter's private map: the state its parts share (Cg), the types
 * of their callbacks, and the functions one part calls in another. Only jit/ includes it.
 *
 * The emitter, one file per part, all emitting into one Cg:
 *   codegen.c  jit_emit: the function, its parameters and the kernel shape's loop
 *   emit.c     constants, types, intrinsics and libmvec calls, loads and stores
 *   math.c     exp, 2^t, gelu_tanh and the other elementwise ops
 *   views.c    operand bases, views as index maps, the programs' entries (cg_eval)
 *   loops.c    loops over a row's columns and over reduced rows
 *   rows.c     vector and row kernels: passes, stores, the row loop
 *   mix.c      matmul with b read in place or streamed, the general matmul, counted loops
 *   gemm.c     the packed, register-blocked GEMM
 *   cols.c     column mode */
#ifndef DVM_JIT_CG_H
#define DVM_JIT_CG_H

#include <llvm-c/Core.h>

#include "jit.h"

typedef struct Cg {
  const KnKernel *low;   /* the lowered kernel: all the emitter reads of the kernel */
  int W;                 /* lanes of a value: the host's, or KN_COL_VECS times that (column mode) */
  int NW;                /* the host's vector lanes (libmvec and target intrinsics) */
  const char *mvec;      /* libmvec prefix: "_ZGVeN16", "_ZGVdN8", "_ZGVbN4" */
  LLVMContextRef C;
  LLVMModuleRef M;
  LLVMBuilderRef B;
  LLVMValueRef fn, bufs, dims;
  LLVMValueRef *bufp;    /* per buffer: its pointer, loaded once at entry */
  LLVMValueRef *dimv;    /* per dim parameter: its value, loaded once at entry */
  LLVMTypeRef f32, i1, i32, i64, ptr, vf;
  LLVMValueRef *memo;    /* per member: its value in the current loop body */
  const KnProg *prog;    /* the program of the current loop body (cg_begin), ... */
  uint32_t at;           /* ... its next entry, ... */
  KnReads rd;            /* ... its leaf reads no member has taken yet, ... */
  LLVMValueRef *reads;   /* ... and per read its value (NULL: not materialized yet) */
  bool broken;           /* a program read a value before evaluating it (an internal error) */
  LLVMValueRef *red;     /* per member: a reduction's per-row result (splat) */
  LLVMValueRef *n1, *n2; /* per member: a normalization's per-row scalars (splats) */
  LLVMValueRef *base;    /* per input and alignment (2 i + ctx): element offset at the
                            current outer index */
  LLVMValueRef *inner;   /* ... and its stride along the last axis (1, or 0: broadcast) */
  uint32_t axes;         /* row kernels: the reduced axes of the domain */
  int r, rr;             /* ranks of the domain and of the reduced shape (keepdims=0) */
  const KnDim *dom;      /* the domain's dims */
  bool col;              /* column mode: the last axis is kept; the reduced rows are folded
                            per column (col_item) */
  bool multi;            /* the last axis and others reduced (KnKernel.multi) */
  LLVMValueRef L;        /* multi mode: the last axis' length */
  int ctx;               /* alignment of the operands being read: 0 with the domain, 1 with
                            the reduced shape (members of rank rr < r: KnVal.ctx) */
  LLVMValueRef idx[DVM_MAX_RANK]; /* column mode: the current outer multi-index */
  LLVMValueRef j, mask;  /* current column and lane mask (NULL: all lanes) */
  LLVMValueRef kk;       /* general matmul: the current k */
  bool guarded;          /* a concat operand: lanes outside c->mask must not be read */
  int gathers;           /* gathers emitted so far (probes of a layout count them) */
  LLVMValueRef mm;       /* mix kernels: the matmul's accumulator at this column */
  int mm_member;
  int stash_member;      /* row kernels: the softmax whose exp(x - max) row is kept ... */
  LLVMValueRef stash;    /* ... in this row of a full-shaped output (its scratch until the
                            output pass overwrites it), or -1 / NULL */
  LLVMValueRef *next;    /* row kernels, per input: element offset of the next row (NULL:
                            none), prefetched by the first pass while `prefetching` */
  bool prefetching;
  LLVMBasicBlockRef entry;
  int64_t chunk;         /* column mode: columns per item (kn_chunk) ... */
  LLVMValueRef j0, jend; /* ... and the current item's [j0, jend) */
  LLVMValueRef *slot;    /* column mode, per red, n1 and n2 of each member: its stack array */
  LLVMTypeRef *slot_t;   /* ... of this type (NULL: none yet) */
  uint8_t *ready;        /* ... holding the results of a finished pass */
  LLVMValueRef part[4];  /* column mode: the fold accumulators' arrays, one per type */
  LLVMTypeRef part_t[4];
  LLVMValueRef *rows4;   /* column mode: four rows' base, inner and idx (ROW_STATE each) */
} Cg;

/* A view member is read at a position in its own index space, mapped through the chain of
 * views to a kernel input's element offset (or to a constant, or to arange's index). An
 * index is s + k·(j + lane) with s a scalar and k known when the kernel is emitted (the
 * common case: 0 off the last axis, 1 along it), or any vector v of W indices (after a
 * division or a product by a runtime stride); offsets with k = 1 are vector loads, k = 0
 * splat loads, others gathers. */
typedef struct Ix {
  LLVMValueRef s; /* scalar part */
  int64_t k;      /* lanes coefficient, when v is NULL */
  LLVMValueRef v; /* <W x i64>, or NULL */
  int64_t al;     /* a power of two known to divide s (0: only what a constant s says) */
} Ix;

typedef LLVMValueRef (*Body)(Cg *c, void *arg, LLVMValueRef acc);

enum { MAXU = 4 }; /* most independent accumulators of an unrolled fold */

typedef struct Pass {
  Fold fold;
  DType t;           /* the folded values' dtype: f32, or i32/i64 (wrapping, as the reference) */
  uint32_t value;    /* what is folded: a value number ... */
  int what;          /* ... or, for normalizations, which derived quantity */
  int member;
  const KnProg *prog; /* the program evaluating the value (KnIns.prog) */
} Pass;

typedef struct Store {
  LLVMValueRef row, L;
} Store;

typedef LLVMValueRef (*Native)(Cg *c, const char *what, LLVMValueRef x, LLVMValueRef y);

/* Where a loop's body runs: at column j of the row, or (column mode) at row q of the
 * reduced axes. */
typedef void (*Place)(Cg *c, LLVMValueRef pos);

typedef LLVMValueRef (*Combine)(Cg *c, void *arg, LLVMValueRef a, LLVMValueRef b);

/* emit.c */
LLVMValueRef cg_ci64(Cg *c, int64_t v);
LLVMValueRef cg_splatf(Cg *c, double v);
/* x in every lane (insertelement + zero shuffle; the C API has no splat builder). */
LLVMValueRef cg_vsplat(Cg *c, LLVMValueRef x, const char *name);
LLVMValueRef cg_intrinsic(Cg *c, const char *name, LLVMTypeRef *tys, size_t nt,
                          LLVMValueRef *args, unsigned na);
LLVMValueRef cg_vcall1(Cg *c, const char *name, LLVMValueRef x);
LLVMValueRef cg_vcall2(Cg *c, const char *name, LLVMValueRef x, LLVMValueRef y);
/* f applied to x (and y) in pieces of the host's width, for values wider than it. */
LLVMValueRef cg_by_native(Cg *c, Native f, const char *what, LLVMValueRef x, LLVMValueRef y);
/* A libmvec vector function: "expf" -> _ZGVeN16v_expf. */
LLVMValueRef cg_mvec(Cg *c, const char *fnname, LLVMValueRef x, LLVMValueRef y);
/* vscalefps: y·2^floor(n), IEEE overflow and underflow (AVX-512). */
LLVMValueRef cg_scalef_native(Cg *c, const char *unused, LLVMValueRef y, LLVMValueRef n);
/* Value of dim d: a constant or the kernel's dim parameter. */
LLVMValueRef cg_dimval(Cg *c, KnDim d);
LLVMValueRef cg_buf(Cg *c, uint32_t i);
/* The buffer pointers and dim values, loaded once in the entry block: stores through the
 * float pointers could alias the bufs and dims arrays as far as LLVM knows, so loads in
 * the loops would be repeated every iteration. */
void cg_load_params(Cg *c);
/* Lane mask for a tail: lane < rem. */
LLVMValueRef cg_tail_mask(Cg *c, LLVMValueRef rem);
/* W elements of type et (f32, or i8 for bool) at base_ptr[off], masked in a tail. */
LLVMValueRef cg_load_elems(Cg *c, LLVMTypeRef et, LLVMValueRef base_ptr, LLVMValueRef off);
LLVMValueRef cg_load_vec(Cg *c, LLVMValueRef base_ptr, LLVMValueRef off);
void cg_store_vec(Cg *c, LLVMValueRef base_ptr, LLVMValueRef off, LLVMValueRef v);
/* The element type of dtype t in memory (bool: a byte) and in registers (bool: i1). */
LLVMTypeRef cg_mem_type(Cg *c, DType t);
LLVMTypeRef cg_reg_type(Cg *c, DType t);
/* A <W x float> value as f16 / bf16 in memory: f16 by fptrunc (F16C), bf16 as the
 * reference rounds (runtime/tensor.c rt_f32_to_bf16): to nearest even, a NaN kept and
 * made quiet. */
LLVMValueRef cg_to_mem(Cg *c, LLVMValueRef x, DType t);
/* f16 / bf16 from memory (a vector of half or i16) to <W x float>: exact. */
LLVMValueRef cg_from_mem(Cg *c, LLVMValueRef x, DType t);
/* An f32 value rounded to f16 / bf16 (and back to f32 in registers). */
LLVMValueRef cg_round_to(Cg *c, LLVMValueRef x, DType t);
/* Value u's W lanes to memory in its dtype: bool masks as bytes 0/1. Values here and
 * below are the lowered kernel's value numbers (KnVal). */
void cg_store_value(Cg *c, uint32_t u, LLVMValueRef base_ptr, LLVMValueRef off, LLVMValueRef v);
/* Element offset of value u at the outer multi-index idx (the last axis at 0) and its
 * stride along the last axis, read in alignment ctx. */
void cg_value_base(Cg *c, uint32_t u, const LLVMValueRef *idx, int ctx, LLVMValueRef *base,
                   LLVMValueRef *inner);
/* Every input's offsets at the outer multi-index idx, in both alignments. */
void cg_input_bases(Cg *c, const LLVMValueRef *idx);
/* An input's W lanes at the current column. */
LLVMValueRef cg_load_input(Cg *c, int i);
/* Operand k of member value v, the member being evaluated: a leaf's read, materialized
 * now if it is not yet, or a member's value. */
LLVMValueRef cg_operand(Cg *c, uint32_t v, uint32_t k);
LLVMValueRef cg_lit(Cg *c, uint32_t u);

/* math.c */
/* x / y, y a vector; reciprocal forms stay exact divisions (as the reference). */
LLVMValueRef cg_vdiv(Cg *c, LLVMValueRef x, LLVMValueRef y);
/* exp(d) for d = x - max (softmax and log_softmax: d <= 0, or NaN): 2^t, t = d·log2 e
 * clamped below at -150 (the sum's terms past it are 0), NaN staying NaN. The rounding of
 * t costs ~6e-8·|t| relative, 1.7e-6 at d = -20, far inside what a probability needs;
 * 7 multiplies and fmas against vexp's 12 (W2 is bound by them up to N = 333). The
 * bytecode tier's F_(expm) is the same sequence. */
LLVMValueRef cg_exp_shifted(Cg *c, LLVMValueRef d);
LLVMValueRef cg_emit_elementwise(Cg *c, uint32_t v, const KnIns *in);

/* views.c */
Ix cg_ix_scalar(LLVMValueRef s);
/* Value u (a view, or a kernel input at the end of a chain of views) at position P. */
LLVMValueRef cg_view_at(Cg *c, uint32_t u, const Ix *P);
/* Start program p (KnProg) of a loop body, nothing evaluated. */
void cg_begin(Cg *c, const KnProg *p);
/* The value of u at the current column (a vector, or a splat for per-row scalars): the
 * current program's entries run up to u's. A value the program does not evaluate breaks
 * the kernel (Cg.broken). */
LLVMValueRef cg_eval(Cg *c, uint32_t u);
void cg_forget(Cg *c);
/* Element offsets of every input for row `row` (outer index decomposed by the domain). */
void cg_row_bases(Cg *c, LLVMValueRef row, const KnDim *dom, int r);
/* Row kernels (not multi mode): each f32 input read along the row gets the offset of the
 * same column one row on (the innermost outer index + 1; past the last row it points
 * beyond the data, which a cg_prefetch may). The first pass prefetches it, one line per
 * vector: a row of 1024 f32 is one 4 KB page, where the hardware's stream cg_prefetch
 * stops, and the row's own passes and stores hold the reorder window while the next
 * row's first loads wait (W3 at N = 4096 ran at ~28 GB/s where W1 streams at ~40). */
void cg_next_row_bases(Cg *c);

/* loops.c */
/* Column mode: the reduced axes' multi-index from q, and the inputs' offsets there. */
void cg_place_row(Cg *c, LLVMValueRef q);
/* while (i + U·unit <= end) { acc[u] = body(acc[u]) placed at i + u·unit, u < U; i += U·unit }:
 * one loop from `from` carrying U accumulators (acc[u] may be NULL: no accumulator);
 * updates acc and returns the exit position. */
LLVMValueRef cg_pos_loop(Cg *c, LLVMValueRef from, LLVMValueRef L, int U, int unit, Place place,
                         LLVMValueRef *acc, Body body, void *arg);
/* The columns of a row: with an accumulator and a combine, U independent accumulators
 * over blocks of U·W cg_columns (a fold is one long dependency chain otherwise), combined,
 * then single vectors; without, single vectors (LLVM unrolls). Then one masked tail if
 * (L - from) % W. Columns [from, L) (cg_columns_u and cg_columns: from 0). Returns the
 * accumulator's final value (NULL without). */
LLVMValueRef cg_columns_from(Cg *c, LLVMValueRef from, LLVMValueRef L, LLVMValueRef acc0, Body body,
                             Combine comb, void *arg, int U);
LLVMValueRef cg_columns_u(Cg *c, LLVMValueRef L, LLVMValueRef acc0, Body body, Combine comb,
                          void *arg, int U);
LLVMValueRef cg_columns(Cg *c, LLVMValueRef L, LLVMValueRef acc0, Body body, void *arg);

/* rows.c */
LLVMValueRef cg_identity(Cg *c, Fold f, DType t);
/* acc ⊕ v for a fold of values of dtype t. */
LLVMValueRef cg_fold_op(Cg *c, Fold f, DType t, LLVMValueRef acc, LLVMValueRef v);
LLVMValueRef cg_pass_body(Cg *c, void *arg, LLVMValueRef acc);
/* The sum of v's lanes (llvm.vector.reduce.fadd, reassociated: halves onto halves). */
LLVMValueRef cg_lanes_sum(Cg *c, LLVMValueRef v);
LLVMValueRef cg_am_pick(Cg *c, LLVMValueRef a, LLVMValueRef b);
/* Column mode: row q of the reduced axis (its index in c->idx) folded into the lanes'
 * (value, index) pairs (arg: the Pass). */
LLVMValueRef cg_am_col_body(Cg *c, void *arg, LLVMValueRef acc);
/* Member m's per-row scalars from the result of its pass i (Lf: the count folded, splat). */
void cg_finish_pass(Cg *c, uint32_t m, int i, LLVMValueRef folded, LLVMValueRef Lf);
/* The per-row scalars of every reduction and normalization, in member order. */
void cg_row_passes(Cg *c, LLVMValueRef L);
/* Store every full-shaped output at the current column. */
LLVMValueRef cg_store_body(Cg *c, void *arg, LLVMValueRef acc);
/* Vector and row kernels: per row of [begin, end), the passes over the row, then the
 * output pass and the per-row results' stores. */
void cg_row_kernel(Cg *c, LLVMValueRef begin, LLVMValueRef end);

/* mix.c */
/* A counted loop from `from` while iv + step <= end (step 1: iv < end); returns the exit
 * value of iv. body(c, iv, arg) emits one iteration. */
LLVMValueRef cg_counted(Cg *c, LLVMValueRef from, LLVMValueRef end, int step,
                        void (*body)(Cg *, LLVMValueRef, void *), void *arg);
/* Operand x's position for output row idx (batch dims right-aligned with the domain's,
 * broadcast ones at 0) and its last two indices (i0, i1). */
void cg_gm_pos(Cg *c, uint32_t x, Ix i0, Ix i1, Ix *P);
/* A mix kernel off the packed path: the general matmul (views, batches, transposes), or a
 * 2-D b read in place, streamed for few rows. */
void cg_mix_kernel(Cg *c, LLVMValueRef begin, LLVMValueRef end);

/* gemm.c */
/* A prefetch (for reading, into every level: prefetcht0) of base[off]. */
void cg_prefetch(Cg *c, LLVMValueRef base, LLVMValueRef off);
/* The matmul's row index at the current position (0 for a vector a: one row). */
LLVMValueRef cg_row_index(Cg *c);
/* Would reading matmul operand x (transposed if t) with the lanes along axis ax of its
 * matrix (0: rows, 1: cg_columns, after the transpose) gather? Probed by emitting the read
 * into a scratch block that is then deleted. */
bool cg_gathers_along(Cg *c, uint32_t x, bool t, int ax);
/* Items [begin, end) of a mix kernel whose weight is packed (bufs[ninputs + noutputs]):
 * item t is panel t % P of row block t / P (kn_extent). */
void cg_pk_items(Cg *c, LLVMValueRef begin, LLVMValueRef end, LLVMValueRef L, const KnPack *f);

/* cols.c */
/* Column mode's kernel: items of groups of columns (col_item), or with a split, blocks of
 * them and then the combine items (kn_col_blocks). */
void cg_col_kernel(Cg *c, LLVMValueRef begin, LLVMValueRef end);

#endif /* DVM_JIT_CG_H */
