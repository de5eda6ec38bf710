/* onnx/resize.c — Resize (opset 13): nearest, linear and cubic interpolation under every
 * coordinate transformation mode of the spec, separable over the resized axes.
 *
 * Along one axis of constant input length n and output length m, output position o reads
 * K taps of the input (1 for nearest, 2 for linear, 4 for cubic) with weights that depend
 * only on o: y[o] = sum_t w_t[o] · x[idx_t[o]]. The tables idx_t and w_t are computed
 * here at load time in double, as ONNX's reference computes them (edge-clamped taps, the
 * same tie rules, exclude_outside, tf_crop_and_resize's extrapolation_value selected
 * where the position falls outside the input), and become constants: each axis is K gathers at a
 * constant index table and a weighted sum, which fusion makes one kernel with whatever
 * follows. Nearest is a gather alone, exact for every dtype. Axes resized to their own
 * length (scale 1, and not cropped) cost nothing. An axis to resize whose length is
 * symbolic is refused (its tables would have to be computed in the kernel). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.h"

#define R DVM_MAX_RANK
#define DT(v) ((DType)ir_node(I->g, (uint32_t)(v))->dtype)

enum { TAPS_MAX = 4, RESIZE_MAX = 1 << 24 };

typedef enum Coord { HALF_PIXEL, PYTORCH_HALF_PIXEL, ALIGN_CORNERS, ASYMMETRIC, TF_CROP } Coord;
typedef enum Mode { NEAREST, LINEAR, CUBIC } Mode;
typedef enum Round { PREFER_FLOOR, PREFER_CEIL, FLOOR, CEIL } Round;

typedef struct Interp {
  Mode mode;
  Coord coord;
  Round round;
  double a;            /* cubic_coeff_a */
  bool exclude;        /* exclude_outside */
  double extrapolation;
} Interp;

/* The weights of the K taps for the fraction `ratio` in (0, 1] (the reference's). */
static int coeffs(const Interp *p, double ratio, double *w) {
  if (p->mode == LINEAR) return w[0] = 1 - ratio, w[1] = ratio, 2;
  if (p->mode == CUBIC) {
    double A = p->a, r1 = ratio + 1, q = 1 - ratio, q1 = q + 1;
    w[0] = ((A * r1 - 5 * A) * r1 + 8 * A) * r1 - 4 * A;
    w[1] = ((A + 2) * ratio - (A + 3)) * ratio * ratio + 1;
    w[2] = ((A + 2) * q - (A + 3)) * q * q + 1;
    w[3] = ((A * q1 - 5 * A) * q1 + 8 * A) * q1 - 4 * A;
    return 4;
  }
  bool right = ratio == 1                 ? true
               : p->round == PREFER_FLOOR ? ratio > 0.5
               : p->round == PREFER_CEIL  ? ratio >= 0.5
                                          : p->round == CEIL;
  return w[0] = !right, w[1] = right, 2;
}

/* The tables of one axis: for each output position o < m, taps idx[t * m + o] (clamped
 * into [0, n)) with weights w[t * m + o], and outside[o] (1 where tf_crop_and_resize puts
 * the extrapolation value: the position falls outside the input). Returns K. */
static int axis_tables(const Interp *p, int64_t n, int64_t m, double scale, double roi0, double roi1,
                       int64_t *idx, double *w, double *outside, bool *any_outside) {
  int k = p->mode == CUBIC ? 4 : 2;
  double out_w = scale * (double)n; /* the reference's output width: a float */
  *any_outside = false;
  for (int64_t o = 0; o < m; o++) {
    double x = (double)o, xo;
    outside[o] = 0;
    switch (p->coord) {
    case ALIGN_CORNERS: xo = out_w == 1 ? 0 : x * (double)(n - 1) / (out_w - 1); break;
    case ASYMMETRIC: xo = x / scale; break;
    case PYTORCH_HALF_PIXEL: xo = out_w == 1 ? -0.5 : (x + 0.5) / scale - 0.5; break;
    case TF_CROP:
      xo = (out_w == 1 ? (roi1 - roi0) * (double)(n - 1) / 2 : x * (roi1 - roi0) * (double)(n - 1) / (out_w - 1)) +
           roi0 * (double)(n - 1);
      break;
    default: xo = (x + 0.5) / scale - 0.5; break;
    }
    double fl = floor(xo), ratio = xo == fl ? 1 : xo - fl, c[TAPS_MAX];
    coeffs(p, ratio, c);
    /* the reference's k nearest indexes of the edge-padded input, smaller first on ties */
    int64_t pad = (k + 1) / 2, base = (int64_t)fl - (xo == fl ? 1 : 0), s = base - (k / 2 - 1);
    if (s < -pad) s = -pad;
    if (s + k - 1 > n - 1 + pad) s = n - 1 + pad - (k - 1);
    if (p->exclude) {
      double sum = 0;
      for (int t = 0; t < k; t++) sum += (c[t] = s + t < 0 || s + t >= n ? 0 : c[t]);
      for (int t = 0; t < k; t++) c[t] = sum != 0 ? c[t] / sum : 0;
    }
    if (p->coord == TF_CROP && (xo < 0 || xo > (double)(n - 1))) outside[o] = 1, *any_outside = true;
    for (int t = 0; t < k; t++) {
      int64_t j = s + t < 0 ? 0 : s + t >= n ? n - 1 : s + t;
      idx[t * m + o] = j, w[t * m + o] = c[t];
    }
  }
  return k;
}

/* A constant tensor as a dvm value: int64 [m] indices, or weights (made in f32, cast to
 * dt) laid along `axis` of a rank-r value. */
static int64_t constant(Imp *I, DType dt, int r, int axis, int64_t m, const int64_t *iv, const double *fv) {
  int64_t shape[R];
  int rank = iv ? 1 : r;
  for (int i = 0; i < rank; i++) shape[i] = iv || i == axis ? m : 1;
  dvm_tensor *t = onnx_tensor_new(I, iv ? DT_I64 : DT_F32, rank, shape, "Resize table");
  if (!t) return -1;
  for (int64_t o = 0; o < m; o++) {
    if (iv) ((int64_t *)dvm_tensor_data(t))[o] = iv[o];
    else ((float *)dvm_tensor_data(t))[o] = (float)fv[o];
  }
  uint32_t v;
  return onnx_use(I, onnx_val_const(I, t, NULL), &v) ? -1 : onnx_cast(I, (int64_t)v, dt);
}

/* x resized along `axis` from n to m, in x's dtype. */
static int64_t resize_axis(Imp *I, const Interp *p, int64_t x, int r, int axis, int64_t n, int64_t m,
                           double scale, double roi0, double roi1) {
  if (m > RESIZE_MAX / TAPS_MAX)
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "axis %d resized to %lld, more than %d", axis, (long long)m,
                     RESIZE_MAX / TAPS_MAX), -1;
  int64_t *idx = malloc((size_t)(TAPS_MAX * m + 1) * sizeof *idx);
  double *w = malloc((size_t)(TAPS_MAX * m + 1) * sizeof *w), *outside = malloc((size_t)(m + 1) * sizeof *outside);
  if (!idx || !w || !outside) ir_oom();
  bool any_outside;
  int k = axis_tables(p, n, m, scale, roi0, roi1, idx, w, outside, &any_outside);
  int64_t y = -1;
  if (p->mode == NEAREST) { /* one tap: the one whose weight is 1 */
    for (int64_t o = 0; o < m; o++) idx[o] = w[o] != 0 ? idx[o] : idx[m + o];
    y = onnx_gather(I, x, constant(I, DT_I64, r, axis, m, idx, NULL), axis, NULL);
  } else {
    for (int t = 0; t < k && x >= 0; t++) {
      bool zero = true;
      for (int64_t o = 0; o < m; o++) zero &= w[t * m + o] == 0;
      if (zero) continue;
      int64_t term = onnx_gather(I, x, constant(I, DT_I64, r, axis, m, idx + t * m, NULL), axis, NULL);
      term = bin(I, OP_MUL, term, constant(I, DT(x), r, axis, m, NULL, w + t * m));
      y = y < 0 ? term : bin(I, OP_ADD, y, term);
      if (term < 0) y = -1, x = -1;
    }
    if (y < 0 && x >= 0) y = bin(I, OP_MUL, onnx_gather(I, x, constant(I, DT_I64, r, axis, m, idx, NULL), axis, NULL),
                                 onnx_literal(I, 0, DT(x))); /* every weight 0 */
  }
  if (y >= 0 && any_outside) { /* outside the crop: the extrapolation value, whatever the taps hold */
    int64_t mask = constant(I, DT_BOOL, r, axis, m, NULL, outside), e = onnx_literal(I, p->extrapolation, DT(y));
    if (mask < 0 || e < 0) y = -1;
    else {
      NodeDraft sd = {.op = OP_SELECT, .nin = 3, .in = {(uint32_t)mask, (uint32_t)e, (uint32_t)y}};
      y = onnx_add(I, &sd, NULL);
    }
  }
  free(idx);
  free(w);
  free(outside);
  return y;
}

dvm_status onnx_resize(Imp *I) {
  static const char *const modes[] = {"nearest", "linear", "cubic", NULL};
  static const char *const coords[] = {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                                       "tf_crop_and_resize", NULL};
  static const char *const rounds[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil", NULL};
  Interp p = {.a = onnx_attr_f(I, "cubic_coeff_a", -0.75), .exclude = onnx_attr_i(I, "exclude_outside", 0) != 0,
              .extrapolation = onnx_attr_f(I, "extrapolation_value", 0)};
  int mode = onnx_attr_choice(I, "mode", modes, 0), coord = mode < 0 ? -1 : onnx_attr_choice(I, "coordinate_transformation_mode", coords, 0),
      round = coord < 0 ? -1 : onnx_attr_choice(I, "nearest_mode", rounds, 0);
  if (round < 0) return I->err->code;
  p.mode = (Mode)mode, p.coord = (Coord)coord, p.round = (Round)round;
  int64_t x = onnx_in(I, 0);
  int64_t kroi = x < 0 ? -2 : onnx_arg(I, 1, false), ksc = kroi == -2 ? -2 : onnx_arg(I, 2, false),
          ksz = ksc == -2 ? -2 : onnx_arg(I, 3, false);
  if (ksz == -2) return I->err->code;
  Dim d[R];
  int r = onnx_vdims(I, x, d);
  DType dt = DT(x);
  if (p.mode != NEAREST && !ir_dtype_is_float(dt))
    return onnx_fail(I, DVM_ERR_DTYPE, "%s interpolation of %s (only nearest takes integers)", modes[mode],
                     ir_dtype_name(dt));
  double scales[R], roi[2 * R], sizes[R];
  int64_t in[R], out[R];
  int ns = -1, nz = -1, nr = -1;
  if (ksc >= 0 && (ns = onnx_numbers(I, (uint32_t)ksc, scales, R)) < 0)
    return onnx_need(I, ksc), onnx_fail(I, DVM_ERR_UNSUPPORTED, "scales (input 3) must be constants");
  if (ksz >= 0 && (nz = onnx_numbers(I, (uint32_t)ksz, sizes, R)) < 0)
    return onnx_need(I, ksz), onnx_fail(I, DVM_ERR_UNSUPPORTED, "sizes (input 4) must be constants");
  if (ns > 0 && nz > 0) return onnx_fail(I, DVM_ERR_GRAPH, "both scales and sizes are given");
  if (ns <= 0 && nz <= 0) return onnx_fail(I, DVM_ERR_GRAPH, "neither scales nor sizes is given");
  if ((ns > 0 ? ns : nz) != r)
    return onnx_fail(I, DVM_ERR_SHAPE, "%s has %d entries for an input of rank %d", ns > 0 ? "scales" : "sizes",
                     ns > 0 ? ns : nz, r);
  if (p.coord == TF_CROP) {
    if (kroi < 0 || (nr = onnx_numbers(I, (uint32_t)kroi, roi, 2 * R)) < 0)
      return onnx_need(I, kroi), onnx_fail(I, DVM_ERR_UNSUPPORTED, "roi (input 2) must be constants for tf_crop_and_resize");
    if (nr != 2 * r) return onnx_fail(I, DVM_ERR_SHAPE, "roi has %d entries, %d expected", nr, 2 * r);
    for (int i = 0; i < nr; i++)
      if (!(fabs(roi[i]) <= 1e6)) return onnx_fail(I, DVM_ERR_GRAPH, "roi[%d] is %g", i, roi[i]);
  }
  bool wide = p.mode != NEAREST && (dt == DT_F16 || dt == DT_BF16); /* interpolated in f32 */
  int64_t y = wide ? onnx_cast(I, x, DT_F32) : x;
  int resized = 0;
  for (int i = r - 1; i >= 0 && y >= 0; i--) { /* innermost first, as the reference nests */
    double s = ns > 0 ? scales[i] : 0, r0 = nr > 0 ? roi[i] : 0, r1 = nr > 0 ? roi[r + i] : 1;
    bool known = onnx_dim_const(I, d[i], &in[i]);
    if (ns > 0 && !(s > 0 && s < 1e9)) return onnx_fail(I, DVM_ERR_GRAPH, "scales[%d] is %g, not positive", i, s);
    if (nz > 0 && !(sizes[i] >= 0 && sizes[i] < 1e15))
      return onnx_fail(I, DVM_ERR_GRAPH, "sizes[%d] is %g", i, sizes[i]);
    bool same = (ns > 0 ? s == 1 : known && sizes[i] == (double)in[i]) && !(p.coord == TF_CROP && (r0 != 0 || r1 != 1));
    if (same) continue;
    if (!known)
      return onnx_fail(I, DVM_ERR_UNSUPPORTED, "Resize of axis %d, whose length is symbolic (dvm resizes constant "
                       "lengths)", i);
    if (in[i] == 0 || in[i] > RESIZE_MAX)
      return onnx_fail(I, DVM_ERR_UNSUPPORTED, "Resize of axis %d of %lld elements (1 to %d)", i, (long long)in[i],
                       RESIZE_MAX);
    if (ns > 0) { /* the spec: floor(in · scale), the crop's share of it for tf_crop_and_resize */
      double o = floor((double)in[i] * (p.coord == TF_CROP ? r1 - r0 : 1) * (double)(float)s);
      if (!(o >= 1 && o < RESIZE_MAX)) return onnx_fail(I, DVM_ERR_UNSUPPORTED, "axis %d resized to %g elements", i, o);
      out[i] = (int64_t)o, s = (double)(float)s;
    } else {
      out[i] = (int64_t)sizes[i], s = (double)out[i] / (double)in[i];
    }
    if (out[i] == 0) return onnx_fail(I, DVM_ERR_UNSUPPORTED, "Resize of axis %d to length 0", i);
    y = resize_axis(I, &p, y, r, i, in[i], out[i], s, r0, r1);
    resized++;
  }
  if (y < 0) return I->err->code;
  if (!resized) { /* nothing to resize: a copy under the output's name */
    NodeDraft c = {.op = OP_RESHAPE, .nin = 1, .in = {(uint32_t)x}};
    onnx_at_dims(I, &c, AK_SHAPE, d, (uint32_t)r);
    return onnx_def_dyn(I, 0, onnx_add(I, &c, onnx_out(I, 0)));
  }
  return onnx_def_dyn(I, 0, wide ? onnx_cast(I, y, dt) : y);
}
