/* onnx/external.c — initializers whose bytes live in a file beside the model (ONNX's
 * external data: TensorProto.external_data with "location", "offset" and "length"), the
 * only way ONNX stores a model above protobuf's 2 GB.
 *
 * The location is confined to the model's directory by the kernel: the file is opened
 * with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) relative to the directory, so an
 * absolute path, a ".." that leaves it or a symbolic link out of it fails in the very call
 * that opens the file (no window between a check and the open). Where openat2 is missing
 * (an old kernel) or refused (a seccomp filter), the path is resolved with realpath,
 * opened, and the opened file's own path (/proc/self/fd) checked against the directory. A hard link inside the directory is the
 * directory's own file and is read like any other.
 *
 * The file is opened non-blocking (a FIFO or a device must not hang the load) and must be
 * a regular file of at least offset + the tensor's bytes. The bytes are read, not mapped:
 * a mapping would follow later writes to the file (a bound param must not change) and a
 * file truncated under it would kill the process with SIGBUS. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "onnx.h"

static bool parse_u64(const char *s, int64_t *out) {
  char *end;
  errno = 0;
  if (!s || !*s || *s == '-' || *s == '+') return false;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || v > (unsigned long long)INT64_MAX) return false;
  *out = (int64_t)v;
  return true;
}

enum { FLAGS = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC };

/* The file at loc beneath directory dir, opened; -1 with errno (EXDEV: it escapes). */
static int open_beneath(const char *dir, const char *loc) {
  int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return -1;
  struct open_how how = {.flags = FLAGS, .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
  int fd = (int)syscall(SYS_openat2, dfd, loc, &how, sizeof how), e = errno;
  close(dfd);
  errno = e;
  if (fd >= 0 || (errno != ENOSYS && errno != EPERM)) return fd;
  /* no openat2 (an old kernel, or a seccomp filter that refuses it): resolve, open, then
   * check where the opened file really is */
  char rdir[PATH_MAX], full[2 * PATH_MAX + 2], rfile[PATH_MAX], link[64];
  if (!realpath(dir, rdir)) return -1;
  snprintf(full, sizeof full, "%s/%s", rdir, loc);
  if ((fd = open(full, FLAGS)) < 0) return -1;
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t k = readlink(link, rfile, sizeof rfile - 1);
  size_t nd = strlen(rdir);
  if (k < 0 || (rfile[k] = 0, strncmp(rfile, rdir, nd)) || (nd > 1 && rfile[nd] != '/')) {
    close(fd);
    errno = EXDEV;
    return -1;
  }
  return fd;
}

dvm_status onnx_external(Imp *I, const Onnx__TensorProto *tp, const char *what, DType dt, int rank,
                         const int64_t *shape, int64_t numel, dvm_tensor **out) {
  const char *loc = NULL, *offs = NULL, *lens = NULL;
  int64_t off = 0, length = -1;
  *out = NULL;
  for (size_t i = 0; i < tp->n_external_data; i++) {
    const Onnx__StringStringEntryProto *e = tp->external_data[i];
    if (!e || !e->key) continue;
    if (!strcmp(e->key, "location")) loc = e->value;
    else if (!strcmp(e->key, "offset")) offs = e->value;
    else if (!strcmp(e->key, "length")) lens = e->value;
  }
  if (!loc || !*loc) return onnx_fail(I, DVM_ERR_DATA, "%s: external data without a location", what);
  if ((offs && !parse_u64(offs, &off)) || (lens && !parse_u64(lens, &length)))
    return onnx_fail(I, DVM_ERR_DATA, "%s: external data offset '%s' or length '%s' is not a byte count", what,
                     offs ? offs : "", lens ? lens : "");
  if (loc[0] == '/')
    return onnx_fail(I, DVM_ERR_DATA, "%s: external data location '%s' is absolute: it must be relative to the "
                     "model's directory", what, loc);
  if (!I->path)
    return onnx_fail(I, DVM_ERR_USAGE, "%s: external data '%s' is resolved beside the model file: load the model "
                     "from its path (or give its path as the file name)", what, loc);
  char dir[PATH_MAX];
  const char *slash = strrchr(I->path, '/');
  if ((slash ? (size_t)(slash - I->path) : 1) >= sizeof dir)
    return onnx_fail(I, DVM_ERR_IO, "%s: the model's directory name is too long", what);
  if (!slash) snprintf(dir, sizeof dir, ".");
  else if (slash == I->path) snprintf(dir, sizeof dir, "/");
  else snprintf(dir, sizeof dir, "%.*s", (int)(slash - I->path), I->path);
  size_t esz = ir_dtype_size(dt);
  int64_t need, end;
  if (__builtin_mul_overflow(numel, (int64_t)esz, &need))
    return onnx_fail(I, DVM_ERR_OVERFLOW, "%s: element count overflows", what);
  if (length >= 0 && length != need)
    return onnx_fail(I, DVM_ERR_DATA, "%s: external data length %lld, its shape needs %lld bytes", what,
                     (long long)length, (long long)need);
  int fd = open_beneath(dir, loc);
  if (fd < 0)
    return errno == EXDEV || errno == ELOOP
               ? onnx_fail(I, DVM_ERR_DATA, "%s: external data '%s' is outside the model's directory", what, loc)
               : onnx_fail(I, DVM_ERR_IO, "%s: external data '%s': %s", what, loc, strerror(errno));
  struct stat st;
  dvm_status rc = DVM_OK;
  if (fstat(fd, &st) || !S_ISREG(st.st_mode))
    rc = onnx_fail(I, DVM_ERR_IO, "%s: external data '%s' is not a regular file", what, loc);
  else if (__builtin_add_overflow(off, need, &end) || end > st.st_size)
    rc = onnx_fail(I, DVM_ERR_DATA, "%s: external data '%s' has %lld bytes, the tensor needs %lld from offset %lld",
                   what, loc, (long long)st.st_size, (long long)need, (long long)off);
  else if (!(*out = onnx_tensor_new(I, dt, rank, shape, what)))
    rc = I->err->code;
  else {
    char *p = dvm_tensor_data(*out);
    for (int64_t done = 0; done < need;) {
      ssize_t k = pread(fd, p + done, (size_t)(need - done), off + done);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) {
        rc = onnx_fail(I, DVM_ERR_IO, "%s: reading external data '%s': %s", what, loc,
                       k < 0 ? strerror(errno) : "the file ended early");
        dvm_tensor_destroy(*out), *out = NULL;
        break;
      }
      done += k;
    }
  }
  close(fd);
  return rc;
}
