/* probe: a tiny static multi-call program put into test images.
 *
 * Called as `probe CMD ARGS...` (or through a link named `runscript` / `test`):
 *   id                 print "uid=U gid=G euid=E egid=F"
 *   env                print the environment, one NAME=VALUE per line
 *   cwd                print the working directory
 *   cat FILE...        copy files to stdout
 *   write FILE         try to create FILE; print "ok" or "error=<errno name>"
 *   exists PATH...     print "PATH yes" or "PATH no" for each
 *   exit N             exit with status N
 *   wait-signal        print "ready", then wait for SIGTERM/SIGINT/SIGHUP/SIGUSR1 and exit
 *                      100+signo after printing "got signal N" (gives up after 30 s: 99)
 *   args ...           print each argument on its own line
 *   pid                print "pid=P ppid=Q"
 *   procs              print the numeric entries of /proc (the visible processes), sorted
 *   uname              print the node name (the host name of the UTS namespace)
 *   ns NAME            print the target of /proc/self/ns/NAME
 *   ls DIR             print the entries of DIR except . and .., sorted
 *   owner PATH         print "uid=U gid=G" of PATH (not following a last symlink)
 *   chown UID PATH     change PATH's owner to UID (group unchanged); print "ok" or "error=..."
 *   rank               print "pid=P addr=A user=U" (A: address of a buffer holding "rank-secret",
 *                      U: the user namespace), then wait for a signal as wait-signal does
 *   vm-read PID ADDR   read 11 bytes at ADDR of process PID with process_vm_readv (cross-memory
 *                      attach, as MPI's shared-memory transport does); print them or "error=..."
 *   node PATH...       print "PATH c MAJ:MIN" for a character device, "PATH socket", "PATH dir",
 *                      "PATH file" or "PATH missing" (following symlinks)
 * Built at test time with `gcc -static`; kept free of anything but libc.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <unistd.h>

extern char **environ;

static volatile sig_atomic_t got;
static char rank_secret[16] = "rank-secret";
static void on_signal(int s) { got = s; }

static const char *errname(int e) {
    switch (e) {
    case EROFS: return "EROFS";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EEXIST: return "EEXIST";
    case EINVAL: return "EINVAL";
    default: return strerror(e);
    }
}

static int by_number(const void *a, const void *b) {
    return atoi(*(char *const *)a) - atoi(*(char *const *)b);
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* List DIR's entries (only numeric ones when `numeric`), sorted. */
static int list(const char *dir, int numeric) {
    DIR *d = opendir(dir);
    if (!d) { printf("error=%s\n", errname(errno)); return 0; }
    static char *names[4096];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 4096) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (numeric && (e->d_name[0] < '0' || e->d_name[0] > '9')) continue;
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, numeric ? by_number : by_name);
    for (int i = 0; i < n; i++) puts(names[i]);
    return 0;
}

static int run(int argc, char **argv) {
    if (argc < 1) { fprintf(stderr, "probe: no command\n"); return 2; }
    const char *cmd = argv[0];
    if (!strcmp(cmd, "id")) {
        printf("uid=%d gid=%d euid=%d egid=%d\n", (int)getuid(), (int)getgid(), (int)geteuid(), (int)getegid());
    } else if (!strcmp(cmd, "env")) {
        for (char **e = environ; *e; e++) puts(*e);
    } else if (!strcmp(cmd, "cwd")) {
        char buf[4096];
        if (!getcwd(buf, sizeof buf)) { perror("getcwd"); return 1; }
        puts(buf);
    } else if (!strcmp(cmd, "cat")) {
        for (int i = 1; i < argc; i++) {
            FILE *f = fopen(argv[i], "r");
            if (!f) { printf("error=%s\n", errname(errno)); continue; }
            char buf[4096];
            size_t n;
            while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stdout);
            fclose(f);
        }
    } else if (!strcmp(cmd, "write") && argc > 1) {
        int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) { printf("error=%s\n", errname(errno)); return 0; }
        if (write(fd, "written\n", 8) != 8) { printf("error=%s\n", errname(errno)); return 0; }
        close(fd);
        puts("ok");
    } else if (!strcmp(cmd, "exists")) {
        for (int i = 1; i < argc; i++) printf("%s %s\n", argv[i], access(argv[i], F_OK) == 0 ? "yes" : "no");
    } else if (!strcmp(cmd, "exit") && argc > 1) {
        return atoi(argv[1]);
    } else if (!strcmp(cmd, "vm-read") && argc > 2) {
        char buf[12] = {0};
        struct iovec local = {buf, 11};
        struct iovec remote = {(void *)strtoul(argv[2], NULL, 0), 11};
        if (process_vm_readv(atoi(argv[1]), &local, 1, &remote, 1, 0) != 11) {
            printf("error=%s\n", errname(errno));
            return 0;
        }
        puts(buf);
    } else if (!strcmp(cmd, "rank") || !strcmp(cmd, "wait-signal")) {
        if (!strcmp(cmd, "rank")) {
            char ns[256];
            ssize_t n = readlink("/proc/self/ns/user", ns, sizeof ns - 1);
            ns[n < 0 ? 0 : n] = 0;
            printf("pid=%d addr=%p user=%s\n", (int)getpid(), (void *)rank_secret, ns);
        }
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        sigaction(SIGUSR1, &sa, NULL);
        puts("ready");
        fflush(stdout);
        for (int i = 0; i < 300 && !got; i++) usleep(100000);
        if (!got) return 99;
        printf("got signal %d\n", (int)got);
        return 100 + got;
    } else if (!strcmp(cmd, "pid")) {
        printf("pid=%d ppid=%d\n", (int)getpid(), (int)getppid());
    } else if (!strcmp(cmd, "procs")) {
        return list("/proc", 1);
    } else if (!strcmp(cmd, "ls") && argc > 1) {
        return list(argv[1], 0);
    } else if (!strcmp(cmd, "uname")) {
        struct utsname u;
        if (uname(&u) != 0) { perror("uname"); return 1; }
        puts(u.nodename);
    } else if (!strcmp(cmd, "ns") && argc > 1) {
        char path[256], buf[256];
        snprintf(path, sizeof path, "/proc/self/ns/%s", argv[1]);
        ssize_t n = readlink(path, buf, sizeof buf - 1);
        if (n < 0) { printf("error=%s\n", errname(errno)); return 0; }
        buf[n] = 0;
        puts(buf);
    } else if (!strcmp(cmd, "owner") && argc > 1) {
        struct stat st;
        if (lstat(argv[1], &st) != 0) { printf("error=%s\n", errname(errno)); return 0; }
        printf("uid=%d gid=%d\n", (int)st.st_uid, (int)st.st_gid);
    } else if (!strcmp(cmd, "chown") && argc > 2) {
        if (lchown(argv[2], (uid_t)atoi(argv[1]), (gid_t)-1) != 0) {
            printf("error=%s\n", errname(errno));
            return 0;
        }
        puts("ok");
    } else if (!strcmp(cmd, "node")) {
        for (int i = 1; i < argc; i++) {
            struct stat st;
            if (stat(argv[i], &st) != 0) printf("%s missing\n", argv[i]);
            else if (S_ISCHR(st.st_mode))
                printf("%s c %u:%u\n", argv[i], major(st.st_rdev), minor(st.st_rdev));
            else if (S_ISSOCK(st.st_mode)) printf("%s socket\n", argv[i]);
            else if (S_ISDIR(st.st_mode)) printf("%s dir\n", argv[i]);
            else printf("%s file\n", argv[i]);
        }
    } else if (!strcmp(cmd, "args")) {
        for (int i = 1; i < argc; i++) puts(argv[i]);
    } else {
        fprintf(stderr, "probe: unknown command %s\n", cmd);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *base = strrchr(argv[0], '/');
    base = base ? base + 1 : argv[0];
    int rc;
    if (!strcmp(base, "runscript") || !strcmp(base, "test")) {
        printf("%s:", base);
        for (int i = 1; i < argc; i++) printf(" %s", argv[i]);
        printf("\n");
        rc = 0;
    } else {
        rc = run(argc - 1, argv + 1);
    }
    fflush(stdout);
    return rc;
}
