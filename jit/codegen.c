/* jit/codegen.c — a fused Kernel to LLVM IR, behind the kernel ABI (jit.h).
 * (Why this file is long: one shared evaluator; see the end of this comment.)
 *
 * One emitter serves vector and row kernels: the domain's last axis is the "row" (inner
 * loop, vectorized by W lanes of the host width, a masked tail), the other axes are
 * flattened into the outer parallel loop [begin, end). A vector kernel is a row kernel
 * without reductions: one pass that evaluates its members and stores its outputs. A row
 * kernel runs one pass over the row per reduction (reduce_*, and the passes of softmax,
 * log_softmax, layernorm and rmsnorm), recomputing the elementwise members each pass needs
 * from the inputs (the row stays in cache), then an output pass. Every value is a
 * <W x float>: a per-row scalar (a reduction's result, or anything computed from such
 * results only) is a splat, so one path emits every op.
 *
 * Mix kernels: out[m, :] = a[m, :] @ b + epilogue, with a's batch dims flattened into m
 * when b is a 2-D [K, N] matrix, one product per batch otherwise. A param b is read
 * packed (kernel/gemm.c) by a register-blocked micro-kernel with k and row blocking, the
 * epilogue applied per panel on the last k block ("mix: packed weights" below); views,
 * transposes, batches and a normalization prologue take the same path with a's blocks
 * and b's panels packed on the stack. A 2-D input b read in place: for each block of
 * MIX_ROWS rows and W columns, K fused multiply-adds into one accumulator per row (each
 * b vector loaded once for the block), then the epilogue members on each accumulator
 * and the stores; few rows stream b instead.
 *
 * Operands: an input is read through strides computed from the canonical shapes (stride
 * 0 where it broadcasts), so broadcasting is index math, not copies. Transcendentals go
 * to glibc's libmvec (_ZGVeN16v_tanhf ...), except exp, which is emitted inline (vexp:
 * measured several times faster at ~1 ulp); the tiers are tested against the reference
 * path's double-precision values.
 *
 * Row kernels that keep the last axis and reduce others (column mode, col_item) stream
 * whole rows into per-column accumulators in stack arrays, and with few groups of columns
 * split their rows over the threads into scratch (kn_col_blocks). Layernorm takes its
 * statistics in one pass (ln_stats). What is covered, and why a kernel is not, is
 * kn_supported's: other kernels run on the kernel-level reference path. docs/native.md
 * has the measurements behind these choices.
 *
 * Why one file of ~3300 lines: the emitter is one recursive evaluator (eval) shared by
 * every kernel shape (vector, row, column, multi, mix, packed GEMM); splitting it would
 * expose its private state (Cg). */
#include <llvm-c/Core.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jit.h"


/* ---- the emitter --------------------------------------------------------------------------- */

typedef struct Cg {
  const Partition *p;
  const Graph *g;
  const Kernel *k;
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
  LLVMValueRef *red;     /* per member: a reduction's per-row result (splat) */
  LLVMValueRef *n1, *n2; /* per member: a normalization's per-row scalars (splats) */
  LLVMValueRef *base;    /* per input and alignment (2 i + ctx): element offset at the
                            current outer index */
  LLVMValueRef *inner;   /* ... and its stride along the last axis (1, or 0: broadcast) */
  uint32_t axes;         /* row kernels: the reduced axes of the domain */
  int r, rr;             /* ranks of the domain and of the reduced shape (keepdims=0) */
  const Dim *dom;
  bool col;              /* column mode: the last axis is kept; the reduced rows are folded
                            per column (col_item) */
  bool multi;            /* the last axis and others reduced (kn_multi_mode) */
  LLVMValueRef L;        /* multi mode: the last axis' length */
  int ctx;               /* alignment of the operands being read: 0 with the domain, 1 with
                            the reduced shape (members of rank rr < r) */
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
  int64_t chunk;         /* column mode: columns per item (col_chunk) ... */
  LLVMValueRef j0, jend; /* ... and the current item's [j0, jend) */
  LLVMValueRef *slot;    /* column mode, per red, n1 and n2 of each member: its stack array */
  LLVMTypeRef *slot_t;   /* ... of this type (NULL: none yet) */
  uint8_t *ready;        /* ... holding the results of a finished pass */
  LLVMValueRef part[4];  /* column mode: the fold accumulators' arrays, one per type */
  LLVMTypeRef part_t[4];
  LLVMValueRef *rows4;   /* column mode: four rows' base, inner and idx (ROW_STATE each) */
} Cg;

static LLVMValueRef ci64(Cg *c, int64_t v) { return LLVMConstInt(c->i64, (unsigned long long)v, 1); }
static LLVMValueRef splatf(Cg *c, double v) {
  LLVMValueRef e = LLVMConstReal(c->f32, v);
  LLVMValueRef lanes[64];
  for (int i = 0; i < c->W; i++) lanes[i] = e;
  return LLVMConstVector(lanes, (unsigned)c->W);
}

/* x in every lane (insertelement + zero shuffle; the C API has no splat builder). */
static LLVMValueRef vsplat(Cg *c, LLVMValueRef x, const char *name) {
  LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(x), (unsigned)c->W);
  LLVMValueRef v = LLVMBuildInsertElement(c->B, LLVMGetPoison(vt), x, LLVMConstInt(c->i32, 0, 0), "");
  return LLVMBuildShuffleVector(c->B, v, LLVMGetPoison(vt), LLVMConstNull(LLVMVectorType(c->i32, (unsigned)c->W)), name);
}

static LLVMValueRef intrinsic(Cg *c, const char *name, LLVMTypeRef *tys, size_t nt,
                              LLVMValueRef *args, unsigned na) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  LLVMValueRef f = LLVMGetIntrinsicDeclaration(c->M, id, tys, nt);
  LLVMTypeRef ft = LLVMIntrinsicGetType(c->C, id, tys, nt);
  return LLVMBuildCall2(c->B, ft, f, args, na, "");
}

static LLVMValueRef vcall1(Cg *c, const char *name, LLVMValueRef x) {
  LLVMTypeRef t = c->vf;
  return intrinsic(c, name, &t, 1, &x, 1);
}

static LLVMValueRef vcall2(Cg *c, const char *name, LLVMValueRef x, LLVMValueRef y) {
  LLVMTypeRef t = c->vf;
  LLVMValueRef a[2] = {x, y};
  return intrinsic(c, name, &t, 1, a, 2);
}

/* Lanes [from, from + n) of x. */
static LLVMValueRef lanes_of(Cg *c, LLVMValueRef x, int from, int n) {
  LLVMValueRef idx[64];
  for (int i = 0; i < n; i++) idx[i] = LLVMConstInt(c->i32, (unsigned long long)(from + i), 0);
  return LLVMBuildShuffleVector(c->B, x, LLVMGetPoison(LLVMTypeOf(x)), LLVMConstVector(idx, (unsigned)n), "");
}

/* The np pieces of n lanes each, concatenated (np a power of two). */
static LLVMValueRef concat(Cg *c, LLVMValueRef *piece, int np, int n) {
  for (; np > 1; np /= 2, n *= 2)
    for (int i = 0; i < np / 2; i++) {
      LLVMValueRef idx[64];
      for (int l = 0; l < 2 * n; l++) idx[l] = LLVMConstInt(c->i32, (unsigned long long)l, 0);
      piece[i] = LLVMBuildShuffleVector(c->B, piece[2 * i], piece[2 * i + 1], LLVMConstVector(idx, (unsigned)(2 * n)), "");
    }
  return piece[0];
}

typedef LLVMValueRef (*Native)(Cg *c, const char *what, LLVMValueRef x, LLVMValueRef y);

/* f applied to x (and y) in pieces of the host's width, for values wider than it. */
static LLVMValueRef by_native(Cg *c, Native f, const char *what, LLVMValueRef x, LLVMValueRef y) {
  if (c->W == c->NW) return f(c, what, x, y);
  LLVMValueRef piece[8];
  int np = c->W / c->NW;
  for (int i = 0; i < np; i++)
    piece[i] = f(c, what, lanes_of(c, x, i * c->NW, c->NW), y ? lanes_of(c, y, i * c->NW, c->NW) : NULL);
  return concat(c, piece, np, c->NW);
}

static LLVMValueRef mvec_native(Cg *c, const char *fnname, LLVMValueRef x, LLVMValueRef y) {
  char name[64];
  snprintf(name, sizeof name, "%s%s_%s", c->mvec, y ? "vv" : "v", fnname);
  LLVMTypeRef vt = LLVMVectorType(c->f32, (unsigned)c->NW);
  LLVMTypeRef params[2] = {vt, vt};
  LLVMTypeRef ft = LLVMFunctionType(vt, params, y ? 2 : 1, 0);
  LLVMValueRef f = LLVMGetNamedFunction(c->M, name);
  if (!f) f = LLVMAddFunction(c->M, name, ft);
  LLVMValueRef args[2] = {x, y};
  return LLVMBuildCall2(c->B, ft, f, args, y ? 2 : 1, "");
}

/* A libmvec vector function: "expf" -> _ZGVeN16v_expf. */
static LLVMValueRef mvec(Cg *c, const char *fnname, LLVMValueRef x, LLVMValueRef y) {
  return by_native(c, mvec_native, fnname, x, y);
}

/* vscalefps: y·2^floor(n), IEEE overflow and underflow (AVX-512). */
static LLVMValueRef scalef_native(Cg *c, const char *unused, LLVMValueRef y, LLVMValueRef n) {
  LLVMValueRef a[5] = {y, n, LLVMGetPoison(LLVMTypeOf(y)), LLVMConstInt(LLVMInt16TypeInContext(c->C), 0xffff, 0),
                       LLVMConstInt(c->i32, 4, 0)};
  return intrinsic(c, "llvm.x86.avx512.mask.scalef.ps.512", NULL, 0, a, 5);
}

/* Value of dim d: a constant or the kernel's dim parameter. */
static LLVMValueRef dimval(Cg *c, Dim d) {
  int64_t v;
  if (ir_dim_is_const(c->g, d, &v)) return ci64(c, v);
  for (uint32_t q = 0; q < c->k->ndims; q++)
    if (c->p->dims.v[c->k->dims + q] == d) return c->dimv[q];
  return ci64(c, 0); /* unreachable: every dim of the kernel is numbered by fu_key */
}

static LLVMValueRef buf(Cg *c, uint32_t i) { return c->bufp[i]; }

/* The buffer pointers and dim values, loaded once in the entry block: stores through the
 * float pointers could alias the bufs and dims arrays as far as LLVM knows, so loads in
 * the loops would be repeated every iteration. */
static void load_params(Cg *c) {
  for (uint32_t i = 0; i < c->k->ninputs + c->k->noutputs; i++) {
    LLVMValueRef at = LLVMBuildGEP2(c->B, c->ptr, c->bufs, (LLVMValueRef[]){ci64(c, i)}, 1, "");
    c->bufp[i] = LLVMBuildLoad2(c->B, c->ptr, at, "buf");
  }
  for (uint32_t q = 0; q < c->k->ndims; q++) {
    LLVMValueRef at = LLVMBuildGEP2(c->B, c->i64, c->dims, (LLVMValueRef[]){ci64(c, q)}, 1, "");
    c->dimv[q] = LLVMBuildLoad2(c->B, c->i64, at, "dim");
  }
}

static int input_index(const Cg *c, uint32_t u) {
  for (uint32_t i = 0; i < c->k->ninputs; i++)
    if (fu_inputs(c->p, c->k)[i] == u) return (int)i;
  return -1;
}

static int member_index(const Cg *c, uint32_t u) {
  for (uint32_t i = 0; i < c->k->nmembers; i++)
    if (fu_members(c->p, c->k)[i] == u) return (int)i;
  return -1;
}

/* Lane mask for a tail: lane < rem. */
static LLVMValueRef tail_mask(Cg *c, LLVMValueRef rem) {
  LLVMValueRef lanes[64];
  for (int i = 0; i < c->W; i++) lanes[i] = ci64(c, i);
  LLVMValueRef idx = LLVMConstVector(lanes, (unsigned)c->W);
  LLVMValueRef r = vsplat(c, rem, "");
  return LLVMBuildICmp(c->B, LLVMIntSLT, idx, r, "mask");
}

/* W elements of type et (f32, or i8 for bool) at base_ptr[off], masked in a tail. */
static LLVMValueRef load_elems(Cg *c, LLVMTypeRef et, LLVMValueRef base_ptr, LLVMValueRef off) {
  LLVMValueRef at = LLVMBuildGEP2(c->B, et, base_ptr, &off, 1, "");
  LLVMTypeRef vt = LLVMVectorType(et, (unsigned)c->W);
  unsigned align = et == c->f32 ? 4 : 1;
  if (!c->mask) {
    LLVMValueRef l = LLVMBuildLoad2(c->B, vt, at, "");
    LLVMSetAlignment(l, align);
    return l;
  }
  LLVMTypeRef tys[2] = {vt, c->ptr};
  LLVMValueRef args[4] = {at, LLVMConstInt(c->i32, align, 0), c->mask, LLVMConstNull(vt)};
  return intrinsic(c, "llvm.masked.load", tys, 2, args, 4);
}

static void store_elems(Cg *c, LLVMTypeRef et, LLVMValueRef base_ptr, LLVMValueRef off, LLVMValueRef v) {
  LLVMValueRef at = LLVMBuildGEP2(c->B, et, base_ptr, &off, 1, "");
  unsigned align = et == c->f32 ? 4 : 1;
  if (!c->mask) {
    LLVMSetAlignment(LLVMBuildStore(c->B, v, at), align);
    return;
  }
  LLVMTypeRef tys[2] = {LLVMTypeOf(v), c->ptr};
  LLVMValueRef args[4] = {v, at, LLVMConstInt(c->i32, align, 0), c->mask};
  intrinsic(c, "llvm.masked.store", tys, 2, args, 4);
}

static LLVMValueRef load_vec(Cg *c, LLVMValueRef base_ptr, LLVMValueRef off) {
  return load_elems(c, c->f32, base_ptr, off);
}

static void store_vec(Cg *c, LLVMValueRef base_ptr, LLVMValueRef off, LLVMValueRef v) {
  store_elems(c, c->f32, base_ptr, off, v);
}

/* The element type of dtype t in memory (bool: a byte) and in registers (bool: i1). */
static LLVMTypeRef mem_type(Cg *c, DType t) {
  switch (t) {
  case DT_BOOL: return LLVMInt8TypeInContext(c->C);
  case DT_I32: return c->i32;
  case DT_I64: return c->i64;
  case DT_F16: return LLVMHalfTypeInContext(c->C);
  case DT_BF16: return LLVMInt16TypeInContext(c->C);
  default: return c->f32;
  }
}

static LLVMTypeRef reg_type(Cg *c, DType t) {
  return kn_is_low(t) ? c->vf : LLVMVectorType(t == DT_BOOL ? c->i1 : mem_type(c, t), (unsigned)c->W);
}

/* W lanes of the i32 constant v. */
static LLVMValueRef ki32(Cg *c, unsigned W, uint32_t v) {
  LLVMValueRef k[64];
  for (unsigned i = 0; i < W; i++) k[i] = LLVMConstInt(c->i32, v, 0);
  return LLVMConstVector(k, W);
}

/* A <W x float> value as f16 / bf16 in memory: f16 by fptrunc (F16C), bf16 as the
 * reference rounds (runtime/tensor.c rt_f32_to_bf16): to nearest even, a NaN kept and
 * made quiet. */
static LLVMValueRef to_mem(Cg *c, LLVMValueRef x, DType t) {
  LLVMBuilderRef B = c->B;
  unsigned W = LLVMGetVectorSize(LLVMTypeOf(x));
  LLVMTypeRef m = LLVMVectorType(mem_type(c, t), W);
  if (t == DT_F16) return LLVMBuildFPTrunc(B, x, m, "");
  LLVMValueRef bits = LLVMBuildBitCast(B, x, LLVMVectorType(c->i32, W), "");
  LLVMValueRef nan = LLVMBuildICmp(B, LLVMIntUGT, LLVMBuildAnd(B, bits, ki32(c, W, 0x7fffffffu), ""),
                                   ki32(c, W, 0x7f800000u), "");
  LLVMValueRef hi = LLVMBuildLShr(B, bits, ki32(c, W, 16), "");
  LLVMValueRef odd = LLVMBuildAnd(B, hi, ki32(c, W, 1), "");
  LLVMValueRef rne = LLVMBuildLShr(B, LLVMBuildAdd(B, LLVMBuildAdd(B, bits, ki32(c, W, 0x7fff), ""), odd, ""),
                                   ki32(c, W, 16), "");
  LLVMValueRef r = LLVMBuildSelect(B, nan, LLVMBuildOr(B, hi, ki32(c, W, 0x40), ""), rne, "");
  return LLVMBuildTrunc(B, r, m, "");
}

/* f16 / bf16 from memory (a vector of half or i16) to <W x float>: exact. */
static LLVMValueRef from_mem(Cg *c, LLVMValueRef x, DType t) {
  unsigned W = LLVMGetVectorSize(LLVMTypeOf(x));
  LLVMTypeRef vf = LLVMVectorType(c->f32, W), vi = LLVMVectorType(c->i32, W);
  if (t == DT_F16) return LLVMBuildFPExt(c->B, x, vf, "");
  LLVMValueRef w = LLVMBuildShl(c->B, LLVMBuildZExt(c->B, x, vi, ""), ki32(c, W, 16), "");
  return LLVMBuildBitCast(c->B, w, vf, "");
}

/* An f32 value rounded to f16 / bf16 (and back to f32 in registers). */
static LLVMValueRef round_to(Cg *c, LLVMValueRef x, DType t) { return from_mem(c, to_mem(c, x, t), t); }

/* Value u's W lanes to memory in its dtype: bool masks as bytes 0/1. */
static void store_value(Cg *c, uint32_t u, LLVMValueRef base_ptr, LLVMValueRef off, LLVMValueRef v) {
  DType t = (DType)ir_node(c->g, u)->dtype;
  if (kn_is_low(t)) v = to_mem(c, v, t);
  if (t != DT_BOOL) {
    store_elems(c, mem_type(c, t), base_ptr, off, v);
    return;
  }
  LLVMTypeRef i8 = LLVMInt8TypeInContext(c->C);
  store_elems(c, i8, base_ptr, off, LLVMBuildZExt(c->B, v, LLVMVectorType(i8, (unsigned)c->W), ""));
}

/* The domain axis that dim t of a rank-n value lines up with: right-aligned with the
 * domain (ctx 0), or with the reduced shape, whose axes are the domain's kept ones (ctx 1:
 * w: [N] in mul(reduce_sum(x: [N, H], axes=[1]), w)); -1 if none. */
static int domain_axis(const Cg *c, int n, int t, int ctx) {
  if (!ctx) return t + (c->r - n);
  int pos = t + (c->rr - n);
  for (int d = 0; d < c->r; d++)
    if (!(c->axes >> d & 1) && pos-- == 0) return d;
  return -1;
}

/* Element offset of value u at the outer multi-index idx (the last axis at 0) and its
 * stride along the last axis, read in alignment ctx. */
static void value_base(Cg *c, uint32_t u, const LLVMValueRef *idx, int ctx, LLVMValueRef *base,
                       LLVMValueRef *inner) {
  const Node *n = ir_node(c->g, u);
  const Dim *s = ir_shape(c->g, u);
  LLVMValueRef off = ci64(c, 0), stride = ci64(c, 1);
  *inner = ci64(c, 0);
  for (int t = n->rank - 1; t >= 0; t--) {
    int dk = domain_axis(c, n->rank, t, ctx);
    int64_t one;
    bool bcast = dk < 0 || (ir_dim_is_const(c->g, s[t], &one) && one == 1 && s[t] != c->dom[dk]);
    if (!bcast) {
      if (dk == c->r - 1) *inner = stride;
      else off = LLVMBuildAdd(c->B, off, LLVMBuildMul(c->B, idx[dk], stride, ""), "");
    }
    stride = LLVMBuildMul(c->B, stride, dimval(c, s[t]), "");
  }
  *base = off;
}

/* Every input's offsets at the outer multi-index idx, in both alignments. */
static void input_bases(Cg *c, const LLVMValueRef *idx) {
  for (uint32_t i = 0; i < c->k->ninputs; i++)
    for (int ctx = 0; ctx < 2; ctx++) {
      if (ctx && !c->axes) {
        c->base[2 * i + 1] = c->base[2 * i], c->inner[2 * i + 1] = c->inner[2 * i];
        continue;
      }
      value_base(c, fu_inputs(c->p, c->k)[i], idx, ctx, &c->base[2 * i + ctx], &c->inner[2 * i + ctx]);
    }
}

static LLVMValueRef eval(Cg *c, uint32_t u);

static void prefetch(Cg *c, LLVMValueRef base, LLVMValueRef off);

/* An input's W lanes at the current column. */
static LLVMValueRef load_input(Cg *c, int i) {
  LLVMValueRef p = buf(c, (uint32_t)i), base = c->base[2 * i + c->ctx], x;
  DType dt = (DType)ir_node(c->g, fu_inputs(c->p, c->k)[i])->dtype;
  bool mask = dt == DT_BOOL; /* bytes 0/1 */
  LLVMTypeRef et = mem_type(c, dt);
  /* the stride along the row is known when the kernel is emitted: 0 (broadcast) or the
     contiguous 1 of the last dim */
  if (LLVMConstIntGetSExtValue(c->inner[2 * i + c->ctx]) == 0) {
    LLVMValueRef at = LLVMBuildGEP2(c->B, et, p, &base, 1, "");
    x = vsplat(c, LLVMBuildLoad2(c->B, et, at, ""), "");
  } else {
    x = load_elems(c, et, p, LLVMBuildAdd(c->B, base, c->j, ""));
    if (c->prefetching && c->next[i] && !c->mask && dt == DT_F32)
      prefetch(c, p, LLVMBuildAdd(c->B, c->next[i], c->j, ""));
  }
  if (kn_is_low(dt)) return from_mem(c, x, dt);
  return mask ? LLVMBuildICmp(c->B, LLVMIntNE, x, LLVMConstNull(LLVMTypeOf(x)), "") : x;
}

static LLVMValueRef operand(Cg *c, uint32_t v, uint32_t k) { return eval(c, ir_operand(c->g, v, k)); }

static LLVMValueRef lit(Cg *c, uint32_t u) {
  const Attr *a = ir_attr(c->g, u, AK_VALUE);
  double v = a->isint ? (double)a->i : a->f;
  DType t = (DType)ir_node(c->g, u)->dtype;
  if (t == DT_BOOL) return vsplat(c, LLVMConstInt(c->i1, v != 0, 0), "");
  if (kn_is_int(t)) return vsplat(c, LLVMConstInt(mem_type(c, t), (unsigned long long)(a->isint ? a->i : (int64_t)v), 1), "");
  return kn_is_low(t) ? round_to(c, splatf(c, (float)v), t) : splatf(c, (float)v);
}

/* y·2^n for n a whole float in [-150, 128]: vscalefps on AVX-512, else 2^(n/2)·2^(n-n/2)
 * (each factor a normal float) so the product overflows and underflows as IEEE. */
static LLVMValueRef scale2n(Cg *c, LLVMValueRef y, LLVMValueRef n) {
  LLVMBuilderRef B = c->B;
  if (c->NW == 16) return by_native(c, scalef_native, NULL, y, n);
  LLVMTypeRef t = c->vf, vi = LLVMVectorType(c->i32, (unsigned)c->W);
  LLVMValueRef ni = LLVMBuildFPToSI(B, n, vi, "");
  LLVMValueRef lanes[64];
  for (int i = 0; i < c->W; i++) lanes[i] = LLVMConstInt(c->i32, 1, 0);
  LLVMValueRef one = LLVMConstVector(lanes, (unsigned)c->W);
  for (int i = 0; i < c->W; i++) lanes[i] = LLVMConstInt(c->i32, 127, 0);
  LLVMValueRef bias = LLVMConstVector(lanes, (unsigned)c->W);
  for (int i = 0; i < c->W; i++) lanes[i] = LLVMConstInt(c->i32, 23, 0);
  LLVMValueRef sh = LLVMConstVector(lanes, (unsigned)c->W);
  LLVMValueRef h = LLVMBuildAShr(B, ni, one, ""), k = LLVMBuildSub(B, ni, h, "");
  LLVMValueRef s1 = LLVMBuildBitCast(B, LLVMBuildShl(B, LLVMBuildAdd(B, h, bias, ""), sh, ""), t, "");
  LLVMValueRef s2 = LLVMBuildBitCast(B, LLVMBuildShl(B, LLVMBuildAdd(B, k, bias, ""), sh, ""), t, "");
  return LLVMBuildFMul(B, LLVMBuildFMul(B, y, s1, ""), s2, "");
}

/* exp(x) emitted inline (Cephes expf): x = n·ln2 + r with ln2 split in two, a degree-6
 * polynomial in r, scaled by 2^n: on AVX-512 by vscalefps, which rounds overflow to inf
 * and underflow to subnormals or 0 itself, elsewhere as 2^(n/2)·2^(n-n/2) so that results
 * near the ends stay exact, with > 88.72 inf, < -103.97 0. NaN stays NaN. About 1
 * ulp, and several times faster here than a call to libmvec's expf (measured with
 * dvm bench), which is why this one function is not libmvec's. */
static LLVMValueRef vexp(Cg *c, LLVMValueRef x) {
  LLVMBuilderRef B = c->B;
  LLVMTypeRef t = c->vf;
  LLVMValueRef xc = vcall2(c, "llvm.minimum", vcall2(c, "llvm.maximum", x, splatf(c, KN_EXP_LO)), splatf(c, KN_EXP_HI));
  LLVMValueRef n = vcall1(c, "llvm.roundeven", LLVMBuildFMul(B, xc, splatf(c, KN_LOG2E), ""));
  LLVMValueRef r = intrinsic(c, "llvm.fma", &t, 1, (LLVMValueRef[]){n, splatf(c, KN_LN2_HI), xc}, 3);
  r = intrinsic(c, "llvm.fma", &t, 1, (LLVMValueRef[]){n, splatf(c, KN_LN2_LO), r}, 3);
  static const double P[] = KN_EXP_POLY;
  LLVMValueRef y = splatf(c, P[0]);
  for (int i = 1; i < 6; i++) y = intrinsic(c, "llvm.fma", &t, 1, (LLVMValueRef[]){y, r, splatf(c, P[i])}, 3);
  LLVMValueRef r2 = LLVMBuildFMul(B, r, r, "");
  y = intrinsic(c, "llvm.fma", &t, 1, (LLVMValueRef[]){y, r2, LLVMBuildFAdd(B, r, splatf(c, 1), "")}, 3);
  LLVMValueRef res = scale2n(c, y, n);
  if (c->NW == 16) return res; /* vscalefps: the IEEE ends already */
  res = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOGT, x, splatf(c, KN_EXP_OVER), ""), splatf(c, INFINITY), res, "");
  res = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOLT, x, splatf(c, KN_EXP_UNDER), ""), splatf(c, 0), res, "");
  return LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealUNO, x, x, ""), x, res, "");
}

/* x / y, y a vector; reciprocal forms stay exact divisions (as the reference). */
static LLVMValueRef vdiv(Cg *c, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildFDiv(c->B, x, y, ""); }

/* 2^t for t a float in [-150, 128] (or NaN): 2^(t - rne t) by KN_EXP2_POLY, exact
 * f = t - rne t in [-1/2, 1/2], scaled by 2^rne(t). */
static LLVMValueRef pow2(Cg *c, LLVMValueRef t) {
  LLVMTypeRef vt = c->vf;
  LLVMValueRef n = vcall1(c, "llvm.roundeven", t), f = LLVMBuildFSub(c->B, t, n, "");
  static const float P[6] = KN_EXP2_POLY;
  LLVMValueRef y = splatf(c, P[5]);
  for (int i = 4; i >= 0; i--) y = intrinsic(c, "llvm.fma", &vt, 1, (LLVMValueRef[]){y, f, splatf(c, P[i])}, 3);
  return scale2n(c, y, n);
}

/* gelu_tanh(x) = 0.5·x·(1 + tanh u) = x / (1 + 2^t), t = -2u·log2(e) = x·fma(x², c3, c1):
 * no tanh and no exp. t is clamped to [-150, 128] (2^t is 0 or inf past it), n = rne(t),
 * f = t - n exactly, 2^f a degree-5 polynomial on [-1/2, 1/2] (2.1e-7 relative, below
 * the ~6e-8·|t| that t itself carries from rounding), scaled by 2^n. 9 multiplies and fmas
 * against the 14 of the exp route; the bytecode tier's F_(gelu_tanh) is the same sequence. */
static LLVMValueRef gelu_tanh(Cg *c, LLVMValueRef x) {
  LLVMBuilderRef B = c->B;
  LLVMTypeRef t = c->vf;
  LLVMValueRef p = intrinsic(c, "llvm.fma", &t, 1, (LLVMValueRef[]){LLVMBuildFMul(B, x, x, ""),
                             splatf(c, KN_GELU_C3), splatf(c, KN_GELU_C1)}, 3);
  LLVMValueRef tt = LLVMBuildFMul(B, x, p, "");
  tt = vcall2(c, "llvm.minimum", vcall2(c, "llvm.maximum", tt, splatf(c, KN_POW2_LO)), splatf(c, KN_POW2_HI));
  return vdiv(c, x, LLVMBuildFAdd(B, splatf(c, 1), pow2(c, tt), ""));
}

/* exp(d) for d = x - max (softmax and log_softmax: d <= 0, or NaN): 2^t, t = d·log2 e
 * clamped below at -150 (the sum's terms past it are 0), NaN staying NaN. The rounding of
 * t costs ~6e-8·|t| relative, 1.7e-6 at d = -20, far inside what a probability needs;
 * 7 multiplies and fmas against vexp's 12 (W2 is bound by them up to N = 333). The
 * bytecode tier's F_(expm) is the same sequence. */
static LLVMValueRef exp_shifted(Cg *c, LLVMValueRef d) {
  LLVMValueRef t = LLVMBuildFMul(c->B, d, splatf(c, KN_LOG2E), "");
  return pow2(c, vcall2(c, "llvm.maximum", t, splatf(c, KN_POW2_LO)));
}

static LLVMValueRef sigmoid(Cg *c, LLVMValueRef x) {
  LLVMValueRef e = vexp(c, LLVMBuildFNeg(c->B, x, ""));
  return vdiv(c, splatf(c, 1), LLVMBuildFAdd(c->B, splatf(c, 1), e, ""));
}

/* Compares (NumPy: only != holds for NaN), bool logic, select and casts. */
static LLVMValueRef emit_bool(Cg *c, uint32_t v, LLVMValueRef x, LLVMValueRef y) {
  LLVMBuilderRef B = c->B;
  Op op = (Op)ir_node(c->g, v)->op;
  bool fx = LLVMGetTypeKind(LLVMGetElementType(LLVMTypeOf(x))) == LLVMFloatTypeKind;
  DType to = (DType)ir_node(c->g, v)->dtype, from = (DType)ir_node(c->g, ir_operand(c->g, v, 0))->dtype;
  switch (op) {
  case OP_EQ: return fx ? LLVMBuildFCmp(B, LLVMRealOEQ, x, y, "") : LLVMBuildICmp(B, LLVMIntEQ, x, y, "");
  case OP_NE: return fx ? LLVMBuildFCmp(B, LLVMRealUNE, x, y, "") : LLVMBuildICmp(B, LLVMIntNE, x, y, "");
  case OP_LT: return fx ? LLVMBuildFCmp(B, LLVMRealOLT, x, y, "") : LLVMBuildICmp(B, LLVMIntSLT, x, y, "");
  case OP_LE: return fx ? LLVMBuildFCmp(B, LLVMRealOLE, x, y, "") : LLVMBuildICmp(B, LLVMIntSLE, x, y, "");
  case OP_GT: return fx ? LLVMBuildFCmp(B, LLVMRealOGT, x, y, "") : LLVMBuildICmp(B, LLVMIntSGT, x, y, "");
  case OP_GE: return fx ? LLVMBuildFCmp(B, LLVMRealOGE, x, y, "") : LLVMBuildICmp(B, LLVMIntSGE, x, y, "");
  case OP_AND: return LLVMBuildAnd(B, x, y, "");
  case OP_OR: return LLVMBuildOr(B, x, y, "");
  case OP_NOT: return LLVMBuildNot(B, x, "");
  case OP_SELECT: return LLVMBuildSelect(B, x, y, operand(c, v, 2), "");
  case OP_CAST: /* as the reference: to bool x != 0 (NaN is true), float to integer
                    saturates (NaN is 0), integers wrap, bool is 0/1 */
    if (to == from) return x;
    if (to == DT_BOOL)
      return fx ? LLVMBuildFCmp(B, LLVMRealUNE, x, splatf(c, 0), "") : LLVMBuildICmp(B, LLVMIntNE, x, LLVMConstNull(LLVMTypeOf(x)), "");
    if (from == DT_BOOL) return kn_is_flt(to) ? LLVMBuildUIToFP(B, x, c->vf, "") : LLVMBuildZExt(B, x, reg_type(c, to), "");
    if (kn_is_flt(to)) return fx ? x : LLVMBuildSIToFP(B, x, c->vf, ""); /* f16: eval rounds */
    if (fx) {
      LLVMTypeRef tys[2] = {reg_type(c, to), c->vf};
      return intrinsic(c, "llvm.fptosi.sat", tys, 2, &x, 1);
    }
    return to == DT_I64 ? LLVMBuildSExt(B, x, reg_type(c, to), "") : LLVMBuildTrunc(B, x, reg_type(c, to), "");
  default: return x; /* unreachable: kn_supported */
  }
}

/* A clip bound of an integer clip as the reference takes it: an integer attribute, or a
 * float truncated (NaN is 0), saturated into the dtype's range either way. */
static LLVMValueRef clip_bound(Cg *c, const Attr *a, DType t) {
  int64_t b;
  if (a->isint) b = a->i;
  else if (isnan(a->f)) b = 0;
  else b = a->f >= 0x1p63 ? INT64_MAX : a->f < -0x1p63 ? INT64_MIN : (int64_t)a->f;
  if (t == DT_I32) b = b > INT32_MAX ? INT32_MAX : b < INT32_MIN ? INT32_MIN : b;
  return vsplat(c, LLVMConstInt(t == DT_I64 ? c->i64 : c->i32, (unsigned long long)b, 1), "");
}

/* Integer arithmetic wraps (two's complement), as the reference. */
static LLVMValueRef emit_int(Cg *c, uint32_t v, Op op, LLVMValueRef x, LLVMValueRef y) {
  LLVMBuilderRef B = c->B;
  LLVMTypeRef t = LLVMTypeOf(x);
  LLVMValueRef zero = LLVMConstNull(t), a[2] = {x, y ? y : zero};
  switch (op) {
  case OP_NEG: return LLVMBuildSub(B, zero, x, "");
  case OP_ABS: a[1] = LLVMConstInt(c->i1, 0, 0); return intrinsic(c, "llvm.abs", &t, 1, a, 2);
  case OP_RELU: return intrinsic(c, "llvm.smax", &t, 1, a, 2);
  case OP_SIGN: {
    LLVMValueRef one = vsplat(c, LLVMConstInt(LLVMGetElementType(t), 1, 0), "");
    LLVMValueRef neg = LLVMBuildSub(B, zero, one, "");
    return LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSGT, x, zero, ""), one,
                           LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, x, zero, ""), neg, zero, ""), "");
  }
  case OP_ADD: return LLVMBuildAdd(B, x, y, "");
  case OP_SUB: return LLVMBuildSub(B, x, y, "");
  case OP_MUL: return LLVMBuildMul(B, x, y, "");
  case OP_MAX: return intrinsic(c, "llvm.smax", &t, 1, a, 2);
  case OP_MIN: return intrinsic(c, "llvm.smin", &t, 1, a, 2);
  case OP_CLIP: {
    const Attr *lo = ir_attr(c->g, v, AK_LO), *hi = ir_attr(c->g, v, AK_HI);
    DType dt = (DType)ir_node(c->g, v)->dtype;
    if (lo) a[0] = x, a[1] = clip_bound(c, lo, dt), x = intrinsic(c, "llvm.smax", &t, 1, a, 2);
    if (hi) a[0] = x, a[1] = clip_bound(c, hi, dt), x = intrinsic(c, "llvm.smin", &t, 1, a, 2);
    return x;
  }
  default: return x; /* unreachable: kn_supported */
  }
}

static LLVMValueRef emit_elementwise(Cg *c, uint32_t v) {
  Op op = (Op)ir_node(c->g, v)->op;
  LLVMValueRef x = operand(c, v, 0), y = ir_ops[op].arity >= 2 ? operand(c, v, 1) : NULL;
  LLVMBuilderRef B = c->B;
  if (kn_elementwise_bool(op)) return emit_bool(c, v, x, y);
  if (kn_is_int((DType)ir_node(c->g, v)->dtype)) return emit_int(c, v, op, x, y);
  switch (op) {
  case OP_NEG: return LLVMBuildFNeg(B, x, "");
  case OP_ABS: return vcall1(c, "llvm.fabs", x);
  case OP_EXP: return vexp(c, x);
  case OP_LOG: return mvec(c, "logf", x, NULL);
  case OP_SQRT: return vcall1(c, "llvm.sqrt", x);
  case OP_RSQRT: return vdiv(c, splatf(c, 1), vcall1(c, "llvm.sqrt", x));
  case OP_RECIPROCAL: return vdiv(c, splatf(c, 1), x);
  case OP_TANH: return mvec(c, "tanhf", x, NULL);
  case OP_SIGMOID: return sigmoid(c, x);
  case OP_RELU: return vcall2(c, "llvm.maximum", x, splatf(c, 0));
  case OP_GELU: {
    LLVMValueRef e = mvec(c, "erff", LLVMBuildFMul(B, x, splatf(c, M_SQRT1_2), ""), NULL);
    return LLVMBuildFMul(B, LLVMBuildFMul(B, splatf(c, 0.5), x, ""), LLVMBuildFAdd(B, splatf(c, 1), e, ""), "");
  }
  case OP_GELU_TANH: return gelu_tanh(c, x);
  case OP_SILU: return LLVMBuildFMul(B, x, sigmoid(c, x), "");
  case OP_ERF: return mvec(c, "erff", x, NULL);
  case OP_SIN: return mvec(c, "sinf", x, NULL);
  case OP_COS: return mvec(c, "cosf", x, NULL);
  case OP_FLOOR: return vcall1(c, "llvm.floor", x);
  case OP_CEIL: return vcall1(c, "llvm.ceil", x);
  case OP_ROUND: return vcall1(c, "llvm.roundeven", x);
  case OP_SIGN: {
    LLVMValueRef pos = LLVMBuildFCmp(B, LLVMRealOGT, x, splatf(c, 0), "");
    LLVMValueRef neg = LLVMBuildFCmp(B, LLVMRealOLT, x, splatf(c, 0), "");
    LLVMValueRef s = LLVMBuildSelect(B, pos, splatf(c, 1), LLVMBuildSelect(B, neg, splatf(c, -1), splatf(c, 0), ""), "");
    LLVMValueRef nan = LLVMBuildFCmp(B, LLVMRealUNO, x, x, "");
    return LLVMBuildSelect(B, nan, x, s, "");
  }
  case OP_ADD: return LLVMBuildFAdd(B, x, y, "");
  case OP_SUB: return LLVMBuildFSub(B, x, y, "");
  case OP_MUL: return LLVMBuildFMul(B, x, y, "");
  case OP_DIV: return vdiv(c, x, y);
  case OP_POW: return mvec(c, "powf", x, y);
  case OP_MAX: return vcall2(c, "llvm.maximum", x, y);
  case OP_MIN: return vcall2(c, "llvm.minimum", x, y);
  case OP_CLIP: {
    const Attr *lo = ir_attr(c->g, v, AK_LO), *hi = ir_attr(c->g, v, AK_HI);
    if (lo) x = vcall2(c, "llvm.maximum", x, splatf(c, (float)ir_attr_float(c->g, v, AK_LO, 0)));
    if (hi) x = vcall2(c, "llvm.minimum", x, splatf(c, (float)ir_attr_float(c->g, v, AK_HI, 0)));
    return x;
  }
  default: return splatf(c, NAN); /* unreachable: kn_supported */
  }
}

/* ---- views: index maps -------------------------------------------------------------------
 *
 * A view member is read at a position in its own index space, mapped through the chain of
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

enum { AL_MAX = 1 << 20 };

static Ix ix_scalar(LLVMValueRef s) { return (Ix){s, 0, NULL, 0}; }

/* The power of two known to divide x: a constant's own, else 1. */
static int64_t pow2_of(LLVMValueRef x) {
  if (!LLVMIsConstant(x)) return 1;
  int64_t v = LLVMConstIntGetSExtValue(x);
  return v == 0 ? AL_MAX : (v & -v) > AL_MAX ? AL_MAX : (v & -v);
}

static int64_t ix_al(Ix a) {
  int64_t p = pow2_of(a.s);
  return a.al > p ? a.al : p;
}

static LLVMValueRef ix_vec(Cg *c, Ix a) {
  if (a.v) return a.v;
  LLVMValueRef v = vsplat(c, a.s, "");
  if (!a.k) return v;
  LLVMValueRef lanes[64];
  for (int i = 0; i < c->W; i++) lanes[i] = ci64(c, i);
  LLVMValueRef col = LLVMBuildAdd(c->B, vsplat(c, c->j, ""), LLVMConstVector(lanes, (unsigned)c->W), "");
  return LLVMBuildAdd(c->B, v, LLVMBuildMul(c->B, col, vsplat(c, ci64(c, a.k), ""), ""), "");
}

static Ix ix_add(Cg *c, Ix a, Ix b) {
  if (!a.v && !b.v) {
    int64_t x = ix_al(a), y = ix_al(b);
    return (Ix){LLVMBuildAdd(c->B, a.s, b.s, ""), a.k + b.k, NULL, x < y ? x : y};
  }
  return (Ix){ci64(c, 0), 0, LLVMBuildAdd(c->B, ix_vec(c, a), ix_vec(c, b), ""), 0};
}

/* a · m, m_al a power of two known to divide m. */
static Ix ix_mul(Cg *c, Ix a, LLVMValueRef m, int64_t m_al) {
  if (!a.v && (!a.k || LLVMIsConstant(m))) {
    int64_t al = ix_al(a) * (m_al > pow2_of(m) ? m_al : pow2_of(m));
    return (Ix){LLVMBuildMul(c->B, a.s, m, ""), a.k ? a.k * LLVMConstIntGetSExtValue(m) : 0, NULL,
                al > AL_MAX ? AL_MAX : al};
  }
  return (Ix){ci64(c, 0), 0, LLVMBuildMul(c->B, ix_vec(c, a), vsplat(c, m, ""), ""), 0};
}

/* a / m and a % m (non-negative indices). Lanes along a (k = 1) whose block of W starts at
 * a multiple of W never cross a multiple of m when W divides m: then the quotient is a
 * scalar and the remainder keeps the lanes (the column j is always a multiple of W). */
static void ix_divmod(Cg *c, Ix a, LLVMValueRef m, Ix *q, Ix *r) {
  if (!a.v && !a.k) {
    *q = ix_scalar(LLVMBuildUDiv(c->B, a.s, m, ""));
    *r = ix_scalar(LLVMBuildURem(c->B, a.s, m, ""));
    return;
  }
  int64_t mc = LLVMIsConstant(m) ? LLVMConstIntGetSExtValue(m) : 0;
  if (!a.v && mc == 1) {
    *q = a, *r = ix_scalar(ci64(c, 0));
    return;
  }
  if (!a.v && a.k == 1 && mc > 0 && mc % c->W == 0 && ix_al(a) % c->W == 0) {
    LLVMValueRef base = LLVMBuildAdd(c->B, a.s, c->j, "");
    *q = ix_scalar(LLVMBuildUDiv(c->B, base, m, ""));
    *r = (Ix){LLVMBuildSub(c->B, LLVMBuildURem(c->B, base, m, ""), c->j, ""), 1, NULL, c->W};
    return;
  }
  LLVMValueRef v = ix_vec(c, a), mv = vsplat(c, m, "");
  *q = (Ix){ci64(c, 0), 0, LLVMBuildUDiv(c->B, v, mv, ""), 0};
  *r = (Ix){ci64(c, 0), 0, LLVMBuildURem(c->B, v, mv, ""), 0};
}

/* Row-major linear index of position P in value u's shape. */
static Ix linearize(Cg *c, uint32_t u, const Ix *P) {
  const Node *n = ir_node(c->g, u);
  const Dim *sh = ir_shape(c->g, u);
  Ix l = ix_scalar(ci64(c, 0));
  LLVMValueRef stride = ci64(c, 1);
  int64_t stride_al = 1; /* the constant dims' powers of two divide every later stride */
  for (int t = n->rank - 1; t >= 0; t--) {
    l = ix_add(c, l, ix_mul(c, P[t], stride, stride_al));
    LLVMValueRef d = dimval(c, sh[t]);
    stride = LLVMBuildMul(c->B, stride, d, "");
    stride_al = stride_al * pow2_of(d) > AL_MAX ? AL_MAX : stride_al * pow2_of(d);
  }
  return l;
}

/* Input i's W elements at element offset off. */
static LLVMValueRef load_at(Cg *c, int i, Ix off) {
  LLVMValueRef p = buf(c, (uint32_t)i), x;
  DType dt = (DType)ir_node(c->g, fu_inputs(c->p, c->k)[i])->dtype;
  bool mask = dt == DT_BOOL;
  LLVMTypeRef et = mem_type(c, dt);
  if (!off.v && off.k == 0 && !c->guarded) {
    x = vsplat(c, LLVMBuildLoad2(c->B, et, LLVMBuildGEP2(c->B, et, p, &off.s, 1, ""), ""), "");
  } else if (!off.v && off.k == 1) {
    x = load_elems(c, et, p, LLVMBuildAdd(c->B, off.s, c->j, ""));
  } else { /* a gather */
    c->gathers++;
    LLVMValueRef vo = ix_vec(c, off);
    LLVMValueRef ptrs = LLVMBuildGEP2(c->B, et, p, &vo, 1, "");
    LLVMTypeRef vt = LLVMVectorType(et, (unsigned)c->W);
    LLVMValueRef all = c->mask ? c->mask : vsplat(c, LLVMConstInt(c->i1, 1, 0), "");
    LLVMTypeRef tys[2] = {vt, LLVMTypeOf(ptrs)};
    LLVMValueRef args[4] = {ptrs, LLVMConstInt(c->i32, ir_dtype_size(dt), 0), all, LLVMConstNull(vt)};
    x = intrinsic(c, "llvm.masked.gather", tys, 2, args, 4);
  }
  if (kn_is_low(dt)) return from_mem(c, x, dt);
  return mask ? LLVMBuildICmp(c->B, LLVMIntNE, x, LLVMConstNull(LLVMTypeOf(x)), "") : x;
}

/* Value u (a view, or a kernel input at the end of a chain of views) at position P. */
static LLVMValueRef view_at(Cg *c, uint32_t u, const Ix *P) {
  const Graph *g = c->g;
  const Node *n = ir_node(g, u);
  Ix Q[DVM_MAX_RANK];
  switch ((Op)n->op) {
  case OP_LITERAL: return lit(c, u);
  case OP_FULL: return lit(c, u);
  case OP_ARANGE:
    if (n->dtype == DT_I64) return ix_vec(c, P[0]);
    if (n->dtype == DT_I32) return LLVMBuildTrunc(c->B, ix_vec(c, P[0]), reg_type(c, DT_I32), "");
    return LLVMBuildSIToFP(c->B, ix_vec(c, P[0]), c->vf, "");
  case OP_TRANSPOSE: { /* out axis k is in axis perm[k] */
    uint32_t x = ir_operand(g, u, 0);
    const Attr *a = ir_attr(g, u, AK_PERM);
    for (int k = 0; k < n->rank; k++) {
      int pk = a && a->n ? ir_axis(g->lists.v[a->off + k], n->rank) : n->rank - 1 - k;
      Q[pk] = P[k];
    }
    return view_at(c, x, Q);
  }
  case OP_BROADCAST_TO: { /* right-aligned; the operand's broadcast dims read index 0 */
    uint32_t x = ir_operand(g, u, 0);
    const Node *xn = ir_node(g, x);
    for (int t = 0; t < xn->rank; t++) {
      int d = t + n->rank - xn->rank;
      int64_t one;
      bool b = ir_dim_is_const(g, ir_shape(g, x)[t], &one) && one == 1 && ir_shape(g, x)[t] != ir_shape(g, u)[d];
      Q[t] = b ? ix_scalar(ci64(c, 0)) : P[d];
    }
    return view_at(c, x, Q);
  }
  case OP_SLICE: { /* listed axes: start (clamped as Python's slice.indices) + i * step */
    uint32_t x = ir_operand(g, u, 0);
    const Attr *ax = ir_attr(g, u, AK_AXES), *st = ir_attr(g, u, AK_STARTS), *sp = ir_attr(g, u, AK_STEPS);
    for (int d = 0; d < n->rank; d++) Q[d] = P[d];
    for (uint32_t i = 0; i < st->n; i++) {
      int a = ax ? ir_axis(g->lists.v[ax->off + i], n->rank) : (int)i;
      int64_t step = sp ? g->lists.v[sp->off + i] : 1;
      LLVMBuilderRef B = c->B;
      LLVMValueRef d = dimval(c, ir_shape(g, x)[a]), v = dimval(c, (Dim)g->clists.v[st->off + i]);
      v = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, v, ci64(c, 0), ""), LLVMBuildAdd(B, v, d, ""), v, "");
      LLVMValueRef lo = ci64(c, step > 0 ? 0 : -1), hi = step > 0 ? d : LLVMBuildSub(B, d, ci64(c, 1), "");
      v = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, v, lo, ""), lo, v, "");
      v = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSGT, v, hi, ""), hi, v, "");
      Q[a] = ix_add(c, ix_scalar(v), ix_mul(c, P[a], ci64(c, step), 1));
    }
    return view_at(c, x, Q);
  }
  case OP_CONCAT: { /* each operand where the index falls in its block, its lanes guarded */
    int a = ir_axis(ir_attr_int(g, u, AK_AXIS, 0), n->rank);
    LLVMValueRef off = ci64(c, 0), res = NULL, mask0 = c->mask;
    bool guarded0 = c->guarded;
    LLVMValueRef at = ix_vec(c, P[a]);
    for (uint32_t q = 0; q < n->nin; q++) {
      uint32_t x = ir_operand(g, u, q);
      LLVMValueRef size = dimval(c, ir_shape(g, x)[a]), end = LLVMBuildAdd(c->B, off, size, "");
      LLVMValueRef in = LLVMBuildAnd(c->B, LLVMBuildICmp(c->B, LLVMIntSGE, at, vsplat(c, off, ""), ""),
                                     LLVMBuildICmp(c->B, LLVMIntSLT, at, vsplat(c, end, ""), ""), "");
      for (int d = 0; d < n->rank; d++) Q[d] = P[d];
      Q[a] = ix_add(c, P[a], ix_scalar(LLVMBuildNeg(c->B, off, "")));
      c->mask = mask0 ? LLVMBuildAnd(c->B, mask0, in, "") : in, c->guarded = true;
      LLVMValueRef val = view_at(c, x, Q);
      res = res ? LLVMBuildSelect(c->B, in, val, res, "") : val;
      off = end;
    }
    c->mask = mask0, c->guarded = guarded0;
    return res;
  }
  case OP_GATHER: { /* x's axis a reads idx at the positions idx's dims take in the result */
    uint32_t x = ir_operand(g, u, 0), iv = ir_operand(g, u, 1);
    int xr = ir_node(g, x)->rank, ir = ir_node(g, iv)->rank;
    int a = ir_axis(ir_attr_int(g, u, AK_AXIS, 0), xr);
    Ix Pi[DVM_MAX_RANK];
    bool lanes = c->guarded;
    for (int t = 0; t < ir; t++) Pi[t] = P[a + t], lanes |= P[a + t].v || P[a + t].k;
    LLVMValueRef at = view_at(c, iv, Pi), d = dimval(c, ir_shape(g, x)[a]);
    if (!lanes) at = LLVMBuildExtractElement(c->B, at, ci64(c, 0), ""); /* one index for the lanes */
    LLVMTypeRef t64 = lanes ? LLVMVectorType(c->i64, (unsigned)c->W) : c->i64;
    if (ir_node(g, iv)->dtype == DT_I32) at = LLVMBuildSExt(c->B, at, t64, "");
    LLVMValueRef dd = lanes ? vsplat(c, d, "") : d, zero = LLVMConstNull(t64);
    at = LLVMBuildSelect(c->B, LLVMBuildICmp(c->B, LLVMIntSLT, at, zero, ""), LLVMBuildAdd(c->B, at, dd, ""), at, "");
    /* in range after the runtime's check; clamped anyway, so no index can read outside x */
    LLVMValueRef hi = LLVMBuildSub(c->B, dd, lanes ? vsplat(c, ci64(c, 1), "") : ci64(c, 1), "");
    LLVMValueRef mm[2] = {at, zero};
    at = intrinsic(c, "llvm.smax", &t64, 1, mm, 2);
    mm[0] = at, mm[1] = hi;
    at = intrinsic(c, "llvm.smin", &t64, 1, mm, 2);
    for (int t = 0; t < a; t++) Q[t] = P[t];
    Q[a] = lanes ? (Ix){ci64(c, 0), 0, at, 0} : ix_scalar(at);
    for (int t = a + 1; t < xr; t++) Q[t] = P[t + ir - 1];
    return view_at(c, x, Q);
  }
  case OP_RESHAPE: case OP_SQUEEZE: case OP_UNSQUEEZE: { /* the same row-major order */
    uint32_t x = ir_operand(g, u, 0);
    Ix l = linearize(c, u, P);
    if (input_index(c, x) >= 0) return load_at(c, input_index(c, x), l);
    const Node *xn = ir_node(g, x);
    for (int t = xn->rank - 1; t >= 0; t--) {
      if (t == 0) {
        Q[0] = l;
        break;
      }
      ix_divmod(c, l, dimval(c, ir_shape(g, x)[t]), &l, &Q[t]);
    }
    return view_at(c, x, Q);
  }
  default: /* a kernel input */
    return load_at(c, input_index(c, u), linearize(c, u, P));
  }
}

/* A view member at the current position: its dims line up with the domain like any
 * operand's (broadcast dims at index 0, the last axis along the lanes). */
static LLVMValueRef view_here(Cg *c, uint32_t u) {
  const Node *n = ir_node(c->g, u);
  Ix P[DVM_MAX_RANK];
  for (int t = 0; t < n->rank; t++) {
    int dk = domain_axis(c, n->rank, t, c->ctx);
    int64_t one;
    bool b = dk < 0 || (ir_dim_is_const(c->g, ir_shape(c->g, u)[t], &one) && one == 1 &&
                        ir_shape(c->g, u)[t] != c->dom[dk]);
    P[t] = b ? ix_scalar(ci64(c, 0)) : dk == c->r - 1 ? (Ix){ci64(c, 0), 1, NULL, 0} : ix_scalar(c->idx[dk]);
  }
  return view_at(c, u, P);
}

/* The value of u at the current column: a vector, or a splat for per-row scalars. */
static LLVMValueRef eval(Cg *c, uint32_t u) {
  if (ir_node(c->g, u)->op == OP_LITERAL) return lit(c, u);
  int m = member_index(c, u);
  if (m < 0) return load_input(c, input_index(c, u));
  DType ut = (DType)ir_node(c->g, u)->dtype;
  if (c->red[m]) return kn_is_low(ut) ? round_to(c, c->red[m], ut) : c->red[m];
  if (c->memo[m]) return c->memo[m];
  Op op = (Op)ir_node(c->g, u)->op;
  LLVMBuilderRef B = c->B;
  LLVMValueRef r, x;
  int saved = c->ctx;
  c->ctx = c->axes && ir_node(c->g, u)->rank == c->rr && c->rr < c->r;
  switch (op) {
  case OP_MATMUL: r = c->mm; break;
  case OP_TRANSPOSE: case OP_RESHAPE: case OP_SQUEEZE: case OP_UNSQUEEZE: case OP_BROADCAST_TO:
  case OP_SLICE: case OP_CONCAT: case OP_FULL: case OP_ARANGE: case OP_GATHER: r = view_here(c, u); break;
  case OP_SOFTMAX: /* exp(x - max) · (1 / sum), exp(x - max) kept by the sum pass if stashed */
    x = c->stash_member == m ? load_vec(c, c->stash, c->j)
                             : exp_shifted(c, LLVMBuildFSub(B, operand(c, u, 0), c->n1[m], ""));
    r = LLVMBuildFMul(B, x, c->n2[m], "");
    break;
  case OP_LOG_SOFTMAX: r = LLVMBuildFSub(B, operand(c, u, 0), c->n2[m], ""); break; /* x - (max + log sum) */
  case OP_LAYERNORM:
    x = LLVMBuildFMul(B, LLVMBuildFSub(B, operand(c, u, 0), c->n1[m], ""), c->n2[m], "");
    r = LLVMBuildFAdd(B, LLVMBuildFMul(B, x, operand(c, u, 1), ""), operand(c, u, 2), "");
    break;
  case OP_RMSNORM: r = LLVMBuildFMul(B, LLVMBuildFMul(B, operand(c, u, 0), c->n2[m], ""), operand(c, u, 1), ""); break;
  default: r = emit_elementwise(c, u);
  }
  if (kn_is_low(ut) && !kn_is_view(op)) r = round_to(c, r, ut); /* the reference rounds every op's result */
  c->ctx = saved;
  c->memo[m] = r;
  return r;
}

static void forget(Cg *c) { memset(c->memo, 0, c->k->nmembers * sizeof *c->memo); }

/* Element offsets of every input for row `row` (outer index decomposed by the domain). */
static void row_bases(Cg *c, LLVMValueRef row, const Dim *dom, int r) {
  LLVMValueRef *idx = c->idx, rem = row;
  if (c->multi) { /* the row enumerates the kept outer axes; the reduced ones start at 0 */
    for (int d = r - 2; d >= 0; d--) {
      if (c->axes >> d & 1) {
        idx[d] = ci64(c, 0);
        continue;
      }
      LLVMValueRef n = dimval(c, dom[d]);
      idx[d] = LLVMBuildURem(c->B, rem, n, "");
      rem = LLVMBuildUDiv(c->B, rem, n, "");
    }
    input_bases(c, idx);
    return;
  }
  for (int d = r - 2; d >= 1; d--) {
    LLVMValueRef n = dimval(c, dom[d]);
    idx[d] = LLVMBuildSRem(c->B, rem, n, "");
    rem = LLVMBuildSDiv(c->B, rem, n, "");
  }
  if (r >= 2) idx[0] = rem; /* the row is below the extent: the outermost index needs no remainder */
  input_bases(c, idx);
}

/* Row kernels (not multi mode): each f32 input read along the row gets the offset of the
 * same column one row on (the innermost outer index + 1; past the last row it points
 * beyond the data, which a prefetch may). The first pass prefetches it, one line per
 * vector: a row of 1024 f32 is one 4 KB page, where the hardware's stream prefetch
 * stops, and the row's own passes and stores hold the reorder window while the next
 * row's first loads wait (W3 at N = 4096 ran at ~28 GB/s where W1 streams at ~40). */
static void next_row_bases(Cg *c) {
  c->prefetching = false;
  if (c->multi || c->r < 2) return;
  LLVMValueRef idx[DVM_MAX_RANK];
  memcpy(idx, c->idx, sizeof idx);
  idx[c->r - 2] = LLVMBuildAdd(c->B, idx[c->r - 2], ci64(c, 1), "");
  for (uint32_t i = 0; i < c->k->ninputs; i++) {
    uint32_t u = fu_inputs(c->p, c->k)[i];
    LLVMValueRef nb, inner;
    c->next[i] = NULL;
    if (ir_node(c->g, u)->dtype != DT_F32 || LLVMConstIntGetSExtValue(c->inner[2 * i]) != 1) continue;
    value_base(c, u, idx, 0, &nb, &inner);
    if (LLVMIsConstant(nb) && LLVMIsConstant(c->base[2 * i]) &&
        LLVMConstIntGetSExtValue(nb) == LLVMConstIntGetSExtValue(c->base[2 * i]))
      continue; /* the same row for every row (broadcast over the outer axes) */
    c->next[i] = nb, c->prefetching = true;
  }
}

/* ---- loops ------------------------------------------------------------------------------- */

typedef LLVMValueRef (*Body)(Cg *c, void *arg, LLVMValueRef acc);

enum { MAXU = 4 }; /* most independent accumulators of an unrolled fold */

/* Where a loop's body runs: at column j of the row, or (column mode) at row q of the
 * reduced axes. */
typedef void (*Place)(Cg *c, LLVMValueRef pos);

static void place_col(Cg *c, LLVMValueRef j) { c->j = j, c->mask = NULL; }

/* Column mode: the reduced axes' multi-index from q, and the inputs' offsets there. */
static void place_row(Cg *c, LLVMValueRef q) {
  for (int d = c->r - 2; d >= 0; d--) {
    if (!(c->axes >> d & 1)) continue;
    bool outermost = true;
    for (int e = 0; e < d; e++) outermost &= !(c->axes >> e & 1);
    if (outermost) {
      c->idx[d] = q;
      break;
    }
    LLVMValueRef n = dimval(c, c->dom[d]);
    c->idx[d] = LLVMBuildURem(c->B, q, n, "");
    q = LLVMBuildUDiv(c->B, q, n, "");
  }
  input_bases(c, c->idx);
}

/* while (i + U·unit <= end) { acc[u] = body(acc[u]) placed at i + u·unit, u < U; i += U·unit }:
 * one loop from `from` carrying U accumulators (acc[u] may be NULL: no accumulator);
 * updates acc and returns the exit position. */
static LLVMValueRef pos_loop(Cg *c, LLVMValueRef from, LLVMValueRef L, int U, int unit, Place place,
                             LLVMValueRef *acc, Body body, void *arg) {
  LLVMBuilderRef B = c->B;
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(B), head = LLVMAppendBasicBlockInContext(c->C, c->fn, "col"),
                    body_bb = LLVMAppendBasicBlockInContext(c->C, c->fn, "col.body"),
                    done = LLVMAppendBasicBlockInContext(c->C, c->fn, "col.done");
  LLVMBuildBr(B, head);
  LLVMPositionBuilderAtEnd(B, head);
  LLVMValueRef j = LLVMBuildPhi(B, c->i64, "j"), phi[MAXU], next[MAXU];
  for (int u = 0; u < U; u++) phi[u] = acc[u] ? LLVMBuildPhi(B, LLVMTypeOf(acc[u]), "acc") : NULL;
  LLVMValueRef j1 = LLVMBuildAdd(B, j, ci64(c, (int64_t)U * unit), "");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLE, j1, L, ""), body_bb, done);
  LLVMPositionBuilderAtEnd(B, body_bb);
  for (int u = 0; u < U; u++) {
    forget(c);
    place(c, u ? LLVMBuildAdd(B, j, ci64(c, (int64_t)u * unit), "") : j);
    next[u] = body(c, arg, phi[u]);
  }
  LLVMBasicBlockRef body_end = LLVMGetInsertBlock(B);
  LLVMBuildBr(B, head);
  LLVMAddIncoming(j, (LLVMValueRef[]){from, j1}, (LLVMBasicBlockRef[]){pre, body_end}, 2);
  for (int u = 0; u < U; u++) {
    if (!phi[u]) continue;
    LLVMAddIncoming(phi[u], (LLVMValueRef[]){acc[u], next[u]}, (LLVMBasicBlockRef[]){pre, body_end}, 2);
    acc[u] = phi[u];
  }
  LLVMPositionBuilderAtEnd(B, done);
  forget(c);
  return j;
}

typedef LLVMValueRef (*Combine)(Cg *c, void *arg, LLVMValueRef a, LLVMValueRef b);

/* The columns of a row: with an accumulator and a combine, U independent accumulators
 * over blocks of U·W columns (a fold is one long dependency chain otherwise), combined,
 * then single vectors; without, single vectors (LLVM unrolls). Then one masked tail if
 * (L - from) % W. Columns [from, L) (columns_u and columns: from 0). Returns the
 * accumulator's final value (NULL without). */
static LLVMValueRef columns_from(Cg *c, LLVMValueRef from, LLVMValueRef L, LLVMValueRef acc0, Body body,
                                 Combine comb, void *arg, int U) {
  LLVMBuilderRef B = c->B;
  LLVMValueRef j = from, acc[MAXU];
  if (acc0 && comb && U > 1) {
    for (int u = 0; u < U; u++) acc[u] = acc0;
    j = pos_loop(c, j, L, U, c->W, place_col, acc, body, arg);
    for (int w = 1; w < U; w *= 2) /* a tree: (0+1)+(2+3) */
      for (int u = 0; u + w < U; u += 2 * w) acc[u] = comb(c, arg, acc[u], acc[u + w]);
  } else {
    acc[0] = acc0;
  }
  j = pos_loop(c, j, L, 1, c->W, place_col, acc, body, arg);
  LLVMBasicBlockRef check = LLVMGetInsertBlock(B), tail = LLVMAppendBasicBlockInContext(c->C, c->fn, "col.tail"),
                    done = LLVMAppendBasicBlockInContext(c->C, c->fn, "col.end");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, j, L, ""), tail, done);
  LLVMPositionBuilderAtEnd(B, tail);
  forget(c);
  c->j = j, c->mask = tail_mask(c, LLVMBuildSub(B, L, j, ""));
  LLVMValueRef acc2 = body(c, arg, acc[0]);
  LLVMBasicBlockRef tail_end = LLVMGetInsertBlock(B);
  LLVMBuildBr(B, done);
  LLVMPositionBuilderAtEnd(B, done);
  forget(c);
  c->mask = NULL;
  if (!acc0) return NULL;
  LLVMValueRef out = LLVMBuildPhi(B, LLVMTypeOf(acc0), "acc.out");
  LLVMAddIncoming(out, (LLVMValueRef[]){acc[0], acc2}, (LLVMBasicBlockRef[]){check, tail_end}, 2);
  return out;
}

static LLVMValueRef columns_u(Cg *c, LLVMValueRef L, LLVMValueRef acc0, Body body, Combine comb,
                              void *arg, int U) {
  return columns_from(c, ci64(c, 0), L, acc0, body, comb, arg, U);
}

static LLVMValueRef columns(Cg *c, LLVMValueRef L, LLVMValueRef acc0, Body body, void *arg) {
  return columns_u(c, L, acc0, body, NULL, arg, 1);
}

/* ---- passes of row kernels ----------------------------------------------------------------- */


typedef struct Pass {
  Fold fold;
  DType t;           /* the folded values' dtype: f32, or i32/i64 (wrapping, as the reference) */
  uint32_t value;    /* what is folded: a value id ... */
  int what;          /* ... or, for normalizations, which derived quantity */
  int member;
} Pass;


static LLVMValueRef identity(Cg *c, Fold f, DType t) {
  if (kn_is_int(t)) {
    bool w = t == DT_I64;
    int64_t v = f == FOLD_SUM ? 0 : f == FOLD_PROD ? 1 : f == FOLD_MAX ? (w ? INT64_MIN : INT32_MIN) : (w ? INT64_MAX : INT32_MAX);
    LLVMTypeRef et = w ? c->i64 : c->i32;
    return vsplat(c, LLVMConstInt(et, (unsigned long long)v, 1), "");
  }
  return splatf(c, f == FOLD_SUM ? 0.0 : f == FOLD_PROD ? 1.0 : f == FOLD_MAX || f == FOLD_MAX_ORD ? -INFINITY : INFINITY);
}

/* acc ⊕ v for a fold of values of dtype t. */
static LLVMValueRef fold_op(Cg *c, Fold f, DType t, LLVMValueRef acc, LLVMValueRef v) {
  LLVMBuilderRef B = c->B;
  if (kn_is_int(t)) {
    LLVMTypeRef ty = LLVMTypeOf(acc);
    LLVMValueRef a[2] = {acc, v};
    switch (f) {
    case FOLD_SUM: return LLVMBuildAdd(B, acc, v, "");
    case FOLD_PROD: return LLVMBuildMul(B, acc, v, "");
    case FOLD_MAX: return intrinsic(c, "llvm.smax", &ty, 1, a, 2);
    default: return intrinsic(c, "llvm.smin", &ty, 1, a, 2);
    }
  }
  switch (f) {
  case FOLD_SUM: return LLVMBuildFAdd(B, acc, v, "");
  case FOLD_PROD: return LLVMBuildFMul(B, acc, v, "");
  case FOLD_MAX: return vcall2(c, "llvm.maximum", acc, v);
  case FOLD_MAX_ORD: return LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOGT, v, acc, ""), v, acc, "");
  default: return vcall2(c, "llvm.minimum", acc, v);
  }
}

static LLVMValueRef pass_body(Cg *c, void *arg, LLVMValueRef acc) {
  Pass *ps = arg;
  LLVMBuilderRef B = c->B;
  LLVMValueRef x = eval(c, ps->value), v;
  switch (ps->what) {
  case W_EXP_SHIFTED:
    v = exp_shifted(c, LLVMBuildFSub(B, x, c->n1[ps->member], ""));
    if (c->stash_member == ps->member) store_vec(c, c->stash, c->j, v);
    break;
  case W_SQ_CENTERED: v = LLVMBuildFSub(B, x, c->n1[ps->member], ""), v = LLVMBuildFMul(B, v, v, ""); break;
  case W_SQ: v = LLVMBuildFMul(B, x, x, ""); break;
  default: v = x;
  }
  if (c->mask) v = LLVMBuildSelect(B, c->mask, v, identity(c, ps->fold, ps->t), "");
  return fold_op(c, ps->fold, ps->t, acc, v);
}

static LLVMValueRef fold2(Cg *c, void *arg, LLVMValueRef a, LLVMValueRef b) {
  const Pass *ps = arg;
  return fold_op(c, ps->fold, ps->t, a, b);
}

/* Multi mode: the reduced outer indices from q (the innermost fastest), and the inputs'
 * offsets there. */
static void place_q(Cg *c, LLVMValueRef q) {
  for (int d = c->r - 2; d >= 0; d--) {
    if (!(c->axes >> d & 1)) continue;
    LLVMValueRef nd = dimval(c, c->dom[d]);
    c->idx[d] = LLVMBuildURem(c->B, q, nd, "");
    q = LLVMBuildUDiv(c->B, q, nd, "");
  }
  input_bases(c, c->idx);
}

/* body once per combination of the reduced outer indices, carrying acc (may be NULL). */
static LLVMValueRef over_reduced(Cg *c, Body body, void *arg, LLVMValueRef acc) {
  LLVMValueRef R = ci64(c, 1);
  for (int d = 0; d < c->r - 1; d++)
    if (c->axes >> d & 1) R = LLVMBuildMul(c->B, R, dimval(c, c->dom[d]), "");
  pos_loop(c, ci64(c, 0), R, 1, 1, place_q, &acc, body, arg);
  return acc;
}

/* Multi mode: one row of the last axis folded into acc (its own four accumulators). */
static LLVMValueRef fold_q(Cg *c, void *arg, LLVMValueRef acc) {
  Pass *ps = arg;
  LLVMValueRef part = columns_u(c, c->L, identity(c, ps->fold, ps->t), pass_body, fold2, ps, MAXU);
  return fold2(c, ps, acc, part);
}

/* The sum of v's lanes (llvm.vector.reduce.fadd, reassociated: halves onto halves). */
static LLVMValueRef lanes_sum(Cg *c, LLVMValueRef v) {
  LLVMTypeRef t = LLVMTypeOf(v);
  LLVMValueRef args[2] = {LLVMConstReal(c->f32, -0.0), v};
  LLVMValueRef s = intrinsic(c, "llvm.vector.reduce.fadd", &t, 1, args, 2);
  LLVMSetFastMathFlags(s, LLVMFastMathAllowReassoc);
  return s;
}

/* One pass over the row folding a quantity (four accumulators); the result is a splat. */
static LLVMValueRef fold_row(Cg *c, LLVMValueRef L, Fold f, uint32_t value, int what, int member) {
  Pass ps = {f, (DType)ir_node(c->g, value)->dtype, value, what, member};
  LLVMValueRef acc = identity(c, f, ps.t);
  if (c->multi) acc = over_reduced(c, fold_q, &ps, acc);
  else acc = columns_u(c, L, acc, pass_body, fold2, &ps, MAXU);
  c->prefetching = false; /* the row is in cache for the later passes */
  LLVMTypeRef t = LLVMTypeOf(acc);
  LLVMValueRef s;
  if (kn_is_int(ps.t)) {
    static const char *const name[] = {"llvm.vector.reduce.add", "llvm.vector.reduce.smax",
                                       "llvm.vector.reduce.smin", "llvm.vector.reduce.mul"};
    s = intrinsic(c, name[f], &t, 1, &acc, 1);
  } else if (f == FOLD_SUM) {
    s = lanes_sum(c, acc);
  } else if (f == FOLD_PROD) {
    LLVMValueRef args[2] = {LLVMConstReal(c->f32, 1.0), acc};
    s = intrinsic(c, "llvm.vector.reduce.fmul", &t, 1, args, 2);
    LLVMSetFastMathFlags(s, LLVMFastMathAllowReassoc);
  } else if (f == FOLD_MAX_ORD) { /* no NaN in acc: maxps lanes */
    s = intrinsic(c, "llvm.vector.reduce.fmax", &t, 1, &acc, 1);
    LLVMSetFastMathFlags(s, LLVMFastMathNoNaNs);
  } else {
    s = intrinsic(c, f == FOLD_MAX ? "llvm.vector.reduce.fmaximum" : "llvm.vector.reduce.fminimum", &t, 1, &acc, 1);
  }
  return vsplat(c, s, "");
}

/* argmax: lane-wise (value, index) pairs. Does (bv, bi) replace (av, ai)? The larger value,
 * the smaller index among equals, and a NaN over anything but an earlier NaN (the
 * reference takes the first maximum, or the first NaN). Vectors or scalars alike. */
static LLVMValueRef am_take(Cg *c, LLVMValueRef av, LLVMValueRef ai, LLVMValueRef bv, LLVMValueRef bi) {
  LLVMBuilderRef B = c->B;
  LLVMValueRef a_nan = LLVMBuildFCmp(B, LLVMRealUNO, av, av, ""), b_nan = LLVMBuildFCmp(B, LLVMRealUNO, bv, bv, "");
  LLVMValueRef earlier = LLVMBuildICmp(B, LLVMIntSLT, bi, ai, "");
  LLVMValueRef better = LLVMBuildOr(B, LLVMBuildFCmp(B, LLVMRealOGT, bv, av, ""),
                                    LLVMBuildAnd(B, LLVMBuildFCmp(B, LLVMRealOEQ, bv, av, ""), earlier, ""), "");
  return LLVMBuildSelect(B, a_nan, LLVMBuildAnd(B, b_nan, earlier, ""), LLVMBuildOr(B, b_nan, better, ""), "");
}

static LLVMValueRef am_pick(Cg *c, LLVMValueRef a, LLVMValueRef b) {
  LLVMBuilderRef B = c->B;
  LLVMValueRef av = LLVMBuildExtractValue(B, a, 0, ""), ai = LLVMBuildExtractValue(B, a, 1, "");
  LLVMValueRef bv = LLVMBuildExtractValue(B, b, 0, ""), bi = LLVMBuildExtractValue(B, b, 1, "");
  LLVMValueRef t = am_take(c, av, ai, bv, bi);
  LLVMValueRef r = LLVMBuildInsertValue(B, LLVMGetUndef(LLVMTypeOf(a)), LLVMBuildSelect(B, t, bv, av, ""), 0, "");
  return LLVMBuildInsertValue(B, r, LLVMBuildSelect(B, t, bi, ai, ""), 1, "");
}

static LLVMValueRef am_body(Cg *c, void *arg, LLVMValueRef acc) {
  uint32_t x = *(const uint32_t *)arg;
  LLVMValueRef v = eval(c, x), lanes[64];
  if (c->mask) v = LLVMBuildSelect(c->B, c->mask, v, splatf(c, -INFINITY), "");
  for (int i = 0; i < c->W; i++) lanes[i] = ci64(c, i);
  LLVMValueRef at = LLVMBuildAdd(c->B, vsplat(c, c->j, ""), LLVMConstVector(lanes, (unsigned)c->W), "");
  LLVMValueRef e = LLVMBuildInsertValue(c->B, LLVMGetUndef(LLVMTypeOf(acc)), v, 0, "");
  return am_pick(c, acc, LLVMBuildInsertValue(c->B, e, at, 1, ""));
}

static LLVMValueRef am_comb(Cg *c, void *arg, LLVMValueRef a, LLVMValueRef b) {
  (void)arg;
  return am_pick(c, a, b);
}

/* argmax of x over the row (the last axis), as a splat of its i64 index: four lane-wise
 * accumulators, then the lanes in order. */
static LLVMValueRef argmax_row(Cg *c, LLVMValueRef L, uint32_t x) {
  LLVMBuilderRef B = c->B;
  LLVMTypeRef vi = LLVMVectorType(c->i64, (unsigned)c->W), parts[2] = {c->vf, vi};
  LLVMTypeRef st = LLVMStructTypeInContext(c->C, parts, 2, 0);
  LLVMValueRef acc0 = LLVMBuildInsertValue(B, LLVMGetUndef(st), splatf(c, -INFINITY), 0, "");
  acc0 = LLVMBuildInsertValue(B, acc0, LLVMConstNull(vi), 1, "");
  LLVMValueRef acc = columns_u(c, L, acc0, am_body, am_comb, &x, MAXU);
  LLVMValueRef av = LLVMBuildExtractValue(B, acc, 0, ""), ai = LLVMBuildExtractValue(B, acc, 1, "");
  LLVMValueRef bv = LLVMBuildExtractElement(B, av, ci64(c, 0), ""), bi = LLVMBuildExtractElement(B, ai, ci64(c, 0), "");
  for (int i = 1; i < c->W; i++) {
    LLVMValueRef v = LLVMBuildExtractElement(B, av, ci64(c, i), ""), q = LLVMBuildExtractElement(B, ai, ci64(c, i), "");
    LLVMValueRef t = am_take(c, bv, bi, v, q);
    bv = LLVMBuildSelect(B, t, v, bv, ""), bi = LLVMBuildSelect(B, t, q, bi, "");
  }
  return vsplat(c, bi, "");
}

/* Column mode: row q of the reduced axis (its index in c->idx) folded into the lanes'
 * (value, index) pairs. */
static LLVMValueRef am_col_body(Cg *c, void *arg, LLVMValueRef acc) {
  uint32_t x = *(const uint32_t *)arg;
  LLVMValueRef v = eval(c, x);
  if (c->mask) v = LLVMBuildSelect(c->B, c->mask, v, splatf(c, -INFINITY), "");
  LLVMValueRef at = vsplat(c, c->idx[__builtin_ctz(c->axes)], "");
  LLVMValueRef e = LLVMBuildInsertValue(c->B, LLVMGetUndef(LLVMTypeOf(acc)), v, 0, "");
  return am_pick(c, acc, LLVMBuildInsertValue(c->B, e, at, 1, ""));
}


/* Member m's per-row scalars from the result of its pass i (Lf: the count folded, splat). */
static void finish_pass(Cg *c, uint32_t m, int i, LLVMValueRef folded, LLVMValueRef Lf) {
  LLVMBuilderRef B = c->B;
  uint32_t v = fu_members(c->p, c->k)[m];
  Op op = (Op)ir_node(c->g, v)->op;
  switch (op) {
  case OP_REDUCE_MEAN: c->red[m] = vdiv(c, folded, Lf); break;
  case OP_SOFTMAX:
  case OP_LOG_SOFTMAX:
    if (i == 0) c->n1[m] = folded;
    /* softmax multiplies by 1/sum (one division per row, not per element) */
    else if (op == OP_SOFTMAX) c->n2[m] = vdiv(c, splatf(c, 1), folded);
    else c->n2[m] = LLVMBuildFAdd(B, c->n1[m], mvec(c, "logf", folded, NULL), "");
    break;
  case OP_LAYERNORM:
    if (i == 0) {
      c->n1[m] = vdiv(c, folded, Lf);
    } else {
      double eps = ir_attr_float(c->g, v, AK_EPS, 1e-5);
      c->n2[m] = vdiv(c, splatf(c, 1), vcall1(c, "llvm.sqrt", LLVMBuildFAdd(B, vdiv(c, folded, Lf), splatf(c, eps), "")));
    }
    break;
  case OP_RMSNORM: {
    double eps = ir_attr_float(c->g, v, AK_EPS, 1e-6);
    c->n2[m] = vdiv(c, splatf(c, 1), vcall1(c, "llvm.sqrt", LLVMBuildFAdd(B, vdiv(c, folded, Lf), splatf(c, eps), "")));
    break;
  }
  default: c->red[m] = folded;
  }
}

/* layernorm along the row in one pass (ln_stats): per lane l, the sums of d = x - s_l and
 * (by fma) of d², where the shift s_l is the row's element l (its first vector). */
typedef struct Shifted {
  uint32_t x;
  LLVMValueRef s;
} Shifted;

static LLVMValueRef sh_body(Cg *c, void *arg, LLVMValueRef acc) {
  Shifted *sh = arg;
  LLVMBuilderRef B = c->B;
  LLVMValueRef d = LLVMBuildFSub(B, eval(c, sh->x), sh->s, "");
  if (c->mask) d = LLVMBuildSelect(B, c->mask, d, splatf(c, 0), "");
  LLVMValueRef a0 = LLVMBuildFAdd(B, LLVMBuildExtractValue(B, acc, 0, ""), d, "");
  LLVMTypeRef t = c->vf;
  LLVMValueRef a1 = intrinsic(c, "llvm.fma", &t, 1, (LLVMValueRef[]){d, d, LLVMBuildExtractValue(B, acc, 1, "")}, 3);
  return LLVMBuildInsertValue(B, LLVMBuildInsertValue(B, acc, a0, 0, ""), a1, 1, "");
}

static LLVMValueRef sh_comb(Cg *c, void *arg, LLVMValueRef a, LLVMValueRef b) {
  (void)arg;
  LLVMBuilderRef B = c->B;
  for (unsigned i = 0; i < 2; i++)
    a = LLVMBuildInsertValue(B, a, LLVMBuildFAdd(B, LLVMBuildExtractValue(B, a, i, ""), LLVMBuildExtractValue(B, b, i, ""), ""), i, "");
  return a;
}

/* layernorm member m of x along the row (row mode): its mean (n1) and 1/sqrt(var + eps)
 * (n2) from one pass instead of two (a mean, then the squared deviations from it). Lane l
 * folds n_l elements into D_l = Σ d and Q_l = Σ d²; its mean is s_l + D_l / n_l and its
 * squared deviations Q_l - D_l² / n_l, which cancels at most by a factor of about n_l
 * because s_l is one of the lane's own elements (its deviation from the lane's mean is at
 * most that of all of them together); the lanes combine as parallel variances do:
 * M2 = Σ_l (Q_l - D_l·(D_l / n_l)) + n_l·(mean_l - mean)². W3 1 thread: 15-18% faster at
 * N = 16..1024 (the row is read from L1 once less). The bytecode tier (FOLDSH, VMP_LNSHIFT)
 * does the same operations in the same order. */
static void ln_stats(Cg *c, LLVMValueRef L, uint32_t m, uint32_t x, double eps) {
  LLVMBuilderRef B = c->B;
  forget(c);
  c->j = ci64(c, 0), c->mask = tail_mask(c, L);
  Shifted sh = {x, LLVMBuildSelect(B, c->mask, eval(c, x), splatf(c, 0), "")};
  forget(c);
  c->mask = NULL;
  LLVMTypeRef parts[2] = {c->vf, c->vf};
  LLVMValueRef acc = LLVMGetUndef(LLVMStructTypeInContext(c->C, parts, 2, 0));
  acc = LLVMBuildInsertValue(B, LLVMBuildInsertValue(B, acc, splatf(c, 0), 0, ""), splatf(c, 0), 1, "");
  acc = columns_u(c, L, acc, sh_body, sh_comb, &sh, MAXU);
  c->prefetching = false; /* the row is in cache for the output pass */
  LLVMValueRef D = LLVMBuildExtractValue(B, acc, 0, ""), Q = LLVMBuildExtractValue(B, acc, 1, "");
  LLVMValueRef lanes[64];
  for (int i = 0; i < c->W; i++) lanes[i] = ci64(c, i);
  LLVMValueRef W = ci64(c, c->W), q = LLVMBuildUDiv(B, L, W, ""), r = LLVMBuildURem(B, L, W, "");
  LLVMValueRef extra = LLVMBuildICmp(B, LLVMIntSLT, LLVMConstVector(lanes, (unsigned)c->W), vsplat(c, r, ""), "");
  LLVMValueRef n = LLVMBuildFAdd(B, vsplat(c, LLVMBuildSIToFP(B, q, c->f32, ""), ""), LLVMBuildUIToFP(B, extra, c->vf, ""), "");
  LLVMValueRef n1 = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOLT, n, splatf(c, 1), ""), splatf(c, 1), n, "");
  LLVMValueRef Lf = LLVMBuildSIToFP(B, L, c->f32, "");
  LLVMValueRef mean = LLVMBuildFDiv(B, lanes_sum(c, LLVMBuildFAdd(B, D, LLVMBuildFMul(B, n, sh.s, ""), "")), Lf, "");
  LLVMValueRef dl = LLVMBuildFDiv(B, D, n1, "");
  LLVMValueRef dev = LLVMBuildFSub(B, LLVMBuildFAdd(B, sh.s, dl, ""), vsplat(c, mean, ""), "");
  LLVMValueRef m2 = LLVMBuildFSub(B, Q, LLVMBuildFMul(B, D, dl, ""), "");
  m2 = LLVMBuildFAdd(B, m2, LLVMBuildFMul(B, LLVMBuildFMul(B, n, dev, ""), dev, ""), "");
  LLVMValueRef var = LLVMBuildFDiv(B, lanes_sum(c, m2), Lf, "");
  c->n1[m] = vsplat(c, mean, "");
  c->n2[m] = vdiv(c, splatf(c, 1), vcall1(c, "llvm.sqrt", LLVMBuildFAdd(B, vsplat(c, var, ""), splatf(c, eps), "")));
}

/* The per-row scalars of every reduction and normalization, in member order. */
static void row_passes(Cg *c, LLVMValueRef L) {
  LLVMBuilderRef B = c->B;
  LLVMValueRef count = L; /* elements folded per row: the reduced outer ones too in multi mode */
  for (int d = 0; c->multi && d < c->r - 1; d++)
    if (c->axes >> d & 1) count = LLVMBuildMul(B, count, dimval(c, c->dom[d]), "");
  LLVMValueRef Lf = vsplat(c, LLVMBuildSIToFP(B, count, c->f32, ""), "");
  for (uint32_t m = 0; m < c->k->nmembers; m++) {
    uint32_t v = fu_members(c->p, c->k)[m], x = ir_node(c->g, v)->nin ? ir_operand(c->g, v, 0) : 0;
    KnPass ps[2];
    int np = kn_passes((Op)ir_node(c->g, v)->op, ps);
    if (ir_node(c->g, v)->op == OP_LAYERNORM && !c->multi) { /* row mode (col mode: col_item) */
      ln_stats(c, L, m, x, ir_attr_float(c->g, v, AK_EPS, 1e-5));
      continue;
    }
    for (int i = 0; i < np; i++)
      finish_pass(c, m, i, ps[i].what == W_ARGMAX ? argmax_row(c, L, x) : fold_row(c, L, ps[i].f, x, ps[i].what, (int)m), Lf);
  }
}

/* ---- stores ------------------------------------------------------------------------------- */

static bool is_full(const Cg *c, uint32_t v) {
  const Node *a = ir_node(c->g, v), *d = ir_node(c->g, c->k->domain);
  return a->rank == d->rank && !memcmp(ir_shape(c->g, v), ir_shape(c->g, c->k->domain), a->rank * sizeof(Dim));
}


typedef struct Store {
  LLVMValueRef row, L;
} Store;

/* Store every full-shaped output at the current column. */
static LLVMValueRef store_body(Cg *c, void *arg, LLVMValueRef acc) {
  Store *st = arg;
  enum { MAXOUT = 64 };
  LLVMValueRef val[MAXOUT];
  /* every value first: an output's row may be the stash another output still reads */
  for (uint32_t o = 0; o < c->k->noutputs && o < MAXOUT; o++) {
    uint32_t v = fu_outputs(c->p, c->k)[o];
    val[o] = is_full(c, v) ? eval(c, v) : NULL;
  }
  for (uint32_t o = 0; o < c->k->noutputs; o++) {
    uint32_t v = fu_outputs(c->p, c->k)[o];
    if (!is_full(c, v)) continue;
    LLVMValueRef off;
    if (c->multi) { /* the domain's reduced outer indices vary within the row */
      LLVMValueRef base, inner;
      value_base(c, v, c->idx, 0, &base, &inner);
      off = LLVMBuildAdd(c->B, base, c->j, "");
    } else {
      off = LLVMBuildAdd(c->B, LLVMBuildMul(c->B, st->row, st->L, ""), c->j, "");
    }
    store_value(c, v, buf(c, c->k->ninputs + o), off, o < MAXOUT ? val[o] : eval(c, v));
  }
  return acc;
}

static LLVMValueRef store_q(Cg *c, void *arg, LLVMValueRef acc) {
  columns(c, c->L, NULL, store_body, arg);
  return acc;
}

/* Per-row outputs (reduced shapes): one element at index row. */
static void store_scalars(Cg *c, LLVMValueRef row) {
  for (uint32_t o = 0; o < c->k->noutputs; o++) {
    uint32_t v = fu_outputs(c->p, c->k)[o];
    if (is_full(c, v)) continue;
    DType t = (DType)ir_node(c->g, v)->dtype;
    LLVMValueRef vec = eval(c, v);
    if (kn_is_low(t)) vec = to_mem(c, vec, t);
    LLVMValueRef x = LLVMBuildExtractElement(c->B, vec, LLVMConstInt(c->i32, 0, 0), "");
    LLVMTypeRef et = mem_type(c, t);
    if (t == DT_BOOL) x = LLVMBuildZExt(c->B, x, et, ""); /* bytes 0/1 */
    LLVMValueRef at = LLVMBuildGEP2(c->B, et, buf(c, c->k->ninputs + o), &row, 1, "");
    LLVMBuildStore(c->B, x, at);
  }
  forget(c);
}

/* Vector and row kernels: per row of [begin, end), the passes over the row, then the
 * output pass and the per-row results' stores. */
static void row_kernel(Cg *c, LLVMValueRef begin, LLVMValueRef end) {
  const Partition *p = c->p;
  const Kernel *k = c->k;
  uint32_t nm = k->nmembers, ni = k->ninputs;
  const Dim *dom = c->dom;
  int r = c->r;
  LLVMValueRef L = c->L;
  LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(c->C, c->fn, "row"),
                    body = LLVMAppendBasicBlockInContext(c->C, c->fn, "row.body"),
                    done = LLVMAppendBasicBlockInContext(c->C, c->fn, "row.done");
  LLVMBuildBr(c->B, head);
  LLVMPositionBuilderAtEnd(c->B, head);
  LLVMValueRef row = LLVMBuildPhi(c->B, c->i64, "row");
  LLVMBuildCondBr(c->B, LLVMBuildICmp(c->B, LLVMIntSLT, row, end, ""), body, done);
  LLVMPositionBuilderAtEnd(c->B, body);
  memset(c->red, 0, 3 * nm * sizeof *c->red);
  row_bases(c, row, dom, r);
  next_row_bases(c);
  Store st = {row, L};
  /* the first softmax keeps its exp row in the first full-shaped output's row */
  int so = kn_full_output(p, k); /* an f32 row: exp values */
  for (uint32_t m = 0; so >= 0 && m < nm; m++)
    if (ir_node(c->g, fu_members(p, k)[m])->op == OP_SOFTMAX) {
      c->stash_member = (int)m;
      c->stash = LLVMBuildGEP2(c->B, c->f32, buf(c, ni + (uint32_t)so), (LLVMValueRef[]){LLVMBuildMul(c->B, row, L, "")}, 1, "");
      break;
    }
  row_passes(c, L);
  if (c->multi) over_reduced(c, store_q, &st, NULL);
  else columns(c, L, NULL, store_body, &st);
  store_scalars(c, row);
  LLVMValueRef next = LLVMBuildAdd(c->B, row, ci64(c, 1), "");
  LLVMBasicBlockRef body_end = LLVMGetInsertBlock(c->B);
  LLVMBuildBr(c->B, head);
  LLVMAddIncoming(row, (LLVMValueRef[]){begin, next}, (LLVMBasicBlockRef[]){c->entry, body_end}, 2);
  LLVMPositionBuilderAtEnd(c->B, done);
}

/* ---- mix: the matmul column block ------------------------------------------------------------ */

enum { MIX_ROWS = 4 }; /* rows of a register block: each b vector feeds this many FMAs */

typedef struct Mm {
  LLVMValueRef row, N, K;
  int rows;              /* rows in this block: MIX_ROWS or 1 */
  uint32_t a, b;
  const Dim *dom;
  int r;
} Mm;

/* One k step of the block: b[k, j..] loaded once, one FMA per row into acc[r]. */
static void mix_step(Cg *c, Mm *mm, LLVMValueRef pa, LLVMValueRef pb, const LLVMValueRef *abase,
                     LLVMValueRef k, LLVMValueRef *acc) {
  LLVMBuilderRef B = c->B;
  LLVMTypeRef t = c->vf;
  LLVMValueRef bv = load_vec(c, pb, LLVMBuildAdd(B, LLVMBuildMul(B, k, mm->N, ""), c->j, ""));
  for (int r = 0; r < mm->rows; r++) {
    LLVMValueRef aat = LLVMBuildGEP2(B, c->f32, pa, (LLVMValueRef[]){LLVMBuildAdd(B, abase[r], k, "")}, 1, "");
    LLVMValueRef av = vsplat(c, LLVMBuildLoad2(B, c->f32, aat, ""), "");
    acc[r] = intrinsic(c, "llvm.fma", &t, 1, (LLVMValueRef[]){av, bv, acc[r]}, 3);
  }
}

/* For the block's rows at this column: the K products summed in two interleaved partial
 * sums per row (even and odd k: half the rounding error of one long chain, and twice the
 * independent FMA chains), b loaded once per k for all rows; then the epilogue and the
 * stores row by row. */
static LLVMValueRef mix_body(Cg *c, void *arg, LLVMValueRef acc) {
  Mm *mm = arg;
  LLVMBuilderRef B = c->B;
  int R = mm->rows;
  LLVMValueRef pa = buf(c, (uint32_t)input_index(c, mm->a)), pb = buf(c, (uint32_t)input_index(c, mm->b));
  LLVMValueRef abase[MIX_ROWS];
  for (int r = 0; r < R; r++)
    abase[r] = LLVMBuildMul(B, LLVMBuildAdd(B, mm->row, ci64(c, r), ""), mm->K, "");
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(B), head = LLVMAppendBasicBlockInContext(c->C, c->fn, "k"),
                    body = LLVMAppendBasicBlockInContext(c->C, c->fn, "k.body"),
                    odd = LLVMAppendBasicBlockInContext(c->C, c->fn, "k.odd"),
                    done = LLVMAppendBasicBlockInContext(c->C, c->fn, "k.done");
  LLVMBuildBr(B, head);
  LLVMPositionBuilderAtEnd(B, head);
  LLVMValueRef k = LLVMBuildPhi(B, c->i64, "k"), s0[MIX_ROWS], s1[MIX_ROWS], n0[MIX_ROWS], n1[MIX_ROWS];
  for (int r = 0; r < R; r++) s0[r] = LLVMBuildPhi(B, c->vf, "even"), s1[r] = LLVMBuildPhi(B, c->vf, "odd");
  LLVMValueRef k2 = LLVMBuildAdd(B, k, ci64(c, 2), "");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLE, k2, mm->K, ""), body, odd);
  LLVMPositionBuilderAtEnd(B, body);
  memcpy(n0, s0, sizeof n0), memcpy(n1, s1, sizeof n1);
  mix_step(c, mm, pa, pb, abase, k, n0);
  mix_step(c, mm, pa, pb, abase, LLVMBuildAdd(B, k, ci64(c, 1), ""), n1);
  LLVMBasicBlockRef body_end = LLVMGetInsertBlock(B);
  LLVMBuildBr(B, head);
  LLVMAddIncoming(k, (LLVMValueRef[]){ci64(c, 0), k2}, (LLVMBasicBlockRef[]){pre, body_end}, 2);
  for (int r = 0; r < R; r++) {
    LLVMAddIncoming(s0[r], (LLVMValueRef[]){splatf(c, 0), n0[r]}, (LLVMBasicBlockRef[]){pre, body_end}, 2);
    LLVMAddIncoming(s1[r], (LLVMValueRef[]){splatf(c, 0), n1[r]}, (LLVMBasicBlockRef[]){pre, body_end}, 2);
  }
  /* an odd K leaves one step, into the even sums */
  LLVMPositionBuilderAtEnd(B, odd);
  LLVMValueRef t0[MIX_ROWS];
  memcpy(t0, s0, sizeof t0);
  LLVMBasicBlockRef last = LLVMAppendBasicBlockInContext(c->C, c->fn, "k.last");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, k, mm->K, ""), last, done);
  LLVMPositionBuilderAtEnd(B, last);
  mix_step(c, mm, pa, pb, abase, k, t0);
  LLVMBasicBlockRef last_end = LLVMGetInsertBlock(B);
  LLVMBuildBr(B, done);
  LLVMPositionBuilderAtEnd(B, done);
  LLVMValueRef e[MIX_ROWS];
  for (int r = 0; r < R; r++) { /* phis first: a block starts with its phis */
    e[r] = LLVMBuildPhi(B, c->vf, "");
    LLVMAddIncoming(e[r], (LLVMValueRef[]){s0[r], t0[r]}, (LLVMBasicBlockRef[]){odd, last_end}, 2);
  }
  for (int r = 0; r < R; r++) {
    LLVMValueRef row = LLVMBuildAdd(B, mm->row, ci64(c, r), "");
    LLVMValueRef sum = LLVMBuildFAdd(B, e[r], s1[r], "");
    forget(c);
    row_bases(c, row, mm->dom, mm->r);
    c->mm = sum;
    Store st = {row, mm->N};
    store_body(c, &st, acc);
  }
  forget(c);
  return acc;
}

/* Rows [row, row + rows) of a mix kernel. */
static void mix_rows(Cg *c, LLVMValueRef row, int rows, const Dim *dom, int r, LLVMValueRef L) {
  uint32_t v = fu_members(c->p, c->k)[c->mm_member];
  Mm mm = {.row = row, .N = L, .rows = rows, .a = ir_operand(c->g, v, 0), .b = ir_operand(c->g, v, 1),
           .dom = dom, .r = r};
  const Node *an = ir_node(c->g, mm.a);
  mm.K = dimval(c, ir_shape(c->g, mm.a)[an->rank - 1]);
  columns(c, L, NULL, mix_body, &mm);
}

/* A counted loop from `from` while iv + step <= end (step 1: iv < end); returns the exit
 * value of iv. body(c, iv, arg) emits one iteration. */
static LLVMValueRef counted(Cg *c, LLVMValueRef from, LLVMValueRef end, int step,
                            void (*body)(Cg *, LLVMValueRef, void *), void *arg) {
  LLVMBuilderRef B = c->B;
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(B), head = LLVMAppendBasicBlockInContext(c->C, c->fn, "loop"),
                    bb = LLVMAppendBasicBlockInContext(c->C, c->fn, "loop.body"),
                    done = LLVMAppendBasicBlockInContext(c->C, c->fn, "loop.done");
  LLVMBuildBr(B, head);
  LLVMPositionBuilderAtEnd(B, head);
  LLVMValueRef iv = LLVMBuildPhi(B, c->i64, "iv");
  LLVMValueRef last = LLVMBuildAdd(B, iv, ci64(c, step), "");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLE, last, end, ""), bb, done);
  LLVMPositionBuilderAtEnd(B, bb);
  body(c, iv, arg);
  LLVMBasicBlockRef bend = LLVMGetInsertBlock(B);
  LLVMBuildBr(B, head);
  LLVMAddIncoming(iv, (LLVMValueRef[]){from, last}, (LLVMBasicBlockRef[]){pre, bend}, 2);
  LLVMPositionBuilderAtEnd(B, done);
  return iv;
}

typedef struct MixLoop {
  const Dim *dom;
  int r, rows;
  LLVMValueRef L;
} MixLoop;

static void mix_iter(Cg *c, LLVMValueRef row, void *arg) {
  MixLoop *ml = arg;
  mix_rows(c, row, ml->rows, ml->dom, ml->r, ml->L);
}

static LLVMValueRef counted(Cg *c, LLVMValueRef from, LLVMValueRef end, int step,
                            void (*body)(Cg *, LLVMValueRef, void *), void *arg);

/* ---- mix: few rows, the weights streamed ---------------------------------------------------
 *
 * A call with few rows (M <= SMALL_M: GEMV-like, bound by reading b) must not walk b down
 * its columns (a page per k) once per row: it streams b row by row instead. The block's
 * output rows, which the output pass overwrites anyway, hold the running sums (they stay
 * in L2): for each group of 4 k, every column vector of every row gets 4 fused
 * multiply-adds from 4 rows of b read in order; then the epilogue pass reads the sums. */

enum { SMALL_M = 16, SM_ROWS = 4, SM_K = 4 };

typedef struct Sm {
  LLVMValueRef row, N, K, k, acc;  /* acc: the first full-shaped output (the sums' rows) */
  int rows;
  uint32_t a, b;
  LLVMValueRef av[SM_ROWS][SM_K];  /* a[row + r, k + kk] as splats */
  int nk;                          /* k in this group */
} Sm;

static LLVMValueRef sm_zero(Cg *c, void *arg, LLVMValueRef acc) {
  Sm *sm = arg;
  for (int r = 0; r < sm->rows; r++) {
    LLVMValueRef off = LLVMBuildAdd(c->B, LLVMBuildMul(c->B, LLVMBuildAdd(c->B, sm->row, ci64(c, r), ""), sm->N, ""), c->j, "");
    store_vec(c, sm->acc, off, splatf(c, 0));
  }
  return acc;
}

static LLVMValueRef sm_step(Cg *c, void *arg, LLVMValueRef acc) {
  Sm *sm = arg;
  LLVMTypeRef t = c->vf;
  LLVMValueRef pb = buf(c, (uint32_t)input_index(c, sm->b)), bv[SM_K];
  for (int kk = 0; kk < sm->nk; kk++)
    bv[kk] = load_vec(c, pb, LLVMBuildAdd(c->B, LLVMBuildMul(c->B, LLVMBuildAdd(c->B, sm->k, ci64(c, kk), ""), sm->N, ""), c->j, ""));
  for (int r = 0; r < sm->rows; r++) {
    LLVMValueRef off = LLVMBuildAdd(c->B, LLVMBuildMul(c->B, LLVMBuildAdd(c->B, sm->row, ci64(c, r), ""), sm->N, ""), c->j, "");
    LLVMValueRef s = load_vec(c, sm->acc, off);
    for (int kk = 0; kk < sm->nk; kk++) s = intrinsic(c, "llvm.fma", &t, 1, (LLVMValueRef[]){sm->av[r][kk], bv[kk], s}, 3);
    store_vec(c, sm->acc, off, s);
  }
  return acc;
}

/* One group of nk values of k starting at k: a's elements once, then the columns. */
static void sm_group(Cg *c, LLVMValueRef k, void *arg) {
  Sm *sm = arg;
  LLVMValueRef pa = buf(c, (uint32_t)input_index(c, sm->a));
  sm->k = k;
  for (int r = 0; r < sm->rows; r++)
    for (int kk = 0; kk < sm->nk; kk++) {
      LLVMValueRef at = LLVMBuildAdd(c->B, LLVMBuildMul(c->B, LLVMBuildAdd(c->B, sm->row, ci64(c, r), ""), sm->K, ""),
                                     LLVMBuildAdd(c->B, k, ci64(c, kk), ""), "");
      sm->av[r][kk] = vsplat(c, LLVMBuildLoad2(c->B, c->f32, LLVMBuildGEP2(c->B, c->f32, pa, &at, 1, ""), ""), "");
    }
  columns(c, sm->N, NULL, sm_step, sm);
}

static LLVMValueRef sm_out(Cg *c, void *arg, LLVMValueRef acc) {
  Sm *sm = arg;
  for (int r = 0; r < sm->rows; r++) {
    LLVMValueRef row = LLVMBuildAdd(c->B, sm->row, ci64(c, r), "");
    forget(c);
    row_bases(c, row, c->dom, c->r);
    c->mm = load_vec(c, sm->acc, LLVMBuildAdd(c->B, LLVMBuildMul(c->B, row, sm->N, ""), c->j, ""));
    Store st = {row, sm->N};
    store_body(c, &st, NULL);
  }
  forget(c);
  return acc;
}

static void sm_block(Cg *c, LLVMValueRef row, void *arg) {
  Sm *sm = arg;
  sm->row = row;
  columns(c, sm->N, NULL, sm_zero, sm);
  sm->nk = SM_K;
  LLVMValueRef k = counted(c, ci64(c, 0), sm->K, SM_K, sm_group, sm);
  sm->nk = 1;
  counted(c, k, sm->K, 1, sm_group, sm);
  columns(c, sm->N, NULL, sm_out, sm);
}

/* ---- mix: packed weights, register-blocked ---------------------------------------------
 *
 * A 2-D param weight b [K, N] is read from its packed copy (kernel/gemm.c: panels of nr
 * columns, nr floats per k, zero-padded), which the runtime makes once per model and
 * passes as the extra buffer bufs[ninputs + noutputs]. The outer range [begin, end) is
 * row blocks of mc rows times panels of nr output columns, panel-major within a row
 * block (kn_extent): at most mc rows, two threads read half of b each, so a few rows
 * (M = 1: a GEMV) stream b once at memory speed; many rows split by row blocks (a chunk
 * of the pool is then about one row block's panels), and a narrow output (one panel)
 * still splits by rows:
 *
 *   for each row block of the call's items (an mc x kc block of a stays in L2)
 *     for each group of the row block's panels in the call, their sums for the block's
 *     rows about PK_SUMS bytes (they stay in L2 across the k blocks)
 *       for each block of kc values of k (at least one block, so K = 0 still gets its epilogue)
 *         for the group's panels (the kc x nr slice of packed b stays in L2)
 *           micro-kernels of mr rows, then 4, 2, 1 rows for the rest: mr x nr sums in
 *             registers (mr·nr/W vectors), per k the nr/W vectors of b loaded once and each
 *             row's a element broadcast into nr/W fused multiply-adds; the sums start at
 *             zero on the first k block and from the output otherwise, and go back to the
 *             output, masked past column N. A packed param's next slice is prefetched by
 *             the first tiles, one cache line per k.
 *           on the last k block: the epilogue over the panel's rows and columns, reading
 *             the sums from the output (in L1) and storing every output
 *
 * The sums live in the first full-shaped f32 output (the epilogue overwrites it last). */

enum { PK_MAXR = 16, PK_MAXV = 8 };
/* Bytes of sums a group of panels keeps for its row block (in L2 across the k blocks). */
enum { PK_SUMS = 512 * 1024 };


typedef struct Pk {
  KnTile t;
  KnPack f;
  int nv;                        /* host vectors per panel: nr / W */
  int rows;                      /* rows of the micro-kernel being emitted */
  LLVMValueRef pa, pb, acc;      /* a, the packed b, the output that holds the sums */
  LLVMValueRef sa, sb;           /* packed blocks of a (mc x kc) and b (kc x nr) on the stack */
  LLVMValueRef K, N, M, P, begin, end; /* M rows, P panels; the call's items [begin, end) */
  LLVMValueRef Mg, IB, mb;       /* rows per product (M unless batched), row blocks per product,
                                    rows per block */
  LLVMValueRef pbegin, pend;      /* the current row block's panels */
  LLVMValueRef G, gbegin, gend;   /* panels per group; the current group of them */
  LLVMValueRef next;             /* packed param: the slice of b the next panel reads */
  LLVMValueRef ic, mend;         /* the row block [ic, mend) */
  LLVMValueRef pc, kc, first, last; /* the k block [pc, pc + kc); first / last block (i1) */
  LLVMValueRef j0, jend, panel;  /* the panel's columns [j0, jend) and its packed rows from pc */
  LLVMValueRef colmask[PK_MAXV]; /* per vector of the panel: its columns below N */
  LLVMValueRef erow;             /* the epilogue's row */
  LLVMValueRef aoff;             /* packing a: the row's offset in the packed block */
  LLVMValueRef stats;            /* a prologue's two statistics per row of the row block */
  bool bt;                       /* b packed by reading along k and transposing (pk_pack_bt) */
} Pk;

static LLVMValueRef imin(Cg *c, LLVMValueRef x, LLVMValueRef y) {
  return LLVMBuildSelect(c->B, LLVMBuildICmp(c->B, LLVMIntSLT, x, y, ""), x, y, "");
}

/* A prefetch (for reading, into every level: prefetcht0) of base[off]. */
static void prefetch(Cg *c, LLVMValueRef base, LLVMValueRef off) {
  LLVMValueRef p = LLVMBuildGEP2(c->B, c->f32, base, &off, 1, "");
  LLVMTypeRef pt = c->ptr;
  intrinsic(c, "llvm.prefetch", &pt, 1,
            (LLVMValueRef[]){p, LLVMConstInt(c->i32, 0, 0), LLVMConstInt(c->i32, 3, 0), LLVMConstInt(c->i32, 1, 0)}, 4);
}

/* The micro-kernel: rows [row, row + pk->rows) of the current panel and k block. */
static void pk_tile(Cg *c, LLVMValueRef row, void *arg) {
  Pk *pk = arg;
  LLVMBuilderRef B = c->B;
  LLVMTypeRef t = c->vf;
  int R = pk->rows, V = pk->nv;
  LLVMValueRef cofs[PK_MAXR][PK_MAXV], abase[PK_MAXR], acc[PK_MAXR][PK_MAXV], phi[PK_MAXR][PK_MAXV];
  for (int r = 0; r < R; r++) {
    LLVMValueRef rr = LLVMBuildAdd(B, row, ci64(c, r), "");
    abase[r] = pk->f.adirect ? LLVMBuildAdd(B, LLVMBuildMul(B, rr, pk->K, ""), pk->pc, "")
                             : LLVMBuildMul(B, LLVMBuildSub(B, rr, pk->ic, ""), ci64(c, pk->t.kc), "");
    LLVMValueRef crow = LLVMBuildAdd(B, LLVMBuildMul(B, rr, pk->N, ""), pk->j0, "");
    for (int v = 0; v < V; v++) {
      cofs[r][v] = LLVMBuildAdd(B, crow, ci64(c, (int64_t)v * c->W), "");
      c->mask = pk->colmask[v];
      /* in bounds either way (masked columns, rows below end): select, not a branch */
      acc[r][v] = LLVMBuildSelect(B, pk->first, splatf(c, 0), load_vec(c, pk->acc, cofs[r][v]), "");
    }
  }
  c->mask = NULL;
  /* the next panel's slice (pk_panel: nr / 16 cache lines per k), spread over the panel's
   * first nr / 16 tiles: tile t fetches lines [t·kc, t·kc + kc) of it, one per k (the later
   * tiles fetch them again, hits). Without it the first tile of each panel waits on b's
   * slice from L3 or memory: W5's kernels 8-9% slower at N = 1024. */
  LLVMValueRef pfoff = NULL;
  int lines = (int)(pk->t.nr / 16);
  if (pk->next && R == pk->t.mr && lines > 0) {
    LLVMValueRef t = LLVMBuildUDiv(B, LLVMBuildSub(B, row, pk->ic, ""), ci64(c, R), "");
    pfoff = LLVMBuildMul(B, LLVMBuildURem(B, t, ci64(c, lines), ""), ci64(c, pk->t.kc * 16), "");
  }
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(B), head = LLVMAppendBasicBlockInContext(c->C, c->fn, "pk.k"),
                    body = LLVMAppendBasicBlockInContext(c->C, c->fn, "pk.k.body"),
                    done = LLVMAppendBasicBlockInContext(c->C, c->fn, "pk.k.done");
  LLVMBuildBr(B, head);
  LLVMPositionBuilderAtEnd(B, head);
  LLVMValueRef k = LLVMBuildPhi(B, c->i64, "k");
  for (int r = 0; r < R; r++)
    for (int v = 0; v < V; v++) phi[r][v] = LLVMBuildPhi(B, c->vf, "sum");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, k, pk->kc, ""), body, done);
  LLVMPositionBuilderAtEnd(B, body);
  LLVMValueRef bv[PK_MAXV], next[PK_MAXR][PK_MAXV];
  LLVMValueRef brow = LLVMBuildMul(B, k, ci64(c, pk->t.nr), "");
  if (pfoff) prefetch(c, pk->next, LLVMBuildAdd(B, pfoff, LLVMBuildMul(B, k, ci64(c, 16), ""), ""));
  for (int v = 0; v < V; v++) {
    LLVMValueRef off = LLVMBuildAdd(B, brow, ci64(c, (int64_t)v * c->W), "");
    LLVMValueRef l = LLVMBuildLoad2(B, c->vf, LLVMBuildGEP2(B, c->f32, pk->panel, &off, 1, ""), "");
    LLVMSetAlignment(l, (unsigned)(4 * c->W)); /* panels start on 64 bytes, rows are whole vectors */
    bv[v] = l;
  }
  for (int r = 0; r < R; r++) {
    LLVMValueRef at = LLVMBuildAdd(B, abase[r], k, "");
    LLVMValueRef av = vsplat(c, LLVMBuildLoad2(B, c->f32, LLVMBuildGEP2(B, c->f32, pk->pa, &at, 1, ""), ""), "");
    for (int v = 0; v < V; v++) next[r][v] = intrinsic(c, "llvm.fma", &t, 1, (LLVMValueRef[]){av, bv[v], phi[r][v]}, 3);
  }
  LLVMValueRef k1 = LLVMBuildAdd(B, k, ci64(c, 1), "");
  LLVMBasicBlockRef body_end = LLVMGetInsertBlock(B);
  LLVMBuildBr(B, head);
  LLVMAddIncoming(k, (LLVMValueRef[]){ci64(c, 0), k1}, (LLVMBasicBlockRef[]){pre, body_end}, 2);
  for (int r = 0; r < R; r++)
    for (int v = 0; v < V; v++)
      LLVMAddIncoming(phi[r][v], (LLVMValueRef[]){acc[r][v], next[r][v]}, (LLVMBasicBlockRef[]){pre, body_end}, 2);
  LLVMPositionBuilderAtEnd(B, done);
  for (int r = 0; r < R; r++)
    for (int v = 0; v < V; v++) {
      c->mask = pk->colmask[v];
      store_vec(c, pk->acc, cofs[r][v], phi[r][v]);
    }
  c->mask = NULL;
}

/* The epilogue at the current column of row pk->erow: the sum from the output, every
 * output stored. */
static LLVMValueRef pk_out(Cg *c, void *arg, LLVMValueRef acc) {
  Pk *pk = arg;
  c->mm = load_vec(c, pk->acc, LLVMBuildAdd(c->B, LLVMBuildMul(c->B, pk->erow, pk->N, ""), c->j, ""));
  Store st = {pk->erow, pk->N};
  return store_body(c, &st, acc);
}

static void pk_out_row(Cg *c, LLVMValueRef row, void *arg) {
  Pk *pk = arg;
  pk->erow = row;
  forget(c);
  row_bases(c, row, c->dom, c->r);
  columns_from(c, pk->j0, pk->jend, NULL, pk_out, NULL, pk, 1);
  forget(c);
}

static void gm_pos(Cg *c, uint32_t x, Ix i0, Ix i1, Ix *P);

/* The matmul's row index at the current position (0 for a vector a: one row). */
static LLVMValueRef row_index(Cg *c) { return c->r >= 2 ? c->idx[c->r - 2] : ci64(c, 0); }

/* Would reading matmul operand x (transposed if t) with the lanes along axis ax of its
 * matrix (0: rows, 1: columns, after the transpose) gather? Probed by emitting the read
 * into a scratch block that is then deleted. */
static bool gathers_along(Cg *c, uint32_t x, bool t, int ax) {
  LLVMBasicBlockRef at = LLVMGetInsertBlock(c->B), probe = LLVMAppendBasicBlockInContext(c->C, c->fn, "probe");
  LLVMPositionBuilderAtEnd(c->B, probe);
  for (int d = 0; d < c->r; d++) c->idx[d] = ci64(c, 0);
  c->j = ci64(c, 0), c->mask = NULL;
  Ix P[DVM_MAX_RANK], zero = ix_scalar(ci64(c, 0)), lanes = {ci64(c, 0), 1, NULL, 0};
  Ix i0 = ax ? zero : lanes, i1 = ax ? lanes : zero;
  int g0 = c->gathers;
  gm_pos(c, x, t ? i1 : i0, t ? i0 : i1, P);
  view_at(c, x, P);
  LLVMDeleteBasicBlock(probe);
  LLVMPositionBuilderAtEnd(c->B, at);
  return c->gathers > g0;
}

/* a's k block at row pk->arow (its outer indices in c->idx), W values of k at a time,
 * into the row's place in the packed block of a. */
static LLVMValueRef pk_pack_a_cols(Cg *c, void *arg, LLVMValueRef acc) {
  Pk *pk = arg;
  LLVMValueRef x;
  if (pk->f.prologue) { /* the normalization at column k, from the row's statistics */
    x = eval(c, pk->f.a);
  } else {
    Ix k = {ci64(c, 0), 1, NULL, 0}, m = ix_scalar(row_index(c)), P[DVM_MAX_RANK];
    gm_pos(c, pk->f.a, pk->f.ta ? k : m, pk->f.ta ? m : k, P);
    x = view_at(c, pk->f.a, P);
  }
  store_vec(c, pk->sa, LLVMBuildAdd(c->B, pk->aoff, LLVMBuildSub(c->B, c->j, pk->pc, ""), ""), x);
  return acc;
}

/* Row `row` of a's k block into the packed block, k along the lanes. A prologue's
 * statistics (mean and 1/sqrt(var + eps), or the latter of the mean square) are folded
 * over the whole row, as a row kernel's passes do, on the first k block, and kept per row
 * of the row block on the stack for the later ones. */
static void pk_pack_a(Cg *c, LLVMValueRef row, void *arg) {
  Pk *pk = arg;
  LLVMBuilderRef B = c->B;
  row_bases(c, row, c->dom, c->r);
  if (pk->f.prologue) {
    int m = member_index(c, pk->f.a);
    LLVMValueRef at[2];
    for (int q = 0; q < 2; q++) {
      LLVMValueRef i = LLVMBuildAdd(B, LLVMBuildMul(B, LLVMBuildSub(B, row, pk->ic, ""), ci64(c, 2), ""), ci64(c, q), "");
      at[q] = LLVMBuildGEP2(B, c->f32, pk->stats, &i, 1, "");
    }
    LLVMBasicBlockRef fold = LLVMAppendBasicBlockInContext(c->C, c->fn, "prologue.stats"),
                      join = LLVMAppendBasicBlockInContext(c->C, c->fn, "prologue.join");
    LLVMBuildCondBr(B, pk->first, fold, join);
    LLVMPositionBuilderAtEnd(B, fold);
    memset(c->red, 0, 3 * c->k->nmembers * sizeof *c->red);
    forget(c);
    row_passes(c, pk->K);
    LLVMValueRef st[2] = {c->n1[m], c->n2[m]};
    for (int q = 0; q < 2; q++)
      if (st[q]) LLVMBuildStore(B, LLVMBuildExtractElement(B, st[q], ci64(c, 0), ""), at[q]);
    LLVMBuildBr(B, join);
    LLVMPositionBuilderAtEnd(B, join);
    for (int q = 0; q < 2; q++) {
      LLVMValueRef v = st[q] ? vsplat(c, LLVMBuildLoad2(B, c->f32, at[q], ""), "") : NULL;
      if (q) c->n2[m] = v;
      else c->n1[m] = v;
    }
    forget(c);
  }
  pk->aoff = LLVMBuildMul(c->B, LLVMBuildSub(c->B, row, pk->ic, ""), ci64(c, pk->t.kc), "");
  columns_from(c, pk->pc, LLVMBuildAdd(c->B, pk->pc, pk->kc, ""), NULL, pk_pack_a_cols, NULL, pk, 1);
  memset(c->red, 0, 3 * c->k->nmembers * sizeof *c->red);
}

/* Row pc + kk of b's block for the current panel: its nr columns (zero past N, where the
 * masked reads give 0) into row kk of the packed panel. */
static void pk_pack_b(Cg *c, LLVMValueRef kk, void *arg) {
  Pk *pk = arg;
  LLVMBuilderRef B = c->B;
  Ix k = ix_scalar(LLVMBuildAdd(B, pk->pc, kk, "")), col = {ci64(c, 0), 1, NULL, 0}, P[DVM_MAX_RANK];
  LLVMValueRef row = LLVMBuildMul(B, kk, ci64(c, pk->t.nr), "");
  for (int v = 0; v < pk->nv; v++) {
    c->j = LLVMBuildAdd(B, pk->j0, ci64(c, (int64_t)v * c->W), "");
    c->mask = pk->colmask[v];
    gm_pos(c, pk->f.b, pk->f.tb ? col : k, pk->f.tb ? k : col, P);
    LLVMValueRef x = view_at(c, pk->f.b, P);
    c->mask = NULL;
    LLVMValueRef off = LLVMBuildAdd(B, row, ci64(c, (int64_t)v * c->W), "");
    LLVMSetAlignment(LLVMBuildStore(B, x, LLVMBuildGEP2(B, c->f32, pk->sb, &off, 1, "")), (unsigned)(4 * c->W));
  }
}

/* W x W floats transposed in registers: log2(W) rounds of the perfect shuffle (row i and
 * row i + W/2 interleaved into rows 2i and 2i + 1) transpose a square of power-of-two
 * side; LLVM lowers each two-source shuffle to one permute. */
static void transpose_sq(Cg *c, LLVMValueRef *v) {
  int W = c->W;
  LLVMValueRef lo[64], hi[64], nv[64];
  for (int l = 0; l < W; l++) {
    lo[l] = LLVMConstInt(c->i32, (unsigned)(l % 2 ? W + l / 2 : l / 2), 0);
    hi[l] = LLVMConstInt(c->i32, (unsigned)(l % 2 ? W + W / 2 + l / 2 : W / 2 + l / 2), 0);
  }
  LLVMValueRef mlo = LLVMConstVector(lo, (unsigned)W), mhi = LLVMConstVector(hi, (unsigned)W);
  for (int r = 1; r < W; r *= 2) {
    for (int i = 0; i < W / 2; i++) {
      nv[2 * i] = LLVMBuildShuffleVector(c->B, v[i], v[i + W / 2], mlo, "");
      nv[2 * i + 1] = LLVMBuildShuffleVector(c->B, v[i], v[i + W / 2], mhi, "");
    }
    memcpy(v, nv, (size_t)W * sizeof *v);
  }
}

/* Rows [kk, kk + W) of b's block for the current panel when b's k axis is the contiguous
 * one (kᵀ read by q @ kᵀ: reading columns along the lanes would gather a cache line per
 * element): per W columns, W vector reads along k (masked past kc and past N),
 * transposed into W rows of the panel. Rows past kc hold zeros and are never read. */
static void pk_pack_bt(Cg *c, LLVMValueRef chunk, void *arg) {
  Pk *pk = arg;
  LLVMBuilderRef B = c->B;
  LLVMValueRef kk = LLVMBuildMul(B, chunk, ci64(c, c->W), ""), v[64];
  LLVMValueRef kmask = tail_mask(c, LLVMBuildSub(B, pk->kc, kk, ""));
  Ix k = {pk->pc, 1, NULL, pk->t.kc}, P[DVM_MAX_RANK];
  for (int q = 0; q < pk->nv; q++) {
    for (int n = 0; n < c->W; n++) {
      LLVMValueRef col = LLVMBuildAdd(B, pk->j0, ci64(c, (int64_t)q * c->W + n), "");
      LLVMValueRef in = LLVMBuildICmp(B, LLVMIntSLT, col, pk->N, "");
      c->j = kk, c->mask = LLVMBuildAnd(B, kmask, vsplat(c, in, ""), "");
      gm_pos(c, pk->f.b, pk->f.tb ? ix_scalar(col) : k, pk->f.tb ? k : ix_scalar(col), P);
      v[n] = view_at(c, pk->f.b, P);
    }
    c->mask = NULL;
    transpose_sq(c, v);
    for (int n = 0; n < c->W; n++) {
      LLVMValueRef off = LLVMBuildAdd(B, LLVMBuildMul(B, LLVMBuildAdd(B, kk, ci64(c, n), ""), ci64(c, pk->t.nr), ""),
                                      ci64(c, (int64_t)q * c->W), "");
      LLVMSetAlignment(LLVMBuildStore(B, v[n], LLVMBuildGEP2(B, c->f32, pk->sb, &off, 1, "")), (unsigned)(4 * c->W));
    }
  }
}

/* One panel of nr columns in the current row and k blocks. */
static void pk_panel(Cg *c, LLVMValueRef jp, void *arg) {
  Pk *pk = arg;
  LLVMBuilderRef B = c->B;
  int64_t nr = pk->t.nr;
  pk->j0 = LLVMBuildMul(B, jp, ci64(c, nr), "");
  pk->jend = imin(c, LLVMBuildAdd(B, pk->j0, ci64(c, nr), ""), pk->N);
  for (int v = 0; v < pk->nv; v++)
    pk->colmask[v] = tail_mask(c, LLVMBuildSub(B, pk->N, LLVMBuildAdd(B, pk->j0, ci64(c, (int64_t)v * c->W), ""), ""));
  if (pk->f.bpre >= 0) {
    LLVMValueRef off = LLVMBuildAdd(B, LLVMBuildMul(B, LLVMBuildMul(B, jp, pk->K, ""), ci64(c, nr), ""),
                                    LLVMBuildMul(B, pk->pc, ci64(c, nr), ""), "");
    pk->panel = LLVMBuildGEP2(B, c->f32, pk->pb, &off, 1, "panel");
    /* the slice read next: the group's next panel in this k block, else its first panel in
     * the next k block, else the first panel of the next group (or row block) at k = 0 */
    LLVMValueRef j1 = LLVMBuildAdd(B, jp, ci64(c, 1), ""), more = LLVMBuildICmp(B, LLVMIntSLT, j1, pk->gend, "");
    LLVMValueRef after = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, pk->gend, pk->pend, ""), pk->gend, pk->pbegin, "");
    LLVMValueRef nj = LLVMBuildSelect(B, more, j1, LLVMBuildSelect(B, pk->last, after, pk->gbegin, ""), "");
    LLVMValueRef npc = LLVMBuildSelect(B, more, pk->pc, LLVMBuildSelect(B, pk->last, ci64(c, 0), LLVMBuildAdd(B, pk->pc, ci64(c, pk->t.kc), ""), ""), "");
    LLVMValueRef noff = LLVMBuildMul(B, LLVMBuildAdd(B, LLVMBuildMul(B, nj, pk->K, ""), npc, ""), ci64(c, nr), "");
    pk->next = LLVMBuildGEP2(B, c->f32, pk->pb, &noff, 1, "next");
  } else { /* b's kc x nr block of this panel, read through its view, into the stack block */
    row_bases(c, pk->ic, c->dom, c->r); /* the batch's indices */
    if (pk->bt) /* chunks of W values of k */
      counted(c, ci64(c, 0), LLVMBuildUDiv(B, LLVMBuildAdd(B, pk->kc, ci64(c, c->W - 1), ""), ci64(c, c->W), ""), 1,
              pk_pack_bt, pk);
    else
      counted(c, ci64(c, 0), pk->kc, 1, pk_pack_b, pk);
    pk->panel = pk->sb;
  }
  pk->rows = pk->t.mr;
  LLVMValueRef at = counted(c, pk->ic, pk->mend, pk->t.mr, pk_tile, pk);
  int s = 1;
  while (s * 2 < pk->t.mr) s *= 2;
  for (; s >= 1; s /= 2) { /* the rest: fewer than mr rows, each size at most once */
    pk->rows = s;
    at = counted(c, at, pk->mend, s, pk_tile, pk);
  }
  LLVMBasicBlockRef epi = LLVMAppendBasicBlockInContext(c->C, c->fn, "pk.epilogue"),
                    done = LLVMAppendBasicBlockInContext(c->C, c->fn, "pk.panel.done");
  LLVMBuildCondBr(B, pk->last, epi, done);
  LLVMPositionBuilderAtEnd(B, epi);
  counted(c, pk->ic, pk->mend, 1, pk_out_row, pk);
  LLVMBuildBr(B, done);
  LLVMPositionBuilderAtEnd(B, done);
}

/* One block of kc values of k (block kb) for the current row block. */
static void pk_kblock(Cg *c, LLVMValueRef kb, void *arg) {
  Pk *pk = arg;
  LLVMBuilderRef B = c->B;
  pk->pc = LLVMBuildMul(B, kb, ci64(c, pk->t.kc), "");
  LLVMValueRef after = LLVMBuildAdd(B, pk->pc, ci64(c, pk->t.kc), "");
  pk->kc = LLVMBuildSub(B, imin(c, after, pk->K), pk->pc, "");
  pk->first = LLVMBuildICmp(B, LLVMIntEQ, kb, ci64(c, 0), "");
  pk->last = LLVMBuildICmp(B, LLVMIntSGE, after, pk->K, "");
  if (!pk->f.adirect) counted(c, pk->ic, pk->mend, 1, pk_pack_a, pk);
  counted(c, pk->gbegin, pk->gend, 1, pk_panel, pk);
}

/* Group g of the row block's panels: every k block over them. */
static void pk_group(Cg *c, LLVMValueRef g, void *arg) {
  Pk *pk = arg;
  LLVMBuilderRef B = c->B;
  pk->gbegin = LLVMBuildAdd(B, pk->pbegin, LLVMBuildMul(B, g, pk->G, ""), "");
  pk->gend = imin(c, LLVMBuildAdd(B, pk->gbegin, pk->G, ""), pk->pend);
  LLVMValueRef kbs = LLVMBuildSDiv(B, LLVMBuildAdd(B, pk->K, ci64(c, pk->t.kc - 1), ""), ci64(c, pk->t.kc), "");
  kbs = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, kbs, ci64(c, 1), ""), ci64(c, 1), kbs, "");
  counted(c, ci64(c, 0), kbs, 1, pk_kblock, pk);
}

/* Row block ib: block ib % IB of product ib / IB (rows [ib·mb, ib·mb + mb) of [0, M)
 * when there is one product), with its panels in the call's items. */
static void pk_iblock(Cg *c, LLVMValueRef ib, void *arg) {
  Pk *pk = arg;
  LLVMBuilderRef B = c->B;
  LLVMValueRef prod = LLVMBuildMul(B, LLVMBuildUDiv(B, ib, pk->IB, ""), pk->Mg, "");
  pk->ic = LLVMBuildAdd(B, prod, LLVMBuildMul(B, LLVMBuildURem(B, ib, pk->IB, ""), pk->mb, ""), "");
  pk->mend = imin(c, LLVMBuildAdd(B, pk->ic, pk->mb, ""), LLVMBuildAdd(B, prod, pk->Mg, ""));
  LLVMValueRef first = LLVMBuildMul(B, ib, pk->P, "");
  LLVMValueRef lo = LLVMBuildSub(B, pk->begin, first, ""), hi = LLVMBuildSub(B, pk->end, first, "");
  pk->pbegin = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, lo, ci64(c, 0), ""), ci64(c, 0), lo, "");
  pk->pend = imin(c, hi, pk->P);
  /* groups of panels whose sums for the block's rows take about PK_SUMS bytes */
  LLVMValueRef rows = LLVMBuildSub(B, pk->mend, pk->ic, "");
  rows = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, rows, ci64(c, 1), ""), ci64(c, 1), rows, "");
  LLVMValueRef G = LLVMBuildSDiv(B, ci64(c, PK_SUMS / 4 / pk->t.nr), rows, "");
  pk->G = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, G, ci64(c, 1), ""), ci64(c, 1), G, "");
  LLVMValueRef ng = LLVMBuildSDiv(B, LLVMBuildAdd(B, LLVMBuildSub(B, pk->pend, pk->pbegin, ""), LLVMBuildSub(B, pk->G, ci64(c, 1), ""), ""), pk->G, "");
  counted(c, ci64(c, 0), ng, 1, pk_group, pk);
}

/* Items [begin, end) of a mix kernel whose weight is packed (bufs[ninputs + noutputs]):
 * item t is panel t % P of row block t / P (kn_extent). */
static void pk_items(Cg *c, LLVMValueRef begin, LLVMValueRef end, LLVMValueRef L, const KnPack *f) {
  const Kernel *k = c->k;
  LLVMBuilderRef B = c->B;
  Pk pk = {.t = kn_tile(c->W), .f = *f, .N = L, .begin = begin, .end = end, .M = ci64(c, 1)};
  for (int d = 0; d + 1 < c->r; d++) pk.M = LLVMBuildMul(B, pk.M, dimval(c, c->dom[d]), "rows");
  pk.Mg = f->batched ? dimval(c, c->dom[c->r - 2]) : pk.M;
  pk.IB = LLVMBuildUDiv(B, LLVMBuildAdd(B, pk.Mg, ci64(c, pk.t.mc - 1), ""), ci64(c, pk.t.mc), "");
  pk.IB = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, pk.IB, ci64(c, 1), ""), ci64(c, 1), pk.IB, "");
  /* rows per block: Mg split evenly over the IB blocks, rounded up to whole micro-kernels,
   * at most mc (so the last block is never empty: Mg > (IB - 1)·mc). A tail block of a few
   * rows would stream all of b for them (W5 1 thread: 2.7% faster at N = 1024, 7 x 144 +
   * 16 rows before; 7% at N = 160). */
  LLVMValueRef even = LLVMBuildUDiv(B, LLVMBuildAdd(B, pk.Mg, LLVMBuildSub(B, pk.IB, ci64(c, 1), ""), ""), pk.IB, "");
  pk.mb = LLVMBuildMul(B, LLVMBuildUDiv(B, LLVMBuildAdd(B, even, ci64(c, pk.t.mr - 1), ""), ci64(c, pk.t.mr), ""), ci64(c, pk.t.mr), "");
  pk.mb = imin(c, pk.mb, ci64(c, pk.t.mc));
  pk.nv = pk.t.nr / c->W;
  pk.K = dimval(c, ir_shape(c->g, f->a)[ir_node(c->g, f->a)->rank - (f->ta ? 2 : 1)]);
  pk.acc = buf(c, k->ninputs + (uint32_t)kn_full_output(c->p, k)); /* kn_pack_form: there is one */
  /* the packed blocks: static allocas of the entry block (this is still the entry block) */
  if (f->adirect) {
    pk.pa = buf(c, (uint32_t)input_index(c, f->a));
  } else {
    pk.sa = LLVMBuildAlloca(B, LLVMArrayType(c->f32, (unsigned)(pk.t.mc * pk.t.kc)), "packed.a");
    LLVMSetAlignment(pk.sa, 64);
    pk.pa = pk.sa; /* the micro-kernel reads a from the packed block */
    if (f->prologue) {
      pk.stats = LLVMBuildAlloca(B, LLVMArrayType(c->f32, (unsigned)(2 * pk.t.mc)), "prologue.stats");
      LLVMSetAlignment(pk.stats, 64);
    }
  }
  if (f->bpre >= 0) {
    LLVMValueRef at = LLVMBuildGEP2(B, c->ptr, c->bufs, (LLVMValueRef[]){ci64(c, k->ninputs + k->noutputs)}, 1, "");
    pk.pb = LLVMBuildLoad2(B, c->ptr, at, "packed");
  } else {
    pk.sb = LLVMBuildAlloca(B, LLVMArrayType(c->f32, (unsigned)(pk.t.kc * pk.t.nr)), "packed.b");
    LLVMSetAlignment(pk.sb, 64);
  }
  pk.bt = pk.sb && gathers_along(c, f->b, f->tb, 1) && !gathers_along(c, f->b, f->tb, 0);
  if (pk.sa || pk.sb) /* ~210 KB of stack: probe it page by page (a clean fault, never a skip) */
    LLVMAddAttributeAtIndex(c->fn, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(c->C, "probe-stack", 11, "inline-asm", 10));
  pk.P = LLVMBuildSDiv(B, LLVMBuildAdd(B, L, ci64(c, pk.t.nr - 1), ""), ci64(c, pk.t.nr), "panels");
  LLVMValueRef P1 = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, pk.P, ci64(c, 1), ""), ci64(c, 1), pk.P, "");
  LLVMValueRef ib0 = LLVMBuildSDiv(B, begin, P1, ""), ib1 = LLVMBuildSDiv(B, LLVMBuildAdd(B, end, LLVMBuildSub(B, P1, ci64(c, 1), ""), ""), P1, "");
  counted(c, ib0, ib1, 1, pk_iblock, &pk);
}


/* ---- mix: the general matmul --------------------------------------------------------------
 *
 * Operands that are views, batched (with broadcasting) or transposed: one output row at a
 * time, each operand read at its position through view_at (a's element as a splat, b's W
 * columns as a vector load or a gather), K products in four interleaved partial sums. A
 * correct loop for every layout; the GEMM issue makes these fast. */

typedef struct Gm {
  uint32_t a, b;
  bool ta, tb;
  bool dot;       /* dot form: lanes along k (b's columns would be gathers, its k is contiguous) */
  LLVMValueRef K, L, row;
} Gm;

/* Operand x's position for output row idx (batch dims right-aligned with the domain's,
 * broadcast ones at 0) and its last two indices (i0, i1). */
static void gm_pos(Cg *c, uint32_t x, Ix i0, Ix i1, Ix *P) {
  const Node *n = ir_node(c->g, x);
  for (int t = 0; t + 2 < n->rank; t++) {
    int d = t + c->r - n->rank;
    int64_t one;
    bool b = ir_dim_is_const(c->g, ir_shape(c->g, x)[t], &one) && one == 1 && ir_shape(c->g, x)[t] != c->dom[d];
    P[t] = b || d < 0 ? ix_scalar(ci64(c, 0)) : ix_scalar(c->idx[d]);
  }
  if (n->rank == 1) { /* a vector a: [K] @ b, its one dim is k */
    P[0] = i1;
    return;
  }
  P[n->rank - 2] = i0, P[n->rank - 1] = i1;
}

static void place_k(Cg *c, LLVMValueRef k) { c->kk = k; }

static LLVMValueRef gm_step(Cg *c, void *arg, LLVMValueRef acc) {
  Gm *gm = arg;
  Ix Pa[DVM_MAX_RANK], Pb[DVM_MAX_RANK], m = ix_scalar(row_index(c)), k = ix_scalar(c->kk),
     col = {ci64(c, 0), 1, NULL, 0};
  gm_pos(c, gm->a, gm->ta ? k : m, gm->ta ? m : k, Pa);
  gm_pos(c, gm->b, gm->tb ? col : k, gm->tb ? k : col, Pb);
  LLVMTypeRef t = c->vf;
  return intrinsic(c, "llvm.fma", &t, 1, (LLVMValueRef[]){view_at(c, gm->a, Pa), view_at(c, gm->b, Pb), acc}, 3);
}

static LLVMValueRef gm_body(Cg *c, void *arg, LLVMValueRef acc) {
  Gm *gm = arg;
  LLVMValueRef s[MAXU] = {splatf(c, 0), splatf(c, 0), splatf(c, 0), splatf(c, 0)};
  LLVMValueRef k = pos_loop(c, ci64(c, 0), gm->K, MAXU, 1, place_k, s, gm_step, gm);
  s[0] = LLVMBuildFAdd(c->B, LLVMBuildFAdd(c->B, s[0], s[1], ""), LLVMBuildFAdd(c->B, s[2], s[3], ""), "");
  pos_loop(c, k, gm->K, 1, 1, place_k, s, gm_step, gm);
  forget(c);
  c->mm = s[0];
  Store st = {gm->row, gm->L};
  return store_body(c, &st, acc);
}

/* Dot form (q @ kᵀ and other b read across its rows): each of the W output columns of the
 * block is a dot product with lanes along k, both operands read contiguously; W
 * accumulators, then each one's horizontal sum is one lane of the block's value. Lanes
 * beyond k's end, and columns beyond the row's end, are masked (never read). */
static void dot_chunk(Cg *c, Gm *gm, LLVMValueRef jcol, LLVMValueRef colmask, LLVMValueRef *acc) {
  LLVMTypeRef t = c->vf;
  Ix Pa[DVM_MAX_RANK], Pb[DVM_MAX_RANK], m = ix_scalar(row_index(c)), k = {ci64(c, 0), 1, NULL, 0};
  LLVMValueRef kmask = c->mask;
  bool guarded = c->guarded;
  gm_pos(c, gm->a, gm->ta ? k : m, gm->ta ? m : k, Pa);
  LLVMValueRef av = view_at(c, gm->a, Pa);
  for (int n = 0; n < c->W; n++) {
    Ix col = ix_scalar(LLVMBuildAdd(c->B, jcol, ci64(c, n), ""));
    gm_pos(c, gm->b, gm->tb ? col : k, gm->tb ? k : col, Pb);
    if (colmask) { /* column n of a tail block may lie past the row */
      LLVMValueRef on = vsplat(c, LLVMBuildExtractElement(c->B, colmask, LLVMConstInt(c->i32, (unsigned)n, 0), ""), "");
      c->mask = kmask ? LLVMBuildAnd(c->B, kmask, on, "") : on, c->guarded = true;
    }
    acc[n] = intrinsic(c, "llvm.fma", &t, 1, (LLVMValueRef[]){av, view_at(c, gm->b, Pb), acc[n]}, 3);
    c->mask = kmask, c->guarded = guarded;
  }
}

static LLVMValueRef dot_body(Cg *c, void *arg, LLVMValueRef unused) {
  Gm *gm = arg;
  LLVMBuilderRef B = c->B;
  LLVMValueRef jcol = c->j, colmask = c->mask, acc[64], phi[64];
  LLVMValueRef W = ci64(c, c->W);
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(B), head = LLVMAppendBasicBlockInContext(c->C, c->fn, "dot"),
                    body = LLVMAppendBasicBlockInContext(c->C, c->fn, "dot.body"),
                    tail = LLVMAppendBasicBlockInContext(c->C, c->fn, "dot.tail"),
                    done = LLVMAppendBasicBlockInContext(c->C, c->fn, "dot.done");
  LLVMBuildBr(B, head);
  LLVMPositionBuilderAtEnd(B, head);
  LLVMValueRef kk = LLVMBuildPhi(B, c->i64, "k");
  for (int n = 0; n < c->W; n++) phi[n] = LLVMBuildPhi(B, c->vf, "dot.acc");
  LLVMValueRef k1 = LLVMBuildAdd(B, kk, W, "");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLE, k1, gm->K, ""), body, tail);
  LLVMPositionBuilderAtEnd(B, body); /* whole vectors of k */
  for (int n = 0; n < c->W; n++) acc[n] = phi[n];
  c->j = kk, c->mask = NULL;
  dot_chunk(c, gm, jcol, colmask, acc);
  LLVMBasicBlockRef body_end = LLVMGetInsertBlock(B);
  LLVMBuildBr(B, head);
  LLVMAddIncoming(kk, (LLVMValueRef[]){ci64(c, 0), k1}, (LLVMBasicBlockRef[]){pre, body_end}, 2);
  for (int n = 0; n < c->W; n++)
    LLVMAddIncoming(phi[n], (LLVMValueRef[]){splatf(c, 0), acc[n]}, (LLVMBasicBlockRef[]){pre, body_end}, 2);
  LLVMPositionBuilderAtEnd(B, tail); /* the rest of k, masked (maybe none) */
  for (int n = 0; n < c->W; n++) acc[n] = phi[n];
  c->j = kk, c->mask = tail_mask(c, LLVMBuildSub(B, gm->K, kk, ""));
  dot_chunk(c, gm, jcol, colmask, acc);
  LLVMBuildBr(B, done);
  LLVMPositionBuilderAtEnd(B, done);
  LLVMValueRef sum = splatf(c, 0);
  for (int n = 0; n < c->W; n++)
    sum = LLVMBuildInsertElement(B, sum, lanes_sum(c, acc[n]), LLVMConstInt(c->i32, (unsigned)n, 0), "");
  c->j = jcol, c->mask = colmask;
  forget(c);
  c->mm = sum;
  Store st = {gm->row, gm->L};
  return store_body(c, &st, unused);
}

static void gm_row(Cg *c, LLVMValueRef row, void *arg) {
  Gm *gm = arg;
  gm->row = row;
  row_bases(c, row, c->dom, c->r);
  columns(c, gm->L, NULL, gm->dot ? dot_body : gm_body, gm);
}

/* Would reading b with its columns along the lanes gather, and reading both operands
 * along k not? */
static bool want_dot(Cg *c, Gm *gm) {
  return gathers_along(c, gm->b, gm->tb, 1) && !gathers_along(c, gm->b, gm->tb, 0) && !gathers_along(c, gm->a, gm->ta, 1);
}

/* Does the matmul need the general path? */
static bool mix_general(const Cg *c, uint32_t v) {
  uint32_t a = ir_operand(c->g, v, 0), b = ir_operand(c->g, v, 1);
  return ir_attr_int(c->g, v, AK_TRANSPOSE_A, 0) || ir_attr_int(c->g, v, AK_TRANSPOSE_B, 0) ||
         ir_node(c->g, b)->rank != 2 || input_index(c, a) < 0 || input_index(c, b) < 0;
}


/* A mix kernel off the packed path: the general matmul (views, batches, transposes), or a
 * 2-D b read in place, streamed for few rows. */
static void mix_kernel(Cg *c, LLVMValueRef begin, LLVMValueRef end) {
  const Partition *p = c->p;
  const Kernel *k = c->k;
  uint32_t ni = k->ninputs;
  const Dim *dom = c->dom;
  int r = c->r;
  LLVMValueRef L = c->L;
  if (mix_general(c, fu_members(p, k)[c->mm_member])) {
    uint32_t v = fu_members(p, k)[c->mm_member];
    Gm gm = {.a = ir_operand(c->g, v, 0), .b = ir_operand(c->g, v, 1), .L = L,
             .ta = ir_attr_int(c->g, v, AK_TRANSPOSE_A, 0) != 0, .tb = ir_attr_int(c->g, v, AK_TRANSPOSE_B, 0) != 0};
    const Node *an = ir_node(c->g, gm.a);
    gm.K = dimval(c, ir_shape(c->g, gm.a)[an->rank - (gm.ta ? 2 : 1)]);
    gm.dot = want_dot(c, &gm);
    counted(c, begin, end, 1, gm_row, &gm);
    return;
  }
  /* few rows: b streamed (blocks of SM_ROWS rows, then single rows), into the first
     full-shaped output's rows; otherwise blocks of MIX_ROWS rows, then single rows */
  int ao = kn_full_output(p, k); /* the sums' rows */
  uint32_t acc_out = ao < 0 ? k->noutputs : (uint32_t)ao;
  LLVMBasicBlockRef small = LLVMAppendBasicBlockInContext(c->C, c->fn, "small_m"),
                    big = LLVMAppendBasicBlockInContext(c->C, c->fn, "big_m"),
                    fin = LLVMAppendBasicBlockInContext(c->C, c->fn, "mix.done");
  LLVMValueRef few = LLVMBuildICmp(c->B, LLVMIntSLE, LLVMBuildSub(c->B, end, begin, ""), ci64(c, SMALL_M), "");
  LLVMBuildCondBr(c->B, acc_out < k->noutputs ? few : LLVMConstInt(c->i1, 0, 0), small, big);
  LLVMPositionBuilderAtEnd(c->B, small);
  if (acc_out < k->noutputs) {
    uint32_t v = fu_members(p, k)[c->mm_member];
    Sm sm = {.N = L, .a = ir_operand(c->g, v, 0), .b = ir_operand(c->g, v, 1), .rows = SM_ROWS,
             .acc = buf(c, ni + acc_out)};
    sm.K = dimval(c, ir_shape(c->g, sm.a)[ir_node(c->g, sm.a)->rank - 1]);
    LLVMValueRef at = counted(c, begin, end, SM_ROWS, sm_block, &sm);
    /* the 1..SM_ROWS-1 rows left: one block of exactly that many (b read once more) */
    LLVMValueRef left = LLVMBuildSub(c->B, end, at, "");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c->C, c->fn, "small_m.done");
    LLVMValueRef sw = LLVMBuildSwitch(c->B, left, done, SM_ROWS - 1);
    for (int rows = 1; rows < SM_ROWS; rows++) {
      LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(c->C, c->fn, "small_m.rest");
      LLVMAddCase(sw, ci64(c, rows), bb);
      LLVMPositionBuilderAtEnd(c->B, bb);
      sm.rows = rows;
      sm_block(c, at, &sm);
      LLVMBuildBr(c->B, done);
    }
    LLVMPositionBuilderAtEnd(c->B, done);
  }
  LLVMBuildBr(c->B, fin);
  LLVMPositionBuilderAtEnd(c->B, big);
  MixLoop ml = {dom, r, MIX_ROWS, L};
  LLVMValueRef at = counted(c, begin, end, MIX_ROWS, mix_iter, &ml);
  ml.rows = 1;
  counted(c, at, end, 1, mix_iter, &ml);
  LLVMBuildBr(c->B, fin);
  LLVMPositionBuilderAtEnd(c->B, fin);
}

/* ---- column mode: reductions over axes other than the last ------------------------------ */

/* Full-shaped outputs at the current row of the reduced axes. */
static LLVMValueRef store_full_body(Cg *c, void *arg, LLVMValueRef acc) {
  for (uint32_t o = 0; o < c->k->noutputs; o++) {
    uint32_t v = fu_outputs(c->p, c->k)[o];
    if (!is_full(c, v)) continue;
    LLVMValueRef ob, oin;
    value_base(c, v, c->idx, 0, &ob, &oin);
    store_value(c, v, buf(c, c->k->ninputs + o), LLVMBuildAdd(c->B, ob, c->j, ""), eval(c, v));
  }
  return acc;
}

/* Column mode streams whole rows: an item is a chunk of up to c->chunk columns (col_chunk)
 * of one index of the kept outer axes (a group), and each pass reads the chunk's part of
 * every reduced row in order, folding into a stack array of per-column accumulators.
 * Walking down a strip of a few columns instead would read a few lines of each 4 KB row
 * and cross a page per row, where the hardware prefetch stops: 2-3x slower from DRAM. The
 * per-column results of finished passes (the members' red, n1, n2) live in stack arrays
 * too, loaded at each column where later passes and the stores read them.
 *
 * Split (kn_col_blocks): with fewer groups than threads, the reduced rows of each group
 * are cut into P blocks. Items [0, P·G) fold block t / G of group t % G into the scratch
 * buffer (bufs[ninputs + noutputs + 2]); items [P·G, P·G + G), run after all of those,
 * combine the P partial folds of a group, in block order, and store its outputs. Only
 * kernels whose members fold once each, from nothing another fold computes, and that have
 * no full-shaped outputs, split (col_splits). */

typedef struct Stream {
  uint32_t m, x;       /* the member and what its passes read */
  int pass;
  KnPass ps;
  LLVMValueRef part;   /* the pass's accumulators, one per W columns: a stack array ... */
  LLVMValueRef sbase;  /* ... or (a split's block) at sbase + KN_SPLIT_BLOCK·W bytes per W
                          columns of the scratch buffer (argmax: values, then indices) */
  LLVMTypeRef pt;
  LLVMValueRef Lf;     /* the count of reduced rows (splat) */
  bool first;          /* s_fold4: the first rows, from the identity (not loaded) */
} Stream;

/* A stack array of chunk / W values of type t, made once in the entry block. */
static LLVMValueRef stack_array(Cg *c, LLVMTypeRef t) {
  LLVMBasicBlockRef at = LLVMGetInsertBlock(c->B);
  LLVMValueRef first = LLVMGetFirstInstruction(c->entry);
  if (first) LLVMPositionBuilderBefore(c->B, first);
  else LLVMPositionBuilderAtEnd(c->B, c->entry);
  LLVMValueRef a = LLVMBuildAlloca(c->B, LLVMArrayType2(t, (uint64_t)(c->chunk / c->W)), "cols");
  LLVMPositionBuilderAtEnd(c->B, at);
  return a;
}

/* The current column's block of W columns, counted from the item's first. */
static LLVMValueRef col_block(Cg *c) {
  return LLVMBuildUDiv(c->B, LLVMBuildSub(c->B, c->j, c->j0, ""), ci64(c, c->W), "");
}

/* The element of stack array a (of t) at the current column. */
static LLVMValueRef col_slot(Cg *c, LLVMTypeRef t, LLVMValueRef a) {
  LLVMValueRef jb = col_block(c);
  return LLVMBuildGEP2(c->B, t, a, &jb, 1, "");
}

/* p + off bytes. */
static LLVMValueRef byte_at(Cg *c, LLVMValueRef p, LLVMValueRef off) {
  return LLVMBuildGEP2(c->B, LLVMInt8TypeInContext(c->C), p, &off, 1, "");
}

/* The accumulators of stream s at the current column. */
static LLVMValueRef part_load(Cg *c, const Stream *s) {
  if (!s->sbase) return LLVMBuildLoad2(c->B, s->pt, col_slot(c, s->pt, s->part), "");
  LLVMValueRef at = byte_at(c, s->sbase, LLVMBuildMul(c->B, col_block(c), ci64(c, KN_SPLIT_BLOCK * c->W), "")), v;
  if (LLVMGetTypeKind(s->pt) != LLVMStructTypeKind) {
    v = LLVMBuildLoad2(c->B, s->pt, at, "");
    LLVMSetAlignment(v, 64);
    return v;
  }
  LLVMTypeRef vi = LLVMStructGetTypeAtIndex(s->pt, 1);
  LLVMValueRef a = LLVMBuildLoad2(c->B, c->vf, at, ""), ix = LLVMBuildLoad2(c->B, vi, byte_at(c, at, ci64(c, 4 * c->W)), "");
  LLVMSetAlignment(a, 64), LLVMSetAlignment(ix, 64);
  v = LLVMBuildInsertValue(c->B, LLVMGetUndef(s->pt), a, 0, "");
  return LLVMBuildInsertValue(c->B, v, ix, 1, "");
}

static void part_store(Cg *c, const Stream *s, LLVMValueRef v) {
  if (!s->sbase) {
    LLVMBuildStore(c->B, v, col_slot(c, s->pt, s->part));
    return;
  }
  LLVMValueRef at = byte_at(c, s->sbase, LLVMBuildMul(c->B, col_block(c), ci64(c, KN_SPLIT_BLOCK * c->W), ""));
  if (LLVMGetTypeKind(s->pt) != LLVMStructTypeKind) {
    LLVMSetAlignment(LLVMBuildStore(c->B, v, at), 64);
    return;
  }
  LLVMSetAlignment(LLVMBuildStore(c->B, LLVMBuildExtractValue(c->B, v, 0, ""), at), 64);
  LLVMSetAlignment(LLVMBuildStore(c->B, LLVMBuildExtractValue(c->B, v, 1, ""), byte_at(c, at, ci64(c, 4 * c->W))), 64);
}

/* The finished members' per-column results at the current column. */
static void load_states(Cg *c) {
  for (uint32_t i = 0; i < 3 * c->k->nmembers; i++)
    if (c->ready[i]) c->red[i] = LLVMBuildLoad2(c->B, c->slot_t[i], col_slot(c, c->slot_t[i], c->slot[i]), "");
}

static void forget_states(Cg *c) { memset(c->red, 0, 3 * c->k->nmembers * sizeof *c->red); }

/* The accumulators' type and the identity of stream s's fold. */
static LLVMValueRef s_identity(Cg *c, const Stream *s) {
  if (s->ps.what != W_ARGMAX) return identity(c, s->ps.f, (DType)ir_node(c->g, s->x)->dtype);
  LLVMTypeRef parts[2] = {c->vf, LLVMVectorType(c->i64, (unsigned)c->W)};
  LLVMTypeRef st = LLVMStructTypeInContext(c->C, parts, 2, 0);
  LLVMValueRef v = LLVMBuildInsertValue(c->B, LLVMGetUndef(st), splatf(c, -INFINITY), 0, "");
  return LLVMBuildInsertValue(c->B, v, LLVMConstNull(parts[1]), 1, "");
}

static LLVMValueRef s_init(Cg *c, void *arg, LLVMValueRef acc) {
  part_store(c, arg, s_identity(c, arg));
  return acc;
}

/* The current row's value at the current columns folded into accumulators a. */
static LLVMValueRef s_step(Cg *c, Stream *s, LLVMValueRef a) {
  if (s->ps.what == W_ARGMAX) return am_col_body(c, &s->x, a);
  Pass ps = {s->ps.f, (DType)ir_node(c->g, s->x)->dtype, s->x, s->ps.what, (int)s->m};
  return pass_body(c, &ps, a);
}

/* One row at the current columns, folded into the accumulators. */
static LLVMValueRef s_fold(Cg *c, void *arg, LLVMValueRef acc) {
  Stream *s = arg;
  load_states(c);
  part_store(c, s, s_step(c, s, part_load(c, s)));
  forget_states(c);
  return acc;
}

/* A loop body over rows: body at every column of the item's chunk. */
typedef struct RowBody {
  Body body;
  void *arg;
} RowBody;

static LLVMValueRef s_chunk(Cg *c, void *arg, LLVMValueRef acc) {
  RowBody *rb = arg;
  columns_from(c, c->j0, c->jend, NULL, rb->body, NULL, rb->arg, 1);
  return acc;
}

/* Four rows at once: their offsets kept by place_rows4, each row's values folded in
 * turn (the same order as one row at a time), so the accumulators are loaded and stored
 * once per four rows. */
#define ROW_STATE(c) (4 * (size_t)(c)->k->ninputs + DVM_MAX_RANK)

static void place_rows4(Cg *c, LLVMValueRef q) {
  size_t ni2 = 2 * (size_t)c->k->ninputs;
  for (int u = 0; u < 4; u++) {
    LLVMValueRef *at = c->rows4 + u * ROW_STATE(c);
    place_row(c, u ? LLVMBuildAdd(c->B, q, ci64(c, u), "") : q);
    memcpy(at, c->base, ni2 * sizeof *at);
    memcpy(at + ni2, c->inner, ni2 * sizeof *at);
    memcpy(at + 2 * ni2, c->idx, DVM_MAX_RANK * sizeof *at);
  }
}

static LLVMValueRef s_fold4(Cg *c, void *arg, LLVMValueRef acc) {
  Stream *s = arg;
  size_t ni2 = 2 * (size_t)c->k->ninputs;
  load_states(c);
  LLVMValueRef a = s->first ? s_identity(c, s) : part_load(c, s);
  for (int u = 0; u < 4; u++) {
    const LLVMValueRef *at = c->rows4 + u * ROW_STATE(c);
    memcpy(c->base, at, ni2 * sizeof *at);
    memcpy(c->inner, at + ni2, ni2 * sizeof *at);
    memcpy(c->idx, at + 2 * ni2, DVM_MAX_RANK * sizeof *at);
    forget(c);
    a = s_step(c, s, a);
  }
  part_store(c, s, a);
  forget_states(c);
  return acc;
}

/* Stream s's accumulators from rows [r0, r1): the first four rows from the identity, or
 * with fewer rows the identity stored first; then four rows at a time, then one. */
static void fold_rows(Cg *c, LLVMValueRef r0, LLVMValueRef r1, Stream *s) {
  LLVMBuilderRef B = c->B;
  LLVMValueRef none[1] = {NULL}, r4 = LLVMBuildAdd(B, r0, ci64(c, 4), "");
  LLVMBasicBlockRef first = LLVMAppendBasicBlockInContext(c->C, c->fn, "rows.first"),
                    init = LLVMAppendBasicBlockInContext(c->C, c->fn, "rows.init"),
                    rest = LLVMAppendBasicBlockInContext(c->C, c->fn, "rows.rest");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLE, r4, r1, ""), first, init);
  LLVMPositionBuilderAtEnd(B, first);
  place_rows4(c, r0);
  s->first = true;
  columns_from(c, c->j0, c->jend, NULL, s_fold4, NULL, s, 1);
  s->first = false;
  LLVMBasicBlockRef first_end = LLVMGetInsertBlock(B);
  LLVMBuildBr(B, rest);
  LLVMPositionBuilderAtEnd(B, init);
  columns_from(c, c->j0, c->jend, NULL, s_init, NULL, s, 1);
  LLVMBasicBlockRef init_end = LLVMGetInsertBlock(B);
  LLVMBuildBr(B, rest);
  LLVMPositionBuilderAtEnd(B, rest);
  LLVMValueRef q = LLVMBuildPhi(B, c->i64, "rows.from");
  LLVMAddIncoming(q, (LLVMValueRef[]){r4, r0}, (LLVMBasicBlockRef[]){first_end, init_end}, 2);
  forget(c);
  q = pos_loop(c, q, r1, 1, 4, place_rows4, none, s_chunk, &(RowBody){s_fold4, s});
  pos_loop(c, q, r1, 1, 1, place_row, none, s_chunk, &(RowBody){s_fold, s});
}

/* Member s->m's results from its pass's folds a, kept in its stack arrays for what comes
 * later (whole items; a split's combine stores its outputs at once instead). */
static void s_keep(Cg *c, const Stream *s, LLVMValueRef a) {
  if (s->ps.what == W_ARGMAX) a = LLVMBuildExtractValue(c->B, a, 1, "");
  finish_pass(c, s->m, s->pass, a, s->Lf);
  for (uint32_t q = 0; q < 3; q++) {
    uint32_t i = q * c->k->nmembers + s->m; /* red, n1, n2 */
    if (c->ready[i] || !c->red[i]) continue;
    if (!c->slot[i]) c->slot_t[i] = LLVMTypeOf(c->red[i]), c->slot[i] = stack_array(c, c->slot_t[i]);
    LLVMBuildStore(c->B, c->red[i], col_slot(c, c->slot_t[i], c->slot[i]));
  }
}

static LLVMValueRef s_finish(Cg *c, void *arg, LLVMValueRef acc) {
  load_states(c);
  s_keep(c, arg, part_load(c, arg));
  forget_states(c);
  return acc;
}

static LLVMValueRef s_store_full(Cg *c, void *arg, LLVMValueRef acc) {
  load_states(c);
  store_full_body(c, arg, acc);
  forget_states(c);
  return acc;
}

/* The reduced-shaped outputs at the current columns (c->red etc. loaded or computed). */
static void store_reduced(Cg *c) {
  for (uint32_t o = 0; o < c->k->noutputs; o++) {
    uint32_t v = fu_outputs(c->p, c->k)[o];
    if (is_full(c, v)) continue;
    LLVMValueRef ob, oin;
    value_base(c, v, c->idx, ir_node(c->g, v)->rank == c->rr && c->rr < c->r, &ob, &oin);
    store_value(c, v, buf(c, c->k->ninputs + o), LLVMBuildAdd(c->B, ob, c->j, ""), eval(c, v));
  }
}

/* The last pass's results, then the reduced outputs (a kernel without full-shaped ones). */
static LLVMValueRef s_finish_store(Cg *c, void *arg, LLVMValueRef acc) {
  load_states(c);
  s_keep(c, arg, part_load(c, arg));
  store_reduced(c);
  forget_states(c);
  return acc;
}

static LLVMValueRef s_store_reduced(Cg *c, void *arg, LLVMValueRef acc) {
  (void)arg;
  load_states(c);
  store_reduced(c);
  forget_states(c);
  return acc;
}

/* Stream s for pass i of member m (its accumulators not placed yet). */
static Stream stream_of(Cg *c, uint32_t m, int i, KnPass ps, LLVMValueRef Lf) {
  Stream s = {.m = m, .x = ir_operand(c->g, fu_members(c->p, c->k)[m], 0), .pass = i, .ps = ps, .Lf = Lf};
  s.pt = LLVMTypeOf(s_identity(c, &s));
  return s;
}

/* Group g of the outer range: its columns [j0, jend) and the kept outer indices; returns
 * the count of reduced rows. */
static LLVMValueRef col_group(Cg *c, LLVMValueRef g) {
  LLVMBuilderRef B = c->B;
  int r = c->r;
  LLVMValueRef L = dimval(c, c->dom[r - 1]), CH = ci64(c, c->chunk);
  LLVMValueRef nc = LLVMBuildUDiv(B, LLVMBuildAdd(B, L, ci64(c, c->chunk - 1), ""), CH, "chunks");
  LLVMValueRef ko = LLVMBuildUDiv(B, g, nc, "");
  c->j0 = LLVMBuildMul(B, LLVMBuildURem(B, g, nc, ""), CH, "");
  LLVMValueRef e = LLVMBuildAdd(B, c->j0, CH, "");
  c->jend = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, e, L, ""), e, L, "");
  LLVMValueRef R = ci64(c, 1);
  bool outer_done = false;
  for (int d = r - 2; d >= 0; d--) {
    if (c->axes >> d & 1) {
      R = LLVMBuildMul(B, R, dimval(c, c->dom[d]), "");
      c->idx[d] = ci64(c, 0);
      continue;
    }
    bool outermost = true;
    for (int e2 = 0; e2 < d; e2++) outermost &= (c->axes >> e2 & 1) != 0;
    if (outermost && !outer_done) {
      c->idx[d] = ko, outer_done = true;
    } else {
      LLVMValueRef n = dimval(c, c->dom[d]);
      c->idx[d] = LLVMBuildURem(B, ko, n, "");
      ko = LLVMBuildUDiv(B, ko, n, "");
    }
  }
  forget_states(c);
  forget(c);
  return R;
}

/* The reduced outer indices at 0 and the inputs' offsets there: where reduced-shaped
 * outputs are stored. */
static void at_reduced(Cg *c) {
  for (int d = 0; d < c->r - 1; d++)
    if (c->axes >> d & 1) c->idx[d] = ci64(c, 0);
  input_bases(c, c->idx);
  forget(c);
}

/* A whole group: the passes, then the full-shaped outputs row by row, then the reduced
 * ones. */
static void col_whole(Cg *c, LLVMValueRef g) {
  LLVMValueRef R = col_group(c, g), none[1] = {NULL};
  LLVMValueRef Lf = vsplat(c, LLVMBuildSIToFP(c->B, R, c->f32, ""), "");
  bool full = false;
  for (uint32_t o = 0; o < c->k->noutputs; o++) full |= is_full(c, fu_outputs(c->p, c->k)[o]);
  int left = 0; /* passes to go */
  KnPass ps[2];
  for (uint32_t m = 0; m < c->k->nmembers; m++) left += kn_passes((Op)ir_node(c->g, fu_members(c->p, c->k)[m])->op, ps);
  memset(c->ready, 0, 3 * c->k->nmembers);
  for (uint32_t m = 0; m < c->k->nmembers; m++) {
    int np = kn_passes((Op)ir_node(c->g, fu_members(c->p, c->k)[m])->op, ps);
    for (int i = 0; i < np; i++) {
      Stream s = stream_of(c, m, i, ps[i], Lf);
      int q = 0; /* one accumulator array per type, shared by the passes */
      while (q < 4 && c->part_t[q] && c->part_t[q] != s.pt) q++;
      if (q == 4) ir_oom(); /* four types at most: f32, i32, i64 and argmax's pairs */
      if (!c->part_t[q]) c->part_t[q] = s.pt, c->part[q] = stack_array(c, s.pt);
      s.part = c->part[q];
      fold_rows(c, ci64(c, 0), R, &s);
      if (--left == 0 && !full) { /* the last pass stores the outputs at once */
        at_reduced(c);
        columns_from(c, c->j0, c->jend, NULL, s_finish_store, NULL, &s, 1);
        return;
      }
      columns_from(c, c->j0, c->jend, NULL, s_finish, NULL, &s, 1);
      for (uint32_t q3 = 0; q3 < 3; q3++) {
        uint32_t k3 = q3 * c->k->nmembers + m;
        c->ready[k3] |= c->slot[k3] != NULL;
      }
    }
  }
  if (full) pos_loop(c, ci64(c, 0), R, 1, 1, place_row, none, s_chunk, &(RowBody){s_store_full, NULL});
  at_reduced(c);
  columns_from(c, c->j0, c->jend, NULL, s_store_reduced, NULL, NULL, 1);
}

typedef struct Split {
  LLVMValueRef P, G, R, Lf;
  LLVMValueRef g, p;    /* group and block */
  LLVMValueRef scratch; /* bufs[ninputs + noutputs + 2] */
  LLVMValueRef group;   /* bytes of one (group, block) pair: members x blocks of W columns */
  LLVMValueRef member;  /* ... and of one member in it */
} Split;

/* Where member slot n's accumulators of block p of group g start. */
static LLVMValueRef split_base(Cg *c, const Split *sp, LLVMValueRef p, int n) {
  LLVMBuilderRef B = c->B;
  LLVMValueRef pair = LLVMBuildAdd(B, LLVMBuildMul(B, sp->g, sp->P, ""), p, "");
  LLVMValueRef off = LLVMBuildAdd(B, LLVMBuildMul(B, pair, sp->group, ""), LLVMBuildMul(B, ci64(c, n), sp->member, ""), "");
  return byte_at(c, sp->scratch, off);
}

/* Block sp->p of group sp->g: its rows folded into its accumulators in the scratch. */
static void col_block_fold(Cg *c, Split *sp) {
  LLVMBuilderRef B = c->B;
  LLVMValueRef r0 = LLVMBuildSDiv(B, LLVMBuildMul(B, sp->p, sp->R, ""), sp->P, "");
  LLVMValueRef r1 = LLVMBuildSDiv(B, LLVMBuildMul(B, LLVMBuildAdd(B, sp->p, ci64(c, 1), ""), sp->R, ""), sp->P, "");
  int n = 0;
  for (uint32_t m = 0; m < c->k->nmembers; m++) {
    KnPass ps[2];
    if (kn_passes((Op)ir_node(c->g, fu_members(c->p, c->k)[m])->op, ps) != 1) continue;
    Stream s = stream_of(c, m, 0, ps[0], sp->Lf);
    s.sbase = split_base(c, sp, sp->p, n++);
    fold_rows(c, r0, r1, &s);
  }
}

typedef struct Combine1 {
  Stream *s;
  const Split *sp;
  int n;
} Combine1;

/* Block q's accumulators at the current column folded into acc. */
static LLVMValueRef s_combine1(Cg *c, void *arg, LLVMValueRef acc) {
  Combine1 *cb = arg;
  Stream s = *cb->s;
  s.sbase = split_base(c, cb->sp, c->kk, cb->n);
  LLVMValueRef b = part_load(c, &s);
  if (s.ps.what == W_ARGMAX) return am_pick(c, acc, b);
  return fold_op(c, s.ps.f, (DType)ir_node(c->g, s.x)->dtype, acc, b);
}

static void place_block(Cg *c, LLVMValueRef q) { c->kk = q; }

/* The current columns of a split group: every member's P blocks combined in order, its
 * results, then the reduced outputs. */
static LLVMValueRef s_combine(Cg *c, void *arg, LLVMValueRef acc) {
  const Split *sp = arg;
  LLVMValueRef j = c->j, mask = c->mask;
  int n = 0;
  for (uint32_t m = 0; m < c->k->nmembers; m++) {
    KnPass ps[2];
    if (kn_passes((Op)ir_node(c->g, fu_members(c->p, c->k)[m])->op, ps) != 1) continue;
    Stream s = stream_of(c, m, 0, ps[0], sp->Lf);
    Combine1 cb = {&s, sp, n++};
    LLVMValueRef a[1] = {s_identity(c, &s)};
    pos_loop(c, ci64(c, 0), sp->P, 1, 1, place_block, a, s_combine1, &cb);
    c->j = j, c->mask = mask;
    if (s.ps.what == W_ARGMAX) a[0] = LLVMBuildExtractValue(c->B, a[0], 1, "");
    finish_pass(c, m, 0, a[0], sp->Lf);
  }
  store_reduced(c);
  forget_states(c);
  return acc;
}

/* A split kernel's item t (P > 1): a block's fold, or a group's combine. */
static void col_split_item(Cg *c, LLVMValueRef t, Split *sp) {
  LLVMBuilderRef B = c->B;
  LLVMValueRef folds = LLVMBuildMul(B, sp->P, sp->G, "");
  LLVMBasicBlockRef fold = LLVMAppendBasicBlockInContext(c->C, c->fn, "split.fold"),
                    comb = LLVMAppendBasicBlockInContext(c->C, c->fn, "split.combine"),
                    done = LLVMAppendBasicBlockInContext(c->C, c->fn, "split.done");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, t, folds, ""), fold, comb);
  LLVMPositionBuilderAtEnd(B, fold);
  sp->g = LLVMBuildURem(B, t, sp->G, ""), sp->p = LLVMBuildUDiv(B, t, sp->G, "");
  sp->R = col_group(c, sp->g);
  sp->Lf = vsplat(c, LLVMBuildSIToFP(B, sp->R, c->f32, ""), "");
  col_block_fold(c, sp);
  LLVMBuildBr(B, done);
  LLVMPositionBuilderAtEnd(B, comb);
  sp->g = LLVMBuildSub(B, t, folds, "");
  sp->R = col_group(c, sp->g);
  sp->Lf = vsplat(c, LLVMBuildSIToFP(B, sp->R, c->f32, ""), "");
  at_reduced(c);
  columns_from(c, c->j0, c->jend, NULL, s_combine, NULL, sp, 1);
  LLVMBuildBr(B, done);
  LLVMPositionBuilderAtEnd(B, done);
  forget(c);
}

/* Column mode's item t: a whole group when the kernel does not split (P = dims[ndims] is
 * 1), else col_split_item. */
static void col_item(Cg *c, LLVMValueRef t, void *arg) {
  Split *sp = arg;
  if (!sp) {
    col_whole(c, t);
    return;
  }
  LLVMBuilderRef B = c->B;
  LLVMBasicBlockRef whole = LLVMAppendBasicBlockInContext(c->C, c->fn, "col.whole"),
                    split = LLVMAppendBasicBlockInContext(c->C, c->fn, "col.split"),
                    done = LLVMAppendBasicBlockInContext(c->C, c->fn, "col.item.done");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSGT, sp->P, ci64(c, 1), ""), split, whole);
  LLVMPositionBuilderAtEnd(B, whole);
  col_whole(c, t);
  LLVMBuildBr(B, done);
  LLVMPositionBuilderAtEnd(B, split);
  col_split_item(c, t, sp);
  LLVMBuildBr(B, done);
  LLVMPositionBuilderAtEnd(B, done);
  forget(c);
}

/* Column mode's kernel: items of groups of columns (col_item), or with a split, blocks of
 * them and then the combine items (kn_col_blocks). */
static void col_kernel(Cg *c, LLVMValueRef begin, LLVMValueRef end) {
  const Partition *p = c->p;
  const Kernel *k = c->k;
  uint32_t nm = k->nmembers, ni = k->ninputs;
  const Dim *dom = c->dom;
  int r = c->r;
  LLVMValueRef L = c->L;
  c->chunk = kn_col_chunk(p, k, c->NW);
  c->slot = calloc(3 * (size_t)nm, sizeof *c->slot + sizeof *c->slot_t + 1);
  if (!c->slot) ir_oom();
  c->slot_t = (LLVMTypeRef *)(c->slot + 3 * nm), c->ready = (uint8_t *)(c->slot_t + 3 * nm);
  if (!(c->rows4 = calloc(4 * ROW_STATE(c), sizeof *c->rows4))) ir_oom();
  Split sp = {0}, *split = NULL;
  int folds = kn_col_splits(p, k);
  if (folds) { /* the blocks, groups and scratch layout of kn_col_blocks */
    LLVMBuilderRef B = c->B;
    LLVMValueRef at = LLVMBuildGEP2(B, c->i64, c->dims, (LLVMValueRef[]){ci64(c, k->ndims)}, 1, "");
    sp.P = LLVMBuildLoad2(B, c->i64, at, "blocks");
    at = LLVMBuildGEP2(B, c->ptr, c->bufs, (LLVMValueRef[]){ci64(c, ni + k->noutputs + 2)}, 1, "");
    sp.scratch = LLVMBuildLoad2(B, c->ptr, at, "scratch");
    LLVMValueRef rows = ci64(c, 1), CH = ci64(c, c->chunk), W = ci64(c, c->W);
    for (int d = 0; d < r - 1; d++)
      if (!(k->axes >> d & 1)) rows = LLVMBuildMul(B, rows, dimval(c, dom[d]), "");
    sp.G = LLVMBuildMul(B, rows, LLVMBuildUDiv(B, LLVMBuildAdd(B, L, ci64(c, c->chunk - 1), ""), CH, ""), "groups");
    LLVMValueRef cols = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, L, CH, ""), L, CH, "");
    LLVMValueRef nb = LLVMBuildUDiv(B, LLVMBuildAdd(B, cols, ci64(c, c->W - 1), ""), W, "");
    sp.member = LLVMBuildMul(B, nb, ci64(c, KN_SPLIT_BLOCK * c->W), "");
    sp.group = LLVMBuildMul(B, sp.member, ci64(c, folds), "");
    split = &sp;
  }
  counted(c, begin, end, 1, col_item, split);
}

/* ---- the function --------------------------------------------------------------------------- */


void jit_emit_extern(const Partition *p, const Kernel *k, LLVMContextRef C, LLVMModuleRef M, const char *name);

/* Emit kernel k as function `name` into module M (context C); W lanes, libmvec prefix. */
void jit_emit(const Partition *p, const Kernel *k, LLVMContextRef C, LLVMModuleRef M,
              const char *name, int W, const char *mvec_prefix) {
  if (k->kind == KK_EXTERN) {
    jit_emit_extern(p, k, C, M, name);
    return;
  }
  Cg c = {.p = p, .g = p->g, .k = k, .W = W, .NW = W, .mvec = mvec_prefix, .C = C, .M = M,
          .mm_member = -1, .stash_member = -1};
  if (kn_col_mode(p->g, k)) c.W = W * KN_COL_VECS;
  c.f32 = LLVMFloatTypeInContext(C);
  c.i1 = LLVMInt1TypeInContext(C);
  c.i32 = LLVMInt32TypeInContext(C);
  c.i64 = LLVMInt64TypeInContext(C);
  c.ptr = LLVMPointerTypeInContext(C, 0);
  c.vf = LLVMVectorType(c.f32, (unsigned)c.W);
  LLVMTypeRef params[4] = {c.ptr, c.ptr, c.i64, c.i64};
  c.fn = LLVMAddFunction(M, name, LLVMFunctionType(LLVMVoidTypeInContext(C), params, 4, 0));
  c.B = LLVMCreateBuilderInContext(C);
  uint32_t nm = k->nmembers, ni = k->ninputs;
  size_t nb = ni + k->noutputs;
  LLVMValueRef *mem = calloc(4 * (size_t)nm + 5 * (size_t)ni + nb + k->ndims + 2, sizeof *mem);
  if (!mem) ir_oom();
  c.memo = mem, c.red = mem + nm, c.n1 = mem + 2 * nm, c.n2 = mem + 3 * nm;
  c.base = mem + 4 * nm, c.inner = mem + 4 * nm + 2 * ni;
  c.bufp = mem + 4 * nm + 4 * ni, c.dimv = mem + 4 * nm + 4 * ni + nb;
  c.next = mem + 4 * nm + 4 * ni + nb + k->ndims;
  for (uint32_t m = 0; m < nm; m++)
    if (ir_node(c.g, fu_members(p, k)[m])->op == OP_MATMUL) c.mm_member = (int)m;
  c.bufs = LLVMGetParam(c.fn, 0), c.dims = LLVMGetParam(c.fn, 1);
  LLVMValueRef begin = LLVMGetParam(c.fn, 2), end = LLVMGetParam(c.fn, 3);
  LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(C, c.fn, "entry");
  c.entry = entry;
  LLVMPositionBuilderAtEnd(c.B, entry);
  load_params(&c);
  /* the domain: rows (outer, parallel) x L (the last axis) */
  const Node *dn = ir_node(c.g, k->domain);
  const Dim *dom = ir_shape(c.g, k->domain);
  int r = dn->rank;
  c.r = r, c.rr = r, c.dom = dom;
  if (k->kind == KK_ROW) {
    c.axes = k->axes;
    c.rr = r - __builtin_popcount(k->axes);
    c.col = kn_col_mode(c.g, k);
    c.multi = kn_multi_mode(c.g, k);
  }
  /* column mode: values of KN_COL_VECS host vectors, so that each row of the fold reads
     several cache lines of a column strip (LLVM splits the wide operations) */
  LLVMValueRef L = r ? dimval(&c, dom[r - 1]) : ci64(&c, 1);
  c.L = L;
  KnPack pf;
  if (c.col) col_kernel(&c, begin, end);
  else if (k->kind == KK_MIX && kn_pack_form(p, k, &pf)) pk_items(&c, begin, end, L, &pf); /* row blocks x panels */
  else if (k->kind == KK_MIX) mix_kernel(&c, begin, end);
  else row_kernel(&c, begin, end);
  LLVMBuildRetVoid(c.B);
  LLVMDisposeBuilder(c.B);
  free(c.slot);
  free(c.rows4);
  free(mem);
}
