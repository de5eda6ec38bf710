/* onnx/einsum.c — Einsum as a broadcast product reduced, in the builder of onnx.h.
 *
 * Each operand's repeated subscripts are first made one (its diagonal: the operand times
 * an arange-made identity mask, summed over the second axis); its axes are then moved to a
 * common order — the output's letters, then the summed ones — and given a 1 for every letter
 * it lacks, so that the operands multiply by broadcasting into one value over all the
 * letters, and the summed letters are reduced away. Fusion makes the product and its sum
 * one row kernel that reads the operands in place (no product is materialized), so an
 * Einsum costs its multiply-adds, without the blocking a GEMM would add: a two-operand
 * contraction that is a plain matrix product is better written as MatMul.
 *
 * Subscripts are the letters a-z A-Z; `...` stands for the same leading axes in every
 * operand, broadcast against each other (right-aligned); spaces are ignored. Without `->`
 * the output is the ellipsis axes, then the letters seen once, in ASCII order (NumPy). */
#include <string.h>

#include "onnx.h"

#define R DVM_MAX_RANK
#define ELL 52        /* letter ids: 0-51 the letters, ELL + t the ellipsis's axis t */
#define IDS (ELL + R) /* every id */
#define TERMS 16      /* operands at most */

typedef struct Term {
  int n, id[R]; /* the axes' letter ids */
} Term;

static int letter_id(char c) {
  return c >= 'a' && c <= 'z' ? c - 'a' + 26 : c >= 'A' && c <= 'Z' ? c - 'A' : -1; /* ASCII order */
}

/* Term s[0..len) of an operand of rank `rank` (-1: the output, whose ellipsis has `ell`
 * axes) into *t; the ellipsis's axes right-aligned to the widest (`ell` of them). */
static bool term(Imp *I, const char *s, size_t len, int rank, int ell, Term *t) {
  int letters = 0;
  bool dots = false;
  for (size_t i = 0; i < len; i++) letters += letter_id(s[i]) >= 0;
  t->n = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] == ' ') continue;
    if (s[i] == '.' && i + 2 < len && s[i + 1] == '.' && s[i + 2] == '.' && !dots) {
      int e = rank < 0 ? ell : rank - letters;
      if (e < 0 || e > ell) return onnx_fail(I, DVM_ERR_GRAPH, "equation: '...' in a term of rank %d", rank), false;
      for (int k = 0; k < e && t->n < R; k++) t->id[t->n++] = ELL + ell - e + k;
      dots = true, i += 2;
      continue;
    }
    int id = letter_id(s[i]);
    if (id < 0) return onnx_fail(I, DVM_ERR_GRAPH, "equation: '%c' is not a subscript", s[i]), false;
    if (t->n == R) return onnx_fail(I, DVM_ERR_UNSUPPORTED, "equation: a term of more than %d axes", R), false;
    t->id[t->n++] = id;
  }
  if (rank >= 0 && t->n != rank)
    return onnx_fail(I, DVM_ERR_SHAPE, "equation: a term of %d subscripts for an operand of rank %d", t->n, rank), false;
  return true;
}

/* x's diagonal over axes p < q (one letter twice): x · (i_p == i_q) summed over q. */
static int64_t diagonal(Imp *I, int64_t x, Term *t, int p, int q) {
  Dim d[R];
  int r = onnx_vdims(I, x, d);
  if (ir_dim_subst(I->g, d[p]) != ir_dim_subst(I->g, d[q]))
    return onnx_fail(I, DVM_ERR_SHAPE, "equation: a repeated subscript over axes %d and %d of different dims", p, q), -1;
  int64_t mask = onnx_cast(I, bin(I, OP_EQ, onnx_iota(I, d[p], p, r), onnx_iota(I, d[q], q, r)), DT(x));
  int64_t axis = q;
  for (int k = q; k + 1 < t->n; k++) t->id[k] = t->id[k + 1];
  t->n--;
  return reduce(I, OP_REDUCE_SUM, bin(I, OP_MUL, x, mask), &axis, 1, false);
}

/* Operand x (term t, its letters now distinct) moved to the order of `order` (n ids)
 * with a 1 for each id it lacks. */
static int64_t aligned(Imp *I, int64_t x, const Term *t, const int *order, int n) {
  int64_t perm[R];
  int k = 0;
  Dim d[R], s[R];
  onnx_vdims(I, x, d);
  for (int i = 0; i < n; i++)
    for (int a = 0; a < t->n; a++)
      if (t->id[a] == order[i]) perm[k] = a, s[i] = d[a], k++;
  bool moved = false;
  for (int a = 0; a < t->n; a++) moved |= perm[a] != a;
  if (moved) {
    NodeDraft tr = {.op = OP_TRANSPOSE, .nin = 1, .in = {(uint32_t)x}};
    onnx_at_ints(I, &tr, AK_PERM, perm, (uint32_t)t->n);
    x = onnx_add(I, &tr, NULL);
  }
  k = 0;
  for (int i = 0; i < n; i++) {
    bool has = false;
    for (int a = 0; a < t->n; a++) has |= t->id[a] == order[i];
    s[i] = has ? s[i] : ir_dim_const(I->g, 1);
  }
  return n == t->n ? x : onnx_reshape(I, x, s, n);
}

static dvm_status einsum(Imp *I) {
  const Onnx__AttributeProto *a = onnx_attr(I, "equation");
  if (!a || a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING)
    return onnx_fail(I, DVM_ERR_GRAPH, "attribute 'equation' (a string) is required");
  const char *eq = (const char *)a->s.data;
  size_t len = a->s.len, arrow = len, nin = I->node->n_input;
  for (size_t i = 0; i + 1 < len; i++)
    if (eq[i] == '-' && eq[i + 1] == '>') arrow = i;
  if (nin < 1 || nin > TERMS) return onnx_fail(I, DVM_ERR_UNSUPPORTED, "Einsum of %zu operands (1 to %d)", nin, TERMS);
  int64_t v[TERMS];
  Term t[TERMS], out;
  size_t start = 0, k = 0;
  int ell = 0;
  for (size_t i = 0; i < nin; i++)
    if ((v[i] = onnx_in(I, i)) < 0) return I->err->code;
  for (size_t i = 0; i <= arrow && k <= nin; i++) /* the widest ellipsis first */
    if (i == arrow || eq[i] == ',') {
      int letters = 0;
      for (size_t j = start; j < i; j++) letters += letter_id(eq[j]) >= 0;
      bool dots = false;
      for (size_t j = start; j + 2 < i; j++) dots |= eq[j] == '.' && eq[j + 1] == '.' && eq[j + 2] == '.';
      if (k < nin && dots) {
        int e = ir_node(I->g, (uint32_t)v[k])->rank - letters;
        ell = e > ell ? e : ell;
      }
      k++, start = i + 1;
    }
  if (k != nin) return onnx_fail(I, DVM_ERR_GRAPH, "equation has %zu terms for %zu operands", k, nin);
  start = 0, k = 0;
  for (size_t i = 0; i <= arrow; i++)
    if (i == arrow || eq[i] == ',') {
      if (!term(I, eq + start, i - start, ir_node(I->g, (uint32_t)v[k])->rank, ell, &t[k])) return I->err->code;
      k++, start = i + 1;
    }
  int seen[IDS] = {0};
  for (size_t i = 0; i < nin; i++)
    for (int j = 0; j < t[i].n; j++) seen[t[i].id[j]]++;
  if (arrow < len) {
    if (!term(I, eq + arrow + 2, len - arrow - 2, -1, ell, &out)) return I->err->code;
    bool kept = ell == 0;
    for (int j = 0; j < out.n; j++) kept |= out.id[j] >= ELL;
    if (!kept) return onnx_fail(I, DVM_ERR_GRAPH, "equation: the operands' '...' must be in the output too");
    for (int j = 0; j < out.n; j++) {
      for (int m = 0; m < j; m++)
        if (out.id[m] == out.id[j]) return onnx_fail(I, DVM_ERR_GRAPH, "equation: an output subscript repeated");
      if (!seen[out.id[j]]) return onnx_fail(I, DVM_ERR_GRAPH, "equation: an output subscript no operand has");
    }
  } else { /* implicit: the ellipsis, then the letters seen once in ASCII order */
    out.n = 0;
    for (int id = 0; id < ell; id++) out.id[out.n++] = ELL + id;
    for (int id = 0; id < ELL && out.n < R; id++)
      if (seen[id] == 1) out.id[out.n++] = id;
  }
  int order[IDS], n = 0;
  for (int j = 0; j < out.n; j++) order[n++] = out.id[j];
  for (size_t i = 0; i < nin; i++)
    for (int j = 0; j < t[i].n; j++) {
      bool have = false;
      for (int m = 0; m < n; m++) have |= order[m] == t[i].id[j];
      if (!have) order[n++] = t[i].id[j];
    }
  if (n > R) return onnx_fail(I, DVM_ERR_UNSUPPORTED, "Einsum over %d distinct subscripts (at most %d)", n, R);
  int64_t y = -1;
  for (size_t i = 1; i < nin; i++)
    if (DT(v[i]) != DT(v[0]))
      return onnx_fail(I, DVM_ERR_DTYPE, "operands of %s and %s", ir_dtype_name(DT(v[0])), ir_dtype_name(DT(v[i])));
  for (size_t i = 0; i < nin; i++) {
    for (int p = 0; p < t[i].n && v[i] >= 0; p++)
      for (int q = p + 1; q < t[i].n && v[i] >= 0; q++)
        if (t[i].id[p] == t[i].id[q]) v[i] = diagonal(I, v[i], &t[i], p, q--);
    if (v[i] < 0) return I->err->code;
    int64_t x = aligned(I, v[i], &t[i], order, n);
    y = i == 0 ? x : bin(I, OP_MUL, y, x);
  }
  if (y >= 0 && n > out.n) {
    int64_t axes[R];
    for (int j = out.n; j < n; j++) axes[j - out.n] = j;
    y = reduce(I, OP_REDUCE_SUM, y, axes, n - out.n, false);
  }
  return onnx_def_dyn(I, 0, y);
}

bool onnx_einsum(Imp *I, const char *t, dvm_status *st) {
  if (!strcmp(t, "Einsum")) return *st = einsum(I), true;
  return false;
}
