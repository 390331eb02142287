// The reference launcher the project measures itself against (docs/benchmarks.md):
// kept here so the overhead suite can build it (gcc -O2 -static) on a fresh machine.
// It is a measuring instrument, not part of greywall. Unmodified below this header.

// sbx-probe: minimal sandbox launcher used to measure the cost of raw kernel
// primitives (Landlock, no_new_privs, user/net/mount namespaces, fork vs exec).
//
// usage: sbx-probe [opts] -- CMD [ARG...]
//   -L        apply a Landlock ruleset: read+execute everywhere under "/",
//             full access under each -w DIR, read/write on /dev/null,/dev/tty...
//             (implies no_new_privs)
//   -w DIR    writable directory for -L (repeatable)
//   -R DIR    extra read-only rule for -L (repeatable; to model a long policy)
//   -T        also handle Landlock TCP bind/connect (ABI>=4) with no rule:
//             every TCP bind/connect denied
//   -S        also Landlock scoping (ABI>=6): abstract unix sockets + signals
//   -P        prctl(PR_SET_NO_NEW_PRIVS) only (no Landlock)
//   -U        unshare(CLONE_NEWUSER) and map the caller's uid/gid to itself
//   -N        unshare(CLONE_NEWNET)   (with -U, as an unprivileged launcher would)
//   -M        unshare(CLONE_NEWNS)    (with -U); no mounts are made
//   -m        mount policy (implies -U -M): make the tree private, bind each
//             -w DIR onto itself, make the whole tree read-only with one
//             recursive mount_setattr(), clear read-only on each -w bind,
//             and mount an empty tmpfs over each -x DIR (credential masks)
//   -x DIR    directory to hide under a tmpfs for -m (repeatable)
//   -f        fork: the child sets up and execs, the parent waits and exits
//             with the child's status (a supervisor-style launcher)
//   -v        like -f but with vfork()-semantics clone (CLONE_VM|CLONE_VFORK)
//   -A        print the Landlock ABI version and exit
// Without -f/-v the probe sets up in its own process and execs the command
// (a "exec-through" launcher).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#define __NR_landlock_add_rule 445
#define __NR_landlock_restrict_self 446
#endif

// Landlock UAPI, spelled out so that old distro headers do not matter.
#define LL_CREATE_RULESET_VERSION (1U << 0)
#define LL_RULE_PATH_BENEATH 1
#define LL_FS_EXECUTE (1ULL << 0)
#define LL_FS_WRITE_FILE (1ULL << 1)
#define LL_FS_READ_FILE (1ULL << 2)
#define LL_FS_READ_DIR (1ULL << 3)
#define LL_FS_REMOVE_DIR (1ULL << 4)
#define LL_FS_REMOVE_FILE (1ULL << 5)
#define LL_FS_MAKE_CHAR (1ULL << 6)
#define LL_FS_MAKE_DIR (1ULL << 7)
#define LL_FS_MAKE_REG (1ULL << 8)
#define LL_FS_MAKE_SOCK (1ULL << 9)
#define LL_FS_MAKE_FIFO (1ULL << 10)
#define LL_FS_MAKE_BLOCK (1ULL << 11)
#define LL_FS_MAKE_SYM (1ULL << 12)
#define LL_FS_REFER (1ULL << 13)      /* ABI 2 */
#define LL_FS_TRUNCATE (1ULL << 14)   /* ABI 3 */
#define LL_FS_IOCTL_DEV (1ULL << 15)  /* ABI 5 */
#define LL_NET_BIND_TCP (1ULL << 0)   /* ABI 4 */
#define LL_NET_CONNECT_TCP (1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX (1ULL << 0) /* ABI 6 */
#define LL_SCOPE_SIGNAL (1ULL << 1)

#ifndef __NR_mount_setattr
#define __NR_mount_setattr 442
#endif
struct mnt_attr { uint64_t attr_set, attr_clr, propagation, userns_fd; };
#define MNT_ATTR_RDONLY 0x1ULL
#define AT_RECURSIVE_ 0x8000

struct ll_ruleset_attr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
  uint64_t scoped;
};
struct ll_path_beneath_attr {
  uint64_t allowed_access;
  int32_t parent_fd;
} __attribute__((packed));

static void die(const char *what) {
  fprintf(stderr, "sbx-probe: %s: %s\n", what, strerror(errno));
  _exit(126);
}

static int write_file(const char *path, const char *s) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, s, strlen(s));
  close(fd);
  return n == (ssize_t)strlen(s) ? 0 : -1;
}

#define MAXP 128
static const char *wdirs[MAXP], *rdirs[MAXP], *xdirs[MAXP];
static int nw, nr, nx;
static int opt_L, opt_T, opt_S, opt_P, opt_U, opt_N, opt_M, opt_f, opt_v, opt_m;

static void mount_policy(void) {
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) die("make-rprivate");
  for (int i = 0; i < nw; i++)
    if (mount(wdirs[i], wdirs[i], NULL, MS_BIND | MS_REC, NULL)) die("bind -w");
  struct mnt_attr ro = {.attr_set = MNT_ATTR_RDONLY};
  if (syscall(__NR_mount_setattr, AT_FDCWD, "/", AT_RECURSIVE_, &ro, sizeof ro))
    die("mount_setattr ro");
  struct mnt_attr rw = {.attr_clr = MNT_ATTR_RDONLY};
  for (int i = 0; i < nw; i++)
    if (syscall(__NR_mount_setattr, AT_FDCWD, wdirs[i], 0, &rw, sizeof rw))
      die("mount_setattr rw");
  for (int i = 0; i < nx; i++)
    if (mount("tmpfs", xdirs[i], "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=700"))
      die("tmpfs -x");
  // the cwd still points into the mounts as they were: re-resolve it
  char cwd[4096];
  if (getcwd(cwd, sizeof cwd) && chdir(cwd)) die("chdir");
}

static void add_path(int rs, const char *path, uint64_t access) {
  struct ll_path_beneath_attr pb = {.allowed_access = access};
  pb.parent_fd = open(path, O_PATH | O_CLOEXEC);
  if (pb.parent_fd < 0) return; /* missing path: skip, as real tools do */
  if (syscall(__NR_landlock_add_rule, rs, LL_RULE_PATH_BENEATH, &pb, 0))
    die("landlock_add_rule");
  close(pb.parent_fd);
}

static void setup(uid_t uid, gid_t gid) {
  if (opt_U || opt_N || opt_M) {
    int fl = 0;
    if (opt_U) fl |= CLONE_NEWUSER;
    if (opt_N) fl |= CLONE_NEWNET;
    if (opt_M) fl |= CLONE_NEWNS;
    if (unshare(fl)) die("unshare");
    if (opt_U) {
      char m[64];
      if (write_file("/proc/self/setgroups", "deny")) die("setgroups");
      snprintf(m, sizeof m, "%u %u 1", (unsigned)uid, (unsigned)uid);
      if (write_file("/proc/self/uid_map", m)) die("uid_map");
      snprintf(m, sizeof m, "%u %u 1", (unsigned)gid, (unsigned)gid);
      if (write_file("/proc/self/gid_map", m)) die("gid_map");
    }
    if (opt_m) mount_policy();
  }
  if (opt_P || opt_L) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) die("no_new_privs");
  }
  if (opt_L) {
    int abi = syscall(__NR_landlock_create_ruleset, NULL, 0,
                      LL_CREATE_RULESET_VERSION);
    if (abi < 1) die("landlock unsupported");
    uint64_t ro = LL_FS_EXECUTE | LL_FS_READ_FILE | LL_FS_READ_DIR;
    uint64_t all = ro | LL_FS_WRITE_FILE | LL_FS_REMOVE_DIR | LL_FS_REMOVE_FILE |
                   LL_FS_MAKE_CHAR | LL_FS_MAKE_DIR | LL_FS_MAKE_REG |
                   LL_FS_MAKE_SOCK | LL_FS_MAKE_FIFO | LL_FS_MAKE_BLOCK |
                   LL_FS_MAKE_SYM;
    if (abi >= 2) all |= LL_FS_REFER;
    if (abi >= 3) all |= LL_FS_TRUNCATE;
    if (abi >= 5) all |= LL_FS_IOCTL_DEV;
    struct ll_ruleset_attr ra = {.handled_access_fs = all};
    size_t sz = sizeof(uint64_t);
    if (opt_T && abi >= 4) {
      ra.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
      sz = 2 * sizeof(uint64_t);
    }
    if (opt_S && abi >= 6) {
      ra.scoped = LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL;
      sz = 3 * sizeof(uint64_t);
    }
    int rs = syscall(__NR_landlock_create_ruleset, &ra, sz, 0);
    if (rs < 0) die("landlock_create_ruleset");
    add_path(rs, "/", ro);
    for (int i = 0; i < nr; i++) add_path(rs, rdirs[i], ro);
    uint64_t devrw = LL_FS_READ_FILE | LL_FS_WRITE_FILE |
                     (abi >= 3 ? LL_FS_TRUNCATE : 0) |
                     (abi >= 5 ? LL_FS_IOCTL_DEV : 0);
    add_path(rs, "/dev/null", devrw);
    add_path(rs, "/dev/zero", devrw);
    add_path(rs, "/dev/tty", devrw);
    add_path(rs, "/dev/pts", devrw);
    for (int i = 0; i < nw; i++) add_path(rs, wdirs[i], all);
    if (syscall(__NR_landlock_restrict_self, rs, 0)) die("landlock_restrict_self");
    close(rs);
  }
}

static char **child_argv;
static uid_t g_uid;
static gid_t g_gid;

static int child_fn(void *arg) {
  (void)arg;
  setup(g_uid, g_gid);
  execvp(child_argv[0], child_argv);
  fprintf(stderr, "sbx-probe: exec %s: %s\n", child_argv[0], strerror(errno));
  _exit(127);
}

static int wait_child(pid_t pid) {
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) die("waitpid");
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  return 128 + WTERMSIG(st);
}

int main(int argc, char **argv) {
  int c;
  while ((c = getopt(argc, argv, "+LTSPUNMmfvAw:R:x:")) != -1) {
    switch (c) {
      case 'L': opt_L = 1; break;
      case 'T': opt_T = 1; break;
      case 'S': opt_S = 1; break;
      case 'P': opt_P = 1; break;
      case 'U': opt_U = 1; break;
      case 'N': opt_N = 1; break;
      case 'M': opt_M = 1; break;
      case 'm': opt_m = opt_U = opt_M = 1; break;
      case 'x': if (nx < MAXP) xdirs[nx++] = optarg; break;
      case 'f': opt_f = 1; break;
      case 'v': opt_v = 1; break;
      case 'w': if (nw < MAXP) wdirs[nw++] = optarg; break;
      case 'R': if (nr < MAXP) rdirs[nr++] = optarg; break;
      case 'A': {
        int abi = syscall(__NR_landlock_create_ruleset, NULL, 0,
                          LL_CREATE_RULESET_VERSION);
        printf("landlock ABI %d\n", abi);
        return 0;
      }
      default: fprintf(stderr, "bad option\n"); return 2;
    }
  }
  if (optind >= argc) { fprintf(stderr, "usage: sbx-probe [opts] -- CMD...\n"); return 2; }
  child_argv = argv + optind;
  g_uid = geteuid();
  g_gid = getegid();
  if (opt_f) {
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) child_fn(NULL);
    return wait_child(pid);
  }
  if (opt_v) {
    static char stack[64 * 1024] __attribute__((aligned(16)));
    pid_t pid = clone(child_fn, stack + sizeof stack, CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
    if (pid < 0) die("clone");
    return wait_child(pid);
  }
  return child_fn(NULL);
}
