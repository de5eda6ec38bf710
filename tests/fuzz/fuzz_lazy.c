/* tests/fuzz/fuzz_lazy.c — libFuzzer target for the lazy front end (runtime/lazy.c,
 * runtime/trace.c): the input is a small eager program — two input shapes, then ops with
 * their operands and attributes, some results held — run at two sizes:
 *
 *   - in a context whose trace cache stays warm across inputs (bytecode tier), so that
 *     programs hit variants compiled at other sizes by earlier inputs;
 *   - in a context whose flushes run the reference tier (op by op, in double), the oracle.
 *
 * The ops' statuses must agree (recording is the same in both), and every held value
 * must agree within the bytecode tier's tolerance: NaN and infinities alike, else
 * |got - want| <= 1e-3 (1 + |want|). The ops keep values bounded (no exp, no division).
 * Anything else — a crash, a leak, a sanitizer report — is a finding too. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dvm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAXSTEPS = 8, MAXV = MAXSTEPS + 2 };

typedef struct Step {
  const char *op;
  int nin, a, b;
  bool held;
  char attrs[96];
} Step;

typedef struct Prog {
  int xrank, yform, nsteps;
  Step s[MAXSTEPS];
} Prog;

/* Reads bytes from the input, zeros past its end. */
typedef struct In {
  const uint8_t *p;
  size_t n, at;
} In;
static unsigned byte(In *in) { return in->at < in->n ? in->p[in->at++] : 0; }

static void decode(In *in, Prog *p) {
  p->xrank = 1 + byte(in) % 2;
  p->yform = byte(in) % 3; /* y: x's shape, x's last dim alone, or [1, last] */
  p->nsteps = 1 + byte(in) % MAXSTEPS;
  for (int i = 0; i < p->nsteps; i++) {
    Step *s = &p->s[i];
    unsigned k = byte(in), nv = 2 + (unsigned)i;
    s->a = (int)(byte(in) % nv), s->b = (int)(byte(in) % nv);
    s->held = (k & 0x80) || i == p->nsteps - 1;
    s->attrs[0] = 0;
    s->nin = 1;
    int st = (int)(byte(in) % 9) - 4, en = (int)(byte(in) % 11) - 4;
    switch (k % 20) {
    case 0: s->op = "add", s->nin = 2; break;
    case 1: s->op = "sub", s->nin = 2; break;
    case 2: s->op = "mul", s->nin = 2; break;
    case 3: s->op = "max", s->nin = 2; break;
    case 4: s->op = "tanh"; break;
    case 5: s->op = "sigmoid"; break;
    case 6: s->op = "neg"; break;
    case 7: s->op = "abs"; break;
    case 8: s->op = "reduce_sum", snprintf(s->attrs, sizeof s->attrs, "axes=[-1], keepdims=%u", k >> 5 & 1); break;
    case 9: s->op = "reduce_max", snprintf(s->attrs, sizeof s->attrs, "axes=[0], keepdims=%u", k >> 5 & 1); break;
    case 10: s->op = "softmax", snprintf(s->attrs, sizeof s->attrs, "axis=%d", k >> 5 & 1 ? 0 : -1); break;
    case 11: s->op = "transpose"; break;
    case 12: s->op = "unsqueeze", snprintf(s->attrs, sizeof s->attrs, "axes=[0]"); break;
    case 13: s->op = "squeeze"; break;
    case 14:
      s->op = "slice";
      snprintf(s->attrs, sizeof s->attrs, "axes=[%d], starts=[%d], ends=[%d]", k >> 5 & 1 ? -1 : 0, st,
               en == 6 ? 2147483647 : en);
      break;
    case 15: s->op = "concat", s->nin = 2, snprintf(s->attrs, sizeof s->attrs, "axis=%d", k >> 5 & 1 ? -1 : 0); break;
    case 16: s->op = "reshape", snprintf(s->attrs, sizeof s->attrs, k >> 5 & 1 ? "shape=[-1, 2]" : "shape=[-1]"); break;
    case 17: s->op = "matmul", s->nin = 2, snprintf(s->attrs, sizeof s->attrs, "transpose_b=1"); break;
    case 18: s->op = "layernorm", s->nin = 1; break; /* with constant gamma and beta: below */
    default: s->op = "relu"; break;
    }
  }
}

typedef struct Result {
  int failed_at;             /* the step whose op failed, or -1 */
  dvm_status st;
  int nheld;
  dvm_tensor *held[MAXSTEPS]; /* copies of the held values, in step order */
} Result;

static dvm_tensor *copy(dvm_tensor *t) {
  dvm_tensor *c;
  if (dvm_tensor_create(dvm_tensor_dtype(t), dvm_tensor_rank(t), dvm_tensor_shape(t), &c)) abort();
  memcpy(dvm_tensor_data(c), dvm_tensor_data(t), (size_t)dvm_tensor_numel(t) * dvm_dtype_size(dvm_tensor_dtype(t)));
  return c;
}

/* p run in ctx at x: [n0, n1] (or [n1]), its held values read into r. */
static void run(dvm_context *ctx, const Prog *p, int64_t n0, int64_t n1, Result *r) {
  int64_t xs[2] = {n0, n1}, ys[2] = {n0, n1}, ys1[2] = {1, n1};
  dvm_tensor *xt, *yt;
  const int64_t *xshape = p->xrank == 2 ? xs : xs + 1;
  const int64_t *yshape = p->yform == 0 ? xshape : p->yform == 1 ? ys + 1 : ys1;
  int yrank = p->yform == 0 ? p->xrank : p->yform == 1 ? 1 : 2;
  if (dvm_tensor_create(DVM_F32, p->xrank, xshape, &xt) || dvm_tensor_create(DVM_F32, yrank, yshape, &yt)) abort();
  dvm_tensor_fill_random(xt, 1), dvm_tensor_fill_random(yt, 2);
  dvm_lazy *v[MAXV] = {0};
  memset(r, 0, sizeof *r);
  r->failed_at = -1;
  if (dvm_lazy_wrap(ctx, xt, &v[0]) || dvm_lazy_wrap(ctx, yt, &v[1])) abort();
  for (int i = 0; i < p->nsteps; i++) {
    const Step *s = &p->s[i];
    dvm_lazy *in[3] = {v[s->a], v[s->b], NULL};
    dvm_status st;
    if (!strcmp(s->op, "layernorm")) { /* gamma and beta: scalars (broadcast over the row) */
      dvm_lazy *g, *b;
      if (dvm_lazy_scalar(ctx, 1.5, DVM_F32, &g) || dvm_lazy_scalar(ctx, -0.25, DVM_F32, &b)) abort();
      dvm_lazy *ln[3] = {v[s->a], g, b};
      st = dvm_lazy_op(ctx, "layernorm", 3, ln, "axis=-1, eps=1e-3", &v[2 + i]);
      dvm_lazy_destroy(g), dvm_lazy_destroy(b);
    } else {
      st = dvm_lazy_op(ctx, s->op, s->nin, in, s->attrs[0] ? s->attrs : NULL, &v[2 + i]);
    }
    if (st) {
      r->failed_at = i, r->st = st;
      break;
    }
  }
  for (int i = 0; i < p->nsteps && r->failed_at < 0; i++) /* let go of what is not held */
    if (!p->s[i].held) dvm_lazy_destroy(v[2 + i]), v[2 + i] = NULL;
  for (int i = 0; i < p->nsteps && r->failed_at < 0; i++) {
    if (!v[2 + i]) continue;
    dvm_tensor *t;
    dvm_status st = dvm_lazy_tensor(v[2 + i], &t);
    if (st) {
      r->failed_at = p->nsteps + i, r->st = st;
      break;
    }
    r->held[r->nheld++] = copy(t);
  }
  for (int i = 0; i < MAXV; i++) dvm_lazy_destroy(v[i]);
  if (dvm_lazy_sync(ctx)) abort(); /* nothing pending reads the inputs now */
  dvm_tensor_destroy(xt), dvm_tensor_destroy(yt);
}

static void release(Result *r) {
  for (int i = 0; i < r->nheld; i++) dvm_tensor_destroy(r->held[i]);
}

static bool same(double g, double w) {
  if (isnan(w) || isnan(g)) return isnan(w) && isnan(g);
  if (isinf(w) || isinf(g)) return g == w;
  return fabs(g - w) <= 1e-3 * (1 + fabs(w));
}

static void compare(const Prog *p, int64_t n0, int64_t n1, const Result *got, const Result *want) {
  const char *why = NULL;
  char buf[160];
  if (got->failed_at != want->failed_at || (got->failed_at >= 0 && got->st != want->st)) {
    snprintf(buf, sizeof buf, "step %d status %d against the reference's step %d status %d", got->failed_at,
             got->st, want->failed_at, want->st);
    why = buf;
  }
  for (int i = 0; !why && i < got->nheld; i++) {
    dvm_tensor *g = got->held[i], *w = want->held[i];
    bool ok = dvm_tensor_rank(g) == dvm_tensor_rank(w) && dvm_tensor_numel(g) == dvm_tensor_numel(w);
    for (int k = 0; ok && k < dvm_tensor_rank(g); k++) ok = dvm_tensor_shape(g)[k] == dvm_tensor_shape(w)[k];
    for (int64_t e = 0; ok && e < dvm_tensor_numel(g); e++)
      if (!same(dvm_tensor_get_f64(g, e), dvm_tensor_get_f64(w, e))) {
        snprintf(buf, sizeof buf, "held value %d element %lld: %.9g, reference %.9g", i, (long long)e,
                 dvm_tensor_get_f64(g, e), dvm_tensor_get_f64(w, e));
        why = buf;
        break;
      }
    if (!ok && !why) why = "a held value's shape differs from the reference's";
  }
  if (!why) return;
  fprintf(stderr, "fuzz_lazy: x rank %d, y form %d, n0 %lld, n1 %lld:\n", p->xrank, p->yform, (long long)n0,
          (long long)n1);
  for (int i = 0; i < p->nsteps; i++)
    if (p->s[i].nin > 1)
      fprintf(stderr, "  v%d = %s(v%d, v%d%s%s)%s\n", 2 + i, p->s[i].op, p->s[i].a, p->s[i].b,
              p->s[i].attrs[0] ? ", " : "", p->s[i].attrs, p->s[i].held ? " held" : "");
    else
      fprintf(stderr, "  v%d = %s(v%d%s%s)%s\n", 2 + i, p->s[i].op, p->s[i].a, p->s[i].attrs[0] ? ", " : "",
              p->s[i].attrs, p->s[i].held ? " held" : "");
  fprintf(stderr, "  %s\n", why);
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static dvm_context *warm, *ref;
  if (!warm) {
    dvm_lazy_options vm = {.tier = DVM_TIER_VM, .threads = 1, .cache_entries = 64},
                     oracle = {.tier = DVM_TIER_REF, .threads = 1, .cache_entries = 1};
    if (dvm_context_create(&warm) || dvm_context_create(&ref) || dvm_context_set_lazy_options(warm, &vm) ||
        dvm_context_set_lazy_options(ref, &oracle))
      abort();
  }
  In in = {data, size, 0};
  Prog p;
  decode(&in, &p);
  for (int round = 0; round < 2; round++) {
    int64_t n0 = 1 + byte(&in) % 6, n1 = 1 + byte(&in) % 6;
    if (getenv("DVM_FUZZ_VERBOSE")) fprintf(stderr, "round %d: n0 %lld, n1 %lld\n", round, (long long)n0, (long long)n1);
    Result got, want;
    run(warm, &p, n0, n1, &got);
    run(ref, &p, n0, n1, &want);
    compare(&p, n0, n1, &got, &want);
    release(&got), release(&want);
  }
  return 0;
}
