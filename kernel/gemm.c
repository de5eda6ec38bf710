/* kernel/gemm.c — the tiles of mix kernels and the packed weight layout, shared by both
 * tiers (which emit or run the micro-kernel that reads it) and the runtime (which packs each param once per
 * model and hands the copy to the kernel as its extra buffer; docs/native.md).
 *
 * Layout: b [K, N] row-major becomes ceil(N / nr) column panels, panel p holding columns
 * [p·nr, p·nr + nr) for every k: packed[p·K·nr + k·nr + n] = b[k, p·nr + n], zero past
 * column N. So the micro-kernel reads one panel's rows k in order, nr contiguous floats
 * (whole aligned host vectors) per k, and the last panel needs no masked loads. */
#include <string.h>

#include "kernel.h"

/* Tile sizes for code of `lanes` f32 lanes (measured on Zen 5, docs/native.md): mr rows
 * × nr columns of accumulators (AVX-512: 6 × 64 = 24 of the 32 zmm registers, 4 b
 * vectors, the a element broadcast from memory by the fma; 12 × 32 and 14 × 32 measured
 * slower with a read in place), kc values of k per block (the kc × nr slice of a panel,
 * 64 KB, is re-read from L1/L2 by every row block) and at most mc rows of a per block
 * (the mc × kc block of a stays in L2, and codegen groups the panels so that the block's
 * sums over a group do too). */
KnTile kn_tile(int lanes) {
  return (KnTile){.mr = KN_MR(lanes), .nr = KN_NR(lanes), .kc = KN_KC, .mc = KN_MC(lanes)};
}

size_t kn_packed_floats(int64_t K, int64_t N, int lanes) {
  int64_t nr = kn_tile(lanes).nr;
  return (size_t)((N + nr - 1) / nr * nr * K);
}

void kn_pack(const float *b, int64_t K, int64_t N, int lanes, float *out) {
  int64_t nr = kn_tile(lanes).nr;
  for (int64_t j0 = 0; j0 < N; j0 += nr) {
    int64_t w = N - j0 < nr ? N - j0 : nr;
    for (int64_t k = 0; k < K; k++, out += nr) {
      memcpy(out, b + k * N + j0, (size_t)w * sizeof *out);
      if (w < nr) memset(out + w, 0, (size_t)(nr - w) * sizeof *out);
    }
  }
}
