/* fusion/fusion.h — the map of the fusion layer: partitioning a finished Graph into
 * Kernels, decided on symbolic shapes alone.
 *
 * A Partition is computed once per model. Its kernels, their member ops, inputs, outputs
 * and keys do not depend on symbol values, so one partition and one set of kernel keys
 * serve every batch size and sequence length.
 *
 * Kernel kinds (docs/design.md):
 *   vector  elementwise, broadcast and layout ops over one iteration domain (the shape of
 *           its members' results); layout ops are index maps, not copies
 *   row     reductions and normalizations with their elementwise producers and consumers:
 *           every member's result is the row domain or the domain with the reduced axes
 *           removed or kept as 1
 *   mix     a matmul with its elementwise epilogue (bias, scale, activation, residual)
 *   extern  one `call` node
 * A value is materialized (written to memory) only if it is a graph output or read by
 * another kernel; everything else lives inside its kernel. Kernels are grouped into
 * dispatches (stack): kernels of one dispatch have no path between them and run in one
 * parallel region; dispatches run in order.
 *
 * Files: partition.c (clustering, materialization, dispatch levels), key.c (canonical
 * form and 128-bit XXH3 key), dump.c (`dvm dump --stage fused`). */
#ifndef DVM_FUSION_H
#define DVM_FUSION_H

#include "../ir/ir.h"

typedef enum KernelKind { KK_VECTOR, KK_ROW, KK_MIX, KK_EXTERN } KernelKind;

typedef struct Kernel {
  KernelKind kind;
  uint32_t members, nmembers; /* node ids in Partition.ids, in graph (topological) order */
  uint32_t inputs, ninputs;   /* values read from outside, in order of first use */
  uint32_t outputs, noutputs; /* member values materialized, in graph order */
  uint32_t dispatch;          /* stack level: 0, 1, ... */
  uint32_t domain;            /* the value whose shape is the iteration domain */
  uint32_t axes;              /* row kernels: bitmask of reduced axes of the domain */
  uint32_t dims, ndims;       /* symbolic dim parameters (canonical Dims) in Partition.dims */
  uint8_t key[16];            /* XXH3-128 of the canonical form */
} Kernel;

typedef struct Partition {
  const Graph *g;
  VEC(Kernel) kernels;  /* in execution order (by dispatch, then graph order) */
  VEC(uint32_t) ids;    /* member, input and output lists of all kernels */
  VEC(Dim) dims;
  uint32_t ndispatch;
  uint32_t *kernel_of;  /* per value: the kernel that computes it, UINT32_MAX for sources */
} Partition;

/* partition.c */
/* Partition a finished graph; NULL with err set on failure (out of memory only). */
Partition *fu_partition(const Graph *g, Err *err);
void fu_free(Partition *p);
const char *fu_kind_name(KernelKind k);
static inline const uint32_t *fu_members(const Partition *p, const Kernel *k) {
  return p->ids.v + k->members;
}
static inline const uint32_t *fu_inputs(const Partition *p, const Kernel *k) {
  return p->ids.v + k->inputs;
}
static inline const uint32_t *fu_outputs(const Partition *p, const Kernel *k) {
  return p->ids.v + k->outputs;
}
/* The index of value v among k's members, -1 if it is not one (members are in id order:
 * a binary search). */
static inline int32_t fu_member_index(const Partition *p, const Kernel *k, uint32_t v) {
  const uint32_t *mem = fu_members(p, k);
  uint32_t lo = 0, hi = k->nmembers;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (mem[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo < k->nmembers && mem[lo] == v ? (int32_t)lo : -1;
}

/* key.c */
/* Compute k's canonical form, its symbolic dim parameters and its key. */
void fu_key(Partition *p, Kernel *k);
/* The canonical form as bytes (for tests and debugging); returns the length, writes at
 * most cap bytes to out (out may be NULL to measure). */
size_t fu_canonical(const Partition *p, const Kernel *k, uint8_t *out, size_t cap);

/* dump.c */
/* `dvm dump --stage fused`: the partition, readably (malloc'd). */
char *fu_dump(const Partition *p);

#endif /* DVM_FUSION_H */
