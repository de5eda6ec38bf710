/* tests/unit/test_op_coverage.c — kernel/cover.def, the op coverage table, against the
 * code, op by op, so that the table cannot drift from the tiers in either direction.
 *
 *   - the table: one COVER line per op of ir/ops.def, in its order, each ID spelling its
 *     op's name; every column YES (NULL) or a non-empty reason, as kn_op_cover answers;
 *     vm YES only where llvm is YES (vm_encode reads the lowered kernel's kn_supported verdict first);
 *   - every op has a graph here (graphs[], one line per op: its text and inputs, f32 with
 *     the symbolic dim N; gather's indices i64[M]; call's function registered below);
 *   - for every op and tier the table marks YES: the graph compiles in that tier and runs
 *     at N = 1, 5 and 29 on seeded random inputs and params; the op is a member of a
 *     kernel (`dump --stage fused`; sources are read by one); in vm every kernel is
 *     bytecode (dvm_stats.vm_encodes == kernels, and `dump --stage bytecode` has no "not
 *     bytecode"), in llvm every kernel is native code (native_kernels == kernels); the
 *     outputs agree with the reference tier's within 1e-4 relative + 1e-5 absolute (NaN
 *     where it has NaN; integers and bools exactly);
 *   - the lowered form (`dump --stage lowered`) covers every kernel where llvm runs the op,
 *     and says "not lowered" where llvm declines it;
 *   - for every op and tier the table gives a reason: vm and llvm decline the op's kernel
 *     (fewer encodes / native kernels than kernels) and their dump says "not bytecode" /
 *     "not native" with "<op> at line L: <reason>", the outputs (the kernel-level
 *     reference path) still agreeing; ref fails to compile or run the graph.
 * The last line printed is "N passed, M failed"; a summary of the table (ops run per tier)
 * comes before it. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dvm.h"
#include "kernel/kernel.h"

/* ---- the table, as written ------------------------------------------------------------- */

typedef struct Line {
  int op;                     /* OP_<ID> */
  const char *id;             /* "<ID>" */
  const char *col[KN_NTIERS]; /* NULL: YES */
} Line;

static const Line lines[] = {
#define YES NULL
#define COVER(id, ref, vm, llvm) {OP_##id, #id, {ref, vm, llvm}},
#include "kernel/cover.def"
#undef COVER
#undef YES
};
enum { NLINES = sizeof lines / sizeof lines[0] };

static const char *const tier_names[KN_NTIERS] = {"ref", "vm", "llvm"};
static const dvm_tier tiers[KN_NTIERS] = {DVM_TIER_REF, DVM_TIER_VM, DVM_TIER_LLVM};

/* ---- one graph per op ------------------------------------------------------------------ */

#define X "input x: f32[N, 37]\n"
#define XY "input x: f32[N, 37]\ninput y: f32[N, 37]\n"
#define UN(ID, name) [OP_##ID] = X "y = " #name "(x)\n"
#define BIN(ID, name) [OP_##ID] = XY "z = " #name "(x, y)\n"
#define RED(ID, name) [OP_##ID] = X "y = " #name "(x, axes=[1])\n"

/* The body of op's graph (after the `graph` line, before `output`): it computes the op,
   whose value (or a value read from it) is the last one defined, the graph's output. Op
   names are the ir/ops.def spellings (lowercase IDs). */
static const char *const graphs[OP_COUNT] = {
    [OP_INPUT] = X "y = neg(x)\n",
    [OP_PARAM] = X "param p: f32[37]\ny = add(x, p)\n",
    [OP_LITERAL] = X "y = mul(x, 0.5)\n",
    UN(NEG, neg),
    UN(ABS, abs),
    UN(EXP, exp),
    UN(LOG, log),
    UN(SQRT, sqrt),
    UN(RSQRT, rsqrt),
    UN(RECIPROCAL, reciprocal),
    UN(TANH, tanh),
    UN(SIGMOID, sigmoid),
    UN(RELU, relu),
    UN(GELU, gelu),
    UN(GELU_TANH, gelu_tanh),
    UN(SILU, silu),
    UN(ERF, erf),
    UN(SIN, sin),
    UN(COS, cos),
    UN(FLOOR, floor),
    UN(CEIL, ceil),
    UN(ROUND, round),
    UN(SIGN, sign),
    [OP_NOT] = XY "c = lt(x, y)\nz = not(c)\n",
    BIN(ADD, add),
    BIN(SUB, sub),
    BIN(MUL, mul),
    BIN(DIV, div),
    BIN(MAX, max),
    BIN(MIN, min),
    BIN(LT, lt),
    BIN(LE, le),
    BIN(GT, gt),
    BIN(GE, ge),
    [OP_POW] = XY "a = abs(x)\nz = pow(a, y)\n",
    [OP_FMOD] = XY "a = mul(x, 7.0)\nz = fmod(a, y)\n",
    /* floors of 4x: equal about a quarter of the time */
    [OP_EQ] = XY "a = mul(x, 4.0)\nb = mul(y, 4.0)\nfa = floor(a)\nfb = floor(b)\nz = eq(fa, fb)\n",
    [OP_NE] = XY "a = mul(x, 4.0)\nb = mul(y, 4.0)\nfa = floor(a)\nfb = floor(b)\nz = ne(fa, fb)\n",
    [OP_AND] = XY "c = lt(x, y)\nd = gt(x, 0.0)\nz = and(c, d)\n",
    [OP_OR] = XY "c = lt(x, y)\nd = gt(x, 0.0)\nz = or(c, d)\n",
    [OP_SELECT] = XY "c = lt(x, y)\nz = select(c, x, y)\n",
    [OP_CLIP] = X "y = clip(x, lo=-0.5, hi=0.25)\n",
    [OP_CAST] = X "m = mul(x, 8.0)\ny = cast(m, to=i32)\n",
    RED(REDUCE_SUM, reduce_sum),
    RED(REDUCE_MEAN, reduce_mean),
    RED(REDUCE_MAX, reduce_max),
    RED(REDUCE_MIN, reduce_min),
    RED(REDUCE_PROD, reduce_prod),
    [OP_ARGMAX] = X "y = argmax(x, axis=1)\n",
    [OP_SOFTMAX] = X "y = softmax(x, axis=-1)\n",
    [OP_LOG_SOFTMAX] = X "y = log_softmax(x, axis=-1)\n",
    [OP_LAYERNORM] = X "param g: f32[37]\nparam b: f32[37]\ny = layernorm(x, g, b)\n",
    [OP_RMSNORM] = X "param g: f32[37]\ny = rmsnorm(x, g)\n",
    [OP_RESHAPE] = X "r = reshape(x, shape=[37, N])\ny = neg(r)\n",
    [OP_TRANSPOSE] = X "t = transpose(x, perm=[1, 0])\ny = neg(t)\n",
    [OP_BROADCAST_TO] =
        X "input v: f32[1, 37]\nb = broadcast_to(v, shape=[N, 37])\ny = mul(b, x)\n",
    [OP_SLICE] = X "s = slice(x, axes=[1], starts=[3], ends=[30], steps=[2])\ny = neg(s)\n",
    [OP_CONCAT] = XY "c = concat(x, y, axis=1)\nz = neg(c)\n",
    [OP_SQUEEZE] = "input x: f32[N, 1, 37]\ns = squeeze(x, axes=[1])\ny = neg(s)\n",
    [OP_UNSQUEEZE] = X "u = unsqueeze(x, axes=[1])\ny = neg(u)\n",
    /* indices in [-8, 8) (dvm_tensor_fill_random): inside 37, negative ones from the end */
    [OP_GATHER] = X "input i: i64[M]\nt = gather(x, i, axis=1)\ny = neg(t)\n",
    [OP_MATMUL] = X "param w: f32[37, 13]\ny = matmul(x, w)\n",
    [OP_FULL] = X "f = full(shape=[N, 37], value=0.5, dtype=f32)\ny = add(x, f)\n",
    [OP_ARANGE] = X "a = arange(n=37, dtype=f32)\ny = add(x, a)\n",
    [OP_CALL] = X "y = call(x, fn=cov_affine, shape=[N, 37], dtype=f32, dims=[N*37])\n",
};

/* call's function: out = 2·x + 1 over n elements */
static void cov_affine(const float *x, float *out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = 2.0f * x[i] + 1.0f;
}

/* ---- helpers ----------------------------------------------------------------------------- */

static dvm_context *ctx;

/* The graph text of op: `graph`, its body, `output` of the last value defined. */
static char *graph_text(int op) {
  const char *body = graphs[op];
  const char *last = body, *p;
  for (p = body; *p; p++) /* the last line's name: what it defines */
    if (p[0] == '\n' && p[1]) last = p + 1;
  size_t nlen = strcspn(last, " =");
  size_t cap = strlen(body) + nlen + 64;
  char *t = malloc(cap);
  if (t) snprintf(t, cap, "graph cov_%s\n%soutput %.*s\n", ir_ops[op].name, body, (int)nlen, last);
  return t;
}

/* The line of op's graph text that applies op ("= name("), 0 if none (sources). */
static int op_line(const char *text, int op) {
  char pat[64];
  snprintf(pat, sizeof pat, "= %s(", ir_ops[op].name);
  const char *at = strstr(text, pat);
  if (!at) return 0;
  int line = 1;
  for (const char *p = text; p < at; p++) line += *p == '\n';
  return line;
}

/* Does some line of a `dump --stage fused` text name op `name` as a kernel member? */
static bool fused_member(const char *dump, const char *name) {
  size_t n = strlen(name);
  for (const char *l = dump; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
    const char *end = strchr(l, '\n');
    size_t len = end ? (size_t)(end - l) : strlen(l);
    if (len < 7 || strncmp(l, "  line ", 7)) continue;
    for (const char *p = l + 1; p + n <= l + len; p++)
      if (!strncmp(p, name, n) && p[-1] == ' ' && (p + n == l + len || p[n] == ' ')) return true;
  }
  return false;
}

/* Seeded random tensors for a model's inputs at the binding N = n (other symbols 9), or
   for its params (made once per op: the models keep them). */
typedef struct Feed {
  int n;
  const char *names[8];
  dvm_tensor *t[8];
} Feed;

static bool make_tensor(const dvm_model *m, const char *name, int64_t n, uint64_t seed,
                        dvm_tensor **t) {
  const char *syms[4];
  int64_t vals[4];
  int ns = dvm_model_num_symbols(m);
  if (ns > 4) return false;
  for (int s = 0; s < ns; s++) {
    syms[s] = dvm_model_symbol_name(m, s);
    vals[s] = !strcmp(syms[s], "N") ? n : 9;
  }
  int rank;
  int64_t shape[DVM_MAX_RANK];
  if (dvm_model_shape(m, name, 0, NULL, NULL, ns, syms, vals, &rank, shape) ||
      dvm_tensor_create((dvm_dtype)dvm_model_value_dtype(m, name), rank, shape, t))
    return false;
  dvm_tensor_fill_random(*t, seed);
  return true;
}

static bool feed_make(const dvm_model *m, bool params, int op, int64_t n, Feed *f) {
  memset(f, 0, sizeof *f);
  f->n = params ? dvm_model_num_params(m) : dvm_model_num_inputs(m);
  if (f->n > 8) return false;
  for (int i = 0; i < f->n; i++) {
    f->names[i] = params ? dvm_model_param_name(m, i) : dvm_model_input_name(m, i);
    uint64_t seed = (params ? 500000u : 10u * (uint64_t)n) + 1000u * (uint64_t)op + (uint64_t)i;
    if (!make_tensor(m, f->names[i], n, seed, &f->t[i])) return false;
  }
  return true;
}

static void feed_free(Feed *f) {
  for (int i = 0; i < 8; i++) dvm_tensor_destroy(f->t[i]);
}

/* Graph g compiled in tier t, or NULL. */
static dvm_model *compile(const dvm_graph *g, dvm_tier t) {
  dvm_compile_options opt = {.tier = t};
  dvm_model *m = NULL;
  return dvm_model_compile(ctx, g, &opt, &m) ? NULL : m;
}

static bool bind_params(dvm_model *m, const Feed *par) {
  for (int i = 0; i < par->n; i++)
    if (dvm_model_set_param(m, par->names[i], par->t[i])) return false;
  return true;
}

/* The worst disagreement of a with the reference r, in units of the tolerance (<= 1:
   agree); INFINITY for a shape, dtype or NaN mismatch. */
static double disagreement(const dvm_tensor *a, const dvm_tensor *r) {
  if (dvm_tensor_dtype(a) != dvm_tensor_dtype(r) || dvm_tensor_numel(a) != dvm_tensor_numel(r))
    return INFINITY;
  dvm_dtype dt = dvm_tensor_dtype(r);
  bool flt = dt == DVM_F32 || dt == DVM_F16 || dt == DVM_BF16;
  double worst = 0;
  for (int64_t i = 0; i < dvm_tensor_numel(r); i++) {
    double x = dvm_tensor_get_f64(a, i), y = dvm_tensor_get_f64(r, i);
    if (isnan(x) || isnan(y)) {
      if (isnan(x) != isnan(y)) return INFINITY;
      continue;
    }
    if (x == y) continue;
    if (!flt || isinf(x) || isinf(y)) return INFINITY;
    double d = fabs(x - y) / (1e-5 + 1e-4 * fabs(y));
    worst = d > worst ? d : worst;
  }
  return worst;
}

/* Run m on inputs f; outputs into o (num_outputs of them, the caller destroys). */
static dvm_status run(dvm_model *m, const Feed *f, dvm_tensor **o) {
  return dvm_model_run(m, f->n, f->names, f->t, o);
}

/* ---- checks ------------------------------------------------------------------------------ */

static void check_table(void) {
  CHECK((int)NLINES == (int)OP_COUNT, "kernel/cover.def has %d lines for %d ops", (int)NLINES,
        (int)OP_COUNT);
  for (int i = 0; i < NLINES && i < OP_COUNT; i++) {
    const Line *l = &lines[i];
    char lower[32];
    size_t k = 0;
    for (; l->id[k] && k + 1 < sizeof lower; k++) lower[k] = (char)tolower((unsigned char)l->id[k]);
    lower[k] = 0;
    CHECK(l->op == i, "line %d of kernel/cover.def is %s, op %d (%s) in ir/ops.def", i + 1, l->id,
          i, ir_ops[i].name);
    CHECK(!strcmp(lower, ir_ops[l->op].name), "cover.def's %s is not op %s", l->id,
          ir_ops[l->op].name);
    for (int t = 0; t < KN_NTIERS; t++) {
      CHECK(!l->col[t] || l->col[t][0], "%s: the %s column is an empty reason", l->id,
            tier_names[t]);
      const char *a = kn_op_cover((Op)l->op, t), *b = l->col[t];
      CHECK(a == b || (a && b && !strcmp(a, b)), "kn_op_cover(%s, %s) is not the table's", l->id,
            tier_names[t]);
    }
    CHECK(l->col[KN_TIER_VM] || !l->col[KN_TIER_LLVM], "%s: vm YES where llvm declines (%s)", l->id,
          l->col[KN_TIER_LLVM]);
  }
  CHECK(kn_op_cover(OP_COUNT, KN_TIER_REF) && kn_op_cover(OP_NEG, KN_NTIERS) &&
            kn_op_cover(OP_NEG, -1),
        "kn_op_cover out of range gives a reason");
  for (int op = 0; op < OP_COUNT; op++)
    CHECK(graphs[op] != NULL, "op %s has no graph in graphs[]", ir_ops[op].name);
}

/* Op `op` in tier t: the table's answer against the code. ref: op's graph g compiled in
   the reference tier (NULL if that failed), par: its params, bound to ref. */
static void check_op_tier(int op, int t, const char *text, const dvm_graph *g, dvm_model *ref,
                          const Feed *par) {
  const char *name = ir_ops[op].name, *no = kn_op_cover((Op)op, t);
  if (t == KN_TIER_REF) { /* it runs, or fails as the table says */
    Feed f = {0};
    dvm_tensor *o[4] = {0};
    bool ran = ref && feed_make(ref, false, op, 5, &f) && !run(ref, &f, o);
    if (no)
      CHECK(!ran, "%s: the table says ref does not run it (%s), but ref ran it", name, no);
    else
      CHECK(ran, "%s in ref: %s", name, dvm_last_error());
    for (int i = 0; i < 4; i++) dvm_tensor_destroy(o[i]);
    feed_free(&f);
    return;
  }
  dvm_model *m = compile(g, tiers[t]);
  CHECK(m != NULL, "%s in %s: compile: %s", name, tier_names[t], dvm_last_error());
  if (!m || !ref) {
    dvm_model_destroy(m);
    return;
  }
  /* every kernel ran in the tier, or the op's did not: the stats */
  dvm_stats st;
  dvm_model_stats(m, &st);
  int64_t done = t == KN_TIER_VM ? st.vm_encodes : st.native_kernels;
  const char *stage = t == KN_TIER_VM ? "bytecode" : "llvm";
  CHECK(st.kernels >= 1, "%s in %s: no kernels", name, tier_names[t]);
  if (!no)
    CHECK(done == st.kernels,
          "%s in %s: %lld of %lld kernels ran in the tier (dvm dump --stage %s)", name,
          tier_names[t], (long long)done, (long long)st.kernels, stage);
  else
    CHECK(done < st.kernels, "%s in %s: the table says declined (%s), but every kernel ran there",
          name, tier_names[t], no);
  /* ... and the dump says the same (llvm's dump makes a JIT of its own: only to read a
     reason) */
  if (t == KN_TIER_VM || no) {
    const char *decl = t == KN_TIER_VM ? "not bytecode" : "not native";
    char *dump = dvm_graph_dump(g, stage);
    CHECK(dump != NULL, "%s: dump --stage %s: %s", name, stage, dvm_last_error());
    if (dump && !no)
      CHECK(!strstr(dump, decl), "%s in %s: the table says YES, the dump says:\n%s", name,
            tier_names[t], dump);
    if (dump && no) {
      char want[512];
      int line = op_line(text, op);
      if (line)
        snprintf(want, sizeof want, "%s at line %d: %s", name, line, no);
      else
        snprintf(want, sizeof want, "%s", no);
      CHECK(strstr(dump, decl) && strstr(dump, want), "%s in %s: the dump does not say \"%s\":\n%s",
            name, tier_names[t], want, dump);
    }
    free(dump);
  }
  /* the lowered form covers what the code generators cover (kn_lower_all takes kn_supported's
     verdict): every kernel lowered where llvm runs the op, the op's kernel not where it
     declines it */
  if (t == KN_TIER_LLVM) {
    char *low = dvm_graph_dump(g, "lowered");
    CHECK(low != NULL, "%s: dump --stage lowered: %s", name, dvm_last_error());
    if (low && !no) CHECK(!strstr(low, "not lowered"), "%s: the table says llvm YES, the lowered form says:\n%s", name, low);
    if (low && no) CHECK(strstr(low, "not lowered") != NULL, "%s: llvm declines it (%s), but every kernel is lowered:\n%s", name, no, low);
    free(low);
  }
  /* outputs against the reference's */
  CHECK(bind_params(m, par), "%s in %s: params: %s", name, tier_names[t], dvm_last_error());
  int nout = dvm_model_num_outputs(m);
  for (int64_t n = 1; n <= 29; n = n * 6 - 1) {
    Feed f;
    dvm_tensor *a[4] = {0}, *r[4] = {0};
    bool made = feed_make(ref, false, op, n, &f);
    CHECK(made, "%s in %s: inputs at N=%lld: %s", name, tier_names[t], (long long)n,
          dvm_last_error());
    dvm_status sr = made ? run(ref, &f, r) : DVM_ERR_USAGE,
               sa = made ? run(m, &f, a) : DVM_ERR_USAGE;
    CHECK(!sr && !sa, "%s in %s at N=%lld: run: %s", name, tier_names[t], (long long)n,
          dvm_last_error());
    for (int i = 0; !sr && !sa && i < nout && i < 4; i++) {
      double d = disagreement(a[i], r[i]);
      CHECK(d <= 1, "%s in %s at N=%lld: output %s is %.3g tolerances from the reference", name,
            tier_names[t], (long long)n, dvm_model_output_name(m, i), d);
    }
    for (int i = 0; i < 4; i++) dvm_tensor_destroy(a[i]), dvm_tensor_destroy(r[i]);
    feed_free(&f);
  }
  dvm_model_destroy(m);
}

static void check_op(int op, int covered[KN_NTIERS]) {
  const char *name = ir_ops[op].name;
  char *text = graph_text(op);
  dvm_graph *g = NULL;
  if (!text || dvm_graph_parse(ctx, text, strlen(text), name, &g)) {
    CHECK(false, "%s: parse: %s", name, dvm_last_error());
    free(text);
    return;
  }
  if (ir_ops[op].kind != OPK_SOURCE) { /* the op is in a kernel (sources: read by one) */
    char *fused = dvm_graph_dump(g, "fused");
    CHECK(fused && fused_member(fused, name), "%s: not a kernel member:\n%s", name,
          fused ? fused : dvm_last_error());
    free(fused);
  }
  dvm_model *ref = compile(g, DVM_TIER_REF);
  Feed par = {0};
  bool ok = ref && feed_make(ref, true, op, 0, &par) && bind_params(ref, &par);
  if (!kn_op_cover((Op)op, KN_TIER_REF))
    CHECK(ok, "%s in ref: compile and params: %s", name, dvm_last_error());
  for (int t = 0; t < KN_NTIERS; t++) {
    check_op_tier(op, t, text, g, ok ? ref : NULL, &par);
    covered[t] += kn_op_cover((Op)op, t) == NULL;
  }
  dvm_model_destroy(ref);
  feed_free(&par);
  dvm_graph_destroy(g);
  free(text);
}

int main(void) {
  if (dvm_context_create(&ctx)) return printf("context: %s\n", dvm_last_error()), 1;
  CHECK(!dvm_register_extern(ctx, "cov_affine", (dvm_extern_fn)cov_affine,
                             "void <- f32* x, f32* out, i64 n"),
        "register: %s", dvm_last_error());
  check_table();
  int covered[KN_NTIERS] = {0};
  for (int op = 0; op < OP_COUNT; op++)
    if (graphs[op]) check_op(op, covered);
  printf("kernel/cover.def: %d ops; run by ref %d, vm %d, llvm %d\n", (int)OP_COUNT,
         covered[KN_TIER_REF], covered[KN_TIER_VM], covered[KN_TIER_LLVM]);
  for (int op = 0; op < OP_COUNT; op++)
    for (int t = 0; t < KN_NTIERS; t++)
      if (kn_op_cover((Op)op, t))
        printf("  %s not in %s: %s\n", ir_ops[op].name, tier_names[t], kn_op_cover((Op)op, t));
  dvm_context_destroy(ctx);
  return CHECK_SUMMARY();
}
