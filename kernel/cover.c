/* kernel/cover.c — which ops each tier runs (the table of kernel/cover.def), which fused
 * kernels the code-generating tiers emit, and the row kernel modes (kernel.h).
 *
 * cover.def is the op-level truth: kn_supported declines a kernel holding an op whose llvm
 * column gives a reason, with that reason, before any other check; the checks below it
 * decide the rest (dtypes, ranks, views, matmul operands) for the ops marked YES. The
 * _Static_asserts below fail the build when cover.def is not one line per op of
 * ir/ops.def in its order.
 *
 * A kernel is covered when every member is an op both tiers emit on its dtypes, views
 * read only inputs or other views (they are index maps, never materialized), operands
 * line up with the domain or with its reduced shape, and a mix kernel has exactly one
 * matmul whose operands are inputs, views or (a) a normalization prologue. The bytecode
 * tier declines a few covered kernels more (vm/shapes.c vm_encode says which); everything declined
 * runs on the kernel-level reference path, with the reason in the dumps. */
#include <stdio.h>

#include "kernel.h"

/* ---- the op coverage table (cover.def) --------------------------------------------------- */

/* Line i of cover.def is line i of ir/ops.def: as many lines, each naming the op of its
   position (KN_COVER_x == OP_x). */
enum KnCoverLine {
#define COVER(id, ref, vm, llvm) KN_COVER_##id,
#include "cover.def"
#undef COVER
  KN_COVER_LINES
};
_Static_assert((int)KN_COVER_LINES == (int)OP_COUNT, "kernel/cover.def needs one COVER line per op of ir/ops.def");
#define COVER(id, ref, vm, llvm) \
  _Static_assert((int)KN_COVER_##id == (int)OP_##id, "kernel/cover.def: " #id " is not at its ir/ops.def position");
#include "cover.def"
#undef COVER

/* cover[op][tier]: NULL (YES) or the reason. A second line for one op would be an
   initializer overridden (-Woverride-init, in -Wextra). */
#define YES NULL
static const char *const cover[OP_COUNT][KN_NTIERS] = {
#define COVER(id, ref, vm, llvm) [OP_##id] = {[KN_TIER_REF] = ref, [KN_TIER_VM] = vm, [KN_TIER_LLVM] = llvm},
#include "cover.def"
#undef COVER
};
#undef YES

const char *kn_op_cover(Op op, int tier) {
  if ((unsigned)op >= OP_COUNT) return "not an op";
  if (tier < 0 || tier >= KN_NTIERS) return "not a tier";
  return cover[op][tier];
}

/* ---- kernels ------------------------------------------------------------------------------ */

static bool elementwise_f32(Op op) {
  switch (op) {
  case OP_NEG: case OP_ABS: case OP_EXP: case OP_LOG: case OP_SQRT: case OP_RSQRT:
  case OP_RECIPROCAL: case OP_TANH: case OP_SIGMOID: case OP_RELU: case OP_GELU:
  case OP_GELU_TANH: case OP_SILU: case OP_ERF: case OP_SIN: case OP_COS: case OP_FLOOR:
  case OP_CEIL: case OP_ROUND: case OP_SIGN: case OP_ADD: case OP_SUB: case OP_MUL:
  case OP_DIV: case OP_POW: case OP_FMOD: case OP_MAX: case OP_MIN: case OP_CLIP: return true;
  default: return false;
  }
}

/* The dtypes the tiers handle for node v: f32 (and f16, bf16) arithmetic, the wrapping
 * integer ops, compares, bool logic, select, casts and views of every stored dtype. */
static bool typed_ok(const Graph *g, uint32_t v) {
  const Node *nd = ir_node(g, v);
  Op op = (Op)nd->op;
  DType t = (DType)nd->dtype, a = nd->nin ? (DType)ir_node(g, ir_operand(g, v, 0))->dtype : t;
  switch (op) {
  case OP_EQ: case OP_NE: case OP_LT: case OP_LE: case OP_GT: case OP_GE:
    return kn_is_flt(a) || kn_is_int(a) || (a == DT_BOOL && (op == OP_EQ || op == OP_NE));
  case OP_AND: case OP_OR: case OP_NOT: return a == DT_BOOL;
  case OP_SELECT: return kn_stored(t);
  case OP_CAST: return kn_stored(t) && kn_stored(a);
  case OP_GATHER: /* indices: checked in range by the runtime before the kernel runs */
    return kn_stored(t) && ir_node(g, ir_operand(g, v, 0))->dtype == t;
  case OP_TRANSPOSE: case OP_RESHAPE: case OP_SQUEEZE: case OP_UNSQUEEZE: case OP_BROADCAST_TO:
  case OP_SLICE: case OP_CONCAT:
    for (uint32_t j = 0; j < nd->nin; j++)
      if (ir_node(g, ir_operand(g, v, j))->dtype != t) return false;
    return kn_stored(t);
  case OP_FULL: return kn_stored(t);
  case OP_ARGMAX: return kn_is_flt(a); /* the index is i64 */
  case OP_MATMUL: /* f32 only: the mix paths read and sum f32 */
    return t == DT_F32 && a == DT_F32 && ir_node(g, ir_operand(g, v, 1))->dtype == DT_F32;
  case OP_ARANGE: return t == DT_F32 || kn_is_int(t);
  /* integers: the wrapping ops (division and powers raise errors or differ: declined) */
  case OP_NEG: case OP_ABS: case OP_RELU: case OP_SIGN: case OP_ADD: case OP_SUB: case OP_MUL:
  case OP_MAX: case OP_MIN: case OP_CLIP: case OP_REDUCE_SUM: case OP_REDUCE_MAX: case OP_REDUCE_MIN:
  case OP_REDUCE_PROD:
    if (kn_is_int(t)) {
      for (uint32_t j = 0; j < nd->nin; j++)
        if (ir_node(g, ir_operand(g, v, j))->dtype != t) return false;
      return true;
    }
    /* fall through */
  default:
    if (!kn_is_flt(t)) return false;
    for (uint32_t j = 0; j < nd->nin; j++)
      if (ir_node(g, ir_operand(g, v, j))->dtype != t) return false;
    return true;
  }
}

/* Why typed_ok declined node v: a dtype no kernel holds (f64, u64: their values stay on
 * the reference path, docs/ops.md), or an op not emitted on the dtypes it has. Always
 * false. */
static bool untyped(const Graph *g, uint32_t v, char *why, size_t n) {
  const Node *nd = ir_node(g, v);
  DType t = (DType)nd->dtype;
  for (uint32_t j = 0; j < nd->nin && kn_stored(t); j++) t = (DType)ir_node(g, ir_operand(g, v, j))->dtype;
  if (!kn_stored(t))
    snprintf(why, n, "%s at line %u: %s values are computed on the reference path", ir_ops[nd->op].name, nd->line,
             ir_dtype_name(t));
  else
    snprintf(why, n, "%s of %s at line %u is not emitted yet", ir_ops[nd->op].name, ir_dtype_name((DType)nd->dtype),
             nd->line);
  return false;
}

bool kn_col_mode(const Graph *g, const Kernel *k) {
  int r = ir_node(g, k->domain)->rank;
  return k->kind == KK_ROW && r >= 2 && k->axes && !(k->axes >> (r - 1) & 1);
}

bool kn_multi_mode(const Graph *g, const Kernel *k) {
  int r = ir_node(g, k->domain)->rank;
  return k->kind == KK_ROW && r >= 2 && (k->axes >> (r - 1) & 1) && (k->axes & ((1u << (r - 1)) - 1));
}

bool kn_supported(const Partition *p, const Kernel *k, char *why, size_t n) {
  const Graph *g = p->g;
  int r = ir_node(g, k->domain)->rank;
  if (k->kind == KK_EXTERN) { /* a call (kernel/extern.c) */
    KnExt x;
    return kn_extern_plan(p, k, &x, why, n);
  }
  bool multi = kn_multi_mode(g, k);
  int matmuls = 0;
  const Node *dn = ir_node(g, k->domain);
  int rr = k->kind == KK_ROW ? r - __builtin_popcount(k->axes) : r;
  for (uint32_t i = 0; i < k->nmembers; i++) {
    uint32_t v = fu_members(p, k)[i];
    const Node *nd = ir_node(g, v);
    Op op = (Op)nd->op;
    const char *no = kn_op_cover(op, KN_TIER_LLVM); /* the table first: its reason */
    if (no) return snprintf(why, n, "%s at line %u: %s", ir_ops[op].name, nd->line, no), false;
    /* operands line up with the domain, or, read by a member of the reduced shape, with
       the kept axes (jit/emit.c cg_value_base) */
    if (kn_is_view(op)) { /* read at positions its readers compute: any rank */
      if (!typed_ok(g, v)) return untyped(g, v, why, n);
      for (uint32_t j = 0; j < nd->nin; j++) {
        uint32_t u = ir_operand(g, v, j);
        bool member = false;
        for (uint32_t q = 0; q < k->nmembers; q++) member |= fu_members(p, k)[q] == u;
        if (member && !kn_is_view((Op)ir_node(g, u)->op))
          return snprintf(why, n, "%s at line %u reads a value computed in the kernel", ir_ops[op].name, nd->line), false;
        if (op == OP_GATHER && j == 1 && member) /* the runtime checks the indices in a buffer */
          return snprintf(why, n, "gather at line %u takes indices computed in the kernel", nd->line), false;
      }
      continue;
    }
    if (nd->rank != dn->rank && nd->rank != rr)
      return snprintf(why, n, "%s at line %u has rank %d in a kernel of rank %d", ir_ops[op].name,
                      nd->line, nd->rank, r), false;
    if (!elementwise_f32(op) && !kn_elementwise_bool(op) && !kn_is_reduction(op) && !kn_is_norm(op) && op != OP_MATMUL &&
        op != OP_ARGMAX)
      return snprintf(why, n, "%s at line %u is not emitted yet", ir_ops[op].name, nd->line), false;
    if (!typed_ok(g, v)) return untyped(g, v, why, n);
    if (elementwise_f32(op) || kn_elementwise_bool(op)) continue;
    if (kn_is_reduction(op) && k->kind == KK_ROW) continue;
    if (multi && (kn_is_norm(op) || op == OP_ARGMAX))
      return snprintf(why, n, "%s at line %u in a kernel reducing over several axes", ir_ops[op].name, nd->line), false;
    if (op == OP_ARGMAX && k->kind == KK_ROW) continue;
    if ((op == OP_SOFTMAX || op == OP_LOG_SOFTMAX) && k->kind == KK_ROW) continue;
    if (kn_is_norm(op) && k->kind == KK_ROW && !kn_col_mode(g, k)) continue;
    if (kn_is_norm(op) && k->kind == KK_MIX) { /* a prologue (fusion): computed while packing a */
      if (!kn_mix_prologue(p, k))
        return snprintf(why, n, "%s at line %u as a matmul's prologue without an f32 output of the product's shape",
                        ir_ops[op].name, nd->line), false;
      continue;
    }
    if (op == OP_MATMUL && k->kind == KK_MIX) {
      uint32_t a = ir_operand(g, v, 0), b = ir_operand(g, v, 1);
      bool a_input = false; /* a vector a ([K] @ [K, N]: one row) is read in place */
      for (uint32_t q = 0; q < k->ninputs; q++) a_input |= fu_inputs(p, k)[q] == a;
      if ((ir_node(g, a)->rank < 2 && (!a_input || ir_node(g, b)->rank != 2 || ir_attr_int(g, v, AK_TRANSPOSE_A, 0))) ||
          ir_node(g, b)->rank < 2 || nd->rank != dn->rank)
        return snprintf(why, n, "matmul of a vector operand is not emitted yet"), false;
      for (uint32_t q = 0; q < k->nmembers; q++) {
        uint32_t u = fu_members(p, k)[q];
        if ((u == a || u == b) && !kn_is_view((Op)ir_node(g, u)->op) && !(u == a && kn_is_norm((Op)ir_node(g, u)->op)))
          return snprintf(why, n, "matmul operands computed inside the kernel"), false;
      }
      matmuls++;
      continue;
    }
    return snprintf(why, n, "%s at line %u is not emitted yet", ir_ops[op].name, nd->line), false;
  }
  if (k->kind == KK_MIX && matmuls != 1) return snprintf(why, n, "mix kernel without one matmul"), false;
  return true;
}
