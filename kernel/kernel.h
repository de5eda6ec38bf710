/* kernel/kernel.h — the map of the kernel layer: what both code-generating tiers (the
 * bytecode of vm/ and the native code of jit/) decide alike about a fused Kernel, written
 * once, so that neither back end decides a kernel's shape for the other.
 *
 *   coverage      which ops each tier runs (kernel/cover.def, kn_op_cover), which kernels
 *                 the two tiers emit (kn_supported), and why not
 *   shape         the loop structure: rows, column mode (reductions that keep the last
 *                 axis), multi mode (the last axis and others reduced), the passes each
 *                 folding member makes over a row, the mix kernel's packed path
 *   extent        the outer parallel range of the kernel ABI and column mode's splits
 *   GEMM tiles    register and cache blocking, and the packed weight layout the runtime
 *                 makes once per param
 *   constants     the polynomial coefficients both tiers' exp and 2^t round alike
 *   extern calls  where each argument of an extern kernel's function comes from
 *
 * The kernel ABI (both tiers):
 *
 *   void kernel(void *const *bufs, const int64_t *dims, int64_t begin, int64_t end);
 *
 * bufs: the kernel's inputs then its outputs (fusion order); dims: the values of its
 * symbolic dim parameters (Kernel.dims); [begin, end): the slice of its outer parallel
 * range (kn_extent) this call covers. Extras after the outputs: a mix kernel's packed
 * weight (kn_packed_input) at bufs[ninputs + noutputs]; column mode's block count at
 * dims[ndims] and, when above 1, its scratch at bufs[ninputs + noutputs + 2]
 * (kn_col_blocks).
 *
 * The lowered kernel (KnKernel, lower.c) is built once per kernel by the pipeline and is
 * all the back ends read: the coverage decision, the loop structure (KnLoop), the values
 * by number with their dtypes and dims (each a dim parameter or a constant, KnDim), per
 * member one instruction of kernel/ops.def over value numbers with its immediates
 * resolved, each folding member's passes, each view's index map, the constants, the
 * product, the packed form, the stash and the extern call plan, and the body of each pass,
 * of the stores and of a packed prologue as a program (KnProg): the values it evaluates,
 * in order. No code in vm/ or jit/ uses the graph or the partition
 * (tests/check_layers.py). What each back end still builds itself is the code of each
 * program entry, the loops around the bodies and the strides from kn_layout.
 *
 * Files: ops.def (the lowered instruction set), cover.def (the op coverage table),
 * cover.c (coverage and modes), shape.c (passes, the packed path, extent and splits),
 * gemm.c (tiles and the packed layout), extern.c (extern call plans), lower.c (the
 * lowered kernel, its programs and its dump), verify.c (its verifier). */
#ifndef DVM_KERNEL_H
#define DVM_KERNEL_H

#include "../fusion/fusion.h"

struct KnKernel; /* the lowered kernel, below */

/* ---- constants both tiers evaluate alike --------------------------------------------- */

/* 2^f for f in [-1/2, 1/2]: a degree-5 polynomial, coefficients of f^0..f^5 (relative
 * error 2.1e-7, a Lawson minimax fit rounded to float): gelu_tanh's and softmax's 2^t. */
#define KN_EXP2_POLY {1.0000001192092896f, 0.6931469440460205f, 0.24022120237350464f, \
                      0.05550713464617729f, 0.009675540030002594f, 0.0013276454992592335f}
/* exp(x) (Cephes expf): x clamped to [KN_EXP_LO, KN_EXP_HI], n = rne(x·log2 e),
 * r = x - n·ln2 with ln2 = -KN_LN2_HI - KN_LN2_LO (two fmas), a degree-6 polynomial in r
 * (KN_EXP_POLY, highest power first, then y·r² + r + 1), scaled by 2^n; above
 * KN_EXP_OVER inf, below KN_EXP_UNDER 0. */
#define KN_LOG2E 1.44269504088896341
#define KN_EXP_LO (-104.0)
#define KN_EXP_HI 89.0
#define KN_LN2_HI (-0.693359375)
#define KN_LN2_LO 2.12194440e-4
#define KN_EXP_POLY {1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, \
                     4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1}
#define KN_EXP_OVER 88.72283935546875
#define KN_EXP_UNDER (-103.972084045410)
/* 2^t is taken for t in [KN_POW2_LO, KN_POW2_HI] (0 and inf past it). */
#define KN_POW2_LO (-150.0)
#define KN_POW2_HI 128.0
/* gelu_tanh(x) = x / (1 + 2^t), t = x·(KN_GELU_C1 + KN_GELU_C3·x²): -2·sqrt(2/pi)·log2 e
 * and its 0.044715 multiple. */
#define KN_GELU_C1 (-2 * 0.7978845608028654 * 1.4426950408889634)
#define KN_GELU_C3 (KN_GELU_C1 * 0.044715)

/* ---- op and dtype classes (cover.c) -------------------------------------------------- */

/* The 8- and 16-bit integers are i32 in registers, u32 is i64, each sign- or
 * zero-extended from its width and wrapped back to it by every op that makes one (the
 * reference wraps each op's result to its dtype), as f16 and bf16 are f32 rounded to theirs.
 * Extended so, signed compares, divisions and max/min are right for the unsigned ones. */
static inline bool kn_is_narrow(DType t) { return t == DT_I8 || t == DT_I16 || t == DT_U8 || t == DT_U16 || t == DT_U32; }
/* The integers kernels compute: not u64, whose compares and divisions are unsigned. */
static inline bool kn_is_int(DType t) { return t == DT_I32 || t == DT_I64 || kn_is_narrow(t); }
/* f16 and bf16 values are f32 in registers, rounded to their dtype by every op that
 * makes one (the reference rounds each op's result to its dtype) and stored as 16 bits. */
static inline bool kn_is_low(DType t) { return t == DT_F16 || t == DT_BF16; }
static inline bool kn_is_flt(DType t) { return t == DT_F32 || kn_is_low(t); }
/* Dtypes whose registers are wider than their elements: converted at every load and store
 * and made their dtype's again after every op. */
static inline bool kn_widened(DType t) { return kn_is_low(t) || kn_is_narrow(t); }
/* Dtypes a kernel reads and writes. */
static inline bool kn_stored(DType t) { return kn_is_flt(t) || t == DT_BOOL || kn_is_int(t); }
/* Views are index maps: a view reads its operand at a computed position, down to a
 * kernel input's element offset. */
static inline bool kn_is_view(Op op) {
  switch (op) {
  case OP_TRANSPOSE: case OP_RESHAPE: case OP_SQUEEZE: case OP_UNSQUEEZE: case OP_BROADCAST_TO:
  case OP_SLICE: case OP_CONCAT: case OP_FULL: case OP_ARANGE: case OP_GATHER: return true;
  default: return false;
  }
}
/* Compares, bool logic, select and casts: ops on f32 or bool operands with a bool result,
 * or on bool masks, and the conversions between dtypes. */
static inline bool kn_elementwise_bool(Op op) {
  switch (op) {
  case OP_EQ: case OP_NE: case OP_LT: case OP_LE: case OP_GT: case OP_GE: case OP_AND: case OP_OR:
  case OP_NOT: case OP_SELECT: case OP_CAST: return true;
  default: return false;
  }
}
static inline bool kn_is_reduction(Op op) {
  return op == OP_REDUCE_SUM || op == OP_REDUCE_MEAN || op == OP_REDUCE_MAX || op == OP_REDUCE_MIN ||
         op == OP_REDUCE_PROD;
}
static inline bool kn_is_norm(Op op) {
  return op == OP_SOFTMAX || op == OP_LOG_SOFTMAX || op == OP_LAYERNORM || op == OP_RMSNORM;
}

/* ---- coverage and modes (cover.c) ---------------------------------------------------- */

/* The tiers of kernel/cover.def's columns, in its order. */
typedef enum KnTier { KN_TIER_REF, KN_TIER_VM, KN_TIER_LLVM, KN_NTIERS } KnTier;
/* Does tier `tier` (a KnTier) run op `op` (kernel/cover.def)? NULL if it does (for vm and
 * llvm: the op's part of the answer; kn_supported and vm_encode still check each kernel's
 * dtypes and shapes), else why not, a static string. An op or tier out of range gets a
 * reason too. */
const char *kn_op_cover(Op op, int tier);

/* Can the code-generating tiers emit kernel k? If not, why (for the entry and the dumps):
 * such kernels run on the kernel-level reference path. */
bool kn_supported(const Partition *p, const Kernel *k, char *why, size_t n);
/* Row kernel shapes emitted apart: column mode keeps the last axis and reduces others
 * (a mean over N); multi mode reduces the last axis and others (a global pool over
 * [H, W]: each row of kept indices folds over the reduced outer indices too). */
bool kn_col_mode(const Graph *g, const Kernel *k);
bool kn_multi_mode(const Graph *g, const Kernel *k);

/* ---- passes (shape.c) ------------------------------------------------------------------ */

/* How a pass folds. FOLD_MAX_ORD: x > acc ? x : acc (one maxps), NaNs passed over:
 * softmax's max, where a NaN of the row reaches every result through exp(x - max) in the
 * sum pass anyway (and an inf makes inf - inf there), so the results are the
 * reference's, NaN rows included. */
typedef enum Fold { FOLD_SUM, FOLD_MAX, FOLD_MIN, FOLD_PROD, FOLD_MAX_ORD } Fold;
/* What a pass folds: the value, exp(x - max), (x - mean)², x², or argmax's (value,
 * index) pairs. */
enum { W_VALUE, W_EXP_SHIFTED, W_SQ_CENTERED, W_SQ, W_ARGMAX };
/* What a pass's folded result x becomes (count: the elements folded per row):
 * x; x / count; 1 / x; the first pass's result + log x; 1 / sqrt(x / count + eps). */
typedef enum KnPost { KP_COPY, KP_MEAN, KP_RECIP, KP_LOGADD, KP_RSQRT, KP_COUNT } KnPost;
/* Where it goes: the member's value (a reduction's), or its first or second per-row
 * scalar (a normalization's: softmax's max and 1/sum, layernorm's mean and rstd,
 * rmsnorm's rstd). */
typedef enum KnDst { KD_VALUE, KD_N1, KD_N2 } KnDst;
typedef struct KnPass {
  Fold f;
  int what;
  uint8_t post;   /* KnPost */
  uint8_t dst;    /* KnDst */
} KnPass;
/* The passes over the row that a member with op `op` makes (at most 2), in order; 0 for
 * members that are not reductions or normalizations. */
int kn_passes(Op op, KnPass *ps);

/* ---- dims and operands against the domain (shape.c) -------------------------------- */

/* A dim as the back ends take it: the kernel's dim parameter dims[q] (q >= 0; c is 0), or
 * the constant c (q < 0). Every symbolic dim a kernel reads is one of its parameters
 * (fu_key numbers them), so two dims of one kernel are equal exactly when these are. */
typedef struct KnDim {
  int64_t c;
  int32_t q;
} KnDim;
static inline bool kn_dim_eq(KnDim a, KnDim b) { return a.q == b.q && a.c == b.c; }
static inline bool kn_dim_is(KnDim a, int64_t c) { return a.q < 0 && a.c == c; }
/* Dim d of kernel k in the lowered form. */
KnDim kn_dim(const Partition *p, const Kernel *k, Dim d);

/* The domain axis that dim t of a rank-n value of kernel k lines up with, -1 if none:
 * right-aligned with the domain (ctx 0), or with the reduced shape, whose axes are the
 * domain's kept ones (ctx 1: w: [N] in mul(reduce_sum(x: [N, H], axes=[1]), w)). */
int kn_domain_axis(int r, uint32_t axes, int n, int t, int ctx);
/* How a value of a lowered kernel is read at a position of the domain, in alignment ctx:
 * per axis of the value, the domain axis whose index it takes (-1: a broadcast, index 0)
 * and its dim. */
typedef struct KnLayout {
  int rank;
  int8_t axis[DVM_MAX_RANK];
  KnDim dim[DVM_MAX_RANK];
} KnLayout;
/* Is value v of kernel k of the domain's shape (full-shaped)? */
bool kn_is_full(const Graph *g, const Kernel *k, uint32_t v);

/* ---- the mix kernel's packed path (shape.c) ----------------------------------------- */

/* How a mix kernel's matmul goes through the packed path. */
typedef struct KnPack {
  uint32_t a, b;
  bool ta, tb;
  bool adirect;  /* a is a kernel input read in place: row-major [rows, K] */
  int bpre;      /* b's input index when it is a 2-D param read from its packed copy, else -1 */
  bool batched;  /* b has batch dims: one product per batch of dom[r-2] rows */
  bool prologue; /* a is a layernorm / rmsnorm member, computed while a is packed */
} KnPack;
/* Does mix kernel k take the packed path, and how (*f)? */
bool kn_pack_form(const Partition *p, const Kernel *k, KnPack *f);
/* Is mix kernel k's a a normalization member (a prologue, docs/fusion.md) computed while
 * a is packed? */
bool kn_mix_prologue(const Partition *p, const Kernel *k);
/* Kernel k's first f32 output of the domain's shape, or -1: a mix kernel's matmul sums
 * and the softmax's exp row live there until the output pass overwrites it. */
int kn_full_output(const Partition *p, const Kernel *k);

/* ---- extent and column splits (shape.c) ---------------------------------------------- */

enum {
  KN_COL_VECS = 4,     /* column mode: host vectors per value */
  KN_SPLIT_BLOCK = 16  /* column splits: scratch bytes per column and member (the widest
                          accumulator, argmax's f32 value and i64 index, rounded up) */
};
/* The outer parallel extent of kernel k under concrete dim values, for code of `lanes`
 * f32 lanes: rows of its domain (1 for a rank-0 or rank-1 domain); for column mode,
 * groups of up to kn_col_chunk columns of each kept row, times the blocks of
 * dims[ndims]; for a mix kernel on the packed path, products (batches of a batched b,
 * else one) times blocks of kn_tile(lanes).mc rows times panels of its nr output
 * columns (panel-major within a row block). *item (if not NULL): elements one item of
 * the extent covers. */
int64_t kn_extent(const struct KnKernel *kk, const int64_t *dims, int lanes, int64_t *item);
/* Column mode takes one more dim value, dims[ndims]: the blocks P its reduced rows are cut
 * into (1: none). Returns the P that kernel kk's native code should use under dims on a
 * pool of `threads`: 1 when it does not split (one thread, enough groups of columns for
 * the threads, too little work, or a kernel that cannot: kn_col_splits); else P > 1,
 * with the combine items to run after the extent's (items extent .. extent + *finish,
 * once all of those are done) and the bytes of scratch it reads as
 * bufs[ninputs + noutputs + 2] (*scratch). */
int64_t kn_col_blocks(const struct KnKernel *kk, const int64_t *dims, int lanes, int threads, int64_t *finish,
                      size_t *scratch);
/* Can column-mode kernel k split its reduced rows? Its folds (one per folding member:
 * each has a block of accumulators in the scratch), or 0 if not. */
int kn_col_splits(const Partition *p, const Kernel *k);

/* ---- GEMM tiles and the packed weight layout (gemm.c) ------------------------------- */

/* Register and cache tiles of mix kernels for code of `lanes` f32 lanes. The macros are
 * for code compiled once per host width (the bytecode interpreter). */
#define KN_MR(lanes) ((lanes) >= 8 ? 6 : 4)                /* rows of accumulators */
#define KN_NR(lanes) ((lanes) >= 16 ? 4 * (lanes) : 2 * (lanes)) /* columns: whole vectors */
#define KN_KC 256                                          /* values of k per block */
#define KN_MC(lanes) ((lanes) >= 8 ? 144 : 128)            /* rows of a per block */
typedef struct KnTile {
  int mr, nr;  /* rows x columns of the micro-kernel's accumulators (nr: whole vectors) */
  int kc, mc;  /* k per block, rows of a per block (a multiple of mr) */
} KnTile;
KnTile kn_tile(int lanes);
/* Floats of b [K, N] packed for code of `lanes` lanes (panels of nr columns, zero-padded). */
size_t kn_packed_floats(int64_t K, int64_t N, int lanes);
/* Pack row-major b [K, N] into out (kn_packed_floats of it). */
void kn_pack(const float *b, int64_t K, int64_t N, int lanes, float *out);

/* ---- extern calls (extern.c) ----------------------------------------------------------- */

/* Where one argument of an extern kernel's call comes from, in kernel-ABI terms. */
typedef enum KxKind {
  KX_BUF,   /* bufs[buf]: a tensor's data */
  KX_LOAD,  /* element 0 of bufs[buf], of dtype `dtype`, converted to the parameter's type */
  KX_CONST, /* bits: the value in the parameter's C type (a literal, a constant dim) */
  KX_DIM    /* dims[q] (i64), narrowed to an i32 parameter by wrapping */
} KxKind;
typedef struct KnExtArg {
  uint8_t kind;  /* KxKind */
  uint8_t dtype; /* KX_LOAD */
  uint32_t buf;  /* KX_BUF, KX_LOAD */
  uint32_t q;    /* KX_DIM */
  int64_t bits;  /* KX_CONST */
} KnExtArg;
/* An extern kernel (one call node; docs/extern.md) as a call: the function, its
 * arguments, and (a scalar result) the output buffer its result is stored to. */
typedef struct KnExt {
  const Extern *e;
  KnExtArg arg[EXT_MAX_PARAMS];
  uint32_t out;  /* the output's buffer index */
  uint8_t odt;   /* the output's dtype */
} KnExt;
/* The call of extern kernel k; false (why says it) if its function is not resolved
 * (dumps, graphs not compiled into a model) or a constant argument does not fit. */
bool kn_extern_plan(const Partition *p, const Kernel *k, KnExt *x, char *why, size_t n);

/* ---- the lowered kernel (lower.c) ---------------------------------------------------- */

typedef enum KnOp {
#define KOP(id, arity, name) KO_##id,
#include "ops.def"
#undef KOP
  KO_COUNT
} KnOp;

/* A view member (KO_VIEW) lowered to its index map: how a position in its own index
 * space becomes a position in its operand's (docs/ops.md gives each op's meaning). */
typedef enum KnViewKind {
  KV_TRANSPOSE, /* operand axis map[k] takes the result's index k */
  KV_BROADCAST, /* operand axis t takes the result's index map[t], or 0 where map[t] < 0 */
  KV_SLICE,     /* axis[i] takes start[i] (clamped into size[i] as Python's slices) + step[i]·index */
  KV_CONCAT,    /* the operand whose block along axis holds the index (its size[q]) */
  KV_GATHER,    /* operand axis `axis` takes the indices' value at the result's axes there */
  KV_RESHAPE,   /* the same row-major order (reshape, squeeze, unsqueeze): operand dims size[] */
  KV_FULL,      /* a constant (kn_const) */
  KV_ARANGE     /* the index itself, as the result's dtype */
} KnViewKind;
typedef struct KnView {
  uint8_t kind;                  /* KnViewKind */
  uint8_t axis;                  /* KV_CONCAT: of the result; KV_GATHER: of the operand */
  uint8_t n;                     /* KV_SLICE: sliced axes; KV_CONCAT: operands; else rank */
  int8_t map[DVM_MAX_RANK];      /* KV_TRANSPOSE, KV_BROADCAST */
  uint8_t saxis[DVM_MAX_RANK];   /* KV_SLICE */
  int64_t step[DVM_MAX_RANK];    /* KV_SLICE */
  KnDim start[DVM_MAX_RANK];     /* KV_SLICE */
  KnDim size[DVM_MAX_RANK];      /* KV_SLICE: the operand's dim along saxis[i]; KV_GATHER:
                                    size[0] along axis; KV_RESHAPE: the operand's dims */
  KnDim *csize;                  /* KV_CONCAT: each operand's dim along axis (n of them) */
} KnView;

/* A program: the values one loop body evaluates (a pass over the row, or the stores), in
 * the order it evaluates them, each entry's operands evaluated by earlier entries, so that
 * a back end emits each entry's code in turn, reading its operands' values (an operand
 * not evaluated yet is an internal error). It is the postorder of a walk from the values
 * the body folds or stores, in the body's order, operands in argument order, which
 *   - lists a member once, at its first read: the body keeps its value;
 *   - lists an input, a literal and a reduced member (KO_FOLDED: its passes ran before
 *     the body), its leaves, at every read, with the reader's alignment: a back end loads,
 *     materializes or rounds it there, or reuses what it has (the bytecode keeps an
 *     input's load per ctx);
 *   - walks no operand of a view (read through its index map), of the product (the
 *     accumulator) or of the stash softmax (kk->stash: the exp row its sum pass kept),
 *     and the first kn_op_arity operands of the others (kn_walked).
 * So the reads of leaves nest: a member's leaf operands are, in argument order, the last
 * leaf entries before it that no member after them has taken (a back end keeps them on a
 * stack, each member taking its own off the top). A leaf has no operands, so a back end
 * may materialize a read late: as its reader's code reads it, provided every read below
 * a member's own is materialized before that member's code (where the walk read it). A
 * body that evaluates several values (the stores) runs the program up to each in turn. */
typedef struct KnStep {
  uint32_t v;         /* the value number */
  uint8_t ctx;        /* its alignment (kn_domain_axis): an input's reader's KnVal.ctx (0 at
                         the top of the walk); a member's own */
} KnStep;
typedef struct KnProg {
  uint32_t n;
  const KnStep *step;
} KnProg;
/* Is value v of kernel kk a leaf of its programs: read at every use, its operands not
 * walked? (An input, a literal, or a reduced member.) */
#define KN_LEAF(kk, v) \
  ((v) < (kk)->nin || (v) >= (kk)->nin + (kk)->nmem || (kk)->ins[(v) - (kk)->nin].op == KO_FOLDED)

/* One kernel member, lowered. Operands are value numbers (KnVal). */
typedef struct KnIns {
  uint8_t op;         /* KnOp */
  uint8_t t;          /* the result's dtype */
  uint8_t a;          /* the first operand's dtype (t when there is none) */
  bool lo, hi;        /* KO_CLIP: the bounds it has */
  double flo, fhi;    /* ... on floats: rounded to f32 */
  int64_t ilo, ihi;   /* ... on integers: truncated and saturated to t, as the reference */
  uint8_t np;         /* KO_FOLDED and normalizations: the passes over the row ... */
  KnPass pass[2];     /* ... in order (kn_passes), ... */
  KnProg prog[2];     /* ... and each one's program, from operand 0 (the passes of a member
                         fold the same values: they share it) */
  double eps;         /* layernorm, rmsnorm: added to the mean square */
  bool ta, tb;        /* KO_PRODUCT: a, b (operands 0, 1) read transposed, ... */
  KnDim kdim;         /* ... and the contracted dim K (a's last, or its second last if ta) */
  KnView *view;       /* KO_VIEW: its index map */
  uint32_t narg;      /* the operands (every operand of the graph node, in its order) */
  uint32_t *arg;
  int32_t fill;       /* a `full` member: its constant in KnKernel.consts, else -1 */
} KnIns;

/* A constant a kernel reads: a literal operand, or a `full` member's fill value, as the
 * reference takes it (floats rounded to f32; integers truncated and saturated, NaN 0;
 * bools 0 or 1). */
typedef struct KnConst {
  uint8_t t;          /* its dtype */
  float f;            /* floats */
  int64_t i;          /* integers and bools */
} KnConst;
/* Value v's constant (a literal, or a full's AK_VALUE, 0 without one) as the reference
 * executor takes it (lower.c): the one conversion of literals for every tier. */
KnConst kn_constant(const Graph *g, uint32_t v);

/* A value of the lowered kernel, named by its number: the kernel's inputs first (number i
 * is input i, buffer i), then its members (nin + m is member m: ins[m] computes it), then
 * the literals its members read (nin + nmem + j is consts[j]). The back ends key every
 * per-value state by these numbers. */
typedef struct KnVal {
  uint32_t id;        /* the graph value (dumps, and the runtime's values) */
  uint8_t t;          /* its dtype */
  uint8_t rank;
  uint8_t ctx;        /* 1: a row kernel's value of the reduced shape (rank rr < r), read in
                         alignment with it (kn_domain_axis); else 0 */
  bool full;          /* of the domain's shape */
  int32_t out;        /* its output index (buffer nin + out), or -1 */
  const KnDim *dim;   /* its rank dims */
} KnVal;

/* A kernel's loop structure, decided once for both tiers. */
typedef enum KnLoop {
  KL_ROWS,    /* vector and row kernels: the domain's outer rows are the parallel range, the
                 last axis runs along the lanes; a pass over the row per fold, then the
                 stores */
  KL_COLS,    /* column mode (kn_col_mode): the last axis kept, the reduced rows folded per
                 column, in groups of kn_chunk columns (split by kn_col_blocks) */
  KL_MULTI,   /* multi mode (kn_multi_mode): each row of kept indices folds over the reduced
                 outer indices too (native code only) */
  KL_STREAM,  /* mix: a 2-D kernel input b [K, N] read in place (or packed, bpre), a read as
                 rows of an input (or of a prologue's value): blocks of rows times b */
  KL_GENERAL, /* mix: a and b read through their index maps at each k (views, transposes,
                 batched b) */
  KL_CALL     /* extern: one call */
} KnLoop;

/* A kernel as the back ends take it: the members' instructions, the values, the views'
 * index maps and the constants follow the struct in the block of kn_lower_all. Nothing
 * in it needs the graph: the back ends read the lowered kernel alone (p and k are for the
 * pipeline, the dumps and the verifier). */
typedef struct KnKernel {
  const Partition *p;
  const Kernel *k;
  bool ok;            /* both code-generating tiers cover it (kn_supported), else why */
  uint8_t kind;       /* KernelKind */
  const uint8_t *key; /* the kernel's 16-byte key: its code is the same for equal keys */
  uint32_t nin, nmem, nout, nval, ndims; /* inputs, members, outputs, values, dim parameters;
                                            extern kernels: the counts alone */
  KnVal *val;         /* nval values (KnVal) */
  uint32_t *out;      /* per output: its value number (a member) */
  int r, rr;          /* ranks of the domain and of a row kernel's reduced shape (r elsewhere) */
  uint32_t axes;      /* row kernels: the reduced axes of the domain; 0 elsewhere */
  KnDim dom[DVM_MAX_RANK]; /* the domain */
  uint8_t loop;       /* KnLoop; native code runs a packed mix kernel (packed) as the
                         register-blocked GEMM whatever its loop */
  bool col, multi;    /* loop KL_COLS, KL_MULTI */
  int states;         /* members with passes (column mode's stack arrays: kn_chunk) */
  int splits;         /* column mode: kn_col_splits */
  KnIns *ins;         /* per member, in fu_members order */
  KnConst *consts;    /* the literals the members read (in value order), then the fills */
  uint32_t nconsts;
  int product;        /* mix kernels: the matmul member (KO_PRODUCT); -1 elsewhere */
  int stash;          /* row kernels (not column mode): the first softmax member, whose
                         exp(x - max) row its sum pass keeps for the output pass in ... */
  uint32_t stash_out; /* ... the row of this output (kn_full_output: f32, full-shaped,
                         overwritten later in the row by the output pass); stash -1: none */
  int full_out;       /* kn_full_output: the first f32 full-shaped output, or -1 */
  bool packed;        /* a mix kernel on the packed path (kn_pack_form), and how: */
  KnPack pack;        /* its operands (a and b as value numbers), the weight read packed
                         (bpre), the prologue */
  KnProg store[2];    /* the stores' programs, from each output in output order: [0] the
                         full-shaped outputs (the output pass), [1] the others */
  KnProg pro;         /* a packed mix kernel's prologue: its value pack.a, as the packing of
                         a reads it (n 0 without one) */
  uint32_t most;      /* the most entries of any of its programs */
  const char *why;    /* !ok: why the code generators do not cover it (else NULL) */
  const char *vm_why; /* a covered kernel the bytecode tier does not run, by the op table's
                         vm column (kn_op_cover): why; NULL if it does */
  KnExt *ext;         /* extern kernels: the call (when ok); NULL for the others */
} KnKernel;

/* Value v's member index, or -1 (an input or a literal). */
static inline int kn_member(const KnKernel *kk, uint32_t v) {
  return v >= kk->nin && v - kk->nin < kk->nmem ? (int)(v - kk->nin) : -1;
}
/* Value v's input index (its buffer), or -1. */
static inline int kn_input(const KnKernel *kk, uint32_t v) { return v < kk->nin ? (int)v : -1; }
/* The constant value v (a literal, or a `full` member); NULL if v is neither. */
static inline const KnConst *kn_const(const KnKernel *kk, uint32_t v) {
  if (v >= kk->nin + kk->nmem) return &kk->consts[v - kk->nin - kk->nmem];
  int m = kn_member(kk, v);
  return m >= 0 && kk->ins[m].fill >= 0 ? &kk->consts[kk->ins[m].fill] : NULL;
}
/* How value v is read at a position of the domain in alignment ctx. */
void kn_layout(const KnKernel *kk, uint32_t v, int ctx, KnLayout *out);
/* Column mode: columns per item (a power of two) for code of `lanes` lanes. */
int64_t kn_chunk(const KnKernel *kk, int lanes);

/* The input whose packed copy (kn_pack) a mix kernel's code reads, as the extra buffer
 * bufs[ninputs + noutputs]: a 2-D param weight read as it is; -1 if none. */
static inline int kn_packed_input(const KnKernel *kk) { return kk->packed ? kk->pack.bpre : -1; }
/* Every kernel of p lowered, in one block (kn_lower_all_free frees it): element i is
 * kernel i's, then NULL. Never NULL; out of memory aborts, as ir_oom. */
KnKernel **kn_lower_all(const Partition *p);
void kn_lower_all_free(KnKernel **low);
/* The operands instruction op reads, and its name in dumps. */
int kn_op_arity(KnOp op);
const char *kn_op_name(KnOp op);
/* The operands member m's evaluation reads as values in its programs (KnProg): its first
 * kn_op_arity, none for a view, the product and the stash softmax. */
static inline uint32_t kn_walked(const KnKernel *kk, uint32_t m) {
  const KnIns *in = &kk->ins[m];
  if (in->op == KO_VIEW || in->op == KO_PRODUCT || (int)m == kk->stash) return 0;
  return (uint32_t)kn_op_arity((KnOp)in->op);
}
/* The leaf reads of a running program that no member has taken yet, as a stack (the
 * bookkeeping both back ends share; each keeps what it materialized per read, indexed
 * like v). v and ctx have room for kk->most entries. */
typedef struct KnReads {
  uint32_t *v;        /* per read: the value number, ... */
  uint8_t *ctx;       /* ... and the alignment it is read in */
  uint32_t n;         /* reads on the stack */
  uint32_t ready;     /* of which materialized, from the bottom */
  uint32_t opq[3];    /* the member being evaluated: each leaf operand's read */
} KnReads;
/* Push leaf entry s; returns its read's index. */
static inline uint32_t kn_reads_push(KnReads *r, KnStep s) {
  r->v[r->n] = s.v, r->ctx[r->n] = s.ctx;
  return r->n++;
}
/* Pop the top read (a leaf the body asked for itself); returns its index. */
static inline uint32_t kn_reads_pop(KnReads *r) {
  uint32_t q = --r->n;
  if (r->ready > r->n) r->ready = r->n;
  return q;
}
/* Before member m's code: materialize(arg, q) for each read below m's own not yet
 * materialized, in order (the walk read them before m); then m's leaf operands taken off
 * the top into r->opq. NULL, or what is wrong with the program (an internal error: then
 * r->opq may name no read, UINT32_MAX). */
const char *kn_reads_take(const KnKernel *kk, KnReads *r, uint32_t m, void (*materialize)(void *, uint32_t),
                          void *arg);
/* `dvm dump --stage lowered`: the kernel's members as instructions (malloc'd). */
char *kn_lower_dump(const KnKernel *kk);
/* Check kk: its own invariants, which the back ends rely on (counts that add up, an
 * instruction per member whose op, operand count and dtypes make sense, every operand a
 * value of kk, outputs stored from members; each program's entries valid values, each
 * member listed once after the operands it reads, each reduced member folded before it),
 * then against its kernel in the graph (each value's graph value, dtype and dims, each
 * member's operands the node's, the outputs the kernel's). A failure is a bug in dvm
 * (DVM_ERR_RUNTIME, "internal: ..."). It derives the lowering again and costs about what
 * lowering does, so the pipeline runs it in checked builds (KN_CHECKED) and for dumps. */
dvm_status kn_verify(const KnKernel *kk, Err *err);
/* Checked builds: the sanitizer and fuzzing builds (DVM_CHECKED, which the test suite
 * runs in CI) and any build without NDEBUG. */
#if defined(DVM_CHECKED) || !defined(NDEBUG)
#define KN_CHECKED 1
#else
#define KN_CHECKED 0
#endif

#endif /* DVM_KERNEL_H */
