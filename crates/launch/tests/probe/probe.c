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
 * Built at test time with `gcc -static`; kept free of anything but libc.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

static volatile sig_atomic_t got;
static void on_signal(int s) { got = s; }

static const char *errname(int e) {
    switch (e) {
    case EROFS: return "EROFS";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EEXIST: return "EEXIST";
    default: return strerror(e);
    }
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
    } else if (!strcmp(cmd, "wait-signal")) {
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
