/* onnx/window.c — the ONNX ops that slide a window over the spatial axes of an (N, C, ...)
 * tensor: Conv, ConvTranspose, MaxPool, AveragePool, and BatchNormalization, which a
 * convolution net puts after each of them.
 *
 * The input is padded once (a concat with `full` blocks of the pad value), and each
 * kernel offset becomes one strided slice of it, of the output's spatial size:
 *
 *   pools   the offsets' slices combined elementwise (max, or sum over the count of
 *           the real elements in the window), which fusion makes one kernel;
 *   Conv    the offsets' slices stacked after C (im2col: (N, C·K, P) for K offsets and
 *           P output positions) and multiplied by the weights as (M, C·K); groups are
 *           a batch axis of the matmul; a 1×1 kernel without padding or stride is a
 *           reshape. The bias and what follows fuse into the matmul's epilogue.
 *           ConvTranspose is the same product over a table in which each output
 *           position reads the input position it came from (a zero between strides).
 *
 * Output sizes follow ONNX (floor, or ceil with ceil_mode; auto_pad SAME_UPPER,
 * SAME_LOWER and VALID). A spatial dim may be symbolic where the size stays exact: a
 * stride of 1, or a stride that divides. */
#include <math.h>
#include <string.h>

#include "onnx.h"

#define R DVM_MAX_RANK
#define SP 3 /* spatial axes at most */

typedef struct Win {
  int ns;                                          /* spatial axes: 2 .. 2 + ns */
  int64_t k[SP], s[SP], dl[SP], pb[SP], pe[SP];    /* kernel, stride, dilation, pads */
  int64_t extra[SP];                               /* ceil_mode's pad after pe */
  Dim out[SP];
  bool transposed;                                 /* ConvTranspose's: output o reads input
                                                      (o + pb - k·dl) / s where it divides */
} Win;

static Dim dc(Imp *I, int64_t c) { return ir_dim_const(I->g, c); }

/* auto_pad's values, by index: 0 NOTSET, 1 VALID, 2 SAME_UPPER, 3 SAME_LOWER. */
static const char *const auto_pads[] = {"NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER", NULL};

/* An int-list attribute of exactly n entries, or every entry dflt when absent. */
static bool ints_n(Imp *I, const char *name, int64_t *out, int n, int64_t dflt) {
  int64_t v[2 * SP];
  int m = onnx_attr_ints(I, name, v, 2 * SP);
  if (m == -2) return false;
  if (m >= 0 && m != n)
    return onnx_fail(I, DVM_ERR_GRAPH, "attribute '%s' has %d entries, %d expected", name, m, n), false;
  for (int i = 0; i < n; i++) out[i] = m < 0 ? dflt : v[i];
  return true;
}

/* The window of node I->node over x's dims d (rank r); kernel: the kernel's spatial dims
 * (from the weights) or NULL to read kernel_shape. */
static bool window(Imp *I, const Dim *d, int r, const int64_t *kernel, Win *w) {
  w->ns = r - 2;
  if (w->ns < 1 || w->ns > SP)
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "input of rank %d: 1 to %d spatial axes after N and C are supported",
                     r, SP), false;
  int ns = w->ns;
  int64_t pads[2 * SP];
  if (kernel) memcpy(w->k, kernel, (size_t)ns * sizeof *kernel);
  else if (!onnx_attr(I, "kernel_shape")) return onnx_fail(I, DVM_ERR_GRAPH, "kernel_shape is missing"), false;
  if ((!kernel && !ints_n(I, "kernel_shape", w->k, ns, 1)) || !ints_n(I, "strides", w->s, ns, 1) ||
      !ints_n(I, "dilations", w->dl, ns, 1) || !ints_n(I, "pads", pads, 2 * ns, 0))
    return false;
  int mode = onnx_attr_choice(I, "auto_pad", auto_pads, 0);
  if (mode < 0) return false;
  bool same = mode >= 2, ceil_mode = onnx_attr_i(I, "ceil_mode", 0) != 0;
  for (int i = 0; i < ns; i++) {
    int64_t k = w->k[i], s = w->s[i], dl = w->dl[i], in, c;
    const int64_t big = (int64_t)1 << 40; /* sums and products of these stay far from overflow */
    if (k < 1 || s < 1 || dl < 1 || pads[i] < 0 || pads[ns + i] < 0 || k > (1 << 20) || dl > (1 << 20) ||
        s > big || pads[i] > big || pads[ns + i] > big)
      return onnx_fail(I, DVM_ERR_GRAPH, "axis %d: kernel %lld, stride %lld, dilation %lld, pads %lld and %lld "
                       "(kernel, stride and dilation must be positive, pads not negative, none huge)", 2 + i, (long long)k,
                       (long long)s, (long long)dl, (long long)pads[i], (long long)pads[ns + i]), false;
    int64_t ext = (k - 1) * dl + 1;
    Dim x = d[2 + i];
    bool known = onnx_dim_const(I, x, &in);
    w->pb[i] = mode == 0 ? pads[i] : 0, w->pe[i] = mode == 0 ? pads[ns + i] : 0, w->extra[i] = 0;
    if (same) { /* out = ceil(in / s); the pads make the windows cover it */
      int64_t total, o;
      if (s == 1) total = ext - 1, w->out[i] = x;
      else if (known) o = in / s + (in % s != 0), total = (o - 1) * s + ext - in, w->out[i] = dc(I, o);
      else return onnx_fail(I, DVM_ERR_UNSUPPORTED, "auto_pad SAME with stride %lld over the symbolic dim %d",
                            (long long)s, 2 + i), false;
      total = total < 0 ? 0 : total;
      w->pb[i] = mode != 2 ? total - total / 2 : total / 2;
      w->pe[i] = total - w->pb[i];
      continue;
    }
    Dim padded = ir_dim_add(I->g, x, dc(I, w->pb[i] + w->pe[i])), span = ir_dim_sub(I->g, padded, dc(I, ext));
    if (!onnx_dim_const(I, span, &c) && /* a symbolic dim: the window must fit when the model runs */
        ir_require_le(I->g, dc(I, ext), padded, (uint32_t)I->g->nodes.n - 1, I->nodeno, I->err))
      return false;
    if (onnx_dim_const(I, span, &c)) {
      if (c < 0) return onnx_fail(I, DVM_ERR_SHAPE, "axis %d: the window (%lld) is larger than the padded input (%lld)",
                                  2 + i, (long long)ext, (long long)(c + ext)), false;
      int64_t o = c / s + (ceil_mode && c % s != 0) + 1;
      if (ceil_mode && (o - 1) * s >= c + ext - w->pe[i]) o--; /* no window starts in the end pad */
      w->out[i] = dc(I, o);
      w->extra[i] = (o - 1) * s + ext - (c + ext);
      if (w->extra[i] < 0) w->extra[i] = 0;
    } else if (s == 1) {
      w->out[i] = ir_dim_add(I->g, span, dc(I, 1));
    } else {
      Dim q = onnx_dim_div(I->g, span, dc(I, s));
      if (q == DIM_NONE)
        return onnx_fail(I, DVM_ERR_UNSUPPORTED, "axis %d: stride %lld over a symbolic dim that it may not divide",
                         2 + i, (long long)s), false;
      w->out[i] = ir_dim_add(I->g, q, dc(I, 1));
    }
  }
  return true;
}

/* x padded along the spatial axes with value c (pb before, pe + extra after each). */
static int64_t pad(Imp *I, int64_t x, const Win *w, double c, bool count_extra) {
  for (int i = 0; i < w->ns; i++) x = onnx_pad_axis(I, x, 2 + i, w->pb[i], w->pe[i] + (count_extra ? w->extra[i] : 0), c, -1);
  return x;
}

/* The window offset number j (row-major over the kernel) as a strided slice of xp. */
static int64_t offset_slice(Imp *I, int64_t xp, const Win *w, int64_t j) {
  int64_t axes[SP], steps[SP], o[SP];
  Dim st[SP], en[SP];
  for (int i = w->ns - 1; i >= 0; i--) o[i] = j % w->k[i], j /= w->k[i];
  for (int i = 0; i < w->ns; i++) {
    axes[i] = 2 + i, steps[i] = w->s[i];
    int64_t a = o[i] * w->dl[i];
    st[i] = dc(I, a); /* a + (out - 1) s + 1 */
    en[i] = ir_dim_add(I->g, ir_dim_mul(I->g, w->out[i], dc(I, w->s[i])), dc(I, a + 1 - w->s[i]));
  }
  NodeDraft d = {.op = OP_SLICE, .nin = 1, .in = {(uint32_t)xp}};
  onnx_at_ints(I, &d, AK_AXES, axes, (uint32_t)w->ns);
  onnx_at_dims(I, &d, AK_STARTS, st, (uint32_t)w->ns);
  onnx_at_dims(I, &d, AK_ENDS, en, (uint32_t)w->ns);
  onnx_at_ints(I, &d, AK_STEPS, steps, (uint32_t)w->ns);
  return onnx_add(I, &d, NULL);
}

static int64_t kernel_size(const Win *w) {
  int64_t n = 1;
  for (int i = 0; i < w->ns; i++) n *= w->k[i];
  return n;
}

/* The windows of xp combined with op (max or add). */
static int64_t pool_of(Imp *I, int64_t xp, const Win *w, Op op) {
  int64_t acc = -1, n = kernel_size(w);
  if (xp < 0) return -1;
  for (int64_t j = 0; j < n; j++) {
    int64_t s = offset_slice(I, xp, w, j);
    if (s < 0) return -1;
    acc = acc < 0 ? s : onnx_binary(I, op, (uint32_t)acc, (uint32_t)s, NULL);
    if (acc < 0) return -1;
  }
  return acc;
}

#define MAX_WINDOW 1024 /* offsets per window: each is a node */
#define OFFSETS_MAX ((int64_t)1 << 24) /* entries of an im2col offset table (64 MB) */

/* Input 0, its dims and rank: a float, or (ints) an integer too. */
static bool window_in(Imp *I, int64_t *x, Dim *d, int *r, bool ints) {
  if ((*x = onnx_in(I, 0)) < 0) return false;
  *r = onnx_vdims(I, *x, d);
  if (!ir_dtype_is_float(DT(*x)) && !(ints && ir_dtype_is_int(DT(*x))))
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "%s of %s is not supported (%s only)", I->node->op_type,
                     ir_dtype_name(DT(*x)), ints ? "floats and integers" : "floats"), false;
  return true;
}

static bool small_window(Imp *I, const Win *w) {
  if (kernel_size(w) <= MAX_WINDOW) return true;
  return onnx_fail(I, DVM_ERR_UNSUPPORTED, "a window of %lld elements (at most %d)", (long long)kernel_size(w),
                   MAX_WINDOW), false;
}

/* ---- pools ------------------------------------------------------------------------------- */

/* Each element's flat position in x (rank r, dims d): C order, or with storage_order 1 the
 * spatial axes in column-major order (the first fastest) under N and C. */
static int64_t positions(Imp *I, const Dim *d, int r, bool column_major) {
  int64_t p = -1;
  Dim stride = dc(I, 1);
  for (int k = 0; k < r; k++) {
    int i = column_major && k < r - 2 ? 2 + k : r - 1 - k; /* the fastest axis first */
    int64_t c = onnx_iota(I, d[i], i, r), s = onnx_dim_value(I, stride);
    int64_t term = bin(I, OP_MUL, c, s);
    p = p < 0 ? term : bin(I, OP_ADD, p, term);
    if ((stride = ir_dim_mul(I->g, stride, d[i])) == DIM_NONE)
      return onnx_fail(I, DVM_ERR_OVERFLOW, "the element count of the input overflows"), -1;
  }
  return p;
}

/* MaxPool: the max of the window's slices of x padded with its dtype's least value; with
 * Indices, each window's first maximum's flat position in x (NaN is the maximum, as max
 * makes it), from the same slices of the positions padded with -1 (never a maximum). */
static dvm_status max_pool(Imp *I) {
  int64_t x;
  Dim d[R];
  int r;
  Win w = {0};
  if (!window_in(I, &x, d, &r, true) || !window(I, d, r, NULL, &w) || !small_window(I, &w)) return I->err->code;
  DType dt = DT(x); /* pads lose every comparison: -inf, or the integer dtype's least value */
  int bits = ir_dtype_bits(dt);
  double lowest = !bits ? -INFINITY : ir_dtype_is_unsigned(dt) ? 0 : -ldexp(1, bits - 1);
  int64_t xp = pad(I, x, &w, lowest, true);
  if (!onnx_out(I, 1)) return onnx_def_dyn(I, 0, pool_of(I, xp, &w, OP_MAX));
  int64_t pp = pad(I, positions(I, d, r, onnx_attr_i(I, "storage_order", 0) != 0), &w, -1, true);
  int64_t best = offset_slice(I, xp, &w, 0), at = pp < 0 ? -1 : offset_slice(I, pp, &w, 0);
  for (int64_t j = 1; j < kernel_size(&w) && at >= 0; j++) {
    int64_t s = offset_slice(I, xp, &w, j), better = bin(I, OP_GT, s, best);
    if (!bits) better = bin(I, OP_OR, better, bin(I, OP_AND, bin(I, OP_NE, s, s), bin(I, OP_EQ, best, best)));
    at = sel(I, better, offset_slice(I, pp, &w, j), at);
    best = bin(I, OP_MAX, best, s);
  }
  if (best < 0 || at < 0 || onnx_def_dyn(I, 0, best)) return I->err->code;
  return onnx_def_dyn(I, 1, at);
}

/* AveragePool: the window's sum over its count, which counts the pads when
 * count_include_pad (never ceil_mode's extra), else the input's elements only. */
static dvm_status average_pool(Imp *I) {
  int64_t x;
  Dim d[R];
  int r;
  Win w = {0};
  if (!window_in(I, &x, d, &r, false) || !window(I, d, r, NULL, &w) || !small_window(I, &w)) return I->err->code;
  int64_t sum = pool_of(I, pad(I, x, &w, 0, true), &w, OP_ADD);
  bool incl = onnx_attr_i(I, "count_include_pad", 0) != 0;
  bool extra = false, pads = false;
  for (int i = 0; i < w.ns; i++) extra |= w.extra[i] > 0, pads |= w.pb[i] || w.pe[i];
  int64_t count;
  if (!extra && (incl || !pads)) {
    count = onnx_literal(I, (double)kernel_size(&w), DT(x));
  } else { /* the same windows over ones (in the pads too when they count), then zeros */
    Dim s[R];
    for (int i = 0; i < r; i++) s[i] = i < 2 ? dc(I, 1) : d[i];
    int64_t ones = onnx_full(I, s, r, 1, DT(x), NULL);
    if (ones >= 0 && incl) ones = pad(I, ones, &w, 1, false);
    if (ones >= 0 && incl) { /* only ceil_mode's extra is left to pad, with zeros */
      Win e = w;
      for (int i = 0; i < w.ns; i++) e.pb[i] = 0, e.pe[i] = 0;
      ones = pad(I, ones, &e, 0, true);
    } else if (ones >= 0) {
      ones = pad(I, ones, &w, 0, true);
    }
    count = ones < 0 ? -1 : pool_of(I, ones, &w, OP_ADD);
  }
  if (sum < 0 || count < 0) return I->err->code;
  return onnx_def_dyn(I, 0, onnx_binary(I, OP_DIV, (uint32_t)sum, (uint32_t)count, onnx_out(I, 0)));
}

/* ---- Conv ---------------------------------------------------------------------------------- */

/* The offsets of im2col (below) into x's flattened spatial axes, as a constant int32 [K, P],
 * when x's spatial dims are constant: a position in the pads (for a transposed window,
 * also one between the strided input positions) reads offset `span` (one past the end,
 * where im2col puts a zero). *pads says whether any does. -1 when the dims
 * are not constant (or the table would be too large), -2 on error. */
static int64_t const_offsets(Imp *I, const Dim *d, const Win *w, bool *pads) {
  int ns = w->ns;
  int64_t in[SP], out[SP], k = kernel_size(w), p = 1, span = 1;
  for (int i = 0; i < ns; i++) {
    if (!onnx_dim_const(I, d[2 + i], &in[i]) || !onnx_dim_const(I, w->out[i], &out[i])) return -1;
    p *= out[i], span *= in[i];
  }
  if (span >= INT32_MAX || p > OFFSETS_MAX / k) return -1;
  int64_t shape[2] = {k, p};
  dvm_tensor *t = onnx_tensor_new(I, DT_I32, 2, shape, "im2col offsets");
  if (!t) return -2;
  int32_t *o = dvm_tensor_data(t);
  *pads = false;
  for (int64_t j = 0; j < k; j++) {
    int64_t kj[SP], rest = j;
    for (int i = ns - 1; i >= 0; i--) kj[i] = rest % w->k[i], rest /= w->k[i];
    for (int64_t q = 0; q < p; q++) {
      int64_t oq = q, off = 0, stride = 1, pos;
      bool in_pad = false;
      for (int i = ns - 1; i >= 0; i--) {
        if (w->transposed) {
          int64_t num = oq % out[i] + w->pb[i] - kj[i] * w->dl[i];
          in_pad |= num < 0 || num % w->s[i] != 0;
          pos = num / w->s[i];
        } else {
          pos = (oq % out[i]) * w->s[i] + kj[i] * w->dl[i] - w->pb[i];
        }
        oq /= out[i];
        in_pad |= pos < 0 || pos >= in[i];
        off += pos * stride, stride *= in[i];
      }
      o[j * p + q] = (int32_t)(in_pad ? span : off);
      *pads |= in_pad;
    }
  }
  uint32_t v;
  return onnx_use(I, onnx_val_const(I, t, NULL), &v) ? -2 : (int64_t)v;
}

/* im2col of x (N, C, spatial...) under window w: (N, C, K, P), element [n, c, k, p] the
 * input under kernel offset k at output position p, or 0 in the pads. One gather from x's
 * flattened spatial axes (with a zero after them when a pad is read) at a constant table
 * of offsets; where the spatial dims are symbolic, from the padded input at offsets
 * sum_i (o_i s_i + k_i d_i) · stride_i made of aranges over (k..., o...). */
static int64_t im2col(Imp *I, int64_t x, const Win *w) {
  if (x < 0) return -1;
  Dim d[R], stride = dc(I, 1), kp = dc(I, kernel_size(w)), p = dc(I, 1);
  int ns = w->ns;
  bool pads;
  onnx_vdims(I, x, d);
  int64_t off = const_offsets(I, d, w, &pads), xp = x;
  if (off == -2) return -1;
  if (off >= 0) {
    for (int i = 0; i < ns; i++) stride = ir_dim_mul(I->g, stride, d[2 + i]);
    Dim fs[3] = {d[0], d[1], stride};
    int64_t xf = onnx_reshape(I, x, fs, 3);
    if (pads) xf = onnx_pad_axis(I, xf, 2, 0, 1, 0, -1); /* the zero the pads read */
    return onnx_gather(I, xf, off, 2, NULL);
  }
  if ((xp = pad(I, x, w, 0, false)) < 0) return -1;
  onnx_vdims(I, xp, d);
  for (int i = ns - 1; i >= 0; i--) {
    int64_t o = onnx_iota(I, w->out[i], ns + i, 2 * ns), k = onnx_iota(I, dc(I, w->k[i]), i, 2 * ns), l[2];
    if (o < 0 || k < 0 || (l[0] = onnx_literal(I, (double)w->s[i], DT_I64)) < 0 ||
        (l[1] = onnx_literal(I, (double)w->dl[i], DT_I64)) < 0)
      return -1;
    int64_t t = onnx_binary(I, OP_MUL, (uint32_t)o, (uint32_t)l[0], NULL), u;
    if (t < 0 || (u = onnx_binary(I, OP_MUL, (uint32_t)k, (uint32_t)l[1], NULL)) < 0 ||
        (t = onnx_binary(I, OP_ADD, (uint32_t)t, (uint32_t)u, NULL)) < 0)
      return -1;
    if (i < ns - 1) {
      int64_t sv = onnx_dim_value(I, stride);
      if (sv < 0 || (t = onnx_binary(I, OP_MUL, (uint32_t)t, (uint32_t)sv, NULL)) < 0) return -1;
    }
    if (off >= 0 && (t = onnx_binary(I, OP_ADD, (uint32_t)off, (uint32_t)t, NULL)) < 0) return -1;
    off = t;
    stride = ir_dim_mul(I->g, stride, d[2 + i]);
    p = ir_dim_mul(I->g, p, w->out[i]);
  }
  Dim is[2] = {kp, p}, fs[3] = {d[0], d[1], stride};
  if ((off = onnx_reshape(I, off, is, 2)) < 0) return -1;
  return onnx_gather(I, onnx_reshape(I, xp, fs, 3), off, 2, NULL);
}

/* y = weights · cols plus bias, as the output (N, M, out...): cols (N, C·K, P) or
 * (N, g, Cg·K, P) by shape, weights (M, C/g, k...) or already (g, Mg, Cg·K). Groups are the
 * matmul's batch axis; the bias is added to its result, (M, 1) or (g, Mg, 1): its epilogue. */
static int64_t conv_matmul(Imp *I, int64_t cols, int64_t wt, int64_t b, const Dim *d, int r, const Win *w,
                              int64_t g, int64_t mg, int64_t cg) {
  int64_t nk = kernel_size(w);
  Dim p = dc(I, 1);
  for (int i = 0; i < w->ns; i++) p = ir_dim_mul(I->g, p, w->out[i]);
  Dim cs[4] = {d[0], dc(I, g), dc(I, cg * nk), p}, ws[3] = {dc(I, g), dc(I, mg), dc(I, cg * nk)};
  int64_t wm = g == 1 ? onnx_reshape(I, wt, ws + 1, 2) : onnx_reshape(I, wt, ws, 3);
  int64_t cm = g == 1 ? onnx_reshape(I, cols, (Dim[]){d[0], cs[2], p}, 3) : onnx_reshape(I, cols, cs, 4);
  int64_t y = wm < 0 || cm < 0 ? -1 : onnx_binary(I, OP_MATMUL, (uint32_t)wm, (uint32_t)cm, NULL);
  if (b >= 0 && y >= 0) {
    Dim bs[3] = {dc(I, g), dc(I, mg), dc(I, 1)};
    int64_t bm = g == 1 ? onnx_reshape(I, b, (Dim[]){dc(I, g * mg), dc(I, 1)}, 2) : onnx_reshape(I, b, bs, 3);
    y = bm < 0 ? -1 : onnx_binary(I, OP_ADD, (uint32_t)y, (uint32_t)bm, NULL);
  }
  Dim ys[R] = {d[0], dc(I, g * mg)};
  for (int i = 0; i < w->ns; i++) ys[2 + i] = w->out[i];
  return y < 0 ? -1 : onnx_reshape(I, y, ys, r);
}

int64_t onnx_conv(Imp *I, int64_t x, int64_t wt, int64_t b) {
  Dim d[R], wd[R];
  Win w = {0};
  if (x < 0 || wt < 0) return -1;
  int r = onnx_vdims(I, x, d);
  if (r < 3 || r > 2 + SP)
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "input of rank %d: 1 to %d spatial axes after N and C are supported", r, SP), -1;
  int64_t k[SP], g = onnx_attr_i(I, "group", 1), c, m, cg;
  int wr = onnx_vdims(I, wt, wd);
  if (wr != r) return onnx_fail(I, DVM_ERR_SHAPE, "the weights have rank %d, the input %d", wr, r), -1;
  for (int i = 2; i < r; i++)
    if (!onnx_dim_const(I, wd[i], &k[i - 2])) return onnx_fail(I, DVM_ERR_UNSUPPORTED, "the kernel's dims must be constant"), -1;
  if (!onnx_dim_const(I, d[1], &c) || !onnx_dim_const(I, wd[0], &m) || !onnx_dim_const(I, wd[1], &cg))
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "the channel counts must be constant"), -1;
  if (g < 1 || c % g || m % g || cg != c / g)
    return onnx_fail(I, DVM_ERR_SHAPE, "group %lld: input channels %lld, weights [%lld, %lld, ...]: C must be "
                     "group * %lld and M a multiple of group", (long long)g, (long long)c, (long long)m,
                     (long long)cg, (long long)cg), -1;
  if (onnx_attr(I, "kernel_shape")) { /* must agree with the weights */
    int64_t ks[SP];
    if (!ints_n(I, "kernel_shape", ks, r - 2, 1)) return -1;
    if (memcmp(ks, k, (size_t)(r - 2) * sizeof *k))
      return onnx_fail(I, DVM_ERR_SHAPE, "kernel_shape disagrees with the weights' dims"), -1;
  }
  if (!window(I, d, r, k, &w)) return -1;
  int64_t nk = kernel_size(&w), cols;
  if (nk > ((int64_t)1 << 31) / cg)
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "a kernel of %lld elements over %lld channels is too large",
                     (long long)nk, (long long)cg), -1;
  Dim p = dc(I, 1);
  for (int i = 0; i < w.ns; i++) p = ir_dim_mul(I->g, p, w.out[i]);
  if (p == DIM_NONE) return onnx_fail(I, DVM_ERR_OVERFLOW, "the output size overflows"), -1;
  bool plain = nk == 1;
  for (int i = 0; i < w.ns; i++) plain &= w.s[i] == 1 && !w.pb[i] && !w.pe[i];
  if (plain) { /* 1×1, stride 1, no pads: x itself is (N, C, P) */
    cols = x;
  } else {
    if ((cols = im2col(I, x, &w)) < 0) return -1;
  }
  return conv_matmul(I, cols, wt, b, d, r, &w, g, m / g, cg);
}

static dvm_status conv(Imp *I) {
  int64_t x, wt = -1, b;
  Dim d[R];
  int r;
  if (!window_in(I, &x, d, &r, false) || (wt = onnx_in(I, 1)) < 0 || (b = onnx_in_opt(I, 2)) == -2) return I->err->code;
  return onnx_def_dyn(I, 0, onnx_conv(I, x, wt, b));
}

/* ConvTranspose: im2col over the output positions (each reads the input position it came
 * from, where the stride divides: a zero elsewhere), times the weights (C, M/g, k...)
 * turned to (g, M/g, C/g·K) with the kernel unflipped. Spatial dims must be constant. */
static dvm_status conv_transpose(Imp *I) {
  int64_t x, wt = -1, b = -1;
  Dim d[R], wd[R];
  int r;
  Win w = {.transposed = true};
  if (!window_in(I, &x, d, &r, false) || (wt = onnx_in(I, 1)) < 0) return I->err->code;
  if (r < 3 || r > 2 + SP)
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "input of rank %d: 1 to %d spatial axes after N and C are supported", r, SP);
  int ns = w.ns = r - 2;
  int64_t g = onnx_attr_i(I, "group", 1), c, mg, in[SP];
  if ((b = onnx_in_opt(I, 2)) == -2) return I->err->code;
  if (onnx_vdims(I, wt, wd) != r) return onnx_fail(I, DVM_ERR_SHAPE, "the weights' rank is not the input's (%d)", r);
  for (int i = 0; i < ns; i++) {
    if (!onnx_dim_const(I, wd[2 + i], &w.k[i])) return onnx_fail(I, DVM_ERR_UNSUPPORTED, "the kernel's dims must be constant");
    if (!onnx_dim_const(I, d[2 + i], &in[i]))
      return onnx_fail(I, DVM_ERR_UNSUPPORTED, "ConvTranspose over the symbolic dim %d (spatial dims must be constant)", 2 + i);
    if (in[i] < 1 || in[i] > ((int64_t)1 << 30))
      return onnx_fail(I, DVM_ERR_UNSUPPORTED, "ConvTranspose over %lld elements on axis %d (1 to 2^30)", (long long)in[i], 2 + i);
  }
  int64_t cw;
  if (!onnx_dim_const(I, d[1], &c) || !onnx_dim_const(I, wd[0], &cw) || !onnx_dim_const(I, wd[1], &mg))
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "the channel counts must be constant");
  if (g < 1 || c % g || cw != c || mg < 1)
    return onnx_fail(I, DVM_ERR_SHAPE, "group %lld: input channels %lld, weights [%lld, %lld, ...]: the weights' "
                     "first dim must be C and C a multiple of group", (long long)g, (long long)c, (long long)cw, (long long)mg);
  int64_t pads[2 * SP], op[SP], os[SP], ks[SP];
  int mode = onnx_attr_choice(I, "auto_pad", auto_pads, 0);
  int nos = mode < 0 ? -2 : onnx_attr_ints(I, "output_shape", os, SP);
  if (mode < 0 || nos == -2 || !ints_n(I, "strides", w.s, ns, 1) || !ints_n(I, "dilations", w.dl, ns, 1) ||
      !ints_n(I, "pads", pads, 2 * ns, 0) || !ints_n(I, "output_padding", op, ns, 0) ||
      (onnx_attr(I, "kernel_shape") && !ints_n(I, "kernel_shape", ks, ns, 1)))
    return I->err->code;
  if (onnx_attr(I, "kernel_shape") && memcmp(ks, w.k, (size_t)ns * sizeof *ks))
    return onnx_fail(I, DVM_ERR_SHAPE, "kernel_shape disagrees with the weights' dims");
  if (nos >= 0 && nos != ns && nos != r)
    return onnx_fail(I, DVM_ERR_GRAPH, "output_shape has %d entries, %d expected", nos, ns);
  int64_t p = 1;
  for (int i = 0; i < ns; i++) {
    int64_t k = w.k[i], s = w.s[i], dl = w.dl[i], ext;
    const int64_t big = (int64_t)1 << 30;
    if (k < 1 || s < 1 || dl < 1 || k > big || s > big || dl > big || pads[i] < 0 || pads[ns + i] < 0 ||
        pads[i] > big || pads[ns + i] > big || op[i] < 0 || (op[i] >= s && op[i] >= dl))
      return onnx_fail(I, DVM_ERR_GRAPH, "axis %d: kernel %lld, stride %lld, dilation %lld, pads %lld and %lld, "
                       "output_padding %lld (positive, not negative, output_padding below the stride or dilation)",
                       2 + i, (long long)k, (long long)s, (long long)dl, (long long)pads[i], (long long)pads[ns + i],
                       (long long)op[i]);
    ext = s * (in[i] - 1) + op[i] + (k - 1) * dl + 1; /* the full output, before pads */
    w.pb[i] = pads[i], w.pe[i] = pads[ns + i];
    if (nos >= 0 || mode >= 2) { /* pads from the output size: SAME_UPPER puts the odd one at the end */
      int64_t want = nos >= 0 ? os[nos - ns + i] : in[i] * s, total = ext - want;
      if (want < 0 || want > big) return onnx_fail(I, DVM_ERR_GRAPH, "axis %d: output size %lld", 2 + i, (long long)want);
      int64_t half = total >= 0 ? total / 2 : -((1 - total) / 2); /* floor: a negative total (a larger
                                                                      output) adds at the end */
      w.pb[i] = mode == 2 ? half : total - half;
      w.pe[i] = total - w.pb[i];
    } else if (mode == 1) {
      w.pb[i] = w.pe[i] = 0;
    }
    int64_t o = ext - w.pb[i] - w.pe[i];
    if (o < 1) return onnx_fail(I, DVM_ERR_SHAPE, "axis %d: the output would have %lld elements", 2 + i, (long long)o);
    if (o > big / p) return onnx_fail(I, DVM_ERR_UNSUPPORTED, "an output of more than 2^30 positions");
    w.out[i] = dc(I, o), p *= o;
  }
  int64_t cg = c / g, nk = kernel_size(&w);
  if (nk > ((int64_t)1 << 31) / cg)
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "a kernel of %lld elements over %lld channels is too large",
                     (long long)nk, (long long)cg);
  int64_t span = 1;
  for (int i = 0; i < ns; i++) span = span > INT32_MAX / in[i] ? INT32_MAX : span * in[i];
  if (p > OFFSETS_MAX / nk || span >= INT32_MAX) /* im2col would fall back to arange offsets, Conv's */
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "an im2col table of %lld x %lld entries over %lld inputs", (long long)nk,
                     (long long)p, (long long)span);
  int64_t cols = im2col(I, x, &w);
  /* the weights (C, Mg, K) as (g, Mg, Cg·K) */
  Dim w4[4] = {dc(I, g), dc(I, cg), dc(I, mg), dc(I, nk)};
  static const int64_t perm[4] = {0, 2, 1, 3};
  int64_t wm = onnx_reshape(I, wt, w4, 4);
  if (wm >= 0) {
    NodeDraft t = {.op = OP_TRANSPOSE, .nin = 1, .in = {(uint32_t)wm}};
    onnx_at_ints(I, &t, AK_PERM, perm, 4);
    wm = onnx_add(I, &t, NULL);
  }
  Dim ws[3] = {dc(I, g), dc(I, mg), dc(I, cg * nk)};
  wm = onnx_reshape(I, wm, ws, 3);
  if (cols < 0 || wm < 0) return I->err->code;
  return onnx_def_dyn(I, 0, conv_matmul(I, cols, wm, b, d, r, &w, g, mg, cg));
}

/* BatchNormalization (inference): (x - mean) / sqrt(var + epsilon) · scale + B, the
 * per-channel operands laid along axis 1. */
static dvm_status batch_norm(Imp *I) {
  if (onnx_attr_i(I, "training_mode", 0) || onnx_out(I, 1) || onnx_out(I, 2))
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "BatchNormalization in training mode (dvm runs inference)");
  int64_t x, v[4];
  Dim d[R];
  int r;
  if (!window_in(I, &x, d, &r, false)) return I->err->code;
  if (r < 2) return onnx_fail(I, DVM_ERR_SHAPE, "the input has rank %d, at least 2 expected (N, C, ...)", r);
  Dim s[R];
  for (int i = 1; i < r; i++) s[i - 1] = i == 1 ? d[1] : dc(I, 1);
  for (int i = 0; i < 4; i++) { /* scale, B, mean, var: of X's type (opset 15 lets them differ) */
    if ((v[i] = onnx_cast(I, onnx_reshape(I, onnx_in(I, 1 + (size_t)i), s, r - 1), DT(x))) < 0)
      return I->err->code;
  }
  int64_t eps = onnx_literal(I, (double)(float)onnx_attr_f(I, "epsilon", 1e-5), DT(x));
  if (eps < 0) return I->err->code;
  int64_t den = onnx_binary(I, OP_ADD, (uint32_t)v[3], (uint32_t)eps, NULL);
  den = den < 0 ? -1 : onnx_unary(I, OP_RSQRT, (uint32_t)den, NULL);
  int64_t a = den < 0 ? -1 : onnx_binary(I, OP_MUL, (uint32_t)v[0], (uint32_t)den, NULL);
  int64_t cx = onnx_binary(I, OP_SUB, (uint32_t)x, (uint32_t)v[2], NULL);
  if (a < 0 || cx < 0 || (cx = onnx_binary(I, OP_MUL, (uint32_t)cx, (uint32_t)a, NULL)) < 0) return I->err->code;
  return onnx_def_dyn(I, 0, onnx_binary(I, OP_ADD, (uint32_t)cx, (uint32_t)v[1], onnx_out(I, 0)));
}

bool onnx_windowed(Imp *I, const char *t, dvm_status *st) {
  if (!strcmp(t, "Conv")) return *st = conv(I), true;
  if (!strcmp(t, "ConvTranspose")) return *st = conv_transpose(I), true;
  if (!strcmp(t, "MaxPool")) return *st = max_pool(I), true;
  if (!strcmp(t, "AveragePool")) return *st = average_pool(I), true;
  if (!strcmp(t, "BatchNormalization")) return *st = batch_norm(I), true;
  return false;
}
