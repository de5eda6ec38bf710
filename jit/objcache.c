/* jit/objcache.c — native code that outlives the process: one object file per kernel in a
 * directory, so that a new process loads what an earlier one compiled instead of running
 * LLVM again.
 *
 * Where: the context's setting (dvm_context_set_cache_dir), else DVM_CACHE_DIR, else
 * $XDG_CACHE_HOME/dvm, else ~/.cache/dvm; "off" disables it. The directory is made (0700)
 * if missing. One that another user owns or that a group or others may write is refused
 * with a warning, as ssh refuses such key files: whoever can write the cache can run code
 * in every process that reads it. Files obey the same rule.
 *
 * What: a file is named by the kernel key and the stamp of the code generator (oc_open:
 * the target's triple, CPU and features, the LLVM version and this build of dvm's build
 * ID), so code made by another build or for another CPU is never even opened. Each file is
 * a header (magic, format, key, stamp, body length, XXH3-128 of the body) and the object.
 * A file that is short, long, of another format, key or stamp, or whose body does not
 * hash to its checksum is never loaded: it is counted (rejects), removed, and the kernel
 * compiled again.
 *
 * Writing: to a temporary name in the directory (mkstemp), then renamed over the final
 * name, so that readers see a whole file or none; many processes may write and read one
 * directory at once (a race writes the same bytes twice). A directory that cannot be
 * written (read-only, full) degrades to compiling, with one warning per process.
 *
 * Size: DVM_CACHE_MAX_MB (default 1024) bounds the directory. A process that writes scans
 * it at its first write and whenever what it wrote since would pass the bound; over it,
 * the files least recently written or loaded go first (a load touches its file), down to
 * three quarters of the bound. Files of other builds and targets age out the same way.
 *
 * Extern kernels are not cached: their code holds the address of a function in this
 * process. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "jit.h"

enum { FORMAT = 1, HEADER = 8 + 4 + 4 + 16 + 16 + 8 + 16, MAX_BODY = 64 << 20 };
static const char MAGIC[8] = {'D', 'V', 'M', 'O', 'B', 'J', 0, 1};

struct ObjCache {
  char dir[1024];
  uint8_t stamp[16];
  char stamp_hex[17];   /* the first 8 bytes of the stamp, in file names */
  atomic_llong hits, misses, writes, rejects;
  atomic_bool warned_write;
  int64_t max_bytes;    /* the directory's bound (DVM_CACHE_MAX_MB), 0: none */
  pthread_mutex_t size_lock; /* the estimate below, and pruning */
  int64_t estimate;     /* the directory's bytes: scanned, plus what this process wrote
                           since (-1: not scanned yet) */
};

static atomic_bool warned_open; /* a refused directory: said once per process */

static void warn(atomic_bool *once, const char *fmt, const char *a, const char *b) {
  if (atomic_exchange(once, true)) return;
  fprintf(stderr, "dvm: warning: kernel cache: ");
  fprintf(stderr, fmt, a, b);
  fprintf(stderr, "; compiling instead\n");
}

/* The GNU build ID of the object that holds this code (the library or the program), so
 * that code from another build of dvm is never loaded; false if it has none. */
typedef struct BuildId {
  const void *base; /* an address in the object (its anchor) */
  uint8_t id[20];
  size_t n;
} BuildId;

static int find_note(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  BuildId *b = arg;
  bool ours = false; /* does one of its segments hold the anchor? */
  for (int i = 0; i < info->dlpi_phnum && !ours; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    uintptr_t start = info->dlpi_addr + ph->p_vaddr;
    ours = ph->p_type == PT_LOAD && (uintptr_t)b->base >= start && (uintptr_t)b->base < start + ph->p_memsz;
  }
  if (!ours) return 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_NOTE) continue;
    const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr), *end = p + ph->p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
      const char *name = p + sizeof *nh, *desc = name + ((nh->n_namesz + 3) & ~3u);
      if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && !memcmp(name, "GNU", 4) && desc + nh->n_descsz <= end) {
        b->n = nh->n_descsz < sizeof b->id ? nh->n_descsz : sizeof b->id;
        memcpy(b->id, desc, b->n);
        return 1;
      }
      p = desc + ((nh->n_descsz + 3) & ~3u);
    }
  }
  return 0;
}

static const char anchor; /* an address in this object */

static bool build_id(BuildId *b) {
  b->base = &anchor, b->n = 0;
  dl_iterate_phdr(find_note, b);
  return b->n > 0;
}

/* Is path (a directory or a file) ours and writable by us alone? */
static bool private_to_us(const struct stat *st) {
  return st->st_uid == geteuid() && !(st->st_mode & (S_IWGRP | S_IWOTH));
}

static bool make_dirs(const char *dir) {
  char p[1024];
  snprintf(p, sizeof p, "%s", dir);
  for (char *s = p + 1; *s; s++)
    if (*s == '/') {
      *s = '\0';
      if (mkdir(p, 0700) && errno != EEXIST) return false;
      *s = '/';
    }
  return !mkdir(p, 0700) || errno == EEXIST;
}

bool oc_dir(const char *setting, char *out, size_t n) {
  const char *env = getenv("DVM_CACHE_DIR"), *dir = setting && *setting ? setting : env;
  if (dir && !strcmp(dir, "off")) return false;
  if (dir && *dir) return snprintf(out, n, "%s", dir) < (int)n;
  const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  if (xdg && *xdg == '/') return snprintf(out, n, "%s/dvm", xdg) < (int)n;
  if (home && *home == '/') return snprintf(out, n, "%s/.cache/dvm", home) < (int)n;
  return false;
}

/* Is name a kernel file's (32 hex digits of key, '-', 16 of stamp, ".o"), or a
 * temporary one's (a writer's, left by a process killed while writing)? */
static bool kernel_file(const char *name) {
  if (!strncmp(name, ".tmp-", 5) && strlen(name) == 11) return true;
  size_t n = strlen(name);
  if (n != 32 + 1 + 16 + 2 || name[32] != '-' || strcmp(name + n - 2, ".o")) return false;
  for (size_t i = 0; i < n - 2; i++)
    if (i != 32 && !((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f'))) return false;
  return true;
}

int64_t oc_scan(const char *dir, bool remove, int64_t *bytes) {
  DIR *d = opendir(dir);
  int64_t files = 0;
  *bytes = 0;
  if (!d) return errno == ENOENT ? 0 : -1;
  for (struct dirent *de; (de = readdir(d));) {
    struct stat st;
    if (!kernel_file(de->d_name) || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode))
      continue;
    if (remove && unlinkat(dirfd(d), de->d_name, 0)) continue;
    files++, *bytes += st.st_size;
  }
  closedir(d);
  return files;
}

/* A kernel file's name and age, for pruning. */
typedef struct Aged {
  char name[64];
  int64_t bytes;
  struct timespec t;
} Aged;

static int older(const void *a, const void *b) {
  const struct timespec *x = &((const Aged *)a)->t, *y = &((const Aged *)b)->t;
  return x->tv_sec != y->tv_sec ? (x->tv_sec < y->tv_sec ? -1 : 1) : (x->tv_nsec > y->tv_nsec) - (x->tv_nsec < y->tv_nsec);
}

/* The bytes of dir's kernel files after removing the least recently used ones while over
 * max (down to three quarters of it); -1 if it cannot be read. */
static int64_t prune(const char *dir, int64_t max) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  Aged *v = NULL;
  size_t n = 0, cap = 0;
  int64_t total = 0;
  for (struct dirent *de; (de = readdir(d));) {
    struct stat st;
    if (!kernel_file(de->d_name) || de->d_name[0] == '.' ||
        fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode))
      continue;
    if (n == cap) {
      Aged *w = realloc(v, (cap = cap ? 2 * cap : 256) * sizeof *v);
      if (!w) break;
      v = w;
    }
    size_t len = strlen(de->d_name); /* 51: kernel_file's */
    if (len >= sizeof v[n].name) continue;
    memcpy(v[n].name, de->d_name, len + 1);
    v[n].bytes = st.st_size, v[n].t = st.st_mtim;
    total += st.st_size, n++;
  }
  if (total > max) {
    qsort(v, n, sizeof *v, older);
    for (size_t i = 0; i < n && total > max / 4 * 3; i++)
      if (!unlinkat(dirfd(d), v[i].name, 0)) total -= v[i].bytes;
  }
  closedir(d);
  free(v);
  return total;
}

ObjCache *oc_open(const char *setting, const char *target) {
  char buf[1024];
  if (!oc_dir(setting, buf, sizeof buf)) return NULL;
  const char *dir = buf;
  if (strlen(dir) > 900) return warn(&warned_open, "%s%s: the path is too long", "", ""), NULL;
  BuildId b;
  if (!build_id(&b)) return warn(&warned_open, "%s%s: this build of dvm has no build ID", dir, ""), NULL;
  struct stat st;
  if (!make_dirs(dir) || stat(dir, &st))
    return warn(&warned_open, "%s: %s", dir, strerror(errno)), NULL;
  if (!S_ISDIR(st.st_mode)) return warn(&warned_open, "%s%s is not a directory", dir, ""), NULL;
  if (!private_to_us(&st))
    return warn(&warned_open, "%s%s is writable by another user (or not ours): refused", dir, ""), NULL;
  ObjCache *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  snprintf(c->dir, sizeof c->dir, "%s", dir);
  const char *max = getenv("DVM_CACHE_MAX_MB");
  char *end = NULL;
  double mb = max && *max ? strtod(max, &end) : 1024;
  c->max_bytes = end && *end ? (int64_t)1024 << 20 : mb > 0 && mb < 1e9 ? (int64_t)(mb * (1 << 20)) : 0;
  c->estimate = -1;
  pthread_mutex_init(&c->size_lock, NULL);
  XXH3_state_t *h = XXH3_createState();
  if (!h) return free(c), NULL;
  XXH3_128bits_reset(h);
  XXH3_128bits_update(h, target, strlen(target) + 1);
  XXH3_128bits_update(h, b.id, b.n);
  XXH128_canonical_t stamp;
  XXH128_canonicalFromHash(&stamp, XXH3_128bits_digest(h));
  XXH3_freeState(h);
  memcpy(c->stamp, stamp.digest, 16);
  for (int i = 0; i < 8; i++) snprintf(c->stamp_hex + 2 * i, 3, "%02x", c->stamp[i]);
  return c;
}

void oc_close(ObjCache *c) {
  if (!c) return;
  pthread_mutex_destroy(&c->size_lock);
  free(c);
}

static void file_name(const ObjCache *c, const uint8_t key[16], char *out, size_t n) {
  char hex[33];
  for (int i = 0; i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", key[i]);
  snprintf(out, n, "%s/%s-%s.o", c->dir, hex, c->stamp_hex);
}

static void put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> 8 * i);
}
static void put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> 8 * i);
}
static uint64_t get_u64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

static void body_hash(const void *body, size_t n, uint8_t out[16]) {
  XXH128_canonical_t d;
  XXH128_canonicalFromHash(&d, XXH3_128bits(body, n));
  memcpy(out, d.digest, 16);
}

/* The header of key's entry with a body of n bytes hashing to hash. */
static void header(const ObjCache *c, const uint8_t key[16], uint64_t n, const uint8_t hash[16], uint8_t *h) {
  memcpy(h, MAGIC, 8);
  put_u32(h + 8, FORMAT);
  put_u32(h + 12, HEADER);
  memcpy(h + 16, key, 16);
  memcpy(h + 32, c->stamp, 16);
  put_u64(h + 48, n);
  memcpy(h + 56, hash, 16);
}

bool oc_check(const ObjCache *c, const uint8_t key[16], const uint8_t *file, size_t size) {
  if (size < HEADER || size - HEADER > MAX_BODY) return false;
  uint64_t body = get_u64(file + 48);
  if (body != size - HEADER) return false;
  uint8_t want[HEADER], hash[16];
  body_hash(file + HEADER, (size_t)body, hash);
  header(c, key, body, hash, want);
  return !memcmp(file, want, HEADER); /* magic, format, key, stamp, length, checksum */
}

void *oc_load(ObjCache *c, const uint8_t key[16], size_t *n) {
  char path[1100];
  file_name(c, key, path, sizeof path);
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    atomic_fetch_add(&c->misses, 1);
    return NULL;
  }
  struct stat st;
  uint8_t *buf = NULL;
  bool ok = !fstat(fd, &st) && S_ISREG(st.st_mode) && private_to_us(&st) && st.st_size >= HEADER &&
            st.st_size <= HEADER + MAX_BODY && (buf = malloc((size_t)st.st_size));
  size_t got = 0;
  while (ok && got < (size_t)st.st_size) {
    ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
    if (r <= 0) ok = false;
    else got += (size_t)r;
  }
  if (ok) futimens(fd, NULL); /* recently used: pruned last */
  close(fd);
  ok = ok && oc_check(c, key, buf, (size_t)st.st_size);
  if (!ok) { /* never loaded: counted, removed (a file of another user's stays: not ours) */
    free(buf);
    atomic_fetch_add(&c->rejects, 1);
    if (!lstat(path, &st) && st.st_uid == geteuid()) unlink(path);
    return NULL;
  }
  atomic_fetch_add(&c->hits, 1);
  *n = (size_t)st.st_size - HEADER;
  memmove(buf, buf + HEADER, *n);
  return buf;
}

void oc_store(ObjCache *c, const uint8_t key[16], const void *obj, size_t n) {
  char path[1100], tmp[1100];
  file_name(c, key, path, sizeof path);
  snprintf(tmp, sizeof tmp, "%s/.tmp-XXXXXX", c->dir);
  uint8_t h[HEADER], hash[16];
  body_hash(obj, n, hash);
  header(c, key, n, hash, h);
  if (n > MAX_BODY) return; /* not kept (no kernel comes near) */
  int fd = mkostemp(tmp, O_CLOEXEC);
  const char *why = fd < 0 || fchmod(fd, 0600) ? strerror(errno) : NULL;
  for (size_t off = 0; !why && off < HEADER + n;) {
    const uint8_t *p = off < HEADER ? h + off : (const uint8_t *)obj + (off - HEADER);
    size_t left = off < HEADER ? HEADER - off : HEADER + n - off;
    ssize_t w = write(fd, p, left);
    if (w < 0) why = strerror(errno);
    else if (w == 0) why = "nothing written";
    else off += (size_t)w;
  }
  if (fd >= 0 && close(fd) && !why) why = strerror(errno);
  if (!why && rename(tmp, path)) why = strerror(errno);
  if (why) {
    if (fd >= 0) unlink(tmp);
    warn(&c->warned_write, "%s: cannot write: %s", c->dir, why);
    return;
  }
  atomic_fetch_add(&c->writes, 1);
  if (!c->max_bytes) return;
  pthread_mutex_lock(&c->size_lock);
  if (c->estimate >= 0) c->estimate += (int64_t)(HEADER + n);
  if (c->estimate < 0 || c->estimate > c->max_bytes) c->estimate = prune(c->dir, c->max_bytes);
  pthread_mutex_unlock(&c->size_lock);
}

void oc_stats(const ObjCache *c, ObjCacheStats *out) {
  *out = (ObjCacheStats){0};
  if (!c) return;
  out->hits = atomic_load(&c->hits), out->misses = atomic_load(&c->misses);
  out->writes = atomic_load(&c->writes), out->rejects = atomic_load(&c->rejects);
}
